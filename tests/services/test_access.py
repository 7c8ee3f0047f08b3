"""Who may call the node, over real mutual TLS (docs/grpc.md "Who may do what").

One sample ledger and node serve the whole module; every refused call is
checked to have appended nothing (tree size, leaf rows, latest checkpoint).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.protobuf.message import Message

from clients.pki import _issue
from clients.sample.consortium import (
    ADMINISTRATORS,
    ASSURANCE,
    BALTIC,
    DUISBURG_SITE,
    FINAL_LOT_ID,
    HALMAHERA,
    KOKKOLA,
    KOKKOLA_REFINERY,
    LUALABA,
    MERIDIAN,
    RHEINLAND,
    WEDA_BAY,
    element_contents,
    partner_signer,
    sample_entries,
    utc_seconds,
)
from custody.v1 import (
    event_pb2,
    governance_pb2,
    ledger_service_pb2,
    provenance_service_pb2,
    registry_service_pb2,
)
from ledger.domain.records import GOVERNANCE_PAYLOAD_TYPE
from ledger.dsse import Envelope
from ledger.note import VerifierKey
from ledger.wire import ALREADY_LOGGED, DEV_PARTNER_METADATA
from tests.services.node_support import (
    STRANGER,
    NodeThread,
    Pki,
    node_config,
    running_node,
)
from tests.services.rpc_support import (
    SAMPLE_IDS,
    Code,
    Connections,
    Stubs,
    append_request,
    event,
    extraction,
    log_state,
    lualaba_extraction,
    new_id,
    new_ledger,
    refused,
    signed,
    signed_event,
    stream_request,
    unchanged,
    verified,
)

PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED


# --- transport: the TLS handshake ------------------------------------------------------


def _every_kind_of_call(stubs: Stubs) -> dict[str, Callable[[], object]]:
    """A read of each service and an append (a valid one, had the caller the right)."""
    calls = _calls(stubs)
    assert sorted(calls) == CALLS
    return calls


def _calls(stubs: Stubs) -> dict[str, Callable[[], object]]:
    return {
        "GetCheckpoint": lambda: stubs.ledger.GetCheckpoint(
            ledger_service_pb2.GetCheckpointRequest(), timeout=10
        ),
        "GetEntry": lambda: stubs.ledger.GetEntry(
            ledger_service_pb2.GetEntryRequest(index=0), timeout=10
        ),
        "GetEntries": lambda: list(
            stubs.ledger.GetEntries(
                ledger_service_pb2.GetEntriesRequest(start=0, end=5), timeout=10
            )
        ),
        "GetRegistry": lambda: stubs.registry.GetRegistry(
            registry_service_pb2.GetRegistryRequest(), timeout=10
        ),
        "GetLot": lambda: stubs.provenance.GetLot(
            provenance_service_pb2.GetLotRequest(lot_id=FINAL_LOT_ID), timeout=10
        ),
        "Trace": lambda: stubs.provenance.Trace(
            provenance_service_pb2.TraceRequest(lot_id=FINAL_LOT_ID), timeout=10
        ),
        "Append": lambda: stubs.ledger.Append(
            append_request(lualaba_extraction(), [LUALABA]), timeout=10
        ),
        "AppendStream": lambda: list(
            stubs.ledger.AppendStream(
                iter([stream_request(1, lualaba_extraction())]),
                timeout=10,
            )
        ),
    }


CALLS = [  # the keys of _every_kind_of_call
    "Append",
    "AppendStream",
    "GetCheckpoint",
    "GetEntries",
    "GetEntry",
    "GetLot",
    "GetRegistry",
    "Trace",
]


@pytest.mark.parametrize("call", CALLS)
def test_a_client_without_a_certificate_fails_the_handshake(
    node: NodeThread, connect: Connections, call: str
) -> None:
    with unchanged(node):
        refused(_every_kind_of_call(connect(None))[call], Code.UNAVAILABLE, None)


@pytest.mark.parametrize("call", CALLS)
def test_a_certificate_from_another_ca_fails_the_handshake(
    node: NodeThread, connect: Connections, call: str
) -> None:
    """The foreign CA issued a certificate for Lualaba itself: the name is right, the CA is not."""
    with unchanged(node):
        refused(_every_kind_of_call(connect(LUALABA, foreign=True))[call], Code.UNAVAILABLE, None)


def test_the_same_partner_with_the_consortium_certificate_gets_through(
    connect: Connections,
) -> None:
    """The control of the two tests above: the handshake, not the partner, was refused."""
    response = connect(LUALABA).ledger.GetCheckpoint(ledger_service_pb2.GetCheckpointRequest())
    assert response.checkpoint.startswith(b"ledger.test/custody\n")


# --- identity: admitted partners only --------------------------------------------------


@pytest.mark.parametrize("call", CALLS)
def test_a_consortium_certificate_of_a_non_partner_is_refused(
    node: NodeThread, connect: Connections, call: str
) -> None:
    with unchanged(node):
        refused(_every_kind_of_call(connect(STRANGER))[call], PERMISSION_DENIED, "NOT_A_PARTNER")


def test_a_non_partner_cannot_append_even_its_own_well_signed_entries(
    node: NodeThread, connect: Connections
) -> None:
    """The stranger signs with its own key and names itself: still not a partner."""
    envelope = signed_event(STRANGER, extraction())
    with unchanged(node):
        refused(
            lambda: connect(STRANGER).ledger.Append(append_request(envelope, [STRANGER])),
            PERMISSION_DENIED,
            "NOT_A_PARTNER",
        )


@pytest.mark.parametrize("partner", SAMPLE_IDS)
def test_every_admitted_partner_may_read_everything(
    node: NodeThread, connect: Connections, log_key: VerifierKey, partner: str
) -> None:
    stubs = connect(partner)
    with unchanged(node) as state:
        checkpoint = stubs.ledger.GetCheckpoint(ledger_service_pb2.GetCheckpointRequest())
        assert checkpoint.checkpoint == state.checkpoint
        entry = stubs.ledger.GetEntry(ledger_service_pb2.GetEntryRequest(index=3))
        assert entry.entry.index == 3
        assert entry.entry.leaf == node.node.store.leaf(3).leaf_bytes
        entries = [
            e.index
            for response in stubs.ledger.GetEntries(
                ledger_service_pb2.GetEntriesRequest(start=0, end=state.tree_size)
            )
            for e in response.entries
        ]
        assert entries == list(range(state.tree_size))
        proof = stubs.ledger.GetInclusionProof(ledger_service_pb2.GetInclusionProofRequest(index=3))
        assert proof.proof.tree_size == state.tree_size
        registry = stubs.registry.GetRegistry(registry_service_pb2.GetRegistryRequest())
        # The parameters are exactly the admitted partners: every one of them reads.
        assert sorted(p.partner_id for p in registry.partners) == sorted(SAMPLE_IDS)
        me = stubs.registry.GetPartner(registry_service_pb2.GetPartnerRequest(partner_id=partner))
        assert me.partner.partner_id == partner
        facility = stubs.registry.GetFacility(
            registry_service_pb2.GetFacilityRequest(facility_id=KOKKOLA_REFINERY)
        )
        assert facility.facility.partner_id == KOKKOLA
        lot = stubs.provenance.GetLot(provenance_service_pb2.GetLotRequest(lot_id=FINAL_LOT_ID))
        assert lot.lot.holder_id == BALTIC
        trace = stubs.provenance.Trace(provenance_service_pb2.TraceRequest(lot_id=FINAL_LOT_ID))
        assert trace.bundle.lot_id == FINAL_LOT_ID
        assert trace.bundle.entries


# --- appends: the admission rules with the caller's identity ---------------------------


def test_partner_a_cannot_append_an_event_recording_partner_b(
    node: NodeThread, connect: Connections
) -> None:
    """Meridian submits an extraction that Lualaba recorded and signed with its own key."""
    envelope = lualaba_extraction()
    with unchanged(node):
        refused(
            lambda: connect(MERIDIAN).ledger.Append(append_request(envelope, [LUALABA])),
            PERMISSION_DENIED,
            "IDENTITY_MISMATCH",
        )


def test_partner_a_cannot_append_an_event_recording_b_signed_with_its_own_key(
    node: NodeThread, connect: Connections
) -> None:
    """The event names Lualaba, Meridian signs and submits it: the caller check (stateless,
    before any key is looked at) refuses it as IDENTITY_MISMATCH."""
    envelope = signed(event(LUALABA, extraction()), [MERIDIAN])
    with unchanged(node):
        refused(
            lambda: connect(MERIDIAN).ledger.Append(append_request(envelope, [MERIDIAN])),
            PERMISSION_DENIED,
            "IDENTITY_MISMATCH",
        )


def test_a_partner_cannot_sign_its_event_with_another_partners_key(
    node: NodeThread, connect: Connections
) -> None:
    """Lualaba submits its own event signed with Meridian's (valid, admitted) key."""
    envelope = signed(event(LUALABA, extraction()), [MERIDIAN])
    with unchanged(node):
        for with_keys in (True, False):
            request = append_request(envelope, [MERIDIAN], with_keys=with_keys)
            refused(
                functools.partial(connect(LUALABA).ledger.Append, request),
                PERMISSION_DENIED,
                "KEY_NOT_VALID",
            )


