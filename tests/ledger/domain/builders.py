"""Signed domain entries for tests: a small consortium and terse event builders."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from custody.v1 import event_pb2, governance_pb2
from ledger.admission import Submission
from ledger.domain.records import EVENT_PAYLOAD_TYPE, GOVERNANCE_PAYLOAD_TYPE
from ledger.dsse import Signer, sign_envelope
from ledger.keys import private_key_from_seed

EVENT_TIME = Timestamp(seconds=1_780_000_000)  # 2026-05-28, before any test clock
VALID_UNTIL = Timestamp(seconds=EVENT_TIME.seconds + 365 * 86_400)  # certifications
ROLE = governance_pb2.Role
FACILITY = governance_pb2.FacilityType


def signer_for(name: str, generation: int = 0) -> Signer:
    seed = hashlib.sha256(f"custody-test:{name}:{generation}".encode()).digest()
    return Signer(private_key_from_seed(seed))


def submission(
    payload_type: str,
    message: Message,
    signers: Sequence[Signer],
    *,
    authenticated_partner: str | None = None,
) -> Submission:
    envelope = sign_envelope(payload_type, message.SerializeToString(), signers)
    return Submission.of(
        envelope, [s.public_key for s in signers], authenticated_partner=authenticated_partner
    )


def contents(**ppm: int) -> list[event_pb2.ElementContent]:
    return [event_pb2.ElementContent(element=e, ppm=p) for e, p in ppm.items()]


class World:
    """Two administrators (threshold 2) and partners with one key each."""

    def __init__(self) -> None:
        self.signers: dict[str, Signer] = {}
        self._ids = itertools.count()
        self.admins = ("operator", "association")
        for admin in self.admins:
            self.signers[admin] = signer_for(admin)

    def next_id(self, prefix: str = "ev") -> str:
        return f"{prefix}-{next(self._ids):06d}"

    def admin_signers(self) -> list[Signer]:
        return [self.signers[a] for a in self.admins]

    # --- governance -----------------------------------------------------------------

    def governance(
        self,
        signers: Sequence[Signer] | None = None,
        *,
        action_id: str | None = None,
        **action: Any,
    ) -> Submission:
        message = governance_pb2.Governance(action_id=action_id or self.next_id("gov"), **action)
        return submission(GOVERNANCE_PAYLOAD_TYPE, message, signers or self.admin_signers())

    def genesis(self, threshold: int = 2) -> Submission:
        return self.governance(
            genesis=governance_pb2.Genesis(
                consortium="Test Consortium",
                threshold=threshold,
                administrators=[
                    governance_pb2.PartnerSpec(
                        partner_id=a,
                        legal_name=a.title(),
                        country="BE",
                        public_keys=[self.signers[a].public_key],
                    )
                    for a in self.admins
                ],
            )
        )

    def admit(self, partner_id: str, *roles: Any, country: str = "CD") -> Submission:
        self.signers.setdefault(partner_id, signer_for(partner_id))
        return self.governance(
            partner_admission=governance_pb2.PartnerAdmission(
                partner=governance_pb2.PartnerSpec(
                    partner_id=partner_id,
                    legal_name=f"{partner_id} Ltd",
                    country=country,
                    roles=list(roles),
                    public_keys=[self.signers[partner_id].public_key],
                )
            )
        )

    def facility(
        self,
        facility_id: str,
        owner: str,
        kind: int,
        *,
        country: str = "CD",
        artisanal: bool = False,
    ) -> Submission:
        return self.governance(
            facility_registration=governance_pb2.FacilityRegistration(
                facility_id=facility_id,
                partner_id=owner,
                name=facility_id.replace("-", " ").title(),
                type=cast("governance_pb2.FacilityType", kind),
                country=country,
                latitude_e6=-10_700_000,
                longitude_e6=25_500_000,
                artisanal=artisanal,
            )
        )

    # --- events -------------------------------------------------------------------------

    def event(
        self,
        partner_id: str,
        *,
        event_id: str | None = None,
        signers: Sequence[Signer] | None = None,
        authenticated_partner: str | None = None,
        time: Timestamp = EVENT_TIME,
        **body: Any,
    ) -> Submission:
        message = event_pb2.Event(
            event_id=event_id or self.next_id(),
            event_time=time,
            partner_id=partner_id,
            evidence=[
                event_pb2.EvidenceRef(
                    uri="https://docs.example/doc.pdf", sha256=bytes(32), kind="document"
                )
            ],
            **body,
        )
        return submission(
            EVENT_PAYLOAD_TYPE,
            message,
            signers or [self.signers[partner_id]],
            authenticated_partner=authenticated_partner,
        )

    def extract(
        self, mine: str, site: str, lot: str, mass: int, *, event_id: str | None = None, **ppm: int
    ) -> Submission:
        return self.event(
            mine,
            event_id=event_id,
            extraction=event_pb2.Extraction(
                facility_id=site,
                lot_id=lot,
                material="cobalt hydroxide",
                mass_grams=mass,
                contents=contents(**(ppm or {"Co": 300_000})),
            ),
        )

    def dispatch(
        self, sender: str, lot: str, to: str, mass: int, *, event_id: str | None = None
    ) -> Submission:
        return self.event(
            sender,
            event_id=event_id,
            dispatch=event_pb2.Dispatch(lot_id=lot, to_partner_id=to, mass_grams=mass),
        )

    def receive(
        self, receiver: str, dispatch_id: str, lot: str, mass: int, *, event_id: str | None = None
    ) -> Submission:
        return self.event(
            receiver,
            event_id=event_id,
            receipt=event_pb2.Receipt(
                dispatch_event_id=dispatch_id, lot_id=lot, received_mass_grams=mass
            ),
        )

    def transform(
        self,
        partner_id: str,
        site: str,
        inputs: Iterable[tuple[str, int]],
        outputs: Iterable[tuple[str, int, dict[str, int]]],
        *,
        process: Any = event_pb2.PROCESS_REFINING,
        event_id: str | None = None,
    ) -> Submission:
        return self.event(
            partner_id,
            event_id=event_id,
            transformation=event_pb2.Transformation(
                facility_id=site,
                process=process,
                inputs=[
                    event_pb2.TransformationInput(lot_id=lot, consumed_mass_grams=grams)
                    for lot, grams in inputs
                ],
                outputs=[
                    event_pb2.TransformationOutput(
                        lot_id=lot,
                        material="cobalt sulfate",
                        mass_grams=grams,
                        contents=contents(**ppm),
                    )
                    for lot, grams, ppm in outputs
                ],
            ),
        )

    # --- more builders (admission-rule tests) -------------------------------------------

    def admit_with_keys(
        self, partner_id: str, keys: Sequence[Signer], *roles: Any, country: str = "CD"
    ) -> Submission:
        """A partner admission listing exactly ``keys`` (the first becomes its signer if new)."""
        self.signers.setdefault(partner_id, keys[0])
        return self.governance(
            partner_admission=governance_pb2.PartnerAdmission(
                partner=governance_pb2.PartnerSpec(
                    partner_id=partner_id,
                    legal_name=f"{partner_id} Ltd",
                    country=country,
                    roles=list(roles),
                    public_keys=[key.public_key for key in keys],
                )
            )
        )

    def change_roles(
        self, partner_id: str, *roles: Any, signers: Sequence[Signer] | None = None
    ) -> Submission:
        return self.governance(
            signers, role_change=governance_pb2.RoleChange(partner_id=partner_id, roles=list(roles))
        )

    def add_key(
        self, partner_id: str, key: Signer, *, signers: Sequence[Signer] | None = None
    ) -> Submission:
        """A key addition, signed by the administrators unless ``signers`` are given."""
        return self.governance(
            signers,
            key_addition=governance_pb2.KeyAddition(
                partner_id=partner_id, public_key=key.public_key
            ),
        )

    def revoke_key(
        self, partner_id: str, keyid: str, *, signers: Sequence[Signer] | None = None
    ) -> Submission:
        """A key revocation, signed by the administrators unless ``signers`` are given."""
        return self.governance(
            signers,
            key_revocation=governance_pb2.KeyRevocation(
                partner_id=partner_id, keyid=keyid, reason="rotation"
            ),
        )

    def policy(self, threshold: int, *, signers: Sequence[Signer] | None = None) -> Submission:
        return self.governance(signers, policy=governance_pb2.Policy(threshold=threshold))

    def recover(
        self,
        recycler: str,
        site: str,
        lot: str,
        mass: int,
        *,
        event_id: str | None = None,
        **ppm: int,
    ) -> Submission:
        return self.event(
            recycler,
            event_id=event_id,
            recovery=event_pb2.Recovery(
                facility_id=site,
                lot_id=lot,
                material="black mass",
                mass_grams=mass,
                contents=contents(**(ppm or {"Co": 100_000})),
                scrap_origin=event_pb2.SCRAP_ORIGIN_POST_CONSUMER,
            ),
        )

    def assay(self, lab: str, lot: str, *, event_id: str | None = None, **ppm: int) -> Submission:
        return self.event(
            lab,
            event_id=event_id,
            assay=event_pb2.Assay(
                lot_id=lot, contents=contents(**(ppm or {"Co": 295_000})), method="ICP-OES"
            ),
        )

    def certify(
        self,
        auditor: str,
        facility: str,
        *,
        event_id: str | None = None,
        valid_from: Timestamp = EVENT_TIME,
        valid_until: Timestamp = VALID_UNTIL,
    ) -> Submission:
        return self.event(
            auditor,
            event_id=event_id,
            certification=event_pb2.Certification(
                scheme="RMAP",
                facility_id=facility,
                metals=["Co"],
                status=event_pb2.CERTIFICATION_STATUS_CONFORMANT,
                valid_from=valid_from,
                valid_until=valid_until,
            ),
        )

    def void(self, partner_id: str, target: str, *, event_id: str | None = None) -> Submission:
        return self.event(
            partner_id,
            event_id=event_id,
            correction=event_pb2.Correction(
                target_event_id=target, action=event_pb2.CORRECTION_ACTION_VOID, reason="mistake"
            ),
        )

    def supersede(
        self, partner_id: str, target: str, replacement: str, *, event_id: str | None = None
    ) -> Submission:
        return self.event(
            partner_id,
            event_id=event_id,
            correction=event_pb2.Correction(
                target_event_id=target,
                action=event_pb2.CORRECTION_ACTION_SUPERSEDE,
                replacement_event_id=replacement,
                reason="re-assayed",
            ),
        )

    def rewrite_event(
        self, entry: Submission, change: Callable[[event_pb2.Event], object]
    ) -> Submission:
        """The same event with its message changed by ``change``, signed again by the
        same signers (who must be among ``self.signers``)."""
        message = event_pb2.Event.FromString(entry.envelope.payload)
        change(message)
        return self._resign(entry, message)

    def rewrite_governance(
        self, entry: Submission, change: Callable[[governance_pb2.Governance], object]
    ) -> Submission:
        """The same governance action changed by ``change``, signed again by the same signers."""
        message = governance_pb2.Governance.FromString(entry.envelope.payload)
        change(message)
        return self._resign(entry, message)

    def _resign(self, entry: Submission, message: Message) -> Submission:
        by_key = {s.public_key: s for s in self.signers.values()}
        return submission(
            entry.envelope.payload_type,
            message,
            [by_key[key] for key in entry.public_keys],
            authenticated_partner=entry.authenticated_partner,
        )


def signed(
    payload_type: str,
    payload: bytes,
    signers: Sequence[Signer],
    *,
    authenticated_partner: str | None = None,
) -> Submission:
    """An entry with raw payload bytes (not necessarily a valid message)."""
    envelope = sign_envelope(payload_type, payload, signers)
    return Submission.of(
        envelope, [s.public_key for s in signers], authenticated_partner=authenticated_partner
    )


def resigned(entry: Submission, signers: Sequence[Signer]) -> Submission:
    """The same payload signed by ``signers`` instead."""
    return signed(
        entry.envelope.payload_type,
        entry.envelope.payload,
        signers,
        authenticated_partner=entry.authenticated_partner,
    )


def supply_chain_preamble(world: World) -> list[Submission]:
    """Genesis, a mine, a trader, a refiner, a lab and an auditor, with their facilities."""
    return [
        world.genesis(),
        world.admit("mine", ROLE.ROLE_MINE),
        world.admit("trader", ROLE.ROLE_TRADER, country="AE"),
        world.admit("refiner", ROLE.ROLE_PROCESSOR, country="FI"),
        world.admit("lab", ROLE.ROLE_LAB, country="CH"),
        world.admit("auditor", ROLE.ROLE_AUDITOR, country="GB"),
        world.facility("mine-site", "mine", FACILITY.FACILITY_TYPE_MINE_SITE),
        world.facility("refinery", "refiner", FACILITY.FACILITY_TYPE_REFINERY, country="FI"),
        world.facility("trader-hub", "trader", FACILITY.FACILITY_TYPE_WAREHOUSE, country="AE"),
    ]
