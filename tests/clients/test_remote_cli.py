"""``custody submit`` and the ``custody log`` commands with ``--server``, against a real
node on port 0 over mutual TLS (one ledger and one node for the module)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from clients.cli.verified_state import VerifiedState
from clients.sample.consortium import BOTHNIA, FINAL_LOT_ID, partner_private_key
from ledger.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from ledger.keys import load_private_key, save_private_key
from ledger.merkle import ConsistencyProof, InclusionProof
from ledger.note import NoteSigner
from ledger.storage.database import sqlite_url
from tests.clients.cli_support import Cli, Entry, assay, write_entries
from tests.clients.served_node import ServedNode, serve_sample_ledger
from tests.services.node_support import (
    ORIGIN,
    make_ledger,
    make_pki,
    node_config,
    running_node,
    sample_partner_ids,
)
from tests.services.rpc_support import SAMPLE_SIZE


class Node(ServedNode):
    def tls_args(self, partner_id: str = BOTHNIA) -> list[str]:
        cert, key = self.pki.partner_files(partner_id)
        return [
            "--server",
            self.thread.address,
            "--tls-ca",
            str(self.pki.ca.certificate_path),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
        ]


@pytest.fixture(scope="module", autouse=True)
def quiet_node() -> Iterator[None]:
    """The node runs in this process: keep its log lines out of the CLI's captured output."""
    saved = structlog.get_config()
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    yield
    structlog.configure(**saved)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    pki = make_pki(tmp_path_factory.mktemp("cli-pki"), sample_partner_ids())
    with serve_sample_ledger(Node, tmp_path_factory.mktemp("cli-ledger"), pki) as served:
        yield served


