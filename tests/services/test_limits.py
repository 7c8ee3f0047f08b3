"""The node's bounds: what a large entry, a client that stops reading, a huge bundle or a
long history do to it, and that none of them turns into an unbounded cost or a wrong code."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from clients.sample.consortium import FINAL_LOT_ID, LOT_LCC_HYDROXIDE, LUALABA, partner_signer
from custody.v1 import (
    ledger_service_pb2,
    ledger_service_pb2_grpc,
    provenance_service_pb2,
)
from ledger.domain.records import EVENT_PAYLOAD_TYPE
from ledger.dsse import sign_envelope
from ledger.errors import (
    ConfigurationError,
    InternalError,
    LogIntegrityError,
    StateMismatchError,
)
from ledger.wire import ALREADY_LOGGED
from services import errors as service_errors
from services import provenance_service
from services.config import load_config
from services.errors import status_code_for
from services.rpc import RefuseUndecodable
from tests.services.node_support import NodeThread, Pki, node_config
from tests.services.rpc_support import (
    SAMPLE_SIZE,
    Connections,
    append_request,
    lualaba_extraction,
    new_ledger,
    outcomes_by_sequence,
    refusal,
    refused,
    status_of,
    stream_entry,
    stream_message,
    stream_outcomes,
    stream_request,
    unchanged,
    wait_for,
)

WINDOW = 8
STREAMS = 2
NODE_LIMITS = {
    "max_in_flight_per_stream": WINDOW,
    "max_message_bytes": 40_000,
    "max_streams_per_partner": STREAMS,
}
SETTLED_AFTER = 0.3
"""A client that stops reading: the node has stopped once nothing moved for this long."""
SETTLE_AT_MOST = 3.0
"""...or after this long in all, whatever moved (the bound the checks then judge)."""


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


async def _settled(progress: Callable[[], tuple[int, int]]) -> None:
    """Wait until ``progress`` (entries appended, messages taken) shows at least WINDOW
    entries appended and then stays the same for SETTLED_AFTER; SETTLE_AT_MOST in all."""
    started = time.monotonic()
    last, since = progress(), started
    while (now := time.monotonic()) - started < SETTLE_AT_MOST:
        if last[0] >= WINDOW and now - since >= SETTLED_AFTER:
            return
        await asyncio.sleep(0.02)
        current = progress()
        if current != last:
            last, since = current, time.monotonic()


def appended_while_not_reading(
    node: NodeThread, pki: Pki, messages: Iterable[ledger_service_pb2.AppendStreamRequest]
) -> tuple[int, int]:
    """Send ``messages`` on an AppendStream whose answers are never read; once the node
    has stopped taking entries (``_settled``), how many entries it appended and how many
    messages were taken."""
    before = node.node.sequencer.size
    taken = 0

    async def run() -> int:
        nonlocal taken

        async def requests() -> Any:
            nonlocal taken
            for message in messages:
                taken += 1
                yield message

        # Without BDP probing the client's receive window stays at 64 KiB: it fills
        # after some tens of unread answers, and then the node's sends wait.
        channel = grpc.aio.secure_channel(
            node.address, pki.channel_credentials(LUALABA), options=[("grpc.http2.bdp_probe", 0)]
        )
        try:
            call = ledger_service_pb2_grpc.LedgerServiceStub(channel).AppendStream(requests())
            await _settled(lambda: (node.node.sequencer.size - before, taken))  # reading nothing
            appended = node.node.sequencer.size - before
            call.cancel()
            return appended
        finally:
            await channel.close()

    return asyncio.run(run()), taken


def test_a_client_that_stops_reading_its_answers_stops_being_read(
    node: NodeThread, pki: Pki
) -> None:
    """The window holds an entry's place until its answer is sent, so the node's memory
    and work stay bounded by the window and the transport's buffers, not by the client."""
    offered = 400
    envelopes = [lualaba_extraction() for _ in range(offered)]
    appended, _ = appended_while_not_reading(
        node, pki, (stream_request(sequence, e) for sequence, e in enumerate(envelopes))
    )
    assert appended >= WINDOW  # it did work...
    assert appended < offered // 2  # ...but stopped long before the client did


def test_a_client_sending_many_entries_per_message_that_stops_reading_stops_being_read(
    node: NodeThread, pki: Pki
) -> None:
    """The window counts entries, not messages: the node takes no further entry until
    answers are handed over, which a client that does not read holds back."""
    per_message = 5
    offered = per_message * 80
    envelopes = [lualaba_extraction() for _ in range(offered)]
    appended, sent = appended_while_not_reading(
        node,
        pki,
        (
            stream_message(
                stream_entry(sequence, envelopes[sequence])
                for sequence in range(start, start + per_message)
            )
            for start in range(0, offered, per_message)
        ),
    )
    assert appended >= WINDOW  # it did work...
    assert appended < offered // 2  # ...but stopped long before the client did,
    assert appended < sent * per_message  # with more sent than it read


def test_the_window_holds_inside_one_large_message(node: NodeThread, pki: Pki) -> None:
    """A single message of many entries is no way around the window: its entries are
    queued only as answers go out, so a client that does not read gets few of them in."""
    entries: list[ledger_service_pb2.StreamEntry] = []
    while True:  # as many entries as one message of this node (40 KB) may carry
        entry = stream_entry(len(entries), lualaba_extraction())
        if stream_message([*entries, entry]).ByteSize() > 39_000:
            break
        entries.append(entry)
    appended, _ = appended_while_not_reading(node, pki, [stream_message(entries)])
    # Answers the client's HTTP/2 window buffers (about 64 KiB of them) count as handed
    # over, so more than WINDOW get in; read whole, the message would get in entirely.
    assert WINDOW <= appended < len(entries)


