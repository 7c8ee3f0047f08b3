"""The gRPC node's append throughput and latency over mutual TLS, beside raw Ed25519.

    python -m bench.grpc_append                   # full run: a few minutes on an idle machine
    python -m bench.grpc_append --quick           # smoke test: tiny sizes, well under a minute
    python -m bench.grpc_append --entries 50000 --unary-seconds 20
    python -m bench.grpc_append --db postgresql://postgres@127.0.0.1:5432/bench

Process layout
--------------
The node runs in a child process (``python -m bench.grpc_append --serve
node.toml``, which loads the TOML with ``services.config.load_config``, so
``CUSTODY_*`` environment overrides apply as for ``custody serve``, configures
JSON logging at --node-log-level (stderr goes to node.log in the temporary
directory) and starts ``services.node.start_node``). The load generator runs in
this process. The node is the system under test, so it gets a process of its
own, as in a deployment: its GIL serves only its event loop and its
verification threads (its sequencer runs in a process of its own, as by
default; CUSTODY_SEQUENCER_OWN_PROCESS=false keeps it in the node's); the
client's gRPC and asyncio work cannot stall it through a shared GIL; and its CPU
time and peak RSS (getrusage in the child, /proc for the sequencer's process)
are its own. The clients stay in the parent (rather than the other way round) because
they need the pre-signed workload, the dependency bookkeeping and the timers
in one place, and the node's process then holds nothing but the node. The child
answers ``stats`` and ``stop`` commands on stdin with one JSON line each on
stdout. The node runs with its default settings (limits, two verification
threads, JSON logs at info, which log every unary Append); ``CUSTODY_*``
variables change them. Client and node share the machine's cores, so on a
small machine the client's CPU (reported per entry) is load the node would not
see in production.

Workload (one ledger, SQLite in a temporary directory unless --db)
-------------------------------------------------------------------
Before the node starts, a local Sequencer with the Custody rules appends,
untimed, the governance preamble of ``clients.sample.synthetic`` (genesis,
admissions, facilities) and the admission of one extra mine partner per unary
client of the largest level (``bench-mine-NN``, each with its own mine site),
signed by the synthetic administrator. A consortium CA issues the node a
server certificate and every partner a client certificate (``clients.pki``);
every gRPC channel below presents its partner's certificate, so the node
authenticates each caller and its rules require the caller to be the partner
recording the entry.

* AppendStream: synthetic consortium events (extractions, dispatches,
  receipts, blends, refining, cell making, assays, re-assays, certifications),
  all signed before timing. One AppendStream per recording partner (about 40),
  each on that partner's own channel (--streams-per-partner opens more on the
  same channel). The node answers each stream in completion order and streams
  of different connections are not ordered at all, so the client does what a
  careful partner must: an event is sent only once every earlier event that
  names one of its lots or event ids (the one that created the lot, moved it,
  or the dispatch a receipt closes) has its receipt. The dependency chains are
  short, so hundreds of entries are in flight at any time. As the SDK does,
  every entry ready to go shares the stream's next message, up to the SDK's
  MESSAGE_BYTES (bench.grpc_floor shows what one entry per message would cost
  the transport alone). A warm-up of
  --stream-warmup events runs first; then --entries events are timed from the
  first write to the last answer. Any refusal fails the run. Entries carry
  their public keys (--omit-keys leaves them out: the node then looks each
  keyid up in its registry).
* Unary Append at 1, 16 and 64 concurrent clients (--levels): each client is a
  bench mine partner with its own certificate and its own channel (its own TLS
  connection), an asyncio task that sends its next Append as soon as the
  previous one returns. Each Append records the extraction of a new lot at the
  client's own mine site, always admissible. A warm-up precedes each level;
  then --unary-count appends (pre-signed, spread evenly over the clients) or,
  with --unary-seconds, as many as fit (signed between calls, outside the
  timed call). Latency is the client's wall time of one Append call.

Figures (the last line printed is one JSON object with all of them)
--------------------------------------------------------------------
* raw_ed25519_verify_per_s_1thread / _2threads: Ed25519 verifications per
  second of pre-made signatures over 300-byte messages with ``cryptography``,
  one thread, then two threads together (the reference), measured with the
  node idle right before the gRPC measurements, and again after them
  (``..._after``).
* stream_per_s: timed AppendStream entries per second; stream_vs_raw2 is its
  ratio to the two-thread raw rate measured before (issue target: >= 0.30).
  stream_entry_p50/p99_ms: write-to-answer time of one entry on its stream.
* unary_<k>_p50_ms / _p99_ms / _mean_ms, unary_<k>_per_s at k concurrent
  clients (issue target: p99 < 15 ms at 16), and the share of those Appends
  that the node itself (its custody_rpc_latency_seconds histogram) answered
  within 15 ms.
* Over each timed part (warm-ups excluded): the batch sizes the node committed
  (custody_batch_entries from its /metrics endpoint, as counts per histogram
  bucket, "5" counting batches of 3 to 5, and the mean), and node and client
  CPU time per entry (getrusage of each process; the node's includes its
  sequencer's process, read from /proc, which *_sequencer_cpu_us_* give
  alone). peak_rss_mb: the node process's peak RSS over the whole run (after
  the stream phase too); sequencer_peak_rss_mb: its sequencer's process's.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import grpc
from google.protobuf.message import Message
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import MetaData, create_engine

from bench.append import peak_rss_mb
from bench.grpc_common import (
    Latencies,
    QueuedEntries,
    UnaryClient,
    client_cpu_s,
    measure_raw,
    other_process_usage,
    own_channel,
    parse_levels,
    partner_credentials,
    run_unary_level,
    serve_if_asked,
)
from clients.pki import (
    CertificateAuthority,
    IssuedCertificate,
    init_ca,
    issue_partner,
    issue_server,
)
from clients.sample.consortium import signed_submission
from clients.sample.synthetic import (
    ADMIN_ID,
    KEY_SEED_PREFIX,
    SyntheticLog,
    synthetic_genesis_count,
)
from clients.sdk._internal.submission import packed_messages_async  # the SDK's own packing
from custody.v1 import event_pb2, governance_pb2, ledger_service_pb2, ledger_service_pb2_grpc
from ledger.admission import Submission
from ledger.custody_rules import CustodyRules
from ledger.domain.records import EVENT_PAYLOAD_TYPE, GOVERNANCE_PAYLOAD_TYPE
from ledger.dsse import Signer
from ledger.errors import CustodyError
from ledger.keys import generate_private_key, private_key_from_seed, save_private_key
from ledger.leaf import envelope_to_proto
from ledger.note import NoteSigner
from ledger.sequencer import Sequencer, initialise_log
from ledger.storage import LogStore
from ledger.storage.database import normalise_url, sqlite_url
from services.config import load_config
from services.gc_tuning import tune_garbage_collection
from services.node import RunningNode, start_node
from services.observability import LogFormat, configure_logging
from services.sequencing import SequencerProcess

ORIGIN = "bench.custody.example/grpc"
STREAM_TARGET_VS_RAW2 = 0.30
UNARY_TARGET_P99_MS = 15.0
UNARY_TARGET_CLIENTS = 16
_MARK = "@@bench "  # prefixes the child's protocol lines on stdout
_REPO = Path(__file__).resolve().parents[1]
_PHASE_TIMEOUT_FLOOR = 300.0

StreamEntry = ledger_service_pb2.StreamEntry
StreamRequest = ledger_service_pb2.AppendStreamRequest
StreamResponse = ledger_service_pb2.AppendStreamResponse
StreamCall = grpc.aio.StreamStreamCall[StreamRequest, StreamResponse]


# --- workload --------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchMine:
    """A mine partner of the unary clients, with its own site and signing key."""

    partner_id: str
    facility_id: str
    signer: Signer


def admin_signer() -> Signer:
    """The synthetic consortium's administrator (its documented seed derivation)."""
    seed = hashlib.sha256(KEY_SEED_PREFIX + ADMIN_ID.encode("ascii")).digest()
    return Signer(private_key_from_seed(seed))


