"""The `custody` command line with domain entries: append formats, refusals, lots, samples."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from clients.sample.consortium import (
    BALTIC,
    BOTHNIA,
    EXPECTED_COBALT_ORIGINS,
    FINAL_LOT_ID,
    LOT_FEED_BLEND,
    SAMPLE_PARTNERS,
    SKELLEFTEA_PLANT,
)
from ledger.checkpoint import open_checkpoint
from ledger.merkle import InclusionProof
from ledger.note import VerifierKey
from ledger.storage.database import normalise_url, sqlite_url
from tests.clients.cli_support import (
    LOT,
    MINE,
    ORIGIN,
    TRADER,
    Cli,
    Keys,
    admission,
    assay,
    dispatch,
    extraction,
    genesis,
    partner,
    small_consortium,
    write_entries,
)
from tests.services.rpc_support import SAMPLE_SIZE


@pytest.fixture
def cli(tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]) -> Cli:
    cli = Cli(tmp_path / "home", database_url, capsys)
    cli.run("init", "--origin", ORIGIN)
    return cli


@pytest.fixture
def parse_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    """An initialised log on SQLite only: for input the CLI refuses before using the database."""
    cli = Cli(tmp_path / "home", sqlite_url(tmp_path / "parse.db"), capsys)
    cli.run("init", "--origin", ORIGIN)
    cli.new_key(tmp_path / "k.pem")
    return cli


@pytest.fixture
def consortium(cli: Cli, tmp_path: Path) -> Keys:
    """Leaves 0-3: the small consortium's governance; leaf 4: the mine extracts LOT."""
    keys, governance = small_consortium(cli, tmp_path)
    cli.append(write_entries(tmp_path / "governance.json", governance), keys.admin)
    cli.append(write_entries(tmp_path / "extraction.json", extraction("ev-extract")), keys.mine)
    return keys


@pytest.fixture
def sampled(cli: Cli) -> Cli:
    out = cli.run("sample")
    assert f"appended {SAMPLE_SIZE} entries" in out
    assert f"custody lot trace {FINAL_LOT_ID}" in out
    return cli


def _one_line(err: str) -> str:
    """The error on stderr, which must be one line (``append`` also reports the tree size)."""
    lines = [line for line in err.strip().splitlines() if not line.startswith("tree size ")]
    assert len(lines) == 1, f"not one line: {err!r}"
    return lines[0]


# --- log append: formats and output ----------------------------------------------------


def test_append_reads_one_object_an_array_or_json_lines(cli: Cli, tmp_path: Path) -> None:
    keys, governance = small_consortium(cli, tmp_path)
    single = write_entries(tmp_path / "genesis.json", governance[0])
    out = cli.append(single, keys.admin)
    assert out == f"appended {single} #1 governance gov-genesis at index 0 (receipt verified)\n"
    assert "tree size 1" in cli.last_err

    array = write_entries(tmp_path / "rest.json", governance[1:], style="array")
    assert json.loads(array.read_text())[0]["governance"]["actionId"] == "gov-admit-mine"
    out = cli.append(array, keys.admin)
    assert out.splitlines() == [
        f"appended {array} #1 governance gov-admit-mine at index 1 (receipt verified)",
        f"appended {array} #2 governance gov-admit-trader at index 2 (receipt verified)",
        f"appended {array} #3 governance gov-register-pit at index 3 (receipt verified)",
    ]

    lines = write_entries(
        tmp_path / "events.jsonl",
        [extraction("ev-extract"), dispatch("ev-dispatch", MINE, LOT, TRADER)],
        style="lines",
    )
    lines.write_text(lines.read_text().replace("\n", "\n\n", 1))  # blank lines are skipped
    out = cli.append(lines, keys.mine)
    assert [line.split(" at ")[-1] for line in out.splitlines()] == [
        "index 4 (receipt verified)",
        "index 5 (receipt verified)",
    ]
    assert "#2 event ev-dispatch" in out
    assert cli.tree_size() == 6
    shown = json.loads(cli.run("lot", "show", LOT, "--json"))
    assert (shown["state"], shown["holder"], shown["in_transit_to"]) == ("in_transit", MINE, TRADER)
    assert "verified: 6 leaves" in cli.run("log", "verify")


