"""`build_bundle` on the sample consortium's ledger: what goes in, and that it verifies.

The sample (``clients.sample.consortium``) runs through the real sequencer with
the admission rules on each backend; the bundle of its final lot of cells must
verify offline, hold the extraction and recovery of every origin the
hand-worked cobalt trace names, the whole history of every upstream lot, and
the registry entries behind every signature in it, and nothing unrelated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from google.protobuf.message import Message

from clients.sample import EXPECTED_COBALT_ORIGINS, FINAL_LOT_ID, SampleEntry, sample_entries
from clients.sample.consortium import (
    ASSURANCE,
    BOTHNIA,
    BOTHNIA_LAB,
    LOT_FEED_BLEND,
    LOT_HALMAHERA_MHP,
    LOT_LCC_DUPLICATE,
    partner_signer,
    signed_submission,
)
from custody.v1 import event_pb2
from ledger.admission import Submission
from ledger.bundle import ProvenanceBundle, VerifiedBundle, verify_bundle
from ledger.bundle_builder import build_bundle
from ledger.custody_rules import CustodyRules
from ledger.domain.provenance import upstream
from ledger.domain.records import EVENT_PAYLOAD_TYPE
from ledger.dsse import keyid_for
from ledger.errors import BundleIncompleteError, NotFoundError
from ledger.note import NoteSigner
from ledger.receipts import Receipt
from ledger.sequencer import Sequencer, initialise_log
from ledger.storage import LogStore
from ledger.storage.domain_store import DomainStore, DomainView

ENTRIES = sample_entries()


def _append(store: LogStore, log_signer: NoteSigner, *submissions: Submission) -> list[Receipt]:
    sequencer = Sequencer(store, log_signer, rules=CustodyRules(store))
    try:
        outcomes = sequencer.append_batch(submissions)
    finally:
        sequencer.close()
    receipts = []
    for outcome in outcomes:
        assert isinstance(outcome, Receipt), outcome
        receipts.append(outcome)
    return receipts


@pytest.fixture
def ledger(store: LogStore, log_signer: NoteSigner) -> LogStore:
    """The sample consortium's whole history, in one batch."""
    initialise_log(store, log_signer)
    _append(store, log_signer, *(entry.submission for entry in ENTRIES))
    return store


@pytest.fixture
def view(ledger: LogStore) -> Iterator[DomainView]:
    with ledger.snapshot() as conn:
        yield DomainStore(ledger.engine).view(conn)


def _index_of(label: str) -> int:
    return next(i for i, entry in enumerate(ENTRIES) if entry.label == label)


def _event(entry: SampleEntry) -> event_pb2.Event:
    return event_pb2.Event.FromString(entry.submission.envelope.payload)


def _verified(store: LogStore, log_signer: NoteSigner, lot_id: str) -> VerifiedBundle:
    return verify_bundle(build_bundle(store, lot_id), log_signer.verifier_key())


def test_the_final_lot_bundle_verifies_against_the_latest_checkpoint(
    ledger: LogStore, log_signer: NoteSigner, view: DomainView
) -> None:
    bundle = build_bundle(ledger, FINAL_LOT_ID)
    latest = ledger.latest_checkpoint()
    assert latest is not None
    assert bundle.checkpoint == latest.note
    assert bundle.lot_id == FINAL_LOT_ID
    verified = verify_bundle(bundle, log_signer.verifier_key())
    assert verified.checkpoint.checkpoint.size == len(ENTRIES)
    graph = upstream(view, FINAL_LOT_ID)
    assert verified.upstream_lot_ids == tuple(sorted(lot.lot_id for lot in graph.lots))


def test_the_bundle_holds_every_origin_of_the_cobalt(
    ledger: LogStore, log_signer: NoteSigner
) -> None:
    verified = _verified(ledger, log_signer, FINAL_LOT_ID)
    origin_sites = {key.split(":")[1] for key in EXPECTED_COBALT_ORIGINS}
    found: dict[str, list[int]] = {site: [] for site in origin_sites}
    for index, leaf in verified.leaves.items():
        if leaf.envelope.payload_type != EVENT_PAYLOAD_TYPE:
            continue
        event = event_pb2.Event.FromString(leaf.envelope.payload)
        body = event.WhichOneof("body")
        if body in {"extraction", "recovery"}:
            site = getattr(event, body).facility_id
            if site in found:
                found[site].append(index)
    assert all(found.values()), found
    assert found.keys() == origin_sites
    # Three mines and one recycler, one creation each (the voided duplicate is left out).
    assert sorted(len(indices) for indices in found.values()) == [1, 1, 1, 1]


