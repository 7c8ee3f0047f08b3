"""``AsyncPartnerClient``: the partner SDK over a ``grpc.aio`` channel.

The same plans and checks as ``PartnerClient`` (``clients.sdk._internal.plans``,
``verify``, ``submission``); only the I/O differs: calls are awaited, and blocking
local work (the state file, bundle verification) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Sequence
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
    packed_messages_async,
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


async def _items(
    items: Iterable[SubmitItem] | AsyncIterable[SubmitItem],
) -> AsyncIterator[SubmitItem]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


class AsyncPartnerClient:
    """``PartnerClient`` for asyncio: the same methods, awaited (streams are async
    iterators). Build it with ``AsyncPartnerClient.connect(...)`` inside a running
    event loop and close it with ``await client.close()`` or ``async with``."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
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
        self._ledger: ledger_service_pb2_grpc.LedgerServiceAsyncStub = self._stubs[Service.LEDGER]

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
    ) -> AsyncPartnerClient:
        """As ``PartnerClient.connect``; call it with an event loop running."""
        endpoint = Endpoint(address, tls, partner_id_for_insecure_dev)
        return cls(
            endpoint.async_channel(),
            log_key=log_key,
            metadata=endpoint.metadata,
            state_dir=state_dir,
            timeout=timeout,
        )

    @property
    def log_key(self) -> VerifierKey:
        return self._core.log_key

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncPartnerClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- running plans -------------------------------------------------------------------

    async def _run(self, plan: Plan[T]) -> T:
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
                    result = await self._perform(effect)
                except CustodyError as exc:
                    failure = exc
        finally:
            plan.close()

    async def _perform(self, effect: Effect) -> object:
        if isinstance(effect, LocalWork):
            return cast(object, await asyncio.to_thread(effect.run))
        return await self._unary(effect)

    async def _unary(self, effect: UnaryCall[Any]) -> object:
        method = getattr(self._stubs[effect.service], effect.method)
        try:
            return cast(
                object,
                await method(effect.request, timeout=self._timeout, metadata=self._metadata),
            )
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc

    # --- appends -------------------------------------------------------------------------

    async def submit(
        self, envelope: Envelope, public_keys: Sequence[bytes] | None = None
    ) -> VerifiedReceipt:
        """See ``PartnerClient.submit``."""
        return await self._run(self._core.submit(envelope, public_keys))

    async def sign_and_submit(
        self, payload_type: str, payload: bytes, signers: Sequence[Signer]
    ) -> VerifiedReceipt:
        envelope = sign_envelope(payload_type, payload, signers)
        return await self.submit(envelope, [signer.public_key for signer in signers])

    def submit_many(
        self,
        items: Iterable[SubmitItem] | AsyncIterable[SubmitItem],
        *,
        window: int = DEFAULT_WINDOW,
    ) -> AsyncGenerator[SubmitOutcome, None]:
        """See ``PartnerClient.submit_many``; ``items`` may also be an async iterable.
        Close the iterator if you stop early (``contextlib.aclosing``) so the stream ends."""
        return self._submit_stream(items, check_window(window))

    async def _submit_stream(
        self, items: Iterable[SubmitItem] | AsyncIterable[SubmitItem], window: int
    ) -> AsyncGenerator[SubmitOutcome, None]:
        stream = SubmitStream(self._core)
        room = asyncio.Semaphore(window)
        closing = asyncio.Event()
        ready: asyncio.Queue[ledger_service_pb2.StreamEntry | None] = asyncio.Queue()
        source = _items(items)

        async def read_input() -> None:
            # As in PartnerClient: the input is read as the window allows, and whatever
            # has been read goes out at once however slowly the next item comes.
            try:
                while True:
                    await room.acquire()
                    if closing.is_set():
                        return
                    try:
                        ready.put_nowait(stream.entry_for(await anext(source)))
                    except StopAsyncIteration:
                        return
                    except Exception as exc:
                        stream.input_failed(exc)
                        return
            finally:
                ready.put_nowait(None)

        reader = asyncio.get_running_loop().create_task(read_input())
        call = self._ledger.AppendStream(packed_messages_async(ready), metadata=self._metadata)
        try:
            async for response in call:
                for outcome in response.outcomes:
                    yield await self._run(stream.outcome(outcome))
                    room.release()  # only once the caller took the outcome
            stream.finish()
        except grpc.RpcError as exc:
            raise stream.failure(error_from_rpc(exc)) from exc
        finally:
            closing.set()
            room.release()
            call.cancel()
            reader.cancel()

    # --- checkpoints and proofs ----------------------------------------------------------

    async def checkpoint(self) -> SignedCheckpoint:
        """See ``PartnerClient.checkpoint``."""
        return await self._run(self._core.checkpoint())

    async def check_consistent(
        self, trusted: Checkpoint, latest: SignedCheckpoint
    ) -> ConsistencyProof:
        return await self._run(self._core.consistent(trusted, latest))

    async def entry(self, index: int) -> LogEntry:
        return await self._run(self._core.entry(index))

    async def entries(
        self, start: int = 0, end: int | None = None, *, checkpoint: SignedCheckpoint | None = None
    ) -> AsyncGenerator[LogEntry, None]:
        """See ``PartnerClient.entries``."""
        anchor = await self._run(self._core.range_anchor(start, end, checkpoint))
        if anchor.start == anchor.end:
            return
        verifier = RangeVerifier(anchor)
        request = ledger_service_pb2.GetEntriesRequest(start=anchor.start, end=anchor.end)
        call = self._ledger.GetEntries(request, metadata=self._metadata)
        try:
            async for message in call:
                for entry in message.entries:
                    yield verifier.accept(entry)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc
        finally:
            call.cancel()
        verifier.finish()

    async def inclusion_proof(self, index: int, tree_size: int | None = None) -> VerifiedInclusion:
        return await self._run(self._core.inclusion_proof(index, tree_size))

    async def consistency_proof(
        self, old_size: int, new_size: int | None = None
    ) -> VerifiedConsistency:
        return await self._run(self._core.consistency_proof(old_size, new_size))

    async def follow(self, start_index: int = 0) -> AsyncGenerator[LogEntry, None]:
        """See ``PartnerClient.follow``."""
        verifier = FollowVerifier(self._core.log_key, start_index)
        request = ledger_service_pb2.FollowRequest(start_index=start_index)
        call = self._ledger.Follow(request, metadata=self._metadata)
        try:
            async for message in call:
                for entry in await self._run(self._core.follow_message(verifier, message)):
                    yield entry
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc
        finally:
            call.cancel()

    # --- registry and provenance ---------------------------------------------------------

    async def registry(
        self, tree_size: int | None = None
    ) -> registry_service_pb2.GetRegistryResponse:
        return await self._run(self._core.registry(tree_size))

    async def partner(
        self, partner_id: str, tree_size: int | None = None
    ) -> registry_service_pb2.GetPartnerResponse:
        return await self._run(self._core.partner(partner_id, tree_size))

    async def facility(
        self, facility_id: str, tree_size: int | None = None
    ) -> registry_service_pb2.GetFacilityResponse:
        return await self._run(self._core.facility(facility_id, tree_size))

    async def lot(self, lot_id: str) -> provenance_service_pb2.GetLotResponse:
        return await self._run(self._core.lot(lot_id))

    async def trace(self, lot_id: str) -> TraceResult:
        return await self._run(self._core.trace(lot_id))