def bench_mines(count: int) -> list[BenchMine]:
    return [
        BenchMine(f"bench-mine-{i:02d}", f"bench-mine-{i:02d}-site", Signer(generate_private_key()))
        for i in range(1, count + 1)
    ]


def bench_mine_governance(mines: Sequence[BenchMine]) -> list[Submission]:
    """Admission and site registration of every bench mine, signed by the administrator."""
    admin = admin_signer()

    def governance(message: governance_pb2.Governance) -> Submission:
        message.action_id = str(uuid.uuid4())
        return signed_submission(GOVERNANCE_PAYLOAD_TYPE, message, [admin])

    entries = [
        governance(
            governance_pb2.Governance(
                partner_admission=governance_pb2.PartnerAdmission(
                    partner=governance_pb2.PartnerSpec(
                        partner_id=mine.partner_id,
                        legal_name=f"Bench Mine {i:02d} Mining SA",
                        country="CD",
                        roles=["ROLE_MINE"],
                        public_keys=[mine.signer.public_key],
                    )
                )
            )
        )
        for i, mine in enumerate(mines, 1)
    ]
    entries += [
        governance(
            governance_pb2.Governance(
                facility_registration=governance_pb2.FacilityRegistration(
                    facility_id=mine.facility_id,
                    partner_id=mine.partner_id,
                    name=f"Bench mine site {i:02d}",
                    type="FACILITY_TYPE_MINE_SITE",
                    country="CD",
                    latitude_e6=-10_716_000 + 1_000 * i,
                    longitude_e6=25_472_000 + 1_000 * i,
                )
            )
        )
        for i, mine in enumerate(mines, 1)
    ]
    return entries


