"""Group commit for concurrent callers: submissions that arrive together share a batch.

Callers queue *groups* of submissions (``enqueue_many``: a unary Append is a group
of one, a streamed message's entries are one group) and await one future per
group; a single task drains the queue into batches of up to ``max_batch``
entries, never splitting a group. Batches are pipelined in two stages on worker
threads: while batch N is sequenced and committed under the log's lock, batch
N+1 is already being admitted (signatures verified, payloads checked). Batches
are sequenced strictly in queue order, so entries sent one after another by one
caller keep their order. The batch size grows with load and each caller waits
for about two commits.

Why groups: the event loop runs on the same GIL as sequencing, and a future,
a queue slot and a callback per entry cost more of it than the entry's commit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from ledger.admission import Submission
from ledger.errors import CustodyError, InternalError, UnavailableError
from ledger.receipts import Receipt
from ledger.sequencer import AdmittedBatch, AppendOutcome, Sequencer

log = structlog.get_logger("custody.sequencer")


@dataclass(frozen=True, slots=True)
class _Group:
    submissions: Sequence[Submission]
    future: asyncio.Future[list[AppendOutcome]]


class GroupCommitter:
    """Batches concurrent submissions onto one sequencer."""

    def __init__(
        self,
        sequencer: Sequencer,
        *,
        max_batch: int = 1000,
        max_pending: int = 10_000,
        on_batch: Callable[[Sequence[Submission], Sequence[AppendOutcome]], None] | None = None,
    ) -> None:
        """``on_batch(submissions, outcomes)`` is called on the event loop after each batch
        commits (metrics, notifying followers); it must not raise.

        ``max_pending`` bounds the entries queued and not yet taken into a batch;
        a caller waits for room."""
        if max_batch < 1 or max_pending < 1:
            raise ValueError("max_batch and max_pending are at least 1")
        self._sequencer = sequencer
        self._on_batch = on_batch
        self.max_batch = max_batch
        self._max_pending = max_pending
        self._groups: collections.deque[_Group] = collections.deque()
        self._pending = 0  # entries in self._groups
        self._arrived = asyncio.Event()  # groups are queued, or the committer is closing
        self._room = asyncio.Event()  # entries left the queue
        self._task: asyncio.Task[None] | None = None
        self._closed: asyncio.Task[None] | None = None
        self._closing = False  # no new groups; the loop ends once the queue is empty
        self._dead = False  # the loop has ended: nothing queued from now on is sequenced
        self._admitting: list[_Group] = []
        # Threads of its own: reads elsewhere in the process (bundles, registry
        # queries) must not queue ahead of the sequencer in the default executor.
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="group-commit")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def _refuse_if_stopped(self) -> None:
        if self._closing or self._dead or self._task is None or self._task.done():
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
        # Entries beyond the bound wait; a lone group always fits so none waits forever.
        while self._pending and self._pending + size > self._max_pending:
            self._room.clear()
            await self._room.wait()
            self._refuse_if_stopped()
        future: asyncio.Future[list[AppendOutcome]] = asyncio.get_running_loop().create_future()
        self._groups.append(_Group(submissions, future))
        self._pending += size
        self._arrived.set()
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
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self._closed)

    async def _close(self) -> None:
        try:
            self._closing = True
            self._arrived.set()
            self._room.set()  # callers waiting for room hear that nothing more is taken
            if self._task is not None and not self._task.done():
                await self._task
        finally:
            # Never a blocking wait on the event loop: a batch stuck in the database
            # keeps its thread, the loop goes on.
            self._threads.shutdown(wait=False, cancel_futures=True)

    def _take_batch(self) -> list[_Group]:
        """Whole groups from the queue's head, up to ``max_batch`` entries."""
        batch = [self._groups.popleft()]
        count = len(batch[0].submissions)
        while self._groups and count + len(self._groups[0].submissions) <= self.max_batch:
            group = self._groups.popleft()
            batch.append(group)
            count += len(group.submissions)
        self._pending -= count
        self._room.set()
        return batch

    async def _run(self) -> None:
        sequencing: asyncio.Task[None] | None = None
        try:
            while True:
                if not self._groups:
                    if self._closing:
                        return
                    self._arrived.clear()
                    await self._arrived.wait()
                    continue
                sequencing = await self._pipeline(self._take_batch(), sequencing)
        finally:
            self._dead = True
            self._room.set()
            if sequencing is not None:
                # Shielded from our own cancellation: a batch being committed finishes and
                # answers its callers (its thread could not be stopped anyway).
                with contextlib.suppress(BaseException):
                    await asyncio.shield(sequencing)
            # Whatever is admitted or queued will not be sequenced: its callers must hear so.
            stopped = UnavailableError("the sequencer stopped; the entry was not sequenced")
            _fail([*self._admitting, *self._groups], stopped)
            self._admitting = []
            self._groups.clear()
            self._pending = 0

    async def _pipeline(
        self, batch: list[_Group], previous: asyncio.Task[None] | None
    ) -> asyncio.Task[None] | None:
        """Admit ``batch`` (overlapping the previous batch's commit), then start its
        commit once the previous one is done; returns the commit task."""
        # A caller that gave up (deadline passed, cancelled) before its batch started
        # is not appended: it will never see a receipt.
        batch = [group for group in batch if not group.future.cancelled()]
        if not batch:
            return previous
        self._admitting = batch
        submissions = [submission for group in batch for submission in group.submissions]
        try:
            admitted = await asyncio.get_running_loop().run_in_executor(
                self._threads, self._sequencer.admit_batch, submissions
            )
        except Exception as exc:  # a failed batch fails its callers, never the loop
            _fail(batch, exc)
            self._admitting = []
            return previous
        if previous is not None:
            await asyncio.shield(previous)  # cancelling the loop must not cut a commit short
        self._admitting = []
        return asyncio.get_running_loop().create_task(self._sequence(batch, submissions, admitted))

    async def _sequence(
        self, batch: list[_Group], submissions: list[Submission], admitted: AdmittedBatch
    ) -> None:
        try:
            outcomes = await asyncio.get_running_loop().run_in_executor(
                self._threads, self._sequencer.sequence_batch, admitted
            )
        except Exception as exc:
            _fail(batch, exc)
            return
        if len(outcomes) != len(submissions):
            _fail(batch, InternalError(f"{len(outcomes)} outcomes for {len(submissions)} entries"))
            return
        start = 0
        for group in batch:
            end = start + len(group.submissions)
            if not group.future.done():
                group.future.set_result(outcomes[start:end])
            start = end
        if self._on_batch is not None:
            try:
                self._on_batch(submissions, outcomes)
            except Exception:  # observers must not stop the sequencer
                log.exception("on_batch failed")


def _fail(batch: Sequence[_Group], error: BaseException) -> None:
    for group in batch:
        if not group.future.done():
            group.future.set_exception(error)
