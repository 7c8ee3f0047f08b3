"""The README's first command: a consortium's ledger on SQLite, end to end.

Creates a fresh log under ``.custody/demo``, fills it with the sample
consortium (administrators, mines, a trader, a certified refinery, a cathode
and a cell maker, a recycler, a lab and an auditor) and its custody history,
rebuilds and checks the indexes, traces the battery cells back to their
mines, replays and verifies the whole log, proves one entry and prints the
signed checkpoint. Every step is a real ``custody`` command, echoed first.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

from clients.cli.main import main as custody
from clients.sample.consortium import FINAL_LOT_ID
from ledger.storage.database import sqlite_url

DEMO_DIR = Path(".custody") / "demo"
ORIGIN = "demo.custody.example/ledger"


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
    print(f"Custody demo: a consortium's ledger in {DEMO_DIR}/ on SQLite")
    run("init", "--origin", ORIGIN)
    run("sample", "--export-keys", str(DEMO_DIR / "sample-keys"))
    run("lot", "show", FINAL_LOT_ID)
    run("lot", "trace", FINAL_LOT_ID)
    run("log", "reindex")
    run("log", "verify")
    run("log", "prove", "inclusion", "30", "--json")
    run("log", "checkpoint")
    print("\nThe checkpoint above is the signed head of the log; anyone holding the")
    print("verifier key from `custody log vkey` can check every proof against it.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
