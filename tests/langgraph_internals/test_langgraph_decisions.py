"""Decision points: which branch a conditional edge took, among which options (issue 5, item 5)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langgraph.checkpoint.memory import MemorySaver
from langgraph.graph import END, START, StateGraph
from lg_internals_graphs import RefundState, async_refund_graph, fan_graph, refund_graph
from lg_internals_spans import Process, all_events, events
from opentelemetry.trace import Span

from otel_llm_audit import __version__, _guard, semconv
from otel_llm_audit.emitter import parents
from otel_llm_audit.records import AgentInvocation, WorkflowInvocation

DECISION = semconv.EVENT_LLM_AUDIT_DECISION


def test_the_chosen_branch_and_its_options_go_on_the_source_step(lg: Process) -> None:
    with lg.tracer().start_as_current_span("POST /refunds"):
        result = refund_graph(MemorySaver()).invoke({"amount": 120, "log": []}, {"configurable": {"thread_id": "t"}})
    assert result["log"] == ["plan"]  # paused in review
    request = lg.only("POST /refunds")
    assert events(request, DECISION) == [
        {
            semconv.LLM_AUDIT_DECISION_POINT: "route_refund",
            semconv.LLM_AUDIT_DECISION_CHOSEN: ["review"],
            semconv.LLM_AUDIT_DECISION_OPTIONS: ["review", "execute"],
        }
    ]
    assert request.attributes is not None and request.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True


def test_send_fan_out_and_literal_hints(lg: Process) -> None:
    with lg.tracer().start_as_current_span("research"):
        result = fan_graph().invoke({"topics": ["dosage", "allergies"], "notes": []})
    assert result == {"topics": ["dosage", "allergies"], "notes": ["note:dosage", "note:allergies", "summary"]}
    assert events(lg.only("research"), DECISION) == [
        # from START, two Send packets to "research"; no path_map, no return hint: options unknown
        {semconv.LLM_AUDIT_DECISION_POINT: "fan_out", semconv.LLM_AUDIT_DECISION_CHOSEN: ["research", "research"]},
        # each research task routes; the Literal return hint declares the options
        {
            semconv.LLM_AUDIT_DECISION_POINT: "literal_route",
            semconv.LLM_AUDIT_DECISION_CHOSEN: ["summarize"],
            semconv.LLM_AUDIT_DECISION_OPTIONS: ["summarize", "__end__"],
        },
        {
            semconv.LLM_AUDIT_DECISION_POINT: "literal_route",
            semconv.LLM_AUDIT_DECISION_CHOSEN: ["summarize"],
            semconv.LLM_AUDIT_DECISION_OPTIONS: ["summarize", "__end__"],
        },
    ]


def test_an_anonymous_path_is_named_after_its_source(lg: Process) -> None:
    graph = StateGraph(RefundState)
    graph.add_node("triage", lambda state: {"log": ["triage"]})
    graph.add_node("nurse", lambda state: {"log": ["nurse"]})
    graph.add_node("doctor", lambda state: {"log": ["doctor"]})
    graph.add_edge(START, "triage")
    graph.add_conditional_edges(
        "triage", lambda state: "doctor" if state["amount"] > 5 else "nurse", ["nurse", "doctor"]
    )
    graph.add_edge("nurse", END)
    graph.add_edge("doctor", END)
    with lg.tracer().start_as_current_span("triage request"):
        graph.compile().invoke({"amount": 9, "log": []})
    assert events(lg.only("triage request"), DECISION) == [
        {
            semconv.LLM_AUDIT_DECISION_POINT: "triage.route",
            semconv.LLM_AUDIT_DECISION_CHOSEN: ["doctor"],
            semconv.LLM_AUDIT_DECISION_OPTIONS: ["nurse", "doctor"],
        }
    ]


def test_async_graphs_record_their_decisions(lg: Process) -> None:
    async def run() -> Any:
        with lg.tracer().start_as_current_span("async request"):
            return await async_refund_graph().ainvoke({"amount": 50, "log": []})

    assert asyncio.run(run()) == {"amount": 50, "log": ["plan", "execute"]}
    assert events(lg.only("async request"), DECISION) == [
        {
            semconv.LLM_AUDIT_DECISION_POINT: "route_refund",
            semconv.LLM_AUDIT_DECISION_CHOSEN: ["execute"],
            semconv.LLM_AUDIT_DECISION_OPTIONS: ["review", "execute"],
        }
    ]


@pytest.fixture
def resolver_span() -> Iterator[list[Span]]:
    """A framework resolver (what the LangChain instrumentor registers) answering with a span we choose."""
    answer: list[Span] = []

    def resolver() -> Span | None:
        return answer[0] if answer else None

    parents.register(resolver)
    try:
        yield answer
    finally:
        parents.unregister(resolver)


def test_the_event_lands_on_the_step_the_resolvers_name_with_the_agent_name(
    lg: Process, resolver_span: list[Span]
) -> None:
    with lg.tracer().start_as_current_span("request"), lg.emitter.start_step(AgentInvocation("refund-agent")) as agent:
        resolver_span.append(agent.span)
        refund_graph().invoke({"amount": 50, "log": []})
    agent_span = lg.only("invoke_agent refund-agent")
    assert events(agent_span, DECISION) == [
        {
            semconv.LLM_AUDIT_DECISION_POINT: "route_refund",
            semconv.LLM_AUDIT_DECISION_CHOSEN: ["execute"],
            semconv.LLM_AUDIT_DECISION_OPTIONS: ["review", "execute"],
            semconv.GEN_AI_AGENT_NAME: "refund-agent",
        }
    ]
    assert events(lg.only("request"), DECISION) == []


def test_a_step_that_has_ended_gets_a_short_child_span_for_the_event(lg: Process, resolver_span: list[Span]) -> None:
    # langgraph 0.6+ evaluates a branch after its node's run (and our span for it) has ended
    with lg.tracer().start_as_current_span("request"):
        step = lg.emitter.start_step(WorkflowInvocation("plan-node"))
        step.end()
        resolver_span.append(step.span)
        refund_graph().invoke({"amount": 50, "log": []})
    (ended,) = lg.named("invoke_workflow plan-node")
    (carrier, event), *rest = all_events(lg.spans(), DECISION)
    assert rest == []
    assert carrier.name == DECISION
    assert carrier.parent is not None and carrier.parent.span_id == ended.context.span_id
    assert carrier.context.trace_id == ended.context.trace_id
    assert carrier.attributes == {semconv.LLM_AUDIT_AUDIT_RECORD: True, semconv.LLM_AUDIT_SDK_VERSION: __version__}
    assert event[semconv.LLM_AUDIT_DECISION_CHOSEN] == ["execute"]
    assert _guard.internal_error_counts() == {}
