"""Checkpointer reads and writes as memory spans (issue 5, item 4), through real LangGraph runs."""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.memory import MemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.pregel import Pregel
from lg_internals_graphs import FileSaver, async_refund_graph, refund_graph
from lg_internals_spans import SCOPE, GraphRunIds, Process, attr, events, memory_spans, records
from opentelemetry.trace import SpanKind, StatusCode

import otel_llm_audit
from otel_llm_audit import __version__, _guard, semconv
from otel_llm_audit.emitter.spans import Emitter
from otel_llm_audit.instrumentation.langchain import _langgraph

CFG = {"configurable": {"thread_id": "refund-42"}}


def _config(run_ids: GraphRunIds) -> dict[str, Any]:
    return {**CFG, "callbacks": [run_ids]}


def _checkpoint_ids(app: Pregel) -> dict[int, str]:
    """step -> checkpoint id, from langgraph's own history of the thread."""
    return {s.metadata["step"]: s.config["configurable"]["checkpoint_id"] for s in app.get_state_history(CFG)}


def _assert_auto_refund_trail(process: Process, app: Pregel, saver: Any, run_id: str, request: Any) -> None:
    """The memory spans of one run of ``refund_graph`` on the auto path (plan -> execute)."""
    ids = _checkpoint_ids(app)
    spans = memory_spans(process.spans())
    store = type(saver).__name__
    for span in spans:
        assert span.kind is SpanKind.INTERNAL
        assert span.instrumentation_scope is not None and span.instrumentation_scope.name == SCOPE
        assert span.parent is not None and span.parent.span_id == request.context.span_id
        assert span.context.trace_id == request.context.trace_id
        assert attr(span, semconv.GEN_AI_OPERATION_NAME) == span.name
        assert attr(span, semconv.GEN_AI_MEMORY_STORE_ID) == store
        assert attr(span, semconv.LLM_AUDIT_CHECKPOINT_THREAD_ID) == "refund-42"
        assert attr(span, semconv.LLM_AUDIT_CHECKPOINT_NS) == ""
        assert attr(span, semconv.LLM_AUDIT_RUN_ID) == run_id
        assert attr(span, semconv.LLM_AUDIT_CONTENT_MODE) == "raw"
        assert span.status.status_code is StatusCode.UNSET
        # the mutation is visible with its time: inside the run, start before end
        assert request.start_time <= span.start_time <= span.end_time <= request.end_time

    (read,) = [s for s in spans if s.name == "search_memory"]
    assert spans[0] is read  # the run reads the thread's state before anything else
    assert attr(read, semconv.LLM_AUDIT_CHECKPOINT_ID) is None  # a new thread: nothing to read
    assert records(read) == []
    assert attr(read, semconv.GEN_AI_MEMORY_RECORD_COUNT) == 0

    created = [s for s in spans if s.name == "create_memory"]
    assert [(attr(s, semconv.LLM_AUDIT_GRAPH_STEP), attr(s, semconv.LLM_AUDIT_CHECKPOINT_ID)) for s in created] == [
        (-1, ids[-1]),
        (0, ids[0]),
        (1, ids[1]),
        (2, ids[2]),
    ]
    assert [attr(s, semconv.GEN_AI_MEMORY_RECORD_ID) for s in created] == [ids[-1], ids[0], ids[1], ids[2]]
    assert [records(s) for s in created] == [
        [],
        [{"id": "amount", "content": 50}, {"id": "log", "content": []}],
        [{"id": "log", "content": ["plan"]}],
        [{"id": "log", "content": ["plan", "execute"]}],
    ]

    updated = {
        (attr(s, semconv.LLM_AUDIT_GRAPH_NODE), attr(s, semconv.LLM_AUDIT_GRAPH_STEP)): s
        for s in spans
        if s.name == "update_memory"
    }
    assert sorted(updated, key=lambda k: k[1]) == [("__start__", 0), ("plan", 1), ("execute", 2)]
    # a task's writes attach to the checkpoint its step started from
    assert attr(updated["__start__", 0], semconv.LLM_AUDIT_CHECKPOINT_ID) == ids[-1]
    assert attr(updated["plan", 1], semconv.LLM_AUDIT_CHECKPOINT_ID) == ids[0]
    assert attr(updated["execute", 2], semconv.LLM_AUDIT_CHECKPOINT_ID) == ids[1]
    assert records(updated["__start__", 0]) == [{"id": "amount", "content": 50}, {"id": "log", "content": []}]
    assert records(updated["plan", 1]) == [{"id": "log", "content": ["plan"]}]
    assert records(updated["execute", 2]) == [{"id": "log", "content": ["execute"]}]
    assert attr(updated["plan", 1], semconv.GEN_AI_MEMORY_RECORD_COUNT) == 1
    assert len(spans) == 8


def test_a_sync_run_records_every_checkpoint_read_and_write(lg: Process) -> None:
    saver = MemorySaver()
    app = refund_graph(saver)
    run_ids = GraphRunIds()
    with lg.tracer().start_as_current_span("POST /refunds") as request:
        result = app.invoke({"amount": 50, "log": []}, _config(run_ids))
    assert result == {"amount": 50, "log": ["plan", "execute"]}
    (run_id,) = run_ids.run_ids
    _assert_auto_refund_trail(lg, app, saver, run_id, lg.only("POST /refunds"))
    assert request.get_span_context().span_id == lg.only("POST /refunds").context.span_id
    assert _guard.internal_error_counts() == {}


