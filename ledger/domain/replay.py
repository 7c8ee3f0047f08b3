"""Replaying stored leaves through the admission rules.

A leaf in the log was admitted by the rules at its index, and its subject
links were set from the state at that point. Replaying it must therefore be
admitted again and give the very same links; anything else means the log
(or the code that built it) is inconsistent, reported at that index. The
same step serves ``custody log reindex`` (state in the database) and any
verifier replaying a log or a bundle in memory.
"""

from __future__ import annotations

from collections.abc import Iterable

from ledger.domain.payloads import DomainPayload, decode_payload
from ledger.domain.rules import DomainEntry, apply_entry
from ledger.domain.state import DomainState
from ledger.errors import AdmissionError, LogIntegrityError
from ledger.leaf import Leaf


def leaf_payload(leaf: Leaf) -> DomainPayload:
    """The leaf's decoded payload; a payload the rules cannot read is a broken log."""
    envelope = leaf.envelope
    try:
        return decode_payload(envelope.payload_type, envelope.payload)
    except AdmissionError as exc:
        raise _broken(leaf, exc) from exc


def apply_leaf(state: DomainState, leaf: Leaf, payload: DomainPayload) -> None:
    """Apply one stored leaf; its entry must be admitted and its links must match."""
    try:
        links = apply_entry(
            state,
            DomainEntry(
                payload=payload,
                index=leaf.index,
                integration_time_micros=leaf.integration_time_micros,
                signer_keys=leaf.signer_key_map(),
            ),
        )
    except AdmissionError as exc:
        raise _broken(leaf, exc) from exc
    if links != leaf.subject_links:
        raise LogIntegrityError(
            f"leaf {leaf.index} carries subject links that the log's history does not give",
            index=leaf.index,
        )


def _broken(leaf: Leaf, exc: AdmissionError) -> LogIntegrityError:
    return LogIntegrityError(
        f"leaf {leaf.index} breaks the admission rules ({exc.reason}): {exc}", index=leaf.index
    )


def replay(leaves: Iterable[Leaf]) -> DomainState:
    """The whole derived state from leaves in index order, in memory."""
    state = DomainState()
    for leaf in leaves:
        apply_leaf(state, leaf, leaf_payload(leaf))
    return state
