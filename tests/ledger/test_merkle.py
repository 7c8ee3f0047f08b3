"""Tests for ledger.merkle: RFC 9162 known answers, properties, fetch cost, JSON strictness."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import (
    ConsistencyProofError,
    InclusionProofError,
    MalformedProofError,
    OutOfRangeError,
)
from ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    ConsistencyProof,
    InclusionProof,
    NodeFetcher,
    NodeId,
    build_consistency_proof,
    build_inclusion_proof,
    consistency_ranges,
    fold_range,
    inclusion_proofs,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    nodes_needed,
    range_nodes,
    root_at,
    verify_consistency,
    verify_inclusion,
)
from tests.support import TESTVECTORS

VECTORS_PATH = TESTVECTORS / "merkle.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text())

# Property tests run against one deterministic tree; any smaller tree is a prefix
# of it, and a perfect subtree's hash does not depend on the tree around it.
MAX_SIZE = 300
PROPERTY = settings(max_examples=200, deadline=None)


def b64d(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def flip(data: bytes, bit: int) -> bytes:
    """``data`` with one bit inverted."""
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- reference implementation, straight from the RFC 9162 §2.1 definitions -----


def _k(n: int) -> int:
    """Largest power of two strictly smaller than n (n > 1), by counting up."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1."""
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _k(n)
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1."""
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1."""
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1."""
    return ref_subproof(m, d, True)


# --- stores and fetchers ----------------------------------------------------------


def store_from_leaves(leaves: Sequence[bytes]) -> dict[NodeId, bytes]:
    """Every node a CompactRange reports while the leaves are appended."""
    store: dict[NodeId, bytes] = {}
    tree = CompactRange()
    for leaf in leaves:
        for node, h in tree.append(leaf_hash(leaf)):
            assert node not in store
            store[node] = h
    return store


class CountingFetcher:
    """Dict-backed fetcher that records every call."""

    def __init__(self, store: Mapping[NodeId, bytes]) -> None:
        self.store = store
        self.calls: list[list[NodeId]] = []

    def __call__(self, ids: Collection[NodeId]) -> Mapping[NodeId, bytes]:
        self.calls.append(list(ids))
        return {node: self.store[node] for node in ids}


class FakeFetcher:
    """Answers any id with a made-up hash, to count requests on huge trees."""

    def __init__(self) -> None:
        self.calls: list[list[NodeId]] = []

    def __call__(self, ids: Collection[NodeId]) -> Mapping[NodeId, bytes]:
        self.calls.append(list(ids))
        return {n: hashlib.sha256(f"{n.level}/{n.index}".encode()).digest() for n in ids}


@functools.cache
def vector_leaves() -> tuple[bytes, ...]:
    return tuple(b64d(leaf) for leaf in VECTORS["leaves"])


@functools.cache
def vector_store() -> dict[NodeId, bytes]:
    return store_from_leaves(vector_leaves())


@functools.cache
def prop_leaves() -> tuple[bytes, ...]:
    return tuple(f"property leaf {i}".encode() for i in range(MAX_SIZE))


@functools.cache
def prop_store() -> dict[NodeId, bytes]:
    return store_from_leaves(prop_leaves())


def prop_fetch() -> CountingFetcher:
    return CountingFetcher(prop_store())


def prop_root(size: int) -> bytes:
    return root_at(size, prop_fetch())


# --- primitives ---------------------------------------------------------------------


def test_primitives() -> None:
    assert HASH_SIZE == 32
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert fold_range([]) == EMPTY_ROOT
    assert fold_range([b"a" * 32]) == b"a" * 32
    h = [bytes([i]) * 32 for i in range(3)]
    assert fold_range(h) == node_hash(h[0], node_hash(h[1], h[2]))


def test_node_id() -> None:
    node = NodeId(3, 5)
    assert (node.begin, node.end) == (40, 48)
    assert NodeId(0, 7).begin == 7
    assert NodeId(0, 7).end == 8
    assert sorted([NodeId(1, 0), NodeId(0, 9), NodeId(0, 2)]) == [
        NodeId(0, 2),
        NodeId(0, 9),
        NodeId(1, 0),
    ]
    with pytest.raises(ValueError, match="NodeId"):
        NodeId(-1, 0)
    with pytest.raises(ValueError, match="NodeId"):
        NodeId(0, -1)


def test_range_nodes_examples() -> None:
    assert range_nodes(0, 0) == []
    assert range_nodes(5, 5) == []
    assert range_nodes(0, 1) == [NodeId(0, 0)]
    assert range_nodes(0, 7) == [NodeId(2, 0), NodeId(1, 2), NodeId(0, 6)]
    assert range_nodes(8, 13) == [NodeId(2, 2), NodeId(0, 12)]
    assert range_nodes(64, 70) == [NodeId(2, 16), NodeId(1, 34)]
    for begin, end in [(1, 3), (2, 6), (-1, 2), (3, 2)]:
        with pytest.raises(ValueError, match="range"):
            range_nodes(begin, end)


def test_ranges_examples() -> None:
    # RFC 9162 §2.1.5 example tree of 7 leaves.
    assert inclusion_ranges(0, 7) == [(1, 2), (2, 4), (4, 7)]
    assert inclusion_ranges(3, 7) == [(2, 3), (0, 2), (4, 7)]
    assert inclusion_ranges(4, 7) == [(5, 6), (6, 7), (0, 4)]
    assert inclusion_ranges(6, 7) == [(4, 6), (0, 4)]
    assert inclusion_ranges(0, 1) == []
    assert consistency_ranges(3, 7) == [(2, 3), (3, 4), (0, 2), (4, 7)]
    assert consistency_ranges(4, 7) == [(4, 7)]
    assert consistency_ranges(6, 7) == [(4, 6), (6, 7), (0, 4)]
    assert consistency_ranges(0, 7) == []
    assert consistency_ranges(7, 7) == []
    assert nodes_needed([(4, 7), (0, 2)]) == {NodeId(1, 2), NodeId(0, 6), NodeId(1, 0)}
    for index, size in [(7, 7), (-1, 7), (0, 0)]:
        with pytest.raises(OutOfRangeError):
            inclusion_ranges(index, size)
    for old, new in [(8, 7), (-1, 7)]:
        with pytest.raises(OutOfRangeError):
            consistency_ranges(old, new)


# --- known-answer vectors ---------------------------------------------------------------


def test_vector_leaf_hashes_and_roots() -> None:
    leaves = vector_leaves()
    assert len(leaves) == 70
    assert [leaf_hash(leaf) for leaf in leaves] == [b64d(h) for h in VECTORS["leaf_hashes"]]
    roots = [b64d(r) for r in VECTORS["roots"]]
    assert len(roots) == 71
    tree = CompactRange()
    assert tree.root() == roots[0] == EMPTY_ROOT
    for size, leaf in enumerate(leaves, start=1):
        tree.append(leaf_hash(leaf))
        assert tree.root() == roots[size], size
    fetch = CountingFetcher(vector_store())
    for size, root in enumerate(roots):
        assert root_at(size, fetch) == root, size
        assert ref_mth(leaves[:size]) == root, size


@pytest.mark.parametrize(
    "vector",
    VECTORS["inclusion"],
    ids=[f"i{v['index']}-n{v['tree_size']}" for v in VECTORS["inclusion"]],
)
def test_vector_inclusion(vector: dict[str, Any]) -> None:
    fetch = CountingFetcher(vector_store())
    proof = build_inclusion_proof(vector["index"], vector["tree_size"], fetch)
    assert len(fetch.calls) == 1
    assert proof.to_json() == vector
    assert list(proof.to_json()) == ["index", "tree_size", "leaf_hash", "root", "hashes"]
    proof.verify()
    parsed = InclusionProof.from_json(vector)
    assert parsed == proof
    parsed.verify()


@pytest.mark.parametrize(
    "vector",
    VECTORS["consistency"],
    ids=[f"m{v['old_size']}-n{v['new_size']}" for v in VECTORS["consistency"]],
)
def test_vector_consistency(vector: dict[str, Any]) -> None:
    fetch = CountingFetcher(vector_store())
    proof = build_consistency_proof(vector["old_size"], vector["new_size"], fetch)
    assert len(fetch.calls) == 1
    assert proof.to_json() == vector
    assert list(proof.to_json()) == ["old_size", "new_size", "old_root", "new_root", "hashes"]
    proof.verify()
    parsed = ConsistencyProof.from_json(vector)
    assert parsed == proof
    parsed.verify()


# --- inclusion properties ------------------------------------------------------------------


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_SIZE))
    return size, draw(st.integers(0, size - 1))


@st.composite
def old_and_new(draw: st.DrawFn, min_old: int = 1) -> tuple[int, int]:
    new = draw(st.integers(max(min_old, 1), MAX_SIZE))
    return draw(st.integers(min_old, new)), new


def built_inclusion(size: int, index: int) -> InclusionProof:
    return build_inclusion_proof(index, size, prop_fetch())


def built_consistency(old: int, new: int) -> ConsistencyProof:
    return build_consistency_proof(old, new, prop_fetch())


@PROPERTY
@given(size_and_index())
def test_inclusion_builds_reference_proof(case: tuple[int, int]) -> None:
    size, index = case
    fetch = prop_fetch()
    proof = build_inclusion_proof(index, size, fetch)
    assert len(fetch.calls) == 1
    assert len(set(fetch.calls[0])) == len(fetch.calls[0])
    leaves = prop_leaves()[:size]
    assert proof.leaf_hash == leaf_hash(leaves[index])
    assert proof.root == ref_mth(leaves)
    assert list(proof.hashes) == ref_path(index, leaves)
    proof.verify()
    InclusionProof.from_json(json.loads(json.dumps(proof.to_json()))).verify()


@PROPERTY
@given(size_and_index(), st.data())
def test_inclusion_rejects_any_flipped_bit(case: tuple[int, int], data: st.DataObject) -> None:
    size, index = case
    p = built_inclusion(size, index)
    bit = data.draw(st.integers(0, HASH_SIZE * 8 - 1), label="bit")
    target = data.draw(st.integers(-2, len(p.hashes) - 1), label="target")
    leaf, root, hashes = p.leaf_hash, p.root, list(p.hashes)
    if target == -2:
        leaf = flip(leaf, bit)
    elif target == -1:
        root = flip(root, bit)
    else:
        hashes[target] = flip(hashes[target], bit)
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaf, index, size, hashes, root)


@PROPERTY
@given(size_and_index(), st.integers(0, MAX_SIZE))
def test_inclusion_rejects_wrong_index(case: tuple[int, int], other: int) -> None:
    size, index = case
    if other == index:
        other = index + 1
    p = built_inclusion(size, index)
    with pytest.raises(InclusionProofError):
        verify_inclusion(p.leaf_hash, other, size, p.hashes, p.root)


@PROPERTY
@given(size_and_index(), st.integers(0, MAX_SIZE))
def test_inclusion_rejects_wrong_size(case: tuple[int, int], other: int) -> None:
    size, index = case
    if other == size:
        other = size - 1
    p = built_inclusion(size, index)
    # Claim the proof is for another size, with the genuine root of that size.
    with pytest.raises(InclusionProofError):
        verify_inclusion(p.leaf_hash, index, other, p.hashes, prop_root(other))


def test_sizes_are_bound_only_through_roots() -> None:
    # RFC 9162 behaviour worth knowing: PATH(0, D[5]) and PATH(0, D[8]) take
    # the same left/right turns, so with the size-5 root a proof "for size 8"
    # passes.  Callers must take the root and the size from one checkpoint.
    p = built_inclusion(5, 0)
    verify_inclusion(p.leaf_hash, 0, 8, p.hashes, p.root)
    with pytest.raises(InclusionProofError):
        verify_inclusion(p.leaf_hash, 0, 8, p.hashes, prop_root(8))
    # Likewise PROOF(1, D[300]) checks out as a proof to size 301 with the
    # size-300 root.
    c = built_consistency(1, 300)
    verify_consistency(1, 301, c.old_root, c.new_root, c.hashes)


@PROPERTY
@given(size_and_index(), st.data())
def test_inclusion_rejects_truncated_or_extended(
    case: tuple[int, int], data: st.DataObject
) -> None:
    size, index = case
    p = built_inclusion(size, index)
    extra = data.draw(st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE), label="extra")
    bad: list[list[bytes]] = [[*p.hashes, extra], [extra, *p.hashes], [*p.hashes, p.root]]
    if p.hashes:
        bad += [list(p.hashes[:-1]), list(p.hashes[1:])]
    for hashes in bad:
        with pytest.raises(InclusionProofError):
            verify_inclusion(p.leaf_hash, index, size, hashes, p.root)


def test_inclusion_edge_cases() -> None:
    p = built_inclusion(10, 3)
    cases: list[tuple[bytes, int, int, list[bytes], bytes]] = [
        (p.leaf_hash, 10, 10, list(p.hashes), p.root),  # index == size
        (p.leaf_hash, -1, 10, list(p.hashes), p.root),
        (p.leaf_hash, 0, 0, [], EMPTY_ROOT),  # nothing is in the empty tree
        (p.leaf_hash[:-1], 3, 10, list(p.hashes), p.root),
        (p.leaf_hash, 3, 10, list(p.hashes), p.root + b"\x00"),
        (p.leaf_hash, 3, 10, [*p.hashes[:-1], b""], p.root),
    ]
    for leaf, index, size, hashes, root in cases:
        with pytest.raises(InclusionProofError):
            verify_inclusion(leaf, index, size, hashes, root)
    single = built_inclusion(1, 0)
    assert single.hashes == ()
    assert single.root == single.leaf_hash
    single.verify()


# --- consistency properties ----------------------------------------------------------------


@PROPERTY
@given(old_and_new(min_old=0))
def test_consistency_builds_reference_proof(case: tuple[int, int]) -> None:
    old, new = case
    fetch = prop_fetch()
    proof = build_consistency_proof(old, new, fetch)
    assert len(fetch.calls) == 1
    assert len(set(fetch.calls[0])) == len(fetch.calls[0])
    leaves = prop_leaves()
    assert proof.old_root == ref_mth(leaves[:old])
    assert proof.new_root == ref_mth(leaves[:new])
    expected = [] if old in (0, new) else ref_proof(old, leaves[:new])
    assert list(proof.hashes) == expected
    proof.verify()
    ConsistencyProof.from_json(json.loads(json.dumps(proof.to_json()))).verify()


@PROPERTY
@given(old_and_new(), st.data())
def test_consistency_rejects_any_flipped_bit(case: tuple[int, int], data: st.DataObject) -> None:
    old, new = case
    p = built_consistency(old, new)
    bit = data.draw(st.integers(0, HASH_SIZE * 8 - 1), label="bit")
    target = data.draw(st.integers(-2, len(p.hashes) - 1), label="target")
    old_root, new_root, hashes = p.old_root, p.new_root, list(p.hashes)
    if target == -2:
        old_root = flip(old_root, bit)
    elif target == -1:
        new_root = flip(new_root, bit)
    else:
        hashes[target] = flip(hashes[target], bit)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(old, new, old_root, new_root, hashes)


@PROPERTY
@given(old_and_new(), st.integers(1, MAX_SIZE), st.booleans())
def test_consistency_rejects_wrong_sizes(
    case: tuple[int, int], other: int, change_old: bool
) -> None:
    old, new = case
    p = built_consistency(old, new)
    if change_old:
        if other == old:
            other = old - 1 if old > 1 else old + 1
        claim = (other, new, prop_root(other), p.new_root)
    else:
        if other == new:
            other = new - 1
        claim = (old, other, p.old_root, prop_root(other))
    # A wrong size fails even with the genuine root of that size.
    with pytest.raises(ConsistencyProofError):
        verify_consistency(*claim, p.hashes)


@PROPERTY
@given(old_and_new(), st.data())
def test_consistency_rejects_truncated_or_extended(
    case: tuple[int, int], data: st.DataObject
) -> None:
    old, new = case
    p = built_consistency(old, new)
    extra = data.draw(st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE), label="extra")
    bad: list[list[bytes]] = [[*p.hashes, extra], [extra, *p.hashes], [p.old_root, *p.hashes]]
    if p.hashes:
        bad += [list(p.hashes[:-1]), list(p.hashes[1:])]
    for hashes in bad:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(old, new, p.old_root, p.new_root, hashes)


@PROPERTY
@given(st.integers(0, MAX_SIZE))
def test_consistency_from_empty_tree(new: int) -> None:
    p = built_consistency(0, new)
    assert p.hashes == ()
    assert p.old_root == EMPTY_ROOT
    assert p.new_root == prop_root(new)
    p.verify()
    # Every non-empty tree extends the empty one, whatever its root; the empty
    # tree itself has only one root.
    if new:
        verify_consistency(0, new, EMPTY_ROOT, b"\x07" * 32, [])
    else:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(0, new, EMPTY_ROOT, b"\x07" * 32, [])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(0, new, EMPTY_ROOT, p.new_root, [p.new_root])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(0, new, b"\x00" * 32, p.new_root, [])


def test_consistency_edge_cases() -> None:
    r5, r9 = prop_root(5), prop_root(9)
    p = built_consistency(5, 9)
    cases: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (9, 5, r9, r5, list(p.hashes)),  # old > new
        (-1, 5, EMPTY_ROOT, r5, []),
        (5, 9, r5, r9, []),  # 0 < old < new needs a proof
        (5, 5, r5, r9, []),  # equal sizes, different roots
        (5, 5, r5, r5, [r5]),  # equal sizes, non-empty proof
        (5, 9, r5[:-1], r9, list(p.hashes)),
        (5, 9, r5, r9 + b"\x00", list(p.hashes)),
        (5, 9, r5, r9, [*p.hashes[:-1], b"\x00" * 31]),
    ]
    for old, new, old_root, new_root, hashes in cases:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(old, new, old_root, new_root, hashes)
    verify_consistency(5, 5, r5, r5, [])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(0, 0, EMPTY_ROOT, r5, [])


def test_builders_reject_out_of_range() -> None:
    fetch = prop_fetch()
    for index, size in [(5, 5), (-1, 5), (0, 0)]:
        with pytest.raises(OutOfRangeError):
            build_inclusion_proof(index, size, fetch)
    for old, new in [(6, 5), (-1, 5)]:
        with pytest.raises(OutOfRangeError):
            build_consistency_proof(old, new, fetch)
    with pytest.raises(OutOfRangeError):
        root_at(-1, fetch)
    assert fetch.calls == []


def test_fetcher_gaps_surface() -> None:
    def forgetful(ids: Collection[NodeId]) -> Mapping[NodeId, bytes]:
        return {}

    def short(ids: Collection[NodeId]) -> Mapping[NodeId, bytes]:
        return dict.fromkeys(ids, b"\x00" * 31)

    with pytest.raises(KeyError):
        build_inclusion_proof(3, 10, forgetful)
    with pytest.raises(ValueError, match="31-byte"):
        build_consistency_proof(3, 10, short)


# --- fetch cost -----------------------------------------------------------------------------

LARGE_SIZES = [1, 2, 3, 1000, 2**19 + 1, 999_983, 2**20 - 1, 2**20]


@pytest.mark.parametrize("size", LARGE_SIZES)
def test_fetch_is_one_call_of_logarithmic_size(size: int) -> None:
    bound = 3 * size.bit_length() + 3
    builds: list[Callable[[NodeFetcher], object]] = []
    for index in sorted({0, 1 % size, size // 2, size - 1}):
        builds.append(functools.partial(build_inclusion_proof, index, size))
    for old in sorted({0, 1, size // 3, size // 2 + 1, size - 1, size}):
        if old <= size:
            builds.append(functools.partial(build_consistency_proof, old, size))
    builds.append(functools.partial(root_at, size))
    for build in builds:
        fetch = FakeFetcher()
        build(fetch)
        assert len(fetch.calls) == 1
        ids = fetch.calls[0]
        assert len(ids) == len(set(ids))
        assert len(ids) <= bound, (build, len(ids), bound)


def test_no_fetch_for_the_empty_tree() -> None:
    fetch = FakeFetcher()
    assert root_at(0, fetch) == EMPTY_ROOT
    p = build_consistency_proof(0, 0, fetch)
    assert (p.old_root, p.new_root, p.hashes) == (EMPTY_ROOT, EMPTY_ROOT, ())
    assert fetch.calls == []


# --- CompactRange ---------------------------------------------------------------------------


@PROPERTY
@given(st.lists(st.binary(max_size=12), max_size=MAX_SIZE))
def test_compact_range_matches_reference(leaves: list[bytes]) -> None:
    tree = CompactRange()
    seen: dict[NodeId, bytes] = {}
    for i, leaf in enumerate(leaves):
        created = tree.append(leaf_hash(leaf))
        assert created[0] == (NodeId(0, i), leaf_hash(leaf))
        assert [node.level for node, _ in created] == list(range(len(created)))
        for node, h in created:
            assert node.end == i + 1
            assert h == ref_mth(leaves[node.begin : node.end])
            seen[node] = h
    assert tree.size == len(leaves)
    assert tree.root() == ref_mth(leaves)
    border = tree.nodes()
    assert [node for node, _ in border] == range_nodes(0, len(leaves))
    assert all(seen[node] == h for node, h in border)
    # Every perfect subtree inside the tree was reported exactly once.
    assert len(seen) == sum(len(leaves) >> level for level in range(len(leaves).bit_length()))


@PROPERTY
@given(st.integers(0, MAX_SIZE), st.integers(0, 20))
def test_compact_range_round_trips(size: int, more: int) -> None:
    tree = CompactRange()
    for leaf in prop_leaves()[:size]:
        tree.append(leaf_hash(leaf))
    rebuilt = CompactRange(tree.size, [h for _, h in tree.nodes()])
    copied = tree.copy()
    assert rebuilt.size == copied.size == size
    assert rebuilt.nodes() == copied.nodes() == tree.nodes()
    assert rebuilt.root() == tree.root() == prop_root(size)
    extra = [leaf_hash(b"more %d" % i) for i in range(more)]
    for h in extra:
        assert rebuilt.append(h) == copied.append(h)
    assert rebuilt.root() == copied.root()
    assert tree.size == size  # the copy grew on its own


def test_compact_range_rejects_bad_state() -> None:
    h = b"\x01" * 32
    bad: list[tuple[int, list[bytes]]] = [
        (-1, []),
        (0, [h]),
        (1, []),
        (3, [h]),  # size 3 has two border nodes
        (4, [h, h]),
        (2, [h[:-1]]),
    ]
    for size, hashes in bad:
        with pytest.raises(ValueError, match=r"size|bytes|border"):
            CompactRange(size, hashes)
    tree = CompactRange()
    with pytest.raises(ValueError, match="32 bytes"):
        tree.append(b"short")
    assert tree.size == 0
    assert tree.root() == EMPTY_ROOT
    assert tree.nodes() == []
    assert "size=0" in repr(tree)


@PROPERTY
@given(size_and_index())
def test_range_nodes_fold_to_subtree_hashes(case: tuple[int, int]) -> None:
    size, index = case
    leaves = prop_leaves()
    store = prop_store()
    for begin, end in [(0, size), *inclusion_ranges(index, size)]:
        nodes = range_nodes(begin, end)
        assert [n.level for n in nodes] == sorted((n.level for n in nodes), reverse=True)
        assert nodes[0].begin == begin
        assert nodes[-1].end == end
        assert fold_range([store[n] for n in nodes]) == ref_mth(leaves[begin:end])


# --- JSON strictness ------------------------------------------------------------------------

GOOD_INCLUSION: dict[str, Any] = VECTORS["inclusion"][-1]
GOOD_CONSISTENCY: dict[str, Any] = VECTORS["consistency"][-2]
H32 = base64.b64encode(b"\x11" * 32).decode()
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# Same bytes as H32, but with one of the two unused trailing bits set.
H32_NONCANONICAL = H32[:-2] + _B64[_B64.index(H32[-2]) | 1] + "="


def _with(base: dict[str, Any], **changes: object) -> dict[str, Any]:
    out = dict(base)
    out.update(changes)
    return out


def _without(base: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in base.items() if k != key}


MALFORMED_INCLUSION: list[tuple[str, object]] = [
    ("list", [GOOD_INCLUSION]),
    ("null", None),
    ("string", json.dumps(GOOD_INCLUSION)),
    ("missing index", _without(GOOD_INCLUSION, "index")),
    ("missing hashes", _without(GOOD_INCLUSION, "hashes")),
    ("extra key", _with(GOOD_INCLUSION, extra=1)),
    ("index bool", _with(GOOD_INCLUSION, index=True)),
    ("index float", _with(GOOD_INCLUSION, index=5.0)),
    ("index string", _with(GOOD_INCLUSION, index="5")),
    ("index negative", _with(GOOD_INCLUSION, index=-1)),
    ("tree_size negative", _with(GOOD_INCLUSION, tree_size=-70)),
    ("tree_size null", _with(GOOD_INCLUSION, tree_size=None)),
    ("leaf_hash bytes", _with(GOOD_INCLUSION, leaf_hash=b"\x11" * 32)),
    ("leaf_hash invalid char", _with(GOOD_INCLUSION, leaf_hash="*" + H32[1:])),
    ("leaf_hash urlsafe", _with(GOOD_INCLUSION, leaf_hash="-_" + H32[2:])),
    ("leaf_hash no padding", _with(GOOD_INCLUSION, leaf_hash=H32.rstrip("="))),
    ("leaf_hash newline", _with(GOOD_INCLUSION, leaf_hash=H32[:20] + "\n" + H32[20:])),
    ("leaf_hash non-ascii", _with(GOOD_INCLUSION, leaf_hash="é" + H32[1:])),
    ("leaf_hash non-canonical", _with(GOOD_INCLUSION, leaf_hash=H32_NONCANONICAL)),
    ("root 31 bytes", _with(GOOD_INCLUSION, root=base64.b64encode(b"\x00" * 31).decode())),
    ("root 33 bytes", _with(GOOD_INCLUSION, root=base64.b64encode(b"\x00" * 33).decode())),
    ("root empty", _with(GOOD_INCLUSION, root="")),
    ("hashes string", _with(GOOD_INCLUSION, hashes=H32)),
    ("hashes dict", _with(GOOD_INCLUSION, hashes={"0": H32})),
    ("hashes item int", _with(GOOD_INCLUSION, hashes=[H32, 7])),
    ("hashes item short", _with(GOOD_INCLUSION, hashes=[H32, "AAAA"])),
]

MALFORMED_CONSISTENCY: list[tuple[str, object]] = [
    ("inclusion shape", GOOD_INCLUSION),
    ("missing old_root", _without(GOOD_CONSISTENCY, "old_root")),
    ("extra key", _with(GOOD_CONSISTENCY, index=0)),
    ("old_size bool", _with(GOOD_CONSISTENCY, old_size=False)),
    ("new_size negative", _with(GOOD_CONSISTENCY, new_size=-1)),
    ("new_size float", _with(GOOD_CONSISTENCY, new_size=70.0)),
    ("old_root bad base64", _with(GOOD_CONSISTENCY, old_root="not base64!")),
    ("new_root 16 bytes", _with(GOOD_CONSISTENCY, new_root=base64.b64encode(b"x" * 16).decode())),
    ("hashes null", _with(GOOD_CONSISTENCY, hashes=None)),
    ("hashes item null", _with(GOOD_CONSISTENCY, hashes=[None])),
]


@pytest.mark.parametrize(
    ("case", "obj"), MALFORMED_INCLUSION, ids=[c for c, _ in MALFORMED_INCLUSION]
)
def test_inclusion_from_json_rejects(case: str, obj: object) -> None:
    with pytest.raises(MalformedProofError):
        InclusionProof.from_json(obj)


@pytest.mark.parametrize(
    ("case", "obj"), MALFORMED_CONSISTENCY, ids=[c for c, _ in MALFORMED_CONSISTENCY]
)
def test_consistency_from_json_rejects(case: str, obj: object) -> None:
    with pytest.raises(MalformedProofError):
        ConsistencyProof.from_json(obj)


def test_from_json_accepts_well_formed_but_unverifiable() -> None:
    # Parsing checks form only; whether the proof holds is verify()'s job.
    parsed = InclusionProof.from_json(_with(GOOD_INCLUSION, index=GOOD_INCLUSION["index"] + 1))
    with pytest.raises(InclusionProofError):
        parsed.verify()
    parsed_c = ConsistencyProof.from_json(_with(GOOD_CONSISTENCY, hashes=[]))
    with pytest.raises(ConsistencyProofError):
        parsed_c.verify()
    empty_b64 = base64.b64encode(EMPTY_ROOT).decode()
    empty = ConsistencyProof.from_json(
        {"old_size": 0, "new_size": 0, "old_root": empty_b64, "new_root": empty_b64, "hashes": []}
    )
    empty.verify()


@settings(max_examples=200, deadline=None)
@given(size=st.integers(min_value=1, max_value=300), data=st.data())
def test_inclusion_proofs_in_memory_equal_the_built_ones(size: int, data: st.DataObject) -> None:
    first = data.draw(st.integers(min_value=0, max_value=size - 1))
    tree = CompactRange()
    everything: dict[NodeId, bytes] = {}
    for i in range(first):
        everything.update(tree.append(leaf_hash(b"leaf %d" % i)))
    # What the sequencer holds for a batch [first, size): the old border plus every new node.
    known = dict(tree.nodes())
    for i in range(first, size):
        created = tree.append(leaf_hash(b"leaf %d" % i))
        known.update(created)
        everything.update(created)
    indices = list(range(first, size))
    fast = inclusion_proofs(indices, size, known)
    for index, proof in zip(indices, fast, strict=True):
        assert proof == build_inclusion_proof(index, size, lambda _ids: everything)
        proof.verify()
    with pytest.raises(OutOfRangeError):
        inclusion_proofs([size], size, known)
