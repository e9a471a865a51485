"""Provider LLM spans nest under the LangGraph node or tool that made the call, with no duplicates.

The real ``openai`` SDK talks to the loopback FakeModelServer from inside graph nodes and tools:
called by application code, or by a LangChain chat model that wraps the SDK. No context is
attached by the LangChain instrumentor; the parent comes from langchain-core's own context
variable, so nesting holds in sync code, ``ainvoke``, ``astream``, asyncio tasks and thread pools.
"""

from __future__ import annotations

import asyncio
import json
import operator
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables.config import ContextThreadPoolExecutor
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from lc_support import (
    LANGCHAIN_SCOPE,
    OPENAI_SCOPE,
    OpenAISDKChatModel,
    children,
    events,
    is_child,
    one,
    ours,
    render,
    trace_ids,
)
from opentelemetry.trace import SpanKind

from otel_llm_audit import semconv
from otel_llm_audit.demo.fake_server import HELLO_ANSWER, WEATHER_ANSWER

HI = [{"role": "user", "content": "hi"}]


class Notes(TypedDict):
    notes: Annotated[list[str], operator.add]


def _scope(span: Any) -> str:
    return span.instrumentation_scope.name


def _llm_spans(spans: list[Any]) -> list[Any]:
    return [s for s in spans if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == "chat"]


def test_openai_call_in_a_sync_node_nests_under_the_node(lc: Any, client: Any) -> None:
    def ask(state: Notes) -> dict[str, Any]:
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        return {"notes": [answer.choices[0].message.content]}

    graph = StateGraph(Notes)
    graph.add_node("ask", ask)
    graph.add_edge(START, "ask")
    assert graph.compile(name="asker").invoke({"notes": []}) == {"notes": [HELLO_ANSWER]}
    spans = ours(lc.spans())
    assert render(spans) == [
        "invoke_workflow asker (INTERNAL)",
        "  step ask (INTERNAL)",
        "    chat gpt-4o-mini (CLIENT)",
    ]
    chat = one(spans, "chat gpt-4o-mini")
    assert _scope(chat) == OPENAI_SCOPE
    assert len(trace_ids(spans)) == 1
    node = one(spans, "step ask")
    assert node.start_time <= chat.start_time <= chat.end_time <= node.end_time


async def test_openai_calls_in_asyncio_tasks_of_an_async_node_nest_under_it(lc: Any, async_client: Any) -> None:
    async def ask(question: str) -> str:
        answer = await async_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
        return str(answer.choices[0].message.content)

    async def fan_out(state: Notes) -> dict[str, Any]:
        task = asyncio.create_task(ask("first"))
        results = await asyncio.gather(task, ask("second"))
        return {"notes": list(results)}

    graph = StateGraph(Notes)
    graph.add_node("fan_out", fan_out)
    graph.add_edge(START, "fan_out")
    app = graph.compile(name="async_fan")
    await app.ainvoke({"notes": []})
    chunks = [chunk async for chunk in app.astream({"notes": []}, stream_mode="updates")]
    assert chunks == [{"fan_out": {"notes": [HELLO_ANSWER, HELLO_ANSWER]}}]

    spans = ours(lc.spans())
    assert len(trace_ids(spans)) == 2  # ainvoke, then astream
    for trace_id in trace_ids(spans):
        one_run = [s for s in spans if s.context.trace_id == trace_id]
        assert render(one_run) == [
            "invoke_workflow async_fan (INTERNAL)",
            "  step fan_out (INTERNAL)",
            "    chat gpt-4o-mini (CLIENT)",
            "    chat gpt-4o-mini (CLIENT)",
        ]
        assert all(_scope(s) == OPENAI_SCOPE for s in _llm_spans(one_run))


def test_thread_pools_parallel_nodes_and_batch(lc: Any, client: Any) -> None:
    """LangGraph's own executor (parallel nodes, ``batch``) and a context-copying pool in a node."""

    def labs(state: Notes) -> dict[str, Any]:
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        return {"notes": ["labs"]}

    def imaging(state: Notes) -> dict[str, Any]:
        with ContextThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(client.chat.completions.create, model="gpt-4o-mini", messages=HI) for _ in range(2)]
            for future in futures:
                future.result()
        return {"notes": ["imaging"]}

    graph = StateGraph(Notes)
    graph.add_node("labs", labs)
    graph.add_node("imaging", imaging)
    graph.add_edge(START, "labs")
    graph.add_edge(START, "imaging")
    app = graph.compile(name="workup")
    app.batch([{"notes": []}, {"notes": []}, {"notes": []}])

    spans = ours(lc.spans())
    assert len(trace_ids(spans)) == 3  # one trace per workflow, even run side by side
    for trace_id in trace_ids(spans):
        one_run = [s for s in spans if s.context.trace_id == trace_id]
        workflow = one(one_run, "invoke_workflow workup")
        assert workflow.parent is None
        assert {s.name for s in children(one_run, workflow)} == {"step labs", "step imaging"}
        assert len(children(one_run, one(one_run, "step labs"))) == 1
        imaging_calls = children(one_run, one(one_run, "step imaging"))
        assert [s.name for s in imaging_calls] == ["chat gpt-4o-mini", "chat gpt-4o-mini"]
        assert len(one_run) == 6


