"""The LangChain runs in flight, in a map that cannot grow without bound.

Every run LangChain reports (chains, graph nodes, tools, retrievers, model calls, and the
plumbing runs we hide) has an entry from its start callback to its end callback: the entry
holds our span for it, if it has one, and its parent entry, so a child finds the span it
nests under from ``parent_run_id`` alone.

Runs whose end never comes (a ``graph.stream()`` generator the application parks and never
drains, a custom runnable that loses its error callback) would keep their entries forever;
peers' maps grow by megabytes per thousand such runs in long-lived services. So the map is
bounded twice, and what it drops is never silent:

* a count cap: past ``max_runs`` entries, the least recently active run is evicted;
* an idle limit: a run with no activity (its own callbacks, a child starting, a model call
  inside it) for ``idle_ttl_s`` seconds is evicted at the next insertion.

An evicted run is handed to ``on_evict``, which ends its span with ``error.type``
``abandoned`` (and reports a model call no provider span covered), so every run we started
is exported. A run's activity refreshes its ancestors too, so a long workflow whose steps
keep working is not evicted for being old.
"""

from __future__ import annotations

import contextlib
import enum
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from otel_llm_audit.emitter.operations import StepSpan

#: Default count cap: in-flight runs of a few hundred concurrent workflows fit comfortably.
DEFAULT_MAX_RUNS = 10_000
#: Default idle limit, in seconds: a run silent for an hour is taken as abandoned.
DEFAULT_IDLE_TTL_S = 3600.0


class RunKind(enum.Enum):
    """What a run becomes in the trace."""

    WORKFLOW = "workflow"  # a top-level chain run, usually a compiled graph: invoke_workflow
    AGENT = "agent"  # a nested graph or a run named as an agent: invoke_agent
    NODE = "node"  # a LangGraph node task: step {node}
    STEP = "step"  # a named chain step outside LangGraph: step {name}
    TOOL = "tool"  # execute_tool
    RETRIEVER = "retriever"  # retrieval
    LLM = "llm"  # a model call: a provider span covers it, or we emit one at its end
    HIDDEN = "hidden"  # plumbing (ChannelWrite, RunnableSequence, node internals): no span


@dataclass(slots=True)
class ModelCall:
    """What a chat model / LLM run needs to be reported if no provider span covers it."""

    operation: str
    messages: list[Any]
    invocation_params: dict[str, Any]
    metadata: dict[str, Any]
    thread_id: int
    covered: bool = False
    first_chunk_ns: int | None = None


@dataclass(slots=True, eq=False)
class Run:
    """One LangChain run in flight."""

    run_id: UUID
    parent_id: UUID | None
    parent: Run | None
    kind: RunKind
    name: str
    start_ns: int
    #: LangGraph position, from the run's metadata (inherited inside a node task).
    node: str | None = None
    graph_step: int | None = None
    task_ns: str | None = None
    #: ``lc_agent_name`` metadata: the agent this run belongs to.
    agent_name: str | None = None
    #: The thread id of the run's configuration (LangGraph threads are conversations).
    conversation_id: str | None = None
    #: Kept for a chain run that may turn out to be a graph (its delegation input).
    inputs: Any = None
    #: Whether LangGraph node tasks ran under this run (it is a compiled graph).
    is_graph: bool = False
    #: Whether this run is a graph that another graph's node or a tool ran (a delegation).
    delegated: bool = False
    step: StepSpan | None = None
    model: ModelCall | None = None
    #: (kind, target) of the hand-offs recorded in this node task (by its tools, or by itself).
    handoffs: set[tuple[str, str]] | None = None
    touched: float = field(default_factory=time.monotonic)

    def anchor(self) -> Run | None:
        """The nearest run, this one included, that has a span of ours (children nest under it)."""
        run: Run | None = self
        while run is not None and run.step is None:
            run = run.parent
        return run

    def node_task(self) -> Run | None:
        """The LangGraph node task this run is part of (this one included), if any."""
        run: Run | None = self
        while run is not None and run.kind is not RunKind.NODE:
            run = run.parent
        return run

    def agent(self) -> Run | None:
        """The nearest enclosing agent run (this one included)."""
        run: Run | None = self
        while run is not None and run.kind is not RunKind.AGENT:
            run = run.parent
        return run


