"""The README's first command (`make demo`) runs end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from clients import demo


def test_demo_runs_and_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CUSTODY_DATABASE_URL", raising=False)
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert f"log {demo.ORIGIN} verified: {len(demo.RECORDS)} leaves" in out
    assert "— demo.custody.example/ledger " in out
    # Running it again starts from a fresh ledger.
    assert demo.main() == 0
