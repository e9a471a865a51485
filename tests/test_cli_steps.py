"""A workflow told as numbered steps from an OTLP JSON file, across a pause and its resume."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import otel_llm_audit
from otel_llm_audit.cli import main
from otel_llm_audit.cli.otlp_reader import read_spans
from otel_llm_audit.cli.steps import workflow_steps
from otel_llm_audit.config import Settings, set_settings
from otel_llm_audit.delivery.otlp_json import OtlpJsonFileSpanExporter
from otel_llm_audit.emitter.spans import Emitter
from otel_llm_audit.records import (
    AgentInvocation,
    CheckpointRef,
    MemoryOperation,
    Retrieval,
    StepPosition,
    ToolExecution,
    WorkflowInvocation,
)


def _record_paused_and_resumed_workflow(path: Path) -> tuple[str, str]:
    """Two processes' worth of spans in one file: a run that pauses, and the run that resumes it."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileSpanExporter(path)))
    emitter = Emitter("otel_llm_audit.test", provider)
    set_settings(Settings.from_env(content="raw"))
    try:
        with otel_llm_audit.audit_context(user_id="nurse-4711"), emitter.start_step(WorkflowInvocation("ward")) as wf:
            first_trace = f"{wf.span.get_span_context().trace_id:032x}"
            otel_llm_audit.record_decision("route", "pharmacist", options=["pharmacist", "__end__"])
            with emitter.start_step(AgentInvocation("pharmacist")):
                otel_llm_audit.record_delegation("supervisor", "pharmacist", kind="goto")
                with emitter.start_step(Retrieval("leaflets", query="warfarin")) as r:
                    r.record.documents = [{"id": "l1", "content": "avoid aspirin"}]
                tool = ToolExecution("check_interactions", arguments={"drug": "warfarin"}, agent_name="pharmacist")
                with emitter.start_step(tool) as t:
                    t.record.result = {"interactions": 1}
                with emitter.start_step(AgentInvocation(None, position=StepPosition(graph_node="review"))):
                    paused = otel_llm_audit.record_interrupt("int-1", {"question": "approve 5 mg?"})
            checkpoint = CheckpointRef(thread_id="case-42", checkpoint_id="cp-2")
            with emitter.start_step(MemoryOperation("create_memory", store_id="InMemorySaver", checkpoint=checkpoint)):
                pass
        with (
            otel_llm_audit.audit_context(user_id="dr-4711"),
            emitter.start_step(WorkflowInvocation("ward")) as resumed,
        ):
            second_trace = f"{resumed.span.get_span_context().trace_id:032x}"
            otel_llm_audit.record_human_review("approve 5 mg?", "approved", interrupt_id="int-1", resumes=paused)
    finally:
        set_settings(None)
        provider.shutdown()
    return first_trace, second_trace


def test_steps_follow_the_resumed_run_into_its_own_trace(tmp_path: Path) -> None:
    path = tmp_path / "flow.jsonl"
    first_trace, second_trace = _record_paused_and_resumed_workflow(path)
    assert first_trace != second_trace
    spans, bad = read_spans(path)
    assert bad == 0
    steps = workflow_steps(spans, first_trace)
    assert [step.line() for step in steps] == [
        "1. workflow ward started for nurse-4711",
        "2. decision route: chose pharmacist of pharmacist, __end__",
        "3. [pharmacist] agent pharmacist invoked",
        "4. [pharmacist] delegation supervisor -> pharmacist (goto)",
        "5. [pharmacist] retrieval from leaflets for 'warfarin': 1 documents",
        '6. [pharmacist] tool check_interactions({"drug":"warfarin"}) -> {"interactions":1}',
        "7. [review] agent ? invoked",
        '8. [review] paused for a human id=int-1 {"question":"approve 5 mg?"}',
        "9. create_memory store=InMemorySaver thread=case-42 checkpoint=cp-2",
        "10. workflow ward started for dr-4711",
        "11. human review approved by dr-4711: approve 5 mg?",
    ]
    assert {s.trace_id for s in steps} == {first_trace, second_trace}
    # starting from the resumed trace tells only what happened after the resume
    assert [s.number for s in workflow_steps(spans, second_trace)] == [1, 2]


def test_show_steps_prints_each_workflow_once(tmp_path: Path, capsys: object) -> None:
    path = tmp_path / "flow.jsonl"
    first_trace, _ = _record_paused_and_resumed_workflow(path)
    assert main(["show", str(path), "--steps"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert out.count("trace ") == 1 and f"trace {first_trace}" in out
    assert "human review approved by dr-4711" in out
    assert main(["show", str(path), "--steps", "--trace", "f" * 32]) == 1
