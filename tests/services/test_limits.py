"""The node's bounds: what a large entry, a client that stops reading, a huge bundle or a
long history do to it, and that none of them turns into an unbounded cost or a wrong code."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from clients.sample.consortium import FINAL_LOT_ID, LOT_LCC_HYDROXIDE, LUALABA
from custody.v1 import (
    ledger_service_pb2,
    ledger_service_pb2_grpc,
    provenance_service_pb2,
)
from ledger.errors import InternalError, LogIntegrityError, StateMismatchError
from ledger.wire import ALREADY_LOGGED
from services import errors as service_errors
from services import provenance_service
from services.errors import status_code_for
from services.rpc import RefuseUndecodable
from tests.services.node_support import Ledger, NodeThread, Pki, node_config, running_node
from tests.services.rpc_support import (
    Connections,
    append_request,
    lualaba_extraction,
    new_ledger,
    refused,
    status_of,
    stream_request,
    unchanged,
)

WINDOW = 8
STREAMS = 2


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    return new_ledger(tmp_path_factory.mktemp("limits"))


@pytest.fixture(scope="module")
def node(ledger: Ledger, pki: Pki) -> Iterator[NodeThread]:
    config = node_config(
        ledger,
        pki,
        max_in_flight_per_stream=WINDOW,
        max_message_bytes=20_000,
        max_streams_per_partner=STREAMS,
    )
    with running_node(config) as thread:
        yield thread


@pytest.fixture(scope="module")
def connect(node: NodeThread, pki: Pki) -> Iterator[Connections]:
    connections = Connections(node, pki)
    yield connections
    connections.close()


def test_a_receipt_too_big_for_trailers_is_replaced_by_its_index(
    connect: Connections, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ALREADY_EXISTS must stay ALREADY_EXISTS for any entry: an original receipt that
    would overflow the client's metadata limit is left out, its index is always there."""
    stub = connect(LUALABA).ledger
    envelope = lualaba_extraction()
    first = stub.Append(append_request(envelope, [LUALABA]))
    monkeypatch.setattr(service_errors, "MAX_RECEIPT_DETAIL_BYTES", 0)
    error = refused(
        lambda: stub.Append(append_request(envelope, [LUALABA])),
        grpc.StatusCode.ALREADY_EXISTS,
        ALREADY_LOGGED,
    )
    status = status_of(error)
    assert status is not None
    assert len(status.details) == 1  # the ErrorInfo alone
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert info.metadata["index"] == str(first.receipt.index)


def test_a_client_that_stops_reading_its_answers_stops_being_read(
    node: NodeThread, pki: Pki
) -> None:
    """The window holds an entry's place until its answer is sent, so the node's memory
    and work stay bounded by the window and the transport's buffers, not by the client."""
    offered = 400
    envelopes = [lualaba_extraction() for _ in range(offered)]
    before = node.node.sequencer.size
    sent = 0

    async def run() -> int:
        nonlocal sent

        async def requests() -> Any:
            nonlocal sent
            for sequence, envelope in enumerate(envelopes):
                sent += 1
                yield stream_request(sequence, envelope)

        # Without BDP probing the client's receive window stays at 64 KiB: it fills
        # after some tens of unread answers, and then the node's sends wait.
        channel = grpc.aio.secure_channel(
            node.address, pki.channel_credentials(LUALABA), options=[("grpc.http2.bdp_probe", 0)]
        )
        try:
            call = ledger_service_pb2_grpc.LedgerServiceStub(channel).AppendStream(requests())
            await asyncio.sleep(3)  # reading nothing
            appended_while_unread = node.node.sequencer.size - before
            call.cancel()
            return appended_while_unread
        finally:
            await channel.close()

    appended = asyncio.run(run())
    assert appended >= WINDOW  # it did work...
    assert appended < offered // 2  # ...but stopped long before the client did


