"""Agent, tool and memory steps as spans; policy decisions and human reviews as span events.

Framework instrumentors (LangGraph, OpenAI Agents, MCP) and applications describe a step
with a record from :mod:`otel_llm_audit.records` and run it inside the span this module
starts, so the LLM calls the step makes nest under it. Attribute names come from the
registry; what content is kept follows the ``content`` setting, as for LLM calls.

These spans are not on a per-token hot path, so they are built with the SDK span lifecycle
(INTERNAL spans; CLIENT for a remote agent service) and completed when the step ends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from otel_llm_audit import _guard, semconv
from otel_llm_audit.config import ContentMode, effective_settings, get_settings
from otel_llm_audit.context import current_identity
from otel_llm_audit.emitter import handoff, parents
from otel_llm_audit.emitter.attributes import AttributeValue, SpanContent, error_info, exception_event, mark_ours
from otel_llm_audit.emitter.content import ContentEncoder, canonical_hash
from otel_llm_audit.records import (
    AgentInvocation,
    Decision,
    Delegation,
    HumanReview,
    Interrupt,
    MemoryOperation,
    PolicyEvent,
    Retrieval,
    StepPosition,
    ToolExecution,
    WorkflowInvocation,
    WorkflowStep,
)

Step = ToolExecution | AgentInvocation | MemoryOperation | WorkflowInvocation | Retrieval | WorkflowStep


class StepSpan:
    """A running agent, tool or memory step: use it as a context manager around the step.

    ``with emitter.start_tool(record) as step:`` makes the span current for the block (so LLM
    calls inside nest under it), fills ``record.result`` etc. as the block learns them, and ends
    the span when the block exits, with the exception if one escaped (it is re-raised).
    """

    __slots__ = ("_ended", "_token", "record", "span")

    def __init__(self, span: Span, record: Step) -> None:
        self.span = span
        self.record = record
        self._token: object | None = None
        self._ended = False

    def __enter__(self) -> StepSpan:
        self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None
        self.end(exc if isinstance(exc, BaseException) else None)

    def end(self, exc: BaseException | None = None, end_time: int | None = None) -> None:
        """End the span once, with the record's final state (``end_time`` in ns since the epoch)."""
        if self._ended:
            return
        self._ended = True
        try:
            if exc is not None and self.record.error is None:
                self.record.error = error_info(exc)
            if handoff.claimer_of(self.span) is not None:
                # Our processor completes the span on its worker: the JSON of the step's content
                # (arguments, results, documents, state) is built there, off this thread.
                handoff.hand_over(self.span, PendingStep(self.record))
                if self.record.error is not None:
                    self.span.set_attribute(semconv.ERROR_TYPE, self.record.error.type)
            else:
                self.span.set_attributes(step_end_attributes(self.record))
            if self.record.error is not None:
                self.span.set_status(Status(StatusCode.ERROR, self.record.error.message))
                event = exception_event(self.record.error)
                self.span.add_event(event.name, event.attributes)
        except Exception as err:  # our bookkeeping never reaches the application
            _guard.report_internal_error("emitter.step_end", err)
        self.span.end(end_time=end_time)


class PendingStep:
    """A step's completion, handed to the audit processor (the interface of an LLM call's)."""

    __slots__ = ("record",)

    def __init__(self, record: Step) -> None:
        self.record = record

    def complete(self, content_allowed: bool = True, masked_downstream: bool = False) -> SpanContent:
        attrs = step_end_attributes(self.record, masked_downstream=masked_downstream, content_allowed=content_allowed)
        return SpanContent(attributes=attrs)


def start_step(
    tracer: trace.Tracer,
    record: Step,
    *,
    context: otel_context.Context | None = None,
    links: Sequence[trace.Link] | None = None,
    start_time: int | None = None,
) -> StepSpan:
    """Start the span of a step with its sampling-relevant attributes.

    ``context`` is the parent (default: the current context). Framework callbacks pass the
    span of the parent run explicitly, because a callback may run in another task or thread
    than the step it reports. ``links`` point at related spans (a paused run this one resumes).
    """
    name, kind, attrs = _step_start(record)
    mark_ours(attrs)
    _put_position(attrs, record.position)
    if context is None:
        context = parents.parent_context()
    identity = current_identity()
    if identity is not None:
        attrs.update(identity.attributes)
    span = tracer.start_span(name, context, kind=kind, attributes=attrs, links=links, start_time=start_time)
    return StepSpan(span, record)