def test_the_bundle_holds_every_upstream_lot_history_whole(
    ledger: LogStore, log_signer: NoteSigner, view: DomainView
) -> None:
    bundle = build_bundle(ledger, FINAL_LOT_ID)
    held = set(bundle.indices)
    graph = upstream(view, FINAL_LOT_ID)
    for lot in graph.lots:
        history = view.events_for_subject(f"lot:{lot.lot_id}")
        assert history, lot.lot_id
        assert set(history) <= held, lot.lot_id
    # The superseded assay, its replacement and the correction are all there.
    for label in (
        "Bothnia assays the feed blend",
        "Bothnia re-assays the feed blend",
        "Bothnia supersedes its first assay with the re-assay",
    ):
        assert _index_of(label) in held, label


def test_the_bundle_holds_the_registry_behind_every_signature(
    ledger: LogStore, log_signer: NoteSigner, view: DomainView
) -> None:
    verified = _verified(ledger, log_signer, FINAL_LOT_ID)
    held = set(verified.leaves)
    assert 0 in held
    for index, leaf in verified.leaves.items():
        for public_key in leaf.signer_keys:
            key = view.key(keyid_for(public_key))
            assert key is not None, index
            assert key.added_index in held, (index, key.partner_id)
            partner = view.partner(key.partner_id)
            assert partner is not None
            assert partner.admitted_index in held, (index, key.partner_id)
    graph = upstream(view, FINAL_LOT_ID)
    for facility in graph.facilities:
        assert facility.registered_index in held, facility.facility_id
    for partner in graph.partners:
        assert partner.admitted_index in held, partner.partner_id
    certifications = [c.index for c in graph.certifications]
    assert certifications == [
        _index_of("RS Assurance certifies the Kokkola refinery RMAP-conformant for cobalt")
    ]
    assert set(certifications) <= held


def test_unrelated_history_is_left_out(ledger: LogStore, log_signer: NoteSigner) -> None:
    held = set(build_bundle(ledger, FINAL_LOT_ID).indices)
    assert _index_of("Lualaba records the same hydroxide lot a second time by mistake") not in held
    assert _index_of("Lualaba voids the duplicate extraction") not in held
    # The lab signed assays (so its admission is in), but its laboratory is named by nothing.
    assert _index_of(f"register facility {BOTHNIA_LAB}") not in held
    assert _index_of(f"admit {BOTHNIA}") in held


def test_dropping_any_lot_history_leaf_or_genesis_fails_verification(
    ledger: LogStore, log_signer: NoteSigner, view: DomainView
) -> None:
    bundle = build_bundle(ledger, FINAL_LOT_ID)
    graph = upstream(view, FINAL_LOT_ID)
    needed = {0} | {i for lot in graph.lots for i in view.events_for_subject(f"lot:{lot.lot_id}")}
    assert len(needed) > 30
    # Without its only leaf the traced lot is absent altogether: no index to name.
    final_lot_leaves = view.events_for_subject(f"lot:{FINAL_LOT_ID}")
    verify_bundle(bundle, log_signer.verifier_key())
    for dropped in sorted(needed):
        kept = tuple(entry for entry in bundle.entries if entry.index != dropped)
        with pytest.raises(BundleIncompleteError) as caught:
            verify_bundle(
                ProvenanceBundle(bundle.lot_id, bundle.checkpoint, kept),
                log_signer.verifier_key(),
            )
        if final_lot_leaves == [dropped]:
            assert caught.value.index is None, dropped
            assert str(caught.value) == f"the bundle holds no leaf of lot {FINAL_LOT_ID!r}"
        else:
            assert caught.value.index == dropped, (dropped, str(caught.value))


