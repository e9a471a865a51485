"""Human in the loop: a node's ``interrupt()`` and the ``Command(resume=...)`` that answers it.

At the pause. ``interrupt(value)`` raises ``GraphInterrupt`` from inside the node, while the
node's run (and so our span for it) is still open; the run ends with that exception right after.
So we watch ``GraphInterrupt.__init__``: its first construction for an ``Interrupt`` is the
pause itself (bubbling through subgraphs reuses the same ``Interrupt`` objects). There we add
``llm_audit.interrupt`` to the node's span and remember that span's traceparent. When the
loop saves the interrupt (``put_writes`` of an ``__interrupt__`` write, see
``_langgraph_checkpoints``), a *marker* write is saved next to it in the same checkpoint: the
traceparent, under a task id of its own so langgraph never mistakes it for a task's output.

At the resume, possibly in another process hours later. The resumed run loads the checkpoint
(``get_tuple``): its pending ``__interrupt__`` writes say which task is waiting for which
answer, the marker says which span paused. The marker is taken out of what langgraph sees.
When that task runs again, the answer reaches it through its ``__pregel_send`` writer (1.x:
``interrupt()`` writes the ``__resume__`` list as it returns the answer; 0.3: at the latest
when the node's own writes go out): we wrap that writer for waiting tasks only, and add
``llm_audit.human_review`` to the node's span, with a ``resumes`` link to the paused span.
"""

from __future__ import annotations

import functools
import inspect
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from otel_llm_audit import _guard, semconv
from otel_llm_audit.emitter import links
from otel_llm_audit.emitter.operations import human_review_attributes, interrupt_attributes
from otel_llm_audit.instrumentation.langchain import _langgraph_common as common
from otel_llm_audit.instrumentation.langchain._langgraph_reviews import review_action, review_reason, review_subject
from otel_llm_audit.records import HumanReview, Interrupt

#: Channel of the marker write that carries the paused span's traceparent in the checkpoint.
MARKER_CHANNEL = "llm_audit.interrupt_span"
_MARKER_NAMESPACE = uuid.UUID("5b0c3a62-4f0e-4c49-9d0a-6f3d1d2c8e11")
_MAX_ENTRIES = 4096
#: A bubbling pause is re-raised within the same run: the last few hundred are plenty.
_MAX_SEEN = 256


@dataclass(slots=True)
class Pause:
    """An interrupt we recorded, until its marker is saved with the checkpoint."""

    interrupt_id: str
    traceparent: str
    task_id: str | None
    node: str | None
    #: How many answers the task had received when it paused (0 for its first interrupt).
    index: int


@dataclass(slots=True)
class Waiting:
    """A loaded interrupt whose task will run again and receive the human's answer."""

    interrupt_id: str
    value: Any
    traceparent: str | None
    node: str | None
    #: How many answers the task had received before this one (its earlier interrupts).
    answered_before: int


@dataclass(slots=True)
class _TaskWaiting:
    entries: list[Waiting] = field(default_factory=list)


#: Interrupt objects already recorded (a bubbling ``GraphInterrupt`` carries the same ones).
_seen: common.BoundedMap[int, Any] = common.BoundedMap(_MAX_SEEN)
#: interrupt id -> the pause, until its marker is written.
_pauses: common.BoundedMap[str, Pause] = common.BoundedMap(_MAX_ENTRIES)
#: task id -> the interrupts that task is waiting to have answered.
_waiting: common.BoundedMap[str, _TaskWaiting] = common.BoundedMap(_MAX_ENTRIES)


def reset() -> None:
    """Forget every pause and waiting task (uninstall)."""
    _seen.clear()
    _pauses.clear()
    _waiting.clear()


def marker_task_id(interrupt_id: str, index: int) -> str:
    """The task id a marker is saved under: never a real task's, one per pause.

    The index is part of it because langgraph before 0.4 gives all the interrupts of one task
    the same id, and savers keep the first of two writes under the same task id and channel.
    """
    return str(uuid.uuid5(_MARKER_NAMESPACE, f"{interrupt_id}|{index}"))


# -- the pause ------------------------------------------------------------------------------


