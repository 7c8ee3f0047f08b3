"""Rows as storage hands them to the pure code (no SQL types leak past here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LogInfo:
    origin: str
    verifier_key: str
    created_micros: int


@dataclass(frozen=True, slots=True)
class StoredLeaf:
    index: int
    entry_digest: bytes
    leaf_hash: bytes
    chain_hash: bytes
    leaf_bytes: bytes


@dataclass(frozen=True, slots=True)
class StoredNode:
    level: int
    index: int
    hash: bytes


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    tree_size: int
    root_hash: bytes
    note: bytes
    signed_micros: int
