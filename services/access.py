"""Who is calling: the partner a request's client certificate names, if admitted.

The TLS layer has already verified the certificate chain against the
consortium CA (the handshake fails otherwise); here the certificate's partner
identity is read and checked against the ledger's registry. Every admitted
partner may read; appending is further limited by the admission rules (a
partner records only its own entries, with its own valid keys and roles).

With ``insecure_dev`` there is no TLS: the caller names itself in the
``custody-partner`` metadata, which is trusted. That mode exists for local
development only and the node logs a warning when it starts in it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import grpc

from ledger.domain.records import Partner
from ledger.errors import NotAPartnerError, UnauthenticatedError
from ledger.storage.domain_store import DomainStore
from ledger.tls_identity import partner_from_certificate
from ledger.wire import DEV_PARTNER_METADATA

_PEM_CERT_PROPERTY = "x509_pem_cert"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated, admitted partner making a request."""

    partner: Partner

    @property
    def partner_id(self) -> str:
        return self.partner.partner_id


@lru_cache(maxsize=4096)
def _partner_of_certificate(pem: bytes) -> str:
    # Parsing a certificate costs tens of microseconds; a connection presents the same one.
    return partner_from_certificate(pem)


def authenticated_partner_id(
    context: grpc.aio.ServicerContext[object, object], *, insecure_dev: bool
) -> str:
    """The partner id the request's identity names; UnauthenticatedError without one."""
    if insecure_dev:
        for key, value in context.invocation_metadata() or ():
            if key == DEV_PARTNER_METADATA:
                return value if isinstance(value, str) else value.decode("utf-8", "replace")
        raise UnauthenticatedError(
            f"no partner named: in insecure development mode send the {DEV_PARTNER_METADATA!r} "
            "metadata"
        )
    certificates = list(context.auth_context().get(_PEM_CERT_PROPERTY, ()))
    if not certificates:
        raise UnauthenticatedError("no client certificate: the node requires mutual TLS")
    return _partner_of_certificate(bytes(certificates[0]))


class PartnerDirectory:
    """Admitted partners by id, read from the registry and cached briefly.

    Entries expire after ``ttl_seconds`` and the whole cache is dropped when
    this node commits a batch (``invalidate``), so a partner admitted here is
    served at once, and one admitted through another frontend within the TTL.
    """

    def __init__(
        self,
        domain: DomainStore,
        *,
        ttl_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._domain = domain
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, Partner | None]] = {}

    def invalidate(self) -> None:
        self._cache.clear()

    async def partner(self, partner_id: str) -> Partner | None:
        now = self._clock()
        cached = self._cache.get(partner_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        partner = await asyncio.to_thread(self._domain.view().partner, partner_id)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[partner_id] = (now, partner)
        return partner


class AccessGuard:
    """Turns a request's context into a ``Caller``, or refuses it."""

    def __init__(self, directory: PartnerDirectory, *, insecure_dev: bool) -> None:
        self.directory = directory
        self.insecure_dev = insecure_dev

    async def caller(self, context: grpc.aio.ServicerContext[Any, Any]) -> Caller:
        """1. The request carries a partner identity (its client certificate).
        2. That partner is admitted in the ledger's registry."""
        partner_id = authenticated_partner_id(context, insecure_dev=self.insecure_dev)
        partner = await self.directory.partner(partner_id)
        if partner is None:
            raise NotAPartnerError(f"{partner_id!r} is not an admitted partner of this ledger")
        return Caller(partner)
