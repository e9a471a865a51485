"""MCP requests and notifications as spans, per the MCP semantic conventions.

The side that sends a request or notification records a CLIENT span, the side that handles
it a SERVER span, both named ``{mcp.method.name} {target}`` where the target is the tool
(``tools/call``) or the prompt (``prompts/get``); resource URIs are too many to name spans
after, so they go in ``mcp.resource.uri`` only. A ``tools/call`` span is also an
``execute_tool`` span (``gen_ai.operation.name``, ``gen_ai.tool.name``), with the arguments
and result as content, kept per the ``content`` setting like every other content.

When an agent framework already records the tool execution (its ``execute_tool`` span for
the same tool is the span the call runs under), the conventions ask for no second span: the
MCP attributes go on that span instead (:func:`covering_tool_span`). Its owner ends it and
records the arguments and result it saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from otel_llm_audit import _guard, semconv
from otel_llm_audit.context import current_identity
from otel_llm_audit.emitter import parents
from otel_llm_audit.emitter.attributes import AttributeValue, error_info, exception_event, mark_ours
from otel_llm_audit.emitter.operations import _masked_downstream, _StepContent
from otel_llm_audit.records import McpRequest

TOOLS_CALL = "tools/call"
PROMPTS_GET = "prompts/get"
#: ``error.type`` of a tool call whose result says it failed (``isError: true``).
TOOL_ERROR = "tool_error"

#: Takes one message's duration: ``(side, seconds, dimensions)``.
DurationRecorder = Callable[[str, float, Mapping[str, str]], None]


class McpSpan:
    """One MCP request or notification in flight, and an end that happens exactly once.

    ``owned`` is ``False`` when the request was folded into an outer ``execute_tool`` span:
    that span gets the MCP attributes here and is ended by its owner.
    """

    __slots__ = ("_ended", "_metrics", "_start_ns", "owned", "record", "span")

    def __init__(
        self,
        span: Span,
        record: McpRequest,
        owned: bool,
        metrics: DurationRecorder | None = None,
        start_ns: int | None = None,
    ) -> None:
        self.span = span
        self.record = record
        self.owned = owned
        self._metrics = metrics
        self._start_ns = start_ns if start_ns is not None else time.time_ns()
        self._ended = False

    def end(self, exc: BaseException | None = None, end_time: int | None = None) -> None:
        """Record what the request learned by its end (result, error) and end our span."""
        if self._ended:
            return
        self._ended = True
        end_ns = end_time if end_time is not None else time.time_ns()
        record = self.record
        try:
            if exc is not None and record.error is None:
                record.error = error_info(exc)
            if self.owned:
                self._finish_owned()
            else:
                self._finish_merged()
        except Exception as err:  # our bookkeeping never reaches the application
            _guard.report_internal_error("emitter.mcp_end", err)
        if self.owned:
            self.span.end(end_time=end_ns)
        if self._metrics is not None:
            try:
                self._metrics(record.side, max(end_ns - self._start_ns, 0) / 1e9, mcp_metric_attributes(record))
            except Exception as err:
                _guard.report_internal_error("emitter.metrics", err)

    def _finish_owned(self) -> None:
        record = self.record
        span = self.span
        span.set_attributes(mcp_end_attributes(record, masked_downstream=_masked_downstream(span)))
        if record.error is not None:
            span.set_status(Status(StatusCode.ERROR, record.error.message))
            if record.error.exception is not None:
                event = exception_event(record.error)
                span.add_event(event.name, event.attributes)
        elif record.error_code is not None or record.tool_error:
            span.set_status(Status(StatusCode.ERROR))

    def _finish_merged(self) -> None:
        """Only what the owner of the tool span cannot know: the protocol's view of the call."""
        record = self.record
        attrs: dict[str, AttributeValue] = {}
        _put(attrs, semconv.MCP_SESSION_ID, record.session_id)
        _put(attrs, semconv.MCP_PROTOCOL_VERSION, record.protocol_version)
        _put_error(attrs, record, exception_type=False)
        self.span.set_attributes(attrs)
        if record.error_code is not None or record.tool_error:
            self.span.set_status(Status(StatusCode.ERROR))


def mcp_span_name(record: McpRequest) -> str:
    """``{mcp.method.name} {target}``: the tool or prompt; the method alone otherwise."""
    target = _target(record)
    return f"{record.method} {target}" if target else record.method


def _target(record: McpRequest) -> str | None:
    if record.method == TOOLS_CALL:
        return record.tool_name
    if record.method == PROMPTS_GET:
        return record.prompt_name
    return None


def mcp_start_attributes(record: McpRequest) -> dict[str, AttributeValue]:
    """The attributes known when the request starts (and that samplers may look at)."""
    attrs: dict[str, AttributeValue] = {semconv.MCP_METHOD_NAME: record.method}
    if record.request_id is not None:
        attrs[semconv.JSONRPC_REQUEST_ID] = str(record.request_id)
    if record.method == TOOLS_CALL:
        attrs[semconv.GEN_AI_OPERATION_NAME] = semconv.GenAiOperationNameValues.EXECUTE_TOOL
        _put(attrs, semconv.GEN_AI_TOOL_NAME, record.tool_name)
    _put(attrs, semconv.GEN_AI_PROMPT_NAME, record.prompt_name)
    _put(attrs, semconv.MCP_RESOURCE_URI, record.resource_uri)
    _put(attrs, semconv.MCP_SESSION_ID, record.session_id)
    _put(attrs, semconv.MCP_PROTOCOL_VERSION, record.protocol_version)
    _put(attrs, semconv.NETWORK_TRANSPORT, record.transport)
    if record.side == "client" and record.server_address:
        attrs[semconv.SERVER_ADDRESS] = record.server_address
        _put(attrs, semconv.SERVER_PORT, record.server_port)
    return attrs


