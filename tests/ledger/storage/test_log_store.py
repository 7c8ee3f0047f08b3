"""Storage: migrations, engines and the guarantees the sequencer relies on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
import sqlalchemy.exc
from sqlalchemy import text

from ledger.errors import (
    ConfigurationError,
    LogIntegrityError,
    LogNotInitialisedError,
    NotFoundError,
    OutOfRangeError,
    StorageError,
)
from ledger.merkle import NodeId
from ledger.records import StoredLeaf
from ledger.sequencer import Sequencer
from ledger.storage import LogStore, create_database_engine, migrate
from ledger.storage.database import (
    SQLITE_CACHE_ENV,
    normalise_url,
    schema_is_current,
    sqlite_cache_mib,
    sqlite_url,
)
from tests.support import SubmissionFactory


def test_migrations_are_idempotent(database_url: str) -> None:
    engine = create_database_engine(database_url)
    migrate(engine)
    migrate(engine)
    assert schema_is_current(engine)
    engine.dispose()


def test_open_without_migrating_refuses_an_empty_or_old_schema(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "x.db")
    with pytest.raises(LogNotInitialisedError):
        LogStore.open(url, migrate=False)
    LogStore.open(url).close()
    LogStore.open(url, migrate=False).close()
    engine = create_database_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    engine.dispose()
    with pytest.raises(StorageError, match="custody db upgrade"):
        LogStore.open(url, migrate=False)


def test_sqlite_runs_in_wal_with_full_sync(tmp_path: Path) -> None:
    engine = create_database_engine(sqlite_url(tmp_path / "x.db"))
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    engine.dispose()


def test_urls_are_normalised_to_psycopg() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(StorageError, match="unsupported"):
        create_database_engine("mysql://u@h/db")
    with pytest.raises(StorageError, match="not a database URL"):
        create_database_engine("::")


def test_an_empty_database_has_no_log(store: LogStore) -> None:
    assert not store.is_initialised()
    with pytest.raises(LogNotInitialisedError):
        store.info()


def test_reads_name_what_is_missing(sequencer: Sequencer, store: LogStore) -> None:
    with pytest.raises(NotFoundError):
        store.leaf(0)
    with pytest.raises(NotFoundError):
        store.checkpoint(3)
    with pytest.raises(OutOfRangeError):
        store.inclusion_proof(0, 1)
    with pytest.raises(LogIntegrityError):
        store.fetch_nodes([NodeId(1, 0)])


def test_an_entry_digest_is_stored_once(
    sequencer: Sequencer, store: LogStore, make_submission: SubmissionFactory
) -> None:
    receipt = sequencer.append(make_submission())
    row = store.leaf(receipt.index)
    clash = StoredLeaf(1, row.entry_digest, row.leaf_hash, row.chain_hash, row.leaf_bytes)
    with pytest.raises(StorageError) as caught, store.write() as connection:
        store.insert_leaves(connection, [clash])
    # The database's own unique constraint said no, as the driver's IntegrityError (raised
    # directly, or wrapped by SQLAlchemy) naming that constraint.
    cause = caught.value.__cause__
    driver = cause.orig if isinstance(cause, sqlalchemy.exc.IntegrityError) else cause
    if store.backend == "sqlite":
        assert isinstance(driver, sqlite3.IntegrityError), repr(cause)
        assert str(driver) == "UNIQUE constraint failed: leaves.entry_digest"
    else:
        assert isinstance(driver, psycopg.errors.UniqueViolation), repr(cause)
        assert driver.diag.constraint_name == "uq_leaves_entry_digest"
    assert store.size() == 1


def test_iterators_page_through_everything(
    sequencer: Sequencer, store: LogStore, make_submission: SubmissionFactory
) -> None:
    sequencer.append_batch([make_submission() for _ in range(23)])
    assert [leaf.index for leaf in store.iter_leaves()] == list(range(23))
    assert [node.index for node in store.iter_nodes(2, chunk=2)] == list(range(23 >> 2))
    assert store.node_levels() == {level: 23 >> level for level in range(1, 5)}
    chunked = [leaf.index for leaf in store.iter_leaves(begin=5)]
    assert chunked == list(range(5, 23))
    assert [leaf.index for leaf in store.leaves_in(3, 6)] == [3, 4, 5]


def test_postgres_write_lock_is_an_advisory_lock(database_url: str) -> None:
    store = LogStore.open(database_url)
    with store.write() as connection:
        if connection.dialect.name == "postgresql":
            held = connection.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
            ).scalar_one()
            assert held >= 1
        else:
            assert connection.in_transaction()
    store.close()


@pytest.mark.parametrize(
    ("statement", "what"),
    [
        ("UPDATE tree_nodes SET hash = :short WHERE node_key = :k", "short tree hash"),
        ("UPDATE leaves SET leaf_hash = :short WHERE idx = 0", "short leaf hash"),
    ],
)
def test_damaged_hash_columns_are_integrity_errors(
    sequencer: Sequencer,
    store: LogStore,
    make_submission: SubmissionFactory,
    statement: str,
    what: str,
) -> None:
    sequencer.append_batch([make_submission() for _ in range(4)])
    with store.engine.begin() as connection:
        connection.execute(text(statement), {"short": b"\x00", "k": (1 << 56) | 1})
    with pytest.raises(LogIntegrityError):
        store.inclusion_proof(1, 4)


def test_text_in_an_integer_column_is_an_integrity_error(tmp_path: Path) -> None:
    store = LogStore.open(sqlite_url(tmp_path / "x.db"))
    with store.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO checkpoints (tree_size, root_hash, note, signed_micros)"
                " VALUES (0, :r, :n, 'soon')"
            ),
            {"r": bytes(32), "n": b"x"},
        )
    with pytest.raises(LogIntegrityError, match="signing time"):
        store.latest_checkpoint()
    store.close()


def test_readers_do_not_create_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "custody.db"
    with pytest.raises(LogNotInitialisedError):
        LogStore.open(sqlite_url(missing), migrate=False)
    assert not missing.parent.exists()


def test_sqlite_cache_size_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SQLITE_CACHE_ENV, raising=False)
    assert sqlite_cache_mib() == 64
    monkeypatch.setenv(SQLITE_CACHE_ENV, "256")
    assert sqlite_cache_mib() == 256
    for bad in ("0", "-5", "lots", "1.5"):
        monkeypatch.setenv(SQLITE_CACHE_ENV, bad)
        with pytest.raises(ConfigurationError, match=SQLITE_CACHE_ENV):
            sqlite_cache_mib()


def test_the_sqlite_cache_setting_reaches_every_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SQLITE_CACHE_ENV, "3")
    engine = create_database_engine(sqlite_url(tmp_path / "c.db"))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -3 * 1024
    engine.dispose()
