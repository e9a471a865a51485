"""Fixtures for the MCP tests: an audit pipeline with the MCP instrumentor on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otel_llm_audit.instrumentation.mcp import MCPInstrumentor


@pytest.fixture
def make_mcp_audit(make_audit: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """An audit pipeline (``configure()``, in-memory exporter) with MCP instrumented on it.

    Keyword arguments are settings (``content="hash"``); ``merge_tool_spans`` goes to the
    instrumentor. Uninstrumented after the test.
    """

    def build(merge_tool_spans: bool = True, **settings: Any) -> Any:
        audit = make_audit(**settings)
        instrumentor = MCPInstrumentor()
        instrumentor.instrument(
            tracer_provider=audit.tracer_provider,
            meter_provider=audit.meter_provider,
            merge_tool_spans=merge_tool_spans,
        )
        audit.extra_instrumentors.append(instrumentor)
        return audit

    yield build
    instrumentor = MCPInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture
def mcp_audit(make_mcp_audit: Callable[..., Any]) -> Any:
    """The default: raw content, both ends of MCP instrumented in this process."""
    return make_mcp_audit()


@pytest.fixture
def mcp_server() -> Any:
    """The test server (FastMCP / MCPServer) for in-process sessions."""
    from mcp_server_app import build_server

    return build_server()
