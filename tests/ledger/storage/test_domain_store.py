"""The domain's derived state in the database: exact round trips, history, queries."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import fields, replace

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Table, inspect, text

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
    LotInput,
    SubjectEvent,
    record_key,
)
from ledger.errors import LogIntegrityError, OutOfRangeError, StorageError
from ledger.storage import LogStore, domain_schema
from ledger.storage.database import MIGRATIONS
from ledger.storage.domain_schema import DOMAIN_TABLES, Identifier
from ledger.storage.domain_store import DomainStore, Registry, dump_state
from ledger.storage.schema import metadata

MAX_INT64 = (1 << 63) - 1


@pytest.fixture
def log(database_url: str) -> Iterator[LogStore]:
    store = LogStore.open(database_url)  # migrates to the newest revision
    yield store
    store.close()


@pytest.fixture
def domain(log: LogStore) -> DomainStore:
    return DomainStore(log.engine)


def flush(log: LogStore, domain: DomainStore, state: DomainState) -> None:
    with log.write() as conn:
        domain.flush(conn, state)


def state_of(*records: Record) -> DomainState:
    state = DomainState()
    for record in records:
        state.put(record)
    return state


# --- a sample of every record kind, every enum member, None and not None ----------------


def sample_records() -> list[Record]:
    records: list[Record] = [
        Consortium("Cobalt Consortium ☃", 2, ("admin-a", "admin-b"), 0),
        Partner("empty-roles", "Nobody Ltd", "GB", (), 1, 1),
        Partner("all-roles", "Société Minière du Katanga", "CD", tuple(Role), 2, 9),
        PartnerKey("key-live", "all-roles", bytes(range(32)), 2, None),
        PartnerKey("key-revoked", "all-roles", b"\x00\xff" * 16, 3, 7),
        PartnerKey("key-empty", "empty-roles", b"", 0, 0),
        SubjectHead("lot:L-1", 0),
        SubjectHead("partner:all-roles", MAX_INT64),
    ]
    for number, facility_type in enumerate(FacilityType):
        records.append(
            Facility(
                facility_id=f"F-{facility_type.name}",
                partner_id="all-roles",
                name=f"Site {number} — Ünïcode 🪨",
                type=facility_type,
                country="CD",
                latitude_e6=-90_000_000 + number,
                longitude_e6=180_000_000 - number,
                rmi_smelter_id="CID001234" if number % 2 else "",
                artisanal=bool(number % 2),
                registered_index=number,
            )
        )
    scrap_origins: list[ScrapOrigin | None] = [None, *ScrapOrigin]
    for number, (lot_state, origin, scrap) in enumerate(
        itertools.product(LotState, LotOrigin, scrap_origins)
    ):
        records.append(
            Lot(
                lot_id=f"L-{number}",
                material="cobalt hydroxide",
                mass_grams=MAX_INT64 if number == 0 else 1_000 + number,
                contents=() if number % 5 == 0 else (("Co", 300_000), ("Ni", number)),
                holder_id="all-roles",
                available_grams=MAX_INT64 if number == 0 else number,
                state=lot_state,
                dispatch_event_id=f"D-{number}" if lot_state is LotState.IN_TRANSIT else None,
                origin=origin,
                created_event_id=f"E-{number}",
                created_index=number,
                facility_id="F-MINE_SITE",
                scrap_origin=scrap,
                updated_index=number + 1,
            )
        )
    for number, (kind, status) in enumerate(itertools.product(EventKind, EventStatus)):
        records.append(
            EventRecord(
                event_id=f"E-{number}",
                partner_id="all-roles",
                kind=kind,
                index=1_000 + number,
                event_time_micros=0 if number % 2 else 1_700_000_000_000_000 + number,
                status=status,
                corrected_by=None if status is EventStatus.ACTIVE else f"C-{number}",
                updated_index=100 + number,
                lot_id=f"L-{number}" if kind is EventKind.EXTRACTION else None,
            )
        )
    for number, dispatch_state in enumerate(DispatchState):
        closed = dispatch_state is not DispatchState.OPEN
        records.append(
            DispatchRecord(
                event_id=f"D-{number}",
                lot_id=f"L-{number}",
                from_partner_id="all-roles",
                to_partner_id="empty-roles",
                mass_grams=MAX_INT64 - number,
                index=10 + number,
                state=dispatch_state,
                received_grams=(900 + number) if dispatch_state is DispatchState.RECEIVED else None,
                closed_index=(20 + number) if closed else None,
                updated_index=25 + number,
            )
        )
    for number, process in enumerate(Process):
        records.append(
            TransformationRecord(
                event_id=f"T-{number}",
                partner_id="all-roles",
                facility_id="F-SMELTER",
                process=process,
                # Payload order, deliberately not sorted.
                inputs=(("L-9", 5), ("L-1", MAX_INT64)) if number % 2 else (("L-3", 1),),
                outputs=("L-z", "L-a") if number % 2 else ("L-only",),
                index=30 + number,
                event_time_micros=-1 if number == 0 else number,
                voided=bool(number % 2),
                updated_index=130 + number,
            )
        )
    for number, status in enumerate(EventStatus):
        records.append(
            AssayRecord(
                event_id=f"A-{number}",
                lot_id="L-1",
                lab_id="lab",
                contents=() if number == 0 else (("Co", 1_000_000),),
                method="ICP-OES",
                sample_id="",
                index=40 + number,
                status=status,
                updated_index=140 + number,
            )
        )
    for number, (certification_status, status) in enumerate(
        itertools.product(CertificationStatus, EventStatus)
    ):
        records.append(
            CertificationRecord(
                event_id=f"X-{number}",
                auditor_id="auditor",
                facility_id="F-REFINERY",
                scheme="RMAP",
                metals=() if number == 0 else ("Co", "Li"),
                certification_status=certification_status,
                valid_from_micros=number,
                valid_until_micros=MAX_INT64,
                index=50 + number,
                status=status,
                updated_index=150 + number,
            )
        )
    return records + _events_of(records)


def _events_of(records: list[Record]) -> list[Record]:
    """The event record each dispatch, transformation, assay and certification comes with.

    Those tables are keyed by the event's log index and reached through ``events``.
    """
    kinds = {
        DispatchRecord: EventKind.DISPATCH,
        TransformationRecord: EventKind.TRANSFORMATION,
        AssayRecord: EventKind.ASSAY,
        CertificationRecord: EventKind.CERTIFICATION,
    }
    return [
        EventRecord(
            event_id=record.event_id,
            partner_id="all-roles",
            kind=kinds[type(record)],
            index=record.index,
            event_time_micros=1,
            status=EventStatus.ACTIVE,
            corrected_by=None,
            updated_index=record.index,
        )
        for record in records
        if isinstance(
            record, DispatchRecord | TransformationRecord | AssayRecord | CertificationRecord
        )
    ]


def test_every_record_kind_round_trips_exactly(log: LogStore, domain: DomainStore) -> None:
    records = sample_records()
    assert {type(record) for record in records} == set(RECORD_KINDS)
    flush(log, domain, state_of(*records))

    with log.write() as conn:
        loader = domain.loader(conn)
        for kind in RECORD_KINDS:
            expected = {record_key(r): r for r in records if type(r) is kind}
            assert loader.load(kind, [*expected, "absent"]) == expected
            assert loader.load(kind, []) == {}

    view = domain.view()
    for record in records:
        key = record_key(record)
        match record:
            case Consortium():
                assert view.consortium() == record
            case Partner():
                assert view.partner(key) == record
            case PartnerKey():
                assert view.key(key) == record
            case Facility():
                assert view.facility(key) == record
            case Lot():
                assert view.lot(key) == record
            case EventRecord():
                assert view.event(key) == record
            case DispatchRecord():
                assert view.dispatch(key) == record
            case TransformationRecord():
                assert view.transformation(key) == record
            case AssayRecord():
                assert view.assay(key) == record
            case CertificationRecord():
                assert view.certification(key) == record
            case SubjectHead():
                assert view.subject_head(key) == record.index
    assert view.partner("absent") is None
    assert view.lot("absent") is None
    assert view.subject_head("absent") is None


def column_names_of(kind: type[Record]) -> list[str]:
    """The table columns a record kind's fields map to, in field order."""
    renamed = {"index": "idx"}  # as in ``leaves``: "index" is an SQL keyword
    names = [renamed.get(f.name, f.name) for f in fields(kind)]
    return ["id", *names] if kind is Consortium else names  # the one consortium row


