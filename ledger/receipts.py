"""Append receipts and their verification (what a submitter checks before trusting one)."""

from __future__ import annotations

from dataclasses import dataclass

from ledger import merkle
from ledger.checkpoint import SignedCheckpoint, open_checkpoint
from ledger.errors import InclusionProofError, VerificationError
from ledger.leaf import Leaf, decode_leaf, verify_leaf_signatures
from ledger.merkle import InclusionProof
from ledger.note import VerifierKey


@dataclass(frozen=True)
class Receipt:
    """Proof that an entry is in the log: its leaf, a checkpoint and an inclusion proof."""

    index: int
    leaf: bytes
    checkpoint: bytes
    inclusion: InclusionProof
    duplicate: bool = False


@dataclass(frozen=True)
class VerifiedReceipt:
    receipt: Receipt
    leaf: Leaf
    checkpoint: SignedCheckpoint


def verify_receipt(
    receipt: Receipt,
    log_key: VerifierKey,
    entry_digest: bytes,
    *,
    opened: SignedCheckpoint | None = None,
) -> VerifiedReceipt:
    """Check a receipt for the entry with ``entry_digest``.

    1. The checkpoint is signed by the log key (or is, byte for byte, ``opened``: a
       note already verified under that key, as the receipts of one batch share one).
    2. The leaf decodes, names the receipt's index and carries the submitted
       entry (same digest of its PAE bytes), and its signatures verify under the
       signer keys it carries (what every auditor of the leaf will check).
    3. The inclusion proof is for that leaf's hash, index and the
       checkpoint's size and root, and it verifies.
    """
    if opened is not None and opened.raw == receipt.checkpoint:
        signed = opened
    else:
        signed = open_checkpoint(receipt.checkpoint, log_key)
    leaf = decode_leaf(receipt.leaf)
    if leaf.index != receipt.index:
        raise VerificationError(f"receipt for index {receipt.index} carries leaf {leaf.index}")
    if leaf.envelope.digest() != entry_digest:
        raise VerificationError("receipt's leaf does not carry the submitted entry")
    verify_leaf_signatures(leaf)
    proof = receipt.inclusion
    checkpoint = signed.checkpoint
    if proof.leaf_hash != merkle.leaf_hash(receipt.leaf) or not proof.is_for(
        receipt.index, checkpoint.size, checkpoint.root_hash
    ):
        raise InclusionProofError("receipt's inclusion proof is not for its leaf and checkpoint")
    proof.verify()
    return VerifiedReceipt(receipt=receipt, leaf=leaf, checkpoint=signed)
