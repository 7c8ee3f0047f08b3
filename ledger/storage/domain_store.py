"""The domain's derived state in the database: load, flush, query, dump.

The sequencer builds a ``DomainState`` over ``DomainStore.loader(conn)``, runs
the admission rules and calls ``flush(conn, state)`` inside the write
transaction of each batch, so the tables always match the log they were built
from. ``custody log reindex`` empties them with ``clear`` and replays the
leaves. ``view`` answers the read-side questions, each with one indexed query.

Records map to rows exactly: a record flushed and loaded back is ``==`` to
the original. Values of the wrong type in a row can only have been put there
by hand, and raise ``LogIntegrityError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass, field, replace
from enum import Enum
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Row,
    Select,
    Table,
    bindparam,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from ledger.domain.records import (
    AssayRecord,
    CertificationRecord,
    CertificationStatus,
    Consortium,
    DispatchRecord,
    DispatchState,
    EventKind,
    EventRecord,
    EventStatus,
    Facility,
    FacilityType,
    Lot,
    LotOrigin,
    LotState,
    Partner,
    PartnerKey,
    Process,
    Record,
    Role,
    ScrapOrigin,
    SubjectHead,
    TransformationRecord,
)
from ledger.domain.state import (
    CONSORTIUM_KEY,
    RECORD_KINDS,
    DomainState,
    History,
    LotInput,
    StateLoader,
    SubjectEvent,
    record_key,
)
from ledger.errors import LogIntegrityError, OutOfRangeError, StorageError
from ledger.storage.database import COMPACT_JSON, bulk_insert, fetch_rows
from ledger.storage.domain_schema import (
    DOMAIN_TABLES,
    assays,
    certifications,
    consortium,
    consortium_versions,
    dispatches,
    events,
    facilities,
    lot_inputs,
    lots,
    partner_keys,
    partner_versions,
    partners,
    subject_events,
    subject_heads,
    transformations,
)
from ledger.storage.log_store import MAX_INDEX

R = TypeVar("R", bound=Record)
H = TypeVar("H", bound=History)

IN_CHUNK = 900
"""Keys per ``IN`` query: below SQLite's default limit of 999 bound variables."""
_CONSORTIUM_ROW_ID = 1
"""The one row of the ``consortium`` table (its record key is CONSORTIUM_KEY)."""

TableRow = tuple[object, ...]
"""A table's values in its column order, as ``bulk_insert`` writes them."""


# --- checked reads of one column ----------------------------------------------------
# Each takes the column's name as a constant, so a well-formed row costs no formatting.


def _bad(what: str, value: object, expected: str) -> LogIntegrityError:
    return LogIntegrityError(f"{what} is stored as {type(value).__name__}, not {expected}")


def _int(value: object, what: str) -> int:
    # SQLite stores whatever it is given; a non-integer here was put there by hand.
    if type(value) is int:
        return value
    raise _bad(what, value, "an integer")


def _opt_int(value: object, what: str) -> int | None:
    return None if value is None else _int(value, what)


def _str(value: object, what: str) -> str:
    if type(value) is str:
        return value
    raise _bad(what, value, "text")


def _opt_str(value: object, what: str) -> str | None:
    return None if value is None else _str(value, what)


def _bool(value: object, what: str) -> bool:
    if type(value) is bool:
        return value
    raise _bad(what, value, "a boolean")


def _bytes(value: object, what: str) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise _bad(what, value, "bytes")


E = TypeVar("E", bound=Enum)


class _EnumColumn(Generic[E]):
    """Stored ``.value`` back to its member: ints for IntEnums, text for Enums."""

    def __init__(self, enum: type[E]) -> None:
        self._by_value: dict[object, E] = {member.value: member for member in enum}
        self._value_type = type(next(iter(enum)).value)
        self._name = enum.__name__

    def __call__(self, value: object, what: str) -> E:
        # The type check keeps True from passing for 1.
        member = self._by_value.get(value) if type(value) is self._value_type else None
        if member is None:
            raise LogIntegrityError(f"{what} holds {value!r}, not a {self._name}")
        return member


_role = _EnumColumn(Role)
_facility_type = _EnumColumn(FacilityType)
_process = _EnumColumn(Process)
_scrap_origin = _EnumColumn(ScrapOrigin)
_certification_status = _EnumColumn(CertificationStatus)
_event_kind = _EnumColumn(EventKind)
_event_status = _EnumColumn(EventStatus)
_lot_state = _EnumColumn(LotState)
_lot_origin = _EnumColumn(LotOrigin)
_dispatch_state = _EnumColumn(DispatchState)