def test_a_dropped_blend_is_named(ledger: LogStore, log_signer: NoteSigner) -> None:
    bundle = build_bundle(ledger, FINAL_LOT_ID)
    blend = _index_of("Meridian blends hydroxide and ore into refinery feed")
    kept = tuple(entry for entry in bundle.entries if entry.index != blend)
    with pytest.raises(BundleIncompleteError, match=f"leaf {blend}, which the bundle lacks"):
        verify_bundle(
            ProvenanceBundle(bundle.lot_id, bundle.checkpoint, kept), log_signer.verifier_key()
        )


def test_the_built_bundle_survives_protobuf_and_json(
    ledger: LogStore, log_signer: NoteSigner
) -> None:
    bundle = build_bundle(ledger, FINAL_LOT_ID)
    assert ProvenanceBundle.decode(bundle.encode()) == bundle
    assert ProvenanceBundle.from_json(json.loads(json.dumps(bundle.to_json()))) == bundle
    verify_bundle(ProvenanceBundle.decode(bundle.encode()), log_signer.verifier_key())


def test_an_unknown_lot_is_not_found(ledger: LogStore) -> None:
    with pytest.raises(NotFoundError, match="NO-SUCH-LOT"):
        build_bundle(ledger, "NO-SUCH-LOT")


def test_a_lot_consumed_beside_another_does_not_pull_in_that_others_history(
    ledger: LogStore, log_signer: NoteSigner
) -> None:
    # Kokkola refined the feed blend together with the MHP: the refining leaf is in the
    # blend's history and names the MHP, but the MHP is not upstream of the blend.
    verified = _verified(ledger, log_signer, LOT_FEED_BLEND)
    refining = _index_of("Kokkola refines blend and MHP into cobalt and nickel sulfate")
    assert refining in verified.leaves
    assert _index_of("Kokkola receives the MHP") not in verified.leaves
    assert LOT_HALMAHERA_MHP not in verified.upstream_lot_ids
    assert verified.upstream_lot_ids == (
        "KAS-ASM-HGT-2026-0087",
        "LCC-KZ-COOH-2026-0412",
        LOT_FEED_BLEND,
    )


def test_a_voided_lot_has_its_own_small_bundle(ledger: LogStore, log_signer: NoteSigner) -> None:
    verified = _verified(ledger, log_signer, LOT_LCC_DUPLICATE)
    assert set(verified.leaves) >= {
        _index_of("Lualaba records the same hydroxide lot a second time by mistake"),
        _index_of("Lualaba voids the duplicate extraction"),
    }
    assert verified.upstream_lot_ids == (LOT_LCC_DUPLICATE,)


def _event_now(partner_id: str, label: str, body: Message) -> Submission:
    """A signed event recorded an hour ago (the rules refuse events from the future)."""
    event = event_pb2.Event(event_id=f"urn:test:{label}", partner_id=partner_id)
    event.event_time.seconds = int(time.time()) - 3600
    # The oneof field is named after the body's message type (Assay -> assay).
    getattr(event, body.DESCRIPTOR.name.lower()).CopyFrom(body)
    return signed_submission(EVENT_PAYLOAD_TYPE, event, [partner_signer(partner_id)])


def test_later_entries_and_certification_corrections_are_included(
    ledger: LogStore, log_signer: NoteSigner
) -> None:
    certification = _event(
        ENTRIES[_index_of("RS Assurance certifies the Kokkola refinery RMAP-conformant for cobalt")]
    )
    receipts = _append(
        ledger,
        log_signer,
        _event_now(
            BOTHNIA,
            "cells-assay",
            event_pb2.Assay(
                lot_id=FINAL_LOT_ID,
                contents=[event_pb2.ElementContent(element="Co", ppm=27_500)],
                method="ICP-OES",
                sample_id="BAL-2026-0999",
            ),
        ),
        _event_now(
            ASSURANCE,
            "withdraw-certificate",
            event_pb2.Correction(
                target_event_id=certification.event_id,
                action=event_pb2.CORRECTION_ACTION_VOID,
                reason="issued on the wrong scope",
            ),
        ),
    )
    verified = _verified(ledger, log_signer, FINAL_LOT_ID)
    assert verified.checkpoint.checkpoint.size == len(ENTRIES) + 2
    assert {receipt.index for receipt in receipts} <= set(verified.leaves)
