"""C2SP signed notes (c2sp.org/signed-note): text signed by one or more named keys.

A note is a text ending in a newline, a blank line, then one line per signature:
``— <key name> <base64(4-byte key id || signature)>``.  Signatures cover the text
bytes exactly as received, including the final newline but not the blank line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.errors import MalformedKeyError, MalformedNoteError, NoteVerificationError
from ledger.keys import public_key_bytes, public_key_from_bytes

SIG_TYPE_ED25519 = 0x01
MAX_NOTE_SIGNATURES = 100

_SIG_PREFIX = "\u2014 "  # EM DASH, SPACE
_KEY_ID_SIZE = 4
_ED25519_KEY_SIZE = 32
_ED25519_SIG_SIZE = 64
# Signature types whose public key is a 32-byte Ed25519 key (signed-note 0x01, cosignature 0x04).
_ED25519_KEY_TYPES = frozenset({0x01, 0x04})
_CONTROL_RE = re.compile(r"[\x00-\x09\x0b-\x1f]")
_KEY_ID_HEX_RE = re.compile(r"[0-9a-f]{8}")


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """``SHA-256(name || 0x0A || sig_type || public key)[:4]``, the spec's recommended key id."""
    if not 0 <= sig_type <= 0xFF:
        raise MalformedKeyError(f"signature type {sig_type} is not a byte")
    material = name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key
    return hashlib.sha256(material).digest()[:_KEY_ID_SIZE]


def check_key_name(name: str) -> None:
    """Key names are non-empty UTF-8 with no Unicode space, no ``+`` and no control character."""
    if not isinstance(name, str) or not name:
        raise MalformedKeyError("key name must be a non-empty string")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedKeyError("key name is not valid UTF-8") from None
    for char in name:
        if char.isspace() or char == "+" or ord(char) < 0x20:
            raise MalformedKeyError(f"key name {name!r} contains {char!r}")


def decode_base64(text: str) -> bytes:
    """Standard base64 with padding, canonical only; ``ValueError`` otherwise.

    Accepting only the canonical spelling keeps ``parse(x).to_bytes() == x``.
    """
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64: {exc}") from exc
    if base64.b64encode(data).decode("ascii") != text:
        raise ValueError("non-canonical base64")
    return data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class NoteSignature:
    """One signature line; ``signature`` is what follows the 4-byte key id."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if not isinstance(self.key_id, bytes) or len(self.key_id) != _KEY_ID_SIZE:
            raise MalformedNoteError("a note key id is 4 bytes")
        if not isinstance(self.signature, bytes) or not self.signature:
            raise MalformedNoteError("a note signature must not be empty")

    def line(self) -> str:
        return f"{_SIG_PREFIX}{self.name} {_b64(self.key_id + self.signature)}\n"


class Verifier(Protocol):
    """Verifies note signatures by one key, identified by (name, key id)."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (the bytes after the key id) is valid over ``text``."""
        ...


