"""Budgets: the file, counting across threads and processes, threshold events, periods, blocking.

The end-to-end tests drive the real ``openai`` and ``anthropic`` SDKs against the loopback fake
model server; a blocked call must never reach it (its request log says what arrived).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, TraceFlags

import otel_llm_audit
from otel_llm_audit import Budget, BudgetConfigError, BudgetExceededError, PolicyConfig, semconv
from otel_llm_audit.config import set_settings
from otel_llm_audit.emitter import gate
from otel_llm_audit.processing.budget_config import load_policy_file
from otel_llm_audit.processing.budget_ledger import BudgetLedger, Charge
from otel_llm_audit.processing.budgets import BudgetRule, ledger_name

try:
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as InMemoryLogExporter
except ImportError:  # SDK 1.30
    from opentelemetry.sdk._logs.export import InMemoryLogExporter  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
DAY_1 = 1_795_000_000_000_000_000  # 2026-11-18T...Z
DAY_2 = DAY_1 + 24 * 3600 * 1_000_000_000
OUR_SCOPE = InstrumentationScope("otel_llm_audit.instrumentation.openai", "test")


def _span(
    *,
    cost: float | None = None,
    tokens: tuple[int, int] | None = None,
    end_ns: int = DAY_1,
    trace_id: int = 1,
    **attrs: Any,
) -> ReadableSpan:
    """A completed LLM span as the policy stage sees it (identity and cost on it)."""
    values: dict[str, Any] = {semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", **attrs}
    if cost is not None:
        values[semconv.LLM_AUDIT_COST_USD] = cost
    if tokens is not None:
        values[semconv.GEN_AI_USAGE_INPUT_TOKENS], values[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = tokens
    context = SpanContext(trace_id, 7, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return ReadableSpan(
        name="chat gpt-4o-mini", context=context, attributes=values, start_time=end_ns - 1000, end_time=end_ns,
        instrumentation_scope=OUR_SCOPE,
    )  # fmt: skip


def _policy(events: list[Event]) -> list[dict[str, Any]]:
    return [dict(e.attributes or {}) for e in events if e.name == semconv.EVENT_LLM_AUDIT_POLICY]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[BudgetLedger]:
    made = BudgetLedger(str(tmp_path / "budgets.db"))
    yield made
    made.close()


# ----------------------------------------------------------------------------- the file


def test_a_budget_file_is_read_with_its_defaults(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(
        "budgets:\n"
        "  - {name: team-daily, scope: {team: clinical-ai}, period: day, limit_usd: 50}\n"
        "  - {name: per-user, scope: {user: '*', model: gpt-4o}, period: hour, limit_tokens: 2000,\n"
        "     thresholds: [1.0, 0.9], enforce: true}\n"
        "anomalies: {max_model_calls: 20, repeated_tool_call: 0}\n",
        encoding="utf-8",
    )
    config = load_policy_file(path)
    first, second = config.budgets
    assert (first.name, first.unit, first.limit, first.thresholds, first.enforce) == (
        "team-daily", "usd", 50.0, (0.5, 0.8, 1.0), False,
    )  # fmt: skip
    assert (second.unit, second.limit, second.thresholds, second.enforce) == ("tokens", 2000.0, (0.9, 1.0), True)
    assert second.scope == {"model": "gpt-4o", "user": "*"}
    assert (config.anomalies.max_model_calls, config.anomalies.repeated_tool_call) == (20, 0)
    assert config.anomalies.max_tool_calls == 100  # the default where the file is silent


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("budgets: [{name: a, period: day}]", "give exactly one of limit_usd and limit_tokens"),
        ("budgets: [{name: a, period: week, limit_usd: 1}]", "period must be one of hour, day, month, session, run"),
        ("budgets: [{name: a, period: day, limit_usd: -1}]", "the limit must be a positive number"),
        ("budgets: [{name: a, period: day, limit_usd: '5'}]", "the limit must be a positive number; got '5'"),
        ("budgets: [{name: a, period: day, limit_usd: 50$}]", "the limit must be a positive number; got '50$'"),
        ("anomalies: {max_run_seconds: .nan}", "anomalies.max_run_seconds must be a number >= 0"),
        (
            "budgets: [{name: a, period: day, limit_usd: 1, scope: {region: eu}}]",
            "unknown scope dimension(s) ['region']",
        ),
        ("budgets: [{name: a, period: day, limit_usd: 1, limt: 2}]", "unknown key(s) ['limt']"),
        ("budgets: [{name: a, period: day, limit_usd: 1, enforce: 'yes'}]", "enforce must be true or false"),
        (
            "budgets: [{name: a, period: day, limit_usd: 1}, {name: a, period: hour, limit_usd: 2}]",
            "budget names must be unique; repeated: ['a']",
        ),
        ("budgets: {name: a}", "'budgets' must be a list"),
        ("anomalies: {max_model_calls: -3}", "anomalies.max_model_calls must be a number >= 0"),
        ("anomalies: {max_modle_calls: 3}", "unknown anomaly setting(s) ['max_modle_calls']"),
        ("budgets: [unclosed", "is not valid YAML"),
        ("- just\n- a list\n", "expected a mapping with 'budgets' and 'anomalies'"),
    ],
)
def test_a_budget_file_that_cannot_be_honoured_is_a_start_up_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BudgetConfigError) as raised:
        otel_llm_audit.configure(
            span_exporters=[], metric_readers=[], tracer_provider=TracerProvider(), set_global=False,
            instrument=False, budgets_file=str(path),
        )  # fmt: skip
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_a_missing_budget_file_named_in_the_environment_is_a_start_up_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere" / "budgets.yaml"
    monkeypatch.setenv("OTEL_LLM_AUDIT_BUDGETS", str(missing))
    with pytest.raises(BudgetConfigError, match=f"budget file '{missing}' does not exist"):
        otel_llm_audit.configure(
            span_exporters=[], metric_readers=[], tracer_provider=TracerProvider(), set_global=False, instrument=False
        )


# ----------------------------------------------------------------------------- counting and events


def test_thresholds_fire_once_each_on_the_span_that_crossed_them(ledger: BudgetLedger) -> None:
    budget = Budget(name="team-daily", period="day", limit_usd=1.0, scope={"team": "clinical-ai"})
    rule = BudgetRule([budget], ledger, refresh_s=0)
    crossed = [
        _policy(list(rule.observe(_span(cost=0.3, **{semconv.LLM_AUDIT_TEAM: "clinical-ai"})))) for _ in range(5)
    ]
    # spend 0.3, 0.6 (50 %), 0.9 (80 %), 1.2 (100 %), 1.5: one event each at 0.6, 0.9 and 1.2
    assert [[e[semconv.LLM_AUDIT_BUDGET_THRESHOLD] for e in events] for events in crossed] == [
        [],
        [0.5],
        [0.8],
        [1.0],
        [],
    ]
    event = crossed[3][0]
    assert event == {
        "llm_audit.policy.category": "budget",
        "llm_audit.policy.action": "flagged",
        "llm_audit.policy.source": "otel_llm_audit.budgets",
        "llm_audit.policy.name": "team-daily",
        "llm_audit.budget.name": "team-daily",
        "llm_audit.budget.scope": '{"team":"clinical-ai"}',
        "llm_audit.budget.period": "day",
        "llm_audit.budget.period.key": "2026-11-18",
        "llm_audit.budget.unit": "usd",
        "llm_audit.budget.limit": 1.0,
        "llm_audit.budget.spend": pytest.approx(1.2),
        "llm_audit.budget.threshold": 1.0,
        "llm_audit.budget.enforced": False,
    }
    # Another team, another model, no identity: not in this scope.
    assert list(rule.observe(_span(cost=5.0, **{semconv.LLM_AUDIT_TEAM: "billing"}))) == []
    assert list(rule.observe(_span(cost=5.0))) == []
    rule.shutdown()


def test_each_value_of_a_star_scope_has_its_own_budget_and_tokens_count(ledger: BudgetLedger) -> None:
    budget = Budget(name="per-user", period="hour", limit_tokens=100, scope={"user": "*"}, thresholds=(1.0,))
    rule = BudgetRule([budget], ledger, refresh_s=0)
    alice = [_policy(list(rule.observe(_span(tokens=(30, 10), **{semconv.USER_ID: "alice"})))) for _ in range(3)]
    bob = _policy(list(rule.observe(_span(tokens=(90, 20), **{semconv.USER_ID: "bob"}))))
    assert [len(e) for e in alice] == [0, 0, 1]  # 40, 80, 120 tokens
    assert alice[2][0][semconv.LLM_AUDIT_BUDGET_SCOPE] == '{"user":"alice"}'
    assert alice[2][0][semconv.LLM_AUDIT_BUDGET_PERIOD_KEY] == "2026-11-18T" + time.strftime(
        "%H", time.gmtime(DAY_1 / 1e9)
    )
    assert [e[semconv.LLM_AUDIT_BUDGET_SPEND] for e in bob] == [110]
    rule.shutdown()


def test_a_new_period_starts_from_nothing_and_fires_again(ledger: BudgetLedger) -> None:
    budget = Budget(name="daily", period="day", limit_usd=1.0, thresholds=(1.0,))
    rule = BudgetRule([budget], ledger, refresh_s=0)
    day_1 = [_policy(list(rule.observe(_span(cost=0.6, end_ns=DAY_1)))) for _ in range(3)]
    day_2 = [_policy(list(rule.observe(_span(cost=0.6, end_ns=DAY_2)))) for _ in range(3)]
    assert [len(e) for e in day_1] == [0, 1, 0] and [len(e) for e in day_2] == [0, 1, 0]
    assert day_1[1][0][semconv.LLM_AUDIT_BUDGET_PERIOD_KEY] == "2026-11-18"
    assert day_2[1][0][semconv.LLM_AUDIT_BUDGET_PERIOD_KEY] == "2026-11-19"
    assert day_2[1][0][semconv.LLM_AUDIT_BUDGET_SPEND] == pytest.approx(1.2)
    rule.shutdown()


def test_session_and_run_budgets_count_per_session_id_and_per_trace(ledger: BudgetLedger) -> None:
    session = Budget(name="per-session", period="session", limit_usd=1.0, thresholds=(1.0,))
    run = Budget(name="per-run", period="run", limit_usd=1.0, thresholds=(1.0,))
    rule = BudgetRule([session, run], ledger, refresh_s=0)
    names: list[list[tuple[str, str]]] = []
    for trace_id, session_id in ((1, "s-1"), (1, "s-1"), (2, "s-1"), (3, "s-2")):
        events = _policy(list(rule.observe(_span(cost=0.6, trace_id=trace_id, **{semconv.SESSION_ID: session_id}))))
        names.append([(e[semconv.LLM_AUDIT_BUDGET_NAME], e[semconv.LLM_AUDIT_BUDGET_PERIOD_KEY]) for e in events])
    assert names == [[], [("per-session", "s-1"), ("per-run", format(1, "032x"))], [], []]
    # no session id: the session budget does not apply; the run budget does
    events = _policy(list(rule.observe(_span(cost=5.0, trace_id=9))))
    assert [(e[semconv.LLM_AUDIT_BUDGET_NAME], e[semconv.LLM_AUDIT_BUDGET_PERIOD_KEY]) for e in events] == [
        ("per-run", format(9, "032x"))
    ]
    rule.shutdown()


def test_thresholds_fire_exactly_once_under_concurrent_threads(ledger: BudgetLedger) -> None:
    thresholds = [(0.5, 50.0), (0.8, 80.0), (1.0, 100.0)]
    crossed: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def charge() -> None:
        start.wait()
        for _ in range(25):
            (result,) = ledger.charge([Charge("shared", "{}", "2026-11-27", 1.0, thresholds)])
            with lock:
                crossed.extend(result.crossed)

    threads = [threading.Thread(target=charge) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(crossed) == [0.5, 0.8, 1.0]
    assert ledger.totals("shared", "2026-11-27") == {"{}": 200.0}


def test_thresholds_fire_exactly_once_across_processes(tmp_path: Path) -> None:
    path, gate_file = tmp_path / "budgets.db", tmp_path / "go"
    BudgetLedger(str(path)).close()  # the schema exists before the race
    children = [
        subprocess.Popen(
            [sys.executable, str(HERE / "budget_ledger_child.py"), str(path), "40", str(gate_file)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    time.sleep(0.5)  # let them all reach the gate
    gate_file.write_text("go", encoding="utf-8")
    crossed: list[float] = []
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        crossed.extend(json.loads(out))
    assert sorted(crossed) == [0.5, 0.8, 1.0]
    ledger = BudgetLedger(str(path))
    assert ledger.totals("shared", "2026-11-27") == {'{"team":"t"}': 160.0}
    ledger.close()


def test_another_process_spend_is_seen_by_the_block_check_after_a_refresh(tmp_path: Path) -> None:
    budget = Budget(name="daily", period="day", limit_usd=1.0, enforce=True)
    mine = BudgetRule([budget], BudgetLedger(str(tmp_path / "b.db")), refresh_s=0)
    other = BudgetLedger(str(tmp_path / "b.db"))
    today = time.strftime("%Y-%m-%d", time.gmtime())
    other.charge([Charge(ledger_name(budget), "{}", today, 1.5, [(1.0, 1.0)])])
    assert mine.check({}, None, None) is None  # not seen yet
    mine.refresh()
    refusal = mine.check({}, None, None)
    assert isinstance(refusal, BudgetExceededError)
    assert (refusal.budget, refusal.period, refusal.spend, refusal.limit, refusal.unit) == (
        "daily",
        today,
        1.5,
        1.0,
        "usd",
    )
    mine.shutdown()
    other.close()


def test_utilisation_is_a_gauge_per_budget_scope(ledger: BudgetLedger) -> None:
    from opentelemetry.sdk.metrics import MeterProvider

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    budget = Budget(name="per-team", period="day", limit_usd=2.0, scope={"team": "*"})
    rule = BudgetRule([budget], ledger, refresh_s=0, meter_provider=provider)
    now = time.time_ns()
    rule.observe(_span(cost=0.5, end_ns=now, **{semconv.LLM_AUDIT_TEAM: "a"}))
    rule.observe(_span(cost=1.5, end_ns=now, **{semconv.LLM_AUDIT_TEAM: "b"}))
    rule.observe(_span(cost=9.0, end_ns=DAY_1, **{semconv.LLM_AUDIT_TEAM: "c"}))  # a period that has ended
    data = reader.get_metrics_data()
    points = {
        point.attributes[semconv.LLM_AUDIT_BUDGET_SCOPE]: (point.value, dict(point.attributes))
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == semconv.METRIC_LLM_AUDIT_BUDGET_UTILIZATION
        for point in metric.data.data_points
    }
    assert {scope: value for scope, (value, _) in points.items()} == {'{"team":"a"}': 0.25, '{"team":"b"}': 0.75}
    assert points['{"team":"a"}'][1] == {
        "llm_audit.budget.name": "per-team",
        "llm_audit.budget.scope": '{"team":"a"}',
        "llm_audit.budget.period": "day",
        "llm_audit.budget.unit": "usd",
    }
    rule.shutdown()
    provider.shutdown()


# ----------------------------------------------------------------------------- end to end


@pytest.fixture
def budgeted(tmp_path: Path, make_audit: Callable[..., Any]) -> Callable[..., tuple[Any, Any]]:
    def build(*budgets: Budget) -> tuple[Any, Any]:
        logs = InMemoryLogExporter()
        audit = make_audit(
            content="raw", log_exporters=[logs], budget_ledger=str(tmp_path / "budgets.db"),
            policy=PolicyConfig(budgets=budgets),
        )  # fmt: skip
        return audit, logs

    return build


def _chat(client: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "a" * 160}])


def test_an_enforcing_budget_blocks_before_anything_is_sent(
    budgeted: Callable[..., tuple[Any, Any]], make_client: Callable[[], Any], fake_server: Any
) -> None:
    audit, logs = budgeted(
        Budget(name="team-tokens", period="day", limit_tokens=100, scope={"team": "a"}, enforce=True)
    )
    client = make_client()
    with otel_llm_audit.audit_context(team="a", user_id="u-1"):
        _chat(client)  # 41 prompt + completion tokens
        _chat(client)
        audit.pipeline.force_flush(10_000)  # the worker counts the spend, then the next call is checked
        _chat(client)  # the call that takes it past the limit still goes: it could not be known before
        audit.pipeline.force_flush(10_000)
        sent = len(fake_server.requests)
        with pytest.raises(BudgetExceededError) as raised:
            _chat(client)
    assert len(fake_server.requests) == sent  # nothing reached the provider
    assert raised.value.budget == "team-tokens" and raised.value.scope == {"team": "a"}
    with otel_llm_audit.audit_context(team="b"):
        _chat(client)  # another team is not blocked
    spans = audit.llm_spans()
    assert len(spans) == 5
    blocked = spans[3]
    assert blocked.status.status_code.name == "ERROR"
    assert blocked.attributes[semconv.ERROR_TYPE] == "otel_llm_audit.BudgetExceededError"
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in blocked.attributes
    (event,) = _policy(list(blocked.events))
    assert event[semconv.LLM_AUDIT_POLICY_ACTION] == "blocked"
    assert event[semconv.LLM_AUDIT_BUDGET_NAME] == "team-tokens"
    assert event[semconv.LLM_AUDIT_BUDGET_ENFORCED] is True
    assert blocked.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True
    # the blocked call and the threshold events are audit log records too
    actions = sorted(
        (d.log_record.attributes["llm_audit.policy.action"], d.log_record.attributes.get("llm_audit.budget.threshold"))
        for d in logs.get_finished_logs()
    )
    assert actions == [("blocked", 1.0), ("flagged", 0.5), ("flagged", 0.8), ("flagged", 1.0)]


def test_a_budget_that_does_not_enforce_only_reports(
    budgeted: Callable[..., tuple[Any, Any]], make_client: Callable[[], Any], fake_server: Any
) -> None:
    audit, _ = budgeted(Budget(name="soft", period="day", limit_tokens=50))
    client = make_client()
    for _ in range(4):
        _chat(client)
        audit.pipeline.force_flush(10_000)
    assert len(fake_server.requests) == 4
    assert [e[semconv.LLM_AUDIT_BUDGET_THRESHOLD] for s in audit.llm_spans() for e in _policy(list(s.events))] == [
        0.5, 0.8, 1.0,
    ]  # fmt: skip


def test_anthropic_calls_are_blocked_too(budgeted: Callable[..., tuple[Any, Any]], fake_server: Any) -> None:
    anthropic = pytest.importorskip("anthropic")
    from otel_llm_audit.instrumentation.anthropic import AnthropicInstrumentor

    audit, _ = budgeted(Budget(name="all", period="day", limit_usd=0.000001, enforce=True, thresholds=(1.0,)))
    audit.add_instrumentor(AnthropicInstrumentor())
    with anthropic.Anthropic(base_url=fake_server.anthropic_base_url, api_key="sk-ant-test", max_retries=0) as client:
        ask = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]}
        client.messages.create(**ask)
        audit.pipeline.force_flush(10_000)
        sent = len(fake_server.requests)
        with pytest.raises(BudgetExceededError):
            client.messages.create(**ask)
        assert len(fake_server.requests) == sent


def test_the_gate_is_removed_when_the_pipeline_shuts_down(tmp_path: Path) -> None:
    pipeline = otel_llm_audit.configure(
        span_exporters=[InMemorySpanExporter()], metric_readers=[], tracer_provider=TracerProvider(),
        set_global=False, instrument=False, budget_ledger=str(tmp_path / "b.db"),
        policy={"budgets": [{"name": "x", "period": "day", "limit_usd": 1, "enforce": True}]},
    )  # fmt: skip
    try:
        assert gate.current() is pipeline.budgets is not None
    finally:
        pipeline.shutdown()
        set_settings(None)
    assert gate.current() is None


def test_a_batch_is_charged_in_one_transaction_and_each_event_lands_on_its_own_span(ledger: BudgetLedger) -> None:
    budget = Budget(name="daily", period="day", limit_usd=1.0)
    rule = BudgetRule([budget], ledger, refresh_s=0)
    spans = [
        _span(cost=0.3),
        _span(cost=5.0, trace_id=2, **{semconv.LLM_AUDIT_TEAM: "x"}),
        _span(cost=0.3),
        _span(cost=0.3),
    ]
    per_span = [
        [e[semconv.LLM_AUDIT_BUDGET_THRESHOLD] for e in _policy(list(events))] for events in rule.observe_batch(spans)
    ]
    # 0.3, 5.3 (50 %, 80 % and 100 % at once), 5.6, 5.9: the second span crossed them all
    assert per_span == [[], [0.5, 0.8, 1.0], [], []]
    rule.shutdown()


# ----------------------------------------------------------------------------- failure modes


def test_a_busy_ledger_never_stalls_the_worker_and_its_charges_are_written_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from otel_llm_audit import _guard

    _guard.reset_internal_error_counts()
    budget = Budget(name="daily", period="day", limit_usd=1.0, thresholds=(1.0,))
    rule = BudgetRule([budget], BudgetLedger(str(tmp_path / "b.db")), refresh_s=0)
    other = sqlite3.connect(str(tmp_path / "b.db"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    started = time.monotonic()
    assert _policy(list(rule.observe(_span(cost=0.6)))) == []
    assert time.monotonic() - started < 5  # the busy timeout is 50 ms, not the 30 s of a default connection
    assert _guard.internal_error_counts()["budgets.ledger"] == 1
    other.execute("ROLLBACK")
    # The next span writes both: the kept 0.6 and its own 0.6 cross the limit, once.
    (event,) = _policy(list(rule.observe(_span(cost=0.6))))
    assert event[semconv.LLM_AUDIT_BUDGET_SPEND] == pytest.approx(1.2)
    assert rule.ledger.totals(ledger_name(budget), "2026-11-18") == {"{}": pytest.approx(1.2)}
    rule.shutdown()
    other.close()


def test_charges_of_spans_completed_on_an_application_thread_wait_for_the_worker(ledger: BudgetLedger) -> None:
    budget = Budget(name="daily", period="day", limit_usd=1.0, thresholds=(1.0,))
    rule = BudgetRule([budget], ledger, refresh_s=0)
    assert rule.observe_batch([_span(cost=0.7)], defer=True) == [[]]
    assert ledger.totals(ledger_name(budget), "2026-11-18") == {}  # nothing written on that thread
    (events,) = rule.observe_batch([_span(cost=0.7)])
    assert [e[semconv.LLM_AUDIT_BUDGET_SPEND] for e in _policy(list(events))] == [pytest.approx(1.4)]
    rule.shutdown()


def test_a_budget_whose_scope_changed_between_deployments_starts_afresh(tmp_path: Path) -> None:
    path = str(tmp_path / "b.db")
    old = Budget(name="spend", period="day", limit_usd=1.0, scope={"team": "*"}, enforce=True)
    first = BudgetRule([old], BudgetLedger(path), refresh_s=0)
    first.observe(_span(cost=5.0, end_ns=time.time_ns(), **{semconv.LLM_AUDIT_TEAM: "a"}))
    first.shutdown()
    new = Budget(name="spend", period="day", limit_usd=1.0, scope={"user": "*"}, enforce=True)
    second = BudgetRule([new], BudgetLedger(path), refresh_s=0)  # no KeyError at start-up
    second.refresh()
    assert second.check({"team": "a", "user": "u"}, None, None) is None
    second.shutdown()


def test_two_exhausted_runs_are_both_blocked(ledger: BudgetLedger) -> None:
    budget = Budget(name="per-run", period="run", limit_usd=1.0, enforce=True)
    rule = BudgetRule([budget], ledger, refresh_s=0)
    rule.observe(_span(cost=2.0, trace_id=11))
    rule.observe(_span(cost=2.0, trace_id=12))
    assert isinstance(rule.check({}, None, 11), BudgetExceededError)
    assert isinstance(rule.check({}, None, 12), BudgetExceededError)
    assert rule.check({}, None, 13) is None
    rule.shutdown()


def test_an_exhausted_budget_lets_calls_go_again_when_its_period_ends(ledger: BudgetLedger) -> None:
    now = [DAY_1 / 1e9]
    budget = Budget(name="daily", period="day", limit_usd=1.0, enforce=True)
    rule = BudgetRule([budget], ledger, refresh_s=0, clock=lambda: now[0])
    rule.observe(_span(cost=2.0, end_ns=DAY_1))
    assert isinstance(rule.check({}, None, None), BudgetExceededError)
    now[0] = DAY_2 / 1e9
    assert rule.check({}, None, None) is None
    rule.shutdown()


def test_a_ledger_file_that_is_not_a_database_is_a_start_up_error(tmp_path: Path) -> None:
    path = tmp_path / "budgets.db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(BudgetConfigError, match=f"budget ledger '{path}' cannot be opened"):
        otel_llm_audit.configure(
            span_exporters=[], metric_readers=[], tracer_provider=TracerProvider(), set_global=False,
            instrument=False, budget_ledger=str(path),
            policy={"budgets": [{"name": "x", "period": "day", "limit_usd": 1}]},
        )  # fmt: skip


def test_the_gate_is_installed_only_when_a_budget_enforces(tmp_path: Path) -> None:
    pipeline = otel_llm_audit.configure(
        span_exporters=[], metric_readers=[], tracer_provider=TracerProvider(), set_global=False,
        instrument=False, budget_ledger=str(tmp_path / "b.db"),
        policy={"budgets": [{"name": "x", "period": "day", "limit_usd": 1}]},
    )  # fmt: skip
    try:
        assert pipeline.budgets is not None and gate.current() is None
    finally:
        pipeline.shutdown()
        set_settings(None)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="fork() only")
def test_a_forked_child_charges_the_ledger_with_a_connection_of_its_own(tmp_path: Path) -> None:
    import os

    budget = Budget(name="daily", period="day", limit_usd=10.0, enforce=True)
    rule = BudgetRule([budget], BudgetLedger(str(tmp_path / "b.db")), refresh_s=0.05)
    rule.observe(_span(cost=1.0))
    pid = os.fork()
    if pid == 0:  # the child: charge, then say how it went through the exit code
        code = 1
        try:
            rule.observe(_span(cost=2.0))
            code = 0 if any(t.name == "otel-llm-audit-budgets" for t in threading.enumerate()) else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert rule.ledger.totals(ledger_name(budget), "2026-11-18") == {"{}": pytest.approx(3.0)}
    rule.shutdown()


def test_a_session_budget_blocks_a_session_whose_id_the_application_gave_as_a_number(
    budgeted: Callable[..., tuple[Any, Any]], make_client: Callable[[], Any], fake_server: Any
) -> None:
    audit, _ = budgeted(Budget(name="per-session", period="session", limit_tokens=10, enforce=True))
    client = make_client()
    with otel_llm_audit.audit_context(session_id=42):  # type: ignore[arg-type]  # an int, as apps do
        _chat(client)
        audit.pipeline.force_flush(10_000)
        with pytest.raises(BudgetExceededError) as raised:
            _chat(client)
    assert raised.value.period == "42"
    assert len(fake_server.requests) == 1


def test_a_start_up_error_after_the_budgets_leaves_no_budget_thread_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "no-such-exporter")
    with pytest.raises(ValueError, match="no exporter named 'no-such-exporter'"):
        otel_llm_audit.configure(
            span_exporters=[], metric_readers=[], tracer_provider=TracerProvider(), set_global=False,
            instrument=False, budget_ledger=str(tmp_path / "b.db"),
            policy={"budgets": [{"name": "x", "period": "day", "limit_usd": 1, "enforce": True}]},
        )  # fmt: skip
    assert not [t for t in threading.enumerate() if t.name == "otel-llm-audit-budgets"]
    assert gate.current() is None


def test_the_gate_reads_the_scope_from_the_identity_attributes_and_the_requested_model(ledger: BudgetLedger) -> None:
    budget = Budget(name="per-team-model", period="day", limit_usd=1.0, scope={"team": "*", "model": "*"}, enforce=True)
    rule = BudgetRule([budget], ledger, refresh_s=0)
    rule.observe(_span(cost=2.0, end_ns=time.time_ns(), **{semconv.LLM_AUDIT_TEAM: "a"}))  # model gpt-4o-mini
    identity = {semconv.LLM_AUDIT_TEAM: "a", semconv.USER_ID: "u-1"}
    refusal = rule.refuse(identity, "gpt-4o-mini", None)
    assert isinstance(refusal, BudgetExceededError)
    assert refusal.scope == {"model": "gpt-4o-mini", "team": "a"}
    assert rule.refuse(identity, "gpt-4o", None) is None  # another model
    assert rule.refuse({semconv.LLM_AUDIT_TEAM: "b"}, "gpt-4o-mini", None) is None  # another team
    assert rule.refuse({}, "gpt-4o-mini", None) is None  # no team: the budget does not apply
    rule.shutdown()
