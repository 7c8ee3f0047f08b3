"""Events and governance actions written as JSON, turned into signed payload bytes.

The JSON is protobuf's JSON mapping of ``custody.v1.Event`` or
``custody.v1.Governance``, wrapped in an object that says which:
``{"event": {...}}`` or ``{"governance": {...}}``. A file holds one such
object, a JSON array of them, or one per line (JSON Lines). Unknown fields
are refused, so a typo never silently drops data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from google.protobuf import json_format
from google.protobuf.message import Message

from custody.v1 import event_pb2, governance_pb2
from ledger.domain.records import EVENT_PAYLOAD_TYPE, GOVERNANCE_PAYLOAD_TYPE
from ledger.errors import MalformedError

_KINDS: dict[str, tuple[str, type[Message]]] = {
    "event": (EVENT_PAYLOAD_TYPE, event_pb2.Event),
    "governance": (GOVERNANCE_PAYLOAD_TYPE, governance_pb2.Governance),
}


@dataclass(frozen=True, slots=True)
class PayloadDraft:
    """One entry to sign: its payload type and serialised payload."""

    payload_type: str
    payload: bytes
    label: str  # "entries.json #3 event ev-001", for messages


def parse_entries(text: str, source: str = "input") -> list[PayloadDraft]:
    """Every entry in ``text``; raise ``MalformedError`` naming the first bad one."""
    items = _json_items(text, source)
    if not items:
        raise MalformedError(f"{source} holds no entries")
    return [_draft(item, f"{source} #{number}") for number, item in enumerate(items, 1)]


def _json_items(text: str, source: str) -> list[object]:
    stripped = text.strip()
    if not stripped:
        return []
    try:
        whole = json.loads(stripped)
    except json.JSONDecodeError as document_error:
        return _json_lines(text, source, document_error)
    return whole if isinstance(whole, list) else [whole]


def _json_lines(text: str, source: str, document_error: json.JSONDecodeError) -> list[object]:
    """One JSON value per line; if the first line is no JSON, the file was one broken document."""
    items: list[object] = []
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    for position, (number, line) in enumerate(lines):
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if position == 0:
                # Positions in the stripped document; count the blank lines stripped before it.
                skipped = text[: len(text) - len(text.lstrip())].count("\n")
                raise MalformedError(
                    f"{source} is not JSON: {document_error.msg} at line "
                    f"{document_error.lineno + skipped} column {document_error.colno}"
                ) from document_error
            raise MalformedError(f"{source} line {number} is not JSON: {exc.msg}") from exc
    return items


def _draft(item: object, where: str) -> PayloadDraft:
    if not isinstance(item, dict) or len(item) != 1 or next(iter(item)) not in _KINDS:
        raise MalformedError(f'{where} must be {{"event": {{...}}}} or {{"governance": {{...}}}}')
    ((kind, body),) = item.items()
    if not isinstance(body, dict):
        raise MalformedError(f'{where}: the value of "{kind}" must be a JSON object')
    payload_type, message_class = _KINDS[kind]
    message = message_class()
    try:
        json_format.ParseDict(body, message)
    except json_format.ParseError as exc:
        # protobuf appends the list of known fields on further lines; one line is enough.
        reason = str(exc).splitlines()[0].rstrip(".")
        raise MalformedError(f"{where} is not a valid custody.v1 {kind}: {reason}") from exc
    ident = getattr(message, "event_id", "") or getattr(message, "action_id", "")
    label = f"{where} {kind} {ident}".rstrip()
    # Serialised once, here; the signature covers exactly these bytes.
    return PayloadDraft(payload_type, message.SerializeToString(), label)


def entry_to_json(payload_type: str, payload: bytes) -> dict[str, object] | None:
    """A logged payload in the same JSON form, or None for a type this version does not know."""
    for kind, (known_type, message_class) in _KINDS.items():
        if payload_type == known_type:
            message = message_class()
            try:
                message.ParseFromString(payload)
            except Exception:
                return None
            return {kind: json_format.MessageToDict(message)}
    return None
