"""The check the emitter asks before each provider call: may it go? (Installed by ``configure()``.)

The emitter knows nothing of budgets; the policy layer (:mod:`otel_llm_audit.processing.budgets`)
installs a gate here when some budget enforces, and the provider instrumentors' start of a call
asks it. No gate (the default) costs one attribute read per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from otel_llm_audit.errors import BudgetExceededError
from otel_llm_audit.records import PolicyEvent


class CallGate(Protocol):
    """Says whether a call may be sent now."""

    def refuse(
        self, identity: Mapping[str, Any], model: str | None, trace_id: int | None
    ) -> BudgetExceededError | None:
        """The refusal of a call by ``identity`` (the audit context's span attributes) to ``model``
        in trace ``trace_id``, or ``None`` to let it go."""

    def blocked_event(self, error: BudgetExceededError) -> PolicyEvent: ...


_gate: CallGate | None = None


def install(gate: CallGate | None) -> None:
    """Put ``gate`` in force for every emitter (``None`` removes it)."""
    global _gate
    _gate = gate


def current() -> CallGate | None:
    return _gate
