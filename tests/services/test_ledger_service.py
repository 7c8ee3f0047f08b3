"""``custody.v1.LedgerService`` end to end over mutual TLS: appends, receipts, reads, proofs,
Follow, shutdown and deadlines.

The module's node serves the sample ledger plus 250 extractions appended
locally beforehand (305 leaves: more than one GetEntries chunk of 256).
Tests that stop a node or need other limits run one of their own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterator

import grpc
import pytest
from google.protobuf.message import Message

from clients.sample.consortium import (
    BALTIC,
    FINAL_LOT_ID,
    KOKKOLA,
    LCC_PIT,
    LOT_CATHODE,
    LOT_LCC_HYDROXIDE,
    LUALABA,
    MERIDIAN,
    SKELLEFTEA_PLANT,
    element_contents,
    partner_signer,
    sample_entries,
)
from custody.v1 import (
    event_pb2,
    ledger_service_pb2,
    ledger_service_pb2_grpc,
    log_pb2,
    provenance_service_pb2,
)
from ledger import merkle
from ledger.checkpoint import open_checkpoint
from ledger.domain.records import EVENT_PAYLOAD_TYPE, PartnerKey
from ledger.dsse import Envelope, Signature, keyid_for, sign_envelope
from ledger.errors import InclusionProofError, StorageError, VerificationError
from ledger.leaf import decode_leaf, envelope_to_proto
from ledger.log_verifier import verify_log
from ledger.note import VerifierKey
from ledger.storage import LogStore
from ledger.storage.domain_store import DomainView
from ledger.storage.log_store import LogView
from ledger.wire import ALREADY_LOGGED, consistency_from_proto, inclusion_from_proto
from tests.services.node_support import (
    NodeThread,
    Pki,
    make_ledger,
    node_config,
    running_node,
)
from tests.services.rpc_support import (
    SAMPLE_SIZE,
    Code,
    Connections,
    append_request,
    error_infos,
    event,
    extraction,
    log_state,
    log_verifier_key,
    lualaba_extraction,
    new_id,
    new_ledger,
    outcomes_by_sequence,
    refusal,
    refused,
    signed,
    signed_event,
    status_of,
    stream_entry,
    stream_message,
    stream_outcomes,
    stream_request,
    unchanged,
    verified,
    wait_for,
)

PREFILL = 250


def _sample_event_id(partner_id: str) -> str:
    """The event id of the first sample event ``partner_id`` recorded."""
    entry = next(e for e in sample_entries() if e.signer_ids == (partner_id,))
    return event_pb2.Event.FromString(entry.submission.envelope.payload).event_id


# --- Append ----------------------------------------------------------------------------


@pytest.mark.parametrize("with_keys", [True, False], ids=["keys-sent", "keys-from-registry"])
def test_append_answers_with_a_receipt_that_verifies(
    node: NodeThread, connect: Connections, log_key: VerifierKey, with_keys: bool
) -> None:
    envelope = lualaba_extraction()
    before = log_state(node)
    response = connect(LUALABA).ledger.Append(
        append_request(envelope, [LUALABA], with_keys=with_keys)
    )
    receipt = verified(response.receipt, envelope, log_key)
    assert receipt.receipt.index == before.tree_size
    assert receipt.leaf.envelope == envelope
    assert receipt.checkpoint.checkpoint.size == before.tree_size + 1
    after = log_state(node)
    assert after.tree_size == before.tree_size + 1
    assert after.checkpoint == response.receipt.checkpoint
    assert node.node.store.leaf(receipt.receipt.index).leaf_bytes == response.receipt.leaf


def test_each_commit_is_counted_with_its_entries(node: NodeThread, connect: Connections) -> None:
    """custody_batch_entries counts the entries of each commit, whichever process
    sequences; an entry refused by the envelope rules never reaches one."""
    registry = node.node.metrics.registry

    def committed() -> tuple[float, float]:
        count = registry.get_sample_value("custody_batch_entries_count") or 0.0
        return count, registry.get_sample_value("custody_batch_entries_sum") or 0.0

    before = committed()
    ledger = connect(LUALABA).ledger
    ledger.Append(append_request(lualaba_extraction(), [LUALABA]))
    unsigned = Envelope(EVENT_PAYLOAD_TYPE, b"", ())
    refused(
        lambda: ledger.Append(append_request(unsigned)), Code.INVALID_ARGUMENT, "UNSIGNED_ENTRY"
    )
    assert committed() == (before[0] + 1, before[1] + 1)


def test_a_tampered_receipt_does_not_verify(connect: Connections, log_key: VerifierKey) -> None:
    """The control of the test above: verification is not vacuous."""
    envelope = lualaba_extraction()
    response = connect(LUALABA).ledger.Append(append_request(envelope, [LUALABA]))
    other = lualaba_extraction()
    with pytest.raises(VerificationError, match="does not carry the submitted entry") as caught:
        verified(response.receipt, other, log_key)
    assert type(caught.value) is VerificationError
    response.receipt.inclusion_proof.hashes[0] = bytes(32)
    with pytest.raises(InclusionProofError, match="does not lead to the expected root"):
        verified(response.receipt, envelope, log_key)


def test_resubmitting_an_entry_is_already_exists_with_the_original_receipt(
    node: NodeThread, connect: Connections, log_key: VerifierKey
) -> None:
    envelope = lualaba_extraction()
    stub = connect(LUALABA).ledger
    original = stub.Append(append_request(envelope, [LUALABA])).receipt
    stub.Append(append_request(lualaba_extraction(), [LUALABA]))  # the log moves on
    with unchanged(node):
        error = refused(
            lambda: stub.Append(append_request(envelope, [LUALABA], with_keys=False)),
            Code.ALREADY_EXISTS,
            ALREADY_LOGGED,
        )
    (info,) = error_infos(error)
    assert dict(info.metadata) == {"index": str(original.index)}
    status = status_of(error)
    assert status is not None
    assert len(status.details) == 2
    attached = log_pb2.AppendReceipt()
    assert status.details[1].Unpack(attached)
    receipt = verified(attached, envelope, log_key)
    assert receipt.receipt.index == original.index
    assert attached.leaf == original.leaf
    # The proof is against the current checkpoint, which includes the entry.
    assert receipt.checkpoint.checkpoint.size == original.index + 2 == log_state(node).tree_size


def _split_of_the_cathode(consumed: int, output_ppm: int) -> event_pb2.Transformation:
    return event_pb2.Transformation(
        facility_id=SKELLEFTEA_PLANT,
        process=event_pb2.PROCESS_SPLIT,
        inputs=[event_pb2.TransformationInput(lot_id=LOT_CATHODE, consumed_mass_grams=consumed)],
        outputs=[
            event_pb2.TransformationOutput(
                lot_id=new_id("lot"),
                material="NCA cathode active material, part",
                mass_grams=consumed,
                contents=element_contents(Co=output_ppm),
            )
        ],
    )


STATE_RULES: dict[str, tuple[str, Callable[[], Message]]] = {
    # Baltic holds FINAL_LOT_ID; Meridian may dispatch (trader) but does not hold it.
    "LOT_NOT_HELD": (
        MERIDIAN,
        lambda: event_pb2.Dispatch(
            lot_id=FINAL_LOT_ID, to_partner_id=BALTIC, mass_grams=66_000_000, transport="road"
        ),
    ),
    # 38,000,000 g of the cathode material are left at Baltic.
    "INSUFFICIENT_QUANTITY": (BALTIC, lambda: _split_of_the_cathode(38_000_001, 92_000)),
    "MASS_BALANCE_EXCEEDED": (BALTIC, lambda: _split_of_the_cathode(1_000_000, 92_001)),
    "UNKNOWN_LOT": (
        MERIDIAN,
        lambda: event_pb2.Dispatch(
            lot_id="NO-SUCH-LOT", to_partner_id=BALTIC, mass_grams=1, transport="road"
        ),
    ),
    "LOT_EXISTS": (LUALABA, lambda: extraction(LOT_LCC_HYDROXIDE)),
}


@pytest.mark.parametrize("reason", sorted(STATE_RULES))
def test_a_state_rule_is_failed_precondition_with_its_reason(
    node: NodeThread, connect: Connections, reason: str
) -> None:
    partner, body = STATE_RULES[reason]
    envelope = signed_event(partner, body())
    with unchanged(node):
        refused(
            lambda: connect(partner).ledger.Append(append_request(envelope, [partner])),
            Code.FAILED_PRECONDITION,
            reason,
        )


def test_a_duplicate_event_id_is_failed_precondition(
    node: NodeThread, connect: Connections
) -> None:
    """A different entry (another lot) reusing the id of Lualaba's logged extraction."""
    envelope = signed_event(LUALABA, extraction(), event_id=_sample_event_id(LUALABA))
    with unchanged(node):
        refused(
            lambda: connect(LUALABA).ledger.Append(append_request(envelope, [LUALABA])),
            Code.FAILED_PRECONDITION,
            "DUPLICATE_EVENT_ID",
        )


