"""DSSE envelopes: the signed form of every entry (DESIGN 3.1).

A signature is Ed25519 over ``PAE(payload_type, payload)``; an entry's identity is
SHA-256 of those PAE bytes.  Everything here works on the payload bytes exactly as
received: nothing is ever re-serialised to be hashed or verified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.errors import (
    MalformedEnvelopeError,
    MalformedKeyError,
    SignatureError,
    UnknownKeyError,
)
from ledger.keys import public_key_from_bytes

PAYLOAD_TYPE_EVENT = "application/vnd.custody.event.v1+protobuf"
PAYLOAD_TYPE_GOVERNANCE = "application/vnd.custody.governance.v1+protobuf"
MAX_SIGNATURES = 16

_KEYID_RE = re.compile(r"[0-9a-f]{64}")
_PUBLIC_KEY_SIZE = 32
_SIGNATURE_SIZE = 64


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: ``DSSEv1 SP LEN(type) SP type SP LEN(body) SP body``."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def keyid_for(public_key: bytes) -> str:
    """Lowercase hex SHA-256 of a 32-byte raw Ed25519 public key."""
    if len(public_key) != _PUBLIC_KEY_SIZE:
        raise MalformedKeyError(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    return hashlib.sha256(public_key).hexdigest()


@dataclass(frozen=True)
class Signature:
    """One signature of an envelope: who (``keyid``) and the 64-byte Ed25519 ``sig``."""

    keyid: str
    sig: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.keyid, str) or not _KEYID_RE.fullmatch(self.keyid):
            raise MalformedEnvelopeError("keyid must be 64 lowercase hex characters")
        if not isinstance(self.sig, bytes) or len(self.sig) != _SIGNATURE_SIZE:
            raise MalformedEnvelopeError("an Ed25519 signature is 64 bytes")


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope.  It may be unsigned; rejecting that is the verifier's job."""

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.payload_type, str) or not self.payload_type:
            raise MalformedEnvelopeError("payload_type must be a non-empty string")
        try:
            self.payload_type.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MalformedEnvelopeError("payload_type is not valid Unicode") from exc
        if not isinstance(self.payload, bytes):
            raise MalformedEnvelopeError("payload must be bytes")
        if not isinstance(self.signatures, tuple) or not all(
            isinstance(s, Signature) for s in self.signatures
        ):
            raise MalformedEnvelopeError("signatures must be a tuple of Signature")
        if len(self.signatures) > MAX_SIGNATURES:
            raise MalformedEnvelopeError(f"more than {MAX_SIGNATURES} signatures")
        keyids = [s.keyid for s in self.signatures]
        if len(set(keyids)) != len(keyids):
            # Two signatures by one key would count one signer twice toward a k-of-n quorum.
            raise MalformedEnvelopeError("duplicate keyid in signatures")

    def pae(self) -> bytes:
        """The bytes every signature covers."""
        return pae(self.payload_type, self.payload)

    def digest(self) -> bytes:
        """SHA-256 of the PAE bytes: the entry's identity, independent of its signatures."""
        return hashlib.sha256(self.pae()).digest()

    def to_json(self) -> dict[str, Any]:
        """The DSSE JSON form (standard base64 with padding)."""
        return {
            "payloadType": self.payload_type,
            "payload": _b64encode(self.payload),
            "signatures": [{"keyid": s.keyid, "sig": _b64encode(s.sig)} for s in self.signatures],
        }

    @classmethod
    def from_json(cls, obj: object) -> Envelope:
        """Parse the DSSE JSON form strictly: exact keys, exact types, canonical base64."""
        fields = _exact_object(obj, {"payloadType", "payload", "signatures"}, "envelope")
        payload_type = _string(fields["payloadType"], "payloadType")
        payload = _b64decode(_string(fields["payload"], "payload"), "payload")
        raw_signatures = fields["signatures"]
        if not isinstance(raw_signatures, list):
            raise MalformedEnvelopeError("signatures must be a JSON array")
        signatures = []
        for raw in raw_signatures:
            entry = _exact_object(raw, {"keyid", "sig"}, "signature")
            keyid = _string(entry["keyid"], "keyid")
            sig = _b64decode(_string(entry["sig"], "sig"), "sig")
            signatures.append(Signature(keyid=keyid, sig=sig))
        return cls(payload_type=payload_type, payload=payload, signatures=tuple(signatures))


class Signer:
    """Signs envelopes with one Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self._public_key = private_key.public_key().public_bytes_raw()
        self._keyid = keyid_for(self._public_key)

    @property
    def keyid(self) -> str:
        return self._keyid

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return self._public_key

    def sign(self, payload_type: str, payload: bytes) -> Signature:
        return Signature(keyid=self._keyid, sig=self._private_key.sign(pae(payload_type, payload)))


def sign_envelope(payload_type: str, payload: bytes, signers: Sequence[Signer]) -> Envelope:
    """An envelope signed by every signer, in order; at least one signer is required."""
    if not signers:
        raise MalformedEnvelopeError("sign_envelope needs at least one signer")
    signatures = tuple(s.sign(payload_type, payload) for s in signers)
    return Envelope(payload_type=payload_type, payload=payload, signatures=signatures)


def verify_envelope(envelope: Envelope, keys: Mapping[str, bytes]) -> tuple[str, ...]:
    """Verify every signature of ``envelope`` and return the signing keyids in order.

    ``keys`` maps keyid to raw 32-byte public key.  A ledger accepts no partly
    signed entry, so every signature must verify, not just one.
    """
    # 1. An unsigned envelope proves nothing.
    if not envelope.signatures:
        raise MalformedEnvelopeError("envelope has no signatures")

    # 2. Every signer is a known key, and the key really has that keyid.
    public_keys: list[Ed25519PublicKey] = []
    for signature in envelope.signatures:
        raw = keys.get(signature.keyid)
        if raw is None:
            raise UnknownKeyError(f"unknown keyid {signature.keyid}")
        if keyid_for(raw) != signature.keyid:
            raise SignatureError(f"key registered as {signature.keyid} has a different keyid")
        public_keys.append(public_key_from_bytes(raw))

    # 3. Every signature verifies over the PAE of the bytes as received.
    message = envelope.pae()
    for signature, public_key in zip(envelope.signatures, public_keys, strict=True):
        try:
            public_key.verify(signature.sig, message)
        except InvalidSignature:
            raise SignatureError(f"signature by {signature.keyid} does not verify") from None
    return tuple(s.keyid for s in envelope.signatures)


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    # Only the canonical encoding is accepted, so one envelope has one JSON spelling.
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedEnvelopeError(f"{what} is not valid base64") from exc
    if _b64encode(data) != text:
        raise MalformedEnvelopeError(f"{what} is not canonical base64")
    return data


def _exact_object(obj: object, keys: set[str], what: str) -> dict[str, object]:
    if not isinstance(obj, dict):
        raise MalformedEnvelopeError(f"{what} must be a JSON object")
    if set(obj) != keys:
        raise MalformedEnvelopeError(f"{what} must have exactly the fields {sorted(keys)}")
    return obj


def _string(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise MalformedEnvelopeError(f"{what} must be a string")
    return value
