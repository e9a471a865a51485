"""Agent-step records: workflows, retrievals, checkpoints, decisions, delegations, pauses and reviews.

The framework integrations (LangGraph, OpenAI Agents, MCP) and applications describe steps with
these records; here they are driven directly, to pin down the spans and events they become and
how their content follows the content setting and the masking stage.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind

import otel_llm_audit
from otel_llm_audit import __version__, _guard, semconv
from otel_llm_audit.config import Settings, set_settings
from otel_llm_audit.demo.fake_server import FakeModelServer
from otel_llm_audit.emitter import parents
from otel_llm_audit.emitter.content import canonical_hash
from otel_llm_audit.emitter.spans import Emitter
from otel_llm_audit.records import (
    CheckpointRef,
    MemoryOperation,
    Message,
    Retrieval,
    StepPosition,
    WorkflowInvocation,
)


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TracerProvider, InMemorySpanExporter, Emitter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    set_settings(Settings.from_env(content="raw"))
    # the public API's own spans (a record with no span current) go to this provider too
    monkeypatch.setattr("otel_llm_audit.api._tracer", lambda: provider.get_tracer("otel_llm_audit.api"))
    _guard.reset_internal_error_counts()
    yield provider, exporter, Emitter("otel_llm_audit.test", provider)
    set_settings(None)
    provider.shutdown()
    _guard.reset_internal_error_counts()


def test_workflow_and_retrieval_steps_with_their_position(
    traced: tuple[TracerProvider, InMemorySpanExporter, Emitter],
) -> None:
    _, exporter, emitter = traced
    workflow = WorkflowInvocation("discharge", conversation_id="case-42", position=StepPosition(run_id="run-1"))
    documents = [{"id": "leaflet-3", "score": 0.91, "content": "Take with food."}]
    with emitter.start_step(workflow) as wf:
        wf.record.input_messages = [Message("user", [{"type": "text", "content": "can I take it at night?"}])]
        position = StepPosition(run_id="run-2", graph_node="librarian", graph_step=2)
        with emitter.start_step(Retrieval("leaflets", query="night dosing", top_k=3, position=position)) as r:
            r.record.documents = documents
    retrieval, flow = exporter.get_finished_spans()
    assert flow.name == "invoke_workflow discharge"
    assert flow.kind is SpanKind.INTERNAL
    assert dict(flow.attributes or {}) == {
        semconv.GEN_AI_OPERATION_NAME: "invoke_workflow",
        semconv.GEN_AI_WORKFLOW_NAME: "discharge",
        semconv.LLM_AUDIT_RUN_ID: "run-1",
        semconv.LLM_AUDIT_SDK_VERSION: __version__,
        semconv.GEN_AI_CONVERSATION_ID: "case-42",
        semconv.GEN_AI_INPUT_MESSAGES: json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": "can I take it at night?"}]}], separators=(",", ":")
        ),
        semconv.LLM_AUDIT_CONTENT_MODE: "raw",
    }
    assert retrieval.name == "retrieval leaflets"
    assert retrieval.kind is SpanKind.CLIENT
    assert retrieval.parent is not None and retrieval.parent.span_id == flow.context.span_id
    assert dict(retrieval.attributes or {}) == {
        semconv.GEN_AI_OPERATION_NAME: "retrieval",
        semconv.GEN_AI_DATA_SOURCE_ID: "leaflets",
        semconv.LLM_AUDIT_RUN_ID: "run-2",
        semconv.LLM_AUDIT_SDK_VERSION: __version__,
        semconv.LLM_AUDIT_GRAPH_NODE: "librarian",
        semconv.LLM_AUDIT_GRAPH_STEP: 2,
        semconv.GEN_AI_RETRIEVAL_TOP_K: 3,
        semconv.GEN_AI_RETRIEVAL_QUERY_TEXT: "night dosing",
        semconv.GEN_AI_RETRIEVAL_DOCUMENTS: '[{"id":"leaflet-3","score":0.91,"content":"Take with food."}]',
        semconv.LLM_AUDIT_CONTENT_MODE: "raw",
    }


def test_checkpoint_write_is_a_memory_span_with_its_ids_and_times(
    traced: tuple[TracerProvider, InMemorySpanExporter, Emitter],
) -> None:
    _, exporter, emitter = traced
    checkpoint = CheckpointRef(thread_id="ward-7", namespace="", checkpoint_id="1ef-0003")
    record = MemoryOperation("update_memory", store_id="InMemorySaver", checkpoint=checkpoint)
    record.records = [{"id": "dose_mg", "content": 50}]
    with emitter.start_step(record, start_time=1_000, links=None) as step:
        pass
    step.end()  # a second end changes nothing
    (span,) = exporter.get_finished_spans()
    assert span.name == "update_memory"
    assert span.start_time == 1_000
    assert span.end_time is not None and span.end_time > 1_000
    assert dict(span.attributes or {}) == {
        semconv.GEN_AI_OPERATION_NAME: "update_memory",
        semconv.GEN_AI_MEMORY_STORE_ID: "InMemorySaver",
        semconv.LLM_AUDIT_CHECKPOINT_THREAD_ID: "ward-7",
        semconv.LLM_AUDIT_SDK_VERSION: __version__,
        semconv.LLM_AUDIT_CHECKPOINT_NS: "",
        semconv.LLM_AUDIT_CHECKPOINT_ID: "1ef-0003",
        semconv.GEN_AI_MEMORY_RECORD_COUNT: 1,
        semconv.GEN_AI_MEMORY_RECORDS: '[{"id":"dose_mg","content":50}]',
        semconv.LLM_AUDIT_CONTENT_MODE: "raw",
    }


def test_decision_delegation_and_interrupt_events_on_the_current_span(
    traced: tuple[TracerProvider, InMemorySpanExporter, Emitter],
) -> None:
    provider, exporter, _ = traced
    with provider.get_tracer("app").start_as_current_span("supervisor"):
        otel_llm_audit.record_decision(
            "route_after_triage",
            "pharmacist",
            options=["pharmacist", "physician", "__end__"],
            reasoning="a drug interaction question",
            agent_name="supervisor",
        )
        otel_llm_audit.record_delegation(
            "supervisor", "pharmacist", kind="handoff", input={"task": "check"}, output={"ok": True}
        )
        traceparent = otel_llm_audit.record_interrupt("int-1", {"question": "approve 50 mg?"})
    (span,) = exporter.get_finished_spans()
    assert span.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True
    decision, delegation, interrupt = span.events
    assert decision.name == "llm_audit.decision"
    assert dict(decision.attributes or {}) == {
        semconv.LLM_AUDIT_DECISION_POINT: "route_after_triage",
        semconv.LLM_AUDIT_DECISION_CHOSEN: ("pharmacist",),
        semconv.LLM_AUDIT_DECISION_OPTIONS: ("pharmacist", "physician", "__end__"),
        semconv.GEN_AI_AGENT_NAME: "supervisor",
        semconv.LLM_AUDIT_DECISION_REASONING: "a drug interaction question",
    }
    assert delegation.name == "llm_audit.delegation"
    assert dict(delegation.attributes or {}) == {
        semconv.LLM_AUDIT_DELEGATION_SOURCE: "supervisor",
        semconv.LLM_AUDIT_DELEGATION_TARGET: "pharmacist",
        semconv.LLM_AUDIT_DELEGATION_KIND: "handoff",
        semconv.LLM_AUDIT_DELEGATION_INPUT: '{"task":"check"}',
        semconv.LLM_AUDIT_DELEGATION_OUTPUT: '{"ok":true}',
    }
    assert interrupt.name == "llm_audit.interrupt"
    assert dict(interrupt.attributes or {}) == {
        semconv.LLM_AUDIT_INTERRUPT_ID: "int-1",
        semconv.LLM_AUDIT_INTERRUPT_VALUE: '{"question":"approve 50 mg?"}',
    }
    ctx = span.context
    assert traceparent == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def test_a_review_in_another_trace_links_to_the_pause_it_answers(
    traced: tuple[TracerProvider, InMemorySpanExporter, Emitter],
) -> None:
    provider, exporter, _ = traced
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("run until the pause"):
        traceparent = otel_llm_audit.record_interrupt("int-9", {"draft": "discharge letter"})
    assert traceparent is not None
    # hours later, another request (another trace) resumes the flow
    with otel_llm_audit.audit_context(user_id="dr-4711"), tracer.start_as_current_span("resume"):
        otel_llm_audit.record_human_review(
            "discharge letter",
            "edited",
            interrupt_id="int-9",
            response={"draft": "discharge letter, revised"},
            reason="wrong ward",
            resumes=traceparent,
        )
    paused, resumed = exporter.get_finished_spans()
    assert resumed.context.trace_id != paused.context.trace_id
    (link,) = resumed.links
    assert (link.context.trace_id, link.context.span_id) == (paused.context.trace_id, paused.context.span_id)
    assert dict(link.attributes or {}) == {semconv.LLM_AUDIT_LINK_TYPE: "resumes"}
    (review,) = resumed.events
    assert dict(review.attributes or {}) == {
        semconv.LLM_AUDIT_REVIEW_SUBJECT: "discharge letter",
        semconv.LLM_AUDIT_REVIEW_ACTION: "edited",
        semconv.LLM_AUDIT_REVIEW_REVIEWER: "dr-4711",
        semconv.LLM_AUDIT_REVIEW_INTERRUPT_ID: "int-9",
        semconv.LLM_AUDIT_REVIEW_REASON: "wrong ward",
        semconv.LLM_AUDIT_REVIEW_RESPONSE: '{"draft":"discharge letter, revised"}',
    }


def test_a_review_with_no_span_current_carries_the_link_on_its_own_span(
    traced: tuple[TracerProvider, InMemorySpanExporter, Emitter],
) -> None:
    _, exporter, _ = traced
    paused = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    otel_llm_audit.record_human_review("tool_call send_email", "rejected", reviewer="lead-2", resumes=paused)
    otel_llm_audit.record_human_review("tool_call send_email", "approved", resumes="not-a-traceparent")
    otel_llm_audit.record_human_review("tool_call send_email", "escalated", resumes=f"00-{'z' * 32}-{'b' * 16}-01")
    first, second, third = exporter.get_finished_spans()
    assert first.name == "llm_audit.human_review"
    (link,) = first.links
    assert f"{link.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{link.context.span_id:016x}" == "b7ad6b7169203331"
    assert first.events[0].attributes[semconv.LLM_AUDIT_REVIEW_REVIEWER] == "lead-2"
    # a bad traceparent costs the link, not the review; the problem is counted
    assert second.links == () and third.links == ()
    assert second.events[0].attributes[semconv.LLM_AUDIT_REVIEW_ACTION] == "approved"
    assert third.events[0].attributes[semconv.LLM_AUDIT_REVIEW_ACTION] == "escalated"
    assert _guard.internal_error_counts() == {"api.traceparent": 2}


@pytest.mark.parametrize("mode", ["hash", "none"])
def test_event_content_follows_the_content_setting(
    traced: tuple[TracerProvider, InMemorySpanExporter, Emitter], mode: str
) -> None:
    provider, exporter, _ = traced
    set_settings(Settings.from_env(content=mode))
    with provider.get_tracer("app").start_as_current_span("step"):
        otel_llm_audit.record_delegation("triage", "pharmacist", input={"patient": "Jane Roe"})
        otel_llm_audit.record_decision("route", ["pharmacist"], reasoning="Jane Roe asked about warfarin")
        otel_llm_audit.record_interrupt("int-2", "approve warfarin for Jane Roe?")
    (span,) = exporter.get_finished_spans()
    assert "Jane Roe" not in json.dumps([dict(e.attributes or {}) for e in span.events])
    delegation, decision, interrupt = span.events
    if mode == "none":
        assert semconv.LLM_AUDIT_CONTENT_HASHES not in (delegation.attributes or {})
        assert dict(interrupt.attributes or {}) == {semconv.LLM_AUDIT_INTERRUPT_ID: "int-2"}
    else:
        assert json.loads(delegation.attributes[semconv.LLM_AUDIT_CONTENT_HASHES]) == {
            semconv.LLM_AUDIT_DELEGATION_INPUT: [canonical_hash({"patient": "Jane Roe"})]
        }
        assert json.loads(decision.attributes[semconv.LLM_AUDIT_CONTENT_HASHES]) == {
            semconv.LLM_AUDIT_DECISION_REASONING: [canonical_hash("Jane Roe asked about warfarin")]
        }


def test_memory_operation_api_records_what_was_read(
    traced: tuple[TracerProvider, InMemorySpanExporter, Emitter],
) -> None:
    _, exporter, _ = traced
    with otel_llm_audit.memory_operation("search_memory", store_id="patient-notes", query="allergies") as op:
        op.records = [{"id": "n1", "content": "penicillin"}]
    with pytest.raises(KeyError), otel_llm_audit.memory_operation("delete_memory", store_id="patient-notes"):
        raise KeyError("n2")
    search, delete = exporter.get_finished_spans()
    assert search.name == "search_memory"
    assert search.attributes[semconv.GEN_AI_MEMORY_RECORD_COUNT] == 1
    assert search.attributes[semconv.GEN_AI_MEMORY_QUERY_TEXT] == "allergies"
    assert delete.attributes[semconv.ERROR_TYPE] == "KeyError"


# ------------------------------------------------------------------ framework parent resolvers


@pytest.fixture
def resolver() -> Iterator[Callable[[Span | None], None]]:
    """Register a resolver that returns whatever span the test says the framework is running."""
    running: list[Span | None] = [None]

    def resolve() -> Span | None:
        return running[0]

    def set_running(span: Span | None) -> None:
        running[0] = span

    parents.register(resolve)
    yield set_running
    parents.unregister(resolve)
    assert parents.parent_context() is None


def test_llm_call_nests_under_the_framework_step_not_the_older_ambient_span(
    traced: tuple[TracerProvider, InMemorySpanExporter, Emitter], resolver: Callable[[Span | None], None]
) -> None:
    provider, exporter, emitter = traced
    from otel_llm_audit.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("app")
    try:
        with FakeModelServer() as server, tracer.start_as_current_span("request"):
            client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
            # the framework started its step in a callback, without making it current
            node = tracer.start_span("node")
            resolver(node)
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            # an application span started inside the node is more recent: it stays the parent
            with tracer.start_as_current_span("app span in node"), emitter.start_step(WorkflowInvocation("inner")):
                pass
            node.end()
    finally:
        OpenAIInstrumentor().uninstrument()
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    node_span = by_name["node"]
    assert node_span.parent is not None and node_span.parent.span_id == by_name["request"].context.span_id
    llm = by_name["chat gpt-4o-mini"]
    assert llm.parent is not None and llm.parent.span_id == node_span.context.span_id
    inner = by_name["invoke_workflow inner"]
    assert inner.parent is not None and inner.parent.span_id == by_name["app span in node"].context.span_id
    assert len({s.context.trace_id for s in by_name.values()}) == 1


def test_a_failing_resolver_is_reported_and_ignored(
    traced: tuple[TracerProvider, InMemorySpanExporter, Emitter],
) -> None:
    _, exporter, emitter = traced

    def broken() -> Any:
        raise RuntimeError("framework internals changed")

    parents.register(broken)
    try:
        with emitter.start_step(WorkflowInvocation("still recorded")):
            pass
    finally:
        parents.unregister(broken)
    (span,) = exporter.get_finished_spans()
    assert span.name == "invoke_workflow still recorded"
    assert span.parent is None
    assert _guard.internal_error_counts() == {"emitter.parent_resolver": 1}
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_event_content_on_our_step_spans_is_masked_before_export(make_audit: Callable[..., Any]) -> None:
    audit = make_audit(content="masked")
    emitter = Emitter("otel_llm_audit.test", audit.tracer_provider)
    with emitter.start_step(WorkflowInvocation("triage")):
        otel_llm_audit.record_delegation("triage", "pharmacist", input={"note": "call Jane at 212-555-0187"})
        otel_llm_audit.record_interrupt("int-3", "Email jane.roe@example.com the dose?")
    (span,) = audit.spans()
    delegation, interrupt = span.events
    assert delegation.attributes[semconv.LLM_AUDIT_DELEGATION_INPUT] == '{"note":"call Jane at <PHONE_NUMBER>"}'
    assert interrupt.attributes[semconv.LLM_AUDIT_INTERRUPT_VALUE] == '"Email <EMAIL_ADDRESS> the dose?"'
    assert span.attributes[semconv.LLM_AUDIT_REDACTION_STATUS] == "masked"


def test_with_our_processor_step_content_is_built_off_the_callers_thread(
    make_audit: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from otel_llm_audit.emitter import operations
    from otel_llm_audit.records import ToolExecution

    built_on: list[str] = []
    original = operations.step_end_attributes

    def watched(*args: Any, **kwargs: Any) -> Any:
        built_on.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(operations, "step_end_attributes", watched)
    audit = make_audit(content="raw")
    emitter = Emitter("otel_llm_audit.test", audit.tracer_provider)
    with emitter.start_step(ToolExecution("lookup", arguments={"ward": 7})) as step:
        step.record.result = {"beds": 3}
    (span,) = audit.spans()
    assert built_on == ["otel-llm-audit-completion"]
    assert span.attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] == '{"ward":7}'
    assert span.attributes[semconv.GEN_AI_TOOL_CALL_RESULT] == '{"beds":3}'
    assert span.attributes[semconv.LLM_AUDIT_CONTENT_MODE] == "raw"
    # without a processor of ours (a plain SDK pipeline), the same attributes are set inline
    exporter = InMemorySpanExporter()
    plain = TracerProvider()
    plain.add_span_processor(SimpleSpanProcessor(exporter))
    with Emitter("otel_llm_audit.test", plain).start_step(ToolExecution("lookup", arguments={"ward": 7})):
        pass
    assert built_on[-1] == threading.current_thread().name
    assert exporter.get_finished_spans()[0].attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] == '{"ward":7}'
