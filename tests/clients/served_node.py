"""A node serving the sample consortium's ledger in this process, for client tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ledger.keys import load_private_key
from ledger.note import NoteSigner, VerifierKey
from ledger.storage.database import sqlite_url
from tests.services.node_support import (
    ORIGIN,
    Ledger,
    NodeThread,
    Pki,
    make_ledger,
    node_config,
    running_node,
)


@dataclass(frozen=True)
class ServedNode:
    thread: NodeThread
    ledger: Ledger
    pki: Pki
    log_signer: NoteSigner

    @property
    def address(self) -> str:
        return self.thread.address

    @property
    def log_key(self) -> VerifierKey:
        return self.log_signer.verifier_key()


N = TypeVar("N", bound=ServedNode)


@contextmanager
def serve_sample_ledger(kind: type[N], directory: Path, pki: Pki) -> Iterator[N]:
    """A new ledger of the sample history in ``directory``, served with ``pki``."""
    ledger = make_ledger(directory, sqlite_url(directory / "custody.db"))
    signer = NoteSigner(ORIGIN, load_private_key(ledger.log_key))
    with running_node(node_config(ledger, pki)) as thread:
        yield kind(thread, ledger, pki, signer)
