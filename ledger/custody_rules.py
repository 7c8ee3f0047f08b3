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
from ledger.domain.payloads import DomainPayload, decode_payload
from ledger.domain.records import Consortium, PartnerKey
from ledger.domain.replay import apply_leaf
from ledger.domain.rules import DomainEntry, apply_entry, prefetch
from ledger.domain.state import CONSORTIUM_KEY, DomainState
from ledger.dsse import keyid_for
from ledger.errors import CustodyError, LogIntegrityError, MalformedLeafError
from ledger.leaf import SubjectLink, decode_leaf
from ledger.records import StoredLeaf
from ledger.storage.domain_store import DomainStore
from ledger.storage.log_store import READ_CHUNK as REINDEX_CHUNK
from ledger.storage.log_store import LogStore


@dataclass(frozen=True, slots=True)
class PreparedEntry:
    """A submission whose payload decoded and passed the shape checks."""

    payload: DomainPayload
    authenticated_partner: str | None
    signer_keys: dict[str, bytes]  # keyid -> public key, every signature verified


class CustodyRules:
    """The sequencer's ``EntryRules`` for a Custody ledger."""

    def __init__(self, store: LogStore) -> None:
        self.domain = DomainStore(store.engine)

    def prepare(self, submission: Submission, entry: AdmittedEntry) -> PreparedEntry:
        envelope = entry.envelope
        return PreparedEntry(
            decode_payload(envelope.payload_type, envelope.payload),
            submission.authenticated_partner,
            {keyid_for(key): key for key in entry.signer_keys},
        )

    def begin(self, conn: Connection, prepared: Sequence[object]) -> CustodyBatch:
        state = DomainState(self.domain.loader(conn))
        items = [_prepared(p) for p in prepared]
        prefetch(state, [item.payload for item in items])
        state.prefetch(PartnerKey, {keyid for item in items for keyid in item.signer_keys})
        state.prefetch(Consortium, (CONSORTIUM_KEY,))
        return CustodyBatch(self.domain, state)


class CustodyBatch:
    """One batch's view of the domain state, flushed when the batch commits."""

    def __init__(self, domain: DomainStore, state: DomainState) -> None:
        self._domain = domain
        self.state = state

    def apply(
        self, prepared: object, entry: AdmittedEntry, index: int, integration_time_micros: int
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


def _decodable_payloads(chunk: Sequence[StoredLeaf]) -> list[DomainPayload]:
    """The payloads of a chunk of leaves, for prefetching; failures surface in the replay."""
    payloads: list[DomainPayload] = []
    for stored in chunk:
        try:
            envelope = decode_leaf(stored.leaf_bytes).envelope
            payloads.append(decode_payload(envelope.payload_type, envelope.payload))
        except CustodyError:
            continue
    return payloads


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
            state = DomainState(domain.loader(conn))
            prefetch(state, _decodable_payloads(chunk))
            for stored in chunk:
                try:
                    leaf = decode_leaf(stored.leaf_bytes)
                except MalformedLeafError as exc:
                    raise LogIntegrityError(str(exc), index=stored.index) from exc
                if leaf.index != stored.index:
                    raise LogIntegrityError(
                        f"leaf at {stored.index} says it is {leaf.index}", index=stored.index
                    )
                apply_leaf(state, leaf)
            domain.flush(conn, state)
            count += len(chunk)
    return ReindexReport(leaves=count, seconds=time.perf_counter() - started)
