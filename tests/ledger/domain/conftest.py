"""Fixtures of the domain tests: a ledger sequenced with the Custody rules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from custody.v1 import governance_pb2
from ledger.custody_rules import CustodyRules
from ledger.note import NoteSigner
from ledger.sequencer import Sequencer, initialise_log
from ledger.storage import LogStore
from tests.ledger.domain.builders import World, supply_chain_preamble
from tests.ledger.domain.ledger_under_test import Ledger


@pytest.fixture
def empty_ledger(store: LogStore, log_signer: NoteSigner) -> Iterator[Ledger]:
    """An initialised log without entries, sequenced with the Custody rules."""
    initialise_log(store, log_signer)
    sequencer = Sequencer(store, log_signer, rules=CustodyRules(store))
    try:
        yield Ledger(store, sequencer, World())
    finally:
        sequencer.close()


@pytest.fixture
def ledger(empty_ledger: Ledger) -> Ledger:
    """The supply-chain preamble, all admitted (indices 0 to 8)."""
    preamble = supply_chain_preamble(empty_ledger.world)
    assert empty_ledger.append(*preamble) == list(range(len(preamble)))
    empty_ledger.preamble_ids = [
        governance_pb2.Governance.FromString(entry.envelope.payload).action_id for entry in preamble
    ]
    return empty_ledger
