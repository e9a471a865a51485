"""A small MCP server the tests launch as a real process, audited by otel-llm-audit on its side.

``python mcp_server_app.py stdio SPANS`` serves over stdin/stdout (the test's ``stdio_client``
starts it); ``python mcp_server_app.py http SPANS PORT_FILE`` serves streamable HTTP on
127.0.0.1 (a free port, written to PORT_FILE once listening). Every span the server records
is appended to SPANS as one JSON object per line, so the test can check that the server's
spans joined the client's trace. The content setting comes from the environment.

FastMCP on mcp 1.x, MCPServer (its new name) on mcp 2.x; the tools are the same.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from otel_llm_audit.instrumentation.mcp import MCPInstrumentor

try:
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import Context  # type: ignore[no-redef]
    from mcp.server.fastmcp import FastMCP as Server
from mcp.types import SamplingMessage, TextContent


class JsonLinesExporter(SpanExporter):
    """One JSON object per finished span, flushed at once (the test reads while we run)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock, open(self._path, "a", encoding="utf-8") as out:
            for span in spans:
                out.write(json.dumps(_as_json(span)) + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _hex_span(span_id: int) -> str:
    return format(span_id, "016x")


def _as_json(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    assert ctx is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": _hex_span(ctx.span_id),
        "parent_span_id": _hex_span(span.parent.span_id) if span.parent else None,
        "parent_is_remote": bool(span.parent and span.parent.is_remote),
        "links": [_hex_span(link.context.span_id) for link in span.links],
        "start": span.start_time,
        "end": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "events": [event.name for event in span.events],
    }


def build_server(name: str = "audit-test") -> Any:
    """The test server: tools, a prompt and resources, on whichever SDK line is installed."""
    server = Server(name)

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @server.tool()
    def echo(text: str) -> str:
        """Says back what it was given (content on both sides)."""
        return text

    @server.tool()
    def fail(reason: str) -> str:
        """Always fails: the SDK turns the exception into a result with isError."""
        raise ValueError(f"refused: {reason}")

    @server.tool()
    def whoami() -> str:
        """The trace context and baggage the tool runs in, as the handler sees them."""
        ctx = trace.get_current_span().get_span_context()
        return json.dumps(
            {
                "trace_id": format(ctx.trace_id, "032x"),
                "span_id": _hex_span(ctx.span_id),
                "baggage": {k: str(v) for k, v in baggage.get_all().items()},
            }
        )

    @server.tool()
    def seen_meta(ctx: Context) -> str:  # type: ignore[type-arg]
        """The request's ``_meta`` as the server got it."""
        meta = ctx.request_context.meta
        data = meta.model_dump(by_alias=True, exclude_none=True) if hasattr(meta, "model_dump") else dict(meta or {})
        return json.dumps(data, sort_keys=True, default=str)

    @server.tool()
    async def ask_client(question: str, ctx: Context) -> str:  # type: ignore[type-arg]
        """Asks the client's model (sampling): a request from the server to the client."""
        result = await ctx.session.create_message(
            messages=[SamplingMessage(role="user", content=TextContent(type="text", text=question))],
            max_tokens=16,
        )
        content = result.content
        return str(getattr(content, "text", content))

    @server.tool()
    async def count(steps: int, ctx: Context) -> str:  # type: ignore[type-arg]
        """Reports progress: notifications from the server to the client."""
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps)
        return f"counted {steps}"

    @server.prompt()
    def greet(name: str) -> str:
        """A prompt with one argument."""
        return f"Say hello to {name}."

    @server.resource("note://{key}")
    def note(key: str) -> str:
        """A resource template: many URIs, one handler."""
        return f"note {key}"

    return server


def _instrument(spans_path: str) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(spans_path)))
    MCPInstrumentor().instrument(tracer_provider=provider)
    return provider


def _serve_http(server: Any, port_file: str) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(server.streamable_http_app(), log_level="warning", lifespan="on")
    http = uvicorn.Server(config)

    def announce() -> None:  # once uvicorn is up, say where
        while not http.started:
            threading.Event().wait(0.02)
        with open(port_file, "w", encoding="utf-8") as out:
            out.write(str(sock.getsockname()[1]))

    threading.Thread(target=announce, daemon=True).start()
    http.run(sockets=[sock])


def main(argv: list[str]) -> None:
    mode, spans_path = argv[1], argv[2]
    provider = _instrument(spans_path)
    server = build_server()
    # The failing tool is meant to fail: keep its traceback (and the SDK's notices) out of the test output.
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    try:
        if mode == "stdio":
            server.run("stdio")
        else:
            _serve_http(server, argv[3])
    finally:
        provider.shutdown()


if __name__ == "__main__":
    main(sys.argv)