def test_resubmitting_another_partners_logged_event_is_refused_not_answered(
    node: NodeThread, connect: Connections
) -> None:
    """docs/grpc.md: the event check runs before duplicate detection, so Meridian does not
    get Lualaba's receipt (ALREADY_EXISTS) for an entry it did not record."""
    logged = next(e for e in sample_entries() if e.signer_ids == (LUALABA,))
    with unchanged(node):
        refused(
            lambda: connect(MERIDIAN).ledger.Append(
                append_request(logged.submission.envelope, [LUALABA])
            ),
            PERMISSION_DENIED,
            "IDENTITY_MISMATCH",
        )
        # Its recorder gets the original receipt.
        refused(
            lambda: connect(LUALABA).ledger.Append(
                append_request(logged.submission.envelope, [LUALABA])
            ),
            grpc.StatusCode.ALREADY_EXISTS,
            ALREADY_LOGGED,
        )


def test_governance_must_be_signed_by_the_caller(node: NodeThread, connect: Connections) -> None:
    """Both administrators sign an admission; Meridian, not among them, submits it."""
    admission = governance_pb2.Governance(
        action_id=new_id("action"),
        partner_admission=governance_pb2.PartnerAdmission(
            partner=governance_pb2.PartnerSpec(
                partner_id="new-trader",
                legal_name="New Trader Ltd",
                country="GB",
                roles=["ROLE_TRADER"],
                public_keys=[partner_signer("new-trader").public_key],
            )
        ),
    )
    envelope = signed(admission, ADMINISTRATORS, GOVERNANCE_PAYLOAD_TYPE)
    with unchanged(node):
        refused(
            lambda: connect(MERIDIAN).ledger.Append(append_request(envelope, ADMINISTRATORS)),
            PERMISSION_DENIED,
            "IDENTITY_MISMATCH",
        )