@dataclass(frozen=True)
class VerifierKey:
    """A note verifier key ("vkey").  Only type 0x01 (Ed25519) verifies here.

    Other types can be carried and printed; their own verifier classes (such as the
    cosignature verifier) do the verifying.
    """

    name: str
    public_key: bytes
    sig_type: int = SIG_TYPE_ED25519

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if isinstance(self.sig_type, bool) or not isinstance(self.sig_type, int):
            raise MalformedKeyError("signature type must be an int")
        if not 0 <= self.sig_type <= 0xFF:
            raise MalformedKeyError(f"signature type {self.sig_type} is not a byte")
        if not isinstance(self.public_key, bytes) or not self.public_key:
            raise MalformedKeyError("public key must be non-empty bytes")
        if self.sig_type in _ED25519_KEY_TYPES and len(self.public_key) != _ED25519_KEY_SIZE:
            raise MalformedKeyError("an Ed25519 public key is 32 bytes")

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.sig_type, self.public_key)

    def verify(self, text: bytes, signature: bytes) -> bool:
        if self.sig_type != SIG_TYPE_ED25519:
            raise MalformedKeyError(
                f"verifier key {self.name} has signature type 0x{self.sig_type:02x}; "
                "only 0x01 (Ed25519) verifies as a plain note signature"
            )
        if len(signature) != _ED25519_SIG_SIZE:
            return False
        try:
            public_key_from_bytes(self.public_key).verify(signature, text)
        except InvalidSignature:
            return False
        return True

    def __str__(self) -> str:
        encoded = _b64(bytes([self.sig_type]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Parse ``<name>+<8 lowercase hex key id>+<base64(type || public key)>``."""
        # The name has no '+', the hex none either; base64 may contain '+', so split twice.
        parts = text.split("+", 2) if isinstance(text, str) else []
        if len(parts) != 3:
            raise MalformedKeyError("verifier key must be <name>+<key id>+<key>")
        name, id_hex, key_b64 = parts
        if not _KEY_ID_HEX_RE.fullmatch(id_hex):
            raise MalformedKeyError("verifier key id must be 8 lowercase hex digits")
        try:
            material = decode_base64(key_b64)
        except ValueError as exc:
            raise MalformedKeyError(f"verifier key material: {exc}") from exc
        if len(material) < 2:
            raise MalformedKeyError("verifier key material is too short")
        vkey = cls(name=name, public_key=material[1:], sig_type=material[0])
        if vkey.key_id != bytes.fromhex(id_hex):
            raise MalformedKeyError(f"verifier key id {id_hex} does not match the key")
        return vkey


class NoteSigner:
    """Signs note texts with an Ed25519 key under a key name (type 0x01)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        check_key_name(name)
        self._name = name
        self._private_key = private_key
        self._verifier_key = VerifierKey(name=name, public_key=public_key_bytes(private_key))
        self._key_id = self._verifier_key.key_id

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    def verifier_key(self) -> VerifierKey:
        return self._verifier_key

    def sign(self, text: bytes) -> NoteSignature:
        return NoteSignature(self._name, self._key_id, self._private_key.sign(text))


@dataclass(frozen=True)
class Note:
    """A parsed note: the signed text exactly as received and its signature lines."""

    text: bytes
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.text, bytes) or not self.text.endswith(b"\n"):
            raise MalformedNoteError("note text must be bytes ending in a newline")
        if len(self.signatures) > MAX_NOTE_SIGNATURES:
            raise MalformedNoteError(f"more than {MAX_NOTE_SIGNATURES} signatures")

    def to_bytes(self) -> bytes:
        lines = "".join(s.line() for s in self.signatures)
        return self.text + b"\n" + lines.encode("utf-8")


def sign_note(text: bytes, signers: Sequence[NoteSigner]) -> bytes:
    """Sign ``text`` with every signer and return the note bytes.

    The text must be non-empty UTF-8 ending in a newline, with no empty line and no
    control character other than newline.  The spec allows empty lines, but a text
    without them can never be split in the wrong place by any parser.
    """
    _check_text(text)
    if not text or not text.endswith(b"\n"):
        raise MalformedNoteError("note text must be non-empty and end in a newline")
    if text.startswith(b"\n") or b"\n\n" in text:
        raise MalformedNoteError("note text must not contain empty lines")
    if not signers:
        raise MalformedNoteError("a note needs at least one signer")
    if len({(s.name, s.key_id) for s in signers}) != len(signers):
        raise MalformedNoteError("the same key signs twice")
    return Note(text, tuple(s.sign(text) for s in signers)).to_bytes()


def parse_note(data: bytes) -> Note:
    """Split a signed note into its text and signature lines, checking only syntax."""
    # 1. Valid UTF-8 with no control character but newline.
    _check_text(data)
    # 2. The text ends at the last blank line; the signature block follows it.
    split = data.rfind(b"\n\n")
    if split < 0:
        raise MalformedNoteError("no blank line before the signatures")
    text, block = data[: split + 1], data[split + 2 :]
    if not block:
        raise MalformedNoteError("note has no signatures")
    if not block.endswith(b"\n"):
        raise MalformedNoteError("last signature line does not end in a newline")
    lines = block[:-1].decode("utf-8").split("\n")
    # 3. A bounded number of lines, each well formed.
    if len(lines) > MAX_NOTE_SIGNATURES:
        raise MalformedNoteError(f"more than {MAX_NOTE_SIGNATURES} signatures")
    return Note(text, tuple(_parse_signature_line(line) for line in lines))


def open_note(data: bytes, verifiers: Iterable[Verifier]) -> tuple[Note, tuple[Verifier, ...]]:
    """Parse and verify a note; return it with the verifiers whose signatures verified.

    Every line by a known (name, key id) is verified, including repeated lines by the
    same key: the spec says a matching signature MUST be verified, and a note carrying
    a bad signature by a trusted key is rejected whole.  (Go's ``note.Open`` skips
    repeats of a key without checking them; this is stricter on that one point.)
    Each verifier is returned once, at its first line.
    """
    # 1. Parse.
    note = parse_note(data)

    # 2. Index the trusted keys by (name, key id), the tuple that identifies a key.
    known: dict[tuple[str, bytes], Verifier] = {}
    for verifier in verifiers:
        ident = (verifier.name, verifier.key_id)
        if ident in known and known[ident] != verifier:
            raise MalformedKeyError(f"two different verifiers share name and key id {ident}")
        known.setdefault(ident, verifier)

    # 3. Ignore unknown keys; verify every signature by a known key; any failure rejects.
    verified: dict[tuple[str, bytes], Verifier] = {}
    for signature in note.signatures:
        ident = (signature.name, signature.key_id)
        match = known.get(ident)
        if match is None:
            continue
        if not match.verify(note.text, signature.signature):
            raise NoteVerificationError(
                f"signature by {signature.name} (key id {signature.key_id.hex()}) does not verify"
            )
        verified.setdefault(ident, match)

    # 4. At least one known key must have signed.
    if not verified:
        raise NoteVerificationError("note has no signature by a known key")
    return note, tuple(verified.values())


def _check_text(data: bytes) -> None:
    if not isinstance(data, bytes):
        raise MalformedNoteError("a note is bytes")
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedNoteError("note is not valid UTF-8") from None
    if _CONTROL_RE.search(decoded):
        raise MalformedNoteError("note contains a control character other than newline")


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(_SIG_PREFIX):
        raise MalformedNoteError(f"signature line does not start with an em dash: {line!r}")
    name, space, encoded = line[len(_SIG_PREFIX) :].partition(" ")
    if not space:
        raise MalformedNoteError(f"signature line has no signature: {line!r}")
    try:
        check_key_name(name)
    except MalformedKeyError as exc:
        raise MalformedNoteError(f"signature line key name: {exc}") from None
    try:
        raw = decode_base64(encoded)
    except ValueError as exc:
        raise MalformedNoteError(f"signature of {name}: {exc}") from None
    if len(raw) <= _KEY_ID_SIZE:
        raise MalformedNoteError(f"signature of {name} is shorter than 5 bytes")
    return NoteSignature(name, raw[:_KEY_ID_SIZE], raw[_KEY_ID_SIZE:])
