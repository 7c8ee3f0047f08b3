"""No request, however malformed, makes the node fail (INTERNAL, UNKNOWN) or write anything.

Requests go out as raw bytes through identity serializers, so they can be
anything: random bytes, valid messages cut short or spliced with garbage, and
well-formed messages whose fields hold hostile values (unknown payload types,
empty, garbage or 1 MiB payloads, bad keyids, 63-byte signatures, public keys
of the wrong length, indices near 2^64-1, tree size 0). Entries that are
validly signed by a partner but submitted by another one reach the payload
parser and shape checks yet can never be admitted. After every call the
stored log must be exactly as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import cast

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from clients.sample.consortium import (
    ADMINISTRATORS,
    BALTIC,
    FINAL_LOT_ID,
    KOKKOLA_REFINERY,
    LCC_PIT,
    LUALABA,
    MERIDIAN,
    SAMPLE_PARTNERS,
    partner_signer,
)
from custody.v1 import (
    envelope_pb2,
    event_pb2,
    governance_pb2,
    ledger_service_pb2,
    provenance_service_pb2,
    registry_service_pb2,
)
from ledger.domain.records import EVENT_PAYLOAD_TYPE, GOVERNANCE_PAYLOAD_TYPE
from ledger.note import VerifierKey
from ledger.wire import REQUEST_ID_METADATA
from tests.services.node_support import NodeThread
from tests.services.rpc_support import (
    Code,
    Connections,
    log_state,
    lualaba_extraction,
    raw_unary,
    refusal,
    refused,
    stream_message,
    stream_outcomes,
    stream_request,
    unchanged,
    verified,
)

# Codes a refusal of a client's request may carry; never INTERNAL or UNKNOWN.
CLIENT_CODES = {
    Code.INVALID_ARGUMENT,
    Code.NOT_FOUND,
    Code.OUT_OF_RANGE,
    Code.PERMISSION_DENIED,
    Code.FAILED_PRECONDITION,
    Code.ALREADY_EXISTS,
}
CODES = {code.value[0]: code for code in Code}
PARTNER_IDS = [partner.partner_id for partner in SAMPLE_PARTNERS]
MAX_MESSAGE_BYTES = 4 << 20
NODE_LIMITS = {"max_message_bytes": MAX_MESSAGE_BYTES}
HUGE = bytes((1 << 20) + 1)


def raw_server_stream(channel: grpc.Channel, method: str) -> Callable[[bytes], bytes]:
    call: grpc.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
        method, request_serializer=None, response_deserializer=None
    )

    def send(request: bytes) -> bytes:
        return b"".join(call(request, timeout=20))

    return send


def assert_handled(send: Callable[[bytes], object], request: bytes) -> Code:
    """The call succeeds or is refused with a client-side code and exactly one ErrorInfo."""
    try:
        send(request)
    except grpc.RpcError as error:
        code, reason = refusal(error)
    else:
        code, reason = Code.OK, ""
    assert code in {Code.OK, *CLIENT_CODES}, (code, reason)
    event(f"{code.name} {reason}")
    return code


# --- strategies --------------------------------------------------------------------------

U64_EDGES = [0, 1, 2, 54, 55, 56, (1 << 31) - 1, 1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 2]
u64 = st.one_of(st.sampled_from([*U64_EDGES, (1 << 64) - 1]), st.integers(0, (1 << 64) - 1))
maybe_u64 = st.one_of(st.none(), u64)
i64 = st.one_of(
    st.sampled_from([0, -1, 1, -(1 << 63), (1 << 63) - 1]), st.integers(-(1 << 63), (1 << 63) - 1)
)
identifiers = st.one_of(
    st.sampled_from(
        [
            "",
            FINAL_LOT_ID,
            LUALABA,
            KOKKOLA_REFINERY,
            "x" * 10_000,
            "../../etc/passwd",
            "\x00",
            "lot:" + FINAL_LOT_ID,
            "' OR 1=1 --",
        ]
    ),
    st.text(max_size=200),
)
PAYLOAD_TYPES = [EVENT_PAYLOAD_TYPE, GOVERNANCE_PAYLOAD_TYPE]
payload_types = st.one_of(
    st.sampled_from(
        [*PAYLOAD_TYPES, "application/json", EVENT_PAYLOAD_TYPE + " ", "é" * 40, "x" * 5000]
    ),
    st.text(max_size=60),
)
payloads = st.one_of(
    st.sampled_from([b"", b"\x00", HUGE, bytes(1 << 20)]),
    st.binary(max_size=300),
)
keyids = st.one_of(
    st.sampled_from([partner_signer(p).keyid for p in (LUALABA, MERIDIAN, BALTIC)]),
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    st.sampled_from(
        [
            partner_signer(LUALABA).keyid.upper(),
            partner_signer(LUALABA).keyid[:63],
            partner_signer(LUALABA).keyid + "0",
            "",
        ]
    ),
    st.text(alphabet="0123456789abcdefABCDEFg", max_size=70),
)
signatures = st.one_of(
    st.binary(min_size=64, max_size=64),
    st.sampled_from([bytes(63), bytes(65), b""]),
    st.binary(max_size=70),
)
public_keys = st.one_of(
    st.sampled_from([bytes(31), bytes(32), bytes(33), b"", partner_signer(LUALABA).public_key]),
    st.binary(max_size=40),
)


@st.composite
def envelopes(draw: st.DrawFn) -> envelope_pb2.Envelope:
    return envelope_pb2.Envelope(
        payload_type=draw(payload_types),
        payload=draw(payloads),
        signatures=[
            envelope_pb2.Signature(keyid=draw(keyids), sig=draw(signatures))
            for _ in range(draw(st.one_of(st.integers(0, 3), st.integers(0, 18))))
        ],
    )


def _field(number: int, body: bytes) -> bytes:
    """A length-delimited protobuf field, written by hand."""
    out = bytearray()
    for value in ((number << 3) | 2, len(body)):
        rest = value
        while rest >= 0x80:
            out.append((rest & 0x7F) | 0x80)
            rest >>= 7
        out.append(rest)
    return bytes(out) + body


# Ids that pass the shape checks (printable ASCII, 1-128 characters) and some that do not.
ids = st.one_of(
    st.sampled_from([FINAL_LOT_ID, LUALABA, "urn:uuid:0", "a" * 128, "a" * 129]), identifiers
)


VALID_IDS = st.uuids().map(lambda u: f"urn:uuid:{u}")
MOSTLY_VALID_IDS = st.one_of(VALID_IDS, VALID_IDS, VALID_IDS, ids)  # 3 in 4 valid
MOSTLY_POSITIVE = st.one_of(st.integers(1, 10**12), i64)
EXTRACTION_BODIES = st.builds(
    lambda lot, mass, element, ppm: event_pb2.Extraction(
        facility_id=LCC_PIT,
        lot_id=lot,
        material="cobalt hydroxide",
        mass_grams=mass,
        contents=[event_pb2.ElementContent(element=element, ppm=ppm)],
    ).SerializeToString(),
    MOSTLY_VALID_IDS,
    MOSTLY_POSITIVE,
    st.sampled_from(["Co", "Ni", "", "co", "Xx"]),
    st.integers(0, (1 << 32) - 1),
)
TRANSFORMATION_BODIES = st.builds(
    lambda lot, consumed, mass: event_pb2.Transformation(
        facility_id=KOKKOLA_REFINERY,
        process=event_pb2.PROCESS_SPLIT,
        inputs=[event_pb2.TransformationInput(lot_id=lot, consumed_mass_grams=consumed)],
        outputs=[event_pb2.TransformationOutput(lot_id=lot, mass_grams=mass)],
    ).SerializeToString(),
    MOSTLY_VALID_IDS,
    MOSTLY_POSITIVE,
    MOSTLY_POSITIVE,
)


@st.composite
def event_payloads(draw: st.DrawFn) -> bytes:
    """An Event whose body is a hostile sub-message: mostly in its own field with a valid
    event time, so that its masses, contents and ids reach the body checks and the
    rules; else in any field (10-17, or any other), with any time."""
    event = event_pb2.Event(
        event_id=draw(MOSTLY_VALID_IDS), partner_id=draw(st.sampled_from(PARTNER_IDS))
    )
    event.event_time.seconds = draw(
        st.one_of(st.integers(1_600_000_000, 1_900_000_000), st.integers(-(1 << 40), 1 << 40))
    )
    field, body = draw(
        st.one_of(
            st.tuples(st.just(10), EXTRACTION_BODIES),
            st.tuples(st.just(14), TRANSFORMATION_BODIES),
            st.tuples(
                st.one_of(st.integers(10, 17), st.integers(1, 30)),
                st.one_of(st.binary(max_size=120), EXTRACTION_BODIES, TRANSFORMATION_BODIES),
            ),
        )
    )
    return event.SerializeToString() + _field(field, body)


@st.composite
def governance_payloads(draw: st.DrawFn) -> bytes:
    """A key revocation with hostile fields, or random bytes."""
    revocation = governance_pb2.Governance(
        action_id=draw(ids),
        key_revocation=governance_pb2.KeyRevocation(
            partner_id=draw(st.one_of(st.sampled_from(PARTNER_IDS), identifiers)),
            keyid=draw(keyids),
            reason=draw(st.text(max_size=20)),
        ),
    )
    return draw(st.one_of(st.just(revocation.SerializeToString()), st.binary(max_size=200)))


@st.composite
def misdirected_appends(draw: st.DrawFn) -> tuple[str, bytes]:
    """(caller, request): a validly signed hostile payload submitted by someone else.

    The payload reaches the parser and the shape checks; the caller check then
    refuses it at the latest, so none of these can ever be admitted.
    """
    payload_type = draw(st.sampled_from(PAYLOAD_TYPES))
    if payload_type == EVENT_PAYLOAD_TYPE:
        payload = draw(st.one_of(event_payloads(), event_payloads(), st.binary(max_size=200)))
        signer_ids = [draw(st.sampled_from(PARTNER_IDS))]
    else:
        payload = draw(governance_payloads())
        signer_ids = list(ADMINISTRATORS)
    caller = draw(st.sampled_from([p for p in PARTNER_IDS if p not in signer_ids]))
    signers = [partner_signer(p) for p in signer_ids]
    message = envelope_pb2.Envelope(
        payload_type=payload_type,
        payload=payload,
        signatures=[
            envelope_pb2.Signature(keyid=s.keyid, sig=s.sign(payload_type, payload).sig)
            for s in signers
        ],
    )
    request = ledger_service_pb2.AppendRequest(
        envelope=message,
        public_keys=[s.public_key for s in signers] if draw(st.booleans()) else [],
    )
    return caller, request.SerializeToString()


def append_requests() -> st.SearchStrategy[Message]:
    return st.builds(
        lambda envelope, keys, has_envelope: ledger_service_pb2.AppendRequest(
            envelope=envelope if has_envelope else None, public_keys=keys
        ),
        envelopes(),
        st.one_of(st.lists(public_keys, max_size=3), st.lists(public_keys, max_size=18)),
        st.sampled_from([True, True, True, False]),
    )


def _optional(message: Message, name: str, value: int | None) -> Message:
    if value is not None:
        setattr(message, name, value)
    return message


REQUESTS: dict[str, st.SearchStrategy[Message]] = {
    "/custody.v1.LedgerService/Append": append_requests(),
    "/custody.v1.LedgerService/GetCheckpoint": maybe_u64.map(
        lambda size: _optional(ledger_service_pb2.GetCheckpointRequest(), "tree_size", size)
    ),
    "/custody.v1.LedgerService/GetEntry": u64.map(
        lambda index: ledger_service_pb2.GetEntryRequest(index=index)
    ),
    "/custody.v1.LedgerService/GetInclusionProof": st.builds(
        lambda index, size: _optional(
            ledger_service_pb2.GetInclusionProofRequest(index=index), "tree_size", size
        ),
        u64,
        maybe_u64,
    ),
    "/custody.v1.LedgerService/GetConsistencyProof": st.builds(
        lambda old, new: _optional(
            ledger_service_pb2.GetConsistencyProofRequest(old_size=old), "new_size", new
        ),
        u64,
        maybe_u64,
    ),
    "/custody.v1.LedgerService/GetEntries": st.builds(
        lambda start, end: ledger_service_pb2.GetEntriesRequest(start=start, end=end), u64, u64
    ),
    "/custody.v1.RegistryService/GetRegistry": maybe_u64.map(
        lambda size: _optional(registry_service_pb2.GetRegistryRequest(), "tree_size", size)
    ),
    "/custody.v1.RegistryService/GetPartner": st.builds(
        lambda partner, size: _optional(
            registry_service_pb2.GetPartnerRequest(partner_id=partner), "tree_size", size
        ),
        identifiers,
        maybe_u64,
    ),
    "/custody.v1.RegistryService/GetFacility": st.builds(
        lambda facility, size: _optional(
            registry_service_pb2.GetFacilityRequest(facility_id=facility), "tree_size", size
        ),
        identifiers,
        maybe_u64,
    ),
    "/custody.v1.ProvenanceService/GetLot": identifiers.map(
        lambda lot: provenance_service_pb2.GetLotRequest(lot_id=lot)
    ),
    "/custody.v1.ProvenanceService/Trace": identifiers.map(
        lambda lot: provenance_service_pb2.TraceRequest(lot_id=lot)
    ),
}
SERVER_STREAMING = {"/custody.v1.LedgerService/GetEntries"}


def garbled(messages: st.SearchStrategy[Message]) -> st.SearchStrategy[bytes]:
    """Random bytes, a message's bytes, or those bytes cut short or spliced with garbage."""
    serialised = messages.map(lambda message: message.SerializeToString())
    return st.one_of(
        serialised,
        st.binary(max_size=120),
        serialised,
        st.builds(lambda data, cut: data[:cut], serialised, st.integers(0, 40)),
        st.builds(
            lambda data, at, junk: data[:at] + junk + data[at:],
            serialised,
            st.integers(0, 40),
            st.binary(min_size=1, max_size=12),
        ),
    )


HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("method", sorted(REQUESTS))
@HYPOTHESIS
@given(data=st.data())
def test_no_request_fails_the_node_or_writes(
    node: NodeThread, connect: Connections, method: str, data: st.DataObject
) -> None:
    request = data.draw(garbled(REQUESTS[method]), label="request")
    caller = data.draw(st.sampled_from([MERIDIAN, BALTIC, LUALABA]), label="caller")
    channel = connect(caller).channel
    send = (raw_server_stream if method in SERVER_STREAMING else raw_unary)(channel, method)
    with unchanged(node):
        assert_handled(send, request)


@HYPOTHESIS
@given(appended=misdirected_appends())
def test_validly_signed_hostile_payloads_are_refused(
    node: NodeThread, connect: Connections, appended: tuple[str, bytes]
) -> None:
    caller, request = appended
    send = raw_unary(connect(caller).channel, "/custody.v1.LedgerService/Append")
    with unchanged(node):
        code = assert_handled(send, request)
    assert code in (Code.INVALID_ARGUMENT, Code.PERMISSION_DENIED)


@pytest.mark.parametrize(
    "method",
    [
        *sorted(REQUESTS),
        "/custody.v1.LedgerService/Follow",
        "/grpc.health.v1.Health/Check",
    ],
)
def test_undecodable_bytes_are_invalid_argument(
    node: NodeThread, connect: Connections, method: str
) -> None:
    """\\xff is a field tag with a reserved wire type: no message parses from it."""
    channel = connect(MERIDIAN).channel
    streaming = method in SERVER_STREAMING or method.endswith("/Follow")
    send = (raw_server_stream if streaming else raw_unary)(channel, method)
    with unchanged(node):
        refused(lambda: send(b"\xff\xff\xff"), Code.INVALID_ARGUMENT, "MALFORMED")


