"""otel-llm-audit: an OpenTelemetry audit trail for every LLM call and agent step.

The public API is small on purpose::

    import otel_llm_audit

    otel_llm_audit.configure()                      # pipeline + instrument what is installed
    with otel_llm_audit.audit_context(user_id="u-1", actor_type="human"):
        ...                                         # every span here says who acted

Importing this package never imports a provider SDK: instrumentors load them lazily.
"""

from otel_llm_audit._version import __version__
from otel_llm_audit.api import (
    memory_operation,
    record_decision,
    record_delegation,
    record_human_review,
    record_interrupt,
    record_policy_event,
)
from otel_llm_audit.bootstrap import AuditPipeline, configure
from otel_llm_audit.config import ContentMode, Settings
from otel_llm_audit.context import AuditIdentity, audit_context, current_identity
from otel_llm_audit.errors import BudgetExceededError
from otel_llm_audit.processing.budget_config import AnomalyLimits, Budget, BudgetConfigError, PolicyConfig
from otel_llm_audit.processing.identity import AuditIdentitySpanProcessor
from otel_llm_audit.processing.pipeline import AuditSpanProcessor

__all__ = [
    "AnomalyLimits",
    "AuditIdentity",
    "AuditIdentitySpanProcessor",
    "AuditPipeline",
    "AuditSpanProcessor",
    "Budget",
    "BudgetConfigError",
    "BudgetExceededError",
    "ContentMode",
    "PolicyConfig",
    "Settings",
    "__version__",
    "audit_context",
    "configure",
    "current_identity",
    "memory_operation",
    "record_decision",
    "record_delegation",
    "record_human_review",
    "record_interrupt",
    "record_policy_event",
]
