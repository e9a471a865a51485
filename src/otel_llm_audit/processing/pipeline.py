"""The audit span processor: completes our spans off the caller's thread, then exports them.

OpenTelemetry freezes a span when it ends, and the caller's thread should pay no more than
an enqueue. So this processor claims our spans when they start; when one ends, the emitter
hands over the call's record, the span goes into a bounded queue, and a worker thread builds
the complete copy (request parameters, usage, content, cost, metrics) and passes the copy to
the downstream processors (a ``BatchSpanProcessor`` around the exporter). Spans of other
instrumentations pass straight through.

Nothing is lost silently: if the queue is full, the span is completed on the caller's thread
without content (content gives way before spans), and the drop is counted and logged.
``force_flush`` and ``shutdown`` wait until the worker has passed everything queued before them.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_llm_audit import _guard
from otel_llm_audit.emitter import handoff
from otel_llm_audit.emitter.attributes import SpanContent
from otel_llm_audit.emitter.deferred import DeferredSpan, bounded

logger = logging.getLogger("otel_llm_audit")

_STOP = object()


class _Marker:
    """A flush or stop request in the queue: everything before it has been processed when it is."""

    __slots__ = ("done", "stop")

    def __init__(self, stop: bool = False) -> None:
        self.done = threading.Event()
        self.stop = stop


class AuditSpanProcessor(SpanProcessor):
    """Completes LLM spans off the caller's thread and forwards every span downstream.

    The caller's thread appends to a deque (no lock, no wake-up: about a microsecond); the
    worker wakes when a batch has gathered or every ``interval`` seconds, and completes the
    batch in one go. Waking a thread per span costs the caller ~20 us and makes the two
    threads fight for the GIL on every call.
    """

    def __init__(
        self,
        downstream: Sequence[SpanProcessor],
        *,
        queue_size: int = 8192,
        batch_size: int = 64,
        interval: float = 0.1,
    ) -> None:
        self._downstream = tuple(downstream)
        self._items: collections.deque[Any] = collections.deque()
        self._max_items = queue_size
        self._batch_size = max(1, min(batch_size, queue_size))
        self._interval = interval
        self._wake = threading.Condition(threading.Lock())
        self._dropped_content = 0
        self._last_drop_log = 0.0
        self._shutdown = False
        self._start_worker()
        if hasattr(os, "register_at_fork"):
            weak_self = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _restart_in_child(weak_self))

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
        items = self._items
        if len(items) >= self._max_items:
            self._note_dropped_content()
            self._complete_and_forward(span, pending, content_allowed=False)
            return
        items.append((span, pending))
        if len(items) % self._batch_size == 0:  # every full batch, not just the first
            with self._wake:
                self._wake.notify()

    def submit(self, deferred: DeferredSpan) -> None:
        """The fast path's end of call: queue a span to build, complete and publish off-thread."""
        items = self._items
        if self._shutdown or len(items) >= self._max_items:
            if not self._shutdown:
                self._note_dropped_content()
            self._build_and_publish(deferred, content_allowed=False)
            return
        items.append(deferred)
        if len(items) % self._batch_size == 0:  # every full batch, not just the first
            with self._wake:
                self._wake.notify()

    @classmethod
    def attach_to(
        cls, provider: TracerProvider, exporters: Sequence[SpanExporter], **options: Any
    ) -> AuditSpanProcessor:
        """Install on ``provider`` in front of ``exporters`` (each behind a ``BatchSpanProcessor``).

        Registered this way, our spans are built off the caller's thread entirely (the fast
        path); added with ``provider.add_span_processor`` they are completed off it.
        """
        processor = cls([BatchSpanProcessor(e) for e in exporters], **options)
        provider.add_span_processor(processor)
        tracer = provider.get_tracer(handoff.SCOPE_PREFIX)
        handoff.register_pipeline(getattr(tracer, "span_processor", None), processor)
        return processor

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        if not self._shutdown and not self._wait_for(_Marker(), deadline):
            return False
        ok = True
        for processor in self._downstream:
            remaining_ms = max(int((deadline - time.monotonic()) * 1000), 1)
            ok = processor.force_flush(remaining_ms) and ok
        return ok

    def shutdown(self) -> None:
        if self._shutdown:
            return
        # From here on, calls complete on their own thread; the worker finishes what is queued.
        self._shutdown = True
        self._wait_for(_Marker(stop=True), time.monotonic() + 30)
        self._worker.join(timeout=5)
        self._drain_here()  # a call that slipped in behind the stop marker is not lost
        for processor in self._downstream:
            processor.shutdown()

    def _drain_here(self) -> None:
        items = self._items
        while items:
            item = items.popleft()
            if isinstance(item, _Marker):
                item.done.set()
            elif isinstance(item, DeferredSpan):
                self._build_and_publish(item, content_allowed=True)
            else:
                span, pending = item
                self._complete_and_forward(span, pending, content_allowed=True)

    def _wait_for(self, marker: _Marker, deadline: float) -> bool:
        """Queue ``marker`` behind everything queued so far and wait until the worker reaches it."""
        self._items.append(marker)
        with self._wake:
            self._wake.notify()
        return marker.done.wait(max(deadline - time.monotonic(), 0))

    # Worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        items = self._items
        while True:
            if not items:
                with self._wake:
                    self._wake.wait(self._interval)
            while items:
                item = items.popleft()
                if isinstance(item, _Marker):
                    item.done.set()
                    if item.stop:
                        return
                    continue
                if isinstance(item, DeferredSpan):
                    self._build_and_publish(item, content_allowed=True)
                    continue
                span, pending = item
                self._complete_and_forward(span, pending, content_allowed=True)

    def _complete_and_forward(self, span: ReadableSpan, pending: Any, *, content_allowed: bool) -> None:
        try:
            content = pending.complete(content_allowed=content_allowed)
            completed = completed_copy(span, content)
        except Exception as err:
            _guard.report_internal_error("pipeline.complete", err)
            completed = span
        self._forward(completed)

    def _build_and_publish(self, deferred: DeferredSpan, *, content_allowed: bool) -> None:
        try:
            content = deferred.completion.complete(content_allowed=content_allowed)
        except Exception as err:
            _guard.report_internal_error("pipeline.complete", err)
            content = SpanContent()
        try:
            deferred.publish(deferred.build(content))
        except Exception as err:
            _guard.report_internal_error("pipeline.publish", err)

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
                "otel-llm-audit: completion queue full (%d spans); %d spans exported without content so far",
                self._max_items,
                self._dropped_content,
            )


def _restart_in_child(weak_self: weakref.ref[AuditSpanProcessor]) -> None:
    """After ``fork()`` the worker thread is gone in the child: start a new one."""
    processor = weak_self()
    if processor is not None and not processor._shutdown:
        processor._start_worker()


def completed_copy(span: ReadableSpan, content: SpanContent) -> ReadableSpan:
    """A new ended span: the original plus what the emitter completed. The original is untouched."""
    merged = dict(span.attributes or {})
    merged.update(content.attributes)
    attributes = bounded(merged)
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
