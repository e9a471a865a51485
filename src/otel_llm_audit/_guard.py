"""Never break the host application.

Every piece of our code that runs inside an application's call to a provider SDK goes
through :func:`report_internal_error`: the exception is logged once per place (so a bug
that fires on every call does not flood the log), counted in a metric, and swallowed.
The SDK's own results and exceptions are never touched by this module.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import Counter

from otel_llm_audit import semconv

logger = logging.getLogger("otel_llm_audit")

_lock = threading.Lock()
_counts: Counter[str] = Counter()
_counter_instrument: object | None = None


def report_internal_error(component: str, exc: BaseException) -> None:
    """Log (once per component) and count an exception raised inside otel-llm-audit."""
    with _lock:
        _counts[component] += 1
        first = _counts[component] == 1
    if first:
        logger.warning(
            "otel-llm-audit: internal error in %s; the application call is unaffected "
            "(further errors here are counted, not logged)",
            component,
            exc_info=exc,
        )
    else:
        logger.debug("otel-llm-audit: internal error in %s", component, exc_info=exc)
    counter = _counter_instrument
    if counter is not None:
        with contextlib.suppress(Exception):  # a broken meter must not matter either
            counter.add(1, {semconv.LLM_AUDIT_ERROR_COMPONENT: component})  # type: ignore[attr-defined]


def internal_error_counts() -> dict[str, int]:
    """How many internal errors each component swallowed (for tests and diagnostics)."""
    with _lock:
        return dict(_counts)


def reset_internal_error_counts() -> None:
    """Forget the counts and the logged-once state (tests use this)."""
    with _lock:
        _counts.clear()


def set_error_counter(counter: object | None) -> None:
    """Install the metric counter that mirrors the internal error counts."""
    global _counter_instrument
    _counter_instrument = counter
