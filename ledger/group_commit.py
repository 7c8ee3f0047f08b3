"""Group commit for concurrent callers: submissions that arrive together share a batch.

Callers queue *groups* of submissions (``enqueue_many``: a unary Append is a group
of one, a streamed message's entries are one group) and await one future per
group. Two threads of the committer's own drain the queue in a two-stage
pipeline: the admitting thread takes whole groups, up to ``max_batch`` entries,
and admits them (signatures verified; in one process, payloads checked too)
while the sequencing thread commits the batch before under the log's lock.
Batches are sequenced strictly in queue order, so entries sent one after
another by one caller keep their order. The batch size grows with load and
each caller waits for about two commits.

Why threads and not event-loop tasks: a batch that hops through the event loop
between its stages waits behind every gRPC callback queued there, and the
sequencer sat idle for that long between batches. The threads hand batches to
each other directly; the loop is woken once per batch, to answer its callers.

Why groups: the event loop runs on the same GIL as sequencing, and a future,
a queue slot and a callback per entry cost more of it than the entry's commit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import structlog

from ledger.admission import Submission
from ledger.errors import CustodyError, InternalError, UnavailableError
from ledger.receipts import Receipt
from ledger.sequencer import AppendOutcome

log = structlog.get_logger("custody.sequencer")

Admitted = TypeVar("Admitted")


class BatchSequencer(Protocol[Admitted]):
    """The two stages of a batch: ``ledger.sequencer.Sequencer``, or a sequencer in
    another process (``services.sequencing.SequencerProcess``)."""

    @property
    def admitted_ahead(self) -> int:
        """Admitted batches that may wait for the second stage: 1 when the stages share
        a process; more keeps a sequencer in another process from ever waiting."""
        ...

    def admit_batch(self, submissions: Sequence[Submission]) -> Admitted:
        """The stateless checks, without the log's lock (and, for a sequencer in
        another process, sending the batch there)."""
        ...

    def sequence_batch(self, admitted: Admitted) -> list[AppendOutcome]:
        """Order and durably commit; one outcome per submission, in order."""
        ...


BatchObserver = Callable[[Sequence[Submission], Sequence[AppendOutcome]], None]


@dataclass(frozen=True, slots=True)
class _Group:
    submissions: Sequence[Submission]
    future: asyncio.Future[list[AppendOutcome]]


@dataclass(slots=True)
class _Admitted(Generic[Admitted]):
    groups: list[_Group]
    submissions: list[Submission]
    admitted: Admitted


@dataclass(slots=True)
class _Queue:
    """What the threads share, guarded by ``GroupCommitter._lock``."""

    groups: collections.deque[_Group] = field(default_factory=collections.deque)
    pending: int = 0  # entries in ``groups``
    admitting: list[_Group] = field(default_factory=list)
    # Admitted, waiting for the sequencing thread, oldest first.
    handoff: collections.deque[_Admitted[Any]] = field(default_factory=collections.deque)
    room_waiters: int = 0  # callers on the loop waiting for room
    closing: bool = False  # no new groups; the threads end once everything queued is done
    admitted_all: bool = False  # the admitting thread has ended


class GroupCommitter(Generic[Admitted]):
    """Batches concurrent submissions onto one sequencer."""

    def __init__(
        self,
        sequencer: BatchSequencer[Admitted],
        *,
        max_batch: int = 1000,
        max_pending: int = 10_000,
        on_batch: BatchObserver | None = None,
    ) -> None:
        """``on_batch(submissions, outcomes)`` is called on the event loop after each batch
        commits (metrics, notifying followers); it must not raise.

        ``max_pending`` bounds the entries queued and not yet taken into a batch;
        a caller waits for room."""
        if max_batch < 1 or max_pending < 1:
            raise ValueError("max_batch and max_pending are at least 1")
        self._sequencer = sequencer
        self._ahead = max(1, sequencer.admitted_ahead)
        self._on_batch = on_batch
        self.max_batch = max_batch
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue = _Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room = asyncio.Event()  # entries left the queue, or the committer is closing
        self._finished: asyncio.Future[None] | None = None  # both threads have ended
        self._threads_running = 0
        self._dead = False  # the sequencing thread has ended: nothing queued is sequenced

    def start(self) -> None:
        """Start the committer's threads; call on the event loop its callers run on."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._finished = self._loop.create_future()
        admitting = threading.Thread(
            target=self._admit_loop, name="group-commit-admit", daemon=True
        )
        sequencing = threading.Thread(
            target=self._sequence_loop, name="group-commit-seq", daemon=True
        )
        self._threads_running = 2
        admitting.start()  # if it cannot start, nothing was taken: only refusals follow
        try:
            sequencing.start()
        except BaseException:
            with self._lock:
                self._queue.closing = True  # the admitting thread ends with nothing taken
                self._threads_running -= 1  # and resolves ``_finished`` as it does
                self._changed.notify_all()
            self._dead = True
            raise

    @property
    def queued(self) -> int:
        """Entries queued and not yet taken into a batch."""
        return self._queue.pending

    @property
    def waiting_for_room(self) -> int:
        """Callers waiting for room in the queue."""
        return self._queue.room_waiters

    @property
    def running(self) -> bool:
        """Started, taking entries, and neither closing nor stopped."""
        return self._loop is not None and not self._queue.closing and not self._dead

    def _refuse_if_stopped(self) -> None:
        if not self.running:
            raise UnavailableError("the sequencer is not accepting entries")

    async def enqueue_many(
        self, submissions: Sequence[Submission]
    ) -> asyncio.Future[list[AppendOutcome]]:
        """Queue entries as one group, in order and in one batch (waiting while the queue
        is full). The future resolves, once their batch is durably committed, to one
        outcome per submission: its receipt, or its refusal (a ``CustodyError`` value).
        If the batch fails as a whole the future raises that error.

        A group holds 1 to ``max_batch`` entries. Cancelling the future before its
        batch is taken keeps the whole group out of the log."""
        if not 1 <= len(submissions) <= self.max_batch:
            raise ValueError(f"a group holds 1 to {self.max_batch} entries")
        self._refuse_if_stopped()
        size = len(submissions)
        queue = self._queue
        while True:
            with self._lock:
                # Checked again under the lock: a group queued after the threads stopped
                # would never be answered.
                self._refuse_if_stopped()
                # Entries beyond the bound wait; a lone group always fits so none waits forever.
                if not queue.pending or queue.pending + size <= self._max_pending:
                    future: asyncio.Future[list[AppendOutcome]] = (
                        asyncio.get_running_loop().create_future()
                    )
                    queue.groups.append(_Group(submissions, future))
                    queue.pending += size
                    self._changed.notify_all()
                    break
                self._room.clear()
                queue.room_waiters += 1
            try:
                await self._room.wait()
            finally:
                with self._lock:
                    queue.room_waiters -= 1
            self._refuse_if_stopped()
        return future

    async def submit(self, submission: Submission) -> Receipt:
        """Wait until the entry is durably logged; raise its refusal otherwise."""
        (outcome,) = await (await self.enqueue_many([submission]))
        if isinstance(outcome, CustodyError):
            raise outcome
        return outcome

    async def close(self) -> None:
        """Stop taking entries, finish everything already queued, then return. Every
        caller awaits the same closing, however many call it."""
        with self._lock:
            self._queue.closing = True
            self._changed.notify_all()
        self._room.set()  # callers waiting for room hear that nothing more is taken
        if self._finished is not None:
            # Never a blocking wait on the event loop: a batch stuck in the database
            # keeps its thread, the loop goes on.
            await asyncio.shield(self._finished)

    # --- the admitting thread ------------------------------------------------------

    def _admit_loop(self) -> None:
        try:
            self._admit_batches()
        except BaseException:
            log.exception("the admitting thread stopped")
        finally:
            with self._lock:
                self._queue.admitted_all = True
                self._changed.notify_all()
            self._thread_ended()

    def _admit_batches(self) -> None:
        while (groups := self._next_batch()) is not None:
            if not groups:
                continue
            submissions = [s for group in groups for s in group.submissions]
            try:
                admitted = self._sequencer.admit_batch(submissions)
            except Exception as exc:  # a failed batch fails its callers, never the loop
                self._answer(groups, exc)
                with self._lock:
                    self._queue.admitting = []
                continue
            with self._lock:
                self._queue.admitting = []
                if not self._dead:
                    self._queue.handoff.append(_Admitted(groups, submissions, admitted))
                    self._changed.notify_all()
                    continue
            self._answer(groups, _stopped())  # the sequencing thread ended meanwhile

    def _next_batch(self) -> list[_Group] | None:
        """Whole groups from the queue's head, up to ``max_batch`` entries, once the
        batch before has gone to the sequencing thread (so that a batch grows while
        the one ahead of it commits); None once closing and drained."""
        queue = self._queue
        with self._lock:
            while not (
                self._dead or (len(queue.handoff) < self._ahead and (queue.groups or queue.closing))
            ):
                self._changed.wait()
            if self._dead or not queue.groups:
                return None
            groups = [queue.groups.popleft()]
            count = len(groups[0].submissions)
            while queue.groups and count + len(queue.groups[0].submissions) <= self.max_batch:
                group = queue.groups.popleft()
                groups.append(group)
                count += len(group.submissions)
            queue.pending -= count
            if queue.room_waiters:
                self._call_on_loop(self._room.set)
            # A caller that gave up (deadline passed, cancelled) before its batch started
            # is not appended: it will never see a receipt. Reading whether a future was
            # cancelled is a read of its state, safe from this thread; cancelling a task
            # cancels the future it awaits at once.
            queue.admitting = [group for group in groups if not group.future.cancelled()]
            return queue.admitting

    # --- the sequencing thread -----------------------------------------------------

    def _sequence_loop(self) -> None:
        try:
            self._sequence_batches()
        except BaseException:
            log.exception("the sequencing thread stopped")
        finally:
            self._stop_threads()

    def _sequence_batches(self) -> None:
        while (work := self._next_admitted()) is not None:
            try:
                outcomes = self._sequencer.sequence_batch(work.admitted)
            except Exception as exc:
                self._answer(work.groups, exc)
                continue
            except BaseException:
                self._answer(work.groups, _stopped())
                raise
            if len(outcomes) != len(work.submissions):
                error = InternalError(
                    f"{len(outcomes)} outcomes for {len(work.submissions)} entries"
                )
                self._answer(work.groups, error)
                continue
            self._call_on_loop(self._committed, work, outcomes)

    def _next_admitted(self) -> _Admitted[Admitted] | None:
        queue = self._queue
        with self._lock:
            while not queue.handoff and not queue.admitted_all:
                self._changed.wait()
            work = queue.handoff.popleft() if queue.handoff else None
            self._changed.notify_all()
            return work

    def _stop_threads(self) -> None:
        """The sequencing thread ends: nothing admitted or queued will be answered by
        the sequencer from now on, and its callers must hear so."""
        try:
            with self._lock:
                self._dead = True
                queue = self._queue
                queue.closing = True  # the admitting thread ends too
                left = [*queue.admitting, *queue.groups]
                for work in queue.handoff:
                    left.extend(work.groups)
                queue.handoff.clear()
                queue.admitting, queue.pending = [], 0
                queue.groups.clear()
                self._changed.notify_all()
            self._answer(left, _stopped())
        finally:
            self._thread_ended()

    def _thread_ended(self) -> None:
        with self._lock:
            self._threads_running -= 1
            last = self._threads_running == 0
        if last:
            self._call_on_loop(self._finish)

    # --- answers, on the event loop ------------------------------------------------

    def _call_on_loop(self, callback: Callable[..., object], *args: object) -> None:
        loop = self._loop
        assert loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left to answer
            loop.call_soon_threadsafe(callback, *args)

    def _answer(self, groups: Sequence[_Group], error: BaseException) -> None:
        if groups:
            self._call_on_loop(_fail, list(groups), error)

    def _committed(self, work: _Admitted[Admitted], outcomes: list[AppendOutcome]) -> None:
        start = 0
        for group in work.groups:
            end = start + len(group.submissions)
            if not group.future.done():
                group.future.set_result(outcomes[start:end])
            start = end
        if self._on_batch is not None:
            try:
                self._on_batch(work.submissions, outcomes)
            except Exception:  # observers must not stop the sequencer
                log.exception("on_batch failed")

    def _finish(self) -> None:
        self._room.set()
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(None)


def _stopped() -> UnavailableError:
    # An admitted batch may already be with a sequencer in another process, which may
    # commit it: only a resubmission can tell (a receipt, or ALREADY_EXISTS with one).
    return UnavailableError(
        "the sequencer stopped before answering; resubmit to learn whether the entry was logged"
    )


def _fail(groups: Sequence[_Group], error: BaseException) -> None:
    if not isinstance(error, CustodyError):
        # Anything else is the node's own fault (and a StopIteration cannot even be
        # set on a future): callers get an internal error; the cause stays attached.
        internal = InternalError(f"the batch failed ({type(error).__name__})")
        internal.__cause__ = error
        error = internal
    for group in groups:
        if not group.future.done():
            group.future.set_exception(error)
