"""``PartnerClient``: the partner SDK over a blocking gRPC channel."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

import grpc

from clients.sdk._internal.errors import error_from_rpc
from clients.sdk._internal.plans import (
    ClientCore,
    Effect,
    LocalWork,
    Plan,
    Service,
    UnaryCall,
    service_stubs,
)
from clients.sdk._internal.results import (
    LogEntry,
    SubmitItem,
    SubmitOutcome,
    TraceResult,
    VerifiedConsistency,
    VerifiedInclusion,
)
from clients.sdk._internal.submission import (
    DEFAULT_WINDOW,
    SubmitStream,
    check_window,
    packed_messages,
)
from clients.sdk._internal.transport import ClientTls, Endpoint, Metadata
from clients.sdk._internal.verify import FollowVerifier, RangeVerifier
from custody.v1 import (
    ledger_service_pb2,
    ledger_service_pb2_grpc,
    provenance_service_pb2,
    registry_service_pb2,
)
from ledger.checkpoint import Checkpoint, SignedCheckpoint
from ledger.dsse import Envelope, Signer, sign_envelope
from ledger.errors import CustodyError
from ledger.merkle import ConsistencyProof
from ledger.note import VerifierKey
from ledger.receipts import VerifiedReceipt

T = TypeVar("T")


class PartnerClient:
    """A partner's connection to a Custody node.

    Receipts, checkpoints, entries, proofs, Follow messages and trace bundles are
    verified against the log key before they are returned (``entries`` at the end of
    the range); registry, partner, facility and lot answers and a trace's composition
    are the node's derived indexes, returned unverified (see docs/sdk.md).

    Build it with ``PartnerClient.connect(...)`` and close it (or use ``with``).
    ``timeout`` bounds each unary call; streams (``submit_many``, ``entries``,
    ``follow``) have no deadline. With ``state_dir`` the client keeps the newest
    checkpoint it verified there and refuses any later view of the log that does
    not contain it (see ``checkpoint``).
    """

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        log_key: VerifierKey,
        metadata: Metadata = (),
        state_dir: Path | None = None,
        timeout: float | None = 30.0,
    ) -> None:
        self._channel = channel
        self._metadata = metadata
        self._timeout = timeout
        self._core = ClientCore.trusting(log_key, state_dir)
        self._stubs = service_stubs(channel)
        self._ledger: ledger_service_pb2_grpc.LedgerServiceStub = self._stubs[Service.LEDGER]

    @classmethod
    def connect(
        cls,
        address: str,
        *,
        log_key: VerifierKey,
        tls: ClientTls | None,
        partner_id_for_insecure_dev: str | None = None,
        state_dir: Path | None = None,
        timeout: float | None = 30.0,
    ) -> PartnerClient:
        """Open a channel to ``address`` (HOST:PORT) with mutual TLS, or, with ``tls=None``
        and ``partner_id_for_insecure_dev``, to a node in insecure development mode."""
        endpoint = Endpoint(address, tls, partner_id_for_insecure_dev)
        return cls(
            endpoint.sync_channel(),
            log_key=log_key,
            metadata=endpoint.metadata,
            state_dir=state_dir,
            timeout=timeout,
        )

    @property
    def log_key(self) -> VerifierKey:
        return self._core.log_key

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> PartnerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- running plans -------------------------------------------------------------------

    def _run(self, plan: Plan[T]) -> T:
        result: object = None
        failure: CustodyError | None = None
        try:
            while True:
                try:
                    effect = plan.throw(failure) if failure is not None else plan.send(result)
                except StopIteration as done:
                    return cast(T, done.value)
                result, failure = None, None
                try:
                    result = self._perform(effect)
                except CustodyError as exc:
                    failure = exc
        finally:
            plan.close()

    def _perform(self, effect: Effect) -> object:
        if isinstance(effect, LocalWork):
            return cast(object, effect.run())
        return self._unary(effect)

    def _unary(self, effect: UnaryCall[Any]) -> object:
        method = getattr(self._stubs[effect.service], effect.method)
        try:
            return cast(
                object, method(effect.request, timeout=self._timeout, metadata=self._metadata)
            )
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc

    # --- appends -------------------------------------------------------------------------

    def submit(
        self, envelope: Envelope, public_keys: Sequence[bytes] | None = None
    ) -> VerifiedReceipt:
        """Append one entry and return its verified receipt.

        ``public_keys`` are the raw keys of the envelope's signatures; left out, the
        node takes them from its registry. An entry already in the log returns its
        original receipt (``receipt.receipt.duplicate`` is True), verified the same way;
        when the node leaves it out of its answer (large entries), the client rebuilds
        it from the leaf and an inclusion proof fetched by the index the node names.
        A refusal raises its ``CustodyError`` (``AdmissionRuleError`` for a domain rule).
        """
        return self._run(self._core.submit(envelope, public_keys))

    def sign_and_submit(
        self, payload_type: str, payload: bytes, signers: Sequence[Signer]
    ) -> VerifiedReceipt:
        """Sign ``payload`` with every signer and ``submit`` it with their public keys."""
        envelope = sign_envelope(payload_type, payload, signers)
        return self.submit(envelope, [signer.public_key for signer in signers])

    def submit_many(
        self, items: Iterable[SubmitItem], *, window: int = DEFAULT_WINDOW
    ) -> Generator[SubmitOutcome, None, None]:
        """Append many entries over one AppendStream; yield one outcome per entry.

        At most ``window`` entries are sent and not yet handed back to the caller: the
        input is read only as outcomes are consumed, so a slow node (or a slow caller)
        holds the sender back. Outcomes come in the node's answer order and carry their
        input ``position``. Refusals are outcomes (``outcome.error``), not exceptions;
        a receipt that does not verify raises. If ``items`` raises, the entries already
        sent are answered and then its exception is raised.
        """
        return self._submit_stream(items, check_window(window))

    def _submit_stream(
        self, items: Iterable[SubmitItem], window: int
    ) -> Generator[SubmitOutcome, None, None]:
        stream = SubmitStream(self._core)
        room = threading.Semaphore(window)
        closing = threading.Event()
        ready: queue.SimpleQueue[ledger_service_pb2.StreamEntry | None] = queue.SimpleQueue()
        source = iter(items)

        def read_input() -> None:
            # Reads the caller's items as the window allows (it blocks while ``window``
            # entries are in flight), so that whatever has been read goes out at once
            # however slowly the next item comes.
            try:
                while True:
                    room.acquire()
                    if closing.is_set():
                        return
                    try:
                        ready.put(stream.entry_for(next(source)))
                    except StopIteration:
                        return
                    except Exception as exc:
                        stream.input_failed(exc)
                        return
            finally:
                ready.put(None)

        threading.Thread(target=read_input, name="custody-submit-input", daemon=True).start()
        # gRPC reads the messages on a thread of its own.
        call = self._ledger.AppendStream(packed_messages(ready), metadata=self._metadata)
        try:
            for response in call:
                for outcome in response.outcomes:
                    yield self._run(stream.outcome(outcome))
                    room.release()  # only once the caller took the outcome
            stream.finish()
        except grpc.RpcError as exc:
            raise stream.failure(error_from_rpc(exc)) from exc
        finally:
            closing.set()
            room.release()  # wake the sender so that it sees ``closing``
            call.cancel()

    # --- checkpoints and proofs ----------------------------------------------------------

    def checkpoint(self) -> SignedCheckpoint:
        """The latest checkpoint, signed by the trusted log key.

        With ``state_dir``: the newest checkpoint verified before must be part of the
        same log (a consistency proof from the node between the two sizes, verified),
        and the state then moves forward to this one. A node whose tree no longer
        contains it (rollback) or contradicts it (fork) raises ``ConsistencyProofError``.
        A node behind the saved state is accepted only if it proves it is a prefix; the
        state does not move back.
        """
        return self._run(self._core.checkpoint())

    def check_consistent(self, trusted: Checkpoint, latest: SignedCheckpoint) -> ConsistencyProof:
        """Prove that a checkpoint trusted earlier and ``latest`` are views of one log."""
        return self._run(self._core.consistent(trusted, latest))

    def entry(self, index: int) -> LogEntry:
        """The leaf at ``index``: decoded, signatures verified, and proven by an inclusion
        proof in the latest checkpoint (checked as ``checkpoint`` does)."""
        return self._run(self._core.entry(index))

    def entries(
        self, start: int = 0, end: int | None = None, *, checkpoint: SignedCheckpoint | None = None
    ) -> Generator[LogEntry, None, None]:
        """The leaves [start, end) (``end`` defaults to the checkpoint's size), streamed.

        Each leaf is checked as it arrives (decodes, names its index, signatures verify,
        continues the hash chain of the one before). The range is tied to ``checkpoint``
        (default: the latest, checked as ``checkpoint()`` does) when the stream ends: the
        whole tree's Merkle root must be the signed root, or a partial range's last leaf
        must be the one an inclusion proof proves. So treat the leaves as provisional until
        the iteration has finished without an exception.
        """
        anchor = self._run(self._core.range_anchor(start, end, checkpoint))
        if anchor.start == anchor.end:
            return
        verifier = RangeVerifier(anchor)
        request = ledger_service_pb2.GetEntriesRequest(start=anchor.start, end=anchor.end)
        call = self._ledger.GetEntries(request, metadata=self._metadata)
        try:
            for message in call:
                for entry in message.entries:
                    yield verifier.accept(entry)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc
        finally:
            call.cancel()
        verifier.finish()

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> VerifiedInclusion:
        """An inclusion proof of leaf ``index`` in the tree of ``tree_size`` (default: the
        latest), verified and tied to a signed checkpoint (see ``VerifiedInclusion``)."""
        return self._run(self._core.inclusion_proof(index, tree_size))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> VerifiedConsistency:
        """A consistency proof from ``old_size`` to ``new_size`` (default: the latest),
        verified and tied to a signed checkpoint."""
        return self._run(self._core.consistency_proof(old_size, new_size))

    def follow(self, start_index: int = 0) -> Generator[LogEntry, None, None]:
        """Every leaf from ``start_index`` on, then new ones as they are committed; runs
        until the caller stops iterating or the node ends the stream.

        Each message is verified whole before any of its leaves is yielded (see
        ``FollowVerifier``): its checkpoint is signed and never goes back, its leaves
        are consecutive, verified alone and chained to the leaves before, and its last
        leaf is proven in the checkpoint's tree, so every leaf is tied to a signed root,
        from any start index. With ``state_dir`` each new checkpoint size must also be
        consistent with the saved checkpoint, as in ``checkpoint``.
        """
        verifier = FollowVerifier(self._core.log_key, start_index)
        request = ledger_service_pb2.FollowRequest(start_index=start_index)
        call = self._ledger.Follow(request, metadata=self._metadata)
        try:
            for message in call:
                yield from self._run(self._core.follow_message(verifier, message))
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc
        finally:
            call.cancel()

    # --- registry and provenance ---------------------------------------------------------

    def registry(self, tree_size: int | None = None) -> registry_service_pb2.GetRegistryResponse:
        """The registry (partners, keys, facilities) as of ``tree_size`` (default: latest),
        as the node's index holds it: not verified (recompute it from governance leaves)."""
        return self._run(self._core.registry(tree_size))

    def partner(
        self, partner_id: str, tree_size: int | None = None
    ) -> registry_service_pb2.GetPartnerResponse:
        return self._run(self._core.partner(partner_id, tree_size))

    def facility(
        self, facility_id: str, tree_size: int | None = None
    ) -> registry_service_pb2.GetFacilityResponse:
        return self._run(self._core.facility(facility_id, tree_size))

    def lot(self, lot_id: str) -> provenance_service_pb2.GetLotResponse:
        """A lot's state and the indices of its history, as the node's index holds them:
        not verified (``trace`` gives the lot's history as a verified bundle)."""
        return self._run(self._core.lot(lot_id))

    def trace(self, lot_id: str) -> TraceResult:
        """The lot's provenance bundle, verified against the log key
        (``ledger.bundle.verify_bundle``), and the node's origin composition per element,
        which is the node's unverified figure (recompute it from the verified bundle)."""
        return self._run(self._core.trace(lot_id))