def test_append_json_output_fields(cli: Cli, consortium: Keys, tmp_path: Path) -> None:
    entries = write_entries(
        tmp_path / "more.json",
        [
            extraction("ev-extract-2", lot_id="LOT-A-0002", mass=1_000),
            dispatch("ev-dispatch", MINE, LOT, TRADER),
        ],
    )
    results = json.loads(cli.append(entries, consortium.mine, json_out=True))
    assert isinstance(results, list)
    assert len(results) == 2
    key = VerifierKey.parse(cli.run("log", "vkey").strip())
    head = cli.run("log", "checkpoint").encode()
    for index, result in enumerate(results, start=5):
        assert set(result) == {
            "entry", "index", "duplicate", "entry_digest", "leaf_hash", "checkpoint",
            "inclusion_proof",
        }  # fmt: skip
        assert (result["index"], result["duplicate"]) == (index, False)
        # One batch, one checkpoint: both receipts are against the new head.
        assert result["checkpoint"].encode() == head
        signed = open_checkpoint(result["checkpoint"].encode(), key).checkpoint
        assert signed.size == 7
        proof = InclusionProof.from_json(result["inclusion_proof"])
        proof.verify()
        assert (proof.index, proof.tree_size, proof.root) == (index, 7, signed.root_hash)
        stored = json.loads(cli.run("log", "entry", str(index), "--json"))
        assert result["leaf_hash"] == stored["leaf_hash"]
        assert result["entry_digest"] == stored["entry_digest"]
        assert base64.b64decode(result["leaf_hash"]) == proof.leaf_hash
    assert results[0]["entry"] == f"{entries} #1 event ev-extract-2"
    assert results[1]["entry"] == f"{entries} #2 event ev-dispatch"
    # Appending the same file again: the same indices, marked as duplicates.
    again = json.loads(cli.append(entries, consortium.mine, json_out=True))
    assert [(r["index"], r["duplicate"]) for r in again] == [(5, True), (6, True)]
    assert [r["entry_digest"] for r in again] == [r["entry_digest"] for r in results]
    assert cli.tree_size() == 7


# --- refusals -------------------------------------------------------------------------


def test_refused_entry_exits_1_with_its_reason_and_appends_nothing(
    cli: Cli, consortium: Keys, tmp_path: Path
) -> None:
    before = cli.run("log", "checkpoint")
    # The trader does not hold LOT: the mine does.
    entries = write_entries(tmp_path / "bad.json", dispatch("ev-steal", TRADER, LOT, MINE))
    out = cli.append(entries, consortium.trader, expect=1)
    assert out.startswith(f"refused  {entries} #1 event ev-steal: LOT_NOT_HELD: ")
    err = _one_line(cli.last_err)
    assert err.startswith("custody: LOT_NOT_HELD: 1 of 1 entries refused (they changed nothing); ")
    assert "ev-steal" in err
    [refused] = json.loads(cli.append(entries, consortium.trader, expect=1, json_out=True))
    assert refused["entry"] == f"{entries} #1 event ev-steal"
    assert refused["refused"] == "LOT_NOT_HELD"
    assert refused["message"]
    assert set(refused) == {"entry", "refused", "message"}
    assert cli.tree_size() == 5
    assert cli.run("log", "checkpoint") == before
    assert json.loads(cli.run("lot", "show", LOT, "--json"))["holder"] == MINE


