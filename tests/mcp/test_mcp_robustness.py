"""Never break the host: our failures leave the SDK's results and exceptions as they are, and
``uninstrument`` takes every patch away (both ends, both SDK lines, the transports).
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest
from mcp_helpers import MCP_V2, METHOD_NOT_FOUND, PROMPT_REF, attrs, memory_session, text_of, tool_failed
from opentelemetry.trace import SpanKind
from opentelemetry.trace.span import INVALID_SPAN_ID

from otel_llm_audit import _guard, semconv
from otel_llm_audit.emitter import mcp as emitter_mcp
from otel_llm_audit.instrumentation.mcp import SCOPE, MCPInstrumentor

try:
    from mcp.shared.exceptions import MCPError as McpError
except ImportError:  # mcp 1.x
    from mcp.shared.exceptions import McpError  # type: ignore[no-redef,attr-defined]

_TRANSPORT_TARGETS = [
    ("mcp.client.streamable_http", "StreamableHTTPTransport", "post_writer"),
    ("mcp.server.streamable_http", "StreamableHTTPServerTransport", "connect"),
    ("mcp.client.stdio", None, "stdio_client"),
    ("mcp.server.stdio", None, "stdio_server"),
    ("mcp", None, "stdio_client"),
    ("mcp", None, "stdio_server"),
]
_V2_TARGETS = [
    ("mcp.shared.jsonrpc_dispatcher", "JSONRPCDispatcher", "send_raw_request"),
    ("mcp.shared.jsonrpc_dispatcher", "JSONRPCDispatcher", "notify"),
    ("mcp.shared.direct_dispatcher", "DirectDispatcher", "send_raw_request"),
    ("mcp.shared.direct_dispatcher", "DirectDispatcher", "notify"),
    ("mcp.server.runner", "ServerRunner", "_on_request"),
    ("mcp.server.runner", "ServerRunner", "_on_notify"),
    ("mcp.client.session", "ClientSession", "_on_request"),
    ("mcp.client.session", "ClientSession", "_on_notify"),
    ("mcp.shared.jsonrpc_dispatcher", None, "otel_span"),
    ("mcp.server._otel", None, "otel_span"),
    ("mcp.client.client", None, "stdio_client"),
    ("mcp.server.mcpserver.server", None, "stdio_server"),
]
_V1_TARGETS = [
    ("mcp.shared.session", "BaseSession", "send_request"),
    ("mcp.shared.session", "BaseSession", "send_notification"),
    ("mcp.shared.session", "RequestResponder", "__enter__"),
    ("mcp.shared.session", "RequestResponder", "__exit__"),
    ("mcp.shared.session", "RequestResponder", "respond"),
    ("mcp.shared.session", "RequestResponder", "cancel"),
    ("mcp.server.lowlevel.server", "Server", "_handle_message"),
    ("mcp.client.session", "ClientSession", "_received_notification"),
    ("mcp.server.fastmcp.server", None, "stdio_server"),
]
TARGETS = _TRANSPORT_TARGETS + (_V2_TARGETS if MCP_V2 else _V1_TARGETS)


def _current(module_name: str, owner: str | None, name: str) -> Any:
    module = importlib.import_module(module_name)
    return vars(getattr(module, owner))[name] if owner else getattr(module, name)


def _our_spans(audit: Any) -> list[Any]:
    return [s for s in audit.spans() if s.instrumentation_scope is not None and s.instrumentation_scope.name == SCOPE]


async def _exercise(server: Any) -> tuple[Any, Any, int]:
    """A tool call, a failing tool and an error response: what the application gets back."""
    async with memory_session(server) as session:
        added = await session.call_tool("add", {"a": 2, "b": 3})
        failed = await session.call_tool("fail", {"reason": "r"})
        with pytest.raises(McpError) as raised:
            await session.complete(PROMPT_REF, {"name": "name", "value": "A"})
    return added, failed, raised.value.error.code


def _same_answers(answers: tuple[Any, Any, int]) -> None:
    added, failed, code = answers
    assert text_of(added) == "5" and not tool_failed(added)
    assert tool_failed(failed)
    assert code == METHOD_NOT_FOUND


async def test_uninstrument_takes_every_patch_away(make_audit: Any, mcp_server: Any) -> None:
    audit = make_audit()
    originals = {target: _current(*target) for target in TARGETS}
    instrumentor = MCPInstrumentor()
    instrumentor.instrument(tracer_provider=audit.tracer_provider)
    try:
        for target, original in originals.items():
            patched = _current(*target)
            assert patched is not original and getattr(patched, "__wrapped__", None) is not None, target
    finally:
        instrumentor.uninstrument()
    for target, original in originals.items():
        assert _current(*target) is original, target
    _same_answers(await _exercise(mcp_server))
    assert _our_spans(audit) == []


async def test_sessions_opened_while_instrumented_record_nothing_after_uninstrument(
    mcp_audit: Any, mcp_server: Any
) -> None:
    async with memory_session(mcp_server) as session:
        MCPInstrumentor().uninstrument()  # the session still holds our wrapped handlers
        mcp_audit.clear()
        result = await session.call_tool("add", {"a": 2, "b": 3})
    assert text_of(result) == "5"
    assert _our_spans(mcp_audit) == []


async def test_the_sdks_answers_and_errors_are_the_same_with_and_without_us(make_audit: Any, mcp_server: Any) -> None:
    audit = make_audit()
    plain = await _exercise(mcp_server)
    instrumentor = MCPInstrumentor()
    instrumentor.instrument(tracer_provider=audit.tracer_provider)
    try:
        audited = await _exercise(mcp_server)
    finally:
        instrumentor.uninstrument()
    _same_answers(plain)
    _same_answers(audited)
    assert text_of(plain[0]) == text_of(audited[0]) and text_of(plain[1]) == text_of(audited[1])
    assert _guard.internal_error_counts() == {}


async def test_a_failure_to_start_our_span_leaves_the_call_alone(
    mcp_audit: Any, mcp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(record: Any) -> Any:
        raise RuntimeError("emitter bug")

    monkeypatch.setattr(emitter_mcp, "mcp_start_attributes", broken)
    _same_answers(await _exercise(mcp_server))
    assert _our_spans(mcp_audit) == []
    counts = _guard.internal_error_counts()
    assert counts["mcp.send_request"] >= 3 and counts["mcp.handle_request"] >= 3
    assert counts["mcp.send_notification"] >= 1 and counts["mcp.handle_notification"] >= 1


async def test_a_failure_to_finish_our_span_still_ends_it(
    mcp_audit: Any, mcp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(record: Any, *, masked_downstream: bool = False) -> Any:
        raise RuntimeError("emitter bug")

    monkeypatch.setattr(emitter_mcp, "mcp_end_attributes", broken)
    _same_answers(await _exercise(mcp_server))
    calls = [s for s in _our_spans(mcp_audit) if s.name == "tools/call add"]
    assert sorted(s.kind.name for s in calls) == ["CLIENT", "SERVER"]  # ended, with their start attributes
    assert all(attrs(s)[semconv.GEN_AI_TOOL_NAME] == "add" for s in calls)
    assert _guard.internal_error_counts()["emitter.mcp_end"] >= 6


async def test_a_failure_to_put_the_context_in_meta_still_sends_the_request(
    mcp_audit: Any, mcp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_llm_audit.instrumentation.mcp import _v1, _v2

    def broken(params: Any, ctx: Any) -> Any:
        raise RuntimeError("propagation bug")

    monkeypatch.setattr(_v2 if MCP_V2 else _v1, "params_with_context", broken)
    async with memory_session(mcp_server) as session:
        who = json.loads(text_of(await session.call_tool("whoami", {})))
    assert _guard.internal_error_counts()["mcp.inject"] >= 1
    sent = next(s for s in _our_spans(mcp_audit) if s.name == "tools/call whoami" and s.kind is SpanKind.CLIENT)
    handled = next(s for s in _our_spans(mcp_audit) if s.name == "tools/call whoami" and s.kind is SpanKind.SERVER)
    assert sent.end_time is not None and handled.end_time is not None
    assert who["span_id"] == format(handled.context.span_id, "016x") != format(INVALID_SPAN_ID, "016x")
