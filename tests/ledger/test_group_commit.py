"""Group commit: concurrent submissions share batches and every caller gets a receipt."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable

import pytest

from ledger.admission import Submission
from ledger.dsse import Envelope
from ledger.errors import (
    CustodyError,
    InternalError,
    StorageError,
    UnavailableError,
    UnsignedEntryError,
)
from ledger.group_commit import GroupCommitter
from ledger.receipts import Receipt, verify_receipt
from ledger.sequencer import AdmittedBatch, Sequencer
from ledger.storage import LogStore
from tests.support import SubmissionFactory


async def entered_in_time(entered: threading.Event) -> None:
    """Wait (off the event loop) until a patched sequencer step has been called."""
    assert await asyncio.to_thread(entered.wait, 10)


def hold_admission(
    sequencer: Sequencer, monkeypatch: pytest.MonkeyPatch
) -> tuple[threading.Event, threading.Event]:
    """Make ``admit_batch`` wait at a gate: (set once it has been called, the gate)."""
    entered, gate = threading.Event(), threading.Event()
    real = sequencer.admit_batch

    def held(submissions: list[Submission]) -> AdmittedBatch:
        entered.set()
        gate.wait(10)
        return real(submissions)

    monkeypatch.setattr(sequencer, "admit_batch", held)
    return entered, gate


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Yield to the event loop until ``condition`` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.001)


def test_concurrent_submissions_are_grouped(
    sequencer: Sequencer, store: LogStore, make_submission: SubmissionFactory
) -> None:
    submissions = [make_submission() for _ in range(200)]

    async def run() -> list[int]:
        committer = GroupCommitter(sequencer, max_batch=64)
        committer.start()
        results = await asyncio.gather(*(committer.submit(s) for s in submissions))
        await committer.close()
        for submission, receipt in zip(submissions, results, strict=True):
            verify_receipt(receipt, sequencer.log_key, submission.envelope.digest())
        return [r.index for r in results]

    indices = asyncio.run(run())
    assert sorted(indices) == list(range(200))
    checkpoints = list(store.iter_checkpoints())
    # Grouped: far fewer checkpoints than entries, none bigger than max_batch apart.
    assert len(checkpoints) - 1 < 200
    sizes = [c.tree_size for c in checkpoints]
    assert all(b - a <= 64 for a, b in itertools.pairwise(sizes))


def test_a_refusal_reaches_only_its_caller(
    sequencer: Sequencer, make_submission: SubmissionFactory
) -> None:
    async def run() -> None:
        committer = GroupCommitter(sequencer)
        committer.start()
        good = committer.submit(make_submission())
        bad = committer.submit(Submission.of(Envelope("t/x", b"x", ()), []))
        results = await asyncio.gather(good, bad, return_exceptions=True)
        await committer.close()
        assert not isinstance(results[0], BaseException)
        assert isinstance(results[1], UnsignedEntryError)

    asyncio.run(run())


def test_close_finishes_queued_work_then_refuses(
    sequencer: Sequencer, store: LogStore, make_submission: SubmissionFactory
) -> None:
    async def run() -> None:
        committer = GroupCommitter(sequencer, max_batch=4)
        committer.start()
        pending = [asyncio.create_task(committer.submit(make_submission())) for _ in range(10)]
        await asyncio.sleep(0)
        await committer.close()
        done = await asyncio.gather(*pending)
        assert len(done) == 10
        with pytest.raises(UnavailableError):
            await committer.submit(make_submission())

    asyncio.run(run())
    assert store.size() == 10


def test_a_failed_batch_fails_its_callers_and_the_next_batch_proceeds(
    sequencer: Sequencer,
    store: LogStore,
    make_submission: SubmissionFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = sequencer.sequence_batch
    calls = 0

    def flaky(admitted: AdmittedBatch) -> list[Receipt | CustodyError]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StorageError("database went away")
        return real(admitted)

    monkeypatch.setattr(sequencer, "sequence_batch", flaky)

    async def run() -> None:
        committer = GroupCommitter(sequencer)
        committer.start()
        first = await asyncio.gather(committer.submit(make_submission()), return_exceptions=True)
        assert isinstance(first[0], StorageError)
        receipt = await committer.submit(make_submission())
        assert receipt.index == 0
        await committer.close()

    asyncio.run(run())
    assert store.size() == 1


def test_a_caller_that_gave_up_before_its_batch_is_not_appended(
    sequencer: Sequencer,
    store: LogStore,
    make_submission: SubmissionFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, kept, abandoned = make_submission(), make_submission(), make_submission()
    batches: list[int] = []
    entered, gate = hold_admission(sequencer, monkeypatch)

    async def run() -> list[Receipt]:
        committer = GroupCommitter(
            sequencer, on_batch=lambda _, outcomes: batches.append(len(outcomes))
        )
        committer.start()
        ahead = asyncio.ensure_future(committer.submit(first))
        await entered_in_time(entered)  # the committer is busy: what follows stays queued
        waiting = asyncio.ensure_future(committer.submit(abandoned))
        answered = asyncio.ensure_future(committer.submit(kept))
        await until(lambda: committer.queued == 2)
        waiting.cancel()  # the caller gives up (a deadline, a client that went away)
        await until(waiting.done)
        gate.set()
        receipts = [await ahead, await answered]
        await committer.close()
        return receipts

    receipts = asyncio.run(run())
    assert [receipt.index for receipt in receipts] == [0, 1]
    assert store.size() == 2  # only the callers still waiting were appended
    assert batches == [1, 1]
    assert store.indices_for_digests({abandoned.envelope.digest()}) == {}


def test_pipelined_batches_keep_the_order_entries_were_queued_in(
    sequencer: Sequencer, make_submission: SubmissionFactory
) -> None:
    submissions = [make_submission() for _ in range(60)]

    async def run() -> list[int]:
        committer = GroupCommitter(sequencer, max_batch=7)
        committer.start()
        # One caller streaming without waiting: later entries may depend on earlier ones.
        # Groups of 1 to 7 entries, queued one after another.
        futures = []
        start = 0
        for size in itertools.cycle(range(1, 8)):
            if start >= len(submissions):
                break
            futures.append(await committer.enqueue_many(submissions[start : start + size]))
            start += size
        groups = await asyncio.gather(*futures)
        await committer.close()
        return [r.index for group in groups for r in group if isinstance(r, Receipt)]

    assert asyncio.run(run()) == list(range(60))


def test_a_group_is_answered_in_order_and_committed_in_one_batch(
    sequencer: Sequencer, store: LogStore, make_submission: SubmissionFactory
) -> None:
    """Receipts and refusals come back as values, one per entry and in order; a group is
    never split across batches, and a batch holds whole groups up to ``max_batch``."""
    good = [make_submission() for _ in range(5)]
    unsigned = Submission.of(Envelope("t/x", b"x", ()), [])
    group = [good[0], unsigned, good[1], good[0], good[2]]  # a refusal and a repeat inside
    batches: list[int] = []

    async def run() -> list[list[Receipt | CustodyError]]:
        committer = GroupCommitter(
            sequencer, max_batch=5, on_batch=lambda _, outcomes: batches.append(len(outcomes))
        )
        committer.start()
        first = await committer.enqueue_many(group)
        second = await committer.enqueue_many(good[3:5])  # does not fit beside the first
        answers = [await first, await second]
        await committer.close()
        return answers

    first, second = asyncio.run(run())
    assert batches == [5, 2]
    assert isinstance(first[1], UnsignedEntryError)
    receipts = [first[0], first[2], first[3], first[4], *second]
    assert all(isinstance(receipt, Receipt) for receipt in receipts)
    assert [r.index for r in receipts if isinstance(r, Receipt)] == [0, 1, 0, 2, 3, 4]
    assert [r.duplicate for r in receipts if isinstance(r, Receipt)] == [
        False,
        False,
        True,
        False,
        False,
        False,
    ]
    assert store.size() == 5


def test_a_group_holds_one_to_max_batch_entries(
    sequencer: Sequencer, store: LogStore, make_submission: SubmissionFactory
) -> None:
    async def run() -> None:
        committer = GroupCommitter(sequencer, max_batch=3)
        committer.start()
        with pytest.raises(ValueError, match="1 to 3"):
            await committer.enqueue_many([])
        with pytest.raises(ValueError, match="1 to 3"):
            await committer.enqueue_many([make_submission() for _ in range(4)])
        await committer.close()

    asyncio.run(run())
    assert store.size() == 0


def test_callers_wait_for_room_counted_in_entries(
    sequencer: Sequencer, make_submission: SubmissionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``max_pending`` bounds queued entries, not groups: a group that would pass it
    waits until a batch takes entries off the queue, then goes in whole."""
    entered, gate = hold_admission(sequencer, monkeypatch)

    async def run() -> list[int]:
        committer = GroupCommitter(sequencer, max_batch=4, max_pending=4)
        committer.start()
        first = await committer.enqueue_many([make_submission()])  # taken: being admitted
        await entered_in_time(entered)
        queued = await committer.enqueue_many([make_submission() for _ in range(3)])
        waiting = asyncio.ensure_future(committer.enqueue_many([make_submission()] * 2))
        await until(lambda: committer.waiting_for_room == 1)
        assert committer.queued == 3
        assert not waiting.done()  # 3 queued + 2 > 4
        gate.set()
        later = await asyncio.wait_for(waiting, 10)
        groups = [await first, await queued, await later]
        await committer.close()
        return [len(group) for group in groups]

    assert asyncio.run(run()) == [1, 3, 2]