def _bad_signature() -> Envelope:
    good = lualaba_extraction()
    return Envelope(good.payload_type, good.payload + b"\x00", good.signatures)


def _envelope_request(envelope: Envelope) -> ledger_service_pb2.AppendRequest:
    return append_request(envelope, [LUALABA])


INVALID_REQUESTS: dict[str, Callable[[], ledger_service_pb2.AppendRequest]] = {
    "MALFORMED_ENVELOPE": ledger_service_pb2.AppendRequest,
    "MALFORMED_KEY": lambda: ledger_service_pb2.AppendRequest(
        envelope=envelope_to_proto(lualaba_extraction()), public_keys=[bytes(31)]
    ),
    "UNSIGNED_ENTRY": lambda: _envelope_request(
        Envelope(EVENT_PAYLOAD_TYPE, event(LUALABA, extraction()).SerializeToString(), ())
    ),
    "BAD_SIGNATURE": lambda: _envelope_request(_bad_signature()),
    "UNKNOWN_KEY": lambda: ledger_service_pb2.AppendRequest(
        envelope=envelope_to_proto(
            Envelope(
                EVENT_PAYLOAD_TYPE,
                b"payload",
                (Signature(keyid="ab" * 32, sig=bytes(64)),),
            )
        )
    ),
    "UNKNOWN_PAYLOAD_TYPE": lambda: _envelope_request(
        sign_envelope("application/json", b"{}", [partner_signer(LUALABA)])
    ),
    "INVALID_PAYLOAD": lambda: _envelope_request(signed_event(LUALABA, extraction(mass_grams=0))),
    "ENTRY_TOO_LARGE": lambda: _envelope_request(
        sign_envelope(EVENT_PAYLOAD_TYPE, bytes((1 << 20) + 1), [partner_signer(LUALABA)])
    ),
}


@pytest.mark.parametrize("reason", sorted(INVALID_REQUESTS))
def test_a_request_wrong_in_itself_is_invalid_argument(
    node: NodeThread, connect: Connections, reason: str
) -> None:
    request = INVALID_REQUESTS[reason]()
    with unchanged(node):
        refused(lambda: connect(LUALABA).ledger.Append(request), Code.INVALID_ARGUMENT, reason)


