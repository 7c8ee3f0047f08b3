"""The Custody partner SDK: submit signed entries to a node and read the log, verified.

Two clients with the same methods: ``PartnerClient`` (blocking) and
``AsyncPartnerClient`` (asyncio). What the log commits to is checked against the
log's verifier key before it is returned: receipts (``ledger.receipts.verify_receipt``,
leaf signatures included, also the original receipt of an entry already logged),
checkpoints, proofs, single entries, every ``follow`` message (before any of its
leaves is yielded, from any start index) and provenance bundles
(``ledger.bundle.verify_bundle``). ``entries`` checks each leaf as it arrives and
ties the range to the signed checkpoint when the range ends: until then its leaves
are provisional. The node's derived answers (``registry``, ``partner``,
``facility``, ``lot``, and a trace's ``composition``) are returned unverified: a
convenience, which an auditor recomputes from verified leaves. Refusals and
failures raise ``ledger.errors.CustodyError`` subclasses (see docs/sdk.md)::

    from clients.sdk import ClientTls, PartnerClient
    from ledger.note import VerifierKey

    tls = ClientTls.from_files("ca.pem", "kokkola-refining.pem", "kokkola-refining-key.pem")
    with PartnerClient.connect(
        "ledger.example.org:7443", log_key=VerifierKey.parse(vkey), tls=tls
    ) as client:
        receipt = client.sign_and_submit(payload_type, payload, [signer])
"""

from clients.sdk._internal.async_client import AsyncPartnerClient
from clients.sdk._internal.results import (
    LogEntry,
    SubmitItem,
    SubmitOutcome,
    TraceResult,
    VerifiedConsistency,
    VerifiedInclusion,
)
from clients.sdk._internal.submission import DEFAULT_WINDOW, MESSAGE_BYTES
from clients.sdk._internal.sync_client import PartnerClient
from clients.sdk._internal.transport import ClientTls
from ledger.receipts import VerifiedReceipt

__all__ = [
    "DEFAULT_WINDOW",
    "MESSAGE_BYTES",
    "AsyncPartnerClient",
    "ClientTls",
    "LogEntry",
    "PartnerClient",
    "SubmitItem",
    "SubmitOutcome",
    "TraceResult",
    "VerifiedConsistency",
    "VerifiedInclusion",
    "VerifiedReceipt",
]