def test_one_partner_cannot_hold_every_stream(node: NodeThread, connect: Connections) -> None:
    """Idle Follow streams count against ``max_concurrent_rpcs`` like any call: without a
    per-partner bound, one partner could open them all and lock everyone else out."""
    follows = [
        connect("baltic-cells").ledger.Follow(ledger_service_pb2.FollowRequest(start_index=0))
        for _ in range(STREAMS)
    ]
    try:
        for follow in follows:
            next(follow)  # open and answering
        refused(
            lambda: next(
                connect("baltic-cells").ledger.Follow(
                    ledger_service_pb2.FollowRequest(start_index=0)
                )
            ),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "TOO_MANY_STREAMS",
        )
        other = connect("meridian-metals").ledger.Follow(
            ledger_service_pb2.FollowRequest(start_index=0)
        )
        assert next(other).entries  # another partner is not affected
        other.cancel()
    finally:
        for follow in follows:
            follow.cancel()
    # Closed streams give their places back.
    again = connect("baltic-cells").ledger.Follow(ledger_service_pb2.FollowRequest(start_index=0))
    assert next(again).entries
    again.cancel()


def test_a_bundle_larger_than_a_message_is_refused_plainly(connect: Connections) -> None:
    """The sample's bundle (~48 KB) on a node sending at most 20 KB per message: a clear
    refusal, not a transport failure after all the work."""
    refused(
        lambda: connect(LUALABA).provenance.Trace(
            provenance_service_pb2.TraceRequest(lot_id=FINAL_LOT_ID)
        ),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "BUNDLE_TOO_LARGE",
    )


def test_a_long_history_is_cut_and_says_so(
    connect: Connections, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(provenance_service, "_MAX_HISTORY", 3)
    monkeypatch.setattr(provenance_service, "_HISTORY_PAGE", 2)
    response = connect(LUALABA).provenance.GetLot(
        provenance_service_pb2.GetLotRequest(lot_id=LOT_LCC_HYDROXIDE)
    )
    assert len(response.history) == 3
    assert response.history_truncated
    monkeypatch.setattr(provenance_service, "_MAX_HISTORY", 100)
    whole = connect(LUALABA).provenance.GetLot(
        provenance_service_pb2.GetLotRequest(lot_id=LOT_LCC_HYDROXIDE)
    )
    assert list(whole.history[:3]) == list(response.history)
    assert not whole.history_truncated


def test_unknown_method_names_are_not_remembered() -> None:
    """Callers choose method names; remembering each would let them grow the node's memory."""
    interceptor = RefuseUndecodable()

    async def unknown(_: grpc.HandlerCallDetails) -> None:
        return None

    class Details(grpc.HandlerCallDetails):
        def __init__(self, method: str) -> None:
            self.method = method
            self.invocation_metadata = ()

    async def run() -> None:
        for i in range(50):
            assert await interceptor.intercept_service(unknown, Details(f"/x.Y/M{i}")) is None

    asyncio.run(run())
    assert interceptor._wrapped == {}


@pytest.mark.parametrize(
    "error",
    [
        LogIntegrityError("stored leaf 7 does not hash to its leaf hash", index=7),
        StateMismatchError("storage disagrees with the signed checkpoint"),
        InternalError("a bug"),
    ],
)
def test_the_nodes_own_faults_are_internal_not_the_clients(error: Exception) -> None:
    assert status_code_for(error) is grpc.StatusCode.INTERNAL  # type: ignore[arg-type]


def test_stream_entries_are_refused_with_the_unary_codes(
    node: NodeThread, connect: Connections
) -> None:
    """One mapping for both: an entry refused on a stream carries the code and reason the
    same entry gets from a unary Append."""
    envelope = lualaba_extraction()
    stub = connect("kokkola-refining").ledger  # not the recorder
    with unchanged(node):
        unary = refused(
            lambda: stub.Append(append_request(envelope, [LUALABA])),
            grpc.StatusCode.PERMISSION_DENIED,
            "IDENTITY_MISMATCH",
        )
        (answer,) = list(stub.AppendStream(iter([stream_request(0, envelope)])))
    assert answer.refusal.code == unary.code().value[0]
    assert answer.refusal.reason == "IDENTITY_MISMATCH"
    assert answer.refusal.message == unary.details()