def _json_list(value: object, what: str) -> list[object]:
    try:
        decoded = json.loads(_str(value, what))
    except ValueError:
        raise LogIntegrityError(f"{what} is not JSON") from None
    if type(decoded) is not list:
        raise LogIntegrityError(f"{what} is not a JSON list")
    return decoded


def _strings(value: object, what: str) -> tuple[str, ...]:
    return tuple(_str(item, what) for item in _json_list(value, what))


def _pairs(value: object, what: str) -> tuple[tuple[str, int], ...]:
    """(text, integer) pairs: element contents and transformation inputs."""
    out: list[tuple[str, int]] = []
    for item in _json_list(value, what):
        if type(item) is not list or len(item) != 2:
            raise LogIntegrityError(f"{what} holds {item!r}, not a pair")
        out.append((_str(item[0], what), _int(item[1], what)))
    return tuple(out)


def _roles(value: object, what: str) -> tuple[Role, ...]:
    return tuple(_role(item, what) for item in _json_list(value, what))


def _encode(items: Sequence[object]) -> str:
    """Tuples as compact JSON arrays; IntEnum members encode as their integers."""
    return COMPACT_JSON.encode(items)


# --- records <-> rows -------------------------------------------------------------------


def _consortium_values(record: Consortium) -> TableRow:
    return (
        _CONSORTIUM_ROW_ID,
        record.name,
        record.threshold,
        _encode(record.admin_ids),
        record.updated_index,
    )


def _consortium_of(row: Sequence[Any]) -> Consortium:
    _id, name, threshold, admin_ids, updated_index = row
    return Consortium(
        name=_str(name, "consortium.name"),
        threshold=_int(threshold, "consortium.threshold"),
        admin_ids=_strings(admin_ids, "consortium.admin_ids"),
        updated_index=_int(updated_index, "consortium.updated_index"),
    )


def _consortium_version_values(record: Consortium) -> TableRow:
    return (
        record.updated_index,
        record.name,
        record.threshold,
        _encode(record.admin_ids),
    )


def _consortium_version_of(row: Sequence[Any]) -> Consortium:
    updated_index, name, threshold, admin_ids = row
    return Consortium(
        name=_str(name, "consortium_versions.name"),
        threshold=_int(threshold, "consortium_versions.threshold"),
        admin_ids=_strings(admin_ids, "consortium_versions.admin_ids"),
        updated_index=_int(updated_index, "consortium_versions.updated_index"),
    )


def _partner_values(record: Partner) -> TableRow:
    return (
        record.partner_id,
        record.legal_name,
        record.country,
        _encode(record.roles),
        record.admitted_index,
        record.updated_index,
    )


def _partner_of(row: Sequence[Any]) -> Partner:
    """From ``partners`` or ``partner_versions``: their columns are the same, in one order."""
    partner_id, legal_name, country, roles, admitted_index, updated_index = row
    return Partner(
        partner_id=_str(partner_id, "partners.partner_id"),
        legal_name=_str(legal_name, "partners.legal_name"),
        country=_str(country, "partners.country"),
        roles=_roles(roles, "partners.roles"),
        admitted_index=_int(admitted_index, "partners.admitted_index"),
        updated_index=_int(updated_index, "partners.updated_index"),
    )


def _key_values(record: PartnerKey) -> TableRow:
    return (
        record.keyid,
        record.partner_id,
        record.public_key,
        record.added_index,
        record.revoked_index,
    )


def _key_of(row: Sequence[Any]) -> PartnerKey:
    keyid, partner_id, public_key, added_index, revoked_index = row
    return PartnerKey(
        keyid=_str(keyid, "partner_keys.keyid"),
        partner_id=_str(partner_id, "partner_keys.partner_id"),
        public_key=_bytes(public_key, "partner_keys.public_key"),
        added_index=_int(added_index, "partner_keys.added_index"),
        revoked_index=_opt_int(revoked_index, "partner_keys.revoked_index"),
    )


def _facility_values(record: Facility) -> TableRow:
    return (
        record.facility_id,
        record.partner_id,
        record.name,
        record.type.value,
        record.country,
        record.latitude_e6,
        record.longitude_e6,
        record.rmi_smelter_id,
        record.artisanal,
        record.registered_index,
    )


