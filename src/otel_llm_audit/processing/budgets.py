"""Budgets: spend counted per scope and period, threshold events, and optional blocking.

Counting happens on the completion worker, from the cost and tokens the completed span already
carries (:class:`BudgetRule`, a rule of the policy stage): the span that takes a scope past a
threshold gets the ``llm_audit.policy`` event (category ``budget``), once per threshold per
period across every process sharing the ledger. Blocking happens on the application's thread,
before the provider is called (:meth:`BudgetRule.check`): a lookup in memory, no I/O. The
memory is updated by every charge of this process and, for budgets that block, refreshed from
the ledger every ``refresh_s`` seconds so that other processes' spend is seen too.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.trace import Event, ReadableSpan

from otel_llm_audit import _guard, semconv
from otel_llm_audit._version import __version__
from otel_llm_audit.emitter.handoff import SCOPE_PREFIX
from otel_llm_audit.emitter.operations import policy_event_attributes
from otel_llm_audit.errors import BudgetExceededError
from otel_llm_audit.processing.budget_config import EACH, SCOPE_ATTRIBUTES, Budget
from otel_llm_audit.processing.budget_ledger import BudgetLedger, Charge, Charged
from otel_llm_audit.records import PolicyEvent

logger = logging.getLogger("otel_llm_audit")

SOURCE = "otel_llm_audit.budgets"
_CATEGORY = "budget"
_ACTIONS = semconv.LlmAuditPolicyActionValues
#: Scopes remembered in memory (per-run and per-user budgets have one per run or user); the
#: ledger keeps them all, and the oldest in memory are forgotten first.
MAX_SCOPES = 10_000
#: Charges kept in memory while the ledger is out of reach; past it the oldest are dropped (counted).
MAX_PENDING = 100_000
#: Rows of old periods are dropped from the ledger after this long, checked every hour.
_KEEP_NS = 40 * 24 * 3600 * 1_000_000_000
_PRUNE_EVERY_S = 3600.0
_CALENDAR = ("hour", "day", "month")


@dataclass(frozen=True, slots=True)
class _Status:
    """The last known spend of one budget scope in one period."""

    period: str
    total: float


def scope_values(budget: Budget, values: Mapping[str, Any]) -> dict[str, str] | None:
    """The scope values a call is counted under for ``budget``, or ``None`` when it does not apply."""
    out: dict[str, str] = {}
    for dimension, wanted in budget.scope.items():
        value = values.get(dimension)
        if value is None or value == "":
            return None
        value = str(value)
        if wanted != EACH and value != wanted:
            return None
        out[dimension] = value
    return out


def scope_key(values: Mapping[str, str]) -> str:
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def period_key(period: str, when_ns: int, session_id: str | None, trace_id: int | None) -> str | None:
    """Which period a call at ``when_ns`` belongs to (``None``: the budget does not apply)."""
    if period == "session":
        return session_id or None
    if period == "run":
        return format(trace_id, "032x") if trace_id else None
    moment = time.gmtime(when_ns / 1e9)
    if period == "hour":
        return time.strftime("%Y-%m-%dT%H", moment)
    if period == "day":
        return time.strftime("%Y-%m-%d", moment)
    return time.strftime("%Y-%m", moment)


class BudgetRule:
    """Counts spend into the ledger, emits threshold events, and answers "may this call go?"."""

    name = "budgets"

    def __init__(
        self,
        budgets: Sequence[Budget],
        ledger: BudgetLedger,
        *,
        refresh_s: float = 2.0,
        meter_provider: metrics.MeterProvider | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.budgets = tuple(budgets)
        self.ledger = ledger
        self._clock = clock
        self._refresh_s = refresh_s
        self._enforcing = tuple(b for b in self.budgets if b.enforce)
        self._by_name = {b.name: b for b in self.budgets}
        #: The ledger's name of each budget: its name, unit and dimensions, so a budget whose scope
        #: or unit changes between deployments starts afresh instead of reading the old rows.
        self._ledger_names = {b.name: ledger_name(b) for b in self.budgets}
        self._status: dict[tuple[str, str], _Status] = {}  # (budget, scope key) -> last known
        #: Enforcing budget -> (scope values..., period) -> status, for the scopes known to be
        #: exhausted: all that the check before each call has to look at.
        self._exhausted: dict[str, dict[tuple[str, ...], _Status]] = {}
        self._scopes: dict[str, dict[str, str]] = {}  # scope key -> values (for the gauge)
        self._keys: dict[tuple[tuple[str, str], ...], str] = {}
        self._calendar: dict[tuple[str, int], str] = {}
        #: Budget -> (fraction, amount) of each threshold, ascending.
        self._thresholds = {b.name: tuple((t, t * b.limit) for t in b.thresholds) for b in self.budgets}
        #: Charges not yet in the ledger (it was busy, or the span ended on an application thread).
        self._pending: list[tuple[Budget, dict[str, str], Charge]] = []
        self._lost = 0
        self._last_warning = 0.0
        self._last_prune = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._prune()
        self.refresh()  # a restarted process knows at once what is already exhausted
        self._refresher: threading.Thread | None = None
        self._start_refresher()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)
        self._gauge = metrics.get_meter("otel_llm_audit", __version__, meter_provider).create_observable_gauge(
            semconv.METRIC_LLM_AUDIT_BUDGET_UTILIZATION,
            callbacks=[self._observe_utilization],
            unit="1",
            description="Spend over limit of each budget scope in its current period.",
        )

    @property
    def enforcing(self) -> bool:
        """Whether any budget blocks calls (only then is the check before each call installed)."""
        return bool(self._enforcing)

    def _start_refresher(self) -> None:
        if self._enforcing and self._refresh_s > 0 and not self._stop.is_set():
            self._refresher = threading.Thread(
                target=self._refresh_loop, args=(self._refresh_s,), name="otel-llm-audit-budgets", daemon=True
            )
            self._refresher.start()

    def _after_fork(self) -> None:
        """In a forked child: new locks, and the refresh thread again (threads do not survive a fork)."""
        self._lock = threading.Lock()
        self._pending = []
        self._start_refresher()

    # On the completion worker -----------------------------------------------------------

    def observe(self, span: ReadableSpan) -> Sequence[Event]:
        return self.observe_batch([span])[0]

    def observe_batch(self, spans: Sequence[ReadableSpan], *, defer: bool = False) -> list[Sequence[Event]]:
        """The threshold events of each span; one ledger transaction for the whole batch.

        ``defer`` (spans completed on an application's thread: a full queue, or after shutdown):
        only remember the charges; the worker's next batch writes them. The ledger is never
        written on an application's thread.
        """
        plans = [self._charges(span) for span in spans]
        current = [charge for plan in plans for charge in plan[1]]
        out: list[list[Event]] = [[] for _ in spans]
        with self._lock:
            if defer:
                self._keep(current)
                return list(out)
            pending, self._pending = self._pending, []
        if not current and not pending:
            return list(out)
        todo = pending + current
        try:
            results = self.ledger.charge(charge for _, _, charge in todo)
        except Exception as err:  # busy past its timeout, closed, unwritable: keep them, fail open
            with self._lock:
                self._keep(todo)
                self._estimate(current)  # the kept ones were counted when they first failed, or not at all
            self._warn(err)
            return list(out)
        # Thresholds crossed by charges kept from earlier go on the first span that has a charge.
        first = next((i for i, plan in enumerate(plans) if plan[1]), 0)
        owners = [first] * len(pending) + [i for i, plan in enumerate(plans) for _ in plan[1]]
        with self._lock:
            for (budget, scoped, _), charged in zip(todo, results, strict=True):
                self._remember(budget, scoped, charged)
        for owner, (budget, scoped, _), charged in zip(owners, todo, results, strict=True):
            when = plans[owner][0]
            out[owner].extend(
                self._threshold_event(budget, scoped, charged, threshold, when) for threshold in charged.crossed
            )
        if time.monotonic() - self._last_prune > _PRUNE_EVERY_S:
            self._prune()
        return list(out)

    def _keep(self, charges: list[tuple[Budget, dict[str, str], Charge]]) -> None:
        """Hold ``charges`` for the next write (bounded: the oldest are dropped, and counted)."""
        self._pending.extend(charges)
        overflow = len(self._pending) - MAX_PENDING
        if overflow > 0:
            del self._pending[:overflow]
            self._lost += overflow
            _guard.report_internal_error("budgets.pending_full", RuntimeError(f"{overflow} charges dropped"))

    def _estimate(self, charges: list[tuple[Budget, dict[str, str], Charge]]) -> None:
        """While the ledger is out of reach, count this process's spend in memory (for blocking)."""
        for budget, scoped, charge in charges:
            known = self._status.get((budget.name, charge.scope))
            base = known.total if known is not None and known.period == charge.period else 0.0
            self._set_status(budget, scoped, charge.scope, _Status(charge.period, base + charge.amount))

    def _warn(self, err: Exception) -> None:
        _guard.report_internal_error("budgets.ledger", err)
        now = time.monotonic()
        if now - self._last_warning > 60:
            self._last_warning = now
            logger.warning(
                "otel-llm-audit: the budget ledger %s could not be written (%s); %d charges are kept in "
                "memory and retried, and blocking uses this process's own count meanwhile",
                self.ledger.path,
                err,
                len(self._pending),
            )

    def _prune(self) -> None:
        self._last_prune = time.monotonic()
        try:
            self.ledger.forget_before(time.time_ns() - _KEEP_NS)
        except Exception as err:
            _guard.report_internal_error("budgets.prune", err)

    def _charges(self, span: ReadableSpan) -> tuple[int, list[tuple[Budget, dict[str, str], Charge]]]:
        """What ``span`` adds to which budget, and when it ended."""
        when = span.end_time or time.time_ns()
        scope = span.instrumentation_scope
        if scope is None or not scope.name.startswith(SCOPE_PREFIX):
            return when, []
        attrs = span.attributes or {}
        cost = attrs.get(semconv.LLM_AUDIT_COST_USD)
        tokens = _tokens(attrs)
        if cost is None and tokens is None:
            return when, []
        values = {dimension: attrs.get(key) for dimension, key in SCOPE_ATTRIBUTES.items()}
        context = span.get_span_context()
        trace_id = context.trace_id if context is not None else None
        session = _str(attrs.get(semconv.SESSION_ID))
        charges: list[tuple[Budget, dict[str, str], Charge]] = []
        for budget in self.budgets:
            amount = cost if budget.unit == "usd" else tokens
            if not isinstance(amount, (int, float)) or isinstance(amount, bool) or not 0 < amount < math.inf:
                continue
            scoped = scope_values(budget, values)
            if scoped is None:
                continue
            period = self._period(budget.period, when, session, trace_id)
            if period is None:
                continue
            charge = Charge(
                self._ledger_names[budget.name],
                self._key_of(scoped),
                period,
                float(amount),
                self._thresholds[budget.name],
            )
            charges.append((budget, scoped, charge))
        return when, charges

    def _period(self, period: str, when: int, session: str | None, trace_id: int | None) -> str | None:
        if period == "session":
            return session or None
        if period == "run":
            return format(trace_id, "032x") if trace_id else None
        second = when // 1_000_000_000  # calendar periods change on the second at the earliest
        cached = self._calendar.get((period, second))
        if cached is None:
            if len(self._calendar) > 64:
                self._calendar.clear()
            cached = self._calendar[(period, second)] = period_key(period, when, None, None) or ""
        return cached

    def _key_of(self, scoped: dict[str, str]) -> str:
        """The scope's JSON key, remembered (the worker builds one per budget per span)."""
        values = tuple(scoped.items())
        key = self._keys.get(values)
        if key is None:
            if len(self._keys) > MAX_SCOPES:
                self._keys.clear()
            key = self._keys[values] = scope_key(scoped)
        return key

    def _remember(self, budget: Budget, scoped: Mapping[str, str], charged: Charged) -> None:
        self._set_status(budget, scoped, charged.charge.scope, _Status(charged.charge.period, charged.total))

    def _set_status(self, budget: Budget, scoped: Mapping[str, str], key: str, status: _Status) -> None:
        self._scopes.pop(key, None)
        self._scopes[key] = dict(scoped)
        self._status.pop((budget.name, key), None)  # re-inserted last: the oldest go first
        self._status[(budget.name, key)] = status
        while len(self._status) > MAX_SCOPES:
            del self._status[next(iter(self._status))]
        while len(self._scopes) > MAX_SCOPES:
            del self._scopes[next(iter(self._scopes))]
        self._note_exhausted(budget, scoped, status)

    def _note_exhausted(self, budget: Budget, scoped: Mapping[str, str], status: _Status) -> None:
        if budget.enforce and status.total + 1e-9 >= budget.limit:
            # A new dict each time: the application's threads read it without the lock.
            exhausted = dict(self._exhausted)
            scopes = dict(exhausted.get(budget.name, {}))
            scopes[(*(scoped[d] for d in budget.scope), status.period)] = status
            while len(scopes) > MAX_SCOPES:
                del scopes[next(iter(scopes))]
            exhausted[budget.name] = scopes
            self._exhausted = exhausted

    def _threshold_event(
        self, budget: Budget, scoped: Mapping[str, str], charged: Charged, threshold: float, when: int
    ) -> Event:
        attributes = budget_attributes(budget, scoped, charged.charge.period, charged.total)
        attributes[semconv.LLM_AUDIT_BUDGET_THRESHOLD] = threshold
        event = PolicyEvent(
            category=_CATEGORY, action=_ACTIONS.FLAGGED, source=SOURCE, name=budget.name, attributes=attributes
        )
        return Event(semconv.EVENT_LLM_AUDIT_POLICY, policy_event_attributes(event), when)

    # On the application's thread --------------------------------------------------------

    def refuse(
        self, identity: Mapping[str, Any], model: str | None, trace_id: int | None
    ) -> BudgetExceededError | None:
        """The gate's question (:mod:`otel_llm_audit.emitter.gate`): the call's scope values are
        read from the identity's span attributes, as :meth:`observe_batch` reads the span's."""
        if not self._exhausted:
            return None
        values = {dimension: identity.get(key) for dimension, key in SCOPE_ATTRIBUTES.items()}
        values["model"] = model
        return self.check(values, _str(identity.get(semconv.SESSION_ID)), trace_id)

    def check(
        self, values: Mapping[str, Any], session_id: str | None, trace_id: int | None
    ) -> BudgetExceededError | None:
        """The reason to block a call with these scope ``values`` now, or ``None`` to let it go.

        Dictionary lookups only: it runs before every call while budgets enforce.
        """
        exhausted = self._exhausted
        if not exhausted:
            return None  # the usual case: one attribute read
        now: int | None = None
        for budget in self._enforcing:
            scopes = exhausted.get(budget.name)
            if not scopes:
                continue
            scoped = scope_values(budget, values)
            if scoped is None:
                continue
            if now is None:
                now = int(self._clock() * 1e9)
            period = self._period(budget.period, now, session_id, trace_id)
            if period is None:
                continue
            known = scopes.get((*scoped.values(), period))  # an earlier period's entry never matches
            if known is None:
                continue
            return BudgetExceededError(budget.name, scoped, known.period, known.total, budget.limit, budget.unit)
        return None

    def blocked_event(self, error: BudgetExceededError) -> PolicyEvent:
        """The policy event of a blocked call (it rides the call's error span)."""
        budget = self._by_name[error.budget]
        attributes = budget_attributes(budget, error.scope, error.period, error.spend)
        attributes[semconv.LLM_AUDIT_BUDGET_THRESHOLD] = 1.0
        return PolicyEvent(
            category=_CATEGORY, action=_ACTIONS.BLOCKED, source=SOURCE, name=error.budget, attributes=attributes
        )

    # The ledger, refreshed ---------------------------------------------------------------

    def refresh(self) -> None:
        """Read the current period's totals of every enforcing calendar budget (other processes' spend).

        Session and run budgets are not refreshed: their periods are ids this process learns from
        its own calls, so another process's spend in the same session is seen at this process's
        next charge to it.
        """
        now = time.time_ns()
        for budget in self._enforcing:
            if budget.period in ("session", "run"):
                continue
            period = period_key(budget.period, now, None, None) or ""
            try:
                totals = self.ledger.totals(self._ledger_names[budget.name], period)
            except Exception as err:
                _guard.report_internal_error("budgets.refresh", err)
                continue
            with self._lock:
                for key, total in totals.items():
                    scoped = self._scopes.get(key) or _scope_of(key, budget)
                    if scoped is None:
                        continue  # not this budget's dimensions
                    previous = self._status.get((budget.name, key))
                    if previous is None or previous.period != period or previous.total < total:
                        self._set_status(budget, scoped, key, _Status(period, total))

    def _refresh_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.refresh()
                if time.monotonic() - self._last_prune > _PRUNE_EVERY_S:
                    self._prune()
            except Exception as err:  # the thread must outlive any one failure
                _guard.report_internal_error("budgets.refresh", err)

    def _observe_utilization(self, options: CallbackOptions) -> list[Observation]:
        with self._lock:
            items = list(self._status.items())
        now = time.time_ns()
        current = {b.period: period_key(b.period, now, None, None) for b in self.budgets if b.period in _CALENDAR}
        out = []
        for (name, key), known in items:
            budget = self._by_name.get(name)
            if budget is None:
                continue
            if budget.period in _CALENDAR and known.period != current[budget.period]:
                continue  # a period that has ended: its budget has reset
            attrs = {
                semconv.LLM_AUDIT_BUDGET_NAME: name,
                semconv.LLM_AUDIT_BUDGET_SCOPE: key,
                semconv.LLM_AUDIT_BUDGET_PERIOD: budget.period,
                semconv.LLM_AUDIT_BUDGET_UNIT: budget.unit,
            }
            out.append(Observation(known.total / budget.limit, attrs))
        return out

    def shutdown(self) -> None:
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=5)
        with self._lock:
            pending, self._pending = self._pending, []
        if pending:  # what the last spans added, before the ledger closes
            try:
                self.ledger.charge(charge for _, _, charge in pending)
            except Exception as err:
                _guard.report_internal_error("budgets.ledger", err)
        self.ledger.close()


