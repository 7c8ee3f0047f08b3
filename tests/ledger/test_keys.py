"""Ed25519 keys and private key files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ledger.errors import KeyFileError, MalformedKeyError
from ledger.keys import (
    generate_private_key,
    load_private_key,
    private_key_from_seed,
    public_key_bytes,
    public_key_from_bytes,
    save_private_key,
)

# RFC 8032 section 7.1, TEST 1.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIG_EMPTY = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_seed_known_answer() -> None:
    key = private_key_from_seed(RFC8032_SEED)
    assert public_key_bytes(key) == RFC8032_PUBLIC
    assert public_key_bytes(key.public_key()) == RFC8032_PUBLIC
    assert key.sign(b"") == RFC8032_SIG_EMPTY
    public_key_from_bytes(RFC8032_PUBLIC).verify(RFC8032_SIG_EMPTY, b"")


@pytest.mark.parametrize("seed", [b"", b"\x00" * 31, b"\x00" * 33, b"\x00" * 64])
def test_seed_must_be_32_bytes(seed: bytes) -> None:
    with pytest.raises(MalformedKeyError):
        private_key_from_seed(seed)


@pytest.mark.parametrize("raw", [b"", b"\x00" * 31, b"\x00" * 33])
def test_public_key_must_be_32_bytes(raw: bytes) -> None:
    with pytest.raises(MalformedKeyError):
        public_key_from_bytes(raw)


def test_generated_keys_differ() -> None:
    assert public_key_bytes(generate_private_key()) != public_key_bytes(generate_private_key())
    assert len(public_key_bytes(generate_private_key())) == 32


def test_save_load_unencrypted(tmp_path: Path) -> None:
    key = generate_private_key()
    path = tmp_path / "log.pem"
    save_private_key(key, path)
    assert _mode(path) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_key_bytes(load_private_key(path)) == public_key_bytes(key)


def test_mode_is_exact_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        save_private_key(generate_private_key(), tmp_path / "k.pem")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "k.pem") == 0o600


def test_parent_directories_created_private(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    path = tmp_path / "a" / "b" / "key.pem"
    save_private_key(generate_private_key(), path)
    assert _mode(tmp_path / "a") == 0o700
    assert _mode(tmp_path / "a" / "b") == 0o700
    assert _mode(tmp_path) == 0o755  # an existing directory is left alone


def test_passphrase_round_trip(tmp_path: Path) -> None:
    key = generate_private_key()
    path = tmp_path / "enc.pem"
    save_private_key(key, path, b"correct horse")
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    assert public_key_bytes(load_private_key(path, b"correct horse")) == public_key_bytes(key)


def test_wrong_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "enc.pem"
    save_private_key(generate_private_key(), path, b"correct horse")
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_private_key(path, b"battery staple")


def test_missing_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "enc.pem"
    save_private_key(generate_private_key(), path, b"correct horse")
    with pytest.raises(KeyFileError, match="passphrase is required"):
        load_private_key(path)


def test_passphrase_for_unencrypted_key_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.pem"
    save_private_key(generate_private_key(), path)
    with pytest.raises(KeyFileError, match="not encrypted"):
        load_private_key(path, b"secret")


def test_empty_passphrase_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError):
        save_private_key(generate_private_key(), tmp_path / "k.pem", b"")
    assert not (tmp_path / "k.pem").exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o601])
def test_readable_by_others_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k.pem"
    save_private_key(generate_private_key(), path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_private_key(path)


def test_owner_only_modes_accepted(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    save_private_key(generate_private_key(), path)
    path.chmod(0o400)
    load_private_key(path)


def test_overwrite_protection(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    first, second = generate_private_key(), generate_private_key()
    save_private_key(first, path)
    with pytest.raises(KeyFileError, match="already exists"):
        save_private_key(second, path)
    assert public_key_bytes(load_private_key(path)) == public_key_bytes(first)

    save_private_key(second, path, overwrite=True)
    assert public_key_bytes(load_private_key(path)) == public_key_bytes(second)
    assert _mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pem"]  # no temporary left


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        load_private_key(tmp_path / "nope.pem")


def test_directory_is_not_a_key_file(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir(mode=0o700)
    with pytest.raises(KeyFileError):
        load_private_key(tmp_path / "dir")
    with pytest.raises(KeyFileError):
        save_private_key(generate_private_key(), tmp_path / "dir")


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def test_not_pem(tmp_path: Path) -> None:
    path = tmp_path / "k.der"
    key = generate_private_key()
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(path, der)
    with pytest.raises(KeyFileError, match="not PEM"):
        load_private_key(path)


def test_corrupt_pem(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    _write_private(path, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyFileError, match="not a valid PEM"):
        load_private_key(path)


def test_non_ed25519_pem_refused(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(path, pem)
    with pytest.raises(KeyFileError, match="not an Ed25519 key"):
        load_private_key(path)
