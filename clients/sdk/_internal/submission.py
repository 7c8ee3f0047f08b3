"""Bookkeeping of one AppendStream, shared by both clients: sequence numbers, the
entries awaiting their answer, and each answer turned into a verified outcome."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Protocol

from clients.sdk._internal.errors import AlreadyLoggedError, error_for, status_of_refusal
from clients.sdk._internal.plans import ClientCore, Plan
from clients.sdk._internal.results import SubmitItem, SubmitOutcome
from custody.v1 import ledger_service_pb2
from ledger.checkpoint import SignedCheckpoint
from ledger.dsse import Envelope
from ledger.errors import MalformedEnvelopeError, VerificationError
from ledger.leaf import envelope_to_proto

DEFAULT_WINDOW = 1000
"""Entries in flight on one stream; the node's own per-stream limit defaults to 2000."""

MESSAGE_BYTES = 32 << 10
"""Entries are packed into AppendStream messages up to this size (one larger entry
goes alone). Packing saves most of gRPC's per-message cost on both sides; 32 KiB is
the smallest message limit a node may be configured with, so every node takes it."""

_ENTRY_FRAMING = 8  # a StreamEntry's tag and length inside AppendStreamRequest


def check_window(window: int) -> int:
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    return window


def _split(item: SubmitItem) -> tuple[Envelope, list[bytes]]:
    if isinstance(item, Envelope):
        return item, []
    if (
        isinstance(item, tuple)
        and len(item) == 2
        and isinstance(item[0], Envelope)
        and all(isinstance(key, bytes) for key in item[1])
    ):
        return item[0], list(item[1])
    raise MalformedEnvelopeError(
        "submit_many takes Envelope items or (Envelope, public keys) pairs, "
        f"got {type(item).__name__}"
    )


class SubmitStream:
    """One stream's entries in flight, by sequence number (= input position).

    The request side (a gRPC thread, or a task) registers each entry before it is
    sent; the response side turns each answer into a ``SubmitOutcome``: a receipt is
    verified against the log key and the entry's digest, then its checkpoint against
    the saved state (``ClientCore.kept_receipt``; a receipt that fails raises, it is
    never returned); a refusal becomes the translated error; an entry already
    logged gets its verified original receipt (``ClientCore.stream_original_receipt``:
    fetched from the node if the refusal does not carry it).
    """

    def __init__(self, core: ClientCore) -> None:
        self._core = core
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[Envelope, list[bytes]]] = {}
        self._sent = 0
        self._input_error: BaseException | None = None
        # The receipts of one batch share its checkpoint: opened once, not per receipt.
        self._checkpoint: SignedCheckpoint | None = None

    def entry_for(self, item: SubmitItem) -> ledger_service_pb2.StreamEntry:
        """The stream entry for an input item, registered as awaiting its answer."""
        envelope, keys = _split(item)
        with self._lock:
            sequence = self._sent
            self._pending[sequence] = (envelope, keys)
            self._sent += 1
        return ledger_service_pb2.StreamEntry(
            sequence=sequence, envelope=envelope_to_proto(envelope), public_keys=keys
        )

    def input_failed(self, error: BaseException) -> None:
        """The caller's iterable raised: send nothing more, answer what was sent, then
        raise ``error`` from the outcome iterator."""
        self._input_error = error

    def outcome(self, response: ledger_service_pb2.StreamOutcome) -> Plan[SubmitOutcome]:
        """The verified outcome of one answer; a plan, since the original receipt of an
        entry already logged may have to be fetched."""
        with self._lock:
            pending = self._pending.pop(response.sequence, None)
        if pending is None:
            raise VerificationError(
                f"the node answered sequence {response.sequence}, which is not awaiting an answer"
            )
        envelope, keys = pending
        position = response.sequence
        kind = response.WhichOneof("outcome")
        if kind == "receipt":
            receipt = yield from self._core.kept_receipt(
                response.receipt, envelope, duplicate=False, opened=self._checkpoint
            )
            self._checkpoint = receipt.checkpoint
            return SubmitOutcome(position, envelope, receipt, None)
        if kind != "refusal":
            raise VerificationError(f"the node's answer to sequence {position} is empty")
        error = error_for(status_of_refusal(response.refusal))
        if isinstance(error, AlreadyLoggedError):
            original = yield from self._core.stream_original_receipt(envelope, keys, error)
            return SubmitOutcome(position, envelope, original, None)
        return SubmitOutcome(position, envelope, None, error)

    def finish(self) -> None:
        """The node closed the stream: re-raise the input's error, or require an answer
        for every entry sent."""
        if self._input_error is not None:
            raise self._input_error
        if self._pending:
            raise VerificationError(
                f"the node closed the stream leaving {len(self._pending)} entries unanswered"
            )

    def failure(self, error: BaseException) -> BaseException:
        """The error to raise when the stream broke: the input's own error comes first."""
        return self._input_error if self._input_error is not None else error