def test_an_async_run_goes_through_the_async_methods_once(lg: Process, tmp_path: Any) -> None:
    # FileSaver's async methods call its sync ones: a class patch would report each read twice.
    saver = FileSaver(str(tmp_path / "checkpoints.pkl"))
    app = async_refund_graph(saver)
    run_ids = GraphRunIds()

    async def run() -> Any:
        with lg.tracer().start_as_current_span("POST /refunds"):
            return await app.ainvoke({"amount": 50, "log": []}, _config(run_ids))

    assert asyncio.run(run()) == {"amount": 50, "log": ["plan", "execute"]}
    (run_id,) = run_ids.run_ids
    _assert_auto_refund_trail(lg, app, saver, run_id, lg.only("POST /refunds"))
    assert _guard.internal_error_counts() == {}


def test_a_third_party_saver_is_covered_without_patching_its_class(lg: Process, tmp_path: Any) -> None:
    saver = FileSaver(str(tmp_path / "checkpoints.pkl"))
    app = refund_graph(saver)
    run_ids = GraphRunIds()
    with lg.tracer().start_as_current_span("POST /refunds"):
        app.invoke({"amount": 50, "log": []}, _config(run_ids))
    _assert_auto_refund_trail(lg, app, saver, run_ids.run_ids[0], lg.only("POST /refunds"))
    assert "get_tuple" not in vars(FileSaver) or not hasattr(vars(FileSaver)["get_tuple"], "__wrapped__")


def test_reading_back_a_thread_records_the_state_read(lg: Process) -> None:
    saver = MemorySaver()
    app = refund_graph(saver)
    app.invoke({"amount": 50, "log": []}, CFG)
    last = _checkpoint_ids(app)[2]
    lg.exporter.clear()
    with lg.tracer().start_as_current_span("POST /refunds/again"):
        app.invoke({"amount": 60, "log": []}, CFG)
    read = memory_spans(lg.spans(), "search_memory")[0]
    assert attr(read, semconv.LLM_AUDIT_CHECKPOINT_ID) == last
    assert attr(read, semconv.GEN_AI_MEMORY_RECORD_ID) == last
    assert attr(read, semconv.LLM_AUDIT_GRAPH_STEP) == 2
    assert records(read) == [{"id": "amount", "content": 50}, {"id": "log", "content": ["plan", "execute"]}]


def test_the_applications_own_state_reads_are_not_workflow_steps(lg: Process) -> None:
    app = refund_graph(MemorySaver())
    app.invoke({"amount": 50, "log": []}, CFG)
    lg.exporter.clear()
    assert app.get_state(CFG).values == {"amount": 50, "log": ["plan", "execute"]}
    assert lg.spans() == []


class LongState(TypedDict):
    notes: Annotated[list[str], operator.add]


def test_long_channel_values_are_bounded_to_their_newest_items(lg: Process) -> None:
    graph = StateGraph(LongState)
    graph.add_node("write", lambda state: {"notes": [f"n{i}" for i in range(45)]})
    graph.add_edge(START, "write")
    graph.add_edge("write", END)
    app = graph.compile(checkpointer=MemorySaver())
    app.invoke({"notes": []}, CFG)
    (write,) = [
        s for s in memory_spans(lg.spans(), "update_memory") if attr(s, semconv.LLM_AUDIT_GRAPH_NODE) == "write"
    ]
    assert records(write) == [
        {"id": "notes", "content": {"items_omitted": 25, "items": [f"n{i}" for i in range(25, 45)]}}
    ]


def test_a_failing_saver_reaches_the_application_and_marks_its_span(lg: Process) -> None:
    disk_full = RuntimeError("disk full")

    class FullDisk(MemorySaver):  # type: ignore[misc]
        def put(self, *args: Any, **kwargs: Any) -> Any:
            raise disk_full

    with pytest.raises(RuntimeError) as raised:
        refund_graph(FullDisk()).invoke({"amount": 50, "log": []}, CFG)
    assert raised.value is disk_full
    failed = [s for s in memory_spans(lg.spans(), "create_memory") if s.status.status_code is StatusCode.ERROR]
    assert failed, [s.name for s in lg.spans()]
    assert all(attr(s, semconv.ERROR_TYPE) == "RuntimeError" for s in failed)
    assert all(s.status.description == "disk full" for s in failed)


