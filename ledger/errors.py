"""The one error tree of Custody.

Every failure a caller can act on is a ``CustodyError`` carrying a stable,
machine-readable ``reason`` (UPPER_SNAKE_CASE).  The gRPC layer maps each
branch to a status code once; nothing else inspects messages.
"""

from __future__ import annotations

from enum import StrEnum


class CustodyError(Exception):
    """Root of every error Custody raises on purpose."""

    reason: str = "CUSTODY_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses take other constructor arguments; rebuild from the attributes so
        # that an error crosses a process boundary (the sequencer's) as itself.
        return (_rebuild_error, (type(self), self.message, dict(self.__dict__)))


def _rebuild_error(
    kind: type[CustodyError], message: str, attributes: dict[str, object]
) -> CustodyError:
    error = kind.__new__(kind)
    Exception.__init__(error, message)
    error.__dict__.update(attributes)
    return error


# --- input that cannot even be parsed ----------------------------------------


class MalformedError(CustodyError):
    """Bytes or text that do not follow the format they claim to be."""

    reason = "MALFORMED"


class MalformedEnvelopeError(MalformedError):
    reason = "MALFORMED_ENVELOPE"


class MalformedLeafError(MalformedError):
    reason = "MALFORMED_LEAF"


class MalformedNoteError(MalformedError):
    reason = "MALFORMED_NOTE"


class MalformedCheckpointError(MalformedError):
    reason = "MALFORMED_CHECKPOINT"


class MalformedKeyError(MalformedError):
    reason = "MALFORMED_KEY"


class MalformedProofError(MalformedError):
    reason = "MALFORMED_PROOF"


class InvalidRangeError(MalformedError):
    """A requested range that is empty or inverted."""

    reason = "INVALID_RANGE"


class MalformedBundleError(MalformedError):
    """A provenance bundle (protobuf or JSON) that does not follow its format."""

    reason = "MALFORMED_BUNDLE"


# --- well-formed input that does not verify -----------------------------------


class VerificationError(CustodyError):
    """Something well formed failed a cryptographic or structural check."""

    reason = "VERIFICATION_FAILED"


class SignatureError(VerificationError):
    reason = "BAD_SIGNATURE"


class UnknownKeyError(VerificationError):
    reason = "UNKNOWN_KEY"


class NoteVerificationError(VerificationError):
    """A signed note carries no valid signature by a trusted key, or a bad one."""

    reason = "NOTE_NOT_VERIFIED"


class InclusionProofError(VerificationError):
    reason = "BAD_INCLUSION_PROOF"


class ConsistencyProofError(VerificationError):
    reason = "BAD_CONSISTENCY_PROOF"


class BundleIncompleteError(VerificationError):
    """A bundle leaves out a leaf its lot histories link to; ``index`` names it if known."""

    reason = "BUNDLE_INCOMPLETE"

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class LogIntegrityError(VerificationError):
    """Stored log data contradicts itself; ``index`` names the first bad leaf."""

    reason = "LOG_INTEGRITY"

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


# --- admission: a valid entry the log refuses to sequence ---------------------


class AdmissionError(CustodyError):
    """An entry was refused before it got an index; nothing was changed."""

    reason = "ADMISSION_REFUSED"


class EntryTooLargeError(AdmissionError):
    reason = "ENTRY_TOO_LARGE"


class UnsignedEntryError(AdmissionError):
    reason = "UNSIGNED_ENTRY"


