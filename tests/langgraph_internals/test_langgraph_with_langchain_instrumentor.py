"""The LangGraph internals under ``LangChainInstrumentor``: our records land on its workflow and node spans."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from langgraph.checkpoint.memory import MemorySaver
from langgraph.types import Command
from lg_internals_graphs import refund_graph, subgraph_graph
from lg_internals_spans import MEMORY_OPERATIONS, attr, events
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import otel_llm_audit
from otel_llm_audit import _guard, semconv
from otel_llm_audit.config import Settings, set_settings
from otel_llm_audit.instrumentation.langchain import LangChainInstrumentor, _langgraph_interrupts

CFG = {"configurable": {"thread_id": "refund-42"}}


class Instrumented:
    """A process with ``LangChainInstrumentor`` on its own tracer provider."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        LangChainInstrumentor().instrument(tracer_provider=self.provider)

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def only(self, name: str, node: str | None = None) -> ReadableSpan:
        found = [
            s
            for s in self.spans()
            if s.name == name and (node is None or attr(s, semconv.LLM_AUDIT_GRAPH_NODE) == node)
        ]
        assert len(found) == 1, [s.name for s in self.spans()]
        return found[0]


@pytest.fixture
def instrumented_process() -> Iterator[Callable[[], Instrumented]]:
    set_settings(Settings.from_env(content="raw"))
    _guard.reset_internal_error_counts()
    made: list[Instrumented] = []

    def make() -> Instrumented:
        instrumentor = LangChainInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()  # the previous process ends: everything it kept in memory goes
        made.append(Instrumented())
        return made[-1]

    try:
        yield make
    finally:
        instrumentor = LangChainInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        for process in made:
            process.provider.shutdown()
        set_settings(None)
        _guard.reset_internal_error_counts()


def _no_errors(spans: list[ReadableSpan]) -> None:
    assert [s.name for s in spans if s.status.status_code is StatusCode.ERROR] == []


def test_checkpoints_decisions_and_the_pause_nest_under_the_graphs_spans(
    instrumented_process: Callable[[], Instrumented],
) -> None:
    process = instrumented_process()
    app = refund_graph(MemorySaver())
    with process.provider.get_tracer("app").start_as_current_span("POST /refunds"):
        paused = app.invoke({"amount": 120, "log": []}, CFG)
    assert paused["log"] == ["plan"]
    spans = process.spans()
    request = process.only("POST /refunds")
    workflow = process.only("invoke_workflow LangGraph")
    plan = process.only("step plan")
    review = process.only("step review")
    assert workflow.parent is not None and workflow.parent.span_id == request.context.span_id
    assert {s.context.trace_id for s in spans} == {request.context.trace_id}

    memory = [s for s in spans if s.name in MEMORY_OPERATIONS]
    assert sorted(s.name for s in memory) == ["create_memory"] * 3 + ["search_memory"] + ["update_memory"] * 3
    assert all(s.parent is not None and s.parent.span_id == workflow.context.span_id for s in memory)
    assert {attr(s, semconv.LLM_AUDIT_GRAPH_NODE) for s in memory if s.name == "update_memory"} == {
        "__start__",
        "plan",
        "review",
    }

    assert events(plan, semconv.EVENT_LLM_AUDIT_DECISION) == [
        {
            semconv.LLM_AUDIT_DECISION_POINT: "route_refund",
            semconv.LLM_AUDIT_DECISION_CHOSEN: ["review"],
            semconv.LLM_AUDIT_DECISION_OPTIONS: ["review", "execute"],
        }
    ]
    (pause,) = events(review, semconv.EVENT_LLM_AUDIT_INTERRUPT)
    assert pause[semconv.LLM_AUDIT_INTERRUPT_VALUE] == (
        '{"type":"refund_approval","amount":120,"note":"refund to jane.roe@example.com"}'
    )
    assert review.status.status_code is StatusCode.UNSET  # a pause is not an error
    assert attr(review, semconv.LLM_AUDIT_AUDIT_RECORD) is True
    _no_errors(spans)
    assert _guard.internal_error_counts() == {}


