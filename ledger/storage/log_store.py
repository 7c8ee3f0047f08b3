"""Reads and writes of the log tables.

Every method takes an optional open connection so that the sequencer can run
its reads and writes inside the one write transaction of a batch; without one
a short read transaction is used.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Row,
    func,
    insert,
    literal_column,
    select,
    union_all,
)
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
_LATEST_HEAD_SQL = "SELECT tree_size, root_hash FROM checkpoints ORDER BY tree_size DESC LIMIT 1"
_DIGESTS_SQL = "SELECT entry_digest, idx FROM leaves WHERE entry_digest IN ("
_P = TypeVar("_P", InclusionProof, ConsistencyProof)
MAX_INDEX = (1 << 63) - 1
_LOG_META_ID = 1


class LogStore:
    """The log's tables in one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> LogStore:
        """Open the log's database; migrate its schema only when asked to."""
        engine = database.create_database_engine(url, create=migrate)
        if migrate:
            database.migrate(engine)
            return cls(engine)
        current, wanted = database.schema_revisions(engine)
        if not current:
            engine.dispose()
            raise LogNotInitialisedError("no log in this database: run `custody init` first")
        if current != wanted:
            engine.dispose()
            raise StorageError(
                f"database schema is at {sorted(current)}, this version needs {sorted(wanted)}: "
                "run `custody db upgrade`"
            )
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
    def snapshot(self) -> Iterator[Connection]:
        """A read transaction that sees one consistent state of the log throughout.

        SQLite in WAL mode pins a snapshot at the first read of a transaction;
        PostgreSQL needs REPEATABLE READ for the same.
        """
        try:
            with self.engine.connect() as base:
                conn = (
                    base.execution_options(isolation_level="REPEATABLE READ")
                    if base.dialect.name == "postgresql"
                    else base
                )
                with conn.begin():
                    yield conn
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
        if not isinstance(row.origin, str) or not isinstance(row.verifier_key, str):
            raise LogIntegrityError("log metadata is not text")
        return LogInfo(
            origin=row.origin,
            verifier_key=row.verifier_key,
            created_micros=_integer(row.created_micros, "log creation time"),
        )

    def is_initialised(self, conn: Connection | None = None) -> bool:
        with self._read(conn) as c:
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
        if not 0 <= index <= MAX_INDEX:
            raise NotFoundError(f"no leaf at index {index}")
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

    def iter_leaves(
        self, begin: int = 0, chunk: int = READ_CHUNK, conn: Connection | None = None
    ) -> Iterator[StoredLeaf]:
        """Every stored leaf from ``begin`` on, in index order, a chunk per query."""
        after = begin - 1
        while True:
            with self._read(conn) as c:
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
                # Once per sequenced batch: on the cursor, below SQLAlchemy's statement cost.
                sql = _DIGESTS_SQL + ", ".join(["?"] * len(batch)) + ")"
                for digest, index in database.fetch_rows(c, sql, batch):
                    found[bytes(digest)] = _integer(index, "leaf index")
        return found

    def insert_leaves(self, conn: Connection, rows: Sequence[StoredLeaf]) -> None:
        database.bulk_insert(conn, leaves).write(
            conn, [(r.index, r.entry_digest, r.leaf_hash, r.chain_hash, r.leaf_bytes) for r in rows]
        )

    # --- tree nodes ---------------------------------------------------------------

    def insert_nodes(self, conn: Connection, nodes: Iterable[tuple[NodeId, bytes]]) -> None:
        rows = [(node_key(node), digest) for node, digest in nodes if node.level > 0]
        database.bulk_insert(conn, tree_nodes).write(conn, rows)

    def fetch_nodes(
        self, ids: Collection[NodeId], conn: Connection | None = None
    ) -> dict[NodeId, bytes]:
        """Hashes of the given perfect subtrees, in one round trip.

        Level 0 comes from the leaf table; since node_key(NodeId(0, i)) == i,
        both tables answer in the one key space.
        """
        leaf_keys = sorted({n.index for n in ids if n.level == 0})
        inner_keys = sorted({node_key(n) for n in ids if n.level > 0})
        parts = []
        if leaf_keys:
            parts.append(
                select(leaves.c.idx.label("k"), leaves.c.leaf_hash.label("h")).where(
                    leaves.c.idx.in_(leaf_keys)
                )
            )
        if inner_keys:
            parts.append(
                select(tree_nodes.c.node_key.label("k"), tree_nodes.c.hash.label("h")).where(
                    tree_nodes.c.node_key.in_(inner_keys)
                )
            )
        found: dict[NodeId, bytes] = {}
        if parts:
            query = parts[0] if len(parts) == 1 else union_all(*parts)
            with self._read(conn) as c:
                for key, digest in c.execute(query):
                    node = node_of(int(key))
                    found[node] = _hash(digest, f"hash of {node}", node.begin)
        missing = [n for n in ids if n not in found]
        if missing:
            first = min(missing, key=lambda n: (n.begin, n.level))
            raise LogIntegrityError(
                f"tree node level {first.level} index {first.index} is missing from storage",
                index=first.begin,
            )
        return found

    def iter_nodes(
        self, level: int, chunk: int = READ_CHUNK, conn: Connection | None = None
    ) -> Iterator[StoredNode]:
        """Stored nodes of one level (>= 1), in index order."""
        after = node_key(NodeId(level, 0)) - 1
        last = node_key(NodeId(level + 1, 0))
        while True:
            with self._read(conn) as c:
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
                digest = _hash(row.hash, f"tree node level {node.level} index {node.index}")
                yield StoredNode(level=node.level, index=node.index, hash=digest)
            after = rows[-1].node_key

    def node_levels(self, conn: Connection | None = None) -> dict[int, int]:
        """How many nodes each stored level holds."""
        # A literal shift: PostgreSQL has bigint >> integer but no bigint >> bigint.
        shift = literal_column(str(NODE_LEVEL_SHIFT), Integer)
        level = tree_nodes.c.node_key.op(">>")(shift).label("level")
        with self._read(conn) as c:
            rows = c.execute(select(level, func.count()).group_by(level)).all()
        return {int(row[0]): int(row[1]) for row in rows}

    def root_at(self, size: int, conn: Connection | None = None) -> bytes:
        return merkle.root_at(size, lambda ids: self.fetch_nodes(ids, conn))

    def inclusion_proof(
        self, index: int, tree_size: int, conn: Connection | None = None
    ) -> InclusionProof:
        def build(c: Connection | None) -> InclusionProof:
            return merkle.build_inclusion_proof(index, tree_size, lambda i: self.fetch_nodes(i, c))

        return self._within_size(tree_size, conn, build)

    def consistency_proof(
        self, old_size: int, new_size: int, conn: Connection | None = None
    ) -> ConsistencyProof:
        def build(c: Connection | None) -> ConsistencyProof:
            return merkle.build_consistency_proof(
                old_size, new_size, lambda i: self.fetch_nodes(i, c)
            )

        return self._within_size(new_size, conn, build)

    def _within_size(
        self, tree_size: int, conn: Connection | None, build: Callable[[Connection | None], _P]
    ) -> _P:
        """Build a proof; only if nodes are missing ask whether the size was beyond the log.

        The common case thus costs a single round trip to the database.
        """
        if not 0 <= tree_size <= MAX_INDEX:
            raise OutOfRangeError(f"tree size {tree_size} is out of range")
        if conn is None:
            # Both reads must see one state, or a log growing meanwhile looks damaged.
            with self.snapshot() as snapshot:
                return self._within_size(tree_size, snapshot, build)
        try:
            return build(conn)
        except LogIntegrityError:
            current = self.size(conn)
            if tree_size > current:
                raise OutOfRangeError(
                    f"tree size {tree_size} is beyond the log's size {current}"
                ) from None
            raise

    # --- checkpoints ----------------------------------------------------------------

    def insert_checkpoint(self, conn: Connection, checkpoint: StoredCheckpoint) -> None:
        row = (
            checkpoint.tree_size,
            checkpoint.root_hash,
            checkpoint.note,
            checkpoint.signed_micros,
        )
        database.bulk_insert(conn, checkpoints).write(conn, [row])

    def latest_checkpoint(self, conn: Connection | None = None) -> StoredCheckpoint | None:
        with self._read(conn) as c:
            row = c.execute(
                select(checkpoints).order_by(checkpoints.c.tree_size.desc()).limit(1)
            ).first()
        return None if row is None else _checkpoint(row)

    def latest_signed_head(self, conn: Connection | None = None) -> tuple[int, bytes] | None:
        """Size and root of the latest checkpoint, without its note: the per-batch check
        whether another process moved the log on."""
        with self._read(conn) as c:
            rows = database.fetch_rows(c, _LATEST_HEAD_SQL, ())
        if not rows:
            return None
        tree_size, root_hash = rows[0]
        return _integer(tree_size, "checkpoint tree size"), _hash(root_hash, "checkpoint root")

    def checkpoint(self, tree_size: int, conn: Connection | None = None) -> StoredCheckpoint:
        if not 0 <= tree_size <= MAX_INDEX:
            raise NotFoundError(f"no checkpoint was signed at tree size {tree_size}")
        with self._read(conn) as c:
            row = c.execute(select(checkpoints).where(checkpoints.c.tree_size == tree_size)).first()
        if row is None:
            raise NotFoundError(f"no checkpoint was signed at tree size {tree_size}")
        return _checkpoint(row)

    def iter_checkpoints(
        self, chunk: int = READ_CHUNK, conn: Connection | None = None
    ) -> Iterator[StoredCheckpoint]:
        after = -1
        while True:
            with self._read(conn) as c:
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


