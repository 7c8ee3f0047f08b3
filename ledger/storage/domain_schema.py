"""Tables of the domain's derived state: the registry, the inventory and their history.

Everything here is rebuilt from the leaves by ``custody log reindex``; the
log tables in ``schema.py`` remain the only source of truth. The tables sit on
the same ``metadata`` as the log's, so Alembic's comparisons see them once this
module is imported; migration 0002 creates them.

Mapping conventions (see ``domain_store.py`` for the code that applies them):
IntEnums are stored as integers and Enums as their text value; tuples
(contents, roles, admin ids, metals, transformation inputs and outputs) as
compact JSON text; None as NULL. Log indices are named ``idx`` as in
``leaves``. Text-keyed tables are WITHOUT ROWID on SQLite, so a lookup by key is
one B-tree descent rather than two.

The tables of particular events (dispatches, transformations, assays,
certifications, lot inputs) are keyed by the event's log index, not by its
client-chosen id: their rows are then appended in key order and a batch
dirties a few pages at the end of each table, where random ids (UUIDs)
would dirty one page per row all over it; the write volume per batch would
then grow with the log. ``events`` alone maps an id to its index.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
)
from sqlalchemy.dialects import postgresql

from ledger.storage.schema import RowIndex, metadata

# Identifiers are printable ASCII; the "C" collation makes PostgreSQL order them
# bytewise like SQLite and Python do (and compare them faster) whatever the
# database's default collation.
Identifier = Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")


consortium = Table(
    "consortium",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),  # always 1
    Column("name", Text, nullable=False),
    Column("threshold", BigInteger, nullable=False),
    Column("admin_ids", Text, nullable=False),  # JSON list of partner ids
    Column("updated_index", BigInteger, nullable=False),
)

consortium_versions = Table(
    "consortium_versions",
    metadata,
    Column("updated_index", RowIndex, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("threshold", BigInteger, nullable=False),
    Column("admin_ids", Text, nullable=False),
)

partners = Table(
    "partners",
    metadata,
    Column("partner_id", Identifier, primary_key=True),
    Column("legal_name", Text, nullable=False),
    Column("country", Text, nullable=False),
    Column("roles", Text, nullable=False),  # JSON list of Role values
    Column("admitted_index", BigInteger, nullable=False),
    Column("updated_index", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

partner_versions = Table(
    "partner_versions",
    metadata,
    # The columns of ``partners`` in the same order, so one decoder reads both.
    Column("partner_id", Identifier, nullable=False),
    Column("legal_name", Text, nullable=False),
    Column("country", Text, nullable=False),
    Column("roles", Text, nullable=False),
    Column("admitted_index", BigInteger, nullable=False),
    Column("updated_index", BigInteger, nullable=False),
    PrimaryKeyConstraint("partner_id", "updated_index"),
    sqlite_with_rowid=False,
)

partner_keys = Table(
    "partner_keys",
    metadata,
    Column("keyid", Identifier, primary_key=True),
    Column("partner_id", Identifier, nullable=False),
    Column("public_key", LargeBinary, nullable=False),
    Column("added_index", BigInteger, nullable=False),
    Column("revoked_index", BigInteger, nullable=True),
    Index("ix_partner_keys_partner", "partner_id"),
    sqlite_with_rowid=False,
)

facilities = Table(
    "facilities",
    metadata,
    Column("facility_id", Identifier, primary_key=True),
    Column("partner_id", Identifier, nullable=False),
    Column("name", Text, nullable=False),
    Column("type", SmallInteger, nullable=False),  # FacilityType
    Column("country", Text, nullable=False),
    Column("latitude_e6", Integer, nullable=False),
    Column("longitude_e6", Integer, nullable=False),
    Column("rmi_smelter_id", Text, nullable=False),
    Column("artisanal", Boolean, nullable=False),
    Column("registered_index", BigInteger, nullable=False),
    Index("ix_facilities_partner", "partner_id"),
    sqlite_with_rowid=False,
)

lots = Table(
    "lots",
    metadata,
    Column("lot_id", Identifier, primary_key=True),
    Column("material", Text, nullable=False),
    Column("mass_grams", BigInteger, nullable=False),
    Column("contents", Text, nullable=False),  # JSON [[element, ppm], ...]
    Column("holder_id", Identifier, nullable=False),
    Column("available_grams", BigInteger, nullable=False),
    Column("state", Text, nullable=False),  # LotState
    Column("dispatch_event_id", Identifier, nullable=True),
    Column("origin", Text, nullable=False),  # LotOrigin
    Column("created_event_id", Identifier, nullable=False),
    Column("created_index", BigInteger, nullable=False),
    Column("facility_id", Identifier, nullable=False),
    Column("scrap_origin", SmallInteger, nullable=True),  # ScrapOrigin
    Column("updated_index", BigInteger, nullable=False),
    # With the state, "what does X hold now" skips the lots X consumed long ago.
    Index("ix_lots_holder", "holder_id", "state"),
    Index("ix_lots_facility", "facility_id", "created_index"),
    sqlite_with_rowid=False,
)

events = Table(
    "events",
    metadata,
    Column("event_id", Identifier, primary_key=True),
    Column("partner_id", Identifier, nullable=False),
    Column("kind", Text, nullable=False),  # EventKind
    Column("idx", BigInteger, nullable=False),
    Column("event_time_micros", BigInteger, nullable=False),
    Column("status", Text, nullable=False),  # EventStatus
    Column("corrected_by", Identifier, nullable=True),
    Column("updated_index", BigInteger, nullable=False),
    Column("lot_id", Identifier, nullable=True),  # the lot an extraction or recovery created
    sqlite_with_rowid=False,
)

dispatches = Table(
    "dispatches",
    metadata,
    Column("event_id", Identifier, nullable=False),
    Column("lot_id", Identifier, nullable=False),
    Column("from_partner_id", Identifier, nullable=False),
    Column("to_partner_id", Identifier, nullable=False),
    Column("mass_grams", BigInteger, nullable=False),
    Column("idx", RowIndex, primary_key=True, autoincrement=False),
    Column("state", Text, nullable=False),  # DispatchState
    Column("received_grams", BigInteger, nullable=True),
    Column("closed_index", BigInteger, nullable=True),
    Column("updated_index", BigInteger, nullable=False),
    # Both end in idx so that open dispatches come out in log order from the index.
    Index("ix_dispatches_to_state", "to_partner_id", "state", "idx"),
    Index("ix_dispatches_state", "state", "idx"),
)

transformations = Table(
    "transformations",
    metadata,
    Column("event_id", Identifier, nullable=False),
    Column("partner_id", Identifier, nullable=False),
    Column("facility_id", Identifier, nullable=False),
    Column("process", SmallInteger, nullable=False),  # Process
    Column("inputs", Text, nullable=False),  # JSON [[lot id, consumed grams], ...]
    Column("outputs", Text, nullable=False),  # JSON [lot id, ...]
    Column("idx", RowIndex, primary_key=True, autoincrement=False),
    Column("event_time_micros", BigInteger, nullable=False),
    Column("voided", Boolean, nullable=False),
    Column("updated_index", BigInteger, nullable=False),
)

assays = Table(
    "assays",
    metadata,
    Column("event_id", Identifier, nullable=False),
    Column("lot_id", Identifier, nullable=False),
    Column("lab_id", Identifier, nullable=False),
    Column("contents", Text, nullable=False),  # JSON [[element, ppm], ...]
    Column("method", Text, nullable=False),
    Column("sample_id", Text, nullable=False),
    Column("idx", RowIndex, primary_key=True, autoincrement=False),
    Column("status", Text, nullable=False),  # EventStatus
    Column("updated_index", BigInteger, nullable=False),
    Index("ix_assays_lot", "lot_id", "idx"),
)

certifications = Table(
    "certifications",
    metadata,
    Column("event_id", Identifier, nullable=False),
    Column("auditor_id", Identifier, nullable=False),
    Column("facility_id", Identifier, nullable=False),
    Column("scheme", Text, nullable=False),
    Column("metals", Text, nullable=False),  # JSON [symbol, ...]
    Column("certification_status", SmallInteger, nullable=False),  # CertificationStatus
    Column("valid_from_micros", BigInteger, nullable=False),
    Column("valid_until_micros", BigInteger, nullable=False),
    Column("idx", RowIndex, primary_key=True, autoincrement=False),
    Column("status", Text, nullable=False),  # EventStatus
    Column("updated_index", BigInteger, nullable=False),
    Index("ix_certifications_facility", "facility_id", "idx"),
)

subject_heads = Table(
    "subject_heads",
    metadata,
    Column("subject", Identifier, primary_key=True),
    Column("idx", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

subject_events = Table(
    "subject_events",
    metadata,
    Column("subject", Identifier, primary_key=True),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
)

lot_inputs = Table(
    "lot_inputs",
    metadata,
    Column("event_id", Identifier, nullable=False),
    Column("lot_id", Identifier, nullable=False),
    Column("consumed_grams", BigInteger, nullable=False),
    Column("idx", BigInteger, nullable=False),
    PrimaryKeyConstraint("idx", "lot_id"),
    # "Who consumed this lot", in log order.
    Index("ix_lot_inputs_lot", "lot_id", "idx"),
    sqlite_with_rowid=False,
)

DOMAIN_TABLES: tuple[Table, ...] = (
    consortium,
    consortium_versions,
    partners,
    partner_versions,
    partner_keys,
    facilities,
    lots,
    events,
    dispatches,
    transformations,
    assays,
    certifications,
    subject_heads,
    subject_events,
    lot_inputs,
)
"""Every derived table: what ``custody log reindex`` empties and refills."""
