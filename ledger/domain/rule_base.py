"""What every admission rule shares: the entry, its effects, refusals, identities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ledger.domain.payloads import (
    DomainPayload,
    EventPayload,
)
from ledger.domain.records import (
    EventKind,
    EventRecord,
    EventStatus,
    Partner,
    PartnerKey,
    Record,
)
from ledger.domain.state import DomainState, LotInput
from ledger.errors import AdmissionRuleError, Rule


@dataclass(frozen=True, slots=True)
class DomainEntry:
    """An entry about to take ``index``, with the keys its signatures verified under."""

    payload: DomainPayload
    index: int
    integration_time_micros: int
    signer_keys: Mapping[str, bytes]  # keyid -> raw Ed25519 public key
    authenticated_partner: str | None = None  # the mTLS identity, when there is one


@dataclass
class Effects:
    """What an admitted entry changes; written only once every rule holds."""

    puts: list[Record] = field(default_factory=list)
    inputs: list[LotInput] = field(default_factory=list)
    subjects: set[str] = field(default_factory=set)


def refuse(rule: Rule, message: str) -> AdmissionRuleError:
    return AdmissionRuleError(rule, message)


def valid_key_of(key: PartnerKey | None, partner_id: str, public_key: bytes, index: int) -> bool:
    return (
        key is not None
        and key.partner_id == partner_id
        and key.public_key == public_key
        and key.valid_at(index)
    )


def check_identity(entry: DomainEntry, signing_partners: set[str]) -> None:
    check_caller(entry.authenticated_partner, signing_partners)


def check_caller(caller: str | None, recording_partners: set[str]) -> None:
    """The authenticated caller (if any) must be a partner recording the entry."""
    if caller is not None and caller not in recording_partners:
        raise refuse(
            Rule.IDENTITY_MISMATCH,
            f"the caller {caller!r} is not the partner recording this entry "
            f"({', '.join(sorted(recording_partners))})",
        )


def check_unused_id(state: DomainState, event_id: str) -> None:
    if state.event(event_id) is not None:
        raise refuse(Rule.DUPLICATE_EVENT_ID, f"id {event_id!r} is already in the log")


def known_partner(state: DomainState, partner_id: str) -> Partner:
    partner = state.partner(partner_id)
    if partner is None:
        raise refuse(Rule.UNKNOWN_PARTNER, f"partner {partner_id!r} is not admitted")
    return partner


def event_record(
    event_id: str,
    partner_id: str,
    kind: EventKind,
    index: int,
    time_micros: int = 0,
    lot_id: str | None = None,
) -> EventRecord:
    return EventRecord(
        event_id=event_id,
        partner_id=partner_id,
        kind=kind,
        index=index,
        event_time_micros=time_micros,
        status=EventStatus.ACTIVE,
        corrected_by=None,
        updated_index=index,
        lot_id=lot_id,
    )


@dataclass(frozen=True, slots=True)
class EventContext:
    state: DomainState
    entry: DomainEntry
    payload: EventPayload
    partner: Partner
    effects: Effects

    @property
    def index(self) -> int:
        return self.entry.index

    @property
    def recorder(self) -> str:
        return self.partner.partner_id

    @property
    def event_id(self) -> str:
        return self.payload.event_id
