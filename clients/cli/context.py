"""Where the CLI finds its database and keys."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.errors import ConfigurationError, KeyFileError, LogNotInitialisedError
from ledger.keys import LOG_KEY_PASSPHRASE_ENV, load_private_key, passphrase_from_env
from ledger.note import NoteSigner, VerifierKey
from ledger.storage import LogStore, default_url

LOG_KEY_FILE = "log-key.pem"
VKEY_FILE = "log.vkey"
KEY_PASSPHRASE_ENV = "CUSTODY_KEY_PASSPHRASE"  # noqa: S105 (a variable name)


def default_data_dir() -> Path:
    """``$CUSTODY_HOME``, else ``$XDG_DATA_HOME/custody``, else ``~/.local/share/custody``."""
    if home := os.environ.get("CUSTODY_HOME"):
        return Path(home)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "custody"


def load_key(path: Path, passphrase_env: str = KEY_PASSPHRASE_ENV) -> Ed25519PrivateKey:
    return load_private_key(path, passphrase_from_env(passphrase_env))


@dataclass
class CliContext:
    """Resolved global options, with the store opened on first use."""

    data_dir: Path
    db_url: str | None
    _store: LogStore | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return self.db_url or default_url(self.data_dir)

    @property
    def log_key_path(self) -> Path:
        return self.data_dir / LOG_KEY_FILE

    def store(self, *, migrate: bool = False) -> LogStore:
        """The store; only ``init`` and ``db upgrade`` may change the schema."""
        if self._store is None:
            self._store = LogStore.open(self.url, migrate=migrate)
        return self._store

    def log_store(self) -> LogStore:
        """The store, which must already hold a log (LogNotInitialisedError otherwise)."""
        store = self.store()
        store.info()
        return store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def log_signer(self, key_path: Path | None = None) -> NoteSigner:
        path = key_path or self.log_key_path
        try:
            key = load_key(path, LOG_KEY_PASSPHRASE_ENV)
        except KeyFileError as exc:
            raise KeyFileError(
                f"the log's signing key is needed to append: {exc} (pass --log-key)"
            ) from exc
        info = self.store().info()
        return NoteSigner(info.origin, key)

    @property
    def vkey_path(self) -> Path:
        return self.data_dir / VKEY_FILE

    def trusted_log_key(self, vkey: str | None) -> VerifierKey:
        """The key to check the log against: given (text or file), else the one `init` saved."""
        if vkey is not None:
            return VerifierKey.parse(read_text_file(Path(vkey)) if Path(vkey).is_file() else vkey)
        if not self.vkey_path.exists():
            raise LogNotInitialisedError(
                f"no verifier key at {self.vkey_path}: pass the log's verifier key with --vkey"
            )
        return VerifierKey.parse(read_text_file(self.vkey_path))


def read_text_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