def test_a_resume_in_a_fresh_process_links_the_resumed_node_to_the_paused_node(
    instrumented_process: Callable[[], Instrumented],
) -> None:
    saver = MemorySaver()
    first = instrumented_process()
    refund_graph(saver).invoke({"amount": 120, "log": []}, CFG)
    paused_node = first.only("step review")
    (pause,) = events(paused_node, semconv.EVENT_LLM_AUDIT_INTERRUPT)

    second = instrumented_process()
    assert len(_langgraph_interrupts._pauses) == 0
    with otel_llm_audit.audit_context(user_id="reviewer-7"):
        done = refund_graph(saver).invoke(Command(resume={"action": "approve"}), CFG)
    assert done["log"] == ["plan", "review:{'action': 'approve'}", "execute"]
    resumed_node = second.only("step review")
    workflow = second.only("invoke_workflow LangGraph")
    assert resumed_node.context.trace_id == workflow.context.trace_id != paused_node.context.trace_id
    assert events(resumed_node, semconv.EVENT_LLM_AUDIT_HUMAN_REVIEW) == [
        {
            semconv.LLM_AUDIT_REVIEW_SUBJECT: "refund_approval",
            semconv.LLM_AUDIT_REVIEW_ACTION: "approved",
            semconv.LLM_AUDIT_REVIEW_REVIEWER: "reviewer-7",
            semconv.LLM_AUDIT_REVIEW_INTERRUPT_ID: pause[semconv.LLM_AUDIT_INTERRUPT_ID],
            semconv.LLM_AUDIT_REVIEW_RESPONSE: '{"action":"approve"}',
        }
    ]
    (link,) = resumed_node.links
    assert (link.context.trace_id, link.context.span_id) == (
        paused_node.context.trace_id,
        paused_node.context.span_id,
    )
    assert dict(link.attributes or {}) == {semconv.LLM_AUDIT_LINK_TYPE: "resumes"}
    (read,) = [s for s in second.spans() if s.name == "search_memory"]
    assert read.parent is not None and read.parent.span_id == workflow.context.span_id
    _no_errors(first.spans() + second.spans())


def test_a_subgraphs_pause_and_review_land_on_its_inner_node(instrumented_process: Callable[[], Instrumented]) -> None:
    saver = MemorySaver()
    first = instrumented_process()
    subgraph_graph(saver).invoke({"log": []}, CFG)
    inner_pause = first.only("step ask")
    (pause,) = events(inner_pause, semconv.EVENT_LLM_AUDIT_INTERRUPT)
    assert [s.name for s in first.spans() if events(s, semconv.EVENT_LLM_AUDIT_INTERRUPT)] == ["step ask"]
    # the subgraph's own checkpoints, in its namespace, under the graph that ran it
    inner_memory = [s for s in first.spans() if attr(s, semconv.LLM_AUDIT_CHECKPOINT_NS) not in (None, "")]
    assert inner_memory and all(
        str(attr(s, semconv.LLM_AUDIT_CHECKPOINT_NS)).startswith("specialist:") for s in inner_memory
    )

    second = instrumented_process()
    assert subgraph_graph(saver).invoke(Command(resume=True), CFG) == {"log": ["answer:True"]}
    inner_resumed = second.only("step ask")
    (review,) = events(inner_resumed, semconv.EVENT_LLM_AUDIT_HUMAN_REVIEW)
    assert review[semconv.LLM_AUDIT_REVIEW_INTERRUPT_ID] == pause[semconv.LLM_AUDIT_INTERRUPT_ID]
    assert [s.name for s in second.spans() if events(s, semconv.EVENT_LLM_AUDIT_HUMAN_REVIEW)] == ["step ask"]
    (link,) = inner_resumed.links
    assert link.context.span_id == inner_pause.context.span_id
    _no_errors(first.spans() + second.spans())


def test_uninstrumenting_removes_the_langgraph_hooks(instrumented_process: Callable[[], Instrumented]) -> None:
    from langgraph.errors import GraphInterrupt

    instrumented_process()
    assert hasattr(GraphInterrupt.__init__, "__wrapped__")
    LangChainInstrumentor().uninstrument()
    assert not hasattr(GraphInterrupt.__init__, "__wrapped__")
