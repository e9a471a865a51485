"""Stored records back as spans: OTLP/JSON for files and the CLI, ``ReadableSpan`` for exporters.

A record's body is its canonical document (:mod:`otel_llm_audit.processing.canonical`); its
seal travels as the ``llm_audit.integrity.*`` attributes, so a copy exported from the store,
whoever holds it, verifies like the store itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from otel_llm_audit import semconv
from otel_llm_audit.delivery.store import AuditStore, StoredRecord
from otel_llm_audit.processing.canonical import python_value

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def seal_pairs(record: StoredRecord) -> list[list[Any]]:
    """The record's seal as canonical ``[key, typed]`` attribute pairs."""
    pairs: list[list[Any]] = [
        [semconv.LLM_AUDIT_INTEGRITY_STREAM, ["s", record.stream]],
        [semconv.LLM_AUDIT_INTEGRITY_SEQUENCE, ["i", str(record.seq)]],
        [semconv.LLM_AUDIT_INTEGRITY_PREV_HASH, ["s", record.prev_hash]],
        [semconv.LLM_AUDIT_INTEGRITY_HASH, ["s", record.hash]],
        [semconv.LLM_AUDIT_INTEGRITY_ALGORITHM, ["s", record.algorithm]],
    ]
    if record.key_id:
        pairs.append([semconv.LLM_AUDIT_INTEGRITY_KEY_ID, ["s", record.key_id]])
    return pairs


def document_of(record: StoredRecord) -> dict[str, Any]:
    """The record's canonical document."""
    return dict(json.loads(record.body))


def otlp_span_of(record: StoredRecord, document: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record as an OTLP/JSON span, seal included."""
    from otel_llm_audit.processing.canonical import otlp_span

    return otlp_span(document if document is not None else document_of(record), seal_pairs(record))


def _attributes(pairs: Iterable[list[Any]]) -> dict[str, Any]:
    return {key: python_value(typed) for key, typed in pairs}


def _context(trace_id: str, span_id: str) -> SpanContext:
    return SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=False, trace_flags=_SAMPLED)


def readable_span_of(record: StoredRecord, resource: Resource) -> ReadableSpan:
    """The record rebuilt as the SDK span an exporter takes, seal included."""
    doc = document_of(record)
    scope_name, scope_version = doc["scope"]
    code, message = doc["status"]
    parent = _context(doc["traceId"], doc["parentSpanId"]) if doc["parentSpanId"] else None
    return ReadableSpan(
        name=doc["name"],
        context=_context(doc["traceId"], doc["spanId"]),
        parent=parent,
        resource=resource,
        attributes=_attributes([*doc["attributes"], *seal_pairs(record)]),
        events=[Event(name, _attributes(attrs), int(time)) for name, time, attrs in doc["events"]],
        links=[Link(_context(trace_id, span_id), _attributes(attrs)) for trace_id, span_id, attrs in doc["links"]],
        kind=SpanKind(doc["kind"] - 1),
        status=Status(StatusCode(code), message or None),
        start_time=int(doc["start"]),
        end_time=int(doc["end"]),
        instrumentation_scope=InstrumentationScope(scope_name, scope_version or None),
    )


class ResourceCache:
    """Resources of a store, decoded once each."""

    def __init__(self, store: AuditStore) -> None:
        self._store = store
        self._json: dict[int, list[dict[str, Any]]] = {}
        self._sdk: dict[int, Resource] = {}

    def otlp(self, resource_id: int) -> list[dict[str, Any]]:
        found = self._json.get(resource_id)
        if found is None:
            found = self._json[resource_id] = self._store.resource_attributes(resource_id)
        return found

    def sdk(self, resource_id: int) -> Resource:
        found = self._sdk.get(resource_id)
        if found is None:
            from otel_llm_audit.cli.otlp_reader import decode_value

            attributes = {item["key"]: decode_value(item.get("value", {})) for item in self.otlp(resource_id)}
            found = self._sdk[resource_id] = Resource(
                {k: tuple(v) if isinstance(v, list) else v for k, v in attributes.items()}
            )
        return found


def export_requests(store: AuditStore, records: Iterable[StoredRecord], batch: int = 512) -> Iterator[dict[str, Any]]:
    """``records`` as OTLP/JSON ``ExportTraceServiceRequest`` documents of up to ``batch`` spans.

    One document per line is what the collector's ``otlpjsonfile`` receiver reads.
    """
    resources = ResourceCache(store)
    chunk: list[StoredRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= batch:
            yield _request(chunk, resources)
            chunk = []
    if chunk:
        yield _request(chunk, resources)


def _request(records: list[StoredRecord], resources: ResourceCache) -> dict[str, Any]:
    # Spans stay in stored order: consecutive runs of one resource and scope share a group, and a
    # resource or scope seen again later gets a new group (OTLP allows repeats). Grouping all the
    # spans of a scope together would move checkpoints away from the records they follow, and
    # ``verify`` would rightly report them as reordered.
    resource_spans: list[dict[str, Any]] = []
    last_resource: int | None = None
    last_scope: tuple[str, str] | None = None
    spans: list[dict[str, Any]] = []
    for record in records:
        doc = document_of(record)
        scope = (doc["scope"][0], doc["scope"][1])
        if record.resource_id != last_resource:
            scope_spans: list[dict[str, Any]] = []
            resource_spans.append(
                {"resource": {"attributes": resources.otlp(record.resource_id)}, "scopeSpans": scope_spans}
            )
            last_resource, last_scope = record.resource_id, None
        if scope != last_scope:
            scope_json: dict[str, Any] = {"name": scope[0]}
            if scope[1]:
                scope_json["version"] = scope[1]
            spans = []
            scope_spans.append({"scope": scope_json, "spans": spans})
            last_scope = scope
        spans.append(otlp_span_of(record, doc))
    return {"resourceSpans": resource_spans}