TABLE_OF_KIND: dict[type[Record], Table] = {
    Consortium: domain_schema.consortium,
    Partner: domain_schema.partners,
    PartnerKey: domain_schema.partner_keys,
    Facility: domain_schema.facilities,
    Lot: domain_schema.lots,
    EventRecord: domain_schema.events,
    DispatchRecord: domain_schema.dispatches,
    TransformationRecord: domain_schema.transformations,
    AssayRecord: domain_schema.assays,
    CertificationRecord: domain_schema.certifications,
    SubjectHead: domain_schema.subject_heads,
}


@pytest.mark.parametrize("kind", RECORD_KINDS, ids=lambda kind: kind.__name__)
def test_every_record_field_has_its_column(kind: type[Record]) -> None:
    """A field added to a record without a column here would be lost on the way back."""
    table = TABLE_OF_KIND[kind]
    assert [column.name for column in table.columns] == column_names_of(kind)
    if kind is Partner:  # its versions are decoded by the same code
        assert [c.name for c in domain_schema.partner_versions.columns] == column_names_of(kind)


def test_an_empty_database_has_no_consortium(domain: DomainStore) -> None:
    assert domain.view().consortium() is None
    assert domain.view().registry_as_of(10) == Registry(10, None, (), (), ())


def test_a_state_reads_through_the_loader(log: LogStore, domain: DomainStore) -> None:
    records = sample_records()
    flush(log, domain, state_of(*records))
    with log.write() as conn:
        state = DomainState(loader=domain.loader(conn))
        assert state.consortium() == records[0]
        assert state.get(Consortium, CONSORTIUM_KEY) == records[0]
        assert state.partner("all-roles") == records[2]
        assert state.lot("absent") is None


