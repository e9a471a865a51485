"""The audit span processor: completes our spans off the caller's thread, then exports them.

OpenTelemetry freezes a span when it ends, and the caller's thread should pay no more than
an enqueue. So this processor claims our spans when they start; when one ends, the emitter
hands over the call's record, the span goes into a bounded queue, and a worker thread builds
the complete copy (request parameters, usage, content, cost, metrics) and passes the copy to
the downstream processors (a ``BatchSpanProcessor`` around the exporter). Spans of other
instrumentations pass straight through.

Nothing is lost silently: if the queue is full, the span is completed on the caller's thread
without content (content gives way before spans), and the drop is counted and logged.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanLimits, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_llm_audit import _guard
from otel_llm_audit.emitter import handoff
from otel_llm_audit.emitter.attributes import SpanContent

logger = logging.getLogger("otel_llm_audit")

_STOP = object()
_LIMITS = SpanLimits()  # from OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT / OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT


class AuditSpanProcessor(SpanProcessor):
    """Completes LLM spans off the caller's thread and forwards every span downstream."""

    def __init__(self, downstream: Sequence[SpanProcessor], *, queue_size: int = 8192) -> None:
        self._downstream = tuple(downstream)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._dropped_content = 0
        self._last_drop_log = 0.0
        self._shutdown = False
        self._start_worker()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._start_worker)

    @classmethod
    def for_exporter(cls, exporter: SpanExporter, *, queue_size: int = 8192) -> AuditSpanProcessor:
        """The usual set-up: complete our spans, then batch and export everything."""
        return cls([BatchSpanProcessor(exporter)], queue_size=queue_size)

    @property
    def dropped_content_count(self) -> int:
        """Spans whose content was dropped because the queue was full."""
        return self._dropped_content

    def _start_worker(self) -> None:
        self._worker = threading.Thread(target=self._run, name="otel-llm-audit-completion", daemon=True)
        self._worker.start()

    # SpanProcessor interface -------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        scope = span.instrumentation_scope
        if scope is not None and scope.name.startswith(handoff.SCOPE_PREFIX):
            handoff.claim(span)
        for processor in self._downstream:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        pending = handoff.take(span)
        if pending is None:
            self._forward(span)
            return
        if self._shutdown:
            self._complete_and_forward(span, pending, content_allowed=False)
            return
        try:
            self._queue.put_nowait((span, pending))
        except queue.Full:
            self._note_dropped_content()
            self._complete_and_forward(span, pending, content_allowed=False)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        ok = True
        for processor in self._downstream:
            remaining_ms = max(int((deadline - time.monotonic()) * 1000), 1)
            ok = processor.force_flush(remaining_ms) and ok
        return ok

    def shutdown(self) -> None:
        if self._shutdown:
            return
        self.force_flush()
        self._shutdown = True
        self._queue.put(_STOP)
        self._worker.join(timeout=5)
        for processor in self._downstream:
            processor.shutdown()

    # Worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                span, pending = item
                self._complete_and_forward(span, pending, content_allowed=True)
            finally:
                self._queue.task_done()

    def _complete_and_forward(self, span: ReadableSpan, pending: Any, *, content_allowed: bool) -> None:
        try:
            content = pending.complete(content_allowed=content_allowed)
            completed = completed_copy(span, content)
        except Exception as err:
            _guard.report_internal_error("pipeline.complete", err)
            completed = span
        self._forward(completed)

    def _forward(self, span: ReadableSpan) -> None:
        for processor in self._downstream:
            try:
                processor.on_end(span)
            except Exception as err:
                _guard.report_internal_error("pipeline.forward", err)

    def _note_dropped_content(self) -> None:
        self._dropped_content += 1
        _guard.report_internal_error("pipeline.queue_full", RuntimeError("completion queue full"))
        now = time.monotonic()
        if now - self._last_drop_log > 10:
            self._last_drop_log = now
            logger.warning(
                "otel-llm-audit: completion queue full (%d slots); %d spans exported without content so far",
                self._queue.maxsize,
                self._dropped_content,
            )


def completed_copy(span: ReadableSpan, content: SpanContent) -> ReadableSpan:
    """A new ended span: the original plus what the emitter completed. The original is untouched."""
    merged = dict(span.attributes or {})
    merged.update(content.attributes)
    # The same limits and value checks the SDK applies to attributes set on a live span.
    attributes = BoundedAttributes(
        maxlen=_LIMITS.max_span_attributes,
        attributes=merged,
        immutable=True,
        max_value_len=_LIMITS.max_span_attribute_length,
    )
    events = list(span.events)
    for spec in content.events:
        events.append(Event(spec.name, spec.attributes, spec.timestamp or span.end_time))
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
