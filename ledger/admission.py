"""Envelope-level admission rules, shared by the sequencer and every verifier.

These are the checks any entry must pass before it gets an index, whatever
its payload: it is signed, it is not oversized, and every signature verifies
under the key it names. Domain rules (who may record what) build on this.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ledger.dsse import Envelope, keyid_for, verify_envelope
from ledger.errors import EntryTooLargeError, UnknownKeyError, UnsignedEntryError

MAX_PAYLOAD_BYTES = 1 << 20
"""Largest payload the log accepts (1 MiB); evidence documents are referenced, not embedded."""


@dataclass(frozen=True)
class Submission:
    """An envelope offered to the log, with public keys for its signatures.

    ``authenticated_partner`` is the caller's verified identity (its mTLS
    certificate) when it came over the network; the rules then require that
    partner to be the one recording the entry. None for a local, trusted caller.
    """

    envelope: Envelope
    public_keys: tuple[bytes, ...]
    authenticated_partner: str | None = None

    @classmethod
    def of(
        cls,
        envelope: Envelope,
        public_keys: Iterable[bytes],
        *,
        authenticated_partner: str | None = None,
    ) -> Submission:
        return cls(
            envelope=envelope,
            public_keys=tuple(public_keys),
            authenticated_partner=authenticated_partner,
        )


@dataclass(frozen=True)
class AdmittedEntry:
    """An envelope that passed admission, with its identity and verifying keys."""

    envelope: Envelope
    digest: bytes
    signer_keys: tuple[bytes, ...]


def admit(submission: Submission) -> AdmittedEntry:
    """Apply the envelope admission rules, in order.

    1. The envelope carries at least one signature.
    2. The payload is at most MAX_PAYLOAD_BYTES.
    3. Every signature names a key among the submitted public keys.
    4. Every signature verifies over PAE(payload_type, payload).
    """
    envelope = submission.envelope
    if not envelope.signatures:
        raise UnsignedEntryError("entry carries no signature")
    if len(envelope.payload) > MAX_PAYLOAD_BYTES:
        raise EntryTooLargeError(
            f"payload is {len(envelope.payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}"
        )
    offered = {keyid_for(key): key for key in submission.public_keys if len(key) == 32}
    keys: dict[str, bytes] = {}
    for signature in envelope.signatures:
        key = offered.get(signature.keyid)
        if key is None:
            raise UnknownKeyError(f"no public key supplied for keyid {signature.keyid}")
        keys[signature.keyid] = key
    verify_envelope(envelope, keys)
    return AdmittedEntry(
        envelope=envelope,
        digest=envelope.digest(),
        signer_keys=tuple(keys[s.keyid] for s in envelope.signatures),
    )
