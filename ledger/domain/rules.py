"""The admission rules: a pure state machine over the registry and inventory.

``apply_entry`` takes the state as of the entry's index and the decoded
entry, checks every rule of DESIGN.md 4.1 (as written out in docs/domain.md),
and only when all hold writes the entry's effects into the state and returns
the leaf's subject links. A refusal raises ``AdmissionRuleError`` with its
``Rule`` code and changes nothing. The sequencer, ``custody log reindex`` and
every replaying verifier call this same function.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ledger.domain.event_rules import apply_event
from ledger.domain.governance_rules import apply_governance
from ledger.domain.payloads import (
    DomainPayload,
    EventPayload,
    GovernancePayload,
)
from ledger.domain.records import (
    Consortium,
    DispatchRecord,
    EventKind,
    EventRecord,
    Facility,
    Lot,
    Partner,
    PartnerKey,
    SubjectHead,
)
from ledger.domain.rule_base import DomainEntry
from ledger.domain.state import CONSORTIUM_KEY, DomainState, SubjectEvent
from ledger.dsse import keyid_for
from ledger.leaf import SubjectLink

__all__ = ["DomainEntry", "apply_entry", "prefetch"]


def apply_entry(state: DomainState, entry: DomainEntry) -> tuple[SubjectLink, ...]:
    """Check every rule for ``entry`` against ``state``; if all hold, apply it.

    Returns the leaf's subject links (DESIGN.md 3.6), sorted by subject.
    """
    payload = entry.payload
    if isinstance(payload, GovernancePayload):
        effects = apply_governance(state, entry, payload)
    else:
        effects = apply_event(state, entry, payload)
    subjects = sorted(effects.subjects)
    links = tuple(SubjectLink(subject, state.subject_head(subject)) for subject in subjects)
    for record in effects.puts:
        state.put(record)
    for row in effects.inputs:
        state.append(row)
    for subject in subjects:
        state.put(SubjectHead(subject, entry.index))
        state.append(SubjectEvent(subject, entry.index))
    return links


def prefetch(
    state: DomainState, payloads: Iterable[DomainPayload], signer_keyids: Iterable[str]
) -> None:
    """Load what a batch of entries will read in a few queries instead of one per lookup."""
    ids = _Referenced()
    ids.keys.update(signer_keyids)
    for payload in payloads:
        ids.events.add(payload.event_id)
        if isinstance(payload, EventPayload):
            _event_references(payload, ids)
        else:
            _governance_references(payload, ids)
    state.prefetch(Consortium, (CONSORTIUM_KEY,))
    state.prefetch(PartnerKey, ids.keys)
    state.prefetch(EventRecord, ids.events)
    state.prefetch(Partner, ids.partners)
    state.prefetch(Lot, ids.lots)
    state.prefetch(Facility, ids.facilities)
    state.prefetch(DispatchRecord, ids.dispatches)
    heads = {f"partner:{p}" for p in ids.partners}
    heads.update(f"lot:{lot}" for lot in ids.lots)
    heads.update(f"facility:{f}" for f in ids.facilities)
    state.prefetch(SubjectHead, heads)


@dataclass
class _Referenced:
    keys: set[str] = field(default_factory=set)
    events: set[str] = field(default_factory=set)
    partners: set[str] = field(default_factory=set)
    lots: set[str] = field(default_factory=set)
    facilities: set[str] = field(default_factory=set)
    dispatches: set[str] = field(default_factory=set)


def _event_references(payload: EventPayload, ids: _Referenced) -> None:
    message = payload.message
    ids.partners.add(message.partner_id)
    match payload.kind:
        case EventKind.EXTRACTION | EventKind.RECOVERY:
            body = getattr(message, payload.kind.value)
            ids.lots.add(body.lot_id)
            ids.facilities.add(body.facility_id)
        case EventKind.DISPATCH:
            ids.lots.add(message.dispatch.lot_id)
            ids.partners.add(message.dispatch.to_partner_id)
            named = (message.dispatch.from_facility_id, message.dispatch.to_facility_id)
            ids.facilities.update(f for f in named if f)
        case EventKind.RECEIPT:
            ids.lots.add(message.receipt.lot_id)
            ids.dispatches.add(message.receipt.dispatch_event_id)
            if message.receipt.facility_id:
                ids.facilities.add(message.receipt.facility_id)
        case EventKind.TRANSFORMATION:
            body_t = message.transformation
            ids.facilities.add(body_t.facility_id)
            ids.lots.update(i.lot_id for i in body_t.inputs)
            ids.lots.update(o.lot_id for o in body_t.outputs)
        case EventKind.ASSAY:
            ids.lots.add(message.assay.lot_id)
        case EventKind.CERTIFICATION:
            ids.facilities.add(message.certification.facility_id)
        case _:
            ids.events.add(message.correction.target_event_id)
            if message.correction.replacement_event_id:
                ids.events.add(message.correction.replacement_event_id)


def _governance_references(payload: GovernancePayload, ids: _Referenced) -> None:
    message = payload.message
    match payload.kind:
        case EventKind.PARTNER_ADMISSION:
            ids.partners.add(message.partner_admission.partner.partner_id)
            ids.keys.update(keyid_for(k) for k in message.partner_admission.partner.public_keys)
        case EventKind.ROLE_CHANGE:
            ids.partners.add(message.role_change.partner_id)
        case EventKind.KEY_ADDITION:
            ids.partners.add(message.key_addition.partner_id)
            ids.keys.add(keyid_for(message.key_addition.public_key))
        case EventKind.KEY_REVOCATION:
            ids.partners.add(message.key_revocation.partner_id)
            ids.keys.add(message.key_revocation.keyid)
        case EventKind.FACILITY_REGISTRATION:
            ids.partners.add(message.facility_registration.partner_id)
            ids.facilities.add(message.facility_registration.facility_id)
        case _:  # genesis and policy read only the consortium
            pass
