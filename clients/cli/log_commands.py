"""``custody init``, ``custody db`` and ``custody log``: the local log, or a node's.

With ``--server`` the ``log`` commands ask a node instead of the local database;
``clients.cli.remote_log`` fetches and verifies, and the output here is the same.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import click

from clients.cli import remote_log
from clients.cli.context import CliContext, load_key
from clients.cli.entries import parse_entries
from clients.cli.options import json_option, pass_cli, signing_keys_option
from clients.cli.remote import RemoteOptions, remote_options, vkey_option
from clients.cli.render import b64, entry_json, micros_to_iso, to_json
from clients.cli.submit_command import (
    receipt_result,
    refusal_result,
    report_appends,
    submit_entries,
)
from clients.cli.verified_state import VerifiedState
from ledger.admission import Submission
from ledger.checkpoint import open_checkpoint
from ledger.custody_rules import CustodyRules, reindex
from ledger.dsse import Signer, sign_envelope
from ledger.errors import (
    ConfigurationError,
    CustodyError,
    KeyFileError,
    LogAlreadyInitialisedError,
    LogIntegrityError,
    NotFoundError,
    OutOfRangeError,
    VerificationError,
)
from ledger.keys import (
    LOG_KEY_PASSPHRASE_ENV,
    generate_private_key,
    passphrase_from_env,
    save_private_key,
)
from ledger.leaf import Leaf, decode_leaf
from ledger.log_verifier import verify_log
from ledger.merkle import ConsistencyProof, InclusionProof
from ledger.note import NoteSigner, VerifierKey, check_key_name
from ledger.receipts import verify_receipt
from ledger.records import StoredLeaf
from ledger.sequencer import Sequencer, initialise_log
from ledger.storage import migrate
from ledger.storage.log_store import MAX_INDEX, LogView

log_key_option = click.option(
    "--log-key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The log's signing key file (default: log-key.pem in the data directory).",
)


@click.command()
@click.option("--origin", required=True, help="The log's origin, e.g. ledger.example.org/custody.")
@log_key_option
@click.option(
    "--reuse-key", is_flag=True, help="Use an existing key file at --log-key instead of failing."
)
@pass_cli
def init(state: CliContext, origin: str, log_key: Path | None, reuse_key: bool) -> None:
    """Create the log and its signing key; print the log's verifier key."""
    check_key_name(origin)
    path = log_key or state.log_key_path
    store = state.store(migrate=True)
    if store.is_initialised():
        raise LogAlreadyInitialisedError(f"{state.url} already holds a log")
    if state.vkey_path.exists():
        raise ConfigurationError(
            f"{state.data_dir} already trusts the log key in {state.vkey_path}; "
            "use another --data-dir for another log"
        )
    created_key = not path.exists()
    if not created_key:
        if not reuse_key:
            raise KeyFileError(f"{path} exists: pass --reuse-key to use it, or another --log-key")
        key = load_key(path, LOG_KEY_PASSPHRASE_ENV)
    else:
        key = generate_private_key()
        save_private_key(key, path, passphrase_from_env(LOG_KEY_PASSPHRASE_ENV))
    signer = NoteSigner(origin, key)
    try:
        initialise_log(store, signer)
    except BaseException:
        if created_key:  # no log was created with it: leave nothing behind
            path.unlink(missing_ok=True)
        raise
    vkey = str(signer.verifier_key())
    try:
        state.vkey_path.parent.mkdir(parents=True, exist_ok=True)
        state.vkey_path.write_text(vkey + "\n")
    except OSError as exc:
        message = f"log created, but {state.vkey_path} could not be written: {exc}"
        raise ConfigurationError(message) from exc
    click.echo(f"created log {origin} in {state.url}", err=True)
    click.echo(f"log signing key: {path}; verifier key saved in {state.vkey_path}", err=True)
    click.echo(vkey)


@click.group("db")
def db() -> None:
    """Database administration."""


@db.command("upgrade")
@pass_cli
def db_upgrade(state: CliContext) -> None:
    """Apply schema migrations up to the newest revision."""
    migrate(state.store(migrate=True).engine)
    click.echo("schema is current")