def _put_position(attrs: dict[str, AttributeValue], position: StepPosition | None) -> None:
    if position is None:
        return
    _put(attrs, semconv.LLM_AUDIT_RUN_ID, position.run_id)
    _put(attrs, semconv.LLM_AUDIT_GRAPH_NODE, position.graph_node)
    _put(attrs, semconv.LLM_AUDIT_GRAPH_STEP, position.graph_step)


def _step_start(record: Step) -> tuple[str, SpanKind, dict[str, AttributeValue]]:
    if isinstance(record, ToolExecution):
        attrs: dict[str, AttributeValue] = {
            semconv.GEN_AI_OPERATION_NAME: semconv.GenAiOperationNameValues.EXECUTE_TOOL,
            semconv.GEN_AI_TOOL_NAME: record.tool_name,
        }
        if record.tool_type:
            attrs[semconv.GEN_AI_TOOL_TYPE] = record.tool_type
        return f"execute_tool {record.tool_name}", SpanKind.INTERNAL, attrs
    if isinstance(record, AgentInvocation):
        attrs = {semconv.GEN_AI_OPERATION_NAME: semconv.GenAiOperationNameValues.INVOKE_AGENT}
        if record.agent_name:
            attrs[semconv.GEN_AI_AGENT_NAME] = record.agent_name
        if record.remote and record.provider:
            attrs[semconv.GEN_AI_PROVIDER_NAME] = record.provider
        name = f"invoke_agent {record.agent_name}" if record.agent_name else "invoke_agent"
        return name, SpanKind.CLIENT if record.remote else SpanKind.INTERNAL, attrs
    if isinstance(record, WorkflowInvocation):
        attrs = {semconv.GEN_AI_OPERATION_NAME: semconv.GenAiOperationNameValues.INVOKE_WORKFLOW}
        _put(attrs, semconv.GEN_AI_WORKFLOW_NAME, record.workflow_name)
        name = f"invoke_workflow {record.workflow_name}" if record.workflow_name else "invoke_workflow"
        return name, SpanKind.INTERNAL, attrs
    if isinstance(record, WorkflowStep):
        # No GenAI operation fits a graph node or chain step: no gen_ai.* keys, the position says it all.
        return f"step {record.name}", SpanKind.INTERNAL, {}
    if isinstance(record, Retrieval):
        attrs = {semconv.GEN_AI_OPERATION_NAME: semconv.GenAiOperationNameValues.RETRIEVAL}
        _put(attrs, semconv.GEN_AI_DATA_SOURCE_ID, record.data_source_id)
        _put(attrs, semconv.GEN_AI_PROVIDER_NAME, record.provider)
        name = f"retrieval {record.data_source_id}" if record.data_source_id else "retrieval"
        return name, SpanKind.CLIENT, attrs
    attrs = {semconv.GEN_AI_OPERATION_NAME: record.operation}
    if record.provider:
        attrs[semconv.GEN_AI_PROVIDER_NAME] = record.provider
    return record.operation, SpanKind.INTERNAL, attrs


def _masked_downstream(span: Span) -> bool:
    """Whether a masking stage sees ``span`` before any exporter.

    Our spans are claimed by the audit processor; an application's span (an audit event added
    to it) is not, but it passes the same processor, which masks every span in ``masked`` mode.
    """
    claimer = handoff.claimer_of(span)
    if claimer is None:
        claimer = handoff.pipeline_for(getattr(span, "_span_processor", None))
    return bool(getattr(claimer, "masks", False))


