"""Exceptions the package raises into the application on purpose (and only these).

Everything else that goes wrong inside otel-llm-audit is caught, logged once and counted: the
application never sees it. A budget that enforces is the one exception to that rule, by design.
"""

from __future__ import annotations

import json
from collections.abc import Mapping


class BudgetExceededError(Exception):
    """A call was blocked, before anything was sent, because a budget that enforces is exhausted.

    Raised from the SDK call (``client.chat.completions.create(...)``, ``messages.create``,
    ``generate_content``, ``converse``, ...) in place of the provider's answer. The call is
    recorded: an error span (``error.type`` ``otel_llm_audit.BudgetExceededError``) with a
    ``llm_audit.policy`` event whose category is ``budget`` and action ``blocked``.
    """

    def __init__(
        self, budget: str, scope: Mapping[str, str], period: str, spend: float, limit: float, unit: str
    ) -> None:
        self.budget = budget
        self.scope = dict(scope)
        self.period = period
        self.spend = spend
        self.limit = limit
        self.unit = unit
        amount = f"{spend:.4f} of {limit:g} USD" if unit == "usd" else f"{spend:.0f} of {limit:.0f} tokens"
        where = json.dumps(self.scope, sort_keys=True)
        super().__init__(f"budget {budget!r} exhausted for {where} in period {period}: {amount}")

    def __reduce__(self) -> tuple[object, ...]:  # picklable across processes, like any exception
        return (type(self), (self.budget, self.scope, self.period, self.spend, self.limit, self.unit))
