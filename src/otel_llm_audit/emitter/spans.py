"""The span lifecycle of an LLM call: what the caller's thread pays, and what it does not.

On the caller's thread: start the span with the sampling-relevant attributes and the audit
identity (so the HTTP span nests under it and ``traceparent`` carries its id), then at the
end set the status and end it. Everything else (walking the response, JSON, hashing, cost,
metrics) is :meth:`Emitter.complete`, which the audit processor runs on its worker thread.
In a pipeline without our processor the same completion runs inline before the span ends,
so the span is complete either way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from otel_llm_audit import _guard, semconv
from otel_llm_audit._version import __version__
from otel_llm_audit.config import Settings, effective_settings, get_settings
from otel_llm_audit.context import AuditIdentity, current_identity
from otel_llm_audit.emitter import gate, handoff, parents
from otel_llm_audit.emitter.attributes import (
    SpanContent,
    error_info,
    llm_call_content,
    span_name,
    start_attributes,
)
from otel_llm_audit.emitter.deferred import DeferredSpan, light_span
from otel_llm_audit.emitter.mcp import McpSpan, start_mcp
from otel_llm_audit.emitter.metrics import MetricsRecorder
from otel_llm_audit.emitter.operations import Step, StepSpan, start_step
from otel_llm_audit.records import LLMCall, McpRequest


@dataclass(slots=True)
class PendingCompletion:
    """What the caller's thread hands to the audit processor when a call ends."""

    emitter: Emitter
    record: LLMCall
    identity: AuditIdentity | None

    def complete(self, content_allowed: bool = True, masked_downstream: bool = False) -> SpanContent:
        return self.emitter.complete(
            self.record, self.identity, content_allowed=content_allowed, masked_downstream=masked_downstream
        )