def ledger_name(budget: Budget) -> str:
    """The budget's key in the ledger: a changed unit or scope dimension is a new budget there."""
    return f"{budget.name}|{budget.unit}|{','.join(budget.scope)}"


def _scope_of(key: str, budget: Budget) -> dict[str, str] | None:
    """The scope values of a ledger row, if they are this budget's dimensions."""
    try:
        values = json.loads(key)
    except ValueError:
        return None
    if not isinstance(values, dict) or set(values) != set(budget.scope):
        return None
    return {str(k): str(v) for k, v in values.items()}


def budget_attributes(budget: Budget, scoped: Mapping[str, str], period: str, total: float) -> dict[str, Any]:
    """The budget attributes of a policy event."""
    return {
        semconv.LLM_AUDIT_BUDGET_NAME: budget.name,
        semconv.LLM_AUDIT_BUDGET_SCOPE: scope_key(scoped),
        semconv.LLM_AUDIT_BUDGET_PERIOD: budget.period,
        semconv.LLM_AUDIT_BUDGET_PERIOD_KEY: period,
        semconv.LLM_AUDIT_BUDGET_UNIT: budget.unit,
        semconv.LLM_AUDIT_BUDGET_LIMIT: budget.limit,
        semconv.LLM_AUDIT_BUDGET_SPEND: round(total, 9),
        semconv.LLM_AUDIT_BUDGET_ENFORCED: budget.enforce,
    }


def _tokens(attrs: Mapping[str, Any]) -> int | None:
    total = 0
    seen = False
    for key in (semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_OUTPUT_TOKENS):
        value = attrs.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            total += value
            seen = True
    return total if seen else None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
