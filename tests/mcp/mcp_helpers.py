"""What the MCP tests share: starting the test server (subprocess over stdio or HTTP, or in
process), connecting a real ``ClientSession`` on either SDK line, and reading spans.

Imported as ``mcp_helpers`` (pytest puts this directory on the path).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import mcp.client.stdio
from opentelemetry.sdk.trace import ReadableSpan

from mcp import ClientSession, StdioServerParameters, types

APP = Path(__file__).with_name("mcp_server_app.py")
#: mcp 2.x has a dispatcher layer (and traces itself); 1.x does not.
MCP_V2 = importlib.util.find_spec("mcp.shared.jsonrpc_dispatcher") is not None
#: JSON-RPC "method not found": what the test server answers to ``completion/complete``.
METHOD_NOT_FOUND = -32601


def server_env(content: str = "raw") -> dict[str, str]:
    """The server process's environment: ours, with its content setting; it takes the tenant from baggage."""
    env = dict(os.environ)
    env["OTEL_LLM_AUDIT_CONTENT"] = content
    env["OTEL_LLM_AUDIT_BAGGAGE_KEYS"] = "tenant_id"
    return env


async def answer_sampling(context: Any, params: Any) -> Any:
    """The client's "model" for the server's sampling requests: always says blue."""
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="blue"), model="scripted"
    )


async def ignore_progress(progress: float, total: float | None, message: str | None) -> None:
    """Asking for progress makes the server send ``notifications/progress``."""


@asynccontextmanager
async def stdio_session(spans_path: Path, **session_kwargs: Any) -> AsyncIterator[ClientSession]:
    """A client session to the test server launched as a subprocess over stdio (not initialized yet).

    ``stdio_client`` is looked up when called, not imported by name at collection time: a
    reference taken before ``instrument()`` is the unpatched function (see docs/integrations/mcp.md).
    """
    params = StdioServerParameters(command=sys.executable, args=[str(APP), "stdio", str(spans_path)], env=server_env())
    connect = mcp.client.stdio.stdio_client
    async with connect(params) as (read, write), ClientSession(read, write, **session_kwargs) as session:
        yield session


@contextmanager
def http_server(spans_path: Path, port_file: Path) -> Iterator[str]:
    """The test server as a subprocess serving streamable HTTP on 127.0.0.1; yields its endpoint URL.

    Stopped (SIGTERM, uvicorn's graceful shutdown) on exit, so every span it recorded is written.
    """
    proc = subprocess.Popen(
        [sys.executable, str(APP), "http", str(spans_path), str(port_file)],
        env=server_env(),
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text()):
            if proc.poll() is not None:
                raise RuntimeError(f"the MCP test server exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("the MCP test server did not start listening")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text()}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@asynccontextmanager
async def http_session(url: str, **session_kwargs: Any) -> AsyncIterator[ClientSession]:
    """A client session over streamable HTTP (not initialized yet)."""
    if MCP_V2:
        from mcp.client.streamable_http import streamable_http_client as connect
    else:
        from mcp.client.streamable_http import streamablehttp_client as connect
    async with connect(url) as streams, ClientSession(streams[0], streams[1], **session_kwargs) as session:
        yield session


@asynccontextmanager
async def memory_session(server: Any, **session_kwargs: Any) -> AsyncIterator[ClientSession]:
    """A client session to ``server`` in this process over memory streams, already initialized."""
    if MCP_V2:
        from mcp import Client

        async with Client(server, mode="legacy", cache=None, **session_kwargs) as client:
            yield client.session
    else:
        from mcp.shared.memory import create_connected_server_and_client_session

        async with create_connected_server_and_client_session(server, **session_kwargs) as session:
            yield session


def read_spans(path: Path) -> list[dict[str, Any]]:
    """The spans the server process wrote (see ``mcp_server_app.JsonLinesExporter``)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def hex_id(span_id: int) -> str:
    return format(span_id, "016x")


def hex_trace(trace_id: int) -> str:
    return format(trace_id, "032x")


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def by_name(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    """The one span called ``name`` (fails if there is not exactly one)."""
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def text_of(result: Any) -> str:
    """The text of a tool result's first content part."""
    return str(result.content[0].text)


def tool_failed(result: Any) -> bool:
    return bool(getattr(result, "is_error", None) or getattr(result, "isError", None))


PROMPT_REF = types.PromptReference(type="ref/prompt", name="greet")
