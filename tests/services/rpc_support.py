"""Helpers for the node's tests: refusals and their ErrorInfo, the log's state, signed events.

Every refusal is read the way a client in any language would: the status code
and the ``google.rpc.ErrorInfo`` detail of the ``grpc-status-details-bin``
trailer. ``unchanged`` asserts that a refused call appended nothing: the
stored tree size and the latest signed checkpoint are byte for byte the same.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2
from grpc_status import rpc_status

from clients.sample.consortium import (
    LCC_PIT,
    LUALABA,
    SAMPLE_PARTNERS,
    element_contents,
    partner_signer,
)
from custody.v1 import (
    event_pb2,
    ledger_service_pb2,
    ledger_service_pb2_grpc,
    log_pb2,
    provenance_service_pb2_grpc,
    registry_service_pb2_grpc,
)
from ledger.admission import Submission
from ledger.custody_rules import CustodyRules
from ledger.domain.records import EVENT_PAYLOAD_TYPE
from ledger.dsse import Envelope, sign_envelope
from ledger.errors import CustodyError
from ledger.keys import load_private_key
from ledger.leaf import envelope_to_proto
from ledger.note import NoteSigner, VerifierKey
from ledger.receipts import Receipt, VerifiedReceipt, verify_receipt
from ledger.sequencer import Sequencer
from ledger.storage import LogStore
from ledger.storage.database import sqlite_url
from ledger.wire import ERROR_DOMAIN, receipt_from_proto
from tests.services.node_support import ORIGIN, Ledger, NodeThread, Pki, make_ledger

Code = grpc.StatusCode
SAMPLE_SIZE = 55
"""Entries in the sample log (``clients.sample.consortium.sample_entries``)."""
SAMPLE_IDS = tuple(partner.partner_id for partner in SAMPLE_PARTNERS)


# --- refusals ---------------------------------------------------------------------------


def status_of(error: grpc.RpcError) -> status_pb2.Status | None:
    """The rich status (google.rpc.Status) a failed call carries, if any."""
    status: status_pb2.Status | None = rpc_status.from_call(cast(grpc.Call, error))
    return status


def error_infos(error: grpc.RpcError) -> list[Any]:
    """Every ErrorInfo detail of a failed call, in order."""
    status = status_of(error)
    if status is None:
        return []
    infos = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    return infos


def refusal(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    """(status code, ErrorInfo reason) of a refused call; exactly one ErrorInfo of our domain."""
    call = cast(grpc.Call, error)
    infos = error_infos(error)
    assert len(infos) == 1, f"{call.code()} {call.details()!r}: ErrorInfo details {infos}"
    assert infos[0].domain == ERROR_DOMAIN
    return call.code(), str(infos[0].reason)


def refused(call: Callable[[], object], code: grpc.StatusCode, reason: str | None) -> grpc.RpcError:
    """Make the call, which must fail with ``code`` and (unless None) the ErrorInfo ``reason``."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    error = caught.value
    if reason is None:
        assert cast(grpc.Call, error).code() == code, cast(grpc.Call, error).details()
    else:
        assert refusal(error) == (code, reason), cast(grpc.Call, error).details()
    return error


# --- the log's state --------------------------------------------------------------------


@dataclass(frozen=True)
class LogState:
    """What a refused call must leave as it was."""

    tree_size: int
    leaf_rows: int
    checkpoint: bytes


def log_state(node: NodeThread) -> LogState:
    """The stored state, read from the node's database (not through the API)."""
    store = node.node.store
    latest = store.latest_checkpoint()
    assert latest is not None
    return LogState(store.size(), store.leaf_count(), latest.note)


@contextmanager
def unchanged(node: NodeThread) -> Iterator[LogState]:
    """Assert that nothing was appended (size, rows and latest checkpoint) inside the block."""
    before = log_state(node)
    yield before
    assert log_state(node) == before
    assert node.node.sequencer.size == before.tree_size


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


# --- connections ------------------------------------------------------------------------


