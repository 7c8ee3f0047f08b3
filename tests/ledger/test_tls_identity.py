"""The partner a verified TLS client certificate names, and the certificates refused."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ledger.errors import UnauthenticatedError
from ledger.tls_identity import PARTNER_URI_PREFIX, partner_from_certificate, partner_uri

_KEY = ec.generate_private_key(ec.SECP256R1())
_CLIENT_AUTH = (ExtendedKeyUsageOID.CLIENT_AUTH,)


def _certificate(
    alt_names: Sequence[x509.GeneralName],
    usages: Sequence[x509.ObjectIdentifier] | None = _CLIENT_AUTH,
) -> bytes:
    """A self-signed PEM certificate with the given SANs and EKU (None: no EKU at all)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mine-a")])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    certificate = builder.sign(_KEY, hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.PEM)


def _uri(value: str) -> x509.UniformResourceIdentifier:
    return x509.UniformResourceIdentifier(value)


def test_partner_uri_is_the_prefix_and_the_id() -> None:
    assert partner_uri("mine-a") == "urn:custody:partner:mine-a"
    assert partner_uri("mine-a").startswith(PARTNER_URI_PREFIX)


def test_the_partner_uri_san_names_the_partner() -> None:
    assert partner_from_certificate(_certificate([_uri(partner_uri("mine-a"))])) == "mine-a"


def test_other_names_beside_the_partner_uri_are_ignored() -> None:
    pem = _certificate(
        [
            x509.DNSName("mine-a.example.org"),
            _uri("https://mine-a.example.org/"),
            _uri(partner_uri("smelter.b_1")),
        ],
        usages=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
    )
    assert partner_from_certificate(pem) == "smelter.b_1"


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        pytest.param(b"not a certificate", "not a PEM X.509", id="garbage"),
        pytest.param(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "not a PEM X.509",
            id="bad-der",
        ),
        pytest.param(_certificate([]), "names no partner", id="no-san"),
        pytest.param(
            _certificate([x509.DNSName("mine-a"), _uri("urn:custody:lot:mine-a")]),
            "names no partner",
            id="no-partner-uri",
        ),
        pytest.param(
            _certificate([_uri(partner_uri("mine-a")), _uri(partner_uri("trader-b"))]),
            "names 2 partners",
            id="two-partners",
        ),
        pytest.param(
            _certificate([_uri(partner_uri("mine-a")), _uri(partner_uri("mine-a"))]),
            "names 2 partners",
            id="same-partner-twice",
        ),
        pytest.param(_certificate([_uri(partner_uri("Mine-A"))]), "invalid partner id", id="case"),
        pytest.param(_certificate([_uri(partner_uri(""))]), "invalid partner id", id="empty"),
        pytest.param(
            _certificate([_uri(partner_uri("a" * 65))]), "invalid partner id", id="too-long"
        ),
        pytest.param(
            _certificate([_uri(partner_uri("mine-a/x"))]), "invalid partner id", id="slash"
        ),
        pytest.param(
            _certificate([_uri(partner_uri("mine-a"))], usages=(ExtendedKeyUsageOID.SERVER_AUTH,)),
            "client authentication",
            id="server-certificate",
        ),
        pytest.param(
            _certificate([_uri(partner_uri("mine-a"))], usages=None), "no extended key", id="no-eku"
        ),
    ],
)
def test_certificates_that_name_no_single_valid_partner_are_refused(
    pem: bytes, message: str
) -> None:
    with pytest.raises(UnauthenticatedError, match=message) as caught:
        partner_from_certificate(pem)
    assert caught.value.reason == "UNAUTHENTICATED"
