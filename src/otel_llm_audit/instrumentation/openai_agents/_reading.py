"""What the Agents SDK's span data says, read into our records. Knows the SDK's data shapes, not OpenTelemetry.

The SDK hands its tracing processors plain data: the model's output as a list of dicts (a
Chat Completions message, or a Responses ``Response`` dumped to a dict when the chat model
streamed) or as a ``Response`` object, tool arguments as JSON text, errors as
``{"message": ..., "data": ...}``. The readers here accept all of those shapes (and the
ones in between releases) and never raise: an unexpected shape reads as "nothing known".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from otel_llm_audit import semconv
from otel_llm_audit.instrumentation.openai import _capture
from otel_llm_audit.instrumentation.readers import as_float, as_int, as_str, get, host_and_port, json_or_text
from otel_llm_audit.records import ErrorInfo, LLMCall, Message, RequestParams, Usage

#: ``error.type`` when the SDK reports a failure without its exception (a ``SpanError``).
OTHER_ERROR = "_OTHER"
#: The message of the ``SpanError`` the SDK attaches when a guardrail's tripwire stops the run.
TRIPWIRE_MESSAGE = "Guardrail tripwire triggered"


@dataclass(slots=True)
class ToolCall:
    """A tool (or handoff) the model asked for in one answer."""

    name: str
    call_id: str | None = None
    arguments: str | None = None


@dataclass(slots=True)
class ModelTurn:
    """What one model answer chose: the tool calls, and any text said with them."""

    calls: list[ToolCall] = field(default_factory=list)
    text: str | None = None


def iso_to_ns(value: Any) -> int | None:
    """Nanoseconds since the epoch of the SDK's ISO 8601 timestamps (``started_at``)."""
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value).timestamp() * 1_000_000_000)
    except ValueError:
        return None


def span_error(error: Any) -> ErrorInfo | None:
    """Our error record of the SDK's ``SpanError`` (a dict of ``message`` and ``data``).

    The SDK does not keep the exception, so ``error.type`` is the conventions' ``_OTHER``; the
    message and the ``data.error`` detail (when the SDK includes it) make the description.
    """
    if not error:
        return None
    message = as_str(get(error, "message")) or "error"
    detail = get(get(error, "data"), "error")
    if isinstance(detail, str) and detail:
        message = f"{message}: {detail}"
    return ErrorInfo(type=OTHER_ERROR, message=message)


def tripwire_guardrail(error: Any) -> tuple[str | None, str | None] | None:
    """``(guardrail name, stage)`` when ``error`` is the SDK's guardrail tripwire, else ``None``."""
    if not error or get(error, "message") != TRIPWIRE_MESSAGE:
        return None
    data = get(error, "data")
    return as_str(get(data, "guardrail")), as_str(get(data, "type"))


def handoff_tool_name(agent_name: str) -> str:
    """The tool name the SDK gives a handoff to ``agent_name`` by default (``transfer_to_<snake>``)."""
    return re.sub(r"[^a-zA-Z0-9]", "_", f"transfer_to_{agent_name}".replace(" ", "_")).lower()


# ---------------------------------------------------------------------------------------
# The model's answer: which tools it called and what it said


def _is_response(item: Any) -> bool:
    """A Responses API ``Response`` (object or dict dump) rather than a chat message."""
    return get(item, "output") is not None and get(item, "role") is None


def read_turn(output: Any) -> ModelTurn | None:
    """The tool calls and text of a generation's output or a ``Response``; ``None`` when unknown."""
    if output is None:
        return None
    items = output if isinstance(output, (list, tuple)) else [output]
    turn = ModelTurn()
    texts: list[str] = []
    for item in items:
        if _is_response(item):
            _read_response_output(get(item, "output"), turn, texts)
        else:
            _read_chat_message(item, turn, texts)
    turn.text = " ".join(t for t in texts if t) or None
    return turn


