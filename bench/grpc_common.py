"""What bench.grpc_append and bench.grpc_floor share: the raw Ed25519 reference, mutual-TLS
channels of their own, the unary clients and their levels, the SDK's stream packing,
latency figures, CPU time, and the command line's common parts."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import statistics
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clients.pki import CertificateAuthority, IssuedCertificate
from clients.sdk import ClientTls
from custody.v1 import ledger_service_pb2, ledger_service_pb2_grpc

_Item = TypeVar("_Item")

# --- raw Ed25519 -----------------------------------------------------------------------


def raw_verify_rate(threads: int, seconds: float) -> float:
    """Ed25519 verifications per second by ``threads`` threads together, each verifying
    its own pre-made signatures over 300-byte messages for ``seconds``."""
    counts = [0] * threads
    starts = [0.0] * threads
    ends = [0.0] * threads
    barrier = threading.Barrier(threads)

    def work(slot: int) -> None:
        key = Ed25519PrivateKey.generate()
        public = key.public_key()
        pairs = [(key.sign(m), m) for m in (os.urandom(300) for _ in range(256))]
        barrier.wait()
        starts[slot] = time.perf_counter()
        deadline = starts[slot] + seconds
        done = 0
        while time.perf_counter() < deadline:
            for signature, message in pairs:
                public.verify(signature, message)
            done += len(pairs)
        counts[slot] = done
        ends[slot] = time.perf_counter()

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (max(ends) - min(starts))


def measure_raw(seconds: float, when: str) -> tuple[float, float]:
    one = raw_verify_rate(1, seconds)
    two = raw_verify_rate(2, seconds)
    print(
        f"raw Ed25519 verification ({when}): one thread {one:,.0f}/s, "
        f"two threads {two:,.0f}/s ({two / one:.2f} x)",
        flush=True,
    )
    return one, two


# --- figures ---------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@dataclass(frozen=True)
class Latencies:
    """Call latencies in milliseconds: nearest-rank p50 and p99, mean and maximum."""

    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latencies:
        ordered = sorted(seconds)
        return cls(
            percentile(ordered, 0.50) * 1000,
            percentile(ordered, 0.99) * 1000,
            statistics.fmean(ordered) * 1000,
            ordered[-1] * 1000,
        )


def client_cpu_s() -> float:
    """This process's CPU time so far (user and system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def other_process_usage(pid: int) -> tuple[float, float]:
    """Another live process's CPU time so far (user and system, seconds) and peak RSS
    (MB), from Linux's /proc; (0, 0) once it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0, 0.0
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = stat.rpartition(")")[2].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    peak_kb = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0
    )
    return cpu, peak_kb / 1024


# --- channels --------------------------------------------------------------------------


def partner_credentials(
    ca: CertificateAuthority, partner: IssuedCertificate
) -> grpc.ChannelCredentials:
    """Mutual TLS as ``partner``: trusting the consortium CA, presenting its certificate."""
    return ClientTls.from_files(
        ca.certificate_path, partner.certificate_path, partner.key_path
    ).channel_credentials()


def own_channel(address: str, credentials: grpc.ChannelCredentials) -> grpc.aio.Channel:
    # A local subchannel pool: every channel makes its own TLS connection.
    return grpc.aio.secure_channel(
        address, credentials, options=[("grpc.use_local_subchannel_pool", 1)]
    )


# --- unary clients ---------------------------------------------------------------------


class RequestSource(Protocol):
    def next_request(self) -> ledger_service_pb2.AppendRequest: ...


@dataclass
class UnaryClient:
    source: RequestSource
    stub: ledger_service_pb2_grpc.LedgerServiceAsyncStub

    async def run(
        self, requests: Sequence[ledger_service_pb2.AppendRequest], deadline: float | None
    ) -> list[float]:
        """Send ``requests`` one after another, or (with a deadline) fresh ones until
        then; return each call's latency in seconds."""
        latencies: list[float] = []
        pending: Iterator[ledger_service_pb2.AppendRequest] = iter(requests)
        while True:
            if deadline is None:
                request = next(pending, None)
                if request is None:
                    return latencies
            else:
                if time.perf_counter() >= deadline:
                    return latencies
                request = self.source.next_request()
            started = time.perf_counter()
            response = await self.stub.Append(request, timeout=60)
            latencies.append(time.perf_counter() - started)
            if not response.HasField("receipt"):
                raise SystemExit("an Append returned no receipt")


@dataclass(frozen=True)
class UnaryResult:
    latencies: list[float]
    seconds: float


async def run_unary_level(
    clients: Sequence[UnaryClient],
    warmup: int,
    count: int,
    seconds: float | None,
    between: Callable[[], object],
) -> UnaryResult:
    """Warm up, call ``between``, then time ``count`` Appends (or ``seconds``) spread
    over ``clients``."""
    share = math.ceil(count / len(clients))
    warm = max(2, math.ceil(warmup / len(clients)))
    warm_requests = [[c.source.next_request() for _ in range(warm)] for c in clients]
    timed_requests = (
        [[c.source.next_request() for _ in range(share)] for c in clients]
        if seconds is None
        else [[] for _ in clients]
    )
    await asyncio.gather(*(c.run(r, None) for c, r in zip(clients, warm_requests, strict=True)))
    between()
    started = time.perf_counter()
    deadline = None if seconds is None else started + seconds
    results = await asyncio.gather(
        *(c.run(r, deadline) for c, r in zip(clients, timed_requests, strict=True))
    )
    elapsed = time.perf_counter() - started
    return UnaryResult([x for part in results for x in part], elapsed)


# --- stream packing --------------------------------------------------------------------


class QueuedEntries(Generic[_Item]):
    """The entries cleared to go, as the SDK's packer reads them: each item waiting in
    ``queue`` becomes the entry ``take`` makes of it; None ends the stream."""

    def __init__(
        self,
        queue: asyncio.Queue[_Item | None],
        take: Callable[[_Item], ledger_service_pb2.StreamEntry],
    ) -> None:
        self.queue = queue
        self.take = take

    def empty(self) -> bool:
        return self.queue.empty()

    def get_nowait(self) -> ledger_service_pb2.StreamEntry | None:
        item = self.queue.get_nowait()
        return None if item is None else self.take(item)

    async def get(self) -> ledger_service_pb2.StreamEntry | None:
        item = await self.queue.get()
        return None if item is None else self.take(item)


# --- command line ----------------------------------------------------------------------


def parse_levels(parser: argparse.ArgumentParser, value: object) -> list[int]:
    """The distinct client counts of a comma-separated --levels, in increasing order."""
    levels = sorted({int(level) for level in str(value).split(",") if level.strip()})
    if not levels or min(levels) < 1:
        parser.error("--levels needs positive client counts")
    return levels


def serve_if_asked(
    args: argparse.Namespace, serve: Callable[[Path], Coroutine[Any, Any, None]]
) -> bool:
    """Whether this is the child (``--serve``); if so, it ran ``serve`` to the end."""
    if args.serve is None:
        return False
    asyncio.run(serve(args.serve))
    return True
