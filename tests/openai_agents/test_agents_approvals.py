"""Human in the loop: tool approvals (``needs_approval``, openai-agents 0.8+; skipped before).

A run stops because a tool call waits for approval: an ``llm_audit.interrupt`` on the
execute_tool span of that call. The application approves or rejects on the ``RunState`` and
resumes: the resumed run's first span carries an ``llm_audit.human_review`` (the reviewer from
the ``audit_context`` in force at the resume) and a ``resumes`` link to the paused span, also
when the state was serialized and the run resumed in a fresh process.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

agents = pytest.importorskip("agents")

from agent_runs import MODES, run  # noqa: E402
from agent_spans import by_name, events, links, one  # noqa: E402

from otel_llm_audit import audit_context, semconv  # noqa: E402
from otel_llm_audit.demo.fake_server import WEATHER_ANSWER, FakeModelServer  # noqa: E402

pytestmark = pytest.mark.skipif(
    "needs_approval" not in inspect.signature(agents.function_tool).parameters,
    reason="tool approvals (needs_approval, RunState.approve/reject) came with openai-agents 0.8",
)


def delete_tool() -> Any:
    @agents.function_tool(needs_approval=True)
    def delete_records(city: str) -> str:
        """Delete the records of a city."""
        return f"deleted {city}"

    return delete_records


def ops_agent(make_model: Any) -> Any:
    model = make_model("chat", across_loops=True)  # the resumed run is on another event loop
    return agents.Agent(name="Ops", instructions="Operate.", model=model, tools=[delete_tool()])


def paused_run(audit: Any, agent: Any, mode: str) -> tuple[Any, Any]:
    """Run until the approval pause; the result and the paused execute_tool span."""
    first = run(agent, mode, "Delete the Paris records")
    assert first.final_output is None
    assert [i.tool_name for i in first.interruptions] == ["delete_records"]
    spans = audit.spans()
    paused = one(spans, "execute_tool delete_records")
    run_id = one(spans, "invoke_workflow Agent workflow").attributes[semconv.LLM_AUDIT_RUN_ID]
    assert events(paused, semconv.EVENT_LLM_AUDIT_INTERRUPT) == [
        {
            semconv.LLM_AUDIT_INTERRUPT_ID: f"{run_id}:call_fake_1",
            semconv.LLM_AUDIT_INTERRUPT_VALUE: json.dumps(
                {"tool": "delete_records", "agent": "Ops", "arguments": {"city": "Paris"}}, separators=(",", ":")
            ),
        }
    ]
    assert paused.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True
    assert semconv.GEN_AI_TOOL_CALL_RESULT not in paused.attributes  # it did not run
    assert paused.attributes[semconv.GEN_AI_TOOL_CALL_ID] == "call_fake_1"
    audit.clear()
    return first, paused


@pytest.mark.parametrize("mode", MODES)
def test_approval_in_process(agents_audit: Any, make_model: Any, mode: str) -> None:
    agent = ops_agent(make_model)
    first, paused = paused_run(agents_audit, agent, mode)
    interrupt_id = events(paused, semconv.EVENT_LLM_AUDIT_INTERRUPT)[0][semconv.LLM_AUDIT_INTERRUPT_ID]

    state = first.to_state()
    state.approve(first.interruptions[0])
    with audit_context(user_id="reviewer-7"):
        second = run(agent, mode, state)
    assert second.final_output == WEATHER_ANSWER

    spans = agents_audit.spans()
    resumed = one(spans, "invoke_agent Ops")
    assert links(resumed) == [(paused.context.trace_id, paused.context.span_id, "resumes")]
    assert events(resumed, semconv.EVENT_LLM_AUDIT_HUMAN_REVIEW) == [
        {
            semconv.LLM_AUDIT_REVIEW_SUBJECT: "tool call delete_records",
            semconv.LLM_AUDIT_REVIEW_ACTION: "approved",
            semconv.LLM_AUDIT_REVIEW_REVIEWER: "reviewer-7",
            semconv.LLM_AUDIT_REVIEW_INTERRUPT_ID: interrupt_id,
        }
    ]
    executed = one(spans, "execute_tool delete_records")
    assert executed.attributes[semconv.GEN_AI_TOOL_CALL_ID] == "call_fake_1"
    assert json.loads(str(executed.attributes[semconv.GEN_AI_TOOL_CALL_RESULT])) == "deleted Paris"
    assert executed.status.is_ok
    assert resumed.attributes[semconv.USER_ID] == "reviewer-7"


def test_rejection_with_a_message(agents_audit: Any, make_model: Any) -> None:
    agent = ops_agent(make_model)
    first, paused = paused_run(agents_audit, agent, "async")
    state = first.to_state()
    state.reject(first.interruptions[0], rejection_message="Not during business hours")
    with audit_context(user_id="reviewer-9"):
        second = run(agent, "async", state)
    assert second.final_output == WEATHER_ANSWER  # the model got the refusal as the tool's output

    spans = agents_audit.spans()
    resumed = one(spans, "invoke_agent Ops")
    review = events(resumed, semconv.EVENT_LLM_AUDIT_HUMAN_REVIEW)
    assert [(r[semconv.LLM_AUDIT_REVIEW_ACTION], r[semconv.LLM_AUDIT_REVIEW_REVIEWER]) for r in review] == [
        ("rejected", "reviewer-9")
    ]
    assert review[0][semconv.LLM_AUDIT_REVIEW_REASON] == "Not during business hours"
    assert links(resumed) == [(paused.context.trace_id, paused.context.span_id, "resumes")]
    assert by_name(spans, "execute_tool delete_records") == []  # the rejected call never ran


RESUME_APP = textwrap.dedent(
    """
    import asyncio, json, sys
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    import openai
    import otel_llm_audit
    from otel_llm_audit import audit_context
    from otel_llm_audit.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    exporter = InMemorySpanExporter()
    pipeline = otel_llm_audit.configure(
        span_exporters=[exporter], tracer_provider=TracerProvider(), set_global=False, instrument=False, content="raw"
    )
    OpenAIAgentsInstrumentor().instrument(tracer_provider=pipeline.tracer_provider)
    import agents

    @agents.function_tool(needs_approval=True)
    def delete_records(city: str) -> str:
        \"\"\"Delete the records of a city.\"\"\"
        return f"deleted {city}"

    async def main():
        client = openai.AsyncOpenAI(base_url=sys.argv[1], api_key="sk-test", max_retries=0)
        agent = agents.Agent(name="Ops", instructions="Operate.",
                             model=agents.OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client),
                             tools=[delete_records])
        state = await agents.RunState.from_string(agent, open(sys.argv[2]).read())
        with audit_context(user_id="night-shift-reviewer"):
            state.approve(state.get_interruptions()[0])
            result = await agents.Runner.run(agent, state)
        return result.final_output

    output = asyncio.run(main())
    pipeline.force_flush(10_000)
    print(json.dumps({"output": output, "spans": [
        {"name": s.name, "events": [[e.name, dict(e.attributes)] for e in s.events],
         "links": [[f"{l.context.trace_id:032x}", f"{l.context.span_id:016x}", dict(l.attributes)] for l in s.links]}
        for s in exporter.get_finished_spans()]}))
    """
)


def test_resume_in_a_fresh_process_links_to_the_pause(
    agents_audit: Any, make_model: Any, fake_server: FakeModelServer, tmp_path: Path
) -> None:
    agent = ops_agent(make_model)
    first, paused = paused_run(agents_audit, agent, "async")
    saved = tmp_path / "state.json"
    saved.write_text(first.to_state().to_string())
    assert json.loads(saved.read_text())["otel_llm_audit"]["pauses"]["call_fake_1"]["traceparent"] == (
        f"00-{paused.context.trace_id:032x}-{paused.context.span_id:016x}-{int(paused.context.trace_flags):02x}"
    )

    app = tmp_path / "resume.py"
    app.write_text(RESUME_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_"))}
    done = subprocess.run(
        [sys.executable, str(app), fake_server.base_url, str(saved)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["output"] == WEATHER_ANSWER
    spans = {s["name"]: s for s in report["spans"]}
    # A fresh process: the SDK starts a new trace for the resumed run, so the workflow span is first.
    workflow = spans["invoke_workflow Agent workflow"]
    assert workflow["links"] == [
        [f"{paused.context.trace_id:032x}", f"{paused.context.span_id:016x}", {"llm_audit.link.type": "resumes"}]
    ]
    (review,) = [attrs for name, attrs in workflow["events"] if name == semconv.EVENT_LLM_AUDIT_HUMAN_REVIEW]
    assert review[semconv.LLM_AUDIT_REVIEW_ACTION] == "approved"
    assert review[semconv.LLM_AUDIT_REVIEW_REVIEWER] == "night-shift-reviewer"
    assert review[semconv.LLM_AUDIT_REVIEW_INTERRUPT_ID].endswith(":call_fake_1")
    assert "execute_tool delete_records" in spans


def test_a_failure_of_ours_at_the_pause_leaves_the_paused_run_as_the_sdk_made_it(
    make_agents_audit: Any, make_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_llm_audit import _guard
    from otel_llm_audit.instrumentation.openai_agents._processor import AuditTracingProcessor

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug in otel-llm-audit")

    monkeypatch.setattr(AuditTracingProcessor, "on_interruption", boom)  # before instrument: hooks bind it
    make_agents_audit()
    _guard.reset_internal_error_counts()
    first = run(ops_agent(make_model), "sync", "Delete the Paris records")
    assert first.final_output is None
    assert [i.tool_name for i in first.interruptions] == ["delete_records"]
    assert _guard.internal_error_counts().get("openai_agents.interruption") == 1
