"""Chat model runs: the LLM span comes from the provider when one of ours saw the call, else from us.

:class:`ScriptedChatModel` has no SDK behind it, so no provider instrumentor sees its calls: the
LangChain instrumentor emits the one ``chat {model}`` span itself, from the callback data, with
the run's start time. A model that wraps the ``openai`` SDK is covered by the OpenAI span, at the
top level too. A model that asked for tools among several bound ones records the decision.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from lc_support import LANGCHAIN_SCOPE, OPENAI_SCOPE, OpenAISDKChatModel, ScriptedChatModel, events, one, ours, render
from opentelemetry.trace import SpanKind, StatusCode

from otel_llm_audit import semconv

USAGE = {"input_tokens": 12, "output_tokens": 7, "total_tokens": 19, "input_token_details": {"cache_read": 4}}
TOOL_CALL = {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"18C in {city}"


@tool
def get_time(city: str) -> str:
    """The local time in a city."""
    return "noon"


def _planner(model: Any) -> Any:
    graph = StateGraph(MessagesState)
    graph.add_node("plan", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_edge(START, "plan")
    return graph.compile(name="planner")


def test_a_model_no_provider_saw_gets_one_llm_span_from_the_callbacks(lc: Any) -> None:
    model = ScriptedChatModel(
        replies=[AIMessage(content="Checking the weather first.", tool_calls=[TOOL_CALL], usage_metadata=USAGE)]
    )
    history = [
        SystemMessage("Be brief."),
        HumanMessage("Weather in Paris?"),
    ]
    _planner(model.bind_tools([get_weather, get_time], temperature=0.2)).invoke({"messages": history})
    spans = ours(lc.spans())
    assert render(spans) == [
        "invoke_workflow planner (INTERNAL)",
        "  step plan (INTERNAL)",
        "    chat scripted-1 (CLIENT)",
    ]
    chat = one(spans, "chat scripted-1")
    node = one(spans, "step plan")
    assert chat.instrumentation_scope.name == LANGCHAIN_SCOPE
    assert chat.kind is SpanKind.CLIENT
    # The run's own times: it started after its node did and ended before it.
    assert node.start_time <= chat.start_time < chat.end_time <= node.end_time
    attrs = dict(chat.attributes or {})
    assert attrs.pop(semconv.LLM_AUDIT_SDK_VERSION)
    assert json.loads(attrs.pop(semconv.GEN_AI_INPUT_MESSAGES)) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
    ]
    assert json.loads(attrs.pop(semconv.GEN_AI_OUTPUT_MESSAGES)) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Checking the weather first."},
                {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}},
            ],
            "finish_reason": "tool_call",
        }
    ]
    assert [d["name"] for d in json.loads(attrs.pop(semconv.GEN_AI_TOOL_DEFINITIONS))] == ["get_weather", "get_time"]
    assert list(attrs.pop(semconv.GEN_AI_RESPONSE_FINISH_REASONS)) == ["tool_call"]
    assert attrs == {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "scriptedchatmodel",  # LangChain's ls_provider for this class
        semconv.GEN_AI_REQUEST_MODEL: "scripted-1",
        semconv.GEN_AI_REQUEST_TEMPERATURE: 0.2,
        semconv.GEN_AI_RESPONSE_MODEL: "scripted-1",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 12,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 7,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 4,
        semconv.LLM_AUDIT_CONTENT_MODE: "raw",
    }
    # Several tools bound, some chosen: the decision, with the model's stated reasoning, on the step.
    assert events(node, semconv.EVENT_LLM_AUDIT_DECISION) == [
        {
            semconv.LLM_AUDIT_DECISION_POINT: "tool_choice",
            semconv.LLM_AUDIT_DECISION_CHOSEN: ("get_weather",),
            semconv.LLM_AUDIT_DECISION_OPTIONS: ("get_weather", "get_time"),
            semconv.LLM_AUDIT_DECISION_REASONING: "Checking the weather first.",
        }
    ]
    assert node.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True


def test_tool_results_in_the_history_and_no_decision_with_a_single_tool(lc: Any) -> None:
    model = ScriptedChatModel(replies=[AIMessage(content="", tool_calls=[TOOL_CALL])])
    history = [
        HumanMessage("Weather?"),
        AIMessage(content="", tool_calls=[{"name": "get_weather", "args": {"city": "Rome"}, "id": "call_0"}]),
        ToolMessage(content="21C in Rome", tool_call_id="call_0"),
    ]
    _planner(model.bind_tools([get_weather])).invoke({"messages": history})
    spans = ours(lc.spans())
    chat = one(spans, "chat scripted-1")
    assert json.loads(chat.attributes[semconv.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_0", "name": "get_weather", "arguments": {"city": "Rome"}}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_0", "response": "21C in Rome"}]},
    ]
    assert events(one(spans, "step plan"), semconv.EVENT_LLM_AUDIT_DECISION) == []  # one tool: no choice


def test_a_top_level_streamed_model_call(lc: Any) -> None:
    model = ScriptedChatModel(replies=[AIMessage(content="Three free beds.", usage_metadata=USAGE)])
    assert "".join(str(c.content) for c in model.stream("Free beds?")) == "Three free beds."
    (chat,) = ours(lc.spans())
    assert chat.name == "chat scripted-1"
    assert chat.parent is None
    assert chat.attributes[semconv.GEN_AI_REQUEST_STREAM] is True
    assert chat.attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert json.loads(chat.attributes[semconv.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Three free beds."}], "finish_reason": "stop"}
    ]


async def test_an_async_top_level_model_call(lc: Any) -> None:
    model = ScriptedChatModel(replies=[AIMessage(content="Noted.")])
    assert (await model.ainvoke("Note this.")).content == "Noted."
    (chat,) = ours(lc.spans())
    assert chat.name == "chat scripted-1"
    assert chat.instrumentation_scope.name == LANGCHAIN_SCOPE


def test_a_failing_model_call_is_an_error_span_and_the_error_reaches_the_caller(lc: Any) -> None:
    model = ScriptedChatModel(replies=[AIMessage(content="unused")], fail_with=TimeoutError("model timed out"))
    with pytest.raises(TimeoutError, match="model timed out"):
        _planner(model).invoke({"messages": [HumanMessage("hi")]})
    spans = ours(lc.spans())
    chat = one(spans, "chat scripted-1")
    assert chat.status.status_code is StatusCode.ERROR
    assert chat.attributes[semconv.ERROR_TYPE] == "TimeoutError"
    assert one(spans, "step plan").attributes[semconv.ERROR_TYPE] == "TimeoutError"


def test_a_top_level_wrapped_openai_model_is_not_reported_twice(lc: Any, client: Any) -> None:
    model = OpenAISDKChatModel(client=client)
    model.invoke("hi")
    model.invoke([HumanMessage("again")])
    spans = ours(lc.spans())
    assert [(s.name, s.instrumentation_scope.name) for s in spans] == [
        ("chat gpt-4o-mini", OPENAI_SCOPE),
        ("chat gpt-4o-mini", OPENAI_SCOPE),
    ]


async def test_an_async_top_level_wrapped_openai_model_is_not_reported_twice(lc: Any, async_client: Any) -> None:
    model = OpenAISDKChatModel(async_client=async_client)
    await model.ainvoke("hi")
    spans = ours(lc.spans())
    assert [(s.name, s.instrumentation_scope.name) for s in spans] == [("chat gpt-4o-mini", OPENAI_SCOPE)]


def test_scripted_and_wrapped_models_in_one_node_each_give_exactly_one_span(lc: Any, client: Any) -> None:
    scripted = ScriptedChatModel(replies=[AIMessage(content="draft")])
    wrapped = OpenAISDKChatModel(client=client)

    def both(state: MessagesState) -> dict[str, Any]:
        return {"messages": [scripted.invoke(state["messages"]), wrapped.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("both", both)
    graph.add_edge(START, "both")
    graph.compile(name="mixed").invoke({"messages": [HumanMessage("hi")]})
    spans = ours(lc.spans())
    assert render(spans) == [
        "invoke_workflow mixed (INTERNAL)",
        "  step both (INTERNAL)",
        "    chat scripted-1 (CLIENT)",
        "    chat gpt-4o-mini (CLIENT)",
    ]
    assert one(spans, "chat scripted-1").instrumentation_scope.name == LANGCHAIN_SCOPE
    assert one(spans, "chat gpt-4o-mini").instrumentation_scope.name == OPENAI_SCOPE
