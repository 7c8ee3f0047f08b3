"""``custody lot show`` and ``custody lot trace``: answers from the local indexes."""

from __future__ import annotations

import click

from clients.cli.context import CliContext
from clients.cli.options import json_option, pass_cli
from clients.cli.render import micros_to_iso, to_json
from ledger.domain.provenance import (
    ElementComposition,
    UpstreamGraph,
    composition_to_json,
    origin_composition,
    upstream,
)
from ledger.domain.records import Lot, LotState
from ledger.errors import NotFoundError
from ledger.storage.domain_store import DomainStore, DomainView


@click.group()
def lot() -> None:
    """Look up lots and trace them back to their mines."""


def _lot(view: DomainView, lot_id: str) -> Lot:
    found = view.lot(lot_id)
    if found is None:
        raise NotFoundError(f"no lot {lot_id!r} in this ledger")
    return found


def lot_json(view: DomainView, lot: Lot) -> dict[str, object]:
    dispatch = view.dispatch(lot.dispatch_event_id) if lot.dispatch_event_id else None
    return {
        "lot_id": lot.lot_id,
        "material": lot.material,
        "mass_grams": lot.mass_grams,
        "available_grams": lot.available_grams,
        "state": _state(lot),
        "holder": lot.holder_id,
        "in_transit_to": dispatch.to_partner_id if dispatch else None,
        "contents_ppm": dict(lot.contents),
        "origin": lot.origin.value,
        "facility_id": lot.facility_id,
        "created_by": lot.created_event_id,
        "created_index": lot.created_index,
        "scrap_origin": lot.scrap_origin.name.lower() if lot.scrap_origin else None,
        "assays": [
            {
                "event_id": a.event_id,
                "lab": a.lab_id,
                "method": a.method,
                "contents_ppm": dict(a.contents),
                "index": a.index,
                "status": a.status.value,
            }
            for a in view.assays_of(lot.lot_id)
        ],
        "consumed_by": [
            {"event_id": c.event_id, "grams": c.consumed_grams, "index": c.index}
            for c in view.consumers_of(lot.lot_id)
        ],
        "history": view.events_for_subject(f"lot:{lot.lot_id}"),
    }


def _state(lot: Lot) -> str:
    if lot.state is LotState.HELD and lot.available_grams < lot.mass_grams:
        return "partly_consumed"
    return lot.state.value


@lot.command("show")
@click.argument("lot_id")
@json_option
@pass_cli
def show(state: CliContext, lot_id: str, as_json: bool) -> None:
    """Show LOT_ID: holder, state, availability, contents, assays and history."""
    store = state.log_store()
    with store.snapshot() as conn:
        view = DomainStore(store.engine).view(conn)
        lot_record = _lot(view, lot_id)
        rendered = lot_json(view, lot_record)
    if as_json:
        click.echo(to_json(rendered))
        return
    click.echo(f"lot {lot_record.lot_id}: {lot_record.material}")
    click.echo(f"  state      {rendered['state']}, held by {lot_record.holder_id}")
    if rendered["in_transit_to"]:
        click.echo(f"  in transit to {rendered['in_transit_to']}")
    click.echo(
        f"  mass       {lot_record.mass_grams:,} g, available {lot_record.available_grams:,} g"
    )
    contents = ", ".join(f"{element} {ppm:,} ppm" for element, ppm in lot_record.contents)
    click.echo(f"  contents   {contents or '-'}")
    click.echo(
        f"  created    by {lot_record.origin.value} {lot_record.created_event_id} "
        f"at {lot_record.facility_id} (index {lot_record.created_index})"
    )
    history = rendered["history"]
    assert isinstance(history, list)
    click.echo(f"  history    leaves {', '.join(str(i) for i in history)}")


@lot.command("trace")
@click.argument("lot_id")
@json_option
@pass_cli
def trace(state: CliContext, lot_id: str, as_json: bool) -> None:
    """Trace LOT_ID to every mine and recycling site, with origin shares per element."""
    store = state.log_store()
    with store.snapshot() as conn:
        view = DomainStore(store.engine).view(conn)
        lot_record = _lot(view, lot_id)
        graph = upstream(view, lot_id)
        composition = origin_composition(view, lot_id)
        tree_size = store.size(conn)
    if as_json:
        click.echo(
            to_json(
                {
                    "lot_id": lot_id,
                    "tree_size": tree_size,
                    "upstream": graph.to_json(),
                    "origin_composition": composition_to_json(composition),
                }
            )
        )
        return
    _print_trace(lot_record, graph, composition, tree_size)


def _print_trace(
    lot_record: Lot,
    graph: UpstreamGraph,
    composition: dict[str, ElementComposition],
    tree_size: int,
) -> None:
    click.echo(
        f"lot {lot_record.lot_id} ({lot_record.material}, {lot_record.mass_grams:,} g) "
        f"as of tree size {tree_size}"
    )
    click.echo(
        f"  upstream: {len(graph.lots)} lots, {len(graph.transformations)} transformations, "
        f"{len(graph.origin_lot_ids)} origin lots at {len(graph.facilities)} facilities"
    )
    facilities = {f.facility_id: f for f in graph.facilities}
    for element, part in composition.items():
        grams = part.total_micrograms / 1_000_000
        click.echo(f"  {element}: {grams:,.3f} g contained")
        for origin in part.origins:
            facility = facilities.get(origin.facility_id)
            name = facility.name if facility else origin.key
            flags = " artisanal" if origin.artisanal else ""
            click.echo(
                f"    {origin.share_ppm / 10_000:7.3f}%  "
                f"{origin.micrograms / 1_000_000:>14,.3f} g  "
                f"{origin.kind.value:<22} {name} [{origin.country}]{flags}"
            )
    for certification in graph.certifications:
        click.echo(
            f"  certification {certification.scheme} of {certification.facility_id}: "
            f"{certification.certification_status.name.lower()} "
            f"{micros_to_iso(certification.valid_from_micros)[:10]} to "
            f"{micros_to_iso(certification.valid_until_micros)[:10]} ({certification.status.value})"
        )
