"""Policy and human-review events as OpenTelemetry log records, for SIEM paths that take logs only.

Several ways into a SIEM (the collector's ``syslog`` exporter, many Splunk and Elastic set-ups)
ingest logs, not spans. So every ``llm_audit.policy`` event (guardrails, filters, budgets, the
masking stage's own ``pii`` event, overrides, escalations) and every ``llm_audit.human_review``
event is also emitted as a log record carrying the trace and span ids of the span it sits on.

The records are made here, downstream of the masking stage, from the span as it is exported:
they carry exactly the masked content the span carries, never more, and they exist exactly when
the span does. The logger provider is ours alone and never set globally: a global one would
also receive other instrumentations' log events, which have not been through masking.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.util.types import AttributeValue

from otel_llm_audit import _guard, semconv
from otel_llm_audit.context import FIELD_ATTRIBUTES

logger = logging.getLogger("otel_llm_audit")

#: The instrumentation scope of the log records.
SCOPE = "otel_llm_audit.audit_log"
#: The attribute that named an event before log records had an ``event_name`` field (the older
#: event conventions; deprecated upstream, so not in our registry). Used on SDKs before the field.
LEGACY_EVENT_NAME = "event.name"
#: Span events that are also log records.
LOGGED_EVENTS = frozenset({semconv.EVENT_LLM_AUDIT_POLICY, semconv.EVENT_LLM_AUDIT_HUMAN_REVIEW})
#: Span attributes copied onto each record, so a SIEM rule needs no join with the trace:
#: who acted, and which agent, operation and model the event concerns.
CONTEXT_KEYS = (
    *FIELD_ATTRIBUTES.values(),
    semconv.GEN_AI_AGENT_NAME,
    semconv.GEN_AI_OPERATION_NAME,
    semconv.GEN_AI_PROVIDER_NAME,
    semconv.GEN_AI_REQUEST_MODEL,
)
#: Policy actions a security team wants to see first.
_WARN_ACTIONS = frozenset(
    {
        semconv.LlmAuditPolicyActionValues.BLOCKED,
        semconv.LlmAuditPolicyActionValues.FLAGGED,
        semconv.LlmAuditPolicyActionValues.REDACTED,
        semconv.LlmAuditPolicyActionValues.REFUSED,
        semconv.LlmAuditPolicyActionValues.OVERRIDDEN,
        semconv.LlmAuditPolicyActionValues.ESCALATED,
    }
)


class AuditLogProcessor(SpanProcessor):
    """Emits a log record for each policy and human-review event of every span it is given.

    It sits beside the exporters, behind the masking stage, and runs on the completion
    worker's thread: never on the application's.
    """

    def __init__(self, logger_provider: LoggerProvider) -> None:
        self._provider = logger_provider
        self._logger = logger_provider.get_logger(SCOPE, _package_version())
        self._resource = logger_provider.resource

    @property
    def logger_provider(self) -> LoggerProvider:
        return self._provider

    def on_end(self, span: ReadableSpan) -> None:
        attrs = span.attributes
        if not attrs or attrs.get(semconv.LLM_AUDIT_AUDIT_RECORD) is not True:
            return
        context = span.get_span_context()
        if context is None:
            return
        for event in span.events:
            if event.name not in LOGGED_EVENTS:
                continue
            try:
                self._emit(event, attrs, context)
            except Exception as err:
                _guard.report_internal_error("audit_logs.emit", err)

    def _emit(self, event: Event, span_attrs: Mapping[str, Any], context: trace.SpanContext) -> None:
        attributes: dict[str, AttributeValue] = {
            key: span_attrs[key] for key in CONTEXT_KEYS if span_attrs.get(key) is not None
        }
        attributes.update(event.attributes or {})
        attributes[semconv.LLM_AUDIT_AUDIT_RECORD] = True  # the collector routes logs on it, as it does spans
        severity = _severity(event)
        emit_log_record(
            self._logger,
            self._resource,
            timestamp=event.timestamp,
            span_context=context,
            severity=severity,
            body=summary(event),
            attributes=attributes,
            event_name=event.name,
        )

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._provider.shutdown()


def build_logger_provider(resource: Resource, exporters: Sequence[Any]) -> LoggerProvider:
    """A logger provider of our own (not global), batching to ``exporters``."""
    provider = LoggerProvider(resource=resource)
    for exporter in exporters:
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    return provider


def summary(event: Event) -> str:
    """A one-line message for the SIEM's list view, from masked attributes only."""
    attrs = event.attributes or {}
    if event.name == semconv.EVENT_LLM_AUDIT_HUMAN_REVIEW:
        action = attrs.get(semconv.LLM_AUDIT_REVIEW_ACTION, "?")
        reviewer = attrs.get(semconv.LLM_AUDIT_REVIEW_REVIEWER)
        return f"human review: {action}" + (f" by {reviewer}" if reviewer else "")
    category = attrs.get(semconv.LLM_AUDIT_POLICY_CATEGORY, "?")
    action = attrs.get(semconv.LLM_AUDIT_POLICY_ACTION, "?")
    name = attrs.get(semconv.LLM_AUDIT_POLICY_NAME)
    return f"policy {category}: {action}" + (f" ({name})" if name else "")


