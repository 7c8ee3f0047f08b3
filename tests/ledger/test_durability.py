"""Crashes and concurrent writers: acknowledged entries are never lost or reordered.

Each test runs real separate processes (tests/ledger/appender.py) against one
database: SQLite file or PostgreSQL schema.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ledger.keys import private_key_from_seed
from ledger.log_verifier import verify_log
from ledger.note import NoteSigner
from ledger.sequencer import EnvelopeRules, Sequencer, initialise_log
from ledger.storage import LogStore
from tests.ledger.appender import LOG_KEY_SEED
from tests.support import TEST_ORIGIN

ROOT = Path(__file__).resolve().parents[2]


def _spawn(url: str, label: str, batches: int, batch_size: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.ledger.appender", url, label, str(batches), str(batch_size)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _acknowledged(lines: list[str]) -> dict[str, int]:
    promised: dict[str, int] = {}
    for line in lines:
        index, digest = line.split()
        promised[digest] = int(index)
    return promised


def _new_log(url: str) -> tuple[LogStore, NoteSigner]:
    store = LogStore.open(url)
    signer = NoteSigner(TEST_ORIGIN, private_key_from_seed(LOG_KEY_SEED))
    initialise_log(store, signer)
    return store, signer


def _check_promises(store: LogStore, promised: dict[str, int]) -> None:
    found = store.indices_for_digests({bytes.fromhex(d) for d in promised})
    assert {d.hex(): i for d, i in found.items()} == promised


def test_a_killed_sequencer_loses_no_acknowledged_entry(database_url: str) -> None:
    store, signer = _new_log(database_url)
    process = _spawn(database_url, "crash", batches=10_000, batch_size=7)
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if len(lines) >= 200:
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    promised = _acknowledged(lines)

    # Start-up checks pass, the whole log verifies, and every promise holds.
    restarted = Sequencer(store, signer, rules=EnvelopeRules())
    result = verify_log(store, signer.verifier_key())
    assert result.tree_size >= len(promised)
    _check_promises(store, promised)
    restarted.close()
    store.close()


def test_concurrent_processes_keep_one_linear_history(database_url: str) -> None:
    store, signer = _new_log(database_url)
    processes = [_spawn(database_url, f"writer-{n}", batches=15, batch_size=5) for n in range(3)]
    promised: dict[str, int] = {}
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        promised.update(_acknowledged(out.splitlines()))
    assert len(promised) == 3 * 15 * 5
    assert sorted(promised.values()) == list(range(len(promised)))  # no index given twice
    assert verify_log(store, signer.verifier_key()).tree_size == len(promised)
    _check_promises(store, promised)
    store.close()