class LogView:
    """A LogStore's reads bound to one connection, e.g. a snapshot (a ``LogSource``)."""

    def __init__(self, store: LogStore, conn: Connection) -> None:
        self._store, self._conn = store, conn

    def info(self) -> LogInfo:
        return self._store.info(self._conn)

    def iter_leaves(self) -> Iterator[StoredLeaf]:
        return self._store.iter_leaves(conn=self._conn)

    def iter_nodes(self, level: int) -> Iterator[StoredNode]:
        return self._store.iter_nodes(level, conn=self._conn)

    def node_levels(self) -> dict[int, int]:
        return self._store.node_levels(self._conn)

    def iter_checkpoints(self) -> Iterator[StoredCheckpoint]:
        return self._store.iter_checkpoints(conn=self._conn)


def _blob(value: object, what: str, index: int | None = None, *, size: int | None = None) -> bytes:
    """A binary column's value; anything else means the row was tampered with."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise LogIntegrityError(
            f"{what} is stored as {type(value).__name__}, not bytes", index=index
        )
    data = bytes(value)
    if size is not None and len(data) != size:
        raise LogIntegrityError(f"{what} is {len(data)} bytes, not {size}", index=index)
    return data


def _hash(value: object, what: str, index: int | None = None) -> bytes:
    return _blob(value, what, index, size=merkle.HASH_SIZE)


def _integer(value: object, what: str, index: int | None = None) -> int:
    # SQLite stores whatever it is given; a non-integer here was put there by hand.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise LogIntegrityError(
        f"{what} is stored as {type(value).__name__}, not an integer", index=index
    )


def _leaf(row: Row[Any]) -> StoredLeaf:
    index = _integer(row.idx, "leaf index")
    where = f"leaf {index}"
    return StoredLeaf(
        index=index,
        entry_digest=_hash(row.entry_digest, f"{where} entry digest", index),
        leaf_hash=_hash(row.leaf_hash, f"{where} leaf hash", index),
        chain_hash=_hash(row.chain_hash, f"{where} chain hash", index),
        leaf_bytes=_blob(row.leaf_bytes, f"{where} bytes", index),
    )


def _checkpoint(row: Row[Any]) -> StoredCheckpoint:
    size = _integer(row.tree_size, "checkpoint tree size")
    where, last = f"checkpoint for tree size {size}", max(size - 1, 0)
    return StoredCheckpoint(
        tree_size=size,
        root_hash=_hash(row.root_hash, f"{where} root", last),
        note=_blob(row.note, f"{where} note", last),
        signed_micros=_integer(row.signed_micros, f"{where} signing time", last),
    )


def _chunks(items: list[bytes], size: int) -> Iterator[list[bytes]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
