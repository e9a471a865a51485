"""The tracing processor: the Agents SDK's traces and spans become our workflow, agent and tool spans.

The SDK reports its run through a ``TracingProcessor``: a trace per run (``invoke_workflow``),
and spans for agents, function tools, handoffs, guardrails, model calls (generation /
response), MCP tool listing, and (0.24+) the run task and each turn. Each callback arrives
on the thread and task where the SDK step runs, but a start and its end may arrive in
different tasks, so nothing here attaches an OpenTelemetry context. Instead:

* our spans are parented explicitly: each SDK span's nearest mapped ancestor (via its
  ``parent_id``), else the trace's workflow span, else the ambient context of the caller;
* :meth:`AuditTracingProcessor.resolve` is registered with :mod:`otel_llm_audit.emitter.parents`
  and returns our span for the SDK step running in the current task (the SDK's own context
  variable), so the OpenAI LLM spans and MCP spans started inside an agent or tool nest
  under it.

The LLM span of a model call comes from the OpenAI instrumentor (the SDK calls the openai
client). A model call during which no span of ours started (the OpenAI instrumentor is not
active, or the model is not an OpenAI client) gets its LLM span from the SDK's generation or
response data instead, when the SDK's span ends: never both.

Every callback catches its own exceptions (reported through ``_guard``): the SDK's results
and exceptions never change because of us.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from agents.tracing import Span as SdkSpan
from agents.tracing import Trace as SdkTrace
from agents.tracing import TracingProcessor, get_current_span, get_current_trace
from opentelemetry import trace
from opentelemetry.trace import Link, Span

from otel_llm_audit import _guard, semconv
from otel_llm_audit.emitter.attributes import ABANDONED_ERROR_TYPE, AttributeValue, error_info
from otel_llm_audit.emitter.operations import (
    StepSpan,
    _masked_downstream,
    _StepContent,
    add_audit_event,
    decision_attributes,
    delegation_attributes,
    human_review_attributes,
    interrupt_attributes,
    policy_event_attributes,
)
from otel_llm_audit.emitter.spans import Emitter
from otel_llm_audit.instrumentation.openai_agents import _reading
from otel_llm_audit.instrumentation.openai_agents._ledger import ApprovalLedger, Pause, Review, span_context_of
from otel_llm_audit.instrumentation.readers import as_str, get
from otel_llm_audit.records import (
    AgentInvocation,
    Decision,
    Delegation,
    ErrorInfo,
    HumanReview,
    Interrupt,
    PolicyEvent,
    StepPosition,
    ToolExecution,
    WorkflowInvocation,
)

#: ``llm_audit.policy.source`` of guardrail events.
SOURCE = "openai_agents"
_LLM_KINDS = frozenset(("generation", "response"))
#: Bounds on what is remembered, so runs the SDK never ends (a killed stream) cannot grow memory.
MAX_OPEN_SPANS = 50_000
MAX_OPEN_TRACES = 10_000


class _AgentState:
    """An agent span in progress: what the model chose, which tool call ids are still unclaimed."""

    __slots__ = ("calls", "data", "held", "models", "name", "paused", "pending", "step")

    def __init__(self, name: str, step: StepSpan, data: Any) -> None:
        self.name = name
        self.step = step
        self.data = data  # the SDK's AgentSpanData: the SDK fills in tools after the start
        self.models: set[str] = set()
        #: Tool calls the model made and no function span has claimed yet (name -> FIFO).
        self.calls: dict[str, deque[_reading.ToolCall]] = {}
        #: A model answer whose choices are learned from the spans that follow it.
        self.pending: _PendingChoice | None = None
        self.paused: set[str] = set()
        #: Tool spans that ended without a result: maybe calls waiting for approval (ended later).
        self.held: list[tuple[StepSpan, int | None]] = []

    def release(self) -> None:
        """End the held tool spans (at the time the SDK ended them): no approval was asked for."""
        held, self.held = self.held, []
        for step, end_ns in held:
            step.end(end_time=end_ns)

    def take_held(self, call_id: str, tool: str) -> StepSpan | None:
        """The held span of this call (by id, else by tool name when the id is unknown)."""
        for position, (step, _) in enumerate(self.held):
            record = step.record
            if isinstance(record, ToolExecution) and (
                record.call_id == call_id or (record.call_id is None and record.tool_name == tool)
            ):
                del self.held[position]
                return step
        return None

    def options(self) -> tuple[list[str], list[str]]:
        tools = [t for t in get(self.data, "tools") or () if isinstance(t, str)]
        handoffs = [h for h in get(self.data, "handoffs") or () if isinstance(h, str)]
        return tools, handoffs

    def claim(self, name: str) -> _reading.ToolCall | None:
        queue = self.calls.get(name)
        return queue.popleft() if queue else None


class _PendingChoice:
    """A model answer whose tool calls the SDK did not record (sensitive data off)."""

    __slots__ = ("chosen", "handoff", "timestamp")

    def __init__(self, timestamp: int) -> None:
        self.timestamp = timestamp
        self.chosen: list[str] = []
        self.handoff = False


class _Node:
    """One SDK span we saw start: our span for it (if mapped) and where its children nest."""

    __slots__ = (
        "agent",
        "anchor",
        "covered",
        "data",
        "delegate_to",
        "exc_at_start",
        "kind",
        "owner",
        "root",
        "step",
        "trace_id",
    )

    def __init__(self, kind: str, data: Any, trace_id: str, parent: _Node | None, anchor: Span | None) -> None:
        self.kind = kind
        self.data = data
        self.trace_id = trace_id
        #: Our span the SDK span's children (and LLM / MCP spans inside it) nest under.
        self.anchor = anchor
        #: The agent this span belongs to (for an agent span: the agent itself).
        self.agent: _AgentState | None = parent.agent if parent is not None else None
        #: The nearest mapped span at or above this one (``self`` once it is mapped).
        self.owner: _Node | None = parent.owner if parent is not None else None
        #: No mapped span above it: a step directly under the workflow.
        self.root = self.owner is None
        self.step: StepSpan | None = None
        self.exc_at_start: BaseException | None = None
        #: A model-call span during which one of our spans started (the LLM span exists).
        self.covered = False
        #: A function span that ran another agent (``Agent.as_tool``): that agent's name.
        self.delegate_to: str | None = None


class _TraceState:
    """A workflow in progress."""

    __slots__ = ("blocked", "error", "exc_at_start", "handoffs", "nodes", "step")

    def __init__(self, step: StepSpan | None, exc_at_start: BaseException | None) -> None:
        self.step = step
        self.exc_at_start = exc_at_start
        self.error: ErrorInfo | None = None
        #: Guardrails already recorded as blocking, so the tripwire is not recorded twice.
        self.blocked: set[str] = set()
        #: Target agent -> the span of the agent that handed off to it (for a ``delegated_from`` link).
        self.handoffs: dict[str, trace.SpanContext] = {}
        self.nodes: set[str] = set()


class AuditTracingProcessor(TracingProcessor):
    """Maps the SDK's trace and spans to audited OpenTelemetry spans and audit events."""

    def __init__(self, emitter: Emitter, ledger: ApprovalLedger) -> None:
        self._emitter = emitter
        self._ledger = ledger
        self._lock = threading.Lock()
        self._nodes: dict[str, _Node] = {}
        self._traces: dict[str, _TraceState] = {}
        #: Cleared by :meth:`close`: an uninstrumented processor the SDK still calls does nothing.
        self.enabled = True
        #: Set when the SDK's approval pauses are hooked: a tool span without a result waits
        #: (until the agent's next step) to learn whether its call is the one waiting for approval.
        self.approvals = False

    # -- nesting ---------------------------------------------------------------------------

    def resolve(self) -> Span | None:
        """Our span for the SDK step running in this thread or task (a ``parents`` resolver)."""
        return self._resolve(llm_call=False)

    def resolve_llm(self) -> Span | None:
        """:meth:`resolve` for a provider's LLM span: the SDK model call running here is covered by it."""
        return self._resolve(llm_call=True)

    def _resolve(self, *, llm_call: bool) -> Span | None:
        if not self._nodes and not self._traces:
            return None
        current = get_current_span()
        if current is not None:
            node = self._nodes.get(current.span_id)
            if node is not None:
                if llm_call and node.kind in _LLM_KINDS:
                    node.covered = True  # the provider instrumentor is recording this model call
                return node.anchor
        current_trace = get_current_trace()
        if current_trace is not None:
            state = self._traces.get(current_trace.trace_id)
            if state is not None and state.step is not None:
                return state.step.span
        return None

    # -- traces ----------------------------------------------------------------------------

    def on_trace_start(self, trace: SdkTrace) -> None:
        if not self.enabled:
            return
        try:
            self._trace_start(trace)
        except Exception as err:
            _guard.report_internal_error("openai_agents.trace_start", err)

    def _trace_start(self, sdk_trace: SdkTrace) -> None:
        trace_id = sdk_trace.trace_id
        reviews = self._ledger.take_reviews(trace_id)
        record = WorkflowInvocation(
            workflow_name=as_str(sdk_trace.name) or None,
            conversation_id=as_str(getattr(sdk_trace, "group_id", None)),
            position=StepPosition(run_id=trace_id),
        )
        step = self._emitter.start_step(record, links=_resume_links(reviews))
        _add_reviews(step.span, reviews)
        state = _TraceState(step, _exception_in_flight())
        evicted: list[_TraceState] = []
        with self._lock:
            self._traces[trace_id] = state
            while len(self._traces) > MAX_OPEN_TRACES:
                evicted.append(self._traces.pop(next(iter(self._traces))))
        for old in evicted:
            _abandon(old.step)

    def on_trace_end(self, trace: SdkTrace) -> None:
        if not self.enabled:
            return
        try:
            self._trace_end(trace)
        except Exception as err:
            _guard.report_internal_error("openai_agents.trace_end", err)

    def _trace_end(self, sdk_trace: SdkTrace) -> None:
        with self._lock:
            state = self._traces.pop(sdk_trace.trace_id, None)
            leftovers = [self._nodes.pop(i) for i in list(state.nodes) if i in self._nodes] if state else []
        if state is None:
            return
        for node in leftovers:  # spans the SDK never ended (a cancelled stream): end them with the run
            _abandon_node(node)
        if state.step is None:
            return
        exc = _new_exception(state.exc_at_start)
        record = state.step.record
        if exc is not None:
            record.error = error_info(exc)
        elif state.error is not None:
            record.error = state.error
        state.step.end()

    # -- spans -----------------------------------------------------------------------------

    def on_span_start(self, span: SdkSpan[Any]) -> None:
        if not self.enabled:
            return
        try:
            self._span_start(span)
        except Exception as err:
            _guard.report_internal_error("openai_agents.span_start", err)

    def _span_start(self, span: SdkSpan[Any]) -> None:
        data = span.span_data
        kind = str(getattr(data, "type", ""))
        trace_id = span.trace_id
        parent = self._nodes.get(span.parent_id) if span.parent_id else None
        state = self._traces.get(trace_id)
        anchor = parent.anchor if parent is not None else (state.step.span if state and state.step else None)
        node = _Node(kind, data, trace_id, parent, anchor)
        node.exc_at_start = _exception_in_flight()
        if kind == "agent":
            self._start_agent(node, span, parent, state)
        elif kind == "function":
            self._start_tool(node, span)
        elif kind in _LLM_KINDS and node.agent is not None:
            node.agent.release()  # a new model call: no tool of the previous answer waits for approval
            self._flush_choice(node.agent)  # and that answer's choices are all known
        evicted: list[_Node] = []
        with self._lock:
            self._nodes[span.span_id] = node
            if state is not None:
                state.nodes.add(span.span_id)
            while len(self._nodes) > MAX_OPEN_SPANS:
                evicted.append(self._nodes.pop(next(iter(self._nodes))))
        for old in evicted:
            _abandon_node(old)

    def _context(self, anchor: Span | None) -> Any:
        return trace.set_span_in_context(anchor) if anchor is not None else None

    def _start_agent(self, node: _Node, span: SdkSpan[Any], parent: _Node | None, state: _TraceState | None) -> None:
        data = node.data
        name = as_str(get(data, "name")) or "agent"
        links: list[Link] = []
        if state is not None:
            source = state.handoffs.pop(name, None)
            if source is not None:
                links.append(Link(source, {semconv.LLM_AUDIT_LINK_TYPE: semconv.LlmAuditLinkTypeValues.DELEGATED_FROM}))
        reviews = self._ledger.take_reviews(node.trace_id)
        links.extend(_resume_links(reviews))
        record = AgentInvocation(agent_name=name, position=StepPosition(run_id=node.trace_id))
        step = self._emitter.start_step(record, context=self._context(node.anchor), links=links or None)
        node.step = step
        node.anchor = step.span
        delegating = node.owner
        node.owner = node
        if delegating is not None and delegating.kind == "function":
            delegating.delegate_to = name  # an agent run inside a tool: Agent.as_tool
        node.agent = _AgentState(name, step, data)
        _add_reviews(step.span, reviews)
        for review in reviews:  # the resumed run executes the approved call: give its span the call id
            if review.call_id:
                call = _reading.ToolCall(review.tool, review.call_id)
                node.agent.calls.setdefault(review.tool, deque()).append(call)

    def _start_tool(self, node: _Node, span: SdkSpan[Any]) -> None:
        data = node.data
        name = as_str(get(data, "name")) or "tool"
        agent = node.agent
        record = ToolExecution(
            tool_name=name,
            tool_type="extension" if get(data, "mcp_data") else "function",
            agent_name=agent.name if agent is not None else None,
            position=StepPosition(run_id=node.trace_id),
        )
        step = self._emitter.start_step(record, context=self._context(node.anchor))
        node.step = step
        node.anchor = step.span
        node.owner = node
        if agent is not None and agent.pending is not None:
            agent.pending.chosen.append(name)

    def on_span_end(self, span: SdkSpan[Any]) -> None:
        if not self.enabled:
            return
        try:
            self._span_end(span)
        except Exception as err:
            _guard.report_internal_error("openai_agents.span_end", err)

    def _span_end(self, span: SdkSpan[Any]) -> None:
        with self._lock:
            node = self._nodes.pop(span.span_id, None)
            state = self._traces.get(node.trace_id) if node is not None else None
            if state is not None:
                state.nodes.discard(span.span_id)
        if node is None:
            return
        kind = node.kind
        if kind == "agent":
            self._end_agent(node, span, state)
        elif kind == "function":
            self._end_tool(node, span)
        elif kind in _LLM_KINDS:
            self._end_model_call(node, span)
        elif kind == "handoff":
            self._end_handoff(node, state)
        elif kind == "guardrail":
            self._end_guardrail(node, state)
        if kind != "agent":
            self._tripwire(node, span.error, state)

    def _end_agent(self, node: _Node, span: SdkSpan[Any], state: _TraceState | None) -> None:
        agent, step = node.agent, node.step
        if agent is None or step is None:
            return
        agent.release()
        self._flush_choice(agent)
        record = step.record
        assert isinstance(record, AgentInvocation)
        if len(agent.models) == 1:
            record.request_model = next(iter(agent.models))
        exc = _new_exception(node.exc_at_start)
        record.error = error_info(exc) if exc is not None else _reading.span_error(span.error)
        tools, handoffs = agent.options()
        _put_tool_definitions(step.span, tools, handoffs)
        self._tripwire(node, span.error, state)
        if record.error is not None and state is not None and node.root:
            state.error = record.error  # the run's last failing agent: the workflow failed with it
        step.end()

    def _end_tool(self, node: _Node, span: SdkSpan[Any]) -> None:
        step = node.step
        if step is None:
            return
        data, agent = node.data, node.agent
        record = step.record
        assert isinstance(record, ToolExecution)
        call = agent.claim(record.tool_name) if agent is not None else None
        if call is not None:
            record.call_id = call.call_id
        raw_input = get(data, "input")
        if raw_input is None and call is not None:
            raw_input = call.arguments
        record.arguments = _reading.tool_arguments(raw_input) if raw_input not in (None, "") else None
        record.result = get(data, "output")
        if get(data, "mcp_data") and record.tool_type != "extension":  # the SDK says so once the call runs
            record.tool_type = "extension"
            step.span.set_attribute(semconv.GEN_AI_TOOL_TYPE, "extension")
        exc = _new_exception(node.exc_at_start)
        record.error = error_info(exc) if exc is not None else _reading.span_error(span.error)
        if node.delegate_to is not None and agent is not None:
            delegation = Delegation(
                source=agent.name,
                target=node.delegate_to,
                kind=semconv.LlmAuditDelegationKindValues.AGENT_AS_TOOL,
                input=record.arguments,
                output=record.result,
            )
            carrier = agent.step.span
            add_audit_event(
                semconv.EVENT_LLM_AUDIT_DELEGATION, span=carrier, attrs=delegation_attributes(delegation, carrier)
            )
        if self.approvals and agent is not None and record.result is None and record.error is None:
            agent.held.append((step, _reading.iso_to_ns(span.ended_at)))
            return
        step.end()

    def _end_model_call(self, node: _Node, span: SdkSpan[Any]) -> None:
        data, agent = node.data, node.agent
        if node.kind == "generation":
            turn = _reading.read_turn(get(data, "output"))
            model = as_str(get(data, "model"))
        else:
            turn = _reading.read_turn(get(data, "response"))
            model = None  # only the response model is known, not the one the agent asked for
        if agent is not None:
            if model:
                agent.models.add(model)
            if turn is None:
                agent.pending = _PendingChoice(time.time_ns())
            else:
                for call in turn.calls:
                    agent.calls.setdefault(call.name, deque()).append(call)
                self._decide(agent, turn.calls, turn.text, None)
        if not node.covered:
            self._emit_llm_span(node, span)

    def _emit_llm_span(self, node: _Node, span: SdkSpan[Any]) -> None:
        """The LLM span from the SDK's data, for a model call no provider instrumentor recorded."""
        start_ns = _reading.iso_to_ns(span.started_at)
        exc = _new_exception(node.exc_at_start)
        error = error_info(exc) if exc is not None else _reading.span_error(span.error)
        if node.kind == "generation":
            record = _reading.llm_call_from_generation(node.data, start_ns, error)
        else:
            record = _reading.llm_call_from_response(node.data, start_ns, error)
        call = self._emitter.start_llm_call(record, context=self._context(node.anchor))
        if call is not None:
            call.end()

    def _end_handoff(self, node: _Node, state: _TraceState | None) -> None:
        data, agent = node.data, node.agent
        source = as_str(get(data, "from_agent")) or (agent.name if agent is not None else "agent")
        target = as_str(get(data, "to_agent"))
        if target is None:
            return
        carrier = agent.step.span if agent is not None else node.anchor
        call = agent.claim(_reading.handoff_tool_name(target)) if agent is not None else None
        handoff_input = _reading.tool_arguments(call.arguments) if call is not None and call.arguments else None
        delegation = Delegation(
            source=source, target=target, kind=semconv.LlmAuditDelegationKindValues.HANDOFF, input=handoff_input or None
        )
        if carrier is not None:
            add_audit_event(
                semconv.EVENT_LLM_AUDIT_DELEGATION, span=carrier, attrs=delegation_attributes(delegation, carrier)
            )
            if state is not None:
                state.handoffs[target] = carrier.get_span_context()
        if agent is not None and agent.pending is not None:
            agent.pending.chosen.append(target)
            agent.pending.handoff = True

    def _end_guardrail(self, node: _Node, state: _TraceState | None) -> None:
        data = node.data
        name = as_str(get(data, "name")) or "guardrail"
        triggered = bool(get(data, "triggered"))
        event = PolicyEvent(
            category="guardrail",
            action="blocked" if triggered else "allowed",
            source=SOURCE,
            name=name,
            details={"triggered": triggered},
        )
        if node.anchor is not None:
            add_audit_event(semconv.EVENT_LLM_AUDIT_POLICY, span=node.anchor, attrs=policy_event_attributes(event))
        if triggered and state is not None:
            state.blocked.add(name)

    def _tripwire(self, node: _Node, error: Any, state: _TraceState | None) -> None:
        """The SDK's tripwire error on a span: a policy event, unless its guardrail span already said so."""
        tripwire = _reading.tripwire_guardrail(error)
        if tripwire is None or node.anchor is None:
            return
        name, stage = tripwire
        if state is not None and name in state.blocked:
            return
        details: dict[str, Any] = {"tripwire": True}
        if stage:
            details["stage"] = stage
        event = PolicyEvent(category="guardrail", action="blocked", source=SOURCE, name=name, details=details)
        add_audit_event(semconv.EVENT_LLM_AUDIT_POLICY, span=node.anchor, attrs=policy_event_attributes(event))
        if state is not None and name:
            state.blocked.add(name)

    # -- decisions ---------------------------------------------------------------------------

    def _flush_choice(self, agent: _AgentState) -> None:
        pending, agent.pending = agent.pending, None
        if pending is not None and pending.chosen:
            self._decide(
                agent, [_reading.ToolCall(c) for c in pending.chosen], None, pending.timestamp, handoff=pending.handoff
            )

    def _decide(
        self,
        agent: _AgentState,
        calls: Sequence[_reading.ToolCall],
        reasoning: str | None,
        timestamp: int | None,
        *,
        handoff: bool = False,
    ) -> None:
        """An ``llm_audit.decision`` when the model picked among several tools or handoffs."""
        tools, handoffs = agent.options()
        options = tools + [h for h in handoffs if h not in tools]
        if not calls or len(options) < 2:
            return
        by_tool_name = {_reading.handoff_tool_name(h): h for h in handoffs}
        chosen: list[str] = []
        for call in calls:
            if call.name in tools:
                chosen.append(call.name)
            elif call.name in handoffs or call.name in by_tool_name:
                chosen.append(by_tool_name.get(call.name, call.name))
                handoff = True
            else:
                chosen.append(call.name)
                handoff = handoff or bool(handoffs)  # a handoff with a custom tool name
        decision = Decision(
            point="handoff" if handoff else "tool_choice",
            chosen=chosen,
            options=options,
            reasoning=reasoning,
            agent_name=agent.name,
        )
        span = agent.step.span
        add_audit_event(
            semconv.EVENT_LLM_AUDIT_DECISION, span=span, attrs=decision_attributes(decision, span), timestamp=timestamp
        )

    # -- human in the loop -----------------------------------------------------------------

    def on_interruption(self, items: Iterable[Any]) -> None:
        """The run pauses for tool approvals (``NextStepInterruption``): an interrupt per call."""
        try:
            current = get_current_span()
            node = self._nodes.get(current.span_id) if current is not None else None
            agent = node.agent if node is not None else None
            if node is None or agent is None:
                return  # a restored state (to_state, from_json), not a run pausing now
            for item in items:
                raw = get(item, "raw_item")
                call_id = as_str(get(item, "call_id")) or as_str(get(raw, "call_id")) or as_str(get(raw, "id"))
                tool = as_str(get(item, "tool_name")) or as_str(get(raw, "name")) or "tool"
                if call_id is None or call_id in agent.paused:
                    continue
                agent.paused.add(call_id)
                # The paused span: the execute_tool span of the call that waits (else the agent's).
                held = agent.take_held(call_id, tool)
                span = held.span if held is not None else agent.step.span
                pause = self._ledger.record_pause(node.trace_id, call_id, tool, span.get_span_context())
                value = {"tool": tool, "agent": agent.name, "arguments": _reading.tool_arguments(get(raw, "arguments"))}
                interrupt = Interrupt(pause.interrupt_id, value)
                add_audit_event(
                    semconv.EVENT_LLM_AUDIT_INTERRUPT, span=span, attrs=interrupt_attributes(interrupt, span)
                )
                if held is not None:
                    held.end()
        except Exception as err:
            _guard.report_internal_error("openai_agents.interruption", err)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop recording (uninstrument) and end whatever is still open."""
        self.enabled = False
        self.shutdown()

    def shutdown(self) -> None:
        """End whatever is still open (the process is stopping, or we are uninstrumented)."""
        try:
            with self._lock:
                nodes, traces = list(self._nodes.values()), list(self._traces.values())
                self._nodes.clear()
                self._traces.clear()
            for node in reversed(nodes):
                _abandon_node(node)
            for state in traces:
                _abandon(state.step)
        except Exception as err:
            _guard.report_internal_error("openai_agents.shutdown", err)

    def force_flush(self) -> None:
        """Nothing is buffered here: spans go to the OpenTelemetry pipeline as they end."""


# ---------------------------------------------------------------------------------------


def _exception_in_flight() -> BaseException | None:
    return sys.exc_info()[1]


def _new_exception(before: BaseException | None) -> BaseException | None:
    """The exception propagating now through the SDK, if it is not one already being handled at the start.

    The SDK ends its agent spans and traces in ``finally`` blocks and ``__exit__``: there,
    ``sys.exc_info()`` is the exception that stops the run. One that was already being handled
    when the span started (an application retrying inside its ``except``) is not the run's.
    """
    exc = sys.exc_info()[1]
    if exc is None or exc is before or isinstance(exc, GeneratorExit):
        return None
    return exc


def _put_tool_definitions(span: Span, tools: list[str], handoffs: list[str]) -> None:
    """The agent's tools and handoffs as ``gen_ai.tool.definitions`` (names only), per the content setting."""
    if not (tools or handoffs) or not span.is_recording():
        return
    definitions = [{"type": "function", "name": t} for t in tools] + [{"type": "handoff", "name": h} for h in handoffs]
    content = _StepContent(_masked_downstream(span))
    attrs: dict[str, AttributeValue] = {}
    content.add(attrs, semconv.GEN_AI_TOOL_DEFINITIONS, definitions)
    content.finish_event(attrs)  # hashes / truncation only: the span's content mode is set at its end
    if attrs:
        span.set_attributes(attrs)


