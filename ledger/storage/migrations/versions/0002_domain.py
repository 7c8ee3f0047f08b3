"""The domain's derived state: registry, inventory, events and their history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen copies of the types in ledger/storage/schema.py and domain_schema.py.
RowIndex = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Identifier = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "consortium",
        sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("threshold", sa.BigInteger, nullable=False),
        sa.Column("admin_ids", sa.Text, nullable=False),
        sa.Column("updated_index", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "consortium_versions",
        sa.Column("updated_index", RowIndex, primary_key=True, autoincrement=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("threshold", sa.BigInteger, nullable=False),
        sa.Column("admin_ids", sa.Text, nullable=False),
    )
    op.create_table(
        "partners",
        sa.Column("partner_id", Identifier, primary_key=True),
        sa.Column("legal_name", sa.Text, nullable=False),
        sa.Column("country", sa.Text, nullable=False),
        sa.Column("roles", sa.Text, nullable=False),
        sa.Column("admitted_index", sa.BigInteger, nullable=False),
        sa.Column("updated_index", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "partner_versions",
        sa.Column("partner_id", Identifier, nullable=False),
        sa.Column("legal_name", sa.Text, nullable=False),
        sa.Column("country", sa.Text, nullable=False),
        sa.Column("roles", sa.Text, nullable=False),
        sa.Column("admitted_index", sa.BigInteger, nullable=False),
        sa.Column("updated_index", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("partner_id", "updated_index"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "partner_keys",
        sa.Column("keyid", Identifier, primary_key=True),
        sa.Column("partner_id", Identifier, nullable=False),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("added_index", sa.BigInteger, nullable=False),
        sa.Column("revoked_index", sa.BigInteger, nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_partner_keys_partner", "partner_keys", ["partner_id"])
    op.create_table(
        "facilities",
        sa.Column("facility_id", Identifier, primary_key=True),
        sa.Column("partner_id", Identifier, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("type", sa.SmallInteger, nullable=False),
        sa.Column("country", sa.Text, nullable=False),
        sa.Column("latitude_e6", sa.Integer, nullable=False),
        sa.Column("longitude_e6", sa.Integer, nullable=False),
        sa.Column("rmi_smelter_id", sa.Text, nullable=False),
        sa.Column("artisanal", sa.Boolean, nullable=False),
        sa.Column("registered_index", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_facilities_partner", "facilities", ["partner_id"])
    op.create_table(
        "lots",
        sa.Column("lot_id", Identifier, primary_key=True),
        sa.Column("material", sa.Text, nullable=False),
        sa.Column("mass_grams", sa.BigInteger, nullable=False),
        sa.Column("contents", sa.Text, nullable=False),
        sa.Column("holder_id", Identifier, nullable=False),
        sa.Column("available_grams", sa.BigInteger, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("dispatch_event_id", Identifier, nullable=True),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("created_event_id", Identifier, nullable=False),
        sa.Column("created_index", sa.BigInteger, nullable=False),
        sa.Column("facility_id", Identifier, nullable=False),
        sa.Column("scrap_origin", sa.SmallInteger, nullable=True),
        sa.Column("updated_index", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_lots_holder", "lots", ["holder_id", "state"])
    op.create_index("ix_lots_facility", "lots", ["facility_id", "created_index"])
    op.create_table(
        "events",
        sa.Column("event_id", Identifier, primary_key=True),
        sa.Column("partner_id", Identifier, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sa.Column("event_time_micros", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("corrected_by", Identifier, nullable=True),
        sa.Column("updated_index", sa.BigInteger, nullable=False),
        sa.Column("lot_id", Identifier, nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "dispatches",
        sa.Column("event_id", Identifier, nullable=False),
        sa.Column("lot_id", Identifier, nullable=False),
        sa.Column("from_partner_id", Identifier, nullable=False),
        sa.Column("to_partner_id", Identifier, nullable=False),
        sa.Column("mass_grams", sa.BigInteger, nullable=False),
        sa.Column("idx", RowIndex, primary_key=True, autoincrement=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("received_grams", sa.BigInteger, nullable=True),
        sa.Column("closed_index", sa.BigInteger, nullable=True),
        sa.Column("updated_index", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_dispatches_to_state", "dispatches", ["to_partner_id", "state", "idx"])
    op.create_index("ix_dispatches_state", "dispatches", ["state", "idx"])
    op.create_table(
        "transformations",
        sa.Column("event_id", Identifier, nullable=False),
        sa.Column("partner_id", Identifier, nullable=False),
        sa.Column("facility_id", Identifier, nullable=False),
        sa.Column("process", sa.SmallInteger, nullable=False),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
        sa.Column("idx", RowIndex, primary_key=True, autoincrement=False),
        sa.Column("event_time_micros", sa.BigInteger, nullable=False),
        sa.Column("voided", sa.Boolean, nullable=False),
        sa.Column("updated_index", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "assays",
        sa.Column("event_id", Identifier, nullable=False),
        sa.Column("lot_id", Identifier, nullable=False),
        sa.Column("lab_id", Identifier, nullable=False),
        sa.Column("contents", sa.Text, nullable=False),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("sample_id", sa.Text, nullable=False),
        sa.Column("idx", RowIndex, primary_key=True, autoincrement=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("updated_index", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_assays_lot", "assays", ["lot_id", "idx"])
    op.create_table(
        "certifications",
        sa.Column("event_id", Identifier, nullable=False),
        sa.Column("auditor_id", Identifier, nullable=False),
        sa.Column("facility_id", Identifier, nullable=False),
        sa.Column("scheme", sa.Text, nullable=False),
        sa.Column("metals", sa.Text, nullable=False),
        sa.Column("certification_status", sa.SmallInteger, nullable=False),
        sa.Column("valid_from_micros", sa.BigInteger, nullable=False),
        sa.Column("valid_until_micros", sa.BigInteger, nullable=False),
        sa.Column("idx", RowIndex, primary_key=True, autoincrement=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("updated_index", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_certifications_facility", "certifications", ["facility_id", "idx"])
    op.create_table(
        "subject_heads",
        sa.Column("subject", Identifier, primary_key=True),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "subject_events",
        sa.Column("subject", Identifier, primary_key=True),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "lot_inputs",
        sa.Column("event_id", Identifier, nullable=False),
        sa.Column("lot_id", Identifier, nullable=False),
        sa.Column("consumed_grams", sa.BigInteger, nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("idx", "lot_id"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_lot_inputs_lot", "lot_inputs", ["lot_id", "idx"])


def downgrade() -> None:
    # Dropping a table drops its indexes with it.
    for table in (
        "lot_inputs",
        "subject_events",
        "subject_heads",
        "certifications",
        "assays",
        "transformations",
        "dispatches",
        "events",
        "lots",
        "facilities",
        "partner_keys",
        "partner_versions",
        "partners",
        "consortium_versions",
        "consortium",
    ):
        op.drop_table(table)
