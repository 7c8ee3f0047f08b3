"""Append throughput and proof serving, beside the raw Ed25519 verification rate.

    python -m bench.append                 # full run: 1,000,000-entry log on SQLite
    python -m bench.append --fill 100000   # quicker
    python -m bench.append --db postgresql://postgres@127.0.0.1:5432/test

Measures, in one process and one run:
  * raw single-thread Ed25519 verification rate (the machine's reference);
  * in-process append throughput at batch sizes 1, 100 and 1000 (each entry's
    signature is verified, leaves, tree nodes and a signed checkpoint are
    committed per batch);
  * inclusion-proof serving time (p50/p99) at the filled tree size;
  * peak RSS of the process while appending the fill.
Entry signing happens outside the timed sections. The last line printed is
one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text

from ledger.admission import Submission
from ledger.dsse import PAYLOAD_TYPE_EVENT, Signer, sign_envelope
from ledger.note import NoteSigner
from ledger.sequencer import EnvelopeRules, Sequencer, initialise_log
from ledger.storage import LogStore
from ledger.storage.database import normalise_url, sqlite_url

ORIGIN = "bench.custody.example/log"


def raw_verify_rate(seconds: float = 2.0) -> float:
    """Single-thread Ed25519 verifications per second over 300-byte messages."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    messages = [os.urandom(300) for _ in range(512)]
    signatures = [key.sign(m) for m in messages]
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for message, signature in zip(messages, signatures, strict=True):
            public.verify(signature, message)
        done += len(messages)
    return done / (time.perf_counter() - start)


def payloads(signers: list[Signer]) -> Iterator[Submission]:
    """Distinct event-sized payloads (about 300 bytes), each from one of a few partners."""
    counter = 0
    while True:
        signer = signers[counter % len(signers)]
        body = (
            b'{"event_id":"evt-%012d","type":"dispatch","lot":"LOT-%08d",'
            b'"mass_g":%d,"from":"partner-%d","to":"partner-%d",'
            b'"evidence":[{"uri":"https://docs.example/bol/%d","sha256":"%s"}]}'
            % (
                counter,
                counter // 7,
                1_000_000 + counter,
                counter % 13,
                (counter + 1) % 13,
                counter,
                os.urandom(32).hex().encode(),
            )
        )
        counter += 1
        envelope = sign_envelope(PAYLOAD_TYPE_EVENT, body, [signer])
        yield Submission.of(envelope, [signer.public_key])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def append_rate(
    sequencer: Sequencer, source: Iterator[Submission], batch: int, total: int
) -> float:
    """Entries per second appending ``total`` entries in batches of ``batch``."""
    elapsed = 0.0
    for _ in range(total // batch):
        submissions = [next(source) for _ in range(batch)]
        start = time.perf_counter()
        outcomes = sequencer.append_batch(submissions)
        elapsed += time.perf_counter() - start
        if any(isinstance(o, Exception) for o in outcomes):
            raise SystemExit(f"an append was refused: {outcomes}")
    return (total // batch) * batch / elapsed


def open_log(url: str) -> Sequencer:
    store = LogStore.open(url)
    signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    initialise_log(store, signer)
    return Sequencer(store, signer, rules=EnvelopeRules())


def reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        for table in ("checkpoints", "tree_nodes", "leaves", "log_meta", "alembic_version"):
            connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--fill", type=int, default=1_000_000, help="entries in the big log")
    parser.add_argument("--batch1", type=int, default=1_000, help="entries appended one by one")
    parser.add_argument("--batch100", type=int, default=20_000, help="entries in batches of 100")
    parser.add_argument("--proofs", type=int, default=2_000, help="inclusion proofs to time")
    args = parser.parse_args()

    signers = [Signer(Ed25519PrivateKey.generate()) for _ in range(13)]
    source = payloads(signers)
    results: dict[str, object] = {"python": sys.version.split()[0]}

    with tempfile.TemporaryDirectory() as tmp:

        def fresh(name: str) -> Sequencer:
            if args.db:
                reset_postgres(normalise_url(args.db))
                return open_log(args.db)
            return open_log(sqlite_url(Path(tmp) / f"{name}.db"))

        results["backend"] = "postgresql" if args.db else "sqlite"
        raw = raw_verify_rate()
        results["raw_ed25519_verify_per_s"] = round(raw)
        print(f"raw Ed25519 verification, one thread: {raw:,.0f}/s")

        for batch, total in ((1, args.batch1), (100, args.batch100)):
            sequencer = fresh(f"batch{batch}")
            rate = append_rate(sequencer, source, batch, total)
            sequencer.close()
            results[f"append_batch{batch}_per_s"] = round(rate)
            print(
                f"append, batch {batch:>4}: {rate:>9,.0f} entries/s "
                f"({rate / raw:.2f} x raw verify {raw:,.0f}/s)"
            )

        sequencer = fresh("fill")
        filled = 0
        elapsed = 0.0
        checkpoints = [(0, 0.0)]
        while filled < args.fill:
            step = min(100_000, args.fill - filled)
            rate = append_rate(sequencer, source, 1000, step)
            elapsed += step / rate
            filled += step
            checkpoints.append((filled, elapsed))
            print(
                f"  filled {filled:>9,}: last 100k at {rate:,.0f}/s, "
                f"peak RSS {peak_rss_mb():.0f} MB",
                flush=True,
            )
        rate1000 = filled / elapsed
        results["append_batch1000_per_s"] = round(rate1000)
        results["append_batch1000_vs_raw"] = round(rate1000 / raw, 3)
        results["fill_entries"] = filled
        results["fill_peak_rss_mb"] = round(peak_rss_mb(), 1)
        print(
            f"append, batch 1000: {rate1000:>9,.0f} entries/s over {filled:,} entries "
            f"({rate1000 / raw:.2f} x raw verify {raw:,.0f}/s)"
        )
        print(f"peak RSS while appending {filled:,} entries: {peak_rss_mb():.0f} MB")

        store = sequencer.store
        size = store.size()
        rng = random.Random(7)
        timings = []
        for _ in range(args.proofs):
            index = rng.randrange(size)
            start = time.perf_counter()
            proof = store.inclusion_proof(index, size)
            timings.append(time.perf_counter() - start)
            proof.verify()
        timings.sort()
        p50 = statistics.median(timings) * 1000
        p99 = timings[int(len(timings) * 0.99) - 1] * 1000
        results["inclusion_proof_tree_size"] = size
        results["inclusion_proof_p50_ms"] = round(p50, 3)
        results["inclusion_proof_p99_ms"] = round(p99, 3)
        print(
            f"inclusion proof at tree size {size:,}: p50 {p50:.3f} ms, p99 {p99:.3f} ms "
            f"(raw verify {raw:,.0f}/s)"
        )
        sequencer.close()
        store.close()

    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