# --- AppendStream ----------------------------------------------------------------------


def _dispatch_not_held() -> Envelope:
    body = event_pb2.Dispatch(
        lot_id=FINAL_LOT_ID, to_partner_id=MERIDIAN, mass_grams=66_000_000, transport="road"
    )
    return signed_event(LUALABA, body)


def test_append_stream_answers_every_entry_once(
    node: NodeThread, connect: Connections, log_key: VerifierKey
) -> None:
    """300 valid extractions, refusals of several kinds and duplicates on one stream."""
    valid = {sequence: lualaba_extraction() for sequence in range(300)}
    already_logged = next(e for e in sample_entries() if e.signer_ids == (LUALABA,))
    expected_refusals: dict[int, tuple[int, str, Envelope]] = {
        1000: (Code.FAILED_PRECONDITION.value[0], "LOT_NOT_HELD", _dispatch_not_held()),
        1001: (
            Code.PERMISSION_DENIED.value[0],
            "IDENTITY_MISMATCH",
            signed_event(MERIDIAN, extraction()),
        ),
        1002: (
            Code.INVALID_ARGUMENT.value[0],
            "INVALID_PAYLOAD",
            signed_event(LUALABA, extraction(mass_grams=-5)),
        ),
        1003: (
            Code.INVALID_ARGUMENT.value[0],
            "BAD_SIGNATURE",
            _bad_signature(),
        ),
        1004: (
            Code.ALREADY_EXISTS.value[0],
            ALREADY_LOGGED,
            already_logged.submission.envelope,
        ),
    }
    requests = [stream_request(sequence, envelope) for sequence, envelope in valid.items()]
    for position, (sequence, (_, _, envelope)) in enumerate(expected_refusals.items()):
        requests.insert(60 * (position + 1), stream_request(sequence, envelope))
    # The same entry twice on the stream: one receipt, one ALREADY_EXISTS with that index.
    requests.append(stream_request(2000, valid[7]))
    before = log_state(node)

    responses = list(connect(LUALABA).ledger.AppendStream(iter(requests), timeout=60))

    outcomes = stream_outcomes(responses)
    by_sequence = outcomes_by_sequence(outcomes)
    sent = [entry.sequence for request in requests for entry in request.entries]
    assert len(outcomes) == len(requests) == len(sent) == len(by_sequence)
    assert set(by_sequence) == set(sent)
    indices = []
    for sequence, envelope in valid.items():
        outcome = by_sequence[sequence]
        assert outcome.WhichOneof("outcome") == "receipt", outcome.refusal
        indices.append(verified(outcome.receipt, envelope, log_key).receipt.index)
    assert sorted(indices) == list(range(before.tree_size, before.tree_size + 300))
    for sequence, (code, reason, envelope) in expected_refusals.items():
        refusal = by_sequence[sequence].refusal
        assert (refusal.code, refusal.reason) == (code, reason), refusal.message
        assert refusal.message
        if reason == ALREADY_LOGGED:
            original = verified(refusal.original_receipt, envelope, log_key)
            assert original.receipt.index < SAMPLE_SIZE
        else:
            assert not refusal.HasField("original_receipt")
    again = by_sequence[2000].refusal
    assert (again.code, again.reason) == (Code.ALREADY_EXISTS.value[0], ALREADY_LOGGED)
    assert again.original_receipt.index == by_sequence[7].receipt.index
    assert log_state(node).tree_size == before.tree_size + 300


def assert_batched_in_tens(node: NodeThread, count: int) -> None:
    """A fresh node (the sample was appended before it started) committed exactly
    ``count`` entries, in batches of at most 8 (the window) and so at most 10."""
    registry = node.node.metrics.registry
    batches = registry.get_sample_value("custody_batch_entries_count")
    at_most_10 = registry.get_sample_value("custody_batch_entries_bucket", {"le": "10.0"})
    assert batches is not None
    assert batches >= count / 8
    assert at_most_10 == batches
    assert registry.get_sample_value("custody_batch_entries_sum") == count


