"""The LangGraph-specific part of the LangChain instrumentor: checkpoints, decisions, interrupts.

LangChain's callbacks show every node, tool and model call of a graph, but not what makes a
LangGraph run auditable as a workflow: the state it saved and read back (checkpoints), the
branch each conditional edge took, and the pauses for a human with the answers that resumed
them. ``LangChainInstrumentor`` calls :func:`install` when it instruments and :func:`uninstall`
when it stops; both are idempotent, and every patch is undone by :func:`uninstall`.

What is wrapped (each where it lives in the installed langgraph, from 0.3 to 1.x):

- ``SyncPregelLoop.__init__`` / ``AsyncPregelLoop.__init__``: the loop gets a proxy of its
  saver; ``Pregel.update_state`` / ``aupdate_state``: the application's own state edits
  (:mod:`._langgraph_checkpoints`).
- ``Branch._finish`` / ``BranchSpec._finish``: decisions (:mod:`._langgraph_decisions`).
- ``GraphInterrupt.__init__`` and the runner's ``run_with_retry`` / ``arun_with_retry``: pauses
  and reviews (:mod:`._langgraph_interrupts`).

A langgraph that is not installed, or a release that moved one of these, costs that feature
only (logged at debug level); the rest still works.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from otel_llm_audit import _guard
from otel_llm_audit.emitter.spans import Emitter

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_patched: list[tuple[Any, str]] = []


def _targets() -> list[tuple[tuple[str, ...], str, Callable[..., Any]]]:
    """(candidate modules, attribute path, wrapper) for every patch, newest module first."""
    from otel_llm_audit.instrumentation.langchain import _langgraph_checkpoints as checkpoints
    from otel_llm_audit.instrumentation.langchain import _langgraph_decisions as decisions
    from otel_llm_audit.instrumentation.langchain import _langgraph_interrupts as interrupts

    loops = ("langgraph.pregel._loop", "langgraph.pregel.loop")
    pregel = ("langgraph.pregel.main", "langgraph.pregel")
    runners = ("langgraph.pregel._runner", "langgraph.pregel.runner")
    return [
        (loops, "SyncPregelLoop.__init__", checkpoints.loop_init),
        (loops, "AsyncPregelLoop.__init__", checkpoints.loop_init),
        (pregel, "Pregel.update_state", checkpoints.update_state),
        (pregel, "Pregel.aupdate_state", checkpoints.aupdate_state),
        (("langgraph.graph._branch",), "BranchSpec._finish", decisions.branch_finish),
        (("langgraph.graph.branch", "langgraph.graph.graph"), "Branch._finish", decisions.branch_finish),
        (("langgraph.errors",), "GraphInterrupt.__init__", interrupts.graph_interrupt_init),
        (runners, "run_with_retry", interrupts.run_with_retry),
        (runners, "arun_with_retry", interrupts.arun_with_retry),
    ]


def install(emitter: Emitter) -> None:
    """Start recording LangGraph checkpoints, decisions, interrupts and reviews to ``emitter``."""
    from otel_llm_audit.instrumentation.langchain import _langgraph_common as common

    with _lock:
        common.STATE.emitter = emitter
        if _patched:
            return
        try:
            targets = _targets()
        except ImportError as err:  # langchain-core missing: nothing of LangGraph can run
            logger.debug("otel-llm-audit: LangGraph features not installed: %s", err)
            return
        for modules, attribute, wrapper in targets:
            _patch(modules, attribute, wrapper)


def uninstall() -> None:
    """Undo every patch; loops and tasks already running pass through from now on."""
    with _lock:
        for owner, name in reversed(_patched):
            try:
                unwrap(owner, name)
            except Exception:
                logger.debug("otel-llm-audit: could not unwrap %s.%s", owner, name, exc_info=True)
        _patched.clear()
        try:
            from otel_llm_audit.instrumentation.langchain import _langgraph_common as common
            from otel_llm_audit.instrumentation.langchain import _langgraph_interrupts as interrupts
        except ImportError:
            return
        common.STATE.emitter = None
        common.TASKS.clear()
        interrupts.reset()


def _patch(modules: tuple[str, ...], attribute: str, wrapper: Callable[..., Any]) -> None:
    """Wrap ``attribute`` in the first of ``modules`` that has it (one patch per target)."""
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        owner: Any = module
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part, None)
        if owner is None or not hasattr(owner, name):
            continue
        try:
            wrap_function_wrapper(owner, name, wrapper)
        except Exception as err:  # one feature lost, the others (and their undo) kept
            _guard.report_internal_error(f"langgraph.patch {attribute}", err)
            return
        _patched.append((owner, name))
        return
    logger.debug("otel-llm-audit: LangGraph %s not found in %s; that feature is off", attribute, modules)
