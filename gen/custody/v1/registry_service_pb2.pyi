from custody.v1 import governance_pb2 as _governance_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetRegistryRequest(_message.Message):
    __slots__ = ("tree_size",)
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    def __init__(self, tree_size: _Optional[int] = ...) -> None: ...

class GetRegistryResponse(_message.Message):
    __slots__ = ("tree_size", "consortium_name", "threshold", "admin_ids", "partners", "facilities")
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONSORTIUM_NAME_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ADMIN_IDS_FIELD_NUMBER: _ClassVar[int]
    PARTNERS_FIELD_NUMBER: _ClassVar[int]
    FACILITIES_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    consortium_name: str
    threshold: int
    admin_ids: _containers.RepeatedScalarFieldContainer[str]
    partners: _containers.RepeatedCompositeFieldContainer[PartnerRecord]
    facilities: _containers.RepeatedCompositeFieldContainer[FacilityRecord]
    def __init__(self, tree_size: _Optional[int] = ..., consortium_name: _Optional[str] = ..., threshold: _Optional[int] = ..., admin_ids: _Optional[_Iterable[str]] = ..., partners: _Optional[_Iterable[_Union[PartnerRecord, _Mapping]]] = ..., facilities: _Optional[_Iterable[_Union[FacilityRecord, _Mapping]]] = ...) -> None: ...

class PartnerRecord(_message.Message):
    __slots__ = ("partner_id", "legal_name", "country", "roles", "admitted_index", "updated_index", "keys")
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    LEGAL_NAME_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    ADMITTED_INDEX_FIELD_NUMBER: _ClassVar[int]
    UPDATED_INDEX_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    partner_id: str
    legal_name: str
    country: str
    roles: _containers.RepeatedScalarFieldContainer[_governance_pb2.Role]
    admitted_index: int
    updated_index: int
    keys: _containers.RepeatedCompositeFieldContainer[PartnerKeyRecord]
    def __init__(self, partner_id: _Optional[str] = ..., legal_name: _Optional[str] = ..., country: _Optional[str] = ..., roles: _Optional[_Iterable[_Union[_governance_pb2.Role, str]]] = ..., admitted_index: _Optional[int] = ..., updated_index: _Optional[int] = ..., keys: _Optional[_Iterable[_Union[PartnerKeyRecord, _Mapping]]] = ...) -> None: ...

class PartnerKeyRecord(_message.Message):
    __slots__ = ("keyid", "public_key", "added_index", "revoked_index")
    KEYID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    ADDED_INDEX_FIELD_NUMBER: _ClassVar[int]
    REVOKED_INDEX_FIELD_NUMBER: _ClassVar[int]
    keyid: str
    public_key: bytes
    added_index: int
    revoked_index: int
    def __init__(self, keyid: _Optional[str] = ..., public_key: _Optional[bytes] = ..., added_index: _Optional[int] = ..., revoked_index: _Optional[int] = ...) -> None: ...

class FacilityRecord(_message.Message):
    __slots__ = ("facility_id", "partner_id", "name", "type", "country", "latitude_e6", "longitude_e6", "rmi_smelter_id", "artisanal", "registered_index")
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_E6_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_E6_FIELD_NUMBER: _ClassVar[int]
    RMI_SMELTER_ID_FIELD_NUMBER: _ClassVar[int]
    ARTISANAL_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_INDEX_FIELD_NUMBER: _ClassVar[int]
    facility_id: str
    partner_id: str
    name: str
    type: _governance_pb2.FacilityType
    country: str
    latitude_e6: int
    longitude_e6: int
    rmi_smelter_id: str
    artisanal: bool
    registered_index: int
    def __init__(self, facility_id: _Optional[str] = ..., partner_id: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[_Union[_governance_pb2.FacilityType, str]] = ..., country: _Optional[str] = ..., latitude_e6: _Optional[int] = ..., longitude_e6: _Optional[int] = ..., rmi_smelter_id: _Optional[str] = ..., artisanal: _Optional[bool] = ..., registered_index: _Optional[int] = ...) -> None: ...

class GetPartnerRequest(_message.Message):
    __slots__ = ("partner_id", "tree_size")
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    partner_id: str
    tree_size: int
    def __init__(self, partner_id: _Optional[str] = ..., tree_size: _Optional[int] = ...) -> None: ...

class GetPartnerResponse(_message.Message):
    __slots__ = ("tree_size", "partner", "facilities")
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PARTNER_FIELD_NUMBER: _ClassVar[int]
    FACILITIES_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    partner: PartnerRecord
    facilities: _containers.RepeatedCompositeFieldContainer[FacilityRecord]
    def __init__(self, tree_size: _Optional[int] = ..., partner: _Optional[_Union[PartnerRecord, _Mapping]] = ..., facilities: _Optional[_Iterable[_Union[FacilityRecord, _Mapping]]] = ...) -> None: ...

class GetFacilityRequest(_message.Message):
    __slots__ = ("facility_id", "tree_size")
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    facility_id: str
    tree_size: int
    def __init__(self, facility_id: _Optional[str] = ..., tree_size: _Optional[int] = ...) -> None: ...

class GetFacilityResponse(_message.Message):
    __slots__ = ("tree_size", "facility")
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    FACILITY_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    facility: FacilityRecord
    def __init__(self, tree_size: _Optional[int] = ..., facility: _Optional[_Union[FacilityRecord, _Mapping]] = ...) -> None: ...
