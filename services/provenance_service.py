"""``custody.v1.ProvenanceService``: lots, their history, and provenance bundles."""

from __future__ import annotations

import asyncio

from custody.v1 import event_pb2, provenance_service_pb2, provenance_service_pb2_grpc
from ledger.bundle_builder import build_bundle
from ledger.domain.payloads import check_id
from ledger.domain.provenance import ElementComposition, origin_composition
from ledger.domain.records import Lot, LotOrigin, LotState
from ledger.errors import AdmissionRuleError, BundleTooLargeError, NotFoundError
from ledger.storage.domain_store import DomainStore
from ledger.storage.log_store import LogStore
from services.access import AccessGuard
from services.observability import NodeMetrics
from services.rpc import Context, unary

_HISTORY_PAGE = 1_000
_MAX_HISTORY = 100_000  # a lot's history beyond this is read through GetEntries

_LOT_STATE = {
    LotState.HELD: provenance_service_pb2.LOT_STATE_HELD,
    LotState.IN_TRANSIT: provenance_service_pb2.LOT_STATE_IN_TRANSIT,
    LotState.CONSUMED: provenance_service_pb2.LOT_STATE_CONSUMED,
    LotState.VOIDED: provenance_service_pb2.LOT_STATE_VOIDED,
}
_LOT_ORIGIN = {
    LotOrigin.EXTRACTION: provenance_service_pb2.LOT_ORIGIN_EXTRACTION,
    LotOrigin.RECOVERY: provenance_service_pb2.LOT_ORIGIN_RECOVERY,
    LotOrigin.TRANSFORMATION: provenance_service_pb2.LOT_ORIGIN_TRANSFORMATION,
}


def lot_record(lot: Lot) -> provenance_service_pb2.LotRecord:
    return provenance_service_pb2.LotRecord(
        lot_id=lot.lot_id,
        material=lot.material,
        mass_grams=lot.mass_grams,
        contents=[event_pb2.ElementContent(element=e, ppm=ppm) for e, ppm in lot.contents],
        holder_id=lot.holder_id,
        available_grams=lot.available_grams,
        state=_LOT_STATE[lot.state],
        dispatch_event_id=lot.dispatch_event_id or "",
        origin=_LOT_ORIGIN[lot.origin],
        created_event_id=lot.created_event_id,
        created_index=lot.created_index,
        facility_id=lot.facility_id,
        scrap_origin=int(lot.scrap_origin) if lot.scrap_origin else 0,  # type: ignore[arg-type]
    )


def element_origins(composition: ElementComposition) -> provenance_service_pb2.ElementOrigins:
    return provenance_service_pb2.ElementOrigins(
        element=composition.element,
        total_micrograms=str(composition.total_micrograms),
        origins=[
            provenance_service_pb2.OriginShare(
                key=origin.key,
                facility_id=origin.facility_id,
                partner_id=origin.partner_id,
                country=origin.country,
                artisanal=origin.artisanal,
                lot_ids=list(origin.lot_ids),
                micrograms=str(origin.micrograms),
                share_ppm=origin.share_ppm,
            )
            for origin in composition.origins
        ],
    )


class ProvenanceServicer(provenance_service_pb2_grpc.ProvenanceServiceServicer):
    def __init__(
        self,
        *,
        store: LogStore,
        domain: DomainStore,
        guard: AccessGuard,
        metrics: NodeMetrics,
        max_message_bytes: int,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.store = store
        self.domain = domain
        self.guard = guard
        self.metrics = metrics

    def _lot_with_history(self, lot_id: str) -> provenance_service_pb2.GetLotResponse:
        # One snapshot: the lot, its history and the size agree with each other.
        with self.store.snapshot() as conn:
            view = self.domain.view(conn)
            lot = view.lot(lot_id)
            if lot is None:
                raise NotFoundError(f"no lot {lot_id!r}")
            latest = self.store.latest_checkpoint(conn)
            history: list[int] = []
            after = -1
            truncated = False
            while True:
                page = view.events_for_subject(f"lot:{lot_id}", after=after, limit=_HISTORY_PAGE)
                if len(history) + len(page) > _MAX_HISTORY:
                    truncated = True
                    history.extend(page[: _MAX_HISTORY - len(history)])
                    break
                history.extend(page)
                if len(page) < _HISTORY_PAGE:
                    break
                after = page[-1]
        return provenance_service_pb2.GetLotResponse(
            tree_size=latest.tree_size if latest else 0,
            lot=lot_record(lot),
            history=history,
            history_truncated=truncated,
        )

    @unary("GetLot")
    async def GetLot(  # noqa: N802 (gRPC method name)
        self, request: provenance_service_pb2.GetLotRequest, context: Context
    ) -> provenance_service_pb2.GetLotResponse:
        await self.guard.caller(context)
        return await asyncio.to_thread(self._lot_with_history, _lot_id(request.lot_id))

    def _trace(self, lot_id: str) -> provenance_service_pb2.TraceResponse:
        with self.store.snapshot() as conn:  # the composition of the bundle's state
            bundle = build_bundle(self.store, lot_id, conn)
            composition = origin_composition(self.domain.view(conn), lot_id)
        response = provenance_service_pb2.TraceResponse(
            bundle=bundle.to_proto(),
            composition=[element_origins(composition[e]) for e in sorted(composition)],
        )
        if response.ByteSize() > self.max_message_bytes:
            # Said plainly rather than left to fail in the transport after all the work.
            raise BundleTooLargeError(
                f"the bundle of {lot_id!r} holds {len(bundle.entries)} leaves "
                f"({response.ByteSize():,} bytes), more than this node sends in one message "
                f"({self.max_message_bytes:,} bytes; [limits] max_message_bytes)"
            )
        return response

    @unary("Trace")
    async def Trace(  # noqa: N802
        self, request: provenance_service_pb2.TraceRequest, context: Context
    ) -> provenance_service_pb2.TraceResponse:
        await self.guard.caller(context)
        return await asyncio.to_thread(self._trace, _lot_id(request.lot_id))


def _lot_id(lot_id: str) -> str:
    """A lot id the rules could have admitted; for any other there is no such lot, said
    before any query (a NUL, say, which PostgreSQL refuses to even compare)."""
    try:
        check_id(lot_id, "lot_id")
    except AdmissionRuleError:
        raise NotFoundError(f"no lot {lot_id!r}") from None
    return lot_id
