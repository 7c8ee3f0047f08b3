"""A realistic, consistent sample consortium and its custody history.

Twelve partners trace cobalt from three mines and one recycler to a lot of
battery cells. Every entry is a signed DSSE envelope ready for the
sequencer, in log order: governance first (genesis, admissions, facility
registrations, all signed by both administrators since the threshold is 2),
then the events in the order they happened. Keys, event ids and envelopes
are deterministic, so every run produces the same log.

The story (all of 2026)
-----------------------
* Lualaba Copper Cobalt (industrial mine, Kolwezi, CD) extracts 24.03 t of
  cobalt hydroxide, records a second extraction by mistake (the same
  weighbridge ticket keyed twice) and voids it.
* The Kasulo artisanal cooperative (ASM zone in Kolwezi, CD, a high-risk
  area) extracts 15 t of hand-sorted heterogenite ore.
* Both ship by road to Meridian Metals' bonded warehouse in Durban (ZA); the
  industrial lot arrives 30 kg light. Meridian blends both into one feed lot
  and ships it to Kokkola Cobalt Refining (FI, RMAP-conformant, certified in
  January by RS Assurance).
* Halmahera Nickel Cobalt (Weda Bay, ID) ships mixed hydroxide precipitate
  (MHP) straight to Kokkola.
* Rheinland Battery Recycling (Duisburg, DE) recovers black mass from
  end-of-life packs (post-consumer) and sends it to Kokkola.
* Bothnia Assay Laboratories assays the blend on arrival, finds a dilution
  error and supersedes the assay with a re-assay.
* Kokkola refines blend + MHP into cobalt and nickel sulfate, and recycles
  the black mass into recovered cobalt and nickel sulfate and lithium
  carbonate.
* Hamina Cathode Materials (FI) makes NCA cathode active material from the
  primary and recovered sulfates; Baltic Cell Works (SE) makes 21700 cells
  from part of it: ``FINAL_LOT_ID``.

Mass balance, per element, of every transformation (micrograms = g x ppm)
--------------------------------------------------------------------------
Blend (Meridian), Co:  24,000,000 x 300,000 + 15,000,000 x 120,000 = 9.000e12
    out 38,800,000 x 230,000 = 8.924e12 (99.2 %); Cu 1.200e12 -> 1.164e12
Refining (Kokkola), Co: 38,800,000 x 230,000 + 55,775,000 x 32,000 = 10.7088e12
    out CoSO4 51,500,000 x 205,000 = 10.5575e12 (98.6 %)
    Ni: 55,775,000 x 390,000 = 21.75225e12 -> NiSO4 96,000,000 x 222,000 = 21.312e12
Recycling (Kokkola): black mass 40,000,000 g, Co 60,000 / Ni 200,000 / Li 35,000
    Co 2.4e12 -> 11,200,000 x 205,000 = 2.296e12; Ni 8.0e12 -> 34,500,000 x 222,000
    = 7.659e12; Li 1.4e12 -> 6,900,000 x 188,000 = 1.2972e12
Cathode (Hamina), Co: 21,000,000 x 205,000 + 7,000,000 x 205,000 = 5.740e12
    -> NCA 58,000,000 x 92,000 = 5.336e12; Ni 21.312e12 + 7.659e12 = 28.971e12
    -> 58,000,000 x 488,000 = 28.304e12
Cells (Baltic), Co: 20,000,000 x 92,000 = 1.840e12 -> 66,000,000 x 27,600 = 1.8216e12
    Ni: 9.760e12 -> 66,000,000 x 145,000 = 9.570e12

Lithium hydroxide for the cathode comes from a supplier outside the
consortium, so the cathode and the cells declare only Ni and Co: a declared
Li content would need a tracked lithium input to pass mass balance.

The cobalt origins of the final lot, by hand
--------------------------------------------
Each transformation's mix for Co weights its consumed inputs by
``consumed_grams * ppm(Co)``:

====================  ======================================  ===========
transformation        Co brought by each input (micrograms)   weights
====================  ======================================  ===========
blend                 lcc 24,000,000 x 300,000 = 7.2e12       4/5
                      kasulo 15,000,000 x 120,000 = 1.8e12    1/5
refining              blend 38,800,000 x 230,000 = 8.924e12   5/6
                      MHP 55,775,000 x 32,000 = 1.7848e12     1/6
cathode               CoSO4 21,000,000 x 205,000 = 4.305e12   3/4
                      rCoSO4 7,000,000 x 205,000 = 1.435e12   1/4
                      (nickel sulfates carry no Co: weight 0)
cells                 NCA 20,000,000 x 92,000                 1
====================  ======================================  ===========

So the cells' cobalt is 3/4 x 5/6 x 4/5 = 1/2 industrial Lualaba,
3/4 x 5/6 x 1/5 = 1/8 artisanal Kasulo, 3/4 x 1/6 = 1/8 Halmahera and 1/4
recycled post-consumer. The cells contain 66,000,000 x 27,600 =
1,821,600,000,000 micrograms (1.8216 t) of Co, divisible by 8, so the
largest-remainder split has no remainder to hand out:

===========================================  ===================  =========
origin key                                   micrograms           share_ppm
===========================================  ===================  =========
mine:lcc-kolwezi-pit                         910,800,000,000      500,000
mine:kasulo-asm-zone                         227,700,000,000      125,000
mine:hnc-weda-bay-site                       227,700,000,000      125,000
recycled:rbr-duisburg-site:post_consumer     455,400,000,000      250,000
===========================================  ===================  =========
"""