class ExtractionSource:
    """A bench mine's Append requests: each extracts a new lot at the mine's site."""

    def __init__(self, mine: BenchMine) -> None:
        self.mine = mine
        self.serial = 0

    def next_request(self) -> ledger_service_pb2.AppendRequest:
        self.serial += 1
        mine, serial = self.mine, self.serial
        event = event_pb2.Event(event_id=str(uuid.uuid4()), partner_id=mine.partner_id)
        event.event_time.seconds = int(time.time()) - 3_600
        name = f"{mine.partner_id}-PROD-{serial}.pdf"
        event.evidence.add(
            uri=f"https://docs.{mine.partner_id}.example/{name}",
            sha256=hashlib.sha256(name.encode("ascii")).digest(),
            kind="production_report",
        )
        body = event.extraction
        body.facility_id = mine.facility_id
        body.lot_id = f"LOT-{mine.partner_id}-{serial}"
        body.material = "cobalt hydroxide"
        body.mass_grams = 20_000_000 + serial
        body.contents.add(element="Co", ppm=300_000)
        body.contents.add(element="Cu", ppm=20_000)
        submission = signed_submission(EVENT_PAYLOAD_TYPE, event, [mine.signer])
        return ledger_service_pb2.AppendRequest(
            envelope=envelope_to_proto(submission.envelope),
            public_keys=list(submission.public_keys),
        )


def _references(message: Message, keys: set[str]) -> None:
    """Every lot id and event id a message names, at any depth ("lot:..", "event:..")."""
    for descriptor, value in message.ListFields():
        values = value if descriptor.is_repeated else [value]
        for item in values:
            if isinstance(item, Message):
                _references(item, keys)
            elif isinstance(item, str) and item:
                if descriptor.name.endswith("lot_id"):
                    keys.add(f"lot:{item}")
                elif descriptor.name.endswith("event_id"):
                    keys.add(f"event:{item}")


@dataclass
class StreamPhase:
    """Events for one AppendStream phase: requests (sequence = position), who records
    each, and the earlier positions each must wait for."""

    requests: list[StreamEntry] = field(default_factory=list)
    partners: list[str] = field(default_factory=list)
    deps: list[tuple[int, ...]] = field(default_factory=list)


def plan_stream(
    events: Sequence[Submission], sizes: Sequence[int], *, send_keys: bool
) -> list[StreamPhase]:
    """Split ``events`` into phases of ``sizes`` and give each event its dependencies.

    An event depends on the last earlier event that named any of the lots or event
    ids it names: that one was admitted against the state the event needs, and
    had itself waited for its own predecessors. The dependencies capture what the
    admission rules read of the state that events change (lots: holder, state, mass
    left; dispatches; events that corrections target); facilities and partners are
    all registered in the preamble. Dependencies on an earlier phase are dropped:
    a phase starts after the previous one is fully answered.
    """
    last: dict[str, int] = {}
    phases: list[StreamPhase] = []
    position = 0
    for size in sizes:
        phase = StreamPhase()
        start = position
        for submission in events[start : start + size]:
            event = event_pb2.Event.FromString(submission.envelope.payload)
            keys: set[str] = {f"event:{event.event_id}"}
            _references(event, keys)
            deps = {last[key] for key in keys if key in last}
            for key in keys:
                last[key] = position
            phase.requests.append(
                StreamEntry(
                    sequence=position - start,
                    envelope=envelope_to_proto(submission.envelope),
                    public_keys=list(submission.public_keys) if send_keys else [],
                )
            )
            phase.partners.append(event.partner_id)
            phase.deps.append(tuple(sorted(d - start for d in deps if d >= start)))
            position += 1
        phases.append(phase)
    return phases


# --- PKI, ledger and node configuration ------------------------------------------------


@dataclass(frozen=True)
class Setup:
    directory: Path
    ca: CertificateAuthority
    partners: dict[str, IssuedCertificate]
    config_path: Path
    log_path: Path

    def credentials(self, partner_id: str) -> grpc.ChannelCredentials:
        return partner_credentials(self.ca, self.partners[partner_id])


def reset_database(url: str) -> None:
    """Drop every table of the PostgreSQL database at ``url`` (log, domain, alembic)."""
    engine = create_engine(normalise_url(url))
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        metadata.drop_all(engine)
    finally:
        engine.dispose()


