"""The admission rules of docs/domain.md, through the real sequencer and database.

Every reason code of ``Rule`` has scenarios: an entry that breaks exactly that
rule and would otherwise be admitted. Each refusal must leave the log (size,
latest checkpoint) and the derived indexes (``DomainView.dump``) exactly as
they were. Then: refusals inside batches, state seen within a batch,
resubmission, the positive semantics (transit losses, partial consumption,
voids, supersession, key rotation, thresholds), subject links, and a reindex
that rebuilds the very state the sequencer wrote.

The ledger starts from ``supply_chain_preamble``: genesis (administrators
"operator" and "association", threshold 2), then "mine", "trader",
"refiner", "lab", "auditor" (indices 1 to 5), and the facilities "mine-site"
(mine's MINE_SITE), "refinery" (refiner's REFINERY) and "trader-hub"
(trader's WAREHOUSE) at 6 to 8.

A fresh database per test costs most of the time, so the scenarios of one
reason code run one after the other on one ledger (a refusal changes nothing;
each scenario uses lots of its own), and every failing scenario is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from custody.v1 import event_pb2
from ledger.admission import Submission
from ledger.custody_rules import reindex
from ledger.domain.records import DispatchState, EventStatus, LotState
from ledger.domain.replay import replay
from ledger.errors import AdmissionRuleError, Rule
from ledger.leaf import decode_leaf
from ledger.receipts import Receipt
from ledger.sequencer import AppendOutcome
from ledger.storage.domain_store import dump_state
from tests.ledger.domain.builders import (
    EVENT_TIME,
    FACILITY,
    ROLE,
    contents,
    resigned,
    signed,
    signer_for,
)
from tests.ledger.domain.ledger_under_test import CO, PROCESS, Ledger

EVENT = "application/vnd.custody.event.v1+protobuf"
PURE = {"Co": 1_000_000}  # refined cobalt: 300 g of it from an extracted 1000 g lot
UNKNOWN_FIELD = b"\xb8\x3e\x01"  # field 999, varint 1: unknown to custody.v1


def assert_refused(ledger: Ledger, entry: Submission, rule: Rule) -> AdmissionRuleError:
    """Submit ``entry`` alone: refused with ``rule``, and nothing at all changed."""
    size = ledger.sequencer.size
    checkpoint = ledger.store.latest_checkpoint()
    before = ledger.dump_if_changed()
    (outcome,) = ledger.submit(entry)
    assert not isinstance(outcome, Receipt), (
        f"expected {rule.value}, but the entry was admitted at {outcome.index}"
    )
    assert isinstance(outcome, AdmissionRuleError), f"expected {rule.value}, got {outcome!r}"
    assert outcome.reason == rule.value, f"expected {rule.value}, got {outcome.reason}: {outcome}"
    assert outcome.rule is rule
    assert ledger.sequencer.size == size, "the sequencer's size moved"
    assert ledger.store.size() == size, "the stored log grew"
    assert ledger.store.latest_checkpoint() == checkpoint, "a new checkpoint was signed"
    assert ledger.dump() == before, "the derived indexes changed"
    return outcome


def assert_admitted(ledger: Ledger, entry: Submission) -> int:
    (outcome,) = ledger.submit(entry)
    assert isinstance(outcome, Receipt), f"expected admission, got {outcome.reason}: {outcome}"
    assert not outcome.duplicate
    return outcome.index


def in_days(days: float) -> Timestamp:
    return Timestamp(seconds=int(time.time() + days * 86_400))


# --- the scenarios: one entry that breaks one rule ------------------------------------------

Scenario = Callable[[Ledger], Submission]
AFTER_PREAMBLE: dict[Rule, list[Scenario]] = {}
BEFORE_GENESIS: dict[Rule, list[Scenario]] = {}


def refusal(rule: Rule, *, before_genesis: bool = False) -> Callable[[Scenario], Scenario]:
    """Register a scenario: it sets up the ledger and returns the entry refused with ``rule``."""

    def register(scenario: Scenario) -> Scenario:
        table = BEFORE_GENESIS if before_genesis else AFTER_PREAMBLE
        table.setdefault(rule, []).append(scenario)
        return scenario

    return register


def name_of(scenario: Scenario) -> str:
    return scenario.__name__.removeprefix("_")


def run_scenarios(ledger: Ledger, rule: Rule, scenarios: list[Scenario]) -> list[str]:
    """Each scenario in turn on the same ledger; a line for every one that fails."""
    failures: list[str] = []
    for scenario in scenarios:
        try:
            assert_refused(ledger, scenario(ledger), rule)
        except Exception as exc:  # every failing scenario is reported, not just the first
            failures.append(f"{rule.value}/{name_of(scenario)}: {type(exc).__name__}: {exc}")
    return failures


def report(failures: list[str]) -> None:
    if failures:
        pytest.fail(f"{len(failures)} scenario(s) failed:\n" + "\n".join(failures))


# UNKNOWN_PAYLOAD_TYPE ------------------------------------------------------------------


def _extraction(ledger: Ledger, mass: int = 1000, **ppm: int) -> Submission:
    """A valid extraction of a new lot by mine (not submitted)."""
    return ledger.world.extract("mine", "mine-site", ledger.new_lot(), mass, event_id=None, **ppm)


@refusal(Rule.UNKNOWN_PAYLOAD_TYPE)
def _json_payload(ledger: Ledger) -> Submission:
    return signed("application/json", b'{"lot": "L9"}', [ledger.world.signers["mine"]])


@refusal(Rule.UNKNOWN_PAYLOAD_TYPE)
def _future_event_version(ledger: Ledger) -> Submission:
    return signed(
        "application/vnd.custody.event.v2+protobuf",
        _extraction(ledger).envelope.payload,
        [ledger.world.signers["mine"]],
    )


# INVALID_PAYLOAD (each a variation of an otherwise valid entry) ---------------------------


@refusal(Rule.INVALID_PAYLOAD)
def _negative_mass(ledger: Ledger) -> Submission:
    return _extraction(ledger, -5)


@refusal(Rule.INVALID_PAYLOAD)
def _zero_mass(ledger: Ledger) -> Submission:
    return _extraction(ledger, 0)


@refusal(Rule.INVALID_PAYLOAD)
def _ppm_above_a_million(ledger: Ledger) -> Submission:
    return _extraction(ledger, Co=1_000_001)


@refusal(Rule.INVALID_PAYLOAD)
def _contents_summing_above_a_million(ledger: Ledger) -> Submission:
    return _extraction(ledger, Co=600_000, Ni=400_001)


@refusal(Rule.INVALID_PAYLOAD)
def _element_listed_twice(ledger: Ledger) -> Submission:
    return ledger.world.rewrite_event(
        _extraction(ledger), lambda m: m.extraction.contents.extend(contents(Co=1))
    )


@refusal(Rule.INVALID_PAYLOAD)
def _element_not_a_symbol(ledger: Ledger) -> Submission:
    return _extraction(ledger, co=300_000)


@refusal(Rule.INVALID_PAYLOAD)
def _missing_event_time(ledger: Ledger) -> Submission:
    return ledger.world.rewrite_event(_extraction(ledger), lambda m: m.ClearField("event_time"))


@refusal(Rule.INVALID_PAYLOAD)
def _missing_body(ledger: Ledger) -> Submission:
    return ledger.world.rewrite_event(_extraction(ledger), lambda m: m.ClearField("extraction"))


@refusal(Rule.INVALID_PAYLOAD)
def _unknown_protobuf_field(ledger: Ledger) -> Submission:
    payload = _extraction(ledger).envelope.payload + UNKNOWN_FIELD
    return signed(EVENT, payload, [ledger.world.signers["mine"]])


@refusal(Rule.INVALID_PAYLOAD)
def _unknown_protobuf_field_in_the_body(ledger: Ledger) -> Submission:
    return ledger.world.rewrite_event(
        _extraction(ledger), lambda m: m.extraction.MergeFromString(UNKNOWN_FIELD)
    )


@refusal(Rule.INVALID_PAYLOAD)
def _not_protobuf(ledger: Ledger) -> Submission:
    return signed(EVENT, b"\xff\xff\xff", [ledger.world.signers["mine"]])


@refusal(Rule.INVALID_PAYLOAD)
def _event_id_with_a_space(ledger: Ledger) -> Submission:
    return ledger.world.extract("mine", "mine-site", ledger.new_lot(), 1000, event_id="ev 9")


@refusal(Rule.INVALID_PAYLOAD)
def _event_id_too_long(ledger: Ledger) -> Submission:
    return ledger.world.extract("mine", "mine-site", ledger.new_lot(), 1000, event_id="e" * 129)


@refusal(Rule.INVALID_PAYLOAD)
def _evidence_hash_not_32_bytes(ledger: Ledger) -> Submission:
    return ledger.world.rewrite_event(
        _extraction(ledger), lambda m: setattr(m.evidence[0], "sha256", bytes(31))
    )


@refusal(Rule.INVALID_PAYLOAD)
def _lowercase_country_code(ledger: Ledger) -> Submission:
    return ledger.world.admit("newco", ROLE.ROLE_TRADER, country="cd")


@refusal(Rule.INVALID_PAYLOAD)
def _three_letter_country_code(ledger: Ledger) -> Submission:
    return ledger.world.facility("pit-2", "mine", FACILITY.FACILITY_TYPE_MINE_SITE, country="COD")


@refusal(Rule.INVALID_PAYLOAD)
def _latitude_out_of_range(ledger: Ledger) -> Submission:
    return ledger.world.rewrite_governance(
        ledger.world.facility("pit-2", "mine", FACILITY.FACILITY_TYPE_MINE_SITE),
        lambda m: setattr(m.facility_registration, "latitude_e6", 90_000_001),
    )


@refusal(Rule.INVALID_PAYLOAD)
def _malformed_rmi_id(ledger: Ledger) -> Submission:
    return ledger.world.rewrite_governance(
        ledger.world.facility("smelter-2", "refiner", FACILITY.FACILITY_TYPE_SMELTER),
        lambda m: setattr(m.facility_registration, "rmi_smelter_id", "CID12345"),
    )


@refusal(Rule.INVALID_PAYLOAD)
def _duplicated_input_lot(ledger: Ledger) -> Submission:
    lot = ledger.at_refiner()
    return ledger.world.transform(
        "refiner", "refinery", [(lot, 100), (lot, 100)], [(ledger.new_lot(), 60, PURE)]
    )


@refusal(Rule.INVALID_PAYLOAD)
def _transformation_without_outputs(ledger: Ledger) -> Submission:
    lot = ledger.at_refiner()
    return ledger.world.transform("refiner", "refinery", [(lot, 100)], [])


@refusal(Rule.INVALID_PAYLOAD)
def _unspecified_process(ledger: Ledger) -> Submission:
    lot = ledger.at_refiner()
    return ledger.world.transform(
        "refiner", "refinery", [(lot, 100)], [(ledger.new_lot(), 30, PURE)], process=0
    )


@refusal(Rule.INVALID_PAYLOAD)
def _dispatch_to_oneself(ledger: Ledger) -> Submission:
    return ledger.world.dispatch("mine", ledger.mined(), "mine", 1000)


@refusal(Rule.INVALID_PAYLOAD)
def _certification_ending_before_it_starts(ledger: Ledger) -> Submission:
    before = Timestamp(seconds=EVENT_TIME.seconds - 1)
    return ledger.world.certify("auditor", "refinery", valid_from=EVENT_TIME, valid_until=before)


@refusal(Rule.INVALID_PAYLOAD)
def _policy_threshold_zero(ledger: Ledger) -> Submission:
    return ledger.world.policy(0)


@refusal(Rule.INVALID_PAYLOAD)
def _keyid_not_lowercase_hex(ledger: Ledger) -> Submission:
    return ledger.world.revoke_key("mine", ledger.world.signers["mine"].keyid.upper())


# Genesis: NO_GENESIS, GENESIS_NOT_FIRST, and its own signatures and threshold ----------------


@refusal(Rule.NO_GENESIS, before_genesis=True)
def _admission_before_genesis(ledger: Ledger) -> Submission:
    return ledger.world.admit("mine", ROLE.ROLE_MINE)


@refusal(Rule.NO_GENESIS, before_genesis=True)
def _event_before_genesis(ledger: Ledger) -> Submission:
    ledger.world.signers.setdefault("mine", signer_for("mine"))
    return ledger.world.extract("mine", "mine-site", "L1", 1000)


@refusal(Rule.THRESHOLD_UNREACHABLE, before_genesis=True)
def _genesis_threshold_above_its_administrators(ledger: Ledger) -> Submission:
    return ledger.world.genesis(threshold=3)


@refusal(Rule.THRESHOLD_UNREACHABLE, before_genesis=True)
def _genesis_threshold_zero(ledger: Ledger) -> Submission:
    return ledger.world.genesis(threshold=0)


@refusal(Rule.THRESHOLD_NOT_MET, before_genesis=True)
def _genesis_signed_by_one_of_two(ledger: Ledger) -> Submission:
    return resigned(ledger.world.genesis(), [ledger.world.signers["operator"]])


@refusal(Rule.KEY_NOT_VALID, before_genesis=True)
def _genesis_cosigned_by_an_unlisted_key(ledger: Ledger) -> Submission:
    return resigned(ledger.world.genesis(), [*ledger.world.admin_signers(), signer_for("x")])


@refusal(Rule.IDENTITY_MISMATCH, before_genesis=True)
def _genesis_from_a_caller_not_signing(ledger: Ledger) -> Submission:
    return replace(ledger.world.genesis(), authenticated_partner="mallory")


@refusal(Rule.GENESIS_NOT_FIRST)
def _second_genesis(ledger: Ledger) -> Submission:
    return ledger.world.genesis()


# UNKNOWN_PARTNER --------------------------------------------------------------------------


@refusal(Rule.UNKNOWN_PARTNER)
def _event_by_an_unknown_partner(ledger: Ledger) -> Submission:
    ledger.world.signers["ghost"] = signer_for("ghost")
    return ledger.world.extract("ghost", "mine-site", ledger.new_lot(), 1000)


@refusal(Rule.UNKNOWN_PARTNER)
def _dispatch_to_an_unknown_partner(ledger: Ledger) -> Submission:
    return ledger.world.dispatch("mine", ledger.mined(), "ghost", 1000)


@refusal(Rule.UNKNOWN_PARTNER)
def _role_change_of_an_unknown_partner(ledger: Ledger) -> Submission:
    return ledger.world.change_roles("ghost", ROLE.ROLE_TRADER)


@refusal(Rule.UNKNOWN_PARTNER)
def _key_addition_for_an_unknown_partner(ledger: Ledger) -> Submission:
    return ledger.world.add_key("ghost", signer_for("ghost"))


@refusal(Rule.UNKNOWN_PARTNER)
def _key_revocation_for_an_unknown_partner(ledger: Ledger) -> Submission:
    return ledger.world.revoke_key("ghost", signer_for("ghost").keyid)


@refusal(Rule.UNKNOWN_PARTNER)
def _facility_of_an_unknown_owner(ledger: Ledger) -> Submission:
    return ledger.world.facility("pit-2", "ghost", FACILITY.FACILITY_TYPE_MINE_SITE)


# KEY_NOT_VALID -------------------------------------------------------------------------------


@refusal(Rule.KEY_NOT_VALID)
def _unknown_key(ledger: Ledger) -> Submission:
    return resigned(_extraction(ledger), [signer_for("stranger")])


@refusal(Rule.KEY_NOT_VALID)
def _another_partners_key(ledger: Ledger) -> Submission:
    return resigned(_extraction(ledger), [ledger.world.signers["trader"]])


@refusal(Rule.KEY_NOT_VALID)
def _own_key_and_another_partners_key(ledger: Ledger) -> Submission:
    world = ledger.world
    return resigned(_extraction(ledger), [world.signers["mine"], world.signers["trader"]])


@refusal(Rule.KEY_NOT_VALID)
def _revoked_key(ledger: Ledger) -> Submission:
    world = ledger.world
    ledger.append(
        world.admit("mine-r", ROLE.ROLE_MINE),
        world.facility("pit-r", "mine-r", FACILITY.FACILITY_TYPE_MINE_SITE),
    )
    ledger.append(world.revoke_key("mine-r", world.signers["mine-r"].keyid))
    return world.extract("mine-r", "pit-r", ledger.new_lot(), 1000)


@refusal(Rule.KEY_NOT_VALID)
def _key_used_by_the_entry_adding_it(ledger: Ledger) -> Submission:
    new = signer_for("mine", 1)
    return ledger.world.add_key("mine", new, signers=[new])


@refusal(Rule.KEY_NOT_VALID)
def _old_and_new_key_in_the_entry_adding_it(ledger: Ledger) -> Submission:
    new = signer_for("mine", 1)
    return ledger.world.add_key("mine", new, signers=[ledger.world.signers["mine"], new])


@refusal(Rule.KEY_NOT_VALID)
def _admission_cosigned_by_the_key_it_admits(ledger: Ledger) -> Submission:
    world = ledger.world
    newco = signer_for("newco")
    return resigned(
        world.admit_with_keys("newco", [newco], ROLE.ROLE_TRADER), [*world.admin_signers(), newco]
    )


@refusal(Rule.KEY_NOT_VALID)
def _self_signed_key_addition_for_another_partner(ledger: Ledger) -> Submission:
    world = ledger.world
    return world.add_key("trader", signer_for("trader", 1), signers=[world.signers["mine"]])


@refusal(Rule.KEY_NOT_VALID)
def _governance_cosigned_by_a_non_administrator(ledger: Ledger) -> Submission:
    world = ledger.world
    signers = [*world.admin_signers(), world.signers["mine"]]
    return resigned(world.admit("newco", ROLE.ROLE_TRADER), signers)


@refusal(Rule.KEY_NOT_VALID)
def _governance_signed_by_non_administrators(ledger: Ledger) -> Submission:
    world = ledger.world
    signers = [world.signers["mine"], world.signers["trader"]]
    return resigned(world.admit("newco", ROLE.ROLE_TRADER), signers)


@refusal(Rule.KEY_NOT_VALID)
def _revocation_of_another_partners_key(ledger: Ledger) -> Submission:
    return ledger.world.revoke_key("mine", ledger.world.signers["trader"].keyid)


@refusal(Rule.KEY_NOT_VALID)
def _revocation_of_an_unknown_key(ledger: Ledger) -> Submission:
    return ledger.world.revoke_key("mine", signer_for("stranger").keyid)


@refusal(Rule.KEY_NOT_VALID)
def _revocation_of_a_revoked_key(ledger: Ledger) -> Submission:
    world = ledger.world
    ledger.partner("trader-r", ROLE.ROLE_TRADER)
    keyid = world.signers["trader-r"].keyid
    ledger.append(world.revoke_key("trader-r", keyid))
    return world.revoke_key("trader-r", keyid)


# IDENTITY_MISMATCH -------------------------------------------------------------------------


@refusal(Rule.IDENTITY_MISMATCH)
def _event_from_another_caller(ledger: Ledger) -> Submission:
    return replace(_extraction(ledger), authenticated_partner="trader")


@refusal(Rule.IDENTITY_MISMATCH)
def _logged_event_resubmitted_by_another_caller(ledger: Ledger) -> Submission:
    # Checked before duplicate detection: another partner gets no receipt for it either.
    logged = replace(_extraction(ledger), authenticated_partner="mine")
    ledger.append(logged)
    return replace(logged, authenticated_partner="trader")


@refusal(Rule.IDENTITY_MISMATCH)
def _governance_from_a_caller_not_signing(ledger: Ledger) -> Submission:
    return replace(ledger.world.admit("newco", ROLE.ROLE_TRADER), authenticated_partner="mine")


@refusal(Rule.IDENTITY_MISMATCH)
def _self_signed_key_addition_from_another_caller(ledger: Ledger) -> Submission:
    world = ledger.world
    entry = world.add_key("mine", signer_for("mine", 1), signers=[world.signers["mine"]])
    return replace(entry, authenticated_partner="trader")


# ROLE_REQUIRED -------------------------------------------------------------------------------


@refusal(Rule.ROLE_REQUIRED)
def _lab_extracting(ledger: Ledger) -> Submission:
    ledger.site("lab-pit", "lab", FACILITY.FACILITY_TYPE_MINE_SITE)
    return ledger.world.extract("lab", "lab-pit", ledger.new_lot(), 1000)


@refusal(Rule.ROLE_REQUIRED)
def _mine_recovering(ledger: Ledger) -> Submission:
    ledger.site("mine-yard", "mine", FACILITY.FACILITY_TYPE_RECYCLING_SITE)
    return ledger.world.recover("mine", "mine-yard", ledger.new_lot(), 1000)


@refusal(Rule.ROLE_REQUIRED)
def _auditor_dispatching(ledger: Ledger) -> Submission:
    return ledger.world.dispatch("auditor", ledger.mined(), "trader", 1000)


@refusal(Rule.ROLE_REQUIRED)
def _trader_refining(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    ledger.delivered(lot, to="trader")
    outputs = [(ledger.new_lot(), 300, PURE)]
    return ledger.world.transform("trader", "trader-hub", [(lot, 1000)], outputs)


@refusal(Rule.ROLE_REQUIRED)
def _mine_smelting(ledger: Ledger) -> Submission:
    outputs = [(ledger.new_lot(), 300, PURE)]
    return ledger.world.transform(
        "mine", "mine-site", [(ledger.mined(), 1000)], outputs, process=PROCESS.PROCESS_SMELTING
    )


@refusal(Rule.ROLE_REQUIRED)
def _refiner_making_cells(ledger: Ledger) -> Submission:
    outputs = [(ledger.new_lot(), 300, PURE)]
    return ledger.world.transform(
        "refiner",
        "refinery",
        [(ledger.at_refiner(), 1000)],
        outputs,
        process=PROCESS.PROCESS_CELL_MANUFACTURE,
    )


@refusal(Rule.ROLE_REQUIRED)
def _dispatch_to_an_auditor(ledger: Ledger) -> Submission:
    return ledger.world.dispatch("mine", ledger.mined(), "auditor", 1000)


@refusal(Rule.ROLE_REQUIRED)
def _dispatch_to_a_lab(ledger: Ledger) -> Submission:
    return ledger.world.dispatch("mine", ledger.mined(), "lab", 1000)


@refusal(Rule.ROLE_REQUIRED)
def _lab_certifying(ledger: Ledger) -> Submission:
    return ledger.world.certify("lab", "refinery")


@refusal(Rule.ROLE_REQUIRED)
def _auditor_assaying(ledger: Ledger) -> Submission:
    return ledger.world.assay("auditor", ledger.mined())


# THRESHOLD_NOT_MET, THRESHOLD_UNREACHABLE -----------------------------------------------------


@refusal(Rule.THRESHOLD_NOT_MET)
def _admission_signed_by_one_administrator(ledger: Ledger) -> Submission:
    world = ledger.world
    return resigned(world.admit("newco", ROLE.ROLE_TRADER), [world.signers["operator"]])


@refusal(Rule.THRESHOLD_NOT_MET)
def _two_keys_of_one_administrator(ledger: Ledger) -> Submission:
    world = ledger.world
    second = signer_for("operator", 1)
    ledger.append(world.add_key("operator", second, signers=[world.signers["operator"]]))
    return resigned(world.admit("newco", ROLE.ROLE_TRADER), [world.signers["operator"], second])


@refusal(Rule.THRESHOLD_NOT_MET)
def _key_addition_for_a_partner_by_one_administrator(ledger: Ledger) -> Submission:
    world = ledger.world
    return world.add_key("mine", signer_for("mine", 1), signers=[world.signers["operator"]])


@refusal(Rule.THRESHOLD_UNREACHABLE)
def _policy_threshold_above_the_administrators(ledger: Ledger) -> Submission:
    return ledger.world.policy(3)


@refusal(Rule.THRESHOLD_UNREACHABLE)
def _removing_an_administrator_below_the_threshold(ledger: Ledger) -> Submission:
    return ledger.world.change_roles("operator", ROLE.ROLE_TRADER)


# DUPLICATE_EVENT_ID, PARTNER_EXISTS, KEY_EXISTS, FACILITY_EXISTS, LOT_EXISTS ------------------


@refusal(Rule.DUPLICATE_EVENT_ID)
def _event_reusing_an_event_id(ledger: Ledger) -> Submission:
    used = ledger.extraction_of(ledger.mined())
    return ledger.world.extract("mine", "mine-site", ledger.new_lot(), 1000, event_id=used)


@refusal(Rule.DUPLICATE_EVENT_ID)
def _event_reusing_an_action_id(ledger: Ledger) -> Submission:
    action_id = ledger.preamble_ids[1]
    return ledger.world.extract("mine", "mine-site", ledger.new_lot(), 1000, event_id=action_id)


@refusal(Rule.DUPLICATE_EVENT_ID)
def _action_reusing_an_event_id(ledger: Ledger) -> Submission:
    used = ledger.extraction_of(ledger.mined())
    return ledger.world.rewrite_governance(
        ledger.world.admit("newco", ROLE.ROLE_TRADER), lambda m: setattr(m, "action_id", used)
    )


@refusal(Rule.DUPLICATE_EVENT_ID)
def _action_reusing_an_action_id(ledger: Ledger) -> Submission:
    used = ledger.preamble_ids[-1]
    return ledger.world.rewrite_governance(
        ledger.world.admit("newco", ROLE.ROLE_TRADER), lambda m: setattr(m, "action_id", used)
    )


@refusal(Rule.PARTNER_EXISTS)
def _partner_admitted_twice(ledger: Ledger) -> Submission:
    return ledger.world.admit_with_keys("mine", [signer_for("mine", 1)], ROLE.ROLE_MINE)


@refusal(Rule.PARTNER_EXISTS)
def _administrator_admitted_again(ledger: Ledger) -> Submission:
    return ledger.world.admit_with_keys("operator", [signer_for("operator", 1)], ROLE.ROLE_TRADER)


@refusal(Rule.KEY_EXISTS)
def _admission_with_a_registered_key(ledger: Ledger) -> Submission:
    world = ledger.world
    return world.admit_with_keys("newco", [world.signers["trader"]], ROLE.ROLE_TRADER)


@refusal(Rule.KEY_EXISTS)
def _key_addition_of_another_partners_key(ledger: Ledger) -> Submission:
    return ledger.world.add_key("mine", ledger.world.signers["trader"])


@refusal(Rule.KEY_EXISTS)
def _key_addition_of_its_own_key(ledger: Ledger) -> Submission:
    return ledger.world.add_key("mine", ledger.world.signers["mine"])


@refusal(Rule.KEY_EXISTS)
def _key_addition_of_a_revoked_key(ledger: Ledger) -> Submission:
    world = ledger.world
    ledger.partner("trader-k", ROLE.ROLE_TRADER)
    old = world.signers["trader-k"]
    ledger.append(world.revoke_key("trader-k", old.keyid))
    return world.add_key("trader-k", old)


@refusal(Rule.FACILITY_EXISTS)
def _facility_registered_twice(ledger: Ledger) -> Submission:
    return ledger.world.facility("mine-site", "mine", FACILITY.FACILITY_TYPE_MINE_SITE)


@refusal(Rule.FACILITY_EXISTS)
def _facility_id_taken_by_another_owner(ledger: Ledger) -> Submission:
    return ledger.world.facility("refinery", "trader", FACILITY.FACILITY_TYPE_WAREHOUSE)


@refusal(Rule.LOT_EXISTS)
def _extraction_of_an_existing_lot(ledger: Ledger) -> Submission:
    return ledger.world.extract("mine", "mine-site", ledger.mined(), 1000)


@refusal(Rule.LOT_EXISTS)
def _extraction_reusing_a_voided_lot_id(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    ledger.voided("mine", ledger.extraction_of(lot))
    return ledger.world.extract("mine", "mine-site", lot, 1000)


@refusal(Rule.LOT_EXISTS)
def _extraction_of_another_partners_lot_id(ledger: Ledger) -> Submission:
    ledger.partner("mine2", ROLE.ROLE_MINE)
    ledger.site("pit-2", "mine2", FACILITY.FACILITY_TYPE_MINE_SITE)
    return ledger.world.extract("mine2", "pit-2", ledger.mined(), 1000)


@refusal(Rule.LOT_EXISTS)
def _transformation_output_reusing_a_lot_id(ledger: Ledger) -> Submission:
    lot, taken = ledger.at_refiner(), ledger.mined()
    return ledger.world.transform("refiner", "refinery", [(lot, 1000)], [(taken, 300, PURE)])


@refusal(Rule.LOT_EXISTS)
def _recovery_of_an_existing_lot(ledger: Ledger) -> Submission:
    _recycler(ledger)
    return ledger.world.recover("recycler", "yard", ledger.mined(), 1000)


def _recycler(ledger: Ledger) -> None:
    """A recycler with a recycling site "yard" and a warehouse "depot"."""
    ledger.append(
        ledger.world.admit("recycler", ROLE.ROLE_RECYCLER),
        ledger.world.facility("yard", "recycler", FACILITY.FACILITY_TYPE_RECYCLING_SITE),
        ledger.world.facility("depot", "recycler", FACILITY.FACILITY_TYPE_WAREHOUSE),
    )


# UNKNOWN_FACILITY, FACILITY_NOT_OWNED, WRONG_FACILITY_TYPE ------------------------------------


def _dispatch(ledger: Ledger, **fields: Any) -> Submission:
    """Mine dispatches a new lot to trader, with the given Dispatch fields."""
    entry = ledger.world.dispatch("mine", ledger.mined(), "trader", 1000)
    return ledger.world.rewrite_event(
        entry, lambda m: m.dispatch.MergeFrom(event_pb2.Dispatch(**fields))
    )


def _receipt(ledger: Ledger, **fields: Any) -> Submission:
    """Trader receives a new lot dispatched by mine, with the given Receipt fields."""
    lot = ledger.mined()
    entry = ledger.world.receive("trader", ledger.shipped(lot, "trader"), lot, 1000)
    return ledger.world.rewrite_event(
        entry, lambda m: m.receipt.MergeFrom(event_pb2.Receipt(**fields))
    )


@refusal(Rule.UNKNOWN_FACILITY)
def _extraction_at_an_unknown_site(ledger: Ledger) -> Submission:
    return ledger.world.extract("mine", "nowhere", ledger.new_lot(), 1000)


@refusal(Rule.UNKNOWN_FACILITY)
def _transformation_at_an_unknown_facility(ledger: Ledger) -> Submission:
    outputs = [(ledger.new_lot(), 300, PURE)]
    return ledger.world.transform("refiner", "nowhere", [(ledger.at_refiner(), 1000)], outputs)


@refusal(Rule.UNKNOWN_FACILITY)
def _certification_of_an_unknown_facility(ledger: Ledger) -> Submission:
    return ledger.world.certify("auditor", "nowhere")


@refusal(Rule.UNKNOWN_FACILITY)
def _dispatch_from_an_unknown_facility(ledger: Ledger) -> Submission:
    return _dispatch(ledger, from_facility_id="nowhere")


@refusal(Rule.UNKNOWN_FACILITY)
def _dispatch_to_an_unknown_facility(ledger: Ledger) -> Submission:
    return _dispatch(ledger, to_facility_id="nowhere")


@refusal(Rule.UNKNOWN_FACILITY)
def _receipt_at_an_unknown_facility(ledger: Ledger) -> Submission:
    return _receipt(ledger, facility_id="nowhere")


@refusal(Rule.FACILITY_NOT_OWNED)
def _extraction_at_another_partners_mine_site(ledger: Ledger) -> Submission:
    ledger.partner("mine2", ROLE.ROLE_MINE)
    ledger.site("pit-2", "mine2", FACILITY.FACILITY_TYPE_MINE_SITE)
    return ledger.world.extract("mine", "pit-2", ledger.new_lot(), 1000)


@refusal(Rule.FACILITY_NOT_OWNED)
def _transformation_at_another_partners_facility(ledger: Ledger) -> Submission:
    outputs = [(ledger.new_lot(), 300, PURE)]
    return ledger.world.transform("refiner", "trader-hub", [(ledger.at_refiner(), 1000)], outputs)


@refusal(Rule.FACILITY_NOT_OWNED)
def _dispatch_from_another_partners_facility(ledger: Ledger) -> Submission:
    return _dispatch(ledger, from_facility_id="refinery")


@refusal(Rule.FACILITY_NOT_OWNED)
def _dispatch_to_a_facility_not_the_addressees(ledger: Ledger) -> Submission:
    return _dispatch(ledger, to_facility_id="refinery")


@refusal(Rule.FACILITY_NOT_OWNED)
def _receipt_at_another_partners_facility(ledger: Ledger) -> Submission:
    return _receipt(ledger, facility_id="refinery")


@refusal(Rule.WRONG_FACILITY_TYPE)
def _extraction_at_its_own_warehouse(ledger: Ledger) -> Submission:
    ledger.site("mine-store", "mine", FACILITY.FACILITY_TYPE_WAREHOUSE)
    return ledger.world.extract("mine", "mine-store", ledger.new_lot(), 1000)


@refusal(Rule.WRONG_FACILITY_TYPE)
def _recovery_at_its_own_warehouse(ledger: Ledger) -> Submission:
    _recycler(ledger)
    return ledger.world.recover("recycler", "depot", ledger.new_lot(), 1000)


# UNKNOWN_LOT, LOT_NOT_HELD, LOT_IN_TRANSIT, INSUFFICIENT_QUANTITY, MASS_MISMATCH -----------------


def _refine(ledger: Ledger, inputs: list[tuple[str, int]], grams: int = 1) -> Submission:
    """Refiner refines ``inputs`` into ``grams`` of pure cobalt (not submitted)."""
    return ledger.world.transform("refiner", "refinery", inputs, [(ledger.new_lot(), grams, PURE)])


@refusal(Rule.UNKNOWN_LOT)
def _dispatch_of_an_unknown_lot(ledger: Ledger) -> Submission:
    return ledger.world.dispatch("mine", "lot-404", "trader", 1000)


@refusal(Rule.UNKNOWN_LOT)
def _transformation_of_an_unknown_lot(ledger: Ledger) -> Submission:
    return _refine(ledger, [("lot-404", 1000)])


@refusal(Rule.UNKNOWN_LOT)
def _assay_of_an_unknown_lot(ledger: Ledger) -> Submission:
    return ledger.world.assay("lab", "lot-404")


@refusal(Rule.LOT_NOT_HELD)
def _dispatch_of_another_partners_lot(ledger: Ledger) -> Submission:
    return ledger.world.dispatch("trader", ledger.mined(), "refiner", 1000)


@refusal(Rule.LOT_NOT_HELD)
def _dispatch_of_a_lot_already_delivered(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    ledger.delivered(lot, to="trader")
    return ledger.world.dispatch("mine", lot, "refiner", 1000)


@refusal(Rule.LOT_NOT_HELD)
def _dispatch_of_a_voided_lot(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    ledger.voided("mine", ledger.extraction_of(lot))
    return ledger.world.dispatch("mine", lot, "trader", 1000)


@refusal(Rule.LOT_NOT_HELD)
def _transformation_of_another_partners_lot(ledger: Ledger) -> Submission:
    return _refine(ledger, [(ledger.mined(), 1000)])


@refusal(Rule.LOT_NOT_HELD)
def _transformation_by_the_addressee_before_its_receipt(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    ledger.shipped(lot, "refiner")
    return _refine(ledger, [(lot, 1000)])


@refusal(Rule.LOT_NOT_HELD)
def _transformation_of_a_voided_output(ledger: Ledger) -> Submission:
    lot, output = ledger.at_refiner(), ledger.new_lot()
    ledger.voided("refiner", ledger.refined([(lot, 1000)], [(output, 300, PURE)]))
    return _refine(ledger, [(output, 300)])


@refusal(Rule.LOT_IN_TRANSIT)
def _second_dispatch_of_a_lot_in_transit(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    ledger.shipped(lot, "trader")
    return ledger.world.dispatch("mine", lot, "refiner", 1000)


@refusal(Rule.LOT_IN_TRANSIT)
def _transformation_of_a_lot_in_transit(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    ledger.shipped(lot, "trader")
    return ledger.world.transform(
        "mine",
        "mine-site",
        [(lot, 1000)],
        [(ledger.new_lot(), 500, {"Co": 2 * CO})],
        process=PROCESS.PROCESS_CONCENTRATION,
    )


@refusal(Rule.INSUFFICIENT_QUANTITY)
def _consuming_more_than_the_lot(ledger: Ledger) -> Submission:
    return _refine(ledger, [(ledger.at_refiner(), 1001)])


@refusal(Rule.INSUFFICIENT_QUANTITY)
def _consuming_more_than_is_left(ledger: Ledger) -> Submission:
    lot = ledger.at_refiner()
    ledger.refined([(lot, 600)], [(ledger.new_lot(), 180, PURE)])
    return _refine(ledger, [(lot, 401)])


@refusal(Rule.INSUFFICIENT_QUANTITY)
def _consuming_what_was_lost_in_transit(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    ledger.delivered(lot, to="refiner", mass=900)
    return _refine(ledger, [(lot, 901)])


@refusal(Rule.INSUFFICIENT_QUANTITY)
def _consuming_a_consumed_lot(ledger: Ledger) -> Submission:
    lot = ledger.at_refiner()
    ledger.refined([(lot, 1000)], [(ledger.new_lot(), 300, PURE)])
    return _refine(ledger, [(lot, 1)])


@refusal(Rule.INSUFFICIENT_QUANTITY)
def _dispatch_of_a_consumed_lot(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    ledger.concentrated(lot, 1000)
    return ledger.world.dispatch("mine", lot, "trader", 1000)


@refusal(Rule.MASS_MISMATCH)
def _dispatch_of_part_of_a_lot(ledger: Ledger) -> Submission:
    return ledger.world.dispatch("mine", ledger.mined(), "trader", 500)


@refusal(Rule.MASS_MISMATCH)
def _dispatch_of_more_than_the_lot(ledger: Ledger) -> Submission:
    return ledger.world.dispatch("mine", ledger.mined(), "trader", 1001)


@refusal(Rule.MASS_MISMATCH)
def _dispatch_of_the_mass_before_a_transit_loss(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    ledger.delivered(lot, to="trader", mass=990)
    return ledger.world.dispatch("trader", lot, "refiner", 1000)


@refusal(Rule.MASS_MISMATCH)
def _dispatch_of_the_mass_before_partial_consumption(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    ledger.concentrated(lot, 400)
    return ledger.world.dispatch("mine", lot, "trader", 1000)


# MASS_BALANCE_EXCEEDED -------------------------------------------------------------------------


def _refine_into(
    ledger: Ledger, inputs: list[tuple[str, int]], *outputs: tuple[int, dict[str, int]]
) -> Submission:
    outs = [(ledger.new_lot(), grams, ppm) for grams, ppm in outputs]
    return ledger.world.transform("refiner", "refinery", inputs, outs)


@refusal(Rule.MASS_BALANCE_EXCEEDED)
def _more_cobalt_out_than_in(ledger: Ledger) -> Submission:
    # 1000 g at 300,000 ppm: 3e8 µg of Co in, 1000 g at 300,001 ppm out.
    return _refine_into(ledger, [(ledger.at_refiner(), 1000)], (1000, {"Co": CO + 1}))


@refusal(Rule.MASS_BALANCE_EXCEEDED)
def _an_element_absent_from_the_inputs(ledger: Ledger) -> Submission:
    return _refine_into(ledger, [(ledger.at_refiner(), 1000)], (300, {"Co": CO, "Ni": 1}))


@refusal(Rule.MASS_BALANCE_EXCEEDED)
def _counting_the_lot_instead_of_the_consumed_mass(ledger: Ledger) -> Submission:
    # 500 g consumed hold 1.5e8 µg of Co.
    return _refine_into(ledger, [(ledger.at_refiner(), 500)], (1000, {"Co": 150_001}))


@refusal(Rule.MASS_BALANCE_EXCEEDED)
def _a_blend_of_two_lots(ledger: Ledger) -> Submission:
    first, second = ledger.at_refiner(), ledger.at_refiner(Co=100_000)  # 3e8 + 1e8 µg
    return _refine_into(ledger, [(first, 1000), (second, 1000)], (2000, {"Co": 200_001}))


@refusal(Rule.MASS_BALANCE_EXCEEDED)
def _a_second_output_tipping_the_balance(ledger: Ledger) -> Submission:
    lot = ledger.at_refiner()
    return _refine_into(ledger, [(lot, 1000)], (200, PURE), (1000, {"Co": 100_001}))


# UNKNOWN_DISPATCH, DISPATCH_NOT_OPEN, NOT_ADDRESSEE, LOT_MISMATCH ---------------------------------


@refusal(Rule.UNKNOWN_DISPATCH)
def _receipt_of_an_unknown_dispatch(ledger: Ledger) -> Submission:
    return ledger.world.receive("trader", "ev-404", ledger.mined(), 1000)


@refusal(Rule.UNKNOWN_DISPATCH)
def _receipt_naming_an_extraction(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    return ledger.world.receive("trader", ledger.extraction_of(lot), lot, 1000)


@refusal(Rule.DISPATCH_NOT_OPEN)
def _second_receipt(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    dispatch, _ = ledger.delivered(lot, to="trader")
    return ledger.world.receive("trader", dispatch, lot, 1000)


@refusal(Rule.DISPATCH_NOT_OPEN)
def _receipt_of_a_cancelled_dispatch(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    dispatch = ledger.shipped(lot, "trader")
    ledger.voided("mine", dispatch)
    return ledger.world.receive("trader", dispatch, lot, 1000)


@refusal(Rule.NOT_ADDRESSEE)
def _receipt_by_another_partner(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    return ledger.world.receive("refiner", ledger.shipped(lot, "trader"), lot, 1000)


@refusal(Rule.NOT_ADDRESSEE)
def _receipt_by_the_sender(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    return ledger.world.receive("mine", ledger.shipped(lot, "trader"), lot, 1000)


@refusal(Rule.LOT_MISMATCH)
def _receipt_naming_another_lot(ledger: Ledger) -> Submission:
    lot, other = ledger.mined(), ledger.mined()
    return ledger.world.receive("trader", ledger.shipped(lot, "trader"), other, 1000)


@refusal(Rule.LOT_MISMATCH)
def _receipt_naming_an_unknown_lot(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    return ledger.world.receive("trader", ledger.shipped(lot, "trader"), "lot-404", 1000)


# EVENT_IN_FUTURE -----------------------------------------------------------------------------


@refusal(Rule.EVENT_IN_FUTURE)
def _event_two_days_ahead(ledger: Ledger) -> Submission:
    return ledger.world.rewrite_event(
        _extraction(ledger), lambda m: m.event_time.CopyFrom(in_days(2))
    )


@refusal(Rule.EVENT_IN_FUTURE)
def _event_in_the_year_9999(ledger: Ledger) -> Submission:
    return ledger.world.rewrite_event(
        _extraction(ledger), lambda m: setattr(m.event_time, "seconds", 253_402_300_799)
    )


# UNKNOWN_EVENT, NOT_EVENT_OWNER, ALREADY_CORRECTED, CORRECTION_NOT_APPLICABLE ------------------


@refusal(Rule.UNKNOWN_EVENT)
def _void_of_an_unknown_event(ledger: Ledger) -> Submission:
    return ledger.world.void("mine", "ev-404")


@refusal(Rule.UNKNOWN_EVENT)
def _supersede_with_an_unknown_replacement(ledger: Ledger) -> Submission:
    return ledger.world.supersede("lab", ledger.assayed(ledger.mined()), "ev-404")


@refusal(Rule.UNKNOWN_EVENT)
def _supersede_of_an_unknown_event(ledger: Ledger) -> Submission:
    return ledger.world.supersede("lab", "ev-404", ledger.assayed(ledger.mined()))


@refusal(Rule.NOT_EVENT_OWNER)
def _supersede_of_another_labs_assay(ledger: Ledger) -> Submission:
    ledger.partner("lab3", ROLE.ROLE_LAB)
    lot = ledger.mined()
    theirs, ours = ledger.assayed(lot, lab="lab3"), ledger.assayed(lot)
    return ledger.world.supersede("lab", theirs, ours)


@refusal(Rule.NOT_EVENT_OWNER)
def _void_of_another_partners_extraction(ledger: Ledger) -> Submission:
    return ledger.world.void("trader", ledger.extraction_of(ledger.mined()))


@refusal(Rule.NOT_EVENT_OWNER)
def _void_of_a_governance_action_by_a_partner(ledger: Ledger) -> Submission:
    return ledger.world.void("mine", ledger.preamble_ids[1])


@refusal(Rule.NOT_EVENT_OWNER)
def _supersede_with_another_labs_assay(ledger: Ledger) -> Submission:
    ledger.partner("lab2", ROLE.ROLE_LAB)
    lot = ledger.mined()
    first, second = ledger.assayed(lot), ledger.assayed(lot, lab="lab2")
    return ledger.world.supersede("lab", first, second)


@refusal(Rule.ALREADY_CORRECTED)
def _void_twice(ledger: Ledger) -> Submission:
    extraction = ledger.extraction_of(ledger.mined())
    ledger.voided("mine", extraction)
    return ledger.world.void("mine", extraction)


@refusal(Rule.ALREADY_CORRECTED)
def _void_of_a_superseded_assay(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    first, second = ledger.assayed(lot), ledger.assayed(lot)
    ledger.append(ledger.world.supersede("lab", first, second))
    return ledger.world.void("lab", first)


@refusal(Rule.ALREADY_CORRECTED)
def _supersede_of_a_voided_certification(ledger: Ledger) -> Submission:
    first = ledger.certified("refinery")
    ledger.voided("auditor", first)
    return ledger.world.supersede("auditor", first, ledger.certified("refinery"))


@refusal(Rule.CORRECTION_NOT_APPLICABLE)
def _void_of_a_receipt(ledger: Ledger) -> Submission:
    _, receipt = ledger.delivered(ledger.mined(), to="trader")
    return ledger.world.void("trader", receipt)


@refusal(Rule.CORRECTION_NOT_APPLICABLE)
def _void_of_a_correction(ledger: Ledger) -> Submission:
    correction = ledger.voided("lab", ledger.assayed(ledger.mined()))
    return ledger.world.void("lab", correction)


@refusal(Rule.CORRECTION_NOT_APPLICABLE)
def _void_of_a_governance_action(ledger: Ledger) -> Submission:
    # Governance is recorded under its first signing partner: "association" < "operator".
    return ledger.world.void("association", ledger.preamble_ids[1])


@refusal(Rule.CORRECTION_NOT_APPLICABLE)
def _void_of_an_extraction_whose_lot_was_dispatched(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    ledger.shipped(lot, "trader")
    return ledger.world.void("mine", ledger.extraction_of(lot))


@refusal(Rule.CORRECTION_NOT_APPLICABLE)
def _void_of_an_extraction_whose_lot_was_partly_consumed(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    ledger.concentrated(lot, 400)
    return ledger.world.void("mine", ledger.extraction_of(lot))


@refusal(Rule.CORRECTION_NOT_APPLICABLE)
def _void_of_an_extraction_whose_dispatch_was_voided(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    ledger.voided("mine", ledger.shipped(lot, "trader"))
    return ledger.world.void("mine", ledger.extraction_of(lot))


@refusal(Rule.CORRECTION_NOT_APPLICABLE)
def _void_of_a_received_dispatch(ledger: Ledger) -> Submission:
    dispatch, _ = ledger.delivered(ledger.mined(), to="trader")
    return ledger.world.void("mine", dispatch)


@refusal(Rule.CORRECTION_NOT_APPLICABLE)
def _void_of_a_transformation_whose_output_was_dispatched(ledger: Ledger) -> Submission:
    lot, output = ledger.at_refiner(), ledger.new_lot()
    refining = ledger.refined([(lot, 1000)], [(output, 300, PURE)])
    ledger.shipped(output, "trader", sender="refiner")
    return ledger.world.void("refiner", refining)


@refusal(Rule.CORRECTION_NOT_APPLICABLE)
def _void_of_a_transformation_whose_input_was_dispatched(ledger: Ledger) -> Submission:
    lot = ledger.at_refiner()
    refining = ledger.refined([(lot, 400)], [(ledger.new_lot(), 120, PURE)])
    ledger.shipped(lot, "trader", sender="refiner")
    return ledger.world.void("refiner", refining)


@refusal(Rule.CORRECTION_NOT_APPLICABLE)
def _supersede_of_an_extraction(ledger: Ledger) -> Submission:
    first, second = ledger.mined(), ledger.mined()
    return ledger.world.supersede("mine", ledger.extraction_of(first), ledger.extraction_of(second))


@refusal(Rule.CORRECTION_NOT_APPLICABLE)
def _supersede_with_an_assay_of_another_lot(ledger: Ledger) -> Submission:
    first, second = ledger.assayed(ledger.mined()), ledger.assayed(ledger.mined())
    return ledger.world.supersede("lab", first, second)


@refusal(Rule.CORRECTION_NOT_APPLICABLE)
def _supersede_with_an_earlier_assay(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    first, second = ledger.assayed(lot), ledger.assayed(lot)
    return ledger.world.supersede("lab", second, first)


@refusal(Rule.CORRECTION_NOT_APPLICABLE)
def _supersede_with_a_voided_assay(ledger: Ledger) -> Submission:
    lot = ledger.mined()
    first, second = ledger.assayed(lot), ledger.assayed(lot)
    ledger.voided("lab", second)
    return ledger.world.supersede("lab", first, second)


@refusal(Rule.CORRECTION_NOT_APPLICABLE)
def _supersede_with_a_certification_of_another_facility(ledger: Ledger) -> Submission:
    first, second = ledger.certified("refinery"), ledger.certified("mine-site")
    return ledger.world.supersede("auditor", first, second)


@refusal(Rule.CORRECTION_NOT_APPLICABLE)
def _supersede_of_an_assay_with_an_extraction(ledger: Ledger) -> Submission:
    # A partner holding both roles: the replacement is its own, later event of another kind.
    ledger.append(ledger.world.change_roles("mine", ROLE.ROLE_MINE, ROLE.ROLE_LAB))
    assay = ledger.assayed(ledger.mined(), lab="mine")
    later = ledger.extraction_of(ledger.mined())
    return ledger.world.supersede("mine", assay, later)


# --- the refusals themselves -----------------------------------------------------------------


@pytest.mark.parametrize("rule", list(AFTER_PREAMBLE), ids=str)
def test_refused(ledger: Ledger, rule: Rule) -> None:
    """Every scenario of ``rule``: refused with that code, nothing changed."""
    report(run_scenarios(ledger, rule, AFTER_PREAMBLE[rule]))


def test_refused_before_genesis(empty_ledger: Ledger) -> None:
    """NO_GENESIS, and genesis's own threshold, signatures and caller, on an empty log."""
    failures = [
        line
        for rule, scenarios in BEFORE_GENESIS.items()
        for line in run_scenarios(empty_ledger, rule, scenarios)
    ]
    report(failures)
    assert empty_ledger.sequencer.size == 0


