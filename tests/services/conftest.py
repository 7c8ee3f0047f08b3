"""The module-wide node of the service tests (and the session-wide ``pki`` of tests/conftest.py).

Each test module gets its own sample ledger and node, started once for the module.
A module configures them with two optional module-level knobs:

``NODE_LIMITS: dict[str, int | float]``
    Fields of ``[limits]`` for the node (``node_config(..., **NODE_LIMITS)``).
``PREFILL: int``
    Extractions by Lualaba appended locally, before the node starts, after the
    sample's 55 entries.
``SEQUENCER_OWN_PROCESS: bool``
    False runs the node's sequencer in the node's own process (default: its own).

The fixtures live here, not in tests/conftest.py: under tests/ledger the name
``ledger`` means a log store.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from ledger.note import VerifierKey
from tests.services.node_support import Ledger, NodeThread, Pki, node_config, running_node
from tests.services.rpc_support import (
    Connections,
    append_locally,
    log_verifier_key,
    lualaba_extraction,
    new_ledger,
)


def _prefill(request: pytest.FixtureRequest) -> int:
    prefill = getattr(request.module, "PREFILL", 0)
    assert type(prefill) is int, f"PREFILL must be a count, not {prefill!r}"
    assert prefill >= 0, f"PREFILL must be a count, not {prefill!r}"
    return prefill


def _limits(request: pytest.FixtureRequest) -> Mapping[str, int | float]:
    limits = getattr(request.module, "NODE_LIMITS", {})
    assert isinstance(limits, Mapping), f"NODE_LIMITS must be a mapping, not {limits!r}"
    return limits


@pytest.fixture(scope="module")
def ledger(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    """The sample ledger (plus ``PREFILL`` extractions) the module's node serves."""
    made = new_ledger(tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2]))
    prefill = _prefill(request)
    if prefill:
        append_locally(made, [lualaba_extraction() for _ in range(prefill)])
    return made


@pytest.fixture(scope="module")
def node(request: pytest.FixtureRequest, ledger: Ledger, pki: Pki) -> Iterator[NodeThread]:
    """A node serving ``ledger`` over mutual TLS, with the module's ``NODE_LIMITS``."""
    own_process = getattr(request.module, "SEQUENCER_OWN_PROCESS", True)
    assert type(own_process) is bool, f"SEQUENCER_OWN_PROCESS must be a bool: {own_process!r}"
    config = node_config(ledger, pki, own_process=own_process, **_limits(request))
    with running_node(config) as thread:
        yield thread


@pytest.fixture(scope="module")
def connect(node: NodeThread, pki: Pki) -> Iterator[Connections]:
    """Channels to the module's node, as any partner; closed at the end of the module."""
    with Connections(node, pki) as connections:
        yield connections


@pytest.fixture(scope="module")
def log_key(ledger: Ledger) -> VerifierKey:
    """The verifier key of the module's log, derived from its signing key file."""
    return log_verifier_key(ledger)
