"""Agent, tool and memory steps as spans; policy and human-review records as events."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import otel_llm_audit
from otel_llm_audit import __version__, semconv
from otel_llm_audit.config import Settings, set_settings
from otel_llm_audit.demo.fake_server import FakeModelServer
from otel_llm_audit.emitter.attributes import llm_call_content
from otel_llm_audit.emitter.content import canonical_hash
from otel_llm_audit.emitter.spans import Emitter
from otel_llm_audit.instrumentation.openai import OpenAIInstrumentor
from otel_llm_audit.records import (
    AgentInvocation,
    LLMCall,
    MemoryOperation,
    Message,
    PolicyEvent,
    ToolExecution,
)


@pytest.fixture
def traced() -> Iterator[tuple[TracerProvider, InMemorySpanExporter, Emitter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    set_settings(Settings.from_env(content="raw"))
    yield provider, exporter, Emitter("otel_llm_audit.test", provider)
    set_settings(None)
    OpenAIInstrumentor().uninstrument()
    provider.shutdown()


def test_tool_step_nests_the_llm_call_and_records_arguments_and_result(
    traced: tuple[TracerProvider, InMemorySpanExporter, Emitter],
) -> None:
    provider, exporter, emitter = traced
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    record = ToolExecution(tool_name="lookup_patient", call_id="call_7", arguments={"ward": 7}, agent_name="triage")
    with FakeModelServer() as server, emitter.start_step(record) as step:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        step.record.result = {"patients": 3}
    llm, tool = exporter.get_finished_spans()
    assert tool.name == "execute_tool lookup_patient"
    assert tool.kind is SpanKind.INTERNAL
    assert llm.parent is not None and llm.parent.span_id == tool.context.span_id
    attrs = dict(tool.attributes or {})
    assert attrs == {
        semconv.GEN_AI_OPERATION_NAME: "execute_tool",
        semconv.GEN_AI_TOOL_NAME: "lookup_patient",
        semconv.GEN_AI_TOOL_TYPE: "function",
        semconv.GEN_AI_TOOL_CALL_ID: "call_7",
        semconv.GEN_AI_AGENT_NAME: "triage",
        semconv.GEN_AI_TOOL_CALL_ARGUMENTS: '{"ward":7}',
        semconv.GEN_AI_TOOL_CALL_RESULT: '{"patients":3}',
        semconv.LLM_AUDIT_CONTENT_MODE: "raw",
        semconv.LLM_AUDIT_SDK_VERSION: __version__,
    }


def test_agent_step_with_identity_and_messages(traced: tuple[TracerProvider, InMemorySpanExporter, Emitter]) -> None:
    _, exporter, emitter = traced
    record = AgentInvocation(agent_name="discharge-planner", agent_id="asst_1", conversation_id="conv-9")
    with otel_llm_audit.audit_context(user_id="nurse-1", actor_type="human"), emitter.start_step(record) as step:
        step.record.input_messages = [Message("user", [{"type": "text", "content": "plan discharge"}])]
        step.record.output_messages = [Message("assistant", [{"type": "text", "content": "done"}])]
    (span,) = exporter.get_finished_spans()
    assert span.name == "invoke_agent discharge-planner"
    assert span.kind is SpanKind.INTERNAL
    assert span.attributes[semconv.USER_ID] == "nurse-1"
    assert span.attributes[semconv.GEN_AI_AGENT_ID] == "asst_1"
    assert span.attributes[semconv.GEN_AI_CONVERSATION_ID] == "conv-9"
    assert json.loads(span.attributes[semconv.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "done"}]}
    ]


def test_memory_step_in_hash_mode_keeps_counts_and_hashes_not_content(
    traced: tuple[TracerProvider, InMemorySpanExporter, Emitter],
) -> None:
    _, exporter, emitter = traced
    set_settings(Settings.from_env(content="hash"))
    records = [{"content": "allergic to penicillin", "id": "m1"}, {"content": "lives alone", "id": "m2"}]
    with emitter.start_step(MemoryOperation("search_memory", store_id="patient-notes", query="allergies")) as step:
        step.record.records = records
    (span,) = exporter.get_finished_spans()
    assert span.name == "search_memory"
    assert span.attributes[semconv.GEN_AI_MEMORY_STORE_ID] == "patient-notes"
    assert span.attributes[semconv.GEN_AI_MEMORY_RECORD_COUNT] == 2
    assert json.loads(span.attributes[semconv.LLM_AUDIT_CONTENT_HASHES]) == {
        semconv.GEN_AI_MEMORY_QUERY_TEXT: [canonical_hash("allergies")],
        semconv.GEN_AI_MEMORY_RECORDS: [canonical_hash(r) for r in records],
    }
    assert "penicillin" not in json.dumps(dict(span.attributes or {}))


def test_failed_step_records_the_error_and_reraises(
    traced: tuple[TracerProvider, InMemorySpanExporter, Emitter],
) -> None:
    _, exporter, emitter = traced
    with pytest.raises(TimeoutError, match="pharmacy API"), emitter.start_step(ToolExecution(tool_name="order_drug")):
        raise TimeoutError("pharmacy API did not answer")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "TimeoutError"
    assert [e.name for e in span.events] == ["exception"]


def test_policy_event_and_human_review_on_the_current_span(
    traced: tuple[TracerProvider, InMemorySpanExporter, Emitter],
) -> None:
    provider, exporter, _ = traced
    tracer = provider.get_tracer("app")
    with otel_llm_audit.audit_context(user_id="dr-4711"), tracer.start_as_current_span("approve order"):
        otel_llm_audit.record_policy_event(
            "override", "overridden", source="clinical-review", name="max-dose", details={"limit_mg": 40}
        )
        otel_llm_audit.record_human_review("tool_call order_drug", "approved", reason="within protocol")
    (span,) = exporter.get_finished_spans()
    assert span.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True
    policy, review = span.events
    assert policy.name == semconv.EVENT_LLM_AUDIT_POLICY
    assert dict(policy.attributes or {}) == {
        semconv.LLM_AUDIT_POLICY_CATEGORY: "override",
        semconv.LLM_AUDIT_POLICY_ACTION: "overridden",
        semconv.LLM_AUDIT_POLICY_SOURCE: "clinical-review",
        semconv.LLM_AUDIT_POLICY_NAME: "max-dose",
        semconv.LLM_AUDIT_POLICY_DETAILS: '{"limit_mg": 40}',
        semconv.LLM_AUDIT_POLICY_ACTOR: "dr-4711",  # from the audit context
    }
    assert review.name == semconv.EVENT_LLM_AUDIT_HUMAN_REVIEW
    assert dict(review.attributes or {}) == {
        semconv.LLM_AUDIT_REVIEW_SUBJECT: "tool_call order_drug",
        semconv.LLM_AUDIT_REVIEW_ACTION: "approved",
        semconv.LLM_AUDIT_REVIEW_REVIEWER: "dr-4711",  # from the audit context
        semconv.LLM_AUDIT_REVIEW_REASON: "within protocol",
    }


def test_a_record_with_no_span_current_gets_a_span_of_its_own(
    traced: tuple[TracerProvider, InMemorySpanExporter, Emitter], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, exporter, _ = traced
    monkeypatch.setattr(
        "otel_llm_audit.api.trace.get_tracer", lambda *a, **k: provider.get_tracer("otel_llm_audit.api")
    )
    with otel_llm_audit.audit_context(user_id="lead-2", tenant_id="clinic-3"):
        otel_llm_audit.record_human_review("draft reply", "rejected")
    (span,) = exporter.get_finished_spans()
    assert span.name == semconv.EVENT_LLM_AUDIT_HUMAN_REVIEW
    assert span.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True
    assert span.attributes[semconv.USER_ID] == "lead-2"
    assert span.attributes[semconv.LLM_AUDIT_TENANT_ID] == "clinic-3"
    assert span.events[0].attributes[semconv.LLM_AUDIT_REVIEW_REVIEWER] == "lead-2"


def test_provider_policy_events_on_an_llm_call_become_span_events() -> None:
    record = LLMCall(operation="chat", provider="azure.ai.openai", request_model="gpt-4o")
    record.policy_events.append(
        PolicyEvent(category="content_filter", action="blocked", source="azure.content_filter", name="violence")
    )
    content = llm_call_content(record, Settings.from_env(content="none"))
    assert content.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True
    (event,) = content.events
    assert event.name == semconv.EVENT_LLM_AUDIT_POLICY
    assert event.attributes == {
        semconv.LLM_AUDIT_POLICY_CATEGORY: "content_filter",
        semconv.LLM_AUDIT_POLICY_ACTION: "blocked",
        semconv.LLM_AUDIT_POLICY_SOURCE: "azure.content_filter",
        semconv.LLM_AUDIT_POLICY_NAME: "violence",
    }


def test_an_audit_event_on_an_application_span_is_masked_not_hashed(caplog: pytest.LogCaptureFixture) -> None:
    """The application's own span is not claimed by our processor, but passes its masking stage all the same."""
    exporter = InMemorySpanExporter()
    pipeline = otel_llm_audit.configure(
        span_exporters=[exporter], metric_readers=[], instrument=False, set_global=False, content="masked"
    )
    try:
        assert pipeline.masking is not None and pipeline.masking.wait_ready(60)
        tracer = pipeline.tracer_provider.get_tracer("ward-app")
        with caplog.at_level("WARNING", logger="otel_llm_audit"), tracer.start_as_current_span("triage"):
            otel_llm_audit.record_delegation(
                "triage", "pharmacist", kind="handoff", input={"note": "call jane.doe@example.com"}
            )
        assert pipeline.force_flush(10_000)
        (span,) = exporter.get_finished_spans()
        (event,) = span.events
        assert json.loads(event.attributes[semconv.LLM_AUDIT_DELEGATION_INPUT]) == {"note": "call <EMAIL_ADDRESS>"}
        assert not [r for r in caplog.records if "no masking stage" in r.getMessage()]
    finally:
        pipeline.shutdown()
        set_settings(None)
