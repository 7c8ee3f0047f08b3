"""How a client reaches a node: mutual TLS (or the development mode), channel options."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from ledger.errors import ConfigurationError
from ledger.keys import read_pem_file
from ledger.wire import DEV_PARTNER_METADATA

MAX_RECEIVE_BYTES = 64 << 20
"""A trace bundle of a long history is the largest answer; the node caps what it sends."""

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ClientTls:
    """Mutual TLS material: the consortium CA the node's certificate must chain to, and
    this partner's client certificate and key (PEM). The certificate names the partner."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    server_name: str | None = None
    """Check the node's certificate for this name instead of the dialled host."""

    def __post_init__(self) -> None:
        for name in ("ca_pem", "cert_pem", "key_pem"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or b"-----BEGIN" not in value:
                raise ConfigurationError(f"ClientTls.{name} must be PEM bytes")

    @classmethod
    def from_files(
        cls, ca: Path | str, cert: Path | str, key: Path | str, *, server_name: str | None = None
    ) -> ClientTls:
        """Read the CA bundle, the client certificate and its key from PEM files."""
        return cls(
            read_pem_file(Path(ca), "CA bundle"),
            read_pem_file(Path(cert), "client certificate"),
            read_pem_file(Path(key), "client key"),
            server_name,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem,
            private_key=self.key_pem,
            certificate_chain=self.cert_pem,
        )


@dataclass(frozen=True)
class Endpoint:
    """A node's address and how to authenticate to it."""

    address: str
    tls: ClientTls | None
    partner_id_for_insecure_dev: str | None = None

    def __post_init__(self) -> None:
        host, sep, port = self.address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigurationError(f"a node address is HOST:PORT, got {self.address!r}")
        if self.tls is None and not self.partner_id_for_insecure_dev:
            raise ConfigurationError(
                "a node requires mutual TLS: give tls=ClientTls(...), or "
                "partner_id_for_insecure_dev for a node in insecure development mode"
            )
        if self.tls is not None and self.partner_id_for_insecure_dev:
            raise ConfigurationError(
                "give either tls or partner_id_for_insecure_dev: with TLS the client "
                "certificate names the partner"
            )

    @property
    def metadata(self) -> Metadata:
        """Sent with every call: the development mode's self-declared partner id, if any."""
        if self.partner_id_for_insecure_dev:
            return ((DEV_PARTNER_METADATA, self.partner_id_for_insecure_dev),)
        return ()

    def options(self) -> Sequence[tuple[str, int | str]]:
        options: list[tuple[str, int | str]] = [
            ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)
        ]
        if self.tls is not None and self.tls.server_name:
            options.append(("grpc.ssl_target_name_override", self.tls.server_name))
        return options

    def sync_channel(self) -> grpc.Channel:
        if self.tls is None:
            return grpc.insecure_channel(self.address, options=self.options())
        return grpc.secure_channel(
            self.address, self.tls.channel_credentials(), options=self.options()
        )

    def async_channel(self) -> grpc.aio.Channel:
        if self.tls is None:
            return grpc.aio.insecure_channel(self.address, options=self.options())
        return grpc.aio.secure_channel(
            self.address, self.tls.channel_credentials(), options=self.options()
        )
