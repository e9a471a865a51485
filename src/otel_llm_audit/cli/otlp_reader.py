"""Reads OTLP JSON lines (what the collector's file exporter and our default write) into spans.

Only what the CLI needs to print a trace: a flat, typed view of each span with its
attributes decoded from OTLP's ``AnyValue`` wrappers. Malformed lines are counted and
skipped, never fatal: an investigator must be able to read the rest of the file.

:func:`span_view` is the one place an OTLP/JSON span becomes a :class:`SpanView`; the audit
store's records take the same road (:mod:`otel_llm_audit.cli.store_source` turns each into
OTLP/JSON first), so a span reads the same from the store and from an exported copy.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class SpanView:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    scope: str
    attributes: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    #: Span links: ``{"trace_id", "span_id", "attributes"}`` (a resumed run points at its pause).
    links: list[dict[str, Any]] = field(default_factory=list)
    status_code: int = 0
    status_message: str = ""
    #: The resource's attributes (``service.name``, ...), decoded.
    resource: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def decode_value(value: dict[str, Any]) -> Any:
    """OTLP/JSON ``AnyValue`` -> Python value."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [decode_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return {kv["key"]: decode_value(kv.get("value", {})) for kv in value["kvlistValue"].get("values", [])}
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def decode_attributes(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    """An OTLP/JSON attribute list -> ``{key: value}``."""
    return {item["key"]: decode_value(item.get("value", {})) for item in items or []}


def span_view(span: Mapping[str, Any], scope: str, resource: dict[str, Any] | None = None) -> SpanView:
    """One OTLP/JSON span (from a file or from a stored record) as a :class:`SpanView`."""
    status = span.get("status") or {}
    return SpanView(
        trace_id=span["traceId"],
        span_id=span["spanId"],
        parent_span_id=span.get("parentSpanId") or None,
        name=span.get("name", ""),
        kind=int(span.get("kind", 0)),
        start_ns=int(span.get("startTimeUnixNano", 0)),
        end_ns=int(span.get("endTimeUnixNano", 0)),
        scope=scope,
        attributes=decode_attributes(span.get("attributes")),
        events=[
            {
                "name": e.get("name", ""),
                "time_ns": int(e.get("timeUnixNano", 0)),
                "attributes": decode_attributes(e.get("attributes")),
            }
            for e in span.get("events") or []
        ],
        links=[
            {
                "trace_id": link.get("traceId", ""),
                "span_id": link.get("spanId", ""),
                "attributes": decode_attributes(link.get("attributes")),
            }
            for link in span.get("links") or []
        ],
        status_code=int(status.get("code", 0)),
        status_message=status.get("message", ""),
        resource=dict(resource or {}),
    )


class SpanFile:
    """Streams the spans of an OTLP JSON lines file, counting the lines it could not read.

    ``on_bytes`` is told how many bytes each line took (a progress bar follows the scan).
    """

    def __init__(self, path: str | Path, on_bytes: Callable[[int], None] | None = None) -> None:
        self.path = path
        self.bad_lines = 0
        self._on_bytes = on_bytes

    def __iter__(self) -> Iterator[SpanView]:
        self.bad_lines = 0
        with open(self.path, "rb") as handle:
            for raw in handle:
                if self._on_bytes is not None:
                    self._on_bytes(len(raw))
                if not raw.strip():
                    continue
                try:
                    spans = list(_spans_of(json.loads(raw.decode("utf-8", errors="replace"))))
                except (ValueError, KeyError, TypeError, AttributeError):
                    self.bad_lines += 1
                    continue
                yield from spans


def read_spans(path: str | Path) -> tuple[list[SpanView], int]:
    """All spans in an OTLP JSON lines file, and how many lines could not be read."""
    source = SpanFile(path)
    spans = list(source)
    return spans, source.bad_lines


def _spans_of(request: dict[str, Any]) -> Iterator[SpanView]:
    for resource_spans in request.get("resourceSpans", []):
        resource = decode_attributes((resource_spans.get("resource") or {}).get("attributes"))
        for scope_spans in resource_spans.get("scopeSpans", []):
            scope = (scope_spans.get("scope") or {}).get("name", "")
            for span in scope_spans.get("spans", []):
                yield span_view(span, scope, resource)