def test_receipt_checks_follow_the_documented_order(ledger: Ledger) -> None:
    # A stranger learns nothing about someone else's dispatch: the addressee comes first.
    lot = ledger.mined()
    dispatch, _ = ledger.delivered(lot, to="trader")
    assert_refused(ledger, ledger.world.receive("refiner", dispatch, lot, 1000), Rule.NOT_ADDRESSEE)


def test_every_reason_code_has_scenarios() -> None:
    covered = {*AFTER_PREAMBLE, *BEFORE_GENESIS}
    assert covered == set(Rule), f"no scenario for {sorted(set(Rule) - covered)}"
    several = {Rule.INVALID_PAYLOAD, Rule.KEY_NOT_VALID, Rule.ROLE_REQUIRED}
    assert all(len(AFTER_PREAMBLE[rule]) >= 4 for rule in several)


# --- batches: refusals in the middle, state seen within a batch, resubmission -----------------


def receipt(outcome: AppendOutcome) -> Receipt:
    assert isinstance(outcome, Receipt), f"expected a receipt, got {outcome.reason}: {outcome}"
    return outcome


def refusal_of(outcome: AppendOutcome) -> Rule:
    assert isinstance(outcome, AdmissionRuleError), f"expected a refusal, got {outcome!r}"
    return outcome.rule


