"""Event rules: who may record what, custody of lots, and mass balance."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from ledger.domain.correction_rules import apply_correction
from ledger.domain.payloads import (
    EventPayload,
    contents_of,
    timestamp_micros,
)
from ledger.domain.records import (
    HOLDING_ROLES,
    AssayRecord,
    CertificationRecord,
    CertificationStatus,
    DispatchRecord,
    DispatchState,
    EventKind,
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
from ledger.domain.rule_base import (
    DomainEntry,
    Effects,
    EventContext,
    check_identity,
    check_unused_id,
    event_record,
    known_partner,
    refuse,
    valid_key_of,
)
from ledger.domain.state import DomainState, LotInput
from ledger.errors import Rule

MAX_FUTURE_MICROS = 86_400 * 1_000_000
"""How far an event time may lie after its integration time (clock skew, time zones)."""

EVENT_ROLES: Mapping[EventKind, frozenset[Role]] = {
    EventKind.EXTRACTION: frozenset({Role.MINE}),
    EventKind.RECOVERY: frozenset({Role.RECYCLER}),
    EventKind.DISPATCH: HOLDING_ROLES,
    EventKind.RECEIPT: HOLDING_ROLES,
    EventKind.ASSAY: frozenset({Role.LAB}),
    EventKind.CERTIFICATION: frozenset({Role.AUDITOR}),
    EventKind.CORRECTION: frozenset(Role),
}
PROCESS_ROLES: Mapping[Process, frozenset[Role]] = {
    Process.SPLIT: HOLDING_ROLES,
    Process.BLEND: HOLDING_ROLES,
    Process.CONCENTRATION: frozenset({Role.MINE, Role.PROCESSOR}),
    Process.SMELTING: frozenset({Role.PROCESSOR}),
    Process.REFINING: frozenset({Role.PROCESSOR}),
    Process.PRECURSOR_SYNTHESIS: frozenset({Role.PROCESSOR, Role.MANUFACTURER}),
    Process.CATHODE_PRODUCTION: frozenset({Role.PROCESSOR, Role.MANUFACTURER}),
    Process.CELL_MANUFACTURE: frozenset({Role.MANUFACTURER}),
    Process.RECYCLING: frozenset({Role.RECYCLER, Role.PROCESSOR}),
}


def event_signer(state: DomainState, entry: DomainEntry, partner_id: str) -> Partner:
    """1. The recorder exists, every signature is one of its valid keys, and it is the caller."""
    partner = known_partner(state, partner_id)
    if not entry.signer_keys:
        raise refuse(Rule.KEY_NOT_VALID, "the entry carries no signature")
    for keyid, public_key in entry.signer_keys.items():
        key = state.key(keyid)
        if not valid_key_of(key, partner_id, public_key, entry.index):
            raise refuse(
                Rule.KEY_NOT_VALID,
                f"key {keyid[:16]}... is not a valid key of {partner_id!r} at index {entry.index}",
            )
    check_identity(entry, {partner_id})
    return partner


def apply_event(state: DomainState, entry: DomainEntry, payload: EventPayload) -> Effects:
    message = payload.message
    if state.consortium() is None:
        raise refuse(Rule.NO_GENESIS, "the log has no genesis entry yet")
    partner = event_signer(state, entry, message.partner_id)
    check_unused_id(state, payload.event_id)
    if payload.event_time_micros > entry.integration_time_micros + MAX_FUTURE_MICROS:
        raise refuse(Rule.EVENT_IN_FUTURE, "the event time is more than a day in the future")
    if payload.kind is EventKind.TRANSFORMATION:
        needed = PROCESS_ROLES[Process(message.transformation.process)]
    else:
        needed = EVENT_ROLES[payload.kind]
    if not needed.intersection(partner.roles):
        names = ", ".join(sorted(role.name for role in needed))
        raise refuse(Rule.ROLE_REQUIRED, f"{payload.kind.value} needs one of the roles {names}")
    context = EventContext(state, entry, payload, partner, Effects())
    _EVENT_RULES[payload.kind](context)
    # An extraction or recovery names the lot it created, so a void can find it.
    origin = payload.kind in (EventKind.EXTRACTION, EventKind.RECOVERY)
    lot_id = getattr(message, payload.kind.value).lot_id if origin else None
    context.effects.subjects.add(f"partner:{partner.partner_id}")
    context.effects.puts.append(
        event_record(
            payload.event_id,
            partner.partner_id,
            payload.kind,
            entry.index,
            payload.event_time_micros,
            lot_id,
        )
    )
    return context.effects


def _own_facility(
    context: EventContext, facility_id: str, kind: FacilityType | None = None
) -> Facility:
    facility = context.state.facility(facility_id)
    if facility is None:
        raise refuse(Rule.UNKNOWN_FACILITY, f"facility {facility_id!r} is not registered")
    if facility.partner_id != context.recorder:
        raise refuse(
            Rule.FACILITY_NOT_OWNED,
            f"facility {facility_id!r} belongs to {facility.partner_id!r}, not the recorder",
        )
    if kind is not None and facility.type is not kind:
        raise refuse(
            Rule.WRONG_FACILITY_TYPE,
            f"facility {facility_id!r} is a {facility.type.name}, not a {kind.name}",
        )
    context.effects.subjects.add(f"facility:{facility_id}")
    return facility


def _new_lot_id(context: EventContext, lot_id: str) -> None:
    if context.state.lot(lot_id) is not None:
        raise refuse(Rule.LOT_EXISTS, f"lot {lot_id!r} already exists")
    context.effects.subjects.add(f"lot:{lot_id}")


def _held_lot(context: EventContext, lot_id: str) -> Lot:
    """The lot exists, the recorder holds it, and it is not on its way elsewhere."""
    lot = context.state.lot(lot_id)
    if lot is None:
        raise refuse(Rule.UNKNOWN_LOT, f"lot {lot_id!r} does not exist")
    if lot.holder_id != context.recorder or lot.state is LotState.VOIDED:
        raise refuse(
            Rule.LOT_NOT_HELD,
            f"lot {lot_id!r} is "
            + ("void" if lot.state is LotState.VOIDED else f"held by {lot.holder_id!r}"),
        )
    if lot.state is LotState.IN_TRANSIT:
        raise refuse(Rule.LOT_IN_TRANSIT, f"lot {lot_id!r} is in transit")
    context.effects.subjects.add(f"lot:{lot_id}")
    return lot


def _origin_lot(context: EventContext) -> None:
    """Extraction at a mine site, recovery at a recycling site: a new lot."""
    message = context.payload.message
    recovery = context.payload.kind is EventKind.RECOVERY
    body = message.recovery if recovery else message.extraction
    site = FacilityType.RECYCLING_SITE if recovery else FacilityType.MINE_SITE
    _own_facility(context, body.facility_id, site)
    _new_lot_id(context, body.lot_id)
    context.effects.puts.append(
        Lot(
            lot_id=body.lot_id,
            material=body.material,
            mass_grams=body.mass_grams,
            contents=contents_of(body.contents),
            holder_id=context.recorder,
            available_grams=body.mass_grams,
            state=LotState.HELD,
            dispatch_event_id=None,
            origin=LotOrigin.RECOVERY if recovery else LotOrigin.EXTRACTION,
            created_event_id=context.event_id,
            created_index=context.index,
            facility_id=body.facility_id,
            scrap_origin=ScrapOrigin(message.recovery.scrap_origin) if recovery else None,
            updated_index=context.index,
        )
    )


def _dispatch(context: EventContext) -> None:
    body = context.payload.message.dispatch
    lot = _held_lot(context, body.lot_id)
    if lot.available_grams == 0:
        raise refuse(Rule.INSUFFICIENT_QUANTITY, f"nothing is left of lot {lot.lot_id!r}")
    if body.mass_grams != lot.available_grams:
        raise refuse(
            Rule.MASS_MISMATCH,
            f"a dispatch sends the whole lot: {lot.available_grams} g available, "
            f"{body.mass_grams} g declared (split the lot to send part of it)",
        )
    addressee = context.state.partner(body.to_partner_id)
    if addressee is None:
        raise refuse(Rule.UNKNOWN_PARTNER, f"addressee {body.to_partner_id!r} is not admitted")
    if not HOLDING_ROLES.intersection(addressee.roles):
        raise refuse(Rule.ROLE_REQUIRED, f"addressee {body.to_partner_id!r} cannot hold lots")
    if body.from_facility_id:
        _own_facility(context, body.from_facility_id)
    if body.to_facility_id:
        facility = context.state.facility(body.to_facility_id)
        if facility is None:
            raise refuse(
                Rule.UNKNOWN_FACILITY, f"facility {body.to_facility_id!r} is not registered"
            )
        if facility.partner_id != addressee.partner_id:
            raise refuse(
                Rule.FACILITY_NOT_OWNED,
                f"facility {body.to_facility_id!r} does not belong to the addressee",
            )
        context.effects.subjects.add(f"facility:{body.to_facility_id}")
    context.effects.subjects.add(f"partner:{addressee.partner_id}")
    context.effects.puts += [
        replace(
            lot,
            state=LotState.IN_TRANSIT,
            dispatch_event_id=context.event_id,
            updated_index=context.index,
        ),
        DispatchRecord(
            event_id=context.event_id,
            lot_id=lot.lot_id,
            from_partner_id=context.recorder,
            to_partner_id=addressee.partner_id,
            mass_grams=body.mass_grams,
            index=context.index,
            state=DispatchState.OPEN,
            received_grams=None,
            closed_index=None,
            updated_index=context.index,
        ),
    ]


def _receipt(context: EventContext) -> None:
    body = context.payload.message.receipt
    dispatch = context.state.dispatch(body.dispatch_event_id)
    if dispatch is None:
        raise refuse(
            Rule.UNKNOWN_DISPATCH, f"no dispatch has the event id {body.dispatch_event_id!r}"
        )
    if dispatch.to_partner_id != context.recorder:
        raise refuse(
            Rule.NOT_ADDRESSEE,
            f"dispatch {dispatch.event_id!r} is addressed to {dispatch.to_partner_id!r}",
        )
    if dispatch.state is not DispatchState.OPEN:
        raise refuse(
            Rule.DISPATCH_NOT_OPEN,
            f"dispatch {dispatch.event_id!r} is {dispatch.state.value}",
        )
    if body.lot_id != dispatch.lot_id:
        raise refuse(
            Rule.LOT_MISMATCH,
            f"dispatch {dispatch.event_id!r} sent lot {dispatch.lot_id!r}, not {body.lot_id!r}",
        )
    lot = context.state.lot(dispatch.lot_id)
    if lot is None:  # an open dispatch always names a stored lot
        raise AssertionError(f"open dispatch {dispatch.event_id} names no lot")
    if body.facility_id:
        _own_facility(context, body.facility_id)
    context.effects.subjects.update({f"lot:{lot.lot_id}", f"partner:{dispatch.from_partner_id}"})
    context.effects.puts += [
        replace(
            lot,
            holder_id=context.recorder,
            state=LotState.HELD,
            dispatch_event_id=None,
            # A loss in transit is booked; a gain never creates metal.
            available_grams=min(lot.available_grams, body.received_mass_grams),
            updated_index=context.index,
        ),
        replace(
            dispatch,
            state=DispatchState.RECEIVED,
            received_grams=body.received_mass_grams,
            closed_index=context.index,
            updated_index=context.index,
        ),
    ]


def _transformation(context: EventContext) -> None:
    body = context.payload.message.transformation
    _own_facility(context, body.facility_id)
    consumed_metal: dict[str, int] = {}  # element -> micrograms
    inputs: list[tuple[str, int]] = []
    for item in body.inputs:
        lot = _held_lot(context, item.lot_id)
        if item.consumed_mass_grams > lot.available_grams:
            raise refuse(
                Rule.INSUFFICIENT_QUANTITY,
                f"lot {lot.lot_id!r} has {lot.available_grams} g available; "
                f"{item.consumed_mass_grams} g consumed",
            )
        for element, ppm in lot.contents:
            consumed_metal[element] = consumed_metal.get(element, 0) + (
                item.consumed_mass_grams * ppm
            )
        left = lot.available_grams - item.consumed_mass_grams
        context.effects.puts.append(
            replace(
                lot,
                available_grams=left,
                state=LotState.HELD if left else LotState.CONSUMED,
                updated_index=context.index,
            )
        )
        inputs.append((lot.lot_id, item.consumed_mass_grams))
        context.effects.inputs.append(
            LotInput(lot.lot_id, context.event_id, item.consumed_mass_grams, context.index)
        )
    produced_metal: dict[str, int] = {}
    for out in body.outputs:
        _new_lot_id(context, out.lot_id)
        for content in out.contents:
            produced_metal[content.element] = produced_metal.get(content.element, 0) + (
                out.mass_grams * content.ppm
            )
    for element, produced in sorted(produced_metal.items()):
        available = consumed_metal.get(element, 0)
        if produced > available:
            raise refuse(
                Rule.MASS_BALANCE_EXCEEDED,
                f"outputs contain {produced} µg of {element}; the consumed inputs "
                f"contain {available} µg",
            )
    for out in body.outputs:
        context.effects.puts.append(
            Lot(
                lot_id=out.lot_id,
                material=out.material,
                mass_grams=out.mass_grams,
                contents=contents_of(out.contents),
                holder_id=context.recorder,
                available_grams=out.mass_grams,
                state=LotState.HELD,
                dispatch_event_id=None,
                origin=LotOrigin.TRANSFORMATION,
                created_event_id=context.event_id,
                created_index=context.index,
                facility_id=body.facility_id,
                scrap_origin=None,
                updated_index=context.index,
            )
        )
    context.effects.puts.append(
        TransformationRecord(
            event_id=context.event_id,
            partner_id=context.recorder,
            facility_id=body.facility_id,
            process=Process(body.process),
            inputs=tuple(inputs),
            outputs=tuple(out.lot_id for out in body.outputs),
            index=context.index,
            event_time_micros=context.payload.event_time_micros,
            voided=False,
            updated_index=context.index,
        )
    )


def _assay(context: EventContext) -> None:
    body = context.payload.message.assay
    if context.state.lot(body.lot_id) is None:
        raise refuse(Rule.UNKNOWN_LOT, f"lot {body.lot_id!r} does not exist")
    context.effects.subjects.add(f"lot:{body.lot_id}")
    context.effects.puts.append(
        AssayRecord(
            event_id=context.event_id,
            lot_id=body.lot_id,
            lab_id=context.recorder,
            contents=contents_of(body.contents),
            method=body.method,
            sample_id=body.sample_id,
            index=context.index,
            status=EventStatus.ACTIVE,
            updated_index=context.index,
        )
    )


def _certification(context: EventContext) -> None:
    body = context.payload.message.certification
    if context.state.facility(body.facility_id) is None:
        raise refuse(Rule.UNKNOWN_FACILITY, f"facility {body.facility_id!r} is not registered")
    context.effects.subjects.add(f"facility:{body.facility_id}")
    context.effects.puts.append(
        CertificationRecord(
            event_id=context.event_id,
            auditor_id=context.recorder,
            facility_id=body.facility_id,
            scheme=body.scheme,
            metals=tuple(sorted(body.metals)),
            certification_status=CertificationStatus(body.status),
            valid_from_micros=timestamp_micros(body.valid_from, "valid_from"),
            valid_until_micros=timestamp_micros(body.valid_until, "valid_until"),
            index=context.index,
            status=EventStatus.ACTIVE,
            updated_index=context.index,
        )
    )


_EVENT_RULES: Mapping[EventKind, Callable[[EventContext], None]] = {
    EventKind.EXTRACTION: _origin_lot,
    EventKind.RECOVERY: _origin_lot,
    EventKind.DISPATCH: _dispatch,
    EventKind.RECEIPT: _receipt,
    EventKind.TRANSFORMATION: _transformation,
    EventKind.ASSAY: _assay,
    EventKind.CERTIFICATION: _certification,
    EventKind.CORRECTION: apply_correction,
}
