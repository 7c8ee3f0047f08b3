"""The sample consortium and the synthetic generator produce valid, consistent entries.

The checks here recompute everything from the signed payloads alone (they do
not trust the generators' own bookkeeping): signatures, unique ids, custody
(who holds what, how much is left, what is in transit), per-element mass
balance, and the hand-worked cobalt origins of the sample's final lot. The
last tests run the entries through the real sequencer with the admission
rules once those exist.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import pytest

from clients.sample import (
    EXPECTED_COBALT_ORIGINS,
    FINAL_LOT_ID,
    SAMPLE_FACILITIES,
    SampleEntry,
    partner_signer,
    sample_entries,
    synthetic_genesis_count,
    synthetic_submissions,
    trace_lot_id,
)
from clients.sample.consortium import ADMINISTRATORS, GOVERNANCE_THRESHOLD, utc_seconds
from clients.sample.synthetic import SyntheticLog
from custody.v1 import event_pb2, governance_pb2
from ledger.admission import Submission
from ledger.domain.records import EVENT_PAYLOAD_TYPE, GOVERNANCE_PAYLOAD_TYPE
from ledger.dsse import keyid_for, verify_envelope
from ledger.errors import CustodyError
from ledger.note import NoteSigner
from ledger.receipts import Receipt
from ledger.sequencer import Sequencer, initialise_log
from ledger.storage import LogStore

Contents = dict[str, int]

_RULES_MISSING = importlib.util.find_spec("ledger.custody_rules") is None


@pytest.fixture(scope="module")
def entries() -> list[SampleEntry]:
    return sample_entries()


@pytest.fixture(scope="module")
def synthetic() -> list[Submission]:
    return list(synthetic_submissions(3_000, seed=7))


def _payloads(
    submissions: Iterable[Submission],
) -> list[event_pb2.Event | governance_pb2.Governance]:
    decoded: list[event_pb2.Event | governance_pb2.Governance] = []
    for submission in submissions:
        envelope = submission.envelope
        if envelope.payload_type == EVENT_PAYLOAD_TYPE:
            decoded.append(event_pb2.Event.FromString(envelope.payload))
        else:
            assert envelope.payload_type == GOVERNANCE_PAYLOAD_TYPE
            decoded.append(governance_pb2.Governance.FromString(envelope.payload))
    return decoded


def _events(submissions: Iterable[Submission]) -> list[event_pb2.Event]:
    return [p for p in _payloads(submissions) if isinstance(p, event_pb2.Event)]


def _contents(items: Iterable[event_pb2.ElementContent]) -> Contents:
    return {item.element: item.ppm for item in items}


# --- a custody model recomputed from the payloads -----------------------------------


@dataclass
class _Lot:
    holder: str
    available: int
    contents: Contents
    in_transit: bool = False


@dataclass
class _Custody:
    """Who holds what: every event checked against the rules it must obey."""

    lots: dict[str, _Lot] = field(default_factory=dict)
    open_dispatches: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> lot, to
    created_by: dict[str, str] = field(default_factory=dict)  # origin event id -> lot
    transformations: list[event_pb2.Event] = field(default_factory=list)
    dispatches: int = 0

    def apply(self, event: event_pb2.Event) -> None:
        body = event.WhichOneof("body")
        partner = event.partner_id
        if body in ("extraction", "recovery"):
            origin = getattr(event, body)
            self._create(origin.lot_id, partner, origin.mass_grams, _contents(origin.contents))
            self.created_by[event.event_id] = origin.lot_id
        elif body == "dispatch":
            lot = self._held(event.dispatch.lot_id, partner)
            assert event.dispatch.mass_grams == lot.available, "a dispatch sends the whole lot"
            assert event.dispatch.to_partner_id != partner
            lot.in_transit = True
            self.open_dispatches[event.event_id] = (
                event.dispatch.lot_id,
                event.dispatch.to_partner_id,
            )
            self.dispatches += 1
        elif body == "receipt":
            lot_id, addressee = self.open_dispatches.pop(event.receipt.dispatch_event_id)
            assert (lot_id, addressee) == (event.receipt.lot_id, partner)
            lot = self.lots[lot_id]
            lot.holder, lot.in_transit = partner, False
            lot.available = min(lot.available, event.receipt.received_mass_grams)
        elif body == "transformation":
            self._transform(event)
        elif body == "correction" and event.correction.action == event_pb2.CORRECTION_ACTION_VOID:
            # Only untouched origin lots are voided in these data.
            lot_id = self.created_by[event.correction.target_event_id]
            lot = self.lots.pop(lot_id)
            assert lot.holder == partner
            assert not lot.in_transit

    def _create(self, lot_id: str, holder: str, mass: int, contents: Contents) -> None:
        assert lot_id not in self.lots, f"lot id {lot_id} reused"
        assert mass > 0
        assert sum(contents.values()) <= 1_000_000
        self.lots[lot_id] = _Lot(holder, mass, contents)

    def _held(self, lot_id: str, partner: str) -> _Lot:
        lot = self.lots[lot_id]
        assert lot.holder == partner, f"{partner} does not hold {lot_id}"
        assert not lot.in_transit, f"{lot_id} is in transit"
        return lot

    def _transform(self, event: event_pb2.Event) -> None:
        body = event.transformation
        assert body.inputs
        assert body.outputs
        assert len({i.lot_id for i in body.inputs}) == len(body.inputs)
        for item in body.inputs:
            lot = self._held(item.lot_id, event.partner_id)
            assert 0 < item.consumed_mass_grams <= lot.available
        brought, made = mass_balance(
            body, {i.lot_id: self.lots[i.lot_id].contents for i in body.inputs}
        )
        for element, micrograms in made.items():
            assert micrograms <= brought.get(element, 0), (
                f"{event.event_id}: {element} out {micrograms} > in {brought.get(element, 0)}"
            )
        for item in body.inputs:
            self.lots[item.lot_id].available -= item.consumed_mass_grams
        for output in body.outputs:
            self._create(
                output.lot_id, event.partner_id, output.mass_grams, _contents(output.contents)
            )
        self.transformations.append(event)


def mass_balance(
    body: event_pb2.Transformation, input_contents: dict[str, Contents]
) -> tuple[dict[str, int], dict[str, int]]:
    """Micrograms of each element brought by the consumed inputs and put into the outputs."""
    brought: dict[str, int] = defaultdict(int)
    for item in body.inputs:
        for element, ppm in input_contents[item.lot_id].items():
            brought[element] += item.consumed_mass_grams * ppm
    made: dict[str, int] = defaultdict(int)
    for output in body.outputs:
        for content in output.contents:
            made[content.element] += output.mass_grams * content.ppm
    return brought, made


def _replay(events: Iterable[event_pb2.Event]) -> _Custody:
    custody = _Custody()
    for event in events:
        custody.apply(event)
    return custody


# --- the sample consortium ----------------------------------------------------------


def test_sample_payloads_parse_and_envelopes_verify(entries: list[SampleEntry]) -> None:
    for entry in entries:
        envelope = entry.submission.envelope
        keys = {keyid_for(key): key for key in entry.submission.public_keys}
        signed_by = verify_envelope(envelope, keys)
        assert signed_by == tuple(partner_signer(p).keyid for p in entry.signer_ids), entry.label
        (payload,) = _payloads([entry.submission])
        if isinstance(payload, event_pb2.Event):
            assert payload.WhichOneof("body") is not None
            assert entry.signer_ids == (payload.partner_id,)
        else:
            assert payload.WhichOneof("action") is not None
            # Threshold 2: every governance entry carries both administrators' signatures.
            assert entry.signer_ids == ADMINISTRATORS
        # Serialising the parsed message again gives the signed bytes: nothing unknown.
        assert payload.SerializeToString() == envelope.payload


def test_sample_governance_comes_first_and_sets_up_the_consortium(
    entries: list[SampleEntry],
) -> None:
    payloads = _payloads(e.submission for e in entries)
    governance = [p for p in payloads if isinstance(p, governance_pb2.Governance)]
    assert payloads[: len(governance)] == governance
    genesis = governance[0].genesis
    assert governance[0].WhichOneof("action") == "genesis"
    assert genesis.threshold == GOVERNANCE_THRESHOLD == len(genesis.administrators)
    admitted = {
        g.partner_admission.partner.partner_id: g.partner_admission.partner
        for g in governance
        if g.WhichOneof("action") == "partner_admission"
    }
    registered = {
        g.facility_registration.facility_id: g.facility_registration
        for g in governance
        if g.WhichOneof("action") == "facility_registration"
    }
    assert {f.facility_id for f in SAMPLE_FACILITIES} == set(registered)
    assert all(f.partner_id in admitted for f in registered.values())
    mine_sites = [
        f for f in registered.values() if f.type == governance_pb2.FACILITY_TYPE_MINE_SITE
    ]
    assert len(mine_sites) == 3
    assert {f.country for f in mine_sites} == {"CD", "ID"}
    assert [f.facility_id for f in mine_sites if f.artisanal] == ["kasulo-asm-zone"]
    refineries = [f for f in registered.values() if f.type == governance_pb2.FACILITY_TYPE_REFINERY]
    assert [len(f.rmi_smelter_id) for f in refineries] == [9]
    roles = {role for partner in admitted.values() for role in partner.roles}
    for role in ("MINE", "TRADER", "PROCESSOR", "MANUFACTURER", "RECYCLER", "LAB", "AUDITOR"):
        assert governance_pb2.Role.Value(f"ROLE_{role}") in roles


def test_sample_ids_are_unique(entries: list[SampleEntry]) -> None:
    ids = [
        p.event_id if isinstance(p, event_pb2.Event) else p.action_id
        for p in _payloads(e.submission for e in entries)
    ]
    assert len(set(ids)) == len(ids)


def test_sample_event_times_are_in_2026_and_past(entries: list[SampleEntry]) -> None:
    events = _events(e.submission for e in entries)
    start, end = utc_seconds("2026-01-01T00:00:00Z"), utc_seconds("2027-01-01T00:00:00Z")
    for event in events:
        assert start <= event.event_time.seconds < min(end, int(time.time()))
        assert event.evidence, "every sample event rests on documents"
        assert all(len(ref.sha256) == 32 and ref.uri and ref.kind for ref in event.evidence)


def test_sample_custody_is_consistent(entries: list[SampleEntry]) -> None:
    """Holders, availability (a dispatch sends what is left, after a loss too), no double spend."""
    custody = _replay(_events(e.submission for e in entries))
    assert not custody.open_dispatches
    assert custody.dispatches == 10
    assert FINAL_LOT_ID in custody.lots
    assert trace_lot_id() == FINAL_LOT_ID
    processes = {t.transformation.process for t in custody.transformations}
    assert processes == {
        event_pb2.PROCESS_BLEND,
        event_pb2.PROCESS_REFINING,
        event_pb2.PROCESS_RECYCLING,
        event_pb2.PROCESS_CATHODE_PRODUCTION,
        event_pb2.PROCESS_CELL_MANUFACTURE,
    }


def test_sample_transformations_stay_below_mass_balance(entries: list[SampleEntry]) -> None:
    """Real yields are below 100 %: every element of every output is strictly below its input."""
    events = _events(e.submission for e in entries)
    contents: dict[str, Contents] = {}
    for event in events:
        body = event.WhichOneof("body")
        if body in ("extraction", "recovery"):
            origin = getattr(event, body)
            contents[origin.lot_id] = _contents(origin.contents)
        elif body == "transformation":
            transformation = event.transformation
            brought, made = mass_balance(transformation, contents)
            for element, micrograms in made.items():
                assert 0 < micrograms < brought[element], (element, event.event_id)
            for output in transformation.outputs:
                contents[output.lot_id] = _contents(output.contents)


def test_expected_cobalt_origins_follow_from_the_payloads(entries: list[SampleEntry]) -> None:
    """The hand-worked table in consortium.py, recomputed by proportional attribution."""
    events = _events(e.submission for e in entries)
    total, parts = _origin_composition(events, FINAL_LOT_ID, "Co")
    assert total == 1_821_600_000_000
    expected = {
        key: (share.micrograms, share.share_ppm) for key, share in EXPECTED_COBALT_ORIGINS.items()
    }
    assert parts == expected
    assert sum(m for m, _ in parts.values()) == total


def test_sample_is_deterministic(entries: list[SampleEntry]) -> None:
    again = sample_entries()
    assert [e.submission.envelope for e in again] == [e.submission.envelope for e in entries]


def _origin_composition(
    events: Sequence[event_pb2.Event], lot_id: str, element: str
) -> tuple[int, dict[str, tuple[int, int]]]:
    """Total micrograms of ``element`` in a lot, split by origin (largest remainder)."""
    facility_of_origin: dict[str, str] = {}
    made_from: dict[str, list[tuple[str, int]]] = {}
    ppm: dict[str, int] = {}
    mass: dict[str, int] = {}
    voided = {
        e.correction.target_event_id
        for e in events
        if e.WhichOneof("body") == "correction"
        and e.correction.action == event_pb2.CORRECTION_ACTION_VOID
    }
    for event in events:
        body = event.WhichOneof("body")
        if event.event_id in voided:
            continue
        if body == "extraction":
            lot = event.extraction
            facility_of_origin[lot.lot_id] = f"mine:{lot.facility_id}"
            ppm[lot.lot_id] = _contents(lot.contents).get(element, 0)
            mass[lot.lot_id] = lot.mass_grams
        elif body == "recovery":
            scrap = event_pb2.ScrapOrigin.Name(event.recovery.scrap_origin)
            scrap_origin = scrap.removeprefix("SCRAP_ORIGIN_").lower()
            recovered = event.recovery
            facility_of_origin[recovered.lot_id] = (
                f"recycled:{recovered.facility_id}:{scrap_origin}"
            )
            ppm[recovered.lot_id] = _contents(recovered.contents).get(element, 0)
            mass[recovered.lot_id] = recovered.mass_grams
        elif body == "transformation":
            inputs = [(i.lot_id, i.consumed_mass_grams) for i in event.transformation.inputs]
            for output in event.transformation.outputs:
                made_from[output.lot_id] = inputs
                ppm[output.lot_id] = _contents(output.contents).get(element, 0)
                mass[output.lot_id] = output.mass_grams

    def mix(lot: str) -> dict[str, Fraction]:
        if lot in facility_of_origin:
            return {facility_of_origin[lot]: Fraction(1)}
        weights = [(source, consumed * ppm[source]) for source, consumed in made_from[lot]]
        weight_total = sum(w for _, w in weights)
        result: dict[str, Fraction] = defaultdict(Fraction)
        for source, weight in weights:
            if weight:
                for key, share in mix(source).items():
                    result[key] += Fraction(weight, weight_total) * share
        return result

    shares = mix(lot_id)
    assert sum(shares.values()) == 1
    total = mass[lot_id] * ppm[lot_id]
    micrograms = _largest_remainder(shares, total)
    share_ppm = _largest_remainder(shares, 1_000_000)
    return total, {key: (micrograms[key], share_ppm[key]) for key in shares}


def _largest_remainder(shares: dict[str, Fraction], total: int) -> dict[str, int]:
    exact = {key: share * total for key, share in shares.items()}
    parts = {key: int(value) for key, value in exact.items()}  # floor: values are >= 0
    left = total - sum(parts.values())
    for key in sorted(exact, key=lambda k: (-(exact[k] - parts[k]), k))[:left]:
        parts[key] += 1
    return parts


# --- the synthetic generator --------------------------------------------------------


def test_synthetic_yields_exactly_count() -> None:
    preamble = synthetic_genesis_count()
    assert preamble == SyntheticLog().genesis_count
    assert preamble > 30
    for count in (0, 1, preamble - 1, preamble, preamble + 1, preamble + 250):
        assert sum(1 for _ in synthetic_submissions(count, seed=3)) == count


def test_synthetic_preamble_is_governance_then_events(synthetic: list[Submission]) -> None:
    preamble = synthetic_genesis_count()
    types = [s.envelope.payload_type for s in synthetic]
    assert set(types[:preamble]) == {GOVERNANCE_PAYLOAD_TYPE}
    assert set(types[preamble:]) == {EVENT_PAYLOAD_TYPE}
    genesis = governance_pb2.Governance.FromString(synthetic[0].envelope.payload).genesis
    assert genesis.threshold == 1
    assert len(genesis.administrators) == 1


def test_synthetic_is_deterministic_for_a_seed(synthetic: list[Submission]) -> None:
    again = list(synthetic_submissions(len(synthetic), seed=7))
    assert [s.envelope for s in again] == [s.envelope for s in synthetic]
    other = list(synthetic_submissions(len(synthetic), seed=8))
    assert [s.envelope for s in other] != [s.envelope for s in synthetic]


def test_synthetic_entries_verify_and_ids_are_unique(synthetic: list[Submission]) -> None:
    for submission in synthetic[::7]:  # every 7th: verification is the slow part
        keys = {keyid_for(key): key for key in submission.public_keys}
        verify_envelope(submission.envelope, keys)
    ids = [
        p.event_id if isinstance(p, event_pb2.Event) else p.action_id for p in _payloads(synthetic)
    ]
    assert len(set(ids)) == len(ids)


def test_synthetic_custody_and_mass_balance_hold(synthetic: list[Submission]) -> None:
    events = _events(synthetic)
    custody = _replay(events)  # asserts holders, availability and mass balance as it goes
    kinds = {e.WhichOneof("body") for e in events}
    assert {"extraction", "dispatch", "receipt", "transformation", "assay"} <= kinds
    processes = {t.transformation.process for t in custody.transformations}
    assert event_pb2.PROCESS_BLEND in processes
    assert event_pb2.PROCESS_REFINING in processes
    assert max(len(t.transformation.inputs) for t in custody.transformations) > 1
    times = [e.event_time.seconds for e in events]
    assert times == sorted(times)
    assert times[-1] < time.time()


def test_synthetic_memory_stays_bounded() -> None:
    """Extraction pauses at the cap; what is tracked then only drains (a few outputs over)."""
    log = SyntheticLog(seed=1, max_tracked_lots=20)
    for _ in log.submissions(log.genesis_count):
        pass
    # Drive the generator without signing (private API) to cover many events quickly.
    most = 0
    for _ in range(10_000):
        log._step()
        log._pending.clear()
        most = max(most, log.tracked_lots)
    assert 20 <= most <= 40


# --- through the real sequencer with the admission rules ----------------------------


def _rules_sequencer(store: LogStore, log_signer: NoteSigner) -> Any:
    initialise_log(store, log_signer)
    rules_module: Any = importlib.import_module("ledger.custody_rules")
    sequencer_class: Any = Sequencer  # takes rules= once the domain rules are wired in
    return sequencer_class(store, log_signer, rules=rules_module.CustodyRules(store))


def _assert_admitted(outcomes: Sequence[Receipt | CustodyError], labels: Sequence[str]) -> None:
    for outcome, label in zip(outcomes, labels, strict=True):
        if isinstance(outcome, CustodyError):
            pytest.fail(f"{label} refused: {outcome.reason}: {outcome}")
        assert isinstance(outcome, Receipt)
        assert not outcome.duplicate, label


@pytest.mark.skipif(_RULES_MISSING, reason="ledger.custody_rules is not written yet")
def test_sample_entries_are_admitted_by_the_rules(
    store: LogStore, log_signer: NoteSigner, entries: list[SampleEntry]
) -> None:
    sequencer = _rules_sequencer(store, log_signer)
    try:
        for entry in entries:
            _assert_admitted(sequencer.append_batch([entry.submission]), [entry.label])
        assert sequencer.size == len(entries)
    finally:
        sequencer.close()


@pytest.mark.skipif(_RULES_MISSING, reason="ledger.custody_rules is not written yet")
def test_synthetic_entries_are_admitted_by_the_rules(
    store: LogStore, log_signer: NoteSigner
) -> None:
    submissions = list(synthetic_submissions(2_000, seed=11))
    sequencer = _rules_sequencer(store, log_signer)
    try:
        for start in range(0, len(submissions), 500):
            batch = submissions[start : start + 500]
            labels = [f"synthetic entry {start + i}" for i in range(len(batch))]
            _assert_admitted(sequencer.append_batch(batch), labels)
        assert sequencer.size == len(submissions)
    finally:
        sequencer.close()
