"""The consortium CA: files it writes, certificates that chain, and mutual TLS with gRPC."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from concurrent import futures
from pathlib import Path
from typing import TypeVar, cast

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from clients.cli.main import main
from clients.pki import (
    CertificateAuthority,
    IssuedCertificate,
    init_ca,
    issue_partner,
    issue_server,
    load_ca,
)
from clients.sdk import ClientTls
from ledger.errors import ConfigurationError, KeyFileError, UnauthenticatedError
from ledger.tls_identity import partner_from_certificate, partner_uri
from tests.services.rpc_support import health_check

CA_NAME = "Test consortium CA"
_Extension = TypeVar("_Extension", bound=x509.ExtensionType)


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return init_ca(tmp_path / "pki", CA_NAME)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _store(ca: CertificateAuthority) -> Store:
    return Store([x509.load_pem_x509_certificate(ca.certificate_path.read_bytes())])


def _verify_client(ca: CertificateAuthority, certificate_path: Path) -> list[x509.GeneralName]:
    """The SANs of a client certificate that chains to ``ca`` (VerificationError if not)."""
    verifier = PolicyBuilder().store(_store(ca)).build_client_verifier()
    leaf = x509.load_pem_x509_certificate(certificate_path.read_bytes())
    verified = verifier.verify(leaf, [])
    assert verified.subjects is not None
    return list(verified.subjects)


def _verify_server(
    ca: CertificateAuthority, certificate_path: Path, name: x509.DNSName | x509.IPAddress
) -> None:
    verifier = PolicyBuilder().store(_store(ca)).build_server_verifier(name)
    verifier.verify(x509.load_pem_x509_certificate(certificate_path.read_bytes()), [])


def _extension(certificate: x509.Certificate, kind: type[_Extension]) -> _Extension:
    return certificate.extensions.get_extension_for_class(kind).value


# --- the CA ----------------------------------------------------------------------------


def test_init_ca_writes_a_p256_ca_certificate_and_a_private_key(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "pki"
    ca = init_ca(directory, CA_NAME, days=30)
    assert ca.certificate_path == directory / "ca.pem"
    assert ca.key_path == directory / "ca-key.pem"
    assert _mode(ca.key_path) == 0o600
    assert _mode(directory) == 0o700
    certificate = x509.load_pem_x509_certificate(ca.certificate_path.read_bytes())
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CA_NAME
    assert certificate.issuer == certificate.subject
    assert isinstance(certificate.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(certificate.signature_hash_algorithm, hashes.SHA256)
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    usage = _extension(certificate, x509.KeyUsage)
    assert usage.key_cert_sign
    assert usage.crl_sign
    assert not usage.digital_signature
    assert _extension(certificate, x509.SubjectKeyIdentifier) == (
        x509.SubjectKeyIdentifier.from_public_key(ca.private_key.public_key())
    )
    certificate.verify_directly_issued_by(certificate)
    now = dt.datetime.now(dt.UTC)
    assert certificate.not_valid_before_utc < now - dt.timedelta(minutes=1)
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc == dt.timedelta(
        days=30
    )


def test_load_ca_reads_what_init_ca_wrote(ca: CertificateAuthority) -> None:
    loaded = load_ca(ca.certificate_path.parent)
    assert loaded.certificate == ca.certificate
    assert loaded.private_key.private_numbers() == ca.private_key.private_numbers()
    assert loaded.certificate_pem == ca.certificate_pem


def test_init_ca_refuses_to_overwrite_a_ca(ca: CertificateAuthority) -> None:
    certificate, key = ca.certificate_path.read_bytes(), ca.key_path.read_bytes()
    with pytest.raises(ConfigurationError, match="already exists"):
        init_ca(ca.certificate_path.parent, "Another CA")
    assert ca.certificate_path.read_bytes() == certificate
    assert ca.key_path.read_bytes() == key


def test_init_ca_refuses_when_only_the_key_file_exists(tmp_path: Path) -> None:
    (tmp_path / "ca-key.pem").write_bytes(b"someone's key")
    with pytest.raises(ConfigurationError, match=r"ca-key\.pem already exists"):
        init_ca(tmp_path, CA_NAME)
    assert not (tmp_path / "ca.pem").exists()
    assert (tmp_path / "ca-key.pem").read_bytes() == b"someone's key"


def test_load_ca_refuses_a_key_others_can_read(ca: CertificateAuthority) -> None:
    ca.key_path.chmod(0o644)
    with pytest.raises(KeyFileError, match="readable by others"):
        load_ca(ca.certificate_path.parent)


def test_load_ca_refuses_a_key_that_is_not_the_ca_key(tmp_path: Path) -> None:
    first = init_ca(tmp_path / "first", CA_NAME)
    second = init_ca(tmp_path / "second", CA_NAME)
    first.key_path.unlink()
    first.key_path.write_bytes(second.key_path.read_bytes())
    first.key_path.chmod(0o600)
    with pytest.raises(ConfigurationError, match="is not the key of the CA certificate"):
        load_ca(tmp_path / "first")


def test_load_ca_without_a_ca_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="custody pki init"):
        load_ca(tmp_path)


# --- partner certificates ---------------------------------------------------------------


def test_a_partner_certificate_names_the_partner_and_chains_to_the_ca(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    directory = tmp_path / "partners"
    issued = issue_partner(ca, directory, "mine-a")
    assert issued.certificate_path == directory / "mine-a.pem"
    assert issued.key_path == directory / "mine-a-key.pem"
    assert _mode(issued.key_path) == 0o600
    assert partner_from_certificate(issued.certificate_path.read_bytes()) == "mine-a"
    assert _verify_client(ca, issued.certificate_path) == [
        x509.UniformResourceIdentifier(partner_uri("mine-a"))
    ]
    certificate = issued.certificate
    assert certificate.subject.rfc4514_string() == "O=mine-a,CN=mine-a"
    assert list(_extension(certificate, x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not _extension(certificate, x509.BasicConstraints).ca
    assert _extension(certificate, x509.KeyUsage).digital_signature
    assert _extension(certificate, x509.AuthorityKeyIdentifier).key_identifier == (
        _extension(ca.certificate, x509.SubjectKeyIdentifier).digest
    )
    assert certificate.public_key() == issued.private_key.public_key()
    assert isinstance(certificate.signature_hash_algorithm, hashes.SHA256)


def test_certificates_get_random_serials_and_tolerate_clock_skew(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    first = issue_partner(ca, tmp_path, "mine-a", days=10)
    second = issue_partner(ca, tmp_path, "trader-b", days=10)
    assert first.certificate.serial_number != second.certificate.serial_number
    now = dt.datetime.now(dt.UTC)
    assert first.certificate.not_valid_before_utc < now - dt.timedelta(minutes=1)
    validity = first.certificate.not_valid_after_utc - first.certificate.not_valid_before_utc
    assert validity == dt.timedelta(days=10)


def test_no_certificate_outlives_the_ca(tmp_path: Path) -> None:
    ca = init_ca(tmp_path, CA_NAME, days=30)
    issued = issue_partner(ca, tmp_path, "mine-a", days=825)
    assert issued.certificate.not_valid_after_utc == ca.certificate.not_valid_after_utc


def test_a_partner_certificate_from_another_ca_does_not_verify(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    other = init_ca(tmp_path / "other", "Another CA")
    issued = issue_partner(other, tmp_path / "other", "mine-a")
    with pytest.raises(VerificationError):
        _verify_client(ca, issued.certificate_path)


def test_issue_partner_refuses_to_overwrite(ca: CertificateAuthority, tmp_path: Path) -> None:
    issued = issue_partner(ca, tmp_path, "mine-a")
    before = issued.certificate_path.read_bytes()
    with pytest.raises(ConfigurationError, match="already exists"):
        issue_partner(ca, tmp_path, "mine-a")
    assert issued.certificate_path.read_bytes() == before


@pytest.mark.parametrize("partner_id", ["Mine-A", "", "../mine-a", "-mine", "a" * 65])
def test_issue_partner_refuses_invalid_partner_ids(
    ca: CertificateAuthority, tmp_path: Path, partner_id: str
) -> None:
    with pytest.raises(ConfigurationError, match="invalid partner id"):
        issue_partner(ca, tmp_path / "out", partner_id)
    assert not (tmp_path / "out").exists()


# --- server certificates ----------------------------------------------------------------


def test_a_server_certificate_defaults_to_localhost_and_serves_only(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    issued = issue_server(ca, tmp_path, "node-1")
    assert issued.certificate_path == tmp_path / "node-1.pem"
    assert _mode(issued.key_path) == 0o600
    _verify_server(ca, issued.certificate_path, x509.DNSName("localhost"))
    _verify_server(ca, issued.certificate_path, x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    with pytest.raises(VerificationError):
        _verify_server(ca, issued.certificate_path, x509.DNSName("node.example.org"))
    assert list(_extension(issued.certificate, x509.ExtendedKeyUsage)) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    # A node's server certificate cannot act as a partner.
    with pytest.raises(UnauthenticatedError):
        partner_from_certificate(issued.certificate_pem)
    with pytest.raises(VerificationError):
        _verify_client(ca, issued.certificate_path)


def test_a_server_certificate_carries_the_names_given(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    issued = issue_server(
        ca, tmp_path, "node-1", dns_names=["node.example.org"], ip_addresses=["10.0.0.7", "::1"]
    )
    names = _extension(issued.certificate, x509.SubjectAlternativeName)
    assert names.get_values_for_type(x509.DNSName) == ["node.example.org"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.7"),
        ipaddress.ip_address("::1"),
    ]
    _verify_server(ca, issued.certificate_path, x509.DNSName("node.example.org"))


def test_issue_server_refuses_an_invalid_ip_address(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match="invalid IP address"):
        issue_server(ca, tmp_path, "node-1", ip_addresses=["localhost"])
    assert not (tmp_path / "node-1.pem").exists()


# --- the command line -------------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], *args: str, expect: int = 0) -> tuple[str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == expect, f"exit {code}, stdout: {out}\nstderr: {err}"
    return out, err


def test_cli_init_issue_and_issue_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--data-dir", str(tmp_path)]
    pki = tmp_path / "pki"
    out, _ = _run(capsys, *home, "pki", "init", "--name", CA_NAME, "--days", "100")
    assert f"CA certificate: {pki / 'ca.pem'}" in out
    assert f"CA private key: {pki / 'ca-key.pem'}" in out
    ca = load_ca(pki)
    assert ca.certificate.subject.rfc4514_string() == f"CN={CA_NAME}"

    out, _ = _run(capsys, *home, "pki", "issue", "mine-a", "--days", "7")
    assert f"certificate: {pki / 'mine-a.pem'}" in out
    assert f"private key: {pki / 'mine-a-key.pem'}" in out
    assert "identity: urn:custody:partner:mine-a" in out
    assert partner_from_certificate((pki / "mine-a.pem").read_bytes()) == "mine-a"
    assert _mode(pki / "mine-a-key.pem") == 0o600
    _verify_client(ca, pki / "mine-a.pem")

    out, _ = _run(
        capsys, *home, "pki", "issue-server", "node-1", "--dns", "node.example.org",
        "--dns", "localhost", "--ip", "127.0.0.1",
    )  # fmt: skip
    assert f"certificate: {pki / 'node-1.pem'}" in out
    assert "names: node.example.org, localhost, 127.0.0.1" in out
    _verify_server(ca, pki / "node-1.pem", x509.DNSName("node.example.org"))


def test_cli_takes_another_directory_and_reports_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--data-dir", str(tmp_path / "home")]
    elsewhere = tmp_path / "ca"
    _, err = _run(capsys, *home, "pki", "issue", "mine-a", "--dir", str(elsewhere), expect=1)
    assert "CONFIGURATION" in err
    assert "custody pki init" in err
    _run(capsys, *home, "pki", "init", "--dir", str(elsewhere))
    _, err = _run(capsys, *home, "pki", "init", "--dir", str(elsewhere), expect=1)
    assert "already exists" in err
    _, err = _run(capsys, *home, "pki", "issue", "Mine-A", "--dir", str(elsewhere), expect=1)
    assert "invalid partner id" in err
    out, _ = _run(capsys, *home, "pki", "issue-server", "node-1", "--dir", str(elsewhere))
    assert "names: localhost, 127.0.0.1" in out
    assert not (tmp_path / "home" / "pki").exists()


# --- mutual TLS with gRPC ---------------------------------------------------------------

_WHOAMI = "/custody.test.Identity/WhoAmI"


def _whoami(request: bytes, context: grpc.ServicerContext) -> bytes:
    """Echo the partner the TLS layer authenticated, as the node will read it."""
    # At run time each value is a list of bytes; the grpc stubs say bytes.
    (certificate,) = cast("list[bytes]", context.auth_context()["x509_pem_cert"])
    return partner_from_certificate(certificate).encode()


def _raw(message: bytes) -> bytes:
    return message


def test_mutual_tls_accepts_partners_of_the_ca_and_refuses_others(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    directory = ca.certificate_path.parent
    node = issue_server(ca, directory, "node-1")
    partner = issue_partner(ca, directory, "mine-a")
    other_ca = init_ca(tmp_path / "other", "Another CA")
    impostor = issue_partner(other_ca, tmp_path / "other", "mine-a")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "custody.test.Identity", {"WhoAmI": grpc.unary_unary_rpc_method_handler(_whoami)}
            )
        ]
    )
    port = server.add_secure_port(
        "127.0.0.1:0",
        grpc.ssl_server_credentials(
            [(node.private_key_pem, node.certificate_pem)],
            root_certificates=ca.certificate_pem,
            require_client_auth=True,
        ),
    )
    server.start()

    def credentials_of(identity: IssuedCertificate) -> grpc.ChannelCredentials:
        tls = ClientTls.from_files(
            ca.certificate_path, identity.certificate_path, identity.key_path
        )
        return tls.channel_credentials()

    try:
        # The client checks the server's IP SAN (127.0.0.1) against the address it dials.
        target = f"127.0.0.1:{port}"
        with grpc.secure_channel(target, credentials_of(partner)) as channel:
            response = health_check(channel)(health_pb2.HealthCheckRequest(), timeout=10)
            assert response.status == health_pb2.HealthCheckResponse.SERVING
            whoami = channel.unary_unary(
                _WHOAMI, request_serializer=_raw, response_deserializer=_raw
            )
            assert whoami(b"", timeout=10) == b"mine-a"
        # A partner of another CA, and a certificate of our CA not meant for clients.
        for refused_identity in (impostor, node):
            with grpc.secure_channel(target, credentials_of(refused_identity)) as channel:
                with pytest.raises(grpc.RpcError) as refused:
                    health_check(channel)(health_pb2.HealthCheckRequest(), timeout=10)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(grace=None)
