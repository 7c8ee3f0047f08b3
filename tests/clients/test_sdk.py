"""The partner SDK against a real node on port 0, over mutual TLS.

One ledger (the sample consortium's 55 entries) and one node serve the whole
module; tests append entries with fresh event ids and depend only on what they
appended themselves, never on the exact tree size.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

from clients.cli.verified_state import VerifiedState
from clients.sample.consortium import (
    BALTIC,
    BOTHNIA,
    EXPECTED_COBALT_ORIGINS,
    FINAL_LOT_ID,
    partner_signer,
    utc_seconds,
)
from clients.sdk import (
    DEFAULT_WINDOW,
    MESSAGE_BYTES,
    AsyncPartnerClient,
    ClientTls,
    LogEntry,
    PartnerClient,
    SubmitItem,
    SubmitOutcome,
)
from clients.sdk._internal.errors import AlreadyLoggedError, RemoteStatus, error_for
from clients.sdk._internal.plans import ClientCore, Plan
from clients.sdk._internal.state import CheckpointState
from clients.sdk._internal.verify import FollowVerifier
from custody.v1 import event_pb2, ledger_service_pb2, log_pb2
from ledger import merkle
from ledger.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from ledger.domain.records import EVENT_PAYLOAD_TYPE
from ledger.dsse import Envelope, sign_envelope
from ledger.errors import (
    AdmissionRuleError,
    ConsistencyProofError,
    CustodyError,
    EntryTooLargeError,
    InclusionProofError,
    InvalidRangeError,
    LogIntegrityError,
    MalformedEnvelopeError,
    MalformedError,
    NotAPartnerError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    RemoteError,
    Rule,
    UnauthenticatedError,
    UnavailableError,
    VerificationError,
)
from ledger.keys import generate_private_key
from ledger.leaf import ZERO_HASH, chain_hash, decode_leaf, encode_leaf
from ledger.merkle import CompactRange, ConsistencyProof, InclusionProof, NodeId
from ledger.note import NoteSigner
from ledger.wire import inclusion_to_proto, receipt_to_proto
from services.errors import MAX_RECEIPT_DETAIL_BYTES
from tests.clients.served_node import ServedNode, serve_sample_ledger
from tests.services.node_support import (
    ORIGIN,
    STRANGER,
    make_pki,
    sample_partner_ids,
)
from tests.services.rpc_support import SAMPLE_SIZE


class Node(ServedNode):
    def tls(self, partner_id: str) -> ClientTls:
        cert, key = self.pki.partner_files(partner_id)
        return ClientTls.from_files(self.pki.ca.certificate_path, cert, key)

    def client(self, partner_id: str = BOTHNIA, state_dir: Path | None = None) -> PartnerClient:
        return PartnerClient.connect(
            self.address, log_key=self.log_key, tls=self.tls(partner_id), state_dir=state_dir
        )

    def async_client(
        self, partner_id: str = BOTHNIA, state_dir: Path | None = None
    ) -> AsyncPartnerClient:
        return AsyncPartnerClient.connect(
            self.address, log_key=self.log_key, tls=self.tls(partner_id), state_dir=state_dir
        )


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    pki = make_pki(tmp_path_factory.mktemp("sdk-pki"), sample_partner_ids())
    with serve_sample_ledger(Node, tmp_path_factory.mktemp("sdk-ledger"), pki) as served:
        yield served


@pytest.fixture(scope="module")
def busy_node(node: Node, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A node of its own (same PKI) for tests that append hundreds of entries: the
    module's log stays small enough for the Follow tests' single messages."""
    with serve_sample_ledger(Node, tmp_path_factory.mktemp("sdk-busy-ledger"), node.pki) as busy:
        yield busy


def assay(
    event_id: str | None = None,
    lot_id: str = FINAL_LOT_ID,
    evidence: Sequence[event_pb2.EvidenceRef] = (),
) -> Envelope:
    """A laboratory's assay of a lot, recorded and signed by Bothnia (a LAB)."""
    event = event_pb2.Event(
        event_id=event_id or f"urn:uuid:{uuid.uuid4()}",
        partner_id=BOTHNIA,
        evidence=list(evidence),
        assay=event_pb2.Assay(
            lot_id=lot_id,
            contents=[event_pb2.ElementContent(element="Co", ppm=27_600)],
            method="ICP-OES",
            sample_id="S-SDK",
        ),
    )
    event.event_time.seconds = utc_seconds("2026-07-01T08:00:00Z")
    return sign_envelope(EVENT_PAYLOAD_TYPE, event.SerializeToString(), [partner_signer(BOTHNIA)])


def with_key(envelope: Envelope) -> SubmitItem:
    return envelope, [partner_signer(BOTHNIA).public_key]


def big_assay(reports: int = 150) -> Envelope:
    """An assay backed by ``reports`` assay reports (150: ~20 KB of valid evidence
    references, a receipt too large for the node to attach to ALREADY_EXISTS)."""
    batch = uuid.uuid4()
    evidence = [
        event_pb2.EvidenceRef(
            uri=f"https://documents.bothnia-labs.example/assays/{batch}/report-{i:04d}.pdf",
            sha256=hashlib.sha256(f"{batch}/{i}".encode()).digest(),
            kind="assay_report",
        )
        for i in range(reports)
    ]
    envelope = assay(evidence=evidence)
    assert len(envelope.payload) > 100 * reports
    return envelope


def larger_than_a_message() -> Envelope:
    """An assay whose stream entry alone exceeds ``MESSAGE_BYTES``."""
    envelope = big_assay(400)
    assert len(envelope.payload) > MESSAGE_BYTES
    return envelope


class Rewriting:
    """A server stream whose messages pass through ``rewrite`` (a lying node)."""

    def __init__(self, call: Any, rewrite: Callable[[Any], None]) -> None:
        self.call = call
        self.rewrite = rewrite

    def __iter__(self) -> Iterator[Any]:
        for message in self.call:
            self.rewrite(message)
            yield message

    def cancel(self) -> None:
        self.call.cancel()


def rewriting(real: Callable[..., Any], rewrite: Callable[[Any], None]) -> Callable[..., Rewriting]:
    def method(request: Any, **kwargs: Any) -> Rewriting:
        return Rewriting(real(request, **kwargs), rewrite)

    return method


