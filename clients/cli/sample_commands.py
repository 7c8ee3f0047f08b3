"""``custody sample``: fill an empty ledger with the sample consortium or synthetic load."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import click

from clients.cli.context import CliContext
from clients.cli.options import pass_cli
from clients.sample.consortium import (
    FINAL_LOT_ID,
    SAMPLE_PARTNERS,
    partner_private_key,
    sample_entries,
)
from clients.sample.synthetic import synthetic_submissions
from ledger.admission import Submission
from ledger.custody_rules import CustodyRules
from ledger.errors import AdmissionError, ConfigurationError, CustodyError
from ledger.keys import save_private_key
from ledger.sequencer import Sequencer

BATCH = 1_000


@click.command("sample")
@click.option(
    "--synthetic",
    "synthetic_count",
    type=click.IntRange(min=1),
    default=None,
    help="Append this many synthetic events (a large consortium) instead of the sample.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --synthetic.")
@click.option(
    "--export-keys",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write the sample partners' keys here (they are public: samples only).",
)
@pass_cli
def sample(
    state: CliContext, synthetic_count: int | None, seed: int, export_keys: Path | None
) -> None:
    """Build a consortium and its history in an empty ledger.

    The sample: two administrators, three mines (one artisanal) in the DR
    Congo and Indonesia, a trader, a certified refinery, a cathode maker, a
    cell maker, a recycler, a lab and an auditor, and the custody history
    of a lot of battery cells. Every entry goes through the admission rules.
    """
    key_paths = _check_options(synthetic_count, seed, export_keys)
    store = state.log_store()
    if store.size() != 0:
        raise ConfigurationError(
            "the ledger is not empty: a consortium starts with its genesis entry "
            "(use a new --data-dir)"
        )
    if synthetic_count is None:
        submissions: Iterable[Submission] = [e.submission for e in sample_entries()]
        total = None
    else:
        submissions = synthetic_submissions(synthetic_count, seed=seed)
        total = synthetic_count
    sequencer = Sequencer(store, state.log_signer(), rules=CustodyRules(store))
    started = time.perf_counter()
    appended = 0
    try:
        for batch in _batches(submissions, BATCH):
            outcomes = sequencer.append_batch(batch)
            for outcome in outcomes:
                if isinstance(outcome, CustodyError):
                    raise AdmissionError(
                        f"the sample was refused at entry {appended}: {outcome.reason}: {outcome}"
                    )
                appended += 1
            if total is not None and total > BATCH:
                click.echo(f"\r{appended:,}/{total:,} entries", nl=False, err=True)
    finally:
        sequencer.close()
    seconds = time.perf_counter() - started
    if total is not None and total > BATCH:
        click.echo(err=True)
    click.echo(f"appended {appended:,} entries in {seconds:.1f} s; tree size {sequencer.size}")
    if synthetic_count is None:
        click.echo(f"trace the sample's battery cells with: custody lot trace {FINAL_LOT_ID}")
    for partner_id, path in key_paths:
        save_private_key(partner_private_key(partner_id), path)
    if export_keys is not None:
        click.echo(f"sample partner keys written to {export_keys}/ (public keys: samples only)")


def _check_options(
    synthetic_count: int | None, seed: int, export_keys: Path | None
) -> list[tuple[str, Path]]:
    """Refuse contradictory options before anything is appended; the key files to write."""
    if synthetic_count is not None and export_keys is not None:
        raise ConfigurationError("--export-keys exports the sample's keys; it has no --synthetic")
    if synthetic_count is None and seed != 0:
        raise ConfigurationError("--seed applies to --synthetic only")
    return [] if export_keys is None else _key_paths(export_keys)


def _key_paths(directory: Path) -> list[tuple[str, Path]]:
    """Where each sample key goes; checked before anything is appended."""
    paths = [(p.partner_id, directory / f"{p.partner_id}.pem") for p in SAMPLE_PARTNERS]
    taken = [str(path) for _, path in paths if path.exists()]
    if taken:
        raise ConfigurationError(f"--export-keys would overwrite {', '.join(taken)}")
    return paths


def _batches(items: Iterable[Submission], size: int) -> Iterator[list[Submission]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