class ReadyEntries(Protocol):
    """Entries read from the caller's input and not yet sent; None once it ended."""

    def empty(self) -> bool: ...

    def get_nowait(self) -> ledger_service_pb2.StreamEntry | None: ...


class BlockingReadyEntries(ReadyEntries, Protocol):
    """``ReadyEntries`` that a thread waits on (a ``queue.Queue``)."""

    def get(self) -> ledger_service_pb2.StreamEntry | None: ...


class AwaitableReadyEntries(ReadyEntries, Protocol):
    """``ReadyEntries`` that a task waits on (an ``asyncio.Queue``)."""

    async def get(self) -> ledger_service_pb2.StreamEntry | None: ...


class MessagePacker:
    """Packs the entries read so far into AppendStream messages of up to MESSAGE_BYTES:
    nothing waits for more input, and an entry larger than that goes alone."""

    def __init__(self) -> None:
        self._ahead: ledger_service_pb2.StreamEntry | None = None
        self.ended = False  # the input's end was seen: no message after this one

    def take_ahead(self) -> ledger_service_pb2.StreamEntry | None:
        """The entry that did not fit in the last message, which opens the next."""
        ahead, self._ahead = self._ahead, None
        return ahead

    def pack(
        self, first: ledger_service_pb2.StreamEntry, ready: ReadyEntries
    ) -> ledger_service_pb2.AppendStreamRequest:
        """A message of ``first`` and the entries already waiting in ``ready`` that fit."""
        entries = [first]
        size = first.ByteSize() + _ENTRY_FRAMING
        while not ready.empty():
            entry = ready.get_nowait()
            if entry is None:
                self.ended = True
                break
            entry_size = entry.ByteSize() + _ENTRY_FRAMING
            if size + entry_size > MESSAGE_BYTES:
                self._ahead = entry
                break
            entries.append(entry)
            size += entry_size
        return ledger_service_pb2.AppendStreamRequest(entries=entries)


def packed_messages(
    ready: BlockingReadyEntries,
) -> Iterator[ledger_service_pb2.AppendStreamRequest]:
    """AppendStream messages of every entry read so far, up to MESSAGE_BYTES each (one
    that does not fit opens the next); waits for an entry only when none is ready."""
    packer = MessagePacker()
    while not packer.ended:
        entry = packer.take_ahead()
        if entry is None and (entry := ready.get()) is None:
            return
        yield packer.pack(entry, ready)


async def packed_messages_async(
    ready: AwaitableReadyEntries,
) -> AsyncIterator[ledger_service_pb2.AppendStreamRequest]:
    """``packed_messages`` for a task."""
    packer = MessagePacker()
    while not packer.ended:
        entry = packer.take_ahead()
        if entry is None and (entry := await ready.get()) is None:
            return
        yield packer.pack(entry, ready)
