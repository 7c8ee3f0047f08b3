"""Reads and writes of the log tables.

Every method takes an optional open connection so that the sequencer can run
its reads and writes inside the one write transaction of a batch; without one
a short read transaction is used.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Integer, Row, func, insert, literal_column, select
from sqlalchemy.exc import SQLAlchemyError

from ledger import merkle
from ledger.errors import (
    LogIntegrityError,
    LogNotInitialisedError,
    NotFoundError,
    OutOfRangeError,
    StorageError,
)
from ledger.merkle import ConsistencyProof, InclusionProof, NodeId
from ledger.records import LogInfo, StoredCheckpoint, StoredLeaf, StoredNode
from ledger.storage import database
from ledger.storage.schema import NODE_LEVEL_SHIFT, checkpoints, leaves, log_meta, tree_nodes

READ_CHUNK = 5_000
_LOG_META_ID = 1


class LogStore:
    """The log's tables in one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> LogStore:
        engine = database.create_database_engine(url)
        if migrate:
            database.migrate(engine)
        elif not database.schema_is_current(engine):
            raise StorageError("database schema is not current: run `custody db upgrade`")
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def _read(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
            return
        try:
            with self.engine.connect() as fresh:
                yield fresh
        except SQLAlchemyError as exc:
            raise StorageError(f"database read failed: {exc}") from exc

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction holding the single-writer lock."""
        try:
            with database.write_transaction(self.engine) as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(f"database write failed: {exc}") from exc

    # --- log metadata ----------------------------------------------------------

    def info(self, conn: Connection | None = None) -> LogInfo:
        with self._read(conn) as c:
            row = c.execute(select(log_meta).where(log_meta.c.id == _LOG_META_ID)).first()
        if row is None:
            raise LogNotInitialisedError("no log in this database: run `custody init` first")
        return LogInfo(
            origin=row.origin, verifier_key=row.verifier_key, created_micros=row.created_micros
        )

    def is_initialised(self) -> bool:
        with self._read(None) as c:
            return c.execute(select(log_meta.c.id)).first() is not None

    def create_log(
        self, conn: Connection, info: LogInfo, genesis_checkpoint: StoredCheckpoint
    ) -> None:
        conn.execute(
            insert(log_meta).values(
                id=_LOG_META_ID,
                origin=info.origin,
                verifier_key=info.verifier_key,
                created_micros=info.created_micros,
            )
        )
        self.insert_checkpoint(conn, genesis_checkpoint)

    # --- leaves -------------------------------------------------------------------

    def size(self, conn: Connection | None = None) -> int:
        """Number of leaves: one past the highest index stored."""
        with self._read(conn) as c:
            highest = c.execute(select(func.max(leaves.c.idx))).scalar_one()
        return 0 if highest is None else int(highest) + 1

    def leaf_count(self, conn: Connection | None = None) -> int:
        with self._read(conn) as c:
            return int(c.execute(select(func.count()).select_from(leaves)).scalar_one())

    def leaf(self, index: int, conn: Connection | None = None) -> StoredLeaf:
        with self._read(conn) as c:
            row = c.execute(select(leaves).where(leaves.c.idx == index)).first()
        if row is None:
            raise NotFoundError(f"no leaf at index {index}")
        return _leaf(row)

    def leaves_in(self, begin: int, end: int, conn: Connection | None = None) -> list[StoredLeaf]:
        """Leaves with begin <= index < end, in index order."""
        with self._read(conn) as c:
            rows = c.execute(
                select(leaves)
                .where(leaves.c.idx >= begin, leaves.c.idx < end)
                .order_by(leaves.c.idx)
            )
            return [_leaf(row) for row in rows]

    def iter_leaves(self, begin: int = 0, chunk: int = READ_CHUNK) -> Iterator[StoredLeaf]:
        """Every stored leaf from ``begin`` on, in index order, a chunk per query."""
        after = begin - 1
        while True:
            with self._read(None) as c:
                rows = c.execute(
                    select(leaves).where(leaves.c.idx > after).order_by(leaves.c.idx).limit(chunk)
                ).all()
            if not rows:
                return
            for row in rows:
                yield _leaf(row)
            after = rows[-1].idx

    def indices_for_digests(
        self, digests: Collection[bytes], conn: Connection | None = None
    ) -> dict[bytes, int]:
        """Index of each already-logged entry among ``digests``."""
        found: dict[bytes, int] = {}
        if not digests:
            return found
        with self._read(conn) as c:
            for batch in _chunks(list(digests), 900):
                rows = c.execute(
                    select(leaves.c.entry_digest, leaves.c.idx).where(
                        leaves.c.entry_digest.in_(batch)
                    )
                )
                found.update({bytes(row.entry_digest): int(row.idx) for row in rows})
        return found

    def insert_leaves(self, conn: Connection, rows: Sequence[StoredLeaf]) -> None:
        if rows:
            conn.execute(
                insert(leaves),
                [
                    {
                        "idx": r.index,
                        "entry_digest": r.entry_digest,
                        "leaf_hash": r.leaf_hash,
                        "chain_hash": r.chain_hash,
                        "leaf_bytes": r.leaf_bytes,
                    }
                    for r in rows
                ],
            )

    # --- tree nodes ---------------------------------------------------------------

    def insert_nodes(self, conn: Connection, nodes: Iterable[tuple[NodeId, bytes]]) -> None:
        values = [
            {"node_key": node_key(node), "hash": digest} for node, digest in nodes if node.level > 0
        ]
        if values:
            conn.execute(insert(tree_nodes), values)

    def fetch_nodes(
        self, ids: Collection[NodeId], conn: Connection | None = None
    ) -> dict[NodeId, bytes]:
        """Hashes of the given perfect subtrees; level 0 comes from the leaf table."""
        leaf_ids = sorted({n.index for n in ids if n.level == 0})
        inner = sorted({node_key(n) for n in ids if n.level > 0})
        found: dict[NodeId, bytes] = {}
        with self._read(conn) as c:
            if leaf_ids:
                rows = c.execute(
                    select(leaves.c.idx, leaves.c.leaf_hash).where(leaves.c.idx.in_(leaf_ids))
                )
                found.update({NodeId(0, int(r.idx)): bytes(r.leaf_hash) for r in rows})
            if inner:
                rows = c.execute(
                    select(tree_nodes.c.node_key, tree_nodes.c.hash).where(
                        tree_nodes.c.node_key.in_(inner)
                    )
                )
                found.update({node_of(int(r.node_key)): bytes(r.hash) for r in rows})
        missing = [n for n in ids if n not in found]
        if missing:
            first = min(missing, key=lambda n: (n.begin, n.level))
            raise LogIntegrityError(
                f"tree node level {first.level} index {first.index} is missing from storage",
                index=first.begin,
            )
        return found

    def iter_nodes(self, level: int, chunk: int = READ_CHUNK) -> Iterator[StoredNode]:
        """Stored nodes of one level (>= 1), in index order."""
        after = node_key(NodeId(level, 0)) - 1
        last = node_key(NodeId(level + 1, 0))
        while True:
            with self._read(None) as c:
                rows = c.execute(
                    select(tree_nodes)
                    .where(tree_nodes.c.node_key > after, tree_nodes.c.node_key < last)
                    .order_by(tree_nodes.c.node_key)
                    .limit(chunk)
                ).all()
            if not rows:
                return
            for row in rows:
                node = node_of(int(row.node_key))
                yield StoredNode(level=node.level, index=node.index, hash=bytes(row.hash))
            after = rows[-1].node_key

    def node_levels(self) -> dict[int, int]:
        """How many nodes each stored level holds."""
        # A literal shift: PostgreSQL has bigint >> integer but no bigint >> bigint.
        shift = literal_column(str(NODE_LEVEL_SHIFT), Integer)
        level = tree_nodes.c.node_key.op(">>")(shift).label("level")
        with self._read(None) as c:
            rows = c.execute(select(level, func.count()).group_by(level)).all()
        return {int(row[0]): int(row[1]) for row in rows}

    def root_at(self, size: int, conn: Connection | None = None) -> bytes:
        return merkle.root_at(size, lambda ids: self.fetch_nodes(ids, conn))

    def inclusion_proof(
        self, index: int, tree_size: int, conn: Connection | None = None
    ) -> InclusionProof:
        self._check_size(tree_size, conn)
        return merkle.build_inclusion_proof(
            index, tree_size, lambda ids: self.fetch_nodes(ids, conn)
        )

    def consistency_proof(
        self, old_size: int, new_size: int, conn: Connection | None = None
    ) -> ConsistencyProof:
        self._check_size(new_size, conn)
        return merkle.build_consistency_proof(
            old_size, new_size, lambda ids: self.fetch_nodes(ids, conn)
        )

    def _check_size(self, tree_size: int, conn: Connection | None) -> None:
        current = self.size(conn)
        if tree_size > current:
            raise OutOfRangeError(f"tree size {tree_size} is beyond the log's size {current}")

    # --- checkpoints ----------------------------------------------------------------

    def insert_checkpoint(self, conn: Connection, checkpoint: StoredCheckpoint) -> None:
        conn.execute(
            insert(checkpoints).values(
                tree_size=checkpoint.tree_size,
                root_hash=checkpoint.root_hash,
                note=checkpoint.note,
                signed_micros=checkpoint.signed_micros,
            )
        )

    def latest_checkpoint(self, conn: Connection | None = None) -> StoredCheckpoint | None:
        with self._read(conn) as c:
            row = c.execute(
                select(checkpoints).order_by(checkpoints.c.tree_size.desc()).limit(1)
            ).first()
        return None if row is None else _checkpoint(row)

    def checkpoint(self, tree_size: int, conn: Connection | None = None) -> StoredCheckpoint:
        with self._read(conn) as c:
            row = c.execute(select(checkpoints).where(checkpoints.c.tree_size == tree_size)).first()
        if row is None:
            raise NotFoundError(f"no checkpoint was signed at tree size {tree_size}")
        return _checkpoint(row)

    def iter_checkpoints(self, chunk: int = READ_CHUNK) -> Iterator[StoredCheckpoint]:
        after = -1
        while True:
            with self._read(None) as c:
                rows = c.execute(
                    select(checkpoints)
                    .where(checkpoints.c.tree_size > after)
                    .order_by(checkpoints.c.tree_size)
                    .limit(chunk)
                ).all()
            if not rows:
                return
            for row in rows:
                yield _checkpoint(row)
            after = rows[-1].tree_size


def node_key(node: NodeId) -> int:
    """The tree_nodes key of a perfect subtree."""
    return (node.level << NODE_LEVEL_SHIFT) | node.index


def node_of(key: int) -> NodeId:
    return NodeId(key >> NODE_LEVEL_SHIFT, key & ((1 << NODE_LEVEL_SHIFT) - 1))


def _leaf(row: Row[Any]) -> StoredLeaf:
    return StoredLeaf(
        index=int(row.idx),
        entry_digest=bytes(row.entry_digest),
        leaf_hash=bytes(row.leaf_hash),
        chain_hash=bytes(row.chain_hash),
        leaf_bytes=bytes(row.leaf_bytes),
    )


def _checkpoint(row: Row[Any]) -> StoredCheckpoint:
    return StoredCheckpoint(
        tree_size=int(row.tree_size),
        root_hash=bytes(row.root_hash),
        note=bytes(row.note),
        signed_micros=int(row.signed_micros),
    )


def _chunks(items: list[bytes], size: int) -> Iterator[list[bytes]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
