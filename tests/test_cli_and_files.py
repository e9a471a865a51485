"""The demo command end to end, and the OTLP JSON files it and the default exporter write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from otel_llm_audit import semconv
from otel_llm_audit.cli import main
from otel_llm_audit.cli.otlp_reader import read_spans
from otel_llm_audit.config import set_settings
from otel_llm_audit.delivery.otlp_json import OtlpJsonFileSpanExporter
from otel_llm_audit.delivery.store import AuditStore
from otel_llm_audit.delivery.store_writer import CHECKPOINT_SPAN_NAME


def test_demo_records_one_trace_with_identity_tool_call_stream_and_embedding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "demo.jsonl"
    try:
        assert main(["demo", "--output", str(output)]) == 0
    finally:
        set_settings(None)
    printed = capsys.readouterr().out
    assert "model asked for tool get_weather" in printed
    assert "The weather in Paris is 18°C and sunny." in printed
    copy, bad = read_spans(output)  # what the store forwarded: the spans, and the store's final checkpoint
    assert bad == 0
    all_spans = [s for s in copy if s.name != CHECKPOINT_SPAN_NAME]
    assert len(copy) - len(all_spans) == 1
    # three requests: the discharge question, then the agent workflow's pause and its resume
    assert len({s.trace_id for s in all_spans}) == 3
    # Sealed into the demo's store with its HMAC key, and the same spans forwarded to the file.
    store = AuditStore(tmp_path / "demo-audit.db", readonly=True)
    stored = list(store.iter_records())
    assert len(stored) == len(copy) and store.pending() == 0
    assert {r.algorithm for r in stored} == {"hmac-sha256"}
    assert sorted(s.attributes[semconv.LLM_AUDIT_INTEGRITY_HASH] for s in copy) == sorted(r.hash for r in stored)
    (root,) = [s for s in all_spans if s.parent_span_id is None and s.name == "handle discharge question"]
    spans = [s for s in all_spans if s.trace_id == root.trace_id]
    ours = sorted((s for s in spans if s.scope == "otel_llm_audit.instrumentation.openai"), key=lambda s: s.start_ns)
    assert [s.name for s in ours] == ["chat gpt-4o-mini", "chat gpt-4o-mini", "embeddings text-embedding-3-small"]
    assert all(s.parent_span_id == root.span_id for s in ours)
    for span in [root, *ours]:
        assert span.attributes[semconv.USER_ID] == "nurse-4711"
        assert span.attributes[semconv.LLM_AUDIT_APPLICATION] == "discharge-assistant"
    first, streamed, _ = ours
    out = json.loads(first.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])
    assert out[0]["parts"][0] == {
        "type": "tool_call",
        "id": "call_fake_1",
        "name": "get_weather",
        "arguments": {"city": "Paris"},
    }
    assert streamed.attributes[semconv.GEN_AI_REQUEST_STREAM] is True
    assert streamed.attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    inputs = json.loads(streamed.attributes[semconv.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in inputs] == ["system", "user", "assistant", "tool"]
    assert inputs[3]["parts"][0]["type"] == "tool_call_response"
    # Masked by default: the made-up personal data never reaches the file.
    assert inputs[1]["parts"][0]["content"] == (
        "Is it warm enough in Paris for the transfer of patient MRN: <MEDICAL_RECORD_NUMBER> tomorrow? "
        "Her daughter asks to be called on <PHONE_NUMBER> or mailed at <EMAIL_ADDRESS>."
    )
    for span in (first, streamed):
        assert span.attributes[semconv.LLM_AUDIT_CONTENT_MODE] == "masked"
        assert json.loads(span.attributes[semconv.LLM_AUDIT_REDACTION_ENTITIES]) == {
            "EMAIL_ADDRESS": 1,
            "MEDICAL_RECORD_NUMBER": 1,
            "PHONE_NUMBER": 1,
        }
    file_text = output.read_text()
    assert "40417733" not in file_text and "555 0143" not in file_text and "claire.martin" not in file_text
    # A second provider in the same trace, under the same root and identity.
    (claude,) = [s for s in spans if s.scope == "otel_llm_audit.instrumentation.anthropic"]
    assert claude.name == "chat claude-haiku-4-5"
    assert claude.parent_span_id == root.span_id
    assert claude.attributes[semconv.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert claude.attributes[semconv.USER_ID] == "nurse-4711"
    assert "anthropic summary: Hello from the fake model." in printed
    # The agent workflow: paused for the physician, resumed by their request, told step by step.
    flows = sorted((s for s in all_spans if s.name == "invoke_workflow ward_assistant"), key=lambda s: s.start_ns)
    assert [f.attributes[semconv.USER_ID] for f in flows] == ["nurse-4711", "dr-4711"]
    (resumed,) = [s for s in all_spans if any(e["name"] == "llm_audit.human_review" for e in s.events)]
    assert resumed.trace_id == flows[1].trace_id and resumed.links[0]["trace_id"] == flows[0].trace_id
    assert "workflow paused for review" in printed
    assert "The agent workflow, step by step" in printed
    assert "human review approved by dr-4711" in printed
    # It ends with what a responder would type, run on what it recorded; both verifies pass.
    for command in ("find --source", "cost --source", "show ", "verify "):
        assert f"$ otel-llm-audit {command}" in printed
    assert printed.count(": OK") == 2 and "TAMPERED" not in printed
    # The show command reads the same file back.
    assert main(["show", str(output), "--trace", root.trace_id]) == 0
    shown = capsys.readouterr().out
    assert "handle discharge question" in shown
    assert "masking status=masked" in shown


def test_otlp_json_file_uses_hex_ids_and_integer_enums(tmp_path: Path) -> None:
    path = tmp_path / "out" / "traces.jsonl"
    exporter = OtlpJsonFileSpanExporter(path)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent:
        tracer.start_span("child", attributes={"k": [1, 2]}).end()
    provider.shutdown()
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    child = json.loads(lines[0])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    parent_json = json.loads(lines[1])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    ctx = parent.get_span_context()
    assert parent_json["traceId"] == f"{ctx.trace_id:032x}"
    assert parent_json["spanId"] == f"{ctx.span_id:016x}"
    assert child["parentSpanId"] == f"{ctx.span_id:016x}"
    assert parent_json["kind"] == 2  # SERVER, as an integer
    assert child["attributes"] == [
        {"key": "k", "value": {"arrayValue": {"values": [{"intValue": "1"}, {"intValue": "2"}]}}}
    ]


def test_reader_skips_and_counts_malformed_lines(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b'{"resourceSpans": []}\nnot json\n\xff\xfe garbage\n')
    spans, bad = read_spans(path)
    assert (spans, bad) == ([], 2)


def test_tree_prints_agent_steps_audit_events_and_resume_links(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from rich.console import Console

    import otel_llm_audit
    from otel_llm_audit.cli.otlp_reader import read_spans
    from otel_llm_audit.cli.tree import render_traces
    from otel_llm_audit.config import Settings, set_settings
    from otel_llm_audit.delivery.otlp_json import OtlpJsonFileSpanExporter
    from otel_llm_audit.emitter.spans import Emitter
    from otel_llm_audit.records import StepPosition, ToolExecution

    path = tmp_path / "agents.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileSpanExporter(path)))
    emitter = Emitter("otel_llm_audit.test", provider)
    set_settings(Settings.from_env(content="raw"))
    try:
        position = StepPosition(graph_node="pharmacist", graph_step=3)
        tool = ToolExecution("check_interactions", call_id="call_1", arguments={"drug": "warfarin"}, position=position)
        with emitter.start_step(tool) as step:
            step.record.result = {"interactions": 0}
            otel_llm_audit.record_decision("route", "pharmacist", options=["pharmacist", "physician"], reasoning="drug")
            otel_llm_audit.record_delegation("supervisor", "pharmacist", kind="handoff", input={"task": "check"})
            paused = otel_llm_audit.record_interrupt("int-1", {"question": "approve?"})
            with otel_llm_audit.audit_context(user_id="dr-4711"):
                otel_llm_audit.record_human_review("dose", "approved", interrupt_id="int-1", resumes=paused)
            otel_llm_audit.record_policy_event("guardrail", "allowed", source="openai_agents", name="pii_check")
    finally:
        set_settings(None)
        provider.shutdown()
    spans, bad = read_spans(path)
    assert bad == 0
    (span,) = spans
    assert span.links == [
        {"trace_id": span.trace_id, "span_id": span.span_id, "attributes": {"llm_audit.link.type": "resumes"}}
    ]
    console = Console(record=True, width=200)
    render_traces(spans, console)
    lines = [line.strip(" │├└─") for line in console.export_text().splitlines()]
    assert "step graph.node=pharmacist  graph.step=3  tool.call.id=call_1" in lines
    assert 'gen_ai.tool.call.arguments {"drug":"warfarin"}' in lines
    assert 'gen_ai.tool.call.result {"interactions":0}' in lines
    assert "decision route: chose pharmacist of pharmacist, physician because drug" in lines
    assert 'delegation supervisor -> pharmacist (handoff) with {"task":"check"}' in lines
    assert 'paused for a human id=int-1 {"question":"approve?"}' in lines
    assert "human review approved by dr-4711: dose" in lines
    assert "policy guardrail allowed by openai_agents (pii_check)" in lines
    assert f"resumes trace {span.trace_id} span {span.span_id}" in lines
