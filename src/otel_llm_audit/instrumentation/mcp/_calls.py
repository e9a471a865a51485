"""The part of MCP capture both SDK lines share: what a message says, and one call's life.

A request or notification is described from its JSON form (``method`` and ``params`` as
they go on the wire), which both mcp 1.x (pydantic models, dumped) and mcp 2.x (plain dicts)
can give. The trace context goes into ``params._meta`` as ``traceparent``, ``tracestate``
and ``baggage`` (the global propagator, unprefixed keys, SEP-414), always on a copy of the
caller's params; the handling side takes its parent from there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import NonRecordingSpan

from otel_llm_audit import _guard
from otel_llm_audit.emitter.attributes import error_info
from otel_llm_audit.emitter.mcp import McpSpan
from otel_llm_audit.emitter.spans import Emitter
from otel_llm_audit.instrumentation.mcp._peers import Peer, peer_of
from otel_llm_audit.records import ErrorInfo, McpRequest

logger = logging.getLogger("otel_llm_audit")

#: In the context while our span records an outgoing request: the SDK's own span stands aside.
SEND_KEY = otel_context.create_key("otel_llm_audit.mcp.send")
#: In the context while our span records the handling of an incoming message (likewise).
HANDLE_KEY = otel_context.create_key("otel_llm_audit.mcp.handle")

#: JSON-RPC "invalid params": what the SDK answers when a request's params fail validation.
INVALID_PARAMS = -32602

_RESOURCE_METHODS = frozenset(
    {"resources/read", "resources/subscribe", "resources/unsubscribe", "notifications/resources/updated"}
)


class McpState:
    """The emitter in force (``None`` when uninstrumented) and the options of ``instrument()``."""

    def __init__(self) -> None:
        self.emitter: Emitter | None = None
        self.merge_tool_spans = True


STATE = McpState()


def new_record(method: str, side: str, params: Any, request_id: Any = None, peer: Peer | None = None) -> McpRequest:
    """A record of ``method`` with what its params and the connection tell."""
    record = McpRequest(method=method, side=side)
    if isinstance(request_id, (str, int)) and not isinstance(request_id, bool):
        record.request_id = request_id
    if peer is not None:
        record.transport = peer.transport
        record.session_id = peer.session_id
        record.protocol_version = peer.protocol_version
        if side == "client":
            record.server_address = peer.server_address
            record.server_port = peer.server_port
    if isinstance(params, Mapping):
        describe_params(record, params)
    return record


def describe_params(record: McpRequest, params: Mapping[str, Any]) -> None:
    """The tool, prompt or resource a request is about, and its arguments (a snapshot)."""
    method = record.method
    if method == "tools/call":
        name = params.get("name")
        record.tool_name = name if isinstance(name, str) else None
        record.arguments = _snapshot(params.get("arguments"))
    elif method == "prompts/get":
        name = params.get("name")
        record.prompt_name = name if isinstance(name, str) else None
        record.arguments = _snapshot(params.get("arguments"))
    elif method in _RESOURCE_METHODS:
        uri = params.get("uri")
        record.resource_uri = str(uri) if uri is not None else None


def _snapshot(value: Any) -> Any:
    """A shallow copy: the application may change its arguments dict after the call."""
    return dict(value) if isinstance(value, Mapping) else value


def describe_result(record: McpRequest, result: Any) -> None:
    """What the answer says: a tool's result and whether it failed, a negotiated version."""
    if not isinstance(result, Mapping):
        return
    if record.method == "tools/call":
        record.result = {k: v for k, v in result.items() if k != "_meta"}
        record.tool_error = result.get("isError") is True
    elif record.method == "initialize":
        version = result.get("protocolVersion")
        if isinstance(version, str):
            record.protocol_version = version


def describe_error_response(record: McpRequest, code: Any, message: Any) -> None:
    """An error response (JSON-RPC error object) as the handling side sent it."""
    if isinstance(code, int) and not isinstance(code, bool):
        record.error_code = code
    record.error = ErrorInfo(type=str(code), message=str(message))


def describe_exception(record: McpRequest, exc: BaseException) -> None:
    """An exception out of the SDK: an error response (``McpError`` / ``MCPError``) carries its code."""
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        record.error_code = code
    elif type(exc).__name__ == "ValidationError" and record.side == "server":
        record.error_code = INVALID_PARAMS  # what the SDK answers for it
    record.error = error_info(exc)


def meta_with_context(meta: Any, ctx: otel_context.Context) -> dict[str, Any]:
    """A copy of ``_meta`` with the trace context of ``ctx`` (and its baggage) added."""
    out = dict(meta) if isinstance(meta, Mapping) else {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=ctx)
    out.update(carrier)
    return out


def params_with_context(params: Any, ctx: otel_context.Context) -> dict[str, Any]:
    """A copy of a request's params with the trace context in ``_meta``; the caller's dict is left alone."""
    out = dict(params) if isinstance(params, Mapping) else {}
    out["_meta"] = meta_with_context(out.get("_meta"), ctx)
    return out


