"""Building a lot's provenance bundle (DESIGN.md 3.7) from a node's storage.

Storage at the edge, like ``ledger.custody_rules``: the queries are here, the
format and its verification are the pure ``ledger.bundle``. Every read runs in
one ``LogStore.snapshot()`` transaction against the latest signed checkpoint,
so the leaves, the derived indexes they are chosen by and the checkpoint they
are proven against all describe one state of the log.

Which leaves a bundle of lot L holds
------------------------------------
Every leaf below up to the checkpoint's size, each once, ascending:

1. **Lot histories.** Every leaf touching ``lot:<id>`` (DESIGN 3.6) for L and for
   every lot upstream of it (``ledger.domain.provenance.upstream``): creation,
   dispatches, receipts, assays, corrections, and every transformation that
   consumed the lot, including ones whose outputs went elsewhere. Whole chains,
   so ``verify_bundle`` step 5 holds; a correction of any of these events links
   the same lot and is therefore in too.
2. **Certifications.** Every certification leaf of each facility in L's upstream
   graph, whatever its status, and the correction (void or supersede) of any of
   them; a superseding certification is itself one of the facility's.
3. **Facilities.** The registration leaf of every facility in the upstream graph
   and of every facility an included leaf links (``facility:``, such as the
   warehouses named by dispatches and receipts).
4. **Governance**, what a verifier needs to know who could sign: genesis (index
   0); every change of the consortium's administrators or threshold (the
   ``consortium_versions`` history); and for every partner in the upstream
   graph, every partner an included leaf links (``partner:``: recorders,
   senders, addressees, owners) and every partner owning a key that signed an
   included leaf: its admission, its role changes (``partner_versions``) and
   the addition and revocation leaves of all its keys. Governance leaves are
   themselves signed by administrators, so rules 3 and 4 are applied again to
   what they add until nothing new comes in.

Left out: the rest of a facility's or a partner's history (every extraction at
a mine, every event a partner recorded), and the histories of lots that are not
upstream of L even where an included leaf names them (the other inputs of a
transformation that consumed part of an upstream lot for something else).

Then one batched read of every tree node the inclusion proofs need (chunked only
to stay below the database's limit on bound parameters) and
``merkle.inclusion_proofs`` against the checkpoint's size. Memory is
proportional to the bundle: nothing outside it is read into memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from sqlalchemy import Connection, select

from ledger import merkle
from ledger.bundle import BundleEntry, ProvenanceBundle
from ledger.domain.provenance import UpstreamGraph, upstream
from ledger.dsse import keyid_for
from ledger.errors import (
    LogIntegrityError,
    LogNotInitialisedError,
    MalformedLeafError,
    NotFoundError,
)
from ledger.leaf import decode_leaf
from ledger.merkle import NodeId
from ledger.records import StoredCheckpoint
from ledger.storage.domain_schema import (
    consortium_versions,
    events,
    facilities,
    partner_keys,
    partner_versions,
)
from ledger.storage.domain_store import IN_CHUNK, DomainStore, DomainView
from ledger.storage.log_store import LogStore
from ledger.storage.schema import leaves

__all__ = ["build_bundle"]

SUBJECT_PAGE = 1000
"""Leaf indices per ``events_for_subject`` query while reading a lot's history."""

_PARTNER_PREFIX = "partner:"
_FACILITY_PREFIX = "facility:"

_T = TypeVar("_T")


def build_bundle(store: LogStore, lot_id: str, conn: Connection | None = None) -> ProvenanceBundle:
    """The provenance bundle of ``lot_id`` against the latest checkpoint, read in one
    snapshot (``conn``'s, when given: what else the caller reads there agrees with it).

    ``NotFoundError`` for a lot the log does not know (or that no signed
    checkpoint covers yet); ``LogIntegrityError`` if storage contradicts itself.
    """
    if conn is None:
        with store.snapshot() as snapshot:
            return build_bundle(store, lot_id, snapshot)
    checkpoint = store.latest_checkpoint(conn)
    if checkpoint is None:
        raise LogNotInitialisedError("no log in this database: run `custody init` first")
    view = DomainStore(store.engine).view(conn)
    graph = upstream(view, lot_id)  # NotFoundError for an unknown lot
    traced = next(lot for lot in graph.lots if lot.lot_id == lot_id)
    if traced.created_index >= checkpoint.tree_size:
        raise NotFoundError(f"lot {lot_id!r} is not yet covered by a signed checkpoint")
    selection = _Selection(conn, checkpoint.tree_size)
    _select_graph(selection, view, graph)
    selection.complete_governance()
    entries = _entries(store, conn, selection.leaves, checkpoint)
    return ProvenanceBundle(lot_id=lot_id, checkpoint=checkpoint.note, entries=entries)


