"""``custody submit``: sign JSON entries and send them to a node over one AppendStream.

Also what ``custody log append --server`` runs, and where the report both kinds of
append print is made, so that a local and a remote append read the same.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, TextIO

import click

from clients.cli.context import CliContext, load_key
from clients.cli.entries import parse_entries
from clients.cli.options import json_option, pass_cli, signing_keys_option
from clients.cli.remote import RemoteOptions, connect, remote_options, vkey_option
from clients.cli.render import b64, to_json
from clients.sdk import DEFAULT_WINDOW, SubmitItem, SubmitOutcome
from ledger.dsse import Envelope, Signer, sign_envelope
from ledger.errors import AdmissionError, CustodyError
from ledger.receipts import Receipt

_PROGRESS_LINES = 10
"""Without a terminal, ``--progress`` prints this many "submitted N of M" lines."""


# --- the report both appends print ------------------------------------------------------------


def receipt_result(label: str, envelope: Envelope, receipt: Receipt) -> dict[str, object]:
    """One appended (or already logged) entry with its verified receipt."""
    return {
        "entry": label,
        "index": receipt.index,
        "duplicate": receipt.duplicate,
        "entry_digest": b64(envelope.digest()),
        "leaf_hash": b64(receipt.inclusion.leaf_hash),
        "checkpoint": receipt.checkpoint.decode(),
        "inclusion_proof": receipt.inclusion.to_json(),
    }


def refusal_result(label: str, error: CustodyError) -> dict[str, object]:
    return {"entry": label, "refused": error.reason, "message": str(error)}


def report_appends(
    results: Sequence[dict[str, object]],
    refused: Sequence[tuple[str, CustodyError]],
    tree_size: int | None,
    as_json: bool,
) -> None:
    """Print one line per entry (or the JSON list); exit 1 naming the first refusal."""
    if as_json:
        click.echo(to_json(list(results)))
    else:
        for result in results:
            if "refused" in result:
                click.echo(f"refused  {result['entry']}: {result['refused']}: {result['message']}")
            else:
                what = "logged " if result["duplicate"] else "appended"
                click.echo(
                    f"{what} {result['entry']} at index {result['index']} (receipt verified)"
                )
        if tree_size is not None:
            click.echo(f"tree size {tree_size}", err=True)
    if refused:
        label, first = refused[0]
        error = AdmissionError(
            f"{len(refused)} of {len(results)} entries refused (they changed nothing); "
            f"first: {label}: {first}"
        )
        error.reason = first.reason  # the exit line names the rule that refused
        raise error


# --- sending -------------------------------------------------------------------------------


class _Progress(Protocol):
    def update(self, n_steps: int) -> None: ...


class _LineProgress:
    """ "submitted N of M" on stderr a few times: progress for logs, not for terminals."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.step = max(1, total // _PROGRESS_LINES)

    def update(self, n_steps: int) -> None:
        self.done += n_steps
        if self.done % self.step == 0 or self.done == self.total:
            click.echo(f"submitted {self.done} of {self.total}", err=True)


def submit_entries(
    state: CliContext,
    remote: RemoteOptions,
    vkey: str | None,
    entries_file: TextIO,
    key_files: Sequence[Path],
    *,
    as_json: bool,
    progress: bool,
    window: int = DEFAULT_WINDOW,
) -> None:
    """Sign every entry of ``entries_file`` with every key and submit them over one
    stream; each receipt is verified against the log key before it is reported."""
    drafts = parse_entries(entries_file.read(), entries_file.name)
    signers = [Signer(load_key(path)) for path in key_files]
    keys = [signer.public_key for signer in signers]

    def signed() -> Iterator[SubmitItem]:
        # Signed as the stream asks for them: a large file is never signed all at once.
        for draft in drafts:
            yield sign_envelope(draft.payload_type, draft.payload, signers), keys

    outcomes: dict[int, SubmitOutcome] = {}
    with connect(state, remote, vkey, keep_state=False) as client:
        stream = client.submit_many(signed(), window=window)
        with contextlib.closing(stream), contextlib.ExitStack() as stack:
            bar: _Progress | None = None
            if sys.stderr.isatty():
                bar = stack.enter_context(
                    click.progressbar(length=len(drafts), label="submitting", file=sys.stderr)
                )
            elif progress:
                bar = _LineProgress(len(drafts))
            for outcome in stream:
                outcomes[outcome.position] = outcome
                if bar is not None:
                    bar.update(1)
    results: list[dict[str, object]] = []
    refused: list[tuple[str, CustodyError]] = []
    for position, draft in enumerate(drafts):
        outcome = outcomes[position]
        if outcome.receipt is not None:
            results.append(receipt_result(draft.label, outcome.envelope, outcome.receipt.receipt))
        elif outcome.error is not None:
            refused.append((draft.label, outcome.error))
            results.append(refusal_result(draft.label, outcome.error))
    tree_size = max(
        (o.receipt.checkpoint.checkpoint.size for o in outcomes.values() if o.receipt),
        default=None,
    )
    report_appends(results, refused, tree_size, as_json)


@click.command("submit")
@click.argument("entries_file", type=click.File("r", encoding="utf-8"))
@signing_keys_option
@json_option
@click.option(
    "--progress",
    is_flag=True,
    help="Report progress on stderr even when it is not a terminal (a bar is shown on one).",
)
@click.option(
    "--window",
    type=click.IntRange(min=1, max=100_000),
    default=DEFAULT_WINDOW,
    show_default=True,
    help="Entries sent ahead of their answers.",
)
@vkey_option
@remote_options
@pass_cli
def submit(
    state: CliContext,
    entries_file: TextIO,
    key_files: tuple[Path, ...],
    as_json: bool,
    progress: bool,
    window: int,
    vkey: str | None,
    remote: RemoteOptions | None,
) -> None:
    """Sign the entries in ENTRIES_FILE (- for stdin) and submit them to a node.

    The file is read as `custody log append` reads it. Entries stream to the node
    over one AppendStream, at most --window unanswered at a time; every receipt is
    verified against the log's verifier key before it is printed. Refused entries
    are reported with their reason, change nothing, and make the command exit 1.
    Needs --server (or CUSTODY_SERVER) and the TLS options.
    """
    if remote is None:
        raise click.UsageError("submit needs --server HOST:PORT (or CUSTODY_SERVER)")
    submit_entries(
        state,
        remote,
        vkey,
        entries_file,
        key_files,
        as_json=as_json,
        progress=progress,
        window=window,
    )
