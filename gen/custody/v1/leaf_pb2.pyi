from custody.v1 import envelope_pb2 as _envelope_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LedgerLeaf(_message.Message):
    __slots__ = ("index", "integration_time_micros", "prev_chain_hash", "envelope", "subject_links", "signer_keys")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_TIME_MICROS_FIELD_NUMBER: _ClassVar[int]
    PREV_CHAIN_HASH_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_LINKS_FIELD_NUMBER: _ClassVar[int]
    SIGNER_KEYS_FIELD_NUMBER: _ClassVar[int]
    index: int
    integration_time_micros: int
    prev_chain_hash: bytes
    envelope: _envelope_pb2.Envelope
    subject_links: _containers.RepeatedCompositeFieldContainer[SubjectLink]
    signer_keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, index: _Optional[int] = ..., integration_time_micros: _Optional[int] = ..., prev_chain_hash: _Optional[bytes] = ..., envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., subject_links: _Optional[_Iterable[_Union[SubjectLink, _Mapping]]] = ..., signer_keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class SubjectLink(_message.Message):
    __slots__ = ("subject", "prev_index")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PREV_INDEX_FIELD_NUMBER: _ClassVar[int]
    subject: str
    prev_index: int
    def __init__(self, subject: _Optional[str] = ..., prev_index: _Optional[int] = ...) -> None: ...