def step_end_attributes(
    record: Step, *, masked_downstream: bool = False, content_allowed: bool = True
) -> dict[str, AttributeValue]:
    """What the step learned by its end: ids, results, records, per the content setting.

    ``masked_downstream``: a masking stage sees the span before any exporter (``masked`` mode
    records content only then); ``content_allowed=False``: no content at all (a full queue).
    """
    attrs: dict[str, AttributeValue] = {}
    if isinstance(record, WorkflowStep):  # no content of its own: only the outcome
        if record.error is not None:
            attrs[semconv.ERROR_TYPE] = record.error.type
        return attrs
    content = _StepContent(masked_downstream, content_allowed)
    if isinstance(record, ToolExecution):
        _put(attrs, semconv.GEN_AI_TOOL_CALL_ID, record.call_id)
        _put(attrs, semconv.GEN_AI_TOOL_DESCRIPTION, record.description)
        _put(attrs, semconv.GEN_AI_AGENT_NAME, record.agent_name)
        content.add(attrs, semconv.GEN_AI_TOOL_CALL_ARGUMENTS, record.arguments)
        content.add(attrs, semconv.GEN_AI_TOOL_CALL_RESULT, record.result)
    elif isinstance(record, AgentInvocation):
        _put(attrs, semconv.GEN_AI_AGENT_ID, record.agent_id)
        _put(attrs, semconv.GEN_AI_AGENT_DESCRIPTION, record.description)
        _put(attrs, semconv.GEN_AI_REQUEST_MODEL, record.request_model)
        _put(attrs, semconv.GEN_AI_CONVERSATION_ID, record.conversation_id)
        if record.input_messages is not None:
            content.add(attrs, semconv.GEN_AI_INPUT_MESSAGES, [m.to_json_obj() for m in record.input_messages])
        if record.output_messages is not None:
            content.add(attrs, semconv.GEN_AI_OUTPUT_MESSAGES, [m.to_json_obj() for m in record.output_messages])
    elif isinstance(record, WorkflowInvocation):
        _put(attrs, semconv.GEN_AI_CONVERSATION_ID, record.conversation_id)
        if record.input_messages is not None:
            content.add(attrs, semconv.GEN_AI_INPUT_MESSAGES, [m.to_json_obj() for m in record.input_messages])
        if record.output_messages is not None:
            content.add(attrs, semconv.GEN_AI_OUTPUT_MESSAGES, [m.to_json_obj() for m in record.output_messages])
    elif isinstance(record, Retrieval):
        _put(attrs, semconv.GEN_AI_RETRIEVAL_TOP_K, record.top_k)
        if record.query is not None:
            content.add(attrs, semconv.GEN_AI_RETRIEVAL_QUERY_TEXT, record.query, as_text=True)
        if record.documents is not None:
            content.add(attrs, semconv.GEN_AI_RETRIEVAL_DOCUMENTS, [dict(d) for d in record.documents])
    else:
        _put(attrs, semconv.GEN_AI_MEMORY_STORE_ID, record.store_id)
        _put(attrs, semconv.GEN_AI_MEMORY_RECORD_ID, record.record_id)
        checkpoint = record.checkpoint
        if checkpoint is not None:
            _put(attrs, semconv.LLM_AUDIT_CHECKPOINT_THREAD_ID, checkpoint.thread_id)
            _put(attrs, semconv.LLM_AUDIT_CHECKPOINT_NS, checkpoint.namespace)
            _put(attrs, semconv.LLM_AUDIT_CHECKPOINT_ID, checkpoint.checkpoint_id)
        if record.records is not None:
            attrs[semconv.GEN_AI_MEMORY_RECORD_COUNT] = len(record.records)
            content.add(attrs, semconv.GEN_AI_MEMORY_RECORDS, [dict(r) for r in record.records])
        if record.query is not None:
            content.add(attrs, semconv.GEN_AI_MEMORY_QUERY_TEXT, record.query, as_text=True)
    if record.error is not None:
        attrs[semconv.ERROR_TYPE] = record.error.type
    content.finish(attrs)
    return attrs


