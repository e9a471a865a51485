"""Never break the application; uninstrument cleanly; keep the run map bounded, losing nothing silently."""

from __future__ import annotations

import operator
import time
from typing import Annotated, Any, TypedDict
from uuid import uuid4

import pytest
from langchain_core.callbacks import CallbackManager
from langchain_core.callbacks.base import BaseCallbackManager
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from lc_support import ScriptedChatModel, one, ours, render
from opentelemetry.trace import StatusCode

from otel_llm_audit import _guard, semconv
from otel_llm_audit.emitter import parents
from otel_llm_audit.instrumentation.langchain import LangChainInstrumentor
from otel_llm_audit.instrumentation.langchain._handler import AuditCallbackHandler
from otel_llm_audit.instrumentation.langchain._runs import Run, RunKind, RunMap


class Steps(TypedDict):
    steps: Annotated[list[str], operator.add]


@tool
def lookup_bed(ward: int) -> str:
    """Find a free bed on a ward."""
    return f"bed 12 on ward {ward}"


def _agent_flow() -> Any:
    from langgraph.prebuilt import create_react_agent

    model = ScriptedChatModel(
        replies=[
            AIMessage(content="", tool_calls=[{"name": "lookup_bed", "args": {"ward": 7}, "id": "call_1"}]),
            AIMessage(content="Bed 12 on ward 7 is free."),
        ]
    )
    agent = create_react_agent(model, [lookup_bed], name="bed_agent")
    flow = StateGraph(MessagesState)
    flow.add_node("beds", agent)
    flow.add_edge(START, "beds")
    return flow.compile(name="bed_flow")


def _two_step_flow(name: str = "two_steps") -> Any:
    graph = StateGraph(Steps)
    graph.add_node("first", lambda state: {"steps": ["first"]})
    graph.add_node("second", lambda state: {"steps": ["second"]})
    graph.add_edge(START, "first")
    graph.add_edge("first", "second")
    return graph.compile(name=name)


def _contents(result: dict[str, Any]) -> list[Any]:
    return [(type(m).__name__, m.content) for m in result["messages"]]


# ------------------------------------------------------------------------ never break


