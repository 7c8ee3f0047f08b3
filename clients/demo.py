"""The README's first command: a local ledger on SQLite, end to end.

Creates a fresh log under ``.custody/demo``, gives three partners keys, has
them append signed custody records, replays and verifies the whole log,
proves one entry's inclusion and prints the signed checkpoint. Every step is
a real ``custody`` command, echoed before it runs.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path

from clients.cli.main import main as custody
from ledger.storage.database import sqlite_url

DEMO_DIR = Path(".custody") / "demo"
ORIGIN = "demo.custody.example/ledger"
# Until the domain schemas land, sample records travel as JSON payloads.
PAYLOAD_TYPE = "application/vnd.custody.sample.v1+json"

PARTNERS = ("kolwezi-mine", "lualaba-trading", "harjavalta-refinery")
RECORDS: tuple[tuple[str, dict[str, object]], ...] = (
    (
        "kolwezi-mine",
        {
            "event_id": "KM-2026-0001",
            "kind": "extraction",
            "lot": "KM-COB-0001",
            "material": "cobalt hydroxide",
            "mass_g": 24_000_000,
            "assay_ppm": {"Co": 340_000},
            "site": "facility:kolwezi-pit-3",
        },
    ),
    (
        "kolwezi-mine",
        {
            "event_id": "KM-2026-0002",
            "kind": "dispatch",
            "lot": "KM-COB-0001",
            "to": "partner:lualaba-trading",
            "evidence": [{"uri": "https://docs.example/bol/88123", "sha256": "9f2c" + "0" * 60}],
        },
    ),
    (
        "lualaba-trading",
        {
            "event_id": "LT-2026-0107",
            "kind": "receipt",
            "lot": "KM-COB-0001",
            "from": "partner:kolwezi-mine",
            "mass_g": 23_980_000,
        },
    ),
    (
        "lualaba-trading",
        {
            "event_id": "LT-2026-0108",
            "kind": "dispatch",
            "lot": "KM-COB-0001",
            "to": "partner:harjavalta-refinery",
        },
    ),
    (
        "harjavalta-refinery",
        {
            "event_id": "HR-2026-5531",
            "kind": "receipt",
            "lot": "KM-COB-0001",
            "from": "partner:lualaba-trading",
            "mass_g": 23_975_000,
        },
    ),
    (
        "harjavalta-refinery",
        {
            "event_id": "HR-2026-5532",
            "kind": "transformation",
            "inputs": [{"lot": "KM-COB-0001", "consumed_g": 23_975_000}],
            "outputs": [
                {"lot": "HR-CSO4-0042", "mass_g": 37_000_000, "assay_ppm": {"Co": 210_000}}
            ],
        },
    ),
)


def run(*args: str) -> None:
    print(f"\n$ custody {shlex.join(args)}", flush=True)
    # The demo always runs on its own SQLite file, whatever CUSTODY_DATABASE_URL says.
    database = sqlite_url(DEMO_DIR.resolve() / "custody.db")
    code = custody(["--data-dir", str(DEMO_DIR), "--db", database, *args])
    sys.stdout.flush()
    if code != 0:
        raise SystemExit(f"demo step failed with exit code {code}")


def main() -> int:
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    print(f"Custody demo: a local ledger in {DEMO_DIR}/ on SQLite")
    run("init", "--origin", ORIGIN)
    keys = DEMO_DIR / "keys"
    for partner in PARTNERS:
        run("keys", "generate", "-o", str(keys / f"{partner}.pem"))
    records = DEMO_DIR / "records"
    records.mkdir(parents=True)
    for partner, record in RECORDS:
        path = records / f"{record['event_id']}.json"
        path.write_text(json.dumps(record, indent=1) + "\n")
        run(
            "log", "append", str(path), "--key", str(keys / f"{partner}.pem"),
            "--payload-type", PAYLOAD_TYPE,
        )  # fmt: skip
    run("log", "verify")
    run("log", "prove", "inclusion", "2", "--json")
    run("log", "prove", "consistency", "3", "--json")
    run("log", "checkpoint")
    print("\nThe checkpoint above is the signed head of the log; anyone holding the")
    print("verifier key from `custody log vkey` can check every proof against it.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
