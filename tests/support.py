"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.admission import Submission
from ledger.dsse import Signer

TEST_ORIGIN = "test.custody.example/log"

TESTVECTORS = Path(
    os.environ.get(
        "CUSTODY_TESTVECTORS",
        Path(__file__).resolve().parents[2] / "shared" / "testvectors",
    )
)
"""Vectors from an independent implementation: ../shared/testvectors beside the checkout."""
PAYLOAD_TYPE = "application/vnd.custody.test.v1+json"

SubmissionFactory = Callable[..., Submission]


def new_signer() -> Signer:
    return Signer(Ed25519PrivateKey.generate())