@dataclass(frozen=True)
class Stubs:
    """One channel and the three Custody service stubs on it."""

    channel: grpc.Channel
    ledger: ledger_service_pb2_grpc.LedgerServiceStub
    registry: registry_service_pb2_grpc.RegistryServiceStub
    provenance: provenance_service_pb2_grpc.ProvenanceServiceStub

    @classmethod
    def on(cls, channel: grpc.Channel) -> Stubs:
        return cls(
            channel,
            ledger_service_pb2_grpc.LedgerServiceStub(channel),
            registry_service_pb2_grpc.RegistryServiceStub(channel),
            provenance_service_pb2_grpc.ProvenanceServiceStub(channel),
        )


class Connections:
    """Channels to one node as the partner a certificate names, opened once and reused."""

    def __init__(self, node: NodeThread, pki: Pki) -> None:
        self.node = node
        self.pki = pki
        self._open: dict[tuple[str | None, bool], Stubs] = {}

    def __call__(self, partner_id: str | None, *, foreign: bool = False) -> Stubs:
        key = (partner_id, foreign)
        if key not in self._open:
            credentials = self.pki.channel_credentials(partner_id, foreign=foreign)
            self._open[key] = Stubs.on(grpc.secure_channel(self.node.address, credentials))
        return self._open[key]

    def close(self) -> None:
        for stubs in self._open.values():
            stubs.channel.close()
        self._open.clear()

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def new_ledger(directory: Path, *, with_sample: bool = True) -> Ledger:
    return make_ledger(directory, sqlite_url(directory / "custody.db"), with_sample=with_sample)


def log_verifier_key(ledger: Ledger) -> VerifierKey:
    """The log's verifier key, derived from its signing key file (not asked of the node)."""
    return NoteSigner(ORIGIN, load_private_key(ledger.log_key)).verifier_key()


# --- entries ----------------------------------------------------------------------------


def new_id(prefix: str = "test") -> str:
    return f"urn:{prefix}:{uuid.uuid4()}"


def event(
    partner_id: str, body: Message, *, event_id: str | None = None, when: int | None = None
) -> event_pb2.Event:
    """An event recorded by ``partner_id`` an hour ago (or at ``when``)."""
    message = event_pb2.Event(event_id=event_id or new_id("event"), partner_id=partner_id)
    message.event_time.seconds = int(time.time()) - 3600 if when is None else when
    getattr(message, body.DESCRIPTOR.name.lower()).CopyFrom(body)
    return message


def signed(
    message: Message, signer_ids: Sequence[str], payload_type: str = EVENT_PAYLOAD_TYPE
) -> Envelope:
    """``message`` serialised once and signed by each sample partner's key."""
    return sign_envelope(
        payload_type, message.SerializeToString(), [partner_signer(p) for p in signer_ids]
    )


def signed_event(partner_id: str, body: Message, **kwargs: Any) -> Envelope:
    """An event of ``partner_id`` signed with its sample key."""
    return signed(event(partner_id, body, **kwargs), [partner_id])


def append_request(
    envelope: Envelope, signer_ids: Sequence[str] = (), *, with_keys: bool = True
) -> ledger_service_pb2.AppendRequest:
    """The envelope with its signers' public keys (or none: the node looks them up)."""
    keys = [partner_signer(p).public_key for p in signer_ids] if with_keys else []
    return ledger_service_pb2.AppendRequest(envelope=envelope_to_proto(envelope), public_keys=keys)


def stream_entry(
    sequence: int, envelope: Envelope | None, signer_ids: Sequence[str] = ()
) -> ledger_service_pb2.StreamEntry:
    """One entry of an AppendStream message (no envelope at all when ``envelope`` is None),
    with its signers' public keys (or none: the node looks them up)."""
    keys = [partner_signer(p).public_key for p in signer_ids]
    if envelope is None:
        return ledger_service_pb2.StreamEntry(sequence=sequence, public_keys=keys)
    return ledger_service_pb2.StreamEntry(
        sequence=sequence, envelope=envelope_to_proto(envelope), public_keys=keys
    )


def stream_message(
    entries: Iterable[ledger_service_pb2.StreamEntry],
) -> ledger_service_pb2.AppendStreamRequest:
    """One AppendStream message carrying ``entries`` (none: an empty message)."""
    return ledger_service_pb2.AppendStreamRequest(entries=list(entries))


