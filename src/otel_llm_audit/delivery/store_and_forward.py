"""Store-and-forward: every span goes to the local audit store first, and leaves for the network from there.

This is the downstream of the audit span processor (after completion and masking). The SDK's
``BatchSpanProcessor`` moves spans to the store's writer on its own thread (sealing and disk
never on the application's thread); one forwarder per configured exporter ships the outbox.
With no exporter configured, the store alone is the embedded audit trail.

The batch processor drops spans when its queue is full; an audit trail must not. So this
processor counts what is queued and, when the queue is full, makes its caller wait for room.
The caller is the audit processor's completion worker (every span goes through it when the
store is on), so the application's thread never waits on disk: the completion queue fills
instead, and its policy applies (content withheld, counted and logged). A caller that is not
the worker (a span withheld because that queue was full too, or ended during shutdown) does
not wait at all: the span is counted as lost and logged.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_llm_audit import _guard
from otel_llm_audit.config import Settings
from otel_llm_audit.delivery.forwarder import Forwarder
from otel_llm_audit.delivery.store import AuditStore
from otel_llm_audit.delivery.store_writer import StoreWriter
from otel_llm_audit.processing.pipeline import COMPLETION_THREAD
from otel_llm_audit.processing.sealing import load_seal_key

logger = logging.getLogger("otel_llm_audit")

#: The longest ``force_flush`` waits for destinations once spans are safely in the store.
FLUSH_DELIVERY_WAIT_S = 5.0

#: How long the completion worker waits for room in the store's queue before giving a span up
#: (the writer stuck on a full disk, say); any other thread waits ``OTHER_THREAD_WAIT_S``.
WORKER_WAIT_S = 30.0
OTHER_THREAD_WAIT_S = 0.0


def destination_name(index: int) -> str:
    """Outbox name of the ``index``-th configured exporter: stable across restarts, so a backlog
    left by one run is delivered by the next even if the endpoint's address changed."""
    return f"exporter-{index}"


class StoreAndForwardProcessor(SpanProcessor):
    """Stores every ended span (sealed) and forwards it to each exporter until acknowledged."""

    def __init__(
        self, store: AuditStore, writer: StoreWriter, forwarders: Sequence[Forwarder], queue_size: int
    ) -> None:
        self.store = store
        self.writer = writer
        self.forwarders = tuple(forwarders)
        self._max_queued = queue_size
        self._queued = 0
        self._warned_after_shutdown = False
        self._room = threading.Condition(threading.Lock())
        #: Spans given up because the store's queue stayed full (counted and logged, never silent).
        self.dropped = 0
        self._last_drop_log = 0.0
        writer.set_on_taken(self._taken)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset_in_child)
        self._batch = BatchSpanProcessor(
            writer, max_queue_size=queue_size, schedule_delay_millis=200, max_export_batch_size=min(512, queue_size)
        )
        self._shutdown = False

    @classmethod
    def build(
        cls, settings: Settings, exporters: Sequence[SpanExporter], resource: Resource | None = None
    ) -> StoreAndForwardProcessor:
        """Open (or create) the store in ``settings`` and start a forwarder per exporter.

        Raises ``StoreError`` or ``SealKeyError`` at start-up when the store or the key cannot be used.
        """
        key = load_seal_key(settings.seal_key_file)
        store = AuditStore(settings.store, sync=settings.store_sync)
        names = [destination_name(i) for i in range(len(exporters))]
        forwarders = [Forwarder(store, name, exporter) for name, exporter in zip(names, exporters, strict=True)]
        _warn_orphaned_destinations(store, names)

        def wake_all() -> None:
            for forwarder in forwarders:
                forwarder.wake()

        writer = StoreWriter(
            store,
            key=key,
            destinations=names,
            resource=resource,
            max_bytes=settings.store_max_mb * 1024 * 1024,
            checkpoint_interval=settings.checkpoint_interval,
            checkpoint_records=settings.checkpoint_records,
            on_stored=wake_all,
        )
        return cls(store, writer, forwarders, queue_size=max(settings.queue_size * 2, 2048))

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return  # the batch processor exports sampled spans only: do not count what it will not take
        if self._shutdown:
            self._note_after_shutdown()
            return
        with self._room:
            if self._queued >= self._max_queued:
                worker = threading.current_thread().name == COMPLETION_THREAD
                deadline = time.monotonic() + (WORKER_WAIT_S if worker else OTHER_THREAD_WAIT_S)
                while self._queued >= self._max_queued and time.monotonic() < deadline:
                    self._room.wait(max(deadline - time.monotonic(), 0.001))
                if self._queued >= self._max_queued:
                    self._note_dropped()
                    return
            self._queued += 1
        self._batch.on_end(span)

    def _reset_in_child(self) -> None:
        """The batch processor empties its queue in a forked child: so does the count (and its lock)."""
        self._room = threading.Condition(threading.Lock())
        self._queued = 0

    def _taken(self, count: int) -> None:
        """The writer took ``count`` spans out of the batch queue."""
        with self._room:
            self._queued = max(self._queued - count, 0)
            self._room.notify_all()

    def _note_after_shutdown(self) -> None:
        """A span that ended after the pipeline shut down (a tracer kept past ``shutdown()``)."""
        self.dropped += 1
        _guard.report_internal_error("store.after_shutdown", RuntimeError("span ended after the audit store shut down"))
        if not self._warned_after_shutdown:
            self._warned_after_shutdown = True
            logger.warning(
                "otel-llm-audit: a span ended after the audit pipeline shut down and was not stored "
                "(a tracer or instrumentation still uses the old provider?)"
            )

    def _note_dropped(self) -> None:
        self.dropped += 1
        _guard.report_internal_error("store.queue_full", RuntimeError("the audit store's queue stayed full"))
        now = time.monotonic()
        if now - self._last_drop_log > 10:
            self._last_drop_log = now
            logger.error(
                "otel-llm-audit: the audit store's queue stayed full (%d spans; the writer is stuck?); "
                "%d spans not stored so far",
                self._max_queued,
                self.dropped,
            )

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Everything ended so far is in the store; then wait (briefly) for the destinations."""
        deadline = time.monotonic() + timeout_millis / 1000
        stored = self._batch.force_flush(timeout_millis)
        wait = min(max(deadline - time.monotonic(), 0.0), FLUSH_DELIVERY_WAIT_S)
        delivered = all([forwarder.flush(wait) for forwarder in self.forwarders])
        return stored and delivered

    def shutdown(self) -> None:
        if self._shutdown:
            return
        self._shutdown = True
        self._batch.shutdown()  # type: ignore[no-untyped-call]  # the last spans, then the writer's final checkpoint
        for forwarder in self.forwarders:
            forwarder.shutdown(FLUSH_DELIVERY_WAIT_S)


def _warn_orphaned_destinations(store: AuditStore, names: Sequence[str]) -> None:
    """Say so when a previous run queued records for an exporter this run no longer has."""
    rows = store.connection().execute("SELECT destination, COUNT(*) FROM outbox GROUP BY destination").fetchall()
    for destination, count in rows:
        if destination not in names:
            logger.warning(
                "otel-llm-audit: %d spans in the audit store %s wait for %s, which is not configured now; "
                "they stay in the store (configure that exporter again to deliver them)",
                count,
                store.path,
                destination,
            )
