"""The newest checkpoint a client verified, kept on disk so the log cannot roll back.

The file and its format are the CLI's (``clients.cli.verified_state``): one file
per log key under ``<state dir>/verified/``, written atomically, never moved
backwards, and a damaged file is an error rather than "no state". A client that
shares the CLI's data directory therefore shares its trusted head.
"""

from __future__ import annotations

import threading
from pathlib import Path

from clients.cli.verified_state import VerifiedState
from ledger.checkpoint import Checkpoint, SignedCheckpoint
from ledger.note import VerifierKey

_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    # One lock per state file in this process, however many clients use it.
    with _locks_guard:
        return _locks.setdefault(path.resolve(), threading.Lock())


class CheckpointState:
    """Compare-and-advance over ``VerifiedState``.

    A client checks a new checkpoint against the saved one (which may take a
    consistency proof from the node) and then advances only if the saved one is
    still the one it checked against; otherwise it checks again. So two calls
    racing with different views of the log can never both be accepted.
    """

    def __init__(self, directory: Path, log_key: VerifierKey) -> None:
        self._verified = VerifiedState(directory, log_key)
        self._lock = _lock_for(self._verified.path)

    def load(self) -> Checkpoint | None:
        with self._lock:
            return self._verified.load()

    def advance_from(self, expected: Checkpoint | None, signed: SignedCheckpoint) -> bool:
        """Save ``signed`` (never moving backwards) if the saved checkpoint is still
        ``expected``; False, changing nothing, if it moved meanwhile."""
        with self._lock:
            saved = self._verified.load()
            if saved != expected:
                return False
            self._verified.save(signed, saved)
            return True
