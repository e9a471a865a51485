"""The SDK's own trace processors: replaced by default (no prompt leaves for OpenAI's trace endpoint),
kept on request, and put back exactly on uninstrument.

The SDK's exporter (``BackendSpanExporter``, the one that ships traces to OpenAI) is pointed at
the loopback fake server here, so a request it sends is seen: with the default there is none,
with ``keep_sdk_exporter`` there is (the test can tell the two apart).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

agents = pytest.importorskip("agents")

from agents.tracing import get_trace_provider, set_trace_processors  # noqa: E402
from agents.tracing.processors import BackendSpanExporter, BatchTraceProcessor  # noqa: E402

from otel_llm_audit.demo.fake_server import FakeModelServer  # noqa: E402
from otel_llm_audit.emitter import parents  # noqa: E402
from otel_llm_audit.instrumentation.openai_agents import OpenAIAgentsInstrumentor  # noqa: E402
from otel_llm_audit.instrumentation.openai_agents._sdk import KEEP_ENV, read_processors  # noqa: E402


@pytest.fixture
def sdk_exporter(fake_server: FakeModelServer) -> BatchTraceProcessor:
    """The SDK's own batch processor and exporter, installed as the only processor (as the SDK's default is)."""
    processor = BatchTraceProcessor(
        BackendSpanExporter(api_key="sk-test", endpoint=f"{fake_server.base_url}/traces/ingest", max_retries=0)
    )
    set_trace_processors([processor])
    return processor


def ingest_requests(fake_server: FakeModelServer) -> list[Any]:
    return [r for r in fake_server.requests if r.path.endswith("/traces/ingest")]


def run_one_agent(make_model: Any) -> None:
    agent = agents.Agent(name="Helper", instructions="Help.", model=make_model("chat"))
    assert asyncio.run(agents.Runner.run(agent, "Hi")).final_output == "Hello from the fake model."


def test_by_default_the_sdk_processors_are_replaced_and_nothing_is_exported_to_openai(
    make_agents_audit: Any, make_model: Any, fake_server: FakeModelServer, sdk_exporter: BatchTraceProcessor
) -> None:
    before = read_processors(get_trace_provider())
    assert before == (sdk_exporter,)
    audit = make_agents_audit()
    ours = OpenAIAgentsInstrumentor().processor
    assert read_processors(get_trace_provider()) == (ours,)
    assert not any(isinstance(p, BatchTraceProcessor) for p in read_processors(get_trace_provider()) or ())

    run_one_agent(make_model)
    sdk_exporter.force_flush()
    assert ingest_requests(fake_server) == []
    assert [s.name for s in audit.spans() if s.name.startswith("invoke_")] == [
        "invoke_agent Helper",
        "invoke_workflow Agent workflow",
    ]

    OpenAIAgentsInstrumentor().uninstrument()
    after = read_processors(get_trace_provider())
    assert after is not None and len(after) == 1 and after[0] is sdk_exporter


def test_keep_sdk_exporter_keeps_them_beside_ours(
    make_agents_audit: Any, make_model: Any, fake_server: FakeModelServer, sdk_exporter: BatchTraceProcessor
) -> None:
    audit = make_agents_audit(keep_sdk_exporter=True)
    ours = OpenAIAgentsInstrumentor().processor
    assert read_processors(get_trace_provider()) == (sdk_exporter, ours)

    run_one_agent(make_model)
    sdk_exporter.force_flush()
    assert len(ingest_requests(fake_server)) >= 1  # the SDK exported the trace, as asked
    assert any(s.name == "invoke_agent Helper" for s in audit.spans())  # and we recorded it

    OpenAIAgentsInstrumentor().uninstrument()
    after = read_processors(get_trace_provider())
    assert after is not None and len(after) == 1 and after[0] is sdk_exporter


@pytest.mark.parametrize(("value", "kept"), [("true", True), ("1", True), ("false", False), ("maybe", False)])
def test_the_environment_variable_decides_when_the_code_does_not(
    make_agents_audit: Any,
    sdk_exporter: BatchTraceProcessor,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    value: str,
    kept: bool,
) -> None:
    monkeypatch.setenv(KEEP_ENV, value)
    with caplog.at_level(logging.WARNING, logger="otel_llm_audit"):
        make_agents_audit()
    ours = OpenAIAgentsInstrumentor().processor
    assert read_processors(get_trace_provider()) == ((sdk_exporter, ours) if kept else (ours,))
    assert ("is not true or false" in caplog.text) is (value == "maybe")


def test_the_constructor_wins_over_the_environment(
    make_agents_audit: Any, sdk_exporter: BatchTraceProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEEP_ENV, "true")
    make_agents_audit(keep_sdk_exporter=False)
    assert read_processors(get_trace_provider()) == (OpenAIAgentsInstrumentor().processor,)


def test_uninstrument_keeps_processors_the_application_added_meanwhile(
    make_agents_audit: Any, make_model: Any, sdk_exporter: BatchTraceProcessor
) -> None:
    audit = make_agents_audit()
    ours = OpenAIAgentsInstrumentor().processor
    late = BatchTraceProcessor(BackendSpanExporter(api_key="sk-test", endpoint="http://127.0.0.1:9/ingest"))
    agents.add_trace_processor(late)
    assert read_processors(get_trace_provider()) == (ours, late)

    OpenAIAgentsInstrumentor().uninstrument()
    assert read_processors(get_trace_provider()) == (sdk_exporter, late)
    # Uninstrumented: runs are no longer recorded, and nothing of ours is consulted for nesting.
    audit.clear()
    set_trace_processors([])
    run_one_agent(make_model)
    assert audit.spans() != [] and not any(s.name.startswith("invoke_") for s in audit.spans())
    assert ours.enabled is False
    assert not any(getattr(r, "__self__", None) is ours for r in parents._resolvers)