class _StepContent:
    """Content of a step per the ``content`` setting: JSON, hashes, or nothing."""

    def __init__(self, masked_downstream: bool, content_allowed: bool = True) -> None:
        settings = effective_settings(get_settings(), content_allowed=content_allowed, masked=masked_downstream)
        self.mode = settings.content
        self.encoder = ContentEncoder(settings.max_content_chars)
        self.hashes: dict[str, list[str]] = {}

    def add(self, attrs: dict[str, AttributeValue], key: str, value: Any, *, as_text: bool = False) -> None:
        if value is None or self.mode is ContentMode.NONE:
            return
        if self.mode is ContentMode.HASH:
            items = value if isinstance(value, list) else [value]
            self.hashes[key] = [canonical_hash(item) for item in items]
        elif as_text and isinstance(value, str):
            attrs[key] = self.encoder.bound_text(value)
        else:
            attrs[key] = self.encoder.dumps(value)

    def finish(self, attrs: dict[str, AttributeValue]) -> None:
        attrs[semconv.LLM_AUDIT_CONTENT_MODE] = self.mode.value
        if self.hashes:
            attrs[semconv.LLM_AUDIT_CONTENT_HASHES] = json.dumps(self.hashes, separators=(",", ":"), sort_keys=True)
        if self.encoder.truncated:
            attrs[semconv.LLM_AUDIT_CONTENT_TRUNCATED] = True

    def finish_event(self, attrs: dict[str, AttributeValue]) -> None:
        """Like :meth:`finish` for an event: the mode is on its span, only hashes and truncation go here."""
        if self.hashes:
            attrs[semconv.LLM_AUDIT_CONTENT_HASHES] = json.dumps(self.hashes, separators=(",", ":"), sort_keys=True)
        if self.encoder.truncated:
            attrs[semconv.LLM_AUDIT_CONTENT_TRUNCATED] = True


def policy_event_attributes(event: PolicyEvent) -> dict[str, AttributeValue]:
    """The ``llm_audit.policy`` event's attributes (never the content that triggered it)."""
    attrs: dict[str, AttributeValue] = {
        semconv.LLM_AUDIT_POLICY_CATEGORY: event.category,
        semconv.LLM_AUDIT_POLICY_ACTION: event.action,
        semconv.LLM_AUDIT_POLICY_SOURCE: event.source,
    }
    _put(attrs, semconv.LLM_AUDIT_POLICY_NAME, event.name)
    if event.details:
        attrs[semconv.LLM_AUDIT_POLICY_DETAILS] = json.dumps(dict(event.details), sort_keys=True, default=str)
    if event.attributes:
        attrs.update(event.attributes)
    return attrs


def human_review_attributes(review: HumanReview, span: Span | None = None) -> dict[str, AttributeValue]:
    """The ``llm_audit.human_review`` event's attributes; the reviewer defaults to the acting user.

    The reason and the response are content: they follow the ``content`` setting for ``span``.
    """
    attrs: dict[str, AttributeValue] = {
        semconv.LLM_AUDIT_REVIEW_SUBJECT: review.subject,
        semconv.LLM_AUDIT_REVIEW_ACTION: review.action,
    }
    reviewer = review.reviewer
    if reviewer is None:
        identity = current_identity()
        reviewer = identity.user_id if identity is not None else None
    _put(attrs, semconv.LLM_AUDIT_REVIEW_REVIEWER, reviewer)
    _put(attrs, semconv.LLM_AUDIT_REVIEW_INTERRUPT_ID, review.interrupt_id)
    content = _event_content(span)
    content.add(attrs, semconv.LLM_AUDIT_REVIEW_REASON, review.reason, as_text=True)
    content.add(attrs, semconv.LLM_AUDIT_REVIEW_RESPONSE, review.response)
    content.finish_event(attrs)
    return attrs


def delegation_attributes(delegation: Delegation, span: Span | None = None) -> dict[str, AttributeValue]:
    """The ``llm_audit.delegation`` event's attributes; input and output follow the content setting."""
    attrs: dict[str, AttributeValue] = {
        semconv.LLM_AUDIT_DELEGATION_SOURCE: delegation.source,
        semconv.LLM_AUDIT_DELEGATION_TARGET: delegation.target,
    }
    _put(attrs, semconv.LLM_AUDIT_DELEGATION_KIND, delegation.kind)
    content = _event_content(span)
    content.add(attrs, semconv.LLM_AUDIT_DELEGATION_INPUT, delegation.input)
    content.add(attrs, semconv.LLM_AUDIT_DELEGATION_OUTPUT, delegation.output)
    content.finish_event(attrs)
    return attrs


