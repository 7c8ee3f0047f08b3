"""Property tests of the admission rules (hypothesis).

Random valid histories are all admitted; random histories with arbitrary
(often invalid) steps never break the inventory's invariants; and a history
sequenced into a database and reindexed gives exactly the state an in-memory
replay of its leaves gives.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custody.v1 import event_pb2
from ledger.admission import Submission, admit
from ledger.custody_rules import CustodyRules, reindex
from ledger.domain.payloads import decode_payload
from ledger.domain.records import (
    DispatchRecord,
    DispatchState,
    Lot,
    LotState,
    TransformationRecord,
)
from ledger.domain.replay import replay
from ledger.domain.rules import DomainEntry, apply_entry
from ledger.domain.state import DomainState, LotInput
from ledger.dsse import keyid_for
from ledger.errors import AdmissionError, CustodyError
from ledger.keys import private_key_from_seed
from ledger.leaf import decode_leaf
from ledger.note import NoteSigner
from ledger.sequencer import Sequencer, initialise_log
from ledger.storage import LogStore
from ledger.storage.database import sqlite_url
from ledger.storage.domain_store import DomainStore, dump_state
from tests.ledger.domain.builders import ROLE, World, supply_chain_preamble
from tests.support import TEST_ORIGIN

Draw = Callable[[st.SearchStrategy[Any]], Any]
NOW_MICROS = 1_900_000_000_000_000
HOLDERS = ("mine", "trader", "refiner")
SITES = {"mine": "mine-site", "trader": "trader-hub", "refiner": "refinery"}
ELEMENTS = ("Co", "Ni")


def _apply(state: DomainState, submission: Submission, index: int) -> bool:
    """Apply one submission in memory; True if admitted."""
    try:
        entry = admit(submission)
        payload = decode_payload(entry.envelope.payload_type, entry.envelope.payload)
        apply_entry(
            state,
            DomainEntry(payload, index, NOW_MICROS, {keyid_for(k): k for k in entry.signer_keys}),
        )
    except AdmissionError:
        return False
    return True


class History:
    """Builds a history step by step, choosing each step from the state so far."""

    def __init__(self) -> None:
        self.world = World()
        self.state = DomainState()
        self.submissions: list[Submission] = []
        self.admitted: list[bool] = []
        self.lots: list[str] = []
        for item in supply_chain_preamble(self.world):
            self.add(item)
        self.add(self.world.admit("smelter", ROLE.ROLE_PROCESSOR, country="CN"))
        assert all(self.admitted)

    def add(self, submission: Submission) -> bool:
        index = sum(self.admitted)
        ok = _apply(self.state, submission, index)
        self.submissions.append(submission)
        self.admitted.append(ok)
        return ok

    def held(self, holder: str) -> list[Lot]:
        out = []
        for lot_id in self.lots:
            lot = self.state.lot(lot_id)
            if (
                lot is not None
                and lot.holder_id == holder
                and lot.state is LotState.HELD
                and lot.available_grams > 0
            ):
                out.append(lot)
        return out

    def open_dispatches(self) -> list[str]:
        return [
            d.event_id for d in self.state.records(DispatchRecord) if d.state is DispatchState.OPEN
        ]


# --- steps that are valid by construction ------------------------------------------------


def _extract(world: World, mine: str, site: str, lot_id: str, mass: int, draw: Draw) -> Submission:
    ppm = _contents(draw)
    return world.extract(mine, site, lot_id, mass, Co=ppm["Co"], Ni=ppm["Ni"])


def _contents(draw: Draw) -> dict[str, int]:
    co = draw(st.integers(0, 600_000))
    ni = draw(st.integers(0, 1_000_000 - co))
    return {"Co": co, "Ni": ni}


def valid_step(draw: Draw, history: History) -> Submission:
    world, state = history.world, history.state
    options: list[Callable[[], Submission]] = []

    def extract() -> Submission:
        lot_id = world.next_id("lot")
        history.lots.append(lot_id)
        return _extract(world, "mine", "mine-site", lot_id, draw(st.integers(1, 10**9)), draw)

    options.append(extract)
    holders_with_lots = [h for h in HOLDERS if history.held(h)]
    if holders_with_lots:

        def dispatch() -> Submission:
            sender = draw(st.sampled_from(holders_with_lots))
            lot = draw(st.sampled_from(history.held(sender)))
            to = draw(st.sampled_from([h for h in HOLDERS if h != sender]))
            return world.dispatch(sender, lot.lot_id, to, lot.available_grams)

        def transform() -> Submission:
            holder = draw(st.sampled_from(holders_with_lots))
            lots = draw(
                st.lists(
                    st.sampled_from(history.held(holder)),
                    min_size=1,
                    max_size=3,
                    unique_by=lambda lot: lot.lot_id,
                )
            )
            inputs = [(lot.lot_id, draw(st.integers(1, lot.available_grams))) for lot in lots]
            metal = {e: sum(g * state.lot(lid).ppm(e) for lid, g in inputs) for e in ELEMENTS}  # type: ignore[union-attr]
            outputs = []
            for _ in range(draw(st.integers(1, 2))):
                mass = draw(st.integers(1, 10**9))
                ppm: dict[str, int] = {}
                for element in ELEMENTS:
                    # At most what is left of the inputs' metal, spread over this output's mass.
                    top = min(1_000_000 - sum(ppm.values()), metal[element] // mass)
                    ppm[element] = draw(st.integers(0, top))
                    metal[element] -= mass * ppm[element]
                lot_id = world.next_id("lot")
                history.lots.append(lot_id)
                outputs.append((lot_id, mass, ppm))
            process = event_pb2.PROCESS_REFINING if holder == "refiner" else event_pb2.PROCESS_BLEND
            return world.transform(holder, SITES[holder], inputs, outputs, process=process)

        options += [dispatch, transform]
    open_dispatches = history.open_dispatches()
    if open_dispatches:

        def receive() -> Submission:
            dispatch = state.dispatch(draw(st.sampled_from(open_dispatches)))
            assert dispatch is not None
            received = draw(st.integers(1, dispatch.mass_grams * 2))
            return world.receive(
                dispatch.to_partner_id, dispatch.event_id, dispatch.lot_id, received
            )

        def cancel() -> Submission:
            dispatch = state.dispatch(draw(st.sampled_from(open_dispatches)))
            assert dispatch is not None
            return world.event(
                dispatch.from_partner_id,
                correction=event_pb2.Correction(
                    target_event_id=dispatch.event_id,
                    action=event_pb2.CORRECTION_ACTION_VOID,
                    reason="sent by mistake",
                ),
            )

        options += [receive, receive, cancel]
    chosen: Callable[[], Submission] = draw(st.sampled_from(options))
    return chosen()


# --- arbitrary steps: anyone records anything about any lot -----------------------------------


def arbitrary_step(draw: Draw, history: History) -> Submission:
    world = history.world
    partner = draw(st.sampled_from([*HOLDERS, "lab"]))
    lot_ids = history.lots or ["nope"]
    lot = draw(st.sampled_from(lot_ids))
    mass = draw(st.integers(1, 2 * 10**9))
    kind = draw(st.sampled_from(["extract", "dispatch", "receive", "transform"]))
    if kind == "extract":
        lot_id = draw(st.sampled_from([*lot_ids, world.next_id("lot")]))
        history.lots.append(lot_id)
        site = draw(st.sampled_from(list(SITES.values())))
        return _extract(world, partner, site, lot_id, mass, draw)
    if kind == "dispatch":
        return world.dispatch(partner, lot, draw(st.sampled_from(HOLDERS)), mass)
    if kind == "receive":
        dispatches = history.open_dispatches() or ["none"]
        return world.receive(partner, draw(st.sampled_from(dispatches)), lot, mass)
    out = world.next_id("lot")
    history.lots.append(out)
    inputs = [(lot, mass)]
    return world.transform(
        partner,
        SITES.get(partner, "refinery"),
        inputs,
        [(out, draw(st.integers(1, 10**9)), _contents(draw))],
        process=event_pb2.PROCESS_BLEND,
    )


# --- invariants -------------------------------------------------------------------------------


def check_invariants(state: DomainState) -> None:
    consumed: dict[str, int] = {}
    voided = {t.event_id for t in state.records(TransformationRecord) if t.voided}
    for row in state.history:
        if isinstance(row, LotInput) and row.event_id not in voided:
            consumed[row.lot_id] = consumed.get(row.lot_id, 0) + row.consumed_grams
    for lot in state.records(Lot):
        # Never negative, never more than the lot ever had, nothing spent twice.
        assert lot.available_grams >= 0
        if lot.state is not LotState.VOIDED:
            assert lot.available_grams + consumed.get(lot.lot_id, 0) <= lot.mass_grams
        assert (lot.available_grams == 0) == (
            lot.state in (LotState.CONSUMED, LotState.VOIDED)
        ) or (lot.state is LotState.IN_TRANSIT)
        # One holder: an in-transit lot is the sender's, with exactly one open dispatch.
        dispatch = state.dispatch(lot.dispatch_event_id) if lot.dispatch_event_id else None
        if lot.state is LotState.IN_TRANSIT:
            assert dispatch is not None
            assert dispatch.state is DispatchState.OPEN
            assert dispatch.from_partner_id == lot.holder_id
        else:
            assert dispatch is None
    open_per_lot: dict[str, int] = {}
    for record in state.records(DispatchRecord):
        if record.state is DispatchState.OPEN:
            open_per_lot[record.lot_id] = open_per_lot.get(record.lot_id, 0) + 1
    assert all(count == 1 for count in open_per_lot.values())
    # Mass balance of every transformation, recomputed from the records.
    for transformation in state.records(TransformationRecord):
        for element in ELEMENTS:
            metal_in = sum(
                grams * _lot(state, lot_id).ppm(element) for lot_id, grams in transformation.inputs
            )
            metal_out = sum(
                _lot(state, lot_id).mass_grams * _lot(state, lot_id).ppm(element)
                for lot_id in transformation.outputs
            )
            assert metal_out <= metal_in


def _lot(state: DomainState, lot_id: str) -> Lot:
    lot = state.lot(lot_id)
    assert lot is not None
    return lot


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_valid_histories_are_all_admitted(data: st.DataObject) -> None:
    history = History()
    for _ in range(data.draw(st.integers(1, 30))):
        submission = valid_step(data.draw, history)
        assert history.add(submission), "a valid step was refused"
        check_invariants(history.state)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_history_breaks_the_inventory_invariants(data: st.DataObject) -> None:
    history = History()
    for _ in range(data.draw(st.integers(1, 40))):
        step = valid_step if data.draw(st.booleans()) else arbitrary_step
        history.add(step(data.draw, history))
        check_invariants(history.state)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_reindex_and_replay_give_the_state_the_sequencer_built(data: st.DataObject) -> None:
    history = History()
    for _ in range(data.draw(st.integers(1, 25))):
        step = valid_step if data.draw(st.booleans()) else arbitrary_step
        history.add(step(data.draw, history))
    batch = data.draw(st.integers(1, 16))
    with tempfile.TemporaryDirectory() as tmp:
        store = LogStore.open(sqlite_url(Path(tmp) / "log.db"))
        signer = NoteSigner(TEST_ORIGIN, private_key_from_seed(b"\x07" * 32))
        initialise_log(store, signer)
        sequencer = Sequencer(store, signer, rules=CustodyRules(store), verify_threads=1)
        try:
            outcomes: list[object] = []
            for start in range(0, len(history.submissions), batch):
                outcomes += sequencer.append_batch(history.submissions[start : start + batch])
        finally:
            sequencer.close()
        # The database admitted exactly what the in-memory run admitted.
        assert [not isinstance(o, CustodyError) for o in outcomes] == history.admitted
        domain = DomainStore(store.engine)
        built = domain.view().dump()
        leaves = [decode_leaf(leaf.leaf_bytes) for leaf in store.iter_leaves()]
        replayed = dump_state(replay(leaves))
        assert built == replayed
        assert built == dump_state(history.state)
        reindex(store)
        assert domain.view().dump() == built
        store.close()
