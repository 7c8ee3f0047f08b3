"""Running a node: configuration, health checking, reflection, metrics, logs, faults.

Nodes here are started from what an operator writes (a TOML file and the
environment) wherever that matters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import cast

import grpc
import pytest
import structlog
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from clients.sample.consortium import BALTIC, FINAL_LOT_ID, LUALABA, MERIDIAN
from custody.v1 import event_pb2, ledger_service_pb2, registry_service_pb2
from ledger.checkpoint import open_checkpoint
from ledger.errors import ConfigurationError
from ledger.wire import ALREADY_LOGGED, REQUEST_ID_METADATA
from services.config import NodeConfig, load_config
from services.node import SERVICE_NAMES
from tests.services.node_support import (
    ORIGIN,
    STRANGER,
    Ledger,
    NodeThread,
    Pki,
    node_config,
    running_node,
)
from tests.services.rpc_support import (
    SAMPLE_SIZE,
    Code,
    Connections,
    append_request,
    error_infos,
    health_check,
    health_watch,
    log_state,
    log_verifier_key,
    lualaba_extraction,
    new_ledger,
    raw_unary,
    refused,
    signed_event,
    stream_entry,
    stream_message,
    stream_outcomes,
    unchanged,
    wait_for,
)

CUSTODY_SERVICES = {
    "custody.v1.LedgerService",
    "custody.v1.RegistryService",
    "custody.v1.ProvenanceService",
}
LEDGER_METHODS = [
    "Append",
    "AppendStream",
    "GetCheckpoint",
    "GetEntry",
    "GetEntries",
    "GetInclusionProof",
    "GetConsistencyProof",
    "Follow",
]


# --- configuration ---------------------------------------------------------------------


def _toml(ledger: Ledger, pki: Pki) -> str:
    return f"""
[node]
listen = "127.0.0.1:0"
data_dir = "{ledger.data_dir}"
database_url = "{ledger.url}"

[tls]
cert = "{pki.server_cert}"
key = "{pki.server_key}"
client_ca = "{pki.ca.certificate_path}"

[limits]
max_batch = 50

[sequencer]
poll_seconds = 0.2

[metrics]
listen = ""

