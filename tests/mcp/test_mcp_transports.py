"""End to end over real transports: a client here, the test server as a real process (stdio, then
streamable HTTP), both audited. The server writes its spans to a file; the test checks that every
server span joined the client's trace under the client span that sent the request, with the MCP
attributes on both sides.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp_helpers import (
    METHOD_NOT_FOUND,
    PROMPT_REF,
    answer_sampling,
    attrs,
    by_name,
    hex_id,
    hex_trace,
    http_server,
    http_session,
    ignore_progress,
    read_spans,
    stdio_session,
    text_of,
    tool_failed,
)
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from otel_llm_audit import _guard, audit_context, semconv

try:
    from mcp.shared.exceptions import MCPError as McpError
except ImportError:  # mcp 1.x
    from mcp.shared.exceptions import McpError  # type: ignore[no-redef,attr-defined]

#: What every request of the scenario is, on the client: (span name, tool, prompt, resource).
REQUESTS = [
    ("tools/call add", "add"),
    ("tools/call whoami", "whoami"),
    ("tools/call fail", "fail"),
    ("tools/call ask_client", "ask_client"),
    ("tools/call count", "count"),
    ("prompts/get greet", None),
    ("resources/read", None),
    ("ping", None),
    ("completion/complete", None),
]


async def _scenario(session: Any, tracer: Any) -> dict[str, Any]:
    """One user request that uses every kind of MCP message, with tenant baggage in force."""
    seen: dict[str, Any] = {"initialize": await session.initialize()}
    with tracer.start_as_current_span("handle user request"), audit_context(tenant_id="clinic-3", user_id="u-7"):
        token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
        try:
            seen["add"] = await session.call_tool("add", {"a": 2, "b": 3})
            seen["whoami"] = json.loads(text_of(await session.call_tool("whoami", {})))
            seen["fail"] = await session.call_tool("fail", {"reason": "no access"})
            seen["ask"] = await session.call_tool("ask_client", {"question": "colour?"})
            seen["count"] = await session.call_tool("count", {"steps": 2}, progress_callback=ignore_progress)
            seen["prompt"] = await session.get_prompt("greet", {"name": "Ada"})
            seen["note"] = await session.read_resource("note://n1")
            await session.send_ping()
            with pytest.raises(McpError) as raised:
                await session.complete(PROMPT_REF, {"name": "name", "value": "A"})
            seen["complete_error"] = raised.value
        finally:
            otel_context.detach(token)
    return seen


def _check_results(seen: dict[str, Any]) -> None:
    """The SDK's answers reached the application as the server sent them."""
    assert text_of(seen["add"]) == "5" and not tool_failed(seen["add"])
    assert tool_failed(seen["fail"])
    assert text_of(seen["ask"]) == "blue"
    assert text_of(seen["count"]) == "counted 2"
    assert seen["prompt"].messages[0].content.text == "Say hello to Ada."
    assert seen["note"].contents[0].text == "note n1"
    assert seen["complete_error"].error.code == METHOD_NOT_FOUND


