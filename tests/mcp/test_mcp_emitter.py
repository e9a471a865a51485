"""The MCP span mapping on its own (records in, spans out), and where a server span's parent comes from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from mcp_helpers import attrs, by_name
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

from otel_llm_audit import __version__, semconv
from otel_llm_audit.config import Settings, set_settings
from otel_llm_audit.emitter.spans import Emitter
from otel_llm_audit.instrumentation.mcp._calls import new_record, start_server
from otel_llm_audit.records import McpRequest

SENDER = SpanContext(
    trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
    span_id=0x00F067AA0BA902B7,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
)


@pytest.fixture
def traced() -> Iterator[tuple[Emitter, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    set_settings(Settings.from_env(content="raw"))
    yield Emitter("otel_llm_audit.instrumentation.mcp", provider), exporter
    set_settings(None)
    provider.shutdown()


def _record(method: str, params: dict[str, Any] | None = None, **fields: Any) -> McpRequest:
    record = new_record(method, fields.pop("side", "client"), params, fields.pop("request_id", None))
    for key, value in fields.items():
        setattr(record, key, value)
    return record


def test_names_kinds_and_attributes_per_method(traced: tuple[Emitter, InMemorySpanExporter]) -> None:
    emitter, exporter = traced
    records = [
        _record(
            "tools/call",
            {"name": "get-weather", "arguments": {"city": "Oslo"}},
            request_id=7,
            transport="tcp",
            session_id="s-1",
            protocol_version="2025-06-18",
            server_address="mcp.example",
            server_port=443,
        ),
        _record("prompts/get", {"name": "summary", "arguments": {"topic": "x"}}, request_id="r-8"),
        _record("resources/read", {"uri": "file:///home/ada/notes.md"}, request_id=9, side="server", transport="pipe"),
        _record("notifications/progress", {"progressToken": 7, "progress": 1}, side="server"),
    ]
    for record in records:
        emitter.start_mcp(record).end()
    spans = exporter.get_finished_spans()
    assert [(s.name, s.kind) for s in spans] == [
        ("tools/call get-weather", SpanKind.CLIENT),
        ("prompts/get summary", SpanKind.CLIENT),
        ("resources/read", SpanKind.SERVER),  # URIs are too many to name spans after
        ("notifications/progress", SpanKind.SERVER),
    ]
    tool, prompt, resource, progress = (attrs(s) for s in spans)
    assert tool == {
        semconv.MCP_METHOD_NAME: "tools/call",
        semconv.JSONRPC_REQUEST_ID: "7",
        semconv.GEN_AI_OPERATION_NAME: "execute_tool",
        semconv.GEN_AI_TOOL_NAME: "get-weather",
        semconv.NETWORK_TRANSPORT: "tcp",
        semconv.MCP_SESSION_ID: "s-1",
        semconv.MCP_PROTOCOL_VERSION: "2025-06-18",
        semconv.SERVER_ADDRESS: "mcp.example",
        semconv.SERVER_PORT: 443,
        semconv.GEN_AI_TOOL_CALL_ARGUMENTS: '{"city":"Oslo"}',
        semconv.LLM_AUDIT_CONTENT_MODE: "raw",
        semconv.LLM_AUDIT_SDK_VERSION: __version__,
    }
    assert prompt[semconv.GEN_AI_PROMPT_NAME] == "summary"
    assert prompt[semconv.JSONRPC_REQUEST_ID] == "r-8"
    assert json.loads(prompt[semconv.LLM_AUDIT_PROMPT_VARIABLES]) == {"topic": "x"}
    assert semconv.GEN_AI_OPERATION_NAME not in prompt
    assert resource[semconv.MCP_RESOURCE_URI] == "file:///home/ada/notes.md"
    assert resource[semconv.NETWORK_TRANSPORT] == "pipe"
    assert progress == {
        semconv.MCP_METHOD_NAME: "notifications/progress",
        semconv.LLM_AUDIT_CONTENT_MODE: "raw",
        semconv.LLM_AUDIT_SDK_VERSION: __version__,
    }


def test_errors_error_responses_and_failed_tools(traced: tuple[Emitter, InMemorySpanExporter]) -> None:
    emitter, exporter = traced
    response = _record("tools/list", request_id=1, error_code=-32601)
    tool = _record("tools/call", {"name": "lookup"}, request_id=2, result={"isError": True}, tool_error=True)
    crashed = _record("resources/read", {"uri": "db://x"}, request_id=3)
    for record in (response, tool):
        emitter.start_mcp(record).end()
    emitter.start_mcp(crashed).end(TimeoutError("no answer"))
    listed, called, read = exporter.get_finished_spans()
    assert attrs(listed)[semconv.ERROR_TYPE] == "-32601" == attrs(listed)[semconv.RPC_RESPONSE_STATUS_CODE]
    assert listed.status.status_code is StatusCode.ERROR and listed.events == ()
    assert attrs(called)[semconv.ERROR_TYPE] == "tool_error" and called.status.status_code is StatusCode.ERROR
    assert semconv.RPC_RESPONSE_STATUS_CODE not in attrs(called)
    assert attrs(read)[semconv.ERROR_TYPE] == "TimeoutError"
    assert read.status.description == "no answer" and [e.name for e in read.events] == ["exception"]


def _sender_meta() -> dict[str, str]:
    meta: dict[str, str] = {"progressToken": "p-1"}
    propagate.inject(meta, context=trace.set_span_in_context(NonRecordingSpan(SENDER)))
    return meta


def test_a_server_span_has_the_sender_as_parent_and_the_transport_span_as_a_link(mcp_audit: Any) -> None:
    transport = mcp_audit.tracer_provider.get_tracer("asgi")
    with transport.start_as_current_span("POST /mcp", kind=SpanKind.SERVER) as http_span:
        call = start_server(_record("tools/list", side="server", request_id=4), _sender_meta())
        assert call is not None
        call.ended()
    handled = by_name(mcp_audit.spans(), "tools/list")
    assert handled.context.trace_id == SENDER.trace_id
    assert handled.parent is not None and handled.parent.span_id == SENDER.span_id and handled.parent.is_remote
    assert [link.context.span_id for link in handled.links] == [http_span.get_span_context().span_id]


def test_without_trace_context_in_meta_the_ambient_span_is_the_parent(mcp_audit: Any) -> None:
    transport = mcp_audit.tracer_provider.get_tracer("asgi")
    with transport.start_as_current_span("POST /mcp", kind=SpanKind.SERVER) as http_span:
        call = start_server(_record("ping", side="server", request_id=5), {"progressToken": "p-1"})
        assert call is not None
        call.ended()
    handled = by_name(mcp_audit.spans(), "ping")
    assert handled.parent is not None and handled.parent.span_id == http_span.get_span_context().span_id
    assert handled.links == ()
