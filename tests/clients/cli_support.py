"""Helpers for the CLI tests: a runner, and entries in protobuf's JSON mapping.

The builders return ``{"event": {...}}`` / ``{"governance": {...}}`` objects
as ``custody log append`` reads them (camelCase field names, enum names,
base64 bytes, RFC 3339 timestamps).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from clients.cli.main import main
from ledger.checkpoint import open_checkpoint
from ledger.note import VerifierKey

Entry = dict[str, Any]
ORIGIN = "cli.custody.example/log"
WHEN = "2026-03-02T08:00:00Z"

ADMIN = "operator"
MINE = "mine-a"
TRADER = "trader-b"
PIT = "mine-a-pit"
LOT = "LOT-A-0001"
LOT_MASS = 24_000_000
LOT_CONTENTS = {"Co": 300_000, "Cu": 50_000}


class Cli:
    """Runs ``custody`` in-process against one data directory and database."""

    def __init__(self, home: Path, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.home, self.db_url, self.capsys = home, db_url, capsys
        self.last_err = ""

    def run(self, *args: str, expect: int = 0) -> str:
        self.capsys.readouterr()
        code = main(["--data-dir", str(self.home), "--db", self.db_url, *args])
        out, err = self.capsys.readouterr()
        assert code == expect, f"exit {code}, stdout: {out}\nstderr: {err}"
        self.last_err = err
        return out

    def new_key(self, path: Path) -> str:
        """Generate a key at ``path`` with ``keys generate``; its base64 raw public key."""
        return _public_key(self.run("keys", "generate", "-o", str(path)))

    def public_key(self, path: Path) -> str:
        """The base64 raw public key of a key file, as ``keys show`` prints it."""
        return _public_key(self.run("keys", "show", str(path)))

    def append(self, entries: Path, *keys: Path, expect: int = 0, json_out: bool = False) -> str:
        args = ["log", "append", str(entries)]
        for key in keys:
            args += ["--key", str(key)]
        return self.run(*args, *(["--json"] if json_out else []), expect=expect)

    def tree_size(self) -> int:
        key = VerifierKey.parse(self.run("log", "vkey").strip())
        return open_checkpoint(self.run("log", "checkpoint").encode(), key).checkpoint.size


def _public_key(shown: str) -> str:
    for line in shown.splitlines():
        if line.startswith("public key:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no public key in {shown!r}")


def write_entries(
    path: Path, entries: Entry | Sequence[Entry], style: Literal["array", "lines"] = "array"
) -> Path:
    """Write one entry as an object, or several as a JSON array or as JSON Lines."""
    if isinstance(entries, dict):
        text = json.dumps(entries, indent=2)
    elif style == "array":
        text = json.dumps(list(entries), indent=2)
    else:
        text = "".join(json.dumps(entry) + "\n" for entry in entries)
    path.write_text(text, encoding="utf-8")
    return path


# --- governance ---------------------------------------------------------------------


def partner(
    partner_id: str, roles: Iterable[str], *keys: str, country: str = "BE"
) -> dict[str, Any]:
    """A PartnerSpec; roles without the ``ROLE_`` prefix, keys as base64."""
    return {
        "partnerId": partner_id,
        "legalName": f"{partner_id} Ltd",
        "country": country,
        "roles": [f"ROLE_{role}" for role in roles],
        "publicKeys": list(keys),
    }


def genesis(action_id: str, administrators: Sequence[dict[str, Any]], threshold: int = 1) -> Entry:
    body = {"consortium": "CLI test consortium", "threshold": threshold}
    return {
        "governance": {
            "actionId": action_id,
            "genesis": {**body, "administrators": list(administrators)},
        }
    }


def admission(action_id: str, spec: dict[str, Any]) -> Entry:
    return {"governance": {"actionId": action_id, "partnerAdmission": {"partner": spec}}}


def facility(
    action_id: str, facility_id: str, owner: str, kind: str = "MINE_SITE", country: str = "CD"
) -> Entry:
    registration = {
        "facilityId": facility_id,
        "partnerId": owner,
        "name": f"{facility_id} site",
        "type": f"FACILITY_TYPE_{kind}",
        "country": country,
        "latitudeE6": -10_738_500,
        "longitudeE6": 25_385_300,
    }
    return {"governance": {"actionId": action_id, "facilityRegistration": registration}}


# --- events -------------------------------------------------------------------------


def contents(ppm: dict[str, int]) -> list[dict[str, Any]]:
    return [{"element": element, "ppm": value} for element, value in sorted(ppm.items())]


def event(event_id: str, partner_id: str, body: dict[str, Any], when: str = WHEN) -> Entry:
    """An event; ``body`` is ``{"extraction": {...}}`` or another single body."""
    return {"event": {"eventId": event_id, "eventTime": when, "partnerId": partner_id, **body}}


def extraction(
    event_id: str,
    partner_id: str = MINE,
    lot_id: str = LOT,
    *,
    facility_id: str = PIT,
    mass: int = LOT_MASS,
    ppm: dict[str, int] = LOT_CONTENTS,
) -> Entry:
    body = {
        "facilityId": facility_id,
        "lotId": lot_id,
        "material": "cobalt hydroxide",
        "massGrams": mass,
        "contents": contents(ppm),
    }
    return event(event_id, partner_id, {"extraction": body})


def dispatch(
    event_id: str, partner_id: str, lot_id: str, to_partner: str, mass: int = LOT_MASS
) -> Entry:
    body = {"lotId": lot_id, "toPartnerId": to_partner, "massGrams": mass, "transport": "road"}
    return event(event_id, partner_id, {"dispatch": body}, when="2026-03-03T08:00:00Z")


def receipt(
    event_id: str, partner_id: str, dispatch_id: str, lot_id: str, mass: int = LOT_MASS
) -> Entry:
    body = {"dispatchEventId": dispatch_id, "lotId": lot_id, "receivedMassGrams": mass}
    return event(event_id, partner_id, {"receipt": body}, when="2026-03-09T08:00:00Z")


def assay(event_id: str, partner_id: str, lot_id: str, ppm: dict[str, int]) -> Entry:
    body = {"lotId": lot_id, "contents": contents(ppm), "method": "ICP-OES", "sampleId": "S-1"}
    return event(event_id, partner_id, {"assay": body}, when="2026-06-01T08:00:00Z")


# --- a small consortium -------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    """Key files of the small consortium: an administrator, a mine and a trader."""

    admin: Path
    mine: Path
    trader: Path


def small_consortium(cli: Cli, directory: Path) -> tuple[Keys, list[Entry]]:
    """New keys, and the governance entries admitting a mine and a trader.

    Genesis (``ADMIN``), admission of ``MINE`` and ``TRADER``, registration of
    ``PIT``; all four are to be signed by ``keys.admin``.
    """
    keys = Keys(directory / "admin.pem", directory / "mine.pem", directory / "trader.pem")
    admin_key, mine_key, trader_key = (cli.new_key(k) for k in (keys.admin, keys.mine, keys.trader))
    entries = [
        genesis("gov-genesis", [partner(ADMIN, ["ADMIN"], admin_key)]),
        admission("gov-admit-mine", partner(MINE, ["MINE"], mine_key, country="CD")),
        admission("gov-admit-trader", partner(TRADER, ["TRADER"], trader_key, country="CH")),
        facility("gov-register-pit", PIT, MINE),
    ]
    return keys, entries
