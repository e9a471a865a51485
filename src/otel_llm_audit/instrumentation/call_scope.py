"""The SDK's own call, run inside the LLM span's context: ``with CallScope(call): ...``.

Every wrapper does the same around the wrapped SDK method: make the span current (so the
HTTP span nests under it and propagators see it), optionally publish that context in a
context variable that a request hook reads to add ``traceparent`` (Bedrock's ``before-send``,
Google's ``_build_request``), and, if the SDK raises, end the span with the exception before
it propagates, untouched, to the caller. A class rather than ``contextlib.contextmanager``:
it runs on the caller's thread for every call, and a generator-based manager costs more.
"""

from __future__ import annotations

import contextvars
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from otel_llm_audit.emitter.spans import LLMCallSpan

__all__ = ["CallScope"]


class CallScope:
    """Attach ``call``'s span as the current context (and set ``sending``) for the ``with`` block."""

    __slots__ = ("_marker", "_sending", "_token", "call")

    def __init__(self, call: LLMCallSpan, sending: contextvars.ContextVar[Any] | None = None) -> None:
        self.call = call
        self._sending = sending
        self._token: Any = None
        self._marker: Any = None

    def __enter__(self) -> Any:
        ctx = trace.set_span_in_context(self.call.span)
        self._token = otel_context.attach(ctx)
        if self._sending is not None:
            self._marker = self._sending.set(ctx)
        return ctx

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._sending is not None:
            self._sending.reset(self._marker)
        otel_context.detach(self._token)
        if exc is not None:
            self.call.end(exc)  # the exception itself propagates unchanged
