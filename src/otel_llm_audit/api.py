"""Audit records an application writes itself: policy decisions and human reviews.

For review flows, guardrails and overrides that no instrumentor can see. Each call adds a
named event to the current span (marking it ``llm_audit.audit.record`` so a collector routes
it to the SIEM); with no recording span current, it starts a short span of its own to carry
the event, so a record is never dropped for want of a span. The acting identity comes from
the ``audit_context`` in force.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from otel_llm_audit import _guard, semconv
from otel_llm_audit._version import __version__
from otel_llm_audit.context import current_identity
from otel_llm_audit.emitter.operations import add_audit_event, human_review_attributes, policy_event_attributes
from otel_llm_audit.records import HumanReview, PolicyEvent

_SCOPE = "otel_llm_audit.api"


def record_policy_event(
    category: str,
    action: str,
    *,
    source: str,
    name: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Record that a policy, guardrail or filter fired, or that a human overrode or escalated.

    ``category``: ``pii``, ``content_filter``, ``guardrail``, ``refusal``, ``budget``, ``anomaly``,
    ``override``, ``escalation`` (or your own); ``action``: ``blocked``, ``flagged``, ``redacted``,
    ``refused``, ``masked``, ``allowed``, ``overridden``, ``escalated``. ``details`` must not hold
    the content that triggered the decision.
    """
    try:
        event = PolicyEvent(category=category, action=action, source=source, name=name, details=details)
        _emit(semconv.EVENT_LLM_AUDIT_POLICY, policy_event_attributes(event))
    except Exception as err:
        _guard.report_internal_error("api.record_policy_event", err)


def record_human_review(
    subject: str,
    action: str,
    *,
    reviewer: str | None = None,
    reason: str | None = None,
) -> None:
    """Record a human-in-the-loop decision: what was put to the reviewer and what they did.

    ``action``: ``approved``, ``rejected``, ``edited`` or ``escalated``. ``reviewer`` defaults to
    the ``user_id`` of the audit context in force (the person whose request resumed the flow).
    """
    try:
        review = HumanReview(subject=subject, action=action, reviewer=reviewer, reason=reason)
        _emit(semconv.EVENT_LLM_AUDIT_HUMAN_REVIEW, human_review_attributes(review))
    except Exception as err:
        _guard.report_internal_error("api.record_human_review", err)


def _emit(name: str, attrs: dict[str, Any]) -> None:
    if add_audit_event(name, attrs):
        return
    tracer = trace.get_tracer(_SCOPE, __version__, schema_url=semconv.SCHEMA_URL)
    span_attrs: dict[str, Any] = {semconv.LLM_AUDIT_AUDIT_RECORD: True}
    identity = current_identity()  # our own spans carry the identity themselves
    if identity is not None:
        span_attrs.update(identity.attributes)
    with tracer.start_as_current_span(name, attributes=span_attrs) as span:
        span.add_event(name, attrs)