def test_our_handler_failing_everywhere_changes_no_result_and_no_exception(
    lc: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _contents(_agent_flow().invoke({"messages": [HumanMessage("free bed?")]}))

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug in otel-llm-audit")

    for name in ("_start_span", "_open", "_finish", "_report_model_call", "_decision"):
        monkeypatch.setattr(AuditCallbackHandler, name, boom)
    monkeypatch.setattr(RunMap, "pop", boom)
    _guard.reset_internal_error_counts()

    assert _contents(_agent_flow().invoke({"messages": [HumanMessage("free bed?")]})) == expected

    def failing(state: Steps) -> dict[str, Any]:
        raise KeyError("chart 17")

    graph = StateGraph(Steps)
    graph.add_node("failing", failing)
    graph.add_edge(START, "failing")
    with pytest.raises(KeyError, match="chart 17"):
        graph.compile(name="broken").invoke({"steps": []})

    counts = _guard.internal_error_counts()
    for component in (
        "langchain.on_chain_start",
        "langchain.on_chain_end",
        "langchain.on_chain_error",
        "langchain.on_tool_start",
        "langchain.on_tool_end",
        "langchain.on_llm_end",
    ):
        assert counts.get(component, 0) >= 1, (component, counts)


def test_a_failing_parent_resolver_leaves_the_provider_call_alone(
    lc: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any) -> Any:
        raise RuntimeError("bug in the resolver")

    monkeypatch.setattr(RunMap, "cover_model_call", boom)  # only the LLM-call resolver uses it
    _guard.reset_internal_error_counts()

    def ask(state: Steps) -> dict[str, Any]:
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        return {"steps": [answer.choices[0].message.content]}

    graph = StateGraph(Steps)
    graph.add_node("ask", ask)
    graph.add_edge(START, "ask")
    assert graph.compile(name="asker").invoke({"steps": []}) == {"steps": ["Hello from the fake model."]}
    assert _guard.internal_error_counts()["emitter.parent_resolver"] >= 1
    names = [s.name for s in ours(lc.spans())]
    assert sorted(names) == ["chat gpt-4o-mini", "invoke_workflow asker", "step ask"]


# ----------------------------------------------------------------------- uninstrument


def test_uninstrument_removes_the_hook_and_the_resolver_and_ends_runs_in_flight(lc: Any) -> None:
    instrumentor = LangChainInstrumentor()
    handler = instrumentor.handler
    assert hasattr(BaseCallbackManager.__init__, "__wrapped__")
    assert handler in CallbackManager(handlers=[]).inheritable_handlers
    kept = CallbackManager(handlers=[])  # built while instrumented: it keeps carrying the handler

    stream = _two_step_flow("interrupted").stream({"steps": []}, stream_mode="updates")
    assert next(stream) == {"first": {"steps": ["first"]}}  # the workflow is in flight
    instrumentor.uninstrument()

    assert not hasattr(BaseCallbackManager.__init__, "__wrapped__")
    assert handler.resolve_parent not in parents._resolvers
    assert handler not in CallbackManager(handlers=[]).handlers
    assert handler.active is False and len(handler.runs) == 0
    workflow = one(ours(lc.spans()), "invoke_workflow interrupted")
    assert workflow.status.status_code is StatusCode.ERROR
    assert workflow.attributes[semconv.ERROR_TYPE] == "abandoned"

    lc.clear()
    assert list(stream) == [{"second": {"steps": ["second"]}}]  # the app's stream goes on, unaffected
    assert _two_step_flow().invoke({"steps": []}, {"callbacks": kept}) == {"steps": ["first", "second"]}
    assert ours(lc.spans()) == []
    assert _guard.internal_error_counts() == {}


def test_instrument_again_after_uninstrument(lc: Any) -> None:
    instrumentor = LangChainInstrumentor()
    instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=lc.tracer_provider, meter_provider=lc.meter_provider)
    _two_step_flow().invoke({"steps": []})
    assert render(ours(lc.spans())) == [
        "invoke_workflow two_steps (INTERNAL)",
        "  step first (INTERNAL)",
        "  step second (INTERNAL)",
    ]


# ------------------------------------------------------------------------ bounded map


@pytest.fixture
def small_map(audit: Any) -> Any:
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(
        tracer_provider=audit.tracer_provider, meter_provider=audit.meter_provider, max_runs=4, idle_ttl_s=None
    )
    audit.extra_instrumentors.append(instrumentor)
    return audit


def test_abandoned_streams_are_evicted_as_abandoned_and_the_map_stays_bounded(small_map: Any) -> None:
    handler = LangChainInstrumentor().handler
    parked = []
    for index in range(6):  # six workflows left mid-stream by their callers
        stream = _two_step_flow(f"parked_{index}").stream({"steps": []}, stream_mode="updates")
        next(stream)
        parked.append(stream)
        assert len(handler.runs) <= 4
    # Each new workflow has its root and a node (langgraph 0.x: also ``__start__`` and its writes) in
    # flight at once, so the number evicted depends on the release; always the idlest, oldest first.
    spans = ours(small_map.spans())
    evicted = sorted(s.name for s in spans if s.name.startswith("invoke_workflow"))
    assert 2 <= len(evicted) <= 4
    assert evicted == [f"invoke_workflow parked_{i}" for i in range(len(evicted))]
    assert handler.runs.evicted >= len(evicted)
    for span in spans:
        if span.name.startswith("invoke_workflow"):
            assert span.status.status_code is StatusCode.ERROR
            assert span.attributes[semconv.ERROR_TYPE] == "abandoned"
            assert [e.name for e in span.events] == ["exception"]
    # A run finishing normally is unaffected; the parked ones can still be drained by the app.
    assert _two_step_flow("fresh").invoke({"steps": []}) == {"steps": ["first", "second"]}
    for stream in parked:
        assert list(stream) == [{"second": {"steps": ["second"]}}]
    assert _guard.internal_error_counts() == {}
    assert len(handler.runs) == 0


