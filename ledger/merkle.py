"""RFC 9162 §2.1 Merkle trees: hashing, proof building and proof verification.

Pure computation, no I/O.  Storage is reached through a ``NodeFetcher``: proof
builders first work out every perfect subtree (``NodeId``) they need, ask the
fetcher for all of them in a single call, and then combine the hashes.  Any
hash the RFC defines over a leaf range ``[b, e)`` is the right fold of the
perfect subtrees ``range_nodes(b, e)``, so a store that keeps the hash of every
complete perfect subtree (which ``CompactRange.append`` reports as they are
created) can serve any root or proof in O(log n) lookups.

Verification follows the numbered steps of RFC 9162 §2.1.3.2 and §2.1.4.2 and
raises on failure; it never returns a boolean, so a forgotten check cannot
silently pass.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledger.errors import (
    ConsistencyProofError,
    InclusionProofError,
    MalformedProofError,
    OutOfRangeError,
    VerificationError,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "ConsistencyProof",
    "InclusionProof",
    "NodeFetcher",
    "NodeId",
    "build_consistency_proof",
    "build_inclusion_proof",
    "consistency_ranges",
    "fold_range",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "nodes_needed",
    "range_nodes",
    "root_at",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32

# RFC 9162 §2.1.1: MTH({}) = HASH(), the hash of the empty string.
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()

# Domain-separation prefixes (RFC 9162 §2.1.1) keep a leaf from ever hashing
# like an interior node, which is what gives second-preimage resistance.
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(leaf: bytes) -> bytes:
    """MTH of a one-leaf tree: SHA-256(0x00 || leaf)."""
    return hashlib.sha256(_LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


@dataclass(frozen=True, order=True, slots=True)
class NodeId:
    """Perfect subtree covering leaves [index * 2**level, (index + 1) * 2**level)."""

    level: int
    index: int

    def __post_init__(self) -> None:
        if self.level < 0 or self.index < 0:
            raise ValueError(f"NodeId needs level >= 0 and index >= 0, got {self}")

    @property
    def begin(self) -> int:
        """First leaf covered."""
        return self.index << self.level

    @property
    def end(self) -> int:
        """One past the last leaf covered."""
        return (self.index + 1) << self.level


NodeFetcher = Callable[[Collection[NodeId]], Mapping[NodeId, bytes]]
"""Returns the hash of every requested perfect subtree; NodeId(0, i) is leaf_hash of leaf i.

Proof builders call it at most once per proof (not at all when nothing is
needed, as for the empty tree), with every NodeId they need, each once, sorted.
It must answer every id or raise (a missing id surfaces as KeyError).
"""


def _largest_power_of_two_below(n: int) -> int:
    """The RFC's k: the largest power of two strictly smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def range_nodes(begin: int, end: int) -> list[NodeId]:
    """The perfect subtrees, left to right and largest first, whose right fold is the RFC 9162
    hash of leaves [begin, end). Valid for the ranges that occur in RFC 9162 trees and proofs
    (begin aligned so that the largest-power-of-two split starts at begin). Empty list for an
    empty range."""
    if begin < 0 or end < begin:
        raise ValueError(f"invalid leaf range [{begin}, {end})")
    nodes: list[NodeId] = []
    # MTH(D[b:e]) = HASH(0x01 || MTH(D[b:b+k]) || MTH(D[b+k:e])): peel off the
    # perfect left part of size k and carry on with the remainder on the right.
    while begin < end:
        n = end - begin
        size = n if _is_power_of_two(n) else _largest_power_of_two_below(n)
        if begin % size:
            # An unaligned range is not a subtree of any RFC 9162 tree; folding
            # its pieces would give a hash nobody can check, so refuse loudly.
            raise ValueError(f"leaf range [{begin}, {end}) is not an RFC 9162 subtree range")
        level = size.bit_length() - 1
        nodes.append(NodeId(level, begin >> level))
        begin += size
    return nodes