def test_a_refused_entry_in_a_batch_does_not_stop_the_others(
    cli: Cli, consortium: Keys, tmp_path: Path
) -> None:
    entries = write_entries(
        tmp_path / "mixed.json",
        [dispatch("ev-ghost", MINE, "NO-SUCH-LOT", TRADER), dispatch("ev-ok", MINE, LOT, TRADER)],
    )
    out = cli.append(entries, consortium.mine, expect=1)
    assert out.splitlines()[0].startswith(f"refused  {entries} #1 event ev-ghost: UNKNOWN_LOT: ")
    assert out.splitlines()[1] == f"appended {entries} #2 event ev-ok at index 5 (receipt verified)"
    assert "1 of 2 entries refused" in _one_line(cli.last_err)
    assert cli.tree_size() == 6


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no entries"),
        ("[]", "holds no entries"),
        ("not json", "is not JSON: Expecting value at line 1 column 1"),
        ('{"event": {"eventId": "a"}}\n{"event": {"eventId": "b",}}\n', "line 2 is not JSON"),
        ('{"events": {"eventId": "a"}}', 'must be {"event": {...}} or {"governance": {...}}'),
        ('{"event": {}, "governance": {}}', 'must be {"event": {...}} or {"governance": {...}}'),
        ('["event"]', 'must be {"event": {...}} or {"governance": {...}}'),
        ('{"event": {"eventId": "a", "eventTime": "yesterday"}}', "not a valid custody.v1 event"),
        ('{"governance": {"actionId": 7}}', "not a valid custody.v1 governance"),
    ],
)
def test_malformed_input_exits_1_with_one_clear_line(
    parse_cli: Cli, tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "in.json").write_text(content)
    parse_cli.append(tmp_path / "in.json", tmp_path / "k.pem", expect=1)
    err = _one_line(parse_cli.last_err)
    assert err.startswith(f"custody: MALFORMED: {tmp_path / 'in.json'}")
    assert message in err
    assert parse_cli.tree_size() == 0


def test_unknown_field_is_named(cli: Cli, consortium: Keys, tmp_path: Path) -> None:
    valid = extraction("ev-2", lot_id="LOT-A-0002")
    typo = extraction("ev-3", lot_id="LOT-A-0003")
    typo["event"]["extraction"]["massGram"] = typo["event"]["extraction"].pop("massGrams")
    entries = write_entries(tmp_path / "typo.json", [valid, typo])
    cli.append(entries, consortium.mine, expect=1)
    assert f"custody: MALFORMED: {entries} #2 is not a valid custody.v1 event" in cli.last_err
    assert '"massGram"' in cli.last_err
    assert cli.tree_size() == 5  # the valid entry before it was not appended either


def test_unknown_field_error_is_one_line(parse_cli: Cli, tmp_path: Path) -> None:
    entries = write_entries(tmp_path / "typo.json", {"event": {"eventId": "a", "bogus": 1}})
    parse_cli.append(entries, tmp_path / "k.pem", expect=1)
    _one_line(parse_cli.last_err)


@pytest.mark.parametrize("body", ["null", "5", '"text"', "[1]"])
def test_a_body_that_is_not_an_object_is_malformed(
    parse_cli: Cli, tmp_path: Path, body: str
) -> None:
    (tmp_path / "in.json").write_text(f'{{"event": {body}}}')
    parse_cli.append(tmp_path / "in.json", tmp_path / "k.pem", expect=1)
    err = _one_line(parse_cli.last_err)
    assert err.startswith("custody: MALFORMED: ")
    assert "object" in err
    assert "field" not in err  # not "no field named 't'", not "Failed to parse 1 field"


def test_a_broken_pretty_printed_document_names_the_right_line(
    parse_cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "in.json").write_text('{\n  "event": {\n    "eventId": "a",\n  }\n}\n')
    parse_cli.append(tmp_path / "in.json", tmp_path / "k.pem", expect=1)
    assert "line 4" in _one_line(parse_cli.last_err)


# --- governance with two signatures ---------------------------------------------------


