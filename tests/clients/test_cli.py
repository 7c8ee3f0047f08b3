"""The `custody` command line, end to end on a local database."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from clients.cli.main import main
from clients.cli.verified_state import VerifiedState
from ledger.checkpoint import open_checkpoint
from ledger.merkle import ConsistencyProof, InclusionProof
from ledger.note import VerifierKey
from ledger.storage.database import normalise_url, sqlite_url

ORIGIN = "cli.custody.example/log"
PAYLOAD_TYPE = "application/vnd.custody.test.v1+json"


class Cli:
    def __init__(self, home: Path, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.home, self.db_url, self.capsys = home, db_url, capsys

    def run(self, *args: str, expect: int = 0) -> str:
        self.capsys.readouterr()
        code = main(["--data-dir", str(self.home), "--db", self.db_url, *args])
        out, err = self.capsys.readouterr()
        assert code == expect, f"exit {code}, stderr: {err}"
        self.last_err = err
        return out


@pytest.fixture
def cli(tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path / "home", database_url, capsys)


@pytest.fixture
def populated(cli: Cli, tmp_path: Path) -> Cli:
    cli.run("init", "--origin", ORIGIN)
    cli.run("keys", "generate", "-o", str(tmp_path / "partner.pem"))
    for number in range(6):
        payload = tmp_path / f"event{number}.json"
        payload.write_text(json.dumps({"shipment": number, "mass_g": 1000 * number}))
        cli.run(
            "log", "append", str(payload), "--key", str(tmp_path / "partner.pem"),
            "--payload-type", PAYLOAD_TYPE,
        )  # fmt: skip
    return cli


def test_init_prints_a_verifier_key_matching_the_log(cli: Cli) -> None:
    vkey = cli.run("init", "--origin", ORIGIN).strip()
    key = VerifierKey.parse(vkey)
    assert key.name == ORIGIN
    assert cli.run("log", "vkey").strip() == vkey
    mode = stat.S_IMODE(os.stat(cli.home / "log-key.pem").st_mode)
    assert mode == 0o600
    note = cli.run("log", "checkpoint").encode()
    assert open_checkpoint(note, key).checkpoint.size == 0
    cli.run("init", "--origin", ORIGIN, expect=1)
    assert "LOG_ALREADY_INITIALISED" in cli.last_err


def test_append_then_read_entry_checkpoint_and_proofs(populated: Cli, tmp_path: Path) -> None:
    cli = populated
    key = VerifierKey.parse(cli.run("log", "vkey").strip())
    note = cli.run("log", "checkpoint").encode()
    checkpoint = open_checkpoint(note, key).checkpoint
    assert checkpoint.size == 6

    entry = json.loads(cli.run("log", "entry", "3", "--json"))
    assert entry["index"] == 3
    assert json.loads(base64.b64decode(entry["envelope"]["payload"])) == {
        "shipment": 3,
        "mass_g": 3000,
    }
    assert entry["envelope"]["payloadType"] == PAYLOAD_TYPE

    proof_json = json.loads(cli.run("log", "prove", "inclusion", "3", "--json"))
    proof = InclusionProof.from_json(proof_json)
    proof.verify()
    assert proof.root == checkpoint.root_hash
    assert proof.leaf_hash == base64.b64decode(entry["leaf_hash"])
    older = InclusionProof.from_json(
        json.loads(cli.run("log", "prove", "inclusion", "1", "--size", "2", "--json"))
    )
    older.verify()
    assert older.tree_size == 2

    consistency = ConsistencyProof.from_json(
        json.loads(cli.run("log", "prove", "consistency", "2", "--json"))
    )
    consistency.verify()
    assert consistency.new_root == checkpoint.root_hash
    assert list(consistency.to_json()) == ["old_size", "new_size", "old_root", "new_root", "hashes"]

    assert "verified: 6 leaves" in cli.run("log", "verify")
    assert "verified" in cli.run("log", "verify", "--vkey", str(key))


def test_append_from_stdin_and_resubmission(
    populated: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = populated
    payload = b'{"receipt": 1}'
    args = ["log", "append", "-", "--key", str(tmp_path / "partner.pem")]
    args += ["--payload-type", PAYLOAD_TYPE, "--json"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(payload)))
    first = json.loads(cli.run(*args))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(payload)))
    again = json.loads(cli.run(*args))
    assert first["index"] == again["index"] == 6
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    InclusionProof.from_json(again["inclusion_proof"]).verify()


def test_errors_are_one_line_with_a_reason(cli: Cli, tmp_path: Path) -> None:
    cli.run("log", "checkpoint", expect=1)
    assert "LOG_NOT_INITIALISED" in cli.last_err
    cli.run("init", "--origin", ORIGIN)
    cli.run("log", "entry", "0", expect=1)
    assert "NOT_FOUND" in cli.last_err
    cli.run("log", "prove", "inclusion", "0", "--size", "5", expect=1)
    assert "OUT_OF_RANGE" in cli.last_err
    cli.run("init", "--origin", "bad origin", expect=1)
    (tmp_path / "p.txt").write_text("x")
    cli.run(
        "log", "append", str(tmp_path / "p.txt"), "--key", str(tmp_path / "missing.pem"),
        "--payload-type", PAYLOAD_TYPE, expect=1,
    )  # fmt: skip
    assert "KEY_FILE" in cli.last_err


def test_encrypted_partner_key(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli.run("init", "--origin", ORIGIN)
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", "correct horse")
    cli.run("keys", "generate", "-o", str(tmp_path / "k.pem"), "--encrypt")
    assert b"ENCRYPTED" in (tmp_path / "k.pem").read_bytes()
    (tmp_path / "p.txt").write_text("lot")
    append = ["log", "append", str(tmp_path / "p.txt"), "--key", str(tmp_path / "k.pem")]
    cli.run(*append, "--payload-type", PAYLOAD_TYPE)
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", "wrong")
    cli.run(*append, "--payload-type", PAYLOAD_TYPE, expect=1)
    assert "KEY_FILE" in cli.last_err


def test_verify_remembers_the_head_and_refuses_a_rollback(populated: Cli, tmp_path: Path) -> None:
    cli = populated
    early = tmp_path / "early.note"
    early.write_bytes(_checkpoint_at(cli, 2))
    cli.run("log", "verify", "--checkpoint", str(early))
    key = VerifierKey.parse(cli.run("log", "vkey").strip())
    saved = VerifiedState(cli.home, key).path
    assert saved.read_bytes() == cli.run("log", "checkpoint").encode()
    # Roll the log back by one whole append: leaf 5, its checkpoint and the
    # level-1 node over leaves 4..5 that it completed.
    url = normalise_url(cli.db_url)
    _sql(url, "DELETE FROM leaves WHERE idx = 5")
    _sql(url, "DELETE FROM checkpoints WHERE tree_size = 6")
    _sql(url, "DELETE FROM tree_nodes WHERE node_key = :k", k=(1 << 56) | 2)
    other_home = Cli(tmp_path / "elsewhere", cli.db_url, cli.capsys)
    assert "verified: 5 leaves" in other_home.run("log", "verify", "--vkey", str(key))
    cli.run("log", "verify", expect=3)
    assert "rolled back" in cli.last_err
    # An older trusted checkpoint does not replace the saved state...
    cli.run("log", "verify", "--checkpoint", str(early), expect=3)
    # ...and a damaged state file fails closed, naming itself.
    saved.write_bytes(b"")
    cli.run("log", "verify", expect=1)
    assert str(saved) in cli.last_err
    cli.run("log", "verify", "--checkpoint", str(tmp_path / "missing.note"), expect=1)
    assert "missing.note" in cli.last_err


def _checkpoint_at(cli: Cli, size: int) -> bytes:
    engine = create_engine(normalise_url(cli.db_url))
    with engine.connect() as connection:
        note = connection.execute(
            text("SELECT note FROM checkpoints WHERE tree_size = :n"), {"n": size}
        ).scalar_one()
    engine.dispose()
    return bytes(note)


def test_proofs_are_checked_against_the_signed_checkpoint(populated: Cli) -> None:
    _sql(normalise_url(populated.db_url), "UPDATE tree_nodes SET hash = :h WHERE node_key = :k",
         h=bytes(32), k=(2 << 56) | 0)  # fmt: skip
    # The proof for leaf 5 is self-consistent (it uses the damaged node both ways);
    # only the checkpoint signed at size 6 exposes it.
    populated.run("log", "prove", "inclusion", "5", "--json", expect=3)
    assert "disagree with the checkpoint signed at size 6" in populated.last_err
    # This one does not even verify against its own leaves.
    populated.run("log", "prove", "consistency", "1", "4", "--json", expect=3)
    assert "does not verify" in populated.last_err
    populated.run("log", "entry", str(2**70), expect=2)


def _sql(db_url: str, statement: str, **params: object) -> None:
    engine = create_engine(db_url)
    with engine.begin() as connection:
        connection.execute(text(statement), params)
    engine.dispose()


@pytest.mark.parametrize(
    ("statement", "params", "index"),
    [
        ("UPDATE leaves SET leaf_bytes = :b WHERE idx = 2", {"b": b"\x08\x02"}, 2),
        (
            "UPDATE tree_nodes SET hash = :h WHERE node_key = :k",
            {"h": bytes(32), "k": (1 << 56) | 2},
            4,
        ),
        ("DELETE FROM leaves WHERE idx = 4", {}, 4),
    ],
)
def test_verify_exits_non_zero_naming_the_first_bad_index(
    populated: Cli, statement: str, params: dict[str, object], index: int
) -> None:
    _sql(normalise_url(populated.db_url), statement, **params)
    populated.run("log", "verify", expect=3)
    assert f"first bad index: {index}" in populated.last_err


def test_encrypted_log_key_elsewhere_and_reuse(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUSTODY_LOG_KEY_PASSPHRASE", "log secret")
    log_key = tmp_path / "vault" / "log.pem"
    vkey = cli.run("init", "--origin", ORIGIN, "--log-key", str(log_key)).strip()
    assert b"ENCRYPTED" in log_key.read_bytes()
    cli.run("keys", "generate", "-o", str(tmp_path / "p.pem"))
    shown = cli.run("keys", "show", str(tmp_path / "p.pem"))
    assert "keyid:" in shown
    (tmp_path / "e.json").write_text("{}")
    append = ["log", "append", str(tmp_path / "e.json"), "--key", str(tmp_path / "p.pem")]
    append += ["--payload-type", PAYLOAD_TYPE]
    cli.run(*append, expect=1)  # the log key is not in the data directory
    assert "--log-key" in cli.last_err
    cli.run(*append, "--log-key", str(log_key))
    assert "verified: 1 leaves" in cli.run("log", "verify", "--vkey", vkey)

    # A second database signed by the same key: --reuse-key is required and works.
    second = Cli(tmp_path / "home2", sqlite_url(tmp_path / "second.db"), cli.capsys)
    second.run("init", "--origin", ORIGIN, "--log-key", str(log_key), expect=1)
    assert "--reuse-key" in second.last_err
    again = second.run("init", "--origin", ORIGIN, "--log-key", str(log_key), "--reuse-key")
    assert again.strip() == vkey


def test_one_data_directory_trusts_one_log(cli: Cli, tmp_path: Path) -> None:
    cli.run("init", "--origin", ORIGIN)
    other_db = Cli(cli.home, sqlite_url(tmp_path / "other.db"), cli.capsys)
    other_db.run("init", "--origin", ORIGIN, "--log-key", str(tmp_path / "k2.pem"), expect=1)
    assert "CONFIGURATION" in other_db.last_err
    assert not (tmp_path / "k2.pem").exists()
