"""`verify_log` replays a stored log and names the first bad index of any tampering."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, text

from ledger.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from ledger.errors import LogIntegrityError
from ledger.keys import private_key_from_seed
from ledger.log_verifier import verify_log
from ledger.merkle import NodeId, leaf_hash
from ledger.note import NoteSigner
from ledger.sequencer import Sequencer
from ledger.storage import LogStore
from ledger.storage.log_store import node_key
from tests.support import TEST_ORIGIN, SubmissionFactory

SIZE = 37  # odd and not a power of two: ragged tree edges everywhere


@pytest.fixture
def filled(sequencer: Sequencer, make_submission: SubmissionFactory) -> Sequencer:
    for batch in (1, 4, 10, 2, 20):
        sequencer.append_batch([make_submission() for _ in range(batch)])
    assert sequencer.size == SIZE
    return sequencer


def test_an_untouched_log_verifies(filled: Sequencer, store: LogStore) -> None:
    result = verify_log(store, filled.log_key)
    assert result.tree_size == SIZE
    assert result.root_hash == filled.latest_checkpoint.root_hash
    assert result.checkpoints == 6
    assert result.tree_nodes == sum(SIZE >> level for level in range(1, 6))


def test_an_empty_log_verifies(sequencer: Sequencer, store: LogStore) -> None:
    assert verify_log(store, sequencer.log_key).tree_size == 0


def _flip_leaf_byte(c: Connection) -> None:
    raw = bytearray(c.execute(text("SELECT leaf_bytes FROM leaves WHERE idx = 11")).scalar_one())
    raw[len(raw) // 2] ^= 0x01
    c.execute(text("UPDATE leaves SET leaf_bytes = :b WHERE idx = 11"), {"b": bytes(raw)})


def _flip_leaf_and_hash(c: Connection) -> None:
    # An attacker who also fixes up the stored leaf hash is caught by the chain and the tree.
    raw = bytearray(c.execute(text("SELECT leaf_bytes FROM leaves WHERE idx = 11")).scalar_one())
    raw[-3] ^= 0x80
    c.execute(
        text("UPDATE leaves SET leaf_bytes = :b, leaf_hash = :h WHERE idx = 11"),
        {"b": bytes(raw), "h": leaf_hash(bytes(raw))},
    )


def _change_tree_hash(c: Connection) -> None:
    statement = "UPDATE tree_nodes SET hash = :h WHERE node_key = :k"
    c.execute(text(statement), {"h": bytes(32), "k": node_key(NodeId(2, 3))})


def _delete_tree_node(c: Connection) -> None:
    c.execute(text("DELETE FROM tree_nodes WHERE node_key = :k"), {"k": node_key(NodeId(3, 1))})


def _delete_leaf(c: Connection) -> None:
    c.execute(text("DELETE FROM leaves WHERE idx = 20"))


def _swap_leaves(c: Connection) -> None:
    columns = "entry_digest, leaf_hash, chain_hash, leaf_bytes"
    rows = {
        row[0]: row[1:]
        for row in c.execute(text(f"SELECT idx, {columns} FROM leaves WHERE idx IN (8, 9)"))
    }
    # Move one row out of the way first: entry_digest is unique.
    c.execute(text("UPDATE leaves SET idx = -1 WHERE idx = 8"))
    c.execute(text("UPDATE leaves SET idx = 8 WHERE idx = 9"))
    c.execute(text("UPDATE leaves SET idx = 9 WHERE idx = -1"))
    assert rows[8] != rows[9]


def _foreign_checkpoint(c: Connection) -> None:
    other = NoteSigner(TEST_ORIGIN, private_key_from_seed(b"\x07" * 32))
    root = c.execute(text("SELECT root_hash FROM checkpoints WHERE tree_size = 15")).scalar_one()
    note = sign_checkpoint(Checkpoint(TEST_ORIGIN, 15, bytes(root)), other)
    c.execute(text("UPDATE checkpoints SET note = :n WHERE tree_size = 15"), {"n": note})


def _wrong_checkpoint_root(c: Connection) -> None:
    c.execute(text("UPDATE checkpoints SET root_hash = :h WHERE tree_size = 5"), {"h": b"\1" * 32})


def _extra_tree_node(c: Connection) -> None:
    statement = "INSERT INTO tree_nodes (node_key, hash) VALUES (:k, :h)"
    c.execute(text(statement), {"k": node_key(NodeId(5, 9)), "h": b"\2" * 32})


@pytest.mark.parametrize(
    ("tamper", "first_bad_index"),
    [
        (_flip_leaf_byte, 11),
        (_flip_leaf_and_hash, 11),
        (_change_tree_hash, 12),
        (_delete_tree_node, 8),
        (_delete_leaf, 20),
        (_swap_leaves, 8),
        (_foreign_checkpoint, 14),
        (_wrong_checkpoint_root, 4),
        (_extra_tree_node, SIZE),
    ],
)
def test_tampering_is_found_at_its_first_bad_index(
    filled: Sequencer,
    store: LogStore,
    tamper: Callable[[Connection], None],
    first_bad_index: int,
) -> None:
    with store.engine.begin() as connection:
        tamper(connection)
    with pytest.raises(LogIntegrityError) as caught:
        verify_log(store, filled.log_key)
    assert caught.value.index == first_bad_index, str(caught.value)


def test_leaves_beyond_the_latest_checkpoint_are_refused(
    filled: Sequencer, store: LogStore
) -> None:
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM checkpoints WHERE tree_size = :n"), {"n": SIZE})
    with pytest.raises(LogIntegrityError, match="no signed checkpoint") as caught:
        verify_log(store, filled.log_key)
    assert caught.value.index == 17  # the previous checkpoint covered 0..16


def test_a_trusted_checkpoint_catches_rollback_and_rewrite(
    filled: Sequencer, store: LogStore, make_submission: SubmissionFactory
) -> None:
    trusted = open_checkpoint(filled.latest_checkpoint.note, filled.log_key).checkpoint
    assert verify_log(store, filled.log_key, trusted=[trusted]).tree_size == SIZE
    filled.append(make_submission())
    assert verify_log(store, filled.log_key, trusted=[trusted]).tree_size == SIZE + 1
    # Roll back: drop the newest batch entirely, leaves, nodes and checkpoint.
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM checkpoints WHERE tree_size > 17"))
        connection.execute(text("DELETE FROM leaves WHERE idx >= 17"))
        for level in range(1, 7):
            first = node_key(NodeId(level, 17 >> level))  # nodes complete only after 17
            end = node_key(NodeId(level + 1, 0))
            connection.execute(
                text("DELETE FROM tree_nodes WHERE node_key >= :a AND node_key < :b"),
                {"a": first, "b": end},
            )
    assert verify_log(store, filled.log_key).tree_size == 17  # consistent on its own
    with pytest.raises(LogIntegrityError, match="rolled back") as caught:
        verify_log(store, filled.log_key, trusted=[trusted])
    assert caught.value.index == 17
    forged = Checkpoint(TEST_ORIGIN, 15, bytes(32))
    with pytest.raises(LogIntegrityError, match="rewritten"):
        verify_log(store, filled.log_key, trusted=[forged])


def test_a_different_trusted_key_is_refused(filled: Sequencer, store: LogStore) -> None:
    other = NoteSigner(TEST_ORIGIN, private_key_from_seed(b"\x08" * 32)).verifier_key()
    with pytest.raises(LogIntegrityError):
        verify_log(store, other)


def test_a_flipped_bit_anywhere_in_any_leaf_is_found_there(
    filled: Sequencer, store: LogStore
) -> None:
    leaves = {leaf.index: leaf.leaf_bytes for leaf in store.iter_leaves()}

    @settings(max_examples=60, deadline=None)
    @given(data=st.data())
    def flip_one(data: st.DataObject) -> None:
        index = data.draw(st.integers(min_value=0, max_value=SIZE - 1))
        original = leaves[index]
        position = data.draw(st.integers(min_value=0, max_value=len(original) - 1))
        bit = data.draw(st.integers(min_value=0, max_value=7))
        threads = data.draw(st.sampled_from([1, 2]))
        flipped = bytearray(original)
        flipped[position] ^= 1 << bit
        update = text("UPDATE leaves SET leaf_bytes = :b WHERE idx = :i")
        with store.engine.begin() as connection:
            connection.execute(update, {"b": bytes(flipped), "i": index})
        try:
            with pytest.raises(LogIntegrityError) as caught:
                verify_log(store, filled.log_key, threads=threads)
            assert caught.value.index == index
        finally:
            with store.engine.begin() as connection:
                connection.execute(update, {"b": original, "i": index})

    flip_one()
    verify_log(store, filled.log_key)