# --- AppendStream ----------------------------------------------------------------------


def packed(
    entries: list[ledger_service_pb2.StreamEntry], per_message: int, empty_between: bool
) -> list[ledger_service_pb2.AppendStreamRequest]:
    """The entries in messages of at most ``per_message`` entries, each message within the
    node's size limit (a message over it would end the whole stream), with an empty
    message after each one when ``empty_between``."""
    budget = MAX_MESSAGE_BYTES - (64 << 10)
    messages: list[ledger_service_pb2.AppendStreamRequest] = []
    current: list[ledger_service_pb2.StreamEntry] = []
    size = 0
    for entry in entries:
        if current and (len(current) == per_message or size + entry.ByteSize() + 8 > budget):
            messages.append(ledger_service_pb2.AppendStreamRequest(entries=current))
            current, size = [], 0
        current.append(entry)
        size += entry.ByteSize() + 8
    messages.append(ledger_service_pb2.AppendStreamRequest(entries=current))
    if empty_between:
        messages = [m for message in messages for m in (message, stream_message([]))]
    return messages


@HYPOTHESIS
@given(
    entries=st.lists(
        st.tuples(st.integers(0, (1 << 64) - 1), append_requests()), min_size=1, max_size=12
    ),
    per_message=st.sampled_from([1, 1, 3, 12]),
    empty_between=st.booleans(),
)
def test_append_stream_refuses_garbage_entries_one_by_one(
    node: NodeThread,
    connect: Connections,
    entries: list[tuple[int, ledger_service_pb2.AppendRequest]],
    per_message: int,
    empty_between: bool,
) -> None:
    """Garbage entries, one or several per message: each is refused in-band on its own."""
    stream_entries = [
        ledger_service_pb2.StreamEntry(
            sequence=sequence,
            envelope=request.envelope if request.HasField("envelope") else None,
            public_keys=request.public_keys,
        )
        for sequence, request in entries
    ]
    requests = packed(stream_entries, per_message, empty_between)
    assert [e for r in requests for e in r.entries] == stream_entries
    with unchanged(node):
        responses = list(connect(BALTIC).ledger.AppendStream(iter(requests), timeout=30))
    outcomes = stream_outcomes(responses)
    assert all(response.outcomes for response in responses)
    assert sorted(o.sequence for o in outcomes) == sorted(s for s, _ in entries)
    for outcome in outcomes:
        assert outcome.WhichOneof("outcome") == "refusal"
        assert CODES[outcome.refusal.code] in CLIENT_CODES, outcome.refusal
        assert outcome.refusal.reason