def _severity(event: Event) -> tuple[SeverityNumber, str]:
    attrs = event.attributes or {}
    if event.name == semconv.EVENT_LLM_AUDIT_POLICY and attrs.get(semconv.LLM_AUDIT_POLICY_ACTION) in _WARN_ACTIONS:
        return SeverityNumber.WARN, "WARN"
    return SeverityNumber.INFO, "INFO"


# OpenTelemetry SDK compatibility ---------------------------------------------------------------
# SDK 1.30 takes an SDK ``LogRecord`` (with trace_id/span_id and the resource); newer releases
# take keyword arguments with a context and an ``event_name`` field. Resolved once, at import.


def _emit_takes_keywords() -> bool:
    from opentelemetry.sdk._logs import Logger

    return "event_name" in inspect.signature(Logger.emit).parameters


_KEYWORDS = _emit_takes_keywords()


def emit_log_record(
    otel_logger: Any,
    resource: Resource,
    *,
    timestamp: int | None,
    span_context: trace.SpanContext,
    severity: tuple[SeverityNumber, str],
    body: str,
    attributes: dict[str, AttributeValue],
    event_name: str,
) -> None:
    """Emit one record tied to ``span_context``, on whichever logs API this SDK has."""
    if _KEYWORDS:
        otel_logger.emit(
            timestamp=timestamp,
            context=trace.set_span_in_context(trace.NonRecordingSpan(span_context)),
            severity_number=severity[0],
            severity_text=severity[1],
            body=body,
            attributes=attributes,
            event_name=event_name,
        )
        return
    from opentelemetry.sdk._logs import LogRecord  # type: ignore[attr-defined,unused-ignore]

    accepted = inspect.signature(LogRecord.__init__).parameters
    if "event_name" not in accepted:  # before the field existed: the older convention's attribute
        attributes = {**attributes, LEGACY_EVENT_NAME: event_name}
    kwargs: dict[str, Any] = {
        "timestamp": timestamp,
        "trace_id": span_context.trace_id,
        "span_id": span_context.span_id,
        "trace_flags": span_context.trace_flags,
        "severity_number": severity[0],
        "severity_text": severity[1],
        "body": body,
        "resource": resource,
        "attributes": attributes,
        "event_name": event_name,
    }
    otel_logger.emit(LogRecord(**{k: v for k, v in kwargs.items() if k in accepted}))


def _package_version() -> str:
    from otel_llm_audit._version import __version__

    return __version__


__all__ = [
    "LOGGED_EVENTS",
    "AuditLogProcessor",
    "build_logger_provider",
    "emit_log_record",
    "summary",
]
