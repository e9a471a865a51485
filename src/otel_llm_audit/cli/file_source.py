"""Questions to an OTLP JSON lines file (a collector's copy, or an export), answered by one streaming scan.

A file has no index, so every question reads it once, front to back, keeping only what the
answer needs (the newest ``limit`` matches, the running totals per group): memory stays flat
however long the file. Long files show a progress bar on standard error.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator, Sequence

from otel_llm_audit.cli.otlp_reader import SpanFile, SpanView
from otel_llm_audit.cli.progress import progress_bar
from otel_llm_audit.cli.sources import (
    COST_DIGITS,
    CostRow,
    Filters,
    FindResult,
    Source,
    SourceError,
    SpanFacts,
    TraceSummary,
    facts_of,
    is_call,
)
from otel_llm_audit.cli.steps import linked_traces


class FileSource(Source):
    """An OTLP JSON lines file."""

    def __init__(self, path: str, *, progress: bool = True) -> None:
        self.path = path
        self._progress = progress
        self._bad_lines = 0
        #: The spans of the one trace the last ``traces_with_prefix`` matched, for the ``trace`` call that follows.
        self._matched: dict[str, list[SpanView]] = {}

    def warnings(self) -> list[str]:
        if self._bad_lines:
            return [f"{self._bad_lines} unreadable lines skipped in {self.path}"]
        return []

    def all_spans(self) -> Iterator[SpanView]:
        try:
            size = os.path.getsize(self.path)
            with progress_bar(size, f"reading {os.path.basename(self.path)}", enabled=self._progress) as advance:
                reader = SpanFile(self.path, on_bytes=advance)
                try:
                    yield from reader
                finally:
                    self._bad_lines = reader.bad_lines
        except OSError as err:
            raise SourceError(f"cannot read {self.path}: {err.strerror or err}") from None

    def trace(self, trace_id: str) -> list[SpanView]:
        matched = self._matched.pop(trace_id, None)
        if matched is not None:
            return matched
        return [span for span in self.all_spans() if span.trace_id == trace_id]

    def traces_with_prefix(self, prefix: str, limit: int) -> list[TraceSummary]:
        """One scan; while a single trace matches, its spans are kept, so ``show`` fetches it without a second."""
        starts: dict[str, int] = {}
        roots: dict[str, tuple[bool, int, int, str]] = {}  # (has a parent, start, position, name): the least
        matched: dict[str, list[SpanView]] = {}
        for position, span in enumerate(self.all_spans()):
            if not span.trace_id.lower().startswith(prefix):
                continue
            trace_id = span.trace_id
            starts[trace_id] = min(starts.get(trace_id, span.start_ns), span.start_ns)
            candidate = (span.parent_span_id is not None, span.start_ns, position, span.name)
            roots[trace_id] = min(roots.get(trace_id, candidate), candidate)
            if len(starts) == 1:
                matched.setdefault(trace_id, []).append(span)
        self._matched = matched if len(starts) == 1 else {}
        return [
            TraceSummary(trace_id, starts[trace_id], roots[trace_id][3])
            for trace_id in sorted(starts, key=str.lower)[:limit]
        ]

    def with_resumed(self, trace_id: str) -> list[SpanView]:
        spans = list(self.all_spans())
        traces = linked_traces(spans, trace_id) if any(s.trace_id == trace_id for s in spans) else set()
        return [span for span in spans if span.trace_id in traces]

    def find(self, filters: Filters, limit: int) -> FindResult:
        # A min-heap of the newest ``limit`` matches; the position breaks ties as the store's id does.
        newest: list[tuple[int, int, SpanFacts]] = []
        total = 0
        for position, span in enumerate(self.all_spans()):
            facts = facts_of(span)
            if not filters.matches(facts):
                continue
            total += 1
            item = (facts.start_ns, position, facts)
            if len(newest) < limit:
                heapq.heappush(newest, item)
            elif limit and item[:2] > newest[0][:2]:
                heapq.heapreplace(newest, item)
        ordered = sorted(newest, key=lambda item: item[:2], reverse=True)
        return FindResult([facts for _, _, facts in ordered], total)

    def cost(self, groups: Sequence[str], filters: Filters) -> list[CostRow]:
        totals: dict[tuple[str | None, ...], list[float]] = {}
        for span in self.all_spans():
            facts = facts_of(span)
            if not is_call(facts) or not filters.matches(facts):
                continue
            group = tuple(getattr(facts, field_name) for field_name in groups)
            sums = totals.setdefault(group, [0, 0, 0, 0.0, 0])
            sums[0] += 1
            sums[1] += facts.input_tokens or 0
            sums[2] += facts.output_tokens or 0
            if facts.cost_usd is None:
                sums[4] += 1
            else:
                sums[3] += facts.cost_usd
        return [
            CostRow(group, int(s[0]), int(s[1]), int(s[2]), round(s[3], COST_DIGITS), int(s[4]))
            for group, s in totals.items()
        ]
