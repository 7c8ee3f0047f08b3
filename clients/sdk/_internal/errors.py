"""A node's refusals, translated into Custody's one error tree (``ledger.errors``).

The node sends a status code plus a ``google.rpc.ErrorInfo`` detail (domain
``ledger.wire.ERROR_DOMAIN``) whose reason is a stable code; an AppendStream
refusal carries the same code and reason in its message. Both go through
``error_for`` so a caller sees the same exception whichever way an entry was
submitted. The server's reason is kept on the instance (``error.reason``).

The reason decides before the code where it names the node's own fault
(``LOG_INTEGRITY``, ``STATE_MISMATCH``): whatever the code, that is a
``RemoteError``, never a ``MalformedError`` (which always means the caller's input).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import cast

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from custody.v1 import ledger_service_pb2, log_pb2
from ledger.errors import (
    AdmissionError,
    AdmissionRuleError,
    CustodyError,
    EntryTooLargeError,
    InvalidRangeError,
    LogIntegrityError,
    MalformedBundleError,
    MalformedCheckpointError,
    MalformedEnvelopeError,
    MalformedError,
    MalformedKeyError,
    MalformedLeafError,
    MalformedNoteError,
    MalformedProofError,
    NotAPartnerError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    RemoteError,
    Rule,
    StateMismatchError,
    UnauthenticatedError,
    UnavailableError,
    UnsignedEntryError,
)
from ledger.wire import ALREADY_LOGGED, ERROR_DOMAIN

_RULES = frozenset(rule.value for rule in Rule)
# Reasons that report the node's own fault (its storage contradicts itself or its
# signed state), whatever status code carries them: never the caller's input.
_NODE_FAULTS = frozenset({LogIntegrityError.reason, StateMismatchError.reason})
_INDEX = re.compile(r"[0-9]{1,19}")
_CODES_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}
# INVALID_ARGUMENT reasons that name a precise class of the tree; any other reason
# under that code (BAD_SIGNATURE, UNKNOWN_KEY, ...) is the client's malformed input.
_ARGUMENT_CLASSES: dict[str, type[MalformedError] | type[AdmissionError]] = {
    cls.reason: cls
    for cls in (
        MalformedEnvelopeError,
        MalformedLeafError,
        MalformedNoteError,
        MalformedCheckpointError,
        MalformedKeyError,
        MalformedProofError,
        MalformedBundleError,
        InvalidRangeError,
        EntryTooLargeError,
        UnsignedEntryError,
        AdmissionError,
    )
}


class AlreadyLoggedError(RemoteError):
    """ALREADY_EXISTS: the entry is in the log already. ``submit`` turns it into the
    verified original receipt: the one attached (``original_receipt``, sent when it
    is small), else one built from the leaf and an inclusion proof fetched by
    ``index`` (the ErrorInfo's ``index`` metadata). It never reaches the caller."""

    def __init__(
        self,
        message: str,
        original_receipt: log_pb2.AppendReceipt | None,
        index: int | None = None,
    ) -> None:
        super().__init__(message, status_code=grpc.StatusCode.ALREADY_EXISTS.name)
        self.original_receipt = original_receipt
        self.index = index


@dataclass(frozen=True)
class RemoteStatus:
    """What a node said when it refused: code, message, ErrorInfo reason, and for an
    entry already logged the original receipt (if attached) and its index (if sent)."""

    code: grpc.StatusCode
    message: str
    reason: str | None
    original_receipt: log_pb2.AppendReceipt | None = None
    logged_index: int | None = None


def _logged_index(value: str | None) -> int | None:
    """The ``index`` metadata of ENTRY_ALREADY_LOGGED, if it is a decimal index."""
    if value is None or _INDEX.fullmatch(value) is None:
        return None
    return int(value)


def status_of_rpc_error(error: grpc.RpcError) -> RemoteStatus:
    """Read a failed call (sync or asyncio): its code, message and rich status details."""
    if not isinstance(error, grpc.Call | grpc.aio.AioRpcError):
        return RemoteStatus(grpc.StatusCode.UNKNOWN, str(error), None)
    status = RemoteStatus(error.code(), error.details() or str(error), None)
    try:
        # An AioRpcError answers code(), details() and trailing_metadata() synchronously,
        # like a grpc.Call, which is all from_call reads.
        rich = rpc_status.from_call(cast(grpc.Call, error))
    except ValueError:
        return status  # details that contradict the status line are ignored, not trusted
    if rich is None:
        return status
    reason: str | None = None
    index: int | None = None
    receipt: log_pb2.AppendReceipt | None = None
    for detail in rich.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == ERROR_DOMAIN and reason is None:
                reason = str(info.reason)
                if reason == ALREADY_LOGGED:
                    index = _logged_index(info.metadata.get("index"))
        elif detail.Is(log_pb2.AppendReceipt.DESCRIPTOR):
            receipt = log_pb2.AppendReceipt()
            detail.Unpack(receipt)
    return RemoteStatus(status.code, status.message, reason, receipt, index)


def status_of_refusal(refusal: ledger_service_pb2.AppendRefusal) -> RemoteStatus:
    """An AppendStream refusal: the status a unary Append would have failed with. It has
    no field for a logged entry's index: ``submit_many`` asks a unary Append for it."""
    return RemoteStatus(
        _CODES_BY_VALUE.get(refusal.code, grpc.StatusCode.UNKNOWN),
        refusal.message,
        refusal.reason or None,
        refusal.original_receipt if refusal.HasField("original_receipt") else None,
    )


def error_for(status: RemoteStatus) -> CustodyError:
    """The Custody error for a node's refusal, carrying the node's reason."""
    code, reason, message = status.code, status.reason, status.message
    error: CustodyError
    if reason in _RULES:
        return AdmissionRuleError(Rule(reason), message)
    if reason in _NODE_FAULTS:
        error = RemoteError(message, status_code=code.name)
    elif code == grpc.StatusCode.ALREADY_EXISTS or reason == ALREADY_LOGGED:
        error = AlreadyLoggedError(message, status.original_receipt, status.logged_index)
    elif code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        error = UnavailableError(message)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            error.reason = code.name
    elif code == grpc.StatusCode.UNAUTHENTICATED:
        error = UnauthenticatedError(message)
    elif code == grpc.StatusCode.PERMISSION_DENIED:
        is_stranger = reason == NotAPartnerError.reason
        error = (NotAPartnerError if is_stranger else PermissionDeniedError)(message)
    elif code == grpc.StatusCode.NOT_FOUND:
        error = NotFoundError(message)
    elif code == grpc.StatusCode.OUT_OF_RANGE:
        error = OutOfRangeError(message)
    elif code == grpc.StatusCode.INVALID_ARGUMENT:
        # MALFORMED (a request that does not decode), INVALID_RANGE (an empty or
        # inverted GetEntries range), BAD_SIGNATURE, ... : MalformedError with the reason.
        error = _ARGUMENT_CLASSES.get(reason or "", MalformedError)(message)
    else:
        error = RemoteError(message, status_code=code.name)
    if reason:
        error.reason = reason
    return error


def error_from_rpc(error: grpc.RpcError) -> CustodyError:
    return error_for(status_of_rpc_error(error))
