"""What the SDK hands back. Receipts, entries, proofs and bundles in here were verified
before they were returned (``LogEntry`` from ``entries``: provisional until the range
ends); ``TraceResult.composition`` is the node's unverified figure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from custody.v1 import provenance_service_pb2
from ledger.bundle import ProvenanceBundle, VerifiedBundle
from ledger.checkpoint import SignedCheckpoint
from ledger.dsse import Envelope
from ledger.errors import CustodyError
from ledger.leaf import Leaf
from ledger.merkle import ConsistencyProof, InclusionProof
from ledger.receipts import VerifiedReceipt

SubmitItem = Envelope | tuple[Envelope, Sequence[bytes]]
"""An envelope, or an envelope with the raw public keys of its signatures."""


@dataclass(frozen=True)
class SubmitOutcome:
    """The answer to one entry of ``submit_many``: a verified receipt or the refusal.

    ``position`` is the entry's 0-based position in the input; outcomes arrive in
    the order the node answers them, which need not be the input order.
    """

    position: int
    envelope: Envelope
    receipt: VerifiedReceipt | None
    error: CustodyError | None

    def __post_init__(self) -> None:
        if (self.receipt is None) == (self.error is None):
            raise ValueError("an outcome holds a receipt or an error, not both or neither")

    @property
    def ok(self) -> bool:
        """The entry is in the log (appended now, or earlier: see ``duplicate``)."""
        return self.receipt is not None

    @property
    def duplicate(self) -> bool:
        """The entry was already logged; ``receipt`` is the original one."""
        return self.receipt is not None and self.receipt.receipt.duplicate


@dataclass(frozen=True)
class LogEntry:
    """A leaf that decoded, names its index, carries valid signatures, and is tied to
    ``checkpoint``: by ``inclusion`` (``entry``; the last leaf of a ``follow`` message),
    or by the hash chain to a leaf so proven or to the Merkle root of a whole range."""

    index: int
    leaf: Leaf
    checkpoint: SignedCheckpoint
    inclusion: InclusionProof | None = None

    @property
    def raw(self) -> bytes:
        """The leaf bytes exactly as the log stored them."""
        return self.leaf.raw

    @property
    def leaf_hash(self) -> bytes:
        return self.leaf.leaf_hash

    @property
    def chain_hash(self) -> bytes:
        return self.leaf.chain_hash


@dataclass(frozen=True)
class VerifiedInclusion:
    """An inclusion proof that verified, and the signed checkpoint its root is tied to.

    When the log signed a checkpoint at the proof's tree size, ``checkpoint`` is that
    one and ``bridge`` is None. Otherwise ``checkpoint`` is the latest signed one and
    ``bridge`` the verified consistency proof showing the proof's root is a prefix of it.
    """

    proof: InclusionProof
    checkpoint: SignedCheckpoint
    bridge: ConsistencyProof | None = None


@dataclass(frozen=True)
class VerifiedConsistency:
    """A consistency proof that verified; ``checkpoint`` and ``bridge`` tie its new root
    to a signed checkpoint as in ``VerifiedInclusion``."""

    proof: ConsistencyProof
    checkpoint: SignedCheckpoint
    bridge: ConsistencyProof | None = None


@dataclass(frozen=True)
class TraceResult:
    """A lot's provenance bundle, verified offline-style against the log key, and the
    node's origin composition per element (the node's figures: an auditor recomputes them)."""

    bundle: ProvenanceBundle
    verified: VerifiedBundle
    composition: tuple[provenance_service_pb2.ElementOrigins, ...]
