"""The hand-off between a span ending on the caller's thread and its completion off it.

The audit processor *claims* our spans when they start. The emitter then knows, when the
call ends, that someone downstream will complete the span off the caller's thread, and hands
over the record instead of doing the work inline. The SDK gives processors a fresh
``ReadableSpan`` at end, not the live span, so claims are keyed by span context; the
processor removes each claim when its span ends, so nothing accumulates.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import Span

SCOPE_PREFIX = "otel_llm_audit"

_pending: dict[tuple[int, int], Any] = {}
_UNSET = object()


def _key(span: Any) -> tuple[int, int]:
    ctx = span.get_span_context()
    return (ctx.trace_id, ctx.span_id)


def claim(span: Span) -> None:
    """Called by the audit processor at span start: this span will be completed downstream."""
    _pending[_key(span)] = _UNSET


def is_claimed(span: Span) -> bool:
    return _key(span) in _pending


def hand_over(span: Span, completion: Any) -> None:
    """Leave the work of completing ``span`` to the processor that claimed it."""
    _pending[_key(span)] = completion


def take(span: Any) -> Any | None:
    """The completion handed over for ``span`` (``None`` if there is none); forgets the claim."""
    completion = _pending.pop(_key(span), None)
    return None if completion is _UNSET else completion


def outstanding() -> int:
    """Claims not yet released (for tests: a finished workload leaves zero)."""
    return len(_pending)
