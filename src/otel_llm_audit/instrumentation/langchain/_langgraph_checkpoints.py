"""Checkpointer reads and writes as memory spans, for any ``BaseCheckpointSaver``.

Where to hook: every read and write a graph run makes goes through the saver its Pregel loop
was given (``SyncPregelLoop`` / ``AsyncPregelLoop``, constructed with ``checkpointer=``). We
wrap the loops' ``__init__`` and hand them a transparent proxy of that saver. Compared with
patching saver classes, this covers third-party savers without touching their classes (their
``put`` may call their own ``get_tuple``, their async methods may call the sync ones: patched
classes would report those twice), leaves the application's own calls (``graph.get_state``)
alone, and knows the loop: the graph run, the super-step, the node a write came from.

Mapping (GenAI memory operations): ``get_tuple`` -> ``search_memory`` (the state read back),
``put`` -> ``create_memory`` (a new checkpoint: the changed channel values), ``put_writes`` ->
``update_memory`` (a task's writes attached to the current checkpoint). Each span carries the
thread id, namespace and checkpoint id, the saver class as ``gen_ai.memory.store.id``, and the
records as ``{"id": channel, "content": value}`` content (masked like every other content).
The span's start and end are when the state changed.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import trace

from otel_llm_audit import _guard, semconv
from otel_llm_audit.emitter.operations import StepSpan
from otel_llm_audit.emitter.spans import Emitter
from otel_llm_audit.instrumentation._proxy import ObjectProxy
from otel_llm_audit.instrumentation.langchain import _langgraph_common as common
from otel_llm_audit.instrumentation.langchain import _langgraph_interrupts as interrupts
from otel_llm_audit.records import CheckpointRef, MemoryOperation, StepPosition

#: At most this many records per span, and this many items of a list value (the newest).
MAX_RECORDS = 32
MAX_ITEMS = 20
_SPECIAL_CHANNELS = frozenset({common.INTERRUPT, common.RESUME, common.ERROR})


def loop_init(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """wrapt wrapper of ``SyncPregelLoop.__init__`` / ``AsyncPregelLoop.__init__``."""
    saver = kwargs.get("checkpointer")
    audit = None
    if saver is not None and common.STATE.emitter is not None:
        try:
            audit = LoopAudit(instance)
            inner = saver.__wrapped__ if isinstance(saver, SaverProxy) else saver
            kwargs = {**kwargs, "checkpointer": SaverProxy(inner, audit)}
        except Exception as err:
            _guard.report_internal_error("langgraph.checkpoint", err)
    wrapped(*args, **kwargs)
    if audit is not None:
        try:
            audit.capture()
        except Exception as err:
            _guard.report_internal_error("langgraph.checkpoint", err)


class LoopAudit:
    """What the saver proxy knows about the loop it serves: the run, the step, the tasks."""

    __slots__ = ("_loop", "parent", "run_id", "state_keys")

    def __init__(self, loop: Any) -> None:
        self._loop = weakref.ref(loop)
        self.parent: otel_context.Context | None = None
        self.run_id: str | None = None
        self.state_keys: frozenset[str] | None = None

    def capture(self) -> None:
        """Once the loop is built, in the caller's context: the graph run and our span for it."""
        try:
            loop = self._loop()
            if loop is None:
                return
            manager = getattr(loop, "manager", None)
            run_config = getattr(loop, "config", None)
            if manager is not None and isinstance(run_config, Mapping):
                from langchain_core.runnables.config import patch_config

                self.run_id = str(manager.run_id)
                child = patch_config(cast(Any, run_config), callbacks=manager.get_child())
                self.parent = common.step_context(child)
            else:
                self.parent = common.step_context()
            keys: set[str] = set()
            for attr in ("output_keys", "stream_keys"):
                value = getattr(loop, attr, None)
                keys.update([value] if isinstance(value, str) else value or ())
            self.state_keys = frozenset(keys) or None
        except Exception as err:
            _guard.report_internal_error("langgraph.checkpoint", err)

    def position(self, task_id: str | None = None) -> StepPosition:
        """The run, and for a task's writes its node and super-step."""
        position = StepPosition(run_id=self.run_id)
        if task_id is None:
            return position
        known = common.TASKS.get(task_id)
        if known is not None:
            position.graph_node, position.graph_step = known
            return position
        loop = self._loop()
        task = (getattr(loop, "tasks", None) or {}).get(task_id) if loop is not None else None
        if task is not None:
            position.graph_node = getattr(task, "name", None)
            step = getattr(loop, "step", None)
            position.graph_step = step if isinstance(step, int) else None
        return position

    def keep(self, channel: Any) -> bool:
        """Whether a channel is application state (not langgraph's routing channels)."""
        if not isinstance(channel, str):
            return False
        if channel in _SPECIAL_CHANNELS:
            return True
        if self.state_keys is not None:
            return channel in self.state_keys
        return not (channel.startswith("__") or ":" in channel)


