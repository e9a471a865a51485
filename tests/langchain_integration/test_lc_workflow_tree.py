"""One trace per LangGraph workflow: the graph, its nodes, sub-graphs and delegations, exactly.

Real ``langgraph`` graphs (plain ``StateGraph``s, a compiled sub-graph as a node, ``Command``
hand-offs) run under the LangChain instrumentor; every test asserts the whole span tree built
from the exported parent span ids alone, the shared trace id and the audit events.
"""

from __future__ import annotations

import json
import operator
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command
from lc_support import ScriptedChatModel, children, events, is_child, one, ours, render, trace_ids
from opentelemetry.trace import SpanKind, StatusCode

from otel_llm_audit import __version__, semconv


class Log(TypedDict):
    steps: Annotated[list[str], operator.add]


class RunIds(BaseCallbackHandler):
    """The application's own callback handler: LangChain's run id of each chain run, by name."""

    def __init__(self) -> None:
        self.ids: dict[str, list[str]] = {}

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        self.ids.setdefault(kwargs.get("name") or "", []).append(str(run_id))


def _graph_with_goto_and_subgraph() -> Any:
    inner = StateGraph(Log)
    inner.add_node("draft", lambda state: {"steps": ["draft"]})
    inner.add_edge(START, "draft")
    writer = inner.compile(name="writer_agent")

    graph = StateGraph(Log)
    graph.add_node("plan", lambda state: {"steps": ["plan"]})
    graph.add_node("route", lambda state: Command(goto="review", update={"steps": ["route"]}))
    graph.add_node("review", lambda state: {"steps": ["review"]})
    graph.add_node("write", writer)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "route")
    graph.add_edge("review", "write")
    graph.add_edge("write", END)
    return graph.compile(name="report_flow")


def test_graph_nodes_goto_and_subgraph_form_one_exact_tree(lc: Any) -> None:
    app = _graph_with_goto_and_subgraph()
    root_id = uuid.uuid4()
    run_ids = RunIds()
    result = app.invoke({"steps": []}, {"run_id": root_id, "callbacks": [run_ids]})
    assert result["steps"][:3] == ["plan", "route", "review"]
    assert "draft" in result["steps"]

    spans = ours(lc.spans())
    assert render(spans) == [
        "invoke_workflow report_flow (INTERNAL)",
        "  step plan (INTERNAL)",
        "  step route (INTERNAL)",
        "  step review (INTERNAL)",
        "  step write (INTERNAL)",
        "    invoke_agent writer_agent (INTERNAL)",
        "      step draft (INTERNAL)",
    ]
    assert len(trace_ids(spans)) == 1
    assert all(s.status.status_code is StatusCode.UNSET for s in spans)

    workflow = one(spans, "invoke_workflow report_flow")
    assert dict(workflow.attributes or {}) == {
        semconv.GEN_AI_OPERATION_NAME: "invoke_workflow",
        semconv.GEN_AI_WORKFLOW_NAME: "report_flow",
        semconv.LLM_AUDIT_RUN_ID: str(root_id),
        semconv.LLM_AUDIT_SDK_VERSION: __version__,
        semconv.LLM_AUDIT_CONTENT_MODE: "raw",
    }
    for step, node in enumerate(["plan", "route", "review", "write"], start=1):
        span = one(spans, f"step {node}")
        assert span.kind is SpanKind.INTERNAL
        assert is_child(span, workflow)
        attrs = dict(span.attributes or {})
        assert attrs.pop(semconv.LLM_AUDIT_AUDIT_RECORD, None) in (None, True)
        assert attrs == {
            semconv.LLM_AUDIT_RUN_ID: run_ids.ids[node][0],  # LangChain's own run id of the node task
            semconv.LLM_AUDIT_GRAPH_NODE: node,
            semconv.LLM_AUDIT_GRAPH_STEP: step,
            semconv.LLM_AUDIT_SDK_VERSION: __version__,
        }, node
        # Real times: each node inside the workflow, in order.
        assert workflow.start_time <= span.start_time <= span.end_time <= workflow.end_time
    starts = [one(spans, f"step {n}").start_time for n in ["plan", "route", "review", "write"]]
    assert starts == sorted(starts)

    agent = one(spans, "invoke_agent writer_agent")
    assert dict(agent.attributes or {}) == {
        semconv.GEN_AI_OPERATION_NAME: "invoke_agent",
        semconv.GEN_AI_AGENT_NAME: "writer_agent",
        semconv.LLM_AUDIT_RUN_ID: run_ids.ids["writer_agent"][0],
        semconv.LLM_AUDIT_GRAPH_NODE: "write",
        semconv.LLM_AUDIT_GRAPH_STEP: 4,
        semconv.LLM_AUDIT_CONTENT_MODE: "raw",
        semconv.LLM_AUDIT_SDK_VERSION: __version__,
    }
    draft = one(spans, "step draft")
    assert draft.attributes[semconv.LLM_AUDIT_GRAPH_STEP] == 1  # the sub-graph's own super-step

    # Delegations: the Command(goto=...) on the node that returned it, the sub-graph on its node.
    assert events(one(spans, "step route"), semconv.EVENT_LLM_AUDIT_DELEGATION) == [
        {
            semconv.LLM_AUDIT_DELEGATION_SOURCE: "route",
            semconv.LLM_AUDIT_DELEGATION_TARGET: "review",
            semconv.LLM_AUDIT_DELEGATION_KIND: "goto",
            semconv.LLM_AUDIT_DELEGATION_INPUT: '{"steps":["route"]}',
        }
    ]
    write = one(spans, "step write")
    assert write.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True
    (delegation,) = events(write, semconv.EVENT_LLM_AUDIT_DELEGATION)
    assert delegation[semconv.LLM_AUDIT_DELEGATION_SOURCE] == "report_flow"
    assert delegation[semconv.LLM_AUDIT_DELEGATION_TARGET] == "writer_agent"
    assert delegation[semconv.LLM_AUDIT_DELEGATION_KIND] == "subgraph"
    assert json.loads(delegation[semconv.LLM_AUDIT_DELEGATION_INPUT]) == {"steps": ["plan", "route", "review"]}
    assert json.loads(delegation[semconv.LLM_AUDIT_DELEGATION_OUTPUT]) == {
        "steps": ["plan", "route", "review", "draft"]
    }
    for name in ("step plan", "step review", "step draft", "invoke_agent writer_agent"):
        assert events(one(spans, name), semconv.EVENT_LLM_AUDIT_DELEGATION) == [], name


