"""Typed records of what happened, independent of OpenTelemetry and of any provider SDK.

Capture modules (one per library) build these; the emitter turns them into spans, span
events and metrics. Keeping the two apart means a convention rename touches the emitter
only, and a new provider touches one capture module only.

A record is filled in two steps. On the caller's thread a capture module stores only what
it must snapshot right away (the request as sent, the response object, stream chunks,
timestamps). Everything that costs CPU (walking the response, converting messages to the
conventions' JSON parts) happens in :meth:`LLMCall.resolve`, which the emitter runs off the
caller's thread when the audit pipeline is installed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: One message part, shaped as in the GenAI conventions (``{"type": "text", "content": ...}``).
Part = dict[str, Any]


@dataclass(slots=True)
class Message:
    """A chat message as the conventions describe it: a role and a list of parts."""

    role: str
    parts: list[Part]
    name: str | None = None
    finish_reason: str | None = None

    def to_json_obj(self) -> dict[str, Any]:
        """The conventions' ChatMessage / OutputMessage JSON object."""
        obj: dict[str, Any] = {"role": self.role, "parts": self.parts}
        if self.name is not None:
            obj["name"] = self.name
        if self.finish_reason is not None:
            obj["finish_reason"] = self.finish_reason
        return obj


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts per the conventions: input includes cache reads and writes, output includes reasoning."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_write_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None

    @classmethod
    def with_cache_apart(
        cls,
        uncached_input: int | None,
        output: int | None,
        cache_read: int | None,
        cache_write: int | None,
        reasoning: int | None = None,
    ) -> Usage:
        """For providers that count cache reads and writes apart from the input (Anthropic, Bedrock).

        The conventions' input tokens include them, so they are added back.
        """
        total = None
        if uncached_input is not None or cache_read or cache_write:
            total = (uncached_input or 0) + (cache_read or 0) + (cache_write or 0)
        return cls(total, output, cache_read, cache_write, reasoning)


@dataclass(frozen=True, slots=True)
class RequestParams:
    """The reproducibility parameters of a request, as sent."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    choice_count: int | None = None
    reasoning_level: str | None = None
    output_type: str | None = None
    previous_response_id: str | None = None
    service_tier: str | None = None
    encoding_formats: list[str] | None = None
    conversation_id: str | None = None


@dataclass(slots=True)
class ErrorInfo:
    """What went wrong: a low-cardinality type for ``error.type`` and the exception itself."""

    type: str
    message: str
    exception: BaseException | None = None


@dataclass(slots=True)
class LLMCall:
    """One call to a model: chat, text completion, embeddings or fetching a stored response."""

    operation: str
    provider: str
    request_model: str | None
    server_address: str | None = None
    server_port: int | None = None
    api_type: str | None = None
    stream: bool = False
    params: RequestParams = RequestParams()  # frozen: capture modules assign a new one
    system_instructions: list[Part] | None = None
    input_messages: list[Message] | None = None
    tool_definitions: list[dict[str, Any]] | None = None
    response_id: str | None = None
    response_model: str | None = None
    response_status: str | None = None
    finish_reasons: list[str] | None = None
    output_messages: list[Message] | None = None
    usage: Usage = Usage()
    service_tier: str | None = None
    system_fingerprint: str | None = None
    embedding_dimensions: int | None = None
    #: The provider's id of the request (AWS ``x-amzn-requestid``), where it has no response id.
    provider_request_id: str | None = None
    #: The guardrail the request asked the provider to apply (AWS Bedrock ``guardrailIdentifier``).
    guardrail_id: str | None = None
    start_ns: int = field(default_factory=time.time_ns)
    first_chunk_ns: int | None = None
    end_ns: int | None = None
    error: ErrorInfo | None = None
    #: Library-specific finishing step, run once by :meth:`resolve` (off the caller's thread).
    resolver: Callable[[LLMCall], None] | None = None
    #: Anything the capture module noticed that the audit should say (bad input, odd SDK).
    notes: list[str] = field(default_factory=list)
    #: What the provider said about safety (content filters, refusals, guardrails).
    policy_events: list[PolicyEvent] = field(default_factory=list)

    def resolve(self) -> None:
        """Run the capture module's finishing step once; later calls do nothing."""
        resolver = self.resolver
        if resolver is not None:
            self.resolver = None
            resolver(self)

    @property
    def time_to_first_chunk_s(self) -> float | None:
        """Seconds from the request to the first streamed chunk, for streaming calls."""
        if self.first_chunk_ns is None:
            return None
        return (self.first_chunk_ns - self.start_ns) / 1e9

    @property
    def duration_s(self) -> float | None:
        if self.end_ns is None:
            return None
        return (self.end_ns - self.start_ns) / 1e9


@dataclass(slots=True)
class StepPosition:
    """Where in a framework's run a step happened: the run id, the graph node, the super-step."""

    run_id: str | None = None
    graph_node: str | None = None
    graph_step: int | None = None


@dataclass(slots=True)
class CheckpointRef:
    """Which saved workflow state a step read or wrote (LangGraph: thread, namespace, checkpoint)."""

    thread_id: str | None = None
    namespace: str | None = None
    checkpoint_id: str | None = None


