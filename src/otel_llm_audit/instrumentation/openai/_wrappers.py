"""The wrapper around the OpenAI client's ``request``: the SDK's single choke point.

Every endpoint method of the SDK (``chat.completions.create`` / ``parse`` / ``stream``,
``responses.create`` / ``parse`` / ``stream`` / ``retrieve``, ``embeddings.create``, and their
``with_raw_response`` / ``with_streaming_response`` forms) ends in ``client.request(cast_to,
options, ...)`` with the method, path and JSON body already built; retries happen inside it,
so one call is one span. ``request`` is looked up on the client at call time, unlike ``post``
and ``get``, which resources bind when they are built: clients created before
``instrument()`` are audited too. This covers them all, sync and async, on openai 1.x, 2.x and
3.x, and records the body as it was sent.

The wrapper's contract: the SDK's result and exceptions reach the caller untouched (streams
and raw responses come back behind transparent proxies), and any exception of ours is
reported and swallowed.
"""

from __future__ import annotations

import contextlib
import inspect
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from otel_llm_audit import _guard
from otel_llm_audit.emitter.spans import Emitter, LLMCallSpan
from otel_llm_audit.instrumentation._proxy import ObjectProxy
from otel_llm_audit.instrumentation.openai import _capture
from otel_llm_audit.instrumentation.streams import AsyncStreamProxy, SyncStreamProxy
from otel_llm_audit.records import LLMCall

Resolver = Callable[[LLMCall, _capture.OpenAICallState], None]


class _Endpoint:
    """How one API path maps to the conventions."""

    __slots__ = ("api_type", "operation", "resolver")

    def __init__(self, operation: str, api_type: str | None, resolver: Resolver) -> None:
        self.operation = operation
        self.api_type = api_type
        self.resolver = resolver


_POST_ENDPOINTS = {
    "/chat/completions": _Endpoint("chat", "chat_completions", _capture.resolve_chat),
    "/responses": _Endpoint("chat", "responses", _capture.resolve_responses),
    "/embeddings": _Endpoint("embeddings", None, _capture.resolve_embeddings),
}
_FETCH = _Endpoint("fetch_response", "responses", _capture.resolve_fetch)


def _get_endpoint(path: str) -> _Endpoint | None:
    """``GET /responses/{id}`` is a fetch; its sub-resources (input_items, ...) are not."""
    if path.startswith("/responses/") and path.count("/") == 2:
        return _FETCH
    return None


_PROVIDER_BY_TYPE: dict[type, str] = {}


def _provider_of(client: Any) -> str:
    """``azure.ai.openai`` for the Azure clients, ``openai`` otherwise; decided once per client class."""
    cls = type(client)
    provider = _PROVIDER_BY_TYPE.get(cls)
    if provider is None:
        provider = _PROVIDER_BY_TYPE[cls] = "azure.ai.openai" if "Azure" in cls.__name__ else "openai"
    return provider


_servers: weakref.WeakKeyDictionary[Any, tuple[Any, str | None, int | None]] = weakref.WeakKeyDictionary()


def _server_of(client: Any) -> tuple[str | None, int | None]:
    """``server.address`` / ``server.port`` of the client's base URL, parsed once per URL object.

    ``_base_url`` first: openai 3.x's ``base_url`` property runs an import statement on every
    access (~50 us here); the attribute behind it is the same object in every release.
    """
    url = getattr(client, "_base_url", None)
    if url is None:
        url = getattr(client, "base_url", None)
    if url is None:
        return None, None
    try:
        cached = _servers.get(client)
    except TypeError:  # not weakly referenceable
        cached = None
    if cached is not None and cached[0] is url:
        return cached[1], cached[2]
    host = getattr(url, "host", None)
    port = getattr(url, "port", None)
    if port is None:
        scheme = getattr(url, "scheme", "https")
        port = 443 if scheme == "https" else 80
    address = str(host) if host else None
    with contextlib.suppress(TypeError):
        _servers[client] = (url, address, port)
    return address, port


