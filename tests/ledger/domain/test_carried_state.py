"""Records one batch read or wrote are handed on to the next (``CustodyRules``) only
while storage holds exactly what that batch committed: a batch that failed, or
another writer's batch in between, makes the next batch read afresh."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection

from ledger import custody_rules
from ledger.custody_rules import CustodyRules
from ledger.domain.records import Consortium, Facility, Partner, PartnerKey, Record
from ledger.domain.state import StateLoader
from ledger.errors import AdmissionRuleError, Rule, StorageError
from ledger.receipts import Receipt
from ledger.sequencer import Sequencer
from ledger.storage import LogStore
from tests.ledger.domain.ledger_under_test import Ledger

R = TypeVar("R", bound=Record)


def rules_of(ledger: Ledger) -> CustodyRules:
    rules = ledger.sequencer.rules
    assert isinstance(rules, CustodyRules)
    return rules


def test_the_next_batch_starts_from_what_the_last_one_read(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = rules_of(ledger)
    read: list[type[Any]] = []
    real_loader = rules.domain.loader

    def recording(conn: Connection) -> StateLoader:
        loader = real_loader(conn)

        class Recording:
            def load(self, kind: type[R], keys: Collection[str]) -> dict[str, R]:
                read.append(kind)
                return loader.load(kind, keys)

        return Recording()

    ledger.mined()
    assert rules.carried_records > 0
    monkeypatch.setattr(rules.domain, "loader", recording)
    ledger.mined()  # the same mine, site and key; a new lot and event id
    assert read  # the new ids are looked up
    assert not {Consortium, Partner, PartnerKey, Facility} & set(read)


def test_a_failed_batch_hands_nothing_on(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    lot = ledger.mined()
    dispatch = ledger.world.dispatch("mine", lot, "trader", 1000)

    def fails(*args: object, **kwargs: object) -> None:
        raise StorageError("the disk is full")

    with monkeypatch.context() as patch:
        patch.setattr(ledger.store, "insert_checkpoint", fails)
        with pytest.raises(StorageError):
            ledger.submit(dispatch)
    assert rules_of(ledger).carried_records == 0
    # Rolled back: the lot is still held, and the dispatch goes through this time.
    (outcome,) = ledger.submit(dispatch)
    assert isinstance(outcome, Receipt)


def test_another_writers_batch_makes_the_next_batch_read_afresh(ledger: Ledger) -> None:
    lot = ledger.mined()  # this sequencer now carries the lot as held by the mine
    other = Sequencer(
        LogStore(ledger.store.engine), ledger.sequencer.signer, rules=CustodyRules(ledger.store)
    )
    try:
        (shipped,) = other.append_batch([ledger.world.dispatch("mine", lot, "trader", 1000)])
        assert isinstance(shipped, Receipt)
    finally:
        other.close()
    (again,) = ledger.submit(ledger.world.dispatch("mine", lot, "refiner", 1000))
    assert isinstance(again, AdmissionRuleError)
    assert again.rule is Rule.LOT_IN_TRANSIT


def test_what_is_handed_on_stays_within_its_bound(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries naming partners nobody admitted leave absences behind; those are not
    handed on past the bound, whoever sends them."""
    monkeypatch.setattr(custody_rules, "CARRIED_RECORDS", 40)
    rules = rules_of(ledger)
    for batch in range(5):
        strangers = [f"stranger-{batch}-{n}" for n in range(20)]
        for partner in strangers:
            ledger.world.signers[partner] = ledger.world.signers["mine"]
        outcomes = ledger.submit(
            *(ledger.world.extract(p, "mine-site", ledger.new_lot(), 10) for p in strangers)
        )
        assert all(isinstance(o, AdmissionRuleError) for o in outcomes)
        assert rules.carried_records <= 40
    lot = ledger.mined()  # and appending goes on as before
    assert ledger.lot(lot).holder_id == "mine"