def prepare(
    directory: Path,
    url: str,
    partner_ids: Sequence[str],
    preamble: Sequence[Submission],
    node_log_level: str,
) -> Setup:
    """Certificates for the node and every partner, a new ledger holding ``preamble``,
    and the node's TOML configuration."""
    pki = directory / "pki"
    ca = init_ca(pki, "Custody Bench Consortium CA")
    server = issue_server(ca, pki, "node")
    partners = {partner_id: issue_partner(ca, pki, partner_id) for partner_id in partner_ids}

    data_dir = directory / "node"
    data_dir.mkdir()
    key_path = data_dir / "log-key.pem"
    key = generate_private_key()
    save_private_key(key, key_path)
    store = LogStore.open(url)
    try:
        signer = NoteSigner(ORIGIN, key)
        initialise_log(store, signer)
        sequencer = Sequencer(store, signer, rules=CustodyRules(store))
        try:
            for start in range(0, len(preamble), 1_000):
                outcomes = sequencer.append_batch(preamble[start : start + 1_000])
                refused = [o for o in outcomes if isinstance(o, CustodyError)]
                if refused:
                    raise SystemExit(f"the preamble was refused: {refused[0]!r}")
        finally:
            sequencer.close()
    finally:
        store.close()

    def toml(value: str) -> str:
        return json.dumps(value)  # a JSON string is a TOML basic string

    config_path = directory / "node.toml"
    config_path.write_text(
        "\n".join(
            [
                "[node]",
                'listen = "127.0.0.1:0"',
                f"data_dir = {toml(str(data_dir))}",
                f"database_url = {toml(url)}",
                f"log_key = {toml(str(key_path))}",
                "[tls]",
                f"cert = {toml(str(server.certificate_path))}",
                f"key = {toml(str(server.key_path))}",
                f"client_ca = {toml(str(ca.certificate_path))}",
                "[metrics]",
                'listen = "127.0.0.1:0"',
                "[logging]",
                'format = "json"',
                f"level = {toml(node_log_level)}",
                "",
            ]
        ),
        encoding="utf-8",
    )
    return Setup(directory, ca, partners, config_path, directory / "node.log")


# --- the node's process ----------------------------------------------------------------


def _sequencer_usage(node: RunningNode) -> dict[str, float]:
    """The sequencer's process (none when it runs in the node's): CPU and peak RSS."""
    sequencer = node.sequencer
    pid = sequencer.pid if isinstance(sequencer, SequencerProcess) else None
    cpu, peak = other_process_usage(pid) if pid is not None else (0.0, 0.0)
    return {"sequencer_cpu_s": cpu, "sequencer_peak_rss_mb": peak}


def _usage(sequencer: dict[str, float]) -> dict[str, float]:
    """Both of the node's processes: CPU in all, its own process's peak RSS, and the
    sequencer's process's figures as given."""
    return {
        "cpu_s": client_cpu_s() + sequencer["sequencer_cpu_s"],
        "peak_rss_mb": peak_rss_mb(),
        **sequencer,
    }


def _say(message: dict[str, object]) -> None:
    sys.stdout.write(_MARK + json.dumps(message) + "\n")
    sys.stdout.flush()


async def _serve(config_path: Path) -> None:
    """The child: run a node until told to stop (or until stdin closes)."""
    config = load_config(config_path)
    configure_logging(cast(LogFormat, config.logging.format), config.logging.level)
    node = await start_node(config)
    tune_garbage_collection()  # as ``custody serve`` does
    _say(
        {
            "event": "ready",
            "pid": os.getpid(),
            "port": node.port,
            "metrics_port": node.metrics_endpoint.port if node.metrics_endpoint else None,
            "limits": dataclasses.asdict(config.limits),
            "sequencer": dataclasses.asdict(config.sequencer),
            "log_level": config.logging.level,
        }
    )
    while True:
        command = (await asyncio.to_thread(sys.stdin.readline)).strip()
        if command == "stats":
            usage = _usage(_sequencer_usage(node))
            _say({"event": "stats", "tree_size": node.sequencer.size, **usage})
        elif command in ("stop", ""):
            break
    last = _sequencer_usage(node)  # the sequencer's process is gone once the node stops
    await node.stop(grace=5.0)
    _say({"event": "stopped", "tree_size": node.sequencer.size, **_usage(last)})


