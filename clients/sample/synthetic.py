"""Synthetic custody entries for benchmarks: any number, all valid, streamed.

``synthetic_submissions(count, seed=...)`` yields exactly ``count`` signed
submissions: a governance preamble (genesis with one administrator and
threshold 1, then partner admissions and facility registrations, see
``synthetic_genesis_count()``), then a steady mix of events that the
admission rules accept in order: extractions, dispatch/receipt pairs (some
with a small transit loss), blends at traders, refining at refiners,
cathode production and cell manufacture at makers, assays (now and then
superseded by a re-assay) and occasional certifications.

Material flows mine -> trader -> refiner -> maker (mines sometimes ship
straight to a refiner). The generator keeps just the state that validity
needs: which lots are held by whom and how much of each is left, which are
in transit and under which open dispatch. Lots leave that state once fully
consumed, and end products (cells, copper cathode sold outside) are
forgotten at once; extraction pauses while ``max_tracked_lots`` lots are
tracked, so memory stays bounded however many events are generated.

Everything is drawn from one ``random.Random(seed)`` (event ids included)
and Ed25519 signatures are deterministic, so a seed fixes every byte.
Signing (~25 us an entry) dominates the cost; the rest is kept cheap.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from itertools import accumulate
from typing import TypeVar

from clients.sample.consortium import signed_submission, utc_seconds
from custody.v1 import event_pb2, governance_pb2
from ledger.admission import Submission
from ledger.domain.records import EVENT_PAYLOAD_TYPE, GOVERNANCE_PAYLOAD_TYPE
from ledger.dsse import Signer
from ledger.keys import private_key_from_seed

KEY_SEED_PREFIX = b"custody-synthetic:"
"""Each synthetic partner's Ed25519 seed is SHA-256(KEY_SEED_PREFIX + partner id)."""

START_TIME = utc_seconds("2026-01-01T00:00:00Z")
"""First event time; events advance 1-15 s each, so 1,000,000 events end in April 2026."""

ADMIN_ID = "synthetic-admin"
DEFAULT_MAX_TRACKED_LOTS = 2_000

_DAY = 86_400
# RFC 4122 version 4: variant bits 10 at bits 62-63, version 4 at bits 76-79.
_UUID_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID_V4_BITS = (0x8000 << 48) | (0x4000 << 64)
T = TypeVar("T")
_PPM_FULL = 1_000_000
# Grade of the refined products; their mass follows from the metal recovered.
_COBALT_SULFATE_PPM = 205_000
_NICKEL_SULFATE_PPM = 222_000
_COPPER_CATHODE_PPM = 999_900
_CATHODE_METAL_PPM = 600_000  # Ni + Co in a layered oxide cathode, roughly


class _Kind(Enum):
    MINE = "mine"
    TRADER = "trader"
    REFINER = "refiner"
    MAKER = "maker"
    LAB = "lab"
    AUDITOR = "auditor"


class _Stage(IntEnum):
    """Where a lot is in the chain; decides what its holder does with it next."""

    ORE = 0  # mine product: hydroxide, MHP, concentrate, ore
    FEED = 1  # trader's blend, ready for a refiner
    SULFATE = 2  # refined chemical, ready for a cathode maker
    CATHODE = 3  # cathode active material, ready for cells


class _Draw:
    """Seeded draws, cheaper than random.Random's own helpers (randint costs ~1 us).

    Seeded on purpose: the same seed must give the same log.
    """

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)  # noqa: S311
        self._random = self._rng.random

    def below(self, n: int) -> int:
        """0 <= result < n."""
        return int(self._random() * n)

    def between(self, low: int, high: int) -> int:
        """low <= result <= high."""
        return low + int(self._random() * (high - low + 1))

    def pick(self, items: Sequence[T]) -> T:
        return items[int(self._random() * len(items))]

    def chance(self, probability: float) -> bool:
        return self._random() < probability

    def uuid4(self) -> str:
        """The same string as str(uuid.UUID(int=getrandbits(128), version=4)), built faster."""
        value = (self._rng.getrandbits(128) & _UUID_CLEAR) | _UUID_V4_BITS
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class _OreProfile:
    material: str
    ranges: tuple[tuple[str, int, int], ...]  # (element, lowest ppm, highest ppm)

    def draw(self, draw: _Draw) -> tuple[tuple[str, int], ...]:
        return tuple(sorted((e, draw.between(low, high)) for e, low, high in self.ranges))


