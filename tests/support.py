"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.admission import Submission
from ledger.dsse import Signer

TEST_ORIGIN = "test.custody.example/log"

REPO = Path(__file__).resolve().parents[1]


def _vector_dirs() -> list[Path]:
    """Where the shared vectors may be, in order of preference.

    CI places ``shared/`` beside the checkout. A clone made elsewhere from a
    local checkout finds it beside the repository it was cloned from.
    """
    candidates = []
    if explicit := os.environ.get("CUSTODY_TESTVECTORS"):
        candidates.append(Path(explicit))
    candidates.append(REPO.parent / "shared" / "testvectors")
    origin = subprocess.run(
        ["git", "-C", str(REPO), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if origin and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / "shared" / "testvectors")
    return candidates


VECTOR_DIRS = _vector_dirs()
TESTVECTORS = next((d for d in VECTOR_DIRS if d.is_dir()), VECTOR_DIRS[0])
"""Vectors from an independent implementation (DESIGN.md): ../shared/testvectors."""
PAYLOAD_TYPE = "application/vnd.custody.test.v1+json"

SubmissionFactory = Callable[..., Submission]


def new_signer() -> Signer:
    return Signer(Ed25519PrivateKey.generate())