[logging]
format = "console"
level = "debug"
"""


def test_a_node_runs_from_a_configuration_file(pki: Pki, tmp_path: Path) -> None:
    """A TOML file as an operator writes it, then a real TLS call to the node it starts."""
    ledger = new_ledger(tmp_path / "ledger")
    path = tmp_path / "node.toml"
    path.write_text(_toml(ledger, pki), encoding="utf-8")
    config = load_config(path, {})
    assert config.limits.max_batch == 50
    assert config.metrics.listen == ""
    assert config.log_key_path == ledger.data_dir / "log-key.pem"
    with running_node(config) as node, Connections(node, pki) as connections:
        assert node.node.metrics_endpoint is None
        response = connections(BALTIC).ledger.GetCheckpoint(
            ledger_service_pb2.GetCheckpointRequest()
        )
    origin, size = response.checkpoint.split(b"\n")[:2]
    assert (origin, size) == (ORIGIN.encode(), str(SAMPLE_SIZE).encode())
    assert (
        open_checkpoint(response.checkpoint, log_verifier_key(ledger)).checkpoint.size
        == SAMPLE_SIZE
    )


def test_the_environment_overrides_the_file(pki: Pki, tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path / "ledger")
    path = tmp_path / "node.toml"
    path.write_text(_toml(ledger, pki), encoding="utf-8")
    config = load_config(
        path,
        {
            "CUSTODY_LIMITS_MAX_BATCH": "7",
            "CUSTODY_NODE_LISTEN": "127.0.0.1:9999",
            "CUSTODY_LOGGING_FORMAT": "json",
            "CUSTODY_SEQUENCER_POLL_SECONDS": "0.5",
            "CUSTODY_NODE_INSECURE_DEV": "yes",
            "CUSTODY_OTHER_SETTING": "ignored: not a node setting",
        },
    )
    assert config.limits.max_batch == 7
    assert config.node.listen == "127.0.0.1:9999"
    assert config.logging.format == "json"
    assert config.sequencer.poll_seconds == 0.5
    assert config.node.insecure_dev is True
    assert config.limits.max_pending == 10_000  # neither file nor environment: the default


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "node.toml"
    path.parent.mkdir()
    path.write_text(
        '[node]\ndata_dir = "data"\nlog_key = "keys/log.pem"\n'
        '[tls]\ncert = "tls/node.pem"\nkey = "tls/node-key.pem"\nclient_ca = "/abs/ca.pem"\n',
        encoding="utf-8",
    )
    config = load_config(path, {})
    base = path.parent.resolve()
    assert config.node.data_dir == base / "data"
    assert config.tls.cert == base / "tls" / "node.pem"
    assert config.tls.key == base / "tls" / "node-key.pem"
    assert config.tls.client_ca == Path("/abs/ca.pem")
    # The log key is relative to data_dir (docs/grpc.md), not to the file.
    assert config.log_key_path == base / "data" / "keys" / "log.pem"
    assert config.database_url == f"sqlite:///{base / 'data' / 'custody.db'}"


def test_the_deployment_example_loads(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "node.example.toml"
    config = load_config(example, {})
    assert config.node.listen == "0.0.0.0:7443"
    assert config.log_key_path == Path("/var/lib/custody/log-key.pem")
    assert config.tls.client_ca == Path("/etc/custody/tls/ca.pem")
    assert config.limits == NodeConfig().limits


@pytest.mark.parametrize(
    ("document", "environment", "message"),
    [
        ("[nodes]\nlisten = '127.0.0.1:1'\n", {}, "unknown section"),
        ("[node]\nlisen = '127.0.0.1:1'\n", {}, "unknown setting"),
        ("[limits]\nmax_batch = true\n", {}, "must be an integer"),
        ("[limits]\nmax_batch = 0\n", {}, "must be positive"),
        ("[limits]\nmax_pending = 500\n", {}, "at least max_batch"),
        ("", {"CUSTODY_LIMITS_MAX_BATCH": "ten"}, "must be an integer"),
        ("", {"CUSTODY_NODE_INSECURE_DEV": "maybe"}, "true or false"),
        ("[node]\nlisten = 'nohost'\n", {}, "host:port"),
        ("[logging]\nformat = 'xml'\n", {}, "json or console"),
        ("[logging]\nlevel = 'loud'\n", {}, "level"),
        ("node = 1\n", {}, "must be a table"),
        ("[node\n", {}, "cannot read"),
        ("[sequencer]\npoll_seconds = 0\n", {}, "positive number of seconds"),
        ("", {"CUSTODY_LIMITS_SHUTDOWN_GRACE_SECONDS": "-1"}, "positive number of seconds"),
        ("[limits]\nmax_concurrent_rpcs = -1\n", {}, "unbounded"),
        # Unauthenticated callers name themselves: loopback only.
        ("[node]\nlisten = '0.0.0.0:7443'\n", {}, "loopback only"),
        ("", {"CUSTODY_NODE_LISTEN": "10.0.0.5:7443"}, "loopback only"),
    ],
)
def test_bad_settings_are_refused(
    tmp_path: Path, document: str, environment: dict[str, str], message: str
) -> None:
    path = tmp_path / "node.toml"
    path.write_text(document, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        load_config(path, environment, insecure_dev=True)


def test_tls_is_required_unless_insecure_dev(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[tls]\ncert = "node.pem"\nkey = "node-key.pem"\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match="mutual TLS is mandatory"):
        load_config(path, {})
    with pytest.raises(ConfigurationError, match="mutual TLS is mandatory"):
        load_config(None, {})
    assert load_config(path, {}, insecure_dev=True).node.insecure_dev
    assert load_config(None, {"CUSTODY_TLS_CLIENT_CA": "ca.pem"} | _tls_env()).tls.client_ca == (
        Path.cwd() / "ca.pem"
    )


def _tls_env() -> dict[str, str]:
    return {"CUSTODY_TLS_CERT": "node.pem", "CUSTODY_TLS_KEY": "node-key.pem"}


# --- health checking and reflection -----------------------------------------------------


@pytest.mark.parametrize("service", ["", *SERVICE_NAMES])
def test_health_is_serving(connect: Connections, service: str) -> None:
    response = health_check(connect(MERIDIAN).channel)(
        health_pb2.HealthCheckRequest(service=service)
    )
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_health_of_an_unknown_service_is_not_found(connect: Connections) -> None:
    check = health_check(connect(MERIDIAN).channel)
    refused(
        lambda: check(health_pb2.HealthCheckRequest(service="custody.v1.NoSuchService")),
        Code.NOT_FOUND,
        None,
    )


def _reflect(
    channel: grpc.Channel, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    info = cast(
        "grpc.StreamStreamMultiCallable["
        "reflection_pb2.ServerReflectionRequest, reflection_pb2.ServerReflectionResponse]",
        stub.ServerReflectionInfo,
    )
    (response,) = info(iter([request]), timeout=10)
    return response


def test_reflection_lists_the_custody_services(connect: Connections) -> None:
    response = _reflect(
        connect(MERIDIAN).channel, reflection_pb2.ServerReflectionRequest(list_services="")
    )
    listed = [service.name for service in response.list_services_response.service]
    assert set(SERVICE_NAMES) == CUSTODY_SERVICES
    assert sorted(listed) == sorted(
        [*CUSTODY_SERVICES, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"]
    )


def test_reflection_serves_the_schemas(connect: Connections) -> None:
    response = _reflect(
        connect(MERIDIAN).channel,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="custody.v1.LedgerService"),
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in response.file_descriptor_response.file_descriptor_proto
    ]
    (ledger_file,) = [f for f in files if f.name == "custody/v1/ledger_service.proto"]
    assert [service.name for service in ledger_file.service] == ["LedgerService"]
    assert [m.name for m in ledger_file.service[0].method] == LEDGER_METHODS
    # The schema the node was built with, as compiled.
    assert ledger_file == descriptor_pb2.FileDescriptorProto.FromString(
        ledger_service_pb2.DESCRIPTOR.serialized_pb
    )


# --- metrics ---------------------------------------------------------------------------


def _scrape(node: NodeThread) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    endpoint = node.node.metrics_endpoint
    assert endpoint is not None
    url = f"http://127.0.0.1:{endpoint.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode("utf-8")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_prometheus_endpoint(pki: Pki, tmp_path: Path) -> None:
    """A fresh node: one entry appended, one resubmitted, two refused by rule, one caller
    refused before admission; the counters say exactly that."""
    ledger = new_ledger(tmp_path / "ledger")
    with running_node(node_config(ledger, pki)) as node:
        metrics = _scrape(node)
        assert metrics[("custody_tree_size", ())] == SAMPLE_SIZE
        with Connections(node, pki) as connections:
            stub = connections(LUALABA).ledger
            envelope = lualaba_extraction()
            stub.Append(append_request(envelope, [LUALABA]))
            refused(
                lambda: stub.Append(append_request(envelope, [LUALABA])),
                Code.ALREADY_EXISTS,
                ALREADY_LOGGED,
            )
            not_held = event_pb2.Dispatch(
                lot_id=FINAL_LOT_ID, to_partner_id=MERIDIAN, mass_grams=1, transport="road"
            )
            for _ in range(2):
                refused(
                    lambda: stub.Append(append_request(signed_event(LUALABA, not_held), [LUALABA])),
                    Code.FAILED_PRECONDITION,
                    "LOT_NOT_HELD",
                )
            refused(
                lambda: connections(STRANGER).ledger.GetCheckpoint(
                    ledger_service_pb2.GetCheckpointRequest()
                ),
                Code.PERMISSION_DENIED,
                "NOT_A_PARTNER",
            )
            # Refused before any batch: counted all the same.
            refused(
                lambda: connections(STRANGER).ledger.Append(append_request(envelope, [LUALABA])),
                Code.PERMISSION_DENIED,
                "NOT_A_PARTNER",
            )
            list(
                connections(BALTIC).ledger.GetEntries(
                    ledger_service_pb2.GetEntriesRequest(start=0, end=3)
                )
            )
        metrics = _scrape(node)
    assert metrics[("custody_tree_size", ())] == SAMPLE_SIZE + 1
    assert metrics[("custody_entries_appended_total", ())] == 1
    assert metrics[("custody_entries_duplicate_total", ())] == 1
    assert metrics[("custody_entries_refused_total", (("reason", "LOT_NOT_HELD"),))] == 2
    assert metrics[("custody_entries_refused_total", (("reason", "NOT_A_PARTNER"),))] == 1
    requests = "custody_rpc_requests_total"
    assert metrics[(requests, (("code", "OK"), ("method", "Append")))] == 1
    assert metrics[(requests, (("code", "ALREADY_EXISTS"), ("method", "Append")))] == 1
    assert metrics[(requests, (("code", "FAILED_PRECONDITION"), ("method", "Append")))] == 2
    assert metrics[(requests, (("code", "PERMISSION_DENIED"), ("method", "GetCheckpoint")))] == 1
    assert metrics[(requests, (("code", "OK"), ("method", "GetEntries")))] == 1
    latency = "custody_rpc_latency_seconds"
    assert metrics[(latency + "_count", (("method", "Append"),))] == 5
    assert metrics[(latency + "_bucket", (("le", "+Inf"), ("method", "Append")))] == 5
    assert metrics[(latency + "_count", (("method", "GetCheckpoint"),))] == 1
    assert metrics[("custody_batch_entries_count", ())] == 4
    assert metrics[("custody_open_streams", (("method", "GetEntries"),))] == 0
    assert metrics[("custody_queued_entries", ())] == 0  # all committed


def test_requests_that_do_not_parse_are_counted(node: NodeThread, connect: Connections) -> None:
    """Refused before any handler runs, they are still in the request counts."""
    key = ("custody_rpc_requests_total", (("code", "INVALID_ARGUMENT"), ("method", "GetEntry")))
    before = _scrape(node).get(key, 0.0)
    call = raw_unary(connect(BALTIC).channel, "/custody.v1.LedgerService/GetEntry")
    for _ in range(2):
        refused(lambda: call(b"\xff\xff\xff"), Code.INVALID_ARGUMENT, "MALFORMED")
    assert _scrape(node)[key] == before + 2


def test_stream_entries_are_timed_each(node: NodeThread, connect: Connections) -> None:
    """One latency observation per streamed entry, appended or refused, however the
    entries were packed into messages."""
    count = "custody_stream_entry_latency_seconds_count"
    before = _scrape(node).get((count, ()), 0.0)
    messages = [
        stream_message([stream_entry(0, lualaba_extraction(), [LUALABA]), stream_entry(1, None)]),
        stream_message([stream_entry(2, lualaba_extraction(), [LUALABA])]),
    ]
    outcomes = stream_outcomes(connect(LUALABA).ledger.AppendStream(iter(messages), timeout=30))
    assert sorted(o.sequence for o in outcomes) == [0, 1, 2]
    assert _scrape(node)[(count, ())] == before + 3


def test_a_frontend_reads_what_another_just_committed(tmp_path: Path, pki: Pki) -> None:
    """Two nodes on one database: one that has not polled yet still serves an entry the
    other just appended, rather than calling it out of range."""
    shared = new_ledger(tmp_path)
    writer_config = node_config(shared, pki)
    slow = dataclasses.replace(
        writer_config, sequencer=dataclasses.replace(writer_config.sequencer, poll_seconds=600.0)
    ).check()
    with (
        running_node(writer_config) as writer,
        running_node(slow) as reader,
        Connections(writer, pki) as writers,
        Connections(reader, pki) as readers,
    ):
        response = writers(LUALABA).ledger.Append(append_request(lualaba_extraction(), [LUALABA]))
        index = response.receipt.index
        entry = readers(BALTIC).ledger.GetEntry(ledger_service_pb2.GetEntryRequest(index=index))
        assert entry.entry.leaf == response.receipt.leaf
        chunks = readers(BALTIC).ledger.GetEntries(
            ledger_service_pb2.GetEntriesRequest(start=index, end=index + 1)
        )
        assert [e.leaf for chunk in chunks for e in chunk.entries] == [response.receipt.leaf]
        refused(
            lambda: readers(BALTIC).ledger.GetEntry(
                ledger_service_pb2.GetEntryRequest(index=index + 1)
            ),
            Code.OUT_OF_RANGE,
            "OUT_OF_RANGE",
        )


def test_open_streams_are_counted(node: NodeThread, connect: Connections) -> None:
    stream = connect(BALTIC).ledger.Follow(
        ledger_service_pb2.FollowRequest(start_index=0), timeout=30
    )
    try:
        next(stream)
        assert _scrape(node)[("custody_open_streams", (("method", "Follow"),))] == 1
    finally:
        stream.cancel()
    wait_for(lambda: _scrape(node)[("custody_open_streams", (("method", "Follow"),))] == 0)


# --- logs ------------------------------------------------------------------------------


def test_logs_carry_the_request_id_method_and_partner(
    node: NodeThread, connect: Connections
) -> None:
    stub = connect(LUALABA).ledger
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        envelope = lualaba_extraction()
        response, call = stub.Append.with_call(
            append_request(envelope, [LUALABA]), metadata=((REQUEST_ID_METADATA, "req-0042"),)
        )
        with unchanged(node):
            refusal_error = refused(
                lambda: connect(MERIDIAN).ledger.Append(
                    append_request(envelope, [LUALABA]),
                    metadata=((REQUEST_ID_METADATA, "req-0043"),),
                ),
                Code.PERMISSION_DENIED,
                "IDENTITY_MISMATCH",
            )
            again = refused(
                lambda: stub.Append(
                    append_request(envelope, [LUALABA]),
                    metadata=((REQUEST_ID_METADATA, "req-0044"),),
                ),
                Code.ALREADY_EXISTS,
                ALREADY_LOGGED,
            )
    assert (REQUEST_ID_METADATA, "req-0042") in (call.trailing_metadata() or ())
    # Refusals keep the request id in their trailers, beside the status details.
    for error, rid in ((refusal_error, "req-0043"), (again, "req-0044")):
        trailers = dict(cast(grpc.Call, error).trailing_metadata() or ())
        assert trailers[REQUEST_ID_METADATA] == rid
        assert "grpc-status-details-bin" in trailers
    appended = [entry for entry in logs if entry.get("request_id") == "req-0042"]
    assert {
        "event": "appended",
        "method": "Append",
        "partner": LUALABA,
        "index": response.receipt.index,
        "log_level": "info",
    }.items() <= appended[-1].items()
    assert appended[-1]["peer"].startswith("ipv4:127.0.0.1:")
    (refusal,) = [entry for entry in logs if entry.get("request_id") == "req-0043"]
    assert {
        "event": "refused",
        "method": "Append",
        "partner": MERIDIAN,
        "reason": "IDENTITY_MISMATCH",
    }.items() <= refusal.items()


def test_an_unusable_request_id_is_replaced(connect: Connections) -> None:
    stub = connect(LUALABA).ledger
    for bad in ("x" * 65, ""):
        _, call = stub.GetCheckpoint.with_call(
            ledger_service_pb2.GetCheckpointRequest(), metadata=((REQUEST_ID_METADATA, bad),)
        )
        echoed = dict(call.trailing_metadata() or ())[REQUEST_ID_METADATA]
        assert echoed != bad
        assert len(echoed) == 16


# --- the node's own faults -------------------------------------------------------------


def test_an_internal_fault_is_internal_with_a_request_id_and_logged(
    node: NodeThread, connect: Connections, monkeypatch: pytest.MonkeyPatch
) -> None:
    """INTERNAL is for the node's own faults only, and says which request to look up."""

    def broken(*_args: object) -> None:
        raise RuntimeError("disk on fire: /secret/path")

    before = log_state(node)
    monkeypatch.setattr(node.node.store, "latest_checkpoint", broken)
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        error = refused(
            lambda: connect(MERIDIAN).registry.GetRegistry(
                registry_service_pb2.GetRegistryRequest(),
                metadata=((REQUEST_ID_METADATA, "req-fault"),),
            ),
            Code.INTERNAL,
            "INTERNAL",
        )
    monkeypatch.undo()
    assert log_state(node) == before
    assert "disk on fire" not in (error.details() or "")
    assert "req-fault" in (error.details() or "")
    (info,) = error_infos(error)
    assert dict(info.metadata) == {"request_id": "req-fault"}
    (logged,) = [e for e in logs if e.get("request_id") == "req-fault"]
    assert logged["event"] == "internal error"
    assert logged["log_level"] == "error"
    assert isinstance(logged["exc_info"], RuntimeError)


