"""``custody.v1.LedgerService``: appends through group commit, reads, proofs, follow."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from custody.v1 import envelope_pb2, ledger_service_pb2, ledger_service_pb2_grpc, log_pb2
from ledger.admission import Submission
from ledger.dsse import MAX_SIGNATURES, Envelope
from ledger.errors import (
    CustodyError,
    EntryTooLargeError,
    InternalError,
    InvalidRangeError,
    MalformedEnvelopeError,
    MalformedKeyError,
    NotFoundError,
    OutOfRangeError,
    TooManyStreamsError,
    UnavailableError,
)
from ledger.group_commit import GroupCommitter
from ledger.leaf import envelope_from_proto
from ledger.receipts import Receipt
from ledger.records import StoredCheckpoint, StoredLeaf
from ledger.sequencer import AppendOutcome
from ledger.storage.domain_store import DomainStore
from ledger.storage.log_store import LogStore
from ledger.wire import (
    consistency_to_proto,
    inclusion_to_proto,
    receipt_to_proto,
)
from services.access import AccessGuard, Caller
from services.errors import (
    already_logged_refusal,
    already_logged_status,
    append_refusal,
    status_code_for,
)
from services.log_watch import LogWatcher
from services.observability import NodeMetrics
from services.rpc import Context, abort, server_stream, unary

log = structlog.get_logger("custody.node")

_CHUNK_ENTRIES = 256
_CHUNK_BYTES = 1 << 20  # well under the 4 MiB a gRPC client receives by default
_MESSAGE_OVERHEAD = 8 << 10  # room for a Follow message's checkpoint and proof
# Room around an entry in the messages that carry it back: leaf framing, subject links,
# signer keys, a checkpoint and an audit path.
_ENTRY_MESSAGE_ROOM = 16 << 10
_REGISTERED_KEYS_KEPT = 10_000  # public keys remembered for requests that leave them out
_OUTCOME_FRAMING = 8  # a StreamOutcome's tag and length inside AppendStreamResponse
_Answer = tuple[ledger_service_pb2.StreamOutcome, float]  # and when its entry was read
# What an append request carries: whether it has an envelope, the envelope, its keys.
_EntryRequest = tuple[bool, envelope_pb2.Envelope, Sequence[bytes]]


@dataclass(frozen=True)
class StreamLimits:
    """Per-stream bounds: entries awaiting their outcome, and how long Follow idles
    (from the node's ``[limits]``, which hold the defaults)."""

    max_in_flight: int
    follow_idle_seconds: float
    max_streams_per_partner: int
    max_message_bytes: int

    @property
    def max_entry_bytes(self) -> int:
        """Largest envelope (with its keys) taken: its leaf, with a checkpoint and a proof
        around it, must still fit in a message the node may send (receipts, Follow)."""
        return self.max_message_bytes - _ENTRY_MESSAGE_ROOM

    @property
    def chunk_bytes(self) -> int:
        """Leaf bytes per GetEntries/Follow message: within what the node may send."""
        return max(1, min(_CHUNK_BYTES, self.max_message_bytes - _MESSAGE_OVERHEAD))


class LedgerServicer(ledger_service_pb2_grpc.LedgerServiceServicer):
    def __init__(
        self,
        *,
        store: LogStore,
        domain: DomainStore,
        committer: GroupCommitter[Any],
        guard: AccessGuard,
        watcher: LogWatcher,
        metrics: NodeMetrics,
        limits: StreamLimits,
    ) -> None:
        self.store = store
        self.domain = domain
        self.committer = committer
        self.guard = guard
        self.watcher = watcher
        self.metrics = metrics
        self.limits = limits
        self._open_streams: collections.Counter[str] = collections.Counter()
        # Registered public keys by keyid, for requests that leave their keys out. A
        # keyid is the hash of its key, so an entry never goes stale; whether the key
        # may sign is the admission rules' question, asked in the batch.
        self._registered_keys: dict[str, bytes] = {}

    @contextlib.contextmanager
    def _stream_slot(self, caller: Caller) -> Iterator[None]:
        """One of the caller's long-lived streams; one partner cannot hold them all."""
        partner = caller.partner_id
        if self._open_streams[partner] >= self.limits.max_streams_per_partner:
            raise TooManyStreamsError(
                f"{partner!r} already has {self._open_streams[partner]} streams open "
                f"(the limit is {self.limits.max_streams_per_partner})"
            )
        self._open_streams[partner] += 1
        try:
            yield
        finally:
            self._open_streams[partner] -= 1
            if not self._open_streams[partner]:
                del self._open_streams[partner]

    # --- appends ---------------------------------------------------------------------

    async def submissions(
        self, caller: Caller, entries: Sequence[_EntryRequest]
    ) -> list[Submission | CustodyError]:
        """Each request as a Submission (a well-formed envelope and the keys to check it),
        or why it cannot be one.

        Keys a request leaves out are taken from the registry by keyid (keys not read
        before, in one read for all of them); which keys may sign for which partner is
        decided by the admission rules alone.
        """
        checked: list[tuple[Envelope, list[bytes]] | CustodyError] = []
        for has_envelope, message, public_keys in entries:
            try:
                checked.append(self._checked_entry(has_envelope, message, public_keys))
            except CustodyError as exc:
                checked.append(exc)
        wanted = {
            signature.keyid
            for item in checked
            if not isinstance(item, CustodyError) and not item[1]
            for signature in item[0].signatures
        }
        cache = self._registered_keys
        registered = {keyid: cache[keyid] for keyid in wanted if keyid in cache}
        missing = wanted - registered.keys()
        lookup_failed: CustodyError | None = None
        if missing:
            try:
                found = await asyncio.to_thread(self.domain.view().keys, missing)
            except CustodyError as exc:  # refuses the entries that needed it, no others
                lookup_failed = exc
            else:
                registered.update((keyid, record.public_key) for keyid, record in found.items())
                if len(cache) + len(found) > _REGISTERED_KEYS_KEPT:
                    cache.clear()  # bounded; hot keys come back on their next use
                cache.update(registered)
        partner = caller.partner_id
        submissions: list[Submission | CustodyError] = []
        for item in checked:
            if isinstance(item, CustodyError):
                submissions.append(item)
                continue
            envelope, keys = item
            if not keys:
                keys = [registered[s.keyid] for s in envelope.signatures if s.keyid in registered]
                if lookup_failed is not None and len(keys) < len(envelope.signatures):
                    submissions.append(lookup_failed)
                    continue
            submissions.append(Submission(envelope, tuple(keys), partner))
        return submissions

    def _checked_entry(
        self, has_envelope: bool, message: envelope_pb2.Envelope, public_keys: Sequence[bytes]
    ) -> tuple[Envelope, list[bytes]]:
        if not has_envelope:
            raise MalformedEnvelopeError("the request carries no envelope")
        size = message.ByteSize() + sum(len(key) for key in public_keys)
        if size > self.limits.max_entry_bytes:
            raise EntryTooLargeError(
                f"the entry is {size:,} bytes; this node takes at most "
                f"{self.limits.max_entry_bytes:,} so that its receipt fits in a message"
            )
        envelope = envelope_from_proto(message)
        if len(public_keys) > MAX_SIGNATURES:
            raise MalformedKeyError(f"more than {MAX_SIGNATURES} public keys")
        keys = [bytes(key) for key in public_keys]
        if any(len(key) != 32 for key in keys):
            raise MalformedKeyError("a public key is a raw 32-byte Ed25519 key")
        return envelope, keys

    async def _append(
        self, caller: Caller, has_envelope: bool, message: envelope_pb2.Envelope, keys: Any
    ) -> Receipt:
        (submission,) = await self.submissions(caller, [(has_envelope, message, keys)])
        if isinstance(submission, CustodyError):
            raise submission
        return await self.committer.submit(submission)

    @unary("Append")
    async def Append(  # noqa: N802 (gRPC method name)
        self, request: ledger_service_pb2.AppendRequest, context: Context
    ) -> ledger_service_pb2.AppendResponse:
        try:
            caller = await self.guard.caller(context)
            structlog.contextvars.bind_contextvars(partner=caller.partner_id)
            receipt = await self._append(
                caller, request.HasField("envelope"), request.envelope, request.public_keys
            )
        except CustodyError as exc:
            self.metrics.refused.labels(exc.reason).inc()  # at any stage, counted once
            raise
        log.info("already logged" if receipt.duplicate else "appended", index=receipt.index)
        if receipt.duplicate:
            await abort(context, already_logged_status(receipt))
        return ledger_service_pb2.AppendResponse(receipt=receipt_to_proto(receipt))

    @server_stream("AppendStream")
    async def AppendStream(  # noqa: N802
        self,
        request_iterator: AsyncIterator[ledger_service_pb2.AppendStreamRequest],
        context: Context,
    ) -> AsyncIterator[ledger_service_pb2.AppendStreamResponse]:
        """Read entries while fewer than ``max_in_flight`` await their outcome (so HTTP/2
        flow control holds back a faster client) and answer each as its batch commits.

        Entries are queued for the sequencer in the order they arrive, so a stream may
        carry entries that depend on earlier ones without waiting for their receipts.
        Outcomes ready together (a batch's) go back in as few messages as fit.
        """
        caller = await self.guard.caller(context)
        structlog.contextvars.bind_contextvars(partner=caller.partner_id)
        with self._stream_slot(caller):
            async for response in self._append_stream(caller, request_iterator):
                yield response

    async def _append_stream(
        self,
        caller: Caller,
        request_iterator: AsyncIterator[ledger_service_pb2.AppendStreamRequest],
    ) -> AsyncIterator[ledger_service_pb2.AppendStreamResponse]:
        stream = _AppendStream(self, caller)
        reader = asyncio.get_running_loop().create_task(stream.read(request_iterator))
        counts = {"receipt": 0, "refusal": 0}
        try:
            async for answers in stream.answers(self.limits.chunk_bytes):
                outcomes = [outcome for outcome, _ in answers]
                for outcome in outcomes:
                    counts[outcome.WhichOneof("outcome") or "refusal"] += 1
                yield ledger_service_pb2.AppendStreamResponse(outcomes=outcomes)
                stream.answered(answers)  # only now: an unsent answer holds its place
            await reader  # a failed read surfaces here
            if stream.cut_short:
                raise UnavailableError(
                    "the node is shutting down: every entry it read was answered; "
                    "send the rest again to another node or later"
                )
        finally:
            log.info("stream closed", appended=counts["receipt"], refused=counts["refusal"])
            stream.closed = True
            reader.cancel()
            for future in list(stream.in_flight):
                # Entries not yet in a batch are then not appended; one already being
                # committed still is, and its receipt can be had by resubmitting.
                future.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    # --- reads -----------------------------------------------------------------------

    async def _latest(self) -> StoredCheckpoint:
        latest = self.watcher.latest
        if latest is None:
            latest = await asyncio.to_thread(self.store.latest_checkpoint)
        if latest is None:
            raise NotFoundError("the log has no checkpoint")
        return latest

    async def _size_covering(self, end: int) -> int:
        """The latest tree size, read afresh when ``end`` lies beyond the one known:
        another frontend sharing the database may have committed those entries."""
        size = (await self._latest()).tree_size
        if end > size:
            latest = await self.watcher.refresh()
            if latest is not None:
                size = latest.tree_size
        return size

    async def _size_or_latest(self, has_size: bool, size: int) -> int:
        return size if has_size else (await self._latest()).tree_size

    async def _checkpoint_at(self, tree_size: int) -> bytes:
        try:
            return (await asyncio.to_thread(self.store.checkpoint, tree_size)).note
        except NotFoundError:
            return b""

    @unary("GetCheckpoint")
    async def GetCheckpoint(  # noqa: N802
        self, request: ledger_service_pb2.GetCheckpointRequest, context: Context
    ) -> ledger_service_pb2.GetCheckpointResponse:
        await self.guard.caller(context)
        if request.HasField("tree_size"):
            stored = await asyncio.to_thread(self.store.checkpoint, request.tree_size)
        else:
            stored = await self._latest()
        return ledger_service_pb2.GetCheckpointResponse(checkpoint=stored.note)

    @unary("GetEntry")
    async def GetEntry(  # noqa: N802
        self, request: ledger_service_pb2.GetEntryRequest, context: Context
    ) -> ledger_service_pb2.GetEntryResponse:
        await self.guard.caller(context)
        size = await self._size_covering(request.index + 1)
        if request.index >= size:
            raise OutOfRangeError(f"the log holds {size} entries; index {request.index} is beyond")
        stored = await asyncio.to_thread(self.store.leaf, request.index)
        return ledger_service_pb2.GetEntryResponse(entry=_entry(stored))

    @server_stream("GetEntries")
    async def GetEntries(  # noqa: N802
        self, request: ledger_service_pb2.GetEntriesRequest, context: Context
    ) -> AsyncIterator[ledger_service_pb2.GetEntriesResponse]:
        await self.guard.caller(context)
        if request.start >= request.end:
            raise InvalidRangeError(f"empty range [{request.start}, {request.end})")
        size = await self._size_covering(request.end)
        if request.end > size:
            raise OutOfRangeError(f"the log holds {size} entries; end {request.end} is beyond")
        async for chunk in self._chunks(request.start, request.end):
            yield ledger_service_pb2.GetEntriesResponse(entries=chunk)

    async def _chunks(self, begin: int, end: int) -> AsyncIterator[list[log_pb2.Entry]]:
        """Leaves [begin, end) read a chunk at a time, sent in messages of at most ~1 MiB."""
        for start in range(begin, end, _CHUNK_ENTRIES):
            rows = await asyncio.to_thread(
                self.store.leaves_in, start, min(start + _CHUNK_ENTRIES, end)
            )
            message: list[log_pb2.Entry] = []
            size = 0
            for row in rows:
                if message and size + len(row.leaf_bytes) > self.limits.chunk_bytes:
                    yield message
                    message, size = [], 0
                message.append(_entry(row))
                size += len(row.leaf_bytes)
            if message:
                yield message

    @unary("GetInclusionProof")
    async def GetInclusionProof(  # noqa: N802
        self, request: ledger_service_pb2.GetInclusionProofRequest, context: Context
    ) -> ledger_service_pb2.GetInclusionProofResponse:
        await self.guard.caller(context)
        size = await self._size_or_latest(request.HasField("tree_size"), request.tree_size)
        proof = await asyncio.to_thread(self.store.inclusion_proof, request.index, size)
        return ledger_service_pb2.GetInclusionProofResponse(
            proof=inclusion_to_proto(proof), checkpoint=await self._checkpoint_at(size)
        )

    @unary("GetConsistencyProof")
    async def GetConsistencyProof(  # noqa: N802
        self, request: ledger_service_pb2.GetConsistencyProofRequest, context: Context
    ) -> ledger_service_pb2.GetConsistencyProofResponse:
        await self.guard.caller(context)
        new_size = await self._size_or_latest(request.HasField("new_size"), request.new_size)
        proof = await asyncio.to_thread(self.store.consistency_proof, request.old_size, new_size)
        return ledger_service_pb2.GetConsistencyProofResponse(
            proof=consistency_to_proto(proof), checkpoint=await self._checkpoint_at(new_size)
        )

    @server_stream("Follow")
    async def Follow(  # noqa: N802
        self, request: ledger_service_pb2.FollowRequest, context: Context
    ) -> AsyncIterator[ledger_service_pb2.FollowResponse]:
        """Everything from ``start_index``, then each new batch as it commits; each message
        proves its last entry in its checkpoint, so a follower trusts no entry unchecked."""
        with self._stream_slot(await self.guard.caller(context)):
            async for response in self._follow(request.start_index, context):
                yield response

    async def _follow(
        self, start_index: int, context: Context
    ) -> AsyncIterator[ledger_service_pb2.FollowResponse]:
        next_index = start_index
        while not context.cancelled():
            latest = self.watcher.latest
            if latest is None or latest.tree_size <= next_index:
                if self.watcher.stopped:
                    # Said, not a quiet end: a mirror must know to follow again elsewhere.
                    raise UnavailableError(
                        f"the node is shutting down; follow again from index {next_index}"
                    )
                await self.watcher.wait_beyond(next_index, self.limits.follow_idle_seconds)
                continue
            async for chunk in self._chunks(next_index, latest.tree_size):
                proof = await asyncio.to_thread(
                    self.store.inclusion_proof, chunk[-1].index, latest.tree_size
                )
                yield ledger_service_pb2.FollowResponse(
                    entries=chunk,
                    checkpoint=latest.note,
                    last_entry_proof=inclusion_to_proto(proof),
                )
            next_index = latest.tree_size


class _AppendStream:
    """One AppendStream: its window, its entries in flight, its outcomes to send.

    A message's entries travel together: checked together, queued for the sequencer
    as one group (as far as the window allows) and answered together, because a
    future, a callback and a queue slot per entry would cost the event loop more
    than the entry's commit."""

    def __init__(self, service: LedgerServicer, caller: Caller) -> None:
        self.service = service
        self.caller = caller
        self.max_in_flight = service.limits.max_in_flight
        self.unanswered = 0  # entries read whose outcome has not been sent yet
        self.room = asyncio.Event()
        self.room.set()
        # Answers in groups (a batch's, or a message's refusals); None: all are answered.
        self.outcomes: asyncio.Queue[list[_Answer] | None] = asyncio.Queue()
        self.in_flight: set[asyncio.Future[list[AppendOutcome]]] = set()
        self.cut_short = False
        self.closed = False  # the stream is over: outcomes from now on are nobody's answer

    def answered(self, answers: Sequence[_Answer]) -> None:
        """``answers`` were sent: their entries' places in the window are free."""
        now = time.perf_counter()
        for _, read_at in answers:
            self.service.metrics.stream_entry_latency.observe(now - read_at)
        self.unanswered -= len(answers)
        if self.unanswered < self.max_in_flight:
            self.room.set()

    async def answers(self, budget: int) -> AsyncIterator[list[_Answer]]:
        """Outcomes in completion order, grouped: whatever is ready when one is sent, up
        to ``budget`` bytes per message (a single outcome always goes). Ends once every
        entry read is answered."""
        # Each answer with its encoded size, measured once: upb encodes to measure.
        ready: collections.deque[tuple[_Answer, int]] = collections.deque()
        finished = False
        while ready or not finished:
            # Wait for an answer only when none is ready; then take all that are.
            items = [await self.outcomes.get()] if not ready and not finished else []
            while not self.outcomes.empty():
                items.append(self.outcomes.get_nowait())
            for item in items:
                if item is None:
                    finished = True
                else:
                    ready.extend(
                        (answer, answer[0].ByteSize() + _OUTCOME_FRAMING) for answer in item
                    )
            if not ready:
                continue
            first, size = ready.popleft()
            group = [first]
            while ready and size + ready[0][1] <= budget:
                answer, answer_size = ready.popleft()
                group.append(answer)
                size += answer_size
            yield group

    def _settle(
        self,
        sequences: list[int],
        read_at: float,
        future: asyncio.Future[list[AppendOutcome]],
    ) -> None:
        self.in_flight.discard(future)
        if self.closed:
            return
        metrics = self.service.metrics
        try:
            outcomes = _group_outcomes(sequences, future, metrics)
        except Exception as exc:  # a bug here must still answer the group, not stall it
            internal = _internal(exc)
            outcomes = [_refusal_outcome(sequence, internal, metrics) for sequence in sequences]
        self.outcomes.put_nowait([(outcome, read_at) for outcome in outcomes])

    async def _next_request(
        self,
        requests: AsyncIterator[ledger_service_pb2.AppendStreamRequest],
        stopped: asyncio.Future[bool],
    ) -> ledger_service_pb2.AppendStreamRequest | None:
        """The next message, or None when the client is done or the node begins to stop
        (``stopped``: an idle stream must not hold the node's shutdown for its whole grace
        period)."""
        if stopped.done():
            self.cut_short = True
            return None
        reading = asyncio.ensure_future(anext(requests))
        either: set[asyncio.Future[Any]] = {reading, stopped}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not reading.done():
            reading.cancel()
            self.cut_short = True
            return None
        try:
            return reading.result()
        except StopAsyncIteration:
            return None

    async def read(
        self, request_iterator: AsyncIterator[ledger_service_pb2.AppendStreamRequest]
    ) -> None:
        """Queue the entries read for the sequencer; ``None`` on ``outcomes`` once all
        entries read are answered."""
        requests = aiter(request_iterator)
        group_limit = self.service.committer.max_batch
        # One waiter for the whole stream, not one per message.
        stopped: asyncio.Future[bool] = asyncio.ensure_future(self.service.watcher.stopping.wait())
        try:
            while True:
                # Room first: an entry holds its place until its outcome is sent, so a
                # client that does not read its answers stops being read. The entries
                # of a message are queued as room frees, however many it carries.
                await self._room()
                request = await self._next_request(requests, stopped)
                if request is None:  # the client is done, or the node is stopping
                    break
                entries = request.entries
                start = 0
                while start < len(entries):
                    await self._room()
                    room = self.max_in_flight - self.unanswered
                    end = start + min(room, group_limit, len(entries) - start)
                    self.unanswered += end - start
                    await self._queue_entries(entries[start:end])
                    start = end
            if self.in_flight:
                await asyncio.wait(set(self.in_flight))
        finally:
            stopped.cancel()
            self.outcomes.put_nowait(None)

    async def _room(self) -> None:
        while self.unanswered >= self.max_in_flight:
            self.room.clear()
            await self.room.wait()

    async def _queue_entries(self, entries: Sequence[ledger_service_pb2.StreamEntry]) -> None:
        """Check ``entries``, answer those refused already, queue the rest as one group."""
        read_at = time.perf_counter()
        metrics = self.service.metrics
        requests = [(e.HasField("envelope"), e.envelope, e.public_keys) for e in entries]
        submissions = await self.service.submissions(self.caller, requests)
        refused: list[_Answer] = []
        queued: list[Submission] = []
        sequences: list[int] = []
        for entry, submission in zip(entries, submissions, strict=True):
            if isinstance(submission, CustodyError):
                refused.append((_refusal_outcome(entry.sequence, submission, metrics), read_at))
            else:
                queued.append(submission)
                sequences.append(entry.sequence)
        if queued:
            try:
                future = await self.service.committer.enqueue_many(queued)
            except CustodyError as exc:
                refused.extend(
                    (_refusal_outcome(sequence, exc, metrics), read_at) for sequence in sequences
                )
            else:
                self.in_flight.add(future)
                future.add_done_callback(functools.partial(self._settle, sequences, read_at))
        if refused:
            self.outcomes.put_nowait(refused)


def _refusal_outcome(
    sequence: int, error: CustodyError, metrics: NodeMetrics
) -> ledger_service_pb2.StreamOutcome:
    metrics.refused.labels(error.reason).inc()
    if status_code_for(error) is grpc.StatusCode.INTERNAL:
        log.error("append failed", sequence=sequence, reason=error.reason, exc_info=error)
    else:
        log.debug("refused", sequence=sequence, reason=error.reason)
    return ledger_service_pb2.StreamOutcome(sequence=sequence, refusal=append_refusal(error))


def _internal(error: BaseException) -> InternalError:
    """The node's own fault as a refusal: logged with its cause (``_refusal_outcome``),
    answered without internals."""
    internal = InternalError(f"internal error ({type(error).__name__}); see the node's log")
    internal.__cause__ = error
    return internal


def _group_outcomes(
    sequences: list[int], future: asyncio.Future[list[AppendOutcome]], metrics: NodeMetrics
) -> list[ledger_service_pb2.StreamOutcome]:
    """The answers to a group of streamed entries once its future has settled."""
    if future.cancelled():
        error: BaseException | None = UnavailableError("the entry was not sequenced")
    else:
        error = future.exception()
    if error is not None:
        refusal = error if isinstance(error, CustodyError) else _internal(error)
        return [_refusal_outcome(sequence, refusal, metrics) for sequence in sequences]
    return [
        _stream_outcome(sequence, outcome, metrics)
        for sequence, outcome in zip(sequences, future.result(), strict=True)
    ]


def _stream_outcome(
    sequence: int, outcome: AppendOutcome, metrics: NodeMetrics
) -> ledger_service_pb2.StreamOutcome:
    """The answer to one streamed entry of a committed batch."""
    if isinstance(outcome, CustodyError):
        return _refusal_outcome(sequence, outcome, metrics)
    if outcome.duplicate:
        return ledger_service_pb2.StreamOutcome(
            sequence=sequence, refusal=already_logged_refusal(outcome)
        )
    return ledger_service_pb2.StreamOutcome(sequence=sequence, receipt=receipt_to_proto(outcome))


def _entry(stored: StoredLeaf) -> log_pb2.Entry:
    return log_pb2.Entry(index=stored.index, leaf=stored.leaf_bytes)
