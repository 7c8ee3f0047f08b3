"""Correction rules: voiding and superseding an earlier event of the same partner."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from custody.v1 import event_pb2
from ledger.domain.records import (
    AssayRecord,
    CertificationRecord,
    DispatchState,
    EventKind,
    EventRecord,
    EventStatus,
    Lot,
    LotState,
)
from ledger.domain.rule_base import (
    EventContext,
    refuse,
)
from ledger.domain.state import DomainState
from ledger.errors import AdmissionRuleError, Rule


def apply_correction(context: EventContext) -> None:
    body = context.payload.message.correction
    state, index = context.state, context.index
    target = state.event(body.target_event_id)
    if target is None:
        raise refuse(Rule.UNKNOWN_EVENT, f"no event has the id {body.target_event_id!r}")
    if target.partner_id != context.recorder:
        raise refuse(
            Rule.NOT_EVENT_OWNER,
            f"event {target.event_id!r} was recorded by {target.partner_id!r}",
        )
    if target.status is not EventStatus.ACTIVE:
        raise refuse(
            Rule.ALREADY_CORRECTED,
            f"event {target.event_id!r} is already {target.status.value} "
            f"(by {target.corrected_by})",
        )
    if body.action == event_pb2.CORRECTION_ACTION_VOID:
        undo = _VOIDERS.get(target.kind)
        if undo is None:
            raise refuse(Rule.CORRECTION_NOT_APPLICABLE, f"a {target.kind.value} cannot be voided")
        undo(context, target)
        status = EventStatus.VOIDED
    else:
        _supersede(context, target, body.replacement_event_id)
        status = EventStatus.SUPERSEDED
    context.effects.puts.append(
        replace(target, status=status, corrected_by=context.event_id, updated_index=index)
    )


def _not_applicable(message: str) -> AdmissionRuleError:
    return refuse(Rule.CORRECTION_NOT_APPLICABLE, message)


def _untouched(lot: Lot | None, holder: str) -> Lot:
    """A lot nothing has happened to since it was created, still with its creator."""
    if (
        lot is None
        or lot.updated_index != lot.created_index
        or lot.state is not LotState.HELD
        or lot.holder_id != holder
    ):
        name = "?" if lot is None else lot.lot_id
        raise _not_applicable(f"lot {name!r} has been used since; record a new event instead")
    return lot


def _void_origin(context: EventContext, target: EventRecord) -> None:
    lot = _untouched(context.state.lot(target.lot_id or ""), context.recorder)
    context.effects.puts.append(_voided(lot, context.index))
    context.effects.subjects.add(f"lot:{lot.lot_id}")


def _voided(lot: Lot, index: int) -> Lot:
    return replace(lot, state=LotState.VOIDED, available_grams=0, updated_index=index)


def _void_dispatch(context: EventContext, target: EventRecord) -> None:
    dispatch = context.state.dispatch(target.event_id)
    if dispatch is None or dispatch.state is not DispatchState.OPEN:
        raise _not_applicable("only an open dispatch can be voided")
    lot = context.state.lot(dispatch.lot_id)
    if lot is None:
        raise AssertionError(f"open dispatch {dispatch.event_id} names no lot")
    context.effects.puts += [
        replace(lot, state=LotState.HELD, dispatch_event_id=None, updated_index=context.index),
        replace(
            dispatch,
            state=DispatchState.CANCELLED,
            closed_index=context.index,
            updated_index=context.index,
        ),
    ]
    context.effects.subjects.add(f"lot:{lot.lot_id}")


def _void_transformation(context: EventContext, target: EventRecord) -> None:
    record = context.state.transformation(target.event_id)
    if record is None:
        raise AssertionError(f"transformation {target.event_id} has no record")
    for lot_id in record.outputs:
        lot = _untouched(context.state.lot(lot_id), context.recorder)
        context.effects.puts.append(_voided(lot, context.index))
        context.effects.subjects.add(f"lot:{lot_id}")
    for lot_id, consumed in record.inputs:
        source = context.state.lot(lot_id)
        if (
            source is None
            or source.holder_id != context.recorder
            or source.state
            not in (
                LotState.HELD,
                LotState.CONSUMED,
            )
        ):
            raise _not_applicable(f"input lot {lot_id!r} is no longer with the recorder")
        context.effects.puts.append(
            replace(
                source,
                available_grams=source.available_grams + consumed,
                state=LotState.HELD,
                updated_index=context.index,
            )
        )
        context.effects.subjects.add(f"lot:{lot_id}")
    context.effects.puts.append(replace(record, voided=True, updated_index=context.index))


def _statement(
    state: DomainState, kind: EventKind, event_id: str
) -> tuple[AssayRecord | CertificationRecord, str]:
    """An assay's or a certification's record, and the subject it is about."""
    if kind is EventKind.ASSAY:
        assay = state.assay(event_id)
        if assay is None:
            raise AssertionError(f"assay {event_id} has no record")
        return assay, f"lot:{assay.lot_id}"
    certification = state.certification(event_id)
    if certification is None:
        raise AssertionError(f"certification {event_id} has no record")
    return certification, f"facility:{certification.facility_id}"


def _mark(
    context: EventContext,
    record: AssayRecord | CertificationRecord,
    status: EventStatus,
    subject: str,
) -> None:
    context.effects.puts.append(replace(record, status=status, updated_index=context.index))
    context.effects.subjects.add(subject)


def _void_statement(context: EventContext, target: EventRecord) -> None:
    record, subject = _statement(context.state, target.kind, target.event_id)
    _mark(context, record, EventStatus.VOIDED, subject)


_VOIDERS: Mapping[EventKind, Callable[[EventContext, EventRecord], None]] = {
    EventKind.EXTRACTION: _void_origin,
    EventKind.RECOVERY: _void_origin,
    EventKind.DISPATCH: _void_dispatch,
    EventKind.TRANSFORMATION: _void_transformation,
    EventKind.ASSAY: _void_statement,
    EventKind.CERTIFICATION: _void_statement,
}


def _supersede(context: EventContext, target: EventRecord, replacement_id: str) -> None:
    """An assay or certification replaced by a later one of the partner's, about the same thing."""
    state = context.state
    if target.kind not in (EventKind.ASSAY, EventKind.CERTIFICATION):
        raise _not_applicable(f"a {target.kind.value} cannot be superseded; void it instead")
    replacement = state.event(replacement_id)
    if replacement is None:
        raise refuse(Rule.UNKNOWN_EVENT, f"no event has the id {replacement_id!r}")
    if replacement.partner_id != context.recorder:
        raise refuse(Rule.NOT_EVENT_OWNER, f"event {replacement_id!r} is another partner's")
    if (
        replacement.kind is not target.kind
        or replacement.status is not EventStatus.ACTIVE
        or replacement.index <= target.index
    ):
        raise _not_applicable(
            f"the replacement must be a later, active {target.kind.value} of the same partner"
        )
    old, subject = _statement(state, target.kind, target.event_id)
    _, replacement_subject = _statement(state, replacement.kind, replacement_id)
    if subject != replacement_subject:
        about = "lot" if target.kind is EventKind.ASSAY else "facility"
        raise _not_applicable(f"the replacement {target.kind.value} is about another {about}")
    _mark(context, old, EventStatus.SUPERSEDED, subject)