def decision_attributes(decision: Decision, span: Span | None = None) -> dict[str, AttributeValue]:
    """The ``llm_audit.decision`` event's attributes; the stated reasoning follows the content setting."""
    attrs: dict[str, AttributeValue] = {
        semconv.LLM_AUDIT_DECISION_POINT: decision.point,
        semconv.LLM_AUDIT_DECISION_CHOSEN: [str(c) for c in decision.chosen],
    }
    if decision.options is not None:
        attrs[semconv.LLM_AUDIT_DECISION_OPTIONS] = [str(o) for o in decision.options]
    _put(attrs, semconv.GEN_AI_AGENT_NAME, decision.agent_name)
    content = _event_content(span)
    content.add(attrs, semconv.LLM_AUDIT_DECISION_REASONING, decision.reasoning, as_text=True)
    content.finish_event(attrs)
    return attrs


def interrupt_attributes(interrupt: Interrupt, span: Span | None = None) -> dict[str, AttributeValue]:
    """The ``llm_audit.interrupt`` event's attributes; what was put to the human is content."""
    attrs: dict[str, AttributeValue] = {semconv.LLM_AUDIT_INTERRUPT_ID: interrupt.interrupt_id}
    content = _event_content(span)
    content.add(attrs, semconv.LLM_AUDIT_INTERRUPT_VALUE, interrupt.value)
    content.finish_event(attrs)
    return attrs


def _event_content(span: Span | None) -> _StepContent:
    target = span if span is not None else trace.get_current_span()
    return _StepContent(_masked_downstream(target))


def add_audit_event(
    name: str, attrs: dict[str, AttributeValue], span: Span | None = None, timestamp: int | None = None
) -> bool:
    """Add an audit event to ``span`` (default: the current span) and mark the span for the SIEM route.

    ``timestamp`` (ns) is when the fact happened, when it is recorded later. Returns ``False``
    when there is no recording span to carry it (see :func:`emit_audit_event`).
    """
    target = span if span is not None else trace.get_current_span()
    if not target.is_recording():
        return False
    target.add_event(name, attrs, timestamp)
    target.set_attribute(semconv.LLM_AUDIT_AUDIT_RECORD, True)
    return True


def emit_audit_event(
    tracer: trace.Tracer,
    name: str,
    build: Callable[[Span], dict[str, AttributeValue]],
    context: otel_context.Context | None = None,
    links: Sequence[trace.Link] = (),
) -> Span | None:
    """Add audit event ``name`` to the current span of ``context``, or to a short span of its own.

    A record is never dropped for want of a span: with no recording span there (none at all,
    a framework step whose span has ended already, or a span the application's sampler dropped
    or recorded without sampling, which is never exported) the event rides a short span named after
    it, a child of that context, carrying the audit identity and ``links``. ``build`` makes the
    event's attributes for the span that carries it (content rules depend on that span).
    Returns the carrying span (``None`` when nothing records).
    """
    target = trace.get_current_span(context)
    # A recorded but unsampled span (a sampler's RECORD_ONLY) is never exported: not a carrier.
    if target.is_recording() and target.get_span_context().trace_flags.sampled:
        add_audit_event(name, build(target), target)
        for link in links:
            target.add_link(link.context, link.attributes)
        return target
    attrs: dict[str, AttributeValue] = mark_ours({semconv.LLM_AUDIT_AUDIT_RECORD: True})
    identity = current_identity()  # our own spans carry the identity themselves
    if identity is not None:
        attrs.update(identity.attributes)
    carrier = tracer.start_span(name, context, attributes=attrs, links=list(links) or None)
    if not carrier.is_recording():
        carrier.end()
        return None
    carrier.add_event(name, build(carrier))
    carrier.end()
    return carrier


def _put(attrs: dict[str, AttributeValue], key: str, value: Any) -> None:
    if value is not None:
        attrs[key] = value
