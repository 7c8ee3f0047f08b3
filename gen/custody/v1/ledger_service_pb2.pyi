from custody.v1 import envelope_pb2 as _envelope_pb2
from custody.v1 import log_pb2 as _log_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AppendRequest(_message.Message):
    __slots__ = ("envelope", "public_keys")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEYS_FIELD_NUMBER: _ClassVar[int]
    envelope: _envelope_pb2.Envelope
    public_keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., public_keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class AppendResponse(_message.Message):
    __slots__ = ("receipt",)
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    receipt: _log_pb2.AppendReceipt
    def __init__(self, receipt: _Optional[_Union[_log_pb2.AppendReceipt, _Mapping]] = ...) -> None: ...

class AppendStreamRequest(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[StreamEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[StreamEntry, _Mapping]]] = ...) -> None: ...

class StreamEntry(_message.Message):
    __slots__ = ("sequence", "envelope", "public_keys")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEYS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    envelope: _envelope_pb2.Envelope
    public_keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, sequence: _Optional[int] = ..., envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., public_keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class AppendStreamResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[StreamOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[StreamOutcome, _Mapping]]] = ...) -> None: ...

class StreamOutcome(_message.Message):
    __slots__ = ("sequence", "receipt", "refusal")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    receipt: _log_pb2.AppendReceipt
    refusal: AppendRefusal
    def __init__(self, sequence: _Optional[int] = ..., receipt: _Optional[_Union[_log_pb2.AppendReceipt, _Mapping]] = ..., refusal: _Optional[_Union[AppendRefusal, _Mapping]] = ...) -> None: ...

class AppendRefusal(_message.Message):
    __slots__ = ("code", "reason", "message", "original_receipt")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_RECEIPT_FIELD_NUMBER: _ClassVar[int]
    code: int
    reason: str
    message: str
    original_receipt: _log_pb2.AppendReceipt
    def __init__(self, code: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., original_receipt: _Optional[_Union[_log_pb2.AppendReceipt, _Mapping]] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ("tree_size",)
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    def __init__(self, tree_size: _Optional[int] = ...) -> None: ...

class GetCheckpointResponse(_message.Message):
    __slots__ = ("checkpoint",)
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    checkpoint: bytes
    def __init__(self, checkpoint: _Optional[bytes] = ...) -> None: ...

class GetEntryRequest(_message.Message):
    __slots__ = ("index",)
    INDEX_FIELD_NUMBER: _ClassVar[int]
    index: int
    def __init__(self, index: _Optional[int] = ...) -> None: ...

class GetEntryResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: _log_pb2.Entry
    def __init__(self, entry: _Optional[_Union[_log_pb2.Entry, _Mapping]] = ...) -> None: ...

class GetEntriesRequest(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class GetEntriesResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[_log_pb2.Entry]
    def __init__(self, entries: _Optional[_Iterable[_Union[_log_pb2.Entry, _Mapping]]] = ...) -> None: ...

class GetInclusionProofRequest(_message.Message):
    __slots__ = ("index", "tree_size")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    index: int
    tree_size: int
    def __init__(self, index: _Optional[int] = ..., tree_size: _Optional[int] = ...) -> None: ...

class GetInclusionProofResponse(_message.Message):
    __slots__ = ("proof", "checkpoint")
    PROOF_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    proof: _log_pb2.InclusionProof
    checkpoint: bytes
    def __init__(self, proof: _Optional[_Union[_log_pb2.InclusionProof, _Mapping]] = ..., checkpoint: _Optional[bytes] = ...) -> None: ...

class GetConsistencyProofRequest(_message.Message):
    __slots__ = ("old_size", "new_size")
    OLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    NEW_SIZE_FIELD_NUMBER: _ClassVar[int]
    old_size: int
    new_size: int
    def __init__(self, old_size: _Optional[int] = ..., new_size: _Optional[int] = ...) -> None: ...

class GetConsistencyProofResponse(_message.Message):
    __slots__ = ("proof", "checkpoint")
    PROOF_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    proof: _log_pb2.ConsistencyProof
    checkpoint: bytes
    def __init__(self, proof: _Optional[_Union[_log_pb2.ConsistencyProof, _Mapping]] = ..., checkpoint: _Optional[bytes] = ...) -> None: ...

class FollowRequest(_message.Message):
    __slots__ = ("start_index",)
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    start_index: int
    def __init__(self, start_index: _Optional[int] = ...) -> None: ...

class FollowResponse(_message.Message):
    __slots__ = ("entries", "checkpoint", "last_entry_proof")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    LAST_ENTRY_PROOF_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[_log_pb2.Entry]
    checkpoint: bytes
    last_entry_proof: _log_pb2.InclusionProof
    def __init__(self, entries: _Optional[_Iterable[_Union[_log_pb2.Entry, _Mapping]]] = ..., checkpoint: _Optional[bytes] = ..., last_entry_proof: _Optional[_Union[_log_pb2.InclusionProof, _Mapping]] = ...) -> None: ...
