"""The ledger the domain tests drive: a log sequenced with the Custody rules,
with setup steps that must be admitted (``Ledger``). Its fixtures are in conftest.py."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

from custody.v1 import event_pb2
from ledger.admission import Submission
from ledger.domain.records import DispatchRecord, EventStatus, Lot
from ledger.leaf import decode_leaf
from ledger.receipts import Receipt
from ledger.sequencer import AppendOutcome, Sequencer
from ledger.storage import LogStore
from ledger.storage.domain_store import DomainStore, DomainView, StateDump
from tests.ledger.domain.builders import World

PROCESS = event_pb2.Process
CO = 300_000  # ppm of cobalt in an extracted lot (the World's default)


@dataclass
class Ledger:
    store: LogStore
    sequencer: Sequencer
    world: World
    preamble_ids: list[str] = field(default_factory=list)
    _lots: Iterator[int] = field(default_factory=itertools.count)
    _dumped: tuple[int, StateDump] | None = None

    @property
    def view(self) -> DomainView:
        return DomainStore(self.store.engine).view()

    def dump(self) -> StateDump:
        return self.view.dump()

    def dump_if_changed(self) -> StateDump:
        """The dump, read again only if the log grew since the last one read here:
        only an admitted entry changes the derived state."""
        size = self.store.size()
        if self._dumped is None or self._dumped[0] != size:
            self._dumped = (size, self.dump())
        return self._dumped[1]

    def submit(self, *entries: Submission) -> list[AppendOutcome]:
        return self.sequencer.append_batch(entries)

    def append(self, *entries: Submission) -> list[int]:
        """Append entries that must all be admitted (in one batch); their indices."""
        outcomes = self.submit(*entries)
        refused = [
            f"#{i}: {o.reason}: {o}" for i, o in enumerate(outcomes) if not isinstance(o, Receipt)
        ]
        assert not refused, f"setup entries refused: {refused}"
        return [o.index for o in outcomes if isinstance(o, Receipt)]

    def lot(self, lot_id: str) -> Lot:
        lot = self.view.lot(lot_id)
        assert lot is not None, lot_id
        return lot

    def dispatch_record(self, event_id: str) -> DispatchRecord:
        record = self.view.dispatch(event_id)
        assert record is not None, event_id
        return record

    def status(self, event_id: str) -> EventStatus:
        record = self.view.event(event_id)
        assert record is not None, event_id
        return record.status

    def links(self, index: int) -> dict[str, int | None]:
        leaf = decode_leaf(self.store.leaf(index).leaf_bytes)
        return {link.subject: link.prev_index for link in leaf.subject_links}

    # --- setup steps, each one batch of admitted entries -----------------------------

    def new_lot(self) -> str:
        """A lot id never used in this ledger."""
        return f"lot-{next(self._lots):04d}"

    def mined(self, lot: str | None = None, mass: int = 1000, **ppm: int) -> str:
        """Mine extracts a lot at mine-site (300,000 ppm Co unless told); its id."""
        lot = lot or self.new_lot()
        self.append(self.world.extract("mine", "mine-site", lot, mass, event_id=None, **ppm))
        return lot

    def extraction_of(self, lot: str) -> str:
        return self.lot(lot).created_event_id

    def shipped(self, lot: str, to: str = "trader", sender: str = "mine") -> str:
        """``sender`` dispatches the whole of ``lot`` to ``to``; the dispatch's event id."""
        event_id = self.world.next_id()
        mass = self.lot(lot).available_grams
        self.append(self.world.dispatch(sender, lot, to, mass, event_id=event_id))
        return event_id

    def received(self, dispatch_id: str, lot: str, by: str, mass: int | None = None) -> str:
        event_id = self.world.next_id()
        grams = self.lot(lot).available_grams if mass is None else mass
        self.append(self.world.receive(by, dispatch_id, lot, grams, event_id=event_id))
        return event_id

    def delivered(
        self, lot: str, to: str = "trader", sender: str = "mine", mass: int | None = None
    ) -> tuple[str, str]:
        """``sender`` ships ``lot`` to ``to``, who receives it (one batch); the
        (dispatch, receipt) ids."""
        dispatch_id, receipt_id = self.world.next_id(), self.world.next_id()
        sent = self.lot(lot).available_grams
        self.append(
            self.world.dispatch(sender, lot, to, sent, event_id=dispatch_id),
            self.world.receive(to, dispatch_id, lot, mass or sent, event_id=receipt_id),
        )
        return dispatch_id, receipt_id

    def at_refiner(self, lot: str | None = None, mass: int = 1000, **ppm: int) -> str:
        """A lot extracted by mine and delivered to refiner (one batch); its id."""
        lot = lot or self.new_lot()
        dispatch_id = self.world.next_id()
        self.append(
            self.world.extract("mine", "mine-site", lot, mass, event_id=None, **ppm),
            self.world.dispatch("mine", lot, "refiner", mass, event_id=dispatch_id),
            self.world.receive("refiner", dispatch_id, lot, mass),
        )
        return lot

    def refined(
        self, inputs: list[tuple[str, int]], outputs: list[tuple[str, int, dict[str, int]]]
    ) -> str:
        event_id = self.world.next_id()
        self.append(self.world.transform("refiner", "refinery", inputs, outputs, event_id=event_id))
        return event_id

    def concentrated(self, lot: str, grams: int) -> str:
        """Mine concentrates ``grams`` of its ``lot`` at mine-site, contained metal kept."""
        event_id = self.world.next_id()
        out = (self.new_lot(), grams // 2, {"Co": 2 * CO})
        self.append(
            self.world.transform(
                "mine",
                "mine-site",
                [(lot, grams)],
                [out],
                process=PROCESS.PROCESS_CONCENTRATION,
                event_id=event_id,
            )
        )
        return event_id

    def partner(self, partner_id: str, *roles: int) -> None:
        self.append(self.world.admit(partner_id, *roles))

    def site(self, facility_id: str, owner: str, kind: int) -> None:
        self.append(self.world.facility(facility_id, owner, kind))

    def assayed(self, lot: str, lab: str = "lab", **ppm: int) -> str:
        event_id = self.world.next_id()
        self.append(self.world.assay(lab, lot, event_id=event_id, **ppm))
        return event_id

    def certified(self, facility: str = "refinery") -> str:
        event_id = self.world.next_id()
        self.append(self.world.certify("auditor", facility, event_id=event_id))
        return event_id

    def voided(self, partner_id: str, target: str) -> str:
        event_id = self.world.next_id()
        self.append(self.world.void(partner_id, target, event_id=event_id))
        return event_id
