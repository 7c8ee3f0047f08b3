from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_MINE: _ClassVar[Role]
    ROLE_TRADER: _ClassVar[Role]
    ROLE_PROCESSOR: _ClassVar[Role]
    ROLE_MANUFACTURER: _ClassVar[Role]
    ROLE_RECYCLER: _ClassVar[Role]
    ROLE_LAB: _ClassVar[Role]
    ROLE_AUDITOR: _ClassVar[Role]
    ROLE_ADMIN: _ClassVar[Role]

class FacilityType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FACILITY_TYPE_UNSPECIFIED: _ClassVar[FacilityType]
    FACILITY_TYPE_MINE_SITE: _ClassVar[FacilityType]
    FACILITY_TYPE_SMELTER: _ClassVar[FacilityType]
    FACILITY_TYPE_REFINERY: _ClassVar[FacilityType]
    FACILITY_TYPE_PLANT: _ClassVar[FacilityType]
    FACILITY_TYPE_RECYCLING_SITE: _ClassVar[FacilityType]
    FACILITY_TYPE_WAREHOUSE: _ClassVar[FacilityType]
    FACILITY_TYPE_LABORATORY: _ClassVar[FacilityType]
ROLE_UNSPECIFIED: Role
ROLE_MINE: Role
ROLE_TRADER: Role
ROLE_PROCESSOR: Role
ROLE_MANUFACTURER: Role
ROLE_RECYCLER: Role
ROLE_LAB: Role
ROLE_AUDITOR: Role
ROLE_ADMIN: Role
FACILITY_TYPE_UNSPECIFIED: FacilityType
FACILITY_TYPE_MINE_SITE: FacilityType
FACILITY_TYPE_SMELTER: FacilityType
FACILITY_TYPE_REFINERY: FacilityType
FACILITY_TYPE_PLANT: FacilityType
FACILITY_TYPE_RECYCLING_SITE: FacilityType
FACILITY_TYPE_WAREHOUSE: FacilityType
FACILITY_TYPE_LABORATORY: FacilityType

class Governance(_message.Message):
    __slots__ = ("action_id", "genesis", "partner_admission", "role_change", "key_addition", "key_revocation", "facility_registration", "policy")
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    GENESIS_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ADMISSION_FIELD_NUMBER: _ClassVar[int]
    ROLE_CHANGE_FIELD_NUMBER: _ClassVar[int]
    KEY_ADDITION_FIELD_NUMBER: _ClassVar[int]
    KEY_REVOCATION_FIELD_NUMBER: _ClassVar[int]
    FACILITY_REGISTRATION_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    action_id: str
    genesis: Genesis
    partner_admission: PartnerAdmission
    role_change: RoleChange
    key_addition: KeyAddition
    key_revocation: KeyRevocation
    facility_registration: FacilityRegistration
    policy: Policy
    def __init__(self, action_id: _Optional[str] = ..., genesis: _Optional[_Union[Genesis, _Mapping]] = ..., partner_admission: _Optional[_Union[PartnerAdmission, _Mapping]] = ..., role_change: _Optional[_Union[RoleChange, _Mapping]] = ..., key_addition: _Optional[_Union[KeyAddition, _Mapping]] = ..., key_revocation: _Optional[_Union[KeyRevocation, _Mapping]] = ..., facility_registration: _Optional[_Union[FacilityRegistration, _Mapping]] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...

class PartnerSpec(_message.Message):
    __slots__ = ("partner_id", "legal_name", "country", "roles", "public_keys")
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    LEGAL_NAME_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEYS_FIELD_NUMBER: _ClassVar[int]
    partner_id: str
    legal_name: str
    country: str
    roles: _containers.RepeatedScalarFieldContainer[Role]
    public_keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, partner_id: _Optional[str] = ..., legal_name: _Optional[str] = ..., country: _Optional[str] = ..., roles: _Optional[_Iterable[_Union[Role, str]]] = ..., public_keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Genesis(_message.Message):
    __slots__ = ("consortium", "administrators", "threshold")
    CONSORTIUM_FIELD_NUMBER: _ClassVar[int]
    ADMINISTRATORS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    consortium: str
    administrators: _containers.RepeatedCompositeFieldContainer[PartnerSpec]
    threshold: int
    def __init__(self, consortium: _Optional[str] = ..., administrators: _Optional[_Iterable[_Union[PartnerSpec, _Mapping]]] = ..., threshold: _Optional[int] = ...) -> None: ...

class PartnerAdmission(_message.Message):
    __slots__ = ("partner",)
    PARTNER_FIELD_NUMBER: _ClassVar[int]
    partner: PartnerSpec
    def __init__(self, partner: _Optional[_Union[PartnerSpec, _Mapping]] = ...) -> None: ...

class RoleChange(_message.Message):
    __slots__ = ("partner_id", "roles")
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    partner_id: str
    roles: _containers.RepeatedScalarFieldContainer[Role]
    def __init__(self, partner_id: _Optional[str] = ..., roles: _Optional[_Iterable[_Union[Role, str]]] = ...) -> None: ...

class KeyAddition(_message.Message):
    __slots__ = ("partner_id", "public_key")
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    partner_id: str
    public_key: bytes
    def __init__(self, partner_id: _Optional[str] = ..., public_key: _Optional[bytes] = ...) -> None: ...

class KeyRevocation(_message.Message):
    __slots__ = ("partner_id", "keyid", "reason")
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    KEYID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    partner_id: str
    keyid: str
    reason: str
    def __init__(self, partner_id: _Optional[str] = ..., keyid: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class FacilityRegistration(_message.Message):
    __slots__ = ("facility_id", "partner_id", "name", "type", "country", "latitude_e6", "longitude_e6", "rmi_smelter_id", "artisanal")
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_E6_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_E6_FIELD_NUMBER: _ClassVar[int]
    RMI_SMELTER_ID_FIELD_NUMBER: _ClassVar[int]
    ARTISANAL_FIELD_NUMBER: _ClassVar[int]
    facility_id: str
    partner_id: str
    name: str
    type: FacilityType
    country: str
    latitude_e6: int
    longitude_e6: int
    rmi_smelter_id: str
    artisanal: bool
    def __init__(self, facility_id: _Optional[str] = ..., partner_id: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[_Union[FacilityType, str]] = ..., country: _Optional[str] = ..., latitude_e6: _Optional[int] = ..., longitude_e6: _Optional[int] = ..., rmi_smelter_id: _Optional[str] = ..., artisanal: _Optional[bool] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("threshold",)
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    threshold: int
    def __init__(self, threshold: _Optional[int] = ...) -> None: ...