def test_calls_beyond_max_concurrent_rpcs_are_resource_exhausted(pki: Pki, tmp_path: Path) -> None:
    """docs/grpc.md: a full node refuses further calls at once (gRPC's own status, no
    ErrorInfo) rather than queueing them; once the slot is free it serves again."""
    ledger = new_ledger(tmp_path / "ledger")
    with (
        running_node(node_config(ledger, pki, max_concurrent_rpcs=1)) as node,
        Connections(node, pki) as connections,
    ):
        request = ledger_service_pb2.GetCheckpointRequest()
        follow = connections(BALTIC).ledger.Follow(
            ledger_service_pb2.FollowRequest(start_index=0), timeout=30
        )
        try:
            next(follow)  # the one slot is taken
            with unchanged(node):
                refused(
                    lambda: connections(MERIDIAN).ledger.GetCheckpoint(request, timeout=10),
                    Code.RESOURCE_EXHAUSTED,
                    None,
                )
        finally:
            follow.cancel()

        def served() -> bool:
            try:
                connections(MERIDIAN).ledger.GetCheckpoint(request, timeout=10)
            except grpc.RpcError as exc:
                code = exc.code()
            else:
                return True
            assert code == Code.RESOURCE_EXHAUSTED  # the slot is not free yet
            return False

        wait_for(served)


