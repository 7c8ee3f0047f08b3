"""The one mapping from Custody's error tree to gRPC status codes.

Every refusal leaves the node as a status code plus a ``google.rpc.ErrorInfo``
detail (domain ``custody.dev``) whose ``reason`` is the error's stable code,
for example ``KEY_NOT_VALID``. Anything a client sent that the node refuses
maps to a client-side code (INVALID_ARGUMENT, PERMISSION_DENIED,
FAILED_PRECONDITION, ...); INTERNAL is kept for the node's own faults.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from custody.v1 import ledger_service_pb2
from ledger.errors import (
    AccessError,
    AdmissionError,
    AdmissionRuleError,
    BundleTooLargeError,
    CustodyError,
    InternalError,
    LogIntegrityError,
    MalformedError,
    NotFoundError,
    OutOfRangeError,
    Rule,
    StateMismatchError,
    StorageError,
    TooManyStreamsError,
    UnauthenticatedError,
    UnavailableError,
    VerificationError,
)
from ledger.receipts import Receipt
from ledger.wire import ALREADY_LOGGED, ERROR_DOMAIN, receipt_to_proto

MAX_STATUS_MESSAGE_BYTES = 512
"""Status messages travel in trailers (twice: grpc-message and the details), and they
may quote what the client sent; unbounded, a long id would overflow the client's
metadata limit (8 KiB by default) and turn the refusal into RESOURCE_EXHAUSTED."""
MAX_RECEIPT_DETAIL_BYTES = 4096
"""A receipt larger than this is left out of ALREADY_EXISTS (only its index is sent): with
the message and the ErrorInfo it must stay under the client's 8 KiB metadata limit."""

# Rules about who may write what: the caller lacks the right, whatever the log's state.
_PERMISSION_RULES = frozenset(
    {
        Rule.IDENTITY_MISMATCH,
        Rule.KEY_NOT_VALID,
        Rule.ROLE_REQUIRED,
        Rule.THRESHOLD_NOT_MET,
        Rule.NOT_EVENT_OWNER,
        Rule.NOT_ADDRESSEE,
        Rule.FACILITY_NOT_OWNED,
    }
)
# Rules about the entry itself, independent of any state.
_ARGUMENT_RULES = frozenset({Rule.INVALID_PAYLOAD, Rule.UNKNOWN_PAYLOAD_TYPE})


def status_code_for(error: CustodyError) -> grpc.StatusCode:  # noqa: PLR0911 (one table)
    """The gRPC status code of a Custody error; the one place this is decided."""
    if isinstance(error, AdmissionRuleError):
        if error.rule in _PERMISSION_RULES:
            return grpc.StatusCode.PERMISSION_DENIED
        if error.rule in _ARGUMENT_RULES:
            return grpc.StatusCode.INVALID_ARGUMENT
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(error, StateMismatchError | LogIntegrityError | InternalError):
        return grpc.StatusCode.INTERNAL  # the node's storage contradicts itself, or a bug
    if isinstance(error, UnauthenticatedError):
        return grpc.StatusCode.UNAUTHENTICATED
    if isinstance(error, AccessError):
        return grpc.StatusCode.PERMISSION_DENIED
    if isinstance(error, MalformedError | VerificationError | AdmissionError):
        # A bad envelope, signature, size or proof the client sent.
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(error, NotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(error, OutOfRangeError):
        return grpc.StatusCode.OUT_OF_RANGE
    if isinstance(error, UnavailableError):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(error, BundleTooLargeError | TooManyStreamsError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(error, StorageError):
        return grpc.StatusCode.UNAVAILABLE  # the database failed; the request may be retried
    return grpc.StatusCode.INTERNAL


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def error_info(reason: str, metadata: Mapping[str, str] | None = None) -> any_pb2.Any:
    return _packed(
        error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata or {})
    )


def _bounded(message: str) -> str:
    encoded = message.encode("utf-8")
    if len(encoded) <= MAX_STATUS_MESSAGE_BYTES:
        return message
    return encoded[: MAX_STATUS_MESSAGE_BYTES - 3].decode("utf-8", "ignore") + "\u2026"


def _status(code: int, message: str, details: list[any_pb2.Any]) -> grpc.Status:
    status: grpc.Status = rpc_status.to_status(
        status_pb2.Status(code=code, message=_bounded(message), details=details)
    )
    return status


def grpc_status(error: CustodyError, request_id: str | None = None) -> grpc.Status:
    """The status (code, message, ErrorInfo detail) a refused call ends with; with
    ``request_id``, the ErrorInfo names it (for the node's own faults, so that the
    operator can find them in its log)."""
    metadata = {"request_id": request_id} if request_id is not None else None
    return _status(
        status_code_for(error).value[0], str(error), [error_info(error.reason, metadata)]
    )


def _already_logged_message(receipt: Receipt) -> str:
    return f"this entry is already in the log at index {receipt.index}"


def already_logged_status(receipt: Receipt) -> grpc.Status:
    """ALREADY_EXISTS: resubmitting a logged entry is idempotent. The original receipt
    rides along when it fits in the trailers; its index always does."""
    details = [error_info(ALREADY_LOGGED, {"index": str(receipt.index)})]
    original = receipt_to_proto(receipt)
    if original.ByteSize() <= MAX_RECEIPT_DETAIL_BYTES:
        details.append(_packed(original))
    return _status(code_pb2.ALREADY_EXISTS, _already_logged_message(receipt), details)


def append_refusal(error: CustodyError) -> ledger_service_pb2.AppendRefusal:
    """The refusal of one AppendStream entry: what a unary Append would have ended with."""
    return ledger_service_pb2.AppendRefusal(
        code=status_code_for(error).value[0], reason=error.reason, message=_bounded(str(error))
    )


def already_logged_refusal(receipt: Receipt) -> ledger_service_pb2.AppendRefusal:
    """ALREADY_EXISTS on a stream: the response body has room for the whole receipt."""
    return ledger_service_pb2.AppendRefusal(
        code=code_pb2.ALREADY_EXISTS,
        reason=ALREADY_LOGGED,
        message=_already_logged_message(receipt),
        original_receipt=receipt_to_proto(receipt),
    )


def internal_status(request_id: str) -> grpc.Status:
    """For the node's own unexpected faults: no internals leak, the request id is logged."""
    return _status(
        code_pb2.INTERNAL,
        f"internal error (request {request_id}); the node logged the details",
        [error_info("INTERNAL", {"request_id": request_id})],
    )
