"""Budgets and anomaly limits: one YAML file (or the same objects in code), checked at start-up.

A file that cannot be honoured is a start-up error (:class:`BudgetConfigError`), never a
silent gap: a budget that was meant to block and quietly does not is worse than no budget.

The file::

    budgets:
      - name: clinical-ai-daily          # unique; events and metrics carry it
        scope: {team: clinical-ai}       # any of tenant, team, application, user, model;
                                         # "*" counts each value apart ({user: "*"}: per user)
        period: day                      # hour | day | month (UTC) | session | run
        limit_usd: 50                    # or limit_tokens: 2000000
        thresholds: [0.5, 0.8, 1.0]      # fractions that emit an event once per period
        enforce: false                   # true: calls are blocked once the limit is reached
    anomalies:                           # per agent run (one trace); 0 turns a rule off
      max_model_calls: 50
      max_tool_calls: 100
      repeated_tool_call: 3
      max_run_tokens: 500000
      max_run_seconds: 900
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from otel_llm_audit import semconv

#: Scope dimension -> the span attribute whose value it is counted under.
SCOPE_ATTRIBUTES: Mapping[str, str] = {
    "tenant": semconv.LLM_AUDIT_TENANT_ID,
    "team": semconv.LLM_AUDIT_TEAM,
    "application": semconv.LLM_AUDIT_APPLICATION,
    "user": semconv.USER_ID,
    "model": semconv.GEN_AI_REQUEST_MODEL,
}
PERIODS = ("hour", "day", "month", "session", "run")
#: Matches every value of a dimension, each counted apart.
EACH = "*"
DEFAULT_THRESHOLDS = (0.5, 0.8, 1.0)


class BudgetConfigError(ValueError):
    """The budget file (or the budgets passed in code) cannot be honoured."""


@dataclass(frozen=True, slots=True)
class Budget:
    """One limit on spend for a scope and a period."""

    name: str
    period: str
    limit_usd: float | None = None
    limit_tokens: int | None = None
    #: Dimension -> value, or ``"*"`` for each value apart. Empty: everything, as one.
    scope: Mapping[str, str] = field(default_factory=dict)
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    #: Block calls (before they are sent) once the limit is reached.
    enforce: bool = False

    def __post_init__(self) -> None:
        where = f"budget {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise BudgetConfigError("every budget needs a non-empty name")
        if self.period not in PERIODS:
            raise BudgetConfigError(f"{where}: period must be one of {', '.join(PERIODS)}; got {self.period!r}")
        if (self.limit_usd is None) == (self.limit_tokens is None):
            raise BudgetConfigError(f"{where}: give exactly one of limit_usd and limit_tokens")
        limit = self.limit_usd if self.limit_usd is not None else self.limit_tokens
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit) or limit <= 0:
            raise BudgetConfigError(f"{where}: the limit must be a positive number; got {limit!r}")
        unknown = set(self.scope) - set(SCOPE_ATTRIBUTES)
        if unknown:
            raise BudgetConfigError(
                f"{where}: unknown scope dimension(s) {sorted(unknown)}; use {', '.join(SCOPE_ATTRIBUTES)}"
            )
        for dimension, value in self.scope.items():
            if not isinstance(value, str) or not value:
                raise BudgetConfigError(f"{where}: scope {dimension} must be a non-empty string or {EACH!r}")
        thresholds = tuple(self.thresholds)
        if not thresholds or any(
            isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 10 for t in thresholds
        ):
            raise BudgetConfigError(f"{where}: thresholds must be fractions of the limit in (0, 10]; got {thresholds}")
        object.__setattr__(self, "thresholds", tuple(sorted({float(t) for t in thresholds})))
        object.__setattr__(self, "scope", dict(sorted(self.scope.items())))

    @property
    def limit(self) -> float:
        return float(self.limit_usd if self.limit_usd is not None else self.limit_tokens)  # type: ignore[arg-type]

    @property
    def unit(self) -> str:
        return "usd" if self.limit_usd is not None else "tokens"


@dataclass(frozen=True, slots=True)
class AnomalyLimits:
    """What counts as a runaway agent run (one trace). 0 turns a rule off."""

    #: Model calls in one run.
    max_model_calls: int = 50
    #: Tool calls in one run.
    max_tool_calls: int = 100
    #: The same tool with the same arguments this many times in a row.
    repeated_tool_call: int = 3
    #: Input plus output tokens in one run.
    max_run_tokens: int = 500_000
    #: Seconds from the run's first span to a span that ends.
    max_run_seconds: float = 900.0

    def __post_init__(self) -> None:
        for name in ("max_model_calls", "max_tool_calls", "repeated_tool_call", "max_run_tokens", "max_run_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise BudgetConfigError(f"anomalies.{name} must be a number >= 0 (0 turns it off); got {value!r}")
        if self.repeated_tool_call == 1:
            raise BudgetConfigError("anomalies.repeated_tool_call must be 0 (off) or at least 2")


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Everything the budget file says."""

    budgets: tuple[Budget, ...] = ()
    anomalies: AnomalyLimits = field(default_factory=AnomalyLimits)
    #: Where it came from, for messages.
    source: str = "code"

    def __post_init__(self) -> None:
        names = [b.name for b in self.budgets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise BudgetConfigError(f"{self.source}: budget names must be unique; repeated: {duplicates}")


_BUDGET_KEYS = {"name", "scope", "period", "limit_usd", "limit_tokens", "thresholds", "enforce"}
_ANOMALY_KEYS = {f for f in AnomalyLimits.__dataclass_fields__}


def load_policy_file(path: str | os.PathLike[str]) -> PolicyConfig:
    """Read and check a budget file; any problem is a :class:`BudgetConfigError` naming the file."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except FileNotFoundError:
        raise BudgetConfigError(f"budget file {source!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise BudgetConfigError(f"budget file {source!r} cannot be read: {err}") from None
    except yaml.YAMLError as err:
        raise BudgetConfigError(f"budget file {source!r} is not valid YAML: {err}") from None
    return parse_policy(document, source)


def parse_policy(document: Any, source: str = "code") -> PolicyConfig:
    """A :class:`PolicyConfig` from the parsed YAML (or an equivalent dict)."""
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise BudgetConfigError(f"{source}: expected a mapping with 'budgets' and 'anomalies'")
    unknown = set(document) - {"budgets", "anomalies"}
    if unknown:
        raise BudgetConfigError(f"{source}: unknown section(s) {sorted(unknown)}; expected budgets, anomalies")
    raw_budgets = document.get("budgets") or []
    if not isinstance(raw_budgets, Sequence) or isinstance(raw_budgets, (str, bytes)):
        raise BudgetConfigError(f"{source}: 'budgets' must be a list")
    budgets = tuple(_budget(item, index, source) for index, item in enumerate(raw_budgets))
    raw_anomalies = document.get("anomalies") or {}
    if not isinstance(raw_anomalies, Mapping):
        raise BudgetConfigError(f"{source}: 'anomalies' must be a mapping")
    unknown = set(raw_anomalies) - _ANOMALY_KEYS
    if unknown:
        raise BudgetConfigError(
            f"{source}: unknown anomaly setting(s) {sorted(unknown)}; known: {sorted(_ANOMALY_KEYS)}"
        )
    try:
        anomalies = AnomalyLimits(**raw_anomalies)
    except (BudgetConfigError, TypeError, ValueError) as err:
        raise BudgetConfigError(f"{source}: {err}") from None
    return PolicyConfig(budgets, anomalies, source)


def _budget(item: Any, index: int, source: str) -> Budget:
    if not isinstance(item, Mapping):
        raise BudgetConfigError(f"{source}: budgets[{index}] must be a mapping")
    unknown = set(item) - _BUDGET_KEYS
    if unknown:
        raise BudgetConfigError(
            f"{source}: budgets[{index}]: unknown key(s) {sorted(unknown)}; known: {sorted(_BUDGET_KEYS)}"
        )
    scope = item.get("scope") or {}
    if not isinstance(scope, Mapping):
        raise BudgetConfigError(f"{source}: budgets[{index}]: scope must be a mapping")
    enforce = item.get("enforce", False)
    if not isinstance(enforce, bool):
        raise BudgetConfigError(f"{source}: budgets[{index}]: enforce must be true or false")
    try:
        return Budget(
            name=item.get("name", ""),
            period=item.get("period", ""),
            limit_usd=item.get("limit_usd"),
            limit_tokens=item.get("limit_tokens"),
            scope={
                str(k): str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                for k, v in scope.items()
            },
            thresholds=tuple(item.get("thresholds", DEFAULT_THRESHOLDS)),
            enforce=enforce,
        )
    except BudgetConfigError as err:
        raise BudgetConfigError(f"{source}: budgets[{index}]: {err}") from None
    except (TypeError, ValueError) as err:
        raise BudgetConfigError(f"{source}: budgets[{index}]: {err}") from None
