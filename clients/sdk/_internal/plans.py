"""Every unary operation of the SDK, written once, free of I/O.

An operation is a *plan*: a generator that yields the effects it needs (a unary
call to the node, or blocking local work such as reading the state file or
verifying a large bundle) and receives their results, or has the call's
translated ``CustodyError`` thrown into it. ``PartnerClient`` runs plans with
blocking calls, ``AsyncPartnerClient`` with ``await``; the requests they build,
the order of the calls and every check are the same code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from google.protobuf.message import Message

from clients.sdk._internal.errors import AlreadyLoggedError
from clients.sdk._internal.results import (
    LogEntry,
    TraceResult,
    VerifiedConsistency,
    VerifiedInclusion,
)
from clients.sdk._internal.state import CheckpointState
from clients.sdk._internal.verify import (
    FollowVerifier,
    RangeAnchor,
    check_bridge,
    check_inclusion,
    check_signed_root,
    checkpoints_in_order,
    consistency_of,
    inclusion_of,
    local_consistency,
    signed_checkpoint,
    verified_bundle,
    verified_leaf,
    verified_receipt,
)
from custody.v1 import (
    ledger_service_pb2,
    ledger_service_pb2_grpc,
    log_pb2,
    provenance_service_pb2,
    provenance_service_pb2_grpc,
    registry_service_pb2,
    registry_service_pb2_grpc,
)
from ledger.checkpoint import Checkpoint, SignedCheckpoint
from ledger.dsse import Envelope
from ledger.errors import (
    ConsistencyProofError,
    InclusionProofError,
    InvalidRangeError,
    LogIntegrityError,
    NotFoundError,
    OutOfRangeError,
    VerificationError,
)
from ledger.leaf import envelope_to_proto
from ledger.merkle import ConsistencyProof
from ledger.note import VerifierKey
from ledger.receipts import VerifiedReceipt

R = TypeVar("R", bound=Message)
T = TypeVar("T")


class Service(Enum):
    LEDGER = "custody.v1.LedgerService"
    REGISTRY = "custody.v1.RegistryService"
    PROVENANCE = "custody.v1.ProvenanceService"


@dataclass(frozen=True)
class UnaryCall(Generic[R]):
    """Call ``method`` of ``service`` with ``request``; the answer is a ``response_type``."""

    service: Service
    method: str
    request: Message
    response_type: type[R]


@dataclass(frozen=True)
class LocalWork(Generic[T]):
    """Blocking local work (file I/O, heavy verification); asyncio runs it in a thread."""

    run: Callable[[], T]


Effect = UnaryCall[Any] | LocalWork[Any]
Plan = Generator[Effect, object, T]


def call(service: Service, method: str, request: Message, response_type: type[R]) -> Plan[R]:
    response = yield UnaryCall(service, method, request, response_type)
    if not isinstance(response, response_type):
        raise TypeError(f"{method} answered {type(response).__name__}")
    return response


def local(work: Callable[[], T]) -> Plan[T]:
    result = yield LocalWork(work)
    return cast(T, result)


def _ledger_call(method: str, request: Message, response_type: type[R]) -> Plan[R]:
    return call(Service.LEDGER, method, request, response_type)


def service_stubs(channel: Any) -> dict[Service, Any]:
    """The three services' stubs on ``channel`` (sync or asyncio: the stubs take either)."""
    return {
        Service.LEDGER: ledger_service_pb2_grpc.LedgerServiceStub(channel),
        Service.REGISTRY: registry_service_pb2_grpc.RegistryServiceStub(channel),
        Service.PROVENANCE: provenance_service_pb2_grpc.ProvenanceServiceStub(channel),
    }