def fold_range(hashes: Sequence[bytes]) -> bytes:
    """Right fold: node_hash(h0, node_hash(h1, ... node_hash(h_{k-2}, h_{k-1}))).
    EMPTY_ROOT for no hashes."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges [b, e) whose hashes form RFC 9162 PATH(index, D[0:size]), in proof
    order (bottom-up)."""
    if not 0 <= index < size:
        raise OutOfRangeError(f"leaf index {index} is not in a tree of size {size}")
    # RFC 9162 §2.1.3.1, walked from the root down: at each split keep the
    # sibling of the half holding the leaf.  The RFC lists them bottom-up.
    siblings: list[tuple[int, int]] = []
    begin, end = 0, size
    while end - begin > 1:
        mid = begin + _largest_power_of_two_below(end - begin)
        if index < mid:
            siblings.append((mid, end))
            end = mid
        else:
            siblings.append((begin, mid))
            begin = mid
    siblings.reverse()
    return siblings


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Ranges forming RFC 9162 PROOF(old_size, D[0:new_size]) in proof order; [] when
    old_size == new_size or old_size == 0."""
    if not 0 <= old_size <= new_size:
        raise OutOfRangeError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    # RFC 9162 §2.1.4.1 SUBPROOF(m, D[begin:end], b), unrolled.  Each level
    # appends a sibling after the sub-proof, so siblings come out reversed.
    siblings: list[tuple[int, int]] = []
    begin, end, m = 0, new_size, old_size
    whole_old_tree = True  # the RFC's flag b: is this subtree the entire old tree?
    while m != end - begin:
        k = _largest_power_of_two_below(end - begin)
        if m <= k:
            siblings.append((begin + k, end))
            end = begin + k
        else:
            siblings.append((begin, begin + k))
            begin += k
            m -= k
            whole_old_tree = False
    # SUBPROOF(m, D[m], false) = {MTH(D[m])}; with b true the verifier already
    # holds that hash as the old root, so the RFC leaves it out.
    head = [] if whole_old_tree else [(begin, end)]
    siblings.reverse()
    return head + siblings


def nodes_needed(ranges: Iterable[tuple[int, int]]) -> set[NodeId]:
    """Every perfect subtree needed to hash the given leaf ranges."""
    needed: set[NodeId] = set()
    for begin, end in ranges:
        needed.update(range_nodes(begin, end))
    return needed


def _fetch_all(fetch: NodeFetcher, needed: Iterable[NodeId]) -> Mapping[NodeId, bytes]:
    """One fetch call for every needed node; checks the answer is complete and well formed."""
    ids = sorted(set(needed))
    if not ids:
        return {}
    got = fetch(ids)
    for node in ids:
        h = got[node]  # KeyError names the node the store failed to return
        if len(h) != HASH_SIZE:
            raise ValueError(f"fetcher returned a {len(h)}-byte hash for {node}")
    return got


def _hash_range(got: Mapping[NodeId, bytes], begin: int, end: int) -> bytes:
    return fold_range([got[node] for node in range_nodes(begin, end)])


def root_at(size: int, fetch: NodeFetcher) -> bytes:
    """The RFC 9162 root of the first ``size`` leaves (EMPTY_ROOT for 0), in one fetch call."""
    if size < 0:
        raise OutOfRangeError(f"negative tree size {size}")
    got = _fetch_all(fetch, range_nodes(0, size))
    return _hash_range(got, 0, size)


# --- proofs ---------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _parse_fields(obj: object, keys: tuple[str, ...], kind: str) -> dict[str, object]:
    if not isinstance(obj, dict):
        raise MalformedProofError(f"{kind} must be a JSON object, got {type(obj).__name__}")
    if set(obj) != set(keys):
        missing = sorted(set(keys) - set(obj), key=str)
        extra = sorted(set(obj) - set(keys), key=str)
        raise MalformedProofError(f"{kind}: missing keys {missing}, unexpected keys {extra}")
    return {key: obj[key] for key in keys}


def _parse_size(value: object, name: str) -> int:
    # bool is a subclass of int; JSON true is not a tree size.
    if type(value) is not int:
        raise MalformedProofError(f"{name} must be an integer, got {type(value).__name__}")
    if value < 0:
        raise MalformedProofError(f"{name} must not be negative, got {value}")
    return value


def _parse_hash(value: object, name: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedProofError(f"{name} must be a base64 string, got {type(value).__name__}")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise MalformedProofError(f"{name} is not valid base64: {exc}") from exc
    # Accept only the canonical encoding, so one proof has exactly one JSON form.
    if _b64(raw) != value:
        raise MalformedProofError(f"{name} is not canonical padded standard base64")
    if len(raw) != HASH_SIZE:
        raise MalformedProofError(f"{name} must be {HASH_SIZE} bytes, got {len(raw)}")
    return raw


def _parse_hash_list(value: object, name: str) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise MalformedProofError(f"{name} must be a list, got {type(value).__name__}")
    return tuple(_parse_hash(item, f"{name}[{i}]") for i, item in enumerate(value))


_INCLUSION_KEYS = ("index", "tree_size", "leaf_hash", "root", "hashes")
_CONSISTENCY_KEYS = ("old_size", "new_size", "old_root", "new_root", "hashes")


@dataclass(frozen=True)
class InclusionProof:
    """RFC 9162 inclusion proof of the leaf hash at ``index`` in the tree of ``tree_size``."""

    index: int
    tree_size: int
    leaf_hash: bytes
    root: bytes
    hashes: tuple[bytes, ...]

    def verify(self) -> None:
        """Raise InclusionProofError unless the proof links leaf_hash to root."""
        verify_inclusion(self.leaf_hash, self.index, self.tree_size, self.hashes, self.root)

    def is_for(self, index: int, tree_size: int, root: bytes) -> bool:
        """Whether the proof is about ``index`` in the tree of ``tree_size`` with ``root``
        (what a caller checks before ``verify``, which only checks the proof's own claim)."""
        return self.index == index and self.tree_size == tree_size and self.root == root

    def to_json(self) -> dict[str, Any]:
        """The DESIGN §3.3 JSON form (base64 hashes, fixed key order)."""
        return {
            "index": self.index,
            "tree_size": self.tree_size,
            "leaf_hash": _b64(self.leaf_hash),
            "root": _b64(self.root),
            "hashes": [_b64(h) for h in self.hashes],
        }

    @classmethod
    def from_json(cls, obj: object) -> InclusionProof:
        """Parse the JSON form strictly; MalformedProofError on anything unexpected."""
        fields = _parse_fields(obj, _INCLUSION_KEYS, "inclusion proof")
        return cls(
            index=_parse_size(fields["index"], "index"),
            tree_size=_parse_size(fields["tree_size"], "tree_size"),
            leaf_hash=_parse_hash(fields["leaf_hash"], "leaf_hash"),
            root=_parse_hash(fields["root"], "root"),
            hashes=_parse_hash_list(fields["hashes"], "hashes"),
        )


@dataclass(frozen=True)
class ConsistencyProof:
    """RFC 9162 proof that the tree of ``new_size`` extends the tree of ``old_size``."""

    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    hashes: tuple[bytes, ...]

    def verify(self) -> None:
        """Raise ConsistencyProofError unless new_root's tree extends old_root's."""
        verify_consistency(self.old_size, self.new_size, self.old_root, self.new_root, self.hashes)

    def to_json(self) -> dict[str, Any]:
        """The DESIGN §3.3 JSON form (base64 hashes, fixed key order)."""
        return {
            "old_size": self.old_size,
            "new_size": self.new_size,
            "old_root": _b64(self.old_root),
            "new_root": _b64(self.new_root),
            "hashes": [_b64(h) for h in self.hashes],
        }

    @classmethod
    def from_json(cls, obj: object) -> ConsistencyProof:
        """Parse the JSON form strictly; MalformedProofError on anything unexpected."""
        fields = _parse_fields(obj, _CONSISTENCY_KEYS, "consistency proof")
        return cls(
            old_size=_parse_size(fields["old_size"], "old_size"),
            new_size=_parse_size(fields["new_size"], "new_size"),
            old_root=_parse_hash(fields["old_root"], "old_root"),
            new_root=_parse_hash(fields["new_root"], "new_root"),
            hashes=_parse_hash_list(fields["hashes"], "hashes"),
        )


def build_inclusion_proof(index: int, tree_size: int, fetch: NodeFetcher) -> InclusionProof:
    """Build PATH(index, D[0:tree_size]) with its leaf hash and root, in one fetch call."""
    if not 0 <= index < tree_size:
        raise OutOfRangeError(f"leaf index {index} is not in a tree of size {tree_size}")
    ranges = inclusion_ranges(index, tree_size)
    leaf = NodeId(0, index)
    got = _fetch_all(fetch, {leaf} | nodes_needed(ranges) | set(range_nodes(0, tree_size)))
    return InclusionProof(
        index=index,
        tree_size=tree_size,
        leaf_hash=got[leaf],
        root=_hash_range(got, 0, tree_size),
        hashes=tuple(_hash_range(got, b, e) for b, e in ranges),
    )


def build_consistency_proof(old_size: int, new_size: int, fetch: NodeFetcher) -> ConsistencyProof:
    """Build PROOF(old_size, D[0:new_size]) with both roots, in one fetch call."""
    if not 0 <= old_size <= new_size:
        raise OutOfRangeError(f"no consistency proof from size {old_size} to size {new_size}")
    ranges = consistency_ranges(old_size, new_size)
    roots = set(range_nodes(0, old_size)) | set(range_nodes(0, new_size))
    got = _fetch_all(fetch, nodes_needed(ranges) | roots)
    return ConsistencyProof(
        old_size=old_size,
        new_size=new_size,
        old_root=_hash_range(got, 0, old_size),
        new_root=_hash_range(got, 0, new_size),
        hashes=tuple(_hash_range(got, b, e) for b, e in ranges),
    )


# --- verification -----------------------------------------------------------------


def inclusion_proofs(
    indices: Sequence[int], tree_size: int, nodes: Mapping[NodeId, bytes]
) -> list[InclusionProof]:
    """Inclusion proofs of many leaves against one tree size, from hashes held in memory.

    The sequencer uses this for a batch's receipts. ``nodes`` must hold each
    leaf's hash (level 0), every perfect sibling on the paths, and the border
    range_nodes(0, tree_size). Gives the same proofs as build_inclusion_proof,
    but walks levels directly: the RFC 9162 tree pairs nodes left to right at
    each level and promotes an unpaired last node, so leaf i's sibling at
    level L is node (L, k ^ 1) for k = i >> L, except on the right edge, where
    it is the one ragged subtree [((n >> L) << L), n) shared by every proof.
    """
    for index in indices:
        if not 0 <= index < tree_size:
            raise OutOfRangeError(f"leaf index {index} is not in a tree of size {tree_size}")
    by_position = {(node.level, node.index): digest for node, digest in nodes.items()}
    border = range_nodes(0, tree_size)
    # suffix[j] is the right fold of border[j:], each computed once; suffix[0] is the
    # root. Where a level's last node is ragged, it is the subtree [start, n) with
    # start = (n >> level) << level: the fold of the border after its first
    # popcount(n >> level) nodes.
    suffix: list[bytes] = []
    for node in reversed(border):
        digest = by_position[(node.level, node.index)]
        suffix.append(node_hash(digest, suffix[-1]) if suffix else digest)
    suffix.reverse()
    root = suffix[0] if suffix else EMPTY_ROOT
    ragged = {
        level: suffix[(tree_size >> level).bit_count()]
        for level in range(tree_size.bit_length())
        if (tree_size >> level) << level < tree_size
    }
    proofs: list[InclusionProof] = []
    for index in indices:
        path: list[bytes] = []
        level, k = 0, index
        width = tree_size  # nodes at this level, counting a ragged last one
        while width > 1:
            sibling = k ^ 1
            if sibling < width:  # else k is a lone last node, promoted a level
                if sibling == width - 1 and level in ragged:
                    path.append(ragged[level])
                else:
                    path.append(by_position[(level, sibling)])
            level += 1
            k >>= 1
            width = (width + 1) >> 1
        proofs.append(
            InclusionProof(
                index=index,
                tree_size=tree_size,
                leaf_hash=by_position[(0, index)],
                root=root,
                hashes=tuple(path),
            )
        )
    return proofs


def _check_hash(value: bytes, name: str, error: type[VerificationError]) -> None:
    if len(value) != HASH_SIZE:
        raise error(f"{name} must be {HASH_SIZE} bytes, got {len(value)}")


def _shift_while_even(fn: int, sn: int) -> tuple[int, int]:
    """Right-shift fn and sn equally until LSB(fn) is set or fn is 0."""
    while fn != 0 and not fn & 1:
        fn >>= 1
        sn >>= 1
    return fn, sn


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2: raise InclusionProofError unless ``proof`` takes leaf_hash to root.

    The tree size is bound only through ``root``: take both from one signed checkpoint.
    """
    _check_hash(leaf_hash, "leaf hash", InclusionProofError)
    _check_hash(root, "root", InclusionProofError)
    for i, p in enumerate(proof):
        _check_hash(p, f"proof hash {i}", InclusionProofError)

    # 1. leaf_index must be inside the tree.
    if not 0 <= index < tree_size:
        raise InclusionProofError(f"leaf index {index} is not in a tree of size {tree_size}")
    # 2. fn is the leaf's position, sn the last position, on the current level.
    fn, sn = index, tree_size - 1
    # 3. r starts as the leaf hash.
    r = leaf_hash
    # 4. Climb one level per proof hash.
    for p in proof:
        # 4a. Already at the root: the proof is too long.
        if sn == 0:
            raise InclusionProofError(
                f"inclusion proof has {len(proof)} hashes, more than the path for "
                f"index {index} in a tree of size {tree_size}"
            )
        # 4b. p is a left sibling when fn is a right child or the last node on
        # its level (whose right part was folded into it); else a right sibling.
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # Skip the levels where this node had no sibling at all.
            fn, sn = _shift_while_even(fn, sn)
        else:
            r = node_hash(r, p)
        # 4c. Up one level.
        fn >>= 1
        sn >>= 1
    # 5. The climb must end at the root, at the expected root hash.
    if sn != 0:
        raise InclusionProofError(
            f"inclusion proof has {len(proof)} hashes, too few for index {index} "
            f"in a tree of size {tree_size}"
        )
    if r != root:
        raise InclusionProofError(
            f"inclusion proof for index {index} in a tree of size {tree_size} "
            "does not lead to the expected root"
        )


def _verify_degenerate_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """The cases RFC 9162 §2.1.4.2 leaves out: it assumes 0 < first < second."""
    if not 0 <= old_size <= new_size:
        raise ConsistencyProofError(
            f"no tree of size {old_size} is a prefix of a tree of size {new_size}"
        )
    if proof:
        raise ConsistencyProofError(
            f"a proof from size {old_size} to size {new_size} must be empty, "
            f"got {len(proof)} hashes"
        )
    # Every tree extends the empty tree, but the empty tree has only one root.
    if old_size == 0 and old_root != EMPTY_ROOT:
        raise ConsistencyProofError("old root is not the root of the empty tree")
    if old_size == new_size and old_root != new_root:
        raise ConsistencyProofError(f"two different roots for tree size {old_size}")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: raise ConsistencyProofError unless new_root extends old_root."""
    _check_hash(old_root, "old root", ConsistencyProofError)
    _check_hash(new_root, "new root", ConsistencyProofError)
    for i, c in enumerate(proof):
        _check_hash(c, f"proof hash {i}", ConsistencyProofError)
    if not 0 < old_size < new_size:
        _verify_degenerate_consistency(old_size, new_size, old_root, new_root, proof)
        return

    # 1. 0 < first < second needs at least one hash.
    if not proof:
        raise ConsistencyProofError(
            f"empty consistency proof from size {old_size} to size {new_size}"
        )
    # 2. A perfect old tree is itself a node of the new tree; the RFC leaves
    # its hash out of the proof, so put the old root back in front.
    path = [old_root, *proof] if _is_power_of_two(old_size) else list(proof)
    # 3. fn / sn: last position of the old / new tree on the current level.
    fn, sn = old_size - 1, new_size - 1
    # 4. Skip the levels where the old tree's last node is a right child: the
    # first path node already covers those left siblings.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. The first path node is the old tree's last node: both roots start there.
    fr = sr = path[0]
    # 6. Fold in the rest, one level at a time.
    for c in path[1:]:
        # 6a. Already at the new root: the proof is too long.
        if sn == 0:
            raise ConsistencyProofError(
                f"consistency proof from size {old_size} to size {new_size} is too long"
            )
        # 6b. A left sibling belongs to both trees; a right sibling only to the new.
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            fn, sn = _shift_while_even(fn, sn)
        else:
            sr = node_hash(sr, c)
        # 6c. Up one level.
        fn >>= 1
        sn >>= 1
    # 7. Both roots must come out right, and the climb must end at the new root.
    if sn != 0:
        raise ConsistencyProofError(
            f"consistency proof from size {old_size} to size {new_size} is too short"
        )
    if fr != old_root:
        raise ConsistencyProofError(
            f"consistency proof does not reproduce the old root (size {old_size})"
        )
    if sr != new_root:
        raise ConsistencyProofError(
            f"consistency proof does not reproduce the new root (size {new_size})"
        )


# --- the growing tree ------------------------------------------------------------


class CompactRange:
    """The right border of a growing tree: for size n, the perfect subtrees range_nodes(0, n)
    with their hashes. O(log n) memory."""

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0:
            raise ValueError(f"negative tree size {size}")
        expected = len(range_nodes(0, size))
        if len(hashes) != expected:
            raise ValueError(
                f"a tree of size {size} has {expected} border nodes, got {len(hashes)} hashes"
            )
        for i, h in enumerate(hashes):
            if len(h) != HASH_SIZE:
                raise ValueError(f"border hash {i} must be {HASH_SIZE} bytes, got {len(h)}")
        self._size = size
        self._hashes = [bytes(h) for h in hashes]

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def nodes(self) -> list[tuple[NodeId, bytes]]:
        """The current border, left to right (largest subtree first)."""
        return list(zip(range_nodes(0, self._size), self._hashes, strict=True))

    def append(self, leaf_hash: bytes) -> list[tuple[NodeId, bytes]]:
        """Add one leaf; return every node completed by it, leaf first, by increasing level."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf_hash)}")
        node = NodeId(0, self._size)
        h = bytes(leaf_hash)
        created = [(node, h)]
        # While the new node is a right child, its left sibling is the last
        # border node: merge them.  The trailing 1-bits of the old size count
        # the merges, which averages to one per append.
        while node.index & 1:
            h = node_hash(self._hashes.pop(), h)
            node = NodeId(node.level + 1, node.index >> 1)
            created.append((node, h))
        self._hashes.append(h)
        self._size += 1
        return created

    def root(self) -> bytes:
        """The RFC 9162 root of the leaves so far (EMPTY_ROOT when empty)."""
        return fold_range(self._hashes)

    def copy(self) -> CompactRange:
        """An independent copy that can grow separately."""
        return CompactRange(self._size, self._hashes)
