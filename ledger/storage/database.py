"""Engines for the two supported backends and their schema migrations.

SQLite (WAL, synchronous=FULL) is the embedded default; PostgreSQL through
psycopg 3 is the production backend. Write transactions take the log's write
lock first: ``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock
on PostgreSQL, so several processes sharing one database still produce one
linear history.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, LargeBinary, Table, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ledger.errors import ConfigurationError, LogNotInitialisedError, StorageError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 10_000
SQLITE_CACHE_MIB_DEFAULT = 64
SQLITE_CACHE_ENV = "CUSTODY_SQLITE_CACHE_MIB"
"""SQLite's page cache per connection. Size it to the ledger's hot pages: the
random-key indexes (entry digests, event ids) of a log of n entries need
about n * 150 bytes. Pages outside it come from the OS, which on machines that
reclaim cold page cache proactively means from disk."""
# Arbitrary but fixed: every Custody process contends for this one key.
SEQUENCER_LOCK_KEY = 0x637573746F6479  # "custody"
_WRITE = "custody_write"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def default_url(data_dir: Path) -> str:
    return sqlite_url(data_dir / "custody.db")


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and pick the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def create_database_engine(url: str, *, create: bool = True, **kwargs: Any) -> Engine:
    """An engine configured for the log.

    With ``create`` a SQLite file (and its directory) may be created; without,
    a missing file means there is no log here (and nothing is left behind).
    """
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError as exc:
        raise StorageError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database)
            if not create and not path.exists():
                raise LogNotInitialisedError(f"no log database at {path}: run `custody init`")
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(engine)
    elif backend == "postgresql":
        engine = create_engine(parsed, pool_pre_ping=True, **kwargs)
    else:
        raise StorageError(f"unsupported database backend {backend!r}: use sqlite or postgresql")
    return engine


def sqlite_cache_mib() -> int:
    """The SQLite page cache size, from CUSTODY_SQLITE_CACHE_MIB (default 64 MiB)."""
    text = os.environ.get(SQLITE_CACHE_ENV, "").strip()
    if not text:
        return SQLITE_CACHE_MIB_DEFAULT
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1 << 20:
        raise ConfigurationError(f"{SQLITE_CACHE_ENV} must be a number of MiB, got {text!r}")
    return value


def _configure_sqlite(engine: Engine) -> None:
    cache_kib = sqlite_cache_mib() * 1024

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event issue BEGIN itself, so writers can ask for IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        # Checkpoint every ~40 MB of WAL rather than 4 MB: a page rewritten by several
        # batches in a row is then copied back to the database once.
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # Room for the hot pages of the indexes whose inserts land at random.
        cursor.execute(f"PRAGMA cache_size=-{cache_kib}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = "IMMEDIATE" if connection.get_execution_options().get(_WRITE) else "DEFERRED"
        connection.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction holding the log's single-writer lock until it ends."""
    with engine.connect() as base:
        connection = base.execution_options(**{_WRITE: True})
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEQUENCER_LOCK_KEY}
                )
            yield connection


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    try:
        with write_transaction(engine) as connection:
            command.upgrade(_alembic_config(connection), "head")
    except SQLAlchemyError as exc:
        raise StorageError(f"database migration failed: {exc}") from exc


def schema_revisions(engine: Engine) -> tuple[set[str], set[str]]:
    """The database's schema revisions and the code's, as Alembic names them."""
    script = ScriptDirectory(str(MIGRATIONS))
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot read the schema revision: {exc}") from exc
    return set(current), set(script.get_heads())


def schema_is_current(engine: Engine) -> bool:
    current, wanted = schema_revisions(engine)
    return current == wanted


def database_url_from_env() -> str | None:
    return os.environ.get("CUSTODY_DATABASE_URL")


