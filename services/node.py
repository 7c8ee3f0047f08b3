"""A Custody node: the gRPC server around one sequencer, and its lifecycle.

``start_node`` opens the database, checks the stored head against the latest
signed checkpoint, and serves the ledger, registry and provenance services
plus standard health checking and reflection. ``RunningNode.stop`` stops
taking calls, lets calls in progress finish (within the grace period),
commits every entry already queued, and only then closes the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from custody.v1 import (
    ledger_service_pb2,
    ledger_service_pb2_grpc,
    provenance_service_pb2,
    provenance_service_pb2_grpc,
    registry_service_pb2,
    registry_service_pb2_grpc,
)
from ledger.admission import Submission
from ledger.domain.records import GOVERNANCE_PAYLOAD_TYPE
from ledger.errors import ConfigurationError, UnavailableError
from ledger.group_commit import GroupCommitter
from ledger.keys import read_pem_file
from ledger.receipts import Receipt
from ledger.sequencer import AppendOutcome
from ledger.storage.domain_store import DomainStore
from ledger.storage.log_store import LogStore
from services.access import AccessGuard, PartnerDirectory
from services.config import NodeConfig, join_address, split_address
from services.gc_tuning import tune_garbage_collection
from services.ledger_service import LedgerServicer, StreamLimits
from services.log_watch import LogWatcher
from services.observability import MetricsEndpoint, NodeMetrics, serve_metrics
from services.provenance_service import ProvenanceServicer
from services.registry_service import RegistryServicer
from services.rpc import RefuseUndecodable
from services.sequencing import NodeSequencer, SequencerProcess, open_sequencer

log = structlog.get_logger("custody.node")

COMMIT_DRAIN_SECONDS = 60.0
"""On shutdown, how long the queued entries may take to commit after the grace period."""
SERVICE_NAMES = (
    ledger_service_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name,
    registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name,
    provenance_service_pb2.DESCRIPTOR.services_by_name["ProvenanceService"].full_name,
)


def _read(path: Path | None, what: str) -> bytes:
    if path is None:
        raise ConfigurationError(f"no {what} configured")
    return read_pem_file(path, what)


def server_credentials(config: NodeConfig) -> grpc.ServerCredentials:
    """Mutual TLS: the node's certificate, and the CA partner certificates must chain to.

    A client without a certificate, or with one from another CA, fails the
    handshake: it never reaches a handler, so it can neither read nor write.
    """
    tls = config.tls
    return grpc.ssl_server_credentials(
        [(_read(tls.key, "TLS key"), _read(tls.cert, "TLS certificate"))],
        root_certificates=_read(tls.client_ca, "client CA bundle"),
        require_client_auth=True,
    )


@dataclass(eq=False)
class RunningNode:
    """A started node; ``port`` is the bound gRPC port (useful with port 0)."""

    config: NodeConfig
    server: grpc.aio.Server
    port: int
    store: LogStore
    sequencer: NodeSequencer
    committer: GroupCommitter[Any]
    watcher: LogWatcher
    health: health.aio.HealthServicer
    metrics: NodeMetrics
    metrics_endpoint: MetricsEndpoint | None
    failed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the node can no longer append (its sequencer's process died): health
    is NOT_SERVING and ``custody serve`` stops, to be restarted."""
    _stopping: bool = field(default=False, init=False)
    _failing: asyncio.Task[None] | None = field(default=None, init=False)

    def watch_sequencer(self) -> None:
        """Notice at once if the sequencer's process ends while the node serves."""
        sentinel = self.sequencer.sentinel
        if sentinel is not None:
            asyncio.get_running_loop().add_reader(sentinel, self._sequencer_ended, sentinel)

    def _sequencer_ended(self, sentinel: int) -> None:
        asyncio.get_running_loop().remove_reader(sentinel)
        if self._stopping:
            return
        log.error("the sequencer's process stopped: this node can no longer append")
        self.failed.set()
        self._failing = asyncio.get_running_loop().create_task(self._not_serving())

    async def _not_serving(self) -> None:
        await _set_health(self.health, health_pb2.HealthCheckResponse.NOT_SERVING)

    @property
    def address(self) -> str:
        host, _ = split_address(self.config.node.listen, "listen")
        return join_address(host, self.port)

    async def stop(self, grace: float | None = None) -> None:
        """Graceful: refuse new calls, finish those in progress and the batch in flight."""
        grace = self.config.limits.shutdown_grace_seconds if grace is None else grace
        log.info("stopping", grace_seconds=grace)
        self._stopping = True
        await self.health.enter_graceful_shutdown()
        await self.watcher.stop()  # Follow streams end instead of idling through the grace
        await self.server.stop(grace)
        try:
            # Everything queued is committed; a database that hangs must not hang us too.
            await asyncio.wait_for(self.committer.close(), timeout=grace + COMMIT_DRAIN_SECONDS)
        except TimeoutError:
            log.error("the sequencer did not finish its queued entries in time; stopping anyway")
        await asyncio.to_thread(self.sequencer.close)
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.close()
        self.store.close()
        log.info("stopped", tree_size=self.sequencer.size)

    async def wait(self) -> None:
        await self.server.wait_for_termination()


def _server_options(config: NodeConfig) -> Sequence[tuple[str, int]]:
    size = config.limits.max_message_bytes
    return (
        ("grpc.max_receive_message_length", size),
        ("grpc.max_send_message_length", size),
        # Detect dead peers on long Follow streams.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.keepalive_permit_without_calls", 1),
    )