from __future__ import annotations

import calendar
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.message import Message

from custody.v1 import event_pb2, governance_pb2
from ledger.admission import Submission
from ledger.domain.records import (
    EVENT_PAYLOAD_TYPE,
    GOVERNANCE_PAYLOAD_TYPE,
    FacilityType,
    Role,
)
from ledger.dsse import Signer, sign_envelope
from ledger.keys import private_key_from_seed

KEY_SEED_PREFIX = b"custody-sample:"
"""Each partner's Ed25519 seed is SHA-256(KEY_SEED_PREFIX + partner id)."""

CONSORTIUM_NAME = "Custody Battery Metals Consortium (sample)"
GOVERNANCE_THRESHOLD = 2

# uuid5 namespace for the sample's event and action ids: stable across runs.
_ID_NAMESPACE = uuid.UUID("6f1d3c52-8a0e-4d57-9a43-2b7e5c0f8e11")


# --- partners and facilities --------------------------------------------------------


@dataclass(frozen=True)
class SamplePartner:
    partner_id: str
    legal_name: str
    country: str
    roles: tuple[Role, ...]


@dataclass(frozen=True)
class SampleFacility:
    facility_id: str
    partner_id: str
    name: str
    type: FacilityType
    country: str
    latitude_e6: int
    longitude_e6: int
    rmi_smelter_id: str = ""
    artisanal: bool = False


OPERATOR = "custody-operator"
ASSOCIATION = "battery-metals-assoc"
LUALABA = "lualaba-cc"
KASULO = "kasulo-coop"
HALMAHERA = "halmahera-nc"
MERIDIAN = "meridian-metals"
KOKKOLA = "kokkola-refining"
HAMINA = "hamina-cathode"
BALTIC = "baltic-cells"
RHEINLAND = "rheinland-recycling"
BOTHNIA = "bothnia-assay"
ASSURANCE = "rs-assurance"

ADMINISTRATORS = (OPERATOR, ASSOCIATION)

SAMPLE_PARTNERS: tuple[SamplePartner, ...] = (
    SamplePartner(OPERATOR, "Custody Consortium Operations B.V.", "NL", (Role.ADMIN,)),
    SamplePartner(ASSOCIATION, "Battery Metals Association AISBL", "BE", (Role.ADMIN,)),
    SamplePartner(LUALABA, "Lualaba Copper Cobalt SA", "CD", (Role.MINE,)),
    SamplePartner(KASULO, "Cooperative Miniere Artisanale de Kasulo", "CD", (Role.MINE,)),
    SamplePartner(HALMAHERA, "PT Halmahera Nickel Cobalt", "ID", (Role.MINE,)),
    SamplePartner(MERIDIAN, "Meridian Metals Trading SA", "CH", (Role.TRADER,)),
    SamplePartner(KOKKOLA, "Kokkola Cobalt Refining Oy", "FI", (Role.PROCESSOR,)),
    SamplePartner(HAMINA, "Hamina Cathode Materials Oy", "FI", (Role.PROCESSOR,)),
    SamplePartner(BALTIC, "Baltic Cell Works AB", "SE", (Role.MANUFACTURER,)),
    SamplePartner(RHEINLAND, "Rheinland Battery Recycling GmbH", "DE", (Role.RECYCLER,)),
    SamplePartner(BOTHNIA, "Bothnia Assay Laboratories Oy", "FI", (Role.LAB,)),
    SamplePartner(ASSURANCE, "RS Assurance GmbH", "DE", (Role.AUDITOR,)),
)

LCC_PIT = "lcc-kolwezi-pit"
KASULO_ZONE = "kasulo-asm-zone"
WEDA_BAY = "hnc-weda-bay-site"
DURBAN_WAREHOUSE = "mmt-durban-warehouse"
KOKKOLA_REFINERY = "kcr-kokkola-refinery"
HAMINA_PLANT = "hcm-hamina-plant"
SKELLEFTEA_PLANT = "bcw-skelleftea-plant"
DUISBURG_SITE = "rbr-duisburg-site"
BOTHNIA_LAB = "bal-kokkola-lab"

