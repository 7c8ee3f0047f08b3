"""Options for reaching a Custody node from the command line, and the client they make.

``--server HOST:PORT`` (or ``CUSTODY_SERVER``) sends a command to a node instead
of the local database. The node requires mutual TLS: ``--tls-ca`` (the
consortium CA bundle), ``--tls-cert`` and ``--tls-key`` (this partner's client
certificate and key), or ``CUSTODY_CLIENT_TLS_CA``, ``CUSTODY_CLIENT_TLS_CERT`` and
``CUSTODY_CLIENT_TLS_KEY`` (not ``CUSTODY_TLS_*``, which configure a node's own TLS).
A node in insecure development mode takes ``--insecure-dev --partner ID``
instead. Every answer is checked against the log's verifier key (``--vkey``,
default the ``log.vkey`` that ``init`` saved in the data directory).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from clients.cli.context import CliContext
from clients.sdk import ClientTls, PartnerClient
from ledger.errors import ConfigurationError
from ledger.note import VerifierKey

F = TypeVar("F", bound=Callable[..., Any])

vkey_option = click.option(
    "--vkey",
    default=None,
    help="The log's trusted verifier key, or a file holding it "
    "(default: log.vkey saved by `init` in the data directory).",
)


@dataclass(frozen=True)
class RemoteOptions:
    """Where the node is and how to authenticate to it, as given on the command line."""

    server: str
    tls_ca: Path | None
    tls_cert: Path | None
    tls_key: Path | None
    insecure_dev: bool
    partner: str | None

    def tls(self) -> ClientTls | None:
        """The TLS material, None in insecure development mode; refuses half a setup."""
        if self.insecure_dev:
            if not self.partner:
                raise ConfigurationError("--insecure-dev needs --partner ID (who you are)")
            return None
        if self.partner:
            raise ConfigurationError(
                "--partner applies only with --insecure-dev: over TLS the client "
                "certificate names the partner"
            )
        missing = [
            name
            for name, value in (
                ("--tls-ca", self.tls_ca),
                ("--tls-cert", self.tls_cert),
                ("--tls-key", self.tls_key),
            )
            if value is None
        ]
        if missing or self.tls_ca is None or self.tls_cert is None or self.tls_key is None:
            raise ConfigurationError(
                f"--server needs mutual TLS: give {', '.join(missing)} (or CUSTODY_CLIENT_TLS_CA, "
                "CUSTODY_CLIENT_TLS_CERT, CUSTODY_CLIENT_TLS_KEY); for a development node, "
                "--insecure-dev --partner ID"
            )
        return ClientTls.from_files(self.tls_ca, self.tls_cert, self.tls_key)

    def connect(self, log_key: VerifierKey, *, state_dir: Path | None = None) -> PartnerClient:
        return PartnerClient.connect(
            self.server,
            log_key=log_key,
            tls=self.tls(),
            partner_id_for_insecure_dev=self.partner if self.insecure_dev else None,
            state_dir=state_dir,
        )


def connect(
    state: CliContext, remote: RemoteOptions, vkey: str | None, *, keep_state: bool
) -> PartnerClient:
    """A client trusting ``--vkey`` (default ``log.vkey``); with ``keep_state`` it checks
    every checkpoint against the newest this data directory verified, and advances it."""
    log_key = state.trusted_log_key(vkey)
    return remote.connect(log_key, state_dir=state.data_dir if keep_state else None)


_PATH = click.Path(dir_okay=False, path_type=Path)
_OPTIONS = (
    click.option(
        "--server",
        envvar="CUSTODY_SERVER",
        default=None,
        metavar="HOST:PORT",
        help="Ask this Custody node instead of the local database (env CUSTODY_SERVER).",
    ),
    click.option(
        "--tls-ca",
        type=_PATH,
        envvar="CUSTODY_CLIENT_TLS_CA",
        default=None,
        help="With --server: CA bundle the node's certificate must chain to (PEM).",
    ),
    click.option(
        "--tls-cert",
        type=_PATH,
        envvar="CUSTODY_CLIENT_TLS_CERT",
        default=None,
        help="With --server: your partner client certificate (PEM).",
    ),
    click.option(
        "--tls-key",
        type=_PATH,
        envvar="CUSTODY_CLIENT_TLS_KEY",
        default=None,
        help="With --server: the client certificate's private key (PEM).",
    ),
    click.option(
        "--insecure-dev",
        is_flag=True,
        help="With --server: the node runs without TLS (development only); name "
        "yourself with --partner.",
    ),
    click.option(
        "--partner",
        default=None,
        metavar="ID",
        help="With --insecure-dev: the partner id to act as.",
    ),
)


def remote_options(command: F) -> F:
    """Add the options above; the command receives them as one ``remote`` argument,
    a ``RemoteOptions`` when ``--server`` is given and None otherwise."""

    @functools.wraps(command)
    def with_remote(
        *args: Any,
        server: str | None,
        tls_ca: Path | None,
        tls_cert: Path | None,
        tls_key: Path | None,
        insecure_dev: bool,
        partner: str | None,
        **kwargs: Any,
    ) -> Any:
        if not server:
            # The TLS options may come from the environment and are then simply unused;
            # these two exist only on the command line and mean the user expected a node.
            if insecure_dev or partner:
                raise click.UsageError("--insecure-dev and --partner need --server HOST:PORT")
            return command(*args, remote=None, **kwargs)
        remote = RemoteOptions(server, tls_ca, tls_cert, tls_key, insecure_dev, partner)
        return command(*args, remote=remote, **kwargs)

    decorated: Callable[..., Any] = with_remote
    for option in reversed(_OPTIONS):
        decorated = option(decorated)
    return cast(F, decorated)
