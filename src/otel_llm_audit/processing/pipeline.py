"""The audit span processor: completes and masks spans off the caller's thread, then exports them.

OpenTelemetry freezes a span when it ends, and the caller's thread should pay no more than
an enqueue. So this processor claims our spans when they start; when one ends, the emitter
hands over the call's record, the span goes into a bounded queue, and a worker thread builds
the complete copy (request parameters, usage, content, cost, metrics). With a masking stage
(content mode ``masked``, the default) every span, ours and other instrumentations', goes
through the queue, and the worker hands each batch to the stage, whose masked copies are what
the downstream processors (a ``BatchSpanProcessor`` per exporter) receive. Without one,
spans of other instrumentations pass straight through.

Nothing is lost silently, and nothing leaves unmasked: if the queue is full, the caller either
waits a bounded time for room (``queue_full=block``) or at once completes the span without
content, with whatever else could carry personal data (events, status) withheld; every such
span is flagged, counted and logged. ``force_flush`` and ``shutdown`` wait until the worker
has passed everything queued before them.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Status

from otel_llm_audit import _guard, semconv
from otel_llm_audit.emitter import handoff
from otel_llm_audit.emitter.attributes import SpanContent
from otel_llm_audit.emitter.deferred import DeferredSpan
from otel_llm_audit.processing.span_copy import replace_span

if TYPE_CHECKING:
    from otel_llm_audit.processing.masking_stage import MaskingStage
    from otel_llm_audit.processing.policy_stage import PolicyStage

logger = logging.getLogger("otel_llm_audit")

#: The completion worker's thread name (the store's queue lets it, and only it, wait for room).
COMPLETION_THREAD = "otel-llm-audit-completion"

_QUEUE_FULL = semconv.LlmAuditRedactionFailureValues.QUEUE_FULL
_UNAVAILABLE = semconv.LlmAuditRedactionFailureValues.UNAVAILABLE


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
        masking: MaskingStage | None = None,
        queue_full: str = "drop",
        queue_block_ms: int = 50,
        route_all: bool = False,
        policy: PolicyStage | None = None,
    ) -> None:
        self._downstream = tuple(downstream)
        self._masking = masking
        #: Budgets and anomaly rules: they see each completed span before masking.
        self._policy = policy
        # Every span through the worker, not only ours: with a masking stage (it masks them all),
        # and in front of the audit store (whose queue may make its caller wait for room: the
        # worker, never the application's thread).
        self._route_all = route_all or masking is not None
        self._block_s = queue_block_ms / 1000 if queue_full == "block" else 0.0
        self._local = threading.local()
        self._worker_ident: int | None = None
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
    def masking(self) -> MaskingStage | None:
        """The masking stage every span passes before export, if any."""
        return self._masking

    @property
    def masks(self) -> bool:
        """Whether spans are masked before they reach the downstream processors."""
        return self._masking is not None

    @property
    def dropped_content_count(self) -> int:
        """Spans whose content was dropped because the queue was full."""
        return self._dropped_content

    def _start_worker(self) -> None:
        self._worker = threading.Thread(target=self._run, name=COMPLETION_THREAD, daemon=True)
        self._worker.start()

    # SpanProcessor interface -------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        scope = span.instrumentation_scope
        if scope is not None and scope.name.startswith(handoff.SCOPE_PREFIX):
            handoff.claim(span, self)
        for processor in self._downstream:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if getattr(self._local, "passing", None) is span:  # one of ours, already completed and masked
            self._forward(span)
            return
        pending = handoff.take(span)
        if pending is None and not self._route_all:
            self._forward(span)
            return
        if self._shutdown:
            self._forward(
                self._withheld(self._police_one(self._complete(span, pending, content_allowed=False)), _UNAVAILABLE)
            )
            return
        if not self._enqueue((span, pending)):
            self._note_dropped_content()
            self._forward(
                self._withheld(self._police_one(self._complete(span, pending, content_allowed=False)), _QUEUE_FULL)
            )

    def submit(self, deferred: DeferredSpan) -> None:
        """The fast path's end of call: queue a span to build, complete and publish off-thread."""
        if self._shutdown:
            self._build_and_publish([deferred], content_allowed=False, failure=_UNAVAILABLE)
            return
        if not self._enqueue(deferred):
            self._note_dropped_content()
            self._build_and_publish([deferred], content_allowed=False, failure=_QUEUE_FULL)

    def _enqueue(self, item: Any) -> bool:
        """Append ``item`` for the worker; False when the queue stays full (after waiting, if set to)."""
        items = self._items
        if len(items) >= self._max_items:
            if not self._block_s or threading.get_ident() == self._worker_ident:
                return False
            with self._wake:
                self._wake.notify()
            deadline = time.monotonic() + self._block_s
            while len(items) >= self._max_items:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.0005)
        items.append(item)
        if len(items) % self._batch_size == 0:  # every full batch, not just the first
            with self._wake:
                self._wake.notify()
        return True

    @classmethod
    def attach_to(
        cls, provider: TracerProvider, exporters: Sequence[SpanExporter], **options: Any
    ) -> AuditSpanProcessor:
        """Install on ``provider`` in front of ``exporters`` (each behind a ``BatchSpanProcessor``).

        Registered this way, our spans are built off the caller's thread entirely (the fast
        path); added with ``provider.add_span_processor`` they are completed off it. Pass
        ``masking=MaskingStage.from_settings(...)`` to mask every span before the exporters.
        """
        return cls.attach(provider, [BatchSpanProcessor(e) for e in exporters], **options)

    @classmethod
    def attach(
        cls, provider: TracerProvider, downstream: Sequence[SpanProcessor], **options: Any
    ) -> AuditSpanProcessor:
        """Install on ``provider`` in front of ``downstream`` processors (the store, or batch exporters)."""
        processor = cls(downstream, **options)
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
        if self._masking is not None:
            self._masking.shutdown()
        if self._policy is not None:
            self._policy.shutdown()
        for processor in self._downstream:
            processor.shutdown()

    def _drain_here(self) -> None:
        items = self._items
        batch: list[Any] = []
        while items:
            item = items.popleft()
            if isinstance(item, _Marker):
                item.done.set()
            else:
                batch.append(item)
        self._process(batch)

    def _wait_for(self, marker: _Marker, deadline: float) -> bool:
        """Queue ``marker`` behind everything queued so far and wait until the worker reaches it."""
        self._items.append(marker)
        with self._wake:
            self._wake.notify()
        return marker.done.wait(max(deadline - time.monotonic(), 0))

    # Worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        self._worker_ident = threading.get_ident()
        items = self._items
        batch: list[Any] = []
        while True:
            if not items:
                with self._wake:
                    self._wake.wait(self._interval)
            while items:
                item = items.popleft()
                if isinstance(item, _Marker):
                    self._process(batch)  # everything before the marker, before it is done
                    batch = []
                    item.done.set()
                    if item.stop:
                        return
                    continue
                batch.append(item)
                if len(batch) >= self._batch_size:
                    self._process(batch)
                    batch = []
            self._process(batch)
            batch = []

    def _process(self, batch: list[Any]) -> None:
        """Complete, mask and pass on a batch: spans to the downstream processors, ours published."""
        if not batch:
            return
        deferred = [item for item in batch if isinstance(item, DeferredSpan)]
        if deferred:
            self._build_and_publish(deferred, content_allowed=True)
        if len(deferred) == len(batch):
            return
        completed = [
            self._complete(span, pending, content_allowed=True)
            for span, pending in (item for item in batch if not isinstance(item, DeferredSpan))
        ]
        for span in self._mask(self._police(completed)):
            self._forward(span)

    def _police(self, spans: list[ReadableSpan], *, defer: bool = False) -> list[ReadableSpan]:
        """Budget and anomaly events onto the completed spans (the rules guard themselves)."""
        policy = self._policy
        return spans if policy is None else policy.apply(spans, defer=defer)

    def _police_one(self, span: ReadableSpan) -> ReadableSpan:
        """One span completed on the application's thread: nothing that waits happens here."""
        return self._police([span], defer=True)[0]

    def _mask(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        masking = self._masking
        if masking is None:
            return spans
        try:
            return masking.process(spans)
        except Exception as err:
            _guard.report_internal_error("pipeline.mask", err)
            return [self._withheld(span, semconv.LlmAuditRedactionFailureValues.ERROR) for span in spans]

    def _withheld(self, span: ReadableSpan, failure: str) -> ReadableSpan:
        """``span`` with its content withheld, when there is a masking stage (else as it is)."""
        masking = self._masking
        if masking is None:
            return span
        try:
            return masking.withhold(span, failure)
        except Exception as err:  # the last line of defence: drop the span's attributes rather than leak
            _guard.report_internal_error("pipeline.withhold", err)
            return replace_span(span, attributes={}, events=(), status=Status(span.status.status_code))

    def _complete(self, span: ReadableSpan, pending: Any, *, content_allowed: bool) -> ReadableSpan:
        if pending is None:
            return span
        try:
            content = pending.complete(content_allowed=content_allowed, masked_downstream=self.masks)
            return completed_copy(span, content)
        except Exception as err:
            _guard.report_internal_error("pipeline.complete", err)
            return span

    def _build_and_publish(
        self, items: list[DeferredSpan], *, content_allowed: bool, failure: str | None = None
    ) -> None:
        built: list[ReadableSpan] = []
        publishers: list[DeferredSpan] = []
        for deferred in items:
            try:
                content = deferred.completion.complete(content_allowed=content_allowed, masked_downstream=self.masks)
            except Exception as err:
                _guard.report_internal_error("pipeline.complete", err)
                content = SpanContent()
            try:
                built.append(deferred.build(content))
                publishers.append(deferred)
            except Exception as err:
                _guard.report_internal_error("pipeline.build", err)
        built = self._police(built, defer=failure is not None)  # with a failure: the caller's thread
        finished = self._mask(built) if failure is None else [self._withheld(span, failure) for span in built]
        local = self._local
        for deferred, span in zip(publishers, finished, strict=True):
            local.passing = span  # our own on_end recognises it and forwards it as it is
            try:
                deferred.publish(span)
            except Exception as err:
                _guard.report_internal_error("pipeline.publish", err)
            finally:
                local.passing = None

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
    events = list(span.events)
    for spec in content.events:
        events.append(Event(spec.name, spec.attributes, spec.timestamp or span.end_time))
    return replace_span(span, attributes=merged, events=events)
