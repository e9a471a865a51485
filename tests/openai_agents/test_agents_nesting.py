"""Nesting without attaching context: the application's span, model calls inside tools, concurrency.

The processor never attaches an OpenTelemetry context; the nesting comes from explicit
parents and from the resolver it registers with ``otel_llm_audit.emitter.parents``. These
tests run several runs at once (asyncio tasks, threads) to show no run's steps leak into
another's trace.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

agents = pytest.importorskip("agents")

import openai  # noqa: E402
from agent_runs import MODES, run, run_sync  # noqa: E402
from agent_spans import by_name, children, one, parent_of  # noqa: E402

from otel_llm_audit.demo.fake_server import HELLO_ANSWER, FakeModelServer  # noqa: E402


@pytest.mark.parametrize("mode", MODES)
def test_the_workflow_nests_under_the_applications_span(agents_audit: Any, make_model: Any, mode: str) -> None:
    tracer = agents_audit.tracer_provider.get_tracer("app")
    agent = agents.Agent(name="Helper", instructions="Help.", model=make_model("responses"))
    with tracer.start_as_current_span("POST /ask") as request:
        assert run(agent, mode, "Hi").final_output == HELLO_ANSWER
    spans = agents_audit.spans()
    workflow = one(spans, "invoke_workflow Agent workflow")
    assert parent_of(workflow, spans) is not None
    assert parent_of(workflow, spans).context.span_id == request.get_span_context().span_id  # type: ignore[union-attr]
    assert {s.context.trace_id for s in spans} == {request.get_span_context().trace_id}
    assert children(workflow, spans) == ["invoke_agent Helper"]
    assert children(one(spans, "invoke_agent Helper"), spans) == ["chat gpt-4o-mini"]


@pytest.mark.parametrize("mode", MODES)
def test_a_model_call_made_inside_a_tool_nests_under_the_tool(
    agents_audit: Any, make_model: Any, fake_server: FakeModelServer, mode: str
) -> None:
    @agents.function_tool
    async def summarize(city: str) -> str:
        """Summarize with another model."""
        async with openai.AsyncOpenAI(base_url=fake_server.base_url, api_key="sk-test", max_retries=0) as client:
            reply = await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": f"Summarize {city}"}]
            )
        return str(reply.choices[0].message.content)

    agent = agents.Agent(name="Writer", instructions="Write.", model=make_model("chat"), tools=[summarize])
    run(agent, mode, "Write about Paris")
    spans = agents_audit.spans()
    tool = one(spans, "execute_tool summarize")
    assert children(tool, spans) == ["chat gpt-4o"]
    assert parent_of(tool, spans).name == "invoke_agent Writer"  # type: ignore[union-attr]
    assert len({s.context.trace_id for s in spans}) == 1


def test_concurrent_runs_in_one_event_loop_keep_their_own_trees(agents_audit: Any, make_model: Any) -> None:
    names = ["Alpha", "Beta", "Gamma"]

    async def main() -> list[Any]:
        runs = [
            agents.Runner.run(agents.Agent(name=n, instructions=n, model=make_model("chat")), f"Hi {n}") for n in names
        ]
        return list(await asyncio.gather(*runs))

    assert [r.final_output for r in asyncio.run(main())] == [HELLO_ANSWER] * 3
    _assert_separate_runs(agents_audit.spans(), names)


def test_runs_in_threads_keep_their_own_trees(agents_audit: Any, make_model: Any) -> None:
    names = ["North", "South"]
    built = {n: agents.Agent(name=n, instructions=n, model=make_model("responses")) for n in names}
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda n: run_sync(built[n], f"Hi {n}"), names))
    assert [r.final_output for r in results] == [HELLO_ANSWER] * 2
    _assert_separate_runs(agents_audit.spans(), names)


def _assert_separate_runs(spans: list[Any], names: list[str]) -> None:
    workflows = by_name(spans, "invoke_workflow Agent workflow")
    assert len(workflows) == len(names)
    assert len({w.context.trace_id for w in workflows}) == len(names)
    for name in names:
        agent = one(spans, f"invoke_agent {name}")
        workflow = parent_of(agent, spans)
        assert workflow is not None and workflow.name == "invoke_workflow Agent workflow"
        assert children(workflow, spans) == [f"invoke_agent {name}"]
        (call,) = [s for s in spans if s.parent is not None and s.parent.span_id == agent.context.span_id]
        assert call.name == "chat gpt-4o-mini" and call.context.trace_id == agent.context.trace_id