def test_a_refusal_in_a_batch_leaves_its_neighbours_alone(ledger: Ledger) -> None:
    world, size = ledger.world, ledger.sequencer.size
    first = world.extract("mine", "mine-site", "L1", 1000)
    bad = world.dispatch("mine", "L404", "trader", 1000)
    third = world.dispatch("mine", "L1", "trader", 1000)  # needs the first
    outcomes = ledger.submit(first, bad, third)
    assert refusal_of(outcomes[1]) is Rule.UNKNOWN_LOT
    assert [receipt(outcomes[0]).index, receipt(outcomes[2]).index] == [size, size + 1]
    assert receipt(outcomes[0]).checkpoint == receipt(outcomes[2]).checkpoint
    assert ledger.sequencer.size == ledger.store.size() == size + 2
    assert ledger.lot("L1").state is LotState.IN_TRANSIT
    assert ledger.links(size + 1)["lot:L1"] == size


def test_envelope_and_shape_refusals_in_a_batch_leave_their_neighbours_alone(
    ledger: Ledger,
) -> None:
    world, size = ledger.world, ledger.sequencer.size
    unknown_lot = world.dispatch("mine", "L404", "trader", 1000)
    outcomes = ledger.submit(
        world.extract("mine", "mine-site", "L1", 1000),
        signed("application/json", b"{}", [world.signers["mine"]]),
        _negative_mass(ledger),
        unknown_lot,
        unknown_lot,  # the same refused envelope twice: refused twice
        world.dispatch("mine", "L1", "trader", 1000),
    )
    assert [refusal_of(o) for o in outcomes[1:5]] == [
        Rule.UNKNOWN_PAYLOAD_TYPE,
        Rule.INVALID_PAYLOAD,
        Rule.UNKNOWN_LOT,
        Rule.UNKNOWN_LOT,
    ]
    assert [receipt(outcomes[0]).index, receipt(outcomes[5]).index] == [size, size + 1]