def test_threshold_two_governance_needs_two_administrators(cli: Cli, tmp_path: Path) -> None:
    first, second = tmp_path / "a1.pem", tmp_path / "a2.pem"
    admins = [
        partner("admin-one", ["ADMIN"], cli.new_key(first)),
        partner("admin-two", ["ADMIN"], cli.new_key(second), country="NL"),
    ]
    start = write_entries(tmp_path / "genesis.json", genesis("gov-genesis", admins, threshold=2))
    cli.append(start, first, expect=1)
    assert "THRESHOLD_NOT_MET" in cli.append(start, first, expect=1, json_out=True)
    assert cli.tree_size() == 0
    cli.append(start, first, second)
    logged = json.loads(cli.run("log", "entry", "0", "--json"))
    assert len(logged["envelope"]["signatures"]) == 2
    assert sorted(logged["signer_keys"]) == sorted(a["publicKeys"][0] for a in admins)

    mine_key = cli.new_key(tmp_path / "mine.pem")
    admit = write_entries(
        tmp_path / "admit.json", admission("gov-admit", partner(MINE, ["MINE"], mine_key))
    )
    assert "THRESHOLD_NOT_MET" in cli.append(admit, second, expect=1)
    assert "index 1" in cli.append(admit, second, first)
    # The partner's own key and an administrator's: an event takes only the recorder's.
    event = write_entries(tmp_path / "assay.json", assay("ev-1", MINE, "LOT-X", {"Co": 1}))
    assert "KEY_NOT_VALID" in cli.append(event, tmp_path / "mine.pem", first, expect=1)
    assert cli.tree_size() == 2


# --- log reindex ------------------------------------------------------------------------


def test_reindex_rebuilds_identical_lot_views(sampled: Cli) -> None:
    cli = sampled
    views = [("lot", "show", FINAL_LOT_ID), ("lot", "show", LOT_FEED_BLEND)]
    views.append(("lot", "trace", FINAL_LOT_ID))
    before = [cli.run(*view, "--json") for view in views]
    out = cli.run("log", "reindex")
    assert out.startswith(f"reindexed {SAMPLE_SIZE} leaves in ")
    assert [cli.run(*view, "--json") for view in views] == before
    # A damaged leaf: reindex exits 3 naming it, and the indexes stay as they were.
    engine = create_engine(normalise_url(cli.db_url))
    with engine.begin() as connection:
        connection.execute(text("UPDATE leaves SET leaf_bytes = :b WHERE idx = 2"), {"b": b"\x08"})
    engine.dispose()
    cli.run("log", "reindex", expect=3)
    assert "first bad index: 2" in _one_line(cli.last_err)
    assert [cli.run(*view, "--json") for view in views] == before


# --- custody sample and lot queries -----------------------------------------------------


def test_sample_trace_of_the_final_lot_matches_the_hand_worked_origins(sampled: Cli) -> None:
    trace = json.loads(sampled.run("lot", "trace", FINAL_LOT_ID, "--json"))
    assert (trace["lot_id"], trace["tree_size"]) == (FINAL_LOT_ID, SAMPLE_SIZE)
    cobalt = trace["origin_composition"]["Co"]
    origins = {o["key"]: (o["micrograms"], o["share_ppm"]) for o in cobalt["origins"]}
    assert origins == {
        key: (share.micrograms, share.share_ppm) for key, share in EXPECTED_COBALT_ORIGINS.items()
    }
    assert cobalt["total_micrograms"] == 66_000_000 * 27_600
    assert trace["upstream"]["lot_id"] == FINAL_LOT_ID
    shown = sampled.run("lot", "trace", FINAL_LOT_ID)
    assert f"lot {FINAL_LOT_ID} " in shown
    assert "artisanal" in shown


