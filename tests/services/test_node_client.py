"""A client in another language: Node.js appends over mutual TLS and checks its receipt.

``tests/node/append_client.mjs`` builds a ``custody.v1.Event`` with protobufjs,
signs its DSSE PAE with Node's own Ed25519, appends it with ``@grpc/grpc-js``
and verifies the receipt's inclusion proof against the checkpoint. Here the
result is checked again from the Python side, against the log on disk.

Skipped when Node.js or the npm packages (``make node_modules``) are missing,
unless ``CUSTODY_REQUIRE_NODE=1`` (as ``.ci/run`` sets), which makes that a failure.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clients.sample.consortium import (
    BOTHNIA,
    KOKKOLA,
    LOT_FEED_BLEND,
    partner_private_key,
    utc_seconds,
)
from custody.v1 import event_pb2
from ledger import merkle
from ledger.domain.records import EVENT_PAYLOAD_TYPE
from ledger.dsse import keyid_for
from ledger.keys import public_key_bytes, save_private_key
from ledger.leaf import verify_leaf_signatures
from ledger.merkle import InclusionProof
from ledger.note import VerifierKey
from ledger.receipts import Receipt, verify_receipt
from ledger.storage import LogStore
from tests.services.node_support import (
    Ledger,
    NodeThread,
    Pki,
)
from tests.services.rpc_support import SAMPLE_SIZE

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "tests" / "node" / "append_client.mjs"
NODE_PACKAGES = ("@grpc/grpc-js", "@grpc/proto-loader", "protobufjs")
REQUIRE_NODE_ENV = "CUSTODY_REQUIRE_NODE"
EVENT_TIME = "2026-05-04T09:30:00Z"


def node_executable() -> str:
    """The ``node`` to run, or skip (fail under CUSTODY_REQUIRE_NODE=1) saying what is missing."""
    node = shutil.which("node")
    if node is None:
        reason = "Node.js not found: no `node` on PATH"
    else:
        missing = [name for name in NODE_PACKAGES if not (REPO / "node_modules" / name).is_dir()]
        if not missing:
            return node
        reason = (
            f"Node.js packages not installed: node_modules/{', node_modules/'.join(missing)} "
            "missing (run `make node_modules`)"
        )
    if os.environ.get(REQUIRE_NODE_ENV) == "1":
        pytest.fail(f"{reason}; {REQUIRE_NODE_ENV}=1 requires it")
    pytest.skip(reason)


@dataclass(frozen=True)
class Setup:
    node_path: str
    pki: Pki
    ledger: Ledger
    node: NodeThread
    keys: Path

    def log_size(self) -> int:
        store = LogStore.open(self.ledger.url, migrate=False)
        try:
            return store.size()
        finally:
            store.close()

    def run_client(
        self, cert_partner: str, event_partner: str, event_id: str, *, expect_refusal: bool
    ) -> dict[str, Any]:
        """Run the Node client with ``cert_partner``'s TLS certificate and an assay of the
        sample's feed blend recorded by (and signed with the key of) ``event_partner``."""
        cert, key = self.pki.partner_files(cert_partner)
        signing_key = self.keys / f"{event_partner}-ed25519.pem"
        if not signing_key.exists():
            save_private_key(partner_private_key(event_partner), signing_key)
        args = [
            self.node_path,
            str(CLIENT),
            *("--address", self.node.address),
            *("--ca", str(self.pki.ca.certificate_path)),
            *("--cert", str(cert), "--key", str(key)),
            *("--signing-key", str(signing_key)),
            *("--partner", event_partner, "--lot", LOT_FEED_BLEND),
            *("--event-id", event_id, "--event-time", EVENT_TIME),
            *(["--expect-refusal"] if expect_refusal else []),
        ]
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=60, cwd=REPO, check=False
        )
        assert done.returncode == 0, (
            f"node exited {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
        )
        lines = done.stdout.strip().splitlines()
        assert len(lines) == 1, f"expected one JSON line, got: {done.stdout!r}"
        result: dict[str, Any] = json.loads(lines[0])
        return result