def _facility_of(row: Sequence[Any]) -> Facility:
    (
        facility_id,
        partner_id,
        name,
        facility_type,
        country,
        latitude_e6,
        longitude_e6,
        rmi_smelter_id,
        artisanal,
        registered_index,
    ) = row
    return Facility(
        facility_id=_str(facility_id, "facilities.facility_id"),
        partner_id=_str(partner_id, "facilities.partner_id"),
        name=_str(name, "facilities.name"),
        type=_facility_type(facility_type, "facilities.type"),
        country=_str(country, "facilities.country"),
        latitude_e6=_int(latitude_e6, "facilities.latitude_e6"),
        longitude_e6=_int(longitude_e6, "facilities.longitude_e6"),
        rmi_smelter_id=_str(rmi_smelter_id, "facilities.rmi_smelter_id"),
        artisanal=_bool(artisanal, "facilities.artisanal"),
        registered_index=_int(registered_index, "facilities.registered_index"),
    )


def _lot_values(record: Lot) -> TableRow:
    return (
        record.lot_id,
        record.material,
        record.mass_grams,
        _encode(record.contents),
        record.holder_id,
        record.available_grams,
        record.state.value,
        record.dispatch_event_id,
        record.origin.value,
        record.created_event_id,
        record.created_index,
        record.facility_id,
        None if record.scrap_origin is None else record.scrap_origin.value,
        record.updated_index,
    )


def _lot_of(row: Sequence[Any]) -> Lot:
    (
        lot_id,
        material,
        mass_grams,
        contents,
        holder_id,
        available_grams,
        state,
        dispatch_event_id,
        origin,
        created_event_id,
        created_index,
        facility_id,
        scrap_origin,
        updated_index,
    ) = row
    return Lot(
        lot_id=_str(lot_id, "lots.lot_id"),
        material=_str(material, "lots.material"),
        mass_grams=_int(mass_grams, "lots.mass_grams"),
        contents=_pairs(contents, "lots.contents"),
        holder_id=_str(holder_id, "lots.holder_id"),
        available_grams=_int(available_grams, "lots.available_grams"),
        state=_lot_state(state, "lots.state"),
        dispatch_event_id=_opt_str(dispatch_event_id, "lots.dispatch_event_id"),
        origin=_lot_origin(origin, "lots.origin"),
        created_event_id=_str(created_event_id, "lots.created_event_id"),
        created_index=_int(created_index, "lots.created_index"),
        facility_id=_str(facility_id, "lots.facility_id"),
        scrap_origin=(
            None if scrap_origin is None else _scrap_origin(scrap_origin, "lots.scrap_origin")
        ),
        updated_index=_int(updated_index, "lots.updated_index"),
    )


def _event_values(record: EventRecord) -> TableRow:
    return (
        record.event_id,
        record.partner_id,
        record.kind.value,
        record.index,
        record.event_time_micros,
        record.status.value,
        record.corrected_by,
        record.updated_index,
        record.lot_id,
    )


def _event_of(row: Sequence[Any]) -> EventRecord:
    (
        event_id,
        partner_id,
        kind,
        index,
        event_time_micros,
        status,
        corrected_by,
        updated_index,
        lot_id,
    ) = row
    return EventRecord(
        event_id=_str(event_id, "events.event_id"),
        partner_id=_str(partner_id, "events.partner_id"),
        kind=_event_kind(kind, "events.kind"),
        index=_int(index, "events.idx"),
        event_time_micros=_int(event_time_micros, "events.event_time_micros"),
        status=_event_status(status, "events.status"),
        corrected_by=_opt_str(corrected_by, "events.corrected_by"),
        updated_index=_int(updated_index, "events.updated_index"),
        lot_id=_opt_str(lot_id, "events.lot_id"),
    )


def _dispatch_values(record: DispatchRecord) -> TableRow:
    return (
        record.event_id,
        record.lot_id,
        record.from_partner_id,
        record.to_partner_id,
        record.mass_grams,
        record.index,
        record.state.value,
        record.received_grams,
        record.closed_index,
        record.updated_index,
    )


def _dispatch_of(row: Sequence[Any]) -> DispatchRecord:
    (
        event_id,
        lot_id,
        from_partner_id,
        to_partner_id,
        mass_grams,
        index,
        state,
        received_grams,
        closed_index,
        updated_index,
    ) = row
    return DispatchRecord(
        event_id=_str(event_id, "dispatches.event_id"),
        lot_id=_str(lot_id, "dispatches.lot_id"),
        from_partner_id=_str(from_partner_id, "dispatches.from_partner_id"),
        to_partner_id=_str(to_partner_id, "dispatches.to_partner_id"),
        mass_grams=_int(mass_grams, "dispatches.mass_grams"),
        index=_int(index, "dispatches.idx"),
        state=_dispatch_state(state, "dispatches.state"),
        received_grams=_opt_int(received_grams, "dispatches.received_grams"),
        closed_index=_opt_int(closed_index, "dispatches.closed_index"),
        updated_index=_int(updated_index, "dispatches.updated_index"),
    )