def _check_trace(
    client: list[ReadableSpan], server: list[dict[str, Any]], seen: dict[str, Any], transport: str
) -> str | None:
    """Every request: a CLIENT span here, a SERVER span there whose parent it is. Returns the session id."""
    root = by_name(client, "handle user request")
    trace_id = hex_trace(root.context.trace_id)
    version = seen["initialize"].protocol_version if hasattr(seen["initialize"], "protocol_version") else None
    version = version or seen["initialize"].protocolVersion
    session_ids = set()
    for name, tool in REQUESTS:
        sent = by_name(client, name)
        handled = [s for s in server if s["name"] == name and s["kind"] == "SERVER"]
        assert len(handled) == 1, (name, [s["name"] for s in server])
        got = handled[0]
        assert sent.kind is SpanKind.CLIENT
        assert sent.parent is not None and sent.parent.span_id == root.context.span_id
        assert got["trace_id"] == trace_id
        assert got["parent_span_id"] == hex_id(sent.context.span_id) and got["parent_is_remote"]
        assert sent.start_time <= got["start"] <= got["end"] <= sent.end_time  # one clock: same machine
        for side in (attrs(sent), got["attributes"]):
            assert side[semconv.MCP_METHOD_NAME] == name.split(" ")[0]
            assert side[semconv.NETWORK_TRANSPORT] == transport
            assert side[semconv.MCP_PROTOCOL_VERSION] == version
            assert side[semconv.JSONRPC_REQUEST_ID] == attrs(sent)[semconv.JSONRPC_REQUEST_ID]
            if tool is not None:
                assert side[semconv.GEN_AI_OPERATION_NAME] == "execute_tool"
                assert side[semconv.GEN_AI_TOOL_NAME] == tool
            else:
                assert semconv.GEN_AI_TOOL_NAME not in side
            session_ids.add(side.get(semconv.MCP_SESSION_ID))
    # The tool handler ran inside the server span, with the client's baggage: the application's
    # own entry and the audit identity fields the client lets travel (the tenant, not the user).
    whoami = next(s for s in server if s["name"] == "tools/call whoami")
    assert seen["whoami"] == {
        "trace_id": trace_id,
        "span_id": whoami["span_id"],
        "baggage": {"tenant": "acme", semconv.LLM_AUDIT_TENANT_ID: "clinic-3"},
    }
    for name, _ in REQUESTS:
        assert attrs(by_name(client, name))[semconv.USER_ID] == "u-7"
        handled = next(s for s in server if s["name"] == name)["attributes"]
        assert handled[semconv.LLM_AUDIT_TENANT_ID] == "clinic-3" and semconv.USER_ID not in handled
    # Content on both sides (raw here): arguments and results of tools, variables of prompts.
    add = attrs(by_name(client, "tools/call add"))
    assert json.loads(add[semconv.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"a": 2, "b": 3}
    assert json.loads(add[semconv.GEN_AI_TOOL_CALL_RESULT])["content"] == [{"type": "text", "text": "5"}]
    server_add = next(s for s in server if s["name"] == "tools/call add")["attributes"]
    assert server_add[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] == add[semconv.GEN_AI_TOOL_CALL_ARGUMENTS]
    prompt = attrs(by_name(client, "prompts/get greet"))
    assert prompt[semconv.GEN_AI_PROMPT_NAME] == "greet"
    assert json.loads(prompt[semconv.LLM_AUDIT_PROMPT_VARIABLES]) == {"name": "Ada"}
    assert attrs(by_name(client, "resources/read"))[semconv.MCP_RESOURCE_URI] == "note://n1"
    # Failures: the tool's isError on both sides, the JSON-RPC error code of an error response.
    fail = by_name(client, "tools/call fail")
    assert fail.status.status_code is StatusCode.ERROR and attrs(fail)[semconv.ERROR_TYPE] == "tool_error"
    server_fail = next(s for s in server if s["name"] == "tools/call fail")
    assert server_fail["status"] == "ERROR" and server_fail["attributes"][semconv.ERROR_TYPE] == "tool_error"
    refused = by_name(client, "completion/complete")
    assert attrs(refused)[semconv.RPC_RESPONSE_STATUS_CODE] == str(METHOD_NOT_FOUND)
    assert attrs(refused)[semconv.ERROR_TYPE] == str(METHOD_NOT_FOUND)
    assert refused.status.status_code is StatusCode.ERROR
    assert [e.name for e in refused.events] == ["exception"]
    server_refused = next(s for s in server if s["name"] == "completion/complete")
    assert server_refused["attributes"][semconv.RPC_RESPONSE_STATUS_CODE] == str(METHOD_NOT_FOUND)
    assert by_name(client, "tools/call add").status.status_code is StatusCode.UNSET
    _check_reverse_direction(client, server, trace_id, transport)
    _check_handshake(client, server, transport)
    assert len(session_ids) == 1
    return session_ids.pop()


def _check_reverse_direction(
    client: list[ReadableSpan], server: list[dict[str, Any]], trace_id: str, transport: str
) -> None:
    """The server asks the client (sampling) and notifies it (progress): the roles swap, one trace."""
    ask = next(s for s in server if s["name"] == "tools/call ask_client")
    sampling_sent = [s for s in server if s["name"] == "sampling/createMessage"]
    assert [s["kind"] for s in sampling_sent] == ["CLIENT"]
    assert sampling_sent[0]["parent_span_id"] == ask["span_id"]
    sampled = by_name(client, "sampling/createMessage")
    assert sampled.kind is SpanKind.SERVER
    assert hex_trace(sampled.context.trace_id) == trace_id
    assert sampled.parent is not None and hex_id(sampled.parent.span_id) == sampling_sent[0]["span_id"]
    assert attrs(sampled)[semconv.NETWORK_TRANSPORT] == transport
    count = next(s for s in server if s["name"] == "tools/call count")
    progress_sent = [s for s in server if s["name"] == "notifications/progress"]
    assert len(progress_sent) == 2 and all(s["parent_span_id"] == count["span_id"] for s in progress_sent)
    progress_got = sorted((s for s in client if s.name == "notifications/progress"), key=lambda s: s.start_time)
    assert [s.kind for s in progress_got] == [SpanKind.SERVER, SpanKind.SERVER]
    assert {hex_id(s.parent.span_id) for s in progress_got if s.parent} == {s["span_id"] for s in progress_sent}
    assert all(semconv.JSONRPC_REQUEST_ID not in attrs(s) for s in progress_got)


def _check_handshake(client: list[ReadableSpan], server: list[dict[str, Any]], transport: str) -> None:
    """``initialize`` and ``notifications/initialized``: each its own trace (no span was current)."""
    for name in ("initialize", "notifications/initialized"):
        sent = by_name(client, name)
        got = [s for s in server if s["name"] == name]
        assert len(got) == 1 and got[0]["kind"] == "SERVER"
        assert sent.parent is None
        assert got[0]["trace_id"] == hex_trace(sent.context.trace_id)
        assert got[0]["parent_span_id"] == hex_id(sent.context.span_id)
        assert got[0]["attributes"][semconv.NETWORK_TRANSPORT] == transport


def _no_sdk_duplicates(client: list[ReadableSpan], server: list[dict[str, Any]]) -> None:
    assert all(s.instrumentation_scope is not None for s in client)
    assert {s["scope"] for s in server} == {"otel_llm_audit.instrumentation.mcp"}


@pytest.fixture
def mcp_audit(make_mcp_audit: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Raw content; the tenant of the audit identity travels as baggage (the user id does not)."""
    monkeypatch.setenv("OTEL_LLM_AUDIT_BAGGAGE_KEYS", "tenant_id")
    return make_mcp_audit()


async def test_stdio_client_and_server_process_share_one_trace(mcp_audit: Any, tmp_path: Path) -> None:
    spans_path = tmp_path / "server-spans.jsonl"
    tracer = mcp_audit.tracer_provider.get_tracer("app")
    async with stdio_session(spans_path, sampling_callback=answer_sampling) as session:
        seen = await _scenario(session, tracer)
    _check_results(seen)
    client = mcp_audit.spans()
    server = read_spans(spans_path)
    session_id = _check_trace(client, server, seen, "pipe")
    assert session_id is None  # stdio has no session id
    _no_sdk_duplicates(client, server)
    assert all(semconv.SERVER_ADDRESS not in attrs(s) for s in client)
    assert _guard.internal_error_counts() == {}


async def test_streamable_http_client_and_server_process_share_one_trace(mcp_audit: Any, tmp_path: Path) -> None:
    spans_path = tmp_path / "server-spans.jsonl"
    tracer = mcp_audit.tracer_provider.get_tracer("app")
    with http_server(spans_path, tmp_path / "port") as url:
        async with http_session(url, sampling_callback=answer_sampling) as session:
            seen = await _scenario(session, tracer)
    _check_results(seen)
    client = mcp_audit.spans()
    server = read_spans(spans_path)
    session_id = _check_trace(client, server, seen, "tcp")
    # One session id, the transport's, on both sides from the handshake on.
    assert isinstance(session_id, str) and len(session_id) >= 16
    init = by_name(client, "initialize")
    assert attrs(init)[semconv.MCP_SESSION_ID] == session_id  # learnt from the answer
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    for span in client:
        if span.kind is SpanKind.CLIENT and span.name != "handle user request":
            assert attrs(span)[semconv.SERVER_ADDRESS] == "127.0.0.1"
            assert attrs(span)[semconv.SERVER_PORT] == port
    _no_sdk_duplicates(client, server)
    assert _guard.internal_error_counts() == {}
