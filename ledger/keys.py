"""Ed25519 keys: generation, raw encodings and private key files.

Key files are PKCS#8 PEM, optionally encrypted, created 0600 and refused on load
when group or others can read them, as ssh does.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.errors import ConfigurationError, KeyFileError, MalformedKeyError

LOG_KEY_PASSPHRASE_ENV = "CUSTODY_LOG_KEY_PASSPHRASE"  # noqa: S105 (a variable name)
"""Where the log's encrypted signing key takes its passphrase from (CLI and node alike)."""

_SEED_SIZE = 32
_PUBLIC_KEY_SIZE = 32
_FILE_MODE = 0o600
_DIR_MODE = 0o700
_ENCRYPTED_MARKERS = (b"-----BEGIN ENCRYPTED PRIVATE KEY-----", b"Proc-Type: 4,ENCRYPTED")


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_from_seed(seed: bytes) -> Ed25519PrivateKey:
    """The key whose RFC 8032 32-byte seed is ``seed`` (used by test vectors)."""
    if not isinstance(seed, bytes) or len(seed) != _SEED_SIZE:
        raise MalformedKeyError("an Ed25519 seed is 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes_raw()


def public_key_from_bytes(raw: bytes) -> Ed25519PublicKey:
    if not isinstance(raw, bytes) or len(raw) != _PUBLIC_KEY_SIZE:
        raise MalformedKeyError("an Ed25519 public key is 32 bytes")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise MalformedKeyError(f"invalid Ed25519 public key: {exc}") from exc


def save_private_key(
    key: Ed25519PrivateKey,
    path: Path,
    passphrase: bytes | None = None,
    *,
    overwrite: bool = False,
) -> None:
    """Write ``key`` as PKCS#8 PEM, encrypted if a passphrase is given, mode 0600.

    The file never exists with wider permissions, not even for a moment: it is
    created 0600 with O_EXCL, and when overwriting it is written beside the
    target and renamed over it, so a crash leaves the old key or the new one.
    """
    if passphrase is not None and not passphrase:
        raise KeyFileError("empty passphrase; pass None for an unencrypted key file")
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase is not None
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=encryption,
    )
    make_private_dirs(path.parent)
    if not overwrite:
        try:
            _write_new(path, pem)
            # Make the new directory entry durable too: losing a log key loses the log.
            fsync_dir(path.parent)
        except FileExistsError:
            raise KeyFileError(f"key file {path} already exists; refusing to overwrite") from None
        except OSError as exc:
            raise KeyFileError(f"cannot write key file {path}: {exc.strerror}") from exc
        return
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        _write_new(tmp, pem)
        tmp.replace(path)
        fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise KeyFileError(f"cannot write key file {path}: {exc.strerror}") from exc


def load_private_key(path: Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """Read an Ed25519 PKCS#8 PEM key file, refusing files others can read."""
    data = read_private_file(path)
    if not data.lstrip().startswith(b"-----BEGIN "):
        raise KeyFileError(f"key file {path} is not PEM")
    encrypted = any(marker in data for marker in _ENCRYPTED_MARKERS)
    if encrypted and passphrase is None:
        raise KeyFileError(f"key file {path} is encrypted; a passphrase is required")
    if not encrypted and passphrase is not None:
        # Refuse rather than ignore: the caller believes the key is protected and it is not.
        raise KeyFileError(f"key file {path} is not encrypted but a passphrase was given")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except UnsupportedAlgorithm as exc:
        raise KeyFileError(f"key file {path} holds an unsupported key type") from exc
    except (ValueError, TypeError) as exc:
        if encrypted:
            raise KeyFileError(f"wrong passphrase for key file {path} (or it is corrupt)") from exc
        raise KeyFileError(f"key file {path} is not a valid PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"key file {path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def passphrase_from_env(variable: str) -> bytes | None:
    """A key file's passphrase from the environment variable ``variable`` (None if unset
    or empty), for the CLI and the node alike."""
    value = os.environ.get(variable)
    return value.encode() if value else None


def read_pem_file(path: Path, what: str) -> bytes:
    """A certificate, CA bundle or TLS key file's bytes; a file that cannot be read is a
    configuration error naming ``what`` it should hold."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the {what} {path}: {exc}") from exc


def read_private_file(path: Path) -> bytes:
    """The bytes of a private key file: a regular file no one else may read (checked on
    the open file, not the path). ``KeyFileError`` otherwise."""
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang us before the S_ISREG check.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    except OSError as exc:
        raise KeyFileError(f"cannot open key file {path}: {exc.strerror}") from exc
    try:
        # fstat the open file, not the path, so the checked file is the one read.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"key file {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise KeyFileError(
                f"key file {path} has permissions {mode:04o}, readable by others; "
                f"run: chmod 600 {path}"
            )
        with os.fdopen(fd, "rb") as handle:
            fd = -1
            return handle.read()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc
    finally:
        if fd >= 0:
            os.close(fd)


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, _FILE_MODE)
    try:
        # The umask can only narrow 0600; fchmod makes the mode exact.
        os.fchmod(fd, _FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
    os.close(fd)


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parent, each 0700; existing ones are left as
    they are."""
    # Path.mkdir(parents=True) gives intermediate directories the default mode; create
    # each missing one ourselves so every directory we create is 0700.
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for created in reversed(missing):
        try:
            created.mkdir(mode=_DIR_MODE)
        except FileExistsError:
            continue  # created concurrently; it is not ours to chmod
        except OSError as exc:
            raise KeyFileError(f"cannot create directory {created}: {exc.strerror}") from exc
        created.chmod(_DIR_MODE)


def fsync_dir(directory: Path) -> None:
    """Make a file created or renamed in ``directory`` durable (where supported)."""
    # Makes the rename durable; not every platform or filesystem supports it.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
