"""Governance rules: genesis, partners, roles, keys, facilities and policy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from custody.v1 import governance_pb2
from ledger.domain.payloads import (
    GovernancePayload,
)
from ledger.domain.records import (
    Consortium,
    EventKind,
    Facility,
    FacilityType,
    Partner,
    PartnerKey,
    Role,
)
from ledger.domain.rule_base import (
    DomainEntry,
    Effects,
    check_identity,
    check_unused_id,
    event_record,
    known_partner,
    refuse,
)
from ledger.domain.state import DomainState
from ledger.dsse import keyid_for
from ledger.errors import Rule


def _governance_signers(
    state: DomainState, entry: DomainEntry, consortium: Consortium, self_partner: str | None
) -> str:
    """2. Governance needs ``threshold`` distinct administrators, or the partner itself
    for its own keys. Returns the first signing partner (the entry's recorder)."""
    signers: dict[str, str] = {}  # keyid -> partner id, for keys valid now
    for keyid, public_key in entry.signer_keys.items():
        key = state.key(keyid)
        if key is not None and key.public_key == public_key and key.valid_at(entry.index):
            signers[keyid] = key.partner_id
    partners = set(signers.values())
    all_valid = len(signers) == len(entry.signer_keys) and bool(signers)
    if self_partner is not None and all_valid and partners == {self_partner}:
        check_identity(entry, partners)
        return self_partner
    admins = set(consortium.admin_ids)
    if not all_valid or not partners <= admins:
        raise refuse(
            Rule.KEY_NOT_VALID,
            "governance entries are signed by currently valid administrator keys"
            + (" or by the partner's own keys" if self_partner else ""),
        )
    if len(partners) < consortium.threshold:
        raise refuse(
            Rule.THRESHOLD_NOT_MET,
            f"signed by {len(partners)} administrator(s); {consortium.threshold} required",
        )
    check_identity(entry, partners)
    return min(partners)


@dataclass(frozen=True, slots=True)
class _Action:
    """One governance action being checked."""

    state: DomainState
    message: governance_pb2.Governance
    consortium: Consortium
    index: int
    effects: Effects


def apply_governance(state: DomainState, entry: DomainEntry, payload: GovernancePayload) -> Effects:
    if payload.kind is EventKind.GENESIS:
        return _genesis(state, entry, payload)
    consortium = state.consortium()
    if consortium is None:
        raise refuse(Rule.NO_GENESIS, "the log has no genesis entry yet")
    message = payload.message
    self_partner = None
    if payload.kind is EventKind.KEY_ADDITION:
        self_partner = message.key_addition.partner_id
    elif payload.kind is EventKind.KEY_REVOCATION:
        self_partner = message.key_revocation.partner_id
    recorder = _governance_signers(state, entry, consortium, self_partner)
    check_unused_id(state, payload.event_id)
    action = _Action(state, message, consortium, entry.index, Effects())
    _ACTIONS[payload.kind](action)
    action.effects.puts.append(event_record(payload.event_id, recorder, payload.kind, entry.index))
    return action.effects


def _admit_partner(action: _Action) -> None:
    spec = action.message.partner_admission.partner
    if action.state.partner(spec.partner_id) is not None:
        raise refuse(Rule.PARTNER_EXISTS, f"partner {spec.partner_id!r} already exists")
    roles = _roles(spec.roles)
    _new_partner(action.state, action.effects, spec, action.index, roles=roles)
    if Role.ADMIN in roles:
        admins = (*action.consortium.admin_ids, spec.partner_id)
        action.effects.puts.append(_with_admins(action.consortium, admins, action.index))


def _change_roles(action: _Action) -> None:
    body, consortium = action.message.role_change, action.consortium
    partner = known_partner(action.state, body.partner_id)
    roles = _roles(body.roles)
    admins = set(consortium.admin_ids)
    if Role.ADMIN in roles:
        admins.add(partner.partner_id)
    else:
        admins.discard(partner.partner_id)
    if len(admins) < consortium.threshold:
        raise refuse(
            Rule.THRESHOLD_UNREACHABLE,
            f"{len(admins)} administrator(s) would remain; the threshold is {consortium.threshold}",
        )
    action.effects.puts.append(replace(partner, roles=roles, updated_index=action.index))
    if admins != set(consortium.admin_ids):
        action.effects.puts.append(_with_admins(consortium, admins, action.index))
    action.effects.subjects.add(f"partner:{partner.partner_id}")


def _add_key(action: _Action) -> None:
    body = action.message.key_addition
    known_partner(action.state, body.partner_id)
    keyid = keyid_for(body.public_key)
    if action.state.key(keyid) is not None:
        raise refuse(Rule.KEY_EXISTS, f"key {keyid[:16]}... is already registered")
    action.effects.puts.append(
        PartnerKey(keyid, body.partner_id, body.public_key, action.index, None)
    )
    action.effects.subjects.add(f"partner:{body.partner_id}")


def _revoke_key(action: _Action) -> None:
    body = action.message.key_revocation
    known_partner(action.state, body.partner_id)
    key = action.state.key(body.keyid)
    if key is None or key.partner_id != body.partner_id:
        raise refuse(
            Rule.KEY_NOT_VALID, f"key {body.keyid[:16]}... is not a key of {body.partner_id!r}"
        )
    if key.revoked_index is not None:
        raise refuse(Rule.KEY_NOT_VALID, f"key {body.keyid[:16]}... is already revoked")
    action.effects.puts.append(replace(key, revoked_index=action.index))
    action.effects.subjects.add(f"partner:{body.partner_id}")


def _register_facility(action: _Action) -> None:
    body = action.message.facility_registration
    if action.state.facility(body.facility_id) is not None:
        raise refuse(Rule.FACILITY_EXISTS, f"facility {body.facility_id!r} already exists")
    known_partner(action.state, body.partner_id)
    action.effects.puts.append(
        Facility(
            facility_id=body.facility_id,
            partner_id=body.partner_id,
            name=body.name,
            type=FacilityType(body.type),
            country=body.country,
            latitude_e6=body.latitude_e6,
            longitude_e6=body.longitude_e6,
            rmi_smelter_id=body.rmi_smelter_id,
            artisanal=body.artisanal,
            registered_index=action.index,
        )
    )
    action.effects.subjects.update({f"facility:{body.facility_id}", f"partner:{body.partner_id}"})


def _set_policy(action: _Action) -> None:
    threshold, admins = action.message.policy.threshold, len(action.consortium.admin_ids)
    if threshold > admins:
        raise refuse(
            Rule.THRESHOLD_UNREACHABLE, f"threshold {threshold} exceeds the {admins} administrators"
        )
    action.effects.puts.append(
        replace(action.consortium, threshold=threshold, updated_index=action.index)
    )


_ACTIONS: Mapping[EventKind, Callable[[_Action], None]] = {
    EventKind.PARTNER_ADMISSION: _admit_partner,
    EventKind.ROLE_CHANGE: _change_roles,
    EventKind.KEY_ADDITION: _add_key,
    EventKind.KEY_REVOCATION: _revoke_key,
    EventKind.FACILITY_REGISTRATION: _register_facility,
    EventKind.POLICY: _set_policy,
}


def _genesis(state: DomainState, entry: DomainEntry, payload: GovernancePayload) -> Effects:
    """Genesis: first entry only, signed by ``threshold`` of the administrators it names."""
    if entry.index != 0 or state.consortium() is not None:
        raise refuse(Rule.GENESIS_NOT_FIRST, "genesis must be the log's first entry")
    genesis = payload.message.genesis
    admins = sorted(spec.partner_id for spec in genesis.administrators)
    if not 1 <= genesis.threshold <= len(admins):
        raise refuse(
            Rule.THRESHOLD_UNREACHABLE,
            f"threshold {genesis.threshold} is not between 1 and {len(admins)} administrators",
        )
    listed = {
        keyid_for(key): (spec.partner_id, key)
        for spec in genesis.administrators
        for key in spec.public_keys
    }
    signing: set[str] = set()
    for keyid, public_key in entry.signer_keys.items():
        owner = listed.get(keyid)
        if owner is None or owner[1] != public_key:
            raise refuse(Rule.KEY_NOT_VALID, "genesis is signed only by the keys it lists")
        signing.add(owner[0])
    if len(signing) < genesis.threshold:
        raise refuse(
            Rule.THRESHOLD_NOT_MET,
            f"genesis signed by {len(signing)} administrator(s); {genesis.threshold} required",
        )
    check_identity(entry, signing)
    effects = Effects()
    for spec in genesis.administrators:
        _new_partner(state, effects, spec, entry.index, roles=_roles([*spec.roles, Role.ADMIN]))
    effects.puts.append(
        Consortium(genesis.consortium, genesis.threshold, tuple(admins), entry.index)
    )
    effects.puts.append(
        event_record(payload.event_id, min(signing), EventKind.GENESIS, entry.index)
    )
    return effects


def _new_partner(
    state: DomainState,
    effects: Effects,
    spec: governance_pb2.PartnerSpec,
    index: int,
    *,
    roles: tuple[Role, ...],
) -> None:
    effects.puts.append(
        Partner(spec.partner_id, spec.legal_name, spec.country, roles, index, index)
    )
    for public_key in spec.public_keys:
        keyid = keyid_for(public_key)
        if state.key(keyid) is not None:
            raise refuse(Rule.KEY_EXISTS, f"key {keyid[:16]}... is already registered")
        effects.puts.append(PartnerKey(keyid, spec.partner_id, public_key, index, None))
    effects.subjects.add(f"partner:{spec.partner_id}")


def _roles(values: Iterable[int]) -> tuple[Role, ...]:
    return tuple(sorted({Role(value) for value in values}))


def _with_admins(consortium: Consortium, admins: Iterable[str], index: int) -> Consortium:
    return replace(consortium, admin_ids=tuple(sorted(set(admins))), updated_index=index)
