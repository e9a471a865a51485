"""The hand-off between a span ending on the caller's thread and its completion off it.

The audit processor *claims* our spans when they start. The emitter then knows, when the
call ends, that someone downstream will complete the span off the caller's thread, and hands
over the record instead of doing the work inline. The SDK gives processors a fresh
``ReadableSpan`` at end, not the live span, so claims are keyed by span context; the
processor removes each claim when its span ends, so nothing accumulates.
"""

from __future__ import annotations

import weakref
from typing import Any

from opentelemetry.trace import Span

SCOPE_PREFIX = "otel_llm_audit"

_pending: dict[tuple[int, int], Any] = {}


class _Claim:
    """A claim not yet handed a completion; remembers which processor made it."""

    __slots__ = ("claimer",)

    def __init__(self, claimer: Any) -> None:
        self.claimer = claimer


def _key(span: Any) -> tuple[int, int]:
    ctx = span.get_span_context()
    return (ctx.trace_id, ctx.span_id)


def claim(span: Span, claimer: Any = None) -> None:
    """Called by the audit processor at span start: this span will be completed downstream."""
    _pending[_key(span)] = _Claim(claimer)


def is_claimed(span: Span) -> bool:
    return _key(span) in _pending


def claimer_of(span: Span) -> Any | None:
    """The processor that claimed ``span`` (and has not yet been handed its completion)."""
    found = _pending.get(_key(span))
    return found.claimer if isinstance(found, _Claim) else None


def hand_over(span: Span, completion: Any) -> None:
    """Leave the work of completing ``span`` to the processor that claimed it."""
    _pending[_key(span)] = completion


def take(span: Any) -> Any | None:
    """The completion handed over for ``span`` (``None`` if there is none); forgets the claim."""
    completion = _pending.pop(_key(span), None)
    return None if isinstance(completion, _Claim) else completion


def outstanding() -> int:
    """Claims not yet released (for tests: a finished workload leaves zero)."""
    return len(_pending)


# Pipelines that build our spans themselves, off the caller's thread ---------------------
#
# When configure() (or AuditSpanProcessor.attach_to) installed our processor on a provider,
# the emitter does not create an SDK span on the caller's thread at all: it draws the span
# context from the provider's own id generator and sampler, lets the HTTP call run under it,
# and submits the finished call to the processor, whose worker builds the ReadableSpan and
# hands it to every processor of the provider. Keyed by the provider's span processor (the
# object every SDK tracer of that provider shares).

_pipelines: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def register_pipeline(span_processor: Any, pipeline: Any) -> None:
    """Declare that ``pipeline`` completes the spans of tracers sharing ``span_processor``."""
    _pipelines[span_processor] = pipeline


def pipeline_for(span_processor: Any) -> Any | None:
    """The registered pipeline for a tracer's span processor, if any."""
    try:
        return _pipelines.get(span_processor)
    except TypeError:
        return None