def test_an_observer_that_raises_neither_hangs_callers_nor_stops_the_sequencer(
    sequencer: Sequencer, make_submission: SubmissionFactory
) -> None:
    def broken(_: object, __: object) -> None:
        raise RuntimeError("metrics backend is down")

    async def run() -> list[int]:
        committer = GroupCommitter(sequencer, on_batch=broken)
        committer.start()
        first = await asyncio.wait_for(committer.submit(make_submission()), 30)
        second = await asyncio.wait_for(committer.submit(make_submission()), 30)
        await committer.close()
        return [first.index, second.index]

    assert asyncio.run(run()) == [0, 1]


class Crash(BaseException):
    """Stands for whatever could kill a committer's thread outright."""


def test_a_committer_whose_threads_died_refuses_instead_of_queueing(
    sequencer: Sequencer, make_submission: SubmissionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(admitted: AdmittedBatch) -> list[Receipt | CustodyError]:
        raise Crash

    monkeypatch.setattr(sequencer, "sequence_batch", crash)

    async def run() -> None:
        committer = GroupCommitter(sequencer)
        committer.start()
        with pytest.raises(UnavailableError, match="resubmit"):  # committed? nobody knows
            await committer.submit(make_submission())
        await until(lambda: not committer.running)
        with pytest.raises(UnavailableError):
            await committer.submit(make_submission())
        await asyncio.wait_for(committer.close(), 10)

    asyncio.run(run())


def test_when_the_threads_die_every_waiting_caller_is_answered(
    sequencer: Sequencer,
    make_submission: SubmissionFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch committing, one admitted, one queued, one waiting for room: when the
    sequencing thread dies, the batch it was committing, and everything behind it, is
    refused as unavailable instead of being left to wait."""
    entered, gate = threading.Event(), threading.Event()
    real_admit = sequencer.admit_batch
    admitted_batches: list[AdmittedBatch] = []

    def crash(admitted: AdmittedBatch) -> list[Receipt | CustodyError]:
        entered.set()
        gate.wait(10)
        raise Crash

    def admit(submissions: list[Submission]) -> AdmittedBatch:
        admitted = real_admit(submissions)
        admitted_batches.append(admitted)
        return admitted

    monkeypatch.setattr(sequencer, "sequence_batch", crash)
    monkeypatch.setattr(sequencer, "admit_batch", admit)

    async def run() -> list[object]:
        committer = GroupCommitter(sequencer, max_batch=1, max_pending=1)
        committer.start()
        futures = [await committer.enqueue_many([make_submission()])]  # A: will be committing
        await entered_in_time(entered)
        futures.append(await committer.enqueue_many([make_submission()]))  # B: admitted
        await until(lambda: len(admitted_batches) == 2)
        futures.append(await committer.enqueue_many([make_submission()]))  # C: queued
        blocked = asyncio.ensure_future(committer.enqueue_many([make_submission()]))  # D
        await until(lambda: committer.waiting_for_room == 1)
        assert not blocked.done()  # no room
        gate.set()  # A's thread dies
        outcomes = await asyncio.wait_for(
            asyncio.gather(*futures, blocked, return_exceptions=True), 5
        )
        assert not committer.running
        await asyncio.wait_for(committer.close(), 10)
        return list(outcomes)

    outcomes = asyncio.run(run())
    assert all(isinstance(outcome, UnavailableError) for outcome in outcomes), outcomes
    assert len(outcomes) == 4
    assert not committer_threads()  # both ended, none stuck waiting for room downstream


def committer_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("group-commit")]


@pytest.mark.parametrize(
    "failure", [StopIteration(), RuntimeError("a bug")], ids=["StopIteration", "RuntimeError"]
)
def test_a_batch_failing_with_a_non_custody_error_is_internal_for_its_callers(
    sequencer: Sequencer,
    make_submission: SubmissionFactory,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
) -> None:
    """Any error, even one a future cannot hold (StopIteration), answers every caller of
    the batch, as INTERNAL, and the next batch goes on."""
    real = sequencer.sequence_batch
    calls = 0

    def failing(admitted: AdmittedBatch) -> list[Receipt | CustodyError]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise failure
        return real(admitted)

    monkeypatch.setattr(sequencer, "sequence_batch", failing)

    async def run() -> tuple[list[object], Receipt]:
        committer = GroupCommitter(sequencer)
        committer.start()
        group = await committer.enqueue_many([make_submission(), make_submission()])
        failed = await asyncio.wait_for(asyncio.gather(group, return_exceptions=True), 10)
        receipt = await asyncio.wait_for(committer.submit(make_submission()), 10)
        await committer.close()
        return list(failed), receipt

    (error,), receipt = asyncio.run(run())
    assert isinstance(error, InternalError)
    assert error.__cause__ is failure
    assert receipt.index == 0


def test_closing_refuses_callers_waiting_for_room_and_commits_what_is_queued(
    sequencer: Sequencer,
    store: LogStore,
    make_submission: SubmissionFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entered, gate = hold_admission(sequencer, monkeypatch)

    async def run() -> list[object]:
        committer = GroupCommitter(sequencer, max_batch=2, max_pending=2)
        committer.start()
        taken = await committer.enqueue_many([make_submission()])  # being admitted
        await entered_in_time(entered)
        queued = await committer.enqueue_many([make_submission(), make_submission()])
        waiting = asyncio.ensure_future(committer.enqueue_many([make_submission()]))
        await until(lambda: committer.waiting_for_room == 1)
        assert not waiting.done()
        closing = asyncio.ensure_future(committer.close())
        await until(lambda: not committer.running)  # closing began with the batch held
        gate.set()
        answers = await asyncio.wait_for(
            asyncio.gather(taken, queued, waiting, return_exceptions=True), 10
        )
        await asyncio.wait_for(closing, 10)
        return list(answers)

    taken, queued, waiting = asyncio.run(run())
    assert isinstance(waiting, UnavailableError)
    assert isinstance(taken, list)
    assert isinstance(queued, list)
    assert [type(outcome) for outcome in [*taken, *queued]] == [Receipt] * 3
    assert store.size() == 3


def test_a_cancelled_group_is_left_out_whole(
    sequencer: Sequencer,
    store: LogStore,
    make_submission: SubmissionFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dropped = [make_submission() for _ in range(3)]
    first, kept = make_submission(), make_submission()
    entered, gate = hold_admission(sequencer, monkeypatch)

    async def run() -> list[Receipt]:
        committer = GroupCommitter(sequencer)
        committer.start()
        ahead = asyncio.ensure_future(committer.submit(first))
        await entered_in_time(entered)  # the committer is busy: what follows stays queued
        group = await committer.enqueue_many(dropped)
        answered = asyncio.ensure_future(committer.submit(kept))
        await until(lambda: committer.queued == 4)
        group.cancel()  # before the committer took it
        gate.set()
        receipts = [await ahead, await answered]
        await committer.close()
        return receipts

    receipts = asyncio.run(run())
    assert [receipt.index for receipt in receipts] == [0, 1]
    assert store.size() == 2
    assert store.indices_for_digests({s.envelope.digest() for s in dropped}) == {}


def test_a_sequencer_answering_the_wrong_count_fails_the_batch(
    sequencer: Sequencer,
    store: LogStore,
    make_submission: SubmissionFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Outcomes are matched to callers by position: a count that does not match is the
    node's own fault, never a caller handed another's receipt."""
    real = sequencer.sequence_batch

    def short(admitted: AdmittedBatch) -> list[Receipt | CustodyError]:
        return real(admitted)[:-1]

    monkeypatch.setattr(sequencer, "sequence_batch", short)

    async def run() -> list[object]:
        committer = GroupCommitter(sequencer)
        committer.start()
        groups = [
            await committer.enqueue_many([make_submission(), make_submission()]),
            await committer.enqueue_many([make_submission()]),
        ]
        answers = await asyncio.gather(*groups, return_exceptions=True)
        await committer.close()
        return list(answers)

    assert all(isinstance(answer, InternalError) for answer in asyncio.run(run()))


@pytest.mark.parametrize("ahead", [1, 2])
def test_batches_are_admitted_ahead_as_far_as_the_sequencer_asks(
    sequencer: Sequencer,
    make_submission: SubmissionFactory,
    monkeypatch: pytest.MonkeyPatch,
    ahead: int,
) -> None:
    """While one batch is being sequenced, ``admitted_ahead`` more are admitted and wait;
    the next stays queued, growing, until one of them goes on."""
    entered, gate = threading.Event(), threading.Event()
    real_sequence, real_admit = sequencer.sequence_batch, sequencer.admit_batch
    admitted: list[int] = []

    def held(batch: AdmittedBatch) -> list[Receipt | CustodyError]:
        entered.set()
        gate.wait(10)
        return real_sequence(batch)

    def admit(submissions: list[Submission]) -> AdmittedBatch:
        admitted.append(len(submissions))
        return real_admit(submissions)

    monkeypatch.setattr(sequencer, "sequence_batch", held)
    monkeypatch.setattr(sequencer, "admit_batch", admit)
    monkeypatch.setattr(sequencer, "admitted_ahead", ahead)

    async def run() -> list[int]:
        committer = GroupCommitter(sequencer, max_batch=1)
        committer.start()
        futures = [await committer.enqueue_many([make_submission()])]
        await entered_in_time(entered)  # the first batch is being sequenced
        futures += [await committer.enqueue_many([make_submission()]) for _ in range(4)]
        await until(lambda: len(admitted) == 1 + ahead)
        await asyncio.sleep(0.05)  # and no further
        assert len(admitted) == 1 + ahead
        assert committer.queued == 4 - ahead
        gate.set()
        groups = await asyncio.gather(*futures)
        await committer.close()
        return [r.index for group in groups for r in group if isinstance(r, Receipt)]

    assert asyncio.run(run()) == [0, 1, 2, 3, 4]
