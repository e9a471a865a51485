"""Rules that watch completed spans and add policy events to them: budgets, anomalies.

They run on the completion worker, once a span is complete (its cost, tokens and identity are
on it) and before masking. So an event lands on the very span that crossed a threshold or
broke a rule, is masked and sealed with it, and becomes an audit log record like every policy
event. When the completion queue is full, or after shutdown, a span is completed on the
application's thread: the rules then run there too, but nothing that waits (the budget ledger
is written later, by the worker).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from opentelemetry.sdk.trace import Event, ReadableSpan

from otel_llm_audit import _guard, semconv
from otel_llm_audit.processing.span_copy import replace_span


class SpanRule(Protocol):
    """Looks at each completed span, in the order spans end, and says which events it adds."""

    #: Reported to ``_guard`` when the rule raises (``budgets``, ``anomalies``).
    name: str

    def observe(self, span: ReadableSpan) -> Sequence[Event]:
        """Events to add to ``span`` (usually none)."""

    def shutdown(self) -> None:
        """Release what the rule holds (files, threads)."""


class PolicyStage:
    """Runs every rule over a batch of completed spans; a span that gets events is copied."""

    def __init__(self, rules: Sequence[SpanRule]) -> None:
        self.rules = tuple(rules)

    def apply(self, spans: list[ReadableSpan], *, defer: bool = False) -> list[ReadableSpan]:
        """``defer``: the spans were completed on an application's thread (a full queue, or after
        shutdown): rules that write somewhere (the budget ledger) only remember, for the worker."""
        if not self.rules or not spans:
            return spans
        added: list[list[Event]] = [[] for _ in spans]
        for rule in self.rules:
            batch = getattr(rule, "observe_batch", None)
            if batch is not None:  # one pass for the batch (the budgets: one ledger transaction)
                try:
                    for index, events in enumerate(batch(spans, defer=defer)):
                        added[index].extend(events)
                except Exception as err:  # a broken rule never costs the spans
                    _guard.report_internal_error(f"{rule.name}.observe", err)
                continue
            for index, span in enumerate(spans):
                try:
                    added[index].extend(rule.observe(span))
                except Exception as err:
                    _guard.report_internal_error(f"{rule.name}.observe", err)
        return [self._with_events(span, events) for span, events in zip(spans, added, strict=True)]

    @staticmethod
    def _with_events(span: ReadableSpan, added: list[Event]) -> ReadableSpan:
        if not added:
            return span
        attributes = dict(span.attributes or {})
        attributes[semconv.LLM_AUDIT_AUDIT_RECORD] = True  # the collector routes it to the SIEM
        return replace_span(span, attributes=attributes, events=[*span.events, *added])

    def shutdown(self) -> None:
        for rule in self.rules:
            try:
                rule.shutdown()
            except Exception as err:
                _guard.report_internal_error(f"{rule.name}.shutdown", err)
