"""Replay a whole stored log and check every byte of it against the log key.

Pure over the rows a ``LogSource`` streams: every leaf's bytes, hash, index,
chain link and signatures; every stored tree node; every stored checkpoint's
signature, size and root. Memory stays O(log n) whatever the log's size.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from ledger import merkle
from ledger.checkpoint import Checkpoint, open_checkpoint
from ledger.errors import CustodyError, LogIntegrityError
from ledger.leaf import (
    ZERO_HASH,
    chain_hash,
    check_leaf_position,
    decode_leaf,
    verify_leaf_signatures,
)
from ledger.merkle import CompactRange, NodeId
from ledger.note import VerifierKey
from ledger.records import LogInfo, StoredCheckpoint, StoredLeaf, StoredNode


class LogSource(Protocol):
    def info(self) -> LogInfo: ...
    def iter_leaves(self) -> Iterator[StoredLeaf]: ...
    def iter_nodes(self, level: int) -> Iterator[StoredNode]: ...
    def node_levels(self) -> dict[int, int]: ...
    def iter_checkpoints(self) -> Iterator[StoredCheckpoint]: ...


@dataclass(frozen=True)
class LogVerification:
    """What a successful replay established."""

    origin: str
    tree_size: int
    root_hash: bytes
    checkpoints: int
    tree_nodes: int


Progress = Callable[[int], None]


def verify_log(
    source: LogSource,
    log_key: VerifierKey,
    *,
    trusted: Sequence[Checkpoint] = (),
    progress: Progress | None = None,
    threads: int = 2,
) -> LogVerification:
    """Replay the log; raise LogIntegrityError naming the first bad index.

    ``trusted`` are checkpoints the caller verified earlier (for example the
    last one this client saw): the log must contain each, so a log rolled back
    or rewritten behind any of them fails. Signatures are checked ahead in
    ``threads`` worker threads (Ed25519 releases the GIL); every other check
    runs in order, so the first bad index is still the one reported.

    1. The database names the trusted log key and its origin.
    2. Leaf rows run 0, 1, 2, ... with no gap.
    3. Each leaf's bytes hash to its stored leaf hash; the leaf decodes, names
       its own index, continues the hash chain, and every signature verifies;
       its stored chain hash and entry digest are what its bytes give.
    4. Every tree node the replay completes equals the stored one, and no
       stored node is left over.
    5. Every stored checkpoint is signed by the log key, names its own size,
       and its root is the replayed root at that size; the latest one covers
       every leaf.
    6. Every trusted checkpoint is reached and has the replayed root.
    """
    info = source.info()
    if info.verifier_key != str(log_key) or info.origin != log_key.name:
        raise LogIntegrityError(
            f"the database names log key {info.verifier_key!r}, not the trusted {log_key}"
        )
    nodes = _NodeChecker(source)
    checkpoints = _CheckpointChecker(source.iter_checkpoints(), log_key)
    tree = CompactRange()
    chain = ZERO_HASH
    checkpoints.check_up_to(tree)
    _check_trusted(trusted, tree)
    with _SignatureChecker(threads) as signatures:
        for row, signature_problem in signatures.checked(source.iter_leaves()):
            chain = _check_leaf(row, tree.size, chain, signature_problem)
            for node, digest in tree.append(row.leaf_hash):
                if node.level > 0:
                    nodes.check(node, digest)
            checkpoints.check_up_to(tree)
            _check_trusted(trusted, tree)
            if progress is not None and tree.size % 10_000 == 0:
                progress(tree.size)
    nodes.check_exhausted(tree.size)
    checkpoints.check_exhausted(tree.size)
    furthest = max((t.size for t in trusted), default=0)
    if furthest > tree.size:
        raise LogIntegrityError(
            f"the log holds {tree.size} leaves but a trusted checkpoint has {furthest}: "
            "it was truncated or rolled back",
            index=tree.size,
        )
    if progress is not None:
        progress(tree.size)
    return LogVerification(
        origin=info.origin,
        tree_size=tree.size,
        root_hash=tree.root(),
        checkpoints=checkpoints.count,
        tree_nodes=nodes.count,
    )


def _check_leaf(
    row: StoredLeaf, position: int, chain: bytes, signature_problem: CustodyError | None
) -> bytes:
    """Steps 2 and 3 for one leaf row; returns the chain hash after it."""
    if row.index != position:
        raise LogIntegrityError(
            f"leaf {position} is missing: the next stored leaf is {row.index}", index=position
        )
    if merkle.leaf_hash(row.leaf_bytes) != row.leaf_hash:
        raise LogIntegrityError(
            f"leaf {position}: its bytes do not hash to its stored leaf hash", index=position
        )
    try:
        leaf = decode_leaf(row.leaf_bytes)
        check_leaf_position(leaf, expected_index=position, prev_chain_hash=chain)
        if signature_problem is not None:
            raise signature_problem
    except LogIntegrityError:
        raise  # already names this position
    except CustodyError as exc:
        raise LogIntegrityError(f"leaf {position}: {exc}", index=position) from exc
    chain = chain_hash(chain, row.leaf_hash)
    if row.chain_hash != chain:
        raise LogIntegrityError(
            f"leaf {position}: stored chain hash is not the chain's", index=position
        )
    if row.entry_digest != leaf.envelope.digest():
        raise LogIntegrityError(
            f"leaf {position}: stored entry digest is not its envelope's", index=position
        )
    return chain


def _signature_problems(rows: list[StoredLeaf]) -> list[CustodyError | None]:
    """Signature checks of leaves, independent of their position: run in worker threads."""
    problems: list[CustodyError | None] = []
    for row in rows:
        try:
            verify_leaf_signatures(decode_leaf(row.leaf_bytes))
        except CustodyError as exc:
            problems.append(exc)
        else:
            problems.append(None)
    return problems


class _SignatureChecker:
    """Yields leaf rows in order, each with the outcome of its signature checks,
    which worker threads compute a few chunks ahead."""

    _CHUNK = 512

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def __enter__(self) -> _SignatureChecker:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def checked(
        self, rows: Iterator[StoredLeaf]
    ) -> Iterator[tuple[StoredLeaf, CustodyError | None]]:
        if self._pool is None:
            for chunk in _chunks(rows, self._CHUNK):
                yield from zip(chunk, _signature_problems(chunk), strict=True)
            return
        ahead: deque[tuple[list[StoredLeaf], Future[list[CustodyError | None]]]] = deque()
        for chunk in _chunks(rows, self._CHUNK):
            ahead.append((chunk, self._pool.submit(_signature_problems, chunk)))
            if len(ahead) > self._threads:
                done, future = ahead.popleft()
                yield from zip(done, future.result(), strict=True)
        while ahead:
            done, future = ahead.popleft()
            yield from zip(done, future.result(), strict=True)


def _chunks(rows: Iterator[StoredLeaf], size: int) -> Iterator[list[StoredLeaf]]:
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def _check_trusted(trusted: Sequence[Checkpoint], tree: CompactRange) -> None:
    at_size = [t for t in trusted if t.size == tree.size]
    if at_size and any(t.root_hash != tree.root() for t in at_size):
        raise LogIntegrityError(
            f"the log's root at size {tree.size} is not the trusted checkpoint's: "
            "history was rewritten",
            index=max(tree.size - 1, 0),
        )


class _NodeChecker:
    """Compares replayed nodes with stored ones, one ordered stream per level."""

    def __init__(self, source: LogSource) -> None:
        self._source = source
        self._streams: dict[int, Iterator[StoredNode]] = {}
        self.count = 0

    def check(self, node: NodeId, digest: bytes) -> None:
        stream = self._streams.get(node.level)
        if stream is None:
            stream = self._streams[node.level] = self._source.iter_nodes(node.level)
        stored = next(stream, None)
        if stored is None or stored.index != node.index:
            raise LogIntegrityError(
                f"tree node level {node.level} index {node.index} (leaves {node.begin}.."
                f"{node.end - 1}) is missing from storage",
                index=node.begin,
            )
        if stored.hash != digest:
            raise LogIntegrityError(
                f"stored tree node level {node.level} index {node.index} (leaves {node.begin}.."
                f"{node.end - 1}) does not match the leaves",
                index=node.begin,
            )
        self.count += 1

    def check_exhausted(self, size: int) -> None:
        for level, count in sorted(self._source.node_levels().items()):
            expected = size >> level if level > 0 else 0
            if count != expected:
                raise LogIntegrityError(
                    f"storage holds {count} tree nodes at level {level}; a tree of {size} "
                    f"leaves has {expected}",
                    index=size,
                )


class _CheckpointChecker:
    """Checks each stored checkpoint when the replay reaches its size."""

    def __init__(self, stored: Iterator[StoredCheckpoint], log_key: VerifierKey) -> None:
        self._stored = stored
        self._log_key = log_key
        self._next = next(stored, None)
        self.count = 0
        self.latest = -1

    def check_up_to(self, tree: CompactRange) -> None:
        while self._next is not None and self._next.tree_size == tree.size:
            self._check(self._next, tree)
            self._next = next(self._stored, None)

    def _check(self, stored: StoredCheckpoint, tree: CompactRange) -> None:
        where = f"checkpoint for tree size {stored.tree_size}"
        bad = max(stored.tree_size - 1, 0)
        try:
            signed = open_checkpoint(stored.note, self._log_key)
        except CustodyError as exc:
            raise LogIntegrityError(f"{where}: {exc}", index=bad) from exc
        if signed.checkpoint.size != stored.tree_size:
            raise LogIntegrityError(
                f"{where}: the signed note is for size {signed.checkpoint.size}", index=bad
            )
        root = tree.root()
        if signed.checkpoint.root_hash != root or stored.root_hash != root:
            raise LogIntegrityError(f"{where}: its root is not the root of the leaves", index=bad)
        self.count += 1
        self.latest = stored.tree_size

    def check_exhausted(self, size: int) -> None:
        if self._next is not None:
            raise LogIntegrityError(
                f"checkpoint for tree size {self._next.tree_size} is beyond the log's "
                f"{size} leaves",
                index=size,
            )
        if self.latest != size:
            first = max(self.latest, 0)
            raise LogIntegrityError(
                f"leaves from index {first} on are covered by no signed checkpoint",
                index=first,
            )