def _read_chat_message(message: Any, turn: ModelTurn, texts: list[str]) -> None:
    content = get(message, "content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, (list, tuple)):
        texts.extend(str(get(p, "text")) for p in content if isinstance(get(p, "text"), str))
    for call in get(message, "tool_calls") or ():
        function = get(call, "function")
        name = as_str(get(function, "name"))
        if name:
            turn.calls.append(ToolCall(name, as_str(get(call, "id")) or None, as_str(get(function, "arguments"))))


def _read_response_output(output: Any, turn: ModelTurn, texts: list[str]) -> None:
    for item in output or ():
        kind = get(item, "type")
        if kind == "function_call":
            name = as_str(get(item, "name"))
            if name:
                turn.calls.append(ToolCall(name, as_str(get(item, "call_id")) or None, as_str(get(item, "arguments"))))
        elif kind == "message":
            texts.extend(str(get(p, "text")) for p in get(item, "content") or () if isinstance(get(p, "text"), str))
        elif kind == "reasoning":
            texts.extend(str(get(s, "text")) for s in get(item, "summary") or () if isinstance(get(s, "text"), str))


# ---------------------------------------------------------------------------------------
# The LLM call itself, for when no provider instrumentor recorded it


def llm_call_from_generation(data: Any, start_ns: int | None, error: ErrorInfo | None) -> LLMCall:
    """A Chat Completions call (``GenerationSpanData``) as a record; content is read off-thread."""
    config = get(data, "model_config")
    host, port = host_and_port(get(config, "base_url"))
    record = LLMCall(
        operation=semconv.GenAiOperationNameValues.CHAT,
        provider="openai",
        request_model=as_str(get(data, "model")),
        server_address=host,
        server_port=port,
        api_type="chat_completions",
    )
    if start_ns is not None:
        record.start_ns = start_ns
    record.error = error
    record.params = RequestParams(
        max_tokens=as_int(get(config, "max_tokens")),
        temperature=as_float(get(config, "temperature")),
        top_p=as_float(get(config, "top_p")),
    )
    record.usage = _usage(get(data, "usage"))
    messages, output = get(data, "input"), get(data, "output")
    record.resolver = lambda rec: _resolve_generation(rec, messages, output)
    return record


def _resolve_generation(record: LLMCall, messages: Any, output: Any) -> None:
    if isinstance(messages, (list, tuple)):
        record.input_messages = [_capture.chat_message(m) for m in messages]
    outputs: list[Message] = []
    for item in output if isinstance(output, (list, tuple)) else ():
        if _is_response(item):
            # A streamed chat answer the SDK assembled into a Responses object of its own: its
            # output is the model's; its id, model and status are the SDK's placeholders.
            _capture.resolve_response_object(record, item, with_usage=record.usage.input_tokens is None)
            record.response_id = record.response_model = record.response_status = record.service_tier = None
            outputs.extend(record.output_messages or ())
            continue
        message = _capture.chat_message(item)
        message.role = "assistant"
        message.finish_reason = "tool_call" if get(item, "tool_calls") else "stop"
        outputs.append(message)
    if outputs:
        record.output_messages = outputs
        record.finish_reasons = [m.finish_reason or "stop" for m in outputs]


def llm_call_from_response(data: Any, start_ns: int | None, error: ErrorInfo | None) -> LLMCall:
    """A Responses API call (``ResponseSpanData``) as a record; content is read off-thread."""
    response = get(data, "response")
    # The SDK keeps the response, not the request: the model the response names is the
    # response model (``gen_ai.response.model``); the request model stays unknown.
    record = LLMCall(
        operation=semconv.GenAiOperationNameValues.CHAT, provider="openai", request_model=None, api_type="responses"
    )
    if start_ns is not None:
        record.start_ns = start_ns
    record.error = error
    record.response_id = as_str(get(response, "id")) or as_str(get(data, "_response_id"))
    record.usage = _usage(get(data, "usage"))
    user_input = get(data, "input")
    record.resolver = lambda rec: _resolve_response(rec, user_input, response)
    return record


def _resolve_response(record: LLMCall, user_input: Any, response: Any) -> None:
    if isinstance(user_input, str):
        record.input_messages = [Message(role="user", parts=[{"type": "text", "content": user_input}])]
    elif isinstance(user_input, (list, tuple)):
        record.input_messages = [_capture.responses_input_item(i) for i in user_input]
    instructions = get(response, "instructions")
    if isinstance(instructions, str) and instructions:
        record.system_instructions = [{"type": "text", "content": instructions}]
    if response is not None:
        _capture.resolve_response_object(record, response, with_usage=record.usage.input_tokens is None)


def _usage(usage: Any) -> Usage:
    if not isinstance(usage, Mapping):
        return Usage()
    return Usage(
        input_tokens=as_int(usage.get("input_tokens")),
        output_tokens=as_int(usage.get("output_tokens")),
        cache_read_input_tokens=as_int(get(usage.get("input_tokens_details"), "cached_tokens")),
        reasoning_output_tokens=as_int(get(usage.get("output_tokens_details"), "reasoning_tokens")),
    )


def tool_arguments(value: Any) -> Any:
    """Tool arguments as the conventions want them: the object when the JSON text parses."""
    return json_or_text(value)