def test_two_dispatches_of_a_lot_in_one_batch(ledger: Ledger) -> None:
    ledger.mined("L1")
    world = ledger.world
    to_trader = world.dispatch("mine", "L1", "trader", 1000, event_id="d-trader")
    to_refiner = world.dispatch("mine", "L1", "refiner", 1000, event_id="d-refiner")
    outcomes = ledger.submit(to_trader, to_refiner)
    receipt(outcomes[0])
    assert refusal_of(outcomes[1]) is Rule.LOT_IN_TRANSIT
    assert ledger.lot("L1").dispatch_event_id == "d-trader"
    assert ledger.view.dispatch("d-refiner") is None


def test_two_extractions_of_one_new_lot_in_one_batch(ledger: Ledger) -> None:
    world = ledger.world
    first = world.extract("mine", "mine-site", "L1", 1000, event_id="x-1")
    second = world.extract("mine", "mine-site", "L1", 2000, event_id="x-2")
    outcomes = ledger.submit(first, second)
    receipt(outcomes[0])
    assert refusal_of(outcomes[1]) is Rule.LOT_EXISTS
    assert ledger.lot("L1").created_event_id == "x-1"
    assert ledger.lot("L1").mass_grams == 1000


def test_two_entries_with_one_id_in_one_batch(ledger: Ledger) -> None:
    world = ledger.world
    first = world.extract("mine", "mine-site", "L1", 1000, event_id="same")
    second = world.extract("mine", "mine-site", "L2", 1000, event_id="same")
    outcomes = ledger.submit(first, second)
    receipt(outcomes[0])
    assert refusal_of(outcomes[1]) is Rule.DUPLICATE_EVENT_ID
    assert ledger.view.lot("L2") is None


