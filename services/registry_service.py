"""``custody.v1.RegistryService``: partners, keys and facilities as of any tree size."""

from __future__ import annotations

import asyncio

from custody.v1 import registry_service_pb2, registry_service_pb2_grpc
from ledger.domain.records import Facility, Partner, PartnerKey
from ledger.errors import NotFoundError, OutOfRangeError
from ledger.storage.domain_store import DomainStore, Registry
from ledger.storage.log_store import LogStore
from services.access import AccessGuard
from services.observability import NodeMetrics
from services.rpc import Context, unary


def partner_record(partner: Partner, keys: list[PartnerKey]) -> registry_service_pb2.PartnerRecord:
    return registry_service_pb2.PartnerRecord(
        partner_id=partner.partner_id,
        legal_name=partner.legal_name,
        country=partner.country,
        roles=[int(role) for role in partner.roles],  # type: ignore[misc]
        admitted_index=partner.admitted_index,
        updated_index=partner.updated_index,
        keys=[
            registry_service_pb2.PartnerKeyRecord(
                keyid=key.keyid,
                public_key=key.public_key,
                added_index=key.added_index,
                revoked_index=key.revoked_index,
            )
            for key in keys
        ],
    )


def facility_record(facility: Facility) -> registry_service_pb2.FacilityRecord:
    return registry_service_pb2.FacilityRecord(
        facility_id=facility.facility_id,
        partner_id=facility.partner_id,
        name=facility.name,
        type=int(facility.type),  # type: ignore[arg-type]
        country=facility.country,
        latitude_e6=facility.latitude_e6,
        longitude_e6=facility.longitude_e6,
        rmi_smelter_id=facility.rmi_smelter_id,
        artisanal=facility.artisanal,
        registered_index=facility.registered_index,
    )


def _keys_by_partner(registry: Registry) -> dict[str, list[PartnerKey]]:
    keys: dict[str, list[PartnerKey]] = {}
    for key in registry.keys:
        keys.setdefault(key.partner_id, []).append(key)
    return keys


class RegistryServicer(registry_service_pb2_grpc.RegistryServiceServicer):
    def __init__(
        self, *, store: LogStore, domain: DomainStore, guard: AccessGuard, metrics: NodeMetrics
    ) -> None:
        self.store = store
        self.domain = domain
        self.guard = guard
        self.metrics = metrics

    async def _registry(self, has_size: bool, tree_size: int) -> Registry:
        """The registry as of ``tree_size`` (default: the latest checkpoint's size)."""
        latest = await asyncio.to_thread(self.store.latest_checkpoint)
        size = latest.tree_size if latest is not None else 0
        if has_size:
            if tree_size > size:
                raise OutOfRangeError(f"tree size {tree_size} is beyond the log's {size}")
            size = tree_size
        return await asyncio.to_thread(self.domain.view().registry_as_of, size)

    @unary("GetRegistry")
    async def GetRegistry(  # noqa: N802 (gRPC method name)
        self, request: registry_service_pb2.GetRegistryRequest, context: Context
    ) -> registry_service_pb2.GetRegistryResponse:
        await self.guard.caller(context)
        registry = await self._registry(request.HasField("tree_size"), request.tree_size)
        keys = _keys_by_partner(registry)
        consortium = registry.consortium
        return registry_service_pb2.GetRegistryResponse(
            tree_size=registry.tree_size,
            consortium_name=consortium.name if consortium else "",
            threshold=consortium.threshold if consortium else 0,
            admin_ids=list(consortium.admin_ids) if consortium else [],
            partners=[partner_record(p, keys.get(p.partner_id, [])) for p in registry.partners],
            facilities=[facility_record(f) for f in registry.facilities],
        )

    @unary("GetPartner")
    async def GetPartner(  # noqa: N802
        self, request: registry_service_pb2.GetPartnerRequest, context: Context
    ) -> registry_service_pb2.GetPartnerResponse:
        await self.guard.caller(context)
        registry = await self._registry(request.HasField("tree_size"), request.tree_size)
        for partner in registry.partners:
            if partner.partner_id == request.partner_id:
                keys = _keys_by_partner(registry).get(partner.partner_id, [])
                return registry_service_pb2.GetPartnerResponse(
                    tree_size=registry.tree_size,
                    partner=partner_record(partner, keys),
                    facilities=[
                        facility_record(f)
                        for f in registry.facilities
                        if f.partner_id == partner.partner_id
                    ],
                )
        raise NotFoundError(
            f"no partner {request.partner_id!r} as of tree size {registry.tree_size}"
        )

    @unary("GetFacility")
    async def GetFacility(  # noqa: N802
        self, request: registry_service_pb2.GetFacilityRequest, context: Context
    ) -> registry_service_pb2.GetFacilityResponse:
        await self.guard.caller(context)
        registry = await self._registry(request.HasField("tree_size"), request.tree_size)
        for facility in registry.facilities:
            if facility.facility_id == request.facility_id:
                return registry_service_pb2.GetFacilityResponse(
                    tree_size=registry.tree_size, facility=facility_record(facility)
                )
        raise NotFoundError(
            f"no facility {request.facility_id!r} as of tree size {registry.tree_size}"
        )
