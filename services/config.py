"""The node's configuration: a TOML file, then environment overrides.

Every setting is ``[section] key`` in the file and ``CUSTODY_<SECTION>_<KEY>``
in the environment (``CUSTODY_TLS_CERT``, ``CUSTODY_LIMITS_MAX_BATCH``, ...);
the environment wins. Relative paths are relative to the file's directory.
Unknown sections or keys are errors: a misspelt setting must not be ignored.
See docs/grpc.md for every setting.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from ledger.errors import ConfigurationError

ENV_PREFIX = "CUSTODY_"
MIN_MESSAGE_BYTES = 32 << 10


@dataclass(frozen=True)
class NodeSection:
    listen: str = "127.0.0.1:7443"
    """host:port for gRPC; port 0 picks a free one."""
    data_dir: Path = Path("custody-data")
    """Holds the log's signing key (and the SQLite database by default)."""
    database_url: str = ""
    """SQLAlchemy URL; default: SQLite custody.db in data_dir."""
    log_key: Path = Path("log-key.pem")
    """The log's signing key, relative to data_dir unless absolute."""
    insecure_dev: bool = False
    """No TLS; callers name themselves in metadata. Local development only."""


@dataclass(frozen=True)
class TlsSection:
    cert: Path | None = None
    """The node's certificate chain (PEM)."""
    key: Path | None = None
    """Its private key (PEM)."""
    client_ca: Path | None = None
    """CA bundle that partner certificates must chain to (PEM)."""


@dataclass(frozen=True)
class LimitsSection:
    max_message_bytes: int = 4 << 20
    """Largest request or response message (payloads are capped at 1 MiB)."""
    max_concurrent_rpcs: int = 2_000
    """Further calls are refused RESOURCE_EXHAUSTED (0: unbounded)."""
    max_streams_per_partner: int = 64
    """AppendStream and Follow streams one partner may hold open at once."""
    max_in_flight_per_stream: int = 2_000
    """Entries of one AppendStream awaiting their outcome before the node stops reading."""
    max_batch: int = 1_000
    """Entries per committed batch."""
    max_pending: int = 10_000
    """Entries queued for the sequencer before appends wait."""
    follow_idle_seconds: float = 15.0
    """How long a Follow stream waits between checks when nothing is new."""
    shutdown_grace_seconds: float = 10.0
    """How long calls in progress may finish when the node stops."""


@dataclass(frozen=True)
class SequencerSection:
    own_process: bool = True
    """Sequence in a process of its own, beside the gRPC process: the two then use
    two cores, and the database work never waits for the event loop's GIL."""
    verify_threads: int = 2
    """Threads verifying signatures of a batch."""
    poll_seconds: float = 1.0
    """How often to look for batches other frontends committed (Follow)."""


@dataclass(frozen=True)
class MetricsSection:
    listen: str = "127.0.0.1:9464"
    """host:port of the Prometheus /metrics endpoint; empty to disable."""


@dataclass(frozen=True)
class LoggingSection:
    format: str = "json"
    """json (production) or console."""
    level: str = "info"


