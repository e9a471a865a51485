"""One workflow end to end: handoff, agent used as a tool, a function tool, a guardrail, decisions.

Real ``agents.Agent`` / ``Runner`` drive the real ``openai`` client against the loopback fake
server, through Chat Completions and the Responses API, with ``Runner.run_sync``,
``Runner.run`` and ``Runner.run_streamed``. The whole exported tree is asserted: names, kinds,
parents, one trace id, attributes and audit events.

The scripted run: *Triage* (two handoffs, a guardrail, told to ``[think aloud]``) is forced to
hand off to *Billing agent*, which is forced to call its ``translate`` tool (the *Translator*
agent as a tool); Translator calls ``get_weather`` and answers; Billing answers with it.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from typing import Any

import pytest

agents = pytest.importorskip("agents")

from agent_runs import MODES, run  # noqa: E402
from agent_spans import by_name, children, events, links, one, parent_of, policy  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

from otel_llm_audit import semconv  # noqa: E402
from otel_llm_audit.demo.fake_server import TOOL_PREAMBLE, WEATHER_ANSWER  # noqa: E402

APIS = ["chat", "responses"]
SDK = tuple(int(part) for part in version("openai-agents").split(".")[:3])


@agents.function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@agents.input_guardrail
def polite_only(ctx: Any, agent: Any, user_input: Any) -> Any:
    return agents.GuardrailFunctionOutput(output_info={"polite": True}, tripwire_triggered=False)


def build_agents(make_model: Any, api: str) -> Any:
    translator = agents.Agent(name="Translator", instructions="Translate.", model=make_model(api), tools=[get_weather])
    billing = agents.Agent(
        name="Billing agent",
        instructions="Handle billing.",
        model=make_model(api),
        tools=[get_weather, translator.as_tool(tool_name="translate", tool_description="Translate a text.")],
        model_settings=agents.ModelSettings(tool_choice="translate"),
    )
    support = agents.Agent(name="Support", instructions="Support.", model=make_model(api))
    return agents.Agent(
        name="Triage",
        instructions="Route the request. [think aloud]",
        model=make_model(api),
        handoffs=[billing, support],
        input_guardrails=[polite_only],
        model_settings=agents.ModelSettings(tool_choice="transfer_to_billing_agent"),
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("api", APIS)
def test_workflow_tree(agents_audit: Any, make_model: Any, api: str, mode: str) -> None:
    if api == "chat" and mode == "streamed" and SDK < (0, 2, 5):
        pytest.skip("openai-agents < 0.2.5 cannot stream Chat Completions with a named tool_choice (its own bug)")
    result = run(build_agents(make_model, api), mode, "What is the weather in Paris?")
    assert result.final_output == WEATHER_ANSWER

    spans = agents_audit.spans()
    assert len({s.context.trace_id for s in spans}) == 1
    workflow = one(spans, "invoke_workflow Agent workflow")
    triage, billing = one(spans, "invoke_agent Triage"), one(spans, "invoke_agent Billing agent")
    translator = one(spans, "invoke_agent Translator")
    translate, weather = one(spans, "execute_tool translate"), one(spans, "execute_tool get_weather")
    chats = by_name(spans, "chat gpt-4o-mini")

    # The tree: every span but the workflow has its parent exported; the LLM spans nest in their agents.
    assert workflow.parent is None
    assert children(workflow, spans) == ["invoke_agent Triage", "invoke_agent Billing agent"]
    assert children(triage, spans) == ["chat gpt-4o-mini"]
    assert children(billing, spans) == ["chat gpt-4o-mini", "execute_tool translate", "chat gpt-4o-mini"]
    assert children(translate, spans) == ["invoke_agent Translator"]
    assert children(translator, spans) == ["chat gpt-4o-mini", "execute_tool get_weather", "chat gpt-4o-mini"]
    assert children(weather, spans) == []
    assert len(chats) == 5  # one per model call, no duplicate from the SDK's own generation data
    assert {parent_of(c, spans).name for c in chats} == {  # type: ignore[union-attr]
        "invoke_agent Triage",
        "invoke_agent Billing agent",
        "invoke_agent Translator",
    }
    assert {s.instrumentation_scope.name for s in chats} == {"otel_llm_audit.instrumentation.openai"}  # type: ignore[union-attr]
    assert {s.kind for s in (workflow, triage, billing, translator, translate, weather)} == {SpanKind.INTERNAL}

    # Attributes of the steps.
    run_id = workflow.attributes[semconv.LLM_AUDIT_RUN_ID]
    assert str(run_id).startswith("trace_")
    assert workflow.attributes[semconv.GEN_AI_OPERATION_NAME] == "invoke_workflow"
    assert workflow.attributes[semconv.GEN_AI_WORKFLOW_NAME] == "Agent workflow"
    assert triage.attributes[semconv.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert triage.attributes[semconv.GEN_AI_AGENT_NAME] == "Triage"
    assert triage.attributes[semconv.LLM_AUDIT_RUN_ID] == run_id
    assert json.loads(str(triage.attributes[semconv.GEN_AI_TOOL_DEFINITIONS])) == [
        {"type": "handoff", "name": "Billing agent"},
        {"type": "handoff", "name": "Support"},
    ]
    assert json.loads(str(billing.attributes[semconv.GEN_AI_TOOL_DEFINITIONS])) == [
        {"type": "function", "name": "get_weather"},
        {"type": "function", "name": "translate"},
    ]
    if api == "chat":  # the request model is known from the SDK's generation data
        assert triage.attributes[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert translate.attributes[semconv.GEN_AI_TOOL_NAME] == "translate"
    assert translate.attributes[semconv.GEN_AI_TOOL_TYPE] == "function"
    assert translate.attributes[semconv.GEN_AI_TOOL_CALL_ID] == "call_fake_2"
    assert translate.attributes[semconv.GEN_AI_AGENT_NAME] == "Billing agent"
    assert json.loads(str(translate.attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS])) == {"input": "Paris"}
    assert json.loads(str(translate.attributes[semconv.GEN_AI_TOOL_CALL_RESULT])) == WEATHER_ANSWER
    assert weather.attributes[semconv.GEN_AI_TOOL_CALL_ID] == "call_fake_1"
    assert weather.attributes[semconv.GEN_AI_AGENT_NAME] == "Translator"
    assert json.loads(str(weather.attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS])) == {"city": "Paris"}
    assert json.loads(str(weather.attributes[semconv.GEN_AI_TOOL_CALL_RESULT])) == "sunny in Paris"
    for span in (workflow, triage, billing, translator, translate, weather):
        assert span.status.is_ok, span.name
        assert span.attributes[semconv.LLM_AUDIT_CONTENT_MODE] == "raw"

    # The guardrail, the decisions and the delegations, on the agents that made them.
    assert policy(triage) == [
        {
            semconv.LLM_AUDIT_POLICY_CATEGORY: "guardrail",
            semconv.LLM_AUDIT_POLICY_ACTION: "allowed",
            semconv.LLM_AUDIT_POLICY_SOURCE: "openai_agents",
            semconv.LLM_AUDIT_POLICY_NAME: "polite_only",
            semconv.LLM_AUDIT_POLICY_DETAILS: {"triggered": False},
        }
    ]
    assert events(triage, semconv.EVENT_LLM_AUDIT_DECISION) == [
        {
            semconv.LLM_AUDIT_DECISION_POINT: "handoff",
            semconv.LLM_AUDIT_DECISION_CHOSEN: ("Billing agent",),
            semconv.LLM_AUDIT_DECISION_OPTIONS: ("Billing agent", "Support"),
            semconv.GEN_AI_AGENT_NAME: "Triage",
            semconv.LLM_AUDIT_DECISION_REASONING: TOOL_PREAMBLE,
        }
    ]
    assert events(triage, semconv.EVENT_LLM_AUDIT_DELEGATION) == [
        {
            semconv.LLM_AUDIT_DELEGATION_SOURCE: "Triage",
            semconv.LLM_AUDIT_DELEGATION_TARGET: "Billing agent",
            semconv.LLM_AUDIT_DELEGATION_KIND: "handoff",
            semconv.LLM_AUDIT_DELEGATION_INPUT: '{"city":"Paris"}',
        }
    ]
    assert links(billing) == [(triage.context.trace_id, triage.context.span_id, "delegated_from")]
    assert events(billing, semconv.EVENT_LLM_AUDIT_DECISION) == [
        {
            semconv.LLM_AUDIT_DECISION_POINT: "tool_choice",
            semconv.LLM_AUDIT_DECISION_CHOSEN: ("translate",),
            semconv.LLM_AUDIT_DECISION_OPTIONS: ("get_weather", "translate"),
            semconv.GEN_AI_AGENT_NAME: "Billing agent",
        }
    ]
    assert events(billing, semconv.EVENT_LLM_AUDIT_DELEGATION) == [
        {
            semconv.LLM_AUDIT_DELEGATION_SOURCE: "Billing agent",
            semconv.LLM_AUDIT_DELEGATION_TARGET: "Translator",
            semconv.LLM_AUDIT_DELEGATION_KIND: "agent_as_tool",
            semconv.LLM_AUDIT_DELEGATION_INPUT: '{"input":"Paris"}',
            semconv.LLM_AUDIT_DELEGATION_OUTPUT: json.dumps(WEATHER_ANSWER, ensure_ascii=False),
        }
    ]
    assert events(translator, semconv.EVENT_LLM_AUDIT_DECISION) == []  # one tool: nothing to choose
    for span in (triage, billing):
        assert span.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True