async def test_async_graph_has_the_same_tree(lc: Any) -> None:
    app = _graph_with_goto_and_subgraph()
    await app.ainvoke({"steps": []})
    async for _ in app.astream({"steps": []}, stream_mode="updates"):
        pass
    spans = ours(lc.spans())
    assert len(trace_ids(spans)) == 2
    for trace_id in trace_ids(spans):
        assert render([s for s in spans if s.context.trace_id == trace_id]) == [
            "invoke_workflow report_flow (INTERNAL)",
            "  step plan (INTERNAL)",
            "  step route (INTERNAL)",
            "  step review (INTERNAL)",
            "  step write (INTERNAL)",
            "    invoke_agent writer_agent (INTERNAL)",
            "      step draft (INTERNAL)",
        ]


def test_messages_of_a_workflow_and_its_thread_as_conversation(lc: Any) -> None:
    graph = StateGraph(MessagesState)
    graph.add_node("answer", lambda state: {"messages": [AIMessage(content="Ward 7 has 3 free beds.")]})
    graph.add_edge(START, "answer")
    app = graph.compile(name="bed_finder")
    app.invoke({"messages": [("user", "free beds?")]}, {"configurable": {"thread_id": "ward-7"}})
    workflow = one(ours(lc.spans()), "invoke_workflow bed_finder")
    assert workflow.attributes[semconv.GEN_AI_CONVERSATION_ID] == "ward-7"
    assert json.loads(workflow.attributes[semconv.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "free beds?"}]}
    ]
    assert json.loads(workflow.attributes[semconv.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Ward 7 has 3 free beds."}]}
    ]


def test_node_internals_and_plumbing_are_hidden_and_their_children_reparented(lc: Any) -> None:
    """A prompt | model | parser chain inside a node: only the model call shows, under the node."""
    model = ScriptedChatModel(replies=[AIMessage(content="Discharge tomorrow.")])
    chain = ChatPromptTemplate.from_messages([("user", "{question}")]) | model | StrOutputParser()
    helper = RunnableLambda(lambda text: text.upper()).with_config(run_name="shout")

    def summarize(state: MessagesState) -> dict[str, Any]:
        text = chain.invoke({"question": "when?"})
        return {"messages": [AIMessage(content=helper.invoke(text))]}

    graph = StateGraph(MessagesState)
    graph.add_node("summarize", summarize)
    graph.add_edge(START, "summarize")
    graph.compile(name="summary").invoke({"messages": [("user", "go")]})
    spans = ours(lc.spans())
    assert render(spans) == [
        "invoke_workflow summary (INTERNAL)",
        "  step summarize (INTERNAL)",
        "    chat scripted-1 (CLIENT)",
    ]


def test_a_plain_lcel_pipeline_is_a_workflow_of_steps(lc: Any) -> None:
    model = ScriptedChatModel(replies=[AIMessage(content="Three beds.")])
    chain = ChatPromptTemplate.from_messages([("user", "{question}")]) | model | StrOutputParser()
    assert chain.invoke({"question": "beds?"}) == "Three beds."
    spans = ours(lc.spans())
    assert render(spans) == [
        "invoke_workflow RunnableSequence (INTERNAL)",
        "  step ChatPromptTemplate (INTERNAL)",
        "  chat scripted-1 (CLIENT)",
        "  step StrOutputParser (INTERNAL)",
    ]
    step = one(spans, "step ChatPromptTemplate")
    assert set(step.attributes or {}) == {semconv.LLM_AUDIT_RUN_ID, semconv.LLM_AUDIT_SDK_VERSION}  # no gen_ai.* keys


def test_a_graph_invoked_from_a_plain_step_becomes_an_agent(lc: Any) -> None:
    inner = StateGraph(Log)
    inner.add_node("check", lambda state: {"steps": ["check"]})
    inner.add_edge(START, "check")
    checker = inner.compile(name="checker")
    outer = RunnableLambda(lambda x: x) | RunnableLambda(lambda x: checker.invoke(x)).with_config(run_name="verify")
    outer.invoke({"steps": []})
    spans = ours(lc.spans())
    assert render(spans) == [
        "invoke_workflow RunnableSequence (INTERNAL)",
        "  step verify (INTERNAL)",
        "    invoke_agent checker (INTERNAL)",
        "      step check (INTERNAL)",
    ]
    (delegation,) = events(one(spans, "step verify"), semconv.EVENT_LLM_AUDIT_DELEGATION)
    assert delegation[semconv.LLM_AUDIT_DELEGATION_TARGET] == "checker"
    assert delegation[semconv.LLM_AUDIT_DELEGATION_KIND] == "subgraph"


def test_a_run_whose_metadata_names_an_agent_is_an_agent(lc: Any) -> None:
    graph = StateGraph(Log)
    triage = RunnableLambda(lambda state: {"steps": ["triaged"]}).with_config(
        run_name="triage_chain", metadata={"lc_agent_name": "triage_agent"}
    )
    graph.add_node("triage", lambda state: triage.invoke(state))
    graph.add_edge(START, "triage")
    graph.compile(name="intake").invoke({"steps": []})
    spans = ours(lc.spans())
    assert render(spans) == [
        "invoke_workflow intake (INTERNAL)",
        "  step triage (INTERNAL)",
        "    invoke_agent triage_agent (INTERNAL)",
    ]
    assert one(spans, "invoke_agent triage_agent").attributes[semconv.GEN_AI_AGENT_NAME] == "triage_agent"


def test_a_failing_node_marks_its_step_and_the_workflow_and_the_error_reaches_the_caller(lc: Any) -> None:
    def dispense(state: Log) -> dict[str, Any]:
        raise PermissionError("pharmacy locked")

    graph = StateGraph(Log)
    graph.add_node("dispense", dispense)
    graph.add_edge(START, "dispense")
    with pytest.raises(PermissionError, match="pharmacy locked"):
        graph.compile(name="pharmacy").invoke({"steps": []})
    spans = ours(lc.spans())
    assert render(spans) == ["invoke_workflow pharmacy (INTERNAL)", "  step dispense (INTERNAL)"]
    for span in spans:
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes[semconv.ERROR_TYPE] == "PermissionError"
        assert [e.name for e in span.events] == ["exception"]


def test_parallel_nodes_of_one_superstep_nest_under_the_workflow(lc: Any) -> None:
    graph = StateGraph(Log)
    for name in ("labs", "imaging", "notes"):
        graph.add_node(name, lambda state, n=name: {"steps": [n]})
        graph.add_edge(START, name)
    app = graph.compile(name="gather")
    app.invoke({"steps": []})
    spans = ours(lc.spans())
    workflow = one(spans, "invoke_workflow gather")
    assert sorted(s.name for s in children(spans, workflow)) == ["step imaging", "step labs", "step notes"]
    assert len(spans) == 4
    assert len(trace_ids(spans)) == 1


def test_an_interrupt_pauses_the_run_without_marking_anything_as_an_error(lc: Any) -> None:
    """GraphInterrupt is LangGraph's control flow (the langgraph-internals part records the pause)."""
    from langgraph.checkpoint.memory import MemorySaver
    from langgraph.types import interrupt

    def approve(state: Log) -> dict[str, Any]:
        return {"steps": [str(interrupt("approve the refund?"))]}

    inner = StateGraph(Log)
    inner.add_node("approve", approve)
    inner.add_edge(START, "approve")
    graph = StateGraph(Log)
    graph.add_node("review", inner.compile(name="reviewer"))
    graph.add_edge(START, "review")
    app = graph.compile(name="refunds", checkpointer=MemorySaver())
    config = {"configurable": {"thread_id": "refund-9"}}
    app.invoke({"steps": []}, config)
    assert app.get_state(config).next == ("review",)  # paused there
    spans = [s for s in ours(lc.spans()) if s.name.startswith(("invoke_", "step "))]
    assert render(spans) == [
        "invoke_workflow refunds (INTERNAL)",
        "  step review (INTERNAL)",
        "    invoke_agent reviewer (INTERNAL)",
        "      step approve (INTERNAL)",
    ]
    for span in spans:
        assert span.status.status_code is StatusCode.UNSET, span.name
        assert semconv.ERROR_TYPE not in (span.attributes or {})
        assert [e.name for e in span.events if e.name == "exception"] == []

    lc.clear()
    assert app.invoke(Command(resume="approved"), config)["steps"] == ["approved"]
    resumed = [s for s in ours(lc.spans()) if s.name.startswith(("invoke_", "step "))]
    assert [s.name for s in resumed if s.name.startswith("step approve")] == ["step approve"]
    assert all(s.status.status_code is StatusCode.UNSET for s in resumed)


def test_runs_started_with_a_callbacks_list_of_their_own_still_nest_under_their_node(lc: Any) -> None:
    """``config={"callbacks": [...]}`` makes a top-level run for LangChain; it still ran in the node."""
    inner = StateGraph(Log)
    inner.add_node("check", lambda state: {"steps": ["check"]})
    inner.add_edge(START, "check")
    checker = inner.compile(name="checker")
    model = ScriptedChatModel(replies=[AIMessage(content="ok")])

    def verify(state: Log) -> dict[str, Any]:
        checker.invoke({"steps": []}, {"callbacks": [RunIds()]})
        model.invoke("fine?", {"callbacks": [RunIds()]})
        return {"steps": ["verified"]}

    graph = StateGraph(Log)
    graph.add_node("verify", verify)
    graph.add_edge(START, "verify")
    graph.compile(name="audit_flow").invoke({"steps": []})
    spans = ours(lc.spans())
    assert render(spans) == [
        "invoke_workflow audit_flow (INTERNAL)",
        "  step verify (INTERNAL)",
        "    invoke_agent checker (INTERNAL)",
        "      step check (INTERNAL)",
        "    chat scripted-1 (CLIENT)",
    ]
    assert len(trace_ids(spans)) == 1


def test_a_stream_closed_early_ends_the_workflow_as_not_completed(lc: Any) -> None:
    stream = _graph_with_goto_and_subgraph().stream({"steps": []}, stream_mode="updates")
    assert next(stream) == {"plan": {"steps": ["plan"]}}
    stream.close()  # the caller stops reading: LangGraph reports GeneratorExit as the run's error
    spans = ours(lc.spans())
    assert render(spans) == ["invoke_workflow report_flow (INTERNAL)", "  step plan (INTERNAL)"]
    workflow = one(spans, "invoke_workflow report_flow")
    assert workflow.status.status_code is StatusCode.ERROR
    assert workflow.attributes[semconv.ERROR_TYPE] == "GeneratorExit"
    assert one(spans, "step plan").status.status_code is StatusCode.UNSET
