"""The node's sequencer: in a process of its own (the default), or in the node's.

``SequencerProcess`` runs it in a process of its own, fed verified entries over
a pipe; ``open_sequencer`` opens one in the calling process (the sequencer's
process itself), and ``open_sequencer(..., in_node=True)`` one for a node with
``[sequencer] own_process = false`` (``InNodeSequencer``).

Why: Python runs one thread at a time per process (the GIL). In one process the
sequencer's database work waits for the GIL behind the gRPC event loop at
every statement, since SQLite releases it for each one, and the node uses
little more than one core. Split, the node's process receives, decodes and
verifies (verification releases the GIL, so it spreads over threads), and
the sequencer's process orders, applies the admission rules, writes and signs
without waiting for anyone.

The work is split at the envelope rules (``ledger.admission.admit``): the
node's process checks signatures; the sequencer's process trusts those checks
(it is the same node, started by it, over pipes only the two hold) and runs
everything else of ``Sequencer.append_batch`` through ``sequence_verified``.
Outcomes and errors come back as themselves (``CustodyError`` pickles).

A batch goes out at the end of ``admit_batch`` and its answer is read by
``sequence_batch``, so with the group committer's two stages the next batches
are already waiting in the pipe while one is being sequenced: the sequencer's
process never waits for the node's threads between batches. It commits every
batch waiting in its pipe together (up to ``max_batch`` entries), in one
transaction under one checkpoint, and answers each of them in turn: the node
cuts a batch as soon as entries arrive, so that none waits for a batch to fill,
and the batches that queued up while the sequencer was busy are committed at the
cost of one. Under many concurrent unary appends that is the difference between
one commit per two or three entries and one per dozen.

Lifecycle: ``SequencerProcess.start`` spawns the process and waits until it
has checked the log's head (a failure there is raised in the node, as in one
process). The sequencer's process ignores SIGINT and SIGTERM: the node stops
it once every queued entry is committed (``close``), and kills it if it does
not stop. If it dies, the batches it held and every later one fail with
UNAVAILABLE (whether such a batch committed, a resubmission tells), and the
node turns NOT_SERVING and stops (``services.node``).
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import multiprocessing.util
import os
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Literal, Protocol, cast, overload

import structlog

from ledger.admission import Submission, admit
from ledger.custody_rules import CustodyRules
from ledger.errors import CustodyError, InternalError, UnavailableError
from ledger.group_commit import BatchSequencer
from ledger.keys import LOG_KEY_PASSPHRASE_ENV, load_private_key, passphrase_from_env
from ledger.note import NoteSigner
from ledger.records import StoredCheckpoint
from ledger.sequencer import AdmittedBatch, AppendOutcome, EntryChecker, Sequencer, VerifiedEntry
from ledger.storage.log_store import LogStore
from services.config import NodeConfig
from services.gc_tuning import tune_garbage_collection
from services.observability import LogFormat, configure_logging

log = structlog.get_logger("custody.sequencer")

START_SECONDS = 120.0
"""How long the sequencer's process may take to open the database and check the head."""
STOP_SECONDS = 30.0
"""How long it may take to close once told to stop, before it is killed."""


@dataclass(frozen=True, slots=True)
class VerifiedBatch:
    """A batch after the node's own checks (each entry verified, or its refusal), the
    number of the request its verified entries went out as (None: none did), and how
    many went."""

    outcomes: list[VerifiedEntry | CustodyError]
    request: int | None
    sent: int


@dataclass(frozen=True, slots=True)
class _Ready:
    origin: str
    checkpoint: StoredCheckpoint  # the log's latest


@dataclass(frozen=True, slots=True)
class _Committed:
    outcomes: list[AppendOutcome]
    checkpoint: StoredCheckpoint  # the log's latest, after this batch
    commit_entries: int
    """Entries in the transaction this batch was committed in, on the answer to the
    first batch it took; 0 on the answers to the others committed with it."""


@dataclass(frozen=True, slots=True)
class _Failed:
    error: CustodyError