SAMPLE_FACILITIES: tuple[SampleFacility, ...] = (
    SampleFacility(
        LCC_PIT, LUALABA, "Kolwezi open pit and hydroxide plant",
        FacilityType.MINE_SITE, "CD", -10_738_500, 25_385_300,
    ),
    SampleFacility(
        KASULO_ZONE, KASULO, "Kasulo artisanal mining zone, Kolwezi",
        FacilityType.MINE_SITE, "CD", -10_702_000, 25_481_000, artisanal=True,
    ),
    SampleFacility(
        WEDA_BAY, HALMAHERA, "Weda Bay laterite mine and HPAL plant",
        FacilityType.MINE_SITE, "ID", 470_800, 127_947_200,
    ),
    SampleFacility(
        DURBAN_WAREHOUSE, MERIDIAN, "Durban bonded warehouse, Bayhead",
        FacilityType.WAREHOUSE, "ZA", -29_871_400, 31_024_600,
    ),
    SampleFacility(
        KOKKOLA_REFINERY, KOKKOLA, "Kokkola cobalt refinery",
        FacilityType.REFINERY, "FI", 63_858_300, 23_038_700, rmi_smelter_id="CID004217",
    ),
    SampleFacility(
        HAMINA_PLANT, HAMINA, "Hamina cathode active material plant",
        FacilityType.PLANT, "FI", 60_547_600, 27_198_100,
    ),
    SampleFacility(
        SKELLEFTEA_PLANT, BALTIC, "Skelleftea cell plant",
        FacilityType.PLANT, "SE", 64_744_300, 21_055_200,
    ),
    SampleFacility(
        DUISBURG_SITE, RHEINLAND, "Duisburg battery recycling site",
        FacilityType.RECYCLING_SITE, "DE", 51_434_400, 6_762_300,
    ),
    SampleFacility(
        BOTHNIA_LAB, BOTHNIA, "Kokkola port assay laboratory",
        FacilityType.LABORATORY, "FI", 63_838_900, 23_130_800,
    ),
)  # fmt: skip


# --- lots ---------------------------------------------------------------------------

LOT_LCC_HYDROXIDE = "LCC-KZ-COOH-2026-0412"
LOT_LCC_DUPLICATE = "LCC-KZ-COOH-2026-0413"
LOT_KASULO_ORE = "KAS-ASM-HGT-2026-0087"
LOT_HALMAHERA_MHP = "HNC-WB-MHP-2026-0231"
LOT_FEED_BLEND = "MMT-DBN-BLD-2026-0019"
LOT_BLACK_MASS = "RBR-DU-BM-2026-0144"
LOT_COBALT_SULFATE = "KCR-COSO4-2026-0301"
LOT_NICKEL_SULFATE = "KCR-NISO4-2026-0302"
LOT_RECOVERED_COBALT_SULFATE = "KCR-RCOSO4-2026-0088"
LOT_RECOVERED_NICKEL_SULFATE = "KCR-RNISO4-2026-0089"
LOT_LITHIUM_CARBONATE = "KCR-RLI2CO3-2026-0090"
LOT_CATHODE = "HCM-NCA-2026-0057"
FINAL_LOT_ID = "BCW-CELL21700-2026-0007"


@dataclass(frozen=True)
class OriginShare:
    """One origin's part of an element in a lot: exact micrograms and share in ppm."""

    micrograms: int
    share_ppm: int


EXPECTED_COBALT_ORIGINS: dict[str, OriginShare] = {
    f"mine:{LCC_PIT}": OriginShare(910_800_000_000, 500_000),
    f"mine:{KASULO_ZONE}": OriginShare(227_700_000_000, 125_000),
    f"mine:{WEDA_BAY}": OriginShare(227_700_000_000, 125_000),
    f"recycled:{DUISBURG_SITE}:post_consumer": OriginShare(455_400_000_000, 250_000),
}
"""Origin composition of FINAL_LOT_ID's cobalt, worked by hand (module docstring)."""


def trace_lot_id() -> str:
    """The lot whose origins the sample is built to show."""
    return FINAL_LOT_ID


# --- keys and entries ---------------------------------------------------------------


@cache
def partner_private_key(partner_id: str) -> Ed25519PrivateKey:
    """The sample partner's only key, derived from its id: public, for samples only."""
    seed = hashlib.sha256(KEY_SEED_PREFIX + partner_id.encode("ascii")).digest()
    return private_key_from_seed(seed)


def partner_signer(partner_id: str) -> Signer:
    """The sample partner's deterministic signer (its only key)."""
    return Signer(partner_private_key(partner_id))


@dataclass(frozen=True)
class SampleEntry:
    """One entry of the sample log: what it is, the signed submission, who signed it."""

    label: str
    submission: Submission
    signer_ids: tuple[str, ...]


def signed_submission(payload_type: str, message: Message, signers: Sequence[Signer]) -> Submission:
    """Serialise ``message``, sign it with every signer, offer the signers' public keys."""
    envelope = sign_envelope(payload_type, message.SerializeToString(), signers)
    return Submission.of(envelope, [signer.public_key for signer in signers])


def element_contents(**ppm: int) -> list[event_pb2.ElementContent]:
    """``element_contents(Co=205_000)``: contents in symbol order."""
    return [
        event_pb2.ElementContent(element=symbol, ppm=value) for symbol, value in sorted(ppm.items())
    ]