def test_loads_beyond_one_in_chunk(log: LogStore, domain: DomainStore) -> None:
    heads = [SubjectHead(f"lot:{number:05}", number) for number in range(2_100)]
    flush(log, domain, state_of(*heads))
    with log.write() as conn:
        loaded = domain.loader(conn).load(SubjectHead, [h.subject for h in heads])
    assert loaded == {head.subject: head for head in heads}


def test_view_keys_reads_many_keyids_at_once(log: LogStore, domain: DomainStore) -> None:
    """More keyids than one IN list holds; unknown ones are left out."""
    keys = [
        PartnerKey(f"{number:064x}", "all-roles", number.to_bytes(32, "big"), number, None)
        for number in range(1_000)
    ]
    flush(log, domain, state_of(*keys))
    unknown = f"{5_000:064x}"
    found = domain.view().keys([*(key.keyid for key in keys), unknown])
    assert found == {key.keyid: key for key in keys}
    assert domain.view().keys([]) == {}


def test_flush_upserts_the_latest_version(log: LogStore, domain: DomainStore) -> None:
    lot = next(r for r in sample_records() if isinstance(r, Lot))
    flush(log, domain, state_of(lot))
    moved = replace(
        lot,
        holder_id="someone-else",
        state=LotState.IN_TRANSIT,
        dispatch_event_id="D-x",
        scrap_origin=ScrapOrigin.POST_CONSUMER,
        updated_index=99,
    )
    with log.write() as conn:
        state = DomainState(loader=domain.loader(conn))
        assert state.lot(lot.lot_id) == lot
        state.put(replace(lot, available_grams=1))  # superseded within the batch
        state.put(moved)
        domain.flush(conn, state)
    assert domain.view().lot(lot.lot_id) == moved
    assert domain.view().dump().records["Lot"] == (moved,)
    back = replace(moved, state=LotState.HELD, dispatch_event_id=None, scrap_origin=None)
    flush(log, domain, state_of(back))
    assert domain.view().lot(lot.lot_id) == back