@pytest.fixture(scope="module")
def setup(
    request: pytest.FixtureRequest, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Setup:
    node_path = node_executable()  # skips before any node starts
    ledger: Ledger = request.getfixturevalue("ledger")
    node: NodeThread = request.getfixturevalue("node")
    keys = tmp_path_factory.mktemp("node-client-keys")
    return Setup(node_path, pki, ledger, node, keys)


def expected_assay(event_id: str, partner_id: str) -> event_pb2.Event:
    """The Event the Node client builds (append_client.mjs, buildEvent)."""
    event = event_pb2.Event(
        event_id=event_id,
        partner_id=partner_id,
        evidence=[
            event_pb2.EvidenceRef(
                uri=f"https://lims.example/reports/{event_id}.pdf",
                sha256=hashlib.sha256(f"report {event_id}".encode()).digest(),
                kind="assay_report",
            )
        ],
        assay=event_pb2.Assay(
            lot_id=LOT_FEED_BLEND,
            contents=[
                event_pb2.ElementContent(element="Co", ppm=229_000),
                event_pb2.ElementContent(element="Cu", ppm=30_000),
            ],
            method="ICP-OES",
            sample_id=f"NODE-{event_id}",
        ),
    )
    event.event_time.seconds = utc_seconds(EVENT_TIME)
    return event


def test_node_client_appends_and_verifies_its_receipt(setup: Setup, log_key: VerifierKey) -> None:
    event_id = "urn:uuid:5b0c1d52-2f57-4c1e-9d7e-0b6c3f4e8a01"
    before = setup.log_size()
    result = setup.run_client(BOTHNIA, BOTHNIA, event_id, expect_refusal=False)

    assert result["inclusion_verified"] is True
    index = result["index"]
    assert index == before >= SAMPLE_SIZE
    assert setup.log_size() == before + 1

    # The printed index holds the entry, with the printed leaf hash.
    store = LogStore.open(setup.ledger.url, migrate=False)
    try:
        stored = store.leaf(index)
    finally:
        store.close()
    leaf_hash = merkle.leaf_hash(stored.leaf_bytes)
    assert stored.leaf_hash == leaf_hash
    assert base64.b64encode(leaf_hash).decode("ascii") == result["leaf_hash"]
    assert base64.b64decode(result["leaf"], validate=True) == stored.leaf_bytes

    # The receipt as Node received it holds, against the log's own key.
    receipt = Receipt(
        index=index,
        leaf=stored.leaf_bytes,
        checkpoint=result["checkpoint"].encode("utf-8"),
        inclusion=InclusionProof.from_json(result["inclusion_proof"]),
    )
    verified = verify_receipt(receipt, log_key, bytes.fromhex(result["entry_digest"]))
    assert verified.checkpoint.checkpoint.size == index + 1

    # Node's DSSE signature and keyid verify, and the payload is the Event it built.
    envelope = verified.leaf.envelope
    verify_leaf_signatures(verified.leaf)
    public_key = public_key_bytes(partner_private_key(BOTHNIA))
    assert [s.keyid for s in envelope.signatures] == [keyid_for(public_key)]
    assert envelope.payload_type == EVENT_PAYLOAD_TYPE
    assert event_pb2.Event.FromString(envelope.payload) == expected_assay(event_id, BOTHNIA)


def test_node_client_recording_for_another_partner_is_refused(setup: Setup) -> None:
    # Kokkola's certificate, an assay recorded as (and signed by) Bothnia.
    before = setup.log_size()
    result = setup.run_client(
        KOKKOLA, BOTHNIA, "urn:uuid:9e3a7c14-66d2-4b8f-a1c5-7d2e0f9b3c02", expect_refusal=True
    )
    assert result["code"] == 7, result  # PERMISSION_DENIED
    assert result["reason"] == "IDENTITY_MISMATCH", result
    assert KOKKOLA in result["details"], result
    assert setup.log_size() == before
