"""What every RPC handler shares: a request id, a log context, metrics, and errors.

Handlers raise Custody errors; ``unary`` and ``server_stream`` turn them into
the status of ``services.errors`` exactly once. An unexpected exception is
logged with the request id and answered INTERNAL without internals. A request
message that does not even parse is refused INVALID_ARGUMENT by
``RefuseUndecodable`` before any handler runs.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, TypeVar

import grpc
import structlog

from ledger.errors import CustodyError, MalformedError
from ledger.wire import REQUEST_ID_METADATA
from services.errors import grpc_status, internal_status, status_code_for
from services.observability import NodeMetrics

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


_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "custody_request_id", default=None
)


def _begin(method: str, context: Context) -> str:
    rid = request_id(context)
    _request_id.set(rid)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=rid, method=method, peer=context.peer())
    context.set_trailing_metadata(((REQUEST_ID_METADATA, rid),))
    return rid


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


async def abort(context: Context, status: grpc.Status) -> NoReturn:
    """End the call with ``status``, keeping the request id in the trailers (aborting
    replaces the trailers set when the call began)."""
    rid = _request_id.get()
    if rid is not None:
        trailers = (*(status.trailing_metadata or ()), (REQUEST_ID_METADATA, rid))
        status = _Status(status.code, status.details, trailers)
    await context.abort_with_status(status)
    raise AssertionError("abort_with_status returned")  # pragma: no cover


async def _refuse(context: Context, error: CustodyError) -> NoReturn:
    if status_code_for(error) is grpc.StatusCode.INTERNAL:
        # The node's own fault (storage that contradicts its log, a bug): its reason
        # is kept for the caller, with the request id under which the log has it all.
        log.error("internal error", reason=error.reason, exc_info=error)
        status = grpc_status(error, _request_id.get())
    else:
        log.info("refused", reason=error.reason, error=str(error))
        status = grpc_status(error)
    await abort(context, status)


async def _fail(context: Context, rid: str, error: BaseException) -> NoReturn:
    log.error("internal error", exc_info=error)
    await abort(context, internal_status(rid))


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
                code = status_code_for(exc)
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
                code = status_code_for(exc)
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


# --- requests that do not parse ---------------------------------------------------------


class _Undecodable:
    """Stands in for a request message whose bytes did not parse."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # DecodeError, or whatever a parser raises on garbage
            return _Undecodable(str(exc))

    return parse


async def _refuse_undecodable(context: Context, request: _Undecodable) -> NoReturn:
    error = MalformedError(f"the request message does not parse: {request.problem}")
    log.info("refused", reason=error.reason, error=str(error), peer=context.peer())
    await abort(context, grpc_status(error))  # in a stream, the request id is known


async def _checked(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, _Undecodable):
            await _refuse_undecodable(context, request)
        yield request


def _guarded(
    behaviour: Callable[..., Any], request_streaming: bool, refused: Callable[[], None]
) -> Callable[..., Any]:
    """``behaviour`` refusing undecodable requests; an async generator stays one.

    ``refused`` counts a request refused before the handler (and its metrics) ran;
    a request stream's bad message is met inside the handler, which counts it."""

    async def first(request: Any, context: Context) -> Any:
        if request_streaming:
            return _checked(request, context)
        if isinstance(request, _Undecodable):
            refused()
            await _refuse_undecodable(context, request)
        return request

    if inspect.isasyncgenfunction(behaviour):

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            async for response in behaviour(await first(request, context), context):
                yield response

        return stream

    async def call(request: Any, context: Context) -> Any:
        result = behaviour(await first(request, context), context)
        return await result if inspect.isawaitable(result) else result

    return call


class RefuseUndecodable(grpc.aio.ServerInterceptor):
    """Refuse a request message that does not parse with INVALID_ARGUMENT (MALFORMED).

    gRPC would otherwise answer UNKNOWN: it parses requests before any handler
    runs and reports a parse failure as an unexpected exception. Here parsing
    cannot fail; a message that did not parse reaches the handler as a marker,
    which is refused before the handler sees it (for request streams, when the
    handler reads that message).
    """

    def __init__(self, metrics: NodeMetrics | None = None) -> None:
        self._metrics = metrics
        # A method's handler is the same on every call: wrap each one once.
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            wrapped = _tolerant_handler(
                await continuation(handler_call_details), self._counter(method)
            )
            if wrapped is not None:  # only registered methods: callers choose the names
                self._wrapped[method] = wrapped
        return wrapped

    def _counter(self, method: str) -> Callable[[], None]:
        metrics, name = self._metrics, method.rpartition("/")[2]

        def refused() -> None:
            if metrics is not None:
                metrics.requests.labels(name, grpc.StatusCode.INVALID_ARGUMENT.name).inc()

        return refused


def _tolerant_handler(
    handler: grpc.RpcMethodHandler[Any, Any] | None, refused: Callable[[], None]
) -> grpc.RpcMethodHandler[Any, Any] | None:
    if handler is None:
        return None
    parse = _tolerant(handler.request_deserializer)
    serialise = handler.response_serializer
    streaming = handler.request_streaming
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _guarded(handler.unary_unary, streaming, refused), parse, serialise
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _guarded(handler.unary_stream, streaming, refused), parse, serialise
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _guarded(handler.stream_unary, streaming, refused), parse, serialise
        )
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            _guarded(handler.stream_stream, streaming, refused), parse, serialise
        )
    return handler