def test_history_rows_land_in_their_tables(log: LogStore, domain: DomainStore) -> None:
    partner = Partner("p", "P Ltd", "AU", (Role.MINE,), 3, 3)
    consortium = Consortium("c", 1, ("admin",), 0)
    state = state_of(consortium, partner)
    state.append(SubjectEvent("partner:p", 3))
    state.append(LotInput("L-1", "T-1", 500, 4))
    flush(log, domain, state)
    # A later batch: a new version of each, and more rows.
    with log.write() as conn:
        state = DomainState(loader=domain.loader(conn))
        state.put(replace(partner, roles=(Role.MINE, Role.TRADER), updated_index=5))
        state.put(replace(consortium, threshold=2, updated_index=6))
        state.append(SubjectEvent("partner:p", 5))
        state.append(LotInput("L-2", "T-1", 7, 4))
        domain.flush(conn, state)
    assert domain.view().dump().history == (
        Consortium("c", 1, ("admin",), 0),
        Consortium("c", 2, ("admin",), 6),
        LotInput("L-1", "T-1", 500, 4),
        LotInput("L-2", "T-1", 7, 4),
        Partner("p", "P Ltd", "AU", (Role.MINE,), 3, 3),
        Partner("p", "P Ltd", "AU", (Role.MINE, Role.TRADER), 3, 5),
        SubjectEvent("partner:p", 3),
        SubjectEvent("partner:p", 5),
    )


def test_two_versions_at_one_index_keep_the_last(log: LogStore, domain: DomainStore) -> None:
    first = Partner("p", "P Ltd", "AU", (Role.MINE,), 3, 3)
    last = replace(first, roles=(Role.MINE, Role.ADMIN))
    state = state_of(first, last)
    flush(log, domain, state)
    dump = domain.view().dump()
    assert dump.history == (last,)
    assert dump == dump_state(state)
    assert domain.view().registry_as_of(4).partners == (last,)


def test_an_integer_beyond_64_bits_is_a_storage_error(log: LogStore, domain: DomainStore) -> None:
    too_heavy = replace(lot("x", "p", LotState.HELD), mass_grams=MAX_INT64 + 1)
    with pytest.raises(StorageError):
        flush(log, domain, state_of(too_heavy))
    assert domain.view().lot("x") is None


def test_a_duplicate_history_row_is_a_storage_error(log: LogStore, domain: DomainStore) -> None:
    state = DomainState()
    state.append(SubjectEvent("lot:a", 1))
    flush(log, domain, state)
    with pytest.raises(StorageError):
        flush(log, domain, state)


# --- the registry as of a tree size ---------------------------------------------------------


def build_registry_history(log: LogStore, domain: DomainStore) -> None:
    """One entry per batch, as the sequencer would write them."""
    admin = Partner("admin", "Admin", "CH", (Role.ADMIN,), 0, 0)
    mine = Partner("mine", "Mine", "CD", (Role.MINE,), 1, 1)
    entries: list[list[Record]] = [
        [Consortium("c", 1, ("admin",), 0), admin, PartnerKey("admin-k", "admin", b"a", 0, None)],
        [mine, PartnerKey("mine-k1", "mine", b"1", 1, None)],
        [PartnerKey("mine-k2", "mine", b"2", 2, None)],
        [replace(mine, roles=(Role.MINE, Role.TRADER), updated_index=3)],
        [PartnerKey("mine-k1", "mine", b"1", 1, 4)],
        [Facility("site", "mine", "Pit", FacilityType.MINE_SITE, "CD", 1, 2, "", True, 5)],
        [Consortium("c", 1, ("admin",), 6)],
    ]
    for records in entries:
        with log.write() as conn:
            state = DomainState(loader=domain.loader(conn))
            for record in records:
                state.put(record)
            domain.flush(conn, state)