def utc_seconds(iso: str) -> int:
    """Seconds since the epoch of an ISO 8601 UTC time such as ``2026-02-03T07:30:00Z``."""
    return calendar.timegm(datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").timetuple())


def evidence(uri: str, kind: str) -> event_pb2.EvidenceRef:
    """A reference to a document; its hash stands in for the document: SHA-256 of its name."""
    document_name = uri.rsplit("/", 1)[-1]
    return event_pb2.EvidenceRef(
        uri=uri, sha256=hashlib.sha256(document_name.encode("utf-8")).digest(), kind=kind
    )


class _SampleLog:
    """Accumulates entries in log order; ids are uuid5 of the (unique) labels."""

    def __init__(self) -> None:
        self.entries: list[SampleEntry] = []

    def governance(self, label: str, governance: governance_pb2.Governance) -> str:
        action_id = _id_for(label)
        governance.action_id = action_id
        signers = [partner_signer(admin) for admin in ADMINISTRATORS]
        submission = signed_submission(GOVERNANCE_PAYLOAD_TYPE, governance, signers)
        self.entries.append(SampleEntry(label, submission, ADMINISTRATORS))
        return action_id

    def event(
        self,
        label: str,
        partner_id: str,
        when: str,
        documents: Sequence[event_pb2.EvidenceRef],
        body: Message,
    ) -> str:
        event_id = _id_for(label)
        event = event_pb2.Event(event_id=event_id, partner_id=partner_id, evidence=documents)
        event.event_time.seconds = utc_seconds(when)
        # The oneof field is named after the body's message type (Extraction -> extraction).
        getattr(event, body.DESCRIPTOR.name.lower()).CopyFrom(body)
        submission = signed_submission(EVENT_PAYLOAD_TYPE, event, [partner_signer(partner_id)])
        self.entries.append(SampleEntry(label, submission, (partner_id,)))
        return event_id


def _id_for(label: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, label))


def _partner_spec(partner: SamplePartner) -> governance_pb2.PartnerSpec:
    return governance_pb2.PartnerSpec(
        partner_id=partner.partner_id,
        legal_name=partner.legal_name,
        country=partner.country,
        roles=[governance_pb2.Role.Name(role) for role in partner.roles],
        public_keys=[partner_signer(partner.partner_id).public_key],
    )


def _facility_registration(facility: SampleFacility) -> governance_pb2.FacilityRegistration:
    return governance_pb2.FacilityRegistration(
        facility_id=facility.facility_id,
        partner_id=facility.partner_id,
        name=facility.name,
        type=governance_pb2.FacilityType.Name(facility.type),
        country=facility.country,
        latitude_e6=facility.latitude_e6,
        longitude_e6=facility.longitude_e6,
        rmi_smelter_id=facility.rmi_smelter_id,
        artisanal=facility.artisanal,
    )


# --- the history --------------------------------------------------------------------


def sample_entries() -> list[SampleEntry]:
    """The whole sample log, governance first, in the order it is to be appended."""
    log = _SampleLog()
    _governance(log)
    _events(log)
    return log.entries


def _governance(log: _SampleLog) -> None:
    partners = {partner.partner_id: partner for partner in SAMPLE_PARTNERS}
    log.governance(
        "genesis of the consortium",
        governance_pb2.Governance(
            genesis=governance_pb2.Genesis(
                consortium=CONSORTIUM_NAME,
                administrators=[_partner_spec(partners[admin]) for admin in ADMINISTRATORS],
                threshold=GOVERNANCE_THRESHOLD,
            )
        ),
    )
    for partner in SAMPLE_PARTNERS:
        if partner.partner_id in ADMINISTRATORS:
            continue
        log.governance(
            f"admit {partner.partner_id}",
            governance_pb2.Governance(
                partner_admission=governance_pb2.PartnerAdmission(partner=_partner_spec(partner))
            ),
        )
    for facility in SAMPLE_FACILITIES:
        log.governance(
            f"register facility {facility.facility_id}",
            governance_pb2.Governance(facility_registration=_facility_registration(facility)),
        )