# --- shutdown --------------------------------------------------------------------------


def test_health_turns_not_serving_when_the_node_stops(pki: Pki, tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path / "ledger")
    node = NodeThread(node_config(ledger, pki))
    statuses: list[int] = []
    with Connections(node, pki) as connections:
        watch = health_watch(connections(MERIDIAN).channel)(
            health_pb2.HealthCheckRequest(service=""), timeout=30
        )
        statuses.append(next(watch).status)
        stopper = threading.Thread(target=node.stop, kwargs={"grace": 1.0})
        stopper.start()
        with contextlib.suppress(grpc.RpcError):  # the stream ends with the server
            statuses.extend(response.status for response in watch)
        stopper.join(30)
    assert statuses[0] == health_pb2.HealthCheckResponse.SERVING
    assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses[1:]


def test_a_stopped_node_is_unavailable_and_its_log_intact(pki: Pki, tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path / "ledger")
    node = NodeThread(node_config(ledger, pki))
    with Connections(node, pki) as connections:
        try:
            stub = connections(LUALABA).ledger
            stub.Append(append_request(lualaba_extraction(), [LUALABA]))
            size = log_state(node).tree_size
        finally:
            node.stop()
        refused(
            lambda: stub.GetCheckpoint(ledger_service_pb2.GetCheckpointRequest(), timeout=5),
            Code.UNAVAILABLE,
            None,
        )
    with running_node(node_config(ledger, pki)) as again:
        assert log_state(again).tree_size == size == SAMPLE_SIZE + 1


def test_a_serving_node_collects_garbage_less_often() -> None:
    """``custody serve`` freezes what start-up allocated and raises the young threshold
    (checked in a child process: the setting is process-wide)."""
    script = (
        "import gc\n"
        "from services.gc_tuning import YOUNG_COLLECTION_THRESHOLD, tune_garbage_collection\n"
        "before = gc.get_threshold()\n"
        "tune_garbage_collection()\n"
        "after = gc.get_threshold()\n"
        "assert after == (YOUNG_COLLECTION_THRESHOLD, *before[1:]), (before, after)\n"
        "assert gc.get_freeze_count() > 0\n"
        "assert gc.isenabled()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
