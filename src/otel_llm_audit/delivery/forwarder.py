"""Ships the store's outbox to an exporter: a record leaves the outbox only once acknowledged.

One thread per destination. It leases the oldest unsent records, rebuilds them as spans (seal
included) and hands them to the destination's exporter, the OpenTelemetry SDK's own OTLP
exporter in practice, which does the wire protocol and the OTLP specification's retry rules
within one attempt (429/502/503/504 and connection errors retried with backoff, ``Retry-After``
honoured where the installed exporter version supports it; a partial success is *not* retried,
as the specification requires). When an attempt still fails, the records stay in the outbox
and the forwarder backs off exponentially (with jitter, capped) before trying again, for as
long as it takes: a receiver down for an hour loses nothing, and the backlog waits on disk,
not in memory.

Records are sent at least once: if the process dies after the receiver accepted a batch and
before the acknowledgement reached the store, that batch is sent again on the next start.
Receivers deduplicate by trace id and span id (and ``verify`` reports such repeats as
duplicates, not tampering).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_llm_audit import _guard
from otel_llm_audit.delivery.store import AuditStore, StoredRecord, lessee_name
from otel_llm_audit.delivery.stored_spans import ResourceCache, readable_span_of

logger = logging.getLogger("otel_llm_audit")

#: How often a forwarder looks for leases held by processes of this host that have died.
DEAD_LEASE_CHECK_S = 30.0


class Forwarder:
    """Delivers one destination's outbox through ``exporter``, retrying until acknowledged."""

    def __init__(
        self,
        store: AuditStore,
        destination: str,
        exporter: SpanExporter,
        *,
        batch_size: int = 512,
        lease_s: float = 120.0,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        poll_s: float = 1.0,
    ) -> None:
        self.store = store
        self.destination = destination
        self.exporter = exporter
        self._batch_size = batch_size
        self._lease_s = lease_s
        self._initial_backoff = initial_backoff_s
        self._max_backoff = max_backoff_s
        self._poll = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._failures = 0
        self._last_warning = 0.0
        self._last_error = ""
        self._check_leases_now = False
        self._backing_off = False
        #: Spans acknowledged by the destination, and failed attempts, since start.
        self.sent = 0
        self.failed_attempts = 0
        self._start_thread()
        if hasattr(os, "register_at_fork"):
            # A forked worker (gunicorn, multiprocessing) forwards too; leases keep the two apart.
            os.register_at_fork(after_in_child=self._restart_in_child)

    def _start_thread(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"otel-llm-audit-forward-{self.destination}", daemon=True
        )
        self._thread.start()

    def _restart_in_child(self) -> None:
        self._backing_off = False  # the parent's backoff is not the child's
        self._failures = 0
        if not self._stop.is_set():
            self._wake = threading.Event()
            self._idle = threading.Event()
            self._start_thread()

    def wake(self) -> None:
        """New records are in the store."""
        self._idle.clear()
        self._wake.set()

    def flush(self, timeout_s: float) -> bool:
        """Wait until the outbox is empty for this destination (False on timeout)."""
        deadline = time.monotonic() + timeout_s
        self._check_leases_now = True  # a worker that died holding a lease should not hold up the flush
        self.wake()
        while time.monotonic() < deadline:
            if self._backing_off:
                # The destination failed (now, or before the flush) and the thread waits to retry:
                # the spans are safe in the store. Waiting would only hold up the application.
                return False
            try:
                if self.store.pending(self.destination) == 0:
                    return True
            except Exception as err:
                _guard.report_internal_error("forwarder.flush", err)
                return False
            self._wake.set()
            time.sleep(0.02)
        return False

    def shutdown(self, drain_timeout_s: float = 5.0) -> None:
        """Send what can be sent within ``drain_timeout_s``; the rest stays for the next start."""
        delivered = self.flush(drain_timeout_s)
        self._stop.set()
        self._wake.set()
        try:
            self.exporter.shutdown()  # aborts an exporter's own retry wait
        except Exception as err:
            _guard.report_internal_error("forwarder.shutdown", err)
        self._thread.join(timeout=10)
        if not delivered:
            try:
                left = self.store.pending(self.destination)
            except Exception:
                left = -1
            logger.warning(
                "otel-llm-audit: %s spans wait in the audit store %s for %s; they are sent at the next start",
                left,
                self.store.path,
                self.destination,
            )

    # The thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        resources = ResourceCache(self.store)
        lessee = lessee_name()
        next_lease_check = 0.0
        while not self._stop.is_set():
            if self._check_leases_now or time.monotonic() >= next_lease_check:  # a worker may have died
                self._check_leases_now = False
                next_lease_check = time.monotonic() + DEAD_LEASE_CHECK_S
                self._free_dead_leases()
            try:
                records = self.store.claim(self.destination, self._batch_size, self._lease_s, lessee)
            except Exception as err:
                _guard.report_internal_error("forwarder.claim", err)
                self._stop.wait(self._poll)
                continue
            if not records:
                self._idle.set()
                self._wake.wait(self._poll)
                self._wake.clear()
                continue
            positions = [record.position for record in records]
            delivered = self._send(records, resources)
            del records  # the batch is not kept in memory through a backoff
            if delivered:
                self._acknowledge(positions)
            else:
                self._retry_later(positions)

    def _send(self, records: list[StoredRecord], resources: ResourceCache) -> bool:
        """One attempt: True once the destination acknowledged the batch."""
        try:
            spans = [readable_span_of(record, resources.sdk(record.resource_id)) for record in records]
        except Exception as err:  # our bug, not the receiver's: counted, and the batch waits
            _guard.report_internal_error("forwarder.rebuild", err)
            return False
        try:
            return self.exporter.export(spans) is SpanExportResult.SUCCESS
        except Exception as err:
            # Some exporter versions raise on a refused connection (requests.ConnectionError)
            # instead of returning FAILURE: the receiver is down, not our code broken.
            self._last_error = f"{type(err).__name__}: {err}"
            return False

    def _free_dead_leases(self) -> None:
        try:
            freed = self.store.release_dead_leases(self.destination)
        except Exception as err:
            _guard.report_internal_error("forwarder.leases", err)
            return
        if freed:
            logger.info("otel-llm-audit: resending %d spans leased by a process that died", freed)

    def _acknowledge(self, positions: list[int]) -> None:
        try:
            self.store.acknowledge(self.destination, positions)
        except Exception as err:
            _guard.report_internal_error("forwarder.acknowledge", err)
            return
        self.sent += len(positions)
        if self._failures:
            logger.info("otel-llm-audit: %s reachable again; delivering the backlog", self.destination)
        self._failures = 0

    def _retry_later(self, positions: list[int]) -> None:
        self.failed_attempts += 1
        self._failures += 1
        try:
            self.store.release(self.destination, positions)
        except Exception as err:
            _guard.report_internal_error("forwarder.release", err)
        backoff = min(self._max_backoff, self._initial_backoff * 2 ** min(self._failures - 1, 16))
        backoff *= random.uniform(0.8, 1.2)
        now = time.monotonic()
        if now - self._last_warning > 60:
            self._last_warning = now
            try:
                waiting = self.store.pending(self.destination)
            except Exception:
                waiting = -1
            logger.warning(
                "otel-llm-audit: %s did not accept %d spans%s; %d wait in the audit store, retrying in %.1f s",
                self.destination,
                len(positions),
                f" ({self._last_error})" if self._last_error else "",
                waiting,
                backoff,
            )
        self._last_error = ""
        self._backing_off = True
        try:
            self._stop.wait(backoff)
        finally:
            self._backing_off = False
