"""The sequencer: group commit, receipts, idempotence, refusals and restart checks."""

from __future__ import annotations

import pickle
from contextlib import AbstractContextManager
from typing import Any

import pytest
from sqlalchemy import Connection, text

from ledger import merkle
from ledger.admission import Submission, admit
from ledger.checkpoint import open_checkpoint
from ledger.dsse import Envelope, Signature
from ledger.errors import (
    CustodyError,
    InternalError,
    LogAlreadyInitialisedError,
    SignatureError,
    StateMismatchError,
    UnknownKeyError,
    UnsignedEntryError,
)
from ledger.keys import private_key_from_seed
from ledger.leaf import ZERO_HASH, chain_hash, decode_leaf, encode_leaf
from ledger.log_verifier import verify_log
from ledger.merkle import NodeId
from ledger.note import NoteSigner
from ledger.receipts import Receipt, verify_receipt
from ledger.sequencer import EnvelopeRules, Sequencer, VerifiedEntry, initialise_log
from ledger.storage import LogStore
from ledger.storage.log_store import node_key
from tests.support import TEST_ORIGIN, SubmissionFactory, new_signer


def receipts(outcomes: list[Receipt | CustodyError]) -> list[Receipt]:
    assert all(isinstance(o, Receipt) for o in outcomes), outcomes
    return [o for o in outcomes if isinstance(o, Receipt)]


def test_single_append_returns_a_verifiable_receipt(
    sequencer: Sequencer, make_submission: SubmissionFactory
) -> None:
    submission = make_submission()
    receipt = sequencer.append(submission)
    verified = verify_receipt(receipt, sequencer.log_key, submission.envelope.digest())
    assert receipt.index == 0
    assert not receipt.duplicate
    assert verified.checkpoint.checkpoint.size == 1
    assert verified.leaf.prev_chain_hash == ZERO_HASH
    assert verified.leaf.envelope == submission.envelope


def test_a_batch_shares_one_transaction_and_one_checkpoint(
    sequencer: Sequencer, store: LogStore, make_submission: SubmissionFactory
) -> None:
    batch = [make_submission() for _ in range(50)]
    results = receipts(sequencer.append_batch(batch))
    assert [r.index for r in results] == list(range(50))
    assert {r.checkpoint for r in results} == {results[0].checkpoint}
    for submission, receipt in zip(batch, results, strict=True):
        verify_receipt(receipt, sequencer.log_key, submission.envelope.digest())
    # Genesis checkpoint plus exactly one for the batch.
    assert [c.tree_size for c in store.iter_checkpoints()] == [0, 50]


def test_leaves_form_the_hash_chain(
    sequencer: Sequencer, store: LogStore, make_submission: SubmissionFactory
) -> None:
    sequencer.append_batch([make_submission() for _ in range(5)])
    sequencer.append_batch([make_submission() for _ in range(3)])
    chain = ZERO_HASH
    for row in store.iter_leaves():
        leaf = decode_leaf(row.leaf_bytes)
        assert leaf.prev_chain_hash == chain
        assert row.leaf_hash == merkle.leaf_hash(row.leaf_bytes)
        chain = chain_hash(chain, row.leaf_hash)
        assert row.chain_hash == chain


def test_resubmission_returns_the_original_index(
    sequencer: Sequencer, store: LogStore, make_submission: SubmissionFactory
) -> None:
    first = make_submission(b"shipment 1")
    sequencer.append(first)
    sequencer.append(make_submission(b"shipment 2"))
    again = sequencer.append(first)
    assert again.index == 0
    assert again.duplicate
    verify_receipt(again, sequencer.log_key, first.envelope.digest())
    assert store.size() == 2
    assert [c.tree_size for c in store.iter_checkpoints()] == [0, 1, 2]


def test_duplicates_within_one_batch_share_an_index(
    sequencer: Sequencer, store: LogStore, make_submission: SubmissionFactory
) -> None:
    one, two = make_submission(), make_submission()
    results = receipts(sequencer.append_batch([one, two, one]))
    assert [r.index for r in results] == [0, 1, 0]
    assert [r.duplicate for r in results] == [False, False, True]
    assert store.size() == 2


def test_refused_entries_take_no_index_and_change_nothing(
    sequencer: Sequencer, store: LogStore, make_submission: SubmissionFactory
) -> None:
    good = make_submission()
    bad_sig = make_submission()
    sig = bad_sig.envelope.signatures[0]
    forged = Envelope(
        payload_type=bad_sig.envelope.payload_type,
        payload=bad_sig.envelope.payload + b" tampered",
        signatures=(Signature(keyid=sig.keyid, sig=sig.sig),),
    )
    unsigned = Submission.of(Envelope("text/plain", b"x", ()), [])
    stranger = make_submission()
    outcomes = sequencer.append_batch(
        [
            Submission.of(forged, bad_sig.public_keys),
            good,
            unsigned,
            Submission.of(stranger.envelope, [new_signer().public_key]),
        ]
    )
    assert isinstance(outcomes[0], SignatureError)
    assert isinstance(outcomes[1], Receipt)
    assert outcomes[1].index == 0
    assert isinstance(outcomes[2], UnsignedEntryError)
    assert isinstance(outcomes[3], UnknownKeyError)
    assert store.size() == 1


