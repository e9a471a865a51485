"""Reads OTLP JSON lines (what the collector's file exporter and our default write) into spans.

Only what the CLI needs to print a trace: a flat, typed view of each span with its
attributes decoded from OTLP's ``AnyValue`` wrappers. Malformed lines are counted and
skipped, never fatal: an investigator must be able to read the rest of the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
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


def _attributes(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {item["key"]: decode_value(item.get("value", {})) for item in items or []}


def read_spans(path: str | Path) -> tuple[list[SpanView], int]:
    """All spans in an OTLP JSON lines file, and how many lines could not be read."""
    spans: list[SpanView] = []
    bad = 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                spans.extend(_spans_of(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                bad += 1
    return spans, bad


def _spans_of(request: dict[str, Any]) -> Iterator[SpanView]:
    for resource_spans in request.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            scope = scope_spans.get("scope", {}).get("name", "")
            for span in scope_spans.get("spans", []):
                status = span.get("status", {})
                yield SpanView(
                    trace_id=span["traceId"],
                    span_id=span["spanId"],
                    parent_span_id=span.get("parentSpanId") or None,
                    name=span.get("name", ""),
                    kind=int(span.get("kind", 0)),
                    start_ns=int(span.get("startTimeUnixNano", 0)),
                    end_ns=int(span.get("endTimeUnixNano", 0)),
                    scope=scope,
                    attributes=_attributes(span.get("attributes")),
                    events=[
                        {
                            "name": e.get("name", ""),
                            "time_ns": int(e.get("timeUnixNano", 0)),
                            "attributes": _attributes(e.get("attributes")),
                        }
                        for e in span.get("events", [])
                    ],
                    links=[
                        {
                            "trace_id": link.get("traceId", ""),
                            "span_id": link.get("spanId", ""),
                            "attributes": _attributes(link.get("attributes")),
                        }
                        for link in span.get("links", [])
                    ],
                    status_code=int(status.get("code", 0)),
                    status_message=status.get("message", ""),
                )
