"""The domain's state as small frozen records.

The state machine reads and writes these; storage maps each kind to a table
and the in-memory replay keeps them in dictionaries. Every record names the
log index that last changed it, so two states built from the same leaves are
equal record for record.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

EVENT_PAYLOAD_TYPE = "application/vnd.custody.event.v1+protobuf"
GOVERNANCE_PAYLOAD_TYPE = "application/vnd.custody.governance.v1+protobuf"


class Role(IntEnum):
    """Partner roles; values are custody.v1.Role's."""

    MINE = 1
    TRADER = 2
    PROCESSOR = 3
    MANUFACTURER = 4
    RECYCLER = 5
    LAB = 6
    AUDITOR = 7
    ADMIN = 8


HOLDING_ROLES = frozenset(
    {Role.MINE, Role.TRADER, Role.PROCESSOR, Role.MANUFACTURER, Role.RECYCLER}
)
"""Roles that may hold, send and receive lots."""


class FacilityType(IntEnum):
    """Values are custody.v1.FacilityType's."""

    MINE_SITE = 1
    SMELTER = 2
    REFINERY = 3
    PLANT = 4
    RECYCLING_SITE = 5
    WAREHOUSE = 6
    LABORATORY = 7


class Process(IntEnum):
    """Values are custody.v1.Process's."""

    SPLIT = 1
    BLEND = 2
    CONCENTRATION = 3
    SMELTING = 4
    REFINING = 5
    PRECURSOR_SYNTHESIS = 6
    CATHODE_PRODUCTION = 7
    CELL_MANUFACTURE = 8
    RECYCLING = 9


class ScrapOrigin(IntEnum):
    """Values are custody.v1.ScrapOrigin's."""

    PRE_CONSUMER = 1
    POST_CONSUMER = 2


class CertificationStatus(IntEnum):
    """Values are custody.v1.CertificationStatus's."""

    CONFORMANT = 1
    ACTIVE = 2
    SUSPENDED = 3
    WITHDRAWN = 4


class EventKind(Enum):
    """What an entry was; the value names the payload's oneof field."""

    EXTRACTION = "extraction"
    RECOVERY = "recovery"
    DISPATCH = "dispatch"
    RECEIPT = "receipt"
    TRANSFORMATION = "transformation"
    ASSAY = "assay"
    CERTIFICATION = "certification"
    CORRECTION = "correction"
    GENESIS = "genesis"
    PARTNER_ADMISSION = "partner_admission"
    ROLE_CHANGE = "role_change"
    KEY_ADDITION = "key_addition"
    KEY_REVOCATION = "key_revocation"
    FACILITY_REGISTRATION = "facility_registration"
    POLICY = "policy"


class EventStatus(Enum):
    ACTIVE = "active"
    VOIDED = "voided"
    SUPERSEDED = "superseded"


class LotState(Enum):
    HELD = "held"
    """Held by ``holder_id``; partly consumed when available < mass."""
    IN_TRANSIT = "in_transit"
    """Dispatched by its holder, not yet received."""
    CONSUMED = "consumed"
    """Nothing left: consumed by transformations."""
    VOIDED = "voided"
    """The event that created it was voided."""


class LotOrigin(Enum):
    EXTRACTION = "extraction"
    RECOVERY = "recovery"
    TRANSFORMATION = "transformation"


class DispatchState(Enum):
    OPEN = "open"
    RECEIVED = "received"
    CANCELLED = "cancelled"


ElementContents = tuple[tuple[str, int], ...]
"""(element symbol, ppm) pairs sorted by symbol; symbols unique."""


@dataclass(frozen=True, slots=True)
class Consortium:
    """Genesis and policy: the administrators and how many must sign."""

    name: str
    threshold: int
    admin_ids: tuple[str, ...]  # sorted partner ids holding ROLE_ADMIN
    updated_index: int


@dataclass(frozen=True, slots=True)
class Partner:
    partner_id: str
    legal_name: str
    country: str
    roles: tuple[Role, ...]  # sorted
    admitted_index: int
    updated_index: int

    def has(self, role: Role) -> bool:
        return role in self.roles


@dataclass(frozen=True, slots=True)
class PartnerKey:
    """A key of a partner: valid for entries after ``added_index`` up to its revocation."""

    keyid: str
    partner_id: str
    public_key: bytes
    added_index: int
    revoked_index: int | None

    def valid_at(self, index: int) -> bool:
        """Whether the key may sign the entry that gets ``index``.

        The entry adding a key cannot be signed by it; the entry revoking a
        key can (a partner may retire the key it signs with).
        """
        return self.added_index < index and (
            self.revoked_index is None or index <= self.revoked_index
        )


@dataclass(frozen=True, slots=True)
class Facility:
    facility_id: str
    partner_id: str
    name: str
    type: FacilityType
    country: str
    latitude_e6: int
    longitude_e6: int
    rmi_smelter_id: str
    artisanal: bool
    registered_index: int


@dataclass(frozen=True, slots=True)
class Lot:
    lot_id: str
    material: str
    mass_grams: int
    contents: ElementContents
    holder_id: str
    available_grams: int
    state: LotState
    dispatch_event_id: str | None  # the open dispatch while IN_TRANSIT
    origin: LotOrigin
    created_event_id: str
    created_index: int
    facility_id: str  # where it was created
    scrap_origin: ScrapOrigin | None  # RECOVERY lots only
    updated_index: int

    def ppm(self, element: str) -> int:
        for symbol, ppm in self.contents:
            if symbol == element:
                return ppm
        return 0


@dataclass(frozen=True, slots=True)
class EventRecord:
    """Every admitted event and governance action, by its unique id."""

    event_id: str
    partner_id: str  # the recorder; for governance, the first signing partner
    kind: EventKind
    index: int
    event_time_micros: int  # 0 for governance
    status: EventStatus
    corrected_by: str | None  # the correction's event id
    updated_index: int
    lot_id: str | None = None  # the lot an extraction or recovery created


@dataclass(frozen=True, slots=True)
class DispatchRecord:
    event_id: str
    lot_id: str
    from_partner_id: str
    to_partner_id: str
    mass_grams: int
    index: int
    state: DispatchState
    received_grams: int | None
    closed_index: int | None  # receipt or cancellation
    updated_index: int


@dataclass(frozen=True, slots=True)
class TransformationRecord:
    event_id: str
    partner_id: str
    facility_id: str
    process: Process
    inputs: tuple[tuple[str, int], ...]  # (lot id, consumed grams), in payload order
    outputs: tuple[str, ...]  # output lot ids, in payload order
    index: int
    event_time_micros: int
    voided: bool
    updated_index: int


@dataclass(frozen=True, slots=True)
class AssayRecord:
    event_id: str
    lot_id: str
    lab_id: str
    contents: ElementContents
    method: str
    sample_id: str
    index: int
    status: EventStatus
    updated_index: int


@dataclass(frozen=True, slots=True)
class CertificationRecord:
    event_id: str
    auditor_id: str
    facility_id: str
    scheme: str
    metals: tuple[str, ...]  # sorted
    certification_status: CertificationStatus
    valid_from_micros: int
    valid_until_micros: int
    index: int
    status: EventStatus
    updated_index: int


@dataclass(frozen=True, slots=True)
class SubjectHead:
    """The last leaf that touched a subject ("lot:<id>", "partner:<id>", "facility:<id>")."""

    subject: str
    index: int


Record = (
    Consortium
    | Partner
    | PartnerKey
    | Facility
    | Lot
    | EventRecord
    | DispatchRecord
    | TransformationRecord
    | AssayRecord
    | CertificationRecord
    | SubjectHead
)