def test_an_all_refused_batch_signs_no_checkpoint(
    sequencer: Sequencer, store: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nor does it open a write transaction (and wait for the log's lock and an fsync)."""
    writes = 0
    write = store.write

    def counted() -> AbstractContextManager[Connection]:
        nonlocal writes
        writes += 1
        return write()

    monkeypatch.setattr(store, "write", counted)
    outcomes = sequencer.append_batch([Submission.of(Envelope("t/x", b"x", ()), [])])
    assert isinstance(outcomes[0], UnsignedEntryError)
    assert writes == 0
    assert store.size() == 0
    assert [c.tree_size for c in store.iter_checkpoints()] == [0]


def test_several_signatures_are_all_verified_and_recorded(
    sequencer: Sequencer, make_submission: SubmissionFactory
) -> None:
    a, b = new_signer(), new_signer()
    submission = make_submission(b"two signers", a, b)
    receipt = sequencer.append(submission)
    leaf = decode_leaf(receipt.leaf)
    assert leaf.signer_keys == (a.public_key, b.public_key)


def test_parallel_verification_refuses_exactly_the_bad_entries(
    sequencer: Sequencer, store: LogStore, make_submission: SubmissionFactory
) -> None:
    batch = [make_submission() for _ in range(300)]
    for position in (7, 150, 299):
        envelope = batch[position].envelope
        batch[position] = Submission.of(
            Envelope(envelope.payload_type, envelope.payload + b"!", envelope.signatures),
            batch[position].public_keys,
        )
    outcomes = sequencer.append_batch(batch)
    refused = [i for i, o in enumerate(outcomes) if isinstance(o, CustodyError)]
    assert refused == [7, 150, 299]
    assert store.size() == 297


def test_restart_reloads_and_continues(
    sequencer: Sequencer,
    store: LogStore,
    log_signer: NoteSigner,
    make_submission: SubmissionFactory,
) -> None:
    sequencer.append_batch([make_submission() for _ in range(13)])
    root = sequencer.latest_checkpoint.root_hash
    restarted = Sequencer(store, log_signer, rules=EnvelopeRules())
    assert restarted.size == 13
    assert restarted.latest_checkpoint.root_hash == root
    receipt = restarted.append(make_submission())
    assert receipt.index == 13
    restarted.close()
    verify_log(store, log_signer.verifier_key())


def test_two_sequencers_on_one_database_keep_one_history(
    sequencer: Sequencer,
    store: LogStore,
    log_signer: NoteSigner,
    make_submission: SubmissionFactory,
) -> None:
    other = Sequencer(LogStore(store.engine), log_signer, rules=EnvelopeRules())
    sequencer.append_batch([make_submission() for _ in range(3)])
    # `other` still believes the log is empty; it must notice and continue at 3.
    assert other.append(make_submission()).index == 3
    assert sequencer.append(make_submission()).index == 4
    other.close()
    assert verify_log(store, log_signer.verifier_key()).tree_size == 5


def test_a_failed_commit_leaves_the_head_untouched(
    sequencer: Sequencer,
    store: LogStore,
    make_submission: SubmissionFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sequencer.append(make_submission())

    def fail(*_args: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "insert_checkpoint", fail)
    with pytest.raises(RuntimeError):
        sequencer.append_batch([make_submission(), make_submission()])
    monkeypatch.undo()
    assert store.size() == 1
    assert sequencer.size == 1
    assert sequencer.append(make_submission()).index == 1


def test_initialise_twice_is_refused(store: LogStore, log_signer: NoteSigner) -> None:
    genesis = initialise_log(store, log_signer)
    assert open_checkpoint(genesis.note, log_signer.verifier_key()).checkpoint.size == 0
    with pytest.raises(LogAlreadyInitialisedError):
        initialise_log(store, log_signer)


def test_another_signing_key_is_refused(sequencer: Sequencer, store: LogStore) -> None:
    impostor = NoteSigner(TEST_ORIGIN, private_key_from_seed(b"\x09" * 32))
    with pytest.raises(StateMismatchError):
        Sequencer(store, impostor, rules=EnvelopeRules())


@pytest.mark.parametrize(
    ("statement", "what"),
    [
        ("UPDATE tree_nodes SET hash = :junk WHERE node_key = :level2_0", "border tree hash"),
        ("DELETE FROM leaves WHERE idx = 6", "last leaf deleted"),
        ("UPDATE leaves SET leaf_bytes = :junk WHERE idx = 6", "last leaf edited"),
        ("UPDATE checkpoints SET note = :junk WHERE tree_size = 7", "checkpoint note"),
        ("DELETE FROM checkpoints WHERE tree_size = 7", "checkpoint deleted"),
    ],
)
def test_start_up_refuses_a_tampered_store(
    sequencer: Sequencer,
    store: LogStore,
    log_signer: NoteSigner,
    make_submission: SubmissionFactory,
    statement: str,
    what: str,
) -> None:
    sequencer.append_batch([make_submission() for _ in range(7)])
    with store.engine.begin() as connection:
        connection.execute(text(statement), {"junk": bytes(32), "level2_0": node_key(NodeId(2, 0))})
    with pytest.raises(StateMismatchError):
        Sequencer(store, log_signer, rules=EnvelopeRules())


def test_start_up_refuses_a_forged_last_leaf_under_a_stored_node(
    sequencer: Sequencer,
    store: LogStore,
    log_signer: NoteSigner,
    make_submission: SubmissionFactory,
) -> None:
    # With an even size the last leaf hides inside a level-1 node of the border;
    # a self-consistent replacement row must still be caught.
    sequencer.append_batch([make_submission() for _ in range(6)])
    forged_source = sequencer.append_batch([make_submission()])
    assert isinstance(forged_source[0], Receipt)
    genuine = store.leaf(5)
    other = store.leaf(6)
    forged_leaf = decode_leaf(other.leaf_bytes)
    forged_bytes = encode_leaf(
        index=5,
        integration_time_micros=forged_leaf.integration_time_micros,
        prev_chain_hash=decode_leaf(genuine.leaf_bytes).prev_chain_hash,
        envelope=forged_leaf.envelope,
        signer_keys=forged_leaf.signer_keys,
    )
    forged_hash = merkle.leaf_hash(forged_bytes)
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM leaves WHERE idx = 6"))
        connection.execute(text("DELETE FROM checkpoints WHERE tree_size = 7"))
        connection.execute(
            text(
                "UPDATE leaves SET leaf_bytes = :b, leaf_hash = :h, chain_hash = :c,"
                " entry_digest = :d WHERE idx = 5"
            ),
            {
                "b": forged_bytes,
                "h": forged_hash,
                "c": chain_hash(decode_leaf(genuine.leaf_bytes).prev_chain_hash, forged_hash),
                "d": other.entry_digest,
            },
        )
    with pytest.raises(StateMismatchError):
        Sequencer(store, log_signer, rules=EnvelopeRules())


def test_proofs_from_storage_verify_against_every_checkpoint(
    sequencer: Sequencer, store: LogStore, make_submission: SubmissionFactory
) -> None:
    for size in (1, 2, 5, 1, 8, 16, 3):
        sequencer.append_batch([make_submission() for _ in range(size)])
    stored = list(store.iter_checkpoints())
    roots = {c.tree_size: c.root_hash for c in stored}
    for checkpoint in stored:
        for index in range(checkpoint.tree_size):
            proof = store.inclusion_proof(index, checkpoint.tree_size)
            assert proof.root == checkpoint.root_hash
            assert proof.leaf_hash == store.leaf(index).leaf_hash
            proof.verify()
    sizes = sorted(roots)
    for old in sizes:
        for new in sizes:
            if old <= new:
                consistency = store.consistency_proof(old, new)
                assert (consistency.old_root, consistency.new_root) == (roots[old], roots[new])
                consistency.verify()


def test_a_sequencer_refuses_storage_that_went_backwards(
    sequencer: Sequencer, store: LogStore, make_submission: SubmissionFactory
) -> None:
    for _ in range(3):
        sequencer.append(make_submission())
    # Restore "a backup" from size 2: leaf 2 and its checkpoint vanish (it completed no node).
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM leaves WHERE idx = 2"))
        connection.execute(text("DELETE FROM checkpoints WHERE tree_size = 3"))
    with pytest.raises(StateMismatchError, match="rolled back"):
        sequencer.append(make_submission())
    assert store.size() == 2  # nothing was signed over the older state


class _RulesThatBreakOn(EnvelopeRules):
    """Envelope rules whose stateless step hits a bug on one payload."""

    def __init__(self, poison: bytes) -> None:
        self.poison = poison

    def prepare(self, submission: Submission, entry: Any) -> object:
        if entry.envelope.payload == self.poison:
            raise ValueError("a bug in the payload checks")
        return None


def test_an_unexpected_failure_on_one_entry_fails_that_entry_only(
    store: LogStore, log_signer: NoteSigner, make_submission: SubmissionFactory
) -> None:
    good = [make_submission() for _ in range(3)]
    poisoned = make_submission()
    initialise_log(store, log_signer)
    sequencer = Sequencer(
        store, log_signer, rules=_RulesThatBreakOn(poisoned.envelope.payload), verify_threads=1
    )
    try:
        outcomes = sequencer.append_batch([good[0], poisoned, good[1], good[2]])
    finally:
        sequencer.close()
    assert isinstance(outcomes[1], InternalError)
    assert [o.index for o in outcomes if isinstance(o, Receipt)] == [0, 1, 2]


@pytest.mark.parametrize("partner", [None, "refiner-1"])
def test_a_verified_entry_pickles_to_an_equal_one(
    make_submission: SubmissionFactory, partner: str | None
) -> None:
    # How a node's frontend hands entries to a sequencer in a process of its own.
    verified = VerifiedEntry(admit(make_submission()), partner)
    copy = pickle.loads(pickle.dumps(verified))
    assert copy == verified
    assert copy.submission() == Submission(
        verified.entry.envelope, verified.entry.signer_keys, partner
    )
