"""Questions to the local audit store, answered with SQL over its index columns.

Every query names an indexed column first (``trace_id``; ``user_id``, ``session_id``,
``tenant_id``, ``team``, ``model`` each with ``start_ns``; ``start_ns``; the policy and error
flags), so ``find`` for one user over a day reads that user's rows of that day, not the store.
The conditions on partial indexes (``user_id IS NOT NULL``, ``policy = 1``) are spelled out
literally so that SQLite's planner can prove they apply. Spans come back through the same
decoding as a file's (:func:`~otel_llm_audit.cli.otlp_reader.span_view` over
:func:`~otel_llm_audit.delivery.stored_spans.otlp_span_of`), seal attributes included.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from otel_llm_audit.cli.otlp_reader import SpanView, decode_attributes, span_view
from otel_llm_audit.cli.sources import (
    CHECKPOINT_SPAN_NAME,
    COST_DIGITS,
    CostRow,
    Filters,
    FindResult,
    Source,
    SourceError,
    SpanFacts,
    TraceSummary,
    glob_pattern,
)
from otel_llm_audit.delivery.store import AuditStore, StoredRecord, StoreError
from otel_llm_audit.delivery.stored_spans import ResourceCache, document_of, otlp_span_of

#: The columns of ``records`` that make a :class:`SpanFacts`: its fields are named after them.
_FACT_FIELDS = tuple(field.name for field in dataclasses.fields(SpanFacts))
_FACT_COLUMNS = ", ".join(_FACT_FIELDS)
_CALL = "(cost_usd IS NOT NULL OR input_tokens IS NOT NULL OR output_tokens IS NOT NULL)"

#: The traces whose id lies in ``[prefix, prefix + "g")``: exactly the ids that start with the
#: (lowercase hex) prefix, since "g" sorts after every hex digit; one range scan of the trace id
#: index. (``LIKE 'prefix%'`` would scan the whole index: SQLite narrows LIKE to a range only for
#: a case-insensitive column or with case_sensitive_like.) Each trace's root: its earliest span
#: without a parent, else its earliest span, found through the same index.
TRACES_WITH_PREFIX = """
SELECT trace_id, MIN(start_ns), (
    SELECT root.name FROM records AS root WHERE root.trace_id = records.trace_id
    ORDER BY COALESCE(root.parent_span_id, '') != '', root.start_ns, root.id LIMIT 1
)
FROM records WHERE trace_id >= ? AND trace_id < ?
GROUP BY trace_id ORDER BY trace_id LIMIT ?
"""


class StoreSource(Source):
    """An audit store, opened read-only (a responder's query never writes to the evidence)."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.store = AuditStore(path, readonly=True)
        except StoreError as err:
            raise SourceError(str(err)) from None
        except sqlite3.Error as err:
            raise SourceError(f"cannot read the audit store {path}: {err}") from None
        self._resources = ResourceCache(self.store)
        self._decoded: dict[int, dict[str, Any]] = {}

    def close(self) -> None:
        self.store.close()

    # Spans ------------------------------------------------------------------------------

    def view_of(self, record: StoredRecord) -> SpanView:
        """A stored record as the CLI's span view (seal attributes and resource included)."""
        document = document_of(record)
        resource = self._decoded.get(record.resource_id)
        if resource is None:
            resource = self._decoded[record.resource_id] = decode_attributes(self._resources.otlp(record.resource_id))
        return span_view(otlp_span_of(record, document), document["scope"][0], resource)

    def views(self, records: Iterable[StoredRecord]) -> list[SpanView]:
        return [self.view_of(record) for record in records]

    def trace(self, trace_id: str) -> list[SpanView]:
        return self.views(self.store.iter_records(where="trace_id = ?", params=(trace_id,)))

    def traces_with_prefix(self, prefix: str, limit: int) -> list[TraceSummary]:
        rows = self.store.connection().execute(TRACES_WITH_PREFIX, (prefix, prefix + "g", limit)).fetchall()
        return [TraceSummary(trace_id, int(start_ns), root_name) for trace_id, start_ns, root_name in rows]

    def with_resumed(self, trace_id: str) -> list[SpanView]:
        """The trace and the runs that resumed it: a resume links back, so its body names the paused trace.

        Only records that started after the paused trace began can resume it; among those, the
        ones whose body holds the trace id are decoded and their links checked.
        """
        spans = self.trace(trace_id)
        found = {trace_id}
        frontier = [trace_id] if spans else []
        while frontier:
            current = frontier.pop()
            members = [span for span in spans if span.trace_id == current]
            start = min((span.start_ns for span in members), default=0)
            candidates = self.store.iter_records(
                where="start_ns >= ? AND trace_id != ? AND instr(body, ?) > 0",
                params=(start, current, current.encode("ascii")),
            )
            for record in candidates:
                view = self.view_of(record)
                if view.trace_id not in found and any(link["trace_id"] == current for link in view.links):
                    found.add(view.trace_id)
                    frontier.append(view.trace_id)
                    spans.extend(self.trace(view.trace_id))
        return spans

    def all_spans(self) -> Iterator[SpanView]:
        for record in self.store.iter_records():
            yield self.view_of(record)

    def records(self, since_ns: int | None = None, until_ns: int | None = None) -> Iterator[StoredRecord]:
        """Stored records (checkpoints included) that started in ``[since, until)``, in stored order."""
        conditions, params = _time_conditions(since_ns, until_ns)
        return self.store.iter_records(where=" AND ".join(conditions), params=params)

    def count(self, since_ns: int | None = None, until_ns: int | None = None) -> int:
        conditions, params = _time_conditions(since_ns, until_ns)
        return self.store.count(" AND ".join(conditions), params)

    # Queries ----------------------------------------------------------------------------

    def find(self, filters: Filters, limit: int) -> FindResult:
        where, params = _where(filters)
        connection = self.store.connection()
        rows = connection.execute(
            f"SELECT {_FACT_COLUMNS} FROM records WHERE {where} ORDER BY start_ns DESC, id DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        total = connection.execute(f"SELECT COUNT(*) FROM records WHERE {where}", params).fetchone()[0]
        spans = [_facts(row) for row in rows]
        return FindResult(spans, int(total))

    def cost(self, groups: Sequence[str], filters: Filters) -> list[CostRow]:
        where, params = _where(filters, calls_only=True)
        columns = ", ".join(groups)
        select = f"{columns}, " if groups else ""
        group_by = f" GROUP BY {columns}" if groups else ""
        rows = (
            self.store.connection()
            .execute(
                f"SELECT {select}COUNT(*), TOTAL(input_tokens), TOTAL(output_tokens), TOTAL(cost_usd), "
                f"SUM(cost_usd IS NULL) FROM records WHERE {where}{group_by}",
                params,
            )
            .fetchall()
        )
        width = len(groups)
        return [
            CostRow(
                group=tuple(row[:width]),
                calls=int(row[width]),
                input_tokens=int(row[width + 1]),
                output_tokens=int(row[width + 2]),
                cost_usd=round(float(row[width + 3]), COST_DIGITS),
                unpriced=int(row[width + 4] or 0),
            )
            for row in rows
            if row[width]
        ]


def _facts(row: Sequence[Any]) -> SpanFacts:
    values = dict(zip(_FACT_FIELDS, row, strict=True))
    values["policy"] = bool(values["policy"])
    values["error"] = bool(values["error"])
    return SpanFacts(**values)


def _time_conditions(since_ns: int | None, until_ns: int | None) -> tuple[list[str], list[Any]]:
    conditions: list[str] = []
    params: list[Any] = []
    if since_ns is not None:
        conditions.append("start_ns >= ?")
        params.append(since_ns)
    if until_ns is not None:
        conditions.append("start_ns < ?")
        params.append(until_ns)
    return conditions, params


def _where(filters: Filters, *, calls_only: bool = False) -> tuple[str, tuple[Any, ...]]:
    """``filters`` as an SQL condition on ``records`` (the SQL twin of :meth:`Filters.matches`).

    Checkpoint records carry no identity, model, usage, policy event or error, so any of those
    conditions (or ``calls_only``) already leaves them out; only then is the ``name`` test
    dropped, because ``name`` is not indexed and testing it reads every row in the time range.
    """
    conditions: list[str] = []
    params: list[Any] = []
    if not (filters.text or filters.policy or filters.errors or calls_only):
        conditions.append("name != ?")
        params.append(CHECKPOINT_SPAN_NAME)
    if calls_only:
        conditions.append(_CALL)
    for column, wanted in filters.text:
        # The column names come from sources.TEXT_FILTERS, never from the command line.
        if "*" in wanted:
            conditions.append(f"{column} IS NOT NULL AND {column} GLOB ?")
            params.append(glob_pattern(wanted))
        else:
            conditions.append(f"{column} = ?")
            params.append(wanted)
    if filters.policy:
        conditions.append("policy = 1")
    if filters.errors:
        conditions.append("error = 1")
    times, time_params = _time_conditions(filters.since_ns, filters.until_ns)
    return " AND ".join(conditions + times) or "1", tuple(params + time_params)
