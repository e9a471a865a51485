"""Seals spans into the local audit store, writes signed checkpoints, and enforces the size limit.

It is a ``SpanExporter`` behind a ``BatchSpanProcessor``: the SDK's batch thread calls it, so
the application's thread never waits on hashing or on disk. Everything it receives has already
been masked (it sits after the masking stage), so nothing unmasked is ever written.

Checkpoints are records of the same stream (spans named ``llm_audit.checkpoint``): every
``checkpoint_interval`` seconds even when idle (so a quiet period is provably quiet), every
``checkpoint_records`` records, when the size policy prunes, and at shutdown. Each signs the
chain's head and the previous checkpoint's signature.

Size policy: when the store's data exceed ``max_bytes``, the oldest records go first, those
already delivered to every destination before any still waiting; the pruned ranges are listed
in a signed ``prune`` checkpoint, so ``verify`` tells pruning from deletion. Pruning a record no
destination has received yet loses it: that is logged and counted.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from otel_llm_audit import _guard, semconv
from otel_llm_audit._version import __version__
from otel_llm_audit.delivery.store import AuditStore, RecordRow, derived_index
from otel_llm_audit.processing.canonical import otlp_attributes, span_body, typed_value
from otel_llm_audit.processing.sealing import ALGORITHM_NONE, UNKEYED, Sealer, SealKey, checkpoint_payload

logger = logging.getLogger("otel_llm_audit")

CHECKPOINT_SPAN_NAME = "llm_audit.checkpoint"
CHECKPOINT_SCOPE = "otel_llm_audit.integrity"

_A = semconv


def index_values(span: ReadableSpan) -> tuple[Any, ...]:
    """The query columns of a span (``store.INDEX_COLUMNS`` order)."""
    context = span.context
    parent = span.parent
    return (
        format(context.trace_id, "032x") if context else "",
        format(context.span_id, "016x") if context else "",
        format(parent.span_id, "016x") if parent is not None else "",
        span.name,
        span.start_time or 0,
        span.end_time or 0,
        *derived_index(span.attributes or {}, (event.name for event in span.events), span.status.status_code.value),
    )


def resource_json(resource: Resource | None) -> str:
    """A resource's attributes as OTLP/JSON text (stored once per distinct resource)."""
    attributes = resource.attributes if resource is not None else {}
    pairs = [[str(k), typed_value(attributes[k])] for k in sorted(attributes)]
    return json.dumps(otlp_attributes(pairs), separators=(",", ":"), ensure_ascii=False)


