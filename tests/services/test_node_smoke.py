from __future__ import annotations

from pathlib import Path

from custody.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from ledger.storage.database import sqlite_url
from tests.services.node_support import Pki, make_ledger, node_config, running_node, secure_channel


def test_tls_checkpoint(pki: Pki, tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "ledger", sqlite_url(tmp_path / "ledger" / "custody.db"))
    with running_node(node_config(ledger, pki)) as node:
        with secure_channel(node, pki.channel_credentials("baltic-cells")) as channel:
            stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
            response = stub.GetCheckpoint(ledger_service_pb2.GetCheckpointRequest())
            assert b"\n55\n" in response.checkpoint
