"""The sequencer: admits entries, orders them and commits them in batches.

A batch is verified (in parallel threads: Ed25519 verification releases the
GIL), given consecutive indices, written with its new tree nodes and one newly
signed checkpoint in a single transaction, and acknowledged only after that
transaction commits. The in-memory head (tree border, chain head) is loaded
from storage and checked against the latest signed checkpoint at start-up and
whenever another process has moved the log on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import structlog
from sqlalchemy import Connection

from ledger import merkle
from ledger.admission import AdmittedEntry, Submission, admit
from ledger.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from ledger.errors import (
    CustodyError,
    InclusionProofError,
    InternalError,
    LogAlreadyInitialisedError,
    LogIntegrityError,
    MalformedError,
    MalformedLeafError,
    NotFoundError,
    StateMismatchError,
    VerificationError,
)
from ledger.leaf import ZERO_HASH, SubjectLink, chain_hash, decode_leaf, encode_leaf
from ledger.merkle import CompactRange, InclusionProof, NodeId
from ledger.note import NoteSigner, VerifierKey
from ledger.receipts import Receipt
from ledger.records import LogInfo, StoredCheckpoint, StoredLeaf
from ledger.storage.log_store import LogStore

Clock = Callable[[], int]
log = structlog.get_logger("custody.sequencer")
_PARALLEL_VERIFY_MIN = 64


def now_micros() -> int:
    return time.time_ns() // 1_000


AppendOutcome = Receipt | CustodyError
LogHead = tuple[int, bytes]
"""A log's size and root hash: which prefix of the log storage holds."""


class BatchRules(Protocol):
    """Payload rules for one batch, reading and writing inside its transaction."""

    def apply(
        self, prepared: object, index: int, integration_time_micros: int
    ) -> tuple[SubjectLink, ...]:
        """Admit the entry at ``index`` (or raise its refusal, changing nothing);
        return the leaf's subject links."""
        ...

    def finish(self, conn: Connection) -> None:
        """Write what the batch's admitted entries changed."""
        ...

    def committed(self, head: LogHead) -> None:
        """The batch's transaction committed: storage now holds the log up to ``head``."""
        ...


class EntryRules(Protocol):
    """What the log requires of payloads beyond the envelope rules.

    ``prepare`` runs on worker threads before the write lock and may only look
    at the submission; ``begin`` runs under the lock, once per batch.
    """

    def prepare(self, submission: Submission, entry: AdmittedEntry) -> object: ...

    def begin(self, conn: Connection, prepared: Sequence[object], head: LogHead) -> BatchRules:
        """Start a batch appending to the log at ``head``, as storage holds it."""
        ...


