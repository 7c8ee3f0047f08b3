"""Pure checks of what a node sends: receipts, leaves, streams of leaves, proofs, bundles.

Nothing here does I/O; the synchronous and the asyncio client run the same
checks. Every failure raises a ``VerificationError`` subclass, also for bytes
that do not even parse (the parser's reason is kept).

What these checks cover is the log: receipts (``ledger.receipts.verify_receipt``,
leaf signatures included), single leaves, proofs, checkpoints, every message of
a Follow stream, GetEntries ranges (tied to the checkpoint when the range ends)
and provenance bundles (``ledger.bundle.verify_bundle``). The node's derived
answers (registry, partners, facilities, lots, a trace's composition) are not
checked here: they are its convenience views, which an auditor recomputes from
verified leaves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from clients.sdk._internal.results import LogEntry
from custody.v1 import bundle_pb2, ledger_service_pb2, log_pb2
from ledger.bundle import ProvenanceBundle, VerifiedBundle, verify_bundle
from ledger.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint
from ledger.dsse import Envelope
from ledger.errors import (
    ConsistencyProofError,
    CustodyError,
    InclusionProofError,
    LogIntegrityError,
    MalformedError,
    VerificationError,
)
from ledger.leaf import ZERO_HASH, Leaf, decode_leaf, verify_leaf_signatures
from ledger.merkle import CompactRange, ConsistencyProof, InclusionProof
from ledger.note import VerifierKey
from ledger.receipts import VerifiedReceipt, verify_receipt
from ledger.wire import consistency_from_proto, inclusion_from_proto, receipt_from_proto

# A node's answer that does not even parse is a failed verification: raising the
# MalformedError itself would read as if the caller's own input were malformed.


@contextlib.contextmanager
def _from_node(what: str) -> Iterator[None]:
    """Parsing something the node sent: a MalformedError becomes a VerificationError
    (keeping the parser's reason)."""
    try:
        yield
    except MalformedError as exc:
        error = VerificationError(f"the node sent a malformed {what}: {exc}")
        error.reason = exc.reason
        raise error from exc


def signed_checkpoint(note: bytes, log_key: VerifierKey) -> SignedCheckpoint:
    """``open_checkpoint`` on a note the node sent."""
    with _from_node("checkpoint"):
        return open_checkpoint(note, log_key)


def inclusion_of(message: log_pb2.InclusionProof) -> InclusionProof:
    with _from_node("inclusion proof"):
        return inclusion_from_proto(message)


def consistency_of(message: log_pb2.ConsistencyProof) -> ConsistencyProof:
    with _from_node("consistency proof"):
        return consistency_from_proto(message)


def verified_bundle(
    message: bundle_pb2.ProvenanceBundle, lot_id: str, log_key: VerifierKey
) -> tuple[ProvenanceBundle, VerifiedBundle]:
    """The node's bundle for ``lot_id``, checked by ``ledger.bundle.verify_bundle``."""
    with _from_node("provenance bundle"):
        bundle = ProvenanceBundle.from_proto(message)
        if bundle.lot_id != lot_id:
            raise VerificationError(f"asked to trace {lot_id!r}, got a bundle of {bundle.lot_id!r}")
        return bundle, verify_bundle(bundle, log_key)


def verified_receipt(
    message: log_pb2.AppendReceipt,
    envelope: Envelope,
    log_key: VerifierKey,
    *,
    duplicate: bool,
    opened: SignedCheckpoint | None = None,
) -> VerifiedReceipt:
    """``ledger.receipts.verify_receipt`` on the wire form, and nothing besides: the
    checkpoint is signed by the log key, the leaf decodes, names the receipt's index,
    carries this very envelope (same entry digest) and valid signatures by its signer
    keys, and the inclusion proof ties it to the checkpoint's root. One copy of these
    checks: the SDK does not re-check what ``verify_receipt`` checks. ``opened``: a
    checkpoint verified before, used if the receipt carries these very note bytes."""
    with _from_node("receipt"):
        receipt = receipt_from_proto(message, duplicate=duplicate)
        return verify_receipt(receipt, log_key, envelope.digest(), opened=opened)


def verified_leaf(index: int, raw: bytes) -> Leaf:
    """1. The bytes decode as a LedgerLeaf. 2. It names ``index``. 3. Its signer keys are
    those its signatures name and every signature verifies. Failures name the index."""
    try:
        leaf = decode_leaf(raw)
        if leaf.index != index:
            raise LogIntegrityError(
                f"the leaf sent as index {index} says it is index {leaf.index}", index=index
            )
        verify_leaf_signatures(leaf)
    except LogIntegrityError:
        raise
    except CustodyError as exc:
        raise LogIntegrityError(f"leaf {index}: {exc}", index=index) from exc
    return leaf


def check_inclusion(proof: InclusionProof, leaf: Leaf, signed: SignedCheckpoint) -> None:
    """The proof is for this leaf's hash and index in the signed tree, and it verifies."""
    checkpoint = signed.checkpoint
    if proof.leaf_hash != leaf.leaf_hash or not proof.is_for(
        leaf.index, checkpoint.size, checkpoint.root_hash
    ):
        raise InclusionProofError(
            f"the inclusion proof is not for leaf {leaf.index} in the checkpoint of size "
            f"{checkpoint.size}"
        )
    proof.verify()


def check_signed_root(size: int, root: bytes, signed: SignedCheckpoint) -> None:
    """A proof's root at ``size`` is the root the log signed at that size."""
    if signed.checkpoint.size != size or signed.checkpoint.root_hash != root:
        raise VerificationError(
            f"the proof's root at tree size {size} is not the root of the checkpoint the "
            f"node signed at size {signed.checkpoint.size}"
        )


def check_bridge(proof: ConsistencyProof, old_size: int, old_root: bytes, new: Checkpoint) -> None:
    """``proof`` shows the tree (old_size, old_root) is a prefix of ``new``, and verifies."""
    if (
        proof.old_size != old_size
        or proof.new_size != new.size
        or proof.old_root != old_root
        or proof.new_root != new.root_hash
    ):
        raise ConsistencyProofError(
            f"the consistency proof is not from tree size {old_size} with the expected root "
            f"to the checkpoint of size {new.size}"
        )
    proof.verify()


def local_consistency(older: Checkpoint, newer: Checkpoint) -> ConsistencyProof | None:
    """The proof between two checkpoints when none need be fetched (same size, or the
    older is empty), verified; None when a proof must come from the node."""
    if older.size not in (0, newer.size):
        return None
    proof = ConsistencyProof(older.size, newer.size, older.root_hash, newer.root_hash, ())
    proof.verify()
    return proof


def checkpoints_in_order(first: Checkpoint, second: Checkpoint) -> tuple[Checkpoint, Checkpoint]:
    return (first, second) if first.size <= second.size else (second, first)


# --- streams of leaves ---------------------------------------------------------------


class LeafSequence:
    """Consecutive leaves from ``start``: each verified alone (``verified_leaf``), at the
    next index, continuing the hash chain of the one before. From index 0 the chain
    starts at 32 zero bytes; from elsewhere the first leaf's ``prev_chain_hash`` is
    taken as given (what ties it down is the caller's business). With ``fold`` a
    ``CompactRange`` folds the leaves into the Merkle root so far (from index 0 only)."""

    def __init__(self, start: int, *, fold: bool = False) -> None:
        self.next_index = start
        self.chain_head: bytes | None = ZERO_HASH if start == 0 else None
        self.tree: CompactRange | None = CompactRange() if fold and start == 0 else None
        self.last_leaf: Leaf | None = None

    def accept(self, entry: log_pb2.Entry) -> Leaf:
        index = self.next_index
        if entry.index != index:
            raise LogIntegrityError(
                f"the node sent index {entry.index} where index {index} was due", index=index
            )
        leaf = verified_leaf(index, bytes(entry.leaf))
        if self.chain_head is not None and leaf.prev_chain_hash != self.chain_head:
            raise LogIntegrityError(f"leaf {index} does not continue the hash chain", index=index)
        self.chain_head = leaf.chain_hash
        if self.tree is not None:
            self.tree.append(leaf.leaf_hash)
        self.next_index = index + 1
        self.last_leaf = leaf
        return leaf


@dataclass(frozen=True)
class RangeAnchor:
    """What a range of leaves [start, end) is checked against: a signed checkpoint and,
    unless the range is the whole tree, the proven hash of its last leaf."""

    checkpoint: SignedCheckpoint
    start: int
    end: int
    last_leaf_hash: bytes | None


class RangeVerifier:
    """Leaves [start, end) of a GetEntries stream, checked as they arrive.

    Every leaf is checked alone and must continue the chain of the one before. At
    the end (``finish``) the range is tied to the signed checkpoint: for the whole
    tree [0, size) the Merkle root of the leaves must be the signed root; otherwise
    the last leaf must be the one an inclusion proof in the checkpoint's tree proved,
    and the chain ties every earlier leaf of the range to it. Until ``finish`` has
    passed, the leaves handed on are provisional.
    """

    def __init__(self, anchor: RangeAnchor) -> None:
        self.anchor = anchor
        self._leaves = LeafSequence(anchor.start, fold=anchor.last_leaf_hash is None)

    def accept(self, entry: log_pb2.Entry) -> LogEntry:
        if entry.index >= self.anchor.end:
            raise LogIntegrityError(
                f"the node sent index {entry.index}, beyond the range's end {self.anchor.end}",
                index=entry.index,
            )
        leaf = self._leaves.accept(entry)
        return LogEntry(leaf.index, leaf, self.anchor.checkpoint)

    def finish(self) -> None:
        anchor, last = self.anchor, self.anchor.end - 1
        if self._leaves.next_index != anchor.end:
            raise LogIntegrityError(
                f"the node ended the stream at index {self._leaves.next_index}, "
                f"before {anchor.end}",
                index=self._leaves.next_index,
            )
        if anchor.last_leaf_hash is not None:
            leaf = self._leaves.last_leaf
            if leaf is None or leaf.leaf_hash != anchor.last_leaf_hash:
                raise LogIntegrityError(
                    f"leaf {last} is not the leaf proven in the checkpoint of size "
                    f"{anchor.checkpoint.checkpoint.size}",
                    index=last,
                )
            return
        tree = self._leaves.tree
        if tree is None or tree.root() != anchor.checkpoint.checkpoint.root_hash:
            raise LogIntegrityError(
                f"the leaves do not hash to the root signed at size {anchor.end}", index=last
            )


@dataclass(frozen=True)
class FollowStep:
    """One Follow message that passed every check: its checkpoint, its leaves (the last
    one carrying the inclusion proof that tied the message to the checkpoint), and
    whether the checkpoint's size is new to this stream."""

    checkpoint: SignedCheckpoint
    entries: tuple[LogEntry, ...]
    new_size: bool


class FollowVerifier:
    """The messages of a Follow stream, each verified whole before any leaf of it is
    handed on, from any start index.

    For every message:

    1. its checkpoint is signed by the log key, and checkpoints never go back (a
       smaller size than one seen before, or a second root for one size, is refused);
    2. its leaves are consecutive, each verified alone (decodes, names its own index,
       its signer keys match its signatures and every signature verifies), and each
       continues the hash chain of the one before; the first continues the last leaf
       of the previous message (from index 0: the 32 zero bytes);
    3. ``last_entry_proof`` is an inclusion proof for the last leaf's hash and index in
       the checkpoint's tree (its size and root), and it verifies.

    So every leaf is bound to a signed root: the last by the proof, each earlier one
    through the chain (leaf i+1 carries chain_hash(i), which commits to leaf i's
    hash), the first one's own ``prev_chain_hash`` included, wherever the follower
    started. A message with no leaves (a checkpoint alone) only moves the checkpoint
    forward. The state kept is constant: the next index, the chain head and the
    newest checkpoint. Whether successive checkpoints are one log is not provable
    from the stream; ``ClientCore.follow_message`` checks each new size against the
    client's saved state (a consistency proof) when it has a state directory.

    There is no running Merkle root from index 0 besides: it could only be checked
    when a message ends exactly at a checkpoint's size, which a node chooses, and
    the proof above already binds every leaf handed on. A whole-tree audit is
    ``entries(0)`` (``RangeVerifier``).
    """

    def __init__(self, log_key: VerifierKey, start_index: int) -> None:
        self._log_key = log_key
        self._leaves = LeafSequence(start_index)
        self._latest: SignedCheckpoint | None = None

    def accept(self, message: ledger_service_pb2.FollowResponse) -> FollowStep:
        """Verify ``message`` (raising ``VerificationError`` on the first failure, which
        ends the stream) and advance past it."""
        signed = signed_checkpoint(bytes(message.checkpoint), self._log_key)
        new_size = self._check_forward(signed)
        leaves = [self._leaves.accept(entry) for entry in message.entries]
        proof = self._prove_last(message, leaves[-1], signed) if leaves else None
        self._latest = signed
        entries = [LogEntry(leaf.index, leaf, signed) for leaf in leaves[:-1]]
        if leaves:
            entries.append(LogEntry(leaves[-1].index, leaves[-1], signed, proof))
        return FollowStep(signed, tuple(entries), new_size)

    def _check_forward(self, signed: SignedCheckpoint) -> bool:
        """Checkpoints never go back; True when ``signed`` has a size not seen before."""
        latest = self._latest
        if latest is None:
            return True
        size, seen = signed.checkpoint.size, latest.checkpoint.size
        if size < seen:
            raise ConsistencyProofError(
                f"the node's checkpoint went back from size {seen} to {size}"
            )
        if size == seen and signed.checkpoint.root_hash != latest.checkpoint.root_hash:
            raise ConsistencyProofError(f"the node signed two different roots for tree size {size}")
        return size != seen

    @staticmethod
    def _prove_last(
        message: ledger_service_pb2.FollowResponse, last: Leaf, signed: SignedCheckpoint
    ) -> InclusionProof:
        """``last_entry_proof`` proves ``last`` in the signed tree."""
        size = signed.checkpoint.size
        if not message.HasField("last_entry_proof"):
            raise InclusionProofError(
                f"the node sent leaves up to {last.index} without a proof that they are in "
                f"the checkpoint of size {size}"
            )
        proof = inclusion_of(message.last_entry_proof)
        if not proof.is_for(last.index, size, signed.checkpoint.root_hash):
            raise InclusionProofError(
                f"the proof sent with leaves up to {last.index} is not for index {last.index} "
                f"in the checkpoint of size {size}"
            )
        proof.verify()
        if proof.leaf_hash != last.leaf_hash:
            raise LogIntegrityError(
                f"leaf {last.index} is not the leaf the checkpoint of size {size} holds at "
                f"index {last.index}",
                index=last.index,
            )
        return proof