class NodeSequencer(BatchSequencer[Any], Protocol):
    """The node's sequencer: in its own process (``SequencerProcess``) or in this one."""

    @property
    def origin(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def latest_checkpoint(self) -> StoredCheckpoint: ...

    @property
    def sentinel(self) -> int | None:
        """A file descriptor that becomes readable if the sequencer ends on its own
        (its process died); None when it cannot (it runs in the node's process)."""
        ...

    def take_commit_sizes(self) -> list[int]:
        """Entries per transaction of the commits reported since the last call."""
        ...

    def close(self) -> None: ...


class InNodeSequencer(Sequencer):
    """The sequencer in the node's own process: each batch is one commit."""

    sentinel = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._commit_sizes: collections.deque[int] = collections.deque()

    def sequence_batch(self, admitted: AdmittedBatch) -> list[AppendOutcome]:
        outcomes = super().sequence_batch(admitted)
        # Counted as in the sequencer's process: the entries that reached a commit.
        entries = sum(1 for outcome in admitted.outcomes if not isinstance(outcome, CustodyError))
        if entries:
            self._commit_sizes.append(entries)
        return outcomes

    def take_commit_sizes(self) -> list[int]:
        return _drain(self._commit_sizes)


def _drain(sizes: collections.deque[int]) -> list[int]:
    """Everything in ``sizes``, oldest first, taken out (another thread may append)."""
    taken: list[int] = []
    while sizes:
        taken.append(sizes.popleft())
    return taken


@overload
def open_sequencer(
    config: NodeConfig, *, verify_threads: int | None = None, in_node: Literal[False] = False
) -> tuple[LogStore, Sequencer]: ...


@overload
def open_sequencer(
    config: NodeConfig, *, verify_threads: int | None = None, in_node: Literal[True]
) -> tuple[LogStore, InNodeSequencer]: ...


def open_sequencer(
    config: NodeConfig, *, verify_threads: int | None = None, in_node: bool = False
) -> tuple[LogStore, Sequencer]:
    """The log's store and a sequencer whose head was checked against its signed
    checkpoint; ``in_node``: one that reports its commits to the node serving it."""
    store = LogStore.open(config.database_url, migrate=False)
    try:
        info = store.info()
        key = load_private_key(config.log_key_path, passphrase_from_env(LOG_KEY_PASSPHRASE_ENV))
        sequencer = (InNodeSequencer if in_node else Sequencer)(
            store,
            NoteSigner(info.origin, key),
            rules=CustodyRules(store),
            verify_threads=verify_threads or config.sequencer.verify_threads,
        )
    except BaseException:
        store.close()
        raise
    return store, sequencer


class SequencerProcess:
    """The node's side. ``admit_batch`` verifies here and sends the batch on;
    ``sequence_batch`` waits for its outcomes, in the order batches were admitted.
    Call them from two different threads (as the group committer does): one thread
    admitting ahead while nobody reads the answers would fill both pipes and wait
    forever."""

    admitted_ahead = 8
    """Batches sent that may wait behind the one whose answer is being read: the
    sequencer's process goes from one commit to the next without waiting for this
    one, and commits the batches that queued up meanwhile together."""

    def __init__(self, config: NodeConfig) -> None:
        self._config = config
        self._checker = EntryChecker(config.sequencer.verify_threads)
        self._sending = threading.Lock()
        self._receiving = threading.Lock()
        self._requests: Connection | None = None  # batches out
        self._answers: Connection | None = None  # outcomes back
        self._process: BaseProcess | None = None
        self._sent = 0  # requests sent so far; the next one's number
        self._received = 0  # answers read so far
        self._latest: StoredCheckpoint | None = None
        self._broken: str | None = "the sequencer's process has not started"
        # Entries per transaction, as answers report them, until ``take_commit_sizes``.
        self._commit_sizes: collections.deque[int] = collections.deque()
        self.origin = ""

    def start(self) -> None:
        """Spawn the sequencer's process and wait until it has checked the log's head."""
        context = multiprocessing.get_context("spawn")  # never fork a process running gRPC
        their_requests, requests = context.Pipe(duplex=False)
        answers, their_answers = context.Pipe(duplex=False)
        process = context.Process(
            target=run_sequencer_process,
            args=(their_requests, their_answers, self._config),
            name="custody-sequencer",
            daemon=True,
        )
        process.start()
        their_requests.close()
        their_answers.close()
        self._requests, self._answers, self._process = requests, answers, process
        # If this process exits without ``close`` (an error, Ctrl-C while starting),
        # multiprocessing would wait for the child, which ignores SIGTERM and waits for
        # its next batch: closing the request pipe first lets it see the end and exit.
        multiprocessing.util.Finalize(self, requests.close, exitpriority=10)
        try:
            if not answers.poll(START_SECONDS):
                raise UnavailableError("the sequencer's process did not start in time")
            ready = answers.recv()
        except (EOFError, OSError) as exc:
            self._stop_process(kill=True)
            raise UnavailableError("the sequencer's process exited while starting") from exc
        except BaseException:
            self._stop_process(kill=True)
            raise
        if isinstance(ready, _Failed):
            self._stop_process()
            raise ready.error
        assert isinstance(ready, _Ready)
        self.origin, self._latest, self._broken = ready.origin, ready.checkpoint, None
        log.info("sequencer process started", pid=process.pid)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def size(self) -> int:
        return self.latest_checkpoint.tree_size

    @property
    def latest_checkpoint(self) -> StoredCheckpoint:
        if self._latest is None:
            raise UnavailableError("the sequencer's process has not started")
        return self._latest

    def admit_batch(self, submissions: Sequence[Submission]) -> VerifiedBatch:
        """Envelope rules on every submission (signatures verified on this side), then
        the verified entries go to the sequencer's process."""
        outcomes = self._checker.check_each(submissions, _verified)
        entries = [outcome for outcome in outcomes if isinstance(outcome, VerifiedEntry)]
        return VerifiedBatch(outcomes, self._send(entries) if entries else None, len(entries))

    def _send(self, entries: list[VerifiedEntry]) -> int:
        with self._sending:
            if self._broken is not None or self._requests is None:
                raise UnavailableError(self._broken or "the sequencer's process has stopped")
            try:
                self._requests.send(entries)
            except OSError as exc:
                raise self._lost() from exc
            request, self._sent = self._sent, self._sent + 1
            return request

    def sequence_batch(self, admitted: VerifiedBatch) -> list[AppendOutcome]:
        """The outcomes of a batch from ``admit_batch``; refusals found here keep
        their place."""
        if admitted.request is None:
            return list(cast(list[CustodyError], admitted.outcomes))
        answered = self._receive(admitted.request)
        if len(answered) != admitted.sent:
            # Matched to callers by position: a count that does not match is never guessed.
            raise InternalError(f"{len(answered)} outcomes for {admitted.sent} entries sent")
        answers = iter(answered)
        return [o if isinstance(o, CustodyError) else next(answers) for o in admitted.outcomes]

    def _receive(self, request: int) -> list[AppendOutcome]:
        with self._receiving:
            if self._broken is not None:  # batches behind a lost one are lost too
                raise UnavailableError(self._broken)
            if request != self._received:
                # Answers come back in the order batches went out; anything else would
                # hand one caller another's receipt.
                raise InternalError(
                    f"batch {request} collected out of order (next answer: {self._received})"
                )
            if self._answers is None:
                raise UnavailableError(self._broken or "the sequencer's process has stopped")
            try:
                answer = self._answers.recv()
            except (EOFError, OSError) as exc:
                raise self._lost() from exc
            self._received += 1
        if isinstance(answer, _Failed):
            raise answer.error
        assert isinstance(answer, _Committed)
        self._latest = answer.checkpoint
        if answer.commit_entries:
            self._commit_sizes.append(answer.commit_entries)
        return answer.outcomes

    def take_commit_sizes(self) -> list[int]:
        """Entries per transaction of the commits whose first batch was answered since
        the last call, oldest first (several batches may share one commit). Read on
        another thread than the answers, so not tied to any one batch."""
        return _drain(self._commit_sizes)

    def _lost(self) -> UnavailableError:
        if self._broken is None:
            exitcode = None if self._process is None else self._process.exitcode
            log.error("the sequencer's process stopped", exitcode=exitcode)
            self._broken = "the sequencer's process stopped"
        return UnavailableError(self._broken)

    def close(self) -> None:
        """Tell the sequencer's process to stop once it has answered every batch sent
        (the node calls this after its last batch) and wait for it; blocking, so not
        on an event loop. A process that does not stop in time is killed."""
        self._checker.close()
        # A sender stuck on a full pipe (the sequencer's process hangs in its database)
        # must not keep us from stopping it.
        sending = self._sending.acquire(timeout=STOP_SECONDS)
        try:
            requests, self._requests = self._requests, None
            self._broken = self._broken or "the sequencer's process was stopped"
            if requests is not None:
                if sending:
                    with contextlib.suppress(OSError):
                        requests.send(None)
                requests.close()
        finally:
            if sending:
                self._sending.release()
        self._stop_process()

    @property
    def exited(self) -> bool:
        """The sequencer's process has ended (whether asked to or not)."""
        return self._process is not None and self._process.exitcode is not None

    @property
    def sentinel(self) -> int | None:
        """A file descriptor that becomes readable when the sequencer's process ends."""
        return None if self._process is None else self._process.sentinel

    def _stop_process(self, *, kill: bool = False) -> None:
        process = self._process
        if process is not None:
            process.join(0 if kill else STOP_SECONDS)
            if process.is_alive():
                log.error("the sequencer's process did not stop in time; killing it")
                process.kill()
                process.join(STOP_SECONDS)
        for pipe in (self._requests, self._answers):
            if pipe is not None:
                pipe.close()
        self._requests = self._answers = None
        self._broken = self._broken or "the sequencer's process has stopped"


def _verified(submission: Submission) -> VerifiedEntry:
    return VerifiedEntry(admit(submission), submission.authenticated_partner)


# --- the sequencer's process ---------------------------------------------------------


class _WaitingBatches:
    """The sequencer's process's side of the request pipe: each ``take`` is one batch
    read, with every batch already waiting behind it, up to ``max_entries`` in all."""

    def __init__(self, requests: Connection, max_entries: int) -> None:
        self._requests = requests
        self._max_entries = max_entries
        self._held: list[VerifiedEntry] | None = None  # read, but over the last take's bound
        self._ended = False  # the node said stop, or went away

    def _read(self) -> list[VerifiedEntry] | None:
        try:
            batch: list[VerifiedEntry] | None = self._requests.recv()
        except EOFError:  # the node is gone
            batch = None
        if batch is None:
            self._ended = True
        return batch

    def take(self) -> list[list[VerifiedEntry]] | None:
        """The next batches to commit together, in the order sent; None once the node
        has said stop (or gone away) and every batch before that was taken."""
        first, self._held = self._held, None
        if first is None and (self._ended or (first := self._read()) is None):
            return None
        batches, count = [first], len(first)
        while not self._ended and count < self._max_entries and self._requests.poll(0):
            batch = self._read()
            if batch is None:
                break
            if count + len(batch) > self._max_entries:
                self._held = batch  # the first of the next take
                break
            batches.append(batch)
            count += len(batch)
        return batches


def _commit_together(
    sequencer: Sequencer, batches: list[list[VerifiedEntry]]
) -> list[_Committed | _Failed]:
    """One answer per batch, in order, the batches committed as one.

    A Custody error (storage, say) fails them all, as it would each alone. Anything
    else is a bug met by some entry: the batches are then committed one by one, so
    that it fails only the batch that holds that entry (a failed commit changed
    nothing, and the sequencer reads its state afresh after one).
    """
    entries = batches[0] if len(batches) == 1 else [e for batch in batches for e in batch]
    try:
        outcomes = sequencer.sequence_verified(entries)
    except CustodyError as exc:
        return [_Failed(exc)] * len(batches)
    except Exception as exc:
        log.exception("a batch failed unexpectedly", batches=len(batches))
        if len(batches) > 1:
            return [answer for batch in batches for answer in _commit_together(sequencer, [batch])]
        return [_Failed(InternalError(f"the batch failed ({type(exc).__name__})"))]
    answers: list[_Committed | _Failed] = []
    checkpoint, start = sequencer.latest_checkpoint, 0
    for batch in batches:
        end = start + len(batch)
        # The commit's size goes with the first batch it took; the others shared it.
        answers.append(
            _Committed(outcomes[start:end], checkpoint, len(entries) if start == 0 else 0)
        )
        start = end
    return answers


def run_sequencer_process(requests: Connection, answers: Connection, config: NodeConfig) -> None:
    """The sequencer's process: answer batches until told to stop or the node goes away."""
    # The node decides when this process stops: after its last batch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(cast(LogFormat, config.logging.format), config.logging.level)
    try:
        store, sequencer = open_sequencer(config, verify_threads=1)
    except CustodyError as exc:
        answers.send(_Failed(exc))
        return
    except Exception as exc:
        log.exception("the sequencer's process could not start")
        answers.send(
            _Failed(InternalError(f"the sequencer could not start ({type(exc).__name__})"))
        )
        return
    try:
        tune_garbage_collection()
        answers.send(_Ready(sequencer.origin, sequencer.latest_checkpoint))
        structlog.contextvars.bind_contextvars(process="sequencer", pid=os.getpid())
        waiting = _WaitingBatches(requests, config.limits.max_batch)
        while (batches := waiting.take()) is not None:
            for answer in _commit_together(sequencer, batches):
                answers.send(answer)
    finally:
        sequencer.close()
        store.close()
        requests.close()
        answers.close()