class _MemorySpan:
    """One checkpoint operation in flight; every method is safe to call and never raises."""

    __slots__ = ("audit", "step")

    def __init__(self, audit: LoopAudit | None, step: StepSpan) -> None:
        self.audit = audit
        self.step = step

    @classmethod
    def start(
        cls, audit: LoopAudit, operation: str, saver: Any, config: Any, task_id: Any = None, step: Any = None
    ) -> _MemorySpan | None:
        emitter = common.STATE.emitter
        if emitter is None:
            return None
        try:
            position = audit.position(task_id=None if task_id is None else str(task_id))
            if isinstance(step, int):
                position.graph_step = step
            return cls(audit, _start(emitter, operation, saver, config, position, audit.parent))
        except Exception as err:
            _guard.report_internal_error("langgraph.checkpoint", err)
            return None

    @property
    def record(self) -> MemoryOperation:
        record = self.step.record
        assert isinstance(record, MemoryOperation)
        return record

    def fail(self, exc: BaseException) -> None:
        try:
            self.step.end(exc)
        except Exception as err:
            _guard.report_internal_error("langgraph.checkpoint", err)

    def finish(self, fill: Callable[..., Callable[[MemoryOperation, StepSpan], None]], *args: Any) -> None:
        """Complete the record with ``fill(*args)`` and end the span (which ends even if filling fails)."""
        try:
            fill(*args)(self.record, self.step)
        except Exception as err:
            _guard.report_internal_error("langgraph.checkpoint", err)
        try:
            self.step.end()
        except Exception as err:
            _guard.report_internal_error("langgraph.checkpoint", err)


def _start(
    emitter: Emitter,
    operation: str,
    saver: Any,
    config: Any,
    position: StepPosition,
    parent: otel_context.Context | None,
) -> StepSpan:
    conf = common.configurable(config)
    record = MemoryOperation(
        operation,
        store_id=type(saver).__name__ if saver is not None else None,
        checkpoint=CheckpointRef(
            thread_id=_str(conf.get(common.CONFIG_KEY_THREAD_ID)),
            namespace=_str(conf.get(common.CONFIG_KEY_CHECKPOINT_NS, "")),
            checkpoint_id=_str(conf.get(common.CONFIG_KEY_CHECKPOINT_ID)),
        ),
        position=position,
    )
    if parent is None:
        parent = otel_context.get_current()
    token = otel_context.attach(parent)  # the run's audit identity, also on a background thread
    try:
        return emitter.start_step(record, context=parent)
    finally:
        otel_context.detach(token)


def _step_of(metadata: Any) -> Any:
    return metadata.get("step") if isinstance(metadata, Mapping) else None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _fill_read(audit: LoopAudit, saved: Any) -> Callable[[MemoryOperation, StepSpan], None]:
    def fill(record: MemoryOperation, step_span: StepSpan) -> None:
        if saved is None:
            record.records = []
            return
        conf = common.configurable(getattr(saved, "config", None))
        if record.checkpoint is not None and conf.get(common.CONFIG_KEY_CHECKPOINT_ID) is not None:
            record.checkpoint.checkpoint_id = str(conf[common.CONFIG_KEY_CHECKPOINT_ID])
            record.record_id = record.checkpoint.checkpoint_id
        step = (getattr(saved, "metadata", None) or {}).get("step")
        if isinstance(step, int):  # known only now: the step of the checkpoint read back
            step_span.span.set_attribute(semconv.LLM_AUDIT_GRAPH_STEP, step)
        values = (getattr(saved, "checkpoint", None) or {}).get("channel_values") or {}
        pending = [(w[1], w[2]) for w in getattr(saved, "pending_writes", None) or () if w[1] in _SPECIAL_CHANNELS]
        record.records = _records(audit, [*values.items(), *pending])

    return fill


def _fill_put(audit: LoopAudit, checkpoint: Any, new_versions: Any) -> Callable[[MemoryOperation, StepSpan], None]:
    def fill(record: MemoryOperation, step_span: StepSpan) -> None:
        if record.checkpoint is not None and isinstance(checkpoint, Mapping) and checkpoint.get("id") is not None:
            record.checkpoint.checkpoint_id = str(checkpoint["id"])
            record.record_id = record.checkpoint.checkpoint_id
        values = (checkpoint.get("channel_values") or {}) if isinstance(checkpoint, Mapping) else {}
        changed = new_versions if isinstance(new_versions, Mapping) else values
        record.records = _records(audit, ((k, values[k]) for k in changed if k in values))

    return fill


