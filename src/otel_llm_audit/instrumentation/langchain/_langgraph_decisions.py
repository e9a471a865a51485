"""Decision points: which branch a conditional edge took, among which options.

``add_conditional_edges(source, path, path_map)`` compiles to a branch object (``Branch`` in
langgraph 0.3 to 0.5, ``BranchSpec`` since 0.6) whose ``_finish(writer, input, result, config)``
turns the path function's answer into destinations, for sync and async graphs alike. We wrap
``_finish``: after it succeeds, the destinations are known and ``config`` is the source node's
(its metadata names the node, its callbacks name the node's run). The ``llm_audit.decision``
event goes on our span of the source node. In langgraph 0.6+ the node's callback run has
already ended when its branches are evaluated; should our span for it have ended too, the
event rides a short child span of the node (see :func:`~._langgraph_common.emit_event`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import trace

from otel_llm_audit import _guard, semconv
from otel_llm_audit.emitter.operations import decision_attributes
from otel_llm_audit.instrumentation.langchain import _langgraph_common as common
from otel_llm_audit.records import Decision

#: Branches langgraph adds itself (0.3 routes ``Command(goto=...)`` through one on every node).
_INTERNAL_PATHS = frozenset({"_control_branch"})
#: Names that say nothing about the path function (a lambda, an anonymous runnable).
_ANONYMOUS = frozenset({"<lambda>", "RunnableLambda", "RunnableCallable", "condition", "RunnableSequence"})


def branch_finish(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """wrapt wrapper of ``Branch._finish`` / ``BranchSpec._finish``."""
    result = wrapped(*args, **kwargs)
    emitter = common.STATE.emitter
    if emitter is not None:
        try:
            _record(emitter, instance, args, kwargs)
        except Exception as err:
            _guard.report_internal_error("langgraph.decision", err)
    return result


def _record(emitter: Any, branch: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    names = ("writer", "input", "result", "config")
    given = dict(zip(names, args, strict=False))
    given.update({k: v for k, v in kwargs.items() if k in names})
    config = given.get("config")
    path_name = getattr(getattr(branch, "path", None), "name", None)
    if path_name in _INTERNAL_PATHS:
        return
    chosen = destinations(given.get("result"), getattr(branch, "ends", None))
    if not chosen:
        return
    source = common.metadata(config).get("langgraph_node")
    point = path_name if isinstance(path_name, str) and path_name not in _ANONYMOUS else f"{source}.route"
    ctx = common.step_context(config)
    decision = Decision(
        point=point,
        chosen=chosen,
        options=options(getattr(branch, "ends", None)),
        agent_name=_agent_name(trace.get_current_span(ctx)),
    )
    common.emit_event(emitter, semconv.EVENT_LLM_AUDIT_DECISION, lambda span: decision_attributes(decision, span), ctx)


def destinations(result: Any, ends: Any) -> list[str]:
    """The node names the path's answer leads to (``Send`` packets by their node)."""
    items: Sequence[Any] = result if isinstance(result, (list, tuple)) else [result]
    out = []
    for item in items:
        node = getattr(item, "node", None)  # a Send
        if isinstance(node, str):
            out.append(node)
        elif isinstance(ends, Mapping) and item in ends:
            out.append(str(ends[item]))
        elif item is not None:
            out.append(str(item))
    return out


def options(ends: Any) -> list[str] | None:
    """The destinations the edge declared (``path_map`` values or the path's ``Literal`` hint)."""
    if not isinstance(ends, Mapping) or not ends:
        return None
    return list(dict.fromkeys(str(v) for v in ends.values()))


def _agent_name(span: Any) -> str | None:
    """The agent's name when the source node's span is an agent's (``invoke_agent``)."""
    attrs = getattr(span, "attributes", None)
    if not isinstance(attrs, Mapping):
        return None
    if attrs.get(semconv.GEN_AI_OPERATION_NAME) != semconv.GenAiOperationNameValues.INVOKE_AGENT:
        return None
    name = attrs.get(semconv.GEN_AI_AGENT_NAME)
    return name if isinstance(name, str) else None
