"""What the LangGraph wrappers share: the emitter, langgraph's wire names, and where an event goes.

LangGraph tells us little about *which step* is running when one of our wrappers fires (a
branch is evaluated after its node's callback run has ended, a checkpoint is written on a
background thread). The framework itself says it through LangChain's run configuration: the
``config`` a piece of langgraph code runs with names its parent run in ``config["callbacks"]``.
:func:`step_context` asks the registered parent resolvers (``emitter/parents.py``) for our
span of that run, the same way they are asked when langgraph runs a child of it: inside a
copied context whose ``var_child_runnable_config`` is that config. Nothing is attached to the
caller's context.
"""

from __future__ import annotations

import contextvars
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from langchain_core.runnables.config import var_child_runnable_config
from opentelemetry import context as otel_context
from opentelemetry.trace import Link, Span

from otel_llm_audit.emitter import parents
from otel_llm_audit.emitter.operations import emit_audit_event
from otel_llm_audit.emitter.spans import Emitter

# langgraph's own names. They are persisted in every checkpoint store (pending writes are
# saved under these channel names), so they are as stable as the stores' data.
INTERRUPT = "__interrupt__"
RESUME = "__resume__"
ERROR = "__error__"
NULL_TASK_ID = "00000000-0000-0000-0000-000000000000"
CONF = "configurable"
CONFIG_KEY_SEND = "__pregel_send"
CONFIG_KEY_TASK_ID = "__pregel_task_id"
CONFIG_KEY_SCRATCHPAD = "__pregel_scratchpad"
CONFIG_KEY_CHECKPOINT_NS = "checkpoint_ns"
CONFIG_KEY_CHECKPOINT_ID = "checkpoint_id"
CONFIG_KEY_THREAD_ID = "thread_id"


class _State:
    """The emitter the wrappers report to; ``None`` while not installed (wrappers pass through)."""

    emitter: Emitter | None = None


STATE = _State()

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedMap(Generic[K, V]):
    """A thread-safe mapping that forgets its oldest entries beyond ``max_size``.

    Pauses that are never resumed and workflows abandoned midway must not grow memory in a
    long-running service: every registry of this integration is one of these.
    """

    def __init__(self, max_size: int) -> None:
        self._max = max_size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._data.get(key)

    def pop(self, key: K) -> V | None:
        with self._lock:
            return self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


#: task id -> (node, super-step) of the tasks the runner started lately: a task's writes are
#: saved on a background thread, when the loop may already be at its next step.
TASKS: BoundedMap[str, tuple[str | None, int | None]] = BoundedMap(4096)


def note_task(task: Any) -> None:
    """Remember where a task the runner is about to run sits in the graph."""
    step = metadata(getattr(task, "config", None)).get("langgraph_step")
    TASKS.put(str(task.id), (getattr(task, "name", None), step if isinstance(step, int) else None))


def configurable(config: Any) -> Mapping[str, Any]:
    """``config["configurable"]``, or an empty mapping for anything else."""
    if isinstance(config, Mapping):
        conf = config.get(CONF)
        if isinstance(conf, Mapping):
            return conf
    return {}


def metadata(config: Any) -> Mapping[str, Any]:
    if isinstance(config, Mapping):
        meta = config.get("metadata")
        if isinstance(meta, Mapping):
            return meta
    return {}


def current_config() -> Any:
    """The LangChain run configuration of the code running here (langgraph sets it for nodes)."""
    return var_child_runnable_config.get()


def step_context(config: Any = None) -> otel_context.Context:
    """The context whose current span is our span for the step ``config`` runs in.

    ``config`` is a LangChain run configuration whose callbacks name the parent run (what
    langgraph hands to a branch, or a loop's configuration with its run manager's child
    callbacks). Without one, the resolvers are asked about the code running here. When no
    resolver knows the step, the current context (the application's span, if any).
    """
    found = _resolve_as_child_of(config) if config is not None else parents.parent_context()
    return found if found is not None else otel_context.get_current()


def _resolve_as_child_of(config: Any) -> otel_context.Context | None:
    def resolve() -> otel_context.Context | None:
        var_child_runnable_config.set(config)
        return parents.parent_context()

    return contextvars.copy_context().run(resolve)


def emit_event(
    emitter: Emitter,
    name: str,
    build: Callable[[Span], dict[str, Any]],
    ctx: otel_context.Context,
    links: Sequence[Link] = (),
) -> Span | None:
    """Audit event ``name`` on the step span of ``ctx``; on a short child span when that span has ended.

    langgraph evaluates a branch after its node's callback run has ended: the event then rides
    a short span named after it, so it is never dropped for want of a span.
    """
    return emit_audit_event(emitter.tracer, name, build, ctx, links)


def interrupt_id_of(interrupt: Any, task_id: str | None) -> str:
    """The id langgraph gives an ``Interrupt``, in every release we support.

    ``id`` since langgraph 0.6, ``interrupt_id`` (a hash of ``ns``) in 0.4 and 0.5; 0.3 has
    neither, and its ``ns`` (the interrupted task's checkpoint namespace) is the id, joined with
    ``|``. An interrupt with none of these (a 0.3 ``NodeInterrupt``) is known by its task.
    """
    for attr in ("id", "interrupt_id"):
        value = getattr(interrupt, attr, None)
        if isinstance(value, str) and value and value != "placeholder-id":
            return value
    ns = getattr(interrupt, "ns", None)
    if isinstance(ns, (list, tuple)) and ns:
        return "|".join(str(part) for part in ns)
    return task_id or "interrupt"


def interrupts_in(value: Any) -> list[Any]:
    """The ``Interrupt`` objects of an ``__interrupt__`` write (a tuple of them, or one in 0.3)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return [i for i in items if hasattr(i, "value")]
