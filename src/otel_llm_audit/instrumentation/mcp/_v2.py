"""Capture for mcp 2.x: the dispatcher layer, where every message is ``(method, params)`` as plain dicts.

mcp 2 routes every outgoing request through ``Dispatcher.send_raw_request(method, params,
opts)`` and every notification through ``notify(...)`` (``JSONRPCDispatcher`` over streams,
``DirectDispatcher`` in process), on both ends of a connection. Incoming requests and
notifications reach ``ServerRunner._on_request`` / ``_on_notify`` on a server and
``ClientSession._on_request`` / ``_on_notify`` on a client. Those six are wrapped.

mcp 2 traces itself too (a CLIENT span per request in the dispatcher, a SERVER span in its
default ``OpenTelemetryMiddleware``). While one of our spans records a message, the SDK's
``otel_span`` helper hands back a non-recording span instead, so there is one span per
message, not two. Messages we do not record (instrumentation suppressed) keep the SDK's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from otel_llm_audit import _guard
from otel_llm_audit.emitter.deferred import light_span
from otel_llm_audit.instrumentation.mcp._calls import (
    HANDLE_KEY,
    SEND_KEY,
    Call,
    guarded_start,
    new_record,
    params_with_context,
    remember_version,
    run_call,
    start_client,
    start_server,
)
from otel_llm_audit.instrumentation.mcp._patching import Patcher
from otel_llm_audit.instrumentation.mcp._peers import TCP, Peer, peer_of, write_stream_of

_PROTOCOL_VERSION_HEADER = "mcp-protocol-version"
_PROTOCOL_VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion"


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _with_arg(
    args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, value: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if len(args) > index:
        return (*args[:index], value, *args[index + 1 :]), kwargs
    return args, {**kwargs, name: value}


def _sent_version(opts: Any, params: Any) -> str | None:
    """The protocol version the client stamped on this message (header, or the 2026 ``_meta`` envelope)."""
    if isinstance(opts, Mapping):
        headers = opts.get("headers")
        if isinstance(headers, Mapping):
            for key, value in headers.items():
                if isinstance(key, str) and key.lower() == _PROTOCOL_VERSION_HEADER and isinstance(value, str):
                    return value
    if isinstance(params, Mapping):
        meta = params.get("_meta")
        if isinstance(meta, Mapping):
            version = meta.get(_PROTOCOL_VERSION_META_KEY)
            if isinstance(version, str):
                return version
    return None


def _next_request_id(dispatcher: Any, opts: Any) -> Any:
    """The id ``JSONRPCDispatcher`` is about to give the request (it mints it before its first await)."""
    if isinstance(opts, Mapping) and opts.get("request_id") is not None:
        return opts["request_id"]
    next_id = getattr(dispatcher, "_next_id", None)
    pending = getattr(dispatcher, "_pending", None)
    if not isinstance(next_id, int) or not isinstance(pending, Mapping):
        return None
    candidate = next_id + 1
    while candidate in pending:
        candidate += 1
    return candidate


class _Send:
    """``send_raw_request`` / ``notify`` of a dispatcher: a CLIENT span, trace context into ``_meta``."""

    def __init__(self, *, request: bool, mints_ids: bool) -> None:
        self.request = request
        self.mints_ids = mints_ids
        self.component = "mcp.send_request" if request else "mcp.send_notification"

    def _start(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Call, tuple[Any, ...], dict[str, Any]] | None:
        method = _arg(args, kwargs, 0, "method")
        if not isinstance(method, str):
            return None
        params = _arg(args, kwargs, 1, "params")
        opts = _arg(args, kwargs, 2, "opts")
        peer = peer_of(write_stream_of(instance), create=True)
        request_id = _next_request_id(instance, opts) if self.request and self.mints_ids else None
        record = new_record(method, "client", params, request_id, peer)
        version = _sent_version(opts, params)
        if version is not None:
            record.protocol_version = version
            if peer is not None:
                peer.protocol_version = version
        call = start_client(record, peer)
        if call is None:
            return None
        try:
            sent = params_with_context(params, call.context)
        except Exception as err:  # the message goes out as the caller made it, without our context
            _guard.report_internal_error("mcp.inject", err)
            return call, args, kwargs
        new_args, new_kwargs = _with_arg(args, kwargs, 1, "params", sent)
        return call, new_args, new_kwargs

    async def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        # Started inside the coroutine, right before the SDK's: the dispatcher mints the
        # request id synchronously when its coroutine starts, not when it is created.
        started: list[Any] = []

        def start() -> Call | None:
            found = self._start(instance, args, kwargs)
            if found is None:
                return None
            started.extend(found[1:])
            return found[0]

        call = guarded_start(self.component, start)
        if call is None:
            return await wrapped(*args, **kwargs)
        result = await run_call(call, wrapped, started[0], started[1])
        if call.record.method == "initialize":
            remember_version(write_stream_of(instance), call.record.protocol_version)
        return result


class _Handle:
    """``_on_request`` / ``_on_notify`` of a server runner or a client session: a SERVER span."""

    def __init__(self, *, request: bool, server: bool) -> None:
        self.request = request
        self.server = server
        self.component = "mcp.handle_request" if request else "mcp.handle_notification"

    def _peer(self, instance: Any, dctx: Any) -> Peer | None:
        if self.server:
            connection = getattr(instance, "connection", None)
            peer = peer_of(write_stream_of(connection), create=True) or Peer()
            transport = getattr(dctx, "transport", None)
            if getattr(transport, "headers", None) is not None:
                peer.transport = TCP
            version = getattr(connection, "protocol_version", None)
            if isinstance(version, str):
                peer.protocol_version = version
            return peer
        client_peer = peer_of(write_stream_of(instance), create=True)
        version = getattr(instance, "_negotiated_version", None)
        if client_peer is not None and isinstance(version, str):
            client_peer.protocol_version = version
        return client_peer

    def _start(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call | None:
        dctx = _arg(args, kwargs, 0, "dctx")
        method = _arg(args, kwargs, 1, "method")
        if not isinstance(method, str):
            return None
        params = _arg(args, kwargs, 2, "params")
        peer = self._peer(instance, dctx)
        request_id = getattr(dctx, "request_id", None) if self.request else None
        record = new_record(method, "server", params, request_id, peer)
        if self.server:
            session_id = getattr(getattr(instance, "connection", None), "session_id", None)
            if isinstance(session_id, str):
                record.session_id = session_id
        meta = params.get("_meta") if isinstance(params, Mapping) else None
        return start_server(record, meta, peer)

    async def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = guarded_start(self.component, lambda: self._start(instance, args, kwargs))
        if call is None:
            return await wrapped(*args, **kwargs)
        result = await run_call(call, wrapped, args, kwargs)
        if self.server and call.record.method == "initialize":
            connection = getattr(instance, "connection", None)
            version = getattr(connection, "protocol_version", None)
            remember_version(write_stream_of(connection), version if isinstance(version, str) else None)
        return result


def _stand_aside(key: object) -> Callable[..., Any]:
    """A wrapper for the SDK's ``otel_span``: while our span records the message, no second span."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        ours = otel_context.get_value(key)  # type: ignore[arg-type]
        if ours is None or ours is not trace.get_current_span():
            return wrapped(*args, **kwargs)
        return _inert(trace.get_current_span())

    return wrapper