def _revocation(partner_id: str) -> Envelope:
    revocation = governance_pb2.Governance(
        action_id=new_id("action"),
        key_revocation=governance_pb2.KeyRevocation(
            partner_id=partner_id, keyid=partner_signer(partner_id).keyid, reason="compromise"
        ),
    )
    return signed(revocation, [partner_id], GOVERNANCE_PAYLOAD_TYPE)


def _halmahera_extraction() -> Envelope:
    body = event_pb2.Extraction(
        facility_id=WEDA_BAY,
        lot_id=new_id("lot"),
        material="nickel-cobalt mixed hydroxide precipitate (MHP)",
        mass_grams=5_000_000,
        contents=element_contents(Ni=390_000, Co=32_000),
    )
    return signed_event(HALMAHERA, body)


def test_an_entry_signed_with_a_revoked_key_is_refused(
    node: NodeThread, connect: Connections, log_key: VerifierKey
) -> None:
    """Halmahera revokes its only key through the node (a partner may revoke its own key
    with that key); from then on its entries are refused, whether it sends the public key
    or lets the node look it up."""
    halmahera = connect(HALMAHERA).ledger
    before = _halmahera_extraction()
    admitted = halmahera.Append(append_request(before, [HALMAHERA]))
    verified(admitted.receipt, before, log_key)

    revocation = _revocation(HALMAHERA)
    revoked = halmahera.Append(append_request(revocation, [HALMAHERA]))
    assert verified(revoked.receipt, revocation, log_key).leaf.index == admitted.receipt.index + 1

    for with_keys in (True, False):
        after = _halmahera_extraction()
        with unchanged(node):
            request = append_request(after, [HALMAHERA], with_keys=with_keys)
            refused(
                functools.partial(halmahera.Append, request), PERMISSION_DENIED, "KEY_NOT_VALID"
            )
    # Reading needs no key: Halmahera is still an admitted partner.
    partner = connect(HALMAHERA).registry.GetPartner(
        registry_service_pb2.GetPartnerRequest(partner_id=HALMAHERA)
    )
    assert [key.revoked_index for key in partner.partner.keys] == [revoked.receipt.index]