def test_registry_as_of_every_size(log: LogStore, domain: DomainStore) -> None:
    build_registry_history(log, domain)
    view = domain.view()
    admin = Partner("admin", "Admin", "CH", (Role.ADMIN,), 0, 0)
    mine_v1 = Partner("mine", "Mine", "CD", (Role.MINE,), 1, 1)
    mine_v3 = Partner("mine", "Mine", "CD", (Role.MINE, Role.TRADER), 1, 3)
    admin_key = PartnerKey("admin-k", "admin", b"a", 0, None)
    k1 = PartnerKey("mine-k1", "mine", b"1", 1, None)
    k2 = PartnerKey("mine-k2", "mine", b"2", 2, None)
    site = Facility("site", "mine", "Pit", FacilityType.MINE_SITE, "CD", 1, 2, "", True, 5)
    genesis = Consortium("c", 1, ("admin",), 0)
    policy = Consortium("c", 1, ("admin",), 6)

    assert view.registry_as_of(0) == Registry(0, None, (), (), ())
    assert view.registry_as_of(1) == Registry(1, genesis, (admin,), (admin_key,), ())
    assert view.registry_as_of(2) == Registry(2, genesis, (admin, mine_v1), (admin_key, k1), ())
    assert view.registry_as_of(3).keys == (admin_key, k1, k2)
    assert view.registry_as_of(3).partners == (admin, mine_v1)
    assert view.registry_as_of(4).partners == (admin, mine_v3)
    assert view.registry_as_of(4).keys == (admin_key, k1, k2)  # revoked at 4: not yet
    assert view.registry_as_of(5).keys == (admin_key, replace(k1, revoked_index=4), k2)
    assert view.registry_as_of(5).facilities == ()
    assert view.registry_as_of(6).facilities == (site,)
    assert view.registry_as_of(6).consortium == genesis
    assert view.registry_as_of(7) == Registry(
        7, policy, (admin, mine_v3), (admin_key, replace(k1, revoked_index=4), k2), (site,)
    )
    assert view.registry_as_of(MAX_INT64).consortium == policy
    with pytest.raises(OutOfRangeError):
        view.registry_as_of(-1)
    with pytest.raises(OutOfRangeError):
        view.registry_as_of(MAX_INT64 + 1)


# --- list queries -------------------------------------------------------------------------------


def test_events_for_subject_pages_in_index_order(log: LogStore, domain: DomainStore) -> None:
    state = DomainState()
    wanted = list(range(0, 50, 2))
    for index in reversed(wanted):
        state.append(SubjectEvent("lot:a", index))
    for index in range(1, 50, 2):
        state.append(SubjectEvent("lot:b", index))
    state.append(SubjectEvent("lot:a-longer", 100))
    flush(log, domain, state)
    view = domain.view()

    pages, after = [], -1
    while page := view.events_for_subject("lot:a", after=after, limit=10):
        pages.append(page)
        after = page[-1]
    assert [len(page) for page in pages] == [10, 10, 5]
    assert [index for page in pages for index in page] == wanted
    assert view.events_for_subject("lot:a") == wanted
    assert view.events_for_subject("lot:a", after=47) == [48]
    assert view.events_for_subject("lot:a", after=-100, limit=2) == [0, 2]
    assert view.events_for_subject("lot:a", limit=0) == []
    assert view.events_for_subject("lot:a", after=MAX_INT64 + 5) == []
    assert view.events_for_subject("lot:none") == []


def lot(lot_id: str, holder: str, state: LotState) -> Lot:
    return Lot(
        lot_id=lot_id,
        material="ore",
        mass_grams=10,
        contents=(("Co", 1),),
        holder_id=holder,
        available_grams=10 if state is not LotState.CONSUMED else 0,
        state=state,
        dispatch_event_id="D" if state is LotState.IN_TRANSIT else None,
        origin=LotOrigin.EXTRACTION,
        created_event_id=f"E-{lot_id}",
        created_index=1,
        facility_id="site",
        scrap_origin=None,
        updated_index=1,
    )


def test_lots_held_by_a_partner(log: LogStore, domain: DomainStore) -> None:
    # Ids whose order differs between bytewise and natural-language collations.
    held = [
        lot("b-2", "p", LotState.HELD),
        lot("B-1", "p", LotState.IN_TRANSIT),
        lot("_c", "p", LotState.HELD),
        lot("a 3", "p", LotState.HELD),
    ]
    others = [
        lot("gone", "p", LotState.CONSUMED),
        lot("void", "p", LotState.VOIDED),
        lot("theirs", "q", LotState.HELD),
    ]
    flush(log, domain, state_of(*held, *others))
    view = domain.view()
    assert view.lots_held_by("p") == sorted(held, key=lambda x: x.lot_id)
    assert view.lots_held_by("q") == [others[-1]]
    assert view.lots_held_by("nobody") == []


