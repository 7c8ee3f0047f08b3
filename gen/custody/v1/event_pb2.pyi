import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScrapOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCRAP_ORIGIN_UNSPECIFIED: _ClassVar[ScrapOrigin]
    SCRAP_ORIGIN_PRE_CONSUMER: _ClassVar[ScrapOrigin]
    SCRAP_ORIGIN_POST_CONSUMER: _ClassVar[ScrapOrigin]

class Process(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROCESS_UNSPECIFIED: _ClassVar[Process]
    PROCESS_SPLIT: _ClassVar[Process]
    PROCESS_BLEND: _ClassVar[Process]
    PROCESS_CONCENTRATION: _ClassVar[Process]
    PROCESS_SMELTING: _ClassVar[Process]
    PROCESS_REFINING: _ClassVar[Process]
    PROCESS_PRECURSOR_SYNTHESIS: _ClassVar[Process]
    PROCESS_CATHODE_PRODUCTION: _ClassVar[Process]
    PROCESS_CELL_MANUFACTURE: _ClassVar[Process]
    PROCESS_RECYCLING: _ClassVar[Process]

class CertificationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CERTIFICATION_STATUS_UNSPECIFIED: _ClassVar[CertificationStatus]
    CERTIFICATION_STATUS_CONFORMANT: _ClassVar[CertificationStatus]
    CERTIFICATION_STATUS_ACTIVE: _ClassVar[CertificationStatus]
    CERTIFICATION_STATUS_SUSPENDED: _ClassVar[CertificationStatus]
    CERTIFICATION_STATUS_WITHDRAWN: _ClassVar[CertificationStatus]

class CorrectionAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CORRECTION_ACTION_UNSPECIFIED: _ClassVar[CorrectionAction]
    CORRECTION_ACTION_VOID: _ClassVar[CorrectionAction]
    CORRECTION_ACTION_SUPERSEDE: _ClassVar[CorrectionAction]
SCRAP_ORIGIN_UNSPECIFIED: ScrapOrigin
SCRAP_ORIGIN_PRE_CONSUMER: ScrapOrigin
SCRAP_ORIGIN_POST_CONSUMER: ScrapOrigin
PROCESS_UNSPECIFIED: Process
PROCESS_SPLIT: Process
PROCESS_BLEND: Process
PROCESS_CONCENTRATION: Process
PROCESS_SMELTING: Process
PROCESS_REFINING: Process
PROCESS_PRECURSOR_SYNTHESIS: Process
PROCESS_CATHODE_PRODUCTION: Process
PROCESS_CELL_MANUFACTURE: Process
PROCESS_RECYCLING: Process
CERTIFICATION_STATUS_UNSPECIFIED: CertificationStatus
CERTIFICATION_STATUS_CONFORMANT: CertificationStatus
CERTIFICATION_STATUS_ACTIVE: CertificationStatus
CERTIFICATION_STATUS_SUSPENDED: CertificationStatus
CERTIFICATION_STATUS_WITHDRAWN: CertificationStatus
CORRECTION_ACTION_UNSPECIFIED: CorrectionAction
CORRECTION_ACTION_VOID: CorrectionAction
CORRECTION_ACTION_SUPERSEDE: CorrectionAction

class Event(_message.Message):
    __slots__ = ("event_id", "event_time", "partner_id", "evidence", "extraction", "recovery", "dispatch", "receipt", "transformation", "assay", "certification", "correction")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    EXTRACTION_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    TRANSFORMATION_FIELD_NUMBER: _ClassVar[int]
    ASSAY_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATION_FIELD_NUMBER: _ClassVar[int]
    CORRECTION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    event_time: _timestamp_pb2.Timestamp
    partner_id: str
    evidence: _containers.RepeatedCompositeFieldContainer[EvidenceRef]
    extraction: Extraction
    recovery: Recovery
    dispatch: Dispatch
    receipt: Receipt
    transformation: Transformation
    assay: Assay
    certification: Certification
    correction: Correction
    def __init__(self, event_id: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., partner_id: _Optional[str] = ..., evidence: _Optional[_Iterable[_Union[EvidenceRef, _Mapping]]] = ..., extraction: _Optional[_Union[Extraction, _Mapping]] = ..., recovery: _Optional[_Union[Recovery, _Mapping]] = ..., dispatch: _Optional[_Union[Dispatch, _Mapping]] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ..., transformation: _Optional[_Union[Transformation, _Mapping]] = ..., assay: _Optional[_Union[Assay, _Mapping]] = ..., certification: _Optional[_Union[Certification, _Mapping]] = ..., correction: _Optional[_Union[Correction, _Mapping]] = ...) -> None: ...

class EvidenceRef(_message.Message):
    __slots__ = ("uri", "sha256", "kind")
    URI_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    uri: str
    sha256: bytes
    kind: str
    def __init__(self, uri: _Optional[str] = ..., sha256: _Optional[bytes] = ..., kind: _Optional[str] = ...) -> None: ...

class ElementContent(_message.Message):
    __slots__ = ("element", "ppm")
    ELEMENT_FIELD_NUMBER: _ClassVar[int]
    PPM_FIELD_NUMBER: _ClassVar[int]
    element: str
    ppm: int
    def __init__(self, element: _Optional[str] = ..., ppm: _Optional[int] = ...) -> None: ...

class Extraction(_message.Message):
    __slots__ = ("facility_id", "lot_id", "material", "mass_grams", "contents")
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    LOT_ID_FIELD_NUMBER: _ClassVar[int]
    MATERIAL_FIELD_NUMBER: _ClassVar[int]
    MASS_GRAMS_FIELD_NUMBER: _ClassVar[int]
    CONTENTS_FIELD_NUMBER: _ClassVar[int]
    facility_id: str
    lot_id: str
    material: str
    mass_grams: int
    contents: _containers.RepeatedCompositeFieldContainer[ElementContent]
    def __init__(self, facility_id: _Optional[str] = ..., lot_id: _Optional[str] = ..., material: _Optional[str] = ..., mass_grams: _Optional[int] = ..., contents: _Optional[_Iterable[_Union[ElementContent, _Mapping]]] = ...) -> None: ...

class Recovery(_message.Message):
    __slots__ = ("facility_id", "lot_id", "material", "mass_grams", "contents", "scrap_origin")
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    LOT_ID_FIELD_NUMBER: _ClassVar[int]
    MATERIAL_FIELD_NUMBER: _ClassVar[int]
    MASS_GRAMS_FIELD_NUMBER: _ClassVar[int]
    CONTENTS_FIELD_NUMBER: _ClassVar[int]
    SCRAP_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    facility_id: str
    lot_id: str
    material: str
    mass_grams: int
    contents: _containers.RepeatedCompositeFieldContainer[ElementContent]
    scrap_origin: ScrapOrigin
    def __init__(self, facility_id: _Optional[str] = ..., lot_id: _Optional[str] = ..., material: _Optional[str] = ..., mass_grams: _Optional[int] = ..., contents: _Optional[_Iterable[_Union[ElementContent, _Mapping]]] = ..., scrap_origin: _Optional[_Union[ScrapOrigin, str]] = ...) -> None: ...

class Dispatch(_message.Message):
    __slots__ = ("lot_id", "to_partner_id", "mass_grams", "from_facility_id", "to_facility_id", "transport")
    LOT_ID_FIELD_NUMBER: _ClassVar[int]
    TO_PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    MASS_GRAMS_FIELD_NUMBER: _ClassVar[int]
    FROM_FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    TO_FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    lot_id: str
    to_partner_id: str
    mass_grams: int
    from_facility_id: str
    to_facility_id: str
    transport: str
    def __init__(self, lot_id: _Optional[str] = ..., to_partner_id: _Optional[str] = ..., mass_grams: _Optional[int] = ..., from_facility_id: _Optional[str] = ..., to_facility_id: _Optional[str] = ..., transport: _Optional[str] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("dispatch_event_id", "lot_id", "received_mass_grams", "facility_id")
    DISPATCH_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    LOT_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_MASS_GRAMS_FIELD_NUMBER: _ClassVar[int]
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    dispatch_event_id: str
    lot_id: str
    received_mass_grams: int
    facility_id: str
    def __init__(self, dispatch_event_id: _Optional[str] = ..., lot_id: _Optional[str] = ..., received_mass_grams: _Optional[int] = ..., facility_id: _Optional[str] = ...) -> None: ...

class Transformation(_message.Message):
    __slots__ = ("facility_id", "process", "inputs", "outputs")
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    PROCESS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    facility_id: str
    process: Process
    inputs: _containers.RepeatedCompositeFieldContainer[TransformationInput]
    outputs: _containers.RepeatedCompositeFieldContainer[TransformationOutput]
    def __init__(self, facility_id: _Optional[str] = ..., process: _Optional[_Union[Process, str]] = ..., inputs: _Optional[_Iterable[_Union[TransformationInput, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[TransformationOutput, _Mapping]]] = ...) -> None: ...

class TransformationInput(_message.Message):
    __slots__ = ("lot_id", "consumed_mass_grams")
    LOT_ID_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_MASS_GRAMS_FIELD_NUMBER: _ClassVar[int]
    lot_id: str
    consumed_mass_grams: int
    def __init__(self, lot_id: _Optional[str] = ..., consumed_mass_grams: _Optional[int] = ...) -> None: ...

class TransformationOutput(_message.Message):
    __slots__ = ("lot_id", "material", "mass_grams", "contents")
    LOT_ID_FIELD_NUMBER: _ClassVar[int]
    MATERIAL_FIELD_NUMBER: _ClassVar[int]
    MASS_GRAMS_FIELD_NUMBER: _ClassVar[int]
    CONTENTS_FIELD_NUMBER: _ClassVar[int]
    lot_id: str
    material: str
    mass_grams: int
    contents: _containers.RepeatedCompositeFieldContainer[ElementContent]
    def __init__(self, lot_id: _Optional[str] = ..., material: _Optional[str] = ..., mass_grams: _Optional[int] = ..., contents: _Optional[_Iterable[_Union[ElementContent, _Mapping]]] = ...) -> None: ...

class Assay(_message.Message):
    __slots__ = ("lot_id", "contents", "method", "sample_id")
    LOT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENTS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    lot_id: str
    contents: _containers.RepeatedCompositeFieldContainer[ElementContent]
    method: str
    sample_id: str
    def __init__(self, lot_id: _Optional[str] = ..., contents: _Optional[_Iterable[_Union[ElementContent, _Mapping]]] = ..., method: _Optional[str] = ..., sample_id: _Optional[str] = ...) -> None: ...

class Certification(_message.Message):
    __slots__ = ("scheme", "facility_id", "metals", "status", "valid_from", "valid_until")
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    METALS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    scheme: str
    facility_id: str
    metals: _containers.RepeatedScalarFieldContainer[str]
    status: CertificationStatus
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    def __init__(self, scheme: _Optional[str] = ..., facility_id: _Optional[str] = ..., metals: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[CertificationStatus, str]] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Correction(_message.Message):
    __slots__ = ("target_event_id", "action", "replacement_event_id", "reason")
    TARGET_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REPLACEMENT_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    target_event_id: str
    action: CorrectionAction
    replacement_event_id: str
    reason: str
    def __init__(self, target_event_id: _Optional[str] = ..., action: _Optional[_Union[CorrectionAction, str]] = ..., replacement_event_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