def mcp_end_attributes(record: McpRequest, *, masked_downstream: bool = False) -> dict[str, AttributeValue]:
    """What the request learned by its end: session, version, content, errors."""
    attrs: dict[str, AttributeValue] = {}
    _put(attrs, semconv.MCP_SESSION_ID, record.session_id)
    _put(attrs, semconv.MCP_PROTOCOL_VERSION, record.protocol_version)
    content = _StepContent(masked_downstream)
    if record.method == TOOLS_CALL:
        content.add(attrs, semconv.GEN_AI_TOOL_CALL_ARGUMENTS, record.arguments)
        content.add(attrs, semconv.GEN_AI_TOOL_CALL_RESULT, record.result)
    elif record.method == PROMPTS_GET:
        content.add(attrs, semconv.LLM_AUDIT_PROMPT_VARIABLES, record.arguments)
    _put_error(attrs, record, exception_type=True)
    content.finish(attrs)
    return attrs


def mcp_metric_attributes(record: McpRequest) -> dict[str, str]:
    """The dimensions of ``mcp.{client,server}.operation.duration``: low cardinality (no ids, no URIs)."""
    attrs: dict[str, AttributeValue] = {semconv.MCP_METHOD_NAME: record.method}
    if record.method == TOOLS_CALL:
        attrs[semconv.GEN_AI_OPERATION_NAME] = semconv.GenAiOperationNameValues.EXECUTE_TOOL
        _put(attrs, semconv.GEN_AI_TOOL_NAME, record.tool_name)
    _put(attrs, semconv.GEN_AI_PROMPT_NAME, record.prompt_name)
    _put(attrs, semconv.MCP_PROTOCOL_VERSION, record.protocol_version)
    _put(attrs, semconv.NETWORK_TRANSPORT, record.transport)
    _put_error(attrs, record, exception_type=True)
    return {key: str(value) for key, value in attrs.items()}


def _put_error(attrs: dict[str, AttributeValue], record: McpRequest, *, exception_type: bool) -> None:
    """``error.type``: the JSON-RPC error code of an error response, else the exception, else ``tool_error``."""
    if record.error_code is not None:
        code = str(record.error_code)
        attrs[semconv.RPC_RESPONSE_STATUS_CODE] = code
        attrs[semconv.ERROR_TYPE] = code
    elif record.error is not None and exception_type:
        attrs[semconv.ERROR_TYPE] = record.error.type
    elif record.tool_error:
        attrs[semconv.ERROR_TYPE] = TOOL_ERROR


def covering_tool_span(tool_name: str, context: otel_context.Context | None = None) -> Span | None:
    """The running ``execute_tool`` span of ``tool_name`` this call happens in, if there is one.

    Looked for in the current span and in the span the framework resolvers name as the
    parent (``context``): an agent framework's tool step whose body is this MCP call.
    """
    candidates = [trace.get_current_span()]
    if context is not None:
        candidates.append(trace.get_current_span(context))
    for span in candidates:
        if not span.is_recording():
            continue
        attrs = getattr(span, "attributes", None)
        if not attrs:
            continue
        is_tool = attrs.get(semconv.GEN_AI_OPERATION_NAME) == semconv.GenAiOperationNameValues.EXECUTE_TOOL
        if is_tool and attrs.get(semconv.GEN_AI_TOOL_NAME) == tool_name:
            return span
    return None


def start_mcp(
    tracer: trace.Tracer,
    record: McpRequest,
    *,
    context: otel_context.Context | None = None,
    links: Sequence[trace.Link] | None = None,
    merge_tool_spans: bool = True,
    start_time: int | None = None,
    metrics: DurationRecorder | None = None,
) -> McpSpan:
    """Start recording an MCP request or notification.

    ``context`` is the parent: on the server side the context the client sent in ``_meta``;
    on the client side ``None`` (the framework step the call runs in, else the current span).
    ``links`` point at related spans (the transport's own request span on the server side).
    With ``merge_tool_spans``, a client ``tools/call`` inside the framework's ``execute_tool``
    span of the same tool adds its attributes to that span instead of starting another.
    ``metrics`` is told each message's duration (the operation duration histograms).
    """
    start_ns = start_time if start_time is not None else time.time_ns()
    if context is None and record.side == "client":
        context = parents.parent_context()
    if merge_tool_spans and record.side == "client" and record.method == TOOLS_CALL and record.tool_name:
        outer = covering_tool_span(record.tool_name, context)
        if outer is not None:
            attrs = mcp_start_attributes(record)
            attrs.pop(semconv.GEN_AI_OPERATION_NAME, None)
            attrs.pop(semconv.GEN_AI_TOOL_NAME, None)
            outer.set_attributes(attrs)
            return McpSpan(outer, record, owned=False, metrics=metrics, start_ns=start_ns)
    attrs = mark_ours(mcp_start_attributes(record))
    identity = current_identity(context)
    if identity is not None:
        attrs.update(identity.attributes)
    kind = SpanKind.SERVER if record.side == "server" else SpanKind.CLIENT
    span = tracer.start_span(
        mcp_span_name(record), context, kind=kind, attributes=attrs, links=links, start_time=start_ns
    )
    return McpSpan(span, record, owned=True, metrics=metrics, start_ns=start_ns)


def _put(attrs: dict[str, AttributeValue], key: str, value: Any) -> None:
    if value is not None:
        attrs[key] = value
