"""The wrappers around the ``google-genai`` API client's four request methods.

Every call of the SDK goes through ``BaseApiClient.request``, ``request_streamed``,
``async_request`` or ``async_request_streamed`` (``ApiClient`` in 1.0) with the HTTP method,
the path (``models/gemini-2.5-flash:generateContent``, ``publishers/google/models/...``), the
request body already in Google's wire format and the per-request HTTP options; retries
happen inside. One wrapped call is one HTTP model call, so automatic function calling (AFC)
and automatic continuation, which loop over model calls inside one ``generate_content``,
give one span per round trip. Paths that are not a model call (files, caches, token counting,
Imagen) pass through after one string check.

On the caller's thread: the path is classified, the span started, the call made under the
span's context, and the response (or each stream chunk) kept by reference for the resolver.
``traceparent`` is added to the request the SDK has built (``_build_request``, wrapped too;
a caller's explicit header wins): passing it as per-request HTTP options instead made the SDK
merge and validate an ``HttpOptions`` on every call, most of our cost on the caller's thread.
Where ``_build_request`` cannot be wrapped, the header goes through the HTTP options.
The body needs no copy: the SDK builds a fresh one for every HTTP call. Responses that older
releases hand back as parsed JSON are copied (they strip unknown fields in place). A prompt that Google
blocked is recognised here (a substring check of the body) so that the span ends as an error.
"""

from __future__ import annotations

import contextlib
import contextvars
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from otel_llm_audit import _guard
from otel_llm_audit.emitter.spans import Emitter, LLMCallSpan
from otel_llm_audit.errors import BudgetExceededError
from otel_llm_audit.instrumentation.call_scope import CallScope
from otel_llm_audit.instrumentation.google_genai import _capture
from otel_llm_audit.instrumentation.readers import host_and_port
from otel_llm_audit.instrumentation.streams import AsyncStreamProxy, SyncStreamProxy
from otel_llm_audit.records import LLMCall

GEMINI = "gcp.gemini"
VERTEX = "gcp.vertex_ai"


class _Active:
    emitter: Emitter | None = None
    #: ``_build_request`` is wrapped: trace headers go on the built request.
    headers_on_build: bool = False


ACTIVE = _Active()

_servers: weakref.WeakKeyDictionary[Any, tuple[Any, str | None, int | None]] = weakref.WeakKeyDictionary()


def _base_url(options: Any) -> Any:
    return options.get("base_url") if isinstance(options, Mapping) else getattr(options, "base_url", None)


def server_of(client: Any, http_options: Any) -> tuple[str | None, int | None]:
    """``server.address`` / ``server.port`` of the call: the request's base URL, else the client's."""
    override = _base_url(http_options) if http_options is not None else None
    if override:
        return host_and_port(override)
    url = _base_url(getattr(client, "_http_options", None))
    try:
        cached = _servers.get(client)
    except TypeError:
        cached = None
    if cached is not None and cached[0] == url:
        return cached[1], cached[2]
    host, port = host_and_port(url)
    with contextlib.suppress(TypeError):
        _servers[client] = (url, host, port)
    return host, port


#: The context of the audited model call being built on this thread or task (for the
#: ``_build_request`` wrapper); unset for every other request of the SDK.
_SENDING: contextvars.ContextVar[Any] = contextvars.ContextVar("otel_llm_audit_genai_sending", default=None)


def make_build_wrapper() -> Callable[..., Any]:
    """A wrapt wrapper for ``_build_request``: the audited call's trace headers on the built request."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        request = wrapped(*args, **kwargs)
        ctx = _SENDING.get()
        if ctx is not None:
            _add_trace_headers(request, ctx)
        return request

    return wrapper


def _add_trace_headers(request: Any, ctx: Any) -> None:
    try:
        headers = getattr(request, "headers", None)
        if not isinstance(headers, dict):
            return
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=ctx)
        present = {str(name).lower() for name in headers}
        for name, value in carrier.items():
            if name.lower() not in present:  # a caller's own header wins
                headers[name] = value
    except Exception as err:
        _guard.report_internal_error("google_genai.propagate", err)


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _start(
    emitter: Emitter, client: Any, path: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> LLMCallSpan | None:
    if not is_instrumentation_enabled():
        return None
    body = _arg(args, kwargs, 2, "request_dict")
    found = _capture.classify(path, body)
    if found is None:
        return None
    operation, model, streams, method = found
    host, port = server_of(client, _arg(args, kwargs, 3, "http_options"))
    record = LLMCall(
        operation=operation,
        provider=VERTEX if getattr(client, "vertexai", False) else GEMINI,
        request_model=model or None,
        server_address=host,
        server_port=port,
        stream=streams,
    )
    state = _capture.GoogleCallState(method, body)
    record.resolver = lambda rec: _capture.resolve(rec, state)
    call = emitter.start_llm_call(record, enforce=True)
    if call is not None:
        call.state = state
    return call


def _with_trace_headers(args: tuple[Any, ...], kwargs: dict[str, Any], ctx: Any) -> tuple[Any, dict[str, Any]]:
    """The call's arguments with ``traceparent`` (and allowed baggage) in its own HTTP options.

    A new options object each time: the caller's ``config.http_options`` is never changed.
    """
    try:
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=ctx)
        if not carrier:
            return args, kwargs
        options = _arg(args, kwargs, 3, "http_options")
        if options is None:
            patched: Any = {"headers": carrier}
        elif isinstance(options, Mapping):
            patched = {**options, "headers": {**carrier, **(options.get("headers") or {})}}
        elif hasattr(options, "model_copy"):
            patched = options.model_copy(update={"headers": {**carrier, **(getattr(options, "headers", None) or {})}})
        else:
            return args, kwargs
        if len(args) > 3:
            return (*args[:3], patched, *args[4:]), kwargs
        return args, {**kwargs, "http_options": patched}
    except Exception as err:
        _guard.report_internal_error("google_genai.propagate", err)
        return args, kwargs


def _path(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    path = _arg(args, kwargs, 1, "path")
    return path if isinstance(path, str) and ":" in path else None


def _begin(
    instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[LLMCallSpan | None, tuple[Any, ...], dict[str, Any]]:
    """The call's span (``None`` if it is not recorded) and the arguments to call the SDK with."""
    emitter = ACTIVE.emitter
    path = _path(args, kwargs)
    if emitter is None or path is None:
        return None, args, kwargs
    try:
        call = _start(emitter, instance, path, args, kwargs)
    except BudgetExceededError:
        raise  # a budget that enforces refused the call: the application is told, on purpose
    except Exception as err:
        _guard.report_internal_error("google_genai.start", err)
        return None, args, kwargs
    if call is None:
        return None, args, kwargs
    if not ACTIVE.headers_on_build:
        args, kwargs = _with_trace_headers(args, kwargs, trace.set_span_in_context(call.span))
    return call, args, kwargs