def test_lot_show_of_the_final_lot(sampled: Cli) -> None:
    shown = json.loads(sampled.run("lot", "show", FINAL_LOT_ID, "--json"))
    assert shown["lot_id"] == FINAL_LOT_ID
    assert (shown["holder"], shown["state"], shown["in_transit_to"]) == (BALTIC, "held", None)
    assert shown["mass_grams"] == shown["available_grams"] == 66_000_000
    assert shown["contents_ppm"] == {"Co": 27_600, "Ni": 145_000}
    assert (shown["origin"], shown["facility_id"]) == ("transformation", SKELLEFTEA_PLANT)
    assert shown["created_index"] == SAMPLE_SIZE - 1
    assert shown["history"] == [SAMPLE_SIZE - 1]
    assert (shown["assays"], shown["consumed_by"], shown["scrap_origin"]) == ([], [], None)
    text_form = sampled.run("lot", "show", FINAL_LOT_ID)
    assert f"held by {BALTIC}" in text_form
    assert "66,000,000 g" in text_form


def test_an_unknown_lot_is_not_found(cli: Cli) -> None:
    for command in ("show", "trace"):
        cli.run("lot", command, "NO-SUCH-LOT", "--json", expect=1)
        assert _one_line(cli.last_err) == "custody: NOT_FOUND: no lot 'NO-SUCH-LOT' in this ledger"


def test_sample_refuses_a_non_empty_ledger(sampled: Cli) -> None:
    before = sampled.run("log", "checkpoint")
    sampled.run("sample", expect=1)
    assert "CONFIGURATION" in _one_line(sampled.last_err)
    sampled.run("sample", "--synthetic", "10", expect=1)
    assert sampled.run("log", "checkpoint") == before


def test_sample_needs_an_initialised_log(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = Cli(tmp_path / "bare", database_url, capsys)
    bare.run("sample", expect=1)
    assert "LOG_NOT_INITIALISED" in bare.last_err


def test_synthetic_sample_appends_and_verifies(cli: Cli) -> None:
    out = cli.run("sample", "--synthetic", "300", "--seed", "3")
    assert out.startswith("appended 300 entries in ")
    assert out.rstrip().endswith("tree size 300")
    assert cli.tree_size() == 300
    assert "verified: 300 leaves" in cli.run("log", "verify")


def test_exported_sample_keys_sign_new_events(cli: Cli, tmp_path: Path) -> None:
    exported = tmp_path / "sample-keys"
    out = cli.run("sample", "--export-keys", str(exported))
    assert f"written to {exported}/" in out
    assert sorted(p.name for p in exported.iterdir()) == sorted(
        f"{p.partner_id}.pem" for p in SAMPLE_PARTNERS
    )
    lab_key = exported / f"{BOTHNIA}.pem"
    assert stat.S_IMODE(os.stat(lab_key).st_mode) == 0o600
    entry = assay("ev-lab-final", BOTHNIA, FINAL_LOT_ID, {"Co": 27_450, "Ni": 145_900})
    appended = cli.append(write_entries(tmp_path / "assay.json", entry), lab_key)
    assert f"at index {SAMPLE_SIZE} (receipt verified)" in appended
    [logged] = json.loads(cli.run("lot", "show", FINAL_LOT_ID, "--json"))["assays"]
    assert (logged["event_id"], logged["lab"], logged["index"]) == (
        "ev-lab-final", BOTHNIA, SAMPLE_SIZE,
    )  # fmt: skip
    assert logged["contents_ppm"] == {"Co": 27_450, "Ni": 145_900}
    # The lab's key cannot sign for another partner.
    forged = assay("ev-forged", BALTIC, FINAL_LOT_ID, {"Co": 1})
    assert "KEY_NOT_VALID" in cli.append(
        write_entries(tmp_path / "f.json", forged), lab_key, expect=1
    )
    assert f"verified: {SAMPLE_SIZE + 1} leaves" in cli.run("log", "verify")


def test_sample_export_into_a_directory_holding_keys_changes_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    exported = tmp_path / "sample-keys"
    cli.new_key(exported / f"{SAMPLE_PARTNERS[0].partner_id}.pem")
    cli.run("sample", "--export-keys", str(exported), expect=1)
    assert "CONFIGURATION: --export-keys would overwrite" in cli.last_err
    assert cli.tree_size() == 0
