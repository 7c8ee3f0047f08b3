"""The ``custody log`` commands against a node (``--server``): fetch, verify, hand back.

Everything here goes through the partner SDK, so every answer is checked against
the log's verifier key before it is printed: checkpoints are signed and (through
the data directory's verified state) consistent with the newest one seen before,
entries are proven in a signed checkpoint, proofs verify and are tied to signed
roots. ``log_commands`` prints the results exactly as for the local log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from clients.cli.context import CliContext
from clients.cli.remote import RemoteOptions, connect
from clients.cli.verified_state import VerifiedState
from ledger.checkpoint import SignedCheckpoint
from ledger.errors import LogIntegrityError
from ledger.leaf import Leaf
from ledger.merkle import ConsistencyProof, InclusionProof
from ledger.records import StoredLeaf

_PROGRESS_EVERY = 1_000


def checkpoint(state: CliContext, remote: RemoteOptions, vkey: str | None) -> bytes:
    """The node's latest checkpoint note, byte for byte, once verified."""
    with connect(state, remote, vkey, keep_state=True) as client:
        return client.checkpoint().raw


def entry(
    state: CliContext, remote: RemoteOptions, vkey: str | None, index: int
) -> tuple[StoredLeaf, Leaf]:
    """The leaf at ``index``, verified and proven in the node's latest checkpoint, with
    the hashes local storage would hold for it (computed from its bytes)."""
    with connect(state, remote, vkey, keep_state=True) as client:
        leaf = client.entry(index).leaf
    stored = StoredLeaf(
        index=index,
        entry_digest=leaf.envelope.digest(),
        leaf_hash=leaf.leaf_hash,
        chain_hash=leaf.chain_hash,
        leaf_bytes=leaf.raw,
    )
    return stored, leaf


def _note_bridge(size: int, bridge: ConsistencyProof | None, signed: SignedCheckpoint) -> None:
    if bridge is not None:
        click.echo(
            f"note: no checkpoint was signed at tree size {size}; its root is proven a "
            f"prefix of the checkpoint signed at size {signed.checkpoint.size}",
            err=True,
        )


def prove_inclusion(
    state: CliContext, remote: RemoteOptions, vkey: str | None, index: int, size: int | None
) -> InclusionProof:
    with connect(state, remote, vkey, keep_state=True) as client:
        verified = client.inclusion_proof(index, size)
    _note_bridge(verified.proof.tree_size, verified.bridge, verified.checkpoint)
    return verified.proof


def prove_consistency(
    state: CliContext, remote: RemoteOptions, vkey: str | None, old: int, new: int | None
) -> ConsistencyProof:
    with connect(state, remote, vkey, keep_state=True) as client:
        verified = client.consistency_proof(old, new)
    _note_bridge(verified.proof.new_size, verified.bridge, verified.checkpoint)
    return verified.proof


@dataclass(frozen=True)
class RemoteVerification:
    """What ``verify`` established about the node's log."""

    checkpoint: SignedCheckpoint
    leaves: int
    trusted_sizes: tuple[int, ...]


def verify(
    state: CliContext,
    remote: RemoteOptions,
    vkey: str | None,
    checkpoint_files: Sequence[Path],
    progress: Callable[[int], None] | None,
) -> RemoteVerification:
    """Audit the node's whole log from its entries, the way ``log verify`` audits storage.

    1. The latest checkpoint is signed by the trusted key.
    2. It is consistent (a verified consistency proof) with every trusted checkpoint:
       the newest this data directory verified before, and each ``--checkpoint FILE``.
    3. Every leaf, streamed with GetEntries, decodes, names its index, continues the
       hash chain and carries valid signatures; the Merkle root of all of them
       (CompactRange) is the signed root.
    4. Only then does the data directory's verified state advance to this checkpoint.
    """
    log_key = state.trusted_log_key(vkey)
    verified_state = VerifiedState(state.data_dir, log_key)
    trusted = verified_state.trusted(checkpoint_files)
    # No state in the client: the state moves only after step 3 succeeded.
    with remote.connect(log_key) as client:
        latest = client.checkpoint()
        furthest = max((c.size for c in trusted), default=0)
        if furthest > latest.checkpoint.size:
            # A prefix of what was trusted proves nothing about the entries it leaves out.
            raise LogIntegrityError(
                f"the node's latest checkpoint has {latest.checkpoint.size} entries but a "
                f"trusted checkpoint has {furthest}: the log was truncated or rolled back, "
                "or the node is behind",
                index=latest.checkpoint.size,
            )
        for checkpoint_seen in trusted:
            client.check_consistent(checkpoint_seen, latest)
        leaves = 0
        for _ in client.entries(0, checkpoint=latest):
            leaves += 1
            if progress is not None and leaves % _PROGRESS_EVERY == 0:
                progress(leaves)
    verified_state.save(latest, verified_state.load())  # latest: verified in step 1
    return RemoteVerification(latest, leaves, tuple(c.size for c in trusted))