def test_a_message_of_more_entries_than_the_window_is_answered_whole(
    node: NodeThread, connect: Connections
) -> None:
    """A message of more entries than the window is answered whole, its entries taken
    as answers go out, and the stream goes on with the next message."""
    envelopes = [lualaba_extraction() for _ in range(3 * WINDOW)]
    first = stream_message(stream_entry(s, envelopes[s]) for s in range(2 * WINDOW + 1))
    second = stream_message(
        stream_entry(s, envelopes[s]) for s in range(2 * WINDOW + 1, 3 * WINDOW)
    )
    before = node.node.sequencer.size
    responses = list(connect(LUALABA).ledger.AppendStream(iter([first, second]), timeout=30))
    by_sequence = outcomes_by_sequence(stream_outcomes(responses))
    assert sorted(by_sequence) == list(range(3 * WINDOW))
    for outcome in by_sequence.values():
        assert outcome.WhichOneof("outcome") == "receipt", outcome.refusal
    assert node.node.sequencer.size == before + 3 * WINDOW


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
    """The sample's bundle (~48 KB) on a node sending at most 40 KB per message: a clear
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
        (response,) = list(stub.AppendStream(iter([stream_request(0, envelope)])))
    (answer,) = response.outcomes
    assert answer.sequence == 0
    assert answer.refusal.code == unary.code().value[0]
    assert answer.refusal.reason == "IDENTITY_MISMATCH"
    assert answer.refusal.message == unary.details()


def test_an_entry_whose_receipt_could_not_be_sent_is_refused(
    node: NodeThread, connect: Connections
) -> None:
    """An entry the node could take but never send back (in its receipt, to followers)
    would break every mirror that reaches it: refused at the door instead."""
    huge = sign_envelope(EVENT_PAYLOAD_TYPE, bytes(30_000), [partner_signer(LUALABA)])
    with unchanged(node):
        refused(
            lambda: connect(LUALABA).ledger.Append(append_request(huge, [LUALABA])),
            grpc.StatusCode.INVALID_ARGUMENT,
            "ENTRY_TOO_LARGE",
        )


def test_a_node_whose_messages_cannot_carry_an_entry_is_not_configured(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("[limits]\nmax_message_bytes = 20000\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="at least"):
        load_config(path, {}, insecure_dev=True)


def test_idle_streams_end_promptly_and_say_why_when_the_node_stops(
    pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A Follow waiting for news and an AppendStream waiting for its client's next entry
    both end as soon as the node begins to stop, UNAVAILABLE with a reason, not after
    the whole grace period and not with a quiet OK a mirror would take for the end."""
    ledger = new_ledger(tmp_path_factory.mktemp("idle"))
    thread = NodeThread(node_config(ledger, pki))
    errors: dict[str, grpc.RpcError] = {}
    followed: list[int] = []  # the indices the follower received
    answered: list[ledger_service_pb2.StreamOutcome] = []  # the appender's outcomes
    idle = threading.Event()

    def follow(stub: ledger_service_pb2_grpc.LedgerServiceStub) -> None:
        try:
            for response in stub.Follow(ledger_service_pb2.FollowRequest(start_index=0)):
                followed.extend(entry.index for entry in response.entries)
        except grpc.RpcError as exc:
            errors["follow"] = exc

    def append_then_wait() -> Iterator[ledger_service_pb2.AppendStreamRequest]:
        yield stream_request(0, lualaba_extraction())
        idle.wait(30)  # the client has nothing more to send for now

    def append(stub: ledger_service_pb2_grpc.LedgerServiceStub) -> None:
        try:
            for response in stub.AppendStream(append_then_wait()):
                answered.extend(response.outcomes)
        except grpc.RpcError as exc:
            errors["append"] = exc

    def open_streams(method: str) -> float | None:
        return thread.node.metrics.registry.get_sample_value(
            "custody_open_streams", {"method": method}
        )

    def both_idle() -> bool:
        """The appender has its one answer, the follower every entry (that one too), and
        both streams are still open: each waits for what comes next."""
        return (
            len(answered) == 1
            and followed == list(range(SAMPLE_SIZE + 1))
            and open_streams("Follow") == open_streams("AppendStream") == 1
        )

    with Connections(thread, pki) as connections:
        clients = [
            threading.Thread(target=follow, args=(connections("baltic-cells").ledger,)),
            threading.Thread(target=append, args=(connections(LUALABA).ledger,)),
        ]
        for client in clients:
            client.start()
        try:
            wait_for(both_idle)
            started = time.monotonic()
            thread.stop(grace=20)
            stopped_in = time.monotonic() - started
        finally:
            idle.set()
            for client in clients:
                client.join(30)
    assert stopped_in < 10  # not the 20 s grace
    assert answered[0].WhichOneof("outcome") == "receipt", answered[0].refusal
    for name in ("follow", "append"):
        assert refusal(errors[name]) == (grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE"), name
        assert "shutting down" in (errors[name].details() or ""), name
