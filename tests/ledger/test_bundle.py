"""Provenance bundles: the format (protobuf and JSON, strictly parsed) and `verify_bundle`.

The log here is built in memory from pure functions: leaves with hand-chosen
subject links, their Merkle tree and a checkpoint signed by a test key. No
admission rules run (the bundle check does not replay them), so the payloads
are placeholders and only the links, signatures and proofs matter.

The toy history (lot C is traced):

    0 genesis                    5 receipt of A              lot:A <- 4
    1 extraction of A            6 transformation A+B -> C   lot:A <- 5, lot:B <- 2, lot:C new
    2 extraction of B            7 assay of C                lot:C <- 6
    3 extraction of Z            8 dispatch of Z             lot:Z <- 3
    4 dispatch of A   lot:A <- 1 9 transformation C+Z -> D   lot:C <- 7, lot:Z <- 8, lot:D new
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

import pytest

from custody.v1 import bundle_pb2
from ledger import merkle
from ledger.bundle import (
    BUNDLE_VERSION,
    BundleEntry,
    ProvenanceBundle,
    verify_bundle,
)
from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.dsse import Signature, Signer, sign_envelope
from ledger.errors import (
    BundleIncompleteError,
    InclusionProofError,
    LogIntegrityError,
    MalformedBundleError,
    MalformedError,
    NoteVerificationError,
    SignatureError,
)
from ledger.keys import private_key_from_seed
from ledger.leaf import ZERO_HASH, SubjectLink, chain_hash, encode_leaf
from ledger.merkle import CompactRange, NodeId
from ledger.note import NoteSigner
from ledger.wire import MAX_INCLUSION_HASHES
from tests.support import PAYLOAD_TYPE, TEST_ORIGIN

LOG_SIGNER = NoteSigner(TEST_ORIGIN, private_key_from_seed(b"\x01" * 32))
OTHER_LOG_SIGNER = NoteSigner(TEST_ORIGIN, private_key_from_seed(b"\x03" * 32))
PARTNER = Signer(private_key_from_seed(b"\x02" * 32))
LOG_KEY = LOG_SIGNER.verifier_key()

TOY_SUBJECTS: tuple[tuple[str, ...], ...] = (
    ("partner:admin",),
    ("lot:A",),
    ("lot:B",),
    ("lot:Z",),
    ("lot:A",),
    ("lot:A",),
    ("lot:A", "lot:B", "lot:C"),
    ("lot:C",),
    ("lot:Z",),
    ("lot:C", "lot:D", "lot:Z"),
)
UPSTREAM_OF_C = (0, 1, 2, 4, 5, 6, 7, 9)
"""Genesis and every leaf of the histories of C, A and B."""


@dataclass(frozen=True)
class LeafSpec:
    """One leaf of a test log; the defaults give an honest leaf."""

    subjects: tuple[str, ...]
    links: tuple[SubjectLink, ...] | None = None  # instead of the links history gives
    claimed_index: int | None = None
    prev_chain_hash: bytes | None = None
    bad_signature: bool = False
    raw: bytes | None = None  # these bytes instead of an encoded leaf


@dataclass(frozen=True)
class ToyLog:
    leaves: tuple[bytes, ...]
    nodes: dict[NodeId, bytes]
    checkpoint: bytes

    def bundle(
        self, lot_id: str, indices: Sequence[int], checkpoint: bytes | None = None
    ) -> ProvenanceBundle:
        size = len(self.leaves)
        entries = tuple(
            BundleEntry(
                index=index,
                leaf=self.leaves[index],
                inclusion_path=merkle.build_inclusion_proof(index, size, self.fetch).hashes,
            )
            for index in sorted(indices)
        )
        return ProvenanceBundle(lot_id, checkpoint or self.checkpoint, entries)

    def fetch(self, ids: Collection[NodeId]) -> dict[NodeId, bytes]:
        return {node: self.nodes[node] for node in ids}


def build_log(specs: Sequence[LeafSpec], signer: NoteSigner = LOG_SIGNER) -> ToyLog:
    heads: dict[str, int] = {}
    previous_chain = ZERO_HASH
    tree = CompactRange()
    nodes: dict[NodeId, bytes] = {}
    leaves: list[bytes] = []
    for index, spec in enumerate(specs):
        links = spec.links
        if links is None:
            links = tuple(SubjectLink(s, heads.get(s)) for s in sorted(spec.subjects))
        for subject in spec.subjects:
            heads[subject] = index
        envelope = sign_envelope(PAYLOAD_TYPE, b'{"leaf": %d}' % index, [PARTNER])
        if spec.bad_signature:
            sig = envelope.signatures[0]
            flipped = bytes([sig.sig[0] ^ 1]) + sig.sig[1:]
            envelope = replace(envelope, signatures=(Signature(keyid=sig.keyid, sig=flipped),))
        prev_chain = spec.prev_chain_hash or previous_chain
        raw = encode_leaf(
            index=index if spec.claimed_index is None else spec.claimed_index,
            integration_time_micros=1_780_000_000_000_000 + index,
            prev_chain_hash=prev_chain,
            envelope=envelope,
            signer_keys=[PARTNER.public_key],
            subject_links=links,
        )
        if spec.raw is not None:
            raw = spec.raw
        leaves.append(raw)
        # Later leaves continue whatever chain this one claims to continue.
        previous_chain = chain_hash(prev_chain, merkle.leaf_hash(raw))
        nodes.update(tree.append(merkle.leaf_hash(raw)))
    checkpoint = sign_checkpoint(Checkpoint(TEST_ORIGIN, tree.size, tree.root()), signer)
    return ToyLog(tuple(leaves), nodes, checkpoint)


def toy_specs() -> list[LeafSpec]:
    return [LeafSpec(subjects) for subjects in TOY_SUBJECTS]


TOY = build_log(toy_specs())


def test_a_complete_bundle_verifies() -> None:
    verified = verify_bundle(TOY.bundle("C", UPSTREAM_OF_C), LOG_KEY)
    assert verified.lot_id == "C"
    assert verified.checkpoint.checkpoint.size == len(TOY_SUBJECTS)
    assert list(verified.leaves) == list(UPSTREAM_OF_C)
    assert all(verified.leaves[i].raw == TOY.leaves[i] for i in UPSTREAM_OF_C)
    # D and Z are named by leaf 9 but are not upstream of C: not walked, not required.
    assert verified.upstream_lot_ids == ("A", "B", "C")


def test_a_downstream_lot_needs_the_history_of_every_input() -> None:
    with pytest.raises(BundleIncompleteError) as caught:
        verify_bundle(TOY.bundle("D", UPSTREAM_OF_C), LOG_KEY)
    assert caught.value.index == 8  # Z's dispatch, linked from leaf 9
    assert caught.value.reason == "BUNDLE_INCOMPLETE"
    verified = verify_bundle(TOY.bundle("D", range(len(TOY_SUBJECTS))), LOG_KEY)
    assert verified.upstream_lot_ids == ("A", "B", "C", "D", "Z")


@pytest.mark.parametrize("dropped", range(len(TOY_SUBJECTS)))
def test_dropping_one_leaf_fails_exactly_when_the_leaf_is_needed(dropped: int) -> None:
    kept = [i for i in range(len(TOY_SUBJECTS)) if i != dropped]
    bundle = TOY.bundle("C", kept)
    # 3 and 8 are Z's, not upstream; 9 is the newest leaf of C, and a bundle cannot prove
    # that nothing came after the newest leaf it holds (docs/bundle.md says so).
    if dropped in {3, 8, 9}:
        verify_bundle(bundle, LOG_KEY)
        return
    with pytest.raises(BundleIncompleteError) as caught:
        verify_bundle(bundle, LOG_KEY)
    assert caught.value.index == dropped
    assert str(dropped) in str(caught.value)


def test_a_dropped_middle_leaf_of_a_lot_chain_is_named() -> None:
    with pytest.raises(BundleIncompleteError, match="leaf 5 links lot:A to leaf 4") as caught:
        verify_bundle(TOY.bundle("C", [i for i in UPSTREAM_OF_C if i != 4]), LOG_KEY)
    assert caught.value.index == 4


def test_a_bundle_without_the_traced_lot_is_incomplete() -> None:
    with pytest.raises(BundleIncompleteError, match="no leaf of lot 'Q'"):
        verify_bundle(TOY.bundle("Q", UPSTREAM_OF_C), LOG_KEY)


def test_missing_genesis_is_incomplete() -> None:
    with pytest.raises(BundleIncompleteError, match="genesis") as caught:
        verify_bundle(TOY.bundle("C", UPSTREAM_OF_C[1:]), LOG_KEY)
    assert caught.value.index == 0


def test_a_tampered_leaf_fails_its_inclusion_proof() -> None:
    bundle = TOY.bundle("C", UPSTREAM_OF_C)
    entries = list(bundle.entries)
    raw = bytearray(entries[4].leaf)  # index 5
    raw[-3] ^= 0x01
    entries[4] = replace(entries[4], leaf=bytes(raw))
    with pytest.raises(InclusionProofError, match="bundle entry 5"):
        verify_bundle(replace(bundle, entries=tuple(entries)), LOG_KEY)


def _with_path(
    bundle: ProvenanceBundle,
    position: int,
    change: Callable[[tuple[bytes, ...]], tuple[bytes, ...]],
) -> ProvenanceBundle:
    entries = list(bundle.entries)
    entries[position] = replace(
        entries[position], inclusion_path=change(entries[position].inclusion_path)
    )
    return replace(bundle, entries=tuple(entries))


@pytest.mark.parametrize(
    "change",
    [
        lambda path: (bytes(32), *path[1:]),
        lambda path: path[:-1],
        lambda path: (*path, bytes(32)),
        lambda path: tuple(reversed(path)),
    ],
    ids=["wrong hash", "too short", "too long", "out of order"],
)
def test_a_wrong_inclusion_path_fails(
    change: Callable[[tuple[bytes, ...]], tuple[bytes, ...]],
) -> None:
    bundle = _with_path(TOY.bundle("C", UPSTREAM_OF_C), 2, change)  # index 2
    with pytest.raises(InclusionProofError, match="bundle entry 2"):
        verify_bundle(bundle, LOG_KEY)


def test_an_entry_beyond_the_checkpoint_fails_its_inclusion_proof() -> None:
    bundle = TOY.bundle("C", UPSTREAM_OF_C)
    beyond = BundleEntry(index=len(TOY_SUBJECTS), leaf=TOY.leaves[9], inclusion_path=())
    with pytest.raises(InclusionProofError, match=f"bundle entry {len(TOY_SUBJECTS)}"):
        verify_bundle(replace(bundle, entries=(*bundle.entries, beyond)), LOG_KEY)


def test_a_checkpoint_by_another_key_is_refused() -> None:
    other = build_log(toy_specs(), signer=OTHER_LOG_SIGNER)
    with pytest.raises(NoteVerificationError):
        verify_bundle(other.bundle("C", UPSTREAM_OF_C), LOG_KEY)
    # The same bundle verifies for whoever trusts that other key.
    verify_bundle(other.bundle("C", UPSTREAM_OF_C), OTHER_LOG_SIGNER.verifier_key())


def test_a_checkpoint_that_is_not_a_note_is_malformed() -> None:
    with pytest.raises(MalformedError):
        verify_bundle(TOY.bundle("C", UPSTREAM_OF_C, checkpoint=b"not a note\n"), LOG_KEY)


def test_a_checkpoint_of_another_tree_fails_the_proofs() -> None:
    shorter = build_log(toy_specs()[:8])
    bundle = TOY.bundle("C", UPSTREAM_OF_C, checkpoint=shorter.checkpoint)
    with pytest.raises(InclusionProofError):
        verify_bundle(bundle, LOG_KEY)


def _spoiled(spec: LeafSpec, position: int) -> ToyLog:
    specs = toy_specs()
    specs[position] = spec
    return build_log(specs)


def test_a_bad_envelope_signature_names_the_leaf() -> None:
    log = _spoiled(LeafSpec(TOY_SUBJECTS[6], bad_signature=True), 6)
    with pytest.raises(SignatureError, match="bundle leaf 6"):
        verify_bundle(log.bundle("C", UPSTREAM_OF_C), LOG_KEY)


def test_a_leaf_naming_another_index_is_refused() -> None:
    log = _spoiled(LeafSpec(TOY_SUBJECTS[5], claimed_index=3), 5)
    with pytest.raises(LogIntegrityError, match="says it is index 3") as caught:
        verify_bundle(log.bundle("C", UPSTREAM_OF_C), LOG_KEY)
    assert caught.value.index == 5


def test_adjacent_leaves_must_continue_the_hash_chain() -> None:
    log = _spoiled(LeafSpec(TOY_SUBJECTS[5], prev_chain_hash=b"\x07" * 32), 5)
    with pytest.raises(LogIntegrityError, match="hash chain of leaf 4") as caught:
        verify_bundle(log.bundle("C", UPSTREAM_OF_C), LOG_KEY)
    assert caught.value.index == 5


def test_genesis_must_start_the_hash_chain() -> None:
    log = _spoiled(LeafSpec(TOY_SUBJECTS[0], prev_chain_hash=b"\x07" * 32), 0)
    with pytest.raises(LogIntegrityError, match="genesis") as caught:
        verify_bundle(log.bundle("C", UPSTREAM_OF_C), LOG_KEY)
    assert caught.value.index == 0


def test_a_link_to_a_leaf_that_does_not_touch_the_lot_is_refused() -> None:
    # Leaf 5 says A was last touched by leaf 2, which is B's extraction.
    log = _spoiled(LeafSpec(TOY_SUBJECTS[5], links=(SubjectLink("lot:A", 2),)), 5)
    with pytest.raises(LogIntegrityError, match="leaf 5 links lot:A to leaf 2") as caught:
        verify_bundle(log.bundle("C", UPSTREAM_OF_C), LOG_KEY)
    assert caught.value.index == 5


def test_a_leaf_of_the_lot_off_its_chain_is_refused() -> None:
    # A's history is 1, 4, 5, 6; leaf 5 says A was last touched by leaf 1, so leaf 4 is
    # off the chain the walk follows (6, 5, 1) though the bundle carries it.
    log = _spoiled(LeafSpec(TOY_SUBJECTS[5], links=(SubjectLink("lot:A", 1),)), 5)
    with pytest.raises(LogIntegrityError, match="4 leaves of the bundle touch lot:A") as caught:
        verify_bundle(log.bundle("C", UPSTREAM_OF_C), LOG_KEY)
    assert caught.value.index == 6


def test_a_link_forward_in_the_log_is_refused() -> None:
    log = _spoiled(LeafSpec(TOY_SUBJECTS[7], links=(SubjectLink("lot:C", 9),)), 7)
    with pytest.raises(LogIntegrityError, match="later leaf 9"):
        verify_bundle(log.bundle("C", UPSTREAM_OF_C), LOG_KEY)


def test_a_subject_linked_twice_by_one_leaf_is_refused() -> None:
    twice = (SubjectLink("lot:C", 6), SubjectLink("lot:C", None))
    log = _spoiled(LeafSpec(TOY_SUBJECTS[7], links=twice), 7)
    with pytest.raises(LogIntegrityError, match="twice"):
        verify_bundle(log.bundle("C", UPSTREAM_OF_C), LOG_KEY)


def test_a_leaf_that_does_not_decode_is_refused() -> None:
    # A log whose leaf 4 is garbage, so its inclusion proof holds and decoding is what fails.
    log = _spoiled(LeafSpec(TOY_SUBJECTS[4], raw=b"\xff\xff\xff"), 4)
    with pytest.raises(LogIntegrityError, match="bundle leaf 4 does not decode") as caught:
        verify_bundle(log.bundle("C", UPSTREAM_OF_C), LOG_KEY)
    assert caught.value.index == 4


# --- the protobuf form -------------------------------------------------------------------------


def test_protobuf_round_trip() -> None:
    bundle = TOY.bundle("C", UPSTREAM_OF_C)
    data = bundle.encode()
    assert ProvenanceBundle.decode(data) == bundle
    assert ProvenanceBundle.decode(data).encode() == data
    message = bundle_pb2.ProvenanceBundle.FromString(data)
    assert message.version == BUNDLE_VERSION
    assert [e.index for e in message.entries] == list(UPSTREAM_OF_C)
    assert message.entries[1].leaf == TOY.leaves[1]  # stored bytes, untouched
    verify_bundle(ProvenanceBundle.decode(data), LOG_KEY)


def _proto() -> bundle_pb2.ProvenanceBundle:
    return TOY.bundle("C", UPSTREAM_OF_C).to_proto()


def _swap_entries(m: bundle_pb2.ProvenanceBundle) -> None:
    first, second = bundle_pb2.BundleEntry(), bundle_pb2.BundleEntry()
    first.CopyFrom(m.entries[1])
    second.CopyFrom(m.entries[2])
    m.entries[1].CopyFrom(second)
    m.entries[2].CopyFrom(first)


MALFORMED_PROTOS: dict[str, Callable[[bundle_pb2.ProvenanceBundle], None]] = {
    "version 0": lambda m: setattr(m, "version", 0),
    "version 2": lambda m: setattr(m, "version", 2),
    "no lot id": lambda m: setattr(m, "lot_id", ""),
    "no checkpoint": lambda m: setattr(m, "checkpoint", b""),
    "checkpoint not UTF-8": lambda m: setattr(m, "checkpoint", b"\xff\xfe\n"),
    "duplicate index": lambda m: m.entries.add().CopyFrom(m.entries[-1]),
    "descending indices": _swap_entries,
    "index beyond 2**63 - 1": lambda m: setattr(m.entries[-1], "index", 2**63),
    "empty leaf": lambda m: setattr(m.entries[1], "leaf", b""),
    "short path hash": lambda m: m.entries[1].inclusion_path.append(bytes(31)),
    "long path hash": lambda m: m.entries[1].inclusion_path.append(bytes(33)),
    "too many path hashes": lambda m: m.entries[1].inclusion_path.extend(
        [bytes(32)] * MAX_INCLUSION_HASHES
    ),
}


@pytest.mark.parametrize("spoil", MALFORMED_PROTOS.values(), ids=MALFORMED_PROTOS.keys())
def test_malformed_protobuf_is_refused(
    spoil: Callable[[bundle_pb2.ProvenanceBundle], None],
) -> None:
    message = _proto()
    spoil(message)
    with pytest.raises(MalformedBundleError) as caught:
        ProvenanceBundle.decode(message.SerializeToString())
    assert caught.value.reason == "MALFORMED_BUNDLE"


@pytest.mark.parametrize("where", ["bundle", "entry"])
def test_fields_unknown_to_v1_are_refused(where: str) -> None:
    message = _proto()
    unknown = b"\xf8\x07\x01"  # field 127, varint 1
    if where == "entry":
        spoiled = bundle_pb2.BundleEntry.FromString(
            message.entries[1].SerializeToString() + unknown
        )
        message.entries[1].CopyFrom(spoiled)  # unknown fields are copied along
        data = message.SerializeToString()
    else:
        data = message.SerializeToString() + unknown
    with pytest.raises(MalformedBundleError, match=r"unknown to custody\.v1"):
        ProvenanceBundle.decode(data)


@pytest.mark.parametrize("data", [b"\xff\xff\xff", b"\x0a\x05ab", b"\x22\x03\x08"])
def test_bytes_that_are_not_a_bundle_are_refused(data: bytes) -> None:
    with pytest.raises(MalformedBundleError, match="not a valid protobuf"):
        ProvenanceBundle.decode(data)


def _decoded_with_path(form: str, length: int) -> ProvenanceBundle:
    """The toy bundle, its entry 1 given ``length`` path hashes, decoded from ``form``."""
    if form == "protobuf":
        message = _proto()
        del message.entries[1].inclusion_path[:]
        message.entries[1].inclusion_path.extend([bytes(32)] * length)
        return ProvenanceBundle.decode(message.SerializeToString())
    rendered = TOY.bundle("C", UPSTREAM_OF_C).to_json()
    rendered["entries"][1]["inclusion_path"] = [base64.b64encode(bytes(32)).decode()] * length
    return ProvenanceBundle.from_json(json.loads(json.dumps(rendered)))


@pytest.mark.parametrize("form", ["protobuf", "json"])
def test_a_path_of_the_longest_possible_length_is_accepted_and_no_longer(form: str) -> None:
    """Tree sizes stay below 2**63, so 63 path hashes decode and 64 are refused."""
    assert MAX_INCLUSION_HASHES == 63
    longest = _decoded_with_path(form, 63)
    assert longest.entries[1].inclusion_path == (bytes(32),) * 63
    assert longest.indices == tuple(UPSTREAM_OF_C)
    with pytest.raises(MalformedBundleError, match="has 64 path hashes; no tree needs more"):
        _decoded_with_path(form, 64)


# --- the JSON rendering --------------------------------------------------------------------------


def test_json_round_trip() -> None:
    bundle = TOY.bundle("C", UPSTREAM_OF_C)
    rendered = bundle.to_json()
    assert ProvenanceBundle.from_json(json.loads(json.dumps(rendered))) == bundle
    assert list(rendered) == ["version", "lot_id", "checkpoint", "entries"]
    assert rendered["version"] == 1
    assert rendered["checkpoint"] == TOY.checkpoint.decode("utf-8")
    assert rendered["checkpoint"].startswith(f"{TEST_ORIGIN}\n10\n")
    first = rendered["entries"][1]
    assert list(first) == ["index", "leaf", "leaf_hash", "inclusion_path"]
    proof = merkle.build_inclusion_proof(1, 10, TOY.fetch)
    assert first == {
        "index": 1,
        "leaf": base64.b64encode(TOY.leaves[1]).decode("ascii"),
        "leaf_hash": proof.to_json()["leaf_hash"],
        "inclusion_path": proof.to_json()["hashes"],
    }


def _json() -> dict[str, object]:
    rendered = TOY.bundle("C", UPSTREAM_OF_C).to_json()
    parsed: dict[str, object] = json.loads(json.dumps(rendered))
    return parsed


def _entry(doc: dict[str, object], position: int = 1) -> dict[str, object]:
    entries = doc["entries"]
    assert isinstance(entries, list)
    entry: dict[str, object] = entries[position]
    return entry


MALFORMED_JSON: dict[str, Callable[[dict[str, object]], object]] = {
    "not an object": lambda d: [d],
    "missing key": lambda d: {k: v for k, v in d.items() if k != "lot_id"},
    "extra key": lambda d: {**d, "tree_size": 10},
    "version 2": lambda d: {**d, "version": 2},
    "version as text": lambda d: {**d, "version": "1"},
    "lot id not text": lambda d: {**d, "lot_id": 7},
    "checkpoint not text": lambda d: {**d, "checkpoint": ["x"]},
    "entries not a list": lambda d: {**d, "entries": {}},
    "entry not an object": lambda d: {**d, "entries": ["x"]},
    "entry index true": lambda d: _entry(d).update(index=True),
    "entry index text": lambda d: _entry(d).update(index="1"),
    "leaf not base64": lambda d: _entry(d).update(leaf="%%%"),
    "leaf without padding": lambda d: _entry(d).update(leaf=str(_entry(d)["leaf"]).rstrip("=")),
    "leaf url-safe alphabet": lambda d: _entry(d, 2).update(leaf="-_-_"),
    "leaf hash of another leaf": lambda d: _entry(d).update(leaf_hash=_entry(d, 2)["leaf_hash"]),
    "path not a list": lambda d: _entry(d).update(inclusion_path="AAAA"),
    "path hash short": lambda d: _entry(d).update(inclusion_path=["AAAA"]),
    "entries out of order": lambda d: {**d, "entries": [_entry(d, 2), _entry(d, 1)]},
    "surrogate in checkpoint": lambda d: {**d, "checkpoint": "\ud800"},
}


@pytest.mark.parametrize("spoil", MALFORMED_JSON.values(), ids=MALFORMED_JSON.keys())
def test_malformed_json_is_refused(spoil: Callable[[dict[str, object]], object]) -> None:
    doc = _json()
    spoiled = spoil(doc)
    with pytest.raises(MalformedBundleError):
        ProvenanceBundle.from_json(doc if spoiled is None else spoiled)
