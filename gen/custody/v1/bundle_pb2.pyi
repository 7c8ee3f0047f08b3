from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProvenanceBundle(_message.Message):
    __slots__ = ("version", "lot_id", "checkpoint", "entries")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LOT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    version: int
    lot_id: str
    checkpoint: bytes
    entries: _containers.RepeatedCompositeFieldContainer[BundleEntry]
    def __init__(self, version: _Optional[int] = ..., lot_id: _Optional[str] = ..., checkpoint: _Optional[bytes] = ..., entries: _Optional[_Iterable[_Union[BundleEntry, _Mapping]]] = ...) -> None: ...

class BundleEntry(_message.Message):
    __slots__ = ("index", "leaf", "inclusion_path")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    LEAF_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PATH_FIELD_NUMBER: _ClassVar[int]
    index: int
    leaf: bytes
    inclusion_path: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, index: _Optional[int] = ..., leaf: _Optional[bytes] = ..., inclusion_path: _Optional[_Iterable[bytes]] = ...) -> None: ...