def test_nothing_before_genesis_and_genesis_only_once(empty_ledger: Ledger) -> None:
    world = empty_ledger.world
    early = world.admit("mine", ROLE.ROLE_MINE)
    outcomes = empty_ledger.submit(early, world.genesis(), world.genesis())
    assert refusal_of(outcomes[0]) is Rule.NO_GENESIS
    assert receipt(outcomes[1]).index == 0
    assert refusal_of(outcomes[2]) is Rule.GENESIS_NOT_FIRST
    assert receipt(empty_ledger.submit(early)[0]).index == 1  # now it has a genesis


def test_resubmitting_an_envelope_returns_its_receipt(ledger: Ledger) -> None:
    entry = ledger.world.extract("mine", "mine-site", "L1", 1000)
    original = receipt(ledger.submit(entry)[0])
    ledger.shipped("L1", "trader")  # the state moved on: the entry would now be refused
    size, before = ledger.sequencer.size, ledger.dump()
    again = receipt(ledger.submit(entry)[0])
    assert again.duplicate
    assert (again.index, again.leaf) == (original.index, original.leaf)
    assert ledger.sequencer.size == size
    assert ledger.dump() == before


def test_an_envelope_twice_in_one_batch_is_logged_once(ledger: Ledger) -> None:
    entry = _extraction(ledger)
    first, second = (receipt(o) for o in ledger.submit(entry, entry))
    assert not first.duplicate
    assert second.duplicate
    assert second.index == first.index == ledger.sequencer.size - 1