@dataclass(frozen=True)
class NodeConfig:
    node: NodeSection = field(default_factory=NodeSection)
    tls: TlsSection = field(default_factory=TlsSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    sequencer: SequencerSection = field(default_factory=SequencerSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    logging: LoggingSection = field(default_factory=LoggingSection)

    @property
    def database_url(self) -> str:
        if self.node.database_url:
            return self.node.database_url
        return f"sqlite:///{(self.node.data_dir / 'custody.db').resolve()}"

    @property
    def log_key_path(self) -> Path:
        return self.node.data_dir / self.node.log_key

    def check(self) -> NodeConfig:
        """Refuse settings that cannot work together; return self."""
        if not self.node.insecure_dev and None in (
            self.tls.cert,
            self.tls.key,
            self.tls.client_ca,
        ):
            raise ConfigurationError(
                "TLS needs [tls] cert, key and client_ca (mutual TLS is mandatory); "
                "pass --insecure-dev only for local development"
            )
        if self.logging.format not in ("json", "console"):
            raise ConfigurationError("[logging] format must be json or console")
        if self.logging.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigurationError("[logging] level must be debug, info, warning or error")
        self._check_limits()
        if self.sequencer.verify_threads < 1:
            raise ConfigurationError("[sequencer] verify_threads must be positive")
        for where, seconds in (
            ("[limits] follow_idle_seconds", self.limits.follow_idle_seconds),
            ("[limits] shutdown_grace_seconds", self.limits.shutdown_grace_seconds),
            ("[sequencer] poll_seconds", self.sequencer.poll_seconds),
        ):
            if not seconds > 0:
                raise ConfigurationError(f"{where} must be a positive number of seconds")
        host, _ = split_address(self.node.listen, "[node] listen")
        if self.node.insecure_dev and not _is_loopback(host):
            # Unauthenticated callers name themselves: never on a reachable address.
            raise ConfigurationError(
                f"insecure development mode listens on loopback only, not {host!r}"
            )
        if self.metrics.listen:
            split_address(self.metrics.listen, "[metrics] listen")
        return self

    def _check_limits(self) -> None:
        """[limits] that cannot work."""
        if self.limits.max_message_bytes < MIN_MESSAGE_BYTES:
            raise ConfigurationError(
                f"[limits] max_message_bytes must be at least {MIN_MESSAGE_BYTES} "
                "(entries come back in receipts and Follow messages with a checkpoint and proof)"
            )
        for name in (
            "max_in_flight_per_stream",
            "max_streams_per_partner",
            "max_batch",
            "max_pending",
        ):
            if getattr(self.limits, name) < 1:
                raise ConfigurationError(f"[limits] {name} must be positive")
        if self.limits.max_pending < self.limits.max_batch:
            raise ConfigurationError(
                "[limits] max_pending must be at least max_batch (a stream's message of "
                "max_batch entries must fit in the sequencer's queue)"
            )
        if self.limits.max_concurrent_rpcs < 0:
            raise ConfigurationError("[limits] max_concurrent_rpcs must be 0 (unbounded) or more")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_address(address: str, what: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigurationError(f"{what} must be host:port, got {address!r}")
    return host.strip("[]"), int(port)


def join_address(host: str, port: int) -> str:
    """``host:port``, an IPv6 host in brackets: what ``split_address`` takes apart."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_RELATIVE_TO_DATA_DIR = {("node", "log_key")}
"""Paths resolved against ``[node] data_dir`` (see ``NodeConfig.log_key_path``), not the file."""


def _convert(raw: object, kind: Any, where: str, base: Path | None) -> object:  # noqa: PLR0911
    """One setting from TOML (typed) or the environment (text) to its field type.

    A relative path is resolved against ``base``, or kept relative when it is None."""
    if kind in (Path, Path | None):
        if not isinstance(raw, str) or not raw:
            raise ConfigurationError(f"{where} must be a path")
        path = Path(raw).expanduser()
        return path if path.is_absolute() or base is None else base / path
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("1", "true", "yes", "0", "false", "no"):
            return raw.lower() in ("1", "true", "yes")
        raise ConfigurationError(f"{where} must be true or false")
    if kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
            return int(raw)
        raise ConfigurationError(f"{where} must be an integer")
    if kind is float:
        try:
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ConfigurationError(f"{where} must be a number") from None
    if not isinstance(raw, str):
        raise ConfigurationError(f"{where} must be a string")
    return raw


def load_config(
    path: Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    insecure_dev: bool = False,
) -> NodeConfig:
    """Read ``path`` (if any), apply ``CUSTODY_<SECTION>_<KEY>`` overrides, check the result."""
    env = os.environ if environ is None else environ
    document: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"cannot read the configuration {path}: {exc}") from exc
        base = path.resolve().parent
    sections: dict[str, object] = {}
    known = {f.name: f for f in dataclasses.fields(NodeConfig)}
    for unknown in document.keys() - known.keys():
        raise ConfigurationError(f"unknown section [{unknown}] in {path}")
    for name, section_field in known.items():
        factory: Any = section_field.default_factory
        section_type = factory()
        hints = get_type_hints(type(section_type))
        given = document.get(name, {})
        if not isinstance(given, dict):
            raise ConfigurationError(f"[{name}] must be a table")
        for unknown in given.keys() - hints.keys():
            raise ConfigurationError(f"unknown setting [{name}] {unknown}")
        values: dict[str, object] = {}
        for key, kind in hints.items():
            variable = f"{ENV_PREFIX}{name}_{key}".upper()
            keep_relative = (name, key) in _RELATIVE_TO_DATA_DIR
            if variable in env:
                where_env = None if keep_relative else Path.cwd()
                values[key] = _convert(env[variable], kind, variable, where_env)
            elif key in given:
                where_file = None if keep_relative else base
                values[key] = _convert(given[key], kind, f"[{name}] {key}", where_file)
        sections[name] = dataclasses.replace(section_type, **values)
    config = NodeConfig(**sections)  # type: ignore[arg-type]
    if insecure_dev:
        config = dataclasses.replace(
            config, node=dataclasses.replace(config.node, insecure_dev=True)
        )
    return config.check()
