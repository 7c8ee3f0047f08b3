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
from google.protobuf import json_format
from sqlalchemy import create_engine, text

from clients.cli.verified_state import VerifiedState
from custody.v1 import event_pb2, governance_pb2
from ledger.checkpoint import open_checkpoint
from ledger.domain.records import EVENT_PAYLOAD_TYPE, GOVERNANCE_PAYLOAD_TYPE
from ledger.merkle import ConsistencyProof, InclusionProof
from ledger.note import VerifierKey
from ledger.storage.database import normalise_url, sqlite_url
from tests.clients.cli_support import (
    ADMIN,
    LOT,
    MINE,
    ORIGIN,
    TRADER,
    Cli,
    dispatch,
    extraction,
    genesis,
    partner,
    receipt,
    small_consortium,
    write_entries,
)


@pytest.fixture
def cli(tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path / "home", database_url, capsys)


@pytest.fixture
def populated(cli: Cli, tmp_path: Path) -> Cli:
    """Six leaves in four appends, so signed checkpoints at sizes 2, 4, 5 and 6.

    0 genesis and 1 admission of a mine, then 2 admission of a trader and 3
    the mine's site (all signed by admin.pem); 4 the mine's extraction of LOT,
    then 5 its dispatch to the trader (signed by mine.pem). trader.pem is the
    trader's key.
    """
    cli.run("init", "--origin", ORIGIN)
    keys, governance = small_consortium(cli, tmp_path)
    batches = [
        (governance[:2], keys.admin),
        (governance[2:], keys.admin),
        ([extraction("ev-extract")], keys.mine),
        ([dispatch("ev-dispatch", MINE, LOT, TRADER)], keys.mine),
    ]
    for number, (entries, key) in enumerate(batches):
        cli.append(write_entries(tmp_path / f"batch{number}.json", entries), key)
    return cli


def _genesis_signed_by(cli: Cli, key: Path, path: Path) -> Path:
    """A genesis entry naming ``key`` (an existing key file) as the one administrator."""
    return write_entries(path, genesis("gov-1", [partner(ADMIN, ["ADMIN"], cli.public_key(key))]))


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

    # Leaves hold exactly the protobuf the JSON said, under the right payload type.
    entry = json.loads(cli.run("log", "entry", "3", "--json"))
    assert entry["index"] == 3
    assert entry["envelope"]["payloadType"] == GOVERNANCE_PAYLOAD_TYPE
    written = json.loads((tmp_path / "batch1.json").read_text())[1]["governance"]
    logged = governance_pb2.Governance.FromString(base64.b64decode(entry["envelope"]["payload"]))
    assert logged == json_format.ParseDict(written, governance_pb2.Governance())
    assert logged.facility_registration.partner_id == MINE
    extracted = json.loads(cli.run("log", "entry", "4", "--json"))
    assert extracted["envelope"]["payloadType"] == EVENT_PAYLOAD_TYPE
    event = event_pb2.Event.FromString(base64.b64decode(extracted["envelope"]["payload"]))
    assert (event.event_id, event.extraction.lot_id) == ("ev-extract", LOT)
    assert extracted["signer_keys"] == [cli.public_key(tmp_path / "mine.pem")]
    assert {"subject": f"lot:{LOT}", "prev_index": None} in extracted["subject_links"]
    assert f"payload type:     {EVENT_PAYLOAD_TYPE}" in cli.run("log", "entry", "4")

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
    payload = json.dumps(receipt("ev-receipt", TRADER, "ev-dispatch", LOT)).encode()
    args = ["log", "append", "-", "--key", str(tmp_path / "trader.pem"), "--json"]
    monkeypatch.setattr(sys, "stdin", _stdin(payload))
    [first] = json.loads(cli.run(*args))
    monkeypatch.setattr(sys, "stdin", _stdin(payload))
    [again] = json.loads(cli.run(*args))
    assert first["index"] == again["index"] == 6
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert first["entry"] == again["entry"] == "<stdin> #1 event ev-receipt"
    assert again["entry_digest"] == first["entry_digest"]
    assert again["leaf_hash"] == first["leaf_hash"]
    InclusionProof.from_json(again["inclusion_proof"]).verify()
    assert cli.tree_size() == 7
    assert json.loads(cli.run("lot", "show", LOT, "--json"))["holder"] == TRADER


def _stdin(data: bytes) -> io.TextIOWrapper:
    buffer = io.BytesIO(data)
    buffer.name = "<stdin>"  # as sys.stdin.buffer is named
    return io.TextIOWrapper(buffer)


def test_errors_are_one_line_with_a_reason(cli: Cli, tmp_path: Path) -> None:
    cli.run("log", "checkpoint", expect=1)
    assert "LOG_NOT_INITIALISED" in cli.last_err
    cli.run("init", "--origin", ORIGIN)
    cli.run("log", "entry", "0", expect=1)
    assert "NOT_FOUND" in cli.last_err
    cli.run("log", "prove", "inclusion", "0", "--size", "5", expect=1)
    assert "OUT_OF_RANGE" in cli.last_err
    cli.run("init", "--origin", "bad origin", expect=1)
    cli.new_key(tmp_path / "admin.pem")
    entries = _genesis_signed_by(cli, tmp_path / "admin.pem", tmp_path / "genesis.json")
    cli.append(entries, tmp_path / "missing.pem", expect=1)
    assert "KEY_FILE" in cli.last_err
    assert "missing.pem" in cli.last_err
    assert len(cli.last_err.strip().splitlines()) == 1
    cli.run("log", "append", str(entries), expect=2)  # --key is required
    assert "--key" in cli.last_err
    assert cli.tree_size() == 0


def test_encrypted_partner_key(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli.run("init", "--origin", ORIGIN)
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", "correct horse")
    cli.run("keys", "generate", "-o", str(tmp_path / "k.pem"), "--encrypt")
    assert b"ENCRYPTED" in (tmp_path / "k.pem").read_bytes()
    entries = _genesis_signed_by(cli, tmp_path / "k.pem", tmp_path / "genesis.json")
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", "wrong")
    cli.append(entries, tmp_path / "k.pem", expect=1)
    assert "KEY_FILE" in cli.last_err
    assert cli.tree_size() == 0
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", "correct horse")
    assert "appended" in cli.append(entries, tmp_path / "k.pem")
    assert cli.tree_size() == 1


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
    cli.new_key(tmp_path / "p.pem")
    shown = cli.run("keys", "show", str(tmp_path / "p.pem"))
    assert "keyid:" in shown
    entries = _genesis_signed_by(cli, tmp_path / "p.pem", tmp_path / "e.json")
    cli.append(entries, tmp_path / "p.pem", expect=1)  # the log key is not in the data directory
    assert "--log-key" in cli.last_err
    cli.run(
        "log", "append", str(entries), "--key", str(tmp_path / "p.pem"), "--log-key", str(log_key)
    )
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
