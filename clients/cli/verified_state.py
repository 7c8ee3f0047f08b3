"""The newest checkpoint this client has verified for a log, kept to refuse rollback.

Like the Go checksum database client: once a checkpoint has been verified, any
later view of the log must contain it. The state only moves forward, is
written atomically, and a damaged state file is an error, never "no state".
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from ledger.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint
from ledger.errors import ConfigurationError, CustodyError
from ledger.keys import fsync_dir
from ledger.note import VerifierKey


class VerifiedState:
    """One file per log key under ``<data dir>/verified/``."""

    def __init__(self, data_dir: Path, log_key: VerifierKey) -> None:
        self.log_key = log_key
        # Named by the key, not the origin: a new key for the same origin is another log.
        digest = hashlib.sha256(str(log_key).encode()).hexdigest()
        self.path = data_dir / "verified" / f"{digest}.checkpoint"

    def load(self) -> Checkpoint | None:
        """The saved checkpoint, None if there is none yet."""
        if not self.path.exists():
            return None
        return read_checkpoint(self.path, self.log_key)

    def trusted(self, checkpoint_files: Sequence[Path]) -> list[Checkpoint]:
        """What a log is held to: each ``--checkpoint`` file's checkpoint, then the one
        saved here (if any)."""
        trusted = [read_checkpoint(path, self.log_key) for path in checkpoint_files]
        saved = self.load()
        if saved is not None:
            trusted.append(saved)
        return trusted

    def advance(self, note: bytes) -> None:
        """Save ``note`` (verified by the caller) unless the saved state is already newer
        or is this very checkpoint (nothing to write)."""
        self.save(open_checkpoint(note, self.log_key), self.load())

    def save(self, signed: SignedCheckpoint, saved: Checkpoint | None) -> None:
        """Write ``signed`` over ``saved`` (what the file holds now, just loaded by the
        caller) unless ``saved`` is newer or is this very checkpoint."""
        checkpoint = signed.checkpoint
        if saved is not None and (saved.size > checkpoint.size or saved == checkpoint):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(temporary, "wb") as handle:
                handle.write(signed.raw)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
            fsync_dir(self.path.parent)  # the rename must survive a crash too
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            message = f"cannot save the verified checkpoint {self.path}: {exc}"
            raise ConfigurationError(message) from exc


def read_checkpoint(path: Path, log_key: VerifierKey) -> Checkpoint:
    """A checkpoint note from a file, signed by ``log_key``; any problem names the file."""
    try:
        data = path.read_bytes()
        return open_checkpoint(data, log_key).checkpoint
    except OSError as exc:
        raise ConfigurationError(f"cannot read checkpoint file {path}: {exc}") from exc
    except CustodyError as exc:
        raise ConfigurationError(
            f"{path} does not hold a checkpoint signed by {log_key.name}: {exc}"
        ) from exc