@click.group()
def log() -> None:
    """Append to, read, prove and verify the local log, or a node's with --server."""


@log.command("append")
@click.argument("entries_file", type=click.File("r", encoding="utf-8"))
@signing_keys_option
@log_key_option
@json_option
@vkey_option
@remote_options
@pass_cli
def append(
    state: CliContext,
    entries_file: TextIO,
    key_files: tuple[Path, ...],
    log_key: Path | None,
    as_json: bool,
    vkey: str | None,
    remote: RemoteOptions | None,
) -> None:
    """Sign the events in ENTRIES_FILE (- for stdin) and append them in one batch.

    The file holds {"event": {...}} or {"governance": {...}} objects in
    protobuf's JSON mapping of custody.v1.Event / custody.v1.Governance: one,
    a JSON array, or one per line. Each receipt is verified before it is
    printed; entries the admission rules refuse are reported with their
    reason, change nothing, and make the command exit 1. With --server the
    entries go to that node, as `custody submit` sends them (--vkey is the key
    its receipts are checked against).
    """
    if remote is not None:
        if log_key is not None:
            raise click.UsageError("--log-key signs a local log; a node signs its own")
        submit_entries(
            state, remote, vkey, entries_file, key_files, as_json=as_json, progress=False
        )
        return
    drafts = parse_entries(entries_file.read(), entries_file.name)
    signers = [Signer(load_key(path)) for path in key_files]
    keys = [s.public_key for s in signers]
    envelopes = [sign_envelope(d.payload_type, d.payload, signers) for d in drafts]
    store = state.log_store()
    sequencer = Sequencer(
        store, state.log_signer(log_key), rules=CustodyRules(store), verify_threads=1
    )
    try:
        outcomes = sequencer.append_batch([Submission.of(e, keys) for e in envelopes])
    finally:
        sequencer.close()
    refused: list[tuple[str, CustodyError]] = []
    results: list[dict[str, object]] = []
    for draft, envelope, outcome in zip(drafts, envelopes, outcomes, strict=True):
        if isinstance(outcome, CustodyError):
            refused.append((draft.label, outcome))
            results.append(refusal_result(draft.label, outcome))
            continue
        verify_receipt(outcome, sequencer.log_key, envelope.digest())
        results.append(receipt_result(draft.label, envelope, outcome))
    report_appends(results, refused, sequencer.size, as_json)


@log.command("checkpoint")
@vkey_option
@remote_options
@pass_cli
def checkpoint(state: CliContext, vkey: str | None, remote: RemoteOptions | None) -> None:
    """Print the latest signed checkpoint exactly as stored.

    With --server: the node's, printed only once its signature verifies under
    --vkey and a consistency proof shows it extends the newest checkpoint this
    data directory verified before (which then moves forward to it).
    """
    if remote is not None:
        note = remote_log.checkpoint(state, remote, vkey)
    else:
        latest = state.log_store().latest_checkpoint()
        if latest is None:
            raise OutOfRangeError("the log has no checkpoint")
        note = latest.note
    sys.stdout.buffer.write(note)
    sys.stdout.buffer.flush()


@log.command("vkey")
@pass_cli
def vkey(state: CliContext) -> None:
    """Print the log's verifier key (signed-note form) from the local database.

    Local only: a node's answers are checked against a key you already trust
    (--vkey), so there is no asking the node for its key.
    """
    click.echo(state.log_store().info().verifier_key)