def _start(
    emitter: Emitter, client: Any, path: str, endpoint: _Endpoint, json_body: Any, stream: bool
) -> LLMCallSpan | None:
    body = _capture.snapshot_body(json_body)
    state = _capture.OpenAICallState(path, body)
    host, port = _server_of(client)
    model = body.get("model")
    record = LLMCall(
        operation=endpoint.operation,
        provider=_provider_of(client),
        request_model=model if isinstance(model, str) else None,
        server_address=host,
        server_port=port,
        api_type=endpoint.api_type,
        stream=stream,
    )
    if endpoint is _FETCH:
        record.response_id = path.rsplit("/", 1)[-1]
    resolver = endpoint.resolver
    record.resolver = lambda rec: resolver(rec, state)
    call = emitter.start_llm_call(record)
    if call is not None:
        call.state = state
    return call


_RAW, _STREAM, _OBJECT = "raw", "stream", "object"
_KIND_BY_TYPE: dict[type, str] = {}


def _kind_of(result: Any) -> str:
    """Raw response, stream or parsed object, decided once per type (``hasattr`` on a pydantic
    instance raises and catches an AttributeError: microseconds we need not spend per call)."""
    cls = type(result)
    kind = _KIND_BY_TYPE.get(cls)
    if kind is None:
        if hasattr(cls, "parse") and hasattr(cls, "headers"):  # (Legacy)APIResponse and kin
            kind = _RAW
        elif hasattr(cls, "__next__") or hasattr(cls, "__anext__"):
            kind = _STREAM
        else:
            kind = _OBJECT
        _KIND_BY_TYPE[cls] = kind
    return kind


def _is_raw_response(result: Any) -> bool:
    return _kind_of(result) is _RAW


def _is_stream(result: Any) -> bool:
    return _kind_of(result) is _STREAM


#: The emitter of the instrumentation in force, ``None`` when uninstrumented. Each call asks
#: here whether, and by which emitter, it is recorded (a bound wrapper captured by a caller
#: before ``uninstrument()`` then passes straight through).
_active_emitter: Emitter | None = None


def set_active_emitter(emitter: Emitter | None) -> None:
    """Called by the instrumentor: ``instrument()`` sets its emitter, ``uninstrument()`` clears it."""
    global _active_emitter
    _active_emitter = emitter


def make_sync_wrapper() -> Callable[..., Any]:
    """A wrapt wrapper for ``SyncAPIClient.request``."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        emitter = _active_emitter
        if emitter is None:
            return wrapped(*args, **kwargs)
        call = _maybe_start(emitter, instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        ctx = trace.set_span_in_context(call.span)
        _inject_trace_context(args, kwargs, ctx)
        token = otel_context.attach(ctx)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)
            call.end(exc)
            raise
        otel_context.detach(token)
        return _finish(call, result, kwargs)

    return wrapper


def make_async_wrapper() -> Callable[..., Any]:
    """A wrapt wrapper for ``AsyncAPIClient.request`` (a coroutine function)."""

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        emitter = _active_emitter
        if emitter is None:
            return await wrapped(*args, **kwargs)
        call = _maybe_start(emitter, instance, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        ctx = trace.set_span_in_context(call.span)
        _inject_trace_context(args, kwargs, ctx)
        token = otel_context.attach(ctx)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)
            call.end(exc)
            raise
        otel_context.detach(token)
        return _finish(call, result, kwargs)

    return wrapper


def _maybe_start(
    emitter: Emitter, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> LLMCallSpan | None:
    """``request(cast_to, options, *, stream, stream_cls)``: start a span if the path is a model call."""
    try:
        if not is_instrumentation_enabled():
            return None
        options = args[1] if len(args) > 1 else kwargs.get("options")
        path = getattr(options, "url", None)
        method = str(getattr(options, "method", "")).lower()
        if not isinstance(path, str):
            return None
        endpoint = _POST_ENDPOINTS.get(path) if method == "post" else _get_endpoint(path) if method == "get" else None
        if endpoint is None:
            return None
        stream = bool(kwargs.get("stream"))
        return _start(emitter, instance, path, endpoint, getattr(options, "json_data", None), stream)
    except Exception as err:
        _guard.report_internal_error("openai.start", err)
        return None


def _inject_trace_context(args: tuple[Any, ...], kwargs: dict[str, Any], ctx: otel_context.Context) -> None:
    """``traceparent`` (and the baggage the user allows) on the request itself.

    So the provider, or a gateway in front of it, can join the audit trace even when no HTTP
    instrumentation is installed; when one is, it replaces the header with its own child span.
    The SDK may pass the caller's ``extra_headers`` dict by reference: build a new one.
    """
    try:
        options = args[1] if len(args) > 1 else kwargs.get("options")
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=ctx)
        if not carrier or options is None:
            return
        headers = getattr(options, "headers", None)
        merged = dict(headers) if isinstance(headers, Mapping) else {}
        for key, value in carrier.items():
            merged.setdefault(key, value)  # a traceparent the caller set explicitly wins
        options.headers = merged
    except Exception as err:
        _guard.report_internal_error("openai.propagate", err)


def _finish(call: LLMCallSpan, result: Any, kwargs: dict[str, Any]) -> Any:
    """Hand the caller the SDK's result, ending the span now or when the stream / body is read."""
    try:
        state: _capture.OpenAICallState = call.state
        if _is_raw_response(result):
            if inspect.iscoroutinefunction(getattr(type(result), "parse", None)):
                return AsyncRawResponseProxy(result, call, state)
            if kwargs.get("stream") or _body_unread(result):
                return RawResponseProxy(result, call, state)
            # with_raw_response: the body is already read and parse() caches its result.
            try:
                state.response = result.parse()
            except Exception as exc:  # a malformed body: the caller's own parse() will raise it too
                call.end(exc)
                return result
            call.end()
            return result
        if _is_stream(result):
            return _stream_proxy(result, call, state)
        state.response = result
        call.end()
    except Exception as err:
        _guard.report_internal_error("openai.finish", err)
        call.end()
    return result