_HYDROXIDE = _OreProfile("cobalt hydroxide", (("Co", 250_000, 380_000), ("Cu", 5_000, 40_000)))
_MHP = _OreProfile(
    "nickel-cobalt mixed hydroxide precipitate (MHP)",
    (("Ni", 330_000, 420_000), ("Co", 25_000, 45_000)),
)
_SULFIDE = _OreProfile(
    "nickel sulfide concentrate",
    (("Ni", 100_000, 180_000), ("Co", 3_000, 8_000), ("Cu", 5_000, 25_000)),
)
_HETEROGENITE = _OreProfile(
    "heterogenite ore, hand-sorted", (("Co", 80_000, 160_000), ("Cu", 20_000, 60_000))
)

# (country, place, latitude e6, longitude e6, profile, artisanal)
_MINE_SITES: tuple[tuple[str, str, int, int, _OreProfile, bool], ...] = (
    ("CD", "Kolwezi", -10_716_000, 25_472_000, _HYDROXIDE, False),
    ("CD", "Likasi", -10_981_000, 26_733_000, _HYDROXIDE, False),
    ("CD", "Kambove", -10_876_000, 26_597_000, _HYDROXIDE, False),
    ("CD", "Kasulo", -10_702_000, 25_481_000, _HETEROGENITE, True),
    ("CD", "Kapata", -10_760_000, 25_420_000, _HETEROGENITE, True),
    ("ZM", "Chingola", -12_529_000, 27_853_000, _HYDROXIDE, False),
    ("ID", "Weda Bay", 470_000, 127_947_000, _MHP, False),
    ("ID", "Morowali", -2_832_000, 122_155_000, _MHP, False),
    ("ID", "Pomalaa", -4_183_000, 121_612_000, _MHP, False),
    ("PH", "Palawan", 8_547_000, 117_424_000, _MHP, False),
    ("AU", "Kalgoorlie", -30_749_000, 121_466_000, _SULFIDE, False),
    ("AU", "Murrin Murrin", -28_770_000, 121_893_000, _MHP, False),
    ("CA", "Sudbury", 46_491_000, -80_993_000, _SULFIDE, False),
    ("NC", "Goro", -22_283_000, 166_958_000, _MHP, False),
    ("CU", "Moa", 20_657_000, -74_940_000, _MHP, False),
    ("MG", "Ambatovy", -18_833_000, 48_316_000, _MHP, False),
)
# (country, place, latitude e6, longitude e6)
_TRADER_HUBS = (
    ("ZA", "Durban", -29_871_000, 31_025_000),
    ("TZ", "Dar es Salaam", -6_832_000, 39_289_000),
    ("SG", "Jurong", 1_304_000, 103_700_000),
    ("AE", "Jebel Ali", 25_011_000, 55_061_000),
    ("NL", "Rotterdam", 51_905_000, 4_466_000),
    ("CN", "Shanghai", 31_352_000, 121_629_000),
)
_REFINERIES = (
    ("FI", "Kokkola", 63_858_000, 23_039_000),
    ("FI", "Harjavalta", 61_314_000, 22_142_000),
    ("BE", "Olen", 51_175_000, 4_895_000),
    ("NO", "Kristiansand", 58_133_000, 7_974_000),
    ("CN", "Quzhou", 28_936_000, 118_873_000),
    ("JP", "Niihama", 33_960_000, 133_283_000),
)
_PLANTS = (
    ("KR", "Ochang", 36_716_000, 127_436_000),
    ("PL", "Wroclaw", 51_107_000, 17_038_000),
    ("HU", "Debrecen", 47_531_000, 21_625_000),
    ("DE", "Salzgitter", 52_151_000, 10_334_000),
    ("SE", "Skelleftea", 64_744_000, 21_055_000),
    ("US", "Clarksville", 36_530_000, -87_359_000),
)
_LABS = (
    ("ZA", "Johannesburg", -26_204_000, 28_047_000),
    ("FI", "Outokumpu", 62_725_000, 29_017_000),
    ("CN", "Changsha", 28_228_000, 112_939_000),
)
_AUDITOR_COUNTRIES = ("DE", "GB")

