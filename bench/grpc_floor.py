"""The transport's own floor: Append and AppendStream to a server that does nothing.

    python -m bench.grpc_floor            # about half a minute
    python -m bench.grpc_floor --quick    # smoke test

What bench.grpc_append measures is the node plus the transport under it. This
measures the transport alone, laid out the same way: a server in a child
process with mutual TLS (a consortium CA, a server certificate, partner client
certificates), Python ``grpc.aio`` on both sides, clients in this process,
every unary client on a channel (TLS connection) of its own. The server
implements ``custody.v1.LedgerService``'s Append and AppendStream and does no
work at all: every Append is answered with the same real receipt, every stream
entry with an outcome carrying it. No verification, no rules, no database.
As in bench.grpc_append, every channel is warmed before the clock starts and
both processes' CPU time is read (its TLS handshake and two Appends per unary
client, one one-entry AppendStream per stream), and stream messages are built
beforehand: the figures cover the timed calls and entries alone.

Figures (the last line printed is one JSON object with all of them):

* floor_unary_<k>_p50_ms / _p99_ms / _per_s: Append latency and rate at k
  concurrent clients (--levels), the same shape as bench.grpc_append's unary
  figures, and both processes' CPU time per call. Whatever the node does per
  Append comes on top of these.
* floor_stream_<m>_per_s, floor_stream_<m>_server/client_cpu_us_per_entry:
  AppendStream entries per second over --streams streams when each message
  carries one entry (m = 1) or is packed to the SDK's MESSAGE_BYTES (m =
  packed), with both processes' CPU time per entry.
* raw_ed25519_verify_per_s_2threads: the machine's reference rate, as in
  bench.grpc_append, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import queue
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import IO, cast

import grpc
from google.protobuf.message import Message

from bench.grpc_common import (
    Latencies,
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
from clients.pki import init_ca, issue_partner, issue_server
from clients.sample.synthetic import synthetic_submissions
from clients.sdk import MESSAGE_BYTES
from clients.sdk._internal.submission import packed_messages  # the SDK's own packing
from custody.v1 import ledger_service_pb2, ledger_service_pb2_grpc, log_pb2
from ledger.custody_rules import CustodyRules
from ledger.keys import generate_private_key
from ledger.leaf import envelope_to_proto
from ledger.note import NoteSigner
from ledger.receipts import Receipt
from ledger.sequencer import Sequencer, initialise_log
from ledger.storage import LogStore
from ledger.storage.database import sqlite_url
from ledger.wire import receipt_to_proto

ORIGIN = "bench.custody.example/floor"
PARTNERS = 64
_REPO = Path(__file__).resolve().parents[1]


# --- the do-nothing server (child process) ----------------------------------------------


def nothing_ledger(receipt: log_pb2.AppendReceipt) -> grpc.GenericRpcHandler:
    """``custody.v1.LedgerService``'s Append and AppendStream, answering every Append and
    every stream entry with one canned receipt."""
    response = ledger_service_pb2.AppendResponse(receipt=receipt)

    async def append(request: ledger_service_pb2.AppendRequest, context: object) -> Message:
        return response

    async def append_stream(
        requests: AsyncIterator[ledger_service_pb2.AppendStreamRequest], context: object
    ) -> AsyncIterator[Message]:
        async for request in requests:
            yield ledger_service_pb2.AppendStreamResponse(
                outcomes=[
                    ledger_service_pb2.StreamOutcome(sequence=entry.sequence, receipt=receipt)
                    for entry in request.entries
                ]
            )

    return grpc.method_handlers_generic_handler(
        "custody.v1.LedgerService",
        {
            "Append": grpc.unary_unary_rpc_method_handler(
                append,
                request_deserializer=ledger_service_pb2.AppendRequest.FromString,
                response_serializer=ledger_service_pb2.AppendResponse.SerializeToString,
            ),
            "AppendStream": grpc.stream_stream_rpc_method_handler(
                append_stream,
                request_deserializer=ledger_service_pb2.AppendStreamRequest.FromString,
                response_serializer=ledger_service_pb2.AppendStreamResponse.SerializeToString,
            ),
        },
    )


async def serve(directory: Path) -> None:
    receipt = log_pb2.AppendReceipt.FromString((directory / "receipt.bin").read_bytes())
    pki = directory / "pki"
    credentials = grpc.ssl_server_credentials(
        [((pki / "server-key.pem").read_bytes(), (pki / "server.pem").read_bytes())],
        root_certificates=(pki / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((nothing_ledger(receipt),))
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    print(json.dumps({"port": port}), flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin
    await server.stop(grace=1.0)


# --- setup ------------------------------------------------------------------------------


def real_receipt(directory: Path) -> tuple[Receipt, list[ledger_service_pb2.AppendRequest]]:
    """A receipt of a real ledger (the synthetic consortium's preamble and some events),
    so that answers have the size they have in production; and signed requests."""
    submissions = list(itertools.islice(synthetic_submissions(400, seed=5), 400))
    store = LogStore.open(sqlite_url(directory / "floor.db"))
    try:
        signer = NoteSigner(ORIGIN, generate_private_key())
        initialise_log(store, signer)
        sequencer = Sequencer(store, signer, rules=CustodyRules(store))
        try:
            outcomes = sequencer.append_batch(submissions)
        finally:
            sequencer.close()
    finally:
        store.close()
    receipts = [o for o in outcomes if isinstance(o, Receipt)]
    if not receipts:
        raise SystemExit("the synthetic entries were refused")
    requests = [
        ledger_service_pb2.AppendRequest(
            envelope=envelope_to_proto(s.envelope), public_keys=list(s.public_keys)
        )
        for s in submissions
    ]
    return receipts[-1], requests


class FloorServer:
    def __init__(self, directory: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.grpc_floor", "--serve", str(directory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=_REPO,
            text=True,
        )
        line = cast(IO[str], self.process.stdout).readline()
        if not line:
            raise SystemExit("the floor server did not start")
        self.address = f"127.0.0.1:{json.loads(line)['port']}"

    def cpu_s(self) -> float:
        """The server process's CPU time so far (Linux /proc)."""
        return other_process_usage(self.process.pid)[0]

    def stop(self) -> None:
        cast(IO[str], self.process.stdin).close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


# --- measurements -----------------------------------------------------------------------


class CyclingRequests:
    """A unary client's requests: the signed ones in turn, from its own offset."""

    def __init__(self, requests: Sequence[ledger_service_pb2.AppendRequest], offset: int) -> None:
        self._requests = requests
        self._next = offset

    def next_request(self) -> ledger_service_pb2.AppendRequest:
        request = self._requests[self._next % len(self._requests)]
        self._next += 1
        return request


class CpuMeter:
    """Both processes' CPU time over a timed part."""

    def __init__(self, server: FloorServer) -> None:
        self.server = server
        self._start = (0.0, 0.0)

    def mark(self) -> None:
        """The timed part starts now."""
        self._start = (self.server.cpu_s(), client_cpu_s())

    def used(self) -> tuple[float, float]:
        """Server and client CPU seconds since ``mark``."""
        server_cpu, client_cpu = self._start
        return self.server.cpu_s() - server_cpu, client_cpu_s() - client_cpu


def stream_messages(
    requests: Sequence[ledger_service_pb2.AppendRequest], share: int, offset: int, packed: bool
) -> list[ledger_service_pb2.AppendStreamRequest]:
    """One stream's ``share`` entries, every one ready at once: one per message, or
    packed as the SDK packs them."""
    entries = [
        ledger_service_pb2.StreamEntry(
            sequence=sequence,
            envelope=requests[(offset + sequence) % len(requests)].envelope,
            public_keys=requests[(offset + sequence) % len(requests)].public_keys,
        )
        for sequence in range(share)
    ]
    if not packed:
        return [ledger_service_pb2.AppendStreamRequest(entries=[e]) for e in entries]
    ready: queue.SimpleQueue[ledger_service_pb2.StreamEntry | None] = queue.SimpleQueue()
    for entry in entries:
        ready.put_nowait(entry)
    ready.put_nowait(None)  # the end
    return list(packed_messages(ready))


async def one_stream(
    channel: grpc.aio.Channel, outgoing: Sequence[ledger_service_pb2.AppendStreamRequest]
) -> int:
    """Send ``outgoing`` over one AppendStream as fast as it takes them; the entries
    answered."""
    call = ledger_service_pb2_grpc.LedgerServiceStub(channel).AppendStream()

    async def write() -> None:
        for message in outgoing:
            await call.write(message)
        await call.done_writing()

    writer = asyncio.create_task(write())
    answered = 0
    async for response in call:
        answered += len(response.outcomes)
    await writer
    return answered


async def stream_run(
    channels: Sequence[grpc.aio.Channel],
    prepared: Sequence[Sequence[ledger_service_pb2.AppendStreamRequest]],
) -> float:
    """One AppendStream per channel, each sending its prepared messages; elapsed seconds."""
    started = time.perf_counter()
    answered = await asyncio.gather(
        *(one_stream(c, m) for c, m in zip(channels, prepared, strict=True))
    )
    elapsed = time.perf_counter() - started
    expected = sum(len(e.entries) for m in prepared for e in m)
    if sum(answered) != expected:
        raise SystemExit(f"{sum(answered)} of {expected} stream entries answered")
    return elapsed


async def measure(
    args: argparse.Namespace,
    server: FloorServer,
    credentials: list[grpc.ChannelCredentials],
    requests: list[ledger_service_pb2.AppendRequest],
    results: dict[str, object],
) -> None:
    def channel(index: int) -> grpc.aio.Channel:
        return own_channel(server.address, credentials[index % len(credentials)])

    meter = CpuMeter(server)
    for level in args.levels:
        channels = [channel(i) for i in range(level)]
        try:
            clients = [
                UnaryClient(
                    CyclingRequests(requests, i * 7), ledger_service_pb2_grpc.LedgerServiceStub(c)
                )
                for i, c in enumerate(channels)
            ]
            # Every channel's TLS handshake and first calls happen in the warm-up, before
            # the clock starts and the CPU time is read.
            outcome = await run_unary_level(clients, 0, args.unary_count, None, meter.mark)
            server_cpu, client_cpu = meter.used()
        finally:
            for c in channels:
                await c.close()
        calls = len(outcome.latencies)
        results[f"floor_unary_{level}_server_cpu_us_per_call"] = round(server_cpu * 1e6 / calls)
        results[f"floor_unary_{level}_client_cpu_us_per_call"] = round(client_cpu * 1e6 / calls)
        latency = Latencies.of(outcome.latencies)
        p50, p99 = latency.p50_ms, latency.p99_ms
        results[f"floor_unary_{level}_p50_ms"] = round(p50, 2)
        results[f"floor_unary_{level}_p99_ms"] = round(p99, 2)
        results[f"floor_unary_{level}_mean_ms"] = round(latency.mean_ms, 2)
        results[f"floor_unary_{level}_per_s"] = round(calls / outcome.seconds)
        print(
            f"floor: unary Append, {level:>2} clients: p50 {p50:6.2f} ms, p99 {p99:6.2f} ms, "
            f"{calls / outcome.seconds:,.0f}/s; CPU per call: server "
            f"{server_cpu * 1e6 / calls:,.0f} us, client {client_cpu * 1e6 / calls:,.0f} us",
            flush=True,
        )
    share = args.stream_entries // args.streams
    for packed in (False, True):
        label = "packed" if packed else "1"
        channels = [channel(i) for i in range(args.streams)]
        try:
            prepared = [
                stream_messages(requests, share, i * 11, packed) for i in range(args.streams)
            ]
            # Each channel's TLS handshake and a first stream of one entry, before the
            # clock starts and the CPU time is read.
            await stream_run(
                channels,
                [stream_messages(requests, 1, i * 11, False) for i in range(args.streams)],
            )
            meter.mark()
            seconds = await stream_run(channels, prepared)
            server_cpu, client_cpu = meter.used()
        finally:
            for c in channels:
                await c.close()
        entries = share * args.streams
        results[f"floor_stream_{label}_per_s"] = round(entries / seconds)
        results[f"floor_stream_{label}_server_cpu_us_per_entry"] = round(server_cpu * 1e6 / entries)
        results[f"floor_stream_{label}_client_cpu_us_per_entry"] = round(client_cpu * 1e6 / entries)
        shape = f"packed to {MESSAGE_BYTES} bytes" if packed else "one entry"
        print(
            f"floor: AppendStream, {shape} per message, {args.streams} streams: "
            f"{entries / seconds:,.0f} entries/s; CPU per "
            f"entry: server {server_cpu * 1e6 / entries:,.0f} us, client "
            f"{client_cpu * 1e6 / entries:,.0f} us",
            flush=True,
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--levels", default="1,16,64", help="concurrent unary clients")
    parser.add_argument("--unary-count", type=int, default=4_000, help="Appends per level")
    parser.add_argument("--streams", type=int, default=8, help="concurrent AppendStreams")
    parser.add_argument("--stream-entries", type=int, default=40_000, help="entries per run")
    parser.add_argument("--raw-seconds", type=float, default=2.0, help="raw Ed25519 duration")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.unary_count, args.stream_entries, args.raw_seconds = 200, 2_000, 0.5
    args.levels = parse_levels(parser, args.levels)
    if args.streams < 1:
        parser.error("--streams needs a positive count")
    return args


def main() -> int:
    args = parse_args()
    if serve_if_asked(args, serve):
        return 0
    results: dict[str, object] = {"python": sys.version.split()[0], "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="custody-grpc-floor-") as tmp:
        directory = Path(tmp)
        receipt, requests = real_receipt(directory)
        (directory / "receipt.bin").write_bytes(receipt_to_proto(receipt).SerializeToString())
        pki = directory / "pki"
        ca = init_ca(pki, "Custody Floor CA")
        issue_server(ca, pki, "server")  # server.pem, server-key.pem: read by the child
        partners = [issue_partner(ca, pki, f"floor-{n:02d}") for n in range(PARTNERS)]
        credentials = [partner_credentials(ca, p) for p in partners]
        server = FloorServer(directory)
        try:
            raw1, raw2 = measure_raw(args.raw_seconds, "before")
            results["raw_ed25519_verify_per_s_1thread"] = round(raw1)
            results["raw_ed25519_verify_per_s_2threads"] = round(raw2)
            asyncio.run(measure(args, server, credentials, requests, results))
        finally:
            server.stop()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
