"""``custody serve``: run a gRPC node on the ledger."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from services.config import load_config
from services.node import serve as serve_node
from services.observability import configure_logging


@click.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    envvar="CUSTODY_CONFIG",
    help="The node's TOML configuration (see docs/grpc.md); CUSTODY_<SECTION>_<KEY> "
    "environment variables override it.",
)
@click.option(
    "--insecure-dev",
    is_flag=True,
    help="No TLS; callers name themselves in the custody-partner metadata. "
    "Local development only, never on a network.",
)
def serve(config_file: Path | None, insecure_dev: bool) -> None:
    """Serve the ledger over gRPC until interrupted (SIGINT/SIGTERM stop it gracefully)."""
    config = load_config(config_file, insecure_dev=insecure_dev)
    configure_logging(
        "json" if config.logging.format == "json" else "console", config.logging.level
    )
    asyncio.run(serve_node(config))
