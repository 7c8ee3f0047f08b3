"""A small consortium CA for the node's mutual TLS (development and small deployments).

The gRPC node authenticates partners by their TLS client certificates: a
certificate signed by the consortium CA that carries the URI subjectAltName
``urn:custody:partner:<id>`` and EKU clientAuth (see ``ledger.tls_identity``
and docs/pki.md). This module creates that CA, and partner and server
certificates under it, as PEM files in one directory.

Keys are ECDSA P-256 with SHA-256 signatures: every TLS stack the partners use
(gRPC's BoringSSL, OpenSSL, Node.js, Go) supports them. Private keys are
unencrypted PKCS#8 PEM, created 0600 and never overwritten; a consortium with
an existing CA should issue certificates with the same profile from it instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ledger.domain.payloads import PARTNER_ID_PATTERN
from ledger.errors import ConfigurationError, KeyFileError
from ledger.keys import fsync_dir, make_private_dirs, read_private_file
from ledger.tls_identity import partner_uri

CA_CERTIFICATE_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
DEFAULT_CA_DAYS = 3650
DEFAULT_LEAF_DAYS = 90
DEFAULT_SERVER_DNS_NAMES = ("localhost",)
DEFAULT_SERVER_IP_ADDRESSES = ("127.0.0.1",)

# Certificates start a little in the past so that a peer whose clock runs behind
# does not reject a certificate issued a moment ago.
_CLOCK_SKEW = dt.timedelta(minutes=5)
_KEY_FILE_MODE = 0o600


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """The consortium CA: its certificate and signing key, and where they are stored."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    certificate_path: Path
    key_path: Path

    @property
    def certificate_pem(self) -> bytes:
        """The CA certificate as PEM: the bundle nodes and clients trust."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A certificate issued by the CA, its private key, and where they are stored."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    certificate_path: Path
    key_path: Path

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def private_key_pem(self) -> bytes:
        return _private_key_pem(self.private_key)


def init_ca(directory: Path, name: str, *, days: int = DEFAULT_CA_DAYS) -> CertificateAuthority:
    """Create a CA named ``name`` in ``directory`` (``ca.pem``, ``ca-key.pem``).

    The CA may sign end-entity certificates only (path length 0): there are no
    intermediate CAs to keep track of. Existing files are never overwritten.
    """
    if not name.strip():
        raise ConfigurationError("the CA needs a name")
    _check_days(days)
    certificate_path, key_path = directory / CA_CERTIFICATE_FILE, directory / CA_KEY_FILE
    _refuse_existing(certificate_path, key_path)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    not_before = _now() - _CLOCK_SKEW
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_pair(certificate_path, certificate, key_path, key)
    return CertificateAuthority(certificate, key, certificate_path, key_path)


def load_ca(directory: Path) -> CertificateAuthority:
    """Read the CA that ``init_ca`` wrote in ``directory``."""
    certificate_path, key_path = directory / CA_CERTIFICATE_FILE, directory / CA_KEY_FILE
    certificate = _load_certificate(certificate_path)
    key = _load_private_key(key_path)
    if key.public_key() != certificate.public_key():
        raise ConfigurationError(
            f"{key_path} is not the key of the CA certificate {certificate_path}"
        )
    return CertificateAuthority(certificate, key, certificate_path, key_path)


def issue_partner(
    ca: CertificateAuthority, directory: Path, partner_id: str, *, days: int = DEFAULT_LEAF_DAYS
) -> IssuedCertificate:
    """A partner's TLS client certificate and key (``<id>.pem``, ``<id>-key.pem``).

    The identity is the URI SAN ``urn:custody:partner:<id>``; EKU clientAuth only,
    so the certificate cannot serve as a node's server certificate.
    """
    _check_name(partner_id, "partner id")
    return _issue(
        ca,
        directory,
        partner_id,
        subject=x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, partner_id),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, partner_id),
            ]
        ),
        alt_names=[x509.UniformResourceIdentifier(partner_uri(partner_id))],
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        days=days,
    )


def issue_server(
    ca: CertificateAuthority,
    directory: Path,
    name: str,
    *,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    days: int = DEFAULT_LEAF_DAYS,
) -> IssuedCertificate:
    """A node's TLS server certificate and key (``<name>.pem``, ``<name>-key.pem``).

    Clients check the address they dial against the DNS and IP SANs; with none
    given the certificate is for ``localhost`` and ``127.0.0.1``. EKU serverAuth
    only: a node that calls another node authenticates with a partner certificate.
    """
    _check_name(name, "server name")
    if not dns_names and not ip_addresses:
        dns_names, ip_addresses = DEFAULT_SERVER_DNS_NAMES, DEFAULT_SERVER_IP_ADDRESSES
    alt_names: list[x509.GeneralName] = []
    for dns_name in dns_names:
        try:
            alt_names.append(x509.DNSName(dns_name))
        except ValueError as exc:
            raise ConfigurationError(f"invalid DNS name {dns_name!r}: {exc}") from exc
    for address in ip_addresses:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError as exc:
            raise ConfigurationError(f"invalid IP address {address!r}") from exc
    return _issue(
        ca,
        directory,
        name,
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]),
        alt_names=alt_names,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        days=days,
    )


# --- issuing -------------------------------------------------------------------------


def _issue(
    ca: CertificateAuthority,
    directory: Path,
    file_stem: str,
    *,
    subject: x509.Name,
    alt_names: Sequence[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    days: int,
) -> IssuedCertificate:
    _check_days(days)
    certificate_path, key_path = directory / f"{file_stem}.pem", directory / f"{file_stem}-key.pem"
    _refuse_existing(certificate_path, key_path)
    now = _now()
    ca_expiry = ca.certificate.not_valid_after_utc
    if ca_expiry <= now:
        raise ConfigurationError(f"the CA certificate {ca.certificate_path} expired on {ca_expiry}")
    not_before = now - _CLOCK_SKEW
    # A certificate cannot be trusted longer than the CA that signed it.
    not_after = min(not_before + dt.timedelta(days=days), ca_expiry)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(key_cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_identifier(ca), critical=False)
        .sign(ca.private_key, hashes.SHA256())
    )
    _write_pair(certificate_path, certificate, key_path, key)
    return IssuedCertificate(certificate, key, certificate_path, key_path)


def _authority_key_identifier(ca: CertificateAuthority) -> x509.AuthorityKeyIdentifier:
    # Chain builders match the leaf's AKI to the CA's SKI; a CA from elsewhere may lack one.
    try:
        key_id = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(key_id.value)


def _key_usage(*, key_cert_sign: bool) -> x509.KeyUsage:
    """A CA signs certificates (and CRLs); an end entity only signs TLS handshakes."""
    return x509.KeyUsage(
        digital_signature=not key_cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _check_name(value: str, what: str) -> None:
    # The same rule as partner ids in the ledger; it also keeps the name safe as a file name.
    if not PARTNER_ID_PATTERN.fullmatch(value):
        raise ConfigurationError(
            f"invalid {what} {value!r}: 1 to 64 of lowercase letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )


def _check_days(days: int) -> None:
    if days < 1:
        raise ConfigurationError(f"a certificate must be valid for at least one day, not {days}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


# --- files ---------------------------------------------------------------------------


def _refuse_existing(*paths: Path) -> None:
    for path in paths:
        if path.exists() or path.is_symlink():
            raise ConfigurationError(f"{path} already exists; refusing to overwrite it")


def _write_pair(
    certificate_path: Path,
    certificate: x509.Certificate,
    key_path: Path,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    """Write the key then the certificate; on failure leave neither behind."""
    make_private_dirs(certificate_path.parent)
    _write_new(key_path, _private_key_pem(key), _KEY_FILE_MODE)
    try:
        _write_new(certificate_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    except BaseException:
        key_path.unlink(missing_ok=True)
        raise


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never replace a file, even one created since _refuse_existing looked.
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    except FileExistsError:
        raise ConfigurationError(f"{path} already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it; make it exact
        with os.fdopen(fd, "wb") as handle:
            fd = -1
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        fsync_dir(path.parent)
    except BaseException as exc:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        if isinstance(exc, OSError):
            raise ConfigurationError(f"cannot write {path}: {exc.strerror}") from exc
        raise


def _private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def _load_certificate(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(f"no CA certificate at {path}: run `custody pki init`") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise ConfigurationError(f"{path} is not a PEM certificate") from exc


def _load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Read a key file, refusing one others can read, as ``ledger.keys`` does."""
    data = read_private_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"key file {path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyFileError(f"key file {path} holds a {type(key).__name__}, not an ECDSA key")
    return key