class NodeProcess:
    """The node's child process and its line protocol."""

    def __init__(self, setup: Setup) -> None:
        self._log = setup.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.grpc_append", "--serve", str(setup.config_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=_REPO,
            text=True,
        )
        self.log_path = setup.log_path
        self.ready = self._expect("ready")
        self.address = f"127.0.0.1:{self.ready['port']}"
        self.metrics_url = f"http://127.0.0.1:{self.ready['metrics_port']}/metrics"

    def _expect(self, event: str) -> dict[str, Any]:
        stdout = cast(IO[str], self.process.stdout)
        for line in stdout:
            if line.startswith(_MARK):
                message = cast(dict[str, Any], json.loads(line[len(_MARK) :]))
                if message.get("event") == event:
                    return message
        tail = self.log_path.read_text(errors="replace")[-3_000:]
        raise SystemExit(f"the node exited before {event!r}; the end of its log:\n{tail}")

    def _send(self, command: str) -> None:
        stdin = cast(IO[str], self.process.stdin)
        stdin.write(command + "\n")
        stdin.flush()

    def stats(self) -> dict[str, Any]:
        self._send("stats")
        return self._expect("stats")

    def stop(self) -> dict[str, Any]:
        self._send("stop")
        final = self._expect("stopped")
        self.process.wait(timeout=60)
        self._log.close()
        return final

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()


# --- the node's metrics ----------------------------------------------------------------


