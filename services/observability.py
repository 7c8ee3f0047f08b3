"""Structured logs (structlog) and Prometheus metrics of a node.

Each node owns its own metrics registry, so several nodes in one process
(tests, benchmarks) do not share counters. Logs carry the request id, the
method, the calling partner and, for appends, the index.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from threading import Thread
from typing import Literal
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from ledger.errors import CustodyError
from ledger.sequencer import AppendOutcome

LogFormat = Literal["json", "console"]
_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


def configure_logging(log_format: LogFormat = "json", level: str = "info") -> None:
    """Process-wide structlog setup for ``custody serve``: JSON lines on stderr, or console."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


@dataclass
class NodeMetrics:
    """The node's Prometheus collectors, in a registry of its own."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "custody_rpc_requests",
            "RPCs answered, by method and status code",
            ["method", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "custody_rpc_latency_seconds",
            "RPC latency by method",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.stream_entry_latency = Histogram(
            "custody_stream_entry_latency_seconds",
            "AppendStream: from reading an entry to handing its outcome to gRPC",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.appended = Counter("custody_entries_appended", "Entries given an index", registry=r)
        self.refused = Counter(
            "custody_entries_refused", "Entries refused, by reason code", ["reason"], registry=r
        )
        self.duplicates = Counter(
            "custody_entries_duplicate",
            "Resubmitted entries answered with their receipt",
            registry=r,
        )
        self.batch_size = Histogram(
            "custody_batch_entries",
            "Entries per committed batch (one transaction, one checkpoint)",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.tree_size = Gauge("custody_tree_size", "Entries in the log", registry=r)
        self.streams = Gauge(
            "custody_open_streams", "Open AppendStream and Follow streams", ["method"], registry=r
        )
        self.queued = Gauge(
            "custody_queued_entries",
            "Entries waiting for a batch (at most [limits] max_pending)",
            registry=r,
        )

    def record_batch(
        self, outcomes: Sequence[AppendOutcome], tree_size: int, commits: Sequence[int]
    ) -> None:
        """A batch answered: its appended and duplicate entries, and the entries of
        each commit reported since the last batch (``commits``; a commit may hold several
        batches). Refusals are counted where the service answers them (``refused``), so
        those refused before a batch count too."""
        for entries in commits:
            self.batch_size.observe(entries)
        duplicates = appended = 0
        for outcome in outcomes:
            if isinstance(outcome, CustodyError):
                continue
            if outcome.duplicate:
                duplicates += 1
            else:
                appended += 1
        # Once per batch: each inc() takes the metric's lock.
        if duplicates:
            self.duplicates.inc(duplicates)
        if appended:
            self.appended.inc(appended)
        self.tree_size.set(tree_size)


@dataclass
class MetricsEndpoint:
    """The HTTP server exposing ``/metrics``."""

    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(metrics: NodeMetrics, host: str, port: int) -> MetricsEndpoint:
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    return MetricsEndpoint(server, thread)