_ROLE_OF = {
    _Kind.MINE: "ROLE_MINE",
    _Kind.TRADER: "ROLE_TRADER",
    _Kind.REFINER: "ROLE_PROCESSOR",
    _Kind.MAKER: "ROLE_MANUFACTURER",
    _Kind.LAB: "ROLE_LAB",
    _Kind.AUDITOR: "ROLE_AUDITOR",
}
_FACILITY_TYPE_OF = {
    _Kind.MINE: "FACILITY_TYPE_MINE_SITE",
    _Kind.TRADER: "FACILITY_TYPE_WAREHOUSE",
    _Kind.REFINER: "FACILITY_TYPE_REFINERY",
    _Kind.MAKER: "FACILITY_TYPE_PLANT",
    _Kind.LAB: "FACILITY_TYPE_LABORATORY",
}
_OUTGOING_STAGE = {_Kind.MINE: _Stage.ORE, _Kind.TRADER: _Stage.FEED, _Kind.REFINER: _Stage.SULFATE}
_LEGAL_FORM = {"mine": "Mining SA", "trader": "Metals Trading Ltd", "refiner": "Refining Ltd"}
_TRANSPORT = ("road", "rail", "sea, bulk carrier", "sea, containers", "road and sea")

# How often each action is tried first; when it is not possible the others are
# tried in _FALLBACK order, so something always happens.
_ACTION_WEIGHTS = (
    ("extraction", 12),
    ("dispatch", 30),
    ("receipt", 30),
    ("transformation", 16),
    ("assay", 10),
    ("certification", 2),
)
_FALLBACK = ("receipt", "dispatch", "transformation", "extraction", "assay")


@dataclass(frozen=True)
class _Partner:
    partner_id: str
    kind: _Kind
    legal_name: str
    country: str
    signer: Signer
    facility_id: str = ""  # auditors have none
    place: str = ""
    latitude_e6: int = 0
    longitude_e6: int = 0
    rmi_smelter_id: str = ""
    ore: _OreProfile | None = None  # mines only
    artisanal: bool = False


@dataclass(slots=True)
class _Lot:
    lot_id: str
    holder: str
    available: int
    contents: tuple[tuple[str, int], ...]
    stage: _Stage


@dataclass(slots=True)
class _Holdings:
    """A partner's lots held and not in transit, oldest first, by stage."""

    by_stage: dict[_Stage, dict[str, None]] = field(
        default_factory=lambda: {stage: {} for stage in _Stage}
    )

    def add(self, lot: _Lot) -> None:
        self.by_stage[lot.stage][lot.lot_id] = None

    def remove(self, lot: _Lot) -> None:
        del self.by_stage[lot.stage][lot.lot_id]

    def oldest(self, stage: _Stage, limit: int) -> list[str]:
        lots = self.by_stage[stage]
        return [lot_id for lot_id, _ in zip(lots, range(limit), strict=False)]


def _signer_for(partner_id: str) -> Signer:
    seed = hashlib.sha256(KEY_SEED_PREFIX + partner_id.encode("ascii")).digest()
    return Signer(private_key_from_seed(seed))


