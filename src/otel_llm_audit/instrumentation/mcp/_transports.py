"""Transport wrappers: they tell :mod:`._peers` which connection runs over stdio or HTTP.

Both SDK lines share the shapes wrapped here: ``stdio_client`` / ``stdio_server`` (async
context managers that yield ``(read_stream, write_stream)``), the streamable HTTP client's
``StreamableHTTPTransport.post_writer`` (handed the write stream the session writes to)
and the server's ``StreamableHTTPServerTransport.connect`` (yields the server session's
streams). The wrappers only register; the SDK's objects pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from otel_llm_audit import _guard
from otel_llm_audit.instrumentation.mcp._patching import Patcher
from otel_llm_audit.instrumentation.mcp._peers import PIPE, TCP, peer_of

#: Where ``stdio_client`` / ``stdio_server`` live, and the modules that import them by name.
_STDIO_CLIENT_HOMES = ("mcp.client.stdio", "mcp", "mcp.client.client", "mcp.client.session_group")
_STDIO_SERVER_HOMES = ("mcp.server.stdio", "mcp", "mcp.server.fastmcp.server", "mcp.server.mcpserver.server")


class _Registering:
    """An async context manager around a transport's: registers the write stream it yields."""

    __slots__ = ("_inner", "_register")

    def __init__(self, inner: Any, register: Callable[[Any], None]) -> None:
        self._inner = inner
        self._register = register

    async def __aenter__(self) -> Any:
        streams = await self._inner.__aenter__()
        try:
            self._register(streams[1])
        except Exception as err:
            _guard.report_internal_error("mcp.transport", err)
        return streams

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any:
        return await self._inner.__aexit__(exc_type, exc, tb)


def _register_pipe(stream: Any) -> None:
    peer = peer_of(stream, create=True)
    if peer is not None:
        peer.transport = PIPE


def _stdio(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return _Registering(wrapped(*args, **kwargs), _register_pipe)


def _server_connect(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    def register(stream: Any) -> None:
        peer = peer_of(stream, create=True)
        if peer is not None:
            peer.transport = TCP
            peer.session_id_from(instance, "mcp_session_id")

    return _Registering(wrapped(*args, **kwargs), register)


def _client_post_writer(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    try:
        stream = args[3] if len(args) > 3 else kwargs.get("write_stream")
        peer = peer_of(stream, create=True)
        if peer is not None:
            peer.transport = TCP
            peer.session_id_from(instance, "session_id")
            peer.set_url(getattr(instance, "url", ""))
    except Exception as err:
        _guard.report_internal_error("mcp.transport", err)
    return wrapped(*args, **kwargs)


def install(patcher: Patcher) -> None:
    """Wrap the stdio and streamable HTTP transports of the installed SDK."""
    patcher.method("mcp.client.streamable_http", "StreamableHTTPTransport.post_writer", _client_post_writer)
    patcher.method("mcp.server.streamable_http", "StreamableHTTPServerTransport.connect", _server_connect)
    for home, homes in (("mcp.client.stdio", _STDIO_CLIENT_HOMES), ("mcp.server.stdio", _STDIO_SERVER_HOMES)):
        name = "stdio_client" if home == "mcp.client.stdio" else "stdio_server"
        try:
            module = __import__(home, fromlist=[name])
        except ImportError:
            continue
        original = getattr(module, name, None)
        if original is None:
            continue
        for module_name in homes:
            patcher.attribute(module_name, name, original, _stdio)