def fetch_rows(conn: Connection, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
    """Run ``sql`` (``?`` placeholders) on the transaction's own DB-API cursor.

    For the few statements the sequencer runs on every batch: SQLAlchemy's statement
    processing costs more than these indexed lookups themselves. Values come back as
    the driver gives them (SQLite: booleans as 0/1); errors as ``StorageError``.
    """
    if conn.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    with _driver_cursor(conn, "read") as cursor:
        cursor.execute(sql, tuple(params))
        return [tuple(row) for row in cursor.fetchall()]


@contextmanager
def _driver_cursor(conn: Connection, what: str) -> Iterator[Any]:
    """The transaction's own DB-API cursor, closed after use; driver errors become
    ``StorageError`` ("database {what} failed")."""
    try:
        cursor = conn.connection.cursor()
        try:
            yield cursor
        finally:
            cursor.close()
    except conn.dialect.loaded_dbapi.Error as exc:
        raise StorageError(f"database {what} failed: {exc}") from exc


COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))
"""JSON without spaces: rows sent to PostgreSQL, and lists kept in text columns."""


class BulkInsert:
    """Insert (or upsert) many rows of one table in one statement, below SQLAlchemy's
    per-row parameter processing: the sequencer writes its leaves, tree nodes,
    checkpoint and derived state this way on every batch.

    SQLite gets ``executemany`` of one prepared statement (a C loop, no round
    trips). PostgreSQL gets the whole batch as one JSON document expanded by
    ``json_populate_recordset``: one round trip and one plan, where an
    executemany runs the statement once per row and arrays of parameters cost
    more to encode than the JSON does.
    """

    def __init__(self, dialect: str, table: Table, *, upsert: bool) -> None:
        self._dialect = dialect
        columns = list(table.columns)
        self._names = tuple(column.name for column in columns)
        # PostgreSQL reads bytea from JSON text in its hex form.
        self._binary = frozenset(
            i for i, column in enumerate(columns) if isinstance(column.type, LargeBinary)
        )
        names = ", ".join(_quote(name) for name in self._names)
        if dialect == "sqlite":
            source = "VALUES (" + ", ".join("?" for _ in columns) + ")"
        elif dialect == "postgresql":
            rows = f"json_populate_recordset(NULL::{_quote(table.name)}, CAST(%s AS json))"
            source = f"SELECT {names} FROM {rows}"  # noqa: S608 (names from the schema)
        else:
            raise StorageError(f"unsupported database backend {dialect!r}")
        sql = f"INSERT INTO {_quote(table.name)} ({names}) {source}"
        if upsert:
            keys = ", ".join(_quote(column.name) for column in table.primary_key.columns)
            updates = ", ".join(
                f"{_quote(column.name)} = excluded.{_quote(column.name)}"
                for column in columns
                if not column.primary_key
            )
            sql += f" ON CONFLICT ({keys}) DO UPDATE SET {updates}"
        self.sql = sql

    def write(self, conn: Connection, rows: Sequence[Sequence[object]]) -> None:
        """Rows as values in the table's column order."""
        if not rows:
            return
        if self._dialect == "sqlite":
            with _driver_cursor(conn, "write") as cursor:
                cursor.executemany(self.sql, rows)
            return
        names, binary = self._names, self._binary
        objects = [
            {
                name: _bytea_hex(value) if i in binary else value
                for i, (name, value) in enumerate(zip(names, row, strict=True))
            }
            for row in rows
        ]
        conn.exec_driver_sql(self.sql, (COMPACT_JSON.encode(objects),))


_bulk_inserts: dict[tuple[str, str, bool], BulkInsert] = {}


def bulk_insert(conn: Connection, table: Table, *, upsert: bool = False) -> BulkInsert:
    """The ``BulkInsert`` for ``table`` on ``conn``'s database (built once per process)."""
    key = (conn.dialect.name, table.name, upsert)
    found = _bulk_inserts.get(key)
    if found is None:
        found = _bulk_inserts[key] = BulkInsert(conn.dialect.name, table, upsert=upsert)
    return found


def _bytea_hex(value: object) -> object:
    return "\\x" + value.hex() if isinstance(value, bytes) else value


def _quote(name: str) -> str:
    """Table and column names here are plain lowercase words; quoting spares keywords."""
    return f'"{name}"'
