"""A workflow told as numbered steps, from its exported spans alone.

An investigator asking "what happened at step 17?" wants a list, not a tree: which agent or
graph node acted, what it did (a model call, a tool with its arguments, a retrieval, a read or
write of saved state), and the audit events in between (decisions, delegations, pauses, reviews,
policy decisions). A paused workflow resumes in another trace, possibly hours later in another
process; the resumed trace links back to the pause (``llm_audit.link.type = resumes``), so the
account follows those links and tells both parts as one story.

Only OTLP JSON is needed (the file our exporter or the collector's file exporter writes), so the
account can be rebuilt long after the process that produced it is gone.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from otel_llm_audit import semconv
from otel_llm_audit.cli.otlp_reader import SpanView

_LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
_MEMORY_OPERATIONS = frozenset({"search_memory", "create_memory", "update_memory", "upsert_memory", "delete_memory"})


@dataclass(frozen=True, slots=True)
class AuditStep:
    """One thing that happened: a span (``kind`` is its operation) or an audit event on it."""

    number: int
    time_ns: int
    trace_id: str
    span_id: str
    kind: str
    actor: str
    text: str

    def line(self) -> str:
        """``17. [pharmacist] tool check_interactions({"drug":"warfarin"}) -> ...``."""
        actor = f"[{self.actor}] " if self.actor else ""
        return f"{self.number}. {actor}{self.text}"


def workflow_steps(spans: Iterable[SpanView], trace_id: str) -> list[AuditStep]:
    """The steps of trace ``trace_id`` and of every trace that resumes it, in time order."""
    all_spans = list(spans)
    traces = linked_traces(all_spans, trace_id)
    members = [s for s in all_spans if s.trace_id in traces]
    by_id = {s.span_id: s for s in members}
    raw: list[tuple[int, int, str, str, str, str, str]] = []
    for order, span in enumerate(sorted(members, key=lambda s: (s.start_ns, s.end_ns))):
        actor = _actor(span, by_id)
        described = _describe(span)
        if described is not None:
            raw.append((span.start_ns, order * 1000, span.trace_id, span.span_id, *described, actor))
        for index, event in enumerate(span.events):
            text = event_text(event["name"], event["attributes"])
            when = int(event.get("time_ns") or span.end_ns)
            raw.append((when, order * 1000 + index + 1, span.trace_id, span.span_id, event["name"], text, actor))
    raw.sort(key=lambda item: (item[0], item[1]))
    return [
        AuditStep(number, when, tid, sid, kind, actor, text)
        for number, (when, _, tid, sid, kind, text, actor) in enumerate(raw, start=1)
    ]


def render_steps(spans: Iterable[SpanView], console: Console, *, trace_id: str | None = None) -> int:
    """Print the steps of one trace, or of every trace that does not resume another; returns the count."""
    all_spans = list(spans)
    starts = workflow_starts(all_spans, trace_id)
    for start in starts:
        table = Table(title=f"trace {start}", show_lines=False)
        table.add_column("#", justify="right")
        table.add_column("who")
        table.add_column("what")
        for step in workflow_steps(all_spans, start):
            table.add_row(str(step.number), escape(step.actor), escape(step.text))
        console.print(table)
    return len(starts)


def workflow_starts(spans: list[SpanView], trace_id: str | None = None) -> list[str]:
    """The traces to tell: ``trace_id`` if present, else every trace that does not resume another."""
    if trace_id is not None:
        return [trace_id] if any(s.trace_id == trace_id for s in spans) else []
    resuming = {s.trace_id for s in spans if s.links}
    starts = list(dict.fromkeys(s.trace_id for s in sorted(spans, key=lambda s: s.start_ns)))
    return [t for t in starts if t not in resuming]


def linked_traces(spans: list[SpanView], trace_id: str) -> set[str]:
    """``trace_id`` plus the traces whose spans link to it (transitively): resumed runs."""
    links_to: dict[str, set[str]] = defaultdict(set)
    for span in spans:
        for link in span.links:
            links_to[link["trace_id"]].add(span.trace_id)
    found = {trace_id}
    frontier = [trace_id]
    while frontier:
        for other in links_to.get(frontier.pop(), ()):
            if other not in found:
                found.add(other)
                frontier.append(other)
    return found


def _actor(span: SpanView, by_id: dict[str, SpanView]) -> str:
    """The nearest agent or graph node at or above ``span``."""
    current: SpanView | None = span
    while current is not None:
        attrs = current.attributes
        for key in (semconv.GEN_AI_AGENT_NAME, semconv.LLM_AUDIT_GRAPH_NODE):
            if attrs.get(key):
                return str(attrs[key])
        current = by_id.get(current.parent_span_id or "")
    return ""


def _describe(span: SpanView) -> tuple[str, str] | None:
    """(kind, text) for a span worth a step of its own; ``None`` for plumbing (HTTP, app spans)."""
    attrs = span.attributes
    op = attrs.get(semconv.GEN_AI_OPERATION_NAME)
    error = f" FAILED ({attrs[semconv.ERROR_TYPE]})" if semconv.ERROR_TYPE in attrs else ""
    if op == "invoke_workflow":
        who = attrs.get(semconv.USER_ID)
        by = f" for {who}" if who else ""
        return op, f"workflow {attrs.get(semconv.GEN_AI_WORKFLOW_NAME, span.name)} started{by}{error}"
    if op == "invoke_agent":
        return op, f"agent {attrs.get(semconv.GEN_AI_AGENT_NAME, '?')} invoked{error}"
    if op == "execute_tool":
        args = _compact(attrs.get(semconv.GEN_AI_TOOL_CALL_ARGUMENTS))
        result = attrs.get(semconv.GEN_AI_TOOL_CALL_RESULT)
        returned = f" -> {_compact(result)}" if result is not None else ""
        return op, f"tool {attrs.get(semconv.GEN_AI_TOOL_NAME)}({args}){returned}{error}"
    if op in _LLM_OPERATIONS:
        model = attrs.get(semconv.GEN_AI_RESPONSE_MODEL) or attrs.get(semconv.GEN_AI_REQUEST_MODEL)
        tokens = (attrs.get(semconv.GEN_AI_USAGE_INPUT_TOKENS), attrs.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS))
        usage = f" {tokens[0]}->{tokens[1]} tokens" if tokens[0] is not None else ""
        return "llm", f"{op} {attrs.get(semconv.GEN_AI_PROVIDER_NAME)}/{model}{usage}{error}"
    if op == "retrieval":
        documents = attrs.get(semconv.GEN_AI_RETRIEVAL_DOCUMENTS)
        count = len(json.loads(documents)) if isinstance(documents, str) and documents.startswith("[") else "?"
        query = attrs.get(semconv.GEN_AI_RETRIEVAL_QUERY_TEXT)
        asked = f" for {query!r}" if query else ""
        return op, f"retrieval from {attrs.get(semconv.GEN_AI_DATA_SOURCE_ID, '?')}{asked}: {count} documents{error}"
    if op in _MEMORY_OPERATIONS:
        where = [
            f"{label}={attrs[key]}"
            for key, label in (
                (semconv.GEN_AI_MEMORY_STORE_ID, "store"),
                (semconv.LLM_AUDIT_CHECKPOINT_THREAD_ID, "thread"),
                (semconv.LLM_AUDIT_CHECKPOINT_ID, "checkpoint"),
                (semconv.GEN_AI_MEMORY_RECORD_COUNT, "records"),
            )
            if key in attrs
        ]
        return op, f"{op} {' '.join(where)}{error}"
    if semconv.MCP_METHOD_NAME in attrs:
        return "mcp", f"mcp {span.name}{error}"
    return None


def event_text(name: str, attrs: dict[str, Any]) -> str:
    """An audit event in the words an investigator uses (plain text)."""
    if name == semconv.EVENT_LLM_AUDIT_DECISION:
        options = attrs.get(semconv.LLM_AUDIT_DECISION_OPTIONS)
        among = f" of {', '.join(options)}" if options else ""
        why = attrs.get(semconv.LLM_AUDIT_DECISION_REASONING)
        because = f" because {short(why, 80)}" if why else ""
        chosen = ", ".join(attrs.get(semconv.LLM_AUDIT_DECISION_CHOSEN, []))
        return f"decision {attrs.get(semconv.LLM_AUDIT_DECISION_POINT)}: chose {chosen}{among}{because}"
    if name == semconv.EVENT_LLM_AUDIT_DELEGATION:
        kind = attrs.get(semconv.LLM_AUDIT_DELEGATION_KIND, "delegation")
        given = attrs.get(semconv.LLM_AUDIT_DELEGATION_INPUT)
        with_input = f" with {short(given, 80)}" if given else ""
        source, target = attrs.get(semconv.LLM_AUDIT_DELEGATION_SOURCE), attrs.get(semconv.LLM_AUDIT_DELEGATION_TARGET)
        return f"delegation {source} -> {target} ({kind}){with_input}"
    if name == semconv.EVENT_LLM_AUDIT_INTERRUPT:
        asked = attrs.get(semconv.LLM_AUDIT_INTERRUPT_VALUE)
        return f"paused for a human id={attrs.get(semconv.LLM_AUDIT_INTERRUPT_ID)} {short(asked or '', 90)}".rstrip()
    if name == semconv.EVENT_LLM_AUDIT_HUMAN_REVIEW:
        who = attrs.get(semconv.LLM_AUDIT_REVIEW_REVIEWER, "?")
        answer = attrs.get(semconv.LLM_AUDIT_REVIEW_RESPONSE)
        said = f" answer {short(answer, 60)}" if answer else ""
        action = attrs.get(semconv.LLM_AUDIT_REVIEW_ACTION)
        return f"human review {action} by {who}: {attrs.get(semconv.LLM_AUDIT_REVIEW_SUBJECT)}{said}"
    if name == semconv.EVENT_LLM_AUDIT_POLICY:
        rule = attrs.get(semconv.LLM_AUDIT_POLICY_NAME)
        return (
            f"policy {attrs.get(semconv.LLM_AUDIT_POLICY_CATEGORY)} "
            f"{attrs.get(semconv.LLM_AUDIT_POLICY_ACTION)} by {attrs.get(semconv.LLM_AUDIT_POLICY_SOURCE)}"
            + (f" ({rule})" if rule else "")
        )
    return f"event {name} {short(json.dumps(attrs), 100)}"


def _compact(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            return json.dumps(json.loads(value), separators=(",", ":"))
        except ValueError:
            return short(value, 100)
    return json.dumps(value, separators=(",", ":"))


def short(value: Any, limit: int = 60) -> str:
    """``value`` as text of at most ``limit`` characters (an ellipsis marks the cut)."""
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
