"""Issue 5's acceptance test: a paused and resumed agent workflow, rebuilt from its exported spans alone.

The demo's ward workflow (a supervisor delegating to a pharmacist sub-agent that retrieves
leaflets and calls a tool, a conditional edge, a pause for a physician, checkpoints all along)
runs in two "processes": the nurse's request in one audit pipeline, the physician's resume in a
fresh one, as a later request would. Both write OTLP JSON to one file. From that file alone the
test reconstructs who did what, step by step: which agent, which step, which tool with which
arguments, which memory was read, who approved what, and that the resume links to the pause.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_llm_audit
from otel_llm_audit import semconv
from otel_llm_audit.cli.otlp_reader import SpanView, read_spans
from otel_llm_audit.cli.steps import workflow_steps
from otel_llm_audit.config import set_settings
from otel_llm_audit.delivery.otlp_json import OtlpJsonFileSpanExporter
from otel_llm_audit.demo.fake_server import FakeModelServer
from otel_llm_audit.instrumentation.langchain import LangChainInstrumentor
from otel_llm_audit.instrumentation.openai import OpenAIInstrumentor

pytest.importorskip("langgraph")

from otel_llm_audit.demo import ward_workflow

_SKIP_KINDS = {
    "search_memory",
    "create_memory",
    "update_memory",
    semconv.EVENT_LLM_AUDIT_POLICY,  # the masking stage's own record of what it masked
}


def _one_process(path: Path, run: Any) -> Any:
    """A process's worth of auditing: its own pipeline and instrumentation, gone at the end."""
    pipeline = otel_llm_audit.configure(
        span_exporters=[OtlpJsonFileSpanExporter(path)],
        metric_readers=[],
        tracer_provider=TracerProvider(),
        set_global=False,
        instrument=False,
        content="masked",
    )
    instrumentors = [OpenAIInstrumentor(), LangChainInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider)
    try:
        return run()
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
        pipeline.force_flush()
        pipeline.shutdown()
        set_settings(None)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[SpanView], dict[str, Any]]]:
    path = tmp_path_factory.mktemp("ward") / "traces.jsonl"
    checkpointer = ward_workflow.new_checkpointer()  # the saved state outlives the first process
    with FakeModelServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        try:
            paused = _one_process(
                path, lambda: ward_workflow.run_until_review(ward_workflow.build_ward_workflow(client, checkpointer))
            )
            done = _one_process(
                path, lambda: ward_workflow.resume_with_review(ward_workflow.build_ward_workflow(client, checkpointer))
            )
        finally:
            client.close()
    spans, bad = read_spans(path)
    assert bad == 0
    yield spans, {"paused": paused, "done": done}


def _first_trace(spans: list[SpanView]) -> str:
    workflows = [s for s in spans if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == "invoke_workflow"]
    return min(workflows, key=lambda s: s.start_ns).trace_id


def test_the_application_got_its_answers(exported: tuple[list[SpanView], dict[str, Any]]) -> None:
    _, results = exported
    # paused before the answer (langgraph 0.4+ also returns the interrupt as "__interrupt__")
    assert "answer" not in results["paused"]
    assert results["paused"]["proposal"] == "Do not start ibuprofen; give paracetamol 1 g, up to four times a day."
    assert results["done"]["physician_decision"] == {
        "action": "approve",
        "note": "paracetamol is fine, at a lower dose: the patient weighs 48 kg",
        "override": "paracetamol 500 mg up to four times a day",
    }
    assert results["done"]["answer"] == "Hello from the fake model."


def test_the_workflow_reads_as_numbered_steps_from_the_export_alone(
    exported: tuple[list[SpanView], dict[str, Any]],
) -> None:
    spans, _ = exported
    steps = workflow_steps(spans, _first_trace(spans))
    assert len(steps) >= 20
    story = [f"[{s.actor}] {s.text}" for s in steps if s.kind not in _SKIP_KINDS]
    interrupt_id = next(s.text.split()[4].removeprefix("id=") for s in steps if s.kind == "llm_audit.interrupt")
    assert story == [
        "[] workflow ward_assistant started for nurse-4711",
        "[supervisor] chat openai/gpt-4o-mini-2026-01-01 40->5 tokens",
        "[supervisor] decision route_question: chose pharmacist of pharmacist, physician"
        " because the question is about a drug combination",
        '[supervisor] delegation supervisor -> pharmacist (goto) with {"question":"Patient MRN: <MEDICAL_RECORD_NUMBER>'
        " takes warfarin. Can we start …",
        "[pharmacist] agent pharmacist invoked",
        "[research] retrieval from drug_leaflets for 'Patient MRN: <MEDICAL_RECORD_NUMBER> takes warfarin. Can we start"
        " ibuprofen for her knee pain tonight? Her daughter asks to be called on <PHONE_NUMBER>.': 2 documents",
        "[consult] chat openai/gpt-4o-mini-2026-01-01 89->6 tokens",
        '[pharmacist] tool check_interactions({"drug":"ibuprofen"}) -> "{\\"drug\\": \\"ibuprofen\\",'
        ' \\"interacts_with\\": [\\"warfarin\\"], \\"severity\\": \\"major\\"}"',
        "[consult] chat openai/gpt-4o-mini-2026-01-01 107->10 tokens",
        '[pharmacist] delegation ward_assistant -> pharmacist (subgraph) with {"question":"Patient MRN:'
        " <MEDICAL_RECORD_NUMBER> takes warfarin. Can we start …",
        "[pharmacist] decision needs_review: chose review of review, reply",
        f'[review] paused for a human id={interrupt_id} {{"question":"Approve the pharmacist\'s proposal?",'
        '"proposal":"Do not start ibuprofen; give…',
        "[] workflow ward_assistant started for dr-4711",
        "[review] human review approved by dr-4711: interrupt review answer"
        ' {"action":"approve","note":"paracetamol is fine, at a lower…',
        "[reply] chat openai/gpt-4o-mini-2026-01-01 27->7 tokens",
    ]


