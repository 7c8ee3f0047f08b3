"""Tables of the log. Alembic migrations under ``migrations/`` create them.

Leaves are stored as the exact bytes the sequencer serialised. Tree nodes
hold every complete perfect subtree of level >= 1 (level 0 is the leaf hash
column), so proofs for any past size need O(log n) point reads.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
)

# SQLite only aliases the rowid for a column declared exactly INTEGER.
RowIndex = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

log_meta = Table(
    "log_meta",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("origin", Text, nullable=False),
    Column("verifier_key", Text, nullable=False),
    Column("created_micros", BigInteger, nullable=False),
)

leaves = Table(
    "leaves",
    metadata,
    Column("idx", RowIndex, primary_key=True, autoincrement=False),
    Column("entry_digest", LargeBinary(32), nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("chain_hash", LargeBinary(32), nullable=False),
    Column("leaf_bytes", LargeBinary, nullable=False),
    UniqueConstraint("entry_digest", name="uq_leaves_entry_digest"),
)

NODE_LEVEL_SHIFT = 56
"""tree_nodes.node_key = level << 56 | index: one integer key, so that a proof's
O(log n) nodes are one indexed ``IN`` lookup on every backend (SQLite does not
use a composite index for row-value ``IN``), and a level is one key range."""

tree_nodes = Table(
    "tree_nodes",
    metadata,
    Column("node_key", RowIndex, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("tree_size", RowIndex, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("note", LargeBinary, nullable=False),
    Column("signed_micros", BigInteger, nullable=False),
)
