"""Never break the application; record what went wrong in the SDK exactly as it happened.

Our processor failing (each callback, the nesting resolver) must not change the run's result;
the SDK's own exceptions (a guardrail tripwire, too many turns, a failing tool) reach the
caller untouched and are recorded on the spans where they happened.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

agents = pytest.importorskip("agents")

from agent_runs import MODES, run  # noqa: E402
from agent_spans import by_name, events, one, policy  # noqa: E402

from otel_llm_audit import _guard, semconv  # noqa: E402
from otel_llm_audit.demo.fake_server import WEATHER_ANSWER  # noqa: E402
from otel_llm_audit.emitter import parents  # noqa: E402
from otel_llm_audit.instrumentation.openai_agents import OpenAIAgentsInstrumentor  # noqa: E402
from otel_llm_audit.instrumentation.openai_agents._processor import AuditTracingProcessor  # noqa: E402


@agents.function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@agents.function_tool
def broken_tool(city: str) -> str:
    """A tool that fails."""
    raise ValueError(f"no station in {city}")


def error_type(span: Any) -> str:
    """The exception's class name in ``error.type`` (the module part is the SDK's public one: ``agents.``)."""
    value = str(span.attributes[semconv.ERROR_TYPE])
    assert value.startswith("agents."), value
    return value.rsplit(".", 1)[-1]


def weather_agent(make_model: Any, **kwargs: Any) -> Any:
    return agents.Agent(name="Weather", instructions="Answer.", model=make_model("chat"), **kwargs)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "broken", ["_trace_start", "_trace_end", "_span_start", "_span_end", "resolve", "on_interruption"]
)
def test_our_failures_do_not_change_the_run(
    make_agents_audit: Any, make_model: Any, monkeypatch: pytest.MonkeyPatch, broken: str, mode: str
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug in otel-llm-audit")

    monkeypatch.setattr(AuditTracingProcessor, broken, boom)  # before instrument: the resolver is bound then
    audit = make_agents_audit()
    result = run(weather_agent(make_model, tools=[get_weather]), mode, "Weather in Paris?")
    assert result.final_output == WEATHER_ANSWER
    assert len(result.new_items) == 3  # the tool call, its output, the answer
    audit.spans()
    if broken != "on_interruption":  # (called only when a run pauses for an approval)
        assert sum(_guard.internal_error_counts().values()) >= 1
    OpenAIAgentsInstrumentor().uninstrument()  # even a broken resolver is unregistered
    assert parents._resolvers == []


def test_a_guardrail_tripwire_reaches_the_caller_and_is_a_policy_event(make_agents_audit: Any, make_model: Any) -> None:
    @agents.input_guardrail
    def no_account_numbers(ctx: Any, agent: Any, user_input: Any) -> Any:
        return agents.GuardrailFunctionOutput(output_info={"found": "account"}, tripwire_triggered=True)

    audit = make_agents_audit()
    agent = weather_agent(make_model, input_guardrails=[no_account_numbers])
    with pytest.raises(agents.InputGuardrailTripwireTriggered) as raised:
        asyncio.run(agents.Runner.run(agent, "My account is 12345"))
    assert raised.value.guardrail_result.guardrail.get_name() == "no_account_numbers"

    spans = audit.spans()
    agent_span, workflow = one(spans, "invoke_agent Weather"), one(spans, "invoke_workflow Agent workflow")
    assert policy(agent_span) == [  # once: the tripwire that stopped the run is this guardrail's verdict
        {
            semconv.LLM_AUDIT_POLICY_CATEGORY: "guardrail",
            semconv.LLM_AUDIT_POLICY_ACTION: "blocked",
            semconv.LLM_AUDIT_POLICY_SOURCE: "openai_agents",
            semconv.LLM_AUDIT_POLICY_NAME: "no_account_numbers",
            semconv.LLM_AUDIT_POLICY_DETAILS: {"triggered": True},
        }
    ]
    for span in (agent_span, workflow):
        assert not span.status.is_ok
        assert error_type(span) == "InputGuardrailTripwireTriggered"
    assert agent_span.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True


def test_max_turns_reaches_the_caller_and_fails_the_agent_and_the_workflow(
    make_agents_audit: Any, make_model: Any
) -> None:
    audit = make_agents_audit()
    with pytest.raises(agents.MaxTurnsExceeded):
        asyncio.run(agents.Runner.run(weather_agent(make_model, tools=[get_weather]), "Weather?", max_turns=1))
    spans = audit.spans()
    for name in ("invoke_agent Weather", "invoke_workflow Agent workflow"):
        assert error_type(one(spans, name)) == "MaxTurnsExceeded"
    tool = one(spans, "execute_tool get_weather")  # the tool of the one turn it had did run
    assert tool.status.is_ok


def test_a_failing_tool_is_an_execute_tool_error_and_the_run_goes_on(make_agents_audit: Any, make_model: Any) -> None:
    audit = make_agents_audit()
    result = asyncio.run(agents.Runner.run(weather_agent(make_model, tools=[broken_tool]), "Weather?"))
    assert result.final_output == WEATHER_ANSWER  # the SDK gave the model the error text; the model answered
    spans = audit.spans()
    tool = one(spans, "execute_tool broken_tool")
    assert not tool.status.is_ok
    assert tool.attributes[semconv.ERROR_TYPE] == "_OTHER"
    # The SDK's words; the exception text too where the SDK does not redact it (it does from 0.2x on).
    assert (tool.status.description or "").startswith("Error running tool (non-fatal)")
    assert tool.attributes[semconv.GEN_AI_TOOL_CALL_ID] == "call_fake_1"
    assert json.loads(str(tool.attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS])) == {"city": "Paris"}
    assert [e.name for e in tool.events] == ["exception"]
    assert one(spans, "invoke_agent Weather").status.is_ok


def test_an_exception_the_application_is_handling_is_not_the_runs(make_agents_audit: Any, make_model: Any) -> None:
    """A run started inside an ``except`` block (a retry) succeeds: its spans must not inherit that exception."""
    audit = make_agents_audit()
    try:
        raise ConnectionError("first attempt failed")
    except ConnectionError:
        result = asyncio.run(agents.Runner.run(weather_agent(make_model), "Hi"))
    assert result.final_output == "Hello from the fake model."
    for span in audit.spans():
        assert span.status.is_ok, span.name


def test_sensitive_data_off_still_records_the_choices(make_agents_audit: Any, make_model: Any) -> None:
    """``trace_include_sensitive_data=False``: the SDK keeps no model output; the choice is read off the steps."""
    audit = make_agents_audit()
    agent = weather_agent(make_model, tools=[get_weather, broken_tool])
    config = agents.RunConfig(trace_include_sensitive_data=False)
    result = asyncio.run(agents.Runner.run(agent, "Weather?", run_config=config))
    assert result.final_output == WEATHER_ANSWER
    spans = audit.spans()
    agent_span = one(spans, "invoke_agent Weather")
    assert events(agent_span, semconv.EVENT_LLM_AUDIT_DECISION) == [
        {
            semconv.LLM_AUDIT_DECISION_POINT: "tool_choice",
            semconv.LLM_AUDIT_DECISION_CHOSEN: ("get_weather",),
            semconv.LLM_AUDIT_DECISION_OPTIONS: ("get_weather", "broken_tool"),
            semconv.GEN_AI_AGENT_NAME: "Weather",
        }
    ]
    tool = one(spans, "execute_tool get_weather")
    assert semconv.GEN_AI_TOOL_CALL_ARGUMENTS not in tool.attributes  # the SDK did not keep them
    assert by_name(spans, "chat gpt-4o-mini")  # the LLM spans come from the OpenAI instrumentor regardless


def test_a_run_the_sdk_never_ends_is_ended_as_abandoned_not_lost(make_agents_audit: Any) -> None:
    audit = make_agents_audit()
    sdk_trace = agents.trace("Left open")
    sdk_trace.start(mark_as_current=False)
    OpenAIAgentsInstrumentor().uninstrument()  # the process is stopping with the run still open
    (workflow,) = [s for s in audit.spans() if s.name == "invoke_workflow Left open"]
    assert workflow.attributes[semconv.ERROR_TYPE] == "abandoned"
    assert workflow.status.description == "the Agents SDK never ended this step"
