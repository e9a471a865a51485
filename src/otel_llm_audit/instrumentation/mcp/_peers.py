"""What we know about the other end of an MCP connection: transport, session, protocol version.

A session object of the SDK does not know which transport carries it: ``stdio_client``,
``streamable_http_client`` and friends hand it a pair of memory streams. So the transport
wrappers (:mod:`._transports`) register the write stream they hand out, and the request
wrappers look the session's write stream up here. Entries are weak: a closed connection's
streams take its entry with them.
"""

from __future__ import annotations

import weakref
from typing import Any

from otel_llm_audit.instrumentation.readers import host_and_port

#: The transports the conventions name (``network.transport``).
PIPE = "pipe"
TCP = "tcp"


class Peer:
    """One connection's facts, filled in as they become known."""

    __slots__ = ("_session_attr", "_session_owner", "protocol_version", "server_address", "server_port", "transport")

    def __init__(self) -> None:
        self.transport: str | None = None
        self.server_address: str | None = None
        self.server_port: int | None = None
        self.protocol_version: str | None = None
        self._session_owner: weakref.ref[Any] | None = None
        self._session_attr = ""

    def session_id_from(self, owner: Any, attribute: str) -> None:
        """Read the session id from ``owner.<attribute>`` when asked (it arrives with the first answer)."""
        try:
            self._session_owner = weakref.ref(owner)
        except TypeError:  # an owner without weak references: no session id rather than a leak
            self._session_owner = None
            return
        self._session_attr = attribute

    @property
    def session_id(self) -> str | None:
        ref = self._session_owner
        owner = ref() if ref is not None else None
        if owner is None:
            return None
        value = getattr(owner, self._session_attr, None)
        return value if isinstance(value, str) and value else None

    def set_url(self, url: Any) -> None:
        """The server's host and port, from the endpoint URL (client side of HTTP)."""
        self.server_address, self.server_port = host_and_port(url)


_peers: weakref.WeakKeyDictionary[Any, Peer] = weakref.WeakKeyDictionary()


def _key(stream: Any) -> Any:
    """The object to key on: mcp 2's context-carrying streams wrap a plain anyio stream (no weakrefs)."""
    inner = getattr(stream, "_inner", None)
    return inner if inner is not None else stream


def peer_of(stream: Any, *, create: bool = False) -> Peer | None:
    """The peer entry of the connection whose write stream is ``stream``."""
    if stream is None:
        return None
    key = _key(stream)
    try:
        peer = _peers.get(key)
        if peer is None and create:
            peer = _peers[key] = Peer()
    except TypeError:  # not weakly referenceable: nothing to remember
        return None
    return peer


def write_stream_of(obj: Any) -> Any:
    """The write stream under a session, a dispatcher or a server connection's outbound channel."""
    for holder in (obj, getattr(obj, "_dispatcher", None), getattr(obj, "outbound", None)):
        if holder is None:
            continue
        stream = getattr(holder, "_write_stream", None)
        if stream is not None:
            return stream
        inner = getattr(holder, "_dispatcher", None)  # a notify-only wrapper around a dispatcher
        stream = getattr(inner, "_write_stream", None) if inner is not None else None
        if stream is not None:
            return stream
    return None