def _build_partners() -> list[_Partner]:
    partners: list[_Partner] = []
    for i, (country, place, lat, lon, ore, artisanal) in enumerate(_MINE_SITES, 1):
        partner_id = f"mine-{i:02d}"
        name = f"{place} Artisanal Cooperative" if artisanal else f"{place} {_LEGAL_FORM['mine']}"
        partners.append(
            _Partner(
                partner_id, _Kind.MINE, name, country, _signer_for(partner_id),
                f"{partner_id}-site", f"{place} mine site", lat, lon, ore=ore, artisanal=artisanal,
            )
        )  # fmt: skip
    for kind, sites, facility_word, legal in (
        (_Kind.TRADER, _TRADER_HUBS, "warehouse", _LEGAL_FORM["trader"]),
        (_Kind.REFINER, _REFINERIES, "refinery", _LEGAL_FORM["refiner"]),
        (_Kind.MAKER, _PLANTS, "battery materials and cell plant", "Battery Works"),
        (_Kind.LAB, _LABS, "assay laboratory", "Assay Laboratories"),
    ):
        for i, (country, place, lat, lon) in enumerate(sites, 1):
            partner_id = f"{kind.value}-{i:02d}"
            rmi = f"CID0050{i:02d}" if kind is _Kind.REFINER else ""
            partners.append(
                _Partner(
                    partner_id, kind, f"{place} {legal}", country, _signer_for(partner_id),
                    f"{partner_id}-{facility_word.split()[0]}", f"{place} {facility_word}",
                    lat, lon, rmi_smelter_id=rmi,
                )
            )  # fmt: skip
    for i, country in enumerate(_AUDITOR_COUNTRIES, 1):
        partner_id = f"auditor-{i:02d}"
        partners.append(
            _Partner(
                partner_id, _Kind.AUDITOR, f"Assurance Partners {i:02d}", country,
                _signer_for(partner_id),
            )
        )  # fmt: skip
    return partners


_PARTNERS = _build_partners()
_ADMIN_SIGNER = _signer_for(ADMIN_ID)


def synthetic_genesis_count() -> int:
    """How many of the first synthetic entries are governance (genesis, admissions, facilities)."""
    return 1 + len(_PARTNERS) + sum(1 for p in _PARTNERS if p.facility_id)


def synthetic_submissions(count: int, *, seed: int = 0) -> Iterator[Submission]:
    """Exactly ``count`` valid submissions: the governance preamble, then events."""
    return SyntheticLog(seed=seed).submissions(count)


