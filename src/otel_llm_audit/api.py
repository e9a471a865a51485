"""Audit records an application writes itself: policy decisions, human reviews, decisions,
delegations, pauses, and memory operations on stores no instrumentor covers.

For review flows, guardrails and overrides that no instrumentor can see. Each ``record_*``
call adds a named event to the current span (marking it ``llm_audit.audit.record`` so a
collector routes it to the SIEM); with no recording span current, it starts a short span of
its own to carry the event, so a record is never dropped for want of a span. The acting
identity comes from the ``audit_context`` in force. Content (reasons, inputs, what was put to
a reviewer) follows the ``content`` setting like prompts do, and is masked the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanContext

from otel_llm_audit import _guard, semconv
from otel_llm_audit._version import __version__
from otel_llm_audit.context import current_identity
from otel_llm_audit.emitter import links, parents
from otel_llm_audit.emitter.operations import (
    decision_attributes,
    delegation_attributes,
    emit_audit_event,
    human_review_attributes,
    interrupt_attributes,
    policy_event_attributes,
    start_step,
)
from otel_llm_audit.records import Decision, Delegation, HumanReview, Interrupt, MemoryOperation, PolicyEvent

_SCOPE = "otel_llm_audit.api"


def record_policy_event(
    category: str,
    action: str,
    *,
    source: str,
    name: str | None = None,
    details: Mapping[str, Any] | None = None,
    actor: str | None = None,
) -> None:
    """Record that a policy, guardrail or filter fired, or that a human overrode or escalated.

    ``category``: ``pii``, ``content_filter``, ``guardrail``, ``refusal``, ``budget``, ``anomaly``,
    ``override``, ``escalation`` (or your own); ``action``: ``blocked``, ``flagged``, ``redacted``,
    ``refused``, ``masked``, ``allowed``, ``overridden``, ``escalated``. ``details`` must not hold
    the content that triggered the decision. By convention an override's details say what was
    overridden and why (``{"overridden": ..., "replaced_by": ..., "reason": ...}``), an
    escalation's to whom and why (``{"to": ..., "reason": ...}``). ``actor`` (who decided) defaults
    to the user of the audit context.
    """
    try:
        if actor is None:
            identity = current_identity()
            actor = identity.user_id if identity is not None else None
        extra = {semconv.LLM_AUDIT_POLICY_ACTOR: actor} if actor else None
        event = PolicyEvent(
            category=category, action=action, source=source, name=name, details=details, attributes=extra
        )
        _emit(semconv.EVENT_LLM_AUDIT_POLICY, lambda _span: policy_event_attributes(event))
    except Exception as err:
        _guard.report_internal_error("api.record_policy_event", err)


def record_human_review(
    subject: str,
    action: str,
    *,
    reviewer: str | None = None,
    reason: str | None = None,
    interrupt_id: str | None = None,
    response: Any = None,
    resumes: str | SpanContext | None = None,
) -> None:
    """Record a human-in-the-loop decision: what was put to the reviewer and what they did.

    ``action``: ``approved``, ``rejected``, ``edited`` or ``escalated``. ``reviewer`` defaults to
    the ``user_id`` of the audit context in force (the person whose request resumed the flow).
    ``interrupt_id`` and ``resumes`` tie the review to the pause it answers: pass the id and the
    traceparent that :func:`record_interrupt` returned when the flow paused (it may have been
    in another process, hours earlier); the span carrying the review then links to the paused
    span with ``llm_audit.link.type = resumes``. ``response`` is what the reviewer answered.
    """
    try:
        review = HumanReview(
            subject=subject,
            action=action,
            reviewer=reviewer,
            reason=reason,
            interrupt_id=interrupt_id,
            response=response,
        )
        _emit(
            semconv.EVENT_LLM_AUDIT_HUMAN_REVIEW,
            lambda span: human_review_attributes(review, span),
            link_to=_span_context(resumes),
        )
    except Exception as err:
        _guard.report_internal_error("api.record_human_review", err)


def record_interrupt(interrupt_id: str, value: Any = None) -> str | None:
    """Record that the flow paused to put ``value`` to a human; returns the paused span's traceparent.

    Keep the returned string with the paused item and hand it to :func:`record_human_review`
    (``resumes=``) when the answer comes, so the review links back to this pause even from
    another process. ``None`` when nothing is recording.
    """
    try:
        span = _emit(
            semconv.EVENT_LLM_AUDIT_INTERRUPT, lambda span: interrupt_attributes(Interrupt(interrupt_id, value), span)
        )
        return links.traceparent(span.get_span_context()) if span is not None else None
    except Exception as err:
        _guard.report_internal_error("api.record_interrupt", err)
        return None


def record_decision(
    point: str,
    chosen: str | Sequence[str],
    *,
    options: Sequence[str] | None = None,
    reasoning: str | None = None,
    agent_name: str | None = None,
) -> None:
    """Record which option a workflow or agent took at a decision point, among which options, and why."""
    try:
        picked = [chosen] if isinstance(chosen, str) else list(chosen)
        decision = Decision(point=point, chosen=picked, options=options, reasoning=reasoning, agent_name=agent_name)
        _emit(semconv.EVENT_LLM_AUDIT_DECISION, lambda span: decision_attributes(decision, span))
    except Exception as err:
        _guard.report_internal_error("api.record_decision", err)


def record_delegation(
    source: str, target: str, *, kind: str | None = None, input: Any = None, output: Any = None
) -> None:
    """Record that agent ``source`` handed work to agent ``target`` (``kind``: ``handoff``, ``agent_as_tool``, ...)."""
    try:
        delegation = Delegation(source=source, target=target, kind=kind, input=input, output=output)
        _emit(semconv.EVENT_LLM_AUDIT_DELEGATION, lambda span: delegation_attributes(delegation, span))
    except Exception as err:
        _guard.report_internal_error("api.record_delegation", err)


@contextmanager
def memory_operation(
    operation: str,
    *,
    store_id: str | None = None,
    record_id: str | None = None,
    query: str | None = None,
    provider: str | None = None,
) -> Iterator[MemoryOperation]:
    """A span around a read or write of a memory store no instrumentor covers.

    ``operation`` is one of the conventions' memory operations (``search_memory``,
    ``create_memory``, ``update_memory``, ``upsert_memory``, ``delete_memory``). Set
    ``records`` on the yielded record to what was read or written; the span carries them as
    content (masked), with their count, and its start and end times say when the state changed::

        with otel_llm_audit.memory_operation("search_memory", store_id="notes", query=q) as op:
            op.records = [{"id": n.id, "content": n.text} for n in store.search(q)]
    """
    record = MemoryOperation(operation, store_id=store_id, record_id=record_id, query=query, provider=provider)
    step = None
    try:
        step = start_step(_tracer(), record)
        step.__enter__()
    except Exception as err:
        _guard.report_internal_error("api.memory_operation", err)
        step = None
    if step is None:
        yield record
        return
    try:
        yield record
    except BaseException as exc:
        step.__exit__(type(exc), exc, exc.__traceback__)
        raise
    step.__exit__(None, None, None)


def _tracer() -> trace.Tracer:
    return trace.get_tracer(_SCOPE, __version__, schema_url=semconv.SCHEMA_URL)


def _span_context(value: str | SpanContext | None) -> SpanContext | None:
    """A span context from a W3C traceparent string (or a span context); an unusable one costs the link only."""
    if value is None or isinstance(value, SpanContext):
        return value
    ctx = links.span_context_of(value)
    if ctx is None:
        _guard.report_internal_error("api.traceparent", ValueError(f"not a traceparent: {str(value)[:64]!r}"))
    return ctx


def _emit(
    name: str,
    build: Callable[[Span], dict[str, Any]],
    link_to: SpanContext | None = None,
) -> Span | None:
    """Add event ``name`` to the current span, or to a short span of its own; returns the carrier.

    Inside an agent framework's step (a LangGraph node, an Agents SDK tool) the step's span is
    the current one for this purpose, though the framework never made it current: the parent
    resolvers name it (see :mod:`otel_llm_audit.emitter.parents`).
    """
    link = links.resumes_link(link_to) if link_to is not None else None
    return emit_audit_event(_tracer(), name, build, parents.parent_context(), [link] if link is not None else [])
