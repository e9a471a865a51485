"""Which span a new LLM call or step nests under when an agent framework is running it.

Agent frameworks (LangChain / LangGraph, the OpenAI Agents SDK) tell us about their steps
through callbacks and tracing processors, not by running the step inside a context we
control. Attaching an OpenTelemetry context in a "start" callback and detaching it in the
"end" callback breaks as soon as the two run in different asyncio tasks or threads (the
"Failed to detach context" errors and orphan root spans peers suffer from). So we never
attach there. Instead each framework integration registers a *resolver*: a function that
reads the framework's own notion of "the step running here" (a context variable the framework
itself sets and propagates into its tasks and threads) and returns our span for that step.

When one of our spans starts (an LLM call, a tool, an MCP request), the emitter asks the
resolvers and parents the span under the framework's step when that step is more recent than
the ambient OpenTelemetry span. Spans the application started inside the step remain the
parent (they are more recent still). With no framework instrumented, the cost on the
caller's thread is one empty-list check.

A resolver may come with an *LLM-call* variant, consulted instead of it when the span about
to start is a provider's LLM span: the framework learns that a model call of ours runs inside
its step (LangChain: the chat model run it would otherwise report itself is covered, so no
second LLM span is made). Every LLM-call variant is consulted for every LLM span, even after
a parent was chosen, so none misses a call it should know about.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from otel_llm_audit import _guard

#: Returns our span for the framework step running in the current thread or task, or ``None``.
Resolver = Callable[[], Span | None]

_resolvers: list[Resolver] = []
#: LLM-call variants of registered resolvers (see the module docstring).
_llm_call_resolvers: dict[Resolver, Resolver] = {}


def register(resolver: Resolver, *, llm_call_resolver: Resolver | None = None) -> None:
    """Consult ``resolver`` when our spans start (a framework integration's ``instrument``).

    ``llm_call_resolver``, when given, is consulted instead for provider LLM spans.
    """
    if resolver not in _resolvers:
        _resolvers.append(resolver)
    if llm_call_resolver is not None:
        _llm_call_resolvers[resolver] = llm_call_resolver


def unregister(resolver: Resolver) -> None:
    """Stop consulting ``resolver`` (the integration's ``uninstrument``)."""
    if resolver in _resolvers:
        _resolvers.remove(resolver)
    _llm_call_resolvers.pop(resolver, None)


def parent_context(*, llm_call: bool = False) -> otel_context.Context | None:
    """The context a new span of ours should start in, or ``None`` to use the current one.

    ``llm_call``: the span is a provider's LLM span (resolvers' LLM-call variants are asked).
    """
    if not _resolvers:
        return None
    ctx = otel_context.get_current()
    ambient = trace.get_current_span(ctx)
    chosen: Span | None = None
    for resolver in tuple(_resolvers):
        variant = _llm_call_resolvers.get(resolver) if llm_call else None
        if chosen is not None and variant is None:
            continue  # a parent is chosen: only LLM-call variants still need to hear of the call
        try:
            step = (variant or resolver)()
        except Exception as err:
            _guard.report_internal_error("emitter.parent_resolver", err)
            continue
        if chosen is None and step is not None and _more_recent(step, ambient):
            chosen = step
    return trace.set_span_in_context(chosen, ctx) if chosen is not None else None


def _more_recent(step: Span, ambient: Span) -> bool:
    """Whether ``step`` should be the parent rather than the ambient span.

    The framework's step wins when there is no ambient span, or when the ambient span started
    before it (the application's request span around the whole workflow). An ambient span that
    started inside the step (the application's own span in a tool, an LLM call in progress) is
    the closer parent and is kept.
    """
    if step is ambient or not step.get_span_context().is_valid:
        return False
    ambient_ctx = ambient.get_span_context()
    if not ambient_ctx.is_valid:
        return True
    if ambient_ctx.span_id == step.get_span_context().span_id:
        return False
    step_start = getattr(step, "start_time", None)
    ambient_start = getattr(ambient, "start_time", None)
    if step_start is None or ambient_start is None:
        return False
    return bool(step_start >= ambient_start)