class RunMap:
    """Run id -> :class:`Run`, bounded by count and idleness, safe to use from any thread."""

    def __init__(
        self,
        max_runs: int = DEFAULT_MAX_RUNS,
        idle_ttl_s: float | None = DEFAULT_IDLE_TTL_S,
        on_evict: Callable[[list[Run]], None] | None = None,
    ) -> None:
        if max_runs < 1:
            raise ValueError("max_runs must be at least 1")
        self.max_runs = max_runs
        self.idle_ttl_s = idle_ttl_s
        self._on_evict = on_evict
        self._runs: OrderedDict[UUID, Run] = OrderedDict()
        #: Model calls in flight by the run id they were started under (``None``: top level).
        self._models: dict[UUID | None, list[Run]] = {}
        self._lock = threading.Lock()
        #: How many runs were evicted since the map was made (for diagnostics and the benchmark).
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._runs)

    def add(self, run: Run) -> None:
        """Insert a run that just started, refresh its ancestors, evict what is over the bounds."""
        now = time.monotonic()
        run.touched = now
        victims: list[Run] = []
        with self._lock:
            runs = self._runs
            runs[run.run_id] = run
            self._refresh_ancestors(run.parent, now)
            if run.model is not None:
                self._models.setdefault(run.parent_id, []).append(run)
            while len(runs) > self.max_runs:
                victims.append(self._drop(runs.popitem(last=False)[1]))
            ttl = self.idle_ttl_s
            if ttl is not None:
                cutoff = now - ttl
                while runs:
                    oldest = next(iter(runs.values()))
                    if oldest.touched >= cutoff:
                        break
                    del runs[oldest.run_id]
                    victims.append(self._drop(oldest))
            self.evicted += len(victims)
        if victims and self._on_evict is not None:
            self._on_evict(victims)

    def get(self, run_id: UUID | None) -> Run | None:
        """The run, refreshed as active (with its ancestors), or ``None`` if unknown or evicted."""
        if run_id is None:
            return None
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None:
                self._refresh_ancestors(run, time.monotonic())
            return run

    def peek(self, run_id: UUID) -> Run | None:
        """The run without refreshing it (per-token callbacks: no lock, no reordering)."""
        return self._runs.get(run_id)

    def pop(self, run_id: UUID) -> Run | None:
        """Remove a run that ended; ``None`` if unknown (never seen, or evicted before)."""
        with self._lock:
            run = self._runs.pop(run_id, None)
            if run is not None:
                self._drop(run)
            return run

    def cover_model_call(self, parent_id: UUID | None, thread_id: int) -> None:
        """A provider span starts under ``parent_id``: the model run it serves needs no span of ours.

        The newest uncovered model run started under the same run is the one (several only run
        at once under one run when the application gathers them, and then each provider call
        covers one). With no LangChain run current, a top-level model run of this thread is.
        """
        with self._lock:
            if parent_id is not None and self._cover(self._models.get(parent_id), None):
                return
            self._cover(self._models.get(None), thread_id)

    @staticmethod
    def _cover(candidates: list[Run] | None, thread_id: int | None) -> bool:
        for run in reversed(candidates or ()):
            model = run.model
            if model is not None and not model.covered and (thread_id is None or model.thread_id == thread_id):
                model.covered = True
                return True
        return False

    def drain(self) -> list[Run]:
        """Remove and return every run in flight (uninstrument ends their spans)."""
        with self._lock:
            runs = list(self._runs.values())
            self._runs.clear()
            self._models.clear()
        return runs

    def _drop(self, run: Run) -> Run:
        """Forget the model-call index entry of a run leaving the map (lock held)."""
        if run.model is not None:
            siblings = self._models.get(run.parent_id)
            if siblings is not None:
                with contextlib.suppress(ValueError):
                    siblings.remove(run)
                if not siblings:
                    del self._models[run.parent_id]
        return run

    def _refresh_ancestors(self, run: Run | None, now: float) -> None:
        """Mark ``run`` and its ancestors active (lock held): evictions take the idlest first."""
        runs = self._runs
        while run is not None:
            if run.run_id in runs:
                runs.move_to_end(run.run_id)
                run.touched = now
            run = run.parent
