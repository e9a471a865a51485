"""A failure inside our LangGraph hooks never changes the graph's results, interrupts or exceptions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langgraph.checkpoint.memory import MemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from lg_internals_graphs import RefundState, refund_graph, subgraph_graph
from lg_internals_spans import Process

from otel_llm_audit import _guard
from otel_llm_audit.emitter import parents
from otel_llm_audit.instrumentation.langchain import (
    _langgraph,
    _langgraph_checkpoints,
    _langgraph_common,
    _langgraph_decisions,
    _langgraph_interrupts,
)

CFG = {"configurable": {"thread_id": "refund-42"}}


def _pause_and_resume() -> tuple[Any, ...]:
    """What the application sees of a paused and resumed run.

    Interrupt ids derive from time-based checkpoint ids, so they differ from run to run: what
    must hold is that the result and the state name the same, well-formed interrupt.
    """
    app = refund_graph(MemorySaver())
    paused = app.invoke({"amount": 120, "log": []}, CFG)
    state = app.get_state(CFG)
    pending = [(i.value, getattr(i, "id", None) or "|".join(i.ns)) for t in state.tasks for i in t.interrupts]
    surfaced = [(p.value, p.id) for p in paused.get("__interrupt__", ())]  # langgraph 0.4+ only
    ids_agree = all(s == p for s, p in zip(surfaced, pending, strict=False))
    done = app.invoke(Command(resume={"action": "approve"}), CFG)
    nested = subgraph_graph(MemorySaver())
    nested_paused = nested.invoke({"log": []}, CFG)
    nested_done = nested.invoke(Command(resume="yes"), CFG)
    return (
        paused["log"],
        [value for value, _ in surfaced],
        [value for value, _ in pending],
        [len(interrupt_id) > 0 for _, interrupt_id in pending],
        ids_agree,
        state.next,
        done,
        nested_paused["log"],
        nested_done,
        app.get_state(CFG).values,
    )


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("bug in otel-llm-audit")


#: (where the bug is, the component it is reported under)
FAILURES = [
    (_langgraph_checkpoints, "_start", "langgraph.checkpoint"),
    (_langgraph_checkpoints, "_records", "langgraph.checkpoint"),
    (_langgraph_checkpoints, "_fill_read", "langgraph.checkpoint"),
    (_langgraph_checkpoints, "_fill_put", "langgraph.checkpoint"),
    (_langgraph_checkpoints, "_fill_writes", "langgraph.checkpoint"),
    (_langgraph_checkpoints.LoopAudit, "capture", None),
    (_langgraph_decisions, "_record", "langgraph.decision"),
    (_langgraph_decisions, "destinations", "langgraph.decision"),
    (_langgraph_interrupts, "_on_pause", "langgraph.interrupt"),
    (_langgraph_interrupts, "markers_for", "langgraph.interrupt_marker"),
    (_langgraph_interrupts, "on_loaded", "langgraph.resume"),
    (_langgraph_interrupts, "_maybe_review", "langgraph.resume"),
    (_langgraph_common, "note_task", "langgraph.resume"),
    (_langgraph_common, "step_context", "langgraph.interrupt"),
    (_langgraph_common, "emit_event", "langgraph.decision"),
]


@pytest.fixture(scope="module")
def baseline() -> tuple[Any, ...]:
    _langgraph.uninstall()
    return _pause_and_resume()


@pytest.mark.parametrize(("owner", "name", "component"), FAILURES, ids=[f"{o.__name__}.{n}" for o, n, _ in FAILURES])
def test_a_bug_in_a_hook_leaves_results_and_interrupts_unchanged(
    lg: Process,
    baseline: tuple[Any, ...],
    monkeypatch: pytest.MonkeyPatch,
    owner: Any,
    name: str,
    component: str | None,
) -> None:
    monkeypatch.setattr(owner, name, _boom)
    assert _pause_and_resume() == baseline
    counts = _guard.internal_error_counts()
    assert counts, "the bug was not reported"
    if component is not None:
        assert counts.get(component, 0) > 0, counts


@pytest.fixture
def broken_resolver() -> Iterator[None]:
    def resolver() -> Any:
        raise RuntimeError("resolver bug")

    parents.register(resolver)
    try:
        yield
    finally:
        parents.unregister(resolver)


def test_a_broken_parent_resolver_changes_nothing(
    lg: Process, baseline: tuple[Any, ...], broken_resolver: None
) -> None:
    assert _pause_and_resume() == baseline
    assert _guard.internal_error_counts()["emitter.parent_resolver"] > 0
    assert lg.spans()  # still recorded, under the application's context


class _NodeFailure(Exception):
    pass


def _failing_graph(error: Exception) -> Any:
    def fail(state: RefundState) -> dict[str, Any]:
        raise error

    graph = StateGraph(RefundState)
    graph.add_node("plan", lambda state: {"log": ["plan"]})
    graph.add_node("fail", fail)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", lambda state: "fail", ["fail"])
    graph.add_edge("fail", END)
    return graph.compile(checkpointer=MemorySaver())


@pytest.mark.parametrize(("owner", "name", "component"), FAILURES, ids=[f"{o.__name__}.{n}" for o, n, _ in FAILURES])
def test_the_graphs_own_exceptions_reach_the_caller_untouched(
    lg: Process, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, component: str | None
) -> None:
    monkeypatch.setattr(owner, name, _boom)
    error = _NodeFailure("pharmacy system down")
    with pytest.raises(_NodeFailure) as raised:
        _failing_graph(error).invoke({"amount": 1, "log": []}, CFG)
    assert raised.value is error


@pytest.mark.parametrize("name", ["_start_update", "_fill_update", "_content"])
def test_a_bug_while_recording_a_state_edit_leaves_the_edit_unchanged(
    lg: Process, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    app = refund_graph(MemorySaver())
    app.invoke({"amount": 120, "log": []}, CFG)
    monkeypatch.setattr(_langgraph_checkpoints, name, _boom)
    edited = app.update_state(CFG, {"amount": 80}, as_node="plan")
    assert edited["configurable"]["thread_id"] == "refund-42"
    assert app.get_state(CFG).values == {"amount": 80, "log": ["plan"]}
    assert app.get_state(CFG).next == ("execute",)
    assert _guard.internal_error_counts()["langgraph.checkpoint"] > 0


def test_uninstalled_hooks_pass_through_in_loops_already_running(new_process: Callable[[], Process]) -> None:
    """A loop built while installed keeps its proxy after uninstall: it must pass everything through."""
    process = new_process()
    app = refund_graph(MemorySaver())
    app.invoke({"amount": 120, "log": []}, CFG)
    seen: list[Any] = []

    def resume_then_uninstall(state: RefundState) -> dict[str, Any]:
        seen.append(state["log"])
        _langgraph.uninstall()
        return {"log": ["late"]}

    graph = StateGraph(RefundState)
    graph.add_node("first", resume_then_uninstall)
    graph.add_node("second", lambda state: {"log": ["second"]})
    graph.add_edge(START, "first")
    graph.add_conditional_edges("first", lambda state: "second", ["second"])
    graph.add_edge("second", END)
    process.exporter.clear()
    result = graph.compile(checkpointer=MemorySaver()).invoke({"amount": 1, "log": []}, CFG)
    assert result == {"amount": 1, "log": ["late", "second"]}
    assert _guard.internal_error_counts() == {}