@dataclass(slots=True)
class ToolExecution:
    """A tool the application (or a framework) ran, usually because a model asked for it."""

    tool_name: str
    call_id: str | None = None
    tool_type: str | None = "function"
    description: str | None = None
    arguments: Any = None
    result: Any = None
    agent_name: str | None = None
    position: StepPosition | None = None
    error: ErrorInfo | None = None


@dataclass(slots=True)
class AgentInvocation:
    """An agent run, in process (INTERNAL) or against a remote agent service (CLIENT)."""

    agent_name: str | None
    agent_id: str | None = None
    description: str | None = None
    provider: str | None = None
    request_model: str | None = None
    conversation_id: str | None = None
    remote: bool = False
    input_messages: list[Message] | None = None
    output_messages: list[Message] | None = None
    delegated_by: str | None = None
    position: StepPosition | None = None
    error: ErrorInfo | None = None


@dataclass(slots=True)
class WorkflowInvocation:
    """A workflow run: a graph or pipeline of agents and steps (``invoke_workflow``)."""

    workflow_name: str | None
    conversation_id: str | None = None
    input_messages: list[Message] | None = None
    output_messages: list[Message] | None = None
    position: StepPosition | None = None
    error: ErrorInfo | None = None


@dataclass(slots=True)
class WorkflowStep:
    """One step of a workflow that is neither an agent, a tool nor a model call: a graph node, a chain step.

    The conventions have no operation for it, so its span (``step {name}``, INTERNAL) carries no
    ``gen_ai.*`` keys, only where it ran (:class:`StepPosition`) and whether it failed. It exists
    so the LLM calls, tools and sub-agents of the step nest under something that names it.
    """

    name: str
    position: StepPosition | None = None
    error: ErrorInfo | None = None


@dataclass(slots=True)
class Retrieval:
    """A search of a document store for content to give a model (RAG): the ``retrieval`` operation."""

    data_source_id: str | None = None
    query: str | None = None
    documents: Sequence[Mapping[str, Any]] | None = None
    top_k: int | None = None
    provider: str | None = None
    position: StepPosition | None = None
    error: ErrorInfo | None = None


@dataclass(slots=True)
class MemoryOperation:
    """A read or write of agent memory or shared state (search_memory, create_memory, ...)."""

    operation: str
    store_id: str | None = None
    record_id: str | None = None
    query: str | None = None
    records: Sequence[Mapping[str, Any]] | None = None
    provider: str | None = None
    checkpoint: CheckpointRef | None = None
    position: StepPosition | None = None
    error: ErrorInfo | None = None


@dataclass(slots=True)
class HumanReview:
    """A human-in-the-loop decision: what was put to the reviewer and what they did."""

    subject: str
    action: str
    reviewer: str | None = None
    reason: str | None = None
    details: Mapping[str, Any] | None = None
    #: The interrupt this review answers (the paused step's ``Interrupt.interrupt_id``).
    interrupt_id: str | None = None
    #: What the reviewer answered (the resume value), content like any other.
    response: Any = None


@dataclass(slots=True)
class PolicyEvent:
    """A guardrail, filter or policy that fired, or an override or escalation."""

    category: str
    action: str
    source: str
    name: str | None = None
    details: Mapping[str, Any] | None = None
    #: Further attributes of the event, by registry key (a budget's limit and spend, ...).
    attributes: Mapping[str, Any] | None = None


@dataclass(slots=True)
class Delegation:
    """An agent handing work to another: who, to whom, how, with what, and what came back."""

    source: str
    target: str
    kind: str | None = None
    input: Any = None
    output: Any = None


@dataclass(slots=True)
class Decision:
    """A choice among options: a conditional edge, a tool or handoff an agent picked."""

    point: str
    chosen: Sequence[str]
    options: Sequence[str] | None = None
    reasoning: str | None = None
    agent_name: str | None = None


@dataclass(slots=True)
class Interrupt:
    """A workflow paused to put something to a human; the review that answers it has the same id."""

    interrupt_id: str
    value: Any = None


@dataclass(slots=True)
class McpRequest:
    """One MCP (Model Context Protocol) request or notification, sent or handled by this process.

    ``side`` says which end this process is: ``client`` when it sent the message (it waits
    for the answer: a CLIENT span), ``server`` when it handles it (a SERVER span). A server
    that asks its client something (sampling, roots) is the ``client`` of that request.
    """

    method: str
    side: str = "client"
    #: The JSON-RPC id; ``None`` for a notification.
    request_id: str | int | None = None
    #: The transport's session id (streamable HTTP), when it has one.
    session_id: str | None = None
    protocol_version: str | None = None
    #: ``pipe`` (stdio) or ``tcp`` (HTTP), when the transport is known.
    transport: str | None = None
    #: Where the server listens (HTTP, client side).
    server_address: str | None = None
    server_port: int | None = None
    #: ``tools/call``: the tool; ``prompts/get``: the prompt; ``resources/*``: the resource.
    tool_name: str | None = None
    prompt_name: str | None = None
    resource_uri: str | None = None
    #: Tool arguments (``tools/call``) or prompt arguments (``prompts/get``): content.
    arguments: Any = None
    #: What the tool returned (``tools/call``): content.
    result: Any = None
    #: The tool reported a failure in its result (``isError: true``) rather than as an error response.
    tool_error: bool = False
    #: The JSON-RPC error code of an error response.
    error_code: int | None = None
    error: ErrorInfo | None = None
