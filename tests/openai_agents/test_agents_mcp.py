"""An agent with an MCP server (``agents.mcp.MCPServerStdio``, a real server process over stdio).

With the MCP instrumentor on too, the SDK's MCP tool call is one ``execute_tool`` span (ours,
``gen_ai.tool.type = extension``) carrying the MCP attributes, and the MCP ``tools/list``
request nests under the agent that listed the tools (the SDK's ``mcp_tools`` span is not a
span of ours: the MCP integration records the request itself).
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

agents = pytest.importorskip("agents")
agents_mcp = pytest.importorskip("agents.mcp")

from agent_spans import by_name, one, parent_of  # noqa: E402

from otel_llm_audit import semconv  # noqa: E402
from otel_llm_audit.demo.fake_server import WEATHER_ANSWER  # noqa: E402

SERVER = textwrap.dedent(
    """
    try:
        from mcp.server.mcpserver import MCPServer as Server
    except ImportError:  # mcp 1.x
        from mcp.server.fastmcp import FastMCP as Server

    server = Server("forecasts")

    @server.tool()
    def get_forecast(city: str) -> str:
        \"\"\"The forecast for a city.\"\"\"
        return f"rain in {city}"

    server.run("stdio")
    """
)


def test_an_mcp_tool_call_is_one_execute_tool_span(make_agents_audit: Any, make_model: Any, tmp_path: Path) -> None:
    from otel_llm_audit.instrumentation.mcp import MCPInstrumentor

    audit = make_agents_audit().add_instrumentor(MCPInstrumentor())
    script = tmp_path / "forecasts.py"
    script.write_text(SERVER)

    async def main() -> Any:
        server = agents_mcp.MCPServerStdio(params={"command": sys.executable, "args": [str(script)]}, name="forecasts")
        async with server:
            agent = agents.Agent(
                name="Forecaster", instructions="Forecast.", model=make_model("chat"), mcp_servers=[server]
            )
            return await agents.Runner.run(agent, "Forecast for Paris?")

    assert asyncio.run(main()).final_output == WEATHER_ANSWER
    spans = audit.spans()
    agent = one(spans, "invoke_agent Forecaster")
    tool = one(spans, "execute_tool get_forecast")
    assert parent_of(tool, spans) is agent
    assert tool.attributes[semconv.GEN_AI_TOOL_TYPE] == "extension"
    assert tool.attributes[semconv.MCP_METHOD_NAME] == "tools/call"
    assert json.loads(str(tool.attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS])) == {"city": "Paris"}
    assert "rain in Paris" in str(tool.attributes[semconv.GEN_AI_TOOL_CALL_RESULT])
    assert by_name(spans, "tools/call get_forecast") == []  # no second span for the same call
    # The tools are listed inside the run (openai-agents 0.2 lists them once before the agent's span starts).
    workflow = one(spans, "invoke_workflow Agent workflow")
    listing = [s for s in spans if s.attributes.get(semconv.MCP_METHOD_NAME) == "tools/list"]
    assert listing and all(parent_of(s, spans) in (agent, workflow) for s in listing)
    assert parent_of(listing[-1], spans) is agent
    # Only the connection handshake (``async with server``, before the run) is outside the run's trace.
    outside = sorted(s.name for s in spans if s.context.trace_id != workflow.context.trace_id)
    assert set(outside) <= {"initialize", "notifications/initialized", "server/discover"}, outside
