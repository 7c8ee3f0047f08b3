"""Whether a parsed protobuf message carried fields its schema does not know.

Signed or proven bytes with fields this version ignores would mean something
to their author that the checks here never saw, so strict decoders refuse them.
"""

from __future__ import annotations

from google.protobuf.message import Message


def has_unknown_fields(message: Message) -> bool:
    """True if ``message`` or any message inside it kept unknown fields when parsed.

    All in the C extension: an encoded unknown field always has a size, so
    discarding them shrinks the message exactly when there were some.
    """
    stripped = type(message)()
    stripped.CopyFrom(message)
    stripped.DiscardUnknownFields()
    return stripped.ByteSize() != message.ByteSize()
