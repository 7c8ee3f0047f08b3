"""Leaf encoding: what the sequencer encodes decodes back to the same fields."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ledger.dsse import Envelope, Signature
from ledger.leaf import SubjectLink, decode_leaf, encode_leaf

_UINT64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
_INT64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
_KEYID = st.binary(min_size=32, max_size=32).map(bytes.hex)


@st.composite
def envelopes(draw: st.DrawFn) -> Envelope:
    keyids = draw(st.lists(_KEYID, max_size=3, unique=True))
    return Envelope(
        payload_type=draw(st.text(min_size=1, max_size=40)),
        payload=draw(st.binary(max_size=300)),
        signatures=tuple(
            Signature(keyid=keyid, sig=draw(st.binary(min_size=64, max_size=64)))
            for keyid in keyids
        ),
    )


_LINKS = st.lists(st.builds(SubjectLink, st.text(max_size=30), st.none() | _UINT64), max_size=5)


@given(
    index=_UINT64,
    time=_INT64,
    prev=st.binary(min_size=32, max_size=32),
    envelope=envelopes(),
    links=_LINKS,
)
def test_an_encoded_leaf_decodes_to_what_was_encoded(
    index: int, time: int, prev: bytes, envelope: Envelope, links: list[SubjectLink]
) -> None:
    keys = [bytes([n]) * 32 for n in range(len(envelope.signatures))]
    raw = encode_leaf(
        index=index,
        integration_time_micros=time,
        prev_chain_hash=prev,
        envelope=envelope,
        signer_keys=keys,
        subject_links=links,
    )
    leaf = decode_leaf(raw)
    assert leaf.raw == raw
    assert (leaf.index, leaf.integration_time_micros, leaf.prev_chain_hash) == (index, time, prev)
    assert leaf.envelope == envelope
    assert leaf.signer_keys == tuple(keys)
    assert leaf.subject_links == tuple(links)
