"""The one error tree of Custody.

Every failure a caller can act on is a ``CustodyError`` carrying a stable,
machine-readable ``reason`` (UPPER_SNAKE_CASE).  The gRPC layer maps each
branch to a status code once; nothing else inspects messages.
"""

from __future__ import annotations

from typing import ClassVar


class CustodyError(Exception):
    """Root of every error Custody raises on purpose."""

    reason: ClassVar[str] = "CUSTODY_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


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


class UnavailableError(CustodyError):
    """The service cannot take the request now (shutting down, overloaded); retry later."""

    reason = "UNAVAILABLE"
