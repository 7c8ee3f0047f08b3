"""``custody keys``: partner signing keys."""

from __future__ import annotations

import base64
from pathlib import Path

import click

from clients.cli.context import KEY_PASSPHRASE_ENV, load_key
from ledger.dsse import keyid_for
from ledger.keys import (
    generate_private_key,
    passphrase_from_env,
    public_key_bytes,
    save_private_key,
)


@click.group()
def keys() -> None:
    """Generate and inspect Ed25519 signing keys."""


@keys.command("generate")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the private key (PEM, mode 0600).",
)
@click.option(
    "--encrypt/--no-encrypt",
    default=False,
    help=f"Encrypt the key with a passphrase (from ${KEY_PASSPHRASE_ENV}, else asked for).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
def generate(output: Path, encrypt: bool, force: bool) -> None:
    """Create a new Ed25519 key and print its keyid and public key."""
    passphrase = None
    if encrypt:
        passphrase = (
            passphrase_from_env(KEY_PASSPHRASE_ENV)
            or click.prompt("Passphrase", hide_input=True, confirmation_prompt=True).encode()
        )
    key = generate_private_key()
    save_private_key(key, output, passphrase, overwrite=force)
    _print_public(key_path=output, public=public_key_bytes(key))


@keys.command("show")
@click.argument("key_file", type=click.Path(dir_okay=False, path_type=Path))
def show(key_file: Path) -> None:
    """Print the keyid and public key of a private key file."""
    _print_public(key_path=key_file, public=public_key_bytes(load_key(key_file)))


def _print_public(*, key_path: Path, public: bytes) -> None:
    click.echo(f"key file:   {key_path}")
    click.echo(f"keyid:      {keyid_for(public)}")
    click.echo(f"public key: {base64.b64encode(public).decode()}")