@contextlib.contextmanager
def _inert(span: trace.Span) -> Iterator[trace.Span]:
    """What the SDK's span helper yields instead: writes to it go nowhere."""
    yield light_span(span.get_span_context())  # the audit sampler knows it as ours


def install(patcher: Patcher) -> bool:
    """Wrap mcp 2.x; ``False`` when the installed SDK is not of that line."""
    if not patcher.method(
        "mcp.shared.jsonrpc_dispatcher", "JSONRPCDispatcher.send_raw_request", _Send(request=True, mints_ids=True)
    ):
        return False
    patcher.method("mcp.shared.jsonrpc_dispatcher", "JSONRPCDispatcher.notify", _Send(request=False, mints_ids=True))
    patcher.method(
        "mcp.shared.direct_dispatcher", "DirectDispatcher.send_raw_request", _Send(request=True, mints_ids=False)
    )
    patcher.method("mcp.shared.direct_dispatcher", "DirectDispatcher.notify", _Send(request=False, mints_ids=False))
    patcher.method("mcp.server.runner", "ServerRunner._on_request", _Handle(request=True, server=True))
    patcher.method("mcp.server.runner", "ServerRunner._on_notify", _Handle(request=False, server=True))
    patcher.method("mcp.client.session", "ClientSession._on_request", _Handle(request=True, server=False))
    patcher.method("mcp.client.session", "ClientSession._on_notify", _Handle(request=False, server=False))
    patcher.method("mcp.shared.jsonrpc_dispatcher", "otel_span", _stand_aside(SEND_KEY))
    patcher.method("mcp.server._otel", "otel_span", _stand_aside(HANDLE_KEY))
    return True
