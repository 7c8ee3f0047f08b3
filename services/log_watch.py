"""Tells streams when the log grows: local commits at once, other frontends by polling.

Several stateless frontends may share one PostgreSQL database; a frontend
learns of batches another one committed by reading the latest checkpoint
every ``poll_seconds``, or at once for a read beyond what it knows.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from ledger.records import StoredCheckpoint
from ledger.storage.log_store import LogStore

log = structlog.get_logger("custody.node")


class LogWatcher:
    """The newest checkpoint this node knows, and a way to wait for a newer one."""

    def __init__(self, store: LogStore, *, poll_seconds: float = 1.0) -> None:
        self._store = store
        self._poll_seconds = poll_seconds
        self._latest: StoredCheckpoint | None = None
        self._grew = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.stopping = asyncio.Event()
        """Set when the node begins to stop: streams stop taking work."""

    @property
    def stopped(self) -> bool:
        return self.stopping.is_set()

    @property
    def latest(self) -> StoredCheckpoint | None:
        return self._latest

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        self.stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._grew.set()  # release waiters

    async def refresh(self) -> StoredCheckpoint | None:
        """Read the latest checkpoint now rather than at the next poll: for a request
        beyond what this node knows, which another frontend may just have committed."""
        self.publish(await asyncio.to_thread(self._store.latest_checkpoint))
        return self._latest

    def publish(self, checkpoint: StoredCheckpoint | None) -> None:
        """Record a checkpoint if it is newer than what is known, and wake the waiters."""
        if checkpoint is None:
            return
        if self._latest is not None and checkpoint.tree_size <= self._latest.tree_size:
            return
        self._latest = checkpoint
        grew, self._grew = self._grew, asyncio.Event()
        grew.set()

    async def wait_beyond(self, tree_size: int, timeout: float) -> StoredCheckpoint | None:
        """The latest checkpoint once it covers more than ``tree_size`` leaves, or None
        after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._latest is None or self._latest.tree_size <= tree_size:
            remaining = deadline - loop.time()
            if remaining <= 0 or self.stopped:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._grew.wait(), remaining)
        return self._latest

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                await self.refresh()
            except Exception as exc:  # a failed poll is retried; streams keep waiting
                log.warning("checkpoint poll failed", error=str(exc))
