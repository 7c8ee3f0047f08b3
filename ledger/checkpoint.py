"""Checkpoints (c2sp.org/tlog-checkpoint) and witness cosignatures (c2sp.org/tlog-cosignature).

A checkpoint is a signed note whose text is the log's origin, tree size and root
hash (DESIGN 3.4); witnesses add timestamped Ed25519 cosignature/v1 lines (3.5).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.errors import (
    MalformedCheckpointError,
    MalformedKeyError,
    MalformedNoteError,
    NoteVerificationError,
)
from ledger.keys import public_key_bytes, public_key_from_bytes
from ledger.note import (
    SIG_TYPE_ED25519,
    Note,
    NoteSignature,
    NoteSigner,
    Verifier,
    VerifierKey,
    check_key_name,
    decode_base64,
    open_note,
    sign_note,
)
from ledger.note import key_id as note_key_id

SIG_TYPE_COSIGNATURE_V1 = 0x04

_HASH_SIZE = 32
_ED25519_KEY_SIZE = 32
_ED25519_SIG_SIZE = 64
_TIMESTAMP_SIZE = 8
# Tree sizes and timestamps fit a signed 64-bit integer (storage columns, tlog-cosignature).
_MAX_INT63 = 2**63 - 1
_SIZE_RE = re.compile(r"0|[1-9][0-9]*")
_CONTROL_RE = re.compile(r"[\x00-\x1f]")


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, size and root hash, plus opaque extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise MalformedCheckpointError("tree size must be an int")
        if not 0 <= self.size <= _MAX_INT63:
            raise MalformedCheckpointError(f"tree size {self.size} out of range")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != _HASH_SIZE:
            raise MalformedCheckpointError("root hash must be 32 bytes")
        if not isinstance(self.extensions, tuple):
            raise MalformedCheckpointError("extensions must be a tuple of lines")
        for line in self.extensions:
            _check_line(line, "extension line")

    def body(self) -> bytes:
        """The note text: origin, size, base64 root and any extension lines, each ended by LF."""
        lines = [self.origin, str(self.size), _b64(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines).encode("utf-8")

    @classmethod
    def from_body(cls, text: bytes) -> Checkpoint:
        """Parse a checkpoint note text strictly; ``from_body(b).body() == b``."""
        if not isinstance(text, bytes):
            raise MalformedCheckpointError("a checkpoint body is bytes")
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedCheckpointError("checkpoint is not valid UTF-8") from None
        if not decoded.endswith("\n"):
            raise MalformedCheckpointError("checkpoint does not end in a newline")
        lines = decoded[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedCheckpointError("checkpoint needs origin, size and root hash lines")
        origin, size_text, root_text, *extensions = lines
        if not _SIZE_RE.fullmatch(size_text):
            raise MalformedCheckpointError(f"tree size {size_text!r} is not canonical decimal")
        try:
            root_hash = decode_base64(root_text)
        except ValueError as exc:
            raise MalformedCheckpointError(f"root hash: {exc}") from None
        return cls(origin, int(size_text), root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> bytes:
    """The checkpoint as a note signed by the log key, whose name is the origin (DESIGN 3.4)."""
    if signer.name != checkpoint.origin:
        raise MalformedCheckpointError(
            f"log key name {signer.name!r} differs from origin {checkpoint.origin!r}"
        )
    return sign_note(checkpoint.body(), [signer])


@dataclass(frozen=True)
class SignedCheckpoint:
    """A verified checkpoint, its note, and the note bytes exactly as received."""

    checkpoint: Checkpoint
    note: Note
    raw: bytes


def open_checkpoint(
    data: bytes, log_key: VerifierKey, *, witnesses: Sequence[Verifier] = ()
) -> SignedCheckpoint:
    """Verify a checkpoint note signed by ``log_key``; known witnesses' lines must verify too."""
    # 1. The log key signs plain Ed25519 note signatures.
    if log_key.sig_type != SIG_TYPE_ED25519:
        raise MalformedKeyError("the log key must have signature type 0x01 (Ed25519)")
    # 2. Open the note: unknown lines ignored, a bad line by any known key rejects.
    note, verified = open_note(data, [log_key, *witnesses])
    # 3. The log's own signature must be among the verified ones.
    log_ident = (log_key.name, log_key.key_id)
    if log_ident not in {(v.name, v.key_id) for v in verified}:
        raise NoteVerificationError(f"checkpoint is not signed by the log key {log_key.name}")
    # 4. The text is a well-formed checkpoint, with no extension lines (DESIGN 3.4).
    checkpoint = Checkpoint.from_body(note.text)
    if checkpoint.extensions:
        raise MalformedCheckpointError("a Custody checkpoint carries no extension lines")
    # 5. It is this log's checkpoint: the origin is the log key's name.
    if checkpoint.origin != log_key.name:
        raise NoteVerificationError(
            f"checkpoint origin {checkpoint.origin!r} is not the log {log_key.name!r}"
        )
    return SignedCheckpoint(checkpoint=checkpoint, note=note, raw=data)


