"""A changed copy of an ended span.

OpenTelemetry freezes a span when it ends, and other processors may hold the same object,
so every stage that changes a span after its end (completion, masking) builds a new
``ReadableSpan`` instead of touching the old one or its private fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Status

from otel_llm_audit.emitter.deferred import bounded


def replace_span(
    span: ReadableSpan,
    *,
    attributes: Mapping[str, Any] | None = None,
    events: Sequence[Event] | None = None,
    status: Status | None = None,
) -> ReadableSpan:
    """``span`` with some of its attributes, events or status replaced; the original is untouched.

    The attributes pass the SDK's limits again (``bounded``), as they would on a live span.
    """
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=bounded(dict(attributes)) if attributes is not None else span.attributes,
        events=list(events) if events is not None else span.events,
        links=span.links,
        kind=span.kind,
        status=status if status is not None else span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
