"""Provenance queries: pure functions over the derived indexes.

Every query reads the domain state through a ``ProvenanceSource`` (the
database-backed ``DomainView`` or the in-memory ``MemoryProvenance`` over a
full replay) and does no other I/O, so the node, the CLI and the auditor
answer the same question with the same code.

Lots are made three ways: an extraction (at a mine site) or a recovery (of
pre- or post-consumer scrap at a recycling site) makes an *origin lot*; a
transformation consumes ``(input lot, consumed grams)`` pairs and makes its
output lots (``Lot.origin == TRANSFORMATION``, ``Lot.created_event_id`` being
the transformation's event id). Lot ids are never reused, so the graph of
lots and transformations is a DAG; blends make diamonds. Every walk below is
iterative (no recursion limit on deep chains) and visits each lot and each
transformation once.

Voided events stay visible: a lot whose creating event was voided has state
VOIDED and a voided transformation keeps ``voided=True``. The queries walk
through them like any other and report them (``UpstreamGraph.voided_lot_ids``,
``ReachedLot.lot.state``, ``TransformationRecord.voided``); judging them is the
audit's business, not the query's.

Origin composition, exactly
---------------------------
The contained metal of element E in a lot is ``mass_grams * ppm(E)``
micrograms, an exact integer. The composition of a lot reports, for every
element with ppm > 0 in its declared contents, the lot's full contained metal
as created (``total = mass_grams * ppm(E)``, not what is left of it) split
among the origins it came from:

* An origin lot is 100% its own origin.
* Transformation T consumed ``c_j`` grams of input lot j; input j brought
  ``m_j = c_j * ppm_j(E)`` micrograms of E. The weight of input j is
  ``w_j = m_j / sum_k(m_k)`` and the mix of T for E is
  ``mix_T(o) = sum_j w_j * mix_j(o)``. Every output of T has the mix of T
  (outputs are made from the pooled inputs). Inputs with ``m_j = 0`` carry no
  weight and are not followed.

Weights are ``fractions.Fraction`` (integer arithmetic, no floats), memoised
per (transformation, element) so shared upstream lots and sibling outputs are
computed once; they are positive and sum to exactly 1. Only at the end are
they turned into integers, twice and independently, each with the
largest-remainder (Hamilton) method:

* micrograms: origin o gets ``floor(total * w_o)``; the ``R = total -
  sum(floors)`` micrograms left (``0 <= R < number of origins``) go one each
  to the R origins with the largest remainders ``total * w_o - floor(...)``,
  ties broken by origin key ascending. The parts sum exactly to ``total``.
* ``share_ppm``: the same with 1,000,000 in place of ``total``, so the
  shares sum exactly to 1,000,000.

An origin whose exact part is below one microgram is still listed (with 0
micrograms if it lost the remainder draw): it is a real, if tiny, source.

Mass balance (DESIGN 4.1) guarantees that a lot declaring E has an upstream
that brought E. If the data break that (a transformation declares E in its
outputs while its inputs brought none, so its weights would sum to 0), the
query does not fail: that transformation's mix for E is 100% one
``UNATTRIBUTED`` origin (kind ``OriginKind.UNATTRIBUTED``, empty facility,
partner and country, no lots), which then flows downstream like any other
origin and is rounded with the others.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from typing import Protocol

from ledger.domain.records import (
    AssayRecord,
    CertificationRecord,
    Facility,
    Lot,
    LotOrigin,
    LotState,
    Partner,
    ScrapOrigin,
    TransformationRecord,
)
from ledger.domain.state import DomainState, LotInput
from ledger.errors import NotFoundError, StateMismatchError

PPM = 1_000_000
"""Parts per million in one; ``share_ppm`` values sum to this."""

UNATTRIBUTED = "UNATTRIBUTED"
"""Key (and ``by_country`` key) of metal no origin accounts for."""


# --- the source ----------------------------------------------------------------------


class ProvenanceSource(Protocol):
    """The derived indexes the queries read; absent records are None.

    Lists are sorted so results are deterministic: ``consumers_of``,
    ``assays_of`` and ``certifications_of`` by (index, event_id);
    ``lots_created_at`` by (created_index, lot_id).
    """

    def lot(self, lot_id: str) -> Lot | None: ...

    def transformation(self, event_id: str) -> TransformationRecord | None: ...

    def facility(self, facility_id: str) -> Facility | None: ...

    def partner(self, partner_id: str) -> Partner | None: ...

    def consumers_of(self, lot_id: str) -> list[LotInput]:
        """The transformations that consumed ``lot_id`` (voided ones included)."""
        ...

    def assays_of(self, lot_id: str) -> list[AssayRecord]:
        """Every assay of ``lot_id``, whatever its status."""
        ...

    def certifications_of(self, facility_id: str) -> list[CertificationRecord]:
        """Every certification of ``facility_id``, whatever its status."""
        ...

    def lots_created_at(self, facility_id: str) -> list[Lot]:
        """Every lot created at ``facility_id``, origin lots and transformation outputs."""
        ...


def _by_index_then_event(
    row: LotInput | TransformationRecord | AssayRecord | CertificationRecord,
) -> tuple[int, str]:
    return (row.index, row.event_id)


def _by_creation(lot: Lot) -> tuple[int, str]:
    return (lot.created_index, lot.lot_id)


class MemoryProvenance(ProvenanceSource):
    """A ``ProvenanceSource`` over an in-memory ``DomainState`` holding every record.

    It snapshots the state when constructed (a full replay: ``DomainState()``
    without a loader) and builds the reverse indexes once; records written to
    the state afterwards are not seen.
    """

    def __init__(self, state: DomainState) -> None:
        self._lots = {lot.lot_id: lot for lot in state.records(Lot)}
        self._transformations = {t.event_id: t for t in state.records(TransformationRecord)}
        self._facilities = {f.facility_id: f for f in state.records(Facility)}
        self._partners = {p.partner_id: p for p in state.records(Partner)}

        consumers: defaultdict[str, list[LotInput]] = defaultdict(list)
        for row in state.history:
            if isinstance(row, LotInput):
                consumers[row.lot_id].append(row)
        assays: defaultdict[str, list[AssayRecord]] = defaultdict(list)
        for assay in state.records(AssayRecord):
            assays[assay.lot_id].append(assay)
        certifications: defaultdict[str, list[CertificationRecord]] = defaultdict(list)
        for certification in state.records(CertificationRecord):
            certifications[certification.facility_id].append(certification)
        created_at: defaultdict[str, list[Lot]] = defaultdict(list)
        for lot in self._lots.values():
            created_at[lot.facility_id].append(lot)

        self._consumers = {k: sorted(v, key=_by_index_then_event) for k, v in consumers.items()}
        self._assays = {k: sorted(v, key=_by_index_then_event) for k, v in assays.items()}
        self._certifications = {
            k: sorted(v, key=_by_index_then_event) for k, v in certifications.items()
        }
        self._created_at = {k: sorted(v, key=_by_creation) for k, v in created_at.items()}

    def lot(self, lot_id: str) -> Lot | None:
        return self._lots.get(lot_id)

    def transformation(self, event_id: str) -> TransformationRecord | None:
        return self._transformations.get(event_id)

    def facility(self, facility_id: str) -> Facility | None:
        return self._facilities.get(facility_id)

    def partner(self, partner_id: str) -> Partner | None:
        return self._partners.get(partner_id)

    # Copies, so a caller cannot change the indexes.
    def consumers_of(self, lot_id: str) -> list[LotInput]:
        return list(self._consumers.get(lot_id, ()))

    def assays_of(self, lot_id: str) -> list[AssayRecord]:
        return list(self._assays.get(lot_id, ()))

    def certifications_of(self, facility_id: str) -> list[CertificationRecord]:
        return list(self._certifications.get(facility_id, ()))

    def lots_created_at(self, facility_id: str) -> list[Lot]:
        return list(self._created_at.get(facility_id, ()))


# --- fetching with the errors the queries promise ---------------------------------------


def _lot(source: ProvenanceSource, lot_id: str, referrer: str | None = None) -> Lot:
    lot = source.lot(lot_id)
    if lot is None:
        where = "" if referrer is None else f" (named by {referrer})"
        raise NotFoundError(f"unknown lot {lot_id!r}{where}")
    return lot


def _facility(source: ProvenanceSource, facility_id: str, referrer: str) -> Facility:
    facility = source.facility(facility_id)
    if facility is None:
        raise NotFoundError(f"unknown facility {facility_id!r} (named by {referrer})")
    return facility


def _partner(source: ProvenanceSource, partner_id: str, referrer: str) -> Partner:
    partner = source.partner(partner_id)
    if partner is None:
        raise NotFoundError(f"unknown partner {partner_id!r} (named by {referrer})")
    return partner


def _creating_transformation(source: ProvenanceSource, lot: Lot) -> TransformationRecord:
    """The transformation that made ``lot`` (which must not be an origin lot)."""
    transformation = source.transformation(lot.created_event_id)
    if transformation is None:
        raise NotFoundError(
            f"unknown transformation {lot.created_event_id!r} (creator of lot {lot.lot_id!r})"
        )
    return transformation


def _is_origin(lot: Lot) -> bool:
    return lot.origin is not LotOrigin.TRANSFORMATION


@dataclass(frozen=True, slots=True)
class _UpstreamRecords:
    """Every lot and transformation upstream of (and including) one lot, by id."""

    lots: dict[str, Lot]
    transformations: dict[str, TransformationRecord]


def _walk_upstream(source: ProvenanceSource, lot_id: str) -> _UpstreamRecords:
    """Depth-first with an explicit stack; each lot and transformation fetched once."""
    lots = {lot_id: _lot(source, lot_id)}
    transformations: dict[str, TransformationRecord] = {}
    stack = [lots[lot_id]]
    while stack:
        lot = stack.pop()
        if _is_origin(lot) or lot.created_event_id in transformations:
            continue  # a sibling output already brought this transformation's inputs
        transformation = _creating_transformation(source, lot)
        transformations[transformation.event_id] = transformation
        for input_id, _consumed in transformation.inputs:
            if input_id not in lots:
                lots[input_id] = _lot(source, input_id, f"transformation {transformation.event_id}")
                stack.append(lots[input_id])
    return _UpstreamRecords(lots, transformations)


# --- JSON renderings of records ----------------------------------------------------------


def _contents_json(contents: Iterable[tuple[str, int]]) -> dict[str, object]:
    return dict(contents)


def _lot_json(lot: Lot) -> dict[str, object]:
    return {
        "lot_id": lot.lot_id,
        "material": lot.material,
        "mass_grams": lot.mass_grams,
        "contents_ppm": _contents_json(lot.contents),
        "holder_id": lot.holder_id,
        "available_grams": lot.available_grams,
        "state": lot.state.value,
        "dispatch_event_id": lot.dispatch_event_id,
        "origin": lot.origin.value,
        "created_event_id": lot.created_event_id,
        "created_index": lot.created_index,
        "facility_id": lot.facility_id,
        "scrap_origin": None if lot.scrap_origin is None else lot.scrap_origin.name.lower(),
        "updated_index": lot.updated_index,
    }


def _transformation_json(transformation: TransformationRecord) -> dict[str, object]:
    return {
        "event_id": transformation.event_id,
        "partner_id": transformation.partner_id,
        "facility_id": transformation.facility_id,
        "process": transformation.process.name.lower(),
        "inputs": [
            {"lot_id": lot_id, "consumed_grams": grams} for lot_id, grams in transformation.inputs
        ],
        "outputs": list(transformation.outputs),
        "index": transformation.index,
        "event_time_micros": transformation.event_time_micros,
        "voided": transformation.voided,
    }


def _facility_json(facility: Facility) -> dict[str, object]:
    return {
        "facility_id": facility.facility_id,
        "partner_id": facility.partner_id,
        "name": facility.name,
        "type": facility.type.name.lower(),
        "country": facility.country,
        "latitude_e6": facility.latitude_e6,
        "longitude_e6": facility.longitude_e6,
        "rmi_smelter_id": facility.rmi_smelter_id,
        "artisanal": facility.artisanal,
        "registered_index": facility.registered_index,
    }


def _partner_json(partner: Partner) -> dict[str, object]:
    return {
        "partner_id": partner.partner_id,
        "legal_name": partner.legal_name,
        "country": partner.country,
        "roles": [role.name.lower() for role in partner.roles],
    }


def _assay_json(assay: AssayRecord) -> dict[str, object]:
    return {
        "event_id": assay.event_id,
        "lot_id": assay.lot_id,
        "lab_id": assay.lab_id,
        "contents_ppm": _contents_json(assay.contents),
        "method": assay.method,
        "sample_id": assay.sample_id,
        "index": assay.index,
        "status": assay.status.value,
    }


def _certification_json(certification: CertificationRecord) -> dict[str, object]:
    return {
        "event_id": certification.event_id,
        "auditor_id": certification.auditor_id,
        "facility_id": certification.facility_id,
        "scheme": certification.scheme,
        "metals": list(certification.metals),
        "certification_status": certification.certification_status.name.lower(),
        "valid_from_micros": certification.valid_from_micros,
        "valid_until_micros": certification.valid_until_micros,
        "index": certification.index,
        "status": certification.status.value,
    }


# --- upstream ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpstreamGraph:
    """A lot and everything upstream of it, down to every extraction and recovery.

    ``lots`` includes the queried lot; ``transformations`` are those that made
    the transformed lots in ``lots`` (their ``inputs`` carry the consumed
    grams; their ``outputs`` may name siblings outside the graph). The
    facilities are where the lots were created (which includes every
    transformation's site); the partners own those facilities, recorded the
    transformations or hold the lots now. Assays of the lots and
    certifications of the facilities are listed whatever their status.
    """

    lot_id: str
    lots: tuple[Lot, ...]  # by (created_index, lot_id)
    transformations: tuple[TransformationRecord, ...]  # by (index, event_id)
    origin_lot_ids: tuple[str, ...]  # sorted: the extraction and recovery lots
    voided_lot_ids: tuple[str, ...]  # sorted: lots whose creating event was voided
    facilities: tuple[Facility, ...]  # by facility_id
    partners: tuple[Partner, ...]  # by partner_id
    assays: tuple[AssayRecord, ...]  # by (index, event_id)
    certifications: tuple[CertificationRecord, ...]  # by (index, event_id)

    def to_json(self) -> dict[str, object]:
        return {
            "lot_id": self.lot_id,
            "lots": [_lot_json(lot) for lot in self.lots],
            "transformations": [_transformation_json(t) for t in self.transformations],
            "origin_lot_ids": list(self.origin_lot_ids),
            "voided_lot_ids": list(self.voided_lot_ids),
            "facilities": [_facility_json(f) for f in self.facilities],
            "partners": [_partner_json(p) for p in self.partners],
            "assays": [_assay_json(a) for a in self.assays],
            "certifications": [_certification_json(c) for c in self.certifications],
        }


def upstream(source: ProvenanceSource, lot_id: str) -> UpstreamGraph:
    """Everything upstream of ``lot_id``.

    ``NotFoundError`` if the lot, or anything the walk names, is unknown.
    """
    walked = _walk_upstream(source, lot_id)
    lots = sorted(walked.lots.values(), key=_by_creation)
    transformations = sorted(walked.transformations.values(), key=_by_index_then_event)

    facilities: dict[str, Facility] = {}
    for lot in lots:
        if lot.facility_id not in facilities:
            facilities[lot.facility_id] = _facility(source, lot.facility_id, f"lot {lot.lot_id}")
    for transformation in transformations:
        if transformation.facility_id not in facilities:
            facilities[transformation.facility_id] = _facility(
                source, transformation.facility_id, f"transformation {transformation.event_id}"
            )

    partner_referrers: dict[str, str] = {}
    for facility in facilities.values():
        partner_referrers.setdefault(facility.partner_id, f"facility {facility.facility_id}")
    for transformation in transformations:
        partner_referrers.setdefault(
            transformation.partner_id, f"transformation {transformation.event_id}"
        )
    for lot in lots:
        partner_referrers.setdefault(lot.holder_id, f"lot {lot.lot_id}")
    partners = [_partner(source, pid, why) for pid, why in sorted(partner_referrers.items())]

    assays = [assay for lot in lots for assay in source.assays_of(lot.lot_id)]
    certifications = [c for fid in sorted(facilities) for c in source.certifications_of(fid)]
    return UpstreamGraph(
        lot_id=lot_id,
        lots=tuple(lots),
        transformations=tuple(transformations),
        origin_lot_ids=tuple(sorted(lot.lot_id for lot in lots if _is_origin(lot))),
        voided_lot_ids=tuple(sorted(lot.lot_id for lot in lots if lot.state is LotState.VOIDED)),
        facilities=tuple(facilities[fid] for fid in sorted(facilities)),
        partners=tuple(partners),
        assays=tuple(sorted(assays, key=_by_index_then_event)),
        certifications=tuple(sorted(certifications, key=_by_index_then_event)),
    )


# --- origin composition ----------------------------------------------------------------------


class OriginKind(Enum):
    MINE = "mine"
    RECYCLED_PRE_CONSUMER = "recycled_pre_consumer"
    RECYCLED_POST_CONSUMER = "recycled_post_consumer"
    UNATTRIBUTED = "unattributed"
    """Metal no origin accounts for: only when the data break mass balance."""


_RECYCLED_KIND = {
    ScrapOrigin.PRE_CONSUMER: OriginKind.RECYCLED_PRE_CONSUMER,
    ScrapOrigin.POST_CONSUMER: OriginKind.RECYCLED_POST_CONSUMER,
}


@dataclass(frozen=True, slots=True)
class OriginShare:
    """One origin's part of an element in a lot.

    ``key`` is ``mine:<facility_id>``, ``recycled:<facility_id>:pre_consumer``,
    ``recycled:<facility_id>:post_consumer`` or ``UNATTRIBUTED``. One recycling
    site may appear twice, once per scrap origin.
    """

    key: str
    kind: OriginKind
    facility_id: str
    partner_id: str  # the facility's owner
    country: str  # the facility's country
    artisanal: bool
    lot_ids: tuple[str, ...]  # the contributing origin lots, sorted
    micrograms: int
    share_ppm: int

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "kind": self.kind.value,
            "facility_id": self.facility_id,
            "partner_id": self.partner_id,
            "country": self.country,
            "artisanal": self.artisanal,
            "lot_ids": list(self.lot_ids),
            "micrograms": self.micrograms,
            "share_ppm": self.share_ppm,
        }


@dataclass(frozen=True, slots=True)
class ElementComposition:
    """Where the ``total_micrograms`` of ``element`` in a lot came from.

    The origins' ``micrograms`` sum exactly to ``total_micrograms`` and their
    ``share_ppm`` exactly to 1,000,000 (see the module docstring).
    """

    element: str
    total_micrograms: int
    origins: tuple[OriginShare, ...]  # by micrograms descending, then key

    def by_country(self) -> dict[str, int]:
        """Micrograms per origin country (unattributed metal under ``UNATTRIBUTED``)."""
        out: dict[str, int] = {}
        for origin in self.origins:
            country = origin.country or UNATTRIBUTED
            out[country] = out.get(country, 0) + origin.micrograms
        return out

    def recycled_micrograms(self, scrap_origin: ScrapOrigin | None = None) -> int:
        """Micrograms from recycled origins: of ``scrap_origin`` only, or of both."""
        kinds = (
            set(_RECYCLED_KIND.values()) if scrap_origin is None else {_RECYCLED_KIND[scrap_origin]}
        )
        return sum(origin.micrograms for origin in self.origins if origin.kind in kinds)

    def to_json(self) -> dict[str, object]:
        return {
            "element": self.element,
            "total_micrograms": self.total_micrograms,
            "origins": [origin.to_json() for origin in self.origins],
            "by_country": self.by_country(),
            "recycled_micrograms": {
                "pre_consumer": self.recycled_micrograms(ScrapOrigin.PRE_CONSUMER),
                "post_consumer": self.recycled_micrograms(ScrapOrigin.POST_CONSUMER),
            },
        }


def composition_to_json(composition: dict[str, ElementComposition]) -> dict[str, object]:
    """``origin_composition``'s result as JSON, element by element."""
    return {element: part.to_json() for element, part in composition.items()}


Mix = dict[str, Fraction]
"""Origin lot id -> exact weight; weights are positive and sum to exactly 1."""

_NO_ORIGIN_LOT = ""
"""The origin "lot" of unattributed metal in a ``Mix`` (real lot ids are never empty)."""


def _transformation_mixes(
    element: str, root: str, walked: _UpstreamRecords, memo: dict[str, Mix]
) -> None:
    """Fill ``memo`` with the mix for ``element`` of transformation ``root`` and what it needs.

    Post-order with an explicit stack: a transformation is pushed unexpanded,
    then again expanded above the transformations making its contributing
    inputs; when the expanded entry comes back up, those are all in ``memo``.
    Meeting an unexpanded entry that is mid-expansion means a cycle.
    """
    lots, transformations = walked.lots, walked.transformations
    expanding: set[str] = set()
    stack: list[tuple[str, bool]] = [(root, False)]
    while stack:
        event_id, expanded = stack.pop()
        if event_id in memo:
            continue
        inputs = [
            (lots[input_id], consumed * lots[input_id].ppm(element))
            for input_id, consumed in transformations[event_id].inputs
        ]
        contributing = [(lot, metal) for lot, metal in inputs if metal > 0]
        if not expanded:
            if event_id in expanding:
                raise StateMismatchError(f"transformation {event_id!r} is its own upstream")
            expanding.add(event_id)
            stack.append((event_id, True))
            stack.extend(
                (lot.created_event_id, False)
                for lot, _metal in contributing
                if not _is_origin(lot) and lot.created_event_id not in memo
            )
            continue
        # w_j = m_j / sum(m); mix(o) = sum_j w_j * mix_j(o), summed over exact numerators first.
        metal_in = sum(metal for _lot, metal in contributing)
        numerators: dict[str, Fraction] = defaultdict(Fraction)
        for lot, metal in contributing:
            input_mix = {lot.lot_id: Fraction(1)} if _is_origin(lot) else memo[lot.created_event_id]
            for origin_lot_id, weight in input_mix.items():
                numerators[origin_lot_id] += metal * weight
        if metal_in == 0:  # outputs declare E that no input brought: see the module docstring
            memo[event_id] = {_NO_ORIGIN_LOT: Fraction(1)}
        else:
            memo[event_id] = {k: v / metal_in for k, v in numerators.items()}
        expanding.discard(event_id)


def _largest_remainder(whole: int, weights: dict[str, Fraction]) -> dict[str, int]:
    """Split ``whole`` in proportion to ``weights`` (summing to 1) into integers summing to it.

    Each key gets ``floor(whole * w)``; the units left go one each to the
    largest remainders, ties by key ascending (Hamilton's method).
    """
    parts: dict[str, int] = {}
    remainders: list[tuple[Fraction, str]] = []
    for key, weight in weights.items():
        quota = whole * weight
        parts[key] = quota.numerator // quota.denominator
        remainders.append((quota - parts[key], key))
    left = whole - sum(parts.values())
    assert 0 <= left <= len(parts), "weights must sum to 1"
    remainders.sort(key=lambda item: (-item[0], item[1]))
    for _remainder, key in remainders[:left]:
        parts[key] += 1
    return parts


def _origin_key(lot: Lot) -> tuple[str, OriginKind]:
    if lot.origin is LotOrigin.EXTRACTION:
        return f"mine:{lot.facility_id}", OriginKind.MINE
    if lot.scrap_origin is None:
        raise StateMismatchError(f"recovered lot {lot.lot_id!r} has no scrap origin")
    scrap = lot.scrap_origin.name.lower()
    return f"recycled:{lot.facility_id}:{scrap}", _RECYCLED_KIND[lot.scrap_origin]


def _element_composition(
    source: ProvenanceSource, element: str, total: int, mix: Mix, lots: dict[str, Lot]
) -> ElementComposition:
    weights: dict[str, Fraction] = defaultdict(Fraction)
    lot_ids: defaultdict[str, list[str]] = defaultdict(list)
    kinds: dict[str, OriginKind] = {}
    facility_ids: dict[str, str] = {}
    for origin_lot_id, weight in mix.items():
        if origin_lot_id == _NO_ORIGIN_LOT:
            weights[UNATTRIBUTED] += weight
            continue
        lot = lots[origin_lot_id]
        key, kinds[key] = _origin_key(lot)
        facility_ids[key] = lot.facility_id
        weights[key] += weight
        lot_ids[key].append(origin_lot_id)
    micrograms = _largest_remainder(total, weights)
    shares = _largest_remainder(PPM, weights)

    origins: list[OriginShare] = []
    for key in weights:
        if key == UNATTRIBUTED:
            origins.append(
                OriginShare(
                    key=UNATTRIBUTED,
                    kind=OriginKind.UNATTRIBUTED,
                    facility_id="",
                    partner_id="",
                    country="",
                    artisanal=False,
                    lot_ids=(),
                    micrograms=micrograms[key],
                    share_ppm=shares[key],
                )
            )
            continue
        facility = _facility(source, facility_ids[key], f"lot {sorted(lot_ids[key])[0]}")
        origins.append(
            OriginShare(
                key=key,
                kind=kinds[key],
                facility_id=facility.facility_id,
                partner_id=facility.partner_id,
                country=facility.country,
                artisanal=facility.artisanal,
                lot_ids=tuple(sorted(lot_ids[key])),
                micrograms=micrograms[key],
                share_ppm=shares[key],
            )
        )
    origins.sort(key=lambda origin: (-origin.micrograms, origin.key))
    return ElementComposition(element, total, tuple(origins))


def origin_composition(source: ProvenanceSource, lot_id: str) -> dict[str, ElementComposition]:
    """Per element with ppm > 0 in ``lot_id`` (by symbol): which origins its metal came from.

    The attribution and the rounding are in the module docstring.
    ``NotFoundError`` if the lot, or anything upstream it names, is unknown.
    """
    walked = _walk_upstream(source, lot_id)
    lot = walked.lots[lot_id]
    out: dict[str, ElementComposition] = {}
    for element, ppm in lot.contents:
        if ppm <= 0:
            continue
        if _is_origin(lot):
            mix: Mix = {lot.lot_id: Fraction(1)}
        else:
            memo: dict[str, Mix] = {}
            _transformation_mixes(element, lot.created_event_id, walked, memo)
            mix = memo[lot.created_event_id]
        out[element] = _element_composition(source, element, lot.mass_grams * ppm, mix, walked.lots)
    return out


# --- downstream ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReachedLot:
    """A lot downstream of a facility's origin lots, and who has it now."""

    lot: Lot

    @property
    def outstanding(self) -> bool:
        """Whether some of it still exists: held with mass left, or in transit.

        While in transit the sender (``lot.holder_id``) keeps custody until the
        receipt; ``lot.dispatch_event_id`` names the open dispatch.
        """
        held = self.lot.state is LotState.HELD and self.lot.available_grams > 0
        return held or self.lot.state is LotState.IN_TRANSIT

    def to_json(self) -> dict[str, object]:
        return {**_lot_json(self.lot), "outstanding": self.outstanding}


@dataclass(frozen=True, slots=True)
class DownstreamReach:
    """Where the material of a mine (or recycling site) went.

    ``lots`` holds the facility's origin lots and every lot made from them
    through any chain of transformations (voided ones included, marked by
    their state and ``voided`` flag). A facility that created no origin lots
    reaches nothing.
    """

    facility_id: str
    origin_lot_ids: tuple[str, ...]  # sorted
    lots: tuple[ReachedLot, ...]  # by (created_index, lot_id)
    transformations: tuple[TransformationRecord, ...]  # by (index, event_id)

    def outstanding_by_holder(self) -> dict[str, tuple[str, ...]]:
        """Holder id -> the outstanding lots it holds or has in transit, sorted."""
        out: defaultdict[str, list[str]] = defaultdict(list)
        for reached in self.lots:
            if reached.outstanding:
                out[reached.lot.holder_id].append(reached.lot.lot_id)
        return {holder: tuple(sorted(out[holder])) for holder in sorted(out)}

    def to_json(self) -> dict[str, object]:
        return {
            "facility_id": self.facility_id,
            "origin_lot_ids": list(self.origin_lot_ids),
            "lots": [reached.to_json() for reached in self.lots],
            "transformations": [_transformation_json(t) for t in self.transformations],
            "outstanding_by_holder": {
                holder: list(lot_ids) for holder, lot_ids in self.outstanding_by_holder().items()
            },
        }


def downstream(source: ProvenanceSource, facility_id: str) -> DownstreamReach:
    """Every lot reached forward from the origin lots created at ``facility_id``.

    Breadth-first through ``consumers_of`` and each consuming transformation's
    outputs; each lot and transformation is fetched once. ``NotFoundError`` if
    the facility, or anything the walk names, is unknown.
    """
    if source.facility(facility_id) is None:
        raise NotFoundError(f"unknown facility {facility_id!r}")
    origins = [lot for lot in source.lots_created_at(facility_id) if _is_origin(lot)]
    lots = {lot.lot_id: lot for lot in origins}
    transformations: dict[str, TransformationRecord] = {}
    queue = deque(origins)
    while queue:
        lot = queue.popleft()
        for consumer in source.consumers_of(lot.lot_id):
            if consumer.event_id in transformations:
                continue  # another input of the same transformation got there first
            transformation = source.transformation(consumer.event_id)
            if transformation is None:
                raise NotFoundError(
                    f"unknown transformation {consumer.event_id!r} (consumer of lot {lot.lot_id!r})"
                )
            transformations[transformation.event_id] = transformation
            for output_id in transformation.outputs:
                if output_id not in lots:
                    lots[output_id] = _lot(source, output_id, f"transformation {consumer.event_id}")
                    queue.append(lots[output_id])
    return DownstreamReach(
        facility_id=facility_id,
        origin_lot_ids=tuple(sorted(lot.lot_id for lot in origins)),
        lots=tuple(ReachedLot(lot) for lot in sorted(lots.values(), key=_by_creation)),
        transformations=tuple(sorted(transformations.values(), key=_by_index_then_event)),
    )
