"""Human in the loop: ``interrupt()`` and ``Command(resume=...)``, in one process and across processes (item 6)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from langgraph.checkpoint.memory import MemorySaver
from langgraph.types import Command
from lg_internals_graphs import FileSaver, async_refund_graph, refund_graph, subgraph_graph, twice_graph
from lg_internals_spans import Process, all_events, events
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

import otel_llm_audit
from otel_llm_audit import _guard, semconv
from otel_llm_audit.instrumentation.langchain import _langgraph_interrupts

INTERRUPT = semconv.EVENT_LLM_AUDIT_INTERRUPT
REVIEW = semconv.EVENT_LLM_AUDIT_HUMAN_REVIEW
CFG = {"configurable": {"thread_id": "refund-42"}}
PROPOSAL = {"type": "refund_approval", "amount": 120, "note": "refund to jane.roe@example.com"}
HERE = os.path.dirname(os.path.abspath(__file__))


def _pending_interrupt_id(app: Any, config: Any = CFG) -> str:
    """The id langgraph itself gives the pending interrupt (``ns`` joined before 0.4)."""
    (task,) = app.get_state(config).tasks
    (pending,) = task.interrupts
    return pending.id if hasattr(pending, "id") else "|".join(pending.ns)


def _link(span: ReadableSpan) -> tuple[int, int, dict[str, Any]]:
    (link,) = span.links
    return link.context.trace_id, link.context.span_id, dict(link.attributes or {})


def _no_errors(spans: list[ReadableSpan]) -> None:
    assert [s.name for s in spans if s.status.status_code is StatusCode.ERROR] == []


def test_pause_and_resume_in_one_process(lg: Process) -> None:
    app = refund_graph(MemorySaver())
    with lg.tracer().start_as_current_span("POST /refunds"):
        paused = app.invoke({"amount": 120, "log": []}, CFG)
    assert paused["log"] == ["plan"]
    interrupt_id = _pending_interrupt_id(app)
    pause_span = lg.only("POST /refunds")
    assert events(pause_span, INTERRUPT) == [
        {
            semconv.LLM_AUDIT_INTERRUPT_ID: interrupt_id,
            semconv.LLM_AUDIT_INTERRUPT_VALUE: json.dumps(PROPOSAL, separators=(",", ":")),
        }
    ]

    with otel_llm_audit.audit_context(user_id="reviewer-7"), lg.tracer().start_as_current_span("POST /reviews"):
        done = app.invoke(Command(resume={"action": "approve"}), CFG)
    assert done == {"amount": 120, "log": ["plan", "review:{'action': 'approve'}", "execute"]}
    resume_span = lg.only("POST /reviews")
    assert events(resume_span, REVIEW) == [
        {
            semconv.LLM_AUDIT_REVIEW_SUBJECT: "refund_approval",
            semconv.LLM_AUDIT_REVIEW_ACTION: "approved",
            semconv.LLM_AUDIT_REVIEW_REVIEWER: "reviewer-7",
            semconv.LLM_AUDIT_REVIEW_INTERRUPT_ID: interrupt_id,
            semconv.LLM_AUDIT_REVIEW_RESPONSE: '{"action":"approve"}',
        }
    ]
    assert _link(resume_span) == (
        pause_span.context.trace_id,
        pause_span.context.span_id,
        {semconv.LLM_AUDIT_LINK_TYPE: "resumes"},
    )
    assert resume_span.attributes is not None and resume_span.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True
    _no_errors(lg.spans())
    assert _guard.internal_error_counts() == {}


def test_a_resume_in_a_fresh_process_links_to_the_pause_in_another_trace(new_process: Callable[[], Process]) -> None:
    saver = MemorySaver()  # the store outlives the process that paused
    first = new_process()
    with first.tracer().start_as_current_span("POST /refunds"):
        refund_graph(saver).invoke({"amount": 120, "log": []}, CFG)
    pause_span = first.only("POST /refunds")
    interrupt_id = _pending_interrupt_id(refund_graph(saver))

    second = new_process()  # a new tracer provider; every pause the first one remembered is gone
    assert len(_langgraph_interrupts._pauses) == 0
    with otel_llm_audit.audit_context(user_id="reviewer-8"), second.tracer().start_as_current_span("POST /reviews"):
        done = refund_graph(saver).invoke(Command(resume=False), CFG)
    assert done["log"] == ["plan", "review:False", "execute"]
    resume_span = second.only("POST /reviews")
    assert resume_span.context.trace_id != pause_span.context.trace_id
    assert _link(resume_span) == (
        pause_span.context.trace_id,
        pause_span.context.span_id,
        {semconv.LLM_AUDIT_LINK_TYPE: "resumes"},
    )
    assert events(resume_span, REVIEW) == [
        {
            semconv.LLM_AUDIT_REVIEW_SUBJECT: "refund_approval",
            semconv.LLM_AUDIT_REVIEW_ACTION: "rejected",
            semconv.LLM_AUDIT_REVIEW_REVIEWER: "reviewer-8",
            semconv.LLM_AUDIT_REVIEW_INTERRUPT_ID: interrupt_id,
            semconv.LLM_AUDIT_REVIEW_RESPONSE: "false",
        }
    ]
    assert [s.name for s in first.spans() if events(s, REVIEW)] == []


_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from langgraph.types import Command
from lg_internals_graphs import FileSaver, refund_graph
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import otel_llm_audit
from otel_llm_audit.config import Settings, set_settings
from otel_llm_audit.emitter.spans import Emitter
from otel_llm_audit.instrumentation.langchain import _langgraph

set_settings(Settings.from_env(content="raw"))
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
_langgraph.install(Emitter("otel_llm_audit.instrumentation.langchain", provider))
app = refund_graph(FileSaver(sys.argv[2]))
with otel_llm_audit.audit_context(user_id="reviewer-9"):
    with provider.get_tracer("app").start_as_current_span("POST /reviews"):
        result = app.invoke(
            Command(resume={"decision": "reject", "reason": "over the limit"}),
            {"configurable": {"thread_id": sys.argv[3]}},
        )
spans = [
    {
        "name": s.name,
        "trace_id": s.context.trace_id,
        "span_id": s.context.span_id,
        "links": [[l.context.trace_id, l.context.span_id, dict(l.attributes)] for l in s.links],
        "events": [
            [e.name, {k: list(v) if isinstance(v, tuple) else v for k, v in e.attributes.items()}] for e in s.events
        ],
    }
    for s in exporter.get_finished_spans()
]
print(json.dumps({"result": result, "spans": spans}))
"""


