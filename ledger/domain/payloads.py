"""Decoding and shape checks of domain payloads (stateless admission rules).

Everything here depends on the payload bytes alone, so the sequencer runs it
on worker threads before it takes the log's write lock. A payload that fails
gets ``INVALID_PAYLOAD`` (or ``UNKNOWN_PAYLOAD_TYPE``) with a message naming
the field. The decoded protobuf message is kept as it is: the rules read its
fields, nothing ever re-serialises it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.protobuf.unknown_fields import UnknownFieldSet

from custody.v1 import event_pb2, governance_pb2
from ledger.domain.records import (
    EVENT_PAYLOAD_TYPE,
    GOVERNANCE_PAYLOAD_TYPE,
    ElementContents,
    EventKind,
)
from ledger.errors import AdmissionRuleError, Rule
from ledger.protobuf_fields import has_unknown_fields

PPM_FULL = 1_000_000
MAX_TEXT = 1_000
MAX_ITEMS = 1_000
"""Upper bound on repeated fields (inputs, outputs, evidence, keys ...)."""

_ID = re.compile(r"[\x21-\x7e]{1,128}")
PARTNER_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
"""A partner id; also the identity in a partner's TLS certificate (ledger/tls_identity.py)."""
_ELEMENT = re.compile(r"[A-Z][a-z]{0,2}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_RMI_ID = re.compile(r"CID\d{6}")
_KEYID = re.compile(r"[0-9a-f]{64}")
# Timestamp's own range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799


@dataclass(frozen=True, slots=True)
class EventPayload:
    """A decoded, well-formed ``custody.v1.Event``."""

    message: event_pb2.Event
    kind: EventKind
    event_time_micros: int

    @property
    def event_id(self) -> str:
        return self.message.event_id


@dataclass(frozen=True, slots=True)
class GovernancePayload:
    """A decoded, well-formed ``custody.v1.Governance``."""

    message: governance_pb2.Governance
    kind: EventKind

    @property
    def event_id(self) -> str:
        return self.message.action_id


DomainPayload = EventPayload | GovernancePayload


def invalid(message: str) -> AdmissionRuleError:
    return AdmissionRuleError(Rule.INVALID_PAYLOAD, message)


def decode_payload(payload_type: str, payload: bytes) -> DomainPayload:
    """Parse a payload by its type and check its shape."""
    if payload_type == EVENT_PAYLOAD_TYPE:
        event = event_pb2.Event()
        _parse(event, payload, "Event")
        return check_event(event)
    if payload_type == GOVERNANCE_PAYLOAD_TYPE:
        governance = governance_pb2.Governance()
        _parse(governance, payload, "Governance")
        return check_governance(governance)
    raise AdmissionRuleError(
        Rule.UNKNOWN_PAYLOAD_TYPE,
        f"payload type {payload_type!r} is not one of {EVENT_PAYLOAD_TYPE!r}, "
        f"{GOVERNANCE_PAYLOAD_TYPE!r}",
    )


def _parse(message: Message, payload: bytes, name: str) -> None:
    try:
        message.ParseFromString(payload)
    except DecodeError as exc:
        raise invalid(f"payload is not a valid custody.v1.{name} message: {exc}") from exc
    # Fields this version does not know would be signed yet ignored by the rules.
    _refuse_unknown_fields(message, name)


def _refuse_unknown_fields(message: Message, path: str) -> None:
    if has_unknown_fields(message):
        _name_unknown_fields(message, path)
        raise invalid(f"{path} carries fields unknown to custody.v1")


def _name_unknown_fields(message: Message, path: str) -> None:
    """Walk the message to say where the unknown fields are."""
    if len(UnknownFieldSet(message)):
        raise invalid(f"{path} carries fields unknown to custody.v1")
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        children = value if field.is_repeated else (value,)
        for child in children:
            _name_unknown_fields(child, f"{path}.{field.name}")


# --- events --------------------------------------------------------------------------


def check_event(event: event_pb2.Event) -> EventPayload:
    check_id(event.event_id, "event_id")
    check_partner_id(event.partner_id, "partner_id")
    if not event.HasField("event_time"):
        raise invalid("event_time is required")
    time_micros = timestamp_micros(event.event_time, "event_time")
    _check_count(event.evidence, "evidence")
    for i, ref in enumerate(event.evidence):
        where = f"evidence[{i}]"
        check_text(ref.uri, f"{where}.uri", required=True)
        if len(ref.sha256) != 32:
            raise invalid(f"{where}.sha256 must be 32 bytes, got {len(ref.sha256)}")
        check_text(ref.kind, f"{where}.kind")
    body = event.WhichOneof("body")
    if body is None:
        raise invalid("the event has no body")
    kind = EventKind(body)
    _BODY_CHECKS[kind](event)
    return EventPayload(message=event, kind=kind, event_time_micros=time_micros)


def _check_origin(body: event_pb2.Extraction | event_pb2.Recovery, name: str) -> None:
    check_id(body.facility_id, f"{name}.facility_id")
    check_id(body.lot_id, f"{name}.lot_id")
    check_text(body.material, f"{name}.material", required=True)
    check_mass(body.mass_grams, f"{name}.mass_grams")
    check_contents(body.contents, f"{name}.contents")


def _check_extraction(event: event_pb2.Event) -> None:
    _check_origin(event.extraction, "extraction")


def _check_recovery(event: event_pb2.Event) -> None:
    _check_origin(event.recovery, "recovery")
    if event.recovery.scrap_origin not in event_pb2.ScrapOrigin.values()[1:]:
        raise invalid("recovery.scrap_origin must be PRE_CONSUMER or POST_CONSUMER")


def _check_dispatch(event: event_pb2.Event) -> None:
    body = event.dispatch
    check_id(body.lot_id, "dispatch.lot_id")
    check_partner_id(body.to_partner_id, "dispatch.to_partner_id")
    if body.to_partner_id == event.partner_id:
        raise invalid("dispatch.to_partner_id is the recording partner itself")
    check_mass(body.mass_grams, "dispatch.mass_grams")
    if body.from_facility_id:
        check_id(body.from_facility_id, "dispatch.from_facility_id")
    if body.to_facility_id:
        check_id(body.to_facility_id, "dispatch.to_facility_id")
    check_text(body.transport, "dispatch.transport")


def _check_receipt(event: event_pb2.Event) -> None:
    body = event.receipt
    check_id(body.dispatch_event_id, "receipt.dispatch_event_id")
    check_id(body.lot_id, "receipt.lot_id")
    check_mass(body.received_mass_grams, "receipt.received_mass_grams")
    if body.facility_id:
        check_id(body.facility_id, "receipt.facility_id")


def _check_transformation(event: event_pb2.Event) -> None:
    body = event.transformation
    check_id(body.facility_id, "transformation.facility_id")
    if body.process not in event_pb2.Process.values()[1:]:
        raise invalid("transformation.process is required")
    if not body.inputs or not body.outputs:
        raise invalid("a transformation needs at least one input and one output")
    _check_count(body.inputs, "transformation.inputs")
    _check_count(body.outputs, "transformation.outputs")
    lot_ids: set[str] = set()
    for i, item in enumerate(body.inputs):
        check_id(item.lot_id, f"transformation.inputs[{i}].lot_id")
        check_mass(item.consumed_mass_grams, f"transformation.inputs[{i}].consumed_mass_grams")
        if item.lot_id in lot_ids:
            raise invalid(f"transformation.inputs[{i}]: lot {item.lot_id!r} is listed twice")
        lot_ids.add(item.lot_id)
    for i, out in enumerate(body.outputs):
        where = f"transformation.outputs[{i}]"
        check_id(out.lot_id, f"{where}.lot_id")
        if out.lot_id in lot_ids:
            raise invalid(f"{where}: lot {out.lot_id!r} is listed twice")
        lot_ids.add(out.lot_id)
        check_text(out.material, f"{where}.material", required=True)
        check_mass(out.mass_grams, f"{where}.mass_grams")
        check_contents(out.contents, f"{where}.contents")


def _check_assay(event: event_pb2.Event) -> None:
    body = event.assay
    check_id(body.lot_id, "assay.lot_id")
    check_contents(body.contents, "assay.contents")
    if not body.contents:
        raise invalid("assay.contents is empty")
    check_text(body.method, "assay.method", required=True)
    check_text(body.sample_id, "assay.sample_id")


def _check_certification(event: event_pb2.Event) -> None:
    body = event.certification
    check_text(body.scheme, "certification.scheme", required=True)
    check_id(body.facility_id, "certification.facility_id")
    if not body.metals:
        raise invalid("certification.metals is empty")
    _check_count(body.metals, "certification.metals")
    for i, metal in enumerate(body.metals):
        check_element(metal, f"certification.metals[{i}]")
    if len(set(body.metals)) != len(body.metals):
        raise invalid("certification.metals lists a metal twice")
    if body.status not in event_pb2.CertificationStatus.values()[1:]:
        raise invalid("certification.status is required")
    if not body.HasField("valid_from") or not body.HasField("valid_until"):
        raise invalid("certification.valid_from and valid_until are required")
    start = timestamp_micros(body.valid_from, "certification.valid_from")
    end = timestamp_micros(body.valid_until, "certification.valid_until")
    if start >= end:
        raise invalid("certification.valid_until must be after valid_from")


def _check_correction(event: event_pb2.Event) -> None:
    body = event.correction
    check_id(body.target_event_id, "correction.target_event_id")
    if body.target_event_id == event.event_id:
        raise invalid("a correction cannot target itself")
    if body.action == event_pb2.CORRECTION_ACTION_VOID:
        if body.replacement_event_id:
            raise invalid("correction.replacement_event_id is only for SUPERSEDE")
    elif body.action == event_pb2.CORRECTION_ACTION_SUPERSEDE:
        check_id(body.replacement_event_id, "correction.replacement_event_id")
    else:
        raise invalid("correction.action must be VOID or SUPERSEDE")
    check_text(body.reason, "correction.reason", required=True)


_BODY_CHECKS = {
    EventKind.EXTRACTION: _check_extraction,
    EventKind.RECOVERY: _check_recovery,
    EventKind.DISPATCH: _check_dispatch,
    EventKind.RECEIPT: _check_receipt,
    EventKind.TRANSFORMATION: _check_transformation,
    EventKind.ASSAY: _check_assay,
    EventKind.CERTIFICATION: _check_certification,
    EventKind.CORRECTION: _check_correction,
}


# --- governance ----------------------------------------------------------------------


def check_governance(governance: governance_pb2.Governance) -> GovernancePayload:
    check_id(governance.action_id, "action_id")
    action = governance.WhichOneof("action")
    if action is None:
        raise invalid("the governance entry has no action")
    kind = EventKind(action)
    _ACTION_CHECKS[kind](governance)
    return GovernancePayload(message=governance, kind=kind)


def _check_genesis(governance: governance_pb2.Governance) -> None:
    body = governance.genesis
    check_text(body.consortium, "genesis.consortium", required=True)
    if not body.administrators:
        raise invalid("genesis names no administrators")
    _check_count(body.administrators, "genesis.administrators")
    for i, spec in enumerate(body.administrators):
        check_partner_spec(spec, f"genesis.administrators[{i}]", admin=True)
    _check_unique((spec.partner_id for spec in body.administrators), "genesis administrator ids")
    _check_unique(
        (key for spec in body.administrators for key in spec.public_keys),
        "genesis administrator keys",
    )


def _check_admission(governance: governance_pb2.Governance) -> None:
    if not governance.partner_admission.HasField("partner"):
        raise invalid("partner_admission.partner is required")
    check_partner_spec(governance.partner_admission.partner, "partner_admission.partner")


def _check_role_change(governance: governance_pb2.Governance) -> None:
    check_partner_id(governance.role_change.partner_id, "role_change.partner_id")
    check_roles(governance.role_change.roles, "role_change.roles")


def _check_key_addition(governance: governance_pb2.Governance) -> None:
    check_partner_id(governance.key_addition.partner_id, "key_addition.partner_id")
    check_public_key(governance.key_addition.public_key, "key_addition.public_key")


def _check_key_revocation(governance: governance_pb2.Governance) -> None:
    body = governance.key_revocation
    check_partner_id(body.partner_id, "key_revocation.partner_id")
    if not _KEYID.fullmatch(body.keyid):
        raise invalid("key_revocation.keyid must be 64 lowercase hex digits")
    check_text(body.reason, "key_revocation.reason")


def _check_facility_registration(governance: governance_pb2.Governance) -> None:
    check_facility(governance.facility_registration)


def _check_policy(governance: governance_pb2.Governance) -> None:
    if governance.policy.threshold < 1:
        raise invalid("policy.threshold must be at least 1")


_ACTION_CHECKS: Mapping[EventKind, Callable[[governance_pb2.Governance], None]] = {
    EventKind.GENESIS: _check_genesis,
    EventKind.PARTNER_ADMISSION: _check_admission,
    EventKind.ROLE_CHANGE: _check_role_change,
    EventKind.KEY_ADDITION: _check_key_addition,
    EventKind.KEY_REVOCATION: _check_key_revocation,
    EventKind.FACILITY_REGISTRATION: _check_facility_registration,
    EventKind.POLICY: _check_policy,
}


def check_partner_spec(
    spec: governance_pb2.PartnerSpec, where: str, *, admin: bool = False
) -> None:
    check_partner_id(spec.partner_id, f"{where}.partner_id")
    check_text(spec.legal_name, f"{where}.legal_name", required=True)
    check_country(spec.country, f"{where}.country")
    if not admin or spec.roles:
        check_roles(spec.roles, f"{where}.roles")
    if not spec.public_keys:
        raise invalid(f"{where}.public_keys is empty: a partner needs a key")
    _check_count(spec.public_keys, f"{where}.public_keys")
    for i, key in enumerate(spec.public_keys):
        check_public_key(key, f"{where}.public_keys[{i}]")
    _check_unique(spec.public_keys, f"{where}.public_keys")


def check_facility(body: governance_pb2.FacilityRegistration) -> None:
    check_id(body.facility_id, "facility_registration.facility_id")
    check_partner_id(body.partner_id, "facility_registration.partner_id")
    check_text(body.name, "facility_registration.name", required=True)
    if body.type not in governance_pb2.FacilityType.values()[1:]:
        raise invalid("facility_registration.type is required")
    check_country(body.country, "facility_registration.country")
    if not -90_000_000 <= body.latitude_e6 <= 90_000_000:
        raise invalid("facility_registration.latitude_e6 is out of range")
    if not -180_000_000 <= body.longitude_e6 <= 180_000_000:
        raise invalid("facility_registration.longitude_e6 is out of range")
    is_smelting = body.type in (
        governance_pb2.FACILITY_TYPE_SMELTER,
        governance_pb2.FACILITY_TYPE_REFINERY,
    )
    if body.rmi_smelter_id and (not is_smelting or not _RMI_ID.fullmatch(body.rmi_smelter_id)):
        raise invalid(
            "facility_registration.rmi_smelter_id must be CID and six digits, "
            "for a smelter or refinery"
        )
    if body.artisanal and body.type != governance_pb2.FACILITY_TYPE_MINE_SITE:
        raise invalid("facility_registration.artisanal applies to mine sites only")


# --- field checks ----------------------------------------------------------------------


def check_id(value: str, where: str) -> None:
    if not _ID.fullmatch(value):
        raise invalid(f"{where} must be 1 to 128 printable ASCII characters without spaces")


def check_partner_id(value: str, where: str) -> None:
    if not PARTNER_ID_PATTERN.fullmatch(value):
        raise invalid(
            f"{where} must be 1 to 64 of lowercase letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )


def check_text(value: str, where: str, *, required: bool = False) -> None:
    if required and not value.strip():
        raise invalid(f"{where} is required")
    if len(value) > MAX_TEXT:
        raise invalid(f"{where} is longer than {MAX_TEXT} characters")


def check_mass(value: int, where: str) -> None:
    if value <= 0:
        raise invalid(f"{where} must be a positive number of grams, got {value}")


def check_element(value: str, where: str) -> None:
    if not _ELEMENT.fullmatch(value):
        raise invalid(f"{where} must be a chemical symbol such as 'Co' or 'Li', got {value!r}")


def check_contents(contents: Sequence[event_pb2.ElementContent], where: str) -> None:
    _check_count(contents, where)
    total = 0
    seen: set[str] = set()
    for i, item in enumerate(contents):
        check_element(item.element, f"{where}[{i}].element")
        if item.element in seen:
            raise invalid(f"{where} lists {item.element} twice")
        seen.add(item.element)
        if item.ppm > PPM_FULL:
            raise invalid(f"{where}[{i}].ppm is above 1,000,000")
        total += item.ppm
    if total > PPM_FULL:
        raise invalid(f"{where} add up to more than 1,000,000 ppm")


def check_country(value: str, where: str) -> None:
    if not _COUNTRY.fullmatch(value):
        raise invalid(f"{where} must be an ISO 3166-1 alpha-2 code such as 'CD', got {value!r}")


def check_roles(roles: Sequence[int], where: str) -> None:
    if not roles:
        raise invalid(f"{where} is empty")
    valid = governance_pb2.Role.values()[1:]
    if any(role not in valid for role in roles):
        raise invalid(f"{where} holds an unknown or unspecified role")
    if len(set(roles)) != len(roles):
        raise invalid(f"{where} lists a role twice")


def check_public_key(value: bytes, where: str) -> None:
    if len(value) != 32:
        raise invalid(f"{where} must be a raw 32-byte Ed25519 public key")


def timestamp_micros(value: Timestamp, where: str) -> int:
    if not _MIN_SECONDS <= value.seconds <= _MAX_SECONDS or not 0 <= value.nanos < 1_000_000_000:
        raise invalid(f"{where} is not a valid timestamp")
    return value.seconds * 1_000_000 + value.nanos // 1_000


def contents_of(contents: Iterable[event_pb2.ElementContent]) -> ElementContents:
    """Checked contents as sorted (element, ppm) pairs; zero entries are kept."""
    return tuple(sorted((item.element, item.ppm) for item in contents))


def _check_count(items: Sequence[object], where: str) -> None:
    if len(items) > MAX_ITEMS:
        raise invalid(f"{where} has more than {MAX_ITEMS} items")


def _check_unique(values: Iterable[object], what: str) -> None:
    seen: set[object] = set()
    for value in values:
        if value in seen:
            raise invalid(f"{what} repeat a value")
        seen.add(value)
