"""Spans built after the fact, off the caller's thread.

The caller's thread only draws a span context (ids from the provider's id generator, the
decision from its sampler) and runs the call under a non-recording span carrying it, so the
HTTP span nests under it and ``traceparent`` carries its id. When the call ends, a
:class:`DeferredSpan` goes to the audit processor's worker, which completes the record and
builds the finished ``ReadableSpan`` here, then hands it to the provider's processors as the
SDK would have at ``span.end()``. The SDK span lifecycle costs the caller ~60 us per call on
these machines; this path costs a few.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

from otel_llm_audit import semconv
from otel_llm_audit.emitter.attributes import AttributeValue, SpanContent

_LIMITS = SpanLimits()  # from OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT / OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT


@dataclass(slots=True)
class DeferredSpan:
    """Everything needed to build the span later; the completion is the emitter's ``PendingCompletion``."""

    name: str
    context: SpanContext
    parent: SpanContext | None
    start_attributes: dict[str, AttributeValue]
    scope: InstrumentationScope
    tracer: Any  # the SDK Tracer: its resource, and its span processor to hand the span to
    completion: Any

    def build(self, content: SpanContent) -> ReadableSpan:
        """The finished span: start attributes, completed attributes and events, status."""
        record = self.completion.record
        merged: dict[str, Any] = dict(self.start_attributes)
        merged.update(content.attributes)
        status = Status(StatusCode.UNSET)
        if record.error is not None:
            merged[semconv.ERROR_TYPE] = record.error.type
            status = Status(StatusCode.ERROR, record.error.message)
        end_ns = record.end_ns or record.start_ns
        return ReadableSpan(
            name=self.name,
            context=self.context,
            parent=self.parent,
            resource=self.tracer.resource,
            attributes=bounded(merged),
            events=[Event(e.name, e.attributes, e.timestamp or end_ns) for e in content.events],
            kind=SpanKind.CLIENT,
            status=status,
            start_time=record.start_ns,
            end_time=end_ns,
            instrumentation_scope=self.scope,
        )

    def publish(self, span: ReadableSpan) -> None:
        """Hand the finished span to the provider's processors, as ``span.end()`` would."""
        self.tracer.span_processor.on_end(span)


def bounded(attributes: dict[str, Any]) -> Any:
    """The attributes as the SDK would keep them on a live span.

    Our values are already valid attribute types, so when no limit can bite (the defaults: 128
    attributes, no length limit) the dict is used as it is; otherwise the SDK's own
    ``BoundedAttributes`` applies the configured limits.
    """
    if _LIMITS.max_span_attribute_length is None and len(attributes) <= (_LIMITS.max_span_attributes or 0):
        return attributes
    return BoundedAttributes(
        maxlen=_LIMITS.max_span_attributes,
        attributes=attributes,
        immutable=True,
        max_value_len=_LIMITS.max_span_attribute_length,
    )


class LightSpan(trace.NonRecordingSpan):
    """A stand-in for one of our spans: carries its context, records nothing.

    A class of its own so that the audit sampler, which cannot ask a non-recording span for
    its instrumentation scope, still knows a child's parent is ours (and keeps the child, the
    HTTP span of an LLM call, when the application's sampler would drop it).
    """


def light_span(context: SpanContext) -> trace.Span:
    """The stand-in the call runs under: carries the context, records nothing."""
    return LightSpan(context)
