"""Who is calling: the partner named by a verified TLS client certificate.

The node runs mutual TLS: the TLS layer has already checked the client's
certificate chain against the consortium CA before anything here runs. This
module only reads the identity out of that certificate, and refuses any
certificate that does not name exactly one partner in the agreed form (a URI
subjectAltName ``urn:custody:partner:<id>``) for client use. The subject's
common name is deliberately ignored: it is free text that CAs fill in
inconsistently, while a URI SAN is typed, and a certificate carrying two
partner URIs would let one certificate act as two partners.

Whether the partner is admitted in the ledger's registry, and with which roles,
is a separate question the node answers from the log.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from ledger.domain.payloads import PARTNER_ID_PATTERN
from ledger.errors import UnauthenticatedError

PARTNER_URI_PREFIX = "urn:custody:partner:"


def partner_uri(partner_id: str) -> str:
    """The URI subjectAltName that names ``partner_id`` in its TLS certificate."""
    return PARTNER_URI_PREFIX + partner_id


def partner_from_certificate(pem: bytes) -> str:
    """The partner id named by a verified client certificate (PEM).

    Raises UnauthenticatedError unless the certificate parses, allows client
    authentication (EKU clientAuth: a server certificate must not act as a
    partner) and carries exactly one well-formed partner URI SAN.
    """
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except (ValueError, TypeError) as exc:
        raise UnauthenticatedError("the client certificate is not a PEM X.509 certificate") from exc
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise UnauthenticatedError(
            "the client certificate has no extended key usage; a partner certificate needs "
            "clientAuth"
        ) from None
    except (ValueError, x509.DuplicateExtension) as exc:
        raise UnauthenticatedError(
            f"the client certificate's extensions are invalid: {exc}"
        ) from exc
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise UnauthenticatedError(
            "the client certificate does not allow client authentication (EKU clientAuth)"
        )
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        # No SAN at all (recent cryptography refuses to build an empty one to stand in).
        san_uris: list[str] = []
    else:
        san_uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    uris = [uri for uri in san_uris if uri.startswith(PARTNER_URI_PREFIX)]
    if not uris:
        raise UnauthenticatedError(
            f"the client certificate names no partner (no {PARTNER_URI_PREFIX}<id> URI SAN)"
        )
    if len(uris) > 1:
        raise UnauthenticatedError(
            f"the client certificate names {len(uris)} partners; it must name exactly one"
        )
    partner_id = uris[0].removeprefix(PARTNER_URI_PREFIX)
    if not PARTNER_ID_PATTERN.fullmatch(partner_id):
        raise UnauthenticatedError(
            f"the client certificate names an invalid partner id {partner_id!r}: 1 to 64 of "
            "lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    return partner_id