def _finish(call: LLMCallSpan, result: Any) -> None:
    try:
        call.state.response = _capture.snapshot(result)
        blocked = _capture.prompt_block_of(result)
        if blocked is not None:
            call.record.error = blocked
    except Exception as err:
        _guard.report_internal_error("google_genai.finish", err)
    call.end()


def _sink(call: LLMCallSpan) -> Callable[[Any], None]:
    """Keeps each chunk; the first one is checked for a blocked prompt (it comes alone, first)."""
    chunks: list[Any] = call.state.chunks
    record: LLMCall = call.record

    def sink(chunk: Any) -> None:
        chunks.append(_capture.snapshot(chunk))
        if len(chunks) == 1:
            try:
                blocked = _capture.prompt_block_of(chunk)
                if blocked is not None:
                    record.error = blocked
            except Exception as err:
                _guard.report_internal_error("google_genai.chunk", err)

    return sink


class _LazyStreamProxy(SyncStreamProxy):
    """``request_streamed`` is a generator: its HTTP request runs at the first ``next``.

    That first ``next`` runs under the call's span, so the HTTP span nests under it; later
    chunks only read the body. The generator has no ``close`` of the SDK's own to keep.
    """

    def __init__(self, wrapped: Any, call: LLMCallSpan, sink: Callable[[Any], None]) -> None:
        super().__init__(wrapped, call, sink)
        self._self_context = trace.set_span_in_context(call.span)

    def __next__(self) -> Any:
        if not self._self_state.waiting_first:
            return super().__next__()
        token = otel_context.attach(self._self_context)
        sending = _SENDING.set(self._self_context)
        try:
            return super().__next__()
        finally:
            _SENDING.reset(sending)
            otel_context.detach(token)


def make_sync_wrapper() -> Callable[..., Any]:
    """A wrapt wrapper for ``request``."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call, args, kwargs = _begin(instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        with CallScope(call, _SENDING):
            result = wrapped(*args, **kwargs)
        _finish(call, result)
        return result

    return wrapper


def make_stream_wrapper() -> Callable[..., Any]:
    """A wrapt wrapper for ``request_streamed`` (a generator function)."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call, args, kwargs = _begin(instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            generator = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.end(exc)
            raise
        try:
            return _LazyStreamProxy(generator, call, _sink(call))
        except Exception as err:
            _guard.report_internal_error("google_genai.stream", err)
            call.end()
            return generator

    return wrapper


def make_async_wrapper() -> Callable[..., Any]:
    """A wrapt wrapper for ``async_request`` (a coroutine function)."""

    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call, args, kwargs = _begin(instance, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        with CallScope(call, _SENDING):
            result = await wrapped(*args, **kwargs)
        _finish(call, result)
        return result

    return wrapper


def make_async_stream_wrapper() -> Callable[..., Any]:
    """A wrapt wrapper for ``async_request_streamed`` (a coroutine returning an async generator)."""

    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call, args, kwargs = _begin(instance, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        with CallScope(call, _SENDING):
            generator = await wrapped(*args, **kwargs)
        try:
            return AsyncStreamProxy(generator, call, _sink(call))
        except Exception as err:
            _guard.report_internal_error("google_genai.stream", err)
            call.end()
            return generator

    return wrapper


__all__ = [
    "ACTIVE",
    "make_async_stream_wrapper",
    "make_async_wrapper",
    "make_build_wrapper",
    "make_stream_wrapper",
    "make_sync_wrapper",
]
