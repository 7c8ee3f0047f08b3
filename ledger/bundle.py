"""Provenance bundles (DESIGN.md 3.7): a lot's history with its proofs, checked offline.

A bundle is one signed checkpoint and a set of leaves, each with its RFC 9162
inclusion path against that checkpoint: everything an auditor needs to check,
with no network, that these entries are in the log the checkpoint commits to
and that no entry is missing from the middle of the traced lot's upstream
histories. ``ledger.bundle_builder`` says which leaves a node puts in;
``docs/bundle.md`` describes the format, its JSON rendering and what is left
to the audit (witness quorum, replay of the admission rules, policy checks).

Pure code over bytes, no I/O. The leaves are kept exactly as stored and are
hashed and checked as they are, never re-serialised (DESIGN 3.1).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from google.protobuf.message import DecodeError

from custody.v1 import bundle_pb2
from ledger import merkle
from ledger.checkpoint import SignedCheckpoint, open_checkpoint
from ledger.errors import (
    BundleIncompleteError,
    InclusionProofError,
    LogIntegrityError,
    MalformedBundleError,
    MalformedEnvelopeError,
    MalformedLeafError,
    SignatureError,
    UnknownKeyError,
)
from ledger.leaf import ZERO_HASH, Leaf, decode_leaf, verify_leaf_signatures
from ledger.note import VerifierKey
from ledger.protobuf_fields import has_unknown_fields
from ledger.wire import MAX_INCLUSION_HASHES

__all__ = [
    "BUNDLE_VERSION",
    "LOT_SUBJECT_PREFIX",
    "BundleEntry",
    "ProvenanceBundle",
    "VerifiedBundle",
    "verify_bundle",
]

BUNDLE_VERSION = 1
"""``ProvenanceBundle.version`` of this format."""


LOT_SUBJECT_PREFIX = "lot:"
"""Subject links of lots (DESIGN 3.6) are ``lot:<lot id>``."""

_MAX_INDEX = 2**63 - 1
_JSON_KEYS = ("version", "lot_id", "checkpoint", "entries")
_JSON_ENTRY_KEYS = ("index", "leaf", "leaf_hash", "inclusion_path")


# --- the format ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleEntry:
    """One leaf, as stored, with its audit path in the bundle checkpoint's tree."""

    index: int
    leaf: bytes
    inclusion_path: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if type(self.index) is not int or not 0 <= self.index <= _MAX_INDEX:
            raise MalformedBundleError(f"bundle entry index {self.index!r} is out of range")
        if not isinstance(self.leaf, bytes) or not self.leaf:
            raise MalformedBundleError(f"bundle entry {self.index} carries no leaf bytes")
        if not isinstance(self.inclusion_path, tuple):
            raise MalformedBundleError(f"bundle entry {self.index}: the path must be a tuple")
        if len(self.inclusion_path) > MAX_INCLUSION_HASHES:
            raise MalformedBundleError(
                f"bundle entry {self.index} has {len(self.inclusion_path)} path hashes; "
                f"no tree needs more than {MAX_INCLUSION_HASHES}"
            )
        for position, digest in enumerate(self.inclusion_path):
            if not isinstance(digest, bytes) or len(digest) != merkle.HASH_SIZE:
                raise MalformedBundleError(
                    f"bundle entry {self.index}: path hash {position} is not "
                    f"{merkle.HASH_SIZE} bytes"
                )

    @property
    def leaf_hash(self) -> bytes:
        """RFC 9162 leaf hash of the stored bytes: SHA-256(0x00 || leaf)."""
        return merkle.leaf_hash(self.leaf)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "leaf": _b64(self.leaf),
            "leaf_hash": _b64(self.leaf_hash),
            "inclusion_path": [_b64(digest) for digest in self.inclusion_path],
        }

    @classmethod
    def from_json(cls, obj: object) -> BundleEntry:
        """Parse one JSON entry strictly; its ``leaf_hash`` must be the leaf's."""
        fields = _fields(obj, _JSON_ENTRY_KEYS, "bundle entry")
        index = fields["index"]
        # bool is a subclass of int; JSON true is not an index.
        if type(index) is not int:
            raise MalformedBundleError(f"bundle entry index must be an integer, got {index!r}")
        where = f"bundle entry {index}"
        path = fields["inclusion_path"]
        if not isinstance(path, list):
            raise MalformedBundleError(f"{where}: inclusion_path must be a list")
        entry = cls(
            index=index,
            leaf=_unb64(fields["leaf"], f"{where} leaf"),
            inclusion_path=tuple(
                _unb64(item, f"{where} path hash {i}") for i, item in enumerate(path)
            ),
        )
        if _unb64(fields["leaf_hash"], f"{where} leaf_hash") != entry.leaf_hash:
            raise MalformedBundleError(f"{where}: leaf_hash is not the hash of its leaf")
        return entry