def _events(log: _SampleLog) -> None:  # one story, told in order
    lcc_docs = "https://docs.lualaba-cc.example"
    kasulo_docs = "https://records.kasulo-coop.example"
    hnc_docs = "https://docs.halmahera-nc.example"
    mmt_docs = "https://ops.meridian-metals.example"
    kcr_docs = "https://qms.kokkola-refining.example"
    hcm_docs = "https://docs.hamina-cathode.example"
    bcw_docs = "https://mes.baltic-cells.example"
    rbr_docs = "https://docs.rheinland-recycling.example"
    bal_docs = "https://lims.bothnia-assay.example"

    log.event(
        "RS Assurance certifies the Kokkola refinery RMAP-conformant for cobalt",
        ASSURANCE,
        "2026-01-20T10:00:00Z",
        [
            evidence(
                "https://reports.rs-assurance.example/rmap/2026/KCR-RMAP-2026-summary.pdf",
                "rmap_assessment_report",
            )
        ],
        _certification(KOKKOLA_REFINERY, "2026-01-15T00:00:00Z", "2027-01-15T00:00:00Z"),
    )

    # Mines. The industrial mine keys one weighbridge ticket twice, then voids the copy.
    log.event(
        "Lualaba extracts 24.03 t cobalt hydroxide",
        LUALABA,
        "2026-02-03T07:30:00Z",
        [
            evidence(f"{lcc_docs}/production/2026/LCC-PROD-2026-0412.pdf", "production_report"),
            evidence(f"{lcc_docs}/assay/2026/LCC-ASSAY-2026-0412.pdf", "assay_report"),
        ],
        event_pb2.Extraction(
            facility_id=LCC_PIT,
            lot_id=LOT_LCC_HYDROXIDE,
            material="cobalt hydroxide",
            mass_grams=24_030_000,
            contents=element_contents(Co=300_000, Cu=25_000),
        ),
    )
    duplicate_extraction = log.event(
        "Lualaba records the same hydroxide lot a second time by mistake",
        LUALABA,
        "2026-02-03T07:42:00Z",
        [evidence(f"{lcc_docs}/weighbridge/2026/LCC-WB-2026-0412.pdf", "weighbridge_ticket")],
        event_pb2.Extraction(
            facility_id=LCC_PIT,
            lot_id=LOT_LCC_DUPLICATE,
            material="cobalt hydroxide",
            mass_grams=24_030_000,
            contents=element_contents(Co=300_000, Cu=25_000),
        ),
    )
    log.event(
        "Lualaba voids the duplicate extraction",
        LUALABA,
        "2026-02-04T09:15:00Z",
        [evidence(f"{lcc_docs}/weighbridge/2026/LCC-WB-2026-0412.pdf", "weighbridge_ticket")],
        event_pb2.Correction(
            target_event_id=duplicate_extraction,
            action=event_pb2.CORRECTION_ACTION_VOID,
            reason="weighbridge ticket LCC-WB-2026-0412 keyed twice; lot 0413 does not exist",
        ),
    )
    log.event(
        "Kasulo cooperative extracts 15 t hand-sorted heterogenite ore",
        KASULO,
        "2026-02-05T14:00:00Z",
        [
            evidence(
                f"{kasulo_docs}/validation/KAS-SITE-VALIDATION-2026-Q1.pdf",
                "asm_site_validation_report",
            ),
            evidence(f"{kasulo_docs}/tags/KAS-TAGLOG-2026-0087.pdf", "chain_of_custody_tag_log"),
        ],
        event_pb2.Extraction(
            facility_id=KASULO_ZONE,
            lot_id=LOT_KASULO_ORE,
            material="heterogenite ore, hand-sorted",
            mass_grams=15_000_000,
            contents=element_contents(Co=120_000, Cu=40_000),
        ),
    )
    log.event(
        "Halmahera produces 55.775 t mixed hydroxide precipitate",
        HALMAHERA,
        "2026-02-09T02:00:00Z",
        [
            evidence(f"{hnc_docs}/production/2026/HNC-HPAL-2026-0231.pdf", "production_report"),
            evidence(f"{hnc_docs}/assay/2026/HNC-ASSAY-2026-0231.pdf", "assay_report"),
        ],
        event_pb2.Extraction(
            facility_id=WEDA_BAY,
            lot_id=LOT_HALMAHERA_MHP,
            material="nickel-cobalt mixed hydroxide precipitate (MHP)",
            mass_grams=55_775_000,
            contents=element_contents(Ni=390_000, Co=32_000),
        ),
    )

    # To the trader in Durban, by road; the industrial lot arrives 30 kg light.
    lcc_dispatch = log.event(
        "Lualaba ships the hydroxide to Meridian in Durban",
        LUALABA,
        "2026-02-10T06:00:00Z",
        [
            evidence(f"{lcc_docs}/export/2026/LCC-CEEC-2026-0412.pdf", "ceec_certificate"),
            evidence(f"{lcc_docs}/export/2026/LCC-EXP-PERMIT-2026-0412.pdf", "export_permit"),
            evidence(f"{lcc_docs}/transport/2026/LCC-CMR-2026-0412.pdf", "road_consignment_note"),
        ],
        event_pb2.Dispatch(
            lot_id=LOT_LCC_HYDROXIDE,
            to_partner_id=MERIDIAN,
            mass_grams=24_030_000,
            from_facility_id=LCC_PIT,
            to_facility_id=DURBAN_WAREHOUSE,
            transport="road, Kolwezi-Kasumbalesa-Durban, 1 truck convoy",
        ),
    )
    kasulo_dispatch = log.event(
        "Kasulo ships the ore to Meridian in Durban",
        KASULO,
        "2026-02-12T08:00:00Z",
        [
            evidence(f"{kasulo_docs}/export/KAS-CEEC-2026-0087.pdf", "ceec_certificate"),
            evidence(f"{kasulo_docs}/transport/KAS-CMR-2026-0087.pdf", "road_consignment_note"),
        ],
        event_pb2.Dispatch(
            lot_id=LOT_KASULO_ORE,
            to_partner_id=MERIDIAN,
            mass_grams=15_000_000,
            from_facility_id=KASULO_ZONE,
            to_facility_id=DURBAN_WAREHOUSE,
            transport="road, Kolwezi-Kasumbalesa-Durban",
        ),
    )
    hnc_dispatch = log.event(
        "Halmahera ships the MHP to Kokkola",
        HALMAHERA,
        "2026-02-20T11:00:00Z",
        [
            evidence(f"{hnc_docs}/shipping/2026/HNC-BL-2026-0231.pdf", "bill_of_lading"),
            evidence(f"{hnc_docs}/export/2026/HNC-PEB-2026-0231.pdf", "export_declaration"),
        ],
        event_pb2.Dispatch(
            lot_id=LOT_HALMAHERA_MHP,
            to_partner_id=KOKKOLA,
            mass_grams=55_775_000,
            from_facility_id=WEDA_BAY,
            to_facility_id=KOKKOLA_REFINERY,
            transport="sea, Weda Bay-Singapore-Kokkola, bulk carrier MV Halmahera Star",
        ),
    )
    log.event(
        "Meridian receives the hydroxide, 30 kg short",
        MERIDIAN,
        "2026-02-26T13:20:00Z",
        [evidence(f"{mmt_docs}/durban/2026/MMT-GRN-2026-0412.pdf", "weighbridge_ticket")],
        event_pb2.Receipt(
            dispatch_event_id=lcc_dispatch,
            lot_id=LOT_LCC_HYDROXIDE,
            received_mass_grams=24_000_000,
            facility_id=DURBAN_WAREHOUSE,
        ),
    )
    log.event(
        "Meridian receives the artisanal ore",
        MERIDIAN,
        "2026-02-28T10:05:00Z",
        [evidence(f"{mmt_docs}/durban/2026/MMT-GRN-2026-0087.pdf", "weighbridge_ticket")],
        event_pb2.Receipt(
            dispatch_event_id=kasulo_dispatch,
            lot_id=LOT_KASULO_ORE,
            received_mass_grams=15_000_000,
            facility_id=DURBAN_WAREHOUSE,
        ),
    )
    log.event(
        "Meridian blends hydroxide and ore into refinery feed",
        MERIDIAN,
        "2026-03-04T09:00:00Z",
        [evidence(f"{mmt_docs}/durban/2026/MMT-BLEND-2026-0019.pdf", "blending_record")],
        event_pb2.Transformation(
            facility_id=DURBAN_WAREHOUSE,
            process=event_pb2.PROCESS_BLEND,
            inputs=[
                event_pb2.TransformationInput(
                    lot_id=LOT_LCC_HYDROXIDE, consumed_mass_grams=24_000_000
                ),
                event_pb2.TransformationInput(
                    lot_id=LOT_KASULO_ORE, consumed_mass_grams=15_000_000
                ),
            ],
            outputs=[
                event_pb2.TransformationOutput(
                    lot_id=LOT_FEED_BLEND,
                    material="cobalt hydroxide feed blend",
                    mass_grams=38_800_000,
                    contents=element_contents(Co=230_000, Cu=30_000),
                )
            ],
        ),
    )
    blend_dispatch = log.event(
        "Meridian ships the feed blend to Kokkola",
        MERIDIAN,
        "2026-03-06T15:00:00Z",
        [
            evidence(f"{mmt_docs}/shipping/2026/MMT-BL-DUR-KOK-2026-0019.pdf", "bill_of_lading"),
            evidence(f"{mmt_docs}/shipping/2026/MMT-SARS-EXP-2026-0019.pdf", "export_declaration"),
        ],
        event_pb2.Dispatch(
            lot_id=LOT_FEED_BLEND,
            to_partner_id=KOKKOLA,
            mass_grams=38_800_000,
            from_facility_id=DURBAN_WAREHOUSE,
            to_facility_id=KOKKOLA_REFINERY,
            transport="sea, Durban-Antwerp-Kokkola, containers MSCU 4410231-4410236",
        ),
    )

    # Recycled feed: end-of-life packs to black mass, shipped under a waste notification.
    log.event(
        "Rheinland recovers 40 t black mass from end-of-life packs",
        RHEINLAND,
        "2026-03-10T08:00:00Z",
        [
            evidence(f"{rbr_docs}/intake/2026/RBR-COLLECT-2026-0144.pdf", "collection_manifest"),
            evidence(f"{rbr_docs}/lab/2026/RBR-BM-ASSAY-2026-0144.pdf", "assay_report"),
        ],
        event_pb2.Recovery(
            facility_id=DUISBURG_SITE,
            lot_id=LOT_BLACK_MASS,
            material="black mass (NMC/NCA end-of-life packs)",
            mass_grams=40_000_000,
            contents=element_contents(Co=60_000, Ni=200_000, Li=35_000),
            scrap_origin=event_pb2.SCRAP_ORIGIN_POST_CONSUMER,
        ),
    )
    black_mass_dispatch = log.event(
        "Rheinland ships the black mass to Kokkola",
        RHEINLAND,
        "2026-03-18T07:00:00Z",
        [
            evidence(
                f"{rbr_docs}/shipping/2026/RBR-WSR-NOTIF-DE-2026-0144.pdf",
                "waste_shipment_notification",
            ),
            evidence(f"{rbr_docs}/shipping/2026/RBR-CMR-2026-0144.pdf", "road_consignment_note"),
        ],
        event_pb2.Dispatch(
            lot_id=LOT_BLACK_MASS,
            to_partner_id=KOKKOLA,
            mass_grams=40_000_000,
            from_facility_id=DUISBURG_SITE,
            to_facility_id=KOKKOLA_REFINERY,
            transport="road and sea, Duisburg-Travemuende-Kokkola, ro-ro",
        ),
    )
    log.event(
        "Kokkola receives the black mass",
        KOKKOLA,
        "2026-03-30T12:00:00Z",
        [evidence(f"{kcr_docs}/receiving/2026/KCR-GRN-2026-1144.pdf", "goods_received_note")],
        event_pb2.Receipt(
            dispatch_event_id=black_mass_dispatch,
            lot_id=LOT_BLACK_MASS,
            received_mass_grams=40_000_000,
            facility_id=KOKKOLA_REFINERY,
        ),
    )
    log.event(
        "Kokkola receives the MHP",
        KOKKOLA,
        "2026-04-02T09:30:00Z",
        [evidence(f"{kcr_docs}/receiving/2026/KCR-GRN-2026-1231.pdf", "goods_received_note")],
        event_pb2.Receipt(
            dispatch_event_id=hnc_dispatch,
            lot_id=LOT_HALMAHERA_MHP,
            received_mass_grams=55_775_000,
            facility_id=KOKKOLA_REFINERY,
        ),
    )
    log.event(
        "Kokkola receives the feed blend",
        KOKKOLA,
        "2026-04-08T16:45:00Z",
        [evidence(f"{kcr_docs}/receiving/2026/KCR-GRN-2026-1019.pdf", "goods_received_note")],
        event_pb2.Receipt(
            dispatch_event_id=blend_dispatch,
            lot_id=LOT_FEED_BLEND,
            received_mass_grams=38_800_000,
            facility_id=KOKKOLA_REFINERY,
        ),
    )

    # Umpire assay of the blend on arrival; a dilution error is found and the assay redone.
    first_assay = log.event(
        "Bothnia assays the feed blend",
        BOTHNIA,
        "2026-04-09T11:00:00Z",
        [evidence(f"{bal_docs}/reports/2026/BAL-2026-0311.pdf", "assay_report")],
        event_pb2.Assay(
            lot_id=LOT_FEED_BLEND,
            contents=element_contents(Co=218_600, Cu=28_900),
            method="ICP-OES",
            sample_id="BAL-2026-0311",
        ),
    )
    re_assay = log.event(
        "Bothnia re-assays the feed blend",
        BOTHNIA,
        "2026-04-14T10:00:00Z",
        [evidence(f"{bal_docs}/reports/2026/BAL-2026-0311-R1.pdf", "assay_report")],
        event_pb2.Assay(
            lot_id=LOT_FEED_BLEND,
            contents=element_contents(Co=229_400, Cu=30_200),
            method="ICP-OES",
            sample_id="BAL-2026-0311-R1",
        ),
    )
    log.event(
        "Bothnia supersedes its first assay with the re-assay",
        BOTHNIA,
        "2026-04-14T10:30:00Z",
        [evidence(f"{bal_docs}/nc/2026/BAL-NCR-2026-0042.pdf", "nonconformity_report")],
        event_pb2.Correction(
            target_event_id=first_assay,
            action=event_pb2.CORRECTION_ACTION_SUPERSEDE,
            replacement_event_id=re_assay,
            reason="wrong dilution factor in run 1 (10x instead of 20x); sample re-run",
        ),
    )

    # Refining and recycling at Kokkola.
    log.event(
        "Kokkola refines blend and MHP into cobalt and nickel sulfate",
        KOKKOLA,
        "2026-04-20T06:00:00Z",
        [
            evidence(
                f"{kcr_docs}/production/2026/KCR-BATCH-2026-0301.pdf", "production_batch_record"
            )
        ],
        event_pb2.Transformation(
            facility_id=KOKKOLA_REFINERY,
            process=event_pb2.PROCESS_REFINING,
            inputs=[
                event_pb2.TransformationInput(
                    lot_id=LOT_FEED_BLEND, consumed_mass_grams=38_800_000
                ),
                event_pb2.TransformationInput(
                    lot_id=LOT_HALMAHERA_MHP, consumed_mass_grams=55_775_000
                ),
            ],
            outputs=[
                event_pb2.TransformationOutput(
                    lot_id=LOT_COBALT_SULFATE,
                    material="cobalt sulfate heptahydrate, battery grade",
                    mass_grams=51_500_000,
                    contents=element_contents(Co=205_000),
                ),
                event_pb2.TransformationOutput(
                    lot_id=LOT_NICKEL_SULFATE,
                    material="nickel sulfate hexahydrate, battery grade",
                    mass_grams=96_000_000,
                    contents=element_contents(Ni=222_000),
                ),
            ],
        ),
    )
    log.event(
        "Kokkola recycles the black mass into recovered sulfates and lithium carbonate",
        KOKKOLA,
        "2026-04-22T06:00:00Z",
        [
            evidence(
                f"{kcr_docs}/production/2026/KCR-BATCH-2026-0088.pdf", "production_batch_record"
            )
        ],
        event_pb2.Transformation(
            facility_id=KOKKOLA_REFINERY,
            process=event_pb2.PROCESS_RECYCLING,
            inputs=[
                event_pb2.TransformationInput(lot_id=LOT_BLACK_MASS, consumed_mass_grams=40_000_000)
            ],
            outputs=[
                event_pb2.TransformationOutput(
                    lot_id=LOT_RECOVERED_COBALT_SULFATE,
                    material="recovered cobalt sulfate heptahydrate",
                    mass_grams=11_200_000,
                    contents=element_contents(Co=205_000),
                ),
                event_pb2.TransformationOutput(
                    lot_id=LOT_RECOVERED_NICKEL_SULFATE,
                    material="recovered nickel sulfate hexahydrate",
                    mass_grams=34_500_000,
                    contents=element_contents(Ni=222_000),
                ),
                event_pb2.TransformationOutput(
                    lot_id=LOT_LITHIUM_CARBONATE,
                    material="recovered lithium carbonate",
                    mass_grams=6_900_000,
                    contents=element_contents(Li=188_000),
                ),
            ],
        ),
    )

    # Sulfates to the cathode plant (each lot is sent whole).
    sulfate_dispatches: list[tuple[str, str, int]] = []
    for lot_id, mass_grams, minute in (
        (LOT_COBALT_SULFATE, 51_500_000, "00"),
        (LOT_NICKEL_SULFATE, 96_000_000, "15"),
        (LOT_RECOVERED_COBALT_SULFATE, 11_200_000, "30"),
        (LOT_RECOVERED_NICKEL_SULFATE, 34_500_000, "45"),
    ):
        dispatch_id = log.event(
            f"Kokkola ships {lot_id} to Hamina",
            KOKKOLA,
            f"2026-05-04T08:{minute}:00Z",
            [evidence(f"{kcr_docs}/shipping/2026/KCR-DN-{lot_id}.pdf", "delivery_note")],
            event_pb2.Dispatch(
                lot_id=lot_id,
                to_partner_id=HAMINA,
                mass_grams=mass_grams,
                from_facility_id=KOKKOLA_REFINERY,
                to_facility_id=HAMINA_PLANT,
                transport="road, Kokkola-Hamina, bulk bags",
            ),
        )
        sulfate_dispatches.append((dispatch_id, lot_id, mass_grams))
    for dispatch_id, lot_id, mass_grams in sulfate_dispatches:
        log.event(
            f"Hamina receives {lot_id}",
            HAMINA,
            "2026-05-06T07:00:00Z",
            [evidence(f"{hcm_docs}/receiving/2026/HCM-GRN-{lot_id}.pdf", "goods_received_note")],
            event_pb2.Receipt(
                dispatch_event_id=dispatch_id,
                lot_id=lot_id,
                received_mass_grams=mass_grams,
                facility_id=HAMINA_PLANT,
            ),
        )

    log.event(
        "Hamina makes NCA cathode active material",
        HAMINA,
        "2026-05-20T06:00:00Z",
        [
            evidence(
                f"{hcm_docs}/production/2026/HCM-BATCH-2026-0057.pdf", "production_batch_record"
            )
        ],
        event_pb2.Transformation(
            facility_id=HAMINA_PLANT,
            process=event_pb2.PROCESS_CATHODE_PRODUCTION,
            inputs=[
                event_pb2.TransformationInput(
                    lot_id=LOT_COBALT_SULFATE, consumed_mass_grams=21_000_000
                ),
                event_pb2.TransformationInput(
                    lot_id=LOT_RECOVERED_COBALT_SULFATE, consumed_mass_grams=7_000_000
                ),
                event_pb2.TransformationInput(
                    lot_id=LOT_NICKEL_SULFATE, consumed_mass_grams=96_000_000
                ),
                event_pb2.TransformationInput(
                    lot_id=LOT_RECOVERED_NICKEL_SULFATE, consumed_mass_grams=34_500_000
                ),
            ],
            outputs=[
                event_pb2.TransformationOutput(
                    lot_id=LOT_CATHODE,
                    material="NCA cathode active material (LiNi0.80Co0.15Al0.05O2)",
                    mass_grams=58_000_000,
                    contents=element_contents(Ni=488_000, Co=92_000),
                )
            ],
        ),
    )
    cathode_dispatch = log.event(
        "Hamina ships the cathode material to Baltic Cell Works",
        HAMINA,
        "2026-05-25T09:00:00Z",
        [evidence(f"{hcm_docs}/shipping/2026/HCM-CMR-2026-0057.pdf", "road_consignment_note")],
        event_pb2.Dispatch(
            lot_id=LOT_CATHODE,
            to_partner_id=BALTIC,
            mass_grams=58_000_000,
            from_facility_id=HAMINA_PLANT,
            to_facility_id=SKELLEFTEA_PLANT,
            transport="road, Hamina-Tornio-Skelleftea",
        ),
    )
    log.event(
        "Baltic Cell Works receives the cathode material",
        BALTIC,
        "2026-05-28T14:00:00Z",
        [evidence(f"{bcw_docs}/receiving/2026/BCW-GRN-2026-0057.pdf", "goods_received_note")],
        event_pb2.Receipt(
            dispatch_event_id=cathode_dispatch,
            lot_id=LOT_CATHODE,
            received_mass_grams=58_000_000,
            facility_id=SKELLEFTEA_PLANT,
        ),
    )
    log.event(
        "Baltic Cell Works makes 21700 cells",
        BALTIC,
        "2026-06-10T18:00:00Z",
        [evidence(f"{bcw_docs}/production/2026/BCW-WO-2026-0007.pdf", "production_batch_record")],
        event_pb2.Transformation(
            facility_id=SKELLEFTEA_PLANT,
            process=event_pb2.PROCESS_CELL_MANUFACTURE,
            inputs=[
                event_pb2.TransformationInput(lot_id=LOT_CATHODE, consumed_mass_grams=20_000_000)
            ],
            outputs=[
                event_pb2.TransformationOutput(
                    lot_id=FINAL_LOT_ID,
                    material="lithium-ion cells, cylindrical 21700, NCA",
                    mass_grams=66_000_000,
                    contents=element_contents(Ni=145_000, Co=27_600),
                )
            ],
        ),
    )


def _certification(facility_id: str, valid_from: str, valid_until: str) -> event_pb2.Certification:
    certification = event_pb2.Certification(
        scheme="RMAP",
        facility_id=facility_id,
        metals=["Co"],
        status=event_pb2.CERTIFICATION_STATUS_CONFORMANT,
    )
    certification.valid_from.seconds = utc_seconds(valid_from)
    certification.valid_until.seconds = utc_seconds(valid_until)
    return certification
