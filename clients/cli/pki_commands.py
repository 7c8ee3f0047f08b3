"""``custody pki``: the consortium CA for the node's mutual TLS (docs/pki.md)."""

from __future__ import annotations

from pathlib import Path

import click
from cryptography import x509

from clients.cli.context import CliContext
from clients.cli.options import pass_cli
from clients.pki import (
    DEFAULT_CA_DAYS,
    DEFAULT_LEAF_DAYS,
    IssuedCertificate,
    init_ca,
    issue_partner,
    issue_server,
    load_ca,
)
from ledger.tls_identity import partner_uri

DEFAULT_CA_NAME = "Custody consortium CA"

dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of the CA and the certificates (default: pki/ in the data directory).",
)
leaf_days_option = click.option(
    "--days",
    type=click.IntRange(min=1),
    default=DEFAULT_LEAF_DAYS,
    show_default=True,
    help="Validity in days (never beyond the CA's own expiry).",
)


def _pki_dir(state: CliContext, directory: Path | None) -> Path:
    return directory if directory is not None else state.data_dir / "pki"


@click.group()
def pki() -> None:
    """Consortium CA: partner (client) and node (server) TLS certificates."""


@pki.command("init")
@dir_option
@click.option("--name", default=DEFAULT_CA_NAME, show_default=True, help="The CA's common name.")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=DEFAULT_CA_DAYS,
    show_default=True,
    help="Validity of the CA certificate in days.",
)
@pass_cli
def pki_init(state: CliContext, directory: Path | None, name: str, days: int) -> None:
    """Create the consortium CA (ca.pem, ca-key.pem); refuses to overwrite one."""
    ca = init_ca(_pki_dir(state, directory), name, days=days)
    click.echo(f"CA certificate: {ca.certificate_path}")
    click.echo(f"CA private key: {ca.key_path}")
    click.echo(
        f"valid until {ca.certificate.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}; nodes trust "
        f"{ca.certificate_path.name} as their client_ca. Keep the CA key offline: whoever "
        "holds it can issue partner identities.",
        err=True,
    )


@pki.command("issue")
@click.argument("partner_id", metavar="PARTNER")
@dir_option
@leaf_days_option
@pass_cli
def pki_issue(state: CliContext, partner_id: str, directory: Path | None, days: int) -> None:
    """Issue a TLS client certificate identifying PARTNER (a partner id)."""
    pki_dir = _pki_dir(state, directory)
    issued = issue_partner(load_ca(pki_dir), pki_dir, partner_id, days=days)
    _print_issued(issued)
    click.echo(f"identity: {partner_uri(partner_id)}")


@pki.command("issue-server")
@click.argument("name")
@dir_option
@click.option("--dns", "dns_names", multiple=True, help="DNS name clients dial (repeatable).")
@click.option("--ip", "ip_addresses", multiple=True, help="IP address clients dial (repeatable).")
@leaf_days_option
@pass_cli
def pki_issue_server(
    state: CliContext,
    name: str,
    directory: Path | None,
    dns_names: tuple[str, ...],
    ip_addresses: tuple[str, ...],
    days: int,
) -> None:
    """Issue a node's TLS server certificate NAME (default SANs: localhost, 127.0.0.1)."""
    pki_dir = _pki_dir(state, directory)
    issued = issue_server(
        load_ca(pki_dir),
        pki_dir,
        name,
        dns_names=list(dns_names),
        ip_addresses=list(ip_addresses),
        days=days,
    )
    _print_issued(issued)
    names = issued.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    click.echo(f"names: {', '.join(str(n.value) for n in names.value)}")


def _print_issued(issued: IssuedCertificate) -> None:
    click.echo(f"certificate: {issued.certificate_path}")
    click.echo(f"private key: {issued.key_path}")
    click.echo(f"valid until: {issued.certificate.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")