class Rule(StrEnum):
    """Reason codes of the domain admission rules (DESIGN.md 4.1).

    Every refusal by the state machine carries exactly one of these; clients
    branch on the code, people read the message.
    """

    # The payload itself
    UNKNOWN_PAYLOAD_TYPE = "UNKNOWN_PAYLOAD_TYPE"
    INVALID_PAYLOAD = "INVALID_PAYLOAD"
    # Who signs, who records
    NO_GENESIS = "NO_GENESIS"
    GENESIS_NOT_FIRST = "GENESIS_NOT_FIRST"
    UNKNOWN_PARTNER = "UNKNOWN_PARTNER"
    KEY_NOT_VALID = "KEY_NOT_VALID"
    IDENTITY_MISMATCH = "IDENTITY_MISMATCH"
    ROLE_REQUIRED = "ROLE_REQUIRED"
    THRESHOLD_NOT_MET = "THRESHOLD_NOT_MET"
    THRESHOLD_UNREACHABLE = "THRESHOLD_UNREACHABLE"
    # Identifiers
    DUPLICATE_EVENT_ID = "DUPLICATE_EVENT_ID"
    PARTNER_EXISTS = "PARTNER_EXISTS"
    KEY_EXISTS = "KEY_EXISTS"
    FACILITY_EXISTS = "FACILITY_EXISTS"
    LOT_EXISTS = "LOT_EXISTS"
    # Facilities
    UNKNOWN_FACILITY = "UNKNOWN_FACILITY"
    FACILITY_NOT_OWNED = "FACILITY_NOT_OWNED"
    WRONG_FACILITY_TYPE = "WRONG_FACILITY_TYPE"
    # Lots and custody
    UNKNOWN_LOT = "UNKNOWN_LOT"
    LOT_NOT_HELD = "LOT_NOT_HELD"
    LOT_IN_TRANSIT = "LOT_IN_TRANSIT"
    INSUFFICIENT_QUANTITY = "INSUFFICIENT_QUANTITY"
    MASS_MISMATCH = "MASS_MISMATCH"
    MASS_BALANCE_EXCEEDED = "MASS_BALANCE_EXCEEDED"
    UNKNOWN_DISPATCH = "UNKNOWN_DISPATCH"
    DISPATCH_NOT_OPEN = "DISPATCH_NOT_OPEN"
    NOT_ADDRESSEE = "NOT_ADDRESSEE"
    LOT_MISMATCH = "LOT_MISMATCH"
    # Time
    EVENT_IN_FUTURE = "EVENT_IN_FUTURE"
    # Corrections
    UNKNOWN_EVENT = "UNKNOWN_EVENT"
    NOT_EVENT_OWNER = "NOT_EVENT_OWNER"
    ALREADY_CORRECTED = "ALREADY_CORRECTED"
    CORRECTION_NOT_APPLICABLE = "CORRECTION_NOT_APPLICABLE"


class AdmissionRuleError(AdmissionError):
    """An entry broke a domain admission rule; ``reason`` is its ``Rule`` code."""

    def __init__(self, rule: Rule, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.reason = rule.value


# --- who is calling -------------------------------------------------------------


class AccessError(CustodyError):
    """The caller may not make this request; nothing was changed."""

    reason = "ACCESS_DENIED"


class UnauthenticatedError(AccessError):
    """The caller presented no identity the node accepts (no partner certificate)."""

    reason = "UNAUTHENTICATED"


class PermissionDeniedError(AccessError):
    """The caller is known but may not do this (not an admitted partner, say)."""

    reason = "PERMISSION_DENIED"


class NotAPartnerError(PermissionDeniedError):
    """The caller's certificate names no admitted partner of this ledger."""

    reason = "NOT_A_PARTNER"


# --- storage and local state ---------------------------------------------------


class StorageError(CustodyError):
    reason = "STORAGE_ERROR"


class LogNotInitialisedError(StorageError):
    reason = "LOG_NOT_INITIALISED"


class LogAlreadyInitialisedError(StorageError):
    reason = "LOG_ALREADY_INITIALISED"


class NotFoundError(StorageError):
    reason = "NOT_FOUND"


class OutOfRangeError(StorageError):
    """A tree size or index beyond what the log holds."""

    reason = "OUT_OF_RANGE"


class StateMismatchError(StorageError):
    """Start-up found storage disagreeing with the signed checkpoint or itself."""

    reason = "STATE_MISMATCH"


class ConfigurationError(CustodyError):
    """A setting, option or local file the user supplied is unusable."""

    reason = "CONFIGURATION"


class KeyFileError(CustodyError):
    """A key file is missing, unreadable, wrongly protected or wrongly encrypted."""

    reason = "KEY_FILE"


class InternalError(CustodyError):
    """A fault of this program, not of its input; the details are logged, not sent."""

    reason = "INTERNAL"


class TooManyStreamsError(CustodyError):
    """A partner has as many long-lived streams open as the node allows it."""

    reason = "TOO_MANY_STREAMS"


class BundleTooLargeError(CustodyError):
    """A provenance bundle larger than the node sends in one message."""

    reason = "BUNDLE_TOO_LARGE"


class UnavailableError(CustodyError):
    """The service cannot take the request now (shutting down, overloaded); retry later."""

    reason = "UNAVAILABLE"


class RemoteError(CustodyError):
    """A node answered with a status no other branch of this tree describes.

    ``status_code`` is the gRPC status code's name (``INTERNAL``, ``UNKNOWN``, ...);
    ``reason`` is the node's ErrorInfo reason when it sent one.
    """

    reason = "REMOTE_ERROR"

    def __init__(self, message: str, *, status_code: str) -> None:
        super().__init__(message)
        self.status_code = status_code
