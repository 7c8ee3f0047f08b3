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

from ledger.domain.event_rules import apply_event
from ledger.domain.governance_rules import apply_governance
from ledger.domain.payloads import (
    DomainPayload,
    EventPayload,
    GovernancePayload,
)
from ledger.domain.records import (
    DispatchRecord,
    EventKind,
    EventRecord,
    Facility,
    Lot,
    Partner,
    SubjectHead,
)
from ledger.domain.rule_base import DomainEntry, refuse
from ledger.domain.state import DomainState, SubjectEvent
from ledger.leaf import SubjectLink

__all__ = ["DomainEntry", "apply_entry", "prefetch", "refuse"]


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


def prefetch(state: DomainState, payloads: Iterable[DomainPayload]) -> None:
    """Load what a batch of entries will read in a few queries instead of one per lookup."""
    events: set[str] = set()
    partners: set[str] = set()
    lots: set[str] = set()
    facilities: set[str] = set()
    dispatches: set[str] = set()
    for payload in payloads:
        events.add(payload.event_id)
        if isinstance(payload, EventPayload):
            message = payload.message
            partners.add(message.partner_id)
            match payload.kind:
                case EventKind.EXTRACTION | EventKind.RECOVERY:
                    body = getattr(message, payload.kind.value)
                    lots.add(body.lot_id)
                    facilities.add(body.facility_id)
                case EventKind.DISPATCH:
                    lots.add(message.dispatch.lot_id)
                    partners.add(message.dispatch.to_partner_id)
                case EventKind.RECEIPT:
                    lots.add(message.receipt.lot_id)
                    dispatches.add(message.receipt.dispatch_event_id)
                case EventKind.TRANSFORMATION:
                    t = message.transformation
                    facilities.add(t.facility_id)
                    lots.update(i.lot_id for i in t.inputs)
                    lots.update(o.lot_id for o in t.outputs)
                case EventKind.ASSAY:
                    lots.add(message.assay.lot_id)
                case EventKind.CERTIFICATION:
                    facilities.add(message.certification.facility_id)
                case _:
                    events.add(message.correction.target_event_id)
    state.prefetch(EventRecord, events)
    state.prefetch(Partner, partners)
    state.prefetch(Lot, lots)
    state.prefetch(Facility, facilities)
    state.prefetch(DispatchRecord, dispatches)
    heads = {f"partner:{p}" for p in partners}
    heads.update(f"lot:{lot}" for lot in lots)
    heads.update(f"facility:{f}" for f in facilities)
    state.prefetch(SubjectHead, heads)