def test_the_escalation_and_the_override_say_who_decided_what_and_why(
    exported: tuple[list[SpanView], dict[str, Any]],
) -> None:
    spans, _ = exported
    events = {
        e["attributes"][semconv.LLM_AUDIT_POLICY_CATEGORY]: e["attributes"]
        for s in spans
        for e in s.events
        if e["name"] == semconv.EVENT_LLM_AUDIT_POLICY
        and e["attributes"][semconv.LLM_AUDIT_POLICY_CATEGORY] in ("escalation", "override")
    }
    escalation, override = events["escalation"], events["override"]
    assert escalation[semconv.LLM_AUDIT_POLICY_ACTION] == "escalated"
    assert escalation[semconv.LLM_AUDIT_POLICY_ACTOR] == "ward_assistant"  # named by the application
    assert json.loads(escalation[semconv.LLM_AUDIT_POLICY_DETAILS]) == {
        "to": "physician-on-call",
        "reason": "a change of medication needs a physician's sign-off",
    }
    assert override[semconv.LLM_AUDIT_POLICY_ACTION] == "overridden"
    assert override[semconv.LLM_AUDIT_POLICY_ACTOR] == "dr-4711"  # the audit context's user: the physician
    assert json.loads(override[semconv.LLM_AUDIT_POLICY_DETAILS]) == {
        "overridden": "paracetamol 1 g up to four times a day",
        "replaced_by": "paracetamol 500 mg up to four times a day",
        "reason": "paracetamol is fine, at a lower dose: the patient weighs 48 kg",
    }


def test_the_resume_links_to_the_pause_and_reads_the_state_it_saved(
    exported: tuple[list[SpanView], dict[str, Any]],
) -> None:
    spans, _ = exported
    first = _first_trace(spans)
    (paused,) = [s for s in spans if any(e["name"] == "llm_audit.interrupt" for e in s.events)]
    (resumed,) = [s for s in spans if any(e["name"] == "llm_audit.human_review" for e in s.events)]
    assert paused.trace_id == first and resumed.trace_id != first
    assert resumed.links == [
        {"trace_id": paused.trace_id, "span_id": paused.span_id, "attributes": {semconv.LLM_AUDIT_LINK_TYPE: "resumes"}}
    ]
    (interrupt,) = [e for e in paused.events if e["name"] == "llm_audit.interrupt"]
    (review,) = [e for e in resumed.events if e["name"] == "llm_audit.human_review"]
    assert (
        review["attributes"][semconv.LLM_AUDIT_REVIEW_INTERRUPT_ID]
        == interrupt["attributes"][semconv.LLM_AUDIT_INTERRUPT_ID]
    )
    assert review["attributes"][semconv.LLM_AUDIT_REVIEW_REVIEWER] == "dr-4711"
    assert resumed.attributes[semconv.LLM_AUDIT_AUTH_METHOD] == "sso_saml"
    # which memory was read: the resumed run loaded the last checkpoint the paused run saved,
    # with the question put to the physician among its records
    saved = [
        s
        for s in spans
        if s.trace_id == first and s.name == "create_memory" and s.attributes.get(semconv.LLM_AUDIT_CHECKPOINT_NS) == ""
    ]
    last_saved = max(saved, key=lambda s: s.start_ns).attributes[semconv.LLM_AUDIT_CHECKPOINT_ID]
    read = [s for s in spans if s.trace_id == resumed.trace_id and s.name == "search_memory"]
    assert read[0].attributes[semconv.LLM_AUDIT_CHECKPOINT_ID] == last_saved
    records = json.loads(read[0].attributes[semconv.GEN_AI_MEMORY_RECORDS])
    assert {r["id"] for r in records} >= {"question", "proposal", "__interrupt__"}


def test_every_step_of_the_workflow_is_in_one_tree_per_request(
    exported: tuple[list[SpanView], dict[str, Any]],
) -> None:
    spans, _ = exported
    ours = [s for s in spans if s.scope.startswith("otel_llm_audit")]
    by_trace: dict[str, list[SpanView]] = {}
    for span in ours:
        by_trace.setdefault(span.trace_id, []).append(span)
    assert len(by_trace) == 2  # the nurse's request and the physician's
    for members in by_trace.values():
        roots = [s for s in members if s.parent_span_id is None]
        assert [r.name for r in roots] == ["invoke_workflow ward_assistant"]
        ids = {s.span_id for s in members}
        assert all(s.parent_span_id in ids for s in members if s.parent_span_id is not None)
    llm = [s for s in ours if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == "chat"]
    assert len(llm) == 4  # one span per model call: no duplicates from the framework
    assert {s.scope for s in llm} == {"otel_llm_audit.instrumentation.openai"}
