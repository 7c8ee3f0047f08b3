"""Fixtures for service tests: a consortium PKI, a sample ledger, and a node on port 0.

The node runs on an event loop of its own in a background thread, so tests
(and their fixtures) can be plain synchronous functions using synchronous or
asyncio clients alike; every connection is real TLS with client certificates.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Coroutine, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from clients.pki import CertificateAuthority, init_ca, issue_partner, issue_server
from clients.sample.consortium import SAMPLE_PARTNERS, sample_entries
from clients.sdk import ClientTls
from ledger.custody_rules import CustodyRules
from ledger.errors import CustodyError
from ledger.keys import generate_private_key, save_private_key
from ledger.note import NoteSigner
from ledger.sequencer import Sequencer, initialise_log
from ledger.storage import LogStore
from services.config import (
    LimitsSection,
    MetricsSection,
    NodeConfig,
    NodeSection,
    SequencerSection,
    TlsSection,
)
from services.node import RunningNode, start_node

ORIGIN = "ledger.test/custody"
STRANGER = "stranger-corp"
"""Holds a certificate from the consortium CA but is not an admitted partner."""


@dataclass(frozen=True)
class Pki:
    """A consortium CA with a server certificate and partner certificates, and a foreign CA."""

    directory: Path
    ca: CertificateAuthority
    server_cert: Path
    server_key: Path
    foreign_directory: Path

    def partner_files(self, partner_id: str, *, foreign: bool = False) -> tuple[Path, Path]:
        directory = self.foreign_directory if foreign else self.directory
        return directory / f"{partner_id}.pem", directory / f"{partner_id}-key.pem"

    def channel_credentials(
        self, partner_id: str | None, *, foreign: bool = False
    ) -> grpc.ChannelCredentials:
        """Client credentials trusting the consortium CA, with the partner's certificate
        (from the foreign CA when ``foreign``), or with none."""
        root = self.ca.certificate_pem
        if partner_id is None:
            return grpc.ssl_channel_credentials(root_certificates=root)
        cert, key = self.partner_files(partner_id, foreign=foreign)
        return ClientTls(root, cert.read_bytes(), key.read_bytes()).channel_credentials()


def make_pki(directory: Path, partner_ids: Sequence[str]) -> Pki:
    ca = init_ca(directory / "ca", "Custody Test Consortium CA")
    server = issue_server(ca, directory / "ca", "node")
    for partner_id in [*partner_ids, STRANGER]:
        issue_partner(ca, directory / "ca", partner_id)
    foreign = init_ca(directory / "foreign", "Someone Else's CA")
    for partner_id in partner_ids:
        issue_partner(foreign, directory / "foreign", partner_id)
    return Pki(
        directory / "ca", ca, server.certificate_path, server.key_path, directory / "foreign"
    )


def sample_partner_ids() -> list[str]:
    return [partner.partner_id for partner in SAMPLE_PARTNERS]


@dataclass(frozen=True)
class Ledger:
    """A ledger on disk: its database URL and the log's signing key."""

    data_dir: Path
    url: str
    log_key: Path


def make_ledger(data_dir: Path, url: str, *, with_sample: bool = True) -> Ledger:
    """A new log at ``url``; with the sample consortium's 55 entries unless told otherwise."""
    data_dir.mkdir(parents=True, exist_ok=True)
    key_path = data_dir / "log-key.pem"
    key = generate_private_key()
    save_private_key(key, key_path)
    store = LogStore.open(url, migrate=True)
    try:
        signer = NoteSigner(ORIGIN, key)
        initialise_log(store, signer)
        if with_sample:
            sequencer = Sequencer(store, signer, rules=CustodyRules(store), verify_threads=1)
            try:
                outcomes = sequencer.append_batch([e.submission for e in sample_entries()])
            finally:
                sequencer.close()
            refused = [o for o in outcomes if isinstance(o, CustodyError)]
            assert not refused, refused
    finally:
        store.close()
    return Ledger(data_dir, url, key_path)


def node_config(
    ledger: Ledger, pki: Pki | None, *, own_process: bool = True, **limits: int | float
) -> NodeConfig:
    """A node on 127.0.0.1 port 0 (metrics on port 0 too); TLS unless ``pki`` is None;
    its sequencer in a process of its own unless ``own_process`` is false."""
    tls = (
        TlsSection(cert=pki.server_cert, key=pki.server_key, client_ca=pki.ca.certificate_path)
        if pki is not None
        else TlsSection()
    )
    return NodeConfig(
        node=NodeSection(
            listen="127.0.0.1:0",
            data_dir=ledger.data_dir,
            database_url=ledger.url,
            log_key=ledger.log_key,
            insecure_dev=pki is None,
        ),
        tls=tls,
        limits=dataclasses.replace(LimitsSection(), **limits),  # type: ignore[arg-type]
        sequencer=SequencerSection(own_process=own_process, verify_threads=2, poll_seconds=0.2),
        metrics=MetricsSection(listen="127.0.0.1:0"),
    ).check()


class NodeThread:
    """A node serving from its own event loop in a background thread."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.node: RunningNode = self.run(start_node(config))

    def run(
        self, coroutine: Coroutine[object, object, RunningNode], timeout: float = 60
    ) -> RunningNode:
        future: Future[RunningNode] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)

    @property
    def address(self) -> str:
        return self.node.address

    def stop(self, grace: float = 2.0) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.node.stop(grace), self.loop).result(60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()


@contextmanager
def running_node(config: NodeConfig) -> Iterator[NodeThread]:
    node = NodeThread(config)
    try:
        yield node
    finally:
        node.stop()


def secure_channel(node: NodeThread, credentials: grpc.ChannelCredentials) -> grpc.Channel:
    return grpc.secure_channel(node.address, credentials)