class LLMCallSpan:
    """One LLM call in flight: its span, its record, and an end that happens exactly once."""

    __slots__ = ("_ended", "_lock", "deferred", "emitter", "identity", "pipeline", "record", "span", "state")

    def __init__(self, emitter: Emitter, span: Span, record: LLMCall, identity: AuditIdentity | None) -> None:
        self.emitter = emitter
        self.span = span
        self.record = record
        self.identity = identity
        #: The capture module's own state for this call (request snapshot, response, chunks).
        self.state: Any = None
        #: Set on the fast path: the span is built off the caller's thread by ``pipeline``.
        self.deferred: DeferredSpan | None = None
        self.pipeline: Any = None
        self._ended = False
        self._lock = threading.Lock()

    @property
    def ended(self) -> bool:
        return self._ended

    def end(self, exc: BaseException | None = None) -> None:
        """End the span once, whoever calls (stream end, close, garbage collection)."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        try:
            self.emitter.finish(self, exc)
        except Exception as err:  # never let our bookkeeping reach the application
            _guard.report_internal_error("emitter.finish", err)
            if self.deferred is None and self.span.is_recording():  # never leave a span (and its claim) open
                try:
                    self.span.end()
                except Exception as end_err:
                    _guard.report_internal_error("emitter.end", end_err)


class Emitter:
    """Turns records into spans and metrics, following the GenAI conventions."""

    def __init__(
        self,
        scope_name: str,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(scope_name, __version__, tracer_provider, schema_url=semconv.SCHEMA_URL)
        self._scope = InstrumentationScope(scope_name, __version__, semconv.SCHEMA_URL)
        self._meter_provider = meter_provider
        self._metrics: MetricsRecorder | None = None
        self._metrics_lock = threading.Lock()
        self._recorder()  # create the instruments now, while the meter provider is surely alive

    @property
    def tracer(self) -> trace.Tracer:
        """The tracer of this emitter's instrumentation scope (for spans of an integration's own)."""
        return self._tracer

    def start_llm_call(
        self, record: LLMCall, *, context: otel_context.Context | None = None, enforce: bool = False
    ) -> LLMCallSpan | None:
        """Start the span of a call; ``None`` when nothing records it (sampled out, no SDK).

        ``context`` is the parent, for a framework that reports a model call it ran itself (a
        LangChain chat model no provider instrumentor saw); by default the framework resolvers
        and then the current context decide (:mod:`otel_llm_audit.emitter.parents`).
        ``enforce`` (the provider instrumentors, which run before the request is sent): ask the
        budget gate first, and raise :class:`~otel_llm_audit.errors.BudgetExceededError` after
        recording the blocked call, instead of returning, when a budget that enforces is exhausted.
        """
        # Identity goes on at completion: the sampling-relevant attributes alone are set at start.
        identity = current_identity()
        if context is None:
            context = parents.parent_context(llm_call=True)
        if enforce:
            gate_in_force = gate.current()
            if gate_in_force is not None:
                self._ask_gate(gate_in_force, record, identity, context)
        return self._start_llm_call(record, identity, context)

    def _ask_gate(
        self,
        gate_in_force: gate.CallGate,
        record: LLMCall,
        identity: AuditIdentity | None,
        context: otel_context.Context | None,
    ) -> None:
        """Raise the gate's refusal, once the blocked call is recorded as an error span."""
        try:
            parent = trace.get_current_span(context).get_span_context()
            trace_id = parent.trace_id if parent.is_valid else None
            # The identity as the span will carry it: what the budgets count spend under.
            attributes = identity.attributes if identity is not None else {}
            refusal = gate_in_force.refuse(attributes, record.request_model, trace_id)
        except Exception as err:  # a broken check lets the call go, recorded as usual
            _guard.report_internal_error("budgets.check", err)
            return
        if refusal is None:
            return
        try:  # once refused, refused: recording it must not let the call through
            record.policy_events.append(gate_in_force.blocked_event(refusal))
            call = self._start_llm_call(record, identity, context)
            if call is not None:
                call.end(refusal)
        except Exception as err:
            _guard.report_internal_error("budgets.record_blocked", err)
        raise refusal

    def _start_llm_call(
        self, record: LLMCall, identity: AuditIdentity | None, context: otel_context.Context | None
    ) -> LLMCallSpan | None:
        attrs = start_attributes(record)
        name = span_name(record.operation, record.request_model)
        tracer = self._tracer
        if isinstance(tracer, SdkTracer):
            pipeline = handoff.pipeline_for(tracer.span_processor)
            if pipeline is not None:
                return self._start_deferred(tracer, pipeline, name, attrs, record, identity, context)
        span = tracer.start_span(name, context, kind=SpanKind.CLIENT, attributes=attrs, start_time=record.start_ns)
        if not span.is_recording():
            span.end()
            return None
        return LLMCallSpan(self, span, record, identity)

    def _start_deferred(
        self,
        tracer: SdkTracer,
        pipeline: Any,
        name: str,
        attrs: dict[str, Any],
        record: LLMCall,
        identity: AuditIdentity | None,
        parent_ctx: otel_context.Context | None,
    ) -> LLMCallSpan | None:
        """The fast path: a span context from the provider's own id generator and sampler, no SDK span."""
        ctx = parent_ctx or otel_context.get_current()
        parent: SpanContext | None = trace.get_current_span(ctx).get_span_context()
        if parent is not None and parent.is_valid:
            trace_id = parent.trace_id
        else:
            parent = None
            trace_id = tracer.id_generator.generate_trace_id()
        decision = tracer.sampler.should_sample(ctx, trace_id, name, SpanKind.CLIENT, attrs)
        if not decision.decision.is_recording():  # type: ignore[no-untyped-call]
            return None
        sampled = decision.decision.is_sampled()  # type: ignore[no-untyped-call]
        flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        context = SpanContext(
            trace_id,
            tracer.id_generator.generate_span_id(),
            is_remote=False,
            trace_flags=flags,
            trace_state=decision.trace_state,
        )
        extra = decision.attributes
        if extra and len(extra) != len(attrs):  # a sampler that adds attributes of its own
            attrs.update(extra)
        call = LLMCallSpan(self, light_span(context), record, identity)
        call.deferred = DeferredSpan(name, context, parent, attrs, self._scope, tracer, None)
        call.pipeline = pipeline
        return call

    def finish(self, call: LLMCallSpan, exc: BaseException | None) -> None:
        """Set the status, hand the record over (or complete inline), end the span."""
        record = call.record
        span = call.span
        record.end_ns = time.time_ns()
        if exc is not None and record.error is None:
            record.error = error_info(exc)
        deferred = call.deferred
        if deferred is not None:
            deferred.completion = PendingCompletion(self, record, call.identity)
            call.pipeline.submit(deferred)
            return
        if record.error is not None:
            span.set_status(Status(StatusCode.ERROR, record.error.message))
            span.set_attribute(semconv.ERROR_TYPE, record.error.type)
        if handoff.is_claimed(span):
            handoff.hand_over(span, PendingCompletion(self, record, call.identity))
        else:
            content = self.complete(record, call.identity)
            span.set_attributes(content.attributes)
            for event in content.events:
                span.add_event(event.name, event.attributes, event.timestamp)
        span.end(end_time=record.end_ns)

    def complete(
        self,
        record: LLMCall,
        identity: AuditIdentity | None,
        *,
        content_allowed: bool = True,
        masked_downstream: bool = False,
    ) -> SpanContent:
        """Everything that describes a finished call, and its metrics. Safe to run on any thread.

        ``masked_downstream`` says a masking stage will see the span before any exporter; in
        ``masked`` mode content is recorded only then (else as hashes: never unmasked).
        """
        settings = effective_settings(get_settings(), content_allowed=content_allowed, masked=masked_downstream)
        try:
            record.resolve()
        except Exception as err:
            _guard.report_internal_error("capture.resolve", err)
            record.notes.append(f"response could not be read: {type(err).__name__}")
        content = llm_call_content(record, settings, _prices(settings))
        if identity is not None:
            content.attributes.update(identity.attributes)
        try:
            self._recorder().record_llm_call(record, identity, content.cost_usd)
        except Exception as err:
            _guard.report_internal_error("emitter.metrics", err)
        return content

    def start_step(
        self,
        record: Step,
        *,
        context: otel_context.Context | None = None,
        links: Sequence[trace.Link] | None = None,
        start_time: int | None = None,
    ) -> StepSpan:
        """Start an agent, tool, workflow, retrieval or memory step.

        Use the result as a context manager around the step, or call its ``end()`` when the
        step ends (framework callbacks do: start and end arrive as separate calls).
        """
        return start_step(self._tracer, record, context=context, links=links, start_time=start_time)

    def start_mcp(
        self,
        record: McpRequest,
        *,
        context: otel_context.Context | None = None,
        links: Sequence[trace.Link] | None = None,
        merge_tool_spans: bool = True,
    ) -> McpSpan:
        """Start recording an MCP request or notification (see :func:`~otel_llm_audit.emitter.mcp.start_mcp`)."""
        return start_mcp(
            self._tracer,
            record,
            context=context,
            links=links,
            merge_tool_spans=merge_tool_spans,
            metrics=self._recorder().record_mcp_duration,
        )

    def _recorder(self) -> MetricsRecorder:
        recorder = self._metrics
        if recorder is None:
            with self._metrics_lock:
                if self._metrics is None:
                    self._metrics = MetricsRecorder(self._meter_provider)
                recorder = self._metrics
        return recorder


_price_cache: dict[tuple[str, ...], Any] = {}
_price_lock = threading.Lock()
_NO_TABLE = object()


def load_prices(settings: Settings) -> Any:
    """Load the price table for ``settings`` now (``configure()`` does), raising if it is broken.

    The table is kept for the calls, so the worker does not parse the YAML a second time
    on the first call (about half a second on these machines).
    """
    from otel_llm_audit.processing.cost import PriceTable

    table = PriceTable.load(*settings.price_files)
    with _price_lock:
        _price_cache[settings.price_files] = table
    return table


def _prices(settings: Settings) -> Any:
    """The price table for these settings, loaded once (never fetched from the network).

    ``configure()`` already refused a broken override file; if one breaks later (edited on
    disk), calls are recorded without cost and the failure is reported once, not per call.
    """
    key = settings.price_files
    table = _price_cache.get(key)
    if table is None:
        from otel_llm_audit.processing.cost import PriceTable

        with _price_lock:
            table = _price_cache.get(key)
            if table is None:
                try:
                    table = PriceTable.load(*key)
                except Exception as err:
                    _guard.report_internal_error("pricing.load", err)
                    table = _NO_TABLE
                _price_cache[key] = table
    return None if table is _NO_TABLE else table