def _select_graph(selection: _Selection, view: DomainView, graph: UpstreamGraph) -> None:
    """Rules 1 to 4 seeded from the upstream graph; ``complete_governance`` closes them."""
    for lot in graph.lots:
        selection.add(_subject_indices(view, f"lot:{lot.lot_id}", selection.size))
    certification_ids = [certification.event_id for certification in graph.certifications]
    selection.add(certification.index for certification in graph.certifications)
    selection.add(_correction_indices(selection.conn, certification_ids))
    selection.add(facility.registered_index for facility in graph.facilities)
    selection.add(_consortium_change_indices(selection.conn))
    selection.want_partners(partner.partner_id for partner in graph.partners)
    selection.want_facilities(facility.facility_id for facility in graph.facilities)


class _Selection:
    """The chosen leaf indices and, once read, their bytes; grows until closed."""

    def __init__(self, conn: Connection, size: int) -> None:
        self.conn, self.size = conn, size
        self.indices: set[int] = {0} if size else set()
        self.leaves: dict[int, bytes] = {}
        self._partners_wanted: set[str] = set()
        self._partners_done: set[str] = set()
        self._facilities_wanted: set[str] = set()
        self._facilities_done: set[str] = set()
        self._keyids_done: set[str] = set()

    def add(self, indices: Iterable[int]) -> None:
        # The snapshot's indexes never run ahead of its checkpoint; the bound is a guard.
        self.indices.update(index for index in indices if 0 <= index < self.size)

    def want_partners(self, partner_ids: Iterable[str]) -> None:
        self._partners_wanted.update(partner_ids)

    def want_facilities(self, facility_ids: Iterable[str]) -> None:
        self._facilities_wanted.update(facility_ids)

    def complete_governance(self) -> None:
        """Read the chosen leaves; add the registry entries they depend on; repeat until
        a round adds nothing."""
        while True:
            fresh = sorted(self.indices.difference(self.leaves))
            self._read(fresh)
            partners = sorted(self._partners_wanted - self._partners_done)
            facility_ids = sorted(self._facilities_wanted - self._facilities_done)
            if not fresh and not partners and not facility_ids:
                return
            self._partners_done.update(partners)
            self._facilities_done.update(facility_ids)
            self.add(_partner_indices(self.conn, partners))
            self.add(_registration_indices(self.conn, facility_ids))

    def _read(self, indices: Sequence[int]) -> None:
        """Fetch and decode ``indices``; queue the partners, keys and facilities they name."""
        keyids: set[str] = set()
        for index, raw in _leaf_bytes(self.conn, indices):
            self.leaves[index] = raw
            try:
                leaf = decode_leaf(raw)
            except MalformedLeafError as exc:
                raise LogIntegrityError(f"leaf {index}: {exc}", index=index) from exc
            if leaf.index != index:
                raise LogIntegrityError(f"leaf at {index} says it is {leaf.index}", index=index)
            for link in leaf.subject_links:
                if link.subject.startswith(_PARTNER_PREFIX):
                    self._partners_wanted.add(link.subject.removeprefix(_PARTNER_PREFIX))
                elif link.subject.startswith(_FACILITY_PREFIX):
                    self._facilities_wanted.add(link.subject.removeprefix(_FACILITY_PREFIX))
            keyids.update(keyid_for(key) for key in leaf.signer_keys)
        keyids -= self._keyids_done
        self._keyids_done.update(keyids)
        self.want_partners(_key_owners(self.conn, sorted(keyids)))


# --- queries -------------------------------------------------------------------------------


