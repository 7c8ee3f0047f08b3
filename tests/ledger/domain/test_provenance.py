"""Provenance queries over an in-memory state built record by record (no rules involved)."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import replace
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.domain.provenance import (
    PPM,
    UNATTRIBUTED,
    ElementComposition,
    MemoryProvenance,
    OriginKind,
    ProvenanceSource,
    composition_to_json,
    downstream,
    origin_composition,
    upstream,
)
from ledger.domain.records import (
    AssayRecord,
    CertificationRecord,
    CertificationStatus,
    EventStatus,
    Facility,
    FacilityType,
    Lot,
    LotOrigin,
    LotState,
    Partner,
    Process,
    Role,
    ScrapOrigin,
    TransformationRecord,
)
from ledger.domain.state import DomainState, LotInput
from ledger.errors import NotFoundError

Contents = dict[str, int]


class Builder:
    """Writes facilities, lots and transformations straight into a DomainState.

    Every write takes the next log index; a transformation consumes its inputs
    (marking them CONSUMED when nothing is left) and appends one LotInput each.
    """

    def __init__(self) -> None:
        self.state = DomainState()
        self.index = 0

    def _next(self) -> int:
        self.index += 1
        return self.index

    def facility(
        self,
        facility_id: str,
        country: str = "CD",
        type_: FacilityType = FacilityType.MINE_SITE,
        artisanal: bool = False,
        owner: str | None = None,
    ) -> Facility:
        owner = owner or f"owner-{facility_id}"
        if self.state.partner(owner) is None:
            self.state.put(
                Partner(owner, f"{owner} Ltd", country, (Role.MINE,), self._next(), self.index)
            )
        facility = Facility(
            facility_id, owner, facility_id, type_, country, 0, 0, "", artisanal, self._next()
        )
        self.state.put(facility)
        return facility

    def _new_lot(
        self,
        lot_id: str,
        facility_id: str,
        mass: int,
        contents: Contents,
        origin: LotOrigin,
        created_event_id: str,
        index: int,
        scrap: ScrapOrigin | None = None,
    ) -> Lot:
        facility = self.state.facility(facility_id)
        assert facility is not None
        lot = Lot(
            lot_id=lot_id,
            material="material",
            mass_grams=mass,
            contents=tuple(sorted(contents.items())),
            holder_id=facility.partner_id,
            available_grams=mass,
            state=LotState.HELD,
            dispatch_event_id=None,
            origin=origin,
            created_event_id=created_event_id,
            created_index=index,
            facility_id=facility_id,
            scrap_origin=scrap,
            updated_index=index,
        )
        self.state.put(lot)
        return lot

    def extract(self, lot_id: str, mine: str, mass: int, contents: Contents) -> Lot:
        return self._new_lot(
            lot_id, mine, mass, contents, LotOrigin.EXTRACTION, f"x-{lot_id}", self._next()
        )

    def recover(
        self, lot_id: str, site: str, mass: int, contents: Contents, scrap: ScrapOrigin
    ) -> Lot:
        return self._new_lot(
            lot_id, site, mass, contents, LotOrigin.RECOVERY, f"r-{lot_id}", self._next(), scrap
        )

    def transform(
        self,
        event_id: str,
        facility_id: str,
        inputs: list[tuple[str, int]],
        outputs: list[tuple[str, int, Contents]],
        process: Process = Process.BLEND,
    ) -> TransformationRecord:
        index = self._next()
        facility = self.state.facility(facility_id)
        assert facility is not None
        for lot_id, consumed in inputs:
            lot = self.state.lot(lot_id)
            assert lot is not None
            assert consumed <= lot.available_grams
            left = lot.available_grams - consumed
            state = LotState.CONSUMED if left == 0 else lot.state
            self.state.put(replace(lot, available_grams=left, state=state, updated_index=index))
            self.state.append(LotInput(lot_id, event_id, consumed, index))
        for lot_id, mass, contents in outputs:
            self._new_lot(
                lot_id, facility_id, mass, contents, LotOrigin.TRANSFORMATION, event_id, index
            )
        record = TransformationRecord(
            event_id=event_id,
            partner_id=facility.partner_id,
            facility_id=facility_id,
            process=process,
            inputs=tuple(inputs),
            outputs=tuple(lot_id for lot_id, _mass, _contents in outputs),
            index=index,
            event_time_micros=0,
            voided=False,
            updated_index=index,
        )
        self.state.put(record)
        return record

    def source(self) -> MemoryProvenance:
        return MemoryProvenance(self.state)


def assert_consistent(composition: ElementComposition) -> None:
    """The invariants every composition keeps, whatever the graph."""
    assert sum(origin.micrograms for origin in composition.origins) == composition.total_micrograms
    assert all(origin.micrograms >= 0 and origin.share_ppm >= 0 for origin in composition.origins)
    assert sum(origin.share_ppm for origin in composition.origins) == PPM
    order = [(-origin.micrograms, origin.key) for origin in composition.origins]
    assert order == sorted(order)
    assert sum(composition.by_country().values()) == composition.total_micrograms


def json_roundtrip(value: dict[str, object]) -> object:
    """The JSON a CLI would print, parsed back (integers must survive as integers)."""
    return json.loads(json.dumps(value))


# --- origin composition ---------------------------------------------------------------


def test_single_mine_is_all_its_own_origin() -> None:
    b = Builder()
    b.facility("M1", country="CD", artisanal=True)
    b.extract("A", "M1", 1000, {"Co": 50_000})
    source = b.source()

    composition = origin_composition(source, "A")
    assert list(composition) == ["Co"]
    cobalt = composition["Co"]
    assert cobalt.total_micrograms == 1000 * 50_000  # 50,000,000 micrograms = 50 g of Co
    (origin,) = cobalt.origins
    assert origin.key == "mine:M1"
    assert origin.kind is OriginKind.MINE
    assert (origin.facility_id, origin.partner_id, origin.country) == ("M1", "owner-M1", "CD")
    assert origin.artisanal
    assert origin.lot_ids == ("A",)
    assert (origin.micrograms, origin.share_ppm) == (50_000_000, PPM)
    assert cobalt.by_country() == {"CD": 50_000_000}
    assert cobalt.recycled_micrograms() == 0

    graph = upstream(source, "A")
    assert [lot.lot_id for lot in graph.lots] == ["A"]
    assert graph.transformations == ()
    assert graph.origin_lot_ids == ("A",)
    assert [f.facility_id for f in graph.facilities] == ["M1"]
    assert [p.partner_id for p in graph.partners] == ["owner-M1"]

    rendered = json_roundtrip(composition_to_json(composition))
    assert rendered == {
        "Co": {
            "element": "Co",
            "total_micrograms": 50_000_000,
            "origins": [
                {
                    "key": "mine:M1",
                    "kind": "mine",
                    "facility_id": "M1",
                    "partner_id": "owner-M1",
                    "country": "CD",
                    "artisanal": True,
                    "lot_ids": ["A"],
                    "micrograms": 50_000_000,
                    "share_ppm": PPM,
                }
            ],
            "by_country": {"CD": 50_000_000},
            "recycled_micrograms": {"pre_consumer": 0, "post_consumer": 0},
        }
    }
    assert json_roundtrip(graph.to_json()) == graph.to_json()


def test_blend_of_two_mines_is_weighted_per_element_by_the_metal_each_brought() -> None:
    b = Builder()
    b.facility("M1", country="CD")
    b.facility("M2", country="AU")
    b.facility("S1", country="FI", type_=FacilityType.REFINERY)
    b.extract("A", "M1", 1000, {"Co": 60_000})
    b.extract("B", "M2", 3000, {"Co": 10_000, "Ni": 20_000})
    # Co brought: A 700 g * 60,000 = 42,000,000; B 3000 g * 10,000 = 30,000,000;
    # 72,000,000 in all, so A weighs 42/72 = 7/12 and B 30/72 = 5/12.
    # Ni brought: only B (3000 * 20,000 = 60,000,000): B weighs 1.
    # C: 3700 g, Co 19,000 ppm -> 70,300,000 ug (<= 72,000,000);
    #    Ni 10,000 ppm -> 37,000,000 ug (<= 60,000,000).
    b.transform("T", "S1", [("A", 700), ("B", 3000)], [("C", 3700, {"Co": 19_000, "Ni": 10_000})])

    composition = origin_composition(b.source(), "C")
    assert list(composition) == ["Co", "Ni"]
    cobalt = composition["Co"]
    assert cobalt.total_micrograms == 70_300_000
    # A: 70,300,000 * 7/12 = 41,008,333.33...; B: 70,300,000 * 5/12 = 29,291,666.66...
    # Floors sum to 70,299,999; the one left goes to the larger remainder (B's .66).
    # share_ppm: 583,333.33 and 416,666.66 -> B again takes the one left.
    assert [(o.key, o.micrograms, o.share_ppm) for o in cobalt.origins] == [
        ("mine:M1", 41_008_333, 583_333),
        ("mine:M2", 29_291_667, 416_667),
    ]
    assert cobalt.by_country() == {"CD": 41_008_333, "AU": 29_291_667}
    assert_consistent(cobalt)

    nickel = composition["Ni"]
    assert [(o.key, o.lot_ids, o.micrograms, o.share_ppm) for o in nickel.origins] == [
        ("mine:M2", ("B",), 37_000_000, PPM)
    ]


class CountingSource:
    """A ProvenanceSource that counts lookups, to show each record is fetched once."""

    def __init__(self, inner: ProvenanceSource) -> None:
        self.inner = inner
        self.calls: Counter[tuple[str, str]] = Counter()

    def lot(self, lot_id: str) -> Lot | None:
        self.calls["lot", lot_id] += 1
        return self.inner.lot(lot_id)

    def transformation(self, event_id: str) -> TransformationRecord | None:
        self.calls["transformation", event_id] += 1
        return self.inner.transformation(event_id)

    def facility(self, facility_id: str) -> Facility | None:
        return self.inner.facility(facility_id)

    def partner(self, partner_id: str) -> Partner | None:
        return self.inner.partner(partner_id)

    def consumers_of(self, lot_id: str) -> list[LotInput]:
        return self.inner.consumers_of(lot_id)

    def assays_of(self, lot_id: str) -> list[AssayRecord]:
        return self.inner.assays_of(lot_id)

    def certifications_of(self, facility_id: str) -> list[CertificationRecord]:
        return self.inner.certifications_of(facility_id)

    def lots_created_at(self, facility_id: str) -> list[Lot]:
        return self.inner.lots_created_at(facility_id)


def test_chain_of_three_transformations_with_a_diamond() -> None:
    b = Builder()
    b.facility("M1", country="CD")
    b.facility("M2", country="ZM")
    b.facility("S1", country="CN", type_=FacilityType.SMELTER)
    b.extract("A", "M1", 1000, {"Co": 100_000})  # 100,000,000 ug
    b.extract("B", "M2", 1000, {"Co": 50_000})  # 50,000,000 ug
    # T1 splits A: A1 600 g (60,000,000 ug) and A2 400 g (40,000,000 ug), both 100% M1.
    b.transform(
        "T1",
        "S1",
        [("A", 1000)],
        [("A1", 600, {"Co": 100_000}), ("A2", 400, {"Co": 100_000})],
        Process.SPLIT,
    )
    # T2 refines A1 + B: 60,000,000 + 50,000,000 -> X is 6/11 M1, 5/11 M2.
    b.transform("T2", "S1", [("A1", 600), ("B", 1000)], [("X", 1000, {"Co": 110_000})])
    # T3 re-blends A2 (40,000,000 ug) with 500 g of X (55,000,000 ug): A2 weighs 8/19, X 11/19.
    # M1 = 8/19 + 11/19 * 6/11 = 14/19; M2 = 11/19 * 5/11 = 5/19.
    b.transform("T3", "S1", [("A2", 400), ("X", 500)], [("Y", 900, {"Co": 100_000})])
    source = CountingSource(b.source())

    cobalt = origin_composition(source, "Y")["Co"]
    # Y holds 900 * 100,000 = 90,000,000 ug. M1: 90,000,000 * 14/19 = 66,315,789.47...;
    # M2: 90,000,000 * 5/19 = 23,684,210.52...; floors leave 1, which goes to M2 (.52 > .47).
    # share_ppm: 736,842.10... and 263,157.89... -> M2 takes the one left.
    assert [(o.key, o.lot_ids, o.micrograms, o.share_ppm) for o in cobalt.origins] == [
        ("mine:M1", ("A",), 66_315_789, 736_842),
        ("mine:M2", ("B",), 23_684_211, 263_158),
    ]
    assert_consistent(cobalt)
    # A sits on two paths (A -> A1 -> X -> Y and A -> A2 -> Y): still fetched once.
    assert max(source.calls.values()) == 1

    graph = upstream(source, "Y")
    assert [lot.lot_id for lot in graph.lots] == ["A", "B", "A1", "A2", "X", "Y"]
    assert [t.event_id for t in graph.transformations] == ["T1", "T2", "T3"]
    assert graph.origin_lot_ids == ("A", "B")
    assert [f.facility_id for f in graph.facilities] == ["M1", "M2", "S1"]
    assert graph.voided_lot_ids == ()


def test_a_ladder_of_splits_and_reblends_is_memoised() -> None:
    # Each rung splits the lot in two and blends the halves back: 2^60 paths to the
    # mines, so only memoisation per transformation finishes.
    b = Builder()
    b.facility("M1", country="CD")
    b.facility("M2", country="ZM")
    b.facility("S1", type_=FacilityType.PLANT)
    b.extract("A", "M1", 1000, {"Co": 30_000})
    b.extract("B", "M2", 1000, {"Co": 60_000})
    # Rung 0: A brings 30,000,000 and B 60,000,000 ug: M1 1/3, M2 2/3 all the way up.
    b.transform("blend-0", "S1", [("A", 1000), ("B", 1000)], [("L0", 2000, {"Co": 45_000})])
    for rung in range(60):
        lot, half = f"L{rung}", 1000
        b.transform(
            f"split-{rung}",
            "S1",
            [(lot, 2 * half)],
            [(f"P{rung}", half, {"Co": 45_000}), (f"Q{rung}", half, {"Co": 45_000})],
            Process.SPLIT,
        )
        b.transform(
            f"blend-{rung + 1}",
            "S1",
            [(f"P{rung}", half), (f"Q{rung}", half)],
            [(f"L{rung + 1}", 2 * half, {"Co": 45_000})],
        )

    started = time.perf_counter()
    cobalt = origin_composition(b.source(), "L60")["Co"]
    assert time.perf_counter() - started < 2
    # 2000 * 45,000 = 90,000,000 ug: exactly 30,000,000 from M1 and 60,000,000 from M2.
    assert [(o.key, o.micrograms, o.share_ppm) for o in cobalt.origins] == [
        ("mine:M2", 60_000_000, 666_667),  # 666,666.66 takes the one ppm left
        ("mine:M1", 30_000_000, 333_333),
    ]
    assert_consistent(cobalt)


def test_recycled_inputs_pre_and_post_consumer() -> None:
    b = Builder()
    b.facility("M1", country="CD")
    b.facility("R1", country="DE", type_=FacilityType.RECYCLING_SITE)
    b.facility("P1", country="KR", type_=FacilityType.PLANT)
    b.extract("A", "M1", 1000, {"Co": 20_000})  # 20,000,000 ug
    b.recover("P", "R1", 500, {"Co": 40_000}, ScrapOrigin.PRE_CONSUMER)  # 20,000,000 ug
    b.recover("Q", "R1", 250, {"Co": 160_000}, ScrapOrigin.POST_CONSUMER)  # 40,000,000 ug
    # 80,000,000 ug in: weights 1/4, 1/4, 1/2; C holds all of it (800 g * 100,000).
    b.transform(
        "T",
        "P1",
        [("A", 1000), ("P", 500), ("Q", 250)],
        [("C", 800, {"Co": 100_000})],
        Process.CATHODE_PRODUCTION,
    )

    cobalt = origin_composition(b.source(), "C")["Co"]
    assert [(o.key, o.kind, o.micrograms, o.share_ppm) for o in cobalt.origins] == [
        ("recycled:R1:post_consumer", OriginKind.RECYCLED_POST_CONSUMER, 40_000_000, 500_000),
        # Tie at 20,000,000: by key ascending.
        ("mine:M1", OriginKind.MINE, 20_000_000, 250_000),
        ("recycled:R1:pre_consumer", OriginKind.RECYCLED_PRE_CONSUMER, 20_000_000, 250_000),
    ]
    assert cobalt.recycled_micrograms() == 60_000_000
    assert cobalt.recycled_micrograms(ScrapOrigin.PRE_CONSUMER) == 20_000_000
    assert cobalt.recycled_micrograms(ScrapOrigin.POST_CONSUMER) == 40_000_000
    assert cobalt.by_country() == {"DE": 60_000_000, "CD": 20_000_000}
    assert_consistent(cobalt)
    rendered = json_roundtrip(cobalt.to_json())
    assert isinstance(rendered, dict)
    assert rendered["recycled_micrograms"] == {
        "pre_consumer": 20_000_000,
        "post_consumer": 40_000_000,
    }


def three_equal_mines(output_contents: Contents) -> MemoryProvenance:
    b = Builder()
    # Registered in an order other than their keys', so the tie-break shows.
    for mine in ("m-c", "m-a", "m-b"):
        b.facility(mine)
        b.extract(f"lot-{mine}", mine, 1000, {"Co": 100_000})
    b.facility("S1", type_=FacilityType.REFINERY)
    b.transform(
        "T",
        "S1",
        [("lot-m-c", 1000), ("lot-m-a", 1000), ("lot-m-b", 1000)],
        [("OUT", 1, output_contents)],
    )
    return b.source()


def test_hamilton_rounding_sums_exactly_and_breaks_ties_by_key() -> None:
    # 1 g at 100 ppm = 100 ug, a third each: 33.33... Rounding each gives 33 * 3 = 99;
    # Hamilton gives the one left over to the first key: m-a.
    cobalt = origin_composition(three_equal_mines({"Co": 100}), "OUT")["Co"]
    assert [(o.key, o.micrograms) for o in cobalt.origins] == [
        ("mine:m-a", 34),
        ("mine:m-b", 33),
        ("mine:m-c", 33),
    ]
    # 1,000,000 / 3 = 333,333.33...: m-a takes the one ppm left.
    assert [o.share_ppm for o in cobalt.origins] == [333_334, 333_333, 333_333]
    assert_consistent(cobalt)

    # 200 ug: 66.66... each. Rounding each gives 67 * 3 = 201; Hamilton gives 66 each
    # and the two left to m-a and m-b.
    cobalt = origin_composition(three_equal_mines({"Co": 200}), "OUT")["Co"]
    assert [(o.key, o.micrograms) for o in cobalt.origins] == [
        ("mine:m-a", 67),
        ("mine:m-b", 67),
        ("mine:m-c", 66),
    ]
    assert_consistent(cobalt)


def test_tiny_origins_are_listed_even_with_zero_micrograms() -> None:
    b = Builder()
    b.facility("BIG")
    b.facility("SMALL")
    b.facility("S1", type_=FacilityType.SMELTER)
    b.extract("big", "BIG", 1_000_000, {"Co": 1_000})  # 1,000,000,000 ug
    b.extract("small", "SMALL", 1, {"Co": 1})  # 1 ug
    b.transform("T", "S1", [("big", 1_000_000), ("small", 1)], [("OUT", 1, {"Co": 10})])
    cobalt = origin_composition(b.source(), "OUT")["Co"]
    # 10 ug: SMALL's exact part is 10 / 1,000,000,001 ug, under one microgram.
    assert [(o.key, o.micrograms, o.share_ppm) for o in cobalt.origins] == [
        ("mine:BIG", 10, PPM),
        ("mine:SMALL", 0, 0),
    ]
    assert_consistent(cobalt)


def test_metal_nothing_upstream_brought_is_unattributed() -> None:
    # Mass balance forbids this; the query still answers rather than failing.
    b = Builder()
    b.facility("M1")
    b.facility("S1", type_=FacilityType.SMELTER)
    b.extract("A", "M1", 100, {"Co": 1_000})
    b.transform("T", "S1", [("A", 100)], [("OUT", 10, {"Co": 1_000, "Ni": 5})])
    composition = origin_composition(b.source(), "OUT")
    assert [o.key for o in composition["Co"].origins] == ["mine:M1"]
    (nickel,) = composition["Ni"].origins
    assert (nickel.key, nickel.kind, nickel.micrograms, nickel.share_ppm) == (
        UNATTRIBUTED,
        OriginKind.UNATTRIBUTED,
        50,
        PPM,
    )
    assert composition["Ni"].by_country() == {UNATTRIBUTED: 50}


def test_unattributed_metal_upstream_flows_downstream_in_proportion() -> None:
    b = Builder()
    b.facility("M1", country="CD")
    b.facility("M2", country="AU")
    b.facility("S1", type_=FacilityType.SMELTER)
    b.extract("A", "M1", 100, {"Co": 1_000})
    b.extract("B", "M2", 100, {"Ni": 3_000})  # 300,000 ug of Ni
    # X declares 10 g * 10,000 = 100,000 ug of Ni that A never had (breaks mass balance).
    b.transform("T1", "S1", [("A", 100)], [("X", 10, {"Co": 10_000, "Ni": 10_000})])
    # Y: X brings 100,000 ug of Ni (unattributed), B 300,000: 1/4 and 3/4 of Y's
    # 100 g * 2,000 = 200,000 ug -> 50,000 unattributed, 150,000 from M2.
    b.transform("T2", "S1", [("X", 10), ("B", 100)], [("Y", 100, {"Ni": 2_000})])
    nickel = origin_composition(b.source(), "Y")["Ni"]
    assert [(o.key, o.kind, o.micrograms, o.share_ppm) for o in nickel.origins] == [
        ("mine:M2", OriginKind.MINE, 150_000, 750_000),
        (UNATTRIBUTED, OriginKind.UNATTRIBUTED, 50_000, 250_000),
    ]
    assert nickel.by_country() == {"AU": 150_000, UNATTRIBUTED: 50_000}
    assert_consistent(nickel)


def test_a_2000_deep_chain_needs_no_recursion() -> None:
    b = Builder()
    b.facility("M1", country="PE")
    b.facility("S1", type_=FacilityType.REFINERY)
    b.extract("L0", "M1", 10_000, {"Sn": 500_000})
    for step in range(2000):
        b.transform(
            f"T{step}",
            "S1",
            [(f"L{step}", 10_000)],
            [(f"L{step + 1}", 10_000, {"Sn": 500_000})],
            Process.REFINING,
        )
    source = b.source()

    started = time.perf_counter()
    tin = origin_composition(source, "L2000")["Sn"]
    graph = upstream(source, "L2000")
    assert time.perf_counter() - started < 5
    assert [(o.key, o.micrograms) for o in tin.origins] == [("mine:M1", 5_000_000_000)]
    assert len(graph.lots) == 2001
    assert len(graph.transformations) == 2000
    assert graph.origin_lot_ids == ("L0",)
    reach = downstream(source, "M1")
    assert len(reach.lots) == 2001


def test_a_wide_blend_of_200_mines() -> None:
    b = Builder()
    b.facility("S1", type_=FacilityType.SMELTER)
    inputs = []
    for i in range(200):
        mine = f"M{i:03d}"
        b.facility(mine, country=("CD", "RW", "BR", "ID")[i % 4], artisanal=i % 7 == 0)
        b.extract(f"lot-{i}", mine, 1000 + i, {"Ta": 1000 + 37 * i})
        inputs.append((f"lot-{i}", 1000 + i))
    metal_in = sum((1000 + i) * (1000 + 37 * i) for i in range(200))
    mass_out = 100_003
    b.transform("T", "S1", inputs, [("OUT", mass_out, {"Ta": metal_in // mass_out})])

    started = time.perf_counter()
    tantalum = origin_composition(b.source(), "OUT")["Ta"]
    assert time.perf_counter() - started < 2
    assert len(tantalum.origins) == 200
    assert tantalum.total_micrograms == mass_out * (metal_in // mass_out)
    assert_consistent(tantalum)
    # Input j's exact part is total * m_j / metal_in; Hamilton keeps each within one ug.
    for origin in tantalum.origins:
        i = int(origin.facility_id[1:])
        exact = Fraction(tantalum.total_micrograms * (1000 + i) * (1000 + 37 * i), metal_in)
        assert abs(origin.micrograms - exact) < 1


def test_unknown_lot_raises_not_found() -> None:
    b = Builder()
    b.facility("M1")
    source = b.source()
    with pytest.raises(NotFoundError):
        upstream(source, "nope")
    with pytest.raises(NotFoundError):
        origin_composition(source, "nope")
    with pytest.raises(NotFoundError):
        downstream(source, "no-such-facility")


# --- upstream details --------------------------------------------------------------------


def test_upstream_reports_voided_lots_and_assays_and_certifications() -> None:
    b = Builder()
    b.facility("M1")
    b.facility("S1", type_=FacilityType.SMELTER)
    b.extract("A", "M1", 100, {"Co": 1_000})
    b.transform("T", "S1", [("A", 50)], [("V", 50, {"Co": 1_000})])
    # The transformation was voided: its output is VOIDED (the consumed mass given back).
    record = b.state.transformation("T")
    voided_lot = b.state.lot("V")
    assert record is not None
    assert voided_lot is not None
    b.state.put(replace(record, voided=True))
    b.state.put(replace(voided_lot, state=LotState.VOIDED, available_grams=0))
    b.state.put(
        AssayRecord("as1", "A", "lab", (("Co", 990),), "ICP", "s1", 90, EventStatus.ACTIVE, 90)
    )
    b.state.put(
        CertificationRecord(
            event_id="c1",
            auditor_id="aud",
            facility_id="S1",
            scheme="RMAP",
            metals=("Co",),
            certification_status=CertificationStatus.CONFORMANT,
            valid_from_micros=0,
            valid_until_micros=10,
            index=91,
            status=EventStatus.ACTIVE,
            updated_index=91,
        )
    )
    source = b.source()

    graph = upstream(source, "V")
    assert graph.voided_lot_ids == ("V",)
    assert [t.voided for t in graph.transformations] == [True]
    assert [a.event_id for a in graph.assays] == ["as1"]
    assert [c.event_id for c in graph.certifications] == ["c1"]
    rendered = json_roundtrip(graph.to_json())
    assert isinstance(rendered, dict)
    assert rendered["voided_lot_ids"] == ["V"]
    # The composition of a voided lot is still computed from its record.
    assert [o.key for o in origin_composition(source, "V")["Co"].origins] == ["mine:M1"]


def test_memory_provenance_indexes_are_sorted() -> None:
    b = Builder()
    b.facility("M1")
    b.facility("S1", type_=FacilityType.SMELTER)
    b.extract("A", "M1", 100, {"Co": 1_000})
    b.extract("B", "M1", 100, {"Co": 1_000})
    late = b.transform("T-late", "S1", [("A", 10)], [("X", 10, {"Co": 1_000})])
    early = b.transform("T-early", "S1", [("A", 10), ("B", 10)], [("Y", 20, {"Co": 1_000})])
    # Two LotInput rows of one index: by event id.
    b.state.append(LotInput("A", "T-b", 1, 100))
    b.state.append(LotInput("A", "T-a", 1, 100))
    source = b.source()
    assert [(r.event_id, r.index) for r in source.consumers_of("A")] == [
        ("T-late", late.index),
        ("T-early", early.index),
        ("T-a", 100),
        ("T-b", 100),
    ]
    assert [lot.lot_id for lot in source.lots_created_at("M1")] == ["A", "B"]
    assert [lot.lot_id for lot in source.lots_created_at("S1")] == ["X", "Y"]
    assert source.consumers_of("nothing") == []
    assert source.assays_of("A") == []


# --- downstream -----------------------------------------------------------------------------


def test_downstream_reach_of_a_mine_across_transformations() -> None:
    b = Builder()
    b.facility("M1", country="CD")
    b.facility("M2", country="ZM")
    b.facility("S1", country="CN", type_=FacilityType.REFINERY)
    b.facility("P1", country="KR", type_=FacilityType.PLANT)
    b.extract("A", "M1", 1000, {"Co": 100_000})
    b.extract("A-spare", "M1", 10, {"Co": 100_000})
    b.extract("B", "M2", 1100, {"Co": 100_000})
    b.transform(
        "T1",
        "S1",
        [("A", 1000)],
        [("A1", 500, {"Co": 100_000}), ("A2", 500, {"Co": 100_000})],
        Process.SPLIT,
    )
    b.transform("T2", "S1", [("A1", 500), ("B", 1000)], [("X", 1500, {"Co": 100_000})])
    b.transform("T3", "P1", [("X", 1500)], [("C", 1000, {"Co": 150_000})])
    b.transform("T-other", "P1", [("B", 100)], [("Z", 100, {"Co": 100_000})])  # M2's only
    # C is on its way to a customer: the plant keeps custody until the receipt.
    c = b.state.lot("C")
    assert c is not None
    b.state.put(replace(c, state=LotState.IN_TRANSIT, dispatch_event_id="D1"))
    source = b.source()

    reach = downstream(source, "M1")
    assert reach.origin_lot_ids == ("A", "A-spare")
    assert [r.lot.lot_id for r in reach.lots] == ["A", "A-spare", "A1", "A2", "X", "C"]
    assert [t.event_id for t in reach.transformations] == ["T1", "T2", "T3"]
    status = {r.lot.lot_id: (r.outstanding, r.lot.state, r.lot.holder_id) for r in reach.lots}
    assert status == {
        "A": (False, LotState.CONSUMED, "owner-M1"),
        "A-spare": (True, LotState.HELD, "owner-M1"),
        "A1": (False, LotState.CONSUMED, "owner-S1"),
        "A2": (True, LotState.HELD, "owner-S1"),
        "X": (False, LotState.CONSUMED, "owner-S1"),  # the builder moves no custody
        "C": (True, LotState.IN_TRANSIT, "owner-P1"),
    }
    assert reach.outstanding_by_holder() == {
        "owner-M1": ("A-spare",),
        "owner-P1": ("C",),
        "owner-S1": ("A2",),
    }
    rendered = json_roundtrip(reach.to_json())
    assert isinstance(rendered, dict)
    assert rendered["outstanding_by_holder"] == {
        "owner-M1": ["A-spare"],
        "owner-P1": ["C"],
        "owner-S1": ["A2"],
    }
    # A refinery creates no origin lots: it reaches nothing.
    assert downstream(source, "S1").lots == ()


# --- property: random DAGs obeying mass balance --------------------------------------------

ELEMENTS = ("Co", "Li", "Ni")
MAX_PPM = PPM // len(ELEMENTS)  # so the contents of a lot never exceed 1,000,000 ppm
SITES: dict[str, tuple[FacilityType, str, ScrapOrigin | None]] = {
    "mine-1": (FacilityType.MINE_SITE, "CD", None),
    "mine-2": (FacilityType.MINE_SITE, "AU", None),
    "rec-1": (FacilityType.RECYCLING_SITE, "DE", ScrapOrigin.PRE_CONSUMER),
    "rec-2": (FacilityType.RECYCLING_SITE, "US", ScrapOrigin.POST_CONSUMER),
}


def contents_strategy() -> st.SearchStrategy[Contents]:
    return st.fixed_dictionaries({e: st.integers(0, MAX_PPM) for e in ELEMENTS})


def exact_shares(
    lots: dict[str, Lot],
    transformations: dict[str, TransformationRecord],
    lot_id: str,
    element: str,
) -> dict[str, Fraction]:
    """The attribution rule, written again as a plain recursion (an oracle for small graphs)."""
    lot = lots[lot_id]
    if lot.origin is LotOrigin.EXTRACTION:
        return {f"mine:{lot.facility_id}": Fraction(1)}
    if lot.origin is LotOrigin.RECOVERY:
        assert lot.scrap_origin is not None
        return {f"recycled:{lot.facility_id}:{lot.scrap_origin.name.lower()}": Fraction(1)}
    transformation = transformations[lot.created_event_id]
    brought = [(i, grams * lots[i].ppm(element)) for i, grams in transformation.inputs]
    metal_in = sum(metal for _i, metal in brought)
    out: defaultdict[str, Fraction] = defaultdict(Fraction)
    for input_id, metal in brought:
        if metal:
            for key, weight in exact_shares(lots, transformations, input_id, element).items():
                out[key] += Fraction(metal, metal_in) * weight
    return dict(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_mass_balanced_dags_attribute_every_microgram(data: st.DataObject) -> None:
    b = Builder()
    for site, (type_, country, _scrap) in SITES.items():
        b.facility(site, country=country, type_=type_)
    b.facility("plant", type_=FacilityType.PLANT)
    for n in range(data.draw(st.integers(1, 5), label="origin lots")):
        site = data.draw(st.sampled_from(sorted(SITES)))
        mass = data.draw(st.integers(1, 10_000))
        contents = data.draw(contents_strategy())
        scrap = SITES[site][2]
        if scrap is None:
            b.extract(f"o{n}", site, mass, contents)
        else:
            b.recover(f"o{n}", site, mass, contents, scrap)

    for t in range(data.draw(st.integers(0, 8), label="transformations")):
        lots_now = {lot.lot_id: lot for lot in b.state.records(Lot)}
        available = sorted(lot_id for lot_id, lot in lots_now.items() if lot.available_grams > 0)
        if not available:
            break
        chosen = data.draw(
            st.lists(st.sampled_from(available), min_size=1, max_size=4, unique=True)
        )
        inputs = [
            (lot_id, data.draw(st.integers(1, lots_now[lot_id].available_grams)))
            for lot_id in chosen
        ]
        metal_in = {e: sum(grams * lots_now[i].ppm(e) for i, grams in inputs) for e in ELEMENTS}
        n_out = data.draw(st.integers(1, 3))
        outputs = []
        for o in range(n_out):
            mass = data.draw(st.integers(1, 10_000))
            percent = data.draw(st.integers(0, 100))
            # Each output takes at most percent/n_out of the metal in: balance holds.
            contents = {
                e: min(MAX_PPM, metal_in[e] * percent // (100 * n_out * mass)) for e in ELEMENTS
            }
            outputs.append((f"t{t}-{o}", mass, contents))
        b.transform(f"T{t}", "plant", inputs, outputs)

    source = b.source()
    lots = {lot.lot_id: lot for lot in b.state.records(Lot)}
    transformations = {t.event_id: t for t in b.state.records(TransformationRecord)}
    for lot_id, lot in lots.items():
        graph = upstream(source, lot_id)
        origin_sites = {lots[o].facility_id for o in graph.origin_lot_ids}
        composition = origin_composition(source, lot_id)
        assert list(composition) == [e for e, ppm in lot.contents if ppm > 0]
        for element, part in composition.items():
            assert part.total_micrograms == lot.mass_grams * lot.ppm(element)
            assert_consistent(part)
            assert {o.facility_id for o in part.origins} <= origin_sites
            assert {o for origin in part.origins for o in origin.lot_ids} <= set(
                graph.origin_lot_ids
            )
            exact = exact_shares(lots, transformations, lot_id, element)
            assert {o.key for o in part.origins} == set(exact)
            for origin in part.origins:
                assert abs(origin.micrograms - part.total_micrograms * exact[origin.key]) < 1
                assert abs(origin.share_ppm - PPM * exact[origin.key]) < 1