def dispatch(event_id: str, to: str, state: DispatchState, index: int) -> DispatchRecord:
    closed = None if state is DispatchState.OPEN else index + 1
    return DispatchRecord(event_id, "L", "from", to, 5, index, state, None, closed, index)


def test_open_dispatches_in_log_order(log: LogStore, domain: DomainStore) -> None:
    to_p = [dispatch("z", "p", DispatchState.OPEN, 3), dispatch("a", "p", DispatchState.OPEN, 9)]
    to_q = [dispatch("m", "q", DispatchState.OPEN, 5)]
    closed = [
        dispatch("r", "p", DispatchState.RECEIVED, 1),
        dispatch("c", "p", DispatchState.CANCELLED, 2),
    ]
    flush(log, domain, state_of(*to_p, *closed, *to_q))
    view = domain.view()
    assert view.open_dispatches("p") == to_p
    assert view.open_dispatches("q") == to_q
    assert view.open_dispatches("nobody") == []
    assert view.open_dispatches() == [to_p[0], to_q[0], to_p[1]]


def test_consumers_assays_and_certifications(log: LogStore, domain: DomainStore) -> None:
    state = DomainState()
    for row in [
        LotInput("L", "T-b", 1, 9),
        LotInput("L", "T-a", 2, 7),
        LotInput("L", "T-0", 3, 2),
        LotInput("other", "T-a", 4, 7),
    ]:
        state.append(row)
    assays = [
        AssayRecord(f"A-{i}", "L", "lab", (("Co", i),), "XRF", "s", i, EventStatus.ACTIVE, i)
        for i in (8, 3, 5)
    ]
    certifications = [
        CertificationRecord(
            f"X-{i}",
            "aud",
            "F",
            "RMAP",
            ("Co",),
            CertificationStatus.ACTIVE,
            0,
            1,
            i,
            EventStatus.ACTIVE,
            i,
        )
        for i in (4, 1)
    ]
    records: list[Record] = [*assays, *certifications]
    for record in records:
        state.put(record)
    flush(log, domain, state)
    view = domain.view()
    assert view.consumers_of("L") == [
        LotInput("L", "T-0", 3, 2),
        LotInput("L", "T-a", 2, 7),
        LotInput("L", "T-b", 1, 9),
    ]
    assert view.consumers_of("nothing") == []
    assert view.assays_of("L") == sorted(assays, key=lambda a: a.index)
    assert view.assays_of("M") == []
    assert view.certifications_of("F") == sorted(certifications, key=lambda c: c.index)
    assert view.certifications_of("G") == []


# --- dumps and reindexing ------------------------------------------------------------------------


def full_state() -> DomainState:
    state = state_of(*sample_records())
    state.put(Partner("all-roles", "Renamed", "CD", (Role.LAB,), 2, 60))  # a second version
    for index in (3, 1, 2):
        state.append(SubjectEvent("lot:L-1", index))
    state.append(LotInput("L-1", "T-1", 5, 31))
    state.append(LotInput("L-9", "T-1", 5, 31))
    return state


def test_dump_equals_the_in_memory_dump(log: LogStore, domain: DomainStore) -> None:
    state = full_state()
    flush(log, domain, state)
    assert domain.view().dump() == dump_state(state)


def test_batches_in_the_database_equal_one_in_memory_replay(
    log: LogStore, domain: DomainStore
) -> None:
    """What the sequencer builds batch by batch is what a replay builds in memory."""
    records = sample_records()
    replay = DomainState()
    batches = [records[i : i + 7] for i in range(0, len(records), 7)]
    for number, batch in enumerate(batches):
        with log.write() as conn:
            state = DomainState(loader=domain.loader(conn))
            for record in batch:
                for target in (state, replay):
                    target.put(record)
            for target in (state, replay):
                target.append(SubjectEvent("partner:all-roles", number))
            if number % 3 == 0 and (lot_in_db := state.lot("L-1")) is not None:
                for target in (state, replay):
                    target.put(replace(lot_in_db, available_grams=number, updated_index=number))
            domain.flush(conn, state)
    assert domain.view().dump() == dump_state(replay)


