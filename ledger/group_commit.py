"""Group commit for concurrent callers: submissions that arrive together share a batch.

Callers await ``submit`` (or ``enqueue`` and await the future later); a single
task drains the queue into batches of up to ``max_batch`` entries. Batches are
pipelined in two stages on worker threads: while batch N is sequenced and
committed under the log's lock, batch N+1 is already being admitted
(signatures verified, payloads checked). Batches are sequenced strictly in
queue order, so entries sent one after another by one caller keep their order.
The batch size grows with load and each caller waits for about two commits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import structlog

from ledger.admission import Submission
from ledger.errors import CustodyError, UnavailableError
from ledger.receipts import Receipt
from ledger.sequencer import AdmittedBatch, AppendOutcome, Sequencer

log = structlog.get_logger("custody.sequencer")
_STOP: Final = object()
_Item = tuple[Submission, "asyncio.Future[Receipt]"]


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
        commits (metrics, notifying followers); it must not raise."""
        self._sequencer = sequencer
        self._on_batch = on_batch
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Item | object] = asyncio.Queue(maxsize=max_pending)
        self._task: asyncio.Task[None] | None = None
        self._closed: asyncio.Task[None] | None = None
        self._dead = False  # the loop has ended: nothing queued from now on is sequenced
        self._admitting: list[_Item] = []
        # Threads of its own: reads elsewhere in the process (bundles, registry
        # queries) must not queue ahead of the sequencer in the default executor.
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="group-commit")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def enqueue(self, submission: Submission) -> asyncio.Future[Receipt]:
        """Queue an entry (waiting while the queue is full); its future resolves to the
        receipt once the entry is durably logged, or to its refusal."""
        if self._closed is not None or self._dead or self._task is None or self._task.done():
            raise UnavailableError("the sequencer is not accepting entries")
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        await self._queue.put((submission, future))
        if self._dead and not future.done():  # the loop ended while we waited for room
            future.set_exception(UnavailableError("the sequencer stopped"))
        return future

    async def submit(self, submission: Submission) -> Receipt:
        """Wait until the entry is durably logged; raise its refusal otherwise."""
        return await (await self.enqueue(submission))

    async def close(self) -> None:
        """Stop taking entries, finish everything already queued, then return. Every
        caller awaits the same closing, however many call it."""
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self._closed)

    async def _close(self) -> None:
        try:
            if self._task is not None and not self._task.done():
                await self._queue.put(_STOP)
                await self._task
        finally:
            # Never a blocking wait on the event loop: a batch stuck in the database
            # keeps its thread, the loop goes on.
            self._threads.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        sequencing: asyncio.Task[None] | None = None
        try:
            while True:
                first = await self._queue.get()
                if first is _STOP:
                    return
                batch: list[_Item] = [first]  # type: ignore[list-item]
                stop_after = False
                while len(batch) < self._max_batch and not self._queue.empty():
                    item = self._queue.get_nowait()
                    if item is _STOP:
                        stop_after = True
                        break
                    batch.append(item)  # type: ignore[arg-type]
                sequencing = await self._pipeline(batch, sequencing)
                if stop_after:
                    return
        finally:
            self._dead = True
            if sequencing is not None:
                # Shielded from our own cancellation: a batch being committed finishes and
                # answers its callers (its thread could not be stopped anyway).
                with contextlib.suppress(BaseException):
                    await asyncio.shield(sequencing)
            # Whatever is admitted or queued will not be sequenced: its callers must hear so.
            stopped = UnavailableError("the sequencer stopped; the entry was not sequenced")
            _fail(self._admitting, stopped)
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is not _STOP:
                    _fail([item], stopped)  # type: ignore[list-item]

    async def _pipeline(
        self, batch: list[_Item], previous: asyncio.Task[None] | None
    ) -> asyncio.Task[None] | None:
        """Admit ``batch`` (overlapping the previous batch's commit), then start its
        commit once the previous one is done; returns the commit task."""
        # A caller that gave up (deadline passed, cancelled) before its batch started
        # is not appended: it will never see a receipt.
        batch = [item for item in batch if not item[1].cancelled()]
        if not batch:
            return previous
        self._admitting = batch
        try:
            admitted = await asyncio.get_running_loop().run_in_executor(
                self._threads, self._sequencer.admit_batch, [submission for submission, _ in batch]
            )
        except Exception as exc:  # a failed batch fails its callers, never the loop
            _fail(batch, exc)
            self._admitting = []
            return previous
        if previous is not None:
            await asyncio.shield(previous)  # cancelling the loop must not cut a commit short
        self._admitting = []
        return asyncio.get_running_loop().create_task(self._sequence(batch, admitted))

    async def _sequence(self, batch: list[_Item], admitted: AdmittedBatch) -> None:
        try:
            outcomes = await asyncio.get_running_loop().run_in_executor(
                self._threads, self._sequencer.sequence_batch, admitted
            )
        except Exception as exc:
            _fail(batch, exc)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, CustodyError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        if self._on_batch is not None:
            try:
                self._on_batch([submission for submission, _ in batch], outcomes)
            except Exception:  # observers must not stop the sequencer
                log.exception("on_batch failed")


def _fail(batch: list[_Item], error: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
