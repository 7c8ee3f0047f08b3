"""The README's first command (`make demo`) runs end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from clients import demo
from clients.sample.consortium import sample_entries


def test_demo_runs_and_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CUSTODY_DATABASE_URL", raising=False)
    assert demo.main() == 0
    out = capsys.readouterr().out
    entries = len(sample_entries())
    assert f"appended {entries} entries" in out
    assert f"log {demo.ORIGIN} verified: {entries} leaves" in out
    assert f"reindexed {entries} leaves" in out
    # The trace prints the hand-worked cobalt split of the sample's battery cells.
    assert "50.000%" in out
    assert "artisanal" in out
    assert "— demo.custody.example/ledger " in out
    # Running it again starts from a fresh ledger.
    assert demo.main() == 0