async def _set_health(servicer: health.aio.HealthServicer, status: int) -> None:
    """The node's health and every service's: they serve, or not, together."""
    for name in ("", *SERVICE_NAMES):
        await servicer.set(name, status)


def _add_services(
    server: grpc.aio.Server, ledger: LedgerServicer, guard: AccessGuard, max_message_bytes: int
) -> health.aio.HealthServicer:
    """The three Custody services, health checking and reflection; returns the health servicer."""
    store, domain, metrics = ledger.store, ledger.domain, ledger.metrics
    ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server(ledger, server)
    registry_service_pb2_grpc.add_RegistryServiceServicer_to_server(
        RegistryServicer(store=store, domain=domain, guard=guard, metrics=metrics), server
    )
    provenance_service_pb2_grpc.add_ProvenanceServiceServicer_to_server(
        ProvenanceServicer(
            store=store,
            domain=domain,
            guard=guard,
            metrics=metrics,
            max_message_bytes=max_message_bytes,
        ),
        server,
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    return health_servicer


async def _open_storage(config: NodeConfig) -> tuple[LogStore, NodeSequencer]:
    """The store this process reads from, and the sequencer (started, head checked)."""
    if not config.sequencer.own_process:
        return open_sequencer(config, in_node=True)
    store = LogStore.open(config.database_url, migrate=False)
    try:
        store.info()  # no log here: refused before a process is spawned for it
        sequencer = SequencerProcess(config)
        await asyncio.to_thread(sequencer.start)
    except BaseException:
        store.close()
        raise
    return store, sequencer


async def start_node(config: NodeConfig) -> RunningNode:
    """Open storage, check the log's head, and start serving."""
    store, sequencer = await _open_storage(config)
    domain = DomainStore(store.engine)
    metrics = NodeMetrics()
    metrics.tree_size.set(sequencer.size)
    watcher = LogWatcher(store, poll_seconds=config.sequencer.poll_seconds)
    directory = PartnerDirectory(domain)

    def committed(submissions: Sequence[Submission], outcomes: Sequence[AppendOutcome]) -> None:
        # The sequencer's process may commit several of the node's batches together.
        metrics.record_batch(outcomes, sequencer.size, sequencer.take_commit_sizes())
        watcher.publish(sequencer.latest_checkpoint)
        if any(
            submission.envelope.payload_type == GOVERNANCE_PAYLOAD_TYPE
            for submission, outcome in zip(submissions, outcomes, strict=True)
            if isinstance(outcome, Receipt) and not outcome.duplicate
        ):
            directory.invalidate()  # someone may have been admitted or changed

    committer = GroupCommitter(
        sequencer,
        max_batch=config.limits.max_batch,
        max_pending=config.limits.max_pending,
        on_batch=committed,
    )
    metrics.queued.set_function(lambda: committer.queued)
    guard = AccessGuard(directory, insecure_dev=config.node.insecure_dev)
    server = grpc.aio.server(
        options=_server_options(config),
        maximum_concurrent_rpcs=config.limits.max_concurrent_rpcs or None,
        interceptors=[RefuseUndecodable(metrics)],
    )
    ledger_servicer = LedgerServicer(
        store=store,
        domain=domain,
        committer=committer,
        guard=guard,
        watcher=watcher,
        metrics=metrics,
        limits=StreamLimits(
            max_in_flight=config.limits.max_in_flight_per_stream,
            follow_idle_seconds=config.limits.follow_idle_seconds,
            max_streams_per_partner=config.limits.max_streams_per_partner,
            max_message_bytes=config.limits.max_message_bytes,
        ),
    )
    health_servicer = _add_services(server, ledger_servicer, guard, config.limits.max_message_bytes)
    host, port = split_address(config.node.listen, "[node] listen")
    address = join_address(host, port)
    endpoint = None
    try:
        if config.node.insecure_dev:
            log.warning("insecure development mode: no TLS, callers are not authenticated")
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, server_credentials(config))
        if bound == 0:
            raise ConfigurationError(f"cannot listen on {config.node.listen}")
        if config.metrics.listen:
            metrics_host, metrics_port = split_address(config.metrics.listen, "[metrics] listen")
            endpoint = serve_metrics(metrics, metrics_host, metrics_port)
        committer.start()
        await watcher.start()
        await server.start()
    except BaseException:
        # Nothing half-started is left behind: threads, ports, the database.
        await server.stop(None)
        await watcher.stop()
        await committer.close()
        await asyncio.to_thread(sequencer.close)
        if endpoint is not None:
            endpoint.close()
        store.close()
        raise
    await _set_health(health_servicer, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "serving",
        address=join_address(host, bound),
        origin=sequencer.origin,
        tree_size=sequencer.size,
        metrics=join_address(metrics_host, endpoint.port) if endpoint else None,
        tls=not config.node.insecure_dev,
    )
    node = RunningNode(
        config=config,
        server=server,
        port=bound,
        store=store,
        sequencer=sequencer,
        committer=committer,
        watcher=watcher,
        health=health_servicer,
        metrics=metrics,
        metrics_endpoint=endpoint,
    )
    node.watch_sequencer()
    return node


async def serve(config: NodeConfig) -> None:
    """Run a node until SIGINT or SIGTERM, then stop it gracefully; if it can no longer
    append (its sequencer's process died), stop it and raise, for a supervisor to
    restart it."""
    node = await start_node(config)
    tune_garbage_collection()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stopping.set)
    waits = [asyncio.ensure_future(stopping.wait()), asyncio.ensure_future(node.failed.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for wait in waits:
        wait.cancel()
    await node.stop()
    if node.failed.is_set():
        raise UnavailableError("the sequencer's process stopped; the node stopped too")