def test_a_refused_entry_takes_no_id(ledger: Ledger) -> None:
    world = ledger.world
    assert_refused(
        ledger, world.extract("mine", "nowhere", "L1", 1000, event_id="x-1"), Rule.UNKNOWN_FACILITY
    )
    assert_admitted(ledger, world.extract("mine", "mine-site", "L1", 1000, event_id="x-1"))


# --- what admitted entries do -----------------------------------------------------------------


def test_an_authenticated_caller_may_record_its_own_entries(ledger: Ledger) -> None:
    world = ledger.world
    assert_admitted(ledger, replace(_extraction(ledger), authenticated_partner="mine"))
    admission = world.admit("newco", ROLE.ROLE_TRADER)
    assert_admitted(ledger, replace(admission, authenticated_partner="association"))


def test_an_event_less_than_a_day_ahead_is_admitted(ledger: Ledger) -> None:
    entry = ledger.world.rewrite_event(
        _extraction(ledger), lambda m: m.event_time.CopyFrom(in_days(0.9))
    )
    assert_admitted(ledger, entry)


def test_a_receipt_with_a_transit_loss_lowers_the_available_mass(ledger: Ledger) -> None:
    ledger.mined("L1")
    dispatch, _ = ledger.delivered("L1", to="trader", mass=990)
    lot = ledger.lot("L1")
    assert (lot.holder_id, lot.state, lot.dispatch_event_id) == ("trader", LotState.HELD, None)
    assert (lot.mass_grams, lot.available_grams) == (1000, 990)
    record = ledger.dispatch_record(dispatch)
    assert (record.state, record.received_grams) == (DispatchState.RECEIVED, 990)
    assert_refused(
        ledger, ledger.world.dispatch("trader", "L1", "refiner", 1000), Rule.MASS_MISMATCH
    )
    assert_admitted(ledger, ledger.world.dispatch("trader", "L1", "refiner", 990))