def test_append_stream_with_a_small_window_completes(
    pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """max_in_flight_per_stream=8: the node reads at most 8 entries ahead of their
    outcomes, so a lone client's 400 entries, sent as fast as it can, are committed in
    batches of at most 8 (at least 50 of them), and the stream still completes."""
    ledger = new_ledger(tmp_path_factory.mktemp("window"))
    log_key = log_verifier_key(ledger)
    count = 400
    with running_node(node_config(ledger, pki, max_in_flight_per_stream=8)) as node:
        envelopes = [lualaba_extraction() for _ in range(count)]
        requests = [stream_request(i, envelope) for i, envelope in enumerate(envelopes)]
        with Connections(node, pki) as connections:
            stub = connections(LUALABA).ledger
            responses = list(stub.AppendStream(iter(requests), timeout=60))
        outcomes = stream_outcomes(responses)
        assert sorted(outcome.sequence for outcome in outcomes) == list(range(count))
        for outcome in outcomes:
            verified(outcome.receipt, envelopes[outcome.sequence], log_key)
        assert_batched_in_tens(node, count)
        assert log_state(node).tree_size == SAMPLE_SIZE + count


def test_several_entries_in_one_message_are_each_answered_once(
    node: NodeThread, connect: Connections, log_key: VerifierKey
) -> None:
    """Twenty entries in one message, under sequence numbers the client chose: each is
    answered exactly once under its own number, and all are in the log, in message order."""
    envelopes = [lualaba_extraction() for _ in range(20)]
    sequences = [(1 << 40) + 7 * i for i in range(20)]
    message = stream_message(
        stream_entry(sequence, envelope, [LUALABA])
        for sequence, envelope in zip(sequences, envelopes, strict=True)
    )
    before = log_state(node)

    responses = list(connect(LUALABA).ledger.AppendStream(iter([message]), timeout=30))

    outcomes = stream_outcomes(responses)
    by_sequence = outcomes_by_sequence(outcomes)
    assert len(outcomes) == 20
    assert sorted(by_sequence) == sequences
    stub = connect(MERIDIAN).ledger
    indices = []
    for sequence, envelope in zip(sequences, envelopes, strict=True):
        outcome = by_sequence[sequence]
        assert outcome.WhichOneof("outcome") == "receipt", outcome.refusal
        receipt = verified(outcome.receipt, envelope, log_key)
        assert receipt.leaf.envelope == envelope
        indices.append(receipt.receipt.index)
        logged = stub.GetEntry(ledger_service_pb2.GetEntryRequest(index=receipt.receipt.index))
        assert logged.entry.leaf == outcome.receipt.leaf
    # Queued for sequencing in the order of the message.
    assert indices == list(range(before.tree_size, before.tree_size + 20))
    assert log_state(node).tree_size == before.tree_size + 20


def test_an_entry_may_depend_on_an_earlier_one_of_its_message(
    node: NodeThread, connect: Connections, log_key: VerifierKey
) -> None:
    """An extraction and the dispatch of its lot in one message: the dispatch is checked
    against the log with the extraction in it, without waiting for its receipt."""
    lot_id = new_id("lot")
    extracted = lualaba_extraction(lot_id)
    dispatched = signed_event(
        LUALABA,
        event_pb2.Dispatch(
            lot_id=lot_id,
            to_partner_id=MERIDIAN,
            mass_grams=1_000_000,
            from_facility_id=LCC_PIT,
            transport="road",
        ),
    )
    message = stream_message(
        [stream_entry(0, extracted, [LUALABA]), stream_entry(1, dispatched, [LUALABA])]
    )
    responses = list(connect(LUALABA).ledger.AppendStream(iter([message]), timeout=30))
    by_sequence = outcomes_by_sequence(stream_outcomes(responses))
    assert sorted(by_sequence) == [0, 1]
    receipts = []
    for sequence, envelope in ((0, extracted), (1, dispatched)):
        outcome = by_sequence[sequence]
        assert outcome.WhichOneof("outcome") == "receipt", outcome.refusal
        receipts.append(verified(outcome.receipt, envelope, log_key).receipt.index)
    assert receipts[1] == receipts[0] + 1


def test_a_message_mixing_good_and_bad_entries_refuses_the_bad_ones_in_band(
    node: NodeThread, connect: Connections, log_key: VerifierKey
) -> None:
    """Each entry of a message is judged on its own: the bad ones (refused at the door or
    by the state rules) are answered with their refusal, the good ones are appended, and
    the stream goes on with the next message."""
    good = {0: lualaba_extraction(), 2: lualaba_extraction(), 7: lualaba_extraction()}
    already_logged = next(e for e in sample_entries() if e.signer_ids == (LUALABA,))
    bad: dict[int, tuple[ledger_service_pb2.StreamEntry, Code, str]] = {
        1: (stream_entry(1, None, [LUALABA]), Code.INVALID_ARGUMENT, "MALFORMED_ENVELOPE"),
        3: (  # another partner's event, on Lualaba's stream
            stream_entry(3, signed_event(MERIDIAN, extraction()), [MERIDIAN]),
            Code.PERMISSION_DENIED,
            "IDENTITY_MISMATCH",
        ),
        4: (  # Lualaba's event, signed with another partner's key
            stream_entry(4, signed(event(LUALABA, extraction()), [MERIDIAN]), [MERIDIAN]),
            Code.PERMISSION_DENIED,
            "KEY_NOT_VALID",
        ),
        5: (stream_entry(5, _bad_signature(), [LUALABA]), Code.INVALID_ARGUMENT, "BAD_SIGNATURE"),
        6: (
            ledger_service_pb2.StreamEntry(
                sequence=6,
                envelope=envelope_to_proto(lualaba_extraction()),
                public_keys=[bytes(31)],
            ),
            Code.INVALID_ARGUMENT,
            "MALFORMED_KEY",
        ),
        8: (
            stream_entry(8, _dispatch_not_held(), [LUALABA]),
            Code.FAILED_PRECONDITION,
            "LOT_NOT_HELD",
        ),
        9: (
            stream_entry(9, already_logged.submission.envelope, [LUALABA]),
            Code.ALREADY_EXISTS,
            ALREADY_LOGGED,
        ),
    }
    entries = [
        stream_entry(sequence, good[sequence], [LUALABA]) if sequence in good else bad[sequence][0]
        for sequence in range(10)
    ]
    after = lualaba_extraction()  # the next message, sent once the first is answered
    first_answered = threading.Event()
    outcomes: list[ledger_service_pb2.StreamOutcome] = []

    def requests() -> Iterator[ledger_service_pb2.AppendStreamRequest]:
        yield stream_message(entries)
        first_answered.wait(20)
        yield stream_message([stream_entry(10, after, [LUALABA])])

    before = log_state(node)
    for response in connect(LUALABA).ledger.AppendStream(requests(), timeout=60):
        outcomes.extend(response.outcomes)
        if len(outcomes) >= len(entries):
            first_answered.set()

    by_sequence = outcomes_by_sequence(outcomes)
    assert sorted(by_sequence) == list(range(11))
    assert outcomes[-1].sequence == 10  # answered after the whole first message
    for sequence, (_, code, reason) in bad.items():
        outcome = by_sequence[sequence]
        assert outcome.WhichOneof("outcome") == "refusal", outcome.receipt
        assert (outcome.refusal.code, outcome.refusal.reason) == (code.value[0], reason), (
            outcome.refusal.message
        )
        assert outcome.refusal.message
    indices = []
    for sequence, envelope in [*good.items(), (10, after)]:
        outcome = by_sequence[sequence]
        assert outcome.WhichOneof("outcome") == "receipt", outcome.refusal
        indices.append(verified(outcome.receipt, envelope, log_key).receipt.index)
    assert indices == list(range(before.tree_size, before.tree_size + 4))
    assert log_state(node).tree_size == before.tree_size + 4


def test_outcomes_ready_together_come_back_grouped(
    node: NodeThread, connect: Connections, log_key: VerifierKey
) -> None:
    """A hundred entries in one message commit in few batches: their outcomes come back
    several per response, and still each exactly once."""
    count = 100
    envelopes = [lualaba_extraction() for _ in range(count)]
    message = stream_message(
        stream_entry(sequence, envelope, [LUALABA]) for sequence, envelope in enumerate(envelopes)
    )
    before = log_state(node)
    responses = list(connect(LUALABA).ledger.AppendStream(iter([message]), timeout=60))
    assert all(response.outcomes for response in responses)  # no empty response
    assert max(len(response.outcomes) for response in responses) > 1
    assert len(responses) < count
    by_sequence = outcomes_by_sequence(stream_outcomes(responses))
    assert sorted(by_sequence) == list(range(count))
    for sequence, envelope in enumerate(envelopes):
        outcome = by_sequence[sequence]
        assert outcome.WhichOneof("outcome") == "receipt", outcome.refusal
        verified(outcome.receipt, envelope, log_key)
    assert log_state(node).tree_size == before.tree_size + count


def test_keys_left_out_are_read_from_the_registry_once(
    pki: Pki, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries sent without their keys, on a fresh node (nothing remembered yet):
    1. the registry read fails: the key-less entry is refused STORAGE_ERROR in band
       (retry later); the entry beside it that brought its keys is appended;
    2. the read works again: the next key-less entry is appended, its key read once;
    3. a later key-less entry by the same signer needs no read at all."""
    reads: list[set[str]] = []
    failing = True
    real_keys = DomainView.keys

    def counted(view: DomainView, keyids: Collection[str]) -> dict[str, PartnerKey]:
        reads.append(set(keyids))
        if failing:
            raise StorageError("the database went away")
        return real_keys(view, keyids)

    monkeypatch.setattr(DomainView, "keys", counted)
    ledger = new_ledger(tmp_path_factory.mktemp("keys"))
    log_key = log_verifier_key(ledger)
    with_keys, refused_entry, second, third = (lualaba_extraction() for _ in range(4))
    sent = threading.Event()

    def requests() -> Iterator[ledger_service_pb2.AppendStreamRequest]:
        nonlocal failing
        yield stream_message(
            [stream_entry(0, with_keys, [LUALABA]), stream_entry(1, refused_entry)]
        )
        sent.wait(20)
        sent.clear()
        failing = False
        yield stream_message([stream_entry(2, second)])
        sent.wait(20)
        yield stream_message([stream_entry(3, third)])

    with running_node(node_config(ledger, pki)) as node, Connections(node, pki) as connections:
        outcomes: list[ledger_service_pb2.StreamOutcome] = []
        for response in connections(LUALABA).ledger.AppendStream(requests(), timeout=60):
            outcomes.extend(response.outcomes)
            if len(outcomes) in (2, 3):
                sent.set()
        assert log_state(node).tree_size == SAMPLE_SIZE + 3

    by_sequence = outcomes_by_sequence(outcomes)
    assert sorted(by_sequence) == [0, 1, 2, 3]
    failed = by_sequence[1]
    assert failed.WhichOneof("outcome") == "refusal", failed.receipt
    assert (failed.refusal.code, failed.refusal.reason) == (
        Code.UNAVAILABLE.value[0],
        "STORAGE_ERROR",
    )
    indices = [
        verified(by_sequence[sequence].receipt, envelope, log_key).receipt.index
        for sequence, envelope in ((0, with_keys), (2, second), (3, third))
    ]
    assert indices == [SAMPLE_SIZE, SAMPLE_SIZE + 1, SAMPLE_SIZE + 2]
    keyid = keyid_for(partner_signer(LUALABA).public_key)
    assert reads == [{keyid}, {keyid}]  # the failed read, the one that worked; none after


def test_a_message_longer_than_a_batch_is_answered_whole_and_in_order(
    pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """max_batch=8: a message of 30 entries (the window has room for all) is queued in
    groups no batch splits, each at most a batch; every entry is answered once and
    appended in message order."""
    ledger = new_ledger(tmp_path_factory.mktemp("batch"))
    log_key = log_verifier_key(ledger)
    count = 30
    with running_node(node_config(ledger, pki, max_batch=8)) as node:
        envelopes = [lualaba_extraction() for _ in range(count)]
        message = stream_message(
            stream_entry(sequence, envelope, [LUALABA])
            for sequence, envelope in enumerate(envelopes)
        )
        with Connections(node, pki) as connections:
            responses = list(connections(LUALABA).ledger.AppendStream(iter([message]), timeout=60))
        by_sequence = outcomes_by_sequence(stream_outcomes(responses))
        assert sorted(by_sequence) == list(range(count))
        indices = [
            verified(by_sequence[sequence].receipt, envelope, log_key).receipt.index
            for sequence, envelope in enumerate(envelopes)
        ]
        assert indices == list(range(SAMPLE_SIZE, SAMPLE_SIZE + count))
        assert_batched_in_tens(node, count)


def test_an_empty_message_is_harmless(
    node: NodeThread, connect: Connections, log_key: VerifierKey
) -> None:
    """An AppendStreamRequest without entries is answered by nothing, appends nothing, and
    neither ends nor disturbs the stream."""
    stub = connect(LUALABA).ledger
    with unchanged(node):
        assert list(stub.AppendStream(iter([stream_message([])]), timeout=30)) == []
        assert list(stub.AppendStream(iter([stream_message([])] * 3), timeout=30)) == []
    envelopes = [lualaba_extraction(), lualaba_extraction()]
    requests = [
        stream_message([]),
        stream_message([stream_entry(0, envelopes[0], [LUALABA])]),
        stream_message([]),
        stream_message([]),
        stream_message([stream_entry(1, envelopes[1], [LUALABA])]),
        stream_message([]),
    ]
    before = log_state(node)
    responses = list(stub.AppendStream(iter(requests), timeout=30))
    assert all(response.outcomes for response in responses)
    by_sequence = outcomes_by_sequence(stream_outcomes(responses))
    assert sorted(by_sequence) == [0, 1]
    for sequence, envelope in enumerate(envelopes):
        outcome = by_sequence[sequence]
        assert outcome.WhichOneof("outcome") == "receipt", outcome.refusal
        verified(outcome.receipt, envelope, log_key)
    assert log_state(node).tree_size == before.tree_size + 2


# --- reads -----------------------------------------------------------------------------


def _entries(stub: Connections, partner: str, start: int, end: int) -> list[list[log_pb2.Entry]]:
    request = ledger_service_pb2.GetEntriesRequest(start=start, end=end)
    return [list(response.entries) for response in stub(partner).ledger.GetEntries(request)]


@pytest.mark.parametrize(
    ("start", "end", "chunks"),
    [
        (0, SAMPLE_SIZE + PREFILL, [256, 49]),
        (10, SAMPLE_SIZE + PREFILL, [256, 39]),
        (255, 257, [2]),
        (0, 1, [1]),
        (SAMPLE_SIZE + PREFILL - 1, SAMPLE_SIZE + PREFILL, [1]),
    ],
)
def test_get_entries_streams_the_range_in_chunks(
    node: NodeThread, connect: Connections, start: int, end: int, chunks: list[int]
) -> None:
    messages = _entries(connect, MERIDIAN, start, end)
    assert [len(message) for message in messages] == chunks
    entries = [entry for message in messages for entry in message]
    assert [entry.index for entry in entries] == list(range(start, end))
    stored = node.node.store.leaves_in(start, end)
    assert [entry.leaf for entry in entries] == [row.leaf_bytes for row in stored]
    for entry in entries:
        assert decode_leaf(entry.leaf).index == entry.index


def test_get_entry_is_the_stored_leaf(node: NodeThread, connect: Connections) -> None:
    for index in (0, SAMPLE_SIZE - 1, SAMPLE_SIZE + PREFILL - 1):
        response = connect(BALTIC).ledger.GetEntry(ledger_service_pb2.GetEntryRequest(index=index))
        assert response.entry.index == index
        assert response.entry.leaf == node.node.store.leaf(index).leaf_bytes


def test_get_checkpoint_latest_and_at_a_size(
    node: NodeThread, connect: Connections, log_key: VerifierKey
) -> None:
    stub = connect(BALTIC).ledger
    latest = stub.GetCheckpoint(ledger_service_pb2.GetCheckpointRequest())
    assert latest.checkpoint == log_state(node).checkpoint
    # The sample and the prefill were each one batch: checkpoints at 55 and 305.
    for size in (SAMPLE_SIZE, SAMPLE_SIZE + PREFILL):
        note = stub.GetCheckpoint(ledger_service_pb2.GetCheckpointRequest(tree_size=size))
        assert open_checkpoint(note.checkpoint, log_key).checkpoint.size == size


@pytest.mark.parametrize(("index", "size"), [(0, None), (54, None), (3, 55), (300, 305), (7, 30)])
def test_inclusion_proofs_verify_against_the_returned_checkpoint(
    node: NodeThread, connect: Connections, log_key: VerifierKey, index: int, size: int | None
) -> None:
    stub = connect(KOKKOLA).ledger
    request = ledger_service_pb2.GetInclusionProofRequest(index=index)
    if size is not None:
        request.tree_size = size
    response = stub.GetInclusionProof(request)
    proof = inclusion_from_proto(response.proof)
    leaf = stub.GetEntry(ledger_service_pb2.GetEntryRequest(index=index)).entry.leaf
    assert proof.index == index
    assert proof.leaf_hash == merkle.leaf_hash(leaf)
    proof.verify()
    if size == 30:  # no checkpoint was signed at 30 (the sample was one batch)
        assert response.checkpoint == b""
        assert proof.tree_size == 30
        return
    checkpoint = open_checkpoint(response.checkpoint, log_key).checkpoint
    assert (proof.tree_size, proof.root) == (checkpoint.size, checkpoint.root_hash)
    assert checkpoint.size == (size if size is not None else log_state(node).tree_size)


@pytest.mark.parametrize(("old", "new"), [(1, None), (10, 55), (55, 305), (0, 55), (55, 55)])
def test_consistency_proofs_verify_against_the_returned_checkpoint(
    connect: Connections, log_key: VerifierKey, old: int, new: int | None
) -> None:
    stub = connect(MERIDIAN).ledger
    request = ledger_service_pb2.GetConsistencyProofRequest(old_size=old)
    if new is not None:
        request.new_size = new
    response = stub.GetConsistencyProof(request)
    proof = consistency_from_proto(response.proof)
    checkpoint = open_checkpoint(response.checkpoint, log_key).checkpoint
    assert (proof.new_size, proof.new_root) == (checkpoint.size, checkpoint.root_hash)
    assert proof.old_size == old
    if old > 0:
        # The old root is the one an inclusion proof at the old size commits to.
        at_old = stub.GetInclusionProof(
            ledger_service_pb2.GetInclusionProofRequest(index=0, tree_size=old)
        )
        assert proof.old_root == at_old.proof.root
    proof.verify()


def test_indices_and_sizes_beyond_the_log(node: NodeThread, connect: Connections) -> None:
    stub = connect(MERIDIAN).ledger
    size = log_state(node).tree_size
    top = (1 << 64) - 1
    cases: list[tuple[Callable[[], object], Code, str]] = [
        (
            lambda: stub.GetEntry(ledger_service_pb2.GetEntryRequest(index=size)),
            Code.OUT_OF_RANGE,
            "OUT_OF_RANGE",
        ),
        (
            lambda: stub.GetEntry(ledger_service_pb2.GetEntryRequest(index=top)),
            Code.OUT_OF_RANGE,
            "OUT_OF_RANGE",
        ),
        (
            lambda: stub.GetCheckpoint(ledger_service_pb2.GetCheckpointRequest(tree_size=size + 1)),
            Code.NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            lambda: stub.GetCheckpoint(ledger_service_pb2.GetCheckpointRequest(tree_size=30)),
            Code.NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            lambda: stub.GetCheckpoint(ledger_service_pb2.GetCheckpointRequest(tree_size=top)),
            Code.NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            lambda: stub.GetInclusionProof(ledger_service_pb2.GetInclusionProofRequest(index=size)),
            Code.OUT_OF_RANGE,
            "OUT_OF_RANGE",
        ),
        (
            lambda: stub.GetInclusionProof(
                ledger_service_pb2.GetInclusionProofRequest(index=0, tree_size=size + 1)
            ),
            Code.OUT_OF_RANGE,
            "OUT_OF_RANGE",
        ),
        (
            lambda: stub.GetInclusionProof(
                ledger_service_pb2.GetInclusionProofRequest(index=0, tree_size=0)
            ),
            Code.OUT_OF_RANGE,
            "OUT_OF_RANGE",
        ),
        (
            lambda: stub.GetInclusionProof(
                ledger_service_pb2.GetInclusionProofRequest(index=top, tree_size=top)
            ),
            Code.OUT_OF_RANGE,
            "OUT_OF_RANGE",
        ),
        (
            lambda: stub.GetConsistencyProof(
                ledger_service_pb2.GetConsistencyProofRequest(old_size=size + 1)
            ),
            Code.OUT_OF_RANGE,
            "OUT_OF_RANGE",
        ),
        (
            lambda: stub.GetConsistencyProof(
                ledger_service_pb2.GetConsistencyProofRequest(old_size=1, new_size=size + 1)
            ),
            Code.OUT_OF_RANGE,
            "OUT_OF_RANGE",
        ),
        (
            lambda: stub.GetConsistencyProof(
                ledger_service_pb2.GetConsistencyProofRequest(old_size=10, new_size=5)
            ),
            Code.OUT_OF_RANGE,
            "OUT_OF_RANGE",
        ),
        (
            lambda: list(
                stub.GetEntries(ledger_service_pb2.GetEntriesRequest(start=size - 1, end=size + 1))
            ),
            Code.OUT_OF_RANGE,
            "OUT_OF_RANGE",
        ),
        (
            lambda: list(stub.GetEntries(ledger_service_pb2.GetEntriesRequest(start=5, end=5))),
            Code.INVALID_ARGUMENT,
            "INVALID_RANGE",
        ),
        (
            lambda: list(stub.GetEntries(ledger_service_pb2.GetEntriesRequest(start=top, end=top))),
            Code.INVALID_ARGUMENT,
            "INVALID_RANGE",
        ),
    ]
    with unchanged(node):
        for call, code, reason in cases:
            refused(call, code, reason)


# --- Follow ----------------------------------------------------------------------------


def test_follow_sends_the_log_then_each_new_entry(
    node: NodeThread, connect: Connections, log_key: VerifierKey
) -> None:
    stub = connect(BALTIC).ledger
    size = log_state(node).tree_size
    stream = stub.Follow(ledger_service_pb2.FollowRequest(start_index=0), timeout=30)
    seen: list[int] = []
    try:
        for response in stream:
            checkpoint = open_checkpoint(response.checkpoint, log_key).checkpoint
            seen.extend(entry.index for entry in response.entries)
            assert checkpoint.size >= seen[-1] + 1
            if len(seen) >= size:
                break
        assert seen == list(range(size))
        envelope = lualaba_extraction()
        appended = connect(LUALABA).ledger.Append(append_request(envelope, [LUALABA]))
        response = next(stream)
        assert [entry.index for entry in response.entries] == [appended.receipt.index]
        assert response.entries[0].leaf == appended.receipt.leaf
        assert response.checkpoint == appended.receipt.checkpoint
    finally:
        stream.cancel()


def test_follow_from_an_index_starts_there(connect: Connections, node: NodeThread) -> None:
    size = log_state(node).tree_size
    stream = connect(BALTIC).ledger.Follow(
        ledger_service_pb2.FollowRequest(start_index=size - 3), timeout=30
    )
    try:
        first = next(stream)
        assert [entry.index for entry in first.entries] == [size - 3, size - 2, size - 1]
    finally:
        stream.cancel()


# --- deadlines -------------------------------------------------------------------------


def _open_streams(node: NodeThread, method: str) -> float | None:
    return node.node.metrics.registry.get_sample_value("custody_open_streams", {"method": method})


def test_deadlines_are_honoured_and_the_node_keeps_serving(
    node: NodeThread, connect: Connections
) -> None:
    stub = connect(MERIDIAN).ledger
    with unchanged(node) as state:
        # A Follow with nothing new idles on the server until the deadline ends it there.
        started = time.monotonic()
        stream = stub.Follow(
            ledger_service_pb2.FollowRequest(start_index=state.tree_size), timeout=0.5
        )
        refused(lambda: list(stream), Code.DEADLINE_EXCEEDED, None)
        assert time.monotonic() - started < 5  # not the 15 s idle period
        wait_for(lambda: _open_streams(node, "Follow") == 0)
        # A deadline shorter than the work: the call is ended, not the node.
        refused(
            lambda: connect(MERIDIAN).provenance.Trace(_trace_request(), timeout=0.0005),
            Code.DEADLINE_EXCEEDED,
            None,
        )
        checkpoint = stub.GetCheckpoint(ledger_service_pb2.GetCheckpointRequest(), timeout=10)
        assert checkpoint.checkpoint == state.checkpoint


def _trace_request() -> provenance_service_pb2.TraceRequest:
    return provenance_service_pb2.TraceRequest(lot_id=FINAL_LOT_ID)


# --- graceful shutdown -----------------------------------------------------------------


@pytest.mark.parametrize("own_process", [True, False], ids=["own process", "in process"])
def test_stopping_during_a_stream_loses_no_acknowledged_entry(
    pki: Pki, tmp_path_factory: pytest.TempPathFactory, own_process: bool
) -> None:
    """Stop the node while a paced AppendStream runs: every receipt the client got is in
    the log, entries are whole (the log replays and verifies, its latest checkpoint covers
    every leaf), and nothing but the stream's own entries were added."""
    ledger = new_ledger(tmp_path_factory.mktemp("shutdown"))
    log_key = log_verifier_key(ledger)
    envelopes = [lualaba_extraction() for _ in range(600)]
    thread = NodeThread(node_config(ledger, pki, own_process=own_process))
    responses: list[ledger_service_pb2.AppendStreamResponse] = []
    errors: list[grpc.RpcError] = []

    def requests() -> Iterator[ledger_service_pb2.AppendStreamRequest]:
        for sequence, envelope in enumerate(envelopes):
            yield stream_request(sequence, envelope)
            time.sleep(0.002)  # the stream outlasts the grace period

    def consume(stub: ledger_service_pb2_grpc.LedgerServiceStub) -> None:
        try:
            responses.extend(stub.AppendStream(requests(), timeout=60))
        except grpc.RpcError as exc:
            errors.append(exc)

    with Connections(thread, pki) as connections:
        client = threading.Thread(target=consume, args=(connections(LUALABA).ledger,))
        client.start()
        try:
            wait_for(lambda: len(stream_outcomes(list(responses))) >= 40)
        finally:
            thread.stop(grace=0.3)
            client.join(30)
    assert not client.is_alive()
    assert errors, "the stream should have been cut by the shutdown"
    # The node's own ending (not gRPC cancelling the call): everything it read was answered.
    assert refusal(errors[0]) == (Code.UNAVAILABLE, "UNAVAILABLE")
    assert "every entry it read was answered" in (errors[0].details() or "")
    outcomes = stream_outcomes(responses)
    outcomes_by_sequence(outcomes)  # each entry answered at most once
    assert 40 <= len(outcomes) < len(envelopes)

    store = LogStore.open(ledger.url, migrate=False)
    try:
        with store.snapshot() as conn:
            result = verify_log(LogView(store, conn), log_key)
            latest = store.latest_checkpoint(conn)
            rows = store.leaves_in(SAMPLE_SIZE, result.tree_size, conn)
    finally:
        store.close()
    assert latest is not None
    assert latest.tree_size == result.tree_size
    digests = {envelope.digest(): sequence for sequence, envelope in enumerate(envelopes)}
    logged = {digests[decode_leaf(row.leaf_bytes).envelope.digest()]: row for row in rows}
    assert len(logged) == len(rows) == result.tree_size - SAMPLE_SIZE
    for outcome in outcomes:
        assert outcome.WhichOneof("outcome") == "receipt"
        receipt = verified(outcome.receipt, envelopes[outcome.sequence], log_key)
        assert logged[outcome.sequence].index == receipt.receipt.index
        assert logged[outcome.sequence].leaf_bytes == outcome.receipt.leaf
    assert len(logged) >= len(outcomes)


# --- PostgreSQL ------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_append_and_read_on_postgresql(
    database_url: str, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> None:
    ledger = make_ledger(tmp_path_factory.mktemp("postgres"), database_url)
    log_key = log_verifier_key(ledger)
    with running_node(node_config(ledger, pki)) as node, Connections(node, pki) as connections:
        stub = connections(LUALABA).ledger
        envelope = lualaba_extraction()
        response = stub.Append(append_request(envelope, [LUALABA]))
        assert verified(response.receipt, envelope, log_key).receipt.index == SAMPLE_SIZE
        entry = stub.GetEntry(ledger_service_pb2.GetEntryRequest(index=SAMPLE_SIZE))
        assert entry.entry.leaf == response.receipt.leaf
        latest = stub.GetCheckpoint(ledger_service_pb2.GetCheckpointRequest())
        assert latest.checkpoint == response.receipt.checkpoint
        with unchanged(node):
            refused(
                lambda: stub.Append(append_request(envelope, [LUALABA])),
                Code.ALREADY_EXISTS,
                ALREADY_LOGGED,
            )
        assert node.node.store.backend == "postgresql"
