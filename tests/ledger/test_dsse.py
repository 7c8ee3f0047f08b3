"""DSSE envelopes: PAE known answers, signing, verification and strict JSON."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.dsse import (
    MAX_SIGNATURES,
    PAYLOAD_TYPE_EVENT,
    Envelope,
    Signature,
    Signer,
    keyid_for,
    pae,
    sign_envelope,
    verify_envelope,
)
from ledger.errors import MalformedEnvelopeError, MalformedKeyError, SignatureError, UnknownKeyError
from ledger.keys import private_key_from_seed

SIGNERS = [Signer(private_key_from_seed(bytes([i]) * 32)) for i in range(1, 4)]
KEYS = {s.keyid: s.public_key for s in SIGNERS}


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- PAE ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload_type", "payload", "expected"),
    [
        # The DSSE protocol specification's own example.
        (
            "http://example.com/HelloWorld",
            b"hello world",
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world",
        ),
        ("", b"", b"DSSEv1 0  0 "),
        # LEN counts UTF-8 bytes, not characters.
        ("\u00e9", b"x", b"DSSEv1 2 \xc3\xa9 1 x"),
        ("t", b" \x00 ", b"DSSEv1 1 t 3  \x00 "),
        ("t", b"a" * 100, b"DSSEv1 1 t 100 " + b"a" * 100),
    ],
)
def test_pae_known_answers(payload_type: str, payload: bytes, expected: bytes) -> None:
    assert pae(payload_type, payload) == expected


@given(st.text(), st.binary())
def test_pae_is_unambiguous(payload_type: str, payload: bytes) -> None:
    encoded = pae(payload_type, payload)
    type_bytes = payload_type.encode("utf-8")
    header = b"DSSEv1 %d " % len(type_bytes)
    assert encoded.startswith(header + type_bytes + b" %d " % len(payload))
    assert encoded.endswith(payload)


def test_keyid_is_hex_sha256_of_raw_key() -> None:
    signer = SIGNERS[0]
    assert signer.keyid == hashlib.sha256(signer.public_key).hexdigest()
    assert keyid_for(signer.public_key) == signer.keyid
    with pytest.raises(MalformedKeyError):
        keyid_for(b"\x00" * 31)


# --- signing and verification ---------------------------------------------------------


def test_sign_verify_round_trip_with_several_signers() -> None:
    envelope = sign_envelope(PAYLOAD_TYPE_EVENT, b"\x08\x01payload", SIGNERS)
    assert verify_envelope(envelope, KEYS) == tuple(s.keyid for s in SIGNERS)
    reordered = sign_envelope(PAYLOAD_TYPE_EVENT, b"\x08\x01payload", SIGNERS[::-1])
    assert verify_envelope(reordered, KEYS) == tuple(s.keyid for s in SIGNERS[::-1])


def test_digest_is_sha256_of_pae_and_ignores_signatures() -> None:
    one = sign_envelope(PAYLOAD_TYPE_EVENT, b"body", SIGNERS[:1])
    two = sign_envelope(PAYLOAD_TYPE_EVENT, b"body", SIGNERS[1:])
    assert one.digest() == two.digest() == hashlib.sha256(pae(PAYLOAD_TYPE_EVENT, b"body")).digest()
    assert one.pae() == pae(PAYLOAD_TYPE_EVENT, b"body")


def test_sign_envelope_needs_a_signer() -> None:
    with pytest.raises(MalformedEnvelopeError):
        sign_envelope(PAYLOAD_TYPE_EVENT, b"body", [])


def test_unsigned_envelope_exists_but_does_not_verify() -> None:
    envelope = Envelope(PAYLOAD_TYPE_EVENT, b"body", ())
    with pytest.raises(MalformedEnvelopeError, match="no signatures"):
        verify_envelope(envelope, KEYS)


def test_unknown_key_is_named() -> None:
    envelope = sign_envelope(PAYLOAD_TYPE_EVENT, b"body", SIGNERS)
    keys = dict(KEYS)
    del keys[SIGNERS[1].keyid]
    with pytest.raises(UnknownKeyError, match=SIGNERS[1].keyid):
        verify_envelope(envelope, keys)


def test_inconsistent_key_mapping_is_refused() -> None:
    envelope = sign_envelope(PAYLOAD_TYPE_EVENT, b"body", SIGNERS[:1])
    with pytest.raises(SignatureError):
        verify_envelope(envelope, {SIGNERS[0].keyid: SIGNERS[1].public_key})


def test_every_signature_must_verify() -> None:
    envelope = sign_envelope(PAYLOAD_TYPE_EVENT, b"body", SIGNERS)
    bad = Signature(SIGNERS[2].keyid, _flip(envelope.signatures[2].sig, 0))
    tampered = Envelope(envelope.payload_type, envelope.payload, (*envelope.signatures[:2], bad))
    with pytest.raises(SignatureError, match=SIGNERS[2].keyid):
        verify_envelope(tampered, KEYS)


@settings(max_examples=40)
@given(st.data())
def test_any_bit_flip_fails(data: st.DataObject) -> None:
    envelope = sign_envelope(PAYLOAD_TYPE_EVENT, b"some payload", SIGNERS[:2])
    part = data.draw(st.sampled_from(["payload", "type", "sig"]))
    if part == "payload":
        bit = data.draw(st.integers(0, len(envelope.payload) * 8 - 1))
        envelope = Envelope(
            envelope.payload_type, _flip(envelope.payload, bit), envelope.signatures
        )
    elif part == "type":
        # Flip only ASCII-safe bits so the type stays a valid string.
        index = data.draw(st.integers(0, len(envelope.payload_type) - 1))
        chars = list(envelope.payload_type)
        chars[index] = chr(ord(chars[index]) ^ data.draw(st.sampled_from([1, 2, 4, 8, 16, 32])))
        envelope = Envelope("".join(chars), envelope.payload, envelope.signatures)
    else:
        which = data.draw(st.integers(0, 1))
        bit = data.draw(st.integers(0, 64 * 8 - 1))
        sigs = list(envelope.signatures)
        sigs[which] = Signature(sigs[which].keyid, _flip(sigs[which].sig, bit))
        envelope = Envelope(envelope.payload_type, envelope.payload, tuple(sigs))
    with pytest.raises(SignatureError):
        verify_envelope(envelope, KEYS)


# --- constructor validation -----------------------------------------------------------


def test_duplicate_keyids_rejected() -> None:
    sig = SIGNERS[0].sign(PAYLOAD_TYPE_EVENT, b"body")
    with pytest.raises(MalformedEnvelopeError, match="duplicate"):
        Envelope(PAYLOAD_TYPE_EVENT, b"body", (sig, sig))
    with pytest.raises(MalformedEnvelopeError, match="duplicate"):
        sign_envelope(PAYLOAD_TYPE_EVENT, b"body", [SIGNERS[0], SIGNERS[0]])


def test_at_most_max_signatures() -> None:
    sigs = tuple(Signature(f"{i:064x}", b"\x00" * 64) for i in range(MAX_SIGNATURES + 1))
    Envelope(PAYLOAD_TYPE_EVENT, b"", sigs[:MAX_SIGNATURES])
    with pytest.raises(MalformedEnvelopeError):
        Envelope(PAYLOAD_TYPE_EVENT, b"", sigs)


@pytest.mark.parametrize(
    ("keyid", "sig"),
    [
        ("A" * 64, b"\x00" * 64),  # uppercase hex
        ("a" * 63, b"\x00" * 64),
        ("a" * 65, b"\x00" * 64),
        ("g" * 64, b"\x00" * 64),
        ("a" * 64, b"\x00" * 63),
        ("a" * 64, b"\x00" * 65),
        ("a" * 64, b""),
    ],
)
def test_signature_validation(keyid: str, sig: bytes) -> None:
    with pytest.raises(MalformedEnvelopeError):
        Signature(keyid, sig)


def test_payload_type_must_be_non_empty() -> None:
    with pytest.raises(MalformedEnvelopeError):
        Envelope("", b"body", ())
    with pytest.raises(MalformedEnvelopeError):
        Envelope("\ud800", b"body", ())


# --- JSON -----------------------------------------------------------------------------


@settings(max_examples=40)
@given(st.text(min_size=1), st.binary(), st.integers(0, len(SIGNERS)))
def test_json_round_trip(payload_type: str, payload: bytes, count: int) -> None:
    envelope = Envelope(
        payload_type, payload, tuple(s.sign(payload_type, payload) for s in SIGNERS[:count])
    )
    as_text = json.dumps(envelope.to_json())
    assert Envelope.from_json(json.loads(as_text)) == envelope


def test_json_shape() -> None:
    envelope = sign_envelope(PAYLOAD_TYPE_EVENT, b"hi", SIGNERS[:1])
    assert envelope.to_json() == {
        "payloadType": PAYLOAD_TYPE_EVENT,
        "payload": "aGk=",
        "signatures": [
            {
                "keyid": SIGNERS[0].keyid,
                "sig": base64.b64encode(envelope.signatures[0].sig).decode(),
            }
        ],
    }


def _good_json() -> dict[str, Any]:
    return sign_envelope(PAYLOAD_TYPE_EVENT, b"hi", SIGNERS[:1]).to_json()


def _with(**changes: Any) -> dict[str, Any]:
    obj = _good_json()
    obj.update(changes)
    return obj


def _with_sig(**changes: Any) -> dict[str, Any]:
    obj = _good_json()
    obj["signatures"][0].update(changes)
    return obj


_GOOD_SIG = _good_json()["signatures"][0]["sig"]

MALFORMED_JSON: list[tuple[str, object]] = [
    ("not an object", []),
    ("null", None),
    ("missing payloadType", {k: v for k, v in _good_json().items() if k != "payloadType"}),
    ("missing signatures", {k: v for k, v in _good_json().items() if k != "signatures"}),
    ("extra field", _with(extra=1)),
    ("payloadType not a string", _with(payloadType=1)),
    ("empty payloadType", _with(payloadType="")),
    ("payload not a string", _with(payload=[1])),
    ("payload bad base64", _with(payload="a*==")),
    ("payload without padding", _with(payload="aGk")),
    ("payload non-canonical", _with(payload="aGl=")),
    ("payload url-safe alphabet", _with(payload="-_8=")),
    ("payload with whitespace", _with(payload="aG k=")),
    ("signatures not a list", _with(signatures={})),
    ("signature not an object", _with(signatures=["x"])),
    ("signature missing keyid", _with(signatures=[{"sig": _GOOD_SIG}])),
    ("signature extra field", _with_sig(extra="x")),
    ("keyid not a string", _with_sig(keyid=5)),
    ("keyid uppercase", _with_sig(keyid=SIGNERS[0].keyid.upper())),
    ("sig too short", _with_sig(sig=base64.b64encode(b"\x00" * 63).decode())),
    ("sig not base64", _with_sig(sig="!!")),
    ("duplicate signatures", _with(signatures=_good_json()["signatures"] * 2)),
]


@pytest.mark.parametrize(("case", "obj"), MALFORMED_JSON, ids=[c for c, _ in MALFORMED_JSON])
def test_malformed_json_rejected(case: str, obj: object) -> None:
    with pytest.raises(MalformedEnvelopeError):
        Envelope.from_json(obj)


def test_good_json_fixture_parses() -> None:
    envelope = Envelope.from_json(_good_json())
    assert verify_envelope(envelope, KEYS) == (SIGNERS[0].keyid,)