class EnvelopeRules:
    """No payload rules: any well-signed envelope is admitted, with no subject links.

    For a bare log of opaque entries (and the log core's own tests); a Custody
    ledger runs ``ledger.custody_rules.CustodyRules``.
    """

    def prepare(self, submission: Submission, entry: AdmittedEntry) -> object:
        return None

    def begin(self, conn: Connection, prepared: Sequence[object], head: LogHead) -> BatchRules:
        return self

    def apply(
        self, prepared: object, index: int, integration_time_micros: int
    ) -> tuple[SubjectLink, ...]:
        return ()

    def finish(self, conn: Connection) -> None:
        return None

    def committed(self, head: LogHead) -> None:
        return None


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A submission that passed the stateless checks."""

    entry: AdmittedEntry
    payload: object


@dataclass(frozen=True, slots=True)
class VerifiedEntry:
    """An envelope that passed ``admit``, and who sent it (``Submission``'s caller)."""

    entry: AdmittedEntry
    authenticated_partner: str | None

    def submission(self) -> Submission:
        return Submission(self.entry.envelope, self.entry.signer_keys, self.authenticated_partner)

    def __reduce__(self) -> tuple[type[VerifiedEntry], tuple[AdmittedEntry, str | None]]:
        # Pickled once per entry on its way to a sequencer's process; the dataclass
        # default for slotted classes walks fields() for every object.
        return (VerifiedEntry, (self.entry, self.authenticated_partner))


T = TypeVar("T")
R = TypeVar("R")


def _checked(check: Callable[[T], R], item: T) -> R | CustodyError:
    """``check(item)``, or the error that refuses it: a ``CustodyError``, or a bug met
    by this one entry, which fails that entry and not its batch."""
    try:
        return check(item)
    except CustodyError as exc:
        return exc
    except Exception as exc:
        log.exception("admission failed unexpectedly")
        name = type(exc).__name__
        return InternalError(f"checking this entry failed unexpectedly ({name})")


class EntryChecker:
    """Runs a check on every submission of a batch, spread over ``threads`` threads of
    its own for a large batch (Ed25519 verification releases the GIL)."""

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._pool = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="custody-verify")
            if threads > 1
            else None
        )

    def check_each(
        self, submissions: Sequence[Submission], check: Callable[[Submission], R]
    ) -> list[R | CustodyError]:
        """Each submission's result or its refusal, in order."""

        def chunk(part: Sequence[Submission]) -> list[R | CustodyError]:
            return [_checked(check, submission) for submission in part]

        if self._pool is None or len(submissions) < _PARALLEL_VERIFY_MIN:
            return chunk(submissions)
        step = -(-len(submissions) // self._threads)
        chunks = [submissions[i : i + step] for i in range(0, len(submissions), step)]
        return [outcome for part in self._pool.map(chunk, chunks) for outcome in part]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


@dataclass(frozen=True)
class AdmittedBatch:
    """A batch that went through the stateless checks (``Sequencer.admit_batch``)."""

    outcomes: list[_Prepared | CustodyError]


@dataclass(frozen=True)
class _Head:
    tree: CompactRange
    chain_head: bytes
    checkpoint: StoredCheckpoint
    last_time_micros: int

    @property
    def position(self) -> LogHead:
        return (self.tree.size, self.checkpoint.root_hash)


@dataclass
class _Batch:
    """What one batch committed: the new head, its leaves, and the nodes for its receipts."""

    head: _Head
    logged: dict[bytes, int]
    nodes: dict[NodeId, bytes]
    rules: BatchRules
    rows: list[StoredLeaf] = field(default_factory=list)
    assigned: dict[bytes, int] = field(default_factory=dict)
    refused: dict[bytes, CustodyError] = field(default_factory=dict)
    earlier: dict[int, tuple[bytes, InclusionProof]] = field(default_factory=dict)


def initialise_log(
    store: LogStore, signer: NoteSigner, *, clock: Clock = now_micros
) -> StoredCheckpoint:
    """Create the log in an empty database with a signed checkpoint of the empty tree."""
    with store.write() as conn:
        if store.is_initialised(conn):
            raise LogAlreadyInitialisedError("this database already holds a log")
        signed_at = clock()
        note = sign_checkpoint(Checkpoint(signer.name, 0, merkle.EMPTY_ROOT), signer)
        genesis = StoredCheckpoint(
            tree_size=0, root_hash=merkle.EMPTY_ROOT, note=note, signed_micros=signed_at
        )
        info = LogInfo(
            origin=signer.name,
            verifier_key=str(signer.verifier_key()),
            created_micros=signed_at,
        )
        store.create_log(conn, info, genesis)
    return genesis


def load_head(
    store: LogStore, log_key: VerifierKey, conn: Connection, *, count_leaves: bool = True
) -> _Head:
    """Reload the log's head from storage and check it, trusting nothing stored blindly.

    Run inside one transaction (``conn``) so that every read sees the same state.

    1. The latest checkpoint is signed by the log key for the log's origin.
    2. The highest leaf index is that checkpoint's size minus one; at start-up
       (``count_leaves``) the number of leaves must match too: no gaps.
    3. The stored tree border for that size hashes to the checkpoint's root.
    4. The last leaf's bytes hash to its stored leaf hash, and an inclusion
       proof from stored nodes ties that hash to the signed root.
    5. The last leaf names its own index, its prev_chain_hash is the stored
       chain hash of the leaf before it, and its stored chain hash follows.
    """
    stored = store.latest_checkpoint(conn)
    if stored is None:
        raise StateMismatchError("the log has no signed checkpoint")
    try:
        signed = open_checkpoint(stored.note, log_key)
    except (VerificationError, MalformedError) as exc:
        raise StateMismatchError(f"latest stored checkpoint does not verify: {exc}") from exc
    size, root = signed.checkpoint.size, signed.checkpoint.root_hash
    if size != stored.tree_size or root != stored.root_hash:
        raise StateMismatchError("latest checkpoint row disagrees with its signed note")
    stored_size = store.size(conn)
    count = store.leaf_count(conn) if count_leaves else stored_size
    if stored_size != size or count != size:
        raise StateMismatchError(
            f"storage holds {count} leaves up to index {stored_size - 1}, "
            f"but the latest checkpoint covers {size}"
        )
    try:
        # One read for the border and, when there is a last leaf, its inclusion path.
        border = merkle.range_nodes(0, size)
        path = (
            merkle.nodes_needed([*merkle.inclusion_ranges(size - 1, size), (size - 1, size)])
            if size
            else set()
        )
        hashes = store.fetch_nodes({*border, *path}, conn)
        tree = CompactRange(size, [hashes[node] for node in border])
        if tree.root() != root:
            raise StateMismatchError(f"stored tree hashes do not give the signed root at {size}")
        if not size:
            return _Head(tree, ZERO_HASH, stored, 0)
        last = store.leaf(size - 1, conn)
        if merkle.leaf_hash(last.leaf_bytes) != last.leaf_hash:
            raise StateMismatchError(f"the last leaf ({size - 1}) does not match its leaf hash")
        proof = merkle.build_inclusion_proof(size - 1, size, lambda _ids: hashes)
        merkle.verify_inclusion(last.leaf_hash, size - 1, size, proof.hashes, root)
        leaf = decode_leaf(last.leaf_bytes)
        before = store.leaf(size - 2, conn).chain_hash if size > 1 else ZERO_HASH
    except (LogIntegrityError, MalformedLeafError, InclusionProofError, NotFoundError) as exc:
        raise StateMismatchError(f"the stored head of the log does not check out: {exc}") from exc
    if (
        leaf.index != size - 1
        or leaf.prev_chain_hash != before
        or chain_hash(before, last.leaf_hash) != last.chain_hash
    ):
        raise StateMismatchError(f"the last leaf ({size - 1}) is not where the chain says")
    return _Head(tree, last.chain_hash, stored, leaf.integration_time_micros)


class Sequencer:
    """Orders admitted entries into the log; one per process, thread-safe."""

    admitted_ahead = 1
    """Batches worth admitting ahead of the one being sequenced: admission shares this
    process's GIL, so more would only make the batches smaller."""

    def __init__(
        self,
        store: LogStore,
        signer: NoteSigner,
        *,
        rules: EntryRules,
        clock: Clock = now_micros,
        verify_threads: int = 2,
    ) -> None:
        info = store.info()
        if str(signer.verifier_key()) != info.verifier_key:
            raise StateMismatchError(
                f"the signing key ({signer.verifier_key()}) is not the log's key "
                f"({info.verifier_key})"
            )
        self.store = store
        self.signer = signer
        self.log_key = signer.verifier_key()
        self.rules = rules
        self._clock = clock
        self._lock = threading.Lock()
        self._checker = EntryChecker(verify_threads)
        with store.snapshot() as conn:
            self._head = load_head(store, self.log_key, conn)

    @property
    def origin(self) -> str:
        return self.signer.name

    @property
    def size(self) -> int:
        return self._head.tree.size

    @property
    def latest_checkpoint(self) -> StoredCheckpoint:
        return self._head.checkpoint

    def close(self) -> None:
        self._checker.close()

    def append(self, submission: Submission) -> Receipt:
        """Append one entry; raise its refusal as an error."""
        (outcome,) = self.append_batch([submission])
        if isinstance(outcome, CustodyError):
            raise outcome
        return outcome

    def append_batch(self, submissions: Sequence[Submission]) -> list[AppendOutcome]:
        """Admit, order and durably commit a batch; one outcome per submission, in order.

        1. Envelope rules and the payload's stateless checks on every
           submission, in parallel; a refused one gets its error and takes no index.
        2. Under the log's write lock, reload the head if another process moved it.
        3. An entry whose digest is already logged (or repeated within the
           batch) keeps its original index. Every other entry goes through the
           payload rules against the state left by the entries before it; if
           admitted it gets the next index and its subject links, if refused
           it changes nothing.
        4. Write leaves, tree nodes, the rules' derived state and one signed
           checkpoint; commit.
        5. Answer each submission with a receipt against that checkpoint.
        """
        return self.sequence_batch(self.admit_batch(submissions))

    def admit_batch(self, submissions: Sequence[Submission]) -> AdmittedBatch:
        """Step 1 alone: no lock, no storage. A pipeline may admit the next batch
        while the previous one is being sequenced (``sequence_batch``)."""
        return AdmittedBatch(self._admit_all(submissions))

    def sequence_batch(self, admitted: AdmittedBatch) -> list[AppendOutcome]:
        """Steps 2-5 for a batch from ``admit_batch``, under the log's write lock."""
        with self._lock:
            return self._sequence(admitted.outcomes)

    def sequence_verified(self, entries: Sequence[VerifiedEntry]) -> list[AppendOutcome]:
        """Steps 1-5 for entries whose envelopes someone trusted already admitted
        (``admit``: signatures verified), such as this node's own frontend: only the
        payloads' stateless checks of step 1 run here, then the rest."""
        prepared = [_checked(self._prepare_verified, entry) for entry in entries]
        return self.sequence_batch(AdmittedBatch(prepared))

    def _prepare_verified(self, verified: VerifiedEntry) -> _Prepared:
        return _Prepared(verified.entry, self.rules.prepare(verified.submission(), verified.entry))

    # --- steps ---------------------------------------------------------------------

    def _admit_all(self, submissions: Sequence[Submission]) -> list[_Prepared | CustodyError]:
        return self._checker.check_each(submissions, self._admit_one)

    def _admit_one(self, submission: Submission) -> _Prepared:
        entry = admit(submission)
        return _Prepared(entry, self.rules.prepare(submission, entry))

    def _sequence(self, admitted: list[_Prepared | CustodyError]) -> list[AppendOutcome]:
        prepared = [e for e in admitted if isinstance(e, _Prepared)]
        if not prepared:  # all refused already: nothing to order, no transaction to open
            return [e for e in admitted if isinstance(e, CustodyError)]
        batch = self._commit(prepared)
        # Committed: only now does the new head become visible and receipts exist.
        self._head = batch.head
        batch.rules.committed(batch.head.position)
        return self._receipts(admitted, batch)

    def _commit(self, prepared: list[_Prepared]) -> _Batch:
        """Steps 2-4 of a batch, in one write transaction holding the log's lock."""
        with self.store.write() as conn:
            head = self._refresh_head(conn)
            logged = self.store.indices_for_digests({p.entry.digest for p in prepared}, conn)
            fresh = [p for p in prepared if p.entry.digest not in logged]
            rules = self.rules.begin(conn, [p.payload for p in fresh], head.position)
            tree = head.tree.copy()
            batch = _Batch(head=head, logged=logged, nodes=dict(tree.nodes()), rules=rules)
            chain = head.chain_head
            integrated_at = max(self._clock(), head.last_time_micros)
            created: list[tuple[NodeId, bytes]] = []
            for item in fresh:
                entry = item.entry
                if entry.digest in batch.assigned or entry.digest in batch.refused:
                    continue
                index = tree.size
                try:
                    links = rules.apply(item.payload, index, integrated_at)
                except CustodyError as exc:
                    batch.refused[entry.digest] = exc
                    continue
                leaf_bytes = encode_leaf(
                    index=index,
                    integration_time_micros=integrated_at,
                    prev_chain_hash=chain,
                    envelope=entry.envelope,
                    signer_keys=entry.signer_keys,
                    subject_links=links,
                )
                leaf_hash = merkle.leaf_hash(leaf_bytes)
                chain = chain_hash(chain, leaf_hash)
                created.extend(tree.append(leaf_hash))
                batch.rows.append(StoredLeaf(index, entry.digest, leaf_hash, chain, leaf_bytes))
                batch.assigned[entry.digest] = index
            if batch.rows:
                root = tree.root()
                note = sign_checkpoint(Checkpoint(self.signer.name, tree.size, root), self.signer)
                checkpoint = StoredCheckpoint(tree.size, root, note, integrated_at)
                self.store.insert_leaves(conn, batch.rows)
                self.store.insert_nodes(conn, created)
                rules.finish(conn)
                self.store.insert_checkpoint(conn, checkpoint)
                batch.head = _Head(tree, chain, checkpoint, integrated_at)
                batch.nodes.update(created)
            # Receipts for entries logged before this batch, read before the commit so
            # that nothing after it can fail.
            for index in sorted(set(logged.values())):
                batch.earlier[index] = (
                    self.store.leaf(index, conn).leaf_bytes,
                    self.store.inclusion_proof(index, batch.head.tree.size, conn),
                )
        return batch

    def _refresh_head(self, conn: Connection) -> _Head:
        """The head to append to, under the write lock: ours, or a later one that extends it.

        Another process may have appended since our last batch; then reload
        and check its head (without the O(n) leaf count). Storage that went
        backwards or forked from what this sequencer signed is refused: going
        on would sign a second root for a size already signed.
        """
        head = self._head
        if self.store.latest_signed_head(conn) == head.position:
            return head
        moved = load_head(self.store, self.log_key, conn, count_leaves=False)
        ours = head.tree.size
        if moved.tree.size < ours or (self.store.root_at(ours, conn) != head.checkpoint.root_hash):
            raise StateMismatchError(
                f"storage no longer extends the log this sequencer signed at size {ours}: "
                "it was rolled back or replaced"
            )
        return moved

    def _receipts(
        self, admitted: list[_Prepared | CustodyError], batch: _Batch
    ) -> list[AppendOutcome]:
        """Step 5: a receipt for every admitted entry, against the batch's checkpoint."""
        head = batch.head
        size, note = head.tree.size, head.checkpoint.note
        leaves = {row.index: row.leaf_bytes for row in batch.rows}
        new_indices = [row.index for row in batch.rows]
        proofs = dict(
            zip(new_indices, merkle.inclusion_proofs(new_indices, size, batch.nodes), strict=True)
        )
        answered: set[int] = set()
        outcomes: list[AppendOutcome] = []
        for prepared in admitted:
            if isinstance(prepared, CustodyError):
                outcomes.append(prepared)
                continue
            item = prepared.entry
            if item.digest in batch.refused:
                outcomes.append(batch.refused[item.digest])
            elif item.digest in batch.assigned:
                index = batch.assigned[item.digest]
                outcomes.append(
                    Receipt(index, leaves[index], note, proofs[index], index in answered)
                )
                answered.add(index)
            else:
                index = batch.logged[item.digest]
                leaf, proof = batch.earlier[index]
                outcomes.append(Receipt(index, leaf, note, proof, duplicate=True))
        return outcomes
