"""Anomalies within an agent run (one trace): each rule fires once, on the span that went past it.

The unit tests feed hand-built spans to :class:`AnomalyRule` (exact timestamps, attributes and
kinds); the end-to-end tests drive a LangGraph agent through the real ``openai`` SDK against the
loopback fake model server, in a pipeline built by ``configure()``, and read the exported spans
and audit log records.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from otel_llm_audit import _guard, semconv
from otel_llm_audit.demo.fake_server import WEATHER_ANSWER
from otel_llm_audit.emitter.handoff import SCOPE_PREFIX
from otel_llm_audit.processing.anomalies import AnomalyRule
from otel_llm_audit.processing.budget_config import AnomalyLimits, PolicyConfig
from otel_llm_audit.processing.policy_stage import PolicyStage

try:  # renamed in SDK 1.39; the old name still works there, with a warning
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as InMemoryLogExporter
except ImportError:  # SDK 1.30
    from opentelemetry.sdk._logs.export import InMemoryLogExporter  # type: ignore[no-redef]

OURS = InstrumentationScope("otel_llm_audit.instrumentation.openai")
APP = InstrumentationScope("app")
T0 = 1_700_000_000_000_000_000
SECOND = 1_000_000_000
#: Only the rule under test on: the others at 0.
OFF = {"max_model_calls": 0, "max_tool_calls": 0, "repeated_tool_call": 0, "max_run_tokens": 0, "max_run_seconds": 0}

_span_ids = itertools.count(1)


def limits(**on: Any) -> AnomalyLimits:
    return AnomalyLimits(**{**OFF, **on})


def span(
    trace_id: int,
    operation: str | None = None,
    attrs: dict[str, Any] | None = None,
    *,
    start: int = T0,
    end: int | None = None,
    kind: SpanKind = SpanKind.CLIENT,
    scope: InstrumentationScope | None = OURS,
) -> ReadableSpan:
    """A finished span of ``trace_id`` (a new span id each time)."""
    attributes = dict(attrs or {})
    if operation is not None:
        attributes[semconv.GEN_AI_OPERATION_NAME] = operation
    context = SpanContext(trace_id, next(_span_ids), is_remote=False, trace_flags=TraceFlags(1))
    return ReadableSpan(
        name=operation or "step",
        context=context,
        attributes=attributes,
        kind=kind,
        start_time=start,
        end_time=end if end is not None else start + SECOND,
        instrumentation_scope=scope,
    )


def tokens(input_tokens: Any = None, output_tokens: Any = None) -> dict[str, Any]:
    out = {"gen_ai.usage.input_tokens": input_tokens, "gen_ai.usage.output_tokens": output_tokens}
    return {k: v for k, v in out.items() if v is not None}


def chat(trace_id: int, attrs: dict[str, Any] | None = None, **options: Any) -> ReadableSpan:
    return span(trace_id, "chat", attrs, **options)


def tool(
    trace_id: int, name: Any, arguments: str | None = None, attrs: dict[str, Any] | None = None, **options: Any
) -> ReadableSpan:
    attributes = {"gen_ai.tool.name": name, **(attrs or {})}
    if arguments is not None:
        attributes["gen_ai.tool.call.arguments"] = arguments
    options.setdefault("kind", SpanKind.INTERNAL)
    return span(trace_id, "execute_tool", attributes, **options)


def anomaly(rule: str, observed: float, limit: float, tool_name: str | None = None) -> dict[str, Any]:
    """The attributes of the event ``rule`` adds."""
    attrs: dict[str, Any] = {
        "llm_audit.policy.category": "anomaly",
        "llm_audit.policy.action": "flagged",
        "llm_audit.policy.source": "otel_llm_audit.anomalies",
        "llm_audit.policy.name": rule,
        "llm_audit.anomaly.rule": rule,
        "llm_audit.anomaly.observed": observed,
        "llm_audit.anomaly.limit": limit,
    }
    if tool_name is not None:
        attrs["gen_ai.tool.name"] = tool_name
    return attrs


def observe_all(rule: AnomalyRule, spans: Sequence[ReadableSpan]) -> list[list[Event]]:
    return [list(rule.observe(s)) for s in spans]


def fired(results: list[list[Event]]) -> dict[int, list[dict[str, Any]]]:
    """Position in the sequence -> the attributes of the events added there (only where some were)."""
    out: dict[int, list[dict[str, Any]]] = {}
    for index, events in enumerate(results):
        if events:
            assert all(e.name == "llm_audit.policy" for e in events)
            out[index] = [dict(e.attributes or {}) for e in events]
    return out


@pytest.fixture(autouse=True)
def _no_internal_errors() -> Iterator[None]:
    _guard.reset_internal_error_counts()
    yield
    assert _guard.internal_error_counts() == {}


# --------------------------------------------------------------------------- model calls


def test_model_calls_fire_once_on_the_call_past_the_limit() -> None:
    rule = AnomalyRule(limits(max_model_calls=2))
    spans = [
        chat(1),
        span(1, "embeddings"),  # not a turn of the loop
        span(1, "fetch_response"),
        span(1, "invoke_agent"),
        span(1, "text_completion"),
        chat(1, scope=APP),  # another instrumentation's span of the same call: not counted
        span(1, "generate_content"),  # the third model call
        chat(1),
        chat(1),
    ]
    results = observe_all(rule, spans)
    assert fired(results) == {6: [anomaly("model_calls", 3.0, 2.0)]}
    (event,) = results[6]
    assert event.timestamp == spans[6].end_time


def test_a_rule_at_zero_is_off_and_all_at_zero_track_nothing() -> None:
    rule = AnomalyRule(limits(max_tool_calls=1))
    assert fired(observe_all(rule, [chat(2) for _ in range(100)])) == {}
    silent = AnomalyRule(AnomalyLimits(**OFF))
    assert fired(observe_all(silent, [chat(2), tool(2, "t", "{}"), tool(2, "t", "{}"), tool(2, "t", "{}")])) == {}
    assert silent.tracked_runs == 0


def test_the_default_limits() -> None:
    rule = AnomalyRule(AnomalyLimits())
    results = observe_all(rule, [chat(3) for _ in range(51)])
    assert fired(results) == {50: [anomaly("model_calls", 51.0, 50.0)]}


# --------------------------------------------------------------------------- tool calls


def test_tool_calls_fire_once_with_the_tool_that_went_past_the_limit() -> None:
    rule = AnomalyRule(limits(max_tool_calls=2))
    spans = [
        tool(4, "search", '{"q": "a"}'),
        chat(4),
        span(4, "execute_tool", {"gen_ai.tool.name": "search"}, kind=SpanKind.SERVER),  # MCP server side
        tool(4, "lookup", '{"q": "b"}'),
        tool(4, "fetch", '{"q": "c"}'),  # the third tool call
        tool(4, "search", '{"q": "d"}'),
    ]
    assert fired(observe_all(rule, spans)) == {4: [anomaly("tool_calls", 3.0, 2.0, "fetch")]}


def test_the_same_arguments_in_a_row_fire_on_the_kth_call_model_calls_between_them_do_not_count() -> None:
    rule = AnomalyRule(limits(repeated_tool_call=3))
    spans = [
        tool(5, "weather", '{"city": "Paris", "unit": "C"}'),
        chat(5),
        tool(5, "weather", '{"city": "Paris", "unit": "C"}'),
        tool(5, "news", '{"city": "Paris", "unit": "C"}'),  # another tool breaks the streak
        tool(5, "weather", '{"city": "Paris", "unit": "C"}'),
        tool(5, "weather", '{"city": "Rome", "unit": "C"}'),  # other arguments break it too
        tool(5, "weather", '{"city": "Paris", "unit": "C"}'),
        chat(5),
        tool(5, "weather", '{"unit":"C","city":"Paris"}'),  # the same JSON, keys in another order
        span(5, "invoke_agent"),
        tool(5, "weather", '{"city": "Paris", "unit": "C"}'),  # the third in a row
        tool(5, "weather", '{"city": "Paris", "unit": "C"}'),  # once per run
    ]
    assert fired(observe_all(rule, spans)) == {10: [anomaly("repeated_tool_call", 3.0, 3.0, "weather")]}


def test_arguments_cut_at_the_content_limit_are_compared_as_text() -> None:
    rule = AnomalyRule(limits(repeated_tool_call=2))
    cut = '{"text": "' + "x" * 50
    spans = [tool(6, "summarise", cut), tool(6, "summarise", cut + "y"), tool(6, "summarise", cut + "y")]
    assert fired(observe_all(rule, spans)) == {2: [anomaly("repeated_tool_call", 2.0, 2.0, "summarise")]}


def _hashes(arguments: Any, result: Any = "ok") -> str:
    def digest(value: Any) -> str:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    return json.dumps({"gen_ai.tool.call.arguments": [digest(arguments)], "gen_ai.tool.call.result": [digest(result)]})


def test_hash_mode_compares_the_recorded_hash_of_the_arguments() -> None:
    rule = AnomalyRule(limits(repeated_tool_call=3))
    paris, rome = _hashes({"city": "Paris"}), _hashes({"city": "Rome"})
    spans = [
        tool(7, "weather", attrs={"llm_audit.content.hashes": paris, "llm_audit.content.mode": "hash"}),
        tool(7, "weather", attrs={"llm_audit.content.hashes": _hashes({"city": "Paris"}, result="other")}),
        tool(7, "weather", attrs={"llm_audit.content.hashes": rome}),
        tool(7, "weather", attrs={"llm_audit.content.hashes": paris}),
        tool(7, "weather", attrs={"llm_audit.content.hashes": paris}),
        tool(7, "weather", attrs={"llm_audit.content.hashes": paris}),  # the third in a row
    ]
    assert fired(observe_all(rule, spans)) == {5: [anomaly("repeated_tool_call", 3.0, 3.0, "weather")]}


def test_without_arguments_no_repetition_is_claimed_but_tool_calls_still_count() -> None:
    """Content mode ``none`` (or content withheld): the arguments are unknown, never "the same"."""
    rule = AnomalyRule(limits(repeated_tool_call=2, max_tool_calls=4))
    spans = [
        tool(8, "weather", attrs={"llm_audit.content.mode": "none"}),
        tool(8, "weather", attrs={"llm_audit.content.mode": "none"}),
        tool(8, "weather", attrs={"llm_audit.content.hashes": "not json"}),
        tool(8, "weather", attrs={"llm_audit.content.hashes": '{"gen_ai.tool.call.result": ["ab"]}'}),
        tool(8, "weather"),  # the fifth tool call
    ]
    assert fired(observe_all(rule, spans)) == {4: [anomaly("tool_calls", 5.0, 4.0, "weather")]}
    # A call without arguments also breaks a streak of known ones.
    rule = AnomalyRule(limits(repeated_tool_call=2))
    spans = [tool(9, "weather", "{}"), tool(9, "weather"), tool(9, "weather", "{}"), tool(9, "weather", "{}")]
    assert fired(observe_all(rule, spans)) == {3: [anomaly("repeated_tool_call", 2.0, 2.0, "weather")]}


# --------------------------------------------------------------------------- tokens and time


def test_run_tokens_sum_input_and_output_of_model_calls_and_embeddings() -> None:
    rule = AnomalyRule(limits(max_run_tokens=100))
    spans = [
        chat(10, tokens(30, 10)),
        span(10, "embeddings", tokens(20)),
        span(10, "invoke_agent", tokens(500, 500)),  # not a call
        chat(10, tokens(500), scope=APP),  # not ours
        chat(10, tokens("12", True)),  # odd values count as none
        chat(10, tokens(float("nan"), -5)),
        chat(10, tokens(30, 10)),  # 100: the limit, not past it
        chat(10, tokens(7.0)),  # 107
        chat(10, tokens(1000)),
    ]
    assert fired(observe_all(rule, spans)) == {7: [anomaly("run_tokens", 107.0, 100.0)]}


def test_run_duration_runs_from_the_earliest_start_seen_to_the_end_of_the_span() -> None:
    rule = AnomalyRule(limits(max_run_seconds=10))
    spans = [
        chat(11, start=T0 + 2 * SECOND, end=T0 + 5 * SECOND),
        span(11, None, start=T0, end=T0 + 6 * SECOND),  # a step: any span of ours counts for time
        tool(11, "wait", "{}", start=T0 + 6 * SECOND, end=T0 + 10 * SECOND),  # exactly 10 s: not past it
        span(11, "chat", scope=APP, start=T0, end=T0 + 20 * SECOND),  # not ours
        chat(11, start=T0 + 9 * SECOND, end=T0 + 10 * SECOND + 250_000_000),  # 10.25 s
        chat(11, start=T0 + 11 * SECOND, end=T0 + 30 * SECOND),
    ]
    assert fired(observe_all(rule, spans)) == {4: [anomaly("run_duration", 10.25, 10.0)]}


def test_a_root_span_ending_last_brings_the_runs_real_start() -> None:
    rule = AnomalyRule(limits(max_run_seconds=60))
    spans = [
        chat(12, start=T0 + 100 * SECOND, end=T0 + 101 * SECOND),
        span(12, "invoke_workflow", start=T0, end=T0 + 102 * SECOND, kind=SpanKind.INTERNAL),
    ]
    assert fired(observe_all(rule, spans)) == {1: [anomaly("run_duration", 102.0, 60.0)]}


def test_several_rules_on_one_span_come_in_a_fixed_order() -> None:
    rule = AnomalyRule(
        AnomalyLimits(max_model_calls=1, max_tool_calls=1, repeated_tool_call=2, max_run_tokens=5, max_run_seconds=1)
    )
    spans = [
        chat(13, start=T0, end=T0 + 1),
        chat(13, tokens(6), start=T0, end=T0 + 2 * SECOND),
    ]
    assert fired(observe_all(rule, spans)) == {
        1: [anomaly("model_calls", 2.0, 1.0), anomaly("run_tokens", 6.0, 5.0), anomaly("run_duration", 2.0, 1.0)]
    }


# --------------------------------------------------------------------------- runs


def test_interleaved_runs_are_counted_apart() -> None:
    rule = AnomalyRule(limits(max_model_calls=2))
    spans = [chat(20), chat(21), chat(20), chat(21), chat(21), chat(20), chat(20), chat(21)]
    assert fired(observe_all(rule, spans)) == {
        4: [anomaly("model_calls", 3.0, 2.0)],
        5: [anomaly("model_calls", 3.0, 2.0)],
    }
    assert rule.tracked_runs == 2


def test_at_most_max_runs_are_tracked_the_least_recently_active_forgotten_first() -> None:
    rule = AnomalyRule(limits(max_model_calls=2), max_runs=3)
    observe_all(rule, [chat(30), chat(31), chat(30), chat(32), chat(33)])  # 31 is forgotten, not 30
    assert rule.tracked_runs == 3
    assert fired(observe_all(rule, [chat(30)])) == {0: [anomaly("model_calls", 3.0, 2.0)]}
    # Run 31 starts afresh: its third call overall is only its second now.
    assert fired(observe_all(rule, [chat(31), chat(31), chat(31)])) == {2: [anomaly("model_calls", 3.0, 2.0)]}
    assert rule.tracked_runs == 3


def test_runs_idle_for_an_hour_are_forgotten() -> None:
    now = [0.0]
    rule = AnomalyRule(limits(max_model_calls=1), clock=lambda: now[0])
    observe_all(rule, [chat(40), chat(41)])
    now[0] = 1800.0
    observe_all(rule, [chat(41, tokens(1))])  # fires for 41; keeps it active
    now[0] = 3601.0
    assert fired(observe_all(rule, [chat(42)])) == {}
    assert rule.tracked_runs == 2  # 40 went idle; 41 was seen 1801 s ago
    assert fired(observe_all(rule, [chat(40)])) == {}  # counted afresh: its first call
    rule.shutdown()
    assert rule.tracked_runs == 0


def test_concurrent_observers_see_one_event_per_rule() -> None:
    rule = AnomalyRule(limits(max_model_calls=50, max_run_tokens=1000))
    events: list[Event] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(100):
            found = rule.observe(chat(50, tokens(2)))
            with lock:
                events.extend(found)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted((dict(e.attributes or {}) for e in events), key=lambda a: str(a["llm_audit.anomaly.rule"])) == [
        anomaly("model_calls", 51.0, 50.0),
        anomaly("run_tokens", 1002.0, 1000.0),
    ]


def test_odd_spans_are_ignored_without_raising() -> None:
    rule = AnomalyRule(AnomalyLimits(max_model_calls=1, max_tool_calls=1, repeated_tool_call=2))
    no_context = ReadableSpan(name="x", context=None, instrumentation_scope=OURS)
    no_scope = chat(60, scope=None)
    no_times = ReadableSpan(
        name="chat",
        context=SpanContext(60, 1, is_remote=False),
        attributes={semconv.GEN_AI_OPERATION_NAME: "chat"},
        instrumentation_scope=OURS,
    )
    odd_tool = tool(60, "t", "{}")
    odd_tool_attrs = dict(odd_tool.attributes or {})
    odd_tool_attrs[semconv.GEN_AI_TOOL_NAME] = 42
    odd_name = ReadableSpan(
        name="t", context=odd_tool.context, attributes=odd_tool_attrs, instrumentation_scope=OURS, start_time=T0
    )
    results = observe_all(rule, [no_context, no_scope, no_times, chat(60), odd_name, odd_name])
    assert fired(results) == {
        3: [anomaly("model_calls", 2.0, 1.0)],
        5: [
            anomaly("tool_calls", 2.0, 1.0),  # a tool name that is not a string is left out
            anomaly("repeated_tool_call", 2.0, 2.0),
        ],
    }


def test_the_policy_stage_adds_the_event_and_marks_the_span_an_audit_record() -> None:
    stage = PolicyStage([AnomalyRule(limits(max_model_calls=1))])
    first, second = chat(70), chat(70)
    out = stage.apply([first, second])
    assert out[0] is first
    assert out[1] is not second
    assert out[1].attributes == {"gen_ai.operation.name": "chat", "llm_audit.audit.record": True}
    assert [(e.name, dict(e.attributes or {})) for e in out[1].events] == [
        ("llm_audit.policy", anomaly("model_calls", 2.0, 1.0))
    ]


# --------------------------------------------------------------------------- a real agent, end to end

SMALL = {"repeated_tool_call": 3, "max_model_calls": 4, "max_tool_calls": 3, "max_run_tokens": 100}
#: The fake server's usage for the looping agent's five model calls (input, output): deterministic.
LOOP_USAGE = [(8, 5), (21, 5), (35, 5), (48, 5), (62, 10)]


def _ours(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.instrumentation_scope and s.instrumentation_scope.name.startswith(SCOPE_PREFIX)]


def _anomalies(span: ReadableSpan) -> list[dict[str, Any]]:
    return [
        dict(e.attributes or {})
        for e in span.events
        if e.name == "llm_audit.policy" and (e.attributes or {}).get("llm_audit.policy.category") == "anomaly"
    ]


def _by_end(spans: Sequence[ReadableSpan], operation: str) -> list[ReadableSpan]:
    found = [s for s in spans if (s.attributes or {}).get(semconv.GEN_AI_OPERATION_NAME) == operation]
    return sorted(found, key=lambda s: s.end_time or 0)


@pytest.fixture
def agent_audit(make_audit: Any, make_client: Any) -> Any:
    """``run(content, loops, runs, policy)``: a pipeline with ``policy``; the agent run ``runs`` times."""
    from anomaly_agent import build_agent, run_agent
    from otel_llm_audit.instrumentation.langchain import LangChainInstrumentor

    def run(content: str, loops: int, runs: int = 1, policy: Any = None) -> tuple[list[ReadableSpan], list[Any]]:
        logs = InMemoryLogExporter()
        audit = make_audit(content=content, policy=policy, log_exporters=[logs])
        if audit.pipeline.masking is not None:
            assert audit.pipeline.masking.wait_ready(60)
        audit.add_instrumentor(LangChainInstrumentor())
        graph = build_agent(make_client(), loops=loops)
        for _ in range(runs):
            assert run_agent(graph) == WEATHER_ANSWER
        spans = audit.spans()
        return spans, [data.log_record for data in logs.get_finished_logs()]

    return run


@pytest.mark.parametrize("content", ["raw", "masked", "hash"])
def test_a_looping_agent_is_flagged_once_per_rule_on_the_span_that_went_past_it(agent_audit: Any, content: str) -> None:
    spans, records = agent_audit(content, loops=4, runs=2, policy=PolicyConfig(anomalies=limits(**SMALL)))
    runs = sorted({s.context.trace_id for s in spans if s.context is not None})
    assert len(runs) == 2  # two runs, each flagged on its own
    flagged: list[ReadableSpan] = []
    for trace_id in runs:
        run = _ours([s for s in spans if s.context is not None and s.context.trace_id == trace_id])
        calls, tools = _by_end(run, "chat"), _by_end(run, "execute_tool")
        assert len(calls) == 5 and len(tools) == 4
        assert [
            (s.attributes or {}).get(key)
            for s in calls
            for key in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")
        ] == [n for pair in LOOP_USAGE for n in pair]
        expected = {
            tools[2].context.span_id: [anomaly("repeated_tool_call", 3.0, 3.0, "get_weather")],
            tools[3].context.span_id: [anomaly("tool_calls", 4.0, 3.0, "get_weather")],
            calls[3].context.span_id: [anomaly("run_tokens", 132.0, 100.0)],  # 13 + 26 + 40 + 53
            calls[4].context.span_id: [anomaly("model_calls", 5.0, 4.0)],
        }
        assert {s.context.span_id: _anomalies(s) for s in run if _anomalies(s)} == expected
        for s in calls + tools:  # (a graph node's step is an audit record anyway: its routing decision)
            assert (s.attributes or {}).get("llm_audit.audit.record") is (
                True if s.context.span_id in expected else None
            )
        flagged += [s for s in run if s.context.span_id in expected]

    # Each event is also an audit log record for the SIEM, on its span.
    anomaly_records = [r for r in records if (r.attributes or {}).get("llm_audit.policy.category") == "anomaly"]
    assert len(anomaly_records) == 8
    by_span = {(r.trace_id, r.span_id): r for r in anomaly_records}
    for s in flagged:
        (event,) = [e for e in s.events if e.name == "llm_audit.policy"]
        record = by_span[(s.context.trace_id, s.context.span_id)]
        rule = str((event.attributes or {})["llm_audit.anomaly.rule"])
        assert (record.body, record.severity_text, record.timestamp) == (
            f"policy anomaly: flagged ({rule})",
            "WARN",
            event.timestamp,
        )
        attrs = {k: v for k, v in (record.attributes or {}).items() if k != "event.name"}
        context = {"gen_ai.operation.name": "execute_tool"}
        if rule in ("model_calls", "run_tokens"):
            context = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
            }
        assert attrs == {**context, **dict(event.attributes or {}), "llm_audit.audit.record": True}


def test_without_content_the_loop_is_flagged_by_its_counts_not_as_a_repetition(agent_audit: Any) -> None:
    spans, records = agent_audit("none", loops=4, policy={"anomalies": SMALL})
    run = _ours(spans)
    calls, tools = _by_end(run, "chat"), _by_end(run, "execute_tool")
    assert {s.context.span_id: _anomalies(s) for s in run if _anomalies(s)} == {
        tools[3].context.span_id: [anomaly("tool_calls", 4.0, 3.0, "get_weather")],
        calls[3].context.span_id: [anomaly("run_tokens", 132.0, 100.0)],
        calls[4].context.span_id: [anomaly("model_calls", 5.0, 4.0)],
    }
    assert sorted(r.attributes["llm_audit.anomaly.rule"] for r in records) == [
        "model_calls",
        "run_tokens",
        "tool_calls",
    ]


@pytest.mark.parametrize("policy", [None, {"anomalies": SMALL}], ids=["default limits", "small limits"])
def test_a_normal_agent_is_not_flagged(agent_audit: Any, policy: Any) -> None:
    spans, records = agent_audit("raw", loops=1, policy=policy)
    run = _ours(spans)
    assert [s.name for s in _by_end(run, "chat") + _by_end(run, "execute_tool")] == [
        "chat gpt-4o-mini",
        "chat gpt-4o-mini",
        "execute_tool get_weather",
    ]
    assert [s.name for s in run if any(e.name == "llm_audit.policy" for e in s.events)] == []
    assert [s.name for s in run if (s.attributes or {}).get("llm_audit.audit.record") and "step" not in s.name] == []
    assert records == []


def test_run_duration_on_a_real_run_from_span_timestamps(agent_audit: Any) -> None:
    """A limit of a nanosecond: the first span of ours to end (the first model call) is past it."""
    spans, records = agent_audit("raw", loops=1, policy={"anomalies": {**OFF, "max_run_seconds": 1e-9}})
    run = _ours(spans)
    first = _by_end(run, "chat")[0]
    assert first.end_time is not None and first.start_time is not None
    seconds = (first.end_time - first.start_time) / 1e9
    assert {s.name: _anomalies(s) for s in run if _anomalies(s)} == {
        "chat gpt-4o-mini": [anomaly("run_duration", seconds, 1e-9)]
    }
    assert len(records) == 1
