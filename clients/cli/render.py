"""JSON renderings of log objects for the CLI (base64 standard alphabet, padded)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from ledger.leaf import Leaf
from ledger.records import StoredLeaf


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def micros_to_iso(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC).isoformat(timespec="microseconds")


def entry_json(stored: StoredLeaf, leaf: Leaf) -> dict[str, Any]:
    return {
        "index": stored.index,
        "leaf": b64(stored.leaf_bytes),
        "leaf_hash": b64(stored.leaf_hash),
        "chain_hash": b64(stored.chain_hash),
        "prev_chain_hash": b64(leaf.prev_chain_hash),
        "entry_digest": b64(stored.entry_digest),
        "integration_time_micros": leaf.integration_time_micros,
        "integration_time": micros_to_iso(leaf.integration_time_micros),
        "envelope": leaf.envelope.to_json(),
        "signer_keys": [b64(key) for key in leaf.signer_keys],
        "subject_links": [
            {"subject": link.subject, "prev_index": link.prev_index} for link in leaf.subject_links
        ],
    }
