"""``custody.v1.RegistryService`` and ``custody.v1.ProvenanceService`` over the sample ledger.

The sample's 55 entries: genesis (0), ten admissions (1-10), nine facility
registrations (11-19), then the events (20-54); see
``clients/sample/consortium.py``. Nothing is appended here, so one node serves
the module.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from clients.sample.consortium import (
    ADMINISTRATORS,
    BALTIC,
    CONSORTIUM_NAME,
    EXPECTED_COBALT_ORIGINS,
    FINAL_LOT_ID,
    GOVERNANCE_THRESHOLD,
    HAMINA,
    KOKKOLA,
    KOKKOLA_REFINERY,
    LCC_PIT,
    LOT_BLACK_MASS,
    LOT_CATHODE,
    LOT_COBALT_SULFATE,
    LOT_FEED_BLEND,
    LOT_HALMAHERA_MHP,
    LOT_KASULO_ORE,
    LOT_LCC_HYDROXIDE,
    LOT_NICKEL_SULFATE,
    LOT_RECOVERED_COBALT_SULFATE,
    LOT_RECOVERED_NICKEL_SULFATE,
    LUALABA,
    MERIDIAN,
    SAMPLE_FACILITIES,
    SAMPLE_PARTNERS,
    SKELLEFTEA_PLANT,
    partner_signer,
)
from custody.v1 import (
    governance_pb2,
    provenance_service_pb2,
    registry_service_pb2,
)
from ledger.bundle import ProvenanceBundle, verify_bundle
from ledger.errors import BundleIncompleteError
from ledger.note import VerifierKey
from tests.services.node_support import NodeThread
from tests.services.rpc_support import (
    SAMPLE_SIZE,
    Code,
    Connections,
    Stubs,
    refused,
    unchanged,
)

PARTNER_IDS = [partner.partner_id for partner in SAMPLE_PARTNERS]
FACILITY_IDS = [facility.facility_id for facility in SAMPLE_FACILITIES]


@pytest.fixture(scope="module")
def stubs(connect: Connections) -> Stubs:
    return connect(MERIDIAN)


def _registry(stubs: Stubs, size: int | None = None) -> registry_service_pb2.GetRegistryResponse:
    request = registry_service_pb2.GetRegistryRequest()
    if size is not None:
        request.tree_size = size
    return stubs.registry.GetRegistry(request)


# --- registry --------------------------------------------------------------------------


def test_the_latest_registry_is_the_whole_consortium(stubs: Stubs) -> None:
    registry = _registry(stubs)
    assert registry.tree_size == SAMPLE_SIZE
    assert registry.consortium_name == CONSORTIUM_NAME
    assert registry.threshold == GOVERNANCE_THRESHOLD
    assert list(registry.admin_ids) == sorted(ADMINISTRATORS)
    assert [p.partner_id for p in registry.partners] == sorted(PARTNER_IDS)
    assert [f.facility_id for f in registry.facilities] == sorted(FACILITY_IDS)
    for sample, record in zip(
        sorted(SAMPLE_PARTNERS, key=lambda p: p.partner_id), registry.partners, strict=True
    ):
        assert (record.legal_name, record.country) == (sample.legal_name, sample.country)
        assert list(record.roles) == sorted(int(role) for role in sample.roles)
        (key,) = record.keys
        signer = partner_signer(sample.partner_id)
        assert (key.keyid, key.public_key) == (signer.keyid, signer.public_key)
        assert key.added_index == record.admitted_index
        assert not key.HasField("revoked_index")
    admitted = {p.partner_id: p.admitted_index for p in registry.partners}
    assert admitted[ADMINISTRATORS[0]] == admitted[ADMINISTRATORS[1]] == 0
    assert admitted[LUALABA] == 1


@pytest.mark.parametrize(
    ("size", "partners", "facilities"),
    [
        (1, sorted(ADMINISTRATORS), []),
        (5, sorted([*ADMINISTRATORS, *PARTNER_IDS[2:6]]), []),
        (11, sorted(PARTNER_IDS), []),
        (12, sorted(PARTNER_IDS), [LCC_PIT]),
        (SAMPLE_SIZE, sorted(PARTNER_IDS), sorted(FACILITY_IDS)),
    ],
)
def test_the_registry_as_of_an_earlier_size(
    stubs: Stubs, size: int, partners: list[str], facilities: list[str]
) -> None:
    """As of size n: what entries 0..n-1 made (the registry entry n was checked against)."""
    registry = _registry(stubs, size)
    assert registry.tree_size == size
    assert [p.partner_id for p in registry.partners] == partners
    assert [f.facility_id for f in registry.facilities] == facilities
    assert registry.consortium_name == CONSORTIUM_NAME


def test_the_registry_before_genesis_is_empty(stubs: Stubs) -> None:
    registry = _registry(stubs, 0)
    assert (registry.tree_size, registry.consortium_name, registry.threshold) == (0, "", 0)
    assert not registry.partners
    assert not registry.facilities


def test_get_partner_with_its_facilities(stubs: Stubs) -> None:
    response = stubs.registry.GetPartner(registry_service_pb2.GetPartnerRequest(partner_id=KOKKOLA))
    assert response.tree_size == SAMPLE_SIZE
    assert response.partner.partner_id == KOKKOLA
    assert list(response.partner.roles) == [governance_pb2.ROLE_PROCESSOR]
    assert [f.facility_id for f in response.facilities] == [KOKKOLA_REFINERY]
    # As of size 6 Kokkola (admitted at 5) is known, its refinery (registered at 15) is not.
    early = stubs.registry.GetPartner(
        registry_service_pb2.GetPartnerRequest(partner_id=KOKKOLA, tree_size=6)
    )
    assert (early.tree_size, early.partner.admitted_index) == (6, 5)
    assert not early.facilities


def test_get_facility(stubs: Stubs) -> None:
    response = stubs.registry.GetFacility(
        registry_service_pb2.GetFacilityRequest(facility_id=KOKKOLA_REFINERY)
    )
    facility = response.facility
    assert (facility.partner_id, facility.type) == (KOKKOLA, governance_pb2.FACILITY_TYPE_REFINERY)
    assert (facility.rmi_smelter_id, facility.country) == ("CID004217", "FI")
    assert (facility.latitude_e6, facility.longitude_e6) == (63_858_300, 23_038_700)
    assert facility.registered_index == 15
    assert not facility.artisanal
    kasulo = stubs.registry.GetFacility(
        registry_service_pb2.GetFacilityRequest(facility_id="kasulo-asm-zone", tree_size=13)
    )
    assert kasulo.facility.artisanal
    assert kasulo.tree_size == 13


def _not_found_calls(stubs: Stubs) -> list[Callable[[], object]]:
    registry = stubs.registry
    return [
        lambda: registry.GetPartner(registry_service_pb2.GetPartnerRequest(partner_id="nobody")),
        # Kokkola was admitted by entry 5: not in the registry as of size 5.
        lambda: registry.GetPartner(
            registry_service_pb2.GetPartnerRequest(partner_id=KOKKOLA, tree_size=5)
        ),
        lambda: registry.GetFacility(registry_service_pb2.GetFacilityRequest(facility_id="none")),
        lambda: registry.GetFacility(
            registry_service_pb2.GetFacilityRequest(facility_id=KOKKOLA_REFINERY, tree_size=15)
        ),
        lambda: stubs.provenance.GetLot(provenance_service_pb2.GetLotRequest(lot_id="NO-LOT")),
        lambda: stubs.provenance.Trace(provenance_service_pb2.TraceRequest(lot_id="NO-LOT")),
        lambda: stubs.provenance.GetLot(provenance_service_pb2.GetLotRequest(lot_id="")),
        # Ids no rule admits are answered before any query (PostgreSQL refuses a NUL).
        lambda: stubs.provenance.GetLot(provenance_service_pb2.GetLotRequest(lot_id="LOT\x00X")),
        lambda: stubs.provenance.Trace(provenance_service_pb2.TraceRequest(lot_id="LOT\x00X")),
        # The refusal quotes the id; a long one must not overflow the client's metadata limit
        # (the refusal then arrives as RESOURCE_EXHAUSTED instead of NOT_FOUND).
        lambda: stubs.provenance.GetLot(provenance_service_pb2.GetLotRequest(lot_id="L" * 20_000)),
        lambda: registry.GetPartner(registry_service_pb2.GetPartnerRequest(partner_id="é" * 5_000)),
    ]


def test_unknown_partners_facilities_and_lots_are_not_found(stubs: Stubs, node: NodeThread) -> None:
    with unchanged(node):
        for call in _not_found_calls(stubs):
            refused(call, Code.NOT_FOUND, "NOT_FOUND")


@pytest.mark.parametrize("size", [SAMPLE_SIZE + 1, (1 << 63) - 1, (1 << 64) - 1])
def test_a_size_beyond_the_log_is_out_of_range(stubs: Stubs, node: NodeThread, size: int) -> None:
    registry = stubs.registry
    with unchanged(node):
        for call in (
            lambda: registry.GetRegistry(registry_service_pb2.GetRegistryRequest(tree_size=size)),
            lambda: registry.GetPartner(
                registry_service_pb2.GetPartnerRequest(partner_id=LUALABA, tree_size=size)
            ),
            lambda: registry.GetFacility(
                registry_service_pb2.GetFacilityRequest(facility_id=LCC_PIT, tree_size=size)
            ),
        ):
            refused(call, Code.OUT_OF_RANGE, "OUT_OF_RANGE")


# --- provenance ------------------------------------------------------------------------


def test_get_lot_of_the_final_lot(stubs: Stubs) -> None:
    response = stubs.provenance.GetLot(provenance_service_pb2.GetLotRequest(lot_id=FINAL_LOT_ID))
    lot = response.lot
    assert response.tree_size == SAMPLE_SIZE
    assert (lot.lot_id, lot.holder_id, lot.facility_id) == (FINAL_LOT_ID, BALTIC, SKELLEFTEA_PLANT)
    assert (lot.mass_grams, lot.available_grams) == (66_000_000, 66_000_000)
    assert lot.state == provenance_service_pb2.LOT_STATE_HELD
    assert lot.origin == provenance_service_pb2.LOT_ORIGIN_TRANSFORMATION
    assert [(c.element, c.ppm) for c in lot.contents] == [("Co", 27_600), ("Ni", 145_000)]
    assert lot.created_index == 54
    assert list(response.history) == [54]


@pytest.mark.parametrize(
    ("lot_id", "history", "holder", "state", "available"),
    [
        # Made (51), shipped (52), received (53), partly consumed by the cells (54).
        (LOT_CATHODE, [51, 52, 53, 54], BALTIC, "HELD", 38_000_000),
        # Blended (31), shipped (32), received (37), assayed (38), re-assayed (39), the
        # first assay superseded (40), refined (41).
        (LOT_FEED_BLEND, [31, 32, 37, 38, 39, 40, 41], KOKKOLA, "CONSUMED", 0),
        (LOT_COBALT_SULFATE, [41, 43, 47, 51], HAMINA, "HELD", 30_500_000),
    ],
)
def test_get_lot_history_is_its_subject_chain(
    stubs: Stubs, lot_id: str, history: list[int], holder: str, state: str, available: int
) -> None:
    response = stubs.provenance.GetLot(provenance_service_pb2.GetLotRequest(lot_id=lot_id))
    assert list(response.history) == history
    assert response.lot.holder_id == holder
    assert response.lot.state == provenance_service_pb2.LotState.Value(f"LOT_STATE_{state}")
    assert response.lot.available_grams == available
    assert response.lot.created_index == history[0]


def test_trace_returns_a_bundle_that_verifies_offline(
    stubs: Stubs, log_key: VerifierKey, node: NodeThread
) -> None:
    response = stubs.provenance.Trace(provenance_service_pb2.TraceRequest(lot_id=FINAL_LOT_ID))
    bundle = ProvenanceBundle.from_proto(response.bundle)
    verified = verify_bundle(bundle, log_key)
    assert verified.lot_id == FINAL_LOT_ID
    assert verified.checkpoint.checkpoint.size == SAMPLE_SIZE
    latest = node.node.store.latest_checkpoint()
    assert latest is not None
    assert bundle.checkpoint == latest.note
    assert set(verified.upstream_lot_ids) == {
        FINAL_LOT_ID,
        LOT_CATHODE,
        LOT_COBALT_SULFATE,
        LOT_NICKEL_SULFATE,
        LOT_RECOVERED_COBALT_SULFATE,
        LOT_RECOVERED_NICKEL_SULFATE,
        LOT_FEED_BLEND,
        LOT_LCC_HYDROXIDE,
        LOT_KASULO_ORE,
        LOT_HALMAHERA_MHP,
        LOT_BLACK_MASS,
    }
    # The genesis and the refinery's certification (0, 20, 54) are among what the bundle
    # rests on; of the sample's leaves it leaves out only 19, 22 and 23.
    assert tuple(bundle.indices) == (*range(19), 20, 21, *range(24, SAMPLE_SIZE))


def test_a_bundle_with_a_leaf_dropped_does_not_verify(stubs: Stubs, log_key: VerifierKey) -> None:
    """The control of the test above: the offline check is not vacuous."""
    response = stubs.provenance.Trace(provenance_service_pb2.TraceRequest(lot_id=FINAL_LOT_ID))
    bundle = ProvenanceBundle.from_proto(response.bundle)
    cathode_receipt = next(i for i, e in enumerate(bundle.entries) if e.index == 53)
    entries = bundle.entries[:cathode_receipt] + bundle.entries[cathode_receipt + 1 :]
    with pytest.raises(
        BundleIncompleteError, match=r"leaf 54 links .* to leaf 53, which the bundle lacks"
    ) as caught:
        verify_bundle(ProvenanceBundle(bundle.lot_id, bundle.checkpoint, entries), log_key)
    assert caught.value.index == 53


def test_trace_composition_matches_the_hand_worked_cobalt_origins(stubs: Stubs) -> None:
    response = stubs.provenance.Trace(provenance_service_pb2.TraceRequest(lot_id=FINAL_LOT_ID))
    by_element = {composition.element: composition for composition in response.composition}
    assert sorted(by_element) == ["Co", "Ni"]
    cobalt = by_element["Co"]
    assert int(cobalt.total_micrograms) == 66_000_000 * 27_600
    found = {o.key: (int(o.micrograms), o.share_ppm) for o in cobalt.origins}
    assert found == {
        key: (share.micrograms, share.share_ppm) for key, share in EXPECTED_COBALT_ORIGINS.items()
    }
    lualaba = next(o for o in cobalt.origins if o.key == f"mine:{LCC_PIT}")
    assert (lualaba.partner_id, lualaba.country, lualaba.artisanal) == (LUALABA, "CD", False)
    assert list(lualaba.lot_ids) == [LOT_LCC_HYDROXIDE]
    kasulo = next(o for o in cobalt.origins if o.key == "mine:kasulo-asm-zone")
    assert kasulo.artisanal
    nickel = by_element["Ni"]
    assert sum(o.share_ppm for o in nickel.origins) == 1_000_000
    assert sum(int(o.micrograms) for o in nickel.origins) == int(nickel.total_micrograms)


def test_every_partner_sees_the_same_trace(connect: Connections, stubs: Stubs) -> None:
    """The ledger is shared: a mine and the cell maker get the same bundle bytes."""
    request = provenance_service_pb2.TraceRequest(lot_id=FINAL_LOT_ID)
    mine = connect(LUALABA).provenance.Trace(request)
    maker = connect(BALTIC).provenance.Trace(request)
    assert mine.bundle.SerializeToString() == maker.bundle.SerializeToString()
    assert mine.bundle == stubs.provenance.Trace(request).bundle


def test_the_lot_trace_of_a_mine_lot_is_its_own_origin(stubs: Stubs) -> None:
    response = stubs.provenance.Trace(provenance_service_pb2.TraceRequest(lot_id=LOT_LCC_HYDROXIDE))
    cobalt = next(c for c in response.composition if c.element == "Co")
    assert [(o.key, o.share_ppm) for o in cobalt.origins] == [(f"mine:{LCC_PIT}", 1_000_000)]
    assert int(cobalt.total_micrograms) == 24_030_000 * 300_000