def test_content_is_masked_like_every_other_content(make_audit: Callable[..., Any]) -> None:
    audit = make_audit(content="masked")
    _langgraph.install(Emitter(SCOPE, audit.tracer_provider))
    try:
        app = refund_graph(MemorySaver())
        result = app.invoke({"amount": 120, "log": []}, CFG)
    finally:
        _langgraph.uninstall()
    assert result["log"] == ["plan"]
    spans = audit.spans()
    (paused,) = [s for s in memory_spans(spans, "update_memory") if attr(s, semconv.LLM_AUDIT_GRAPH_NODE) == "review"]
    (write,) = records(paused)
    assert write["id"] == "__interrupt__"
    assert write["content"][0]["value"] == {
        "type": "refund_approval",
        "amount": 120,
        "note": "refund to <EMAIL_ADDRESS>",
    }
    assert attr(paused, semconv.LLM_AUDIT_CONTENT_MODE) == "masked"
    assert attr(paused, semconv.LLM_AUDIT_REDACTION_STATUS) == "masked"


def test_install_is_idempotent_and_uninstall_undoes_every_patch(new_process: Callable[[], Process]) -> None:
    from langgraph.errors import GraphInterrupt

    process = new_process()
    _langgraph.install(process.emitter)  # a second install: no second layer of wrappers
    app = refund_graph(MemorySaver())
    app.invoke({"amount": 50, "log": []}, CFG)
    assert len(memory_spans(process.spans())) == 8
    assert hasattr(GraphInterrupt.__init__, "__wrapped__")

    _langgraph.uninstall()
    _langgraph.uninstall()
    process.exporter.clear()
    refund_graph(MemorySaver()).invoke({"amount": 50, "log": []}, {"configurable": {"thread_id": "t2"}})
    assert process.spans() == []
    assert not hasattr(GraphInterrupt.__init__, "__wrapped__")
    for target in _langgraph_targets():
        assert not hasattr(target, "__wrapped__"), target


def _langgraph_targets() -> list[Any]:
    """Everything install wraps, as langgraph has it now."""
    import importlib

    found = []
    for modules, attribute, _wrapper in _langgraph._targets():
        for name in modules:
            try:
                owner: Any = importlib.import_module(name)
            except ImportError:
                continue
            for part in attribute.split("."):
                owner = getattr(owner, part, None)
            if owner is not None:
                found.append(owner)
                break
    assert len(found) == 8  # two loops, two state edits, one branch class, GraphInterrupt, two runner functions
    return found


def test_an_application_state_edit_is_recorded_with_who_made_it(lg: Process) -> None:
    app = refund_graph(MemorySaver())
    app.invoke({"amount": 120, "log": []}, CFG)  # paused before review
    lg.exporter.clear()
    with (
        otel_llm_audit.audit_context(user_id="nurse-2"),
        lg.tracer().start_as_current_span("PATCH /refunds/42"),
    ):
        edited = app.update_state(CFG, {"amount": 80}, as_node="plan")
    new_id = edited["configurable"]["checkpoint_id"]
    request = lg.only("PATCH /refunds/42")
    edit = lg.only("update_memory")
    assert edit.parent is not None and edit.parent.span_id == request.context.span_id
    assert dict(edit.attributes or {}) == {
        semconv.GEN_AI_OPERATION_NAME: "update_memory",
        semconv.LLM_AUDIT_GRAPH_NODE: "plan",
        semconv.USER_ID: "nurse-2",
        semconv.LLM_AUDIT_SDK_VERSION: __version__,
        semconv.GEN_AI_MEMORY_STORE_ID: "InMemorySaver",
        semconv.GEN_AI_MEMORY_RECORD_ID: new_id,
        semconv.LLM_AUDIT_CHECKPOINT_THREAD_ID: "refund-42",
        semconv.LLM_AUDIT_CHECKPOINT_NS: "",
        semconv.LLM_AUDIT_CHECKPOINT_ID: new_id,
        semconv.GEN_AI_MEMORY_RECORD_COUNT: 1,
        semconv.GEN_AI_MEMORY_RECORDS: '[{"id":"amount","content":80}]',
        semconv.LLM_AUDIT_CONTENT_MODE: "raw",
        semconv.LLM_AUDIT_AUDIT_RECORD: True,  # it carries the decision the edit set off
    }
    # updating "as plan" runs plan's branch again: the edit re-routed the refund
    assert events(edit, semconv.EVENT_LLM_AUDIT_DECISION) == [
        {
            semconv.LLM_AUDIT_DECISION_POINT: "route_refund",
            semconv.LLM_AUDIT_DECISION_CHOSEN: ["execute"],
            semconv.LLM_AUDIT_DECISION_OPTIONS: ["review", "execute"],
        }
    ]
    assert app.get_state(CFG).next == ("execute",)

    lg.exporter.clear()
    asyncio.run(app.aupdate_state(CFG, {"amount": 70}, as_node="plan"))
    (async_edit,) = lg.named("update_memory")
    assert records(async_edit) == [{"id": "amount", "content": 70}]
    assert attr(async_edit, semconv.LLM_AUDIT_GRAPH_NODE) == "plan"
    assert app.get_state(CFG).values["amount"] == 70


def test_spans_follow_the_run_timeline(lg: Process) -> None:
    app = refund_graph(MemorySaver())
    before = time.time_ns()
    app.invoke({"amount": 50, "log": []}, CFG)
    after = time.time_ns()
    created = memory_spans(lg.spans(), "create_memory")
    assert all(before <= s.start_time <= s.end_time <= after for s in created)
    assert [s.start_time for s in created] == sorted(s.start_time for s in created)