@dataclass(frozen=True)
class ProvenanceBundle:
    """A lot's provenance: one checkpoint note and leaves strictly ascending by index.

    Constructing one checks the shape only (``MalformedBundleError``);
    ``verify_bundle`` checks what it claims.
    """

    lot_id: str
    checkpoint: bytes
    entries: tuple[BundleEntry, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.lot_id, str) or not self.lot_id:
            raise MalformedBundleError("a bundle names the lot it traces")
        if not isinstance(self.checkpoint, bytes) or not self.checkpoint:
            raise MalformedBundleError("a bundle carries a checkpoint")
        try:
            # A signed note is UTF-8 text; the JSON rendering relies on it.
            self.checkpoint.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedBundleError("the bundle checkpoint is not UTF-8 text") from None
        if not isinstance(self.entries, tuple):
            raise MalformedBundleError("bundle entries must be a tuple")
        previous = -1
        for entry in self.entries:
            if not isinstance(entry, BundleEntry):
                raise MalformedBundleError(f"bundle entry is a {type(entry).__name__}")
            if entry.index <= previous:
                raise MalformedBundleError(
                    f"bundle entries must ascend strictly by index: {entry.index} "
                    f"follows {previous}"
                )
            previous = entry.index

    @property
    def indices(self) -> tuple[int, ...]:
        return tuple(entry.index for entry in self.entries)

    # --- protobuf ----------------------------------------------------------------------------

    def to_proto(self) -> bundle_pb2.ProvenanceBundle:
        return bundle_pb2.ProvenanceBundle(
            version=BUNDLE_VERSION,
            lot_id=self.lot_id,
            checkpoint=self.checkpoint,
            entries=[
                bundle_pb2.BundleEntry(
                    index=entry.index, leaf=entry.leaf, inclusion_path=list(entry.inclusion_path)
                )
                for entry in self.entries
            ],
        )

    @classmethod
    def from_proto(cls, message: bundle_pb2.ProvenanceBundle) -> ProvenanceBundle:
        if has_unknown_fields(message):
            # Proven bytes must mean the same to every reader: nothing this version skips.
            raise MalformedBundleError("bundle carries fields unknown to custody.v1")
        if message.version != BUNDLE_VERSION:
            raise MalformedBundleError(f"bundle version {message.version} is not {BUNDLE_VERSION}")
        return cls(
            lot_id=message.lot_id,
            checkpoint=message.checkpoint,
            entries=tuple(
                BundleEntry(
                    index=entry.index,
                    leaf=entry.leaf,
                    inclusion_path=tuple(entry.inclusion_path),
                )
                for entry in message.entries
            ),
        )

    def encode(self) -> bytes:
        """The ``custody.v1.ProvenanceBundle`` bytes (deterministic serialisation)."""
        return self.to_proto().SerializeToString(deterministic=True)

    @classmethod
    def decode(cls, data: bytes) -> ProvenanceBundle:
        """Parse ``custody.v1.ProvenanceBundle`` bytes; ``MalformedBundleError`` if malformed."""
        message = bundle_pb2.ProvenanceBundle()
        try:
            message.ParseFromString(data)
        except DecodeError as exc:
            raise MalformedBundleError(f"bundle is not a valid protobuf message: {exc}") from exc
        return cls.from_proto(message)

    # --- JSON ----------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The JSON rendering (docs/bundle.md): the checkpoint as its note text, bytes in
        standard padded base64 (as DESIGN 3.3), each entry with its leaf hash for readers."""
        return {
            "version": BUNDLE_VERSION,
            "lot_id": self.lot_id,
            "checkpoint": self.checkpoint.decode("utf-8"),
            "entries": [entry.to_json() for entry in self.entries],
        }

    @classmethod
    def from_json(cls, obj: object) -> ProvenanceBundle:
        """Parse the JSON rendering strictly: exact keys, canonical base64, matching hashes."""
        fields = _fields(obj, _JSON_KEYS, "bundle")
        version = fields["version"]
        if type(version) is not int or version != BUNDLE_VERSION:
            raise MalformedBundleError(f"bundle version {version!r} is not {BUNDLE_VERSION}")
        lot_id, checkpoint, entries = fields["lot_id"], fields["checkpoint"], fields["entries"]
        if not isinstance(lot_id, str):
            raise MalformedBundleError("bundle lot_id must be a string")
        if not isinstance(checkpoint, str):
            raise MalformedBundleError("bundle checkpoint must be the note's text")
        if not isinstance(entries, list):
            raise MalformedBundleError("bundle entries must be a list")
        try:
            note = checkpoint.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedBundleError("bundle checkpoint is not encodable as UTF-8") from None
        return cls(
            lot_id=lot_id,
            checkpoint=note,
            entries=tuple(BundleEntry.from_json(entry) for entry in entries),
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedBundleError(f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise MalformedBundleError(f"{what} is not valid base64: {exc}") from exc
    # Only the canonical spelling, so one bundle has one JSON rendering.
    if _b64(raw) != value:
        raise MalformedBundleError(f"{what} is not canonical padded standard base64")
    return raw


def _fields(obj: object, keys: tuple[str, ...], kind: str) -> dict[str, object]:
    if not isinstance(obj, dict):
        raise MalformedBundleError(f"{kind} must be a JSON object, got {type(obj).__name__}")
    if set(obj) != set(keys):
        missing = sorted(set(keys) - set(obj), key=str)
        extra = sorted(set(obj) - set(keys), key=str)
        raise MalformedBundleError(f"{kind}: missing keys {missing}, unexpected keys {extra}")
    return {key: obj[key] for key in keys}


# --- verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedBundle:
    """What ``verify_bundle`` established: the opened checkpoint and the leaves it proves."""

    lot_id: str
    checkpoint: SignedCheckpoint
    leaves: Mapping[int, Leaf]
    """Decoded leaves by index, ascending; each is in the checkpoint's tree."""
    upstream_lot_ids: tuple[str, ...]
    """Sorted: the traced lot and every lot upstream of it, whose histories step 5 found
    complete from their creation to the newest leaf of theirs in the bundle."""


