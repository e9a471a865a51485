"""Both ends in this process over memory streams: a framework's tool span taking the MCP
attributes, the trace context in a copy of ``_meta``, the content setting, and (mcp 2.x) the
SDK's own spans standing aside.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from mcp_helpers import MCP_V2, attrs, by_name, hex_id, hex_trace, memory_session, text_of
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags, TraceState

from mcp import types
from otel_llm_audit import _guard, semconv
from otel_llm_audit.emitter import parents
from otel_llm_audit.emitter.content import canonical_hash
from otel_llm_audit.emitter.spans import Emitter
from otel_llm_audit.instrumentation.mcp import MCPInstrumentor
from otel_llm_audit.records import ToolExecution

FRAMEWORK_SCOPE = "otel_llm_audit.instrumentation.test_framework"


def _tool_spans(spans: list[Any], kind: SpanKind) -> list[str]:
    return sorted(s.name for s in spans if s.kind is kind and s.name.startswith("tools/call"))


# ----------------------------------------------------------------- an outer framework tool span


async def test_call_inside_the_frameworks_tool_span_adds_the_mcp_attributes_to_it(
    mcp_audit: Any, mcp_server: Any
) -> None:
    framework = Emitter(FRAMEWORK_SCOPE, mcp_audit.tracer_provider)
    async with memory_session(mcp_server) as session:
        with framework.start_step(ToolExecution(tool_name="whoami", call_id="call-1", arguments={})) as step:
            result = await session.call_tool("whoami", {})
            step.record.result = text_of(result)
    spans = mcp_audit.spans()
    handshake = next(s for s in spans if s.name == "initialize" and s.kind is SpanKind.CLIENT)
    tool = by_name(spans, "execute_tool whoami")
    assert _tool_spans(spans, SpanKind.CLIENT) == []  # no second span for the same tool call
    tool_attrs = attrs(tool)
    assert tool_attrs[semconv.MCP_METHOD_NAME] == "tools/call"
    assert tool_attrs[semconv.GEN_AI_TOOL_CALL_ID] == "call-1"  # the framework's own attributes stay
    assert tool_attrs[semconv.GEN_AI_TOOL_NAME] == "whoami"
    assert tool_attrs[semconv.JSONRPC_REQUEST_ID].isdigit()
    assert tool_attrs[semconv.MCP_PROTOCOL_VERSION] == attrs(handshake)[semconv.MCP_PROTOCOL_VERSION]
    assert tool.instrumentation_scope is not None and tool.instrumentation_scope.name == FRAMEWORK_SCOPE
    # The server's span is a child of the framework's span: that is what went in _meta.
    handled = by_name(spans, "tools/call whoami")
    assert handled.kind is SpanKind.SERVER
    assert handled.parent is not None and handled.parent.span_id == tool.context.span_id
    seen = json.loads(text_of(result))
    assert seen["span_id"] == hex_id(handled.context.span_id)
    assert _guard.internal_error_counts() == {}


async def test_the_tool_span_a_framework_resolver_names_is_merged_into_too(mcp_audit: Any, mcp_server: Any) -> None:
    """Frameworks do not make their step current (callbacks); they name it through ``parents``."""
    framework = Emitter(FRAMEWORK_SCOPE, mcp_audit.tracer_provider)
    async with memory_session(mcp_server) as session:
        step = framework.start_step(ToolExecution(tool_name="add", call_id="call-9"))  # started, never attached

        def running_step() -> Any:
            return step.span

        parents.register(running_step)
        try:
            await session.call_tool("add", {"a": 1, "b": 2})
        finally:
            parents.unregister(running_step)
            step.end()
    spans = mcp_audit.spans()
    tool = by_name(spans, "execute_tool add")
    assert _tool_spans(spans, SpanKind.CLIENT) == []
    assert attrs(tool)[semconv.MCP_METHOD_NAME] == "tools/call"
    handled = by_name(spans, "tools/call add")
    assert handled.parent is not None and handled.parent.span_id == tool.context.span_id


async def test_a_failed_tool_marks_the_frameworks_span(mcp_audit: Any, mcp_server: Any) -> None:
    framework = Emitter(FRAMEWORK_SCOPE, mcp_audit.tracer_provider)
    async with memory_session(mcp_server) as session:
        mcp_audit.clear()
        with framework.start_step(ToolExecution(tool_name="fail", arguments={"reason": "r"})):
            await session.call_tool("fail", {"reason": "r"})
    tool = by_name(mcp_audit.spans(), "execute_tool fail")
    assert tool.status.status_code is StatusCode.ERROR
    assert attrs(tool)[semconv.ERROR_TYPE] == "tool_error"


async def test_merging_off_gives_the_call_its_own_span_under_the_frameworks(
    make_mcp_audit: Any, mcp_server: Any
) -> None:
    audit = make_mcp_audit(merge_tool_spans=False)
    framework = Emitter(FRAMEWORK_SCOPE, audit.tracer_provider)
    async with memory_session(mcp_server) as session:
        audit.clear()
        with framework.start_step(ToolExecution(tool_name="add")):
            await session.call_tool("add", {"a": 1, "b": 2})
    spans = audit.spans()
    tool = by_name(spans, "execute_tool add")
    sent = next(s for s in spans if s.name == "tools/call add" and s.kind is SpanKind.CLIENT)
    handled = next(s for s in spans if s.name == "tools/call add" and s.kind is SpanKind.SERVER)
    assert sent.parent is not None and sent.parent.span_id == tool.context.span_id
    assert handled.parent is not None and handled.parent.span_id == sent.context.span_id
    assert semconv.MCP_METHOD_NAME not in attrs(tool)


async def test_a_tool_span_of_another_tool_is_not_merged_into(mcp_audit: Any, mcp_server: Any) -> None:
    framework = Emitter(FRAMEWORK_SCOPE, mcp_audit.tracer_provider)
    async with memory_session(mcp_server) as session:
        mcp_audit.clear()
        with framework.start_step(ToolExecution(tool_name="plan_trip")):
            await session.call_tool("add", {"a": 1, "b": 2})
    spans = mcp_audit.spans()
    outer = by_name(spans, "execute_tool plan_trip")
    sent = next(s for s in spans if s.name == "tools/call add" and s.kind is SpanKind.CLIENT)
    assert sent.parent is not None and sent.parent.span_id == outer.context.span_id
    assert semconv.MCP_METHOD_NAME not in attrs(outer)


# ----------------------------------------------------------------------------- the _meta copy


async def test_trace_context_and_baggage_go_in_a_copy_of_meta(mcp_audit: Any, mcp_server: Any) -> None:
    tracer = mcp_audit.tracer_provider.get_tracer("app")
    # An incoming request's context with a vendor tracestate: the tracestate travels too.
    upstream = SpanContext(
        trace_id=0x5B8EFFF798038103D269B633813FC60C,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "v1")]),
    )
    ctx = baggage.set_baggage("tenant", "acme", trace.set_span_in_context(NonRecordingSpan(upstream)))
    async with memory_session(mcp_server) as session:
        token = otel_context.attach(ctx)
        try:
            with tracer.start_as_current_span("app"):
                seen, unchanged = await _call_seen_meta(session)
        finally:
            otel_context.detach(token)
    assert unchanged  # the caller's request (or params dict) is exactly as it was
    sent = next(s for s in mcp_audit.spans() if s.name == "tools/call seen_meta" and s.kind is SpanKind.CLIENT)
    assert seen["caller"] == "app"  # the caller's own _meta entries are kept
    assert seen["traceparent"] == f"00-{hex_trace(sent.context.trace_id)}-{hex_id(sent.context.span_id)}-01"
    assert seen["tracestate"] == "vendor=v1"
    assert seen["baggage"] == "tenant=acme"


async def _call_seen_meta(session: Any) -> tuple[dict[str, Any], bool]:
    if MCP_V2:  # the dispatcher is where our wrapper meets the caller's dict
        params = {"name": "seen_meta", "arguments": {}, "_meta": {"caller": "app"}}
        before = copy.deepcopy(params)
        raw = await session._dispatcher.send_raw_request("tools/call", params, {})
        return json.loads(raw["content"][0]["text"]), params == before
    request = types.ClientRequest(
        types.CallToolRequest(
            method="tools/call",
            params=types.CallToolRequestParams(name="seen_meta", arguments={}, _meta={"caller": "app"}),
        )
    )
    before = request.model_dump(by_alias=True, mode="json", exclude_none=True)
    result = await session.send_request(request, types.CallToolResult)
    after = request.model_dump(by_alias=True, mode="json", exclude_none=True)
    return json.loads(text_of(result)), after == before


# ----------------------------------------------------------------------------- content setting


@pytest.mark.parametrize("mode", ["hash", "none"])
async def test_tool_arguments_and_results_follow_the_content_setting(
    make_mcp_audit: Any, mcp_server: Any, mode: str
) -> None:
    audit = make_mcp_audit(content=mode)
    async with memory_session(mcp_server) as session:
        result = await session.call_tool("echo", {"text": "Ada Lovelace, ward 7"})
    assert text_of(result) == "Ada Lovelace, ward 7"
    for span in (s for s in audit.spans() if s.name == "tools/call echo"):
        span_attrs = attrs(span)
        assert span_attrs[semconv.LLM_AUDIT_CONTENT_MODE] == mode
        assert semconv.GEN_AI_TOOL_CALL_ARGUMENTS not in span_attrs
        assert semconv.GEN_AI_TOOL_CALL_RESULT not in span_attrs
        if mode == "hash":
            hashes = json.loads(span_attrs[semconv.LLM_AUDIT_CONTENT_HASHES])
            assert hashes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] == [canonical_hash({"text": "Ada Lovelace, ward 7"})]
            assert len(hashes[semconv.GEN_AI_TOOL_CALL_RESULT]) == 1
        else:
            assert semconv.LLM_AUDIT_CONTENT_HASHES not in span_attrs
        assert "Ada" not in json.dumps(span_attrs)


async def test_tool_arguments_results_and_prompt_variables_are_masked(make_mcp_audit: Any, mcp_server: Any) -> None:
    audit = make_mcp_audit(content="masked")
    assert audit.pipeline.masking is not None and audit.pipeline.masking.wait_ready(60)
    async with memory_session(mcp_server) as session:
        await session.call_tool("echo", {"text": "write to jane.doe@example.com"})
        await session.get_prompt("greet", {"name": "jane.doe@example.com"})
    spans = [s for s in audit.spans() if s.name in ("tools/call echo", "prompts/get greet")]
    assert sorted((s.name, s.kind.name) for s in spans) == [
        ("prompts/get greet", "CLIENT"),
        ("prompts/get greet", "SERVER"),
        ("tools/call echo", "CLIENT"),
        ("tools/call echo", "SERVER"),
    ]
    for span in spans:
        span_attrs = attrs(span)
        assert "jane.doe@example.com" not in json.dumps(span_attrs)
        assert span_attrs[semconv.LLM_AUDIT_CONTENT_MODE] == "masked"
        if span.name.startswith("tools/call"):
            assert json.loads(span_attrs[semconv.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"text": "write to <EMAIL_ADDRESS>"}
            assert "write to <EMAIL_ADDRESS>" in span_attrs[semconv.GEN_AI_TOOL_CALL_RESULT]
        else:
            assert json.loads(span_attrs[semconv.LLM_AUDIT_PROMPT_VARIABLES]) == {"name": "<EMAIL_ADDRESS>"}


# ------------------------------------------------------------------------ the SDK's own spans


@pytest.mark.skipif(not MCP_V2, reason="mcp 1.x does not trace itself")
async def test_the_sdks_own_spans_stand_aside_while_ours_record(
    mcp_audit: Any, mcp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mcp.shared._otel as sdk_otel

    monkeypatch.setattr(sdk_otel, "_tracer", mcp_audit.tracer_provider.get_tracer("mcp-python-sdk"))

    def sdk_spans() -> list[str]:
        return sorted(
            s.name
            for s in mcp_audit.spans()
            if s.instrumentation_scope is not None and s.instrumentation_scope.name == "mcp-python-sdk"
        )

    async with memory_session(mcp_server) as session:
        await session.call_tool("add", {"a": 1, "b": 2})
    assert sdk_spans() == []
    assert _tool_spans(mcp_audit.spans(), SpanKind.CLIENT) == ["tools/call add"]
    assert _tool_spans(mcp_audit.spans(), SpanKind.SERVER) == ["tools/call add"]
    # Uninstrumented, the SDK's spans are back: the check above could fail.
    MCPInstrumentor().uninstrument()
    mcp_audit.clear()
    async with memory_session(mcp_server) as session:
        await session.call_tool("add", {"a": 1, "b": 2})
    assert "MCP send tools/call add" in sdk_spans() and "tools/call add" in sdk_spans()


# ----------------------------------------------------------------------------------- metrics


async def test_each_message_feeds_the_operation_duration_histograms(mcp_audit: Any, mcp_server: Any) -> None:
    async with memory_session(mcp_server) as session:
        await session.call_tool("add", {"a": 1, "b": 2})
        await session.call_tool("fail", {"reason": "r"})
    spans = {(s.name, s.kind.name): s for s in mcp_audit.spans()}
    metrics = mcp_audit.metrics()
    for side, kind in (("client", "CLIENT"), ("server", "SERVER")):
        points = {
            (p.attributes[semconv.MCP_METHOD_NAME], p.attributes.get(semconv.GEN_AI_TOOL_NAME)): p
            for p in metrics[f"mcp.{side}.operation.duration"]
        }
        add = points[("tools/call", "add")]
        assert dict(add.attributes) == {
            semconv.MCP_METHOD_NAME: "tools/call",
            semconv.GEN_AI_OPERATION_NAME: "execute_tool",
            semconv.GEN_AI_TOOL_NAME: "add",
            semconv.MCP_PROTOCOL_VERSION: attrs(spans[("tools/call add", kind)])[semconv.MCP_PROTOCOL_VERSION],
        }
        span = spans[("tools/call add", kind)]
        assert add.count == 1 and add.sum == pytest.approx((span.end_time - span.start_time) / 1e9, abs=1e-6)
        assert points[("tools/call", "fail")].attributes[semconv.ERROR_TYPE] == "tool_error"
        assert ("initialize", None) in points