def _resume_links(reviews: Sequence[Review]) -> list[Link]:
    links: list[Link] = []
    seen: set[int] = set()
    for review in reviews:
        context = span_context_of(review.pause)
        if context is not None and context.span_id not in seen:
            seen.add(context.span_id)
            links.append(Link(context, {semconv.LLM_AUDIT_LINK_TYPE: semconv.LlmAuditLinkTypeValues.RESUMES}))
    return links


def _add_reviews(span: Span, reviews: Sequence[Review]) -> None:
    for review in reviews:
        pause: Pause | None = review.pause
        tool = pause.tool if pause is not None else review.tool
        record = HumanReview(
            subject=f"tool call {tool}",
            action=review.action,
            reason=review.reason,
            interrupt_id=pause.interrupt_id if pause is not None else None,
            response=review.response,
        )
        add_audit_event(semconv.EVENT_LLM_AUDIT_HUMAN_REVIEW, span=span, attrs=human_review_attributes(record, span))


def _abandon_node(node: _Node) -> None:
    if node.kind == "agent" and node.agent is not None:
        node.agent.release()
    _abandon(node.step)


def _abandon(step: StepSpan | None) -> None:
    """End a span the SDK never ended, saying so."""
    if step is None:
        return
    if step.record.error is None:
        step.record.error = ErrorInfo(type=ABANDONED_ERROR_TYPE, message="the Agents SDK never ended this step")
    step.end()


__all__ = ["SOURCE", "AuditTracingProcessor"]