def verify_bundle(bundle: ProvenanceBundle, log_key: VerifierKey) -> VerifiedBundle:
    """Check a provenance bundle offline against the log's verifier key.

    1. The checkpoint is a Custody checkpoint signed by ``log_key`` (``open_checkpoint``:
       the log's signature, the origin is the key's name, no extension lines). Witness
       cosignatures and their quorum are not checked here: the audit does that against
       its trust file.
    2. Every entry's leaf hash, SHA-256(0x00 || leaf), with its inclusion path leads to
       the checkpoint's root at the entry's index in a tree of the checkpoint's size
       (RFC 9162 §2.1.3.2).
    3. Every leaf decodes, names its own index, and its envelope signatures verify under
       the public keys the leaf carries (``verify_leaf_signatures``); where two included
       leaves are adjacent, the later continues the hash chain of the earlier (DESIGN 3.2).
    4. The genesis leaf (index 0) is present and starts the hash chain.
    5. Subject-chain completeness (DESIGN 3.6) for the traced lot and every lot upstream of
       it: walking a lot's links back from the newest included leaf touching ``lot:<id>``,
       each ``prev_index`` must be an included leaf that touches the same subject, down to
       the leaf that created the lot (the one whose link has no ``prev_index``). The lots
       that leaf consumed are exactly its other ``lot:`` links with a ``prev_index`` (a
       lot is first touched by its creation, so inputs always have one and new outputs
       never do); they are upstream and are walked in turn. So no event in the middle of
       any upstream lot's history can be left out. Lots merely named beside them (another
       input of a transformation that consumed part of an upstream lot elsewhere) are
       not upstream and are not walked. Events after the newest included leaf of a lot
       cannot be proven absent from a bundle; a newer bundle shows them.

    The admission rules are not replayed here (the audit does that, from the leaves
    returned). Failures raise ``VerificationError`` subclasses naming the index at
    fault: ``NoteVerificationError`` (1), ``InclusionProofError`` (2),
    ``LogIntegrityError``/``SignatureError``/``UnknownKeyError`` (3, 4),
    ``BundleIncompleteError`` (4, 5); a malformed checkpoint note raises its
    ``MalformedError``.
    """
    # 1. The checkpoint.
    signed = open_checkpoint(bundle.checkpoint, log_key)
    size, root = signed.checkpoint.size, signed.checkpoint.root_hash

    # 2. Inclusion of every leaf in the checkpoint's tree.
    for entry in bundle.entries:
        try:
            merkle.verify_inclusion(entry.leaf_hash, entry.index, size, entry.inclusion_path, root)
        except InclusionProofError as exc:
            raise InclusionProofError(f"bundle entry {entry.index}: {exc}") from exc

    # 3. Every leaf: decodes, names its index, is signed as it says, chains to a neighbour.
    leaves: dict[int, Leaf] = {}
    for entry in bundle.entries:
        leaf = _verified_leaf(entry)
        before = leaves.get(entry.index - 1)
        if before is not None and leaf.prev_chain_hash != before.chain_hash:
            raise LogIntegrityError(
                f"bundle leaf {entry.index} does not continue the hash chain of leaf "
                f"{entry.index - 1}",
                index=entry.index,
            )
        leaves[entry.index] = leaf

    # 4. Genesis.
    genesis = leaves.get(0)
    if genesis is None:
        raise BundleIncompleteError("the bundle lacks the genesis leaf (index 0)", index=0)
    if genesis.prev_chain_hash != ZERO_HASH:
        raise LogIntegrityError("the genesis leaf does not start the hash chain", index=0)

    # 5. The traced lot's upstream histories have no gaps.
    upstream_lot_ids = _check_lot_chains(bundle.lot_id, leaves)

    return VerifiedBundle(
        lot_id=bundle.lot_id,
        checkpoint=signed,
        leaves=MappingProxyType(leaves),
        upstream_lot_ids=upstream_lot_ids,
    )


