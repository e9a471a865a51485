"""Assertion helpers of the LangGraph internals tests (imported as ``lg_internals_spans``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from otel_llm_audit import semconv
from otel_llm_audit.emitter.spans import Emitter

SCOPE = "otel_llm_audit.instrumentation.langchain"


@dataclass
class Process:
    """One simulated process: a tracer provider, its exporter, and the emitter we installed."""

    provider: TracerProvider
    exporter: InMemorySpanExporter
    emitter: Emitter

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def tracer(self) -> Tracer:
        return self.provider.get_tracer("the-application")

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name == name]

    def only(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, [s.name for s in self.spans()]
        return found[0]


MEMORY_OPERATIONS = ("search_memory", "create_memory", "update_memory")


class GraphRunIds(BaseCallbackHandler):  # type: ignore[misc]
    """Collects the LangChain run id of each top-level graph run (what ``llm_audit.run.id`` names)."""

    def __init__(self) -> None:
        self.run_ids: list[str] = []

    def on_chain_start(
        self, serialized: Any, inputs: Any, *, run_id: Any, parent_run_id: Any = None, **kw: Any
    ) -> None:
        if parent_run_id is None:
            self.run_ids.append(str(run_id))


def memory_spans(spans: Iterable[ReadableSpan], operation: str | None = None) -> list[ReadableSpan]:
    """Our checkpoint spans, in the order they started."""
    found = [s for s in spans if s.name in MEMORY_OPERATIONS and (operation is None or s.name == operation)]
    return sorted(found, key=lambda s: s.start_time or 0)


def records(span: ReadableSpan) -> Any:
    """The span's ``gen_ai.memory.records``, parsed."""
    return json.loads(str((span.attributes or {})[semconv.GEN_AI_MEMORY_RECORDS]))


def attr(span: ReadableSpan, key: str) -> Any:
    return (span.attributes or {}).get(key)


def events(span: ReadableSpan, name: str) -> list[dict[str, Any]]:
    """The span's events called ``name``, as plain dicts (tuples as lists)."""
    out = []
    for event in span.events:
        if event.name == name:
            out.append({k: list(v) if isinstance(v, tuple) else v for k, v in (event.attributes or {}).items()})
    return out


def all_events(spans: Iterable[ReadableSpan], name: str) -> list[tuple[ReadableSpan, dict[str, Any]]]:
    return [(s, e) for s in spans for e in events(s, name)]