def test_a_receipt_with_a_gain_does_not_raise_the_available_mass(ledger: Ledger) -> None:
    ledger.mined("L1")
    dispatch, _ = ledger.delivered("L1", to="refiner", mass=1010)
    assert ledger.lot("L1").available_grams == 1000
    assert ledger.dispatch_record(dispatch).received_grams == 1010
    over = ledger.world.transform("refiner", "refinery", [("L1", 1010)], [("R1", 1, {"Co": 1})])
    assert_refused(ledger, over, Rule.INSUFFICIENT_QUANTITY)


def test_a_transformation_consumes_partially_then_fully(ledger: Ledger) -> None:
    ledger.at_refiner("L1")
    first = ledger.refined([("L1", 400)], [("R1", 120, {"Co": 1_000_000})])  # exactly balanced
    lot = ledger.lot("L1")
    assert (lot.state, lot.available_grams, lot.holder_id) == (LotState.HELD, 600, "refiner")
    output = ledger.lot("R1")
    assert (output.state, output.holder_id, output.available_grams) == (
        LotState.HELD,
        "refiner",
        120,
    )
    assert output.created_event_id == first
    second = ledger.refined([("L1", 600)], [("R2", 180, {"Co": 1_000_000})])
    lot = ledger.lot("L1")
    assert (lot.state, lot.available_grams) == (LotState.CONSUMED, 0)
    consumers = ledger.view.consumers_of("L1")
    assert [(c.event_id, c.consumed_grams) for c in consumers] == [(first, 400), (second, 600)]


def test_outputs_may_weigh_more_but_not_contain_more(ledger: Ledger) -> None:
    ledger.at_refiner("L1")  # 1000 g at 300,000 ppm of Co
    sulfate = ledger.world.transform(
        "refiner", "refinery", [("L1", 1000)], [("S1", 1500, {"Co": 200_000})]
    )
    assert_admitted(ledger, sulfate)
    assert ledger.lot("S1").mass_grams == 1500


def test_voiding_an_open_dispatch_returns_the_lot(ledger: Ledger) -> None:
    ledger.mined("L1")
    dispatch = ledger.shipped("L1", "trader")
    correction = ledger.voided("mine", dispatch)
    lot = ledger.lot("L1")
    assert (lot.state, lot.holder_id, lot.dispatch_event_id) == (LotState.HELD, "mine", None)
    assert lot.available_grams == 1000
    record = ledger.dispatch_record(dispatch)
    assert record.state is DispatchState.CANCELLED
    event = ledger.view.event(dispatch)
    assert event is not None
    assert (event.status, event.corrected_by) == (EventStatus.VOIDED, correction)
    assert_admitted(ledger, ledger.world.dispatch("mine", "L1", "refiner", 1000))


def test_voiding_an_untouched_extraction_voids_the_lot(ledger: Ledger) -> None:
    extraction = ledger.extraction_of(ledger.mined("L1"))
    ledger.voided("mine", extraction)
    lot = ledger.lot("L1")
    assert (lot.state, lot.available_grams) == (LotState.VOIDED, 0)
    assert ledger.status(extraction) is EventStatus.VOIDED
    refining = ledger.world.transform(
        "mine",
        "mine-site",
        [("L1", 1)],
        [("K1", 1, {"Co": 1})],
        process=PROCESS.PROCESS_CONCENTRATION,
    )
    assert_refused(ledger, refining, Rule.LOT_NOT_HELD)
    # The same for a recovery.
    _recycler(ledger)
    recovery = ledger.world.recover("recycler", "yard", "B1", 500, event_id="rec-1")
    ledger.append(recovery)
    ledger.voided("recycler", "rec-1")
    assert ledger.lot("B1").state is LotState.VOIDED


def test_voiding_a_transformation_gives_the_consumed_mass_back(ledger: Ledger) -> None:
    ledger.at_refiner("L1")
    ledger.at_refiner("L2")
    blend = ledger.refined([("L1", 400), ("L2", 1000)], [("B1", 420, {"Co": 1_000_000})])
    assert ledger.lot("L2").state is LotState.CONSUMED
    ledger.voided("refiner", blend)
    for lot_id in ("L1", "L2"):
        lot = ledger.lot(lot_id)
        assert (lot.state, lot.available_grams) == (LotState.HELD, 1000)
    assert ledger.lot("B1").state is LotState.VOIDED
    record = ledger.view.transformation(blend)
    assert record is not None
    assert record.voided
    assert_admitted(
        ledger,
        ledger.world.transform(
            "refiner", "refinery", [("L1", 1000)], [("R1", 300, {"Co": 1_000_000})]
        ),
    )


def test_superseding_an_assay(ledger: Ledger) -> None:
    ledger.mined("L1")
    first, second = ledger.assayed("L1", Co=290_000), ledger.assayed("L1", Co=295_000)
    assert_admitted(ledger, ledger.world.supersede("lab", first, second))
    statuses = {a.event_id: a.status for a in ledger.view.assays_of("L1")}
    assert statuses == {first: EventStatus.SUPERSEDED, second: EventStatus.ACTIVE}
    assert ledger.status(first) is EventStatus.SUPERSEDED
    assert ledger.status(second) is EventStatus.ACTIVE


def test_superseding_a_certification(ledger: Ledger) -> None:
    first, second = ledger.certified("refinery"), ledger.certified("refinery")
    assert_admitted(ledger, ledger.world.supersede("auditor", first, second))
    statuses = {c.event_id: c.status for c in ledger.view.certifications_of("refinery")}
    assert statuses == {first: EventStatus.SUPERSEDED, second: EventStatus.ACTIVE}


def test_key_rotation(ledger: Ledger) -> None:
    world = ledger.world
    old, new = world.signers["mine"], signer_for("mine", 1)
    assert_admitted(ledger, world.add_key("mine", new, signers=[old]))  # its own key
    revocation = assert_admitted(ledger, world.revoke_key("mine", old.keyid, signers=[new]))
    key = ledger.view.key(old.keyid)
    assert key is not None
    assert key.revoked_index == revocation
    assert_refused(ledger, resigned(_extraction(ledger), [old]), Rule.KEY_NOT_VALID)
    assert_admitted(ledger, resigned(_extraction(ledger), [new]))


