"""Reading an exported span tree back (imported as ``agent_spans``: the test directory is on the path)."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from otel_llm_audit import semconv


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = by_name(spans, name)
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    for candidate in spans:
        if candidate.context.span_id == span.parent.span_id:
            return candidate
    raise AssertionError(f"{span.name}: parent {span.parent.span_id:x} was not exported")


def children(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    """Names of the direct children of ``span``, in start order."""
    kids = [s for s in spans if s.parent is not None and s.parent.span_id == span.context.span_id]
    return [s.name for s in sorted(kids, key=lambda s: s.start_time or 0)]


def events(span: ReadableSpan, name: str) -> list[dict[str, Any]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == name]


def policy(span: ReadableSpan) -> list[dict[str, Any]]:
    out = events(span, semconv.EVENT_LLM_AUDIT_POLICY)
    for attrs in out:
        attrs[semconv.LLM_AUDIT_POLICY_DETAILS] = json.loads(attrs[semconv.LLM_AUDIT_POLICY_DETAILS])
    return out


def links(span: ReadableSpan) -> list[tuple[int, int, str]]:
    """``(trace id, span id, llm_audit.link.type)`` of each link."""
    return [
        (link.context.trace_id, link.context.span_id, str((link.attributes or {}).get(semconv.LLM_AUDIT_LINK_TYPE)))
        for link in span.links
    ]
