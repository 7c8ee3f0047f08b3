"""Domain append throughput at 10,000 and at 1,000,000 events (admission must not grow).

    python -m bench.domain_append                  # full run: fill to 1,000,000 events, SQLite
    python -m bench.domain_append --fill 200000    # quicker
    python -m bench.domain_append --db postgresql://postgres@127.0.0.1:5432/test

Appends synthetic, valid consortium events (``clients.sample.synthetic``:
extractions, dispatches and receipts, blends and refining, assays,
certifications) through the sequencer with Custody's admission rules, in
batches of 1000: every entry is verified, checked against the registry and
inventory indexes, given subject links, and committed with its derived rows
and one signed checkpoint per batch. Generating and signing entries happens
outside the timed sections.

Measured in one run: the raw single-thread Ed25519 verification rate (the
machine's reference); append throughput over a window of entries starting
when the log holds 10,000 entries, and over the same-sized window starting
at the fill size; their ratio; peak RSS. The last line printed is one JSON
object with every figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.append import raw_verify_rate, reset_postgres
from clients.sample.synthetic import synthetic_submissions
from ledger.admission import Submission
from ledger.custody_rules import CustodyRules
from ledger.note import NoteSigner
from ledger.sequencer import Sequencer, initialise_log
from ledger.storage import LogStore
from ledger.storage.database import normalise_url, sqlite_url

ORIGIN = "bench.custody.example/domain"
BATCH = 1_000
DOMAIN_TABLES = (
    "consortium",
    "consortium_versions",
    "partners",
    "partner_versions",
    "partner_keys",
    "facilities",
    "lots",
    "events",
    "dispatches",
    "transformations",
    "lot_inputs",
    "assays",
    "certifications",
    "subject_heads",
    "subject_events",
)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--fill", type=int, default=1_000_000, help="log size of the late window")
    parser.add_argument("--early", type=int, default=10_000, help="log size of the early window")
    parser.add_argument("--window", type=int, default=20_000, help="entries timed per window")
    args = parser.parse_args()
    if args.fill < args.early + args.window:
        parser.error("--fill must be at least --early + --window")

    results: dict[str, object] = {"python": sys.version.split()[0]}
    source = synthetic_submissions(args.fill + args.window, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        if args.db:
            url = normalise_url(args.db)
            reset_postgres(url, extra_tables=DOMAIN_TABLES)
        else:
            url = sqlite_url(Path(tmp) / "domain.db")
        results["backend"] = "postgresql" if args.db else "sqlite"
        raw = raw_verify_rate()
        results["raw_ed25519_verify_per_s"] = round(raw)
        print(f"raw Ed25519 verification, one thread: {raw:,.0f}/s", flush=True)

        store = LogStore.open(url)
        signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
        initialise_log(store, signer)
        sequencer = Sequencer(store, signer, rules=CustodyRules(store))

        append(sequencer, source, args.early)
        early = args.window / append(sequencer, source, args.window)
        print(f"append at {args.early:,} events: {early:,.0f}/s", flush=True)

        filled = sequencer.size
        fill_seconds = 0.0
        while filled < args.fill:
            step = min(100_000 - filled % 100_000, args.fill - filled)
            seconds = append(sequencer, source, step)
            fill_seconds += seconds
            filled += step
            print(
                f"  filled {filled:>9,}: last {step:,} at {step / seconds:,.0f}/s, "
                f"peak RSS {peak_rss_mb():.0f} MB",
                flush=True,
            )
        late = args.window / append(sequencer, source, args.window)
        print(f"append at {args.fill:,} events: {late:,.0f}/s", flush=True)
        sequencer.close()
        store.close()

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