def _fill_writes(audit: LoopAudit, writes: Any) -> Callable[[MemoryOperation, StepSpan], None]:
    def fill(record: MemoryOperation, step_span: StepSpan) -> None:
        if record.checkpoint is not None:
            record.record_id = record.checkpoint.checkpoint_id
        record.records = _records(audit, (tuple(w) for w in writes if len(w) == 2))

    return fill


def _records(audit: LoopAudit, items: Iterable[tuple[Any, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for channel, value in items:
        if not audit.keep(channel):
            continue
        if len(out) == MAX_RECORDS:
            break
        out.append({"id": channel, "content": _content(channel, value)})
    return out


def _content(channel: str, value: Any) -> Any:
    """A bounded, JSON-friendly view of a channel value (newest items of long lists)."""
    if channel == common.INTERRUPT:
        return [{"id": common.interrupt_id_of(i, None), "value": i.value} for i in common.interrupts_in(value)]
    if isinstance(value, (list, tuple)) and len(value) > MAX_ITEMS:
        return {"items_omitted": len(value) - MAX_ITEMS, "items": list(value[-MAX_ITEMS:])}
    return value


class SaverProxy(ObjectProxy):
    """The loop's saver, seen through: every attribute is the saver's, six methods are audited."""

    def __init__(self, saver: Any, audit: LoopAudit) -> None:
        super().__init__(saver)
        self._self_audit = audit

    # reads

    def get_tuple(self, config: Any) -> Any:
        op = _MemorySpan.start(self._self_audit, "search_memory", self.__wrapped__, config)
        try:
            saved = self.__wrapped__.get_tuple(config)
        except BaseException as exc:
            if op is not None:
                op.fail(exc)
            raise
        return _after_read(op, self._self_audit, saved)

    async def aget_tuple(self, config: Any) -> Any:
        op = _MemorySpan.start(self._self_audit, "search_memory", self.__wrapped__, config)
        try:
            saved = await self.__wrapped__.aget_tuple(config)
        except BaseException as exc:
            if op is not None:
                op.fail(exc)
            raise
        return _after_read(op, self._self_audit, saved)

    # new checkpoints

    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        op = _MemorySpan.start(self._self_audit, "create_memory", self.__wrapped__, config, step=_step_of(metadata))
        try:
            result = self.__wrapped__.put(config, checkpoint, metadata, new_versions)
        except BaseException as exc:
            if op is not None:
                op.fail(exc)
            raise
        if op is not None:
            op.finish(_fill_put, self._self_audit, checkpoint, new_versions)
        return result

    async def aput(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        op = _MemorySpan.start(self._self_audit, "create_memory", self.__wrapped__, config, step=_step_of(metadata))
        try:
            result = await self.__wrapped__.aput(config, checkpoint, metadata, new_versions)
        except BaseException as exc:
            if op is not None:
                op.fail(exc)
            raise
        if op is not None:
            op.finish(_fill_put, self._self_audit, checkpoint, new_versions)
        return result

    # a task's writes (properties: the loop inspects the saver's signature for ``task_path``)

    @property
    def put_writes(self) -> Callable[..., Any]:
        saver, audit = self.__wrapped__, self._self_audit
        original = saver.put_writes

        @functools.wraps(original)
        def put_writes(config: Any, writes: Any, task_id: Any, *args: Any, **kwargs: Any) -> Any:
            op = _MemorySpan.start(audit, "update_memory", saver, config, task_id)
            try:
                result = original(config, writes, task_id, *args, **kwargs)
            except BaseException as exc:
                if op is not None:
                    op.fail(exc)
                raise
            if op is not None:
                op.finish(_fill_writes, audit, writes)
            for marker_id, marker_writes, interrupt_id in _markers(writes, task_id):
                try:
                    original(config, marker_writes, marker_id)
                    interrupts.marker_saved(interrupt_id)
                except Exception as err:
                    _guard.report_internal_error("langgraph.interrupt_marker", err)
            return result

        return put_writes

    @property
    def aput_writes(self) -> Callable[..., Any]:
        saver, audit = self.__wrapped__, self._self_audit
        original = saver.aput_writes

        @functools.wraps(original)
        async def aput_writes(config: Any, writes: Any, task_id: Any, *args: Any, **kwargs: Any) -> Any:
            op = _MemorySpan.start(audit, "update_memory", saver, config, task_id)
            try:
                result = await original(config, writes, task_id, *args, **kwargs)
            except BaseException as exc:
                if op is not None:
                    op.fail(exc)
                raise
            if op is not None:
                op.finish(_fill_writes, audit, writes)
            for marker_id, marker_writes, interrupt_id in _markers(writes, task_id):
                try:
                    await original(config, marker_writes, marker_id)
                    interrupts.marker_saved(interrupt_id)
                except Exception as err:
                    _guard.report_internal_error("langgraph.interrupt_marker", err)
            return result

        return aput_writes

    # a proxy must copy and pickle like the saver it stands for

    def __copy__(self) -> Any:
        return copy.copy(self.__wrapped__)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return copy.deepcopy(self.__wrapped__, memo)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return self.__wrapped__.__reduce_ex__(protocol)


# -- the application's own state edits -------------------------------------------------------

#: Set while an ``update_state`` is recorded (langgraph may delegate one to a subgraph's).
_in_update: contextvars.ContextVar[bool] = contextvars.ContextVar("otel_llm_audit_lg_update", default=False)


def update_state(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """wrapt wrapper of ``Pregel.update_state``: a person or service edits a thread's state.

    The span is current while the update runs (attached and detached in this one call), so
    what the update sets off (the branch of ``as_node`` choosing again) nests under it.
    """
    op = _guarded(_start_update, instance, args, kwargs)
    if op is None:
        return wrapped(*args, **kwargs)
    token = _in_update.set(True)
    attached = otel_context.attach(trace.set_span_in_context(op.step.span))
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        op.fail(exc)
        raise
    finally:
        otel_context.detach(attached)
        _in_update.reset(token)
    op.finish(_fill_update, result)
    return result


async def aupdate_state(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """wrapt wrapper of ``Pregel.aupdate_state`` (one coroutine: attached and detached in the same task)."""
    op = _guarded(_start_update, instance, args, kwargs)
    if op is None:
        return await wrapped(*args, **kwargs)
    token = _in_update.set(True)
    attached = otel_context.attach(trace.set_span_in_context(op.step.span))
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        op.fail(exc)
        raise
    finally:
        otel_context.detach(attached)
        _in_update.reset(token)
    op.finish(_fill_update, result)
    return result


def _guarded(start: Callable[..., _MemorySpan | None], *args: Any) -> _MemorySpan | None:
    try:
        return start(*args)
    except Exception as err:
        _guard.report_internal_error("langgraph.checkpoint", err)
        return None


def _start_update(graph: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> _MemorySpan | None:
    emitter = common.STATE.emitter
    if emitter is None or _in_update.get():
        return None
    try:
        names = ("config", "values", "as_node")
        given = dict(zip(names, args, strict=False))
        given.update({k: v for k, v in kwargs.items() if k in names})
        saver = getattr(graph, "checkpointer", None)
        as_node = given.get("as_node")
        step = _start(
            emitter,
            "update_memory",
            None if saver is None or isinstance(saver, bool) else saver,
            given.get("config"),
            StepPosition(graph_node=as_node if isinstance(as_node, str) else None),
            common.step_context(),
        )
        values = given.get("values")
        items = values.items() if isinstance(values, Mapping) else [(as_node or "state", values)]
        if isinstance(step.record, MemoryOperation):
            step.record.records = [{"id": str(k), "content": _content(str(k), v)} for k, v in list(items)[:MAX_RECORDS]]
        return _MemorySpan(None, step)
    except Exception as err:
        _guard.report_internal_error("langgraph.checkpoint", err)
        return None


def _fill_update(result: Any) -> Callable[[MemoryOperation, StepSpan], None]:
    def fill(record: MemoryOperation, step_span: StepSpan) -> None:
        checkpoint_id = common.configurable(result).get(common.CONFIG_KEY_CHECKPOINT_ID)
        if record.checkpoint is not None and checkpoint_id is not None:
            record.checkpoint.checkpoint_id = str(checkpoint_id)
            record.record_id = record.checkpoint.checkpoint_id

    return fill


def _after_read(op: _MemorySpan | None, audit: LoopAudit, saved: Any) -> Any:
    if op is not None:
        op.finish(_fill_read, audit, saved)
    if saved is None or common.STATE.emitter is None:
        return saved
    try:
        return interrupts.on_loaded(saved)
    except Exception as err:
        _guard.report_internal_error("langgraph.resume", err)
        return saved


def _markers(writes: Any, task_id: Any) -> list[tuple[str, list[tuple[str, Any]], str]]:
    if common.STATE.emitter is None:
        return []
    try:
        return [
            (marker_id, marker_writes, marker_writes[0][1]["interrupt_id"])
            for marker_id, marker_writes in interrupts.markers_for(list(writes), str(task_id))
        ]
    except Exception as err:
        _guard.report_internal_error("langgraph.interrupt_marker", err)
        return []