def test_a_revocation_may_be_signed_by_the_key_it_revokes(ledger: Ledger) -> None:
    world = ledger.world
    old, new = world.signers["mine"], signer_for("mine", 1)
    assert_admitted(ledger, world.add_key("mine", new, signers=[old]))
    assert_admitted(ledger, world.revoke_key("mine", old.keyid, signers=[old]))
    assert_refused(ledger, world.revoke_key("mine", new.keyid, signers=[old]), Rule.KEY_NOT_VALID)


def test_a_key_added_in_a_batch_signs_later_entries_of_that_batch(ledger: Ledger) -> None:
    world = ledger.world
    old, new = world.signers["mine"], signer_for("mine", 1)
    outcomes = ledger.submit(
        world.add_key("mine", new, signers=[old]), resigned(_extraction(ledger), [new])
    )
    receipt(outcomes[0])
    receipt(outcomes[1])


def test_removing_an_administrator_needs_a_reachable_threshold(ledger: Ledger) -> None:
    world = ledger.world
    operator, association = world.signers["operator"], world.signers["association"]
    demote = world.change_roles("operator", ROLE.ROLE_TRADER)
    assert_refused(ledger, demote, Rule.THRESHOLD_UNREACHABLE)
    assert_admitted(ledger, world.policy(1))
    assert_admitted(
        ledger, resigned(world.change_roles("operator", ROLE.ROLE_TRADER), [association])
    )
    consortium = ledger.view.consortium()
    assert consortium is not None
    assert (consortium.threshold, consortium.admin_ids) == (1, ("association",))
    assert_refused(
        ledger, resigned(world.admit("newco", ROLE.ROLE_TRADER), [operator]), Rule.KEY_NOT_VALID
    )
    assert_admitted(ledger, resigned(world.admit("newco", ROLE.ROLE_TRADER), [association]))
    # The last administrator cannot step down.
    last = resigned(world.change_roles("association", ROLE.ROLE_TRADER), [association])
    assert_refused(ledger, last, Rule.THRESHOLD_UNREACHABLE)


def test_a_policy_changes_the_threshold(ledger: Ledger) -> None:
    world = ledger.world
    operator = world.signers["operator"]
    assert_admitted(ledger, world.policy(1))
    assert_admitted(ledger, resigned(world.admit("one", ROLE.ROLE_TRADER), [operator]))
    assert_admitted(ledger, resigned(world.policy(2), [operator]))
    two = resigned(world.admit("two", ROLE.ROLE_TRADER), [operator])
    assert_refused(ledger, two, Rule.THRESHOLD_NOT_MET)


def test_a_new_administrator_counts_towards_the_threshold(ledger: Ledger) -> None:
    world = ledger.world
    assert_admitted(ledger, world.admit("regulator", ROLE.ROLE_ADMIN, country="BE"))
    assert_admitted(ledger, world.policy(3))
    three = [*world.admin_signers(), world.signers["regulator"]]
    assert_refused(ledger, world.admit("newco", ROLE.ROLE_TRADER), Rule.THRESHOLD_NOT_MET)
    assert_admitted(ledger, resigned(world.admit("newco", ROLE.ROLE_TRADER), three))


def test_a_partners_own_key_addition_only_for_itself(ledger: Ledger) -> None:
    world = ledger.world
    mine = world.signers["mine"]
    for_trader = world.add_key("trader", signer_for("trader", 1), signers=[mine])
    assert_refused(ledger, for_trader, Rule.KEY_NOT_VALID)
    assert_admitted(ledger, world.add_key("mine", signer_for("mine", 1), signers=[mine]))


# --- subject links -------------------------------------------------------------------------------


def test_subject_links_point_to_the_previous_leaf_of_each_subject(ledger: Ledger) -> None:
    # Preamble: 1 mine, 2 trader, 3 refiner admitted; 6 mine-site, 7 refinery, 8 trader-hub.
    assert ledger.links(0) == {"partner:association": None, "partner:operator": None}
    assert ledger.links(1) == {"partner:mine": None}
    assert ledger.links(6) == {"facility:mine-site": None, "partner:mine": 1}
    ledger.mined("L1")  # 9
    ledger.delivered("L1", to="refiner")  # 10, 11
    ledger.refined([("L1", 400)], [("R1", 120, {"Co": 1_000_000})])  # 12
    dispatch = ledger.shipped("R1", "trader", sender="refiner")  # 13
    ledger.voided("refiner", dispatch)  # 14
    ledger.assayed("L1")  # 15
    assert ledger.links(9) == {"facility:mine-site": 6, "lot:L1": None, "partner:mine": 6}
    assert ledger.links(10) == {"lot:L1": 9, "partner:mine": 9, "partner:refiner": 7}
    assert ledger.links(11) == {"lot:L1": 10, "partner:mine": 10, "partner:refiner": 10}
    assert ledger.links(12) == {
        "facility:refinery": 7,
        "lot:L1": 11,
        "lot:R1": None,
        "partner:refiner": 11,
    }
    assert ledger.links(13) == {"lot:R1": 12, "partner:refiner": 12, "partner:trader": 8}
    assert ledger.links(14) == {"lot:R1": 13, "partner:refiner": 13}
    assert ledger.links(15) == {"lot:L1": 12, "partner:lab": 4}
    # Sorted by subject, and the lot's chain walks back extraction <- ... <- assay.
    leaf = decode_leaf(ledger.store.leaf(12).leaf_bytes)
    subjects = [link.subject for link in leaf.subject_links]
    assert subjects == sorted(subjects)
    chain, index = [], ledger.view.subject_head("lot:L1")
    while index is not None:
        chain.append(index)
        index = ledger.links(index)["lot:L1"]
    assert chain == [15, 12, 11, 10, 9]
    assert ledger.view.events_for_subject("lot:L1") == [9, 10, 11, 12, 15]
    # Facilities named by a dispatch and a receipt; a supersession links the lot.
    world = ledger.world
    ledger.append(
        world.rewrite_event(
            world.dispatch("refiner", "R1", "trader", 120, event_id="d-R1"),
            lambda m: m.dispatch.MergeFrom(
                event_pb2.Dispatch(from_facility_id="refinery", to_facility_id="trader-hub")
            ),
        )
    )  # 16
    ledger.append(
        world.rewrite_event(
            world.receive("trader", "d-R1", "R1", 120),
            lambda m: setattr(m.receipt, "facility_id", "trader-hub"),
        )
    )  # 17
    assert ledger.links(16) == {
        "facility:refinery": 12,
        "facility:trader-hub": 8,
        "lot:R1": 14,
        "partner:refiner": 14,
        "partner:trader": 13,
    }
    assert ledger.links(17) == {
        "facility:trader-hub": 16,
        "lot:R1": 16,
        "partner:refiner": 16,
        "partner:trader": 16,
    }
    second = ledger.assayed("L1")  # 18
    first = ledger.view.assays_of("L1")[0].event_id
    ledger.append(world.supersede("lab", first, second))  # 19
    assert ledger.links(19) == {"lot:L1": 18, "partner:lab": 18}


# --- reindex ---------------------------------------------------------------------------------


def test_reindex_rebuilds_the_state_the_sequencer_built(ledger: Ledger) -> None:
    world = ledger.world
    _recycler(ledger)
    ledger.at_refiner("L1")
    ledger.mined("L2")
    outcomes = ledger.submit(
        world.dispatch("mine", "L2", "trader", 1000),
        world.dispatch("mine", "L2", "refiner", 1000),  # refused: in transit
        world.extract("mine", "mine-site", "L3", 500),
        world.extract("mine", "mine-site", "L3", 500),  # refused: lot exists
        world.recover("recycler", "yard", "B1", 2000),
    )
    assert [isinstance(o, Receipt) for o in outcomes] == [True, False, True, False, True]
    ledger.refined([("L1", 400)], [("R1", 120, {"Co": 1_000_000})])
    ledger.voided("mine", ledger.extraction_of(ledger.mined("L4")))
    first, second = ledger.assayed("L1"), ledger.assayed("L1")
    ledger.append(world.supersede("lab", first, second))
    ledger.voided("auditor", ledger.certified("refinery"))
    ledger.voided("mine", ledger.shipped("L3", "refiner"))
    new = signer_for("trader", 1)
    ledger.append(
        world.add_key("trader", new, signers=[world.signers["trader"]]),
        world.revoke_key("trader", world.signers["trader"].keyid, signers=[new]),
        world.policy(1),
        world.change_roles("refiner", ROLE.ROLE_PROCESSOR, ROLE.ROLE_MANUFACTURER),
    )
    not_held = resigned(world.dispatch("trader", "L2", "refiner", 1000), [new])
    assert_refused(ledger, not_held, Rule.LOT_NOT_HELD)  # L2 is still in transit to trader
    built, size = ledger.dump(), ledger.sequencer.size
    with ledger.store.snapshot() as conn:
        leaves = [decode_leaf(stored.leaf_bytes) for stored in ledger.store.iter_leaves(conn=conn)]
    assert dump_state(replay(leaves)) == built
    report = reindex(ledger.store)
    assert report.leaves == size
    assert ledger.dump() == built
    # The sequencer goes on from the rebuilt state.
    assert_admitted(ledger, world.extract("mine", "mine-site", "L5", 100))