class SyntheticLog:
    """A seeded stream of valid entries; one instance generates one log."""

    def __init__(self, *, seed: int = 0, max_tracked_lots: int = DEFAULT_MAX_TRACKED_LOTS) -> None:
        self._draw = _Draw(seed)
        self._max_tracked_lots = max_tracked_lots
        self._partners = {p.partner_id: p for p in _PARTNERS}
        by_kind: dict[_Kind, list[_Partner]] = {kind: [] for kind in _Kind}
        for partner in _PARTNERS:
            by_kind[partner.kind].append(partner)
        self._mines = by_kind[_Kind.MINE]
        self._traders = by_kind[_Kind.TRADER]
        self._refiners = by_kind[_Kind.REFINER]
        self._makers = by_kind[_Kind.MAKER]
        self._labs = by_kind[_Kind.LAB]
        self._auditors = by_kind[_Kind.AUDITOR]
        self._senders = self._mines + self._traders + self._refiners
        self._transformers = self._traders + self._refiners + self._makers
        self._holdings = {p.partner_id: _Holdings() for p in _PARTNERS}
        self._lots: dict[str, _Lot] = {}  # tracked lots: held (maybe partly used) or in transit
        self._open_dispatches: deque[tuple[str, str, str]] = deque()  # (event id, lot, addressee)
        # Recently created lots (even forgotten ones still exist in the log) for assays.
        self._recent_lots: deque[tuple[str, tuple[tuple[str, int], ...]]] = deque(maxlen=512)
        self._lot_counters: dict[str, int] = {}
        self._pending: deque[tuple[_Partner, event_pb2.Event]] = deque()
        self._time = START_TIME
        self._actions = tuple(action for action, _ in _ACTION_WEIGHTS)
        self._cumulative_weights = tuple(accumulate(weight for _, weight in _ACTION_WEIGHTS))

    @property
    def genesis_count(self) -> int:
        return synthetic_genesis_count()

    @property
    def tracked_lots(self) -> int:
        """Lots the generator currently remembers (bounded by ``max_tracked_lots`` and a margin)."""
        return len(self._lots)

    def submissions(self, count: int) -> Iterator[Submission]:
        """Exactly ``count`` submissions, continuing this log's stream."""
        produced = 0
        if produced < count:
            for submission in self._preamble():
                yield submission
                produced += 1
                if produced == count:
                    return
        while produced < count:
            if not self._pending:
                self._step()
            partner, event = self._pending.popleft()
            yield signed_submission(EVENT_PAYLOAD_TYPE, event, [partner.signer])
            produced += 1

    # --- governance -------------------------------------------------------------

    def _preamble(self) -> Iterator[Submission]:
        admin = governance_pb2.PartnerSpec(
            partner_id=ADMIN_ID,
            legal_name="Synthetic Consortium Operator",
            country="NL",
            roles=["ROLE_ADMIN"],
            public_keys=[_ADMIN_SIGNER.public_key],
        )
        yield self._governance(
            governance_pb2.Governance(
                genesis=governance_pb2.Genesis(
                    consortium="Synthetic benchmark consortium", administrators=[admin], threshold=1
                )
            )
        )
        for partner in _PARTNERS:
            spec = governance_pb2.PartnerSpec(
                partner_id=partner.partner_id,
                legal_name=partner.legal_name,
                country=partner.country,
                roles=[_ROLE_OF[partner.kind]],
                public_keys=[partner.signer.public_key],
            )
            yield self._governance(
                governance_pb2.Governance(
                    partner_admission=governance_pb2.PartnerAdmission(partner=spec)
                )
            )
        for partner in _PARTNERS:
            if not partner.facility_id:
                continue
            registration = governance_pb2.FacilityRegistration(
                facility_id=partner.facility_id,
                partner_id=partner.partner_id,
                name=partner.place,
                type=_FACILITY_TYPE_OF[partner.kind],
                country=partner.country,
                latitude_e6=partner.latitude_e6,
                longitude_e6=partner.longitude_e6,
                rmi_smelter_id=partner.rmi_smelter_id,
                artisanal=partner.artisanal,
            )
            yield self._governance(governance_pb2.Governance(facility_registration=registration))

    def _governance(self, governance: governance_pb2.Governance) -> Submission:
        governance.action_id = self._new_id()
        return signed_submission(GOVERNANCE_PAYLOAD_TYPE, governance, [_ADMIN_SIGNER])

    # --- events -----------------------------------------------------------------

    def _step(self) -> None:
        """Queue the next event(s): the drawn action if possible, else the first that is."""
        first = self._actions[bisect_right(self._cumulative_weights, self._draw.below(100))]
        for action in (first, *_FALLBACK):
            if getattr(self, f"_{action}")():
                return
        raise AssertionError("no action possible")  # pragma: no cover - assay always is

    def _new_id(self) -> str:
        return self._draw.uuid4()

    def _new_event(self, partner: _Partner, kind: str, document: str) -> event_pb2.Event:
        self._time += self._draw.between(1, 15)
        event = event_pb2.Event(event_id=self._new_id(), partner_id=partner.partner_id)
        event.event_time.seconds = self._time
        name = f"{partner.partner_id}-{document}-{self._time}.pdf"
        event.evidence.add(
            uri=f"https://docs.{partner.partner_id}.example/{name}",
            sha256=hashlib.sha256(name.encode("ascii")).digest(),
            kind=kind,
        )
        self._pending.append((partner, event))
        return event

    def _new_lot_id(self, partner: _Partner) -> str:
        counter = self._lot_counters.get(partner.partner_id, 0) + 1
        self._lot_counters[partner.partner_id] = counter
        return f"LOT-{partner.partner_id}-{counter}"

    def _track(self, lot: _Lot) -> None:
        self._lots[lot.lot_id] = lot
        self._holdings[lot.holder].add(lot)

    def _extraction(self) -> bool:
        if len(self._lots) >= self._max_tracked_lots:
            return False
        mine = self._draw.pick(self._mines)
        assert mine.ore is not None
        lot_id = self._new_lot_id(mine)
        mass = self._draw.between(5_000, 40_000) * 1_000
        contents = mine.ore.draw(self._draw)
        event = self._new_event(mine, "production_report", "PROD")
        body = event.extraction
        body.facility_id = mine.facility_id
        body.lot_id = lot_id
        body.material = mine.ore.material
        body.mass_grams = mass
        body.contents.extend(_contents(contents))
        self._track(_Lot(lot_id, mine.partner_id, mass, contents, _Stage.ORE))
        self._recent_lots.append((lot_id, contents))
        return True

    def _dispatch(self) -> bool:
        # The sender with the most lots to ship goes first (ties: a random one).
        start = self._draw.below(len(self._senders))
        order = self._senders[start:] + self._senders[:start]
        sender = max(order, key=lambda partner: len(self._outgoing(partner)))
        lot_id = next(iter(self._outgoing(sender)), None)
        if lot_id is None:
            return False
        lot = self._lots[lot_id]
        addressee = self._addressee(sender)
        event = self._new_event(sender, "bill_of_lading", "BL")
        body = event.dispatch
        body.lot_id = lot_id
        body.to_partner_id = addressee.partner_id
        body.mass_grams = lot.available  # a dispatch sends the whole lot
        body.from_facility_id = sender.facility_id
        body.to_facility_id = addressee.facility_id
        body.transport = self._draw.pick(_TRANSPORT)
        self._holdings[sender.partner_id].remove(lot)
        self._open_dispatches.append((event.event_id, lot_id, addressee.partner_id))
        return True

    def _outgoing(self, sender: _Partner) -> dict[str, None]:
        """The lots a sender ships, oldest first: mines their ore, traders their blends,
        refiners their sulfates (a trader's lone unblended lot waits for a blend partner)."""
        return self._holdings[sender.partner_id].by_stage[_OUTGOING_STAGE[sender.kind]]

    def _addressee(self, sender: _Partner) -> _Partner:
        if sender.kind is _Kind.MINE:
            if self._draw.chance(0.15):
                return self._draw.pick(self._refiners)
            return self._draw.pick(self._traders)
        if sender.kind is _Kind.TRADER:
            return self._draw.pick(self._refiners)
        return self._draw.pick(self._makers)

    def _receipt(self) -> bool:
        if not self._open_dispatches:
            return False
        # Transit times differ: take one of the oldest few, not always the oldest.
        position = self._draw.below(min(len(self._open_dispatches), 8))
        dispatch_id, lot_id, addressee_id = self._open_dispatches[position]
        del self._open_dispatches[position]
        lot = self._lots[lot_id]
        addressee = self._partners[addressee_id]
        received = lot.available
        if self._draw.chance(0.3):  # a small loss in transit (up to 0.05 %)
            received -= self._draw.between(1, max(1, lot.available // 2_000))
        event = self._new_event(addressee, "goods_received_note", "GRN")
        body = event.receipt
        body.dispatch_event_id = dispatch_id
        body.lot_id = lot_id
        body.received_mass_grams = received
        body.facility_id = addressee.facility_id
        lot.holder = addressee_id
        lot.available = min(lot.available, received)
        self._holdings[addressee_id].add(lot)
        return True

    def _transformation(self) -> bool:
        # The partner with the most lots waiting goes first, so no stage piles up.
        start = self._draw.below(len(self._transformers))
        order = self._transformers[start:] + self._transformers[:start]
        for partner in sorted(order, key=self._waiting, reverse=True):
            if self._waiting(partner) == 0:
                return False
            if self._transform_at(partner):
                return True
        return False

    def _waiting(self, partner: _Partner) -> int:
        """How many lots the partner holds that it would transform."""
        held = self._holdings[partner.partner_id].by_stage
        if partner.kind is _Kind.TRADER:
            return len(held[_Stage.ORE]) if len(held[_Stage.ORE]) >= 2 else 0
        if partner.kind is _Kind.REFINER:
            return len(held[_Stage.ORE]) + len(held[_Stage.FEED])
        return len(held[_Stage.SULFATE]) + len(held[_Stage.CATHODE])

    def _transform_at(self, partner: _Partner) -> bool:
        if partner.kind is _Kind.TRADER:
            return self._blend_at(partner)
        if partner.kind is _Kind.REFINER:
            return self._refine_at(partner)
        return self._manufacture_at(partner)

    def _blend_at(self, trader: _Partner) -> bool:
        lot_ids = self._holdings[trader.partner_id].oldest(_Stage.ORE, self._draw.between(2, 4))
        if len(lot_ids) < 2:
            return False
        self._blend(trader, [(self._lots[i], self._lots[i].available) for i in lot_ids])
        return True

    def _refine_at(self, refiner: _Partner) -> bool:
        holdings = self._holdings[refiner.partner_id]
        lot_ids = holdings.oldest(_Stage.FEED, 3) + holdings.oldest(_Stage.ORE, 3)
        if not lot_ids:
            return False
        chosen = lot_ids[: self._draw.between(1, 3)]
        return self._refine(
            refiner, [(self._lots[i], self._consumed(self._lots[i])) for i in chosen]
        )

    def _manufacture_at(self, maker: _Partner) -> bool:
        holdings = self._holdings[maker.partner_id]
        cathode_ids = holdings.oldest(_Stage.CATHODE, self._draw.between(1, 2))
        if cathode_ids:
            inputs = [(self._lots[i], self._lots[i].available) for i in cathode_ids]
            self._make_cells(maker, inputs)
            return True
        sulfate_ids = holdings.oldest(_Stage.SULFATE, self._draw.between(2, 6))
        if not sulfate_ids:
            return False
        inputs = [(self._lots[i], self._consumed(self._lots[i])) for i in sulfate_ids]
        return self._make_cathode(maker, inputs)

    def _consumed(self, lot: _Lot) -> int:
        """All of a lot, or now and then (big lots only) 40-80 % of it."""
        if lot.available >= 4_000_000 and self._draw.chance(0.25):
            return lot.available * self._draw.between(40, 80) // 100
        return lot.available

    def _blend(self, trader: _Partner, inputs: list[tuple[_Lot, int]]) -> None:
        contained = _contained(inputs)
        total = sum(consumed for _, consumed in inputs)
        out_mass = total * 995 // 1000  # handling losses
        # 99 % of each metal over 99.5 % of the mass: ppm sums stay within 1,000,000.
        contents = _positive((e, c * 99 // (100 * out_mass)) for e, c in contained.items())
        self._transform(
            trader, event_pb2.PROCESS_BLEND, inputs,
            [("cobalt feed blend", out_mass, contents, _Stage.FEED)],
        )  # fmt: skip

    def _refine(self, refiner: _Partner, inputs: list[tuple[_Lot, int]]) -> bool:
        contained = _contained(inputs)
        outputs: list[tuple[str, int, tuple[tuple[str, int], ...], _Stage | None]] = []
        for element, material, grade, recovery_pct, stage in (
            ("Co", "cobalt sulfate heptahydrate", _COBALT_SULFATE_PPM, 97, _Stage.SULFATE),
            ("Ni", "nickel sulfate hexahydrate", _NICKEL_SULFATE_PPM, 97, _Stage.SULFATE),
            ("Cu", "copper cathode, grade A", _COPPER_CATHODE_PPM, 96, None),  # sold outside
        ):
            mass = contained.get(element, 0) * recovery_pct // (100 * grade)
            if mass > 0:
                outputs.append((material, mass, ((element, grade),), stage))
        if not outputs:
            return False
        self._transform(refiner, event_pb2.PROCESS_REFINING, inputs, outputs)
        return True

    def _make_cathode(self, maker: _Partner, inputs: list[tuple[_Lot, int]]) -> bool:
        contained = _contained(inputs)
        metal = contained.get("Co", 0) + contained.get("Ni", 0)
        out_mass = metal * 96 // (100 * _CATHODE_METAL_PPM)
        if out_mass == 0:
            return False
        contents = _positive((e, c * 96 // (100 * out_mass)) for e, c in contained.items())
        self._transform(
            maker, event_pb2.PROCESS_CATHODE_PRODUCTION, inputs,
            [("cathode active material", out_mass, contents, _Stage.CATHODE)],
        )  # fmt: skip
        return True

    def _make_cells(self, maker: _Partner, inputs: list[tuple[_Lot, int]]) -> None:
        contained = _contained(inputs)
        out_mass = 3 * sum(consumed for _, consumed in inputs)  # the cathode is ~1/3 of a cell
        contents = _positive((e, c * 99 // (100 * out_mass)) for e, c in contained.items())
        self._transform(
            maker, event_pb2.PROCESS_CELL_MANUFACTURE, inputs,
            [("lithium-ion cells", out_mass, contents, None)],  # end product: forgotten
        )  # fmt: skip

    def _transform(
        self,
        partner: _Partner,
        process: event_pb2.Process,
        inputs: list[tuple[_Lot, int]],
        outputs: list[tuple[str, int, tuple[tuple[str, int], ...], _Stage | None]],
    ) -> None:
        """Queue the event, use up the inputs, track outputs whose stage says they go on."""
        event = self._new_event(partner, "production_batch_record", "BATCH")
        body = event.transformation
        body.facility_id = partner.facility_id
        body.process = process
        for lot, consumed in inputs:
            body.inputs.add(lot_id=lot.lot_id, consumed_mass_grams=consumed)
            lot.available -= consumed
            if lot.available == 0:  # consumed: nothing can refer to it for custody any more
                self._holdings[partner.partner_id].remove(lot)
                del self._lots[lot.lot_id]
        for material, mass, contents, stage in outputs:
            lot_id = self._new_lot_id(partner)
            output = body.outputs.add(lot_id=lot_id, material=material, mass_grams=mass)
            output.contents.extend(_contents(contents))
            self._recent_lots.append((lot_id, contents))
            if stage is not None:
                self._track(_Lot(lot_id, partner.partner_id, mass, contents, stage))

    def _assay(self) -> bool:
        if not self._recent_lots:
            return False
        lot_id, declared = self._recent_lots[self._draw.below(len(self._recent_lots))]
        lab = self._draw.pick(self._labs)
        first = self._queue_assay(lab, lot_id, declared)
        if self._draw.chance(0.02):  # a re-assay supersedes the first one
            second = self._queue_assay(lab, lot_id, declared)
            event = self._new_event(lab, "nonconformity_report", "NCR")
            event.correction.target_event_id = first
            event.correction.action = event_pb2.CORRECTION_ACTION_SUPERSEDE
            event.correction.replacement_event_id = second
            event.correction.reason = "re-assay after a calibration drift"
        return True

    def _queue_assay(
        self, lab: _Partner, lot_id: str, declared: tuple[tuple[str, int], ...]
    ) -> str:
        measured = tuple(
            (e, min(_PPM_FULL, p * self._draw.between(985, 1015) // 1000)) for e, p in declared
        )
        if sum(p for _, p in measured) > _PPM_FULL:
            measured = declared
        event = self._new_event(lab, "assay_report", "ASSAY")
        body = event.assay
        body.lot_id = lot_id
        body.contents.extend(_contents(measured))
        body.method = self._draw.pick(("ICP-OES", "ICP-MS", "XRF"))
        body.sample_id = f"{lab.partner_id}-{event.event_id[:8]}"
        return event.event_id

    def _certification(self) -> bool:
        auditor = self._draw.pick(self._auditors)
        refiner = self._draw.pick(self._refiners)
        event = self._new_event(auditor, "rmap_assessment_report", "RMAP")
        body = event.certification
        body.scheme = "RMAP"
        body.facility_id = refiner.facility_id
        body.metals.extend(("Co", "Ni") if self._draw.chance(0.5) else ("Co",))
        body.status = (
            event_pb2.CERTIFICATION_STATUS_CONFORMANT
            if self._draw.chance(0.9)
            else event_pb2.CERTIFICATION_STATUS_ACTIVE
        )
        body.valid_from.seconds = self._time - 30 * _DAY
        body.valid_until.seconds = self._time + 335 * _DAY
        return True


def _contained(inputs: list[tuple[_Lot, int]]) -> dict[str, int]:
    """Micrograms of each element the consumed inputs bring."""
    contained: dict[str, int] = {}
    for lot, consumed in inputs:
        for element, ppm in lot.contents:
            contained[element] = contained.get(element, 0) + consumed * ppm
    return contained


def _positive(pairs: Iterable[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((e, ppm) for e, ppm in pairs if ppm > 0))


def _contents(pairs: tuple[tuple[str, int], ...]) -> list[event_pb2.ElementContent]:
    return [event_pb2.ElementContent(element=e, ppm=ppm) for e, ppm in pairs]