def _auditor_custody_bodies() -> dict[str, Message]:
    return {
        "extraction": extraction(),
        "recovery": event_pb2.Recovery(
            facility_id=DUISBURG_SITE,
            lot_id=new_id("lot"),
            material="black mass",
            mass_grams=1_000_000,
            contents=element_contents(Co=60_000),
            scrap_origin=event_pb2.SCRAP_ORIGIN_POST_CONSUMER,
        ),
        "dispatch": event_pb2.Dispatch(
            lot_id=FINAL_LOT_ID, to_partner_id=MERIDIAN, mass_grams=66_000_000, transport="road"
        ),
        "receipt": event_pb2.Receipt(
            dispatch_event_id=new_id("event"), lot_id=FINAL_LOT_ID, received_mass_grams=1
        ),
        "transformation": event_pb2.Transformation(
            facility_id=KOKKOLA_REFINERY,
            process=event_pb2.PROCESS_SPLIT,
            inputs=[event_pb2.TransformationInput(lot_id=FINAL_LOT_ID, consumed_mass_grams=1)],
            outputs=[
                event_pb2.TransformationOutput(
                    lot_id=new_id("lot"),
                    material="cells",
                    mass_grams=1,
                    contents=element_contents(Co=1),
                )
            ],
        ),
        "assay": event_pb2.Assay(
            lot_id=FINAL_LOT_ID, contents=element_contents(Co=27_000), method="ICP-OES"
        ),
    }


@pytest.mark.parametrize("body", sorted(_auditor_custody_bodies()))
def test_an_auditor_cannot_append_custody_events(
    node: NodeThread, connect: Connections, body: str
) -> None:
    envelope = signed_event(ASSURANCE, _auditor_custody_bodies()[body])
    with unchanged(node):
        refused(
            lambda: connect(ASSURANCE).ledger.Append(append_request(envelope, [ASSURANCE])),
            PERMISSION_DENIED,
            "ROLE_REQUIRED",
        )