def cosigned_message(checkpoint_body: bytes, timestamp: int) -> bytes:
    """The bytes a cosignature/v1 signs: header line, time line, checkpoint body."""
    if not 0 <= timestamp <= _MAX_INT63:
        raise ValueError(f"cosignature timestamp {timestamp} out of range")
    return b"cosignature/v1\ntime %d\n" % timestamp + checkpoint_body


@dataclass(frozen=True)
class CosignatureVerifier:
    """Verifies a witness's Ed25519 cosignature/v1 lines (signature type 0x04)."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != _ED25519_KEY_SIZE:
            raise MalformedKeyError("an Ed25519 public key is 32 bytes")

    @classmethod
    def parse(cls, vkey: str) -> CosignatureVerifier:
        """Parse a type-0x04 verifier key ``<name>+<hex id>+<base64(0x04 || key)>``."""
        parsed = VerifierKey.parse(vkey)
        if parsed.sig_type != SIG_TYPE_COSIGNATURE_V1:
            raise MalformedKeyError(
                f"verifier key {parsed.name} has type 0x{parsed.sig_type:02x}, not 0x04"
            )
        return cls(parsed.name, parsed.public_key)

    @property
    def key_id(self) -> bytes:
        return note_key_id(self.name, SIG_TYPE_COSIGNATURE_V1, self.public_key)

    def verifier_key(self) -> VerifierKey:
        return VerifierKey(self.name, self.public_key, sig_type=SIG_TYPE_COSIGNATURE_V1)

    def __str__(self) -> str:
        return str(self.verifier_key())

    def timestamp(self, signature: bytes) -> int:
        """The cosignature's time, in Unix seconds."""
        if len(signature) != _TIMESTAMP_SIZE + _ED25519_SIG_SIZE:
            raise MalformedNoteError("a cosignature/v1 signature is 72 bytes")
        return int.from_bytes(signature[:_TIMESTAMP_SIZE], "big")

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != _TIMESTAMP_SIZE + _ED25519_SIG_SIZE:
            return False
        timestamp = self.timestamp(signature)
        if timestamp > _MAX_INT63:
            return False  # the spec caps timestamps at 2^63 - 1
        try:
            public_key_from_bytes(self.public_key).verify(
                signature[_TIMESTAMP_SIZE:], cosigned_message(text, timestamp)
            )
        except InvalidSignature:
            return False
        return True


class CosignatureSigner:
    """A witness key producing cosignature/v1 lines."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self._verifier = CosignatureVerifier(name, public_key_bytes(private_key))
        self._key_id = self._verifier.key_id

    @property
    def name(self) -> str:
        return self._verifier.name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    def verifier(self) -> CosignatureVerifier:
        return self._verifier

    def cosign(self, checkpoint_body: bytes, timestamp: int) -> NoteSignature:
        """Cosign a checkpoint body at ``timestamp``; refuses text that is not a checkpoint."""
        # A witness key must never sign arbitrary bytes under the cosignature header.
        Checkpoint.from_body(checkpoint_body)
        sig = self._private_key.sign(cosigned_message(checkpoint_body, timestamp))
        return NoteSignature(self.name, self._key_id, timestamp.to_bytes(8, "big") + sig)


def verify_cosignatures(
    data: bytes,
    log_key: VerifierKey,
    witnesses: Sequence[CosignatureVerifier],
    quorum: int,
) -> tuple[SignedCheckpoint, dict[str, int]]:
    """Verify a checkpoint and its cosignatures; return witness name -> cosignature time.

    Fails unless at least ``quorum`` distinct witnesses (by name) cosigned validly.
    """
    if quorum < 0:
        raise ValueError("quorum must not be negative")
    # 1. Open the checkpoint with the witnesses as known keys: a bad cosignature by a
    #    known witness rejects the note, so every matching line below has verified.
    signed = open_checkpoint(data, log_key, witnesses=witnesses)
    # 2. Collect each witness's time from its first cosignature line.
    by_ident = {(w.name, w.key_id): w for w in witnesses}
    times: dict[str, int] = {}
    for signature in signed.note.signatures:
        witness = by_ident.get((signature.name, signature.key_id))
        if witness is not None and witness.name not in times:
            times[witness.name] = witness.timestamp(signature.signature)
    # 3. Enough distinct witnesses.
    if len(times) < quorum:
        raise NoteVerificationError(
            f"checkpoint has {len(times)} valid witness cosignatures, quorum is {quorum}"
        )
    return signed, times


def _check_line(value: object, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise MalformedCheckpointError(f"{what} must be a non-empty string")
    if _CONTROL_RE.search(value):
        raise MalformedCheckpointError(f"{what} contains a newline or control character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedCheckpointError(f"{what} is not valid UTF-8") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