@dataclass(frozen=True)
class Histogram:
    buckets: dict[str, float]  # upper bound -> cumulative count
    count: float
    total: float

    def minus(self, earlier: Histogram) -> Histogram:
        return Histogram(
            {le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.count - earlier.count,
            self.total - earlier.total,
        )

    def per_bucket(self) -> dict[str, int]:
        """Non-cumulative counts: "5" holds the batches of 3 to 5 entries, and so on."""
        result: dict[str, int] = {}
        previous = 0.0
        for le, cumulative in sorted(self.buckets.items(), key=lambda kv: float(kv[0])):
            label = le if le == "+Inf" else f"{float(le):g}"
            result[label] = round(cumulative - previous)
            previous = cumulative
        return result

    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def share_within(self, bound: str) -> float:
        return self.buckets.get(bound, 0.0) / self.count if self.count else 0.0


@dataclass(frozen=True)
class Scrape:
    batch: Histogram
    append_latency: Histogram

    def minus(self, earlier: Scrape) -> Scrape:
        return Scrape(
            self.batch.minus(earlier.batch), self.append_latency.minus(earlier.append_latency)
        )


def scrape(metrics_url: str) -> Scrape:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode("utf-8")
    found: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if family.name == "custody_batch_entries":
                key = "batch"
            elif family.name == "custody_rpc_latency_seconds" and labels.get("method") == "Append":
                key = "latency"
            else:
                continue
            parts = found.setdefault(key, {"buckets": {}, "count": 0.0, "sum": 0.0})
            if sample.name.endswith("_bucket"):
                parts["buckets"][labels["le"]] = sample.value
            elif sample.name.endswith("_count"):
                parts["count"] = sample.value
            elif sample.name.endswith("_sum"):
                parts["sum"] = sample.value

    def histogram(key: str) -> Histogram:
        parts = found.get(key, {"buckets": {}, "count": 0.0, "sum": 0.0})
        return Histogram(dict(parts["buckets"]), parts["count"], parts["sum"])

    return Scrape(histogram("batch"), histogram("latency"))


# --- clients ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamResult:
    seconds: float
    latencies: list[float]
    streams: int


async def run_stream_phase(
    channels: dict[str, grpc.aio.Channel], phase: StreamPhase, streams_per_partner: int
) -> StreamResult:
    """Send ``phase`` over one AppendStream per partner (or more), each event once its
    dependencies are answered; return when every event is answered."""
    total = len(phase.requests)
    waiting = [len(deps) for deps in phase.deps]
    dependents: list[list[int]] = [[] for _ in range(total)]
    for position, deps in enumerate(phase.deps):
        for dep in deps:
            dependents[dep].append(position)
    partners = sorted(set(phase.partners))
    queues: dict[str, asyncio.Queue[int | None]] = {p: asyncio.Queue() for p in partners}
    sent_at = [0.0] * total
    latencies = [0.0] * total
    refusals: list[str] = []
    failures: list[BaseException] = []
    answered = 0
    finished = asyncio.Event()
    calls: list[StreamCall] = []

    def take(position: int) -> StreamEntry:
        sent_at[position] = time.perf_counter()
        return phase.requests[position]

    async def write(call: StreamCall, queue: asyncio.Queue[int | None]) -> None:
        # As the SDK does (its own packer): every entry cleared to go shares a message.
        try:
            async for message in packed_messages_async(QueuedEntries(queue, take)):
                await call.write(message)
            await call.done_writing()
        except Exception as exc:
            failures.append(exc)
            finished.set()

    async def read(call: StreamCall) -> None:
        nonlocal answered
        try:
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    return
                for outcome in cast(StreamResponse, response).outcomes:
                    position = outcome.sequence
                    latencies[position] = time.perf_counter() - sent_at[position]
                    if outcome.WhichOneof("outcome") != "receipt":
                        refusal = outcome.refusal
                        refusals.append(
                            f"{phase.partners[position]}: {refusal.reason}: {refusal.message}"
                        )
                    for later in dependents[position]:
                        waiting[later] -= 1
                        if waiting[later] == 0:
                            queues[phase.partners[later]].put_nowait(later)
                    answered += 1
                if answered == total:
                    finished.set()
        except Exception as exc:
            failures.append(exc)
            finished.set()

    tasks: list[asyncio.Task[None]] = []
    for partner in partners:
        stub = ledger_service_pb2_grpc.LedgerServiceStub(channels[partner])
        for _ in range(streams_per_partner):
            call = stub.AppendStream()
            calls.append(call)
            tasks.append(asyncio.create_task(read(call)))
    started = time.perf_counter()
    for position in range(total):
        if waiting[position] == 0:
            queues[phase.partners[position]].put_nowait(position)
    for index, call in enumerate(calls):
        tasks.append(
            asyncio.create_task(write(call, queues[partners[index // streams_per_partner]]))
        )
    timeout = max(_PHASE_TIMEOUT_FLOOR, total / 50)
    try:
        await asyncio.wait_for(finished.wait(), timeout)
    except TimeoutError:
        failures.append(TimeoutError(f"{answered:,} of {total:,} answered after {timeout:.0f} s"))
    elapsed = time.perf_counter() - started
    for queue in queues.values():
        for _ in range(streams_per_partner):
            queue.put_nowait(None)
    if failures or refusals:
        for call in calls:
            call.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if failures:
        raise SystemExit(f"the AppendStream phase failed: {failures[0]!r}")
    if refusals:
        raise SystemExit(f"{len(refusals)} stream entries were refused, first: {refusals[0]}")
    return StreamResult(elapsed, latencies, len(calls))


# --- the run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseUse:
    """What the node did over one timed part: its metrics, and CPU per entry."""

    metrics: Scrape
    node_cpu_us: float  # both of the node's processes
    sequencer_cpu_us: float  # the sequencer's process alone
    client_cpu_us: float


class PhaseMeter:
    """Snapshots of the node's metrics and both processes' CPU time around a phase."""

    def __init__(self, node: NodeProcess) -> None:
        self.node = node
        self._start: tuple[Scrape, dict[str, Any], float] | None = None

    def mark(self) -> None:
        """The timed part starts now."""
        stats = self.node.stats()
        self._start = (scrape(self.node.metrics_url), stats, client_cpu_s())

    def measure(self, entries: int) -> PhaseUse:
        """The timed part ended; ``entries`` were appended in it."""
        assert self._start is not None, "mark() first"
        metrics, before, client_cpu = self._start
        now = self.node.stats()

        def per_entry(key: str) -> float:
            return (float(now[key]) - float(before[key])) * 1e6 / entries

        return PhaseUse(
            scrape(self.node.metrics_url).minus(metrics),
            per_entry("cpu_s"),
            per_entry("sequencer_cpu_s"),
            (client_cpu_s() - client_cpu) * 1e6 / entries,
        )


async def grpc_phases(
    args: argparse.Namespace,
    setup: Setup,
    node: NodeProcess,
    phases: list[StreamPhase],
    mines: list[BenchMine],
    raw2: float,
    results: dict[str, object],
) -> None:
    meter = PhaseMeter(node)
    stream_partners = sorted({p for phase in phases for p in phase.partners})
    channels = {p: own_channel(node.address, setup.credentials(p)) for p in stream_partners}
    try:
        warmup, timed = phases
        started = time.perf_counter()
        await run_stream_phase(channels, warmup, args.streams_per_partner)
        print(
            f"AppendStream warm-up: {len(warmup.requests):,} entries in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        meter.mark()
        stream = await run_stream_phase(channels, timed, args.streams_per_partner)
        use = meter.measure(len(timed.requests))
    finally:
        for channel in channels.values():
            await channel.close()
    entries = len(timed.requests)
    rate = entries / stream.seconds
    stream_latency = Latencies.of(stream.latencies)
    results.update(
        {
            "stream_entries": entries,
            "stream_warmup_entries": len(warmup.requests),
            "stream_streams": stream.streams,
            "stream_partners": len(stream_partners),
            "stream_seconds": round(stream.seconds, 3),
            "stream_per_s": round(rate),
            "stream_vs_raw2": round(rate / raw2, 3),
            "stream_target_vs_raw2": STREAM_TARGET_VS_RAW2,
            "stream_meets_target": rate / raw2 >= STREAM_TARGET_VS_RAW2,
            "stream_entry_p50_ms": round(stream_latency.p50_ms, 2),
            "stream_entry_p99_ms": round(stream_latency.p99_ms, 2),
            "stream_batches": round(use.metrics.batch.count),
            "stream_batch_mean": round(use.metrics.batch.mean(), 1),
            "stream_batch_sizes": use.metrics.batch.per_bucket(),
            "stream_node_cpu_us_per_entry": round(use.node_cpu_us),
            "stream_sequencer_cpu_us_per_entry": round(use.sequencer_cpu_us),
            "stream_client_cpu_us_per_entry": round(use.client_cpu_us),
        }
    )
    print(
        f"AppendStream: {entries:,} entries over {stream.streams} streams "
        f"({len(stream_partners)} partners) in {stream.seconds:.2f} s: {rate:,.0f}/s "
        f"= {rate / raw2:.3f} x two-thread raw verify {raw2:,.0f}/s "
        f"(target >= {STREAM_TARGET_VS_RAW2:.2f}: "
        f"{'met' if rate / raw2 >= STREAM_TARGET_VS_RAW2 else 'NOT met'})",
        flush=True,
    )
    print(
        f"  entry write-to-answer p50 {stream_latency.p50_ms:.1f} ms, "
        f"p99 {stream_latency.p99_ms:.1f} ms; {use.metrics.batch.count:,.0f} batches, "
        f"mean {use.metrics.batch.mean():.1f} entries, sizes {use.metrics.batch.per_bucket()}; "
        f"CPU per entry: node {use.node_cpu_us:,.0f} us (sequencer's process "
        f"{use.sequencer_cpu_us:,.0f}), client {use.client_cpu_us:,.0f} us",
        flush=True,
    )
    stats = node.stats()
    results["peak_rss_mb_after_stream"] = round(stats["peak_rss_mb"], 1)

    unary_channels = [own_channel(node.address, setup.credentials(m.partner_id)) for m in mines]
    try:
        clients = [
            UnaryClient(ExtractionSource(mine), ledger_service_pb2_grpc.LedgerServiceStub(channel))
            for mine, channel in zip(mines, unary_channels, strict=True)
        ]
        for level in args.levels:
            outcome = await run_unary_level(
                clients[:level],
                args.unary_warmup,
                args.unary_count,
                args.unary_seconds,
                meter.mark,
            )
            appends = len(outcome.latencies)
            use = meter.measure(appends)
            latency = Latencies.of(outcome.latencies)
            p50, p99, mean = latency.p50_ms, latency.p99_ms, latency.mean_ms
            within = use.metrics.append_latency.share_within("0.015")
            results.update(
                {
                    f"unary_{level}_appends": appends,
                    f"unary_{level}_p50_ms": round(p50, 2),
                    f"unary_{level}_p99_ms": round(p99, 2),
                    f"unary_{level}_mean_ms": round(mean, 2),
                    f"unary_{level}_max_ms": round(latency.max_ms, 2),
                    f"unary_{level}_per_s": round(appends / outcome.seconds),
                    f"unary_{level}_batch_mean": round(use.metrics.batch.mean(), 1),
                    f"unary_{level}_batch_sizes": use.metrics.batch.per_bucket(),
                    f"unary_{level}_node_within_15ms": round(within, 4),
                    f"unary_{level}_node_cpu_us_per_append": round(use.node_cpu_us),
                    f"unary_{level}_sequencer_cpu_us_per_append": round(use.sequencer_cpu_us),
                    f"unary_{level}_client_cpu_us_per_append": round(use.client_cpu_us),
                }
            )
            target = ""
            if level == UNARY_TARGET_CLIENTS:
                met = p99 < UNARY_TARGET_P99_MS
                results["unary_meets_target"] = met
                target = (
                    f" (target p99 < {UNARY_TARGET_P99_MS:g} ms: {'met' if met else 'NOT met'})"
                )
            print(
                f"unary Append, {level:>2} clients: p50 {p50:6.2f} ms, p99 {p99:6.2f} ms, "
                f"mean {mean:6.2f} ms over {appends:,} appends, "
                f"{appends / outcome.seconds:,.0f}/s; "
                f"batch mean {use.metrics.batch.mean():.1f}; node answered {within:.1%} within "
                f"15 ms; CPU per append: node {use.node_cpu_us:,.0f} us (sequencer's process "
                f"{use.sequencer_cpu_us:,.0f}), "
                f"client {use.client_cpu_us:,.0f} us{target}",
                flush=True,
            )
    finally:
        for channel in unary_channels:
            await channel.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000, help="timed AppendStream entries")
    parser.add_argument(
        "--stream-warmup", type=int, default=2_000, help="AppendStream entries before timing"
    )
    parser.add_argument(
        "--streams-per-partner",
        type=int,
        default=1,
        help="AppendStreams each partner opens on its channel",
    )
    parser.add_argument(
        "--omit-keys",
        action="store_true",
        help="send stream entries without public keys (the node looks them up in its registry)",
    )
    parser.add_argument("--unary-count", type=int, default=3_000, help="timed Appends per level")
    parser.add_argument(
        "--unary-seconds", type=float, default=None, help="time each level for this long instead"
    )
    parser.add_argument("--unary-warmup", type=int, default=300, help="Appends before each level")
    parser.add_argument(
        "--levels", default="1,16,64", help="concurrent unary clients, comma-separated"
    )
    parser.add_argument(
        "--raw-seconds", type=float, default=3.0, help="each raw Ed25519 measurement's duration"
    )
    parser.add_argument("--seed", type=int, default=1, help="synthetic event stream seed")
    parser.add_argument(
        "--node-log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the node's log level (info, its default, logs every Append)",
    )
    parser.add_argument("--db", default=None, help="PostgreSQL URL (its tables are dropped!)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.entries, args.stream_warmup = 1_500, 300
        args.unary_count, args.unary_warmup = 200, 40
        args.unary_seconds = None
        args.raw_seconds = 0.5
    args.levels = parse_levels(parser, args.levels)
    return args


def main() -> int:
    args = parse_args()
    if serve_if_asked(args, _serve):
        return 0

    results: dict[str, object] = {
        "python": sys.version.split()[0],
        "backend": "postgresql" if args.db else "sqlite",
        "cpu_count": os.cpu_count(),
        "node_log_level": args.node_log_level,
        "stream_public_keys_sent": not args.omit_keys,
    }
    with tempfile.TemporaryDirectory(prefix="custody-grpc-bench-") as tmp:
        directory = Path(tmp)
        started = time.perf_counter()
        synthetic = SyntheticLog(seed=args.seed)
        genesis = synthetic_genesis_count()
        submissions = list(synthetic.submissions(genesis + args.stream_warmup + args.entries))
        preamble, events = submissions[:genesis], submissions[genesis:]
        phases = plan_stream(
            events, [args.stream_warmup, args.entries], send_keys=not args.omit_keys
        )
        mines = bench_mines(max(args.levels))
        preamble += bench_mine_governance(mines)
        stream_partners = sorted({p for phase in phases for p in phase.partners})
        if args.db:
            reset_database(args.db)
            url = args.db
        else:
            url = sqlite_url(directory / "custody.db")
        setup = prepare(
            directory,
            url,
            [*stream_partners, *(m.partner_id for m in mines)],
            preamble,
            args.node_log_level,
        )
        print(
            f"setup: {len(setup.partners)} partner certificates, {len(preamble)} governance "
            f"entries appended locally, {len(events):,} synthetic events signed and planned "
            f"({time.perf_counter() - started:.1f} s)",
            flush=True,
        )
        node = NodeProcess(setup)
        try:
            ready = node.ready
            limits, sequencer = ready["limits"], ready["sequencer"]
            results["node_max_batch"] = limits["max_batch"]
            results["node_max_pending"] = limits["max_pending"]
            results["node_max_in_flight_per_stream"] = limits["max_in_flight_per_stream"]
            results["node_verify_threads"] = sequencer["verify_threads"]
            print(
                f"node: pid {ready['pid']} on {node.address} (mutual TLS, {results['backend']}), "
                f"max_batch {limits['max_batch']}, verify_threads "
                f"{sequencer['verify_threads']}, log level {ready['log_level']}",
                flush=True,
            )
            raw1, raw2 = measure_raw(args.raw_seconds, "before, node idle")
            results["raw_ed25519_verify_per_s_1thread"] = round(raw1)
            results["raw_ed25519_verify_per_s_2threads"] = round(raw2)
            asyncio.run(grpc_phases(args, setup, node, phases, mines, raw2, results))
            raw1_after, raw2_after = measure_raw(args.raw_seconds, "after")
            results["raw_ed25519_verify_per_s_1thread_after"] = round(raw1_after)
            results["raw_ed25519_verify_per_s_2threads_after"] = round(raw2_after)
            results["stream_vs_raw2_after"] = round(
                cast(int, results["stream_per_s"]) / raw2_after, 3
            )
            final = node.stop()
        except BaseException:
            node.kill()
            raise
        results["peak_rss_mb"] = round(final["peak_rss_mb"], 1)
        results["sequencer_peak_rss_mb"] = round(final["sequencer_peak_rss_mb"], 1)
        results["node_cpu_s"] = round(final["cpu_s"], 1)
        results["ledger_size"] = final["tree_size"]
        results["client_peak_rss_mb"] = round(peak_rss_mb(), 1)
        print(
            f"node: peak RSS {final['peak_rss_mb']:.0f} MB (sequencer's process "
            f"{final['sequencer_peak_rss_mb']:.0f} MB), ledger of {final['tree_size']:,} "
            f"entries; client peak RSS {results['client_peak_rss_mb']} MB",
            flush=True,
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