def _stream_proxy(stream: Any, call: LLMCallSpan, state: _capture.OpenAICallState) -> Any:
    if hasattr(stream, "__anext__"):
        return AsyncStreamProxy(stream, call, state.chunks.append)
    return SyncStreamProxy(stream, call, state.chunks.append)


def _body_unread(raw: Any) -> bool:
    """``with_streaming_response``: the body has not been read, so we must not read it."""
    return not getattr(getattr(raw, "http_response", None), "is_stream_consumed", True)


class RawResponseProxy(ObjectProxy):
    """A raw response whose body the caller reads later: observe ``parse()`` and ``close()``."""

    def __init__(self, wrapped: Any, call: LLMCallSpan, state: _capture.OpenAICallState) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_state = state
        self._self_stream: Any = None

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        try:
            parsed = self.__wrapped__.parse(*args, **kwargs)
        except BaseException as exc:
            self._self_call.end(exc)
            raise
        return self._self_parsed(parsed, bool(args or kwargs))

    def _self_parsed(self, parsed: Any, custom_type: bool) -> Any:
        """What ``parse()`` hands the caller: a stream behind our proxy, or the object (span ends)."""
        call = self._self_call
        if call.ended:  # parsed before: the SDK caches, so give back the same (proxied) stream
            return self._self_stream if self._self_stream is not None and not custom_type else parsed
        try:
            if _is_stream(parsed):
                self._self_stream = _stream_proxy(parsed, call, self._self_state)
                return self._self_stream
            self._self_state.response = parsed
            call.end()
        except Exception as err:
            _guard.report_internal_error("openai.raw_parse", err)
            call.end()
        return parsed

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_call.end()  # a stream parsed from this response dies with it

    def __del__(self) -> None:
        try:
            if self._self_stream is None and not self._self_call.ended:
                self._self_call.end()
        except Exception:
            pass


class AsyncRawResponseProxy(RawResponseProxy):
    """The async twin of :class:`RawResponseProxy` (``parse`` and ``close`` are coroutines)."""

    async def parse(self, *args: Any, **kwargs: Any) -> Any:
        try:
            parsed = await self.__wrapped__.parse(*args, **kwargs)
        except BaseException as exc:
            self._self_call.end(exc)
            raise
        return self._self_parsed(parsed, bool(args or kwargs))

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            self._self_call.end()
