"""Ledger leaves and the hash chain (DESIGN.md 3.2).

The sequencer serialises a ``LedgerLeaf`` once; from then on the stored bytes
are the leaf. Everything here hashes and checks those bytes as they are and
decodes them only to read fields, never to re-encode and compare.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from custody.v1 import envelope_pb2, leaf_pb2
from ledger import merkle
from ledger.dsse import Envelope, Signature, keyid_for, verify_envelope
from ledger.errors import LogIntegrityError, MalformedEnvelopeError, MalformedLeafError

ZERO_HASH = bytes(32)
"""chain_hash(-1): the chain starts from 32 zero bytes."""


def chain_hash(prev_chain_hash: bytes, leaf_hash: bytes) -> bytes:
    """chain_hash(i) = SHA-256(chain_hash(i-1) || leaf_hash(i))."""
    return hashlib.sha256(prev_chain_hash + leaf_hash).digest()


@dataclass(frozen=True, slots=True)
class SubjectLink:
    """The previous leaf that touched ``subject`` (None: this is its first)."""

    subject: str
    prev_index: int | None


@dataclass(frozen=True)
class Leaf:
    """A decoded leaf together with the exact bytes it was decoded from."""

    raw: bytes
    index: int
    integration_time_micros: int
    prev_chain_hash: bytes
    envelope: Envelope
    subject_links: tuple[SubjectLink, ...]
    signer_keys: tuple[bytes, ...]

    @property
    def leaf_hash(self) -> bytes:
        return merkle.leaf_hash(self.raw)

    @property
    def chain_hash(self) -> bytes:
        return chain_hash(self.prev_chain_hash, self.leaf_hash)

    def signer_key_map(self) -> dict[str, bytes]:
        return {keyid_for(key): key for key in self.signer_keys}


def envelope_to_proto(envelope: Envelope) -> envelope_pb2.Envelope:
    return envelope_pb2.Envelope(
        payload=envelope.payload,
        payload_type=envelope.payload_type,
        signatures=[envelope_pb2.Signature(sig=s.sig, keyid=s.keyid) for s in envelope.signatures],
    )


def envelope_from_proto(message: envelope_pb2.Envelope) -> Envelope:
    """Convert a received protobuf envelope; the payload bytes are kept as they are."""
    return Envelope(
        payload_type=message.payload_type,
        payload=message.payload,
        signatures=tuple(Signature(keyid=s.keyid, sig=s.sig) for s in message.signatures),
    )


def decode_envelope(data: bytes) -> Envelope:
    """Parse a serialised ``custody.v1.Envelope``."""
    message = envelope_pb2.Envelope()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise MalformedEnvelopeError(f"envelope is not a valid protobuf message: {exc}") from exc
    return envelope_from_proto(message)


def encode_leaf(
    *,
    index: int,
    integration_time_micros: int,
    prev_chain_hash: bytes,
    envelope: Envelope,
    signer_keys: Sequence[bytes],
    subject_links: Sequence[SubjectLink] = (),
) -> bytes:
    """Serialise a leaf. Called once per entry, by the sequencer only."""
    message = leaf_pb2.LedgerLeaf(
        index=index,
        integration_time_micros=integration_time_micros,
        prev_chain_hash=prev_chain_hash,
        signer_keys=signer_keys,
    )
    # Filled in place: an Envelope message built first would be copied into the leaf.
    body = message.envelope
    body.SetInParent()
    body.payload = envelope.payload
    body.payload_type = envelope.payload_type
    for signature in envelope.signatures:
        body.signatures.add(sig=signature.sig, keyid=signature.keyid)
    for link in subject_links:
        if link.prev_index is None:
            message.subject_links.add(subject=link.subject)
        else:
            message.subject_links.add(subject=link.subject, prev_index=link.prev_index)
    return message.SerializeToString(deterministic=True)


def decode_leaf(raw: bytes) -> Leaf:
    """Decode stored leaf bytes, checking the fields' shapes."""
    message = leaf_pb2.LedgerLeaf()
    try:
        message.ParseFromString(raw)
    except DecodeError as exc:
        raise MalformedLeafError(f"leaf is not a valid LedgerLeaf message: {exc}") from exc
    if len(message.prev_chain_hash) != merkle.HASH_SIZE:
        raise MalformedLeafError("leaf prev_chain_hash is not 32 bytes")
    if not message.HasField("envelope"):
        raise MalformedLeafError("leaf carries no envelope")
    if any(len(key) != 32 for key in message.signer_keys):
        raise MalformedLeafError("leaf signer key is not a 32-byte Ed25519 key")
    try:
        envelope = envelope_from_proto(message.envelope)
    except MalformedEnvelopeError as exc:
        raise MalformedLeafError(f"leaf envelope is malformed: {exc}") from exc
    return Leaf(
        raw=raw,
        index=message.index,
        integration_time_micros=message.integration_time_micros,
        prev_chain_hash=message.prev_chain_hash,
        envelope=envelope,
        subject_links=tuple(
            SubjectLink(
                subject=link.subject,
                prev_index=link.prev_index if link.HasField("prev_index") else None,
            )
            for link in message.subject_links
        ),
        signer_keys=tuple(message.signer_keys),
    )


def check_leaf_position(leaf: Leaf, *, expected_index: int, prev_chain_hash: bytes) -> None:
    """1. The leaf's own index is its position. 2. Its prev_chain_hash is the chain head."""
    if leaf.index != expected_index:
        raise LogIntegrityError(
            f"leaf at position {expected_index} says it is index {leaf.index}",
            index=expected_index,
        )
    if leaf.prev_chain_hash != prev_chain_hash:
        raise LogIntegrityError(
            f"leaf {expected_index} does not continue the hash chain", index=expected_index
        )


def verify_leaf_signatures(leaf: Leaf) -> None:
    """3. The leaf's signer keys are exactly the keys its signatures name, and every
    signature verifies over the envelope's PAE bytes. Needs nothing but the leaf."""
    keys = leaf.signer_key_map()
    if len(keys) != len(leaf.signer_keys) or set(keys) != {
        s.keyid for s in leaf.envelope.signatures
    }:
        raise LogIntegrityError(
            f"leaf {leaf.index} signer keys do not match its signatures", index=leaf.index
        )
    verify_envelope(leaf.envelope, keys)