def test_a_resume_in_another_os_process_hours_later_links_to_the_pause(lg: Process, tmp_path: Any) -> None:
    store = str(tmp_path / "checkpoints.pkl")
    app = refund_graph(FileSaver(store))
    with lg.tracer().start_as_current_span("POST /refunds"):
        app.invoke({"amount": 120, "log": []}, CFG)
    pause_span = lg.only("POST /refunds")
    interrupt_id = _pending_interrupt_id(app)

    child = subprocess.run(
        [sys.executable, "-c", _CHILD, HERE, store, "refund-42"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    out = json.loads(child.stdout.strip().splitlines()[-1])
    assert out["result"] == {
        "amount": 120,
        "log": ["plan", "review:{'decision': 'reject', 'reason': 'over the limit'}", "execute"],
    }
    (review_span,) = [s for s in out["spans"] if s["name"] == "POST /reviews"]
    assert review_span["trace_id"] != pause_span.context.trace_id
    assert review_span["links"] == [
        [pause_span.context.trace_id, pause_span.context.span_id, {"llm_audit.link.type": "resumes"}]
    ]
    assert review_span["events"] == [
        [
            REVIEW,
            {
                semconv.LLM_AUDIT_REVIEW_SUBJECT: "refund_approval",
                semconv.LLM_AUDIT_REVIEW_ACTION: "rejected",
                semconv.LLM_AUDIT_REVIEW_REVIEWER: "reviewer-9",
                semconv.LLM_AUDIT_REVIEW_INTERRUPT_ID: interrupt_id,
                semconv.LLM_AUDIT_REVIEW_REASON: "over the limit",
                semconv.LLM_AUDIT_REVIEW_RESPONSE: '{"decision":"reject","reason":"over the limit"}',
            },
        ]
    ]
    # the child process recorded its own checkpoint work in its own trace
    child_memory = [s for s in out["spans"] if s["name"] in ("search_memory", "create_memory", "update_memory")]
    assert child_memory and {s["trace_id"] for s in child_memory} == {review_span["trace_id"]}


def test_a_resume_addressed_to_the_interrupt_is_recorded_too(lg: Process) -> None:
    """``Command(resume={id: answer})``: the interrupt id (langgraph 0.6+) or the task id (0.3)."""
    app = refund_graph(MemorySaver())
    with lg.tracer().start_as_current_span("POST /refunds"):
        app.invoke({"amount": 120, "log": []}, CFG)
    (task,) = app.get_state(CFG).tasks
    key = task.interrupts[0].id if hasattr(task.interrupts[0], "id") else task.id
    with lg.tracer().start_as_current_span("POST /reviews"):
        done = app.invoke(Command(resume={key: "deny"}), CFG)
    assert done["log"] == ["plan", "review:deny", "execute"]
    (review,) = events(lg.only("POST /reviews"), REVIEW)
    assert review[semconv.LLM_AUDIT_REVIEW_ACTION] == "rejected"
    assert review[semconv.LLM_AUDIT_REVIEW_INTERRUPT_ID] == _pending_interrupt_id_of(task)
    assert _link(lg.only("POST /reviews"))[1] == lg.only("POST /refunds").context.span_id


def _pending_interrupt_id_of(task: Any) -> str:
    pending = task.interrupts[0]
    return pending.id if hasattr(pending, "id") else "|".join(pending.ns)


def test_each_of_two_pauses_in_one_node_is_answered_and_linked(lg: Process) -> None:
    saver = MemorySaver()
    app = twice_graph(saver)
    with lg.tracer().start_as_current_span("ask dose"):
        app.invoke({"log": []}, CFG)
    first_id = _pending_interrupt_id(app)
    with lg.tracer().start_as_current_span("answer dose"):
        app.invoke(Command(resume="yes"), CFG)
    second_id = _pending_interrupt_id(app)
    with lg.tracer().start_as_current_span("answer discharge"):
        done = app.invoke(Command(resume={"type": "escalate"}), CFG)
    assert done == {"log": ["first:yes", "second:{'type': 'escalate'}"]}

    ask, answer_1, answer_2 = lg.only("ask dose"), lg.only("answer dose"), lg.only("answer discharge")
    assert [e[semconv.LLM_AUDIT_INTERRUPT_ID] for e in events(ask, INTERRUPT)] == [first_id]
    # the second pause happens while the first answer is being consumed, in the same node
    assert [e[semconv.LLM_AUDIT_INTERRUPT_ID] for e in events(answer_1, INTERRUPT)] == [second_id]
    (review_1,) = events(answer_1, REVIEW)
    (review_2,) = events(answer_2, REVIEW)
    assert (review_1[semconv.LLM_AUDIT_REVIEW_SUBJECT], review_1[semconv.LLM_AUDIT_REVIEW_ACTION]) == (
        "dose_check",
        "approved",
    )
    assert review_1[semconv.LLM_AUDIT_REVIEW_INTERRUPT_ID] == first_id
    assert review_1[semconv.LLM_AUDIT_REVIEW_RESPONSE] == '"yes"'
    assert (review_2[semconv.LLM_AUDIT_REVIEW_SUBJECT], review_2[semconv.LLM_AUDIT_REVIEW_ACTION]) == (
        "discharge_check",
        "escalated",
    )
    assert review_2[semconv.LLM_AUDIT_REVIEW_INTERRUPT_ID] == second_id
    assert _link(answer_1)[1] == ask.context.span_id
    assert _link(answer_2)[1] == answer_1.context.span_id  # each answer links to its own pause
    _no_errors(lg.spans())


def test_a_subgraphs_pause_is_recorded_once_and_answered_once(lg: Process) -> None:
    app = subgraph_graph(MemorySaver())
    with lg.tracer().start_as_current_span("ask"):
        app.invoke({"log": []}, CFG)
    with lg.tracer().start_as_current_span("answer"):
        done = app.invoke(Command(resume=True), CFG)
    assert done == {"log": ["answer:True"]}
    ((pause_span, pause),) = all_events(lg.spans(), INTERRUPT)
    ((review_span, review),) = all_events(lg.spans(), REVIEW)
    assert pause_span.name == "ask" and review_span.name == "answer"
    assert review[semconv.LLM_AUDIT_REVIEW_INTERRUPT_ID] == pause[semconv.LLM_AUDIT_INTERRUPT_ID]
    assert review[semconv.LLM_AUDIT_REVIEW_ACTION] == "approved"
    assert _link(review_span)[1] == pause_span.context.span_id
    _no_errors(lg.spans())


def test_async_pause_and_resume(lg: Process) -> None:
    app = async_refund_graph(MemorySaver())

    async def run() -> Any:
        with lg.tracer().start_as_current_span("POST /refunds"):
            await app.ainvoke({"amount": 120, "log": []}, CFG)
        with otel_llm_audit.audit_context(user_id="reviewer-3"), lg.tracer().start_as_current_span("POST /reviews"):
            return await app.ainvoke(Command(resume={"action": "edit", "amount": 80}), CFG)

    done = asyncio.run(run())
    assert done["log"][-1] == "execute"
    pause_span, resume_span = lg.only("POST /refunds"), lg.only("POST /reviews")
    assert len(events(pause_span, INTERRUPT)) == 1
    (review,) = events(resume_span, REVIEW)
    assert review[semconv.LLM_AUDIT_REVIEW_ACTION] == "edited"
    assert review[semconv.LLM_AUDIT_REVIEW_REVIEWER] == "reviewer-3"
    assert review[semconv.LLM_AUDIT_REVIEW_RESPONSE] == '{"action":"edit","amount":80}'
    assert _link(resume_span)[:2] == (pause_span.context.trace_id, pause_span.context.span_id)


def test_our_marker_never_changes_what_langgraph_shows(new_process: Callable[[], Process]) -> None:
    """The state, the pending tasks and their interrupts are those of an uninstrumented run."""
    from otel_llm_audit.instrumentation.langchain import _langgraph

    def pause(saver: Any) -> Any:
        app = refund_graph(saver)
        result = app.invoke({"amount": 120, "log": []}, CFG)
        state = app.get_state(CFG)
        return (
            result["log"],
            state.values,
            state.next,
            [(t.name, [i.value for i in t.interrupts]) for t in state.tasks],
        )

    lg = new_process()
    instrumented = pause(MemorySaver())
    _langgraph.uninstall()
    plain = pause(MemorySaver())
    assert instrumented == plain
    assert instrumented[3] == [("review", [PROPOSAL])]
    assert lg.spans()  # the instrumented run did record


def test_record_human_review_takes_the_same_traceparent_and_gives_the_same_link(lg: Process) -> None:
    """An application that reviews in its own flow uses the persisted traceparent with the public API."""
    saver = MemorySaver()
    app = refund_graph(saver)
    with lg.tracer().start_as_current_span("POST /refunds"):
        app.invoke({"amount": 120, "log": []}, CFG)
    pause_span = lg.only("POST /refunds")
    (marker,) = [w[2] for w in saver.get_tuple(CFG).pending_writes if w[1] == _langgraph_interrupts.MARKER_CHANNEL]
    assert marker["traceparent"] == (
        f"00-{pause_span.context.trace_id:032x}-{pause_span.context.span_id:016x}-{int(pause_span.context.trace_flags):02x}"
    )
    with lg.tracer().start_as_current_span("manual review"):
        otel_llm_audit.record_human_review(
            "refund_approval",
            "approved",
            reviewer="reviewer-1",
            interrupt_id=marker["interrupt_id"],
            response={"action": "approve"},
            resumes=marker["traceparent"],
        )
    manual = lg.only("manual review")
    assert _link(manual) == (
        pause_span.context.trace_id,
        pause_span.context.span_id,
        {semconv.LLM_AUDIT_LINK_TYPE: "resumes"},
    )
    (review,) = events(manual, REVIEW)
    assert review[semconv.LLM_AUDIT_REVIEW_INTERRUPT_ID] == _pending_interrupt_id(app)


def test_a_pause_made_before_instrumenting_is_reviewed_without_a_link(new_process: Callable[[], Process]) -> None:
    from otel_llm_audit.instrumentation.langchain import _langgraph

    saver = MemorySaver()
    _langgraph.uninstall()
    refund_graph(saver).invoke({"amount": 120, "log": []}, CFG)  # no hooks: no marker saved
    process = new_process()
    with process.tracer().start_as_current_span("POST /reviews"):
        refund_graph(saver).invoke(Command(resume=True), CFG)
    resume_span = process.only("POST /reviews")
    (review,) = events(resume_span, REVIEW)
    assert review[semconv.LLM_AUDIT_REVIEW_ACTION] == "approved"
    assert review[semconv.LLM_AUDIT_REVIEW_INTERRUPT_ID] == _pending_interrupt_id_of_history(saver)
    assert resume_span.links == ()


def _pending_interrupt_id_of_history(saver: Any) -> str:
    """The id of the interrupt the thread was paused on (its last checkpoint before the answer)."""
    app = refund_graph(saver)
    for state in app.get_state_history(CFG):
        for task in state.tasks:
            if task.interrupts:
                return _pending_interrupt_id_of(task)
    raise AssertionError("no paused checkpoint")


def test_static_breakpoints_are_not_pauses_for_a_human(lg: Process) -> None:
    saver = MemorySaver()
    app = refund_graph(saver).builder.compile(checkpointer=saver, interrupt_before=["execute"])
    with lg.tracer().start_as_current_span("run"):
        first = app.invoke({"amount": 50, "log": []}, CFG)
        second = app.invoke(None, CFG)
    assert first["log"] == ["plan"]
    assert second["log"] == ["plan", "execute"]
    assert all_events(lg.spans(), INTERRUPT) == []
    assert all_events(lg.spans(), REVIEW) == []
    _no_errors(lg.spans())


def test_pauses_and_waiting_tasks_are_bounded(lg: Process) -> None:
    for i in range(_langgraph_interrupts._MAX_ENTRIES + 50):
        _langgraph_interrupts._pauses.put(f"i{i}", _langgraph_interrupts.Pause(f"i{i}", "00-x", None, None, 0))
    assert len(_langgraph_interrupts._pauses) == _langgraph_interrupts._MAX_ENTRIES
    assert _langgraph_interrupts._pauses.get("i0") is None
