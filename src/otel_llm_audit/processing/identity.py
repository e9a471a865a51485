"""Stamps the audit identity on every span at start, whoever created it.

HTTP, database and framework spans started inside an ``audit_context`` carry the same
``user.id``, ``session.id`` and ``llm_audit.*`` identity as our LLM spans, so an investigator
can follow one user's request through every system it touched. Our own spans already carry
the identity from the emitter (set at start, where samplers can see it), so they are skipped.
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_llm_audit import _guard
from otel_llm_audit.context import current_identity
from otel_llm_audit.emitter.handoff import SCOPE_PREFIX


class AuditIdentitySpanProcessor(SpanProcessor):
    """``on_start``: copy the identity in force onto the span. Nothing else."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            scope = span.instrumentation_scope
            if scope is not None and scope.name.startswith(SCOPE_PREFIX):
                return
            identity = current_identity(parent_context)
            if identity is not None and identity.attributes:
                span.set_attributes(identity.attributes)
        except Exception as err:
            _guard.report_internal_error("identity.on_start", err)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