def _transformation_values(record: TransformationRecord) -> TableRow:
    return (
        record.event_id,
        record.partner_id,
        record.facility_id,
        record.process.value,
        _encode(record.inputs),
        _encode(record.outputs),
        record.index,
        record.event_time_micros,
        record.voided,
        record.updated_index,
    )


def _transformation_of(row: Sequence[Any]) -> TransformationRecord:
    (
        event_id,
        partner_id,
        facility_id,
        process,
        inputs,
        outputs,
        index,
        event_time_micros,
        voided,
        updated_index,
    ) = row
    return TransformationRecord(
        event_id=_str(event_id, "transformations.event_id"),
        partner_id=_str(partner_id, "transformations.partner_id"),
        facility_id=_str(facility_id, "transformations.facility_id"),
        process=_process(process, "transformations.process"),
        inputs=_pairs(inputs, "transformations.inputs"),
        outputs=_strings(outputs, "transformations.outputs"),
        index=_int(index, "transformations.idx"),
        event_time_micros=_int(event_time_micros, "transformations.event_time_micros"),
        voided=_bool(voided, "transformations.voided"),
        updated_index=_int(updated_index, "transformations.updated_index"),
    )


def _assay_values(record: AssayRecord) -> TableRow:
    return (
        record.event_id,
        record.lot_id,
        record.lab_id,
        _encode(record.contents),
        record.method,
        record.sample_id,
        record.index,
        record.status.value,
        record.updated_index,
    )


def _assay_of(row: Sequence[Any]) -> AssayRecord:
    (event_id, lot_id, lab_id, contents, method, sample_id, index, status, updated_index) = row
    return AssayRecord(
        event_id=_str(event_id, "assays.event_id"),
        lot_id=_str(lot_id, "assays.lot_id"),
        lab_id=_str(lab_id, "assays.lab_id"),
        contents=_pairs(contents, "assays.contents"),
        method=_str(method, "assays.method"),
        sample_id=_str(sample_id, "assays.sample_id"),
        index=_int(index, "assays.idx"),
        status=_event_status(status, "assays.status"),
        updated_index=_int(updated_index, "assays.updated_index"),
    )


def _certification_values(record: CertificationRecord) -> TableRow:
    return (
        record.event_id,
        record.auditor_id,
        record.facility_id,
        record.scheme,
        _encode(record.metals),
        record.certification_status.value,
        record.valid_from_micros,
        record.valid_until_micros,
        record.index,
        record.status.value,
        record.updated_index,
    )


def _certification_of(row: Sequence[Any]) -> CertificationRecord:
    (
        event_id,
        auditor_id,
        facility_id,
        scheme,
        metals,
        certification_status,
        valid_from_micros,
        valid_until_micros,
        index,
        status,
        updated_index,
    ) = row
    return CertificationRecord(
        event_id=_str(event_id, "certifications.event_id"),
        auditor_id=_str(auditor_id, "certifications.auditor_id"),
        facility_id=_str(facility_id, "certifications.facility_id"),
        scheme=_str(scheme, "certifications.scheme"),
        metals=_strings(metals, "certifications.metals"),
        certification_status=_certification_status(
            certification_status, "certifications.certification_status"
        ),
        valid_from_micros=_int(valid_from_micros, "certifications.valid_from_micros"),
        valid_until_micros=_int(valid_until_micros, "certifications.valid_until_micros"),
        index=_int(index, "certifications.idx"),
        status=_event_status(status, "certifications.status"),
        updated_index=_int(updated_index, "certifications.updated_index"),
    )


def _subject_head_values(record: SubjectHead) -> TableRow:
    return (record.subject, record.index)


def _subject_head_of(row: Sequence[Any]) -> SubjectHead:
    subject, index = row
    return SubjectHead(
        subject=_str(subject, "subject_heads.subject"),
        index=_int(index, "subject_heads.idx"),
    )


def _subject_event_values(row: SubjectEvent) -> TableRow:
    return (row.subject, row.index)


def _subject_event_of(row: Sequence[Any]) -> SubjectEvent:
    subject, index = row
    return SubjectEvent(
        subject=_str(subject, "subject_events.subject"),
        index=_int(index, "subject_events.idx"),
    )


