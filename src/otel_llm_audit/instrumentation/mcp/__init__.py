"""MCP instrumentor: both ends of the ``mcp`` SDK (1.x and 2.x), over stdio and streamable HTTP.

Entry point ``llm_audit_mcp`` (group ``opentelemetry_instrumentor``). Every request and
notification this process sends becomes a CLIENT span, every one it handles a SERVER span
(MCP semantic conventions, built in :mod:`otel_llm_audit.emitter.mcp`). ``traceparent``,
``tracestate`` and ``baggage`` travel in ``params._meta``, so a server's spans join its
client's trace.

Usage without the distro::

    from otel_llm_audit.instrumentation.mcp import MCPInstrumentor
    MCPInstrumentor().instrument()                        # both ends, in whichever process runs them
    MCPInstrumentor().instrument(merge_tool_spans=False)  # always an MCP span of its own

``merge_tool_spans`` (default ``True``): a ``tools/call`` made inside an agent framework's
``execute_tool`` span of the same tool adds the MCP attributes to that span instead of
starting a second one, as the conventions ask.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from otel_llm_audit.emitter.spans import Emitter
from otel_llm_audit.instrumentation.mcp._calls import STATE
from otel_llm_audit.instrumentation.mcp._patching import Patcher

logger = logging.getLogger("otel_llm_audit")

SCOPE = "otel_llm_audit.instrumentation.mcp"


class MCPInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Records MCP requests and notifications, client and server side, as audited spans."""

    #: In the ``instruments-any`` extra of pyproject.toml too (a test checks it).
    instruments = ("mcp >= 1.21.1",)

    def __init__(self) -> None:
        super().__init__()
        if not hasattr(self, "_patcher"):
            self._patcher = Patcher()

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.instruments

    def _instrument(self, **kwargs: Any) -> None:
        # opentelemetry-instrument loads every instrumentor of this package when any of their
        # libraries is installed, and skips the version check: make it here.
        conflict = self._check_dependency_conflicts()
        if conflict:
            logger.info("otel-llm-audit: not instrumenting mcp: %s", conflict)
            return
        from otel_llm_audit.instrumentation.mcp import _transports, _v1, _v2

        STATE.emitter = Emitter(SCOPE, kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        STATE.merge_tool_spans = bool(kwargs.get("merge_tool_spans", True))
        if not (_v2.install(self._patcher) or _v1.install(self._patcher)):
            logger.info("otel-llm-audit: this mcp release has neither the 1.x nor the 2.x layout; not audited")
            STATE.emitter = None
            return
        _transports.install(self._patcher)

    def _uninstrument(self, **kwargs: Any) -> None:
        STATE.emitter = None  # wrappers a caller still holds pass straight through
        self._patcher.undo()
