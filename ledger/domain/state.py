"""The state the admission rules read and write, over any backing store.

``DomainState`` reads records through a ``StateLoader`` (the database inside
the sequencer's write transaction, or nothing at all for an in-memory
replay) and keeps every record it writes in memory. The sequencer flushes
what changed at the end of a batch; a replay simply keeps the whole state.
The rules see the same interface either way, so the sequencer, the mirrors
and the auditor run exactly the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol, TypeVar

from ledger.domain.records import (
    AssayRecord,
    CertificationRecord,
    Consortium,
    DispatchRecord,
    EventRecord,
    Facility,
    Lot,
    Partner,
    PartnerKey,
    Record,
    SubjectHead,
    TransformationRecord,
)

R = TypeVar("R", bound=Record)

RECORD_KINDS: tuple[type[Record], ...] = (
    Consortium,
    Partner,
    PartnerKey,
    Facility,
    Lot,
    EventRecord,
    DispatchRecord,
    TransformationRecord,
    AssayRecord,
    CertificationRecord,
    SubjectHead,
)

CONSORTIUM_KEY = "consortium"
"""The key of the one Consortium record."""


_KEY_OF: dict[type[Any], Callable[[Any], str]] = {
    Consortium: lambda _record: CONSORTIUM_KEY,
    Partner: attrgetter("partner_id"),
    PartnerKey: attrgetter("keyid"),
    Facility: attrgetter("facility_id"),
    Lot: attrgetter("lot_id"),
    SubjectHead: attrgetter("subject"),
    EventRecord: attrgetter("event_id"),
    DispatchRecord: attrgetter("event_id"),
    TransformationRecord: attrgetter("event_id"),
    AssayRecord: attrgetter("event_id"),
    CertificationRecord: attrgetter("event_id"),
}


def record_key(record: Record) -> str:
    """The key a record is stored and looked up under, unique within its kind."""
    return _KEY_OF[type(record)](record)


@dataclass(frozen=True, slots=True)
class SubjectEvent:
    """Leaf ``index`` touched ``subject``: the 'events by subject' index."""

    subject: str
    index: int


@dataclass(frozen=True, slots=True)
class LotInput:
    """Transformation ``event_id`` consumed ``consumed_grams`` of ``lot_id``."""

    lot_id: str
    event_id: str
    consumed_grams: int
    index: int


History = SubjectEvent | LotInput | Partner | Consortium
"""Append-only rows: subject events, lot-input edges, and every version of the
registry's partners and consortium settings (the registry as of any index)."""


class StateLoader(Protocol):
    """Where records not yet in memory come from."""

    def load(self, kind: type[R], keys: Collection[str]) -> dict[str, R]:
        """The stored records of ``kind`` among ``keys``; absent keys are left out."""
        ...


KnownRecords = dict[type[Any], dict[str, Record | None]]
"""Records by kind and key, None for a key known to be absent."""


class DomainState:
    """Records by kind and key, read through a loader, written in memory."""

    def __init__(
        self, loader: StateLoader | None = None, known: KnownRecords | None = None
    ) -> None:
        """``known``: records (and absences) already known to hold in the loader's
        storage; the state takes it over and adds to it."""
        self._loader = loader
        self._records: KnownRecords = (
            known if known is not None else {kind: {} for kind in RECORD_KINDS}
        )
        self._dirty: dict[type[Any], dict[str, Record]] = {kind: {} for kind in RECORD_KINDS}
        self.history: list[History] = []

    # --- reads -------------------------------------------------------------------

    def get(self, kind: type[R], key: str) -> R | None:
        known = self._records[kind]
        if key not in known:
            self.prefetch(kind, (key,))
        found = known[key]
        assert found is None or isinstance(found, kind)
        return found

    def prefetch(self, kind: type[R], keys: Iterable[str]) -> None:
        """Load the records of ``kind`` for ``keys`` in one go (absent ones as None)."""
        known = self._records[kind]
        wanted = {key for key in keys if key not in known}
        if not wanted:
            return
        loaded: dict[str, R] = {} if self._loader is None else self._loader.load(kind, wanted)
        for key in wanted:
            known[key] = loaded.get(key)

    def consortium(self) -> Consortium | None:
        return self.get(Consortium, CONSORTIUM_KEY)

    def partner(self, partner_id: str) -> Partner | None:
        return self.get(Partner, partner_id)

    def key(self, keyid: str) -> PartnerKey | None:
        return self.get(PartnerKey, keyid)

    def facility(self, facility_id: str) -> Facility | None:
        return self.get(Facility, facility_id)

    def lot(self, lot_id: str) -> Lot | None:
        return self.get(Lot, lot_id)

    def event(self, event_id: str) -> EventRecord | None:
        return self.get(EventRecord, event_id)

    def dispatch(self, event_id: str) -> DispatchRecord | None:
        return self.get(DispatchRecord, event_id)

    def transformation(self, event_id: str) -> TransformationRecord | None:
        return self.get(TransformationRecord, event_id)

    def assay(self, event_id: str) -> AssayRecord | None:
        return self.get(AssayRecord, event_id)

    def certification(self, event_id: str) -> CertificationRecord | None:
        return self.get(CertificationRecord, event_id)

    def subject_head(self, subject: str) -> int | None:
        head = self.get(SubjectHead, subject)
        return None if head is None else head.index

    # --- writes --------------------------------------------------------------------

    def put(self, record: Record) -> None:
        kind, key = type(record), record_key(record)
        self._records[kind][key] = record
        self._dirty[kind][key] = record
        if isinstance(record, Partner | Consortium):
            self.history.append(record)

    def append(self, row: SubjectEvent | LotInput) -> None:
        self.history.append(row)

    # --- what changed ----------------------------------------------------------------

    def known(self) -> KnownRecords:
        """Every record and absence this state knows: the storage it reads through,
        once its changes are written there."""
        return self._records

    def changed(self, kind: type[R]) -> list[R]:
        """Records of ``kind`` written since this state was created, latest version each."""
        out: list[R] = []
        for record in self._dirty[kind].values():
            assert isinstance(record, kind)
            out.append(record)
        return out

    def records(self, kind: type[R]) -> Iterator[R]:
        """Every record of ``kind`` this state holds (all of them, for a replay)."""
        for record in self._records[kind].values():
            if record is not None:
                assert isinstance(record, kind)
                yield record
