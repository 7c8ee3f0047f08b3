"""Session-wide PKI for the service tests (issuing certificates takes a moment)."""

from __future__ import annotations

import pytest

from tests.services.node_support import Pki, make_pki, sample_partner_ids


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), sample_partner_ids())
