"""W3C traceparent strings and span links between a paused run and the run that resumes it.

A workflow that pauses for a human is resumed by another request, often hours later and in
another process. The paused span's context travels as a W3C ``traceparent`` string (saved with
a LangGraph checkpoint, in a serialized Agents SDK ``RunState``, or by the application through
:func:`otel_llm_audit.record_interrupt`), and the resumed run's span links back to it with
``llm_audit.link.type = resumes``. One place formats and parses that string for every path.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import Link, SpanContext, TraceFlags

from otel_llm_audit import semconv


def traceparent(ctx: SpanContext) -> str:
    """The W3C traceparent of ``ctx`` (version 00)."""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def span_context_of(value: Any) -> SpanContext | None:
    """The remote span context a traceparent string names; ``None`` when it names none."""
    if not isinstance(value, str):
        return None
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) < 2:
        return None
    try:
        ctx = SpanContext(
            int(parts[1], 16), int(parts[2], 16), is_remote=True, trace_flags=TraceFlags(int(parts[3][:2], 16))
        )
    except ValueError:
        return None
    return ctx if ctx.is_valid else None


def resumes_link(paused: Any) -> Link | None:
    """A ``resumes`` link to the paused span (a traceparent string or a span context), if usable."""
    ctx = paused if isinstance(paused, SpanContext) else span_context_of(paused)
    if ctx is None or not ctx.is_valid:
        return None
    return Link(ctx, {semconv.LLM_AUDIT_LINK_TYPE: semconv.LlmAuditLinkTypeValues.RESUMES})
