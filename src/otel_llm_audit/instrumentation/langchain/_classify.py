"""Which LangChain chain runs become spans, and as what.

A LangGraph invocation produces many chain runs: the graph itself, one per node task, and
inside each task the node's own runnables, routing functions, prompt templates and the
``ChannelWrite`` / ``RunnableSequence`` plumbing (langgraph 0.x traces even the ``__start__``
pseudo-node). An audit trail that shows all of them is unreadable, so only these become spans:

* a top-level chain run (a compiled graph, an LCEL pipeline): ``invoke_workflow {name}``;
* a run whose ``lc_agent_name`` metadata names an agent not named by its parent: ``invoke_agent``;
* a LangGraph node task (metadata ``langgraph_node`` equal to the run's name, at the top of its
  task): ``step {node}``, except ``__start__`` / ``__end__`` and hidden ones;
* a named chain step outside any LangGraph node (an LCEL component of a workflow): ``step {name}``.

Everything inside a node task that is not a tool, retriever, model call, sub-graph or agent is
hidden, and so is LangChain's anonymous plumbing; children of hidden runs nest under the
nearest run that has a span. A hidden run under which node tasks start is a sub-graph: the
handler turns it into an agent span at that moment (:class:`~._handler.AuditCallbackHandler`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from otel_llm_audit.instrumentation.langchain._runs import Run, RunKind

#: LangChain's tag for runs that tracing UIs should not show (LangGraph's writes, ``__start__``).
HIDDEN_TAG = "langsmith:hidden"
_NODE_TAG_PREFIX = "graph:step:"
_PSEUDO_NODES = frozenset({"__start__", "__end__"})
#: Run names of plumbing: unnamed LCEL combinators and LangGraph's channel writes and routers.
_PLUMBING_PREFIXES = ("Runnable", "ChannelWrite", "ChannelRead", "Branch<")
_PLUMBING_NAMES = frozenset({"_write", "_route", "_tool_node", "__start__", "__end__", "<lambda>"})


def is_hidden(tags: Sequence[str] | None) -> bool:
    return bool(tags) and HIDDEN_TAG in tags  # type: ignore[operator]


def is_node_task(name: str, tags: Sequence[str] | None, metadata: Mapping[str, Any], parent: Run | None) -> bool:
    """Whether this run is a LangGraph node task itself (not a runnable inside one).

    Runs inside a task inherit its ``langgraph_node`` metadata, so the name must match too,
    and the run must open the task: LangGraph tags task runs ``graph:step:N`` (not inherited),
    and a task's checkpoint namespace differs from its parent's.
    """
    if metadata.get("langgraph_node") != name:
        return False
    if tags and any(tag.startswith(_NODE_TAG_PREFIX) for tag in tags):
        return True
    task_ns = metadata.get("langgraph_checkpoint_ns")
    return parent is not None and task_ns is not None and parent.task_ns != task_ns


def classify_chain(
    name: str,
    tags: Sequence[str] | None,
    metadata: Mapping[str, Any],
    parent: Run | None,
    node_task: bool,
) -> RunKind:
    """What a chain run becomes (see the module docstring)."""
    if node_task:
        return RunKind.HIDDEN if name in _PSEUDO_NODES or is_hidden(tags) else RunKind.NODE
    agent = metadata.get("lc_agent_name")
    if isinstance(agent, str) and agent and (parent is None or parent.agent_name != agent):
        return RunKind.AGENT
    if "langgraph_node" in metadata:
        return RunKind.HIDDEN  # a node's internals: its model calls, tools and sub-graphs still show
    if parent is None:
        return RunKind.WORKFLOW
    if is_hidden(tags) or name in _PLUMBING_NAMES or name.startswith(_PLUMBING_PREFIXES):
        return RunKind.HIDDEN
    return RunKind.STEP
