"""Log data to and from the API's protobuf messages (``custody.v1`` log.proto), and the
names both ends of the API agree on (error domain, reasons, metadata keys).

The server and the partner SDK both go through these functions, so the two
ends agree on the wire form. Decoding is strict: a message that does not
carry what its type promises raises ``MalformedError`` (a client's bad input),
never a bare protobuf or Python error.
"""

from __future__ import annotations

from custody.v1 import log_pb2
from ledger.errors import MalformedProofError
from ledger.merkle import HASH_SIZE, ConsistencyProof, InclusionProof
from ledger.receipts import Receipt

ERROR_DOMAIN = "custody.dev"
"""``google.rpc.ErrorInfo.domain`` of every refusal a Custody node sends."""
ALREADY_LOGGED = "ENTRY_ALREADY_LOGGED"
"""ErrorInfo reason of ALREADY_EXISTS: this very entry is logged. The detail's metadata
carries its ``index``; the original ``AppendReceipt`` follows as a second detail when it
fits in the trailers (entries of a few KiB); otherwise the client fetches the leaf and
its inclusion proof by that index."""
DEV_PARTNER_METADATA = "custody-partner"
"""Metadata naming the caller to a node in insecure development mode (no TLS)."""
REQUEST_ID_METADATA = "x-request-id"
"""Metadata carrying a request id; the node echoes it in the trailing metadata."""

MAX_INCLUSION_HASHES = 63
"""An RFC 9162 audit path in a tree of at most 2^63 leaves has at most 63 hashes."""
MAX_CONSISTENCY_HASHES = 2 * MAX_INCLUSION_HASHES


def _hash(value: bytes, name: str) -> bytes:
    if len(value) != HASH_SIZE:
        raise MalformedProofError(f"{name} must be {HASH_SIZE} bytes, got {len(value)}")
    return bytes(value)


def _path(values: list[bytes], name: str, limit: int) -> tuple[bytes, ...]:
    if len(values) > limit:
        raise MalformedProofError(f"{name} has {len(values)} hashes; at most {limit}")
    return tuple(_hash(value, name) for value in values)


def inclusion_to_proto(proof: InclusionProof) -> log_pb2.InclusionProof:
    return log_pb2.InclusionProof(
        index=proof.index,
        tree_size=proof.tree_size,
        leaf_hash=proof.leaf_hash,
        root=proof.root,
        hashes=list(proof.hashes),
    )


def inclusion_from_proto(message: log_pb2.InclusionProof) -> InclusionProof:
    return InclusionProof(
        index=message.index,
        tree_size=message.tree_size,
        leaf_hash=_hash(message.leaf_hash, "leaf_hash"),
        root=_hash(message.root, "root"),
        hashes=_path(list(message.hashes), "hashes", MAX_INCLUSION_HASHES),
    )


def consistency_to_proto(proof: ConsistencyProof) -> log_pb2.ConsistencyProof:
    return log_pb2.ConsistencyProof(
        old_size=proof.old_size,
        new_size=proof.new_size,
        old_root=proof.old_root,
        new_root=proof.new_root,
        hashes=list(proof.hashes),
    )


def consistency_from_proto(message: log_pb2.ConsistencyProof) -> ConsistencyProof:
    return ConsistencyProof(
        old_size=message.old_size,
        new_size=message.new_size,
        old_root=_hash(message.old_root, "old_root"),
        new_root=_hash(message.new_root, "new_root"),
        hashes=_path(list(message.hashes), "hashes", MAX_CONSISTENCY_HASHES),
    )


def receipt_to_proto(receipt: Receipt) -> log_pb2.AppendReceipt:
    return log_pb2.AppendReceipt(
        index=receipt.index,
        leaf=receipt.leaf,
        checkpoint=receipt.checkpoint,
        inclusion_proof=inclusion_to_proto(receipt.inclusion),
    )


def receipt_from_proto(message: log_pb2.AppendReceipt, *, duplicate: bool = False) -> Receipt:
    """The receipt as sent; ``ledger.receipts.verify_receipt`` decides whether it holds."""
    if not message.HasField("inclusion_proof"):
        raise MalformedProofError("receipt carries no inclusion proof")
    return Receipt(
        index=message.index,
        leaf=bytes(message.leaf),
        checkpoint=bytes(message.checkpoint),
        inclusion=inclusion_from_proto(message.inclusion_proof),
        duplicate=duplicate,
    )
