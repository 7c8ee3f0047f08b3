"""The sequencer in a process of its own (``services.sequencing.SequencerProcess``).

Its outcomes are the in-process sequencer's: receipts that verify, and refusals
of the same class and reason, each in its submission's place. A batch goes to
the sequencer's process as ``admit_batch`` ends, so batches are answered in the
order they were admitted; a process that will not start, or that dies, is an
error the node hears, never a hang.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from clients.sample.consortium import LUALABA
from ledger import custody_rules
from ledger.admission import Submission, admit
from ledger.domain.rules import DomainEntry, apply_entry
from ledger.domain.state import DomainState
from ledger.dsse import Envelope
from ledger.errors import (
    AdmissionRuleError,
    BundleIncompleteError,
    CustodyError,
    InternalError,
    LogNotInitialisedError,
    RemoteError,
    Rule,
    StateMismatchError,
    UnavailableError,
    UnsignedEntryError,
)
from ledger.keys import generate_private_key, save_private_key
from ledger.leaf import SubjectLink
from ledger.receipts import Receipt, verify_receipt
from ledger.sequencer import VerifiedEntry
from ledger.storage import LogStore
from services import sequencing
from services.config import NodeConfig
from services.sequencing import SequencerProcess
from tests.services.node_support import Ledger, NodeThread, Pki, node_config
from tests.services.rpc_support import (
    Connections,
    append_request,
    extraction,
    health_check,
    log_verifier_key,
    lualaba_extraction,
    new_id,
    new_ledger,
    refused,
    registry_keys,
    signed_event,
    wait_for,
)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return new_ledger(tmp_path)


@pytest.fixture
def config(ledger: Ledger, pki: Pki) -> NodeConfig:
    return node_config(ledger, pki)


@pytest.fixture
def sequencer(config: NodeConfig) -> Iterator[SequencerProcess]:
    process = SequencerProcess(config)
    process.start()
    yield process
    process.close()


def submission(envelope: Envelope) -> Submission:
    return Submission.of(envelope, registry_keys(envelope), authenticated_partner=LUALABA)


def append(sequencer: SequencerProcess, envelopes: list[Envelope]) -> list[Receipt | CustodyError]:
    return sequencer.sequence_batch(sequencer.admit_batch([submission(e) for e in envelopes]))


def test_receipts_verify_and_refusals_keep_their_place(
    sequencer: SequencerProcess, ledger: Ledger
) -> None:
    start = sequencer.size
    good = [lualaba_extraction() for _ in range(3)]
    twice = extraction()  # the same lot created twice: the second is refused by a rule
    created, again = signed_event(LUALABA, twice), signed_event(LUALABA, twice)
    unsigned = Submission.of(Envelope("application/x", b"x", ()), [])
    admitted = sequencer.admit_batch(
        [
            submission(good[0]),
            unsigned,  # refused on this side, never sent
            submission(created),
            submission(good[1]),
            submission(again),
            submission(good[2]),
        ]
    )
    outcomes = sequencer.sequence_batch(admitted)

    assert [type(outcome) for outcome in outcomes] == [
        Receipt,
        UnsignedEntryError,
        Receipt,
        Receipt,
        AdmissionRuleError,
        Receipt,
    ]
    refusal = outcomes[4]
    assert isinstance(refusal, AdmissionRuleError)
    assert refusal.reason == "LOT_EXISTS"
    receipts = [outcome for outcome in outcomes if isinstance(outcome, Receipt)]
    assert [receipt.index for receipt in receipts] == list(range(start, start + 4))
    log_key = log_verifier_key(ledger)
    sent = [good[0], created, good[1], good[2]]
    for receipt, envelope in zip(receipts, sent, strict=True):
        verify_receipt(receipt, log_key, envelope.digest())
    assert sequencer.size == start + 4
    assert sequencer.latest_checkpoint.tree_size == start + 4


def test_a_batch_of_refusals_alone_is_answered_without_the_process(
    sequencer: SequencerProcess,
) -> None:
    admitted = sequencer.admit_batch([Submission.of(Envelope("application/x", b"x", ()), [])])
    assert admitted.request is None
    (outcome,) = sequencer.sequence_batch(admitted)
    assert isinstance(outcome, UnsignedEntryError)


def test_batches_admitted_ahead_are_answered_in_order(sequencer: SequencerProcess) -> None:
    """The next batch waits in the pipe while one is sequenced, and an entry may depend
    on one in the batch before it."""
    start = sequencer.size
    lot = extraction()
    first = sequencer.admit_batch([submission(signed_event(LUALABA, lot))])
    second = sequencer.admit_batch([submission(lualaba_extraction())])
    third = sequencer.admit_batch([submission(signed_event(LUALABA, lot))])  # lot exists now
    answers = [sequencer.sequence_batch(batch) for batch in (first, second, third)]
    assert [type(outcome) for answer in answers for outcome in answer] == [
        Receipt,
        Receipt,
        AdmissionRuleError,
    ]
    indices = [outcome.index for answer in answers[:2] for outcome in answer]  # type: ignore[union-attr]
    assert indices == [start, start + 1]


@contextlib.contextmanager
def paused(sequencer: SequencerProcess) -> Iterator[None]:
    """Stop the sequencer's process meanwhile: the batches sent wait in its pipe."""
    assert sequencer.pid is not None
    os.kill(sequencer.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(sequencer.pid, signal.SIGCONT)


def test_batches_waiting_for_the_sequencer_are_committed_together(
    sequencer: SequencerProcess, ledger: Ledger
) -> None:
    """Batches that queued up while the sequencer's process was busy share one
    transaction and one checkpoint, each still answered on its own and in order."""
    start = sequencer.size
    envelopes = [lualaba_extraction() for _ in range(4)]
    with paused(sequencer):
        batches = [sequencer.admit_batch([submission(envelope)]) for envelope in envelopes]
    receipts = [outcome for batch in batches for outcome in sequencer.sequence_batch(batch)]
    checked = [receipt for receipt in receipts if isinstance(receipt, Receipt)]
    assert len(checked) == 4
    assert [receipt.index for receipt in checked] == list(range(start, start + 4))
    assert len({receipt.checkpoint for receipt in checked}) == 1
    assert sequencer.take_commit_sizes() == [4]
    assert sequencer.take_commit_sizes() == []
    log_key = log_verifier_key(ledger)
    for receipt, envelope in zip(checked, envelopes, strict=True):
        verify_receipt(receipt, log_key, envelope.digest())


def test_batches_committed_together_stay_within_max_batch(ledger: Ledger, pki: Pki) -> None:
    """A batch that would take a commit past ``max_batch`` starts the next one."""
    sequencer = SequencerProcess(node_config(ledger, pki, max_batch=3, max_pending=3))
    sequencer.start()
    try:
        start = sequencer.size
        sizes = (2, 2, 1, 2)
        envelopes = [[lualaba_extraction() for _ in range(size)] for size in sizes]
        with paused(sequencer):
            batches = [sequencer.admit_batch([submission(e) for e in batch]) for batch in envelopes]
        answers = [sequencer.sequence_batch(batch) for batch in batches]
        indices = [o.index for answer in answers for o in answer if isinstance(o, Receipt)]
        assert indices == list(range(start, start + sum(sizes)))  # every entry, in order
        assert sequencer.take_commit_sizes() == [2, 3, 2]
    finally:
        sequencer.close()


def test_a_bug_in_batches_committed_together_fails_only_its_own_batch(
    config: NodeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error in a commit of several batches: they are committed one by
    one, and only the batch holding the entry that meets the bug fails."""
    poison = new_id("lot")
    rules_apply = apply_entry

    def apply_or_fail(state: DomainState, entry: DomainEntry) -> tuple[SubjectLink, ...]:
        if poison.encode() in entry.payload.message.SerializeToString():
            raise RuntimeError("a bug met by this entry")
        return rules_apply(state, entry)

    monkeypatch.setattr(custody_rules, "apply_entry", apply_or_fail)
    store, sequencer = sequencing.open_sequencer(config, verify_threads=1)
    try:
        start = sequencer.size
        batches = [
            [verified_entry(lualaba_extraction())],
            [verified_entry(lualaba_extraction(poison)), verified_entry(lualaba_extraction())],
            [verified_entry(lualaba_extraction())],
        ]
        first, failed, last = sequencing._commit_together(sequencer, batches)
        assert isinstance(first, sequencing._Committed)
        assert isinstance(last, sequencing._Committed)
        assert isinstance(failed, sequencing._Failed)
        assert isinstance(failed.error, InternalError)
        indices = [o.index for o in (*first.outcomes, *last.outcomes) if isinstance(o, Receipt)]
        assert indices == [start, start + 1]
        assert (first.commit_entries, last.commit_entries) == (1, 1)  # committed one by one
        assert sequencer.size == start + 2
    finally:
        sequencer.close()
        store.close()


def verified_entry(envelope: Envelope) -> VerifiedEntry:
    return VerifiedEntry(admit(submission(envelope)), LUALABA)


def test_an_answer_collected_out_of_order_is_refused(sequencer: SequencerProcess) -> None:
    first = sequencer.admit_batch([submission(lualaba_extraction())])
    second = sequencer.admit_batch([submission(lualaba_extraction())])
    with pytest.raises(InternalError, match="out of order"):
        sequencer.sequence_batch(second)
    assert isinstance(sequencer.sequence_batch(first)[0], Receipt)
    assert isinstance(sequencer.sequence_batch(second)[0], Receipt)


def test_a_process_that_dies_fails_the_batch_and_every_later_one(
    sequencer: SequencerProcess,
) -> None:
    size = sequencer.size
    assert sequencer.pid is not None
    os.kill(sequencer.pid, signal.SIGKILL)
    with pytest.raises(UnavailableError, match="stopped"):
        # Sending may already fail (the pipe is closed) or only the answer never comes.
        sequencer.sequence_batch(sequencer.admit_batch([submission(lualaba_extraction())]))
    with pytest.raises(UnavailableError, match="stopped"):
        sequencer.admit_batch([submission(lualaba_extraction())])
    assert sequencer.size == size  # the last head it reported


def test_close_stops_the_process_after_the_last_batch(config: NodeConfig) -> None:
    sequencer = SequencerProcess(config)
    sequencer.start()
    admitted = sequencer.admit_batch([submission(lualaba_extraction())])
    (receipt,) = sequencer.sequence_batch(admitted)
    assert isinstance(receipt, Receipt)
    pid = sequencer.pid
    sequencer.close()
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone, and reaped
    with pytest.raises(UnavailableError):
        sequencer.admit_batch([submission(lualaba_extraction())])
    store = LogStore.open(config.database_url, migrate=False)
    try:
        assert store.size() == receipt.index + 1
    finally:
        store.close()


def test_a_sequencer_that_cannot_start_raises_its_reason(
    config: NodeConfig, tmp_path: Path
) -> None:
    """The sequencer's process checks what an in-process one does: here, that the
    signing key is the log's."""
    other_key = tmp_path / "other.key"
    save_private_key(generate_private_key(), other_key)
    wrong_key = dataclasses.replace(
        config, node=dataclasses.replace(config.node, log_key=other_key)
    )
    sequencer = SequencerProcess(wrong_key)
    with pytest.raises(StateMismatchError, match="not the log's key"):
        sequencer.start()
    with pytest.raises(UnavailableError):
        sequencer.admit_batch([submission(lualaba_extraction())])
    sequencer.close()

    no_log = dataclasses.replace(
        config,
        node=dataclasses.replace(
            config.node, database_url=f"sqlite:///{tmp_path / 'missing' / 'custody.db'}"
        ),
    )
    with pytest.raises(LogNotInitialisedError):
        SequencerProcess(no_log).start()


@pytest.mark.parametrize(
    "error",
    [
        UnavailableError("the node is stopping"),
        AdmissionRuleError(Rule.LOT_EXISTS, "lot L exists"),
        BundleIncompleteError("leaf 7 is missing", index=7),
        RemoteError("refused", status_code="NOT_FOUND"),
    ],
    ids=type,
)
def test_errors_cross_a_process_boundary_as_themselves(error: CustodyError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.reason == error.reason
    assert vars(copy) == vars(error)


def test_batches_behind_a_lost_one_are_unavailable_too(sequencer: SequencerProcess) -> None:
    assert sequencer.pid is not None
    os.kill(sequencer.pid, signal.SIGSTOP)  # the batches wait in its pipe, unanswered
    batches = [sequencer.admit_batch([submission(lualaba_extraction())]) for _ in range(3)]
    os.kill(sequencer.pid, signal.SIGKILL)
    for batch in batches:
        with pytest.raises(UnavailableError, match="stopped"):
            sequencer.sequence_batch(batch)


def test_a_process_that_hangs_is_killed_on_close(
    config: NodeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sequencing, "STOP_SECONDS", 0.5)
    sequencer = SequencerProcess(config)
    sequencer.start()
    assert sequencer.pid is not None
    os.kill(sequencer.pid, signal.SIGSTOP)  # stuck, as in a database that hangs
    sequencer.close()
    assert sequencer.exited


def test_a_node_whose_sequencer_dies_stops_serving_and_refuses_appends(
    ledger: Ledger, pki: Pki
) -> None:
    node = NodeThread(node_config(ledger, pki))
    try:
        with Connections(node, pki) as connections:
            stubs = connections(LUALABA)
            health = health_check(stubs.channel)
            request = health_pb2.HealthCheckRequest(service="")
            assert health(request).status == health_pb2.HealthCheckResponse.SERVING
            sequencer = node.node.sequencer
            assert isinstance(sequencer, SequencerProcess)
            assert sequencer.pid is not None
            os.kill(sequencer.pid, signal.SIGKILL)
            wait_for(node.node.failed.is_set)
            wait_for(lambda: health(request).status == health_pb2.HealthCheckResponse.NOT_SERVING)
            refused(
                lambda: stubs.ledger.Append(append_request(lualaba_extraction()), timeout=10),
                grpc.StatusCode.UNAVAILABLE,
                "UNAVAILABLE",
            )
    finally:
        node.stop()
