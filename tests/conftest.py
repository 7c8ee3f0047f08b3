"""Shared fixtures: a database per test on SQLite, and on PostgreSQL when given.

PostgreSQL tests run when CUSTODY_TEST_DATABASE_URL names a server (for
example postgresql://postgres@127.0.0.1:5432/test); each test gets its own
schema, dropped afterwards. Without the variable they skip and say so; with
CUSTODY_REQUIRE_POSTGRES=1 (set by .ci/run) a missing server fails instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ledger.admission import Submission
from ledger.dsse import Signer, sign_envelope
from ledger.keys import private_key_from_seed
from ledger.note import NoteSigner
from ledger.sequencer import EnvelopeRules, Sequencer, initialise_log
from ledger.storage import LogStore
from ledger.storage.database import normalise_url, sqlite_url
from tests.services.node_support import Pki, make_pki, sample_partner_ids
from tests.support import (
    PAYLOAD_TYPE,
    TEST_ORIGIN,
    TESTVECTORS,
    VECTOR_DIRS,
    SubmissionFactory,
)

POSTGRES_URL_ENV = "CUSTODY_TEST_DATABASE_URL"
REQUIRE_POSTGRES_ENV = "CUSTODY_REQUIRE_POSTGRES"


def _postgres_url() -> str | None:
    return os.environ.get(POSTGRES_URL_ENV) or None


def pytest_sessionstart(session: pytest.Session) -> None:
    if not TESTVECTORS.is_dir():
        searched = ", ".join(str(d) for d in VECTOR_DIRS)
        pytest.exit(
            f"shared test vectors not found (looked in {searched}); "
            "set CUSTODY_TESTVECTORS to their directory",
            returncode=2,
        )


def pytest_report_header() -> str:
    url = _postgres_url()
    vectors = f"shared test vectors: {TESTVECTORS}\n"
    if url:
        return vectors + f"PostgreSQL tests: on ({make_url(normalise_url(url)).render_as_string()})"
    return vectors + f"PostgreSQL tests: SKIPPED (set {POSTGRES_URL_ENV} to run them)"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    url = _postgres_url()
    if url is None:
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{REQUIRE_POSTGRES_ENV}=1 but {POSTGRES_URL_ENV} is not set")
        pytest.skip(f"PostgreSQL not configured: set {POSTGRES_URL_ENV} to run this test")
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"PostgreSQL at {url} is required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL at {url} unreachable: {exc}")
    finally:
        engine.dispose()
    return normalise_url(url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database, once per backend."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "custody.db")
        return
    server: str = request.getfixturevalue("postgres_server")
    schema = f"custody_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in server else "?"
    try:
        yield f"{server}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(database_url: str) -> Iterator[LogStore]:
    log_store = LogStore.open(database_url)
    yield log_store
    log_store.close()


@pytest.fixture
def log_signer() -> NoteSigner:
    return NoteSigner(TEST_ORIGIN, private_key_from_seed(b"\x01" * 32))


@pytest.fixture
def sequencer(store: LogStore, log_signer: NoteSigner) -> Iterator[Sequencer]:
    initialise_log(store, log_signer)
    seq = Sequencer(store, log_signer, rules=EnvelopeRules())
    yield seq
    seq.close()


@pytest.fixture
def partner_signer() -> Signer:
    return Signer(private_key_from_seed(b"\x02" * 32))


@pytest.fixture
def make_submission(partner_signer: Signer) -> SubmissionFactory:
    """Signed submissions with distinct payloads (or the payload given)."""
    counter = iter(range(1 << 30))

    def make(payload: bytes | None = None, *signers: Signer) -> Submission:
        use = signers or (partner_signer,)
        body = payload if payload is not None else b'{"seq": %d}' % next(counter)
        envelope = sign_envelope(PAYLOAD_TYPE, body, use)
        return Submission.of(envelope, [s.public_key for s in use])

    return make


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A consortium CA with a node certificate and every sample partner's certificate
    (plus a foreign CA issuing the same ids); issuing them takes a moment, so once."""
    return make_pki(tmp_path_factory.mktemp("pki"), sample_partner_ids())