def test_workflow_nests_under_the_applications_span_and_provider_spans_under_the_node(lc: Any, client: Any) -> None:
    tracer = lc.tracer_provider.get_tracer("clinic-app")

    def ask(state: Notes) -> dict[str, Any]:
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        return {"notes": ["asked"]}

    graph = StateGraph(Notes)
    graph.add_node("ask", ask)
    graph.add_edge(START, "ask")
    with tracer.start_as_current_span("POST /triage"):
        graph.compile(name="triage").invoke({"notes": []})
    spans = lc.spans()
    request = one(spans, "POST /triage")
    workflow = one(spans, "invoke_workflow triage")
    assert is_child(workflow, request)
    assert is_child(one(spans, "chat gpt-4o-mini"), one(spans, "step ask"))
    assert len(trace_ids(spans)) == 1


def test_a_chat_model_wrapping_the_openai_sdk_gives_one_llm_span_the_providers(lc: Any, client: Any) -> None:
    model = OpenAISDKChatModel(client=client)
    graph = StateGraph(MessagesState)
    graph.add_node("model", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_edge(START, "model")
    graph.compile(name="wrapped").invoke({"messages": [("user", "hi")]})
    spans = ours(lc.spans())
    assert render(spans) == [
        "invoke_workflow wrapped (INTERNAL)",
        "  step model (INTERNAL)",
        "    chat gpt-4o-mini (CLIENT)",
    ]
    (chat,) = _llm_spans(spans)
    assert _scope(chat) == OPENAI_SCOPE  # the provider span, not a second one from the callbacks
    assert chat.attributes[semconv.GEN_AI_PROVIDER_NAME] == "openai"
    assert not [s for s in spans if _scope(s) == LANGCHAIN_SCOPE and s.kind is SpanKind.CLIENT]


async def test_an_async_wrapped_chat_model_in_a_react_agent_with_tools(lc: Any, async_client: Any) -> None:
    """The fake model asks for the first tool, then answers: provider spans and tool spans, no duplicates."""

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"18C in {city}"

    @tool
    def get_time(city: str) -> str:
        """The local time in a city."""
        return "noon"

    from langgraph.prebuilt import create_react_agent

    model = OpenAISDKChatModel(async_client=async_client)
    agent = create_react_agent(model, [get_weather, get_time], name="weather_agent")
    graph = StateGraph(MessagesState)
    graph.add_node("forecast", agent)
    graph.add_edge(START, "forecast")
    result = await graph.compile(name="desk").ainvoke({"messages": [HumanMessage("weather in Paris?")]})
    assert result["messages"][-1].content == WEATHER_ANSWER

    spans = ours(lc.spans())
    assert render(spans) == [
        "invoke_workflow desk (INTERNAL)",
        "  step forecast (INTERNAL)",
        "    invoke_agent weather_agent (INTERNAL)",
        "      step agent (INTERNAL)",
        "        chat gpt-4o-mini (CLIENT)",
        "      step tools (INTERNAL)",
        "        execute_tool get_weather (INTERNAL)",
        "      step agent (INTERNAL)",
        "        chat gpt-4o-mini (CLIENT)",
    ]
    assert all(_scope(s) == OPENAI_SCOPE for s in _llm_spans(spans))
    assert len(trace_ids(spans)) == 1
    tool_span = one(spans, "execute_tool get_weather")
    assert tool_span.attributes[semconv.GEN_AI_TOOL_CALL_ID] == "call_fake_1"
    assert json.loads(tool_span.attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"city": "Paris"}
    assert json.loads(tool_span.attributes[semconv.GEN_AI_TOOL_CALL_RESULT]) == "18C in Paris"
    assert tool_span.attributes[semconv.GEN_AI_AGENT_NAME] == "weather_agent"
    # The model had two tools and picked one: the decision is on the step that called it.
    first_agent_step = next(s for s in spans if s.name == "step agent")
    decisions = [
        e
        for e in events(first_agent_step, semconv.EVENT_LLM_AUDIT_DECISION)
        if e[semconv.LLM_AUDIT_DECISION_POINT] == "tool_choice"
    ]
    assert decisions == [
        {
            semconv.LLM_AUDIT_DECISION_POINT: "tool_choice",
            semconv.LLM_AUDIT_DECISION_CHOSEN: ("get_weather",),
            semconv.LLM_AUDIT_DECISION_OPTIONS: ("get_weather", "get_time"),
            semconv.GEN_AI_AGENT_NAME: "weather_agent",
        }
    ]


def test_openai_call_inside_a_tool_nests_under_the_tool(lc: Any, client: Any) -> None:
    @tool
    def summarize_chart(patient: str) -> str:
        """Summarize a patient's chart with a model."""
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        return str(answer.choices[0].message.content)

    def run_tool(state: MessagesState) -> dict[str, Any]:
        output = summarize_chart.invoke({"patient": "p-1"})
        return {"messages": [AIMessage(content=output)]}

    graph = StateGraph(MessagesState)
    graph.add_node("chart", run_tool)
    graph.add_edge(START, "chart")
    graph.compile(name="charting").invoke({"messages": [("user", "go")]})
    spans = ours(lc.spans())
    assert render(spans) == [
        "invoke_workflow charting (INTERNAL)",
        "  step chart (INTERNAL)",
        "    execute_tool summarize_chart (INTERNAL)",
        "      chat gpt-4o-mini (CLIENT)",
    ]