def test_idle_runs_are_evicted_after_the_idle_limit(audit: Any) -> None:
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=audit.tracer_provider, idle_ttl_s=0.05)
    audit.extra_instrumentors.append(instrumentor)
    stream = _two_step_flow("stale").stream({"steps": []}, stream_mode="updates")
    next(stream)
    time.sleep(0.1)
    _two_step_flow("later").invoke({"steps": []})
    spans = ours(audit.spans())
    stale = one(spans, "invoke_workflow stale")
    assert stale.attributes[semconv.ERROR_TYPE] == "abandoned"
    assert one(spans, "invoke_workflow later").status.status_code is StatusCode.UNSET
    stream.close()


def test_an_evicted_model_call_no_provider_covered_is_reported_as_abandoned(small_map: Any) -> None:
    handler = LangChainInstrumentor().handler
    manager = CallbackManager.configure()
    (run_manager,) = manager.on_chat_model_start({"name": "ward_model"}, [[HumanMessage("hi")]])
    for _ in range(4):  # four more runs in flight push it out
        manager.on_chain_start(None, {}, name="busy")
    assert handler.runs.evicted == 1
    (chat,) = ours(small_map.spans())
    assert chat.name == "chat"
    assert chat.attributes[semconv.ERROR_TYPE] == "abandoned"
    assert chat.attributes[semconv.GEN_AI_PROVIDER_NAME] == "ward_model"
    run_manager.on_llm_end(None)  # the end arriving after all is ignored
    assert _guard.internal_error_counts() == {}


def _run(run_id: Any, parent: Run | None = None) -> Run:
    return Run(run_id, parent.run_id if parent else None, parent, RunKind.STEP, "r", 0)


def test_run_map_evicts_the_least_recently_active_and_refreshes_ancestors() -> None:
    evicted: list[Run] = []
    runs = RunMap(max_runs=3, idle_ttl_s=None, on_evict=evicted.extend)
    root = _run(uuid4())
    runs.add(root)
    other = _run(uuid4())
    runs.add(other)
    child = _run(uuid4(), root)
    runs.add(child)  # refreshes root: ``other`` is now the idlest
    runs.add(_run(uuid4()))
    assert evicted == [other]
    assert runs.get(root.run_id) is root and runs.pop(other.run_id) is None
    assert len(runs) == 3
    with pytest.raises(ValueError):
        RunMap(max_runs=0)


# --------------------------------------------------------------- the langgraph part


@pytest.fixture
def stand_in_langgraph_part(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A stand-in for ``_langgraph`` (the langgraph-internals part) that records the calls it gets."""
    import importlib.machinery
    import sys
    import types

    name = "otel_llm_audit.instrumentation.langchain._langgraph"
    calls: list[Any] = []
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.install = lambda emitter: calls.append(("install", emitter))  # type: ignore[attr-defined]
    module.uninstall = lambda: calls.append(("uninstall",))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, name, module)
    return calls


def test_instrument_installs_the_langgraph_part_with_its_emitter_and_uninstrument_removes_it(
    audit: Any, stand_in_langgraph_part: list[Any]
) -> None:
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=audit.tracer_provider)
    ((call, emitter),) = stand_in_langgraph_part
    assert call == "install" and emitter is instrumentor.handler.emitter
    instrumentor.uninstrument()
    assert stand_in_langgraph_part[-1] == ("uninstall",)


def test_a_failing_langgraph_part_is_reported_and_the_rest_still_works(
    audit: Any, stand_in_langgraph_part: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    def boom(emitter: Any) -> None:
        raise RuntimeError("bug in the langgraph part")

    monkeypatch.setattr(sys.modules["otel_llm_audit.instrumentation.langchain._langgraph"], "install", boom)
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=audit.tracer_provider)
    audit.extra_instrumentors.append(instrumentor)
    assert _guard.internal_error_counts()["langchain.langgraph_install"] == 1
    _two_step_flow().invoke({"steps": []})
    assert len(ours(audit.spans())) == 3
