"""Prints a trace as a tree with the audit facts an investigator looks for first."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from otel_llm_audit import semconv
from otel_llm_audit.cli.otlp_reader import SpanView
from otel_llm_audit.cli.steps import event_text, short
from otel_llm_audit.cli.timespec import utc_text

_IDENTITY_KEYS = (
    semconv.USER_ID,
    semconv.SESSION_ID,
    semconv.LLM_AUDIT_ACTOR_TYPE,
    semconv.LLM_AUDIT_AUTH_METHOD,
    semconv.LLM_AUDIT_TENANT_ID,
    semconv.LLM_AUDIT_TEAM,
    semconv.LLM_AUDIT_APPLICATION,
)
#: (attribute, label) of what was called, how it was asked, and what it used.
_CALL_KEYS = (
    (semconv.GEN_AI_PROVIDER_NAME, "provider"),
    (semconv.GEN_AI_REQUEST_MODEL, "request.model"),
    (semconv.GEN_AI_RESPONSE_MODEL, "response.model"),
    (semconv.GEN_AI_RESPONSE_ID, "response.id"),
    (semconv.GEN_AI_RESPONSE_FINISH_REASONS, "finish_reasons"),
    (semconv.GEN_AI_CONVERSATION_ID, "conversation.id"),
    (semconv.SERVER_ADDRESS, "server"),
)
_PARAMETER_KEYS = (
    (semconv.GEN_AI_REQUEST_TEMPERATURE, "temperature"),
    (semconv.GEN_AI_REQUEST_MAX_TOKENS, "max_tokens"),
    (semconv.GEN_AI_REQUEST_TOP_P, "top_p"),
    (semconv.GEN_AI_REQUEST_TOP_K, "top_k"),
    (semconv.GEN_AI_REQUEST_SEED, "seed"),
    (semconv.GEN_AI_REQUEST_STOP_SEQUENCES, "stop_sequences"),
    (semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY, "frequency_penalty"),
    (semconv.GEN_AI_REQUEST_PRESENCE_PENALTY, "presence_penalty"),
    (semconv.GEN_AI_REQUEST_CHOICE_COUNT, "choice.count"),
    (semconv.GEN_AI_REQUEST_REASONING_LEVEL, "reasoning.level"),
    (semconv.GEN_AI_REQUEST_STREAM, "stream"),
)
_USAGE_KEYS = (
    (semconv.GEN_AI_USAGE_INPUT_TOKENS, "input_tokens"),
    (semconv.GEN_AI_USAGE_OUTPUT_TOKENS, "output_tokens"),
    (semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, "cache_read.input_tokens"),
    (semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, "cache_write.input_tokens"),
    (semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, "reasoning.output_tokens"),
    (semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, "time_to_first_chunk"),
    (semconv.LLM_AUDIT_COST_USD, "cost_usd"),
)
#: Where in a workflow a step ran, and which saved state or MCP session it touched.
_STEP_KEYS = (
    semconv.GEN_AI_AGENT_NAME,
    semconv.LLM_AUDIT_GRAPH_NODE,
    semconv.LLM_AUDIT_GRAPH_STEP,
    semconv.GEN_AI_TOOL_CALL_ID,
    semconv.GEN_AI_DATA_SOURCE_ID,
    semconv.GEN_AI_MEMORY_STORE_ID,
    semconv.GEN_AI_MEMORY_RECORD_COUNT,
    semconv.LLM_AUDIT_CHECKPOINT_THREAD_ID,
    semconv.LLM_AUDIT_CHECKPOINT_ID,
    semconv.MCP_METHOD_NAME,
    semconv.MCP_SESSION_ID,
)
_STEP_CONTENT_KEYS = (
    semconv.GEN_AI_TOOL_CALL_ARGUMENTS,
    semconv.GEN_AI_TOOL_CALL_RESULT,
    semconv.GEN_AI_RETRIEVAL_QUERY_TEXT,
    semconv.GEN_AI_RETRIEVAL_DOCUMENTS,
    semconv.GEN_AI_MEMORY_QUERY_TEXT,
    semconv.GEN_AI_MEMORY_RECORDS,
)
_CONTENT_KEYS = (
    semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
    semconv.GEN_AI_INPUT_MESSAGES,
    semconv.GEN_AI_OUTPUT_MESSAGES,
    semconv.GEN_AI_TOOL_DEFINITIONS,
)


def render_traces(spans: Iterable[SpanView], console: Console, *, trace_id: str | None = None) -> int:
    """Print every trace (or one), root first; returns how many traces were printed."""
    by_trace: dict[str, list[SpanView]] = defaultdict(list)
    for span in spans:
        if trace_id is None or span.trace_id == trace_id:
            by_trace[span.trace_id].append(span)
    for tid, members in by_trace.items():
        console.print(_trace_tree(tid, members))
    return len(by_trace)


def _trace_tree(trace_id: str, spans: list[SpanView]) -> Tree:
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[SpanView]] = defaultdict(list)
    for span in sorted(spans, key=lambda s: s.start_ns):
        parent = span.parent_span_id if span.parent_span_id in ids else None
        children[parent].append(span)
    start = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    root = Tree(
        f"[bold]trace {trace_id}[/bold] [dim]{utc_text(start)} UTC · {(end - start) / 1e6:.1f} ms · "
        f"{len(spans)} spans[/dim]"
    )

    def add(node: Tree, parent: str | None) -> None:
        for span in children.get(parent, []):
            branch = node.add(_label(span))
            for line in _details(span):
                branch.add(line)
            add(branch, span.span_id)

    add(root, None)
    return root


def _label(span: SpanView) -> str:
    status = " [red]ERROR[/red]" if span.status_code == 2 else ""
    return f"[cyan]{escape(span.name)}[/cyan] [dim]{span.duration_ms:.1f} ms · {span.scope}[/dim]{status}"


def _details(span: SpanView) -> list[str]:
    attrs = span.attributes
    lines: list[str] = []
    identity = [f"{k}={escape(str(attrs[k]))}" for k in _IDENTITY_KEYS if k in attrs]
    if identity and not span.scope.startswith("opentelemetry.instrumentation"):
        lines.append("[green]who[/green] " + "  ".join(identity))
    for title, keys in (("call", _CALL_KEYS), ("parameters", _PARAMETER_KEYS), ("usage", _USAGE_KEYS)):
        values = [f"{label}={escape(short(attrs[key]))}" for key, label in keys if key in attrs]
        if values:
            lines.append(f"[yellow]{title}[/yellow] " + "  ".join(values))
    if semconv.ERROR_TYPE in attrs or span.status_code == 2:
        failure = [f"error.type={attrs[semconv.ERROR_TYPE]}"] if semconv.ERROR_TYPE in attrs else []
        if span.status_message:
            failure.append(short(span.status_message, 120))
        lines.append("[red]error[/red] " + escape("  ".join(failure)))
    step = [f"{k.split('.', 1)[1]}={escape(short(attrs[k], 40))}" for k in _STEP_KEYS if k in attrs]
    if step:
        lines.append("[yellow]step[/yellow] " + "  ".join(step))
    for key in _CONTENT_KEYS:
        if key in attrs:
            lines.append(f"[magenta]{key}[/magenta] {escape(_preview(attrs[key]))}")
    for key in _STEP_CONTENT_KEYS:
        if key in attrs:
            lines.append(f"[magenta]{key}[/magenta] {escape(short(attrs[key], 120))}")
    if semconv.LLM_AUDIT_CONTENT_HASHES in attrs:
        lines.append(f"[magenta]content hashes[/magenta] {escape(short(attrs[semconv.LLM_AUDIT_CONTENT_HASHES], 90))}")
    if semconv.LLM_AUDIT_REDACTION_STATUS in attrs:
        redaction = [f"status={attrs[semconv.LLM_AUDIT_REDACTION_STATUS]}"]
        for key, label in (
            (semconv.LLM_AUDIT_REDACTION_FAILURE, "failure"),
            (semconv.LLM_AUDIT_REDACTION_ENTITIES, "found"),
            (semconv.LLM_AUDIT_REDACTION_POLICY_VERSION, "policy"),
        ):
            if key in attrs:
                redaction.append(f"{label}={attrs[key]}")
        lines.append("[blue]masking[/blue] " + escape("  ".join(redaction)))
    for event in span.events:
        lines.append(_event_line(event["name"], event["attributes"]))
    for link in span.links:
        kind = link["attributes"].get(semconv.LLM_AUDIT_LINK_TYPE, "linked")
        lines.append(f"[blue]{kind}[/blue] trace {link['trace_id']} span {link['span_id']}")
    if semconv.LLM_AUDIT_INTEGRITY_HASH in attrs:
        lines.append(
            f"[dim]seal stream={attrs.get(semconv.LLM_AUDIT_INTEGRITY_STREAM)}  "
            f"sequence={attrs.get(semconv.LLM_AUDIT_INTEGRITY_SEQUENCE)}  "
            f"hash={short(attrs[semconv.LLM_AUDIT_INTEGRITY_HASH], 17)}[/dim]"
        )
    return lines


def _event_line(name: str, attrs: dict[str, Any]) -> str:
    """One line per audit event, in the words an investigator uses."""
    return f"[red]{escape(event_text(name, attrs))}[/red]"


def _preview(raw: Any) -> str:
    """Message JSON -> ``role: text | role: tool_call name(args)`` on one line."""
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return short(raw)
    pieces: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict) and "parts" in item:
            for part in item["parts"]:
                pieces.append(f"{item.get('role')}: {_part_text(part)}")
        elif isinstance(item, dict) and item.get("type") == "text":
            pieces.append(str(item.get("content")))
        elif isinstance(item, dict) and "name" in item:
            pieces.append(f"tool {item['name']}")
        else:
            pieces.append(short(item, 40))
    return short(" | ".join(pieces), 160)


def _part_text(part: dict[str, Any]) -> str:
    kind = part.get("type")
    if kind in ("text", "reasoning", "refusal"):
        return str(part.get("content", ""))
    if kind == "tool_call":
        return f"tool_call {part.get('name')}({json.dumps(part.get('arguments'))})"
    if kind == "tool_call_response":
        return f"tool result {short(part.get('response'), 60)}"
    return f"<{kind}>"
