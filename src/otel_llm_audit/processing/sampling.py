"""A sampler that never drops audit spans, whatever the application's own sampler decides.

An application that samples its traces (``TraceIdRatioBased(0.1)``, ``ParentBased(...)``,
``OTEL_TRACES_SAMPLER=traceidratio``) would otherwise lose nine LLM calls in ten from the audit
trail: the SDK asks the sampler before a span exists, and a dropped span is a
``NonRecordingSpan`` no processor ever sees. :class:`AuditSampler` sits in front of that
sampler and asks it first, then keeps (``RECORD_AND_SAMPLE``) what the audit trail needs:

- every span of ours: recognised by ``llm_audit.sdk.version`` among its start attributes
  (the sampler API is not told the instrumentation scope; the emitter puts that key on every
  span it starts, see :func:`otel_llm_audit.emitter.attributes.mark_ours`);
- a direct child of a sampled span of ours (the HTTP span of an LLM call), as ``ParentBased``
  would keep it, so that the call's ``traceparent`` goes out sampled and the child is not
  lost to a sampler that ignores parents (``traceidratio``, ``always_off``).

Everything else gets the application's sampler's decision, untouched. The delegate's
``trace_state`` is kept in every case (consistent-probability samplers write theirs there).
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from otel_llm_audit import _guard, semconv
from otel_llm_audit.emitter.deferred import LightSpan
from otel_llm_audit.emitter.handoff import SCOPE_PREFIX

#: The start attribute that marks a span as ours (an existing key: the version that produced it).
AUDIT_MARKER = semconv.LLM_AUDIT_SDK_VERSION


class AuditSampler(Sampler):
    """Delegates to the application's sampler, but records and samples every audit span.

    Wrapping is flat: ``AuditSampler(AuditSampler(s))`` delegates to ``s``.
    """

    def __init__(self, delegate: Sampler) -> None:
        while isinstance(delegate, AuditSampler):
            delegate = delegate.delegate
        self._delegate = delegate

    @property
    def delegate(self) -> Sampler:
        """The application's sampler, which decides for every span that is not an audit span."""
        return self._delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        # The delegate always decides first: it may count, rate-limit or write trace state.
        result = self._delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if result.decision is Decision.RECORD_AND_SAMPLE:
            return result
        try:
            keep = is_audit_start(attributes) or _parent_is_sampled_audit_span(parent_context)
        except Exception as err:  # the application's decision stands if ours cannot be made
            _guard.report_internal_error("sampling", err)
            return result
        if not keep:
            return result
        # A dropped result carries no attributes; a record-only one may carry the delegate's additions.
        kept = result.attributes if result.decision is Decision.RECORD_ONLY else attributes
        return SamplingResult(Decision.RECORD_AND_SAMPLE, kept, result.trace_state)

    def get_description(self) -> str:
        return f"AuditSampler{{delegate:{self._delegate.get_description()}}}"


def is_audit_start(attributes: Attributes) -> bool:
    """Whether start attributes are those of one of our spans."""
    return attributes is not None and AUDIT_MARKER in attributes


def _parent_is_sampled_audit_span(parent_context: Context | None) -> bool:
    """Whether the parent is one of our spans, local and sampled (so its child follows it)."""
    parent = trace.get_current_span(parent_context)
    ctx = parent.get_span_context()
    if not ctx.is_valid or ctx.is_remote or not ctx.trace_flags.sampled:
        return False
    if isinstance(parent, LightSpan):  # the stand-in an LLM call built off-thread runs under
        return True
    scope = getattr(parent, "instrumentation_scope", None)  # an SDK span knows its tracer's scope
    return scope is not None and str(getattr(scope, "name", "")).startswith(SCOPE_PREFIX)


def install(provider: TracerProvider) -> AuditSampler:
    """Put an :class:`AuditSampler` in front of ``provider``'s sampler, once; returns the one in force.

    The SDK copies the provider's sampler into each tracer when it creates it (and recent SDKs
    keep one tracer per scope and hand the same one out again), so only tracers created by
    ``provider`` after this see the audit sampler: call it before instrumenting.
    """
    current = provider.sampler
    if isinstance(current, AuditSampler):
        return current
    wrapped = AuditSampler(current)
    provider.sampler = wrapped
    return wrapped