def stream_request(sequence: int, envelope: Envelope) -> ledger_service_pb2.AppendStreamRequest:
    """A message carrying one entry."""
    return stream_message([stream_entry(sequence, envelope)])


def stream_outcomes(
    responses: Iterable[ledger_service_pb2.AppendStreamResponse],
) -> list[ledger_service_pb2.StreamOutcome]:
    """Every outcome of the responses, in the order they came."""
    return [outcome for response in responses for outcome in response.outcomes]


def outcomes_by_sequence(
    outcomes: Sequence[ledger_service_pb2.StreamOutcome],
) -> dict[int, ledger_service_pb2.StreamOutcome]:
    """The outcomes by sequence number; each sequence must be answered exactly once."""
    by_sequence = {outcome.sequence: outcome for outcome in outcomes}
    assert len(by_sequence) == len(outcomes), sorted(o.sequence for o in outcomes)
    return by_sequence


def extraction(lot_id: str | None = None, mass_grams: int = 1_000_000) -> event_pb2.Extraction:
    """A valid extraction of cobalt hydroxide at Lualaba's pit (record it as ``LUALABA``)."""
    return event_pb2.Extraction(
        facility_id=LCC_PIT,
        lot_id=lot_id or new_id("lot"),
        material="cobalt hydroxide",
        mass_grams=mass_grams,
        contents=element_contents(Co=300_000, Cu=25_000),
    )


def lualaba_extraction(lot_id: str | None = None) -> Envelope:
    """A signed, valid extraction by Lualaba."""
    return signed_event(LUALABA, extraction(lot_id))


def verified(
    receipt: log_pb2.AppendReceipt, envelope: Envelope, log_key: VerifierKey
) -> VerifiedReceipt:
    """The receipt as the SDK would check it: decoded strictly, then verified."""
    parsed: Receipt = receipt_from_proto(receipt)
    return verify_receipt(parsed, log_key, envelope.digest())


def append_locally(ledger: Ledger, envelopes: Sequence[Envelope]) -> None:
    """Append entries straight through a local sequencer (no node running on the ledger)."""
    store = LogStore.open(ledger.url, migrate=False)
    try:
        signer = NoteSigner(ORIGIN, load_private_key(ledger.log_key))
        sequencer = Sequencer(store, signer, rules=CustodyRules(store), verify_threads=1)
        try:
            outcomes = sequencer.append_batch(
                [Submission.of(envelope, registry_keys(envelope)) for envelope in envelopes]
            )
        finally:
            sequencer.close()
    finally:
        store.close()
    refusals = [outcome for outcome in outcomes if isinstance(outcome, CustodyError)]
    assert not refusals, refusals


def registry_keys(envelope: Envelope) -> list[bytes]:
    """The sample public keys of the envelope's signers (every sample partner's one key)."""
    by_keyid = {partner_signer(p).keyid: partner_signer(p).public_key for p in SAMPLE_IDS}
    return [by_keyid[signature.keyid] for signature in envelope.signatures]


# --- health checking ---------------------------------------------------------------


# grpc_health's HealthStub is untyped: its calls are made here, typed, from these
# (request serializer, response parser).
_HEALTH_CODECS = (
    health_pb2.HealthCheckRequest.SerializeToString,
    health_pb2.HealthCheckResponse.FromString,
)


def health_check(
    channel: grpc.Channel,
) -> grpc.UnaryUnaryMultiCallable[health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse]:
    return channel.unary_unary("/grpc.health.v1.Health/Check", *_HEALTH_CODECS)


def health_watch(
    channel: grpc.Channel,
) -> grpc.UnaryStreamMultiCallable[health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse]:
    return channel.unary_stream("/grpc.health.v1.Health/Watch", *_HEALTH_CODECS)


def raw_unary(channel: grpc.Channel, method: str) -> Callable[[bytes], bytes]:
    call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        method, request_serializer=None, response_deserializer=None
    )

    def send(request: bytes) -> bytes:
        return call(request, timeout=20)

    return send