class ClientCore:
    """The log key a client trusts, its optional checkpoint state, and its plans."""

    def __init__(self, log_key: VerifierKey, state: CheckpointState | None) -> None:
        self.log_key = log_key
        self.state = state
        # The last checkpoint ``remember`` proved one log with the saved state. Any later
        # saved state was proven to extend it, so it need not be proven again.
        self._remembered: Checkpoint | None = None

    @classmethod
    def trusting(cls, log_key: VerifierKey, state_dir: Path | None) -> ClientCore:
        """A core trusting ``log_key``, keeping its checkpoint state in ``state_dir`` if any."""
        return cls(log_key, CheckpointState(state_dir, log_key) if state_dir is not None else None)

    # --- appends ---------------------------------------------------------------------

    def submit(
        self, envelope: Envelope, public_keys: Sequence[bytes] | None
    ) -> Plan[VerifiedReceipt]:
        """Append; the receipt (or, for an entry already logged, the original receipt)
        is verified against the log key and this envelope's digest, and its checkpoint
        against the saved state (``remember``), before it is returned."""
        request = ledger_service_pb2.AppendRequest(
            envelope=envelope_to_proto(envelope), public_keys=list(public_keys or ())
        )
        try:
            response = yield from _ledger_call("Append", request, ledger_service_pb2.AppendResponse)
        except AlreadyLoggedError as logged:
            return (yield from self.original_receipt(envelope, logged))
        return (yield from self.kept_receipt(response.receipt, envelope, duplicate=False))

    def kept_receipt(
        self,
        message: log_pb2.AppendReceipt,
        envelope: Envelope,
        *,
        duplicate: bool,
        opened: SignedCheckpoint | None = None,
    ) -> Plan[VerifiedReceipt]:
        """``message`` verified as ``envelope``'s receipt (``verified_receipt``), then its
        checkpoint proven against the saved state (``remember``): every receipt the
        client returns has been through both."""
        receipt = verified_receipt(
            message, envelope, self.log_key, duplicate=duplicate, opened=opened
        )
        yield from self.remember(receipt.checkpoint)
        return receipt

    def original_receipt(
        self, envelope: Envelope, logged: AlreadyLoggedError
    ) -> Plan[VerifiedReceipt]:
        """The original receipt of an entry the node says is logged, verified exactly as
        any receipt (``duplicate`` set): the one the node attached, or, when it left it
        out (it sends only receipts of a few KiB), one built from the leaf at the index
        it named and that leaf's inclusion proof in its latest checkpoint."""
        if logged.original_receipt is not None:
            return (yield from self.kept_receipt(logged.original_receipt, envelope, duplicate=True))
        index = logged.index
        if index is None:
            raise VerificationError(
                "the node says the entry is already logged but sends neither its receipt "
                "nor its index"
            )
        entry = yield from _ledger_call(
            "GetEntry",
            ledger_service_pb2.GetEntryRequest(index=index),
            ledger_service_pb2.GetEntryResponse,
        )
        proof = yield from _ledger_call(
            "GetInclusionProof",
            ledger_service_pb2.GetInclusionProofRequest(index=index),
            ledger_service_pb2.GetInclusionProofResponse,
        )
        rebuilt = log_pb2.AppendReceipt(
            index=index,
            leaf=entry.entry.leaf,
            checkpoint=proof.checkpoint,
            inclusion_proof=proof.proof,
        )
        return (yield from self.kept_receipt(rebuilt, envelope, duplicate=True))

    def stream_original_receipt(
        self, envelope: Envelope, public_keys: Sequence[bytes], logged: AlreadyLoggedError
    ) -> Plan[VerifiedReceipt]:
        """``original_receipt`` for an AppendStream refusal ENTRY_ALREADY_LOGGED. A refusal
        has no field for the index, so without the attached receipt the entry is sent
        again as a unary Append (idempotent), whose ALREADY_EXISTS names the index."""
        if logged.original_receipt is not None or logged.index is not None:
            return (yield from self.original_receipt(envelope, logged))
        return (yield from self.submit(envelope, public_keys))

    # --- checkpoints ------------------------------------------------------------------

    def checkpoint(self) -> Plan[SignedCheckpoint]:
        """The latest checkpoint, signed by the log key and, with a state directory,
        consistent with the newest checkpoint verified before (which then advances)."""
        response = yield from _ledger_call(
            "GetCheckpoint",
            ledger_service_pb2.GetCheckpointRequest(),
            ledger_service_pb2.GetCheckpointResponse,
        )
        signed = signed_checkpoint(bytes(response.checkpoint), self.log_key)
        yield from self.remember(signed)
        return signed

    def remember(self, signed: SignedCheckpoint) -> Plan[None]:
        """With a state directory: require ``signed`` and the saved checkpoint to be one
        log (a consistency proof between them), then keep the newer of the two."""
        state = self.state
        if state is None or signed.checkpoint == self._remembered:
            return
        # What this client saved last is what the file holds unless another client
        # moved it since: then the compare-and-swap fails and the file is read.
        saved = self._remembered
        if saved is None:
            saved = yield from local(state.load)
        while True:
            if saved is not None:
                yield from self.consistent(saved, signed)
            if (yield from local(functools.partial(state.advance_from, saved, signed))):
                # The file now holds the newer of the two: it never moves backwards.
                self._remembered = (
                    signed.checkpoint
                    if saved is None
                    else checkpoints_in_order(saved, signed.checkpoint)[1]
                )
                return
            saved = yield from local(state.load)

    def consistent(self, trusted: Checkpoint, signed: SignedCheckpoint) -> Plan[ConsistencyProof]:
        """Prove that ``trusted`` (verified earlier) and ``signed`` are views of one log:
        the smaller tree is a prefix of the larger. A node that cannot prove it (its tree
        is shorter than ``trusted``: a rollback) or proves otherwise (a fork) is refused."""
        older, newer = checkpoints_in_order(trusted, signed.checkpoint)
        context = (
            f"the node's checkpoint of size {signed.checkpoint.size} and the checkpoint of "
            f"size {trusted.size} verified before are not one log"
        )
        try:
            return (yield from self._prove_prefix(older, newer))
        except ConsistencyProofError as exc:
            raise ConsistencyProofError(f"{context}: {exc}") from exc

    def _prove_prefix(self, older: Checkpoint, newer: Checkpoint) -> Plan[ConsistencyProof]:
        """The consistency proof that ``older`` is a prefix of ``newer``: worked out locally
        when it can be (equal sizes, the empty tree), else fetched and verified."""
        proof = local_consistency(older, newer)
        if proof is not None:
            return proof
        request = ledger_service_pb2.GetConsistencyProofRequest(
            old_size=older.size, new_size=newer.size
        )
        try:
            response = yield from _ledger_call(
                "GetConsistencyProof", request, ledger_service_pb2.GetConsistencyProofResponse
            )
        except (NotFoundError, OutOfRangeError) as exc:
            raise ConsistencyProofError(
                f"the node cannot prove the smaller is a prefix of the larger (rollback?): {exc}"
            ) from exc
        proof = consistency_of(response.proof)
        check_bridge(proof, older.size, older.root_hash, newer)
        return proof

    def _anchor(
        self, size: int, root: bytes, note: bytes
    ) -> Plan[tuple[SignedCheckpoint, ConsistencyProof | None]]:
        """Tie a proof's root at ``size`` to a signed checkpoint: the one signed at that
        size if the node sent it, else the latest one through a consistency proof."""
        if note:
            signed = signed_checkpoint(note, self.log_key)
            check_signed_root(size, root, signed)
            yield from self.remember(signed)
            return signed, None
        latest = yield from self.checkpoint()
        if size > latest.checkpoint.size:
            raise VerificationError(
                f"the node proved against tree size {size}, beyond its signed size "
                f"{latest.checkpoint.size}"
            )
        proved = Checkpoint(latest.checkpoint.origin, size, root)
        bridge = yield from self._prove_prefix(proved, latest.checkpoint)
        return latest, bridge

    # --- reads and proofs -------------------------------------------------------------

    def entry(self, index: int) -> Plan[LogEntry]:
        """One leaf, checked alone and proven in the latest (verified) checkpoint."""
        signed = yield from self.checkpoint()
        size = signed.checkpoint.size
        if index >= size:
            raise OutOfRangeError(f"the log's latest checkpoint covers {size} entries")
        response = yield from _ledger_call(
            "GetEntry",
            ledger_service_pb2.GetEntryRequest(index=index),
            ledger_service_pb2.GetEntryResponse,
        )
        if response.entry.index != index:
            raise LogIntegrityError(
                f"asked for index {index}, the node sent {response.entry.index}", index=index
            )
        leaf = verified_leaf(index, bytes(response.entry.leaf))
        proof_response = yield from _ledger_call(
            "GetInclusionProof",
            ledger_service_pb2.GetInclusionProofRequest(index=index, tree_size=size),
            ledger_service_pb2.GetInclusionProofResponse,
        )
        proof = inclusion_of(proof_response.proof)
        check_inclusion(proof, leaf, signed)
        return LogEntry(index, leaf, signed, proof)

    def inclusion_proof(self, index: int, tree_size: int | None) -> Plan[VerifiedInclusion]:
        request = ledger_service_pb2.GetInclusionProofRequest(index=index)
        if tree_size is not None:
            request.tree_size = tree_size
        response = yield from _ledger_call(
            "GetInclusionProof", request, ledger_service_pb2.GetInclusionProofResponse
        )
        proof = inclusion_of(response.proof)
        if proof.index != index or (tree_size is not None and proof.tree_size != tree_size):
            raise InclusionProofError(
                f"asked to prove index {index} in size {tree_size}, the node proved index "
                f"{proof.index} in size {proof.tree_size}"
            )
        proof.verify()
        signed, bridge = yield from self._anchor(
            proof.tree_size, proof.root, bytes(response.checkpoint)
        )
        return VerifiedInclusion(proof, signed, bridge)

    def consistency_proof(self, old_size: int, new_size: int | None) -> Plan[VerifiedConsistency]:
        request = ledger_service_pb2.GetConsistencyProofRequest(old_size=old_size)
        if new_size is not None:
            request.new_size = new_size
        response = yield from _ledger_call(
            "GetConsistencyProof", request, ledger_service_pb2.GetConsistencyProofResponse
        )
        proof = consistency_of(response.proof)
        if proof.old_size != old_size or (new_size is not None and proof.new_size != new_size):
            raise ConsistencyProofError(
                f"asked for a proof from size {old_size} to {new_size}, the node proved "
                f"{proof.old_size} to {proof.new_size}"
            )
        proof.verify()
        signed, bridge = yield from self._anchor(
            proof.new_size, proof.new_root, bytes(response.checkpoint)
        )
        return VerifiedConsistency(proof, signed, bridge)

    def range_anchor(
        self, start: int, end: int | None, checkpoint: SignedCheckpoint | None
    ) -> Plan[RangeAnchor]:
        """What ``entries(start, end)`` is checked against (see ``RangeVerifier``)."""
        if checkpoint is None:
            signed = yield from self.checkpoint()
        else:  # the caller's checkpoint must be this log's too
            signed = signed_checkpoint(checkpoint.raw, self.log_key)
        size = signed.checkpoint.size
        end = size if end is None else end
        if not 0 <= start <= end:
            raise InvalidRangeError(f"inverted range [{start}, {end})")  # as the node would
        if end > size:
            raise OutOfRangeError(f"the checkpoint covers {size} entries; end {end} is beyond")
        if start == end or (start == 0 and end == size):
            return RangeAnchor(signed, start, end, None)
        response = yield from _ledger_call(
            "GetInclusionProof",
            ledger_service_pb2.GetInclusionProofRequest(index=end - 1, tree_size=size),
            ledger_service_pb2.GetInclusionProofResponse,
        )
        proof = inclusion_of(response.proof)
        if not proof.is_for(end - 1, size, signed.checkpoint.root_hash):
            raise InclusionProofError(
                f"the inclusion proof is not for leaf {end - 1} in the checkpoint of size {size}"
            )
        proof.verify()
        return RangeAnchor(signed, start, end, proof.leaf_hash)

    def follow_message(
        self, verifier: FollowVerifier, message: ledger_service_pb2.FollowResponse
    ) -> Plan[tuple[LogEntry, ...]]:
        """One Follow message's leaves, once the whole message verified (``FollowVerifier``)
        and, with a state directory, its checkpoint is proven one log with the saved one
        (a consistency proof per checkpoint size new to the stream, as ``checkpoint()``)."""
        step = verifier.accept(message)
        if step.new_size:
            yield from self.remember(step.checkpoint)
        return step.entries

    # --- registry and provenance --------------------------------------------------------

    # Registry, partners, facilities, lots and a trace's composition are the node's
    # derived indexes, returned as the node sends them (a convenience): an auditor
    # recomputes them from verified leaves. Only the trace's bundle is verified.

    def registry(self, tree_size: int | None) -> Plan[registry_service_pb2.GetRegistryResponse]:
        request = registry_service_pb2.GetRegistryRequest()
        if tree_size is not None:
            request.tree_size = tree_size
        return call(
            Service.REGISTRY, "GetRegistry", request, registry_service_pb2.GetRegistryResponse
        )

    def partner(
        self, partner_id: str, tree_size: int | None
    ) -> Plan[registry_service_pb2.GetPartnerResponse]:
        request = registry_service_pb2.GetPartnerRequest(partner_id=partner_id)
        if tree_size is not None:
            request.tree_size = tree_size
        return call(
            Service.REGISTRY, "GetPartner", request, registry_service_pb2.GetPartnerResponse
        )

    def facility(
        self, facility_id: str, tree_size: int | None
    ) -> Plan[registry_service_pb2.GetFacilityResponse]:
        request = registry_service_pb2.GetFacilityRequest(facility_id=facility_id)
        if tree_size is not None:
            request.tree_size = tree_size
        return call(
            Service.REGISTRY, "GetFacility", request, registry_service_pb2.GetFacilityResponse
        )

    def lot(self, lot_id: str) -> Plan[provenance_service_pb2.GetLotResponse]:
        return call(
            Service.PROVENANCE,
            "GetLot",
            provenance_service_pb2.GetLotRequest(lot_id=lot_id),
            provenance_service_pb2.GetLotResponse,
        )

    def trace(self, lot_id: str) -> Plan[TraceResult]:
        """The lot's bundle, verified with ``ledger.bundle.verify_bundle`` (in a thread
        under asyncio: it checks every leaf's signatures), for this very lot."""
        response = yield from call(
            Service.PROVENANCE,
            "Trace",
            provenance_service_pb2.TraceRequest(lot_id=lot_id),
            provenance_service_pb2.TraceResponse,
        )
        bundle, verified = yield from local(
            functools.partial(verified_bundle, response.bundle, lot_id, self.log_key)
        )
        yield from self.remember(verified.checkpoint)
        return TraceResult(bundle, verified, tuple(response.composition))