class StoreWriter(SpanExporter):
    """Seals each span into the next record of this process's stream and appends it to the store."""

    def __init__(
        self,
        store: AuditStore,
        *,
        key: SealKey = UNKEYED,
        destinations: Sequence[str] = (),
        resource: Resource | None = None,
        max_bytes: int = 0,
        checkpoint_interval: float = 60.0,
        checkpoint_records: int = 10_000,
        on_stored: Callable[[], None] | None = None,
        on_taken: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.key = key
        self.sealer = Sealer(key)
        self._destinations = tuple(destinations)
        self._resource = resource or Resource.create()
        self._resource_json_cache: dict[int, tuple[Resource, str]] = {}
        self._max_bytes = max_bytes
        self._checkpoint_records = checkpoint_records
        self._on_stored = on_stored
        self._on_taken = on_taken
        self._lock = threading.Lock()
        self._since_checkpoint = 0
        self._last_signature = ""
        self._closed = False
        #: Spans that could not be stored (counted and logged, never silent).
        self.lost = 0
        #: Records pruned by the size policy before any destination received them.
        self.pruned_undelivered = 0
        self._stop = threading.Event()
        self._interval = checkpoint_interval
        self._timer: threading.Thread | None = None
        self._start_timer()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._restart_in_child)

    def set_on_taken(self, callback: Callable[[int], None] | None) -> None:
        """Tell ``callback`` how many spans each export takes (the queue in front counts them)."""
        self._on_taken = callback

    @property
    def stream(self) -> str:
        return self.sealer.stream

    def _restart_in_child(self) -> None:
        """A forked child is another writer: it gets its own stream (two writers must not share one)."""
        self.sealer = Sealer(self.key)
        self._last_signature = ""
        self._since_checkpoint = 0
        self._lock = threading.Lock()
        if not self._closed:
            self._start_timer()

    def _start_timer(self) -> None:
        if self._interval > 0:
            self._timer = threading.Thread(target=self._tick, name="otel-llm-audit-checkpoint", daemon=True)
            self._timer.start()

    # SpanExporter -----------------------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._on_taken is not None:
            self._on_taken(len(spans))  # out of the batch queue: room for as many
        if not spans:
            return SpanExportResult.SUCCESS
        with self._lock:
            if self._closed:  # after the stream's final checkpoint (a batch that outlived shutdown)
                self._note_lost(len(spans), RuntimeError("the audit store's writer is shut down"))
                return SpanExportResult.FAILURE
            try:
                self._append(self._rows(spans))
            except Exception as err:
                self._note_lost(len(spans), err)
                return SpanExportResult.FAILURE
            self._since_checkpoint += len(spans)
            try:  # the spans are stored: a failure from here on is not a loss of them
                if self._since_checkpoint >= self._checkpoint_records:
                    self._checkpoint_locked("count")
                self._enforce_size_locked()
            except Exception as err:
                _guard.report_internal_error("store.maintenance", err)
        self._notify()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        if self._closed:
            return
        self._stop.set()
        if self._timer is not None:
            self._timer.join(timeout=5)
        try:
            with self._lock:  # the last record of the stream: nothing is appended after it
                self._checkpoint_locked("shutdown")
                self._closed = True
        except Exception as err:
            _guard.report_internal_error("store.checkpoint", err)
            self._closed = True
        self._notify()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # Checkpoints ------------------------------------------------------------------------

    def checkpoint(self, reason: str, pruned: list[list[Any]] | None = None) -> None:
        """Sign the chain's head now (``interval``, ``count``, ``prune`` or ``shutdown``)."""
        if self._closed:
            return
        try:
            with self._lock:
                if self._closed:  # the shutdown checkpoint got the lock first
                    return
                self._checkpoint_locked(reason, pruned)
        except Exception as err:
            _guard.report_internal_error("store.checkpoint", err)
            return
        self._notify()

    def _checkpoint_locked(self, reason: str, pruned: list[list[Any]] | None = None) -> None:
        sequence, head = self.sealer.head
        now = time.time_ns()
        payload = checkpoint_payload(self.stream, sequence, head, now, self._last_signature, reason, pruned)
        signature = self.key.sign(payload)
        attributes: dict[str, Any] = {
            _A.LLM_AUDIT_INTEGRITY_CHECKPOINT_SEQUENCE: sequence,
            _A.LLM_AUDIT_INTEGRITY_CHECKPOINT_HASH: head,
            _A.LLM_AUDIT_INTEGRITY_CHECKPOINT_TIME: now,
            _A.LLM_AUDIT_INTEGRITY_CHECKPOINT_REASON: reason,
            _A.LLM_AUDIT_INTEGRITY_CHECKPOINT_ALGORITHM: self.key.checkpoint_algorithm,
            _A.LLM_AUDIT_INTEGRITY_CHECKPOINT_SIGNATURE: signature,
            _A.LLM_AUDIT_INTEGRITY_CHECKPOINT_PREV_SIGNATURE: self._last_signature,
            # Routed to the SIEM with the audit spans: a routed copy needs every checkpoint to verify.
            _A.LLM_AUDIT_AUDIT_RECORD: True,
        }
        if pruned:
            attributes[_A.LLM_AUDIT_INTEGRITY_CHECKPOINT_PRUNED] = json.dumps(pruned, separators=(",", ":"))
        ids = _random_ids()
        span = ReadableSpan(
            name=CHECKPOINT_SPAN_NAME,
            context=SpanContext(ids[0], ids[1], is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)),
            resource=self._resource,
            attributes=attributes,
            kind=SpanKind.INTERNAL,
            start_time=now,
            end_time=now,
            instrumentation_scope=InstrumentationScope(CHECKPOINT_SCOPE, __version__),
        )
        self._append([self._row(span)])
        self._last_signature = signature
        self._since_checkpoint = 0

    def _tick(self) -> None:
        while not self._stop.wait(self._interval):
            self.checkpoint("interval")

    # Writing ----------------------------------------------------------------------------

    def _rows(self, spans: Sequence[ReadableSpan]) -> list[RecordRow]:
        """Sealed rows for ``spans``; a span that cannot be encoded is counted as lost, not the batch."""
        rows = []
        for span in spans:
            try:
                rows.append(self._row(span))
            except Exception as err:
                self._note_lost(1, err)
        return rows

    def _row(self, span: ReadableSpan) -> RecordRow:
        body = span_body(span)
        resource = self._resource_json(span.resource)
        index = index_values(span)
        seal = self.sealer.seal(body)  # last: nothing after it can fail and leave a sealed, unstored record
        return RecordRow(
            stream=seal.stream,
            seq=seal.sequence,
            prev_hash=seal.prev_hash,
            hash=seal.hash,
            algorithm=self.key.record_algorithm,
            key_id=self.key.key_id,
            body=body,
            resource_attributes=resource,
            index=index,
        )

    def _resource_json(self, resource: Resource | None) -> str:
        cached = self._resource_json_cache.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1]
        text = resource_json(resource)
        if resource is not None:
            self._resource_json_cache[id(resource)] = (resource, text)
        return text

    def _append(self, rows: list[RecordRow]) -> None:
        """Append sealed rows; if they do not commit, the chain's head goes back to before them.

        Sealing moves the head forward; a rolled-back batch must not leave the next record
        chained onto hashes that are in no store (``verify`` would call that a deletion).
        """
        try:
            self.store.append(rows, self._destinations)
        except BaseException:
            if rows:
                self.sealer.rewind(rows[0].seq, rows[0].prev_hash)
            raise

    def _enforce_size_locked(self) -> None:
        if not self._max_bytes or self.store.used_bytes() <= self._max_bytes:
            return
        target = int(self._max_bytes * 0.9)
        pruned_all: list[list[Any]] = []
        while (used := self.store.used_bytes()) > target:
            count = self.store.count()
            if not count:
                break
            # As many of the oldest records as the excess holds, at their average size.
            needed = int((used - target) / (used / count)) + 1
            positions, undelivered = self.store.oldest_for_pruning(needed)
            if not positions:
                break
            pruned_all.extend(self._prune_claims_among(positions))
            pruned_all.extend(self.store.prune(positions))
            if undelivered:
                self.pruned_undelivered += undelivered
                logger.warning(
                    "otel-llm-audit: the audit store reached its size limit (%d bytes) with nothing delivered to "
                    "prune; %d undelivered records were removed (%d so far)",
                    self._max_bytes,
                    undelivered,
                    self.pruned_undelivered,
                )
        if pruned_all:
            merged: dict[str, list[Any]] = {}
            for stream, seq, digest in pruned_all:
                if stream not in merged or seq > merged[stream][1]:
                    merged[stream] = [stream, seq, digest]
            self._checkpoint_locked("prune", sorted(merged.values()))

    def _prune_claims_among(self, positions: Sequence[int]) -> list[list[Any]]:
        """The pruned ranges attested by the prune checkpoints about to be pruned themselves.

        They are carried into the new prune checkpoint: otherwise, once the checkpoint that
        attested a stream's pruned head is gone (another writer's stream, pruned in a later
        round that touched none of that stream's records), ``verify`` would see a deletion.
        Only claims whose signature this key verifies are carried (never re-sign a forgery).
        """
        placeholders = ",".join("?" * len(positions))
        rows = self.store.connection().execute(
            f"SELECT stream, body FROM records WHERE name = ? AND id IN ({placeholders})",
            (CHECKPOINT_SPAN_NAME, *positions),
        )
        claims: list[list[Any]] = []
        for stream, body in rows:
            try:
                attributes = {key: typed[1] for key, typed in json.loads(body)["attributes"]}
                pruned_text = attributes.get(_A.LLM_AUDIT_INTEGRITY_CHECKPOINT_PRUNED)
                if not pruned_text:
                    continue
                pruned = json.loads(pruned_text)
                if self.key.checkpoint_algorithm != ALGORITHM_NONE:
                    payload = checkpoint_payload(
                        stream,
                        int(attributes[_A.LLM_AUDIT_INTEGRITY_CHECKPOINT_SEQUENCE]),
                        attributes[_A.LLM_AUDIT_INTEGRITY_CHECKPOINT_HASH],
                        int(attributes[_A.LLM_AUDIT_INTEGRITY_CHECKPOINT_TIME]),
                        attributes[_A.LLM_AUDIT_INTEGRITY_CHECKPOINT_PREV_SIGNATURE],
                        attributes[_A.LLM_AUDIT_INTEGRITY_CHECKPOINT_REASON],
                        pruned,
                    )
                    if not self.key.verify_signature(payload, attributes[_A.LLM_AUDIT_INTEGRITY_CHECKPOINT_SIGNATURE]):
                        continue
                claims.extend([str(c[0]), int(c[1]), str(c[2])] for c in pruned)
            except (ValueError, KeyError, TypeError, IndexError):
                continue
        return claims

    def _notify(self) -> None:
        callback = self._on_stored
        if callback is not None:
            try:
                callback()
            except Exception as err:
                _guard.report_internal_error("store.notify", err)

    def _note_lost(self, count: int, err: BaseException) -> None:
        self.lost += count
        _guard.report_internal_error("store.write", err)
        logger.error(
            "otel-llm-audit: %d spans could not be written to the audit store %s (%d lost so far): %s",
            count,
            self.store.path,
            self.lost,
            err,
        )


def _random_ids() -> tuple[int, int]:
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    generator = RandomIdGenerator()
    return generator.generate_trace_id(), generator.generate_span_id()