def _lot_input_values(row: LotInput) -> TableRow:
    return (
        row.event_id,
        row.lot_id,
        row.consumed_grams,
        row.index,
    )


def _lot_input_of(row: Sequence[Any]) -> LotInput:
    event_id, lot_id, consumed_grams, index = row
    return LotInput(
        lot_id=_str(lot_id, "lot_inputs.lot_id"),
        event_id=_str(event_id, "lot_inputs.event_id"),
        consumed_grams=_int(consumed_grams, "lot_inputs.consumed_grams"),
        index=_int(index, "lot_inputs.idx"),
    )


@dataclass(frozen=True, slots=True)
class _RecordTable(Generic[R]):
    """Where one record kind lives and how its records become rows and back."""

    table: Table
    key: Column[Any]
    values: Callable[[R], TableRow]  # in the table's column order, as ``record`` reads them
    record: Callable[[Sequence[Any]], R]  # a row of ``select(table)``, in column order
    by_keys: Select[Any] = field(init=False)
    """``SELECT * WHERE key IN (...)`` with one expanding parameter, built once.

    When ``key`` is a column of ``events`` (an event id), the kind's own table
    is keyed by the event's log index and is reached through ``events``.
    """

    _driver_sql: dict[tuple[str, int], str] = field(init=False, default_factory=dict)
    _booleans: tuple[int, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        keys = self.key.in_(bindparam("keys", expanding=True))
        if self.key.table is events and self.table is not events:
            source = self.table.join(events, events.c.idx == self.table.c.idx)
            query = select(self.table).select_from(source).where(keys)
        else:
            query = select(self.table).where(keys)
        object.__setattr__(self, "by_keys", query)
        booleans = tuple(
            i for i, column in enumerate(self.table.columns) if isinstance(column.type, Boolean)
        )
        object.__setattr__(self, "_booleans", booleans)

    def fetch(self, conn: Connection, keys: Sequence[object]) -> list[R]:
        """The records for ``keys`` with the query's SQL rendered once per dialect and
        count, run on the DB-API cursor: this runs several times per sequenced batch,
        and SQLAlchemy's statement processing cost more than the lookups themselves."""
        dialect = conn.dialect
        cache_key = (dialect.name, len(keys))
        sql = self._driver_sql.get(cache_key)
        if sql is None:
            # Rendered with ``?`` markers whatever the dialect; fetch_rows adapts them.
            compiled = str(self.by_keys.compile(dialect=dialect))
            sql = compiled.replace("__[POSTCOMPILE_keys]", ", ".join(["?"] * len(keys)))
            self._driver_sql[cache_key] = sql
        rows = fetch_rows(conn, sql, keys)
        if self._booleans and dialect.name == "sqlite":
            # SQLite keeps booleans as 0/1; SQLAlchemy's Boolean would have converted them.
            flags = self._booleans
            return [
                self.record([bool(v) if i in flags else v for i, v in enumerate(row)])
                for row in rows
            ]
        return [self.record(row) for row in rows]


_RECORD_TABLES: dict[type[Any], _RecordTable[Any]] = {
    Consortium: _RecordTable(consortium, consortium.c.id, _consortium_values, _consortium_of),
    Partner: _RecordTable(partners, partners.c.partner_id, _partner_values, _partner_of),
    PartnerKey: _RecordTable(partner_keys, partner_keys.c.keyid, _key_values, _key_of),
    Facility: _RecordTable(facilities, facilities.c.facility_id, _facility_values, _facility_of),
    Lot: _RecordTable(lots, lots.c.lot_id, _lot_values, _lot_of),
    EventRecord: _RecordTable(events, events.c.event_id, _event_values, _event_of),
    DispatchRecord: _RecordTable(dispatches, events.c.event_id, _dispatch_values, _dispatch_of),
    TransformationRecord: _RecordTable(
        transformations,
        events.c.event_id,
        _transformation_values,
        _transformation_of,
    ),
    AssayRecord: _RecordTable(assays, events.c.event_id, _assay_values, _assay_of),
    CertificationRecord: _RecordTable(
        certifications, events.c.event_id, _certification_values, _certification_of
    ),
    SubjectHead: _RecordTable(
        subject_heads, subject_heads.c.subject, _subject_head_values, _subject_head_of
    ),
}
assert set(_RECORD_TABLES) == set(RECORD_KINDS), "every record kind needs a table"


@dataclass(frozen=True, slots=True)
class _HistoryTable(Generic[H]):
    table: Table
    primary_key: Callable[[H], tuple[object, ...]]
    values: Callable[[H], TableRow]  # in the table's column order, as ``row`` reads them
    row: Callable[[Sequence[Any]], H]


_HISTORY_TABLES: dict[type[Any], _HistoryTable[Any]] = {
    SubjectEvent: _HistoryTable(
        subject_events,
        lambda row: (row.subject, row.index),
        _subject_event_values,
        _subject_event_of,
    ),
    LotInput: _HistoryTable(
        lot_inputs, lambda row: (row.index, row.lot_id), _lot_input_values, _lot_input_of
    ),
    Partner: _HistoryTable(
        partner_versions,
        lambda row: (row.partner_id, row.updated_index),
        _partner_values,
        _partner_of,
    ),
    Consortium: _HistoryTable(
        consortium_versions,
        lambda row: (row.updated_index,),
        _consortium_version_values,
        _consortium_version_of,
    ),
}


def _latest_per_key(history: Iterable[History]) -> dict[type[Any], dict[tuple[object, ...], Any]]:
    """History rows by type and primary key; of two with one key the later wins.

    An entry may write a partner twice (the history then holds both
    versions at one index), but its table keeps one row per index.
    """
    by_type: dict[type[Any], dict[tuple[object, ...], Any]] = {
        row_type: {} for row_type in _HISTORY_TABLES
    }
    for row in history:
        kind = type(row)
        by_type[kind][_HISTORY_TABLES[kind].primary_key(row)] = row
    return by_type


# --- dumps: one comparable picture of the whole state ------------------------------------


@dataclass(frozen=True)
class StateDump:
    """Every record and history row, in a fixed order, for comparing two states."""

    records: dict[str, tuple[Record, ...]]
    """Record kind's class name -> its records sorted by key (every kind present)."""
    history: tuple[History, ...]
    """History rows, one per stored key, sorted by ``history_order``."""


def history_order(row: History) -> tuple[str, tuple[Any, ...]]:
    """A total order on history rows: type name, then the fields in declared order."""
    return type(row).__name__, astuple(row)


def _dump(
    records: Callable[[type[Any]], Iterable[Record]], history: Iterable[History]
) -> StateDump:
    return StateDump(
        records={
            kind.__name__: tuple(sorted(records(kind), key=record_key)) for kind in RECORD_KINDS
        },
        history=tuple(sorted(history, key=history_order)),
    )


def dump_state(state: DomainState) -> StateDump:
    """The dump of an in-memory state, as ``DomainView.dump`` gives it for the database."""
    latest = _latest_per_key(state.history)
    return _dump(state.records, (row for rows in latest.values() for row in rows.values()))


# --- the store -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registry:
    """Who was who as of a tree size: what entry ``tree_size`` was checked against."""

    tree_size: int
    consortium: Consortium | None
    partners: tuple[Partner, ...]  # by partner_id
    keys: tuple[PartnerKey, ...]  # by keyid; revoked_index None unless < tree_size
    facilities: tuple[Facility, ...]  # by facility_id


class DomainStore:
    """The derived tables in the log's database (same engine as the ``LogStore``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def loader(self, conn: Connection) -> StateLoader:
        """Reads for a ``DomainState`` inside the caller's transaction."""
        return _DatabaseLoader(conn)

    def view(self, conn: Connection | None = None) -> DomainView:
        """Queries on ``conn``, or each on a short read of its own without one."""
        return DomainView(self.engine, conn)

    def flush(self, conn: Connection, state: DomainState) -> None:
        """Write what ``state`` changed: upsert its records, append its history.

        One statement per table touched, whatever the size of the batch.
        """
        try:
            for kind in RECORD_KINDS:
                changed = state.changed(kind)
                if changed:
                    mapping = _RECORD_TABLES[kind]
                    rows = [mapping.values(record) for record in changed]
                    bulk_insert(conn, mapping.table, upsert=True).write(conn, rows)
            for row_type, latest in _latest_per_key(state.history).items():
                if latest:
                    history = _HISTORY_TABLES[row_type]
                    rows = [history.values(row) for row in latest.values()]
                    bulk_insert(conn, history.table).write(conn, rows)
        except (SQLAlchemyError, OverflowError) as exc:
            # OverflowError: sqlite3 refuses integers beyond 64 bits before SQL sees them.
            raise StorageError(f"writing the domain state failed: {exc}") from exc

    def clear(self, conn: Connection) -> None:
        """Empty every derived table, before rebuilding them from the leaves."""
        try:
            if conn.dialect.name == "postgresql":
                # One statement, and no dead rows left behind for vacuum.
                names = ", ".join(f'"{table.name}"' for table in DOMAIN_TABLES)
                conn.execute(text(f"TRUNCATE {names}"))
            else:
                for table in DOMAIN_TABLES:
                    conn.execute(delete(table))
        except SQLAlchemyError as exc:
            raise StorageError(f"clearing the domain state failed: {exc}") from exc


class _DatabaseLoader:
    """A ``StateLoader`` over the derived tables, inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def load(self, kind: type[R], keys: Collection[str]) -> dict[str, R]:
        mapping: _RecordTable[R] = _RECORD_TABLES[kind]
        if kind is Consortium:
            wanted: list[object] = [_CONSORTIUM_ROW_ID] if CONSORTIUM_KEY in keys else []
        else:
            wanted = list(keys)
        found: dict[str, R] = {}
        try:
            for start in range(0, len(wanted), IN_CHUNK):
                for record in mapping.fetch(self._conn, wanted[start : start + IN_CHUNK]):
                    found[record_key(record)] = record
        except SQLAlchemyError as exc:
            raise StorageError(f"reading the domain state failed: {exc}") from exc
        return found


# --- the read side --------------------------------------------------------------------------


class DomainView:
    """Questions about the current state, each one indexed query."""

    def __init__(self, engine: Engine, conn: Connection | None = None) -> None:
        self._engine, self._conn = engine, conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            if self._conn is not None:
                yield self._conn
                return
            with self._engine.connect() as fresh:
                yield fresh
        except SQLAlchemyError as exc:
            raise StorageError(f"database read failed: {exc}") from exc

    def _rows(self, query: Select[Any]) -> Sequence[Row[Any]]:
        with self._read() as conn:
            return conn.execute(query).all()

    def _one(self, kind: type[R], key: object) -> R | None:
        mapping: _RecordTable[R] = _RECORD_TABLES[kind]
        with self._read() as conn:
            rows = conn.execute(mapping.by_keys, {"keys": [key]}).all()
        return mapping.record(rows[0]) if rows else None

    # --- single records ---------------------------------------------------------------

    def consortium(self) -> Consortium | None:
        return self._one(Consortium, _CONSORTIUM_ROW_ID)

    def partner(self, partner_id: str) -> Partner | None:
        return self._one(Partner, partner_id)

    def key(self, keyid: str) -> PartnerKey | None:
        return self._one(PartnerKey, keyid)

    def keys(self, keyids: Collection[str]) -> dict[str, PartnerKey]:
        """The registered keys among ``keyids``, by keyid, in one read (chunked)."""
        with self._read() as conn:
            return _DatabaseLoader(conn).load(PartnerKey, keyids)

    def facility(self, facility_id: str) -> Facility | None:
        return self._one(Facility, facility_id)

    def lot(self, lot_id: str) -> Lot | None:
        return self._one(Lot, lot_id)

    def event(self, event_id: str) -> EventRecord | None:
        return self._one(EventRecord, event_id)

    def dispatch(self, event_id: str) -> DispatchRecord | None:
        return self._one(DispatchRecord, event_id)

    def transformation(self, event_id: str) -> TransformationRecord | None:
        return self._one(TransformationRecord, event_id)

    def assay(self, event_id: str) -> AssayRecord | None:
        return self._one(AssayRecord, event_id)

    def certification(self, event_id: str) -> CertificationRecord | None:
        return self._one(CertificationRecord, event_id)

    def subject_head(self, subject: str) -> int | None:
        head = self._one(SubjectHead, subject)
        return None if head is None else head.index

    # --- lists -----------------------------------------------------------------------------

    def consumers_of(self, lot_id: str) -> list[LotInput]:
        """The transformations that consumed ``lot_id``, in log order."""
        rows = self._rows(
            select(lot_inputs)
            .where(lot_inputs.c.lot_id == lot_id)
            .order_by(lot_inputs.c.idx, lot_inputs.c.event_id)
        )
        return [_lot_input_of(row) for row in rows]

    def assays_of(self, lot_id: str) -> list[AssayRecord]:
        rows = self._rows(select(assays).where(assays.c.lot_id == lot_id).order_by(assays.c.idx))
        return [_assay_of(row) for row in rows]

    def certifications_of(self, facility_id: str) -> list[CertificationRecord]:
        rows = self._rows(
            select(certifications)
            .where(certifications.c.facility_id == facility_id)
            .order_by(certifications.c.idx)
        )
        return [_certification_of(row) for row in rows]

    def lots_held_by(self, partner_id: str) -> list[Lot]:
        """Lots ``partner_id`` holds or has sent and not yet seen received, by lot id."""
        rows = self._rows(
            select(lots)
            .where(
                lots.c.holder_id == partner_id,
                lots.c.state.in_([LotState.HELD.value, LotState.IN_TRANSIT.value]),
            )
            .order_by(lots.c.lot_id)
        )
        return [_lot_of(row) for row in rows]

    def lots_created_at(self, facility_id: str) -> list[Lot]:
        """Lots created at ``facility_id`` (extracted, recovered or made there), in log order."""
        rows = self._rows(
            select(lots)
            .where(lots.c.facility_id == facility_id)
            .order_by(lots.c.created_index, lots.c.lot_id)
        )
        return [_lot_of(row) for row in rows]

    def open_dispatches(self, to_partner_id: str | None = None) -> list[DispatchRecord]:
        """Dispatches not yet received (addressed to ``to_partner_id``), in log order."""
        query = select(dispatches).where(dispatches.c.state == DispatchState.OPEN.value)
        if to_partner_id is not None:
            query = query.where(dispatches.c.to_partner_id == to_partner_id)
        rows = self._rows(query.order_by(dispatches.c.idx))
        return [_dispatch_of(row) for row in rows]

    def events_for_subject(self, subject: str, *, after: int = -1, limit: int = 1000) -> list[int]:
        """Indices of leaves touching ``subject`` after ``after``, ascending, at most ``limit``."""
        if limit <= 0 or after >= MAX_INDEX:
            return []
        rows = self._rows(
            select(subject_events.c.idx)
            .where(subject_events.c.subject == subject, subject_events.c.idx > max(after, -1))
            .order_by(subject_events.c.idx)
            .limit(limit)
        )
        return [_int(index, "subject_events.idx") for (index,) in rows]

    # --- the registry at a past size ----------------------------------------------------------

    def registry_as_of(self, tree_size: int) -> Registry:
        """Partners, keys, facilities and consortium as they stood for entry ``tree_size``.

        Versions with ``updated_index < tree_size`` count: the state after the
        first ``tree_size`` entries.
        """
        if not 0 <= tree_size <= MAX_INDEX:
            raise OutOfRangeError(f"tree size {tree_size} is out of range")
        latest = (
            select(
                partner_versions.c.partner_id,
                func.max(partner_versions.c.updated_index).label("updated_index"),
            )
            .where(partner_versions.c.updated_index < tree_size)
            .group_by(partner_versions.c.partner_id)
            .subquery()
        )
        partner_query = (
            select(partner_versions)
            .join(
                latest,
                (partner_versions.c.partner_id == latest.c.partner_id)
                & (partner_versions.c.updated_index == latest.c.updated_index),
            )
            .order_by(partner_versions.c.partner_id)
        )
        consortium_query = (
            select(consortium_versions)
            .where(consortium_versions.c.updated_index < tree_size)
            .order_by(consortium_versions.c.updated_index.desc())
            .limit(1)
        )
        key_query = (
            select(partner_keys)
            .where(partner_keys.c.added_index < tree_size)
            .order_by(partner_keys.c.keyid)
        )
        facility_query = (
            select(facilities)
            .where(facilities.c.registered_index < tree_size)
            .order_by(facilities.c.facility_id)
        )
        with self._read() as conn:
            consortium_rows = list(conn.execute(consortium_query))
            partner_rows = list(conn.execute(partner_query))
            key_rows = list(conn.execute(key_query))
            facility_rows = list(conn.execute(facility_query))
        keys = []
        for row in key_rows:
            key = _key_of(row)
            if key.revoked_index is not None and key.revoked_index >= tree_size:
                key = replace(key, revoked_index=None)
            keys.append(key)
        return Registry(
            tree_size=tree_size,
            consortium=_consortium_version_of(consortium_rows[0]) if consortium_rows else None,
            partners=tuple(_partner_of(row) for row in partner_rows),
            keys=tuple(keys),
            facilities=tuple(_facility_of(row) for row in facility_rows),
        )

    # --- everything ---------------------------------------------------------------------------

    def dump(self) -> StateDump:
        """Every record and history row (for tests and reindex checks: reads it all)."""
        with self._read() as conn:
            by_kind = {
                kind: [mapping.record(row) for row in conn.execute(select(mapping.table))]
                for kind, mapping in _RECORD_TABLES.items()
            }
            history: list[History] = [
                table.row(row)
                for table in _HISTORY_TABLES.values()
                for row in conn.execute(select(table.table))
            ]
        return _dump(lambda kind: by_kind[kind], history)