@log.command("entry")
@click.argument("index", type=click.IntRange(min=0, max=MAX_INDEX))
@json_option
@vkey_option
@remote_options
@pass_cli
def entry(
    state: CliContext, index: int, as_json: bool, vkey: str | None, remote: RemoteOptions | None
) -> None:
    """Show the leaf at INDEX: its bytes, hashes and decoded envelope.

    With --server: the node's leaf, shown once it decodes, names its index, its
    signatures verify and an inclusion proof ties it to the node's latest
    checkpoint (checked as `log checkpoint --server` checks it).
    """
    stored: StoredLeaf
    leaf: Leaf
    if remote is not None:
        stored, leaf = remote_log.entry(state, remote, vkey, index)
    else:
        stored = state.log_store().leaf(index)
        leaf = decode_leaf(stored.leaf_bytes)
    rendered = entry_json(stored, leaf)
    if as_json:
        click.echo(to_json(rendered))
        return
    click.echo(f"index:            {stored.index}")
    click.echo(f"integrated:       {micros_to_iso(leaf.integration_time_micros)}")
    click.echo(f"leaf hash:        {rendered['leaf_hash']}")
    click.echo(f"chain hash:       {rendered['chain_hash']}")
    click.echo(f"entry digest:     {rendered['entry_digest']}")
    click.echo(f"payload type:     {leaf.envelope.payload_type}")
    click.echo(f"payload:          {len(leaf.envelope.payload)} bytes")
    for signature in leaf.envelope.signatures:
        click.echo(f"signed by keyid:  {signature.keyid}")


@log.group("prove")
def prove() -> None:
    """Inclusion and consistency proofs (RFC 9162)."""


@prove.command("inclusion")
@click.argument("index", type=click.IntRange(min=0, max=MAX_INDEX))
@click.option(
    "--size",
    type=click.IntRange(min=1, max=MAX_INDEX),
    default=None,
    help="Tree size (default: latest).",
)
@json_option
@vkey_option
@remote_options
@pass_cli
def prove_inclusion(
    state: CliContext,
    index: int,
    size: int | None,
    as_json: bool,
    vkey: str | None,
    remote: RemoteOptions | None,
) -> None:
    """Prove that leaf INDEX is in the tree of the given size.

    With --server: the node's proof, verified, its root tied to the checkpoint
    signed at that size (or, if none was, to the latest through a consistency proof).
    """
    if remote is not None:
        _print_proof(remote_log.prove_inclusion(state, remote, vkey, index, size), as_json)
        return
    store = state.log_store()
    tree_size = size if size is not None else _latest_size(state)
    proof = store.inclusion_proof(index, tree_size)
    _self_check(proof)
    _check_signed_root(state, state.trusted_log_key(vkey), tree_size, proof.root)
    _print_proof(proof, as_json)


@prove.command("consistency")
@click.argument("old", type=click.IntRange(min=0, max=MAX_INDEX))
@click.argument("new", type=click.IntRange(min=0, max=MAX_INDEX), required=False)
@json_option
@vkey_option
@remote_options
@pass_cli
def prove_consistency(
    state: CliContext,
    old: int,
    new: int | None,
    as_json: bool,
    vkey: str | None,
    remote: RemoteOptions | None,
) -> None:
    """Prove that the tree of size OLD is a prefix of the tree of size NEW (default: latest).

    With --server: the node's proof, verified, its new root tied to a signed checkpoint.
    """
    if remote is not None:
        _print_proof(remote_log.prove_consistency(state, remote, vkey, old, new), as_json)
        return
    store = state.log_store()
    proof = store.consistency_proof(old, new if new is not None else _latest_size(state))
    _self_check(proof)
    log_key = state.trusted_log_key(vkey)
    _check_signed_root(state, log_key, proof.old_size, proof.old_root)
    _check_signed_root(state, log_key, proof.new_size, proof.new_root)
    _print_proof(proof, as_json)


def _progress_line(leaves: int) -> None:
    click.echo(f"\rverified {leaves:,} leaves", nl=False, err=True)


def _self_check(proof: InclusionProof | ConsistencyProof) -> None:
    """A proof built from our own storage that fails to verify means the storage is damaged."""
    try:
        proof.verify()
    except VerificationError as exc:
        raise LogIntegrityError(f"storage produced a proof that does not verify: {exc}") from exc


def _latest_size(state: CliContext) -> int:
    latest = state.log_store().latest_checkpoint()
    if latest is None:
        raise OutOfRangeError("the log has no checkpoint")
    return latest.tree_size