def test_an_auditor_records_certifications(
    node: NodeThread, connect: Connections, log_key: VerifierKey
) -> None:
    """Decision (DESIGN section 4, docs/grpc.md "Auditors"): an AUDITOR is not read-only. It
    records what auditors attest, certifications of facilities, so its certification is
    admitted while its custody events are refused (test above). A read-only party is an
    auditor that never appends."""
    certification = event_pb2.Certification(
        scheme="RMAP",
        facility_id=KOKKOLA_REFINERY,
        metals=["Co"],
        status=event_pb2.CERTIFICATION_STATUS_CONFORMANT,
    )
    certification.valid_from.seconds = utc_seconds("2027-01-15T00:00:00Z")
    certification.valid_until.seconds = utc_seconds("2028-01-15T00:00:00Z")
    envelope = signed_event(ASSURANCE, certification)
    before = log_state(node)
    response = connect(ASSURANCE).ledger.Append(append_request(envelope, [ASSURANCE]))
    receipt = verified(response.receipt, envelope, log_key)
    assert receipt.leaf.index == before.tree_size
    assert log_state(node).tree_size == before.tree_size + 1
    # The same certification by a partner without the role is refused.
    other = signed_event(RHEINLAND, certification)
    with unchanged(node):
        refused(
            lambda: connect(RHEINLAND).ledger.Append(append_request(other, [RHEINLAND])),
            PERMISSION_DENIED,
            "ROLE_REQUIRED",
        )


def _channel_with(pki: Pki, certificate: Path, key: Path, node: NodeThread) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.certificate_pem,
        private_key=key.read_bytes(),
        certificate_chain=certificate.read_bytes(),
    )
    return grpc.secure_channel(node.address, credentials)


def test_the_nodes_server_certificate_cannot_act_as_a_client(node: NodeThread, pki: Pki) -> None:
    """It chains to the consortium CA, but its EKU is serverAuth: the handshake fails."""
    with _channel_with(pki, pki.server_cert, pki.server_key, node) as channel, unchanged(node):
        refused(
            lambda: Stubs.on(channel).ledger.GetCheckpoint(
                ledger_service_pb2.GetCheckpointRequest()
            ),
            Code.UNAVAILABLE,
            None,
        )


def test_a_client_certificate_naming_no_partner_is_unauthenticated(
    node: NodeThread, pki: Pki, tmp_path: Path
) -> None:
    """A consortium clientAuth certificate whose only SAN is a DNS name passes the
    handshake but names no partner (docs/pki.md): UNAUTHENTICATED."""
    issued = _issue(
        pki.ca,
        tmp_path,
        "workstation",
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LUALABA)]),
        alt_names=[x509.DNSName("workstation.example")],
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        days=1,
    )
    with (
        _channel_with(pki, issued.certificate_path, issued.key_path, node) as channel,
        unchanged(node),
    ):
        stubs = Stubs.on(channel)
        for call in _every_kind_of_call(stubs).values():
            refused(call, Code.UNAUTHENTICATED, "UNAUTHENTICATED")


# --- insecure development mode ---------------------------------------------------------


@pytest.fixture(scope="module")
def dev_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeThread]:
    with running_node(node_config(new_ledger(tmp_path_factory.mktemp("dev")), None)) as thread:
        yield thread


def _dev_stubs(node: NodeThread) -> Stubs:
    return Stubs.on(grpc.insecure_channel(node.address))


def test_insecure_dev_without_partner_metadata_is_unauthenticated(dev_node: NodeThread) -> None:
    stubs = _dev_stubs(dev_node)
    with unchanged(dev_node):
        for call in _every_kind_of_call(stubs).values():
            refused(call, grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
    stubs.channel.close()


def test_insecure_dev_trusts_the_named_partner(dev_node: NodeThread) -> None:
    stubs = _dev_stubs(dev_node)
    named = ((DEV_PARTNER_METADATA, LUALABA),)
    before = log_state(dev_node)
    response = stubs.ledger.Append(append_request(lualaba_extraction(), [LUALABA]), metadata=named)
    assert response.receipt.index == before.tree_size
    with unchanged(dev_node):
        refused(
            lambda: stubs.ledger.Append(
                append_request(lualaba_extraction(), [LUALABA]),
                metadata=((DEV_PARTNER_METADATA, MERIDIAN),),
            ),
            PERMISSION_DENIED,
            "IDENTITY_MISMATCH",
        )
        refused(
            lambda: stubs.ledger.GetCheckpoint(
                ledger_service_pb2.GetCheckpointRequest(),
                metadata=((DEV_PARTNER_METADATA, STRANGER),),
            ),
            PERMISSION_DENIED,
            "NOT_A_PARTNER",
        )
    stubs.channel.close()
