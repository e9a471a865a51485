"""The callback handler every LangChain callback manager carries: runs in, spans and audit events out.

Parenting comes from ``parent_run_id`` alone (the entry of the parent run holds its span), never
from the ambient OpenTelemetry context of the thread a callback happens to run on, and we
never attach a context here. Spans start and end at the times the callbacks report them:
the handler runs inline (``run_inline``), on the thread and in the task of the run itself.

Model calls: a chat model run has no span of its own while it runs. If one of our provider
instrumentors records the call (the model wraps the ``openai`` SDK, say), that provider span is
the LLM span: our parent resolver, asked for its parent, marks the run *covered* (see
:meth:`AuditCallbackHandler.resolve_llm_parent`). If no provider span covered the run by its
end (a custom model, a provider we do not instrument), the handler emits the LLM span itself
from the callback data, with the run's start time. So there is exactly one LLM span per call.

Every callback body is guarded: an exception of ours is reported through ``_guard`` and the
run goes on with its own results and exceptions untouched.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables.config import var_child_runnable_config
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from otel_llm_audit import _guard, semconv
from otel_llm_audit.emitter.attributes import ABANDONED_ERROR_TYPE
from otel_llm_audit.emitter.operations import (
    add_audit_event,
    decision_attributes,
    delegation_attributes,
)
from otel_llm_audit.emitter.spans import Emitter
from otel_llm_audit.instrumentation.langchain import _mapping as mapping
from otel_llm_audit.instrumentation.langchain._classify import classify_chain, is_node_task
from otel_llm_audit.instrumentation.langchain._runs import (
    DEFAULT_IDLE_TTL_S,
    DEFAULT_MAX_RUNS,
    ModelCall,
    Run,
    RunKind,
    RunMap,
)
from otel_llm_audit.records import (
    AgentInvocation,
    Decision,
    Delegation,
    ErrorInfo,
    LLMCall,
    Retrieval,
    StepPosition,
    ToolExecution,
    WorkflowInvocation,
    WorkflowStep,
)

#: LangGraph's default graph name: an agent of that name is better named by the node running it.
_DEFAULT_GRAPH_NAME = "LangGraph"
#: How many recent LangGraph commands are remembered so one handoff is recorded once.
_SEEN_COMMANDS = 256

ABANDONED = ABANDONED_ERROR_TYPE


def current_parent_run_id() -> UUID | None:
    """The LangChain run executing in this thread or task, from langchain-core's own context variable.

    Every runnable sets ``var_child_runnable_config`` to the configuration of its children while
    it runs (and LangGraph sets it for each node task, in its threads and asyncio tasks); the
    callback manager in it has the running run as ``parent_run_id``.
    """
    config = var_child_runnable_config.get()
    if not config:
        return None
    parent_id = getattr(config.get("callbacks"), "parent_run_id", None)
    return parent_id if isinstance(parent_id, UUID) else None


class AuditCallbackHandler(BaseCallbackHandler):
    """Turns LangChain runs into spans: workflows, agents, graph nodes, tools, retrievals, model calls."""

    run_inline = True  # on the run's own thread and task: real times, no executor hop
    raise_error = False

    def __init__(
        self,
        emitter: Emitter,
        *,
        max_runs: int = DEFAULT_MAX_RUNS,
        idle_ttl_s: float | None = DEFAULT_IDLE_TTL_S,
    ) -> None:
        super().__init__()
        self.emitter = emitter
        self.runs = RunMap(max_runs, idle_ttl_s, on_evict=self._evicted)
        #: Cleared by ``close()``: managers that still carry the handler then reach a no-op.
        self.active = True
        self._lock = threading.Lock()
        self._seen_commands: OrderedDict[int, Any] = OrderedDict()

    def __repr__(self) -> str:
        return "AuditCallbackHandler()"

    # ------------------------------------------------------------------ parent resolvers

    def resolve_parent(self) -> Span | None:
        """Our span for the LangChain run executing here (or its nearest ancestor with a span)."""
        if not self.active:
            return None
        run = self.runs.get(current_parent_run_id())
        anchor = run.anchor() if run is not None else None
        return anchor.step.span if anchor is not None and anchor.step is not None else None

    def resolve_llm_parent(self) -> Span | None:
        """:meth:`resolve_parent` for a provider LLM span, which covers the chat model run it serves."""
        if not self.active:
            return None
        parent_id = current_parent_run_id()
        self.runs.cover_model_call(parent_id, threading.get_ident())
        run = self.runs.get(parent_id)
        anchor = run.anchor() if run is not None else None
        return anchor.step.span if anchor is not None and anchor.step is not None else None

    def _parent(self, parent_run_id: UUID | None, run_id: UUID) -> Run | None:
        """The parent run: LangChain's ``parent_run_id``, else the run executing where this one starts.

        A runnable invoked with a callbacks list of its own (``config={"callbacks": [...]}``) is a
        top-level run for LangChain, though it runs inside a node or tool; the context variable
        still names that enclosing run (start callbacks run before the new run sets it).
        """
        if parent_run_id is not None:
            return self.runs.get(parent_run_id)
        enclosing = current_parent_run_id()
        return self.runs.get(enclosing) if enclosing is not None and enclosing != run_id else None

    def __copy__(self) -> AuditCallbackHandler:
        return self  # one handler per instrumentation: copies of a configuration share it

    def __deepcopy__(self, memo: dict[int, Any]) -> AuditCallbackHandler:
        return self

    # ------------------------------------------------------------------------ chains

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.active:
            return
        try:
            metadata = metadata or {}
            name = _run_name(kwargs, serialized, "chain")
            parent = self._parent(parent_run_id, run_id)
            node_task = is_node_task(name, tags, metadata, parent)
            kind = classify_chain(name, tags, metadata, parent, node_task)
            run = _new_run(run_id, parent_run_id, parent, kind, name, metadata)
            if kind is RunKind.HIDDEN or kind is RunKind.STEP:
                # it may turn out to be a sub-graph: its delegation input, as it was at the start
                # (a shallow copy: the graph updates its state dict as the run goes on)
                run.inputs = dict(inputs) if isinstance(inputs, dict) else inputs
            if node_task and parent is not None:
                self._mark_graph(parent)
            if kind is not RunKind.HIDDEN:
                self._start_span(run, inputs)
            self.runs.add(run)
        except Exception as err:
            _guard.report_internal_error("langchain.on_chain_start", err)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        if not self.active:
            return
        try:
            run = self.runs.pop(run_id)
            if run is not None and run.step is not None:
                if run.kind is RunKind.NODE:
                    self._delegations(run, mapping.commands_in(outputs), run.node or run.name)
                self._finish(run, outputs=outputs)
        except Exception as err:
            _guard.report_internal_error("langchain.on_chain_end", err)

    def on_chain_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        if not self.active:
            return
        try:
            run = self.runs.pop(run_id)
            if run is None or run.step is None:
                return
            if mapping.is_control_flow(error):  # an interrupt or a command: the run paused or handed off
                command = mapping.parent_command(error)
                # LangGraph re-raises the same ParentCommand at each enclosing level (rewriting its
                # command): the innermost run that had a span, the one that handed off, records it.
                if command is not None and self._first_sighting(error):
                    self._delegations(run, [command], run.node or run.name)
                self._finish(run)
            else:
                self._finish(run, error=error)
        except Exception as err:
            _guard.report_internal_error("langchain.on_chain_error", err)

    # ------------------------------------------------------------------------- tools

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.active:
            return
        try:
            metadata = metadata or {}
            serialized = serialized or {}
            name = str(serialized.get("name") or kwargs.get("name") or "tool")
            parent = self._parent(parent_run_id, run_id)
            run = _new_run(run_id, parent_run_id, parent, RunKind.TOOL, name, metadata)
            call_id = kwargs.get("tool_call_id")
            description = serialized.get("description")
            record = ToolExecution(
                tool_name=name,
                call_id=str(call_id) if call_id else None,
                description=description if isinstance(description, str) and description else None,
                arguments=mapping.jsonable(inputs) if inputs is not None else input_str,
                agent_name=_agent_name(parent),
                position=_position(run),
            )
            self._open(run, record)
            self.runs.add(run)
        except Exception as err:
            _guard.report_internal_error("langchain.on_tool_start", err)

    def on_tool_end(self, output: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        if not self.active:
            return
        try:
            run = self.runs.pop(run_id)
            if run is None or run.step is None or not isinstance(run.step.record, ToolExecution):
                return
            record = run.step.record
            result, call_id, failed = mapping.tool_result(output)
            record.result = result
            if call_id and record.call_id is None:
                record.call_id = str(call_id)
            if failed:
                record.error = ErrorInfo("tool_error", "the tool returned an error result")
            commands = mapping.commands_in(output)
            if commands:
                self._delegations(run, commands, record.agent_name or run.node or run.name)
            self._finish(run)
        except Exception as err:
            _guard.report_internal_error("langchain.on_tool_end", err)

    def on_tool_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        if not self.active:
            return
        try:
            run = self.runs.pop(run_id)
            if run is not None and run.step is not None:
                self._finish(run, error=None if mapping.is_control_flow(error) else error)
        except Exception as err:
            _guard.report_internal_error("langchain.on_tool_error", err)

    # -------------------------------------------------------------------- retrievers

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.active:
            return
        try:
            metadata = metadata or {}
            name = _run_name(kwargs, serialized, "retriever")
            run = _new_run(
                run_id, parent_run_id, self._parent(parent_run_id, run_id), RunKind.RETRIEVER, name, metadata
            )
            self._open(run, Retrieval(data_source_id=name, query=str(query), position=_position(run)))
            self.runs.add(run)
        except Exception as err:
            _guard.report_internal_error("langchain.on_retriever_start", err)

    def on_retriever_end(
        self, documents: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        if not self.active:
            return
        try:
            run = self.runs.pop(run_id)
            if run is not None and run.step is not None and isinstance(run.step.record, Retrieval):
                run.step.record.documents = mapping.documents_of(documents)
                self._finish(run)
        except Exception as err:
            _guard.report_internal_error("langchain.on_retriever_end", err)

    def on_retriever_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        if not self.active:
            return
        try:
            run = self.runs.pop(run_id)
            if run is not None and run.step is not None:
                self._finish(run, error=error)
        except Exception as err:
            _guard.report_internal_error("langchain.on_retriever_error", err)

    # -------------------------------------------------------------------- model calls

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.active:
            return
        try:
            self._model_start(
                semconv.GenAiOperationNameValues.CHAT,
                serialized,
                list(messages[0]) if messages else [],
                run_id,
                parent_run_id,
                metadata,
                kwargs,
            )
        except Exception as err:
            _guard.report_internal_error("langchain.on_chat_model_start", err)

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.active:
            return
        try:
            prompt = list(prompts[:1])
            self._model_start(
                semconv.GenAiOperationNameValues.TEXT_COMPLETION,
                serialized,
                prompt,
                run_id,
                parent_run_id,
                metadata,
                kwargs,
            )
        except Exception as err:
            _guard.report_internal_error("langchain.on_llm_start", err)

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            run = self.runs.peek(run_id)
            if run is not None and run.model is not None and run.model.first_chunk_ns is None:
                run.model.first_chunk_ns = time.time_ns()
        except Exception as err:
            _guard.report_internal_error("langchain.on_llm_new_token", err)

    def on_llm_end(self, response: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        if not self.active:
            return
        try:
            run = self.runs.pop(run_id)
            if run is None or run.model is None:
                return
            self._decision(run, response)
            if not run.model.covered:
                self._report_model_call(run, response=response)
        except Exception as err:
            _guard.report_internal_error("langchain.on_llm_end", err)

    def on_llm_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        if not self.active:
            return
        try:
            run = self.runs.pop(run_id)
            if run is not None and run.model is not None and not run.model.covered:
                self._report_model_call(run, error=error)
        except Exception as err:
            _guard.report_internal_error("langchain.on_llm_error", err)

    def _model_start(
        self,
        operation: str,
        serialized: dict[str, Any] | None,
        messages: list[Any],
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> None:
        metadata = metadata or {}
        params = kwargs.get("invocation_params")
        model = ModelCall(
            operation=operation,
            messages=messages,
            invocation_params=dict(params) if isinstance(params, Mapping) else {},
            metadata=dict(metadata),
            thread_id=threading.get_ident(),
        )
        name = _run_name(kwargs, serialized, "model")
        run = _new_run(run_id, parent_run_id, self._parent(parent_run_id, run_id), RunKind.LLM, name, metadata)
        run.model = model
        self.runs.add(run)

    def _report_model_call(
        self,
        run: Run,
        *,
        response: Any = None,
        error: BaseException | None = None,
        abandoned: ErrorInfo | None = None,
    ) -> None:
        """Emit the LLM span of a model run no provider span covered, from the callback data."""
        model = run.model
        if model is None:
            return
        invocation = model.invocation_params
        request_model = mapping.model_of(model.metadata, invocation) or _response_model(response)
        record = LLMCall(
            operation=model.operation,
            provider=mapping.provider_of(model.metadata, invocation, run.name),
            request_model=request_model,
            stream=model.first_chunk_ns is not None,
            params=mapping.params_of(model.metadata, invocation),
            start_ns=run.start_ns,
            first_chunk_ns=model.first_chunk_ns,
        )
        messages, tools = model.messages, invocation.get("tools")
        record.resolver = lambda rec: mapping.resolve_model_call(rec, messages, tools, response)
        if abandoned is not None:
            record.error = abandoned
        anchor = run.parent.anchor() if run.parent is not None else None
        if anchor is not None and anchor.step is not None:
            parent_ctx = trace.set_span_in_context(anchor.step.span)
        else:  # a top-level model call: the application's context, on the run's own thread
            parent_ctx = otel_context.get_current()
        call = self.emitter.start_llm_call(record, context=parent_ctx)
        if call is not None:
            call.end(error)

    def _decision(self, run: Run, response: Any) -> None:
        """A model that had several tools and asked for some: ``llm_audit.decision`` on the calling step."""
        model = run.model
        if model is None:
            return
        options = mapping.tool_names(model.invocation_params.get("tools"))
        if len(options) < 2:
            return
        generations = getattr(response, "generations", None) or []
        first = generations[0] if generations else []
        message = getattr(first[0], "message", None) if first else None
        calls = getattr(message, "tool_calls", None)
        if not calls:
            return
        anchor = run.parent.anchor() if run.parent is not None else None
        if anchor is None or anchor.step is None:
            return
        chosen = [str(c.get("name") if isinstance(c, Mapping) else getattr(c, "name", "")) for c in calls]
        decision = Decision(
            point="tool_choice",
            chosen=chosen,
            options=options,
            reasoning=mapping.text_of(message),
            agent_name=_agent_name(run.parent),
        )
        span = anchor.step.span
        add_audit_event(semconv.EVENT_LLM_AUDIT_DECISION, decision_attributes(decision, span), span)

    # ----------------------------------------------------------------- span lifecycle

    def _start_span(self, run: Run, inputs: Any) -> None:
        """Start the span of a workflow, agent, node or step run, under its nearest ancestor with one."""
        position = _position(run)
        record: WorkflowInvocation | AgentInvocation | WorkflowStep
        if run.kind is RunKind.WORKFLOW:
            record = WorkflowInvocation(
                workflow_name=run.name,
                conversation_id=run.conversation_id,
                input_messages=mapping.state_messages(inputs),
                position=position,
            )
        elif run.kind is RunKind.AGENT:
            record = AgentInvocation(
                agent_name=_agent_display_name(run),
                conversation_id=run.conversation_id,
                input_messages=mapping.state_messages(inputs),
                position=position,
            )
        else:
            record = WorkflowStep(
                name=run.node if run.kind is RunKind.NODE and run.node else run.name, position=position
            )
        self._open(run, record)

    def _open(self, run: Run, record: Any) -> None:
        anchor = run.parent.anchor() if run.parent is not None else None
        context = (
            trace.set_span_in_context(anchor.step.span) if anchor is not None and anchor.step is not None else None
        )
        run.step = self.emitter.start_step(record, context=context, start_time=run.start_ns)

    def _mark_graph(self, graph: Run) -> None:
        """Node tasks start under ``graph``: it is a compiled graph (a sub-graph if nested).

        A run hidden so far (inside another node's task) becomes an ``invoke_agent`` span that
        starts when the run did; a plain step is renamed so. Either is a delegation.
        """
        with self._lock:
            if graph.is_graph:
                return
            graph.is_graph = True
            nested = graph.parent is not None or graph.parent_id is not None
            if graph.kind is RunKind.HIDDEN:
                graph.kind = RunKind.AGENT if nested else RunKind.WORKFLOW
                self._start_span(graph, graph.inputs)
            elif graph.kind is RunKind.STEP and graph.step is not None:
                graph.kind = RunKind.AGENT
                name = _agent_display_name(graph)
                old = graph.step.record
                graph.step.record = AgentInvocation(
                    agent_name=name,
                    conversation_id=graph.conversation_id,
                    input_messages=mapping.state_messages(graph.inputs),
                    position=getattr(old, "position", None),
                )
                graph.step.span.update_name(f"invoke_agent {name}")
                graph.step.span.set_attributes(
                    {
                        semconv.GEN_AI_OPERATION_NAME: semconv.GenAiOperationNameValues.INVOKE_AGENT,
                        semconv.GEN_AI_AGENT_NAME: name,
                    }
                )
            graph.delegated = graph.kind is RunKind.AGENT and graph.parent is not None

    def _finish(self, run: Run, *, outputs: Any = None, error: BaseException | None = None) -> None:
        step = run.step
        if step is None:
            return
        record = step.record
        if outputs is not None and isinstance(record, (WorkflowInvocation, AgentInvocation)):
            record.output_messages = mapping.last_state_message(outputs)
        if run.delegated:
            self._subgraph_delegation(run, outputs)
        step.end(error)

    def _evicted(self, runs: list[Run]) -> None:
        """Runs the map dropped without an end: end their spans as abandoned, report their model calls."""
        for run in runs:
            try:
                self._abandon(run, "no end reported for the run before it was evicted from the run map")
            except Exception as err:
                _guard.report_internal_error("langchain.evict", err)

    def _abandon(self, run: Run, why: str) -> None:
        info = ErrorInfo(ABANDONED, why)
        if run.step is not None:
            run.step.record.error = info
            self._finish(run)
        elif run.model is not None and not run.model.covered:
            self._report_model_call(run, abandoned=info)

    def close(self) -> None:
        """Stop recording; end the spans of runs still in flight (as abandoned: they will not end here)."""
        self.active = False
        for run in self.runs.drain():
            try:
                self._abandon(run, "instrumentation removed before the run ended")
            except Exception as err:
                _guard.report_internal_error("langchain.close", err)

    # -------------------------------------------------------------------- delegations

    def _delegations(self, run: Run, commands: list[Any], source: str) -> None:
        """``llm_audit.delegation`` events for LangGraph ``Command(goto=...)``s, each recorded once."""
        if not commands or run.step is None:
            return
        span = run.step.span
        # A tool's hand-off comes back as its node's result (ToolNode rebuilds the Command) or
        # as a ParentCommand: the node task remembers what its tools recorded.
        task = run.node_task()
        for command in commands:
            if not self._first_sighting(command):
                continue
            kind = (
                semconv.LlmAuditDelegationKindValues.HANDOFF
                if mapping.is_parent_handoff(command)
                else semconv.LlmAuditDelegationKindValues.GOTO
            )
            for target, payload in mapping.goto_targets(command):
                if task is not None:
                    with self._lock:
                        seen = task.handoffs if task.handoffs is not None else set()
                        task.handoffs = seen
                        if (kind, target) in seen and task is run:
                            continue
                        seen.add((kind, target))
                delegation = Delegation(source=source, target=target, kind=kind, input=mapping.jsonable(payload))
                add_audit_event(semconv.EVENT_LLM_AUDIT_DELEGATION, delegation_attributes(delegation, span), span)

    def _first_sighting(self, item: Any) -> bool:
        """Whether ``item`` (a command, a ParentCommand) is new; remembered among the last few hundred."""
        with self._lock:
            key = id(item)
            if key in self._seen_commands and self._seen_commands[key] is item:
                return False
            self._seen_commands[key] = item  # kept so the id is not reused while remembered
            while len(self._seen_commands) > _SEEN_COMMANDS:
                self._seen_commands.popitem(last=False)
            return True

    def _subgraph_delegation(self, run: Run, outputs: Any) -> None:
        """A sub-graph ran as a node or a tool: who delegated to it, with what, and what came back."""
        host = run.parent.anchor() if run.parent is not None else None
        if host is None or host.step is None:
            return
        kind = (
            semconv.LlmAuditDelegationKindValues.AGENT_AS_TOOL
            if host.kind is RunKind.TOOL
            else semconv.LlmAuditDelegationKindValues.SUBGRAPH
        )
        enclosing: Run | None = host
        while enclosing is not None and enclosing.kind not in (RunKind.AGENT, RunKind.WORKFLOW):
            enclosing = enclosing.parent
        source = _agent_display_name(enclosing) if enclosing is not None else host.name
        delegation = Delegation(
            source=source,
            target=_agent_display_name(run),
            kind=kind,
            input=mapping.jsonable(run.inputs),
            output=mapping.jsonable(outputs) if outputs is not None else None,
        )
        span = host.step.span
        recorded = add_audit_event(semconv.EVENT_LLM_AUDIT_DELEGATION, delegation_attributes(delegation, span), span)
        if not recorded and run.step is not None:  # the host already ended (evicted): on the sub-agent's span
            own = run.step.span
            add_audit_event(semconv.EVENT_LLM_AUDIT_DELEGATION, delegation_attributes(delegation, own), own)


# ---------------------------------------------------------------------------- helpers


def _new_run(
    run_id: UUID, parent_id: UUID | None, parent: Run | None, kind: RunKind, name: str, metadata: Mapping[str, Any]
) -> Run:
    node = metadata.get("langgraph_node")
    step = metadata.get("langgraph_step")
    task_ns = metadata.get("langgraph_checkpoint_ns")
    agent = metadata.get("lc_agent_name")
    thread = metadata.get("thread_id")
    return Run(
        run_id=run_id,
        parent_id=parent_id,
        parent=parent,
        kind=kind,
        name=name,
        start_ns=time.time_ns(),
        node=node if isinstance(node, str) else None,
        graph_step=step if isinstance(step, int) and not isinstance(step, bool) else None,
        task_ns=task_ns if isinstance(task_ns, str) else None,
        agent_name=agent if isinstance(agent, str) and agent else None,
        conversation_id=str(thread) if isinstance(thread, (str, int)) and not isinstance(thread, bool) else None,
    )


def _run_name(kwargs: Mapping[str, Any], serialized: Mapping[str, Any] | None, default: str) -> str:
    name = kwargs.get("name")
    if isinstance(name, str) and name:
        return name
    if serialized:
        name = serialized.get("name")
        if isinstance(name, str) and name:
            return name
        ident = serialized.get("id")
        if isinstance(ident, list) and ident:
            return str(ident[-1])
    return default


def _position(run: Run) -> StepPosition:
    return StepPosition(run_id=str(run.run_id), graph_node=run.node, graph_step=run.graph_step)


def _agent_display_name(run: Run) -> str:
    if run.kind is RunKind.AGENT and run.agent_name and (run.parent is None or run.parent.agent_name != run.agent_name):
        return run.agent_name
    if run.name == _DEFAULT_GRAPH_NAME and run.node:
        return run.node  # an unnamed sub-graph: the node that runs it names it better
    return run.name


def _agent_name(run: Run | None) -> str | None:
    """``gen_ai.agent.name`` for a tool or decision: the nearest enclosing agent's name."""
    agent = run.agent() if run is not None else None
    return _agent_display_name(agent) if agent is not None else None


def _response_model(response: Any) -> str | None:
    llm_output = getattr(response, "llm_output", None) or {}
    model = llm_output.get("model_name") if isinstance(llm_output, Mapping) else None
    if not model:
        generations = getattr(response, "generations", None) or []
        first = generations[0] if generations else []
        metadata = getattr(getattr(first[0], "message", None), "response_metadata", None) if first else None
        model = metadata.get("model_name") if isinstance(metadata, Mapping) else None
    return str(model) if model else None