def graph_interrupt_init(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """wrapt wrapper of ``GraphInterrupt.__init__``: a node paused to ask a human."""
    result = wrapped(*args, **kwargs)
    emitter = common.STATE.emitter
    if emitter is not None:
        try:
            interrupts = args[0] if args else kwargs.get("interrupts", ())
            if interrupts:
                _on_pause(emitter, interrupts)
        except Exception as err:
            _guard.report_internal_error("langgraph.interrupt", err)
    return result


def _on_pause(emitter: Any, interrupts: Sequence[Any]) -> None:
    fresh = []
    for interrupt in interrupts:
        if _seen.get(id(interrupt)) is interrupt:
            continue  # the same pause bubbling up through a subgraph or the runner
        _seen.put(id(interrupt), interrupt)
        fresh.append(interrupt)
    if not fresh:
        return
    config = common.current_config()
    conf = common.configurable(config)
    task_id = conf.get(common.CONFIG_KEY_TASK_ID)
    node = common.metadata(config).get("langgraph_node")
    answered = getattr(conf.get(common.CONFIG_KEY_SCRATCHPAD), "resume", None)
    index = len(answered) if isinstance(answered, list) else 0
    ctx = common.step_context()
    for interrupt in fresh:
        record = Interrupt(common.interrupt_id_of(interrupt, task_id), getattr(interrupt, "value", None))
        span = common.emit_event(
            emitter,
            semconv.EVENT_LLM_AUDIT_INTERRUPT,
            lambda span, record=record: interrupt_attributes(record, span),  # type: ignore[misc]
            ctx,
        )
        if span is not None:
            _pauses.put(
                record.interrupt_id,
                Pause(record.interrupt_id, links.traceparent(span.get_span_context()), task_id, node, index),
            )


def markers_for(writes: Sequence[Any], task_id: str) -> list[tuple[str, list[tuple[str, Any]]]]:
    """The marker writes to save next to a task's ``__interrupt__`` write: (marker task id, writes).

    Only for pauses recorded in this process, and only in the checkpoint of the task that
    paused (a subgraph's interrupt is saved again, bubbled, in its parent's checkpoint).
    """
    out: list[tuple[str, list[tuple[str, Any]]]] = []
    for write in writes:
        if len(write) != 2 or write[0] != common.INTERRUPT:
            continue
        for interrupt in common.interrupts_in(write[1]):
            interrupt_id = common.interrupt_id_of(interrupt, task_id)
            pause = _pauses.get(interrupt_id)
            if pause is None or (pause.task_id is not None and pause.task_id != task_id):
                continue
            payload = {
                "interrupt_id": interrupt_id,
                "index": pause.index,
                "traceparent": pause.traceparent,
                "task_id": task_id,
                "node": pause.node,
            }
            out.append((marker_task_id(interrupt_id, pause.index), [(MARKER_CHANNEL, payload)]))
    return out


def marker_saved(interrupt_id: str) -> None:
    _pauses.pop(interrupt_id)


# -- the resume -----------------------------------------------------------------------------


def on_loaded(saved: Any) -> Any:
    """Note which loaded tasks wait for an answer; return the tuple without our markers."""
    pending = getattr(saved, "pending_writes", None)
    if not pending:
        return saved
    markers: dict[tuple[str, int], Mapping[str, Any]] = {}
    interrupts: list[tuple[str, Any]] = []
    answers: dict[str, int] = {}
    kept = []
    for write in pending:
        task_id, channel, value = write[0], write[1], write[2]
        if channel == MARKER_CHANNEL:
            if isinstance(value, Mapping) and isinstance(value.get("interrupt_id"), str):
                markers[(value["interrupt_id"], int(value.get("index") or 0))] = value
            continue
        kept.append(write)
        if channel == common.INTERRUPT:
            interrupts.extend((task_id, i) for i in common.interrupts_in(value))
        elif channel == common.RESUME and task_id != common.NULL_TASK_ID:
            answers[task_id] = len(value) if isinstance(value, list) else 1
    for task_id, interrupt in interrupts:
        interrupt_id = common.interrupt_id_of(interrupt, task_id)
        answered_before = answers.get(task_id, 0)
        marker = markers.get((interrupt_id, answered_before))
        pause = _pauses.get(interrupt_id)  # the marker could not be saved: same process only
        if pause is not None and pause.index != answered_before:
            pause = None
        origin = marker.get("task_id") if marker is not None else pause.task_id if pause is not None else None
        if origin is not None and origin != task_id:
            continue  # the bubbled copy in a parent graph: the paused task itself gets the review
        traceparent = marker.get("traceparent") if marker is not None else pause.traceparent if pause else None
        node = marker.get("node") if marker is not None else pause.node if pause else None
        waiting = _waiting.get(task_id) or _TaskWaiting()
        if all(w.interrupt_id != interrupt_id for w in waiting.entries):
            waiting.entries.append(
                Waiting(interrupt_id, getattr(interrupt, "value", None), traceparent, node, answered_before)
            )
        _waiting.put(task_id, waiting)
    if len(kept) == len(pending):
        return saved
    return saved._replace(pending_writes=kept)


def run_with_retry(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """wrapt wrapper of the runner's ``run_with_retry``: a task starts (a waiting one gets a watched writer)."""
    patched = _with_watched_send(wrapped, args, kwargs)
    if patched is None:
        return wrapped(*args, **kwargs)
    return wrapped(*patched[0], **patched[1])


async def arun_with_retry(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """wrapt wrapper of the runner's ``arun_with_retry`` (a coroutine function)."""
    patched = _with_watched_send(wrapped, args, kwargs)
    if patched is None:
        return await wrapped(*args, **kwargs)
    return await wrapped(*patched[0], **patched[1])


def _with_watched_send(
    wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """The call's arguments with the task's writer wrapped, or ``None`` to call it as it is."""
    if common.STATE.emitter is None or not args:
        return None
    try:
        task = args[0]
        common.note_task(task)
        waiting = _waiting.pop(str(getattr(task, "id", "")))
        if waiting is None or not waiting.entries:
            return None
        bound = inspect.signature(wrapped).bind(*args, **kwargs)
        given = bound.arguments.get("configurable") or {}
        task_conf = common.configurable(getattr(task, "config", None))
        send = given.get(common.CONFIG_KEY_SEND) or task_conf.get(common.CONFIG_KEY_SEND)
        if not callable(send):
            return None
        scratchpad = task_conf.get(common.CONFIG_KEY_SCRATCHPAD)
        node = getattr(task, "name", None)
        watched = _watched_send(send, waiting, scratchpad, node)
        bound.arguments["configurable"] = {**given, common.CONFIG_KEY_SEND: watched}
        return bound.args, bound.kwargs
    except Exception as err:
        _guard.report_internal_error("langgraph.resume", err)
        return None


def _watched_send(send: Callable[..., Any], waiting: _TaskWaiting, scratchpad: Any, node: str | None) -> Any:
    @functools.wraps(send)
    def watched(writes: Any, *args: Any, **kwargs: Any) -> Any:
        if waiting.entries:
            try:
                _maybe_review(writes, waiting, scratchpad, node)
            except Exception as err:
                _guard.report_internal_error("langgraph.resume", err)
        return send(writes, *args, **kwargs)

    return watched


def _maybe_review(writes: Any, waiting: _TaskWaiting, scratchpad: Any, node: str | None) -> None:
    """Record the review once the task has received an answer it did not have before."""
    emitter = common.STATE.emitter
    if emitter is None:
        return
    answers = _answers(writes, scratchpad)
    entry = waiting.entries[0]
    if answers is None or len(answers) <= entry.answered_before:
        return
    waiting.entries.pop(0)
    response = answers[entry.answered_before]
    review = HumanReview(
        subject=review_subject(entry.value, entry.node or node),
        action=review_action(response, entry.value),
        reason=review_reason(response),
        interrupt_id=entry.interrupt_id,
        response=response,
    )
    link = links.resumes_link(entry.traceparent)
    common.emit_event(
        emitter,
        semconv.EVENT_LLM_AUDIT_HUMAN_REVIEW,
        lambda span: human_review_attributes(review, span),
        common.step_context(),
        [link] if link is not None else (),
    )


def _answers(writes: Any, scratchpad: Any) -> list[Any] | None:
    """The answers the task has received so far: the ``__resume__`` list it is writing, else its scratchpad's."""
    if isinstance(writes, (list, tuple)):
        for write in writes:
            if isinstance(write, tuple) and len(write) == 2 and write[0] == common.RESUME:
                value = write[1]
                return list(value) if isinstance(value, (list, tuple)) else [value]
    resume = getattr(scratchpad, "resume", None)
    return list(resume) if isinstance(resume, list) else None