def _chunks(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    """Slices small enough for one ``IN`` list on every backend."""
    for start in range(0, len(items), IN_CHUNK):
        yield items[start : start + IN_CHUNK]


def _int(value: object, what: str) -> int:
    # SQLite stores whatever it is given; a non-integer here was put there by hand.
    if type(value) is int:
        return value
    raise LogIntegrityError(f"{what} is stored as {type(value).__name__}, not an integer")


def _subject_indices(view: DomainView, subject: str, size: int) -> list[int]:
    """Every leaf below ``size`` touching ``subject``, ascending, a page per query."""
    found: list[int] = []
    after = -1
    while True:
        page = view.events_for_subject(subject, after=after, limit=SUBJECT_PAGE)
        found.extend(index for index in page if index < size)
        if len(page) < SUBJECT_PAGE or page[-1] >= size:
            return found
        after = page[-1]


def _correction_indices(conn: Connection, event_ids: Sequence[str]) -> list[int]:
    """The leaves of the corrections of ``event_ids`` (those that were corrected)."""
    corrections: list[str] = []
    for chunk in _chunks(event_ids):
        rows = conn.execute(
            select(events.c.corrected_by).where(
                events.c.event_id.in_(chunk), events.c.corrected_by.is_not(None)
            )
        )
        corrections.extend(str(corrected_by) for (corrected_by,) in rows)
    found: list[int] = []
    for chunk in _chunks(sorted(corrections)):
        rows = conn.execute(select(events.c.idx).where(events.c.event_id.in_(chunk)))
        found.extend(_int(index, "events.idx") for (index,) in rows)
    return found


def _consortium_change_indices(conn: Connection) -> list[int]:
    rows = conn.execute(select(consortium_versions.c.updated_index))
    return [_int(index, "consortium_versions.updated_index") for (index,) in rows]


def _partner_indices(conn: Connection, partner_ids: Sequence[str]) -> list[int]:
    """Admission and role changes of the partners, and the additions and revocations of
    all their keys."""
    found: list[int] = []
    for chunk in _chunks(partner_ids):
        versions = conn.execute(
            select(partner_versions.c.updated_index).where(partner_versions.c.partner_id.in_(chunk))
        )
        found.extend(_int(index, "partner_versions.updated_index") for (index,) in versions)
        keys = conn.execute(
            select(partner_keys.c.added_index, partner_keys.c.revoked_index).where(
                partner_keys.c.partner_id.in_(chunk)
            )
        )
        for added, revoked in keys:
            found.append(_int(added, "partner_keys.added_index"))
            if revoked is not None:
                found.append(_int(revoked, "partner_keys.revoked_index"))
    return found


def _key_owners(conn: Connection, keyids: Sequence[str]) -> set[str]:
    owners: set[str] = set()
    for chunk in _chunks(keyids):
        rows = conn.execute(
            select(partner_keys.c.partner_id).where(partner_keys.c.keyid.in_(chunk))
        )
        owners.update(str(partner_id) for (partner_id,) in rows)
    return owners


def _registration_indices(conn: Connection, facility_ids: Sequence[str]) -> list[int]:
    found: list[int] = []
    for chunk in _chunks(facility_ids):
        rows = conn.execute(
            select(facilities.c.registered_index).where(facilities.c.facility_id.in_(chunk))
        )
        found.extend(_int(index, "facilities.registered_index") for (index,) in rows)
    return found


def _leaf_bytes(conn: Connection, indices: Sequence[int]) -> Iterator[tuple[int, bytes]]:
    """The stored bytes of each of ``indices``; a missing one is a damaged log."""
    for chunk in _chunks(indices):
        rows = conn.execute(
            select(leaves.c.idx, leaves.c.leaf_bytes).where(leaves.c.idx.in_(chunk))
        ).all()
        found: dict[int, bytes] = {}
        for index, raw in rows:
            position = _int(index, "leaves.idx")
            if not isinstance(raw, bytes | bytearray | memoryview):
                raise LogIntegrityError(f"leaf {position} is not stored as bytes", index=position)
            found[position] = bytes(raw)
        for index in chunk:
            if index not in found:
                raise LogIntegrityError(f"leaf {index} is missing from storage", index=index)
            yield index, found[index]


# --- proofs --------------------------------------------------------------------------------


def _entries(
    store: LogStore,
    conn: Connection,
    leaf_bytes: dict[int, bytes],
    checkpoint: StoredCheckpoint,
) -> tuple[BundleEntry, ...]:
    """Every chosen leaf with its inclusion path against ``checkpoint``, from one batched
    read of the tree nodes all the paths need."""
    size = checkpoint.tree_size
    indices = sorted(leaf_bytes)
    if not indices:
        return ()
    needed: set[NodeId] = merkle.nodes_needed(
        leaf_range for index in indices for leaf_range in merkle.inclusion_ranges(index, size)
    )
    needed.update(NodeId(0, index) for index in indices)
    needed.update(merkle.range_nodes(0, size))  # the border: the root and the ragged edge
    nodes: dict[NodeId, bytes] = {}
    for chunk in _chunks(sorted(needed)):
        nodes.update(store.fetch_nodes(chunk, conn))
    proofs = merkle.inclusion_proofs(indices, size, nodes)
    if proofs[0].root != checkpoint.root_hash:
        raise LogIntegrityError(
            f"the stored tree of size {size} does not hash to its checkpoint's root",
            index=size - 1,
        )
    entries: list[BundleEntry] = []
    for proof in proofs:
        raw = leaf_bytes[proof.index]
        if proof.leaf_hash != merkle.leaf_hash(raw):
            raise LogIntegrityError(
                f"leaf {proof.index} does not hash to its stored leaf hash", index=proof.index
            )
        entries.append(BundleEntry(index=proof.index, leaf=raw, inclusion_path=proof.hashes))
    return tuple(entries)
