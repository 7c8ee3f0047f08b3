from custody.v1 import bundle_pb2 as _bundle_pb2
from custody.v1 import event_pb2 as _event_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LotState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOT_STATE_UNSPECIFIED: _ClassVar[LotState]
    LOT_STATE_HELD: _ClassVar[LotState]
    LOT_STATE_IN_TRANSIT: _ClassVar[LotState]
    LOT_STATE_CONSUMED: _ClassVar[LotState]
    LOT_STATE_VOIDED: _ClassVar[LotState]

class LotOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOT_ORIGIN_UNSPECIFIED: _ClassVar[LotOrigin]
    LOT_ORIGIN_EXTRACTION: _ClassVar[LotOrigin]
    LOT_ORIGIN_RECOVERY: _ClassVar[LotOrigin]
    LOT_ORIGIN_TRANSFORMATION: _ClassVar[LotOrigin]
LOT_STATE_UNSPECIFIED: LotState
LOT_STATE_HELD: LotState
LOT_STATE_IN_TRANSIT: LotState
LOT_STATE_CONSUMED: LotState
LOT_STATE_VOIDED: LotState
LOT_ORIGIN_UNSPECIFIED: LotOrigin
LOT_ORIGIN_EXTRACTION: LotOrigin
LOT_ORIGIN_RECOVERY: LotOrigin
LOT_ORIGIN_TRANSFORMATION: LotOrigin

class GetLotRequest(_message.Message):
    __slots__ = ("lot_id",)
    LOT_ID_FIELD_NUMBER: _ClassVar[int]
    lot_id: str
    def __init__(self, lot_id: _Optional[str] = ...) -> None: ...

class GetLotResponse(_message.Message):
    __slots__ = ("tree_size", "lot", "history", "history_truncated")
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    LOT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    HISTORY_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    lot: LotRecord
    history: _containers.RepeatedScalarFieldContainer[int]
    history_truncated: bool
    def __init__(self, tree_size: _Optional[int] = ..., lot: _Optional[_Union[LotRecord, _Mapping]] = ..., history: _Optional[_Iterable[int]] = ..., history_truncated: _Optional[bool] = ...) -> None: ...

class LotRecord(_message.Message):
    __slots__ = ("lot_id", "material", "mass_grams", "contents", "holder_id", "available_grams", "state", "dispatch_event_id", "origin", "created_event_id", "created_index", "facility_id", "scrap_origin")
    LOT_ID_FIELD_NUMBER: _ClassVar[int]
    MATERIAL_FIELD_NUMBER: _ClassVar[int]
    MASS_GRAMS_FIELD_NUMBER: _ClassVar[int]
    CONTENTS_FIELD_NUMBER: _ClassVar[int]
    HOLDER_ID_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_GRAMS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    CREATED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_INDEX_FIELD_NUMBER: _ClassVar[int]
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    SCRAP_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    lot_id: str
    material: str
    mass_grams: int
    contents: _containers.RepeatedCompositeFieldContainer[_event_pb2.ElementContent]
    holder_id: str
    available_grams: int
    state: LotState
    dispatch_event_id: str
    origin: LotOrigin
    created_event_id: str
    created_index: int
    facility_id: str
    scrap_origin: _event_pb2.ScrapOrigin
    def __init__(self, lot_id: _Optional[str] = ..., material: _Optional[str] = ..., mass_grams: _Optional[int] = ..., contents: _Optional[_Iterable[_Union[_event_pb2.ElementContent, _Mapping]]] = ..., holder_id: _Optional[str] = ..., available_grams: _Optional[int] = ..., state: _Optional[_Union[LotState, str]] = ..., dispatch_event_id: _Optional[str] = ..., origin: _Optional[_Union[LotOrigin, str]] = ..., created_event_id: _Optional[str] = ..., created_index: _Optional[int] = ..., facility_id: _Optional[str] = ..., scrap_origin: _Optional[_Union[_event_pb2.ScrapOrigin, str]] = ...) -> None: ...

class TraceRequest(_message.Message):
    __slots__ = ("lot_id",)
    LOT_ID_FIELD_NUMBER: _ClassVar[int]
    lot_id: str
    def __init__(self, lot_id: _Optional[str] = ...) -> None: ...

class TraceResponse(_message.Message):
    __slots__ = ("bundle", "composition")
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    COMPOSITION_FIELD_NUMBER: _ClassVar[int]
    bundle: _bundle_pb2.ProvenanceBundle
    composition: _containers.RepeatedCompositeFieldContainer[ElementOrigins]
    def __init__(self, bundle: _Optional[_Union[_bundle_pb2.ProvenanceBundle, _Mapping]] = ..., composition: _Optional[_Iterable[_Union[ElementOrigins, _Mapping]]] = ...) -> None: ...

class ElementOrigins(_message.Message):
    __slots__ = ("element", "total_micrograms", "origins")
    ELEMENT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MICROGRAMS_FIELD_NUMBER: _ClassVar[int]
    ORIGINS_FIELD_NUMBER: _ClassVar[int]
    element: str
    total_micrograms: str
    origins: _containers.RepeatedCompositeFieldContainer[OriginShare]
    def __init__(self, element: _Optional[str] = ..., total_micrograms: _Optional[str] = ..., origins: _Optional[_Iterable[_Union[OriginShare, _Mapping]]] = ...) -> None: ...

class OriginShare(_message.Message):
    __slots__ = ("key", "facility_id", "partner_id", "country", "artisanal", "lot_ids", "micrograms", "share_ppm")
    KEY_FIELD_NUMBER: _ClassVar[int]
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    ARTISANAL_FIELD_NUMBER: _ClassVar[int]
    LOT_IDS_FIELD_NUMBER: _ClassVar[int]
    MICROGRAMS_FIELD_NUMBER: _ClassVar[int]
    SHARE_PPM_FIELD_NUMBER: _ClassVar[int]
    key: str
    facility_id: str
    partner_id: str
    country: str
    artisanal: bool
    lot_ids: _containers.RepeatedScalarFieldContainer[str]
    micrograms: str
    share_ppm: int
    def __init__(self, key: _Optional[str] = ..., facility_id: _Optional[str] = ..., partner_id: _Optional[str] = ..., country: _Optional[str] = ..., artisanal: _Optional[bool] = ..., lot_ids: _Optional[_Iterable[str]] = ..., micrograms: _Optional[str] = ..., share_ppm: _Optional[int] = ...) -> None: ...