@pytest.fixture
def cli(node: Node, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    """A data directory that trusts the node's log key and holds no database."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "log.vkey").write_text(f"{node.log_key}\n")
    return Cli(home, sqlite_url(home / "never-opened.db"), capsys)


@pytest.fixture(scope="module")
def bothnia_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "bothnia.pem"
    save_private_key(partner_private_key(BOTHNIA), path)
    return path


def assays(count: int, lot_id: str = FINAL_LOT_ID) -> list[Entry]:
    return [
        assay(f"urn:uuid:{uuid.uuid4()}", BOTHNIA, lot_id, {"Co": 27_600}) for _ in range(count)
    ]


def test_submit_verifies_and_reports_each_receipt(
    node: Node, cli: Cli, tmp_path: Path, bothnia_key: Path
) -> None:
    entries = write_entries(tmp_path / "entries.json", assays(3), style="lines")
    out = cli.run("submit", str(entries), "--key", str(bothnia_key), *node.tls_args())
    lines = out.splitlines()
    assert len(lines) == 3
    assert all(line.startswith("appended ") and "(receipt verified)" in line for line in lines)
    assert "tree size" in cli.last_err
    # Resubmitting is idempotent: the original receipts, verified, marked as logged.
    again = cli.run("log", "append", str(entries), "--key", str(bothnia_key), *node.tls_args())
    assert [line.split(" at index ")[1] for line in again.splitlines()] == [
        line.split(" at index ")[1] for line in lines
    ]
    assert all(line.startswith("logged ") for line in again.splitlines())


def test_submit_names_the_first_refusal(
    node: Node, cli: Cli, tmp_path: Path, bothnia_key: Path
) -> None:
    batch = [*assays(1), *assays(1, lot_id="NO-SUCH-LOT"), *assays(1)]
    entries = write_entries(tmp_path / "entries.json", batch)
    out = cli.run(
        "submit", str(entries), "--key", str(bothnia_key), "--json", *node.tls_args(), expect=1
    )
    results = json.loads(out)
    assert [("refused" in r) for r in results] == [False, True, False]
    assert results[1]["refused"] == "UNKNOWN_LOT"
    assert "custody: UNKNOWN_LOT: 1 of 3 entries refused" in cli.last_err
    key = node.log_key
    for result in (results[0], results[2]):
        signed = open_checkpoint(result["checkpoint"].encode(), key).checkpoint
        proof = InclusionProof.from_json(result["inclusion_proof"])
        assert proof.root == signed.root_hash
        proof.verify()


def test_submit_progress_and_environment(
    node: Node, cli: Cli, tmp_path: Path, bothnia_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = node.tls_args()
    for option, variable in (
        ("--server", "CUSTODY_SERVER"),
        ("--tls-ca", "CUSTODY_CLIENT_TLS_CA"),
        ("--tls-cert", "CUSTODY_CLIENT_TLS_CERT"),
        ("--tls-key", "CUSTODY_CLIENT_TLS_KEY"),
    ):
        monkeypatch.setenv(variable, args[args.index(option) + 1])
    entries = write_entries(tmp_path / "entries.json", assays(20))
    out = cli.run("submit", str(entries), "--key", str(bothnia_key), "--progress", "--window", "3")
    assert len(out.splitlines()) == 20
    assert "submitted 20 of 20" in cli.last_err


def test_log_checkpoint_entry_and_proofs_from_a_node(node: Node, cli: Cli) -> None:
    args = node.tls_args()
    note = cli.run("log", "checkpoint", *args)
    signed = open_checkpoint(note.encode(), node.log_key).checkpoint
    assert signed.size >= SAMPLE_SIZE
    assert VerifiedState(cli.home, node.log_key).load() == signed  # the trusted head moved

    shown = json.loads(cli.run("log", "entry", "5", "--json", *args))
    assert shown["index"] == 5
    assert shown["envelope"]["payloadType"].endswith("+protobuf")
    assert "leaf hash:" in cli.run("log", "entry", "5", *args)

    at_55 = json.loads(
        cli.run("log", "prove", "inclusion", "3", "--size", str(SAMPLE_SIZE), "--json", *args)
    )
    InclusionProof.from_json(at_55).verify()
    assert "note:" not in cli.last_err
    cli.run("log", "prove", "inclusion", "3", "--size", "40", "--json", *args)
    assert "no checkpoint was signed at tree size 40" in cli.last_err
    consistency = ConsistencyProof.from_json(
        json.loads(cli.run("log", "prove", "consistency", "10", "--json", *args))
    )
    consistency.verify()
    assert consistency.old_size == 10


def test_log_verify_audits_the_node_and_refuses_a_fork(
    node: Node, cli: Cli, tmp_path: Path
) -> None:
    args = node.tls_args()
    out = cli.run("log", "verify", *args)
    assert f"at {node.thread.address} verified:" in out
    saved = VerifiedState(cli.home, node.log_key).load()
    assert saved is not None
    assert f"verified: {saved.size} leaves" in out
    assert "contains the trusted checkpoint" not in out
    again = cli.run("log", "verify", *args)
    assert f"contains the trusted checkpoint of size {saved.size}" in again

    # The data directory now trusts a checkpoint of another log under the same key.
    forged = sign_checkpoint(Checkpoint(ORIGIN, 10, b"\x42" * 32), node.log_signer)
    state_file = VerifiedState(cli.home, node.log_key).path
    state_file.write_bytes(forged)
    cli.run("log", "verify", *args, expect=1)
    assert "BAD_CONSISTENCY_PROOF" in cli.last_err
    assert state_file.read_bytes() == forged  # a refused log never moves the state

    # A trusted checkpoint beyond the node's latest: a prefix of it proves nothing.
    state_file.unlink()
    ahead = tmp_path / "ahead.note"
    ahead.write_bytes(
        sign_checkpoint(Checkpoint(ORIGIN, saved.size + 100, b"\x42" * 32), node.log_signer)
    )
    cli.run("log", "verify", *args, "--checkpoint", str(ahead), expect=3)
    assert "truncated or rolled back" in cli.last_err
    assert not state_file.exists()


def test_remote_option_mistakes(node: Node, cli: Cli) -> None:
    cli.run("log", "checkpoint", "--server", node.thread.address, expect=1)
    assert "--server needs mutual TLS: give --tls-ca, --tls-cert, --tls-key" in cli.last_err
    cli.run("log", "checkpoint", "--server", node.thread.address, "--insecure-dev", expect=1)
    assert "--insecure-dev needs --partner" in cli.last_err
    cli.run("log", "checkpoint", "--partner", BOTHNIA, expect=2)
    cli.run("submit", "-", "--key", "k.pem", expect=2)  # submit needs a node
    cli.run("log", "checkpoint", *node.tls_args("stranger-corp"), expect=1)
    assert "NOT_A_PARTNER" in cli.last_err


def test_insecure_development_node(cli: Cli, tmp_path: Path, bothnia_key: Path) -> None:
    ledger = make_ledger(tmp_path / "dev", sqlite_url(tmp_path / "dev" / "custody.db"))
    vkey = str(NoteSigner(ORIGIN, load_private_key(ledger.log_key)).verifier_key())
    entries = write_entries(tmp_path / "entries.json", assays(1))
    with running_node(node_config(ledger, None)) as dev:
        dev_args = ["--server", dev.address, "--insecure-dev", "--vkey", vkey]
        out = cli.run(
            "submit", str(entries), "--key", str(bothnia_key), *dev_args, "--partner", BOTHNIA
        )
        assert "at index 55 (receipt verified)" in out
        cli.run("log", "verify", *dev_args, "--partner", BOTHNIA)
        assert "56 leaves" in cli.run("log", "verify", *dev_args, "--partner", BOTHNIA)