def remote_parent(meta: Any) -> tuple[otel_context.Context | None, list[trace.Link]]:
    """The parent the sender put in ``_meta``, and a link to the ambient span (the transport's).

    The parent context keeps the handling side's own context (its audit identity, its
    values) and adds the sender's span and baggage. ``None`` when ``_meta`` carries no trace
    context: then the ambient span is the parent, as for any other work.
    """
    if not isinstance(meta, Mapping):
        return None, []
    carrier = {k: v for k, v in meta.items() if isinstance(k, str) and isinstance(v, str)}
    if not carrier:
        return None, []
    extracted = propagate.extract(carrier)
    remote = trace.get_current_span(extracted).get_span_context()
    ctx = otel_context.get_current()
    ambient = trace.get_current_span(ctx).get_span_context()
    for key, value in baggage.get_all(extracted).items():
        ctx = baggage.set_baggage(key, value, ctx)
    if not remote.is_valid:
        return ctx, []
    links = [trace.Link(ambient)] if ambient.is_valid and ambient.span_id != remote.span_id else []
    return trace.set_span_in_context(NonRecordingSpan(remote), ctx), links


class Call:
    """One request or notification being recorded, and the context it runs in."""

    __slots__ = ("context", "key", "peer", "span")

    def __init__(self, span: McpSpan, context: otel_context.Context, key: str, peer: Peer | None = None) -> None:
        self.span = span
        self.context = context
        self.key = key
        #: The connection, asked again at the end: the session id arrives with the first answer.
        self.peer = peer

    @property
    def record(self) -> McpRequest:
        return self.span.record

    def attach(self) -> object | None:
        """Make the call's span current (in this task only); ``None`` if that failed."""
        try:
            return otel_context.attach(otel_context.set_value(self.key, self.span.span, self.context))
        except Exception as err:
            _guard.report_internal_error("mcp.attach", err)
            return None

    def failed(self, exc: BaseException) -> None:
        try:
            if self.record.error is None:
                describe_exception(self.record, exc)
            self._late_facts()
        except Exception as err:
            _guard.report_internal_error("mcp.error", err)
        self.span.end(exc)

    def succeeded(self, result: Any, describe: Callable[[McpRequest, Any], None] = describe_result) -> None:
        try:
            describe(self.record, result)
            self._late_facts()
        except Exception as err:
            _guard.report_internal_error("mcp.result", err)
        self.span.end()

    def ended(self) -> None:
        """The message was handled without a result we read (a notification, a cancelled request)."""
        try:
            self._late_facts()
        except Exception as err:
            _guard.report_internal_error("mcp.result", err)
        self.span.end()

    def _late_facts(self) -> None:
        peer = self.peer
        if peer is not None and self.record.session_id is None:
            self.record.session_id = peer.session_id


def detach(token: object | None) -> None:
    if token is None:
        return
    try:
        otel_context.detach(token)  # type: ignore[arg-type]
    except Exception as err:
        _guard.report_internal_error("mcp.detach", err)


def start_client(record: McpRequest, peer: Peer | None = None) -> Call | None:
    """Start the span of a message this process sends; ``None`` when nothing records it."""
    emitter = STATE.emitter
    if emitter is None or not is_instrumentation_enabled():
        return None
    span = emitter.start_mcp(record, merge_tool_spans=STATE.merge_tool_spans)
    ctx = trace.set_span_in_context(span.span)
    return Call(span, ctx, SEND_KEY, peer)


def start_server(record: McpRequest, meta: Any, peer: Peer | None = None) -> Call | None:
    """Start the span of handling a message; its parent is the sender's span from ``_meta``."""
    emitter = STATE.emitter
    if emitter is None or not is_instrumentation_enabled():
        return None
    parent, links = remote_parent(meta)
    span = emitter.start_mcp(record, context=parent, links=links)
    base = parent if parent is not None else otel_context.get_current()
    return Call(span, trace.set_span_in_context(span.span, base), HANDLE_KEY, peer)


async def run_call(
    call: Call,
    wrapped: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    describe: Callable[[McpRequest, Any], None] = describe_result,
) -> Any:
    """Await the SDK's coroutine with the call's span current; the SDK's result or exception goes back untouched."""
    token = call.attach()
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        detach(token)
        call.failed(exc)
        raise
    detach(token)
    call.succeeded(result, describe)
    return result


def remember_version(stream: Any, version: str | None) -> None:
    """Keep a connection's negotiated protocol version for its later messages."""
    if version is None:
        return
    try:
        peer = peer_of(stream)
        if peer is not None:
            peer.protocol_version = version
    except Exception as err:
        _guard.report_internal_error("mcp.peer", err)


def guarded_start(component: str, start: Callable[[], Call | None]) -> Call | None:
    """Run a capture module's start; an exception of ours means "not recorded", never a failed call.

    Uninstrumented, nothing runs at all: wrappers that sessions still hold cost one check.
    """
    if STATE.emitter is None:
        return None
    try:
        return start()
    except Exception as err:
        _guard.report_internal_error(component, err)
        return None
