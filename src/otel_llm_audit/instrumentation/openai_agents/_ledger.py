"""Tool approvals across runs and processes: which pause a review answers.

A run that stops for a tool approval leaves a *pause*: the tool call id, and the traceparent
of the agent span that paused. The application approves or rejects the call on the SDK's
``RunState`` (maybe hours later, maybe in another process after ``to_string()`` /
``from_string()``), and resumes the run; the resumed run's first span then carries the
``llm_audit.human_review`` event and a ``resumes`` link to the paused span.

Pauses and reviews are keyed by the SDK's trace id, which a resumed run keeps (the SDK reads
it back from the ``RunState``). The ledger is bounded: pauses nobody answers do not grow it.
:meth:`ApprovalLedger.export` / :meth:`ApprovalLedger.load` carry the pauses of one trace in
the serialized ``RunState`` (see :mod:`._hooks`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanContext

from otel_llm_audit.emitter import links

#: Pauses remembered at most (oldest forgotten first); and traces with reviews waiting.
MAX_PAUSES = 10_000
MAX_WAITING = 10_000


@dataclass(frozen=True, slots=True)
class Pause:
    """A tool call that waited for approval, and the span that paused for it."""

    interrupt_id: str
    tool: str
    traceparent: str


@dataclass(frozen=True, slots=True)
class Review:
    """A reviewer's answer to a pause, waiting for the resumed run."""

    call_id: str | None
    tool: str
    action: str
    reason: str | None = None
    response: Any = None
    pause: Pause | None = None


def span_context_of(pause: Pause | None) -> SpanContext | None:
    """The paused span's context, from its W3C traceparent."""
    return links.span_context_of(pause.traceparent) if pause is not None else None


class ApprovalLedger:
    """Pauses by (SDK trace id, call id); reviews waiting for their run, by SDK trace id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pauses: OrderedDict[tuple[str, str], Pause] = OrderedDict()
        self._waiting: OrderedDict[str, list[Review]] = OrderedDict()

    def record_pause(self, trace_id: str, call_id: str, tool: str, paused: SpanContext) -> Pause:
        pause = Pause(interrupt_id=f"{trace_id}:{call_id}", tool=tool, traceparent=links.traceparent(paused))
        self._put_pause(trace_id, call_id, pause)
        return pause

    def _put_pause(self, trace_id: str, call_id: str, pause: Pause) -> None:
        with self._lock:
            self._pauses[(trace_id, call_id)] = pause
            self._pauses.move_to_end((trace_id, call_id))
            while len(self._pauses) > MAX_PAUSES:
                self._pauses.popitem(last=False)

    def pause(self, trace_id: str | None, call_id: str | None) -> Pause | None:
        if trace_id is None or call_id is None:
            return None
        return self._pauses.get((trace_id, call_id))

    def add_review(self, trace_id: str, review: Review) -> None:
        """A reviewer answered; the review waits for the run with this SDK trace id to resume."""
        with self._lock:
            self._waiting.setdefault(trace_id, []).append(review)
            self._waiting.move_to_end(trace_id)
            while len(self._waiting) > MAX_WAITING:
                self._waiting.popitem(last=False)

    def take_reviews(self, trace_id: str) -> list[Review]:
        """The reviews the resuming run must record (each once)."""
        if not self._waiting:
            return []
        with self._lock:
            return self._waiting.pop(trace_id, [])

    def export(self, trace_id: str) -> dict[str, Any] | None:
        """The pauses of one trace, as JSON for the serialized ``RunState`` (``None`` if none)."""
        with self._lock:
            pauses = {c: p for (t, c), p in self._pauses.items() if t == trace_id}
        if not pauses:
            return None
        return {
            "trace_id": trace_id,
            "pauses": {
                call_id: {"interrupt_id": p.interrupt_id, "tool": p.tool, "traceparent": p.traceparent}
                for call_id, p in pauses.items()
            },
        }

    def load(self, data: Any) -> None:
        """Remember the pauses a serialized ``RunState`` carried (written by :meth:`export`)."""
        if not isinstance(data, dict):
            return
        trace_id = data.get("trace_id")
        pauses = data.get("pauses")
        if not isinstance(trace_id, str) or not isinstance(pauses, dict):
            return
        for call_id, raw in pauses.items():
            if not isinstance(raw, dict):
                continue
            interrupt_id, tool, parent = raw.get("interrupt_id"), raw.get("tool"), raw.get("traceparent")
            if isinstance(interrupt_id, str) and isinstance(tool, str) and isinstance(parent, str):
                self._put_pause(trace_id, str(call_id), Pause(interrupt_id, tool, parent))
