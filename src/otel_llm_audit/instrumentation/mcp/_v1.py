"""Capture for mcp 1.x: the session layer, where messages are pydantic models.

``BaseSession.send_request`` / ``send_notification`` carry every outgoing message of both
ends (a client's ``tools/call``, a server's ``sampling/createMessage``). Incoming requests
are answered through a ``RequestResponder``, which the SDK enters (``with responder:``)
around the handling in the task that handles it, answers with ``respond()`` or ``cancel()``
and leaves: our SERVER span lives exactly that long and is current inside. Incoming
notifications reach ``Server._handle_message`` on a server and
``ClientSession._received_notification`` on a client.

The trace context goes into a copy of the outgoing request (the caller's model is never
touched): dumped to JSON as the SDK itself does before sending, ``_meta`` extended, and
validated back into the same request type.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any

from otel_llm_audit import _guard
from otel_llm_audit.instrumentation.mcp._calls import (
    Call,
    describe_error_response,
    describe_result,
    detach,
    guarded_start,
    new_record,
    params_with_context,
    remember_version,
    run_call,
    start_client,
    start_server,
)
from otel_llm_audit.instrumentation.mcp._patching import Patcher
from otel_llm_audit.instrumentation.mcp._peers import peer_of
from otel_llm_audit.records import ErrorInfo, McpRequest

#: Methods whose answer we read (the rest are recorded without dumping their results).
_READ_RESULTS = frozenset({"tools/call", "initialize"})


def _dump(model: Any) -> Any:
    """The JSON form of a message, as the SDK puts it on the wire."""
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


def _describe_model(record: McpRequest, result: Any) -> None:
    if record.method in _READ_RESULTS and hasattr(result, "model_dump"):
        describe_result(record, _dump(result))


class _Send:
    """``BaseSession.send_request`` / ``send_notification``: a CLIENT span, trace context into ``_meta``."""

    def __init__(self, *, request: bool) -> None:
        self.request = request
        self.argument = "request" if request else "notification"
        self.component = "mcp.send_request" if request else "mcp.send_notification"

    def _start(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Call, tuple[Any, ...], dict[str, Any]] | None:
        message = args[0] if args else kwargs.get(self.argument)
        if message is None or not hasattr(message, "model_dump"):
            return None
        data = _dump(message)
        method = data.get("method")
        if not isinstance(method, str):
            return None
        params = data.get("params")
        peer = peer_of(getattr(instance, "_write_stream", None), create=True)
        # send_request takes the id it uses from here before its first await.
        request_id = getattr(instance, "_request_id", None) if self.request else None
        call = start_client(new_record(method, "client", params, request_id, peer), peer)
        if call is None:
            return None
        try:
            data["params"] = params_with_context(params, call.context)
            sent = type(message).model_validate(data)
        except Exception as err:  # the request goes out as the caller made it, without our context
            _guard.report_internal_error("mcp.inject", err)
            return call, args, kwargs
        if args:
            return call, (sent, *args[1:]), kwargs
        return call, args, {**kwargs, self.argument: sent}

    async def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
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
        result = await run_call(call, wrapped, started[0], started[1], _describe_model)
        if call.record.method == "initialize":
            remember_version(getattr(instance, "_write_stream", None), call.record.protocol_version)
        return result


class _Responders:
    """The SERVER span of each incoming request, from ``with responder:`` to its end."""

    def __init__(self) -> None:
        self._active: weakref.WeakKeyDictionary[Any, tuple[Call, object | None]] = weakref.WeakKeyDictionary()

    def _start(self, responder: Any) -> Call | None:
        data = _dump(responder.request)
        method = data.get("method")
        if not isinstance(method, str):
            return None
        params = data.get("params")
        session = getattr(responder, "_session", None)
        peer = peer_of(getattr(session, "_write_stream", None), create=True)
        record = new_record(method, "server", params, getattr(responder, "request_id", None), peer)
        meta = params.get("_meta") if isinstance(params, Mapping) else None
        return start_server(record, meta, peer)

    def enter(self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        entered = wrapped(*args, **kwargs)
        if instance not in self._active:
            call = guarded_start("mcp.handle_request", lambda: self._start(instance))
            if call is not None:
                self._active[instance] = (call, call.attach())
        return entered

    async def respond(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        entry = self._active.get(instance)
        if entry is not None:
            try:
                self._record_response(entry[0].record, args[0] if args else kwargs.get("response"), instance)
            except Exception as err:
                _guard.report_internal_error("mcp.result", err)
        return await wrapped(*args, **kwargs)

    @staticmethod
    def _record_response(record: McpRequest, response: Any, responder: Any) -> None:
        root = getattr(response, "root", None)
        if root is None and hasattr(response, "code") and hasattr(response, "message"):  # ErrorData
            describe_error_response(record, response.code, response.message)
            return
        _describe_model(record, root if root is not None else response)
        if record.method == "initialize":
            session = getattr(responder, "_session", None)
            remember_version(getattr(session, "_write_stream", None), record.protocol_version)

    async def cancel(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        entry = self._active.get(instance)
        if entry is not None and entry[0].record.error is None:
            entry[0].record.error = ErrorInfo(type="cancelled", message="Request cancelled")
        return await wrapped(*args, **kwargs)

    def exit(self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        entry = self._active.pop(instance, None)
        if entry is not None:
            call, token = entry
            detach(token)
            exc = args[1] if len(args) > 1 else kwargs.get("exc_val")
            if isinstance(exc, BaseException):
                call.failed(exc)
            else:
                call.ended()
        return wrapped(*args, **kwargs)


class _Incoming:
    """An incoming notification: a SERVER span around its handling."""

    def __init__(self, *, server: bool) -> None:
        self.server = server

    def _start(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call | None:
        if self.server:  # Server._handle_message(message, session, ...): requests go through the responder
            message = args[0] if args else kwargs.get("message")
            session = args[1] if len(args) > 1 else kwargs.get("session")
            if message is None or not type(message).__name__.endswith("Notification"):
                return None
        else:  # ClientSession._received_notification(notification)
            message = args[0] if args else kwargs.get("notification")
            session = instance
        if message is None or not hasattr(message, "model_dump"):
            return None
        data = _dump(message)
        method = data.get("method")
        if not isinstance(method, str):
            return None
        params = data.get("params")
        peer = peer_of(getattr(session, "_write_stream", None), create=True)
        meta = params.get("_meta") if isinstance(params, Mapping) else None
        return start_server(new_record(method, "server", params, None, peer), meta, peer)

    async def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = guarded_start("mcp.handle_notification", lambda: self._start(instance, args, kwargs))
        if call is None:
            return await wrapped(*args, **kwargs)
        return await run_call(call, wrapped, args, kwargs, lambda record, result: None)


def install(patcher: Patcher) -> bool:
    """Wrap mcp 1.x; ``False`` when the installed SDK is not of that line."""
    if not patcher.method("mcp.shared.session", "BaseSession.send_request", _Send(request=True)):
        return False
    patcher.method("mcp.shared.session", "BaseSession.send_notification", _Send(request=False))
    responders = _Responders()
    patcher.method("mcp.shared.session", "RequestResponder.__enter__", responders.enter)
    patcher.method("mcp.shared.session", "RequestResponder.__exit__", responders.exit)
    patcher.method("mcp.shared.session", "RequestResponder.respond", responders.respond)
    patcher.method("mcp.shared.session", "RequestResponder.cancel", responders.cancel)
    patcher.method("mcp.server.lowlevel.server", "Server._handle_message", _Incoming(server=True))
    patcher.method("mcp.client.session", "ClientSession._received_notification", _Incoming(server=False))
    return True