def root_from_path(leaf_hash: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root an RFC 9162 audit path leads to from ``leaf_hash``: what a node holding
    the log key signs to make a forged leaf's inclusion proof verify."""
    fn, sn, root = index, size - 1, leaf_hash
    for sibling in path:
        if fn & 1 or fn == sn:
            root = merkle.node_hash(sibling, root)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            root = merkle.node_hash(root, sibling)
        fn, sn = fn >> 1, sn >> 1
    return root


# --- submit ------------------------------------------------------------------------------


def test_submit_verifies_the_receipt(node: Node) -> None:
    envelope = assay()
    with node.client() as client:
        verified = client.submit(envelope)
    assert verified.receipt.index >= SAMPLE_SIZE
    assert not verified.receipt.duplicate
    assert verified.leaf.envelope.digest() == envelope.digest()
    assert verified.checkpoint.checkpoint.size > verified.receipt.index


def test_resubmission_returns_the_verified_original_receipt(node: Node) -> None:
    envelope = assay()
    with node.client() as client:
        first = client.submit(envelope, [partner_signer(BOTHNIA).public_key])
        again = client.submit(envelope)
    assert again.receipt.duplicate
    assert again.receipt.index == first.receipt.index
    assert again.receipt.leaf == first.receipt.leaf


def test_resubmitting_a_big_entry_returns_the_original_receipt_fetched_and_verified(
    node: Node,
) -> None:
    envelope = big_assay()
    keys = [partner_signer(BOTHNIA).public_key]
    with node.client() as client:
        first = client.submit(envelope, keys)
        # Too big to ride along ALREADY_EXISTS: the node sends only the index.
        assert receipt_to_proto(first.receipt).ByteSize() > MAX_RECEIPT_DETAIL_BYTES
        again = client.submit(envelope, keys)
    assert again.receipt.duplicate
    assert again.receipt.index == first.receipt.index
    assert again.receipt.leaf == first.receipt.leaf
    assert again.leaf.envelope.digest() == envelope.digest()
    assert again.checkpoint.checkpoint.size > again.receipt.index


def test_a_fetched_original_receipt_is_verified_like_any_receipt(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    envelope = big_assay()
    keys = [partner_signer(BOTHNIA).public_key]
    with node.client() as client:
        index = client.submit(envelope, keys).receipt.index
        real_get_entry = client._ledger.GetEntry

        def another_leaf(request: Any, **kwargs: Any) -> ledger_service_pb2.GetEntryResponse:
            answer: ledger_service_pb2.GetEntryResponse = real_get_entry(
                ledger_service_pb2.GetEntryRequest(index=request.index - 1), **kwargs
            )
            answer.entry.index = request.index
            return answer

        monkeypatch.setattr(client._ledger, "GetEntry", another_leaf)
        with pytest.raises(VerificationError, match="carries leaf") as caught:
            client.submit(envelope, keys)
    assert type(caught.value) is VerificationError
    assert index >= SAMPLE_SIZE


def test_submit_many_recovers_original_receipts_a_refusal_left_out(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    small, big = assay(), big_assay()
    with node.client() as client:
        originals = [client.submit(e, [partner_signer(BOTHNIA).public_key]) for e in (small, big)]

        def strip_receipts(response: ledger_service_pb2.AppendStreamResponse) -> None:
            for outcome in response.outcomes:
                if outcome.HasField("refusal"):
                    outcome.refusal.ClearField("original_receipt")

        real_stream = client._ledger.AppendStream
        monkeypatch.setattr(client._ledger, "AppendStream", rewriting(real_stream, strip_receipts))
        outcomes = sorted(
            client.submit_many([with_key(small), with_key(big)]), key=lambda o: o.position
        )
    assert [o.duplicate for o in outcomes] == [True, True]
    for outcome, original in zip(outcomes, originals, strict=True):
        assert outcome.receipt is not None
        assert outcome.receipt.receipt.index == original.receipt.index
        assert outcome.receipt.leaf.envelope.digest() == outcome.envelope.digest()


@pytest.mark.parametrize("signer_keys", ["as signed", "another partner's key"])
def test_a_receipt_whose_leaf_signatures_do_not_verify_is_refused(
    node: Node, monkeypatch: pytest.MonkeyPatch, signer_keys: str
) -> None:
    """The node (holding the log key) re-signs a consistent receipt around a leaf whose
    signer keys do not match its signatures: only the leaf's signatures give it away."""
    with node.client() as client:
        real_append = client._ledger.Append

        def forged(request: Any, **kwargs: Any) -> ledger_service_pb2.AppendResponse:
            response: ledger_service_pb2.AppendResponse = real_append(request, **kwargs)
            receipt, proof = response.receipt, response.receipt.inclusion_proof
            leaf = decode_leaf(receipt.leaf)
            keys = list(leaf.signer_keys)
            if signer_keys != "as signed":
                keys = [partner_signer(BALTIC).public_key]
            receipt.leaf = encode_leaf(
                index=leaf.index,
                integration_time_micros=leaf.integration_time_micros,
                prev_chain_hash=leaf.prev_chain_hash,
                envelope=leaf.envelope,
                signer_keys=keys,
                subject_links=leaf.subject_links,
            )
            proof.leaf_hash = merkle.leaf_hash(receipt.leaf)
            proof.root = root_from_path(
                proof.leaf_hash, proof.index, proof.tree_size, list(proof.hashes)
            )
            receipt.checkpoint = sign_checkpoint(
                Checkpoint(ORIGIN, proof.tree_size, proof.root), node.log_signer
            )
            return response

        monkeypatch.setattr(client._ledger, "Append", forged)
        if signer_keys == "as signed":  # the forgery itself is sound
            assert not client.submit(assay()).receipt.duplicate
            return
        with pytest.raises(LogIntegrityError, match="signer keys do not match"):
            client.submit(assay())


@pytest.mark.parametrize(
    ("partner_id", "lot_id", "rule"),
    [
        (BOTHNIA, "NO-SUCH-LOT", Rule.UNKNOWN_LOT),
        (BALTIC, FINAL_LOT_ID, Rule.IDENTITY_MISMATCH),  # Bothnia's entry over Baltic's TLS
    ],
)
def test_refusal_raises_the_admission_rule(
    node: Node, partner_id: str, lot_id: str, rule: Rule
) -> None:
    with node.client(partner_id) as client, pytest.raises(AdmissionRuleError) as refused:
        client.submit(assay(lot_id=lot_id))
    assert refused.value.rule is rule
    assert refused.value.reason == rule.value


def test_sign_and_submit(node: Node) -> None:
    envelope = assay()
    with node.client() as client:
        verified = client.sign_and_submit(
            envelope.payload_type, envelope.payload, [partner_signer(BOTHNIA)]
        )
    assert verified.leaf.envelope == envelope  # Ed25519 signatures are deterministic


def test_stranger_and_dead_node_errors(node: Node, tmp_path: Path) -> None:
    with node.client(STRANGER) as client, pytest.raises(NotAPartnerError) as refused:
        client.checkpoint()
    assert refused.value.reason == "NOT_A_PARTNER"
    with node.client(STRANGER) as client, pytest.raises(NotAPartnerError):
        list(client.submit_many([with_key(assay())], window=1))
    with node.client() as client, pytest.raises(NotFoundError):
        client.lot("NO-SUCH-LOT")
    dead = PartnerClient.connect(
        "127.0.0.1:1", log_key=node.log_key, tls=node.tls(BOTHNIA), timeout=2
    )
    with dead, pytest.raises(UnavailableError):
        dead.checkpoint()


def test_tampered_receipt_is_rejected(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    with node.client() as client:
        real_append = client._ledger.Append

        def tampered(request: Any, **kwargs: Any) -> ledger_service_pb2.AppendResponse:
            response: ledger_service_pb2.AppendResponse = real_append(request, **kwargs)
            hashes = response.receipt.inclusion_proof.hashes
            hashes[0] = bytes(32) if hashes[0] != bytes(32) else b"\x01" * 32
            return response

        monkeypatch.setattr(client._ledger, "Append", tampered)
        with pytest.raises(InclusionProofError):
            client.submit(assay())


@pytest.mark.parametrize(
    ("code", "reason", "expected", "expected_reason"),
    [
        (grpc.StatusCode.FAILED_PRECONDITION, "LOT_NOT_HELD", AdmissionRuleError, "LOT_NOT_HELD"),
        (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_ENVELOPE", MalformedEnvelopeError, None),
        (grpc.StatusCode.INVALID_ARGUMENT, "BAD_SIGNATURE", MalformedError, "BAD_SIGNATURE"),
        (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED", MalformedError, "MALFORMED"),
        (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RANGE", InvalidRangeError, "INVALID_RANGE"),
        (grpc.StatusCode.INVALID_ARGUMENT, None, MalformedError, "MALFORMED"),
        # The node's own faults, whatever code carries them: never the caller's input.
        (grpc.StatusCode.INVALID_ARGUMENT, "LOG_INTEGRITY", RemoteError, "LOG_INTEGRITY"),
        (grpc.StatusCode.INVALID_ARGUMENT, "STATE_MISMATCH", RemoteError, "STATE_MISMATCH"),
        (grpc.StatusCode.INTERNAL, "LOG_INTEGRITY", RemoteError, "LOG_INTEGRITY"),
        (grpc.StatusCode.FAILED_PRECONDITION, "STATE_MISMATCH", RemoteError, "STATE_MISMATCH"),
        (grpc.StatusCode.INVALID_ARGUMENT, "ENTRY_TOO_LARGE", EntryTooLargeError, None),
        (grpc.StatusCode.PERMISSION_DENIED, "NOT_A_PARTNER", NotAPartnerError, None),
        (grpc.StatusCode.PERMISSION_DENIED, None, PermissionDeniedError, "PERMISSION_DENIED"),
        (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED", UnauthenticatedError, None),
        (grpc.StatusCode.NOT_FOUND, "NOT_FOUND", NotFoundError, None),
        (grpc.StatusCode.OUT_OF_RANGE, "OUT_OF_RANGE", OutOfRangeError, None),
        (grpc.StatusCode.UNAVAILABLE, "STORAGE_ERROR", UnavailableError, "STORAGE_ERROR"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, None, UnavailableError, "DEADLINE_EXCEEDED"),
        (grpc.StatusCode.INTERNAL, "STATE_MISMATCH", RemoteError, "STATE_MISMATCH"),
        (grpc.StatusCode.UNKNOWN, None, RemoteError, "REMOTE_ERROR"),
        (grpc.StatusCode.FAILED_PRECONDITION, None, RemoteError, "REMOTE_ERROR"),
        (grpc.StatusCode.ALREADY_EXISTS, "ENTRY_ALREADY_LOGGED", AlreadyLoggedError, None),
    ],
)
def test_status_translation(
    code: grpc.StatusCode,
    reason: str | None,
    expected: type[CustodyError],
    expected_reason: str | None,
) -> None:
    error = error_for(RemoteStatus(code, "the node's words", reason))
    assert type(error) is expected
    assert error.reason == (expected_reason or reason)
    assert str(error) == "the node's words"
    if isinstance(error, RemoteError):
        assert error.status_code == code.name


# --- submit_many -------------------------------------------------------------------------


class CountingInput:
    """Envelopes handed out one by one, recording how many were taken but not answered."""

    def __init__(self, envelopes: list[Envelope]) -> None:
        self.envelopes = envelopes
        self.taken = 0
        self.answered = 0
        self.max_in_flight = 0

    def __iter__(self) -> Iterator[SubmitItem]:
        for envelope in self.envelopes:
            self.taken += 1
            self.max_in_flight = max(self.max_in_flight, self.taken - self.answered)
            yield with_key(envelope)

    def answer(self, outcome: SubmitOutcome) -> SubmitOutcome:
        self.answered += 1
        return outcome


def test_submit_many_keeps_at_most_window_in_flight(node: Node) -> None:
    envelopes = [assay() for _ in range(30)]
    envelopes[7] = assay(lot_id="NO-SUCH-LOT")
    envelopes[12] = envelopes[3]  # the same entry twice: one receipt, then "already logged"
    source = CountingInput(envelopes)
    with node.client() as client:
        outcomes = [source.answer(o) for o in client.submit_many(source, window=4)]
    assert source.max_in_flight == 4  # the window, used whole and never exceeded
    assert sorted(o.position for o in outcomes) == list(range(30))
    by_position = {o.position: o for o in outcomes}
    refused = by_position[7].error
    assert isinstance(refused, AdmissionRuleError)
    assert refused.rule is Rule.UNKNOWN_LOT
    assert not by_position[7].ok
    same = {by_position[3], by_position[12]}
    assert {o.duplicate for o in same} == {True, False}
    assert len({o.receipt.receipt.index for o in same if o.receipt is not None}) == 1
    for position, outcome in by_position.items():
        if position != 7:
            assert outcome.receipt is not None
            assert outcome.receipt.leaf.envelope.digest() == envelopes[position].digest()


def test_submit_many_answers_what_was_sent_then_raises_the_input_error(node: Node) -> None:
    def broken() -> Iterator[SubmitItem]:
        yield with_key(assay())
        yield with_key(assay())
        raise RuntimeError("the input broke")

    seen: list[SubmitOutcome] = []
    with node.client() as client, pytest.raises(RuntimeError, match="the input broke"):
        seen.extend(client.submit_many(broken(), window=8))
    assert sorted(o.position for o in seen) == [0, 1]
    assert all(o.ok for o in seen)


def test_submit_many_rejects_a_tampered_stream_receipt(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    with node.client() as client:

        def tamper(response: ledger_service_pb2.AppendStreamResponse) -> None:
            for outcome in response.outcomes:
                outcome.receipt.leaf = outcome.receipt.leaf + b"\x00"

        real_stream = client._ledger.AppendStream
        monkeypatch.setattr(client._ledger, "AppendStream", rewriting(real_stream, tamper))
        with pytest.raises(VerificationError, match="malformed receipt") as caught:
            list(client.submit_many([with_key(assay())]))
    assert type(caught.value) is VerificationError


class SentMessages:
    """A client's AppendStream that records each request message it sends: the sequence
    numbers of its entries and its size."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.messages: list[tuple[list[int], int]] = []

    @classmethod
    def on(cls, client: Any, monkeypatch: pytest.MonkeyPatch) -> SentMessages:
        """Record what ``client`` (either flavour) sends on its AppendStreams."""
        sent = cls(client._ledger.AppendStream)
        monkeypatch.setattr(client._ledger, "AppendStream", sent)
        return sent

    def __call__(self, requests: Any, **kwargs: Any) -> Any:
        if hasattr(requests, "__aiter__"):
            return self.real(self._async_recorded(requests), **kwargs)
        return self.real(self._recorded(requests), **kwargs)

    def _record(self, message: ledger_service_pb2.AppendStreamRequest) -> None:
        self.messages.append(([entry.sequence for entry in message.entries], message.ByteSize()))

    def _recorded(
        self, requests: Iterator[ledger_service_pb2.AppendStreamRequest]
    ) -> Iterator[ledger_service_pb2.AppendStreamRequest]:
        for message in requests:
            self._record(message)
            yield message

    async def _async_recorded(
        self, requests: AsyncIterator[ledger_service_pb2.AppendStreamRequest]
    ) -> AsyncIterator[ledger_service_pb2.AppendStreamRequest]:
        async for message in requests:
            self._record(message)
            yield message

    @property
    def sequences(self) -> list[int]:
        return [sequence for sequences, _ in self.messages for sequence in sequences]

    def check_packing(self, window: int) -> None:
        """Every message carries entries, at most ``window`` of them, within
        ``MESSAGE_BYTES`` unless it carries one entry alone."""
        for sequences, size in self.messages:
            assert 1 <= len(sequences) <= window, sequences
            assert size <= MESSAGE_BYTES or len(sequences) == 1, (sequences, size)


def assert_outcomes_match(outcomes: Sequence[SubmitOutcome], envelopes: Sequence[Envelope]) -> None:
    """One verified receipt per input entry, at the entry's position, each a new leaf."""
    assert sorted(o.position for o in outcomes) == list(range(len(envelopes)))
    for outcome in outcomes:
        assert outcome.ok, outcome.error
        assert not outcome.duplicate
        assert outcome.receipt is not None
        assert outcome.envelope == envelopes[outcome.position]
        assert outcome.receipt.leaf.envelope.digest() == envelopes[outcome.position].digest()
    indices = {o.receipt.receipt.index for o in outcomes if o.receipt is not None}
    assert len(indices) == len(envelopes)


def test_submit_many_packs_small_entries_into_few_messages(
    busy_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    envelopes = [assay() for _ in range(200)]
    with busy_node.client() as client:
        sent = SentMessages.on(client, monkeypatch)
        outcomes = list(client.submit_many(with_key(e) for e in envelopes))
    assert sorted(sent.sequences) == list(range(len(envelopes)))  # each sent once
    assert len(sent.messages) < len(envelopes)
    assert max(len(sequences) for sequences, _ in sent.messages) > 1
    sent.check_packing(DEFAULT_WINDOW)
    assert_outcomes_match(outcomes, envelopes)


def test_submit_many_sends_what_it_read_without_waiting_for_more_input(
    busy_node: Node,
) -> None:
    """A live feed: the input holds back its fourth item until the first three are
    answered. The three must not wait for a fuller message."""
    first = [assay() for _ in range(3)]
    later = assay()
    answered = threading.Event()
    waited_in_vain: list[bool] = []

    def feed() -> Iterator[SubmitItem]:
        yield from (with_key(e) for e in first)
        waited_in_vain.append(not answered.wait(timeout=20))
        yield with_key(later)

    outcomes: list[SubmitOutcome] = []
    with busy_node.client() as client:
        for outcome in client.submit_many(feed()):
            outcomes.append(outcome)
            if len(outcomes) == len(first):
                answered.set()
    assert waited_in_vain == [False]
    assert_outcomes_match(outcomes, [*first, later])


def test_async_submit_many_sends_what_it_read_without_waiting_for_more_input(
    busy_node: Node,
) -> None:
    first = [assay() for _ in range(3)]
    later = assay()
    waited_in_vain: list[bool] = []

    async def scenario() -> list[SubmitOutcome]:
        answered = asyncio.Event()

        async def feed() -> AsyncIterator[SubmitItem]:
            for envelope in first:
                yield with_key(envelope)
            try:
                await asyncio.wait_for(answered.wait(), timeout=20)
                waited_in_vain.append(False)
            except TimeoutError:
                waited_in_vain.append(True)
            yield with_key(later)

        outcomes: list[SubmitOutcome] = []
        async with busy_node.async_client() as client:
            async for outcome in client.submit_many(feed()):
                outcomes.append(outcome)
                if len(outcomes) == len(first):
                    answered.set()
        return outcomes

    outcomes = asyncio.run(scenario())
    assert waited_in_vain == [False]
    assert_outcomes_match(outcomes, [*first, later])


def test_submit_many_packs_no_more_than_the_window(
    busy_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    envelopes = [assay() for _ in range(40)]
    with busy_node.client() as client:
        sent = SentMessages.on(client, monkeypatch)
        outcomes = list(client.submit_many((with_key(e) for e in envelopes), window=3))
    assert sorted(sent.sequences) == list(range(len(envelopes)))
    sent.check_packing(3)
    assert_outcomes_match(outcomes, envelopes)


def test_submit_many_sends_an_entry_larger_than_a_message_alone(
    busy_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    large = larger_than_a_message()
    envelopes = [*(assay() for _ in range(5)), large, *(assay() for _ in range(5))]
    with busy_node.client() as client:
        sent = SentMessages.on(client, monkeypatch)
        outcomes = list(client.submit_many(with_key(e) for e in envelopes))
    assert sorted(sent.sequences) == list(range(len(envelopes)))
    (alone,) = [(sequences, size) for sequences, size in sent.messages if 5 in sequences]
    assert alone[0] == [5]
    assert alone[1] > MESSAGE_BYTES
    assert len(sent.messages) < len(envelopes)  # the small ones still share messages
    sent.check_packing(DEFAULT_WINDOW)
    assert_outcomes_match(outcomes, envelopes)
    (outcome,) = [o for o in outcomes if o.position == 5]
    assert outcome.receipt is not None
    assert outcome.receipt.leaf.envelope == large


# --- checkpoints, entries, proofs ----------------------------------------------------------


def test_checkpoint_state_moves_forward(node: Node, tmp_path: Path) -> None:
    with node.client(state_dir=tmp_path) as client:
        first = client.checkpoint()
        client.submit(assay())
        second = client.checkpoint()
    assert second.checkpoint.size > first.checkpoint.size
    saved = VerifiedState(tmp_path, node.log_key).load()
    assert saved == second.checkpoint


def forged_state(node: Node, directory: Path, size: int) -> bytes:
    """A checkpoint of another log under the same origin and key, saved as trusted; the
    state file's bytes."""
    note = sign_checkpoint(Checkpoint(ORIGIN, size, b"\x42" * 32), node.log_signer)
    state = VerifiedState(directory, node.log_key)
    state.advance(note)
    return state.path.read_bytes()


@pytest.mark.parametrize("size", [10, SAMPLE_SIZE, 1_000_000])
def test_checkpoint_refuses_a_log_that_does_not_contain_the_saved_one(
    node: Node, tmp_path: Path, size: int
) -> None:
    with node.client() as client:
        current = client.checkpoint().checkpoint.size
    # A fork at a size below, at, or beyond the node's: the node's log does not contain it.
    saved = forged_state(node, tmp_path, current if size == SAMPLE_SIZE else size)
    with node.client(state_dir=tmp_path) as client, pytest.raises(ConsistencyProofError):
        client.checkpoint()
    assert VerifiedState(tmp_path, node.log_key).path.read_bytes() == saved  # left as it was


def test_receipts_are_checked_against_the_saved_state(busy_node: Node, tmp_path: Path) -> None:
    """A receipt is a view of the log too: one that contradicts the saved checkpoint
    (here another log's) is refused, by submit and by submit_many alike."""
    saved = forged_state(busy_node, tmp_path, 10)
    with busy_node.client(state_dir=tmp_path) as client:
        with pytest.raises(ConsistencyProofError):
            client.submit(assay(), [partner_signer(BOTHNIA).public_key])
        with pytest.raises(ConsistencyProofError):
            list(client.submit_many(with_key(assay()) for _ in range(3)))
    assert VerifiedState(tmp_path, busy_node.log_key).path.read_bytes() == saved
    fresh = tmp_path / "fresh"
    with busy_node.client(state_dir=fresh) as client:
        first = client.submit(assay(), [partner_signer(BOTHNIA).public_key])
        assert VerifiedState(fresh, busy_node.log_key).load() == first.checkpoint.checkpoint
        outcomes = list(client.submit_many(with_key(assay()) for _ in range(3)))
    newest = max(
        (o.receipt.checkpoint.checkpoint for o in outcomes if o.receipt is not None),
        key=lambda checkpoint: checkpoint.size,
    )
    assert VerifiedState(fresh, busy_node.log_key).load() == newest


def test_a_checkpoint_proven_once_is_not_proven_again(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The saved state is read, and a checkpoint proven consistent with it, once per
    checkpoint new to the client, not once per receipt or call that shows the same one."""
    loads = proofs = 0
    real_load, real_consistent = CheckpointState.load, ClientCore.consistent

    def counted_load(self: CheckpointState) -> Checkpoint | None:
        nonlocal loads
        loads += 1
        return real_load(self)

    def counted_consistent(
        self: ClientCore, trusted: Checkpoint, signed: SignedCheckpoint
    ) -> Plan[ConsistencyProof]:
        nonlocal proofs
        proofs += 1
        return (yield from real_consistent(self, trusted, signed))

    monkeypatch.setattr(CheckpointState, "load", counted_load)
    monkeypatch.setattr(ClientCore, "consistent", counted_consistent)
    with node.client(state_dir=tmp_path) as client:
        first = client.checkpoint()
        assert (loads, proofs) == (1, 0)  # nothing saved yet: nothing to prove against
        again = client.checkpoint()  # the node has not moved
        assert again.checkpoint == first.checkpoint
        assert (loads, proofs) == (1, 0)
    with node.client(state_dir=tmp_path) as client:  # a new client proves it once itself
        client.checkpoint()
        assert (loads, proofs) == (2, 1)
        # A new checkpoint (this receipt's) is proven against what this client saved
        # last, which the file still holds: no separate read (the compare-and-swap reads
        # it under the lock) and one proof.
        receipt = client.submit(assay(), [partner_signer(BOTHNIA).public_key])
        assert (loads, proofs) == (2, 2)
    assert VerifiedState(tmp_path, node.log_key).load() == receipt.checkpoint.checkpoint


def test_clients_sharing_a_state_directory_each_advance_it(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One client's saved checkpoint moved by another since: its save is refused
    (compare-and-swap), it reads the file, proves the new checkpoint against that, saves."""
    swaps: list[bool] = []
    real_advance = CheckpointState.advance_from

    def recorded(
        self: CheckpointState, expected: Checkpoint | None, signed: SignedCheckpoint
    ) -> bool:
        swaps.append(real_advance(self, expected, signed))
        return swaps[-1]

    monkeypatch.setattr(CheckpointState, "advance_from", recorded)
    key = [partner_signer(BOTHNIA).public_key]
    with node.client(state_dir=tmp_path) as first, node.client(state_dir=tmp_path) as second:
        first.checkpoint()
        moved = second.submit(assay(), key)  # the file moves past what ``first`` saved
        assert swaps == [True, True]
        latest = first.submit(assay(), key)
        assert swaps == [True, True, False, True]  # refused once, then saved
    assert latest.checkpoint.checkpoint.size > moved.checkpoint.checkpoint.size
    assert VerifiedState(tmp_path, node.log_key).load() == latest.checkpoint.checkpoint


def test_entry_and_proofs_are_tied_to_signed_checkpoints(node: Node) -> None:
    with node.client() as client:
        entry = client.entry(5)
        assert entry.leaf.index == 5
        assert entry.inclusion is not None
        signed = client.inclusion_proof(3, SAMPLE_SIZE)
        assert signed.bridge is None  # a checkpoint was signed at 55
        assert signed.checkpoint.checkpoint.size == SAMPLE_SIZE
        unsigned = client.inclusion_proof(3, 40)
        assert unsigned.bridge is not None  # no checkpoint at 40: bridged to the latest
        assert unsigned.bridge.old_root == unsigned.proof.root
        consistency = client.consistency_proof(10)
        assert consistency.proof.old_size == 10
        assert consistency.checkpoint.checkpoint.size == consistency.proof.new_size
        whole = list(client.entries(0, checkpoint=consistency.checkpoint))
        assert [e.index for e in whole] == list(range(consistency.proof.new_size))
        part = list(client.entries(50, SAMPLE_SIZE))
        assert [e.index for e in part] == list(range(50, SAMPLE_SIZE))
        with pytest.raises(InvalidRangeError) as inverted:  # as the node would refuse it
            list(client.entries(5, 3))
        assert inverted.value.reason == "INVALID_RANGE"


def test_entries_catch_a_lying_stream(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    with node.client() as client:

        def drop_the_third(message: ledger_service_pb2.GetEntriesResponse) -> None:
            del message.entries[2]

        real_entries = client._ledger.GetEntries
        monkeypatch.setattr(client._ledger, "GetEntries", rewriting(real_entries, drop_the_third))
        with pytest.raises(LogIntegrityError) as caught:
            list(client.entries(0, SAMPLE_SIZE))
    assert caught.value.index == 2


# --- follow ------------------------------------------------------------------------------


def test_follow_picks_up_entries_appended_after_it_started(node: Node) -> None:
    with node.client() as client:
        size = client.checkpoint().checkpoint.size
        following = client.follow(0)
        with contextlib.closing(following):
            for entry in following:
                if entry.index == size - 1:
                    break
            appended = client.submit(assay())
            while (entry := next(following)).index < appended.receipt.index:
                pass
    assert entry.index == appended.receipt.index
    assert entry.leaf.raw == appended.receipt.leaf
    assert entry.checkpoint.checkpoint.size > entry.index


def follow_until(client: PartnerClient, start: int, last: int) -> list[LogEntry]:
    """Follow from ``start`` until leaf ``last`` (bounded: a stream that should have been
    refused does not hang the test), collecting what was yielded before any refusal."""
    seen: list[LogEntry] = []
    following = client.follow(start)
    with contextlib.closing(following):
        try:
            for entry in following:
                seen.append(entry)
                if entry.index >= last:
                    break
        except CustodyError as exc:
            exc.add_note(f"yielded before the refusal: {[e.index for e in seen]}")
            raise
    return seen


@pytest.mark.parametrize(
    "lie",
    [
        "replaced leaf",
        "forged root, the real proof",
        "forged root, no proof",
        "forged root, a proof to the forged root",
    ],
)
def test_follow_catches_a_lying_node(node: Node, monkeypatch: pytest.MonkeyPatch, lie: str) -> None:
    # Even an operator holding the log key cannot sign a root that is not the root of
    # the leaves it serves: the message's last leaf must be proven in the signed tree.
    forged_root = b"\x42" * 32
    forged = sign_checkpoint(Checkpoint(ORIGIN, SAMPLE_SIZE, forged_root), node.log_signer)
    with node.client() as client:
        leaf_7 = client.entry(7).raw
        real_proof = client.inclusion_proof(SAMPLE_SIZE - 1, SAMPLE_SIZE).proof
        to_forged_root = inclusion_to_proto(dataclasses.replace(real_proof, root=forged_root))

        def lie_in(message: ledger_service_pb2.FollowResponse) -> None:
            if lie == "replaced leaf":
                if message.entries and message.entries[0].index == 0:
                    message.entries[9].leaf = leaf_7
                return
            del message.entries[SAMPLE_SIZE:]
            message.checkpoint = forged
            if lie == "forged root, no proof":
                message.ClearField("last_entry_proof")
            elif lie == "forged root, a proof to the forged root":
                message.last_entry_proof.CopyFrom(to_forged_root)

        monkeypatch.setattr(client._ledger, "Follow", rewriting(client._ledger.Follow, lie_in))
        with pytest.raises(VerificationError) as caught:
            follow_until(client, 0, SAMPLE_SIZE - 1)
    assert "yielded before the refusal: []" in str(caught.value.__notes__)
    if lie == "replaced leaf":
        assert isinstance(caught.value, LogIntegrityError)
        assert caught.value.index == 9
    else:
        assert isinstance(caught.value, InclusionProofError)


@pytest.mark.parametrize("proof", ["the real proof", "a proof of the forged last leaf"])
def test_follow_refuses_chained_leaves_that_are_not_in_the_signed_tree(
    node: Node, monkeypatch: pytest.MonkeyPatch, proof: str
) -> None:
    """Leaves that decode, name their index, carry valid signatures and continue each
    other's hash chain, but are not the tree's: refused before any of them is yielded,
    from a start index other than 0 too."""
    start = SAMPLE_SIZE - 5

    def rechain(message: ledger_service_pb2.FollowResponse) -> None:
        if not message.entries or message.entries[0].index != start:
            return
        chain = decode_leaf(message.entries[0].leaf).prev_chain_hash
        for entry in message.entries:
            leaf = decode_leaf(entry.leaf)
            entry.leaf = encode_leaf(
                index=leaf.index,
                integration_time_micros=leaf.integration_time_micros + 1,
                prev_chain_hash=chain,
                envelope=leaf.envelope,
                signer_keys=leaf.signer_keys,
                subject_links=leaf.subject_links,
            )
            chain = chain_hash(chain, merkle.leaf_hash(entry.leaf))
        if proof == "a proof of the forged last leaf":
            message.last_entry_proof.leaf_hash = merkle.leaf_hash(message.entries[-1].leaf)

    with node.client() as client:
        size = client.checkpoint().checkpoint.size
        monkeypatch.setattr(client._ledger, "Follow", rewriting(client._ledger.Follow, rechain))
        with pytest.raises(VerificationError) as caught:
            follow_until(client, start, size - 1)
    assert "yielded before the refusal: []" in str(caught.value.__notes__)
    if proof == "the real proof":
        assert isinstance(caught.value, LogIntegrityError)
        assert caught.value.index == size - 1  # the proven leaf is another
    else:
        assert isinstance(caught.value, InclusionProofError)


def test_follow_checks_each_new_checkpoint_against_the_saved_state(
    node: Node, tmp_path: Path
) -> None:
    with node.client() as client:
        size = client.checkpoint().checkpoint.size
    trusted, forked = tmp_path / "trusted", tmp_path / "forked"
    with node.client(state_dir=trusted) as client:
        following = client.follow(size - 1)
        with contextlib.closing(following):
            assert next(following).index == size - 1
            with node.client() as elsewhere:  # no state: only Follow moves this client's
                appended = elsewhere.submit(assay())
            while next(following).index < appended.receipt.index:
                pass
    saved = VerifiedState(trusted, node.log_key).load()
    assert saved is not None  # followed forward, one consistency proof per new size
    assert saved.size > appended.receipt.index

    forged_state(node, forked, size + 1)  # a checkpoint of another log under the same key
    with node.client(state_dir=forked) as client, pytest.raises(ConsistencyProofError) as caught:
        follow_until(client, size - 1, size - 1)
    assert "yielded before the refusal: []" in str(caught.value.__notes__)


# --- FollowVerifier on logs built here ------------------------------------------------------

FAKE_ORIGIN = "fake.test/log"


class FakeLog:
    """A log built in the test: leaves of real signed entries, chained, with Merkle proofs
    and checkpoints signed by ``signer``. Leaves from ``fork_at`` on get another time,
    so two FakeLogs over the same envelopes share the leaves before ``fork_at``."""

    def __init__(self, signer: NoteSigner, envelopes: Sequence[Envelope], fork_at: int) -> None:
        self.signer = signer
        self.leaves: list[bytes] = []
        keys = [partner_signer(BOTHNIA).public_key]
        chain = ZERO_HASH
        for index, envelope in enumerate(envelopes):
            raw = encode_leaf(
                index=index,
                integration_time_micros=index + (1_000 if index >= fork_at else 0),
                prev_chain_hash=chain,
                envelope=envelope,
                signer_keys=keys,
            )
            chain = chain_hash(chain, merkle.leaf_hash(raw))
            self.leaves.append(raw)

    def root(self, begin: int, end: int) -> bytes:
        tree = CompactRange()
        for raw in self.leaves[begin:end]:
            tree.append(merkle.leaf_hash(raw))
        return tree.root()

    def nodes(self, ids: Collection[NodeId]) -> Mapping[NodeId, bytes]:
        return {node_id: self.root(node_id.begin, node_id.end) for node_id in ids}

    def proof(self, index: int, size: int) -> InclusionProof:
        return merkle.build_inclusion_proof(index, size, self.nodes)

    def message(
        self, start: int, end: int, size: int, *, prove: bool = True
    ) -> ledger_service_pb2.FollowResponse:
        """Leaves [start, end) with the checkpoint of ``size`` and the last leaf's proof."""
        message = ledger_service_pb2.FollowResponse(
            entries=[log_pb2.Entry(index=i, leaf=self.leaves[i]) for i in range(start, end)],
            checkpoint=sign_checkpoint(
                Checkpoint(FAKE_ORIGIN, size, self.root(0, size)), self.signer
            ),
        )
        if prove and end > start:
            message.last_entry_proof.CopyFrom(inclusion_to_proto(self.proof(end - 1, size)))
        return message


@pytest.fixture(scope="module")
def fake_logs() -> tuple[FakeLog, FakeLog]:
    """Two logs under one key, equal up to index 3, different from index 4 on."""
    signer = NoteSigner(FAKE_ORIGIN, generate_private_key())
    envelopes = [assay() for _ in range(64)]
    return FakeLog(signer, envelopes, 64), FakeLog(signer, envelopes, 4)


def test_follow_verifier_ties_every_message_to_its_checkpoint_from_any_start(
    fake_logs: tuple[FakeLog, FakeLog],
) -> None:
    log, _ = fake_logs
    verifier = FollowVerifier(log.signer.verifier_key(), 3)
    steps = [
        verifier.accept(log.message(3, 6, 6)),
        verifier.accept(log.message(6, 6, 8)),  # a checkpoint alone
        verifier.accept(log.message(6, 9, 12)),  # a catch-up in two messages under one
        verifier.accept(log.message(9, 12, 12)),
    ]
    assert [e.index for step in steps for e in step.entries] == list(range(3, 12))
    assert [step.new_size for step in steps] == [True, True, True, False]
    for step in (steps[0], steps[2], steps[3]):
        last = step.entries[-1]
        assert last.inclusion is not None
        assert last.inclusion.index == last.index
        assert last.checkpoint is step.checkpoint


@pytest.mark.parametrize(
    ("lie", "expected"),
    [
        ("chain broken between messages", LogIntegrityError),
        ("a gap between messages", LogIntegrityError),
        ("checkpoint goes back", ConsistencyProofError),
        ("checkpoint goes back, no leaves", ConsistencyProofError),
        ("two roots for one size", ConsistencyProofError),
        ("no proof", InclusionProofError),
        ("leaves beyond the checkpoint", InclusionProofError),
        ("proof of another leaf", InclusionProofError),
    ],
)
def test_follow_verifier_refuses(
    fake_logs: tuple[FakeLog, FakeLog], lie: str, expected: type[VerificationError]
) -> None:
    log, fork = fake_logs
    verifier = FollowVerifier(log.signer.verifier_key(), 2)
    verifier.accept(log.message(2, 6, 6))
    bad: dict[str, Callable[[], ledger_service_pb2.FollowResponse]] = {
        # The fork's leaves 6.. are proven in the fork's tree but do not continue leaf 5.
        "chain broken between messages": lambda: fork.message(6, 10, 10),
        "a gap between messages": lambda: log.message(7, 10, 10),
        "checkpoint goes back": lambda: log.message(6, 7, 5, prove=False),
        "checkpoint goes back, no leaves": lambda: log.message(6, 6, 5),
        "two roots for one size": lambda: fork.message(6, 6, 6),
        "no proof": lambda: log.message(6, 10, 10, prove=False),
        "leaves beyond the checkpoint": lambda: proven_by(
            log.message(6, 10, 8, prove=False), log.proof(7, 8)
        ),
        "proof of another leaf": lambda: proven_by(log.message(6, 10, 10), log.proof(8, 10)),
    }
    with pytest.raises(expected):
        verifier.accept(bad[lie]())


def proven_by(
    message: ledger_service_pb2.FollowResponse, proof: InclusionProof
) -> ledger_service_pb2.FollowResponse:
    message.last_entry_proof.CopyFrom(inclusion_to_proto(proof))
    return message


def held_items(obj: object) -> int:
    """Items in the containers an object holds in its attributes, one level down too."""
    total = 0
    for value in vars(obj).values():
        if isinstance(value, list | tuple | dict | set | frozenset) or type(value).__name__ == (
            "deque"
        ):
            total += len(value)
        elif hasattr(value, "__dict__") and type(value).__module__.startswith("clients."):
            total += held_items(value)
    return total


def test_follow_verifier_state_does_not_grow_with_empty_messages(
    fake_logs: tuple[FakeLog, FakeLog],
) -> None:
    log, _ = fake_logs
    verifier = FollowVerifier(log.signer.verifier_key(), 0)
    for size in range(1, 9):
        verifier.accept(log.message(0, 0, size))
    early = held_items(verifier)
    for size in range(9, 65):
        verifier.accept(log.message(0, 0, size))
    assert held_items(verifier) == early
    step = verifier.accept(log.message(0, 64, 64))  # and the leaves still follow
    assert [e.index for e in step.entries] == list(range(64))


def test_submit_many_stops_cleanly_when_the_caller_stops(node: Node) -> None:
    with node.client() as client:
        outcomes = client.submit_many((with_key(assay()) for _ in range(10)), window=2)
        first = next(iter(outcomes))
        outcomes.close()
        assert first.ok
        assert client.checkpoint().checkpoint.size > first.receipt.receipt.index  # type: ignore[union-attr]


# --- registry and provenance -----------------------------------------------------------------


def test_registry_lot_and_trace(node: Node) -> None:
    with node.client(BALTIC) as client:
        registry = client.registry(SAMPLE_SIZE)
        assert sorted(p.partner_id for p in registry.partners) == sorted(sample_partner_ids())
        assert client.partner(BOTHNIA).partner.partner_id == BOTHNIA
        assert client.lot(FINAL_LOT_ID).lot.holder_id == BALTIC
        traced = client.trace(FINAL_LOT_ID)
    assert traced.verified.lot_id == FINAL_LOT_ID
    assert FINAL_LOT_ID in traced.verified.upstream_lot_ids
    cobalt = next(c for c in traced.composition if c.element == "Co")
    assert {o.key: o.share_ppm for o in cobalt.origins} == {
        key: share.share_ppm for key, share in EXPECTED_COBALT_ORIGINS.items()
    }


# --- asyncio -----------------------------------------------------------------------------------


def test_async_client(node: Node, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with node.async_client(state_dir=tmp_path) as client:
            first = await client.checkpoint()
            envelope = assay()
            verified = await client.submit(envelope)
            again = await client.submit(envelope)
            assert again.receipt.duplicate
            assert again.receipt.index == verified.receipt.index
            big, keys = big_assay(), [partner_signer(BOTHNIA).public_key]
            big_first = await client.submit(big, keys)
            big_again = await client.submit(big, keys)  # rebuilt from GetEntry and a proof
            assert big_again.receipt.duplicate
            assert big_again.receipt.leaf == big_first.receipt.leaf
            with pytest.raises(AdmissionRuleError) as refused:
                await client.submit(assay(lot_id="NO-SUCH-LOT"))
            assert refused.value.rule is Rule.UNKNOWN_LOT
            entry = await client.entry(verified.receipt.index)
            assert entry.leaf.envelope.digest() == envelope.digest()
            second = await client.checkpoint()
            assert second.checkpoint.size > first.checkpoint.size
            traced = await client.trace(FINAL_LOT_ID)
            assert traced.verified.lot_id == FINAL_LOT_ID
            tail = [e.index async for e in client.entries(SAMPLE_SIZE - 3, SAMPLE_SIZE)]
            assert tail == [SAMPLE_SIZE - 3, SAMPLE_SIZE - 2, SAMPLE_SIZE - 1]

    asyncio.run(scenario())
    assert VerifiedState(tmp_path, node.log_key).load() is not None


def test_async_submit_many_with_backpressure(node: Node) -> None:
    envelopes = [assay() for _ in range(20)]
    envelopes[5] = assay(lot_id="NO-SUCH-LOT")
    source = CountingInput(envelopes)

    async def items() -> AsyncIterator[SubmitItem]:
        for item in source:
            yield item

    async def scenario() -> list[SubmitOutcome]:
        async with node.async_client() as client:
            return [source.answer(o) async for o in client.submit_many(items(), window=3)]

    outcomes = asyncio.run(scenario())
    assert source.max_in_flight == 3  # the window, used whole and never exceeded
    assert sorted(o.position for o in outcomes) == list(range(20))
    errors = {o.position: o.error for o in outcomes if o.error is not None}
    assert list(errors) == [5]
    assert isinstance(errors[5], AdmissionRuleError)


def test_async_submit_many_packs_entries_and_sends_a_large_one_alone(
    busy_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    large = larger_than_a_message()
    envelopes = [*(assay() for _ in range(150)), large, *(assay() for _ in range(150))]

    async def scenario() -> tuple[SentMessages, list[SubmitOutcome]]:
        async with busy_node.async_client() as client:
            sent = SentMessages.on(client, monkeypatch)
            return sent, [o async for o in client.submit_many(with_key(e) for e in envelopes)]

    sent, outcomes = asyncio.run(scenario())
    assert sorted(sent.sequences) == list(range(len(envelopes)))
    assert len(sent.messages) < len(envelopes)
    assert max(len(sequences) for sequences, _ in sent.messages) > 1
    (alone,) = [(sequences, size) for sequences, size in sent.messages if 150 in sequences]
    assert alone[0] == [150]
    assert alone[1] > MESSAGE_BYTES
    sent.check_packing(DEFAULT_WINDOW)
    assert_outcomes_match(outcomes, envelopes)


def test_async_follow_picks_up_new_entries(node: Node) -> None:
    async def scenario() -> None:
        async with node.async_client() as client:
            size = (await client.checkpoint()).checkpoint.size
            following = client.follow(size - 1)  # from elsewhere than 0: chain checks only
            async with contextlib.aclosing(following):
                first = await anext(following)
                assert first.index == size - 1
                appended = await client.submit(assay())
                async for entry in following:
                    if entry.index == appended.receipt.index:
                        assert entry.leaf.raw == appended.receipt.leaf
                        return
            raise AssertionError("follow ended before the new entry")

    asyncio.run(asyncio.wait_for(scenario(), 30))
