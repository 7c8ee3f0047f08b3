"""Custody's admission rules plugged into the sequencer, and the reindex.

The pure rules (``ledger.domain``) run against a ``DomainState`` that reads
through the derived-state tables inside the sequencer's write transaction;
what an admitted batch changed is written in that same transaction, so the
indexes never disagree with the leaves. ``reindex`` rebuilds those tables
from the leaves alone, through the very same rules.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from ledger.admission import AdmittedEntry, Submission
from ledger.domain.payloads import DomainPayload, EventPayload, decode_payload
from ledger.domain.records import Consortium, Facility, Partner, PartnerKey
from ledger.domain.replay import apply_leaf, leaf_payload
from ledger.domain.rule_base import check_caller
from ledger.domain.rules import DomainEntry, apply_entry, prefetch
from ledger.domain.state import DomainState, KnownRecords
from ledger.dsse import keyid_for
from ledger.errors import LogIntegrityError, MalformedLeafError
from ledger.leaf import Leaf, SubjectLink, decode_leaf
from ledger.records import StoredLeaf
from ledger.sequencer import LogHead
from ledger.storage.domain_store import DomainStore
from ledger.storage.log_store import READ_CHUNK as REINDEX_CHUNK
from ledger.storage.log_store import LogStore


@dataclass(frozen=True, slots=True)
class PreparedEntry:
    """A submission whose payload decoded and passed the shape checks."""

    payload: DomainPayload
    authenticated_partner: str | None
    signer_keys: dict[str, bytes]  # keyid -> public key, every signature verified


CARRIED_RECORDS = 50_000
"""Records (and absences) one batch may hand on to the next; beyond it only the
registry's records (partners, keys, facilities, the consortium) are handed on,
and nothing if even they are more."""
_REGISTRY_KINDS = (Consortium, Partner, PartnerKey, Facility)


class CustodyRules:
    """The sequencer's ``EntryRules`` for a Custody ledger.

    Records a batch read or wrote are handed on to the next batch when nothing
    else wrote to storage between them (the log's head is the one that batch
    committed): the registry and the lots in use are then read once, not once
    per batch. Another writer (a second frontend) moves the head, and the next
    batch reads everything afresh.
    """

    def __init__(self, store: LogStore) -> None:
        self.domain = DomainStore(store.engine)
        self._carried: KnownRecords | None = None
        self._carried_at: LogHead | None = None

    def prepare(self, submission: Submission, entry: AdmittedEntry) -> PreparedEntry:
        envelope = entry.envelope
        payload = decode_payload(envelope.payload_type, envelope.payload)
        if isinstance(payload, EventPayload):
            # An event names its recorder, so this needs no state and runs before
            # duplicate detection: a partner cannot resubmit another's event either.
            check_caller(submission.authenticated_partner, {payload.message.partner_id})
        return PreparedEntry(
            payload,
            submission.authenticated_partner,
            {keyid_for(key): key for key in entry.signer_keys},
        )

    def begin(self, conn: Connection, prepared: Sequence[object], head: LogHead) -> CustodyBatch:
        known = self._carried if self._carried_at == head else None
        # Taken, whatever happens next: a batch that fails must not hand on its writes.
        self._carried = self._carried_at = None
        state = DomainState(self.domain.loader(conn), known)
        items = [_prepared(p) for p in prepared]
        prefetch(
            state,
            [item.payload for item in items],
            {keyid for item in items for keyid in item.signer_keys},
        )
        return CustodyBatch(self, state)

    @property
    def carried_records(self) -> int:
        """Records (and absences) the next batch starts from instead of reading them."""
        return 0 if self._carried is None else _count(self._carried)

    def _carry(self, known: KnownRecords, head: LogHead) -> None:
        if _count(known) > CARRIED_RECORDS:
            # The registry's records are bounded by governance; what entries merely
            # named (absent partners, keys, facilities: anyone can name them) is not.
            known = {
                kind: {key: record for key, record in records.items() if record is not None}
                if kind in _REGISTRY_KINDS
                else {}
                for kind, records in known.items()
            }
            if _count(known) > CARRIED_RECORDS:
                return
        self._carried, self._carried_at = known, head


def _count(known: KnownRecords) -> int:
    return sum(len(records) for records in known.values())


class CustodyBatch:
    """One batch's view of the domain state, flushed when the batch commits."""

    def __init__(self, rules: CustodyRules, state: DomainState) -> None:
        self._rules = rules
        self._domain = rules.domain
        self.state = state

    def apply(
        self, prepared: object, index: int, integration_time_micros: int
    ) -> tuple[SubjectLink, ...]:
        item = _prepared(prepared)
        return apply_entry(
            self.state,
            DomainEntry(
                payload=item.payload,
                index=index,
                integration_time_micros=integration_time_micros,
                signer_keys=item.signer_keys,
                authenticated_partner=item.authenticated_partner,
            ),
        )

    def finish(self, conn: Connection) -> None:
        self._domain.flush(conn, self.state)

    def committed(self, head: LogHead) -> None:
        self._rules._carry(self.state.known(), head)


def _read_leaf(stored: StoredLeaf) -> tuple[Leaf, DomainPayload] | LogIntegrityError:
    """A stored leaf and its payload, decoded once; or why they cannot be."""
    try:
        leaf = decode_leaf(stored.leaf_bytes)
        if leaf.index != stored.index:
            return LogIntegrityError(
                f"leaf at {stored.index} says it is {leaf.index}", index=stored.index
            )
        return leaf, leaf_payload(leaf)
    except MalformedLeafError as exc:
        return LogIntegrityError(str(exc), index=stored.index)
    except LogIntegrityError as exc:
        return exc


def _prepared(item: object) -> PreparedEntry:
    if not isinstance(item, PreparedEntry):
        raise TypeError(f"expected a PreparedEntry, got {type(item).__name__}")
    return item


@dataclass(frozen=True, slots=True)
class ReindexReport:
    leaves: int
    seconds: float


def reindex(store: LogStore) -> ReindexReport:
    """Rebuild every derived table from the leaves, in one write transaction.

    Each leaf is replayed through the admission rules and must be admitted
    with the subject links it carries; otherwise the log is inconsistent and
    nothing is changed (``LogIntegrityError`` naming the leaf).
    """
    started = time.perf_counter()
    domain = DomainStore(store.engine)
    count = 0
    with store.write() as conn:
        domain.clear(conn)
        leaves = store.iter_leaves(conn=conn)
        while True:
            chunk = [leaf for _, leaf in zip(range(REINDEX_CHUNK), leaves, strict=False)]
            if not chunk:
                break
            decoded = [_read_leaf(stored) for stored in chunk]
            state = DomainState(domain.loader(conn))
            readable = [item for item in decoded if isinstance(item, tuple)]
            prefetch(
                state,
                [payload for _, payload in readable],
                {keyid for leaf, _ in readable for keyid in leaf.signer_key_map()},
            )
            # In index order, so the first broken leaf is the one reported.
            for item in decoded:
                if isinstance(item, LogIntegrityError):
                    raise item
                apply_leaf(state, *item)
            domain.flush(conn, state)
            count += len(chunk)
    return ReindexReport(leaves=count, seconds=time.perf_counter() - started)
