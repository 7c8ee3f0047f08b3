"""``custody serve`` as an operator runs it: a process, a config file, JSON logs, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import grpc
from grpc_health.v1 import health_pb2

from ledger.storage.database import sqlite_url
from tests.services.node_support import Pki, make_ledger
from tests.services.rpc_support import SAMPLE_SIZE, health_check

CUSTODY = [sys.executable, "-m", "clients.cli.main"]


def _read_event(stream: IO[str], wanted: str, deadline: float) -> dict[str, Any]:
    """The first JSON log line whose event is ``wanted``; fails on a non-JSON line."""
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        record = json.loads(line)  # every line the node logs is one JSON object
        if record.get("event") == wanted:
            return dict(record)
    raise AssertionError(f"the node never logged {wanted!r}")


def _node_config(tmp_path: Path, pki: Pki) -> Path:
    """A node.toml serving the sample ledger over mutual TLS on port 0, no metrics."""
    ledger = make_ledger(tmp_path / "ledger", sqlite_url(tmp_path / "ledger" / "custody.db"))
    config = tmp_path / "node.toml"
    config.write_text(
        "[node]\n"
        'listen = "127.0.0.1:0"\n'
        f'data_dir = "{ledger.data_dir}"\n'
        "[tls]\n"
        f'cert = "{pki.server_cert}"\n'
        f'key = "{pki.server_key}"\n'
        f'client_ca = "{pki.ca.certificate_path}"\n'
        "[metrics]\n"
        'listen = ""\n'
    )
    return config


def test_serve_with_mutual_tls_then_stop_gracefully_on_sigterm(pki: Pki, tmp_path: Path) -> None:
    config = _node_config(tmp_path, pki)
    env = {**os.environ, "CUSTODY_LIMITS_SHUTDOWN_GRACE_SECONDS": "2"}
    process = subprocess.Popen(
        [*CUSTODY, "serve", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        serving = _read_event(process.stderr, "serving", time.monotonic() + 60)
        assert serving["tls"] is True
        assert serving["tree_size"] == SAMPLE_SIZE
        with grpc.secure_channel(
            serving["address"], pki.channel_credentials("kokkola-refining")
        ) as channel:
            answer = health_check(channel)(
                health_pb2.HealthCheckRequest(service="custody.v1.LedgerService"), timeout=10
            )
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        process.send_signal(signal.SIGTERM)
        stopped = _read_event(process.stderr, "stopped", time.monotonic() + 30)
        assert stopped["tree_size"] == SAMPLE_SIZE
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_stops_with_an_error_when_its_sequencer_dies(pki: Pki, tmp_path: Path) -> None:
    """A node that can no longer append does not linger: it stops, and exits non-zero
    for its supervisor to restart it."""
    config = _node_config(tmp_path, pki)
    env = {**os.environ, "CUSTODY_LIMITS_SHUTDOWN_GRACE_SECONDS": "1"}
    process = subprocess.Popen(
        [*CUSTODY, "serve", "--config", str(config)], stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stderr is not None
        started = _read_event(process.stderr, "sequencer process started", time.monotonic() + 60)
        _read_event(process.stderr, "serving", time.monotonic() + 60)
        os.kill(started["pid"], signal.SIGKILL)
        _read_event(process.stderr, "stopped", time.monotonic() + 30)
        assert process.wait(timeout=30) == 1
        assert "sequencer's process stopped" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_refuses_to_start_without_tls_settings(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('[node]\nlisten = "127.0.0.1:0"\n')
    result = subprocess.run(
        [*CUSTODY, "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "CONFIGURATION" in result.stderr
    assert "--insecure-dev" in result.stderr
