"""Property tests of the stored log: whatever the batching, the log stays one verifiable history."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.admission import Submission
from ledger.dsse import sign_envelope
from ledger.errors import VerificationError
from ledger.keys import private_key_from_seed
from ledger.log_verifier import verify_log
from ledger.merkle import verify_consistency, verify_inclusion
from ledger.note import NoteSigner
from ledger.sequencer import EnvelopeRules, Sequencer, initialise_log
from ledger.storage import LogStore
from ledger.storage.database import sqlite_url
from tests.support import PAYLOAD_TYPE, TEST_ORIGIN, new_signer

batches = st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=batches, data=st.data())
def test_any_batching_gives_one_verifiable_history(batches: list[int], data: st.DataObject) -> None:
    signers = [new_signer(), new_signer()]
    log_signer = NoteSigner(TEST_ORIGIN, private_key_from_seed(b"\x05" * 32))
    with tempfile.TemporaryDirectory() as tmp:
        store = LogStore.open(sqlite_url(Path(tmp) / "p.db"))
        initialise_log(store, log_signer)
        sequencer = Sequencer(store, log_signer, rules=EnvelopeRules(), verify_threads=1)
        counter = 0
        for size in batches:
            submissions = []
            for _ in range(size):
                signer = signers[counter % 2]
                envelope = sign_envelope(PAYLOAD_TYPE, b"entry %d" % counter, [signer])
                submissions.append(Submission.of(envelope, [signer.public_key]))
                counter += 1
            sequencer.append_batch(submissions)
        total = sum(batches)

        # The replay agrees with the head the sequencer signed.
        result = verify_log(store, log_signer.verifier_key())
        assert result.tree_size == total
        assert result.root_hash == sequencer.latest_checkpoint.root_hash

        # Proofs served from storage verify against the signed roots of past checkpoints.
        checkpoints = list(store.iter_checkpoints())
        old = data.draw(st.sampled_from(checkpoints))
        new = data.draw(st.sampled_from([c for c in checkpoints if c.tree_size >= old.tree_size]))
        consistency = store.consistency_proof(old.tree_size, new.tree_size)
        verify_consistency(
            old.tree_size, new.tree_size, old.root_hash, new.root_hash, consistency.hashes
        )
        if new.tree_size:
            index = data.draw(st.integers(min_value=0, max_value=new.tree_size - 1))
            inclusion = store.inclusion_proof(index, new.tree_size)
            leaf_hash = store.leaf(index).leaf_hash
            verify_inclusion(leaf_hash, index, new.tree_size, inclusion.hashes, new.root_hash)
            # The same proof must not verify any other leaf.
            other = data.draw(st.integers(min_value=0, max_value=new.tree_size - 1))
            if store.leaf(other).leaf_hash != leaf_hash:
                try:
                    verify_inclusion(
                        store.leaf(other).leaf_hash,
                        index,
                        new.tree_size,
                        inclusion.hashes,
                        new.root_hash,
                    )
                except VerificationError:
                    pass
                else:
                    raise AssertionError("an inclusion proof verified a different leaf")
        sequencer.close()
        store.close()
