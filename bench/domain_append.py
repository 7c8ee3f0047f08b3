"""Domain append throughput at 10,000 and at 1,000,000 events (admission must not grow).

    python -m bench.domain_append                  # full run: fill to 1,000,000 events, SQLite
    python -m bench.domain_append --fill 200000    # quicker

Appends synthetic, valid consortium events (``clients.sample.synthetic``:
extractions, dispatches and receipts, blends and refining, assays,
certifications) through the sequencer with Custody's admission rules, in
batches of 1000: every entry is verified, checked against the registry and
inventory indexes, given subject links, and committed with its derived rows
and one signed checkpoint per batch. Generating and signing entries happens
outside the timed sections.

Measured in one run: the raw single-thread Ed25519 verification rate (the
machine's reference); then two ledgers, one holding 10,000 events and one
filled to 1,000,000, each appended another window of events, one batch on
each in turn so that both are timed on the same machine at the same time;
their rates and ratio; peak RSS. The last line printed is one JSON object
with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.append import peak_rss_mb, raw_verify_rate
from clients.sample.synthetic import synthetic_submissions
from ledger.admission import Submission
from ledger.custody_rules import CustodyRules
from ledger.note import NoteSigner
from ledger.sequencer import Sequencer, initialise_log
from ledger.storage import LogStore
from ledger.storage.database import SQLITE_CACHE_ENV, sqlite_url

ORIGIN = "bench.custody.example/domain"
BATCH = 1_000


def append(sequencer: Sequencer, source: Iterator[Submission], count: int) -> float:
    """Append ``count`` entries in batches; return the seconds spent inside append_batch."""
    elapsed = 0.0
    done = 0
    while done < count:
        batch = [next(source) for _ in range(min(BATCH, count - done))]
        start = time.perf_counter()
        outcomes = sequencer.append_batch(batch)
        elapsed += time.perf_counter() - start
        refused = [o for o in outcomes if isinstance(o, Exception)]
        if refused:
            raise SystemExit(f"the generator made an entry the rules refuse: {refused[0]!r}")
        done += len(batch)
    return elapsed


def open_ledger(url: str) -> Sequencer:
    store = LogStore.open(url)
    signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    initialise_log(store, signer)
    return Sequencer(store, signer, rules=CustodyRules(store))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fill", type=int, default=1_000_000, help="size of the large ledger")
    parser.add_argument("--early", type=int, default=10_000, help="size of the small ledger")
    parser.add_argument("--window", type=int, default=40_000, help="entries timed per ledger")
    parser.add_argument(
        "--sqlite-cache-mib",
        type=int,
        default=256,
        help="SQLite page cache (CUSTODY_SQLITE_CACHE_MIB): sized for the hot pages of a "
        "1,000,000-event ledger",
    )
    args = parser.parse_args()
    os.environ[SQLITE_CACHE_ENV] = str(args.sqlite_cache_mib)

    results: dict[str, object] = {"python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        results["backend"] = "sqlite"
        results["sqlite_cache_mib"] = args.sqlite_cache_mib
        raw = raw_verify_rate()
        results["raw_ed25519_verify_per_s"] = round(raw)
        print(f"raw Ed25519 verification, one thread: {raw:,.0f}/s", flush=True)

        # Two ledgers, each its own consortium: a small one held at --early events and a
        # large one filled to --fill. Their windows are then timed batch by batch in
        # turn, so both see the same machine (its speed drifts by several per cent).
        small = open_ledger(sqlite_url(Path(tmp) / "small.db"))
        small_source = synthetic_submissions(args.early + args.window, seed=2)
        append(small, small_source, args.early)
        large = open_ledger(sqlite_url(Path(tmp) / "large.db"))
        large_source = synthetic_submissions(args.fill + args.window, seed=1)
        filled = 0
        while filled < args.fill:
            step = min(100_000 - filled % 100_000, args.fill - filled)
            seconds = append(large, large_source, step)
            filled += step
            print(
                f"  filled {filled:>9,}: last {step:,} at {step / seconds:,.0f}/s, "
                f"peak RSS {peak_rss_mb():.0f} MB",
                flush=True,
            )
        small_seconds = large_seconds = 0.0
        for _ in range(args.window // BATCH):
            small_seconds += append(small, small_source, BATCH)
            large_seconds += append(large, large_source, BATCH)
        early = args.window // BATCH * BATCH / small_seconds
        late = args.window // BATCH * BATCH / large_seconds
        print(f"append at {args.early:,} events: {early:,.0f}/s", flush=True)
        print(f"append at {args.fill:,} events: {late:,.0f}/s", flush=True)
        for sequencer in (small, large):
            sequencer.close()
            sequencer.store.close()

    results.update(
        {
            "early_log_size": args.early,
            "late_log_size": args.fill,
            "window_entries": args.window,
            "append_at_early_per_s": round(early),
            "append_at_late_per_s": round(late),
            "late_vs_early": round(late / early, 3),
            "late_vs_raw": round(late / raw, 3),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
    )
    print(
        f"append at {args.fill:,} = {late / early:.2f} x append at {args.early:,} "
        f"({late:,.0f}/s vs {early:,.0f}/s; raw verify {raw:,.0f}/s)"
    )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