def _check_signed_root(
    state: CliContext, log_key: VerifierKey, tree_size: int, root: bytes
) -> None:
    """A proof's root must be the signed one where a checkpoint was signed at that size."""
    try:
        stored = state.log_store().checkpoint(tree_size)
    except NotFoundError:
        click.echo(
            f"note: no checkpoint was signed at tree size {tree_size}; "
            "that root is computed from storage, not signed",
            err=True,
        )
        return
    try:
        signed = open_checkpoint(stored.note, log_key)
    except CustodyError as exc:
        raise LogIntegrityError(
            f"the checkpoint stored for size {tree_size} does not verify: {exc}",
            index=max(tree_size - 1, 0),
        ) from exc
    if signed.checkpoint.size != tree_size or signed.checkpoint.root_hash != root:
        raise LogIntegrityError(
            f"stored tree hashes disagree with the checkpoint signed at size {tree_size}",
            index=max(tree_size - 1, 0),
        )


def _print_proof(proof: InclusionProof | ConsistencyProof, as_json: bool) -> None:
    rendered = proof.to_json()
    if as_json:
        click.echo(to_json(rendered))
        return
    for name, value in rendered.items():
        if name == "hashes":
            click.echo(f"{name}:")
            for item in value:
                click.echo(f"  {item}")
        else:
            click.echo(f"{name}: {value}")


@log.command("verify")
@vkey_option
@click.option(
    "--checkpoint",
    "checkpoint_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A checkpoint note trusted earlier; the log must contain it (repeatable). "
    "The newest checkpoint this data directory verified is always required too.",
)
@remote_options
@pass_cli
def verify(
    state: CliContext,
    vkey: str | None,
    checkpoint_files: tuple[Path, ...],
    remote: RemoteOptions | None,
) -> None:
    """Replay the whole log: signatures, chain, tree nodes and checkpoints.

    With --server: every entry of the node's log, streamed, must decode, name its
    index, continue the hash chain and carry valid signatures, and together hash
    to the root of the node's latest signed checkpoint, which must be consistent
    with the trusted checkpoints; exit 3 names the first bad index.
    """
    if remote is not None:
        _verify_remote(state, remote, vkey, checkpoint_files)
        return
    log_key = state.trusted_log_key(vkey)
    verified = VerifiedState(state.data_dir, log_key)
    trusted = verified.trusted(checkpoint_files)
    store = state.log_store()
    progress = _progress_line if sys.stderr.isatty() else None
    with store.snapshot() as conn:
        result = verify_log(LogView(store, conn), log_key, trusted=trusted, progress=progress)
        latest = store.latest_checkpoint(conn)
    if progress is not None:
        click.echo("", err=True)
    if latest is not None:
        # Remember the newest verified head: a later rollback behind it will fail.
        verified.advance(latest.note)
    click.echo(
        f"log {result.origin} verified: {result.tree_size} leaves, "
        f"{result.tree_nodes} tree nodes, {result.checkpoints} checkpoints"
    )
    for checkpoint in trusted:
        click.echo(f"contains the trusted checkpoint of size {checkpoint.size}")
    click.echo(f"root {b64(result.root_hash)}")


def _verify_remote(
    state: CliContext, remote: RemoteOptions, vkey: str | None, checkpoint_files: tuple[Path, ...]
) -> None:
    progress = _progress_line if sys.stderr.isatty() else None
    result = remote_log.verify(state, remote, vkey, checkpoint_files, progress)
    if progress is not None:
        click.echo("", err=True)
    signed = result.checkpoint.checkpoint
    click.echo(
        f"log {signed.origin} at {remote.server} verified: {result.leaves} leaves, "
        f"the root of the checkpoint signed at size {signed.size}"
    )
    for size in result.trusted_sizes:
        click.echo(f"contains the trusted checkpoint of size {size}")
    click.echo(f"root {b64(signed.root_hash)}")


@log.command("reindex")
@pass_cli
def reindex_command(state: CliContext) -> None:
    """Rebuild the derived indexes (lots, holders, registry, ...) from the leaves.

    Every leaf is replayed through the admission rules and must be admitted
    with the subject links it carries; otherwise nothing changes and the
    command exits 3 naming the leaf.
    """
    report = reindex(state.log_store())
    click.echo(f"reindexed {report.leaves} leaves in {report.seconds:.1f} s")