def test_append_stream_with_undecodable_messages_is_invalid_argument(
    node: NodeThread, connect: Connections, log_key: VerifierKey
) -> None:
    """A valid entry (answered with its receipt), then bytes that parse as no message: the
    stream is refused as a whole (that message's sequence number cannot be read) and
    the entry before it stays logged, whole."""
    before = log_state(node)
    call: grpc.StreamStreamMultiCallable[bytes, bytes] = connect(LUALABA).channel.stream_stream(
        "/custody.v1.LedgerService/AppendStream",
        request_serializer=None,
        response_deserializer=None,
    )
    envelope = lualaba_extraction()
    answered = threading.Event()

    def requests() -> Iterator[bytes]:
        yield stream_request(1, envelope).SerializeToString()
        answered.wait(10)
        yield b"\xff\xff\xff"

    responses: list[ledger_service_pb2.AppendStreamResponse] = []

    def read_answers() -> None:
        metadata = ((REQUEST_ID_METADATA, "req-undecodable"),)
        for raw in call(requests(), timeout=30, metadata=metadata):
            responses.append(ledger_service_pb2.AppendStreamResponse.FromString(raw))
            answered.set()

    error = refused(read_answers, Code.INVALID_ARGUMENT, "MALFORMED")
    # The refusal names the stream's request id, as every other refusal does.
    trailers = cast(grpc.Call, error).trailing_metadata() or ()
    assert (REQUEST_ID_METADATA, "req-undecodable") in trailers
    (response,) = responses
    (outcome,) = response.outcomes
    assert outcome.sequence == 1
    verified(outcome.receipt, envelope, log_key)
    after = log_state(node)
    assert after.tree_size == before.tree_size + 1
    assert node.node.store.leaf(before.tree_size).leaf_bytes == outcome.receipt.leaf


# --- size limit ------------------------------------------------------------------------


def test_a_message_over_the_size_limit_is_resource_exhausted(
    node: NodeThread, connect: Connections
) -> None:
    stub = connect(LUALABA).ledger
    oversized = ledger_service_pb2.AppendRequest(public_keys=[bytes(MAX_MESSAGE_BYTES)])
    stream = stream_message(
        [ledger_service_pb2.StreamEntry(sequence=1, public_keys=[bytes(MAX_MESSAGE_BYTES)])]
    )
    # Just under the limit is read (and refused for what it is, not for its size).
    under = ledger_service_pb2.AppendRequest(public_keys=[bytes(MAX_MESSAGE_BYTES - 1024)])
    with unchanged(node):
        refused(lambda: stub.Append(oversized, timeout=30), Code.RESOURCE_EXHAUSTED, None)
        refused(
            lambda: list(stub.AppendStream(iter([stream]), timeout=30)),
            Code.RESOURCE_EXHAUSTED,
            None,
        )
        refused(lambda: stub.Append(under, timeout=30), Code.INVALID_ARGUMENT, "MALFORMED_ENVELOPE")