def _verified_leaf(entry: BundleEntry) -> Leaf:
    """Step 3 for one entry: the decoded leaf, or the error naming its index."""
    index = entry.index
    try:
        leaf = decode_leaf(entry.leaf)
    except MalformedLeafError as exc:
        raise LogIntegrityError(f"bundle leaf {index} does not decode: {exc}", index=index) from exc
    if leaf.index != index:
        raise LogIntegrityError(
            f"bundle entry {index} holds a leaf that says it is index {leaf.index}", index=index
        )
    try:
        verify_leaf_signatures(leaf)
    except (SignatureError, UnknownKeyError) as exc:
        raise type(exc)(f"bundle leaf {index}: {exc}") from exc
    except MalformedEnvelopeError as exc:
        raise LogIntegrityError(f"bundle leaf {index}: {exc}", index=index) from exc
    return leaf


def _lot_links(leaf: Leaf) -> dict[str, int | None]:
    """The leaf's ``lot:`` subjects with their previous leaf; a subject listed twice is corrupt."""
    links: dict[str, int | None] = {}
    for link in leaf.subject_links:
        if not link.subject.startswith(LOT_SUBJECT_PREFIX):
            continue
        if link.subject in links:
            raise LogIntegrityError(
                f"bundle leaf {leaf.index} links {link.subject} twice", index=leaf.index
            )
        if link.prev_index is not None and link.prev_index >= leaf.index:
            raise LogIntegrityError(
                f"bundle leaf {leaf.index} links {link.subject} to a later leaf {link.prev_index}",
                index=leaf.index,
            )
        links[link.subject] = link.prev_index
    return links


def _check_lot_chains(lot_id: str, leaves: Mapping[int, Leaf]) -> tuple[str, ...]:
    """Step 5; returns the lot ids walked (the traced lot and its upstream), sorted."""
    links: dict[int, dict[str, int | None]] = {}
    newest: dict[str, int] = {}  # lot subject -> newest included leaf touching it
    touching: dict[str, int] = {}  # lot subject -> how many included leaves touch it
    for index, leaf in leaves.items():  # ascending, so the last write is the newest
        links[index] = _lot_links(leaf)
        for subject in links[index]:
            newest[subject] = index
            touching[subject] = touching.get(subject, 0) + 1

    traced = LOT_SUBJECT_PREFIX + lot_id
    if traced not in newest:
        raise BundleIncompleteError(f"the bundle holds no leaf of lot {lot_id!r}")
    walked, pending = {traced}, [traced]
    while pending:
        subject = pending.pop()
        index = newest[subject]
        chain_length = 1
        # Walk back to the leaf that created the lot: the one with no previous leaf.
        while (prev := links[index][subject]) is not None:
            if prev not in links:
                raise BundleIncompleteError(
                    f"leaf {index} links {subject} to leaf {prev}, which the bundle lacks",
                    index=prev,
                )
            if subject not in links[prev]:
                raise LogIntegrityError(
                    f"leaf {index} links {subject} to leaf {prev}, which does not touch it",
                    index=index,
                )
            index = prev
            chain_length += 1
        if chain_length != touching[subject]:
            # A leaf of the lot off its chain: two leaves claim one predecessor.
            raise LogIntegrityError(
                f"{touching[subject]} leaves of the bundle touch {subject} but its chain "
                f"holds {chain_length}",
                index=newest[subject],
            )
        # The created lot's inputs are the leaf's lots that already existed.
        for other, other_prev in links[index].items():
            if other_prev is not None and other not in walked:
                walked.add(other)
                pending.append(other)
    return tuple(sorted(subject.removeprefix(LOT_SUBJECT_PREFIX) for subject in walked))
