"""The log: metadata, leaves, tree nodes, checkpoints.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

RowIndex = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "log_meta",
        sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("verifier_key", sa.Text, nullable=False),
        sa.Column("created_micros", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "leaves",
        sa.Column("idx", RowIndex, primary_key=True, autoincrement=False),
        sa.Column("entry_digest", sa.LargeBinary(32), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("chain_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("leaf_bytes", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("entry_digest", name="uq_leaves_entry_digest"),
    )
    # node_key = level << 56 | index of a perfect subtree of level >= 1.
    op.create_table(
        "tree_nodes",
        sa.Column("node_key", RowIndex, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "checkpoints",
        sa.Column("tree_size", RowIndex, primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.LargeBinary, nullable=False),
        sa.Column("signed_micros", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("checkpoints")
    op.drop_table("tree_nodes")
    op.drop_table("leaves")
    op.drop_table("log_meta")
