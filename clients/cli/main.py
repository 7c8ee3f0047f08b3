"""``custody``: command line of the Custody ledger."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from clients.cli.context import CliContext, default_data_dir
from clients.cli.keys_commands import keys
from clients.cli.log_commands import db, init, log
from clients.cli.lot_commands import lot
from clients.cli.pki_commands import pki
from clients.cli.sample_commands import sample
from clients.cli.serve_command import serve
from clients.cli.submit_command import submit
from ledger.errors import CustodyError, LogIntegrityError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Local data directory (default $CUSTODY_HOME or ~/.local/share/custody).",
)
@click.option(
    "--db",
    "db_url",
    envvar="CUSTODY_DATABASE_URL",
    default=None,
    help="Database URL (default: SQLite file custody.db in the data directory).",
)
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, db_url: str | None) -> None:
    """Custody: a verifiable chain-of-custody ledger for critical minerals."""
    state = CliContext(data_dir=data_dir or default_data_dir(), db_url=db_url)
    ctx.obj = state
    ctx.call_on_close(state.close)


cli.add_command(init)
cli.add_command(keys)
cli.add_command(log)
cli.add_command(db)
cli.add_command(lot)
cli.add_command(pki)
cli.add_command(sample)
cli.add_command(serve)
cli.add_command(submit)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; Custody errors become one line on stderr and a non-zero exit."""
    try:
        result = cli.main(args=argv, prog_name="custody", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except LogIntegrityError as exc:
        where = f" (first bad index: {exc.index})" if exc.index is not None else ""
        click.echo(f"custody: {exc.reason}: {exc}{where}", err=True)
        return 3
    except CustodyError as exc:
        click.echo(f"custody: {exc.reason}: {exc}", err=True)
        return 1
    # Without standalone mode click returns an exit code for --help and ctx.exit().
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
