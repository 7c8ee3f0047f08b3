"""Command-line options several ``custody`` commands share, defined once."""

from __future__ import annotations

from pathlib import Path

import click

from clients.cli.context import CliContext

pass_cli = click.make_pass_decorator(CliContext)
"""Hands a command the ``CliContext`` that ``custody`` built from its global options."""

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")

signing_keys_option = click.option(
    "--key",
    "key_files",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Signing key (repeat for several signatures, e.g. k administrators).",
)
