"""What every RPC handler shares: a request id, a log context, metrics, and errors.

Handlers raise Custody errors; ``unary`` and ``server_stream`` turn them into
the status of ``services.errors`` exactly once. An unexpected exception is
logged with the request id and answered INTERNAL without internals.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc
import structlog

from ledger.errors import CustodyError
from services.errors import grpc_status, internal_status
from services.observability import NodeMetrics

REQUEST_ID_METADATA = "x-request-id"
_MAX_REQUEST_ID = 64

log = structlog.get_logger("custody.node")

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Context = grpc.aio.ServicerContext[Any, Any]


class Instrumented(Protocol):
    """A servicer that exposes its node's metrics."""

    metrics: NodeMetrics


def request_id(context: Context) -> str:
    """The caller's x-request-id when it sent a sane one, else a fresh one."""
    for key, value in context.invocation_metadata() or ():
        if (
            key == REQUEST_ID_METADATA
            and isinstance(value, str)
            and 0 < len(value) <= _MAX_REQUEST_ID
            and value.isprintable()
        ):
            return value
    return uuid.uuid4().hex[:16]


def _begin(method: str, context: Context) -> str:
    rid = request_id(context)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=rid, method=method, peer=context.peer())
    context.set_trailing_metadata(((REQUEST_ID_METADATA, rid),))
    return rid


async def _refuse(context: Context, error: CustodyError) -> None:
    log.info("refused", reason=error.reason, error=str(error))
    await context.abort_with_status(grpc_status(error))


async def _fail(context: Context, rid: str, error: BaseException) -> None:
    log.error("internal error", exc_info=error)
    await context.abort_with_status(internal_status(rid))


S = TypeVar("S", bound=Instrumented)


def unary(
    method: str,
) -> Callable[
    [Callable[[S, Req, Context], Awaitable[Resp]]], Callable[[S, Req, Context], Awaitable[Resp]]
]:
    """Wrap a unary handler: request id, log context, latency and code metrics, errors."""

    def wrap(
        handler: Callable[[S, Req, Context], Awaitable[Resp]],
    ) -> Callable[[S, Req, Context], Awaitable[Resp]]:
        @functools.wraps(handler)
        async def run(self: S, request: Req, context: Context) -> Resp:
            rid = _begin(method, context)
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await handler(self, request, context)
            except CustodyError as exc:
                code = grpc_status(exc).code
                await _refuse(context, exc)
                raise  # abort_with_status raised already; kept for the type checker
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception as exc:
                code = grpc.StatusCode.INTERNAL
                await _fail(context, rid, exc)
                raise
            finally:
                self.metrics.requests.labels(method, code.name).inc()
                self.metrics.latency.labels(method).observe(time.perf_counter() - started)

        return run

    return wrap


def server_stream(
    method: str,
) -> Callable[
    [Callable[[S, Req, Context], AsyncIterator[Resp]]],
    Callable[[S, Req, Context], AsyncIterator[Resp]],
]:
    """Wrap a streaming handler (server or bidirectional) the same way as ``unary``."""

    def wrap(
        handler: Callable[[S, Req, Context], AsyncIterator[Resp]],
    ) -> Callable[[S, Req, Context], AsyncIterator[Resp]]:
        @functools.wraps(handler)
        async def run(self: S, request: Req, context: Context) -> AsyncIterator[Resp]:
            rid = _begin(method, context)
            code = grpc.StatusCode.OK
            self.metrics.streams.labels(method).inc()
            try:
                async for response in handler(self, request, context):
                    yield response
            except CustodyError as exc:
                code = grpc_status(exc).code
                await _refuse(context, exc)
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception as exc:
                code = grpc.StatusCode.INTERNAL
                await _fail(context, rid, exc)
            finally:
                self.metrics.streams.labels(method).dec()
                self.metrics.requests.labels(method, code.name).inc()

        return run

    return wrap