def test_clear_empties_every_derived_table(log: LogStore, domain: DomainStore) -> None:
    flush(log, domain, full_state())
    with log.write() as conn:
        domain.clear(conn)
    empty = dump_state(DomainState())
    assert domain.view().dump() == empty
    assert all(records == () for records in empty.records.values())
    assert empty.history == ()
    flush(log, domain, full_state())  # and it fills again, history and all
    assert domain.view().dump() == dump_state(full_state())


def test_reads_share_the_callers_transaction(log: LogStore, domain: DomainStore) -> None:
    lot_record = lot("x", "p", LotState.HELD)
    with log.write() as conn:
        domain.flush(conn, state_of(lot_record))
        assert domain.view(conn).lot("x") == lot_record
        assert domain.view(conn).lots_held_by("p") == [lot_record]


# --- tampering ------------------------------------------------------------------------------------


def tamper(log: LogStore, statement: str) -> None:
    with log.write() as conn:
        conn.execute(text(statement))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE lots SET state = 'lost'",
        "UPDATE lots SET contents = 'not json'",
        "UPDATE lots SET contents = '{\"Co\": 1}'",
        'UPDATE lots SET contents = \'[["Co", "1"]]\'',
        "UPDATE lots SET contents = '[[\"Co\", true]]'",
        "UPDATE lots SET scrap_origin = 7",
    ],
)
def test_a_tampered_row_is_an_integrity_error(
    log: LogStore, domain: DomainStore, statement: str
) -> None:
    flush(log, domain, state_of(lot("x", "p", LotState.HELD)))
    tamper(log, statement)
    with pytest.raises(LogIntegrityError):
        domain.view().lot("x")
    with pytest.raises(LogIntegrityError), log.write() as conn:
        domain.loader(conn).load(Lot, ["x"])


def test_a_wrongly_typed_value_is_an_integrity_error_on_sqlite(
    log: LogStore, domain: DomainStore
) -> None:
    if log.backend != "sqlite":
        pytest.skip("PostgreSQL enforces column types itself")
    flush(log, domain, state_of(*sample_records()))
    tamper(log, "UPDATE lots SET mass_grams = 'heavy' WHERE lot_id = 'L-1'")
    tamper(log, "UPDATE partner_keys SET public_key = 'text' WHERE keyid = 'key-live'")
    tamper(log, "UPDATE facilities SET type = 'two' WHERE facility_id = 'F-SMELTER'")
    view = domain.view()
    with pytest.raises(LogIntegrityError, match=r"lots\.mass_grams"):
        view.lot("L-1")
    with pytest.raises(LogIntegrityError, match=r"partner_keys\.public_key"):
        view.key("key-live")
    with pytest.raises(LogIntegrityError, match=r"facilities\.type"):
        view.facility("F-SMELTER")


# --- the schema ----------------------------------------------------------------------------------


def test_the_migrated_schema_matches_the_metadata(log: LogStore) -> None:
    with log.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
        assert_dialect_details(conn)


def assert_dialect_details(conn: Connection) -> None:
    """What compare_metadata does not look at: WITHOUT ROWID and the "C" collation."""
    if conn.dialect.name == "sqlite":
        for table in DOMAIN_TABLES:
            sql = conn.execute(
                text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"),
                {"name": table.name},
            ).scalar_one()
            assert ("WITHOUT ROWID" in sql) == (not table.dialect_options["sqlite"]["with_rowid"])
        return
    for table in DOMAIN_TABLES:
        collations: dict[str, str | None] = dict(
            conn.execute(
                text(
                    "SELECT column_name, collation_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = :name"
                ),
                {"name": table.name},
            ).all()
        )
        for column in table.columns:
            expected = "C" if column.type is Identifier else None
            assert collations[column.name] == expected, (table.name, column.name)


def test_the_domain_migration_downgrades_and_upgrades(log: LogStore) -> None:
    def alembic(conn: Connection) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        return config

    with log.write() as conn:
        command.downgrade(alembic(conn), "0001")
    tables = set(inspect(log.engine).get_table_names())
    assert tables.isdisjoint(table.name for table in DOMAIN_TABLES)
    assert {"leaves", "tree_nodes", "checkpoints", "log_meta"} <= tables
    with log.write() as conn:
        command.upgrade(alembic(conn), "head")
    with log.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
