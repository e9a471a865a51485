"""Anthropic Messages API request and response shapes -> records. Knows the SDK, not OpenTelemetry.

:func:`snapshot_body` runs on the caller's thread and only copies what the application could
change after the call. From ``anthropic`` 1.8 on the body reaches ``request`` unprepared: unset
parameters are ``Omit`` placeholders, and ``messages`` may be a one-shot generator that the
SDK consumes once; so placeholders are dropped and anything that is not a list is left alone
(never iterated). :func:`resolve_messages` runs later, off the caller's thread, and walks the
request and the ``Message`` or the stream's events into the record.

Token accounting follows the conventions: ``gen_ai.usage.input_tokens`` is Anthropic's
``input_tokens`` plus the cache reads and writes (Anthropic counts them apart). A ``refusal``
stop reason is a policy event (category ``refusal``, action ``refused``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_llm_audit.instrumentation.readers import as_float, as_int, as_str, as_str_list, get, json_or_text
from otel_llm_audit.records import LLMCall, Message, Part, PolicyEvent, RequestParams, Usage

#: ``stop_reason`` -> the conventions' ``finish_reason`` of an output message.
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_call",
    "refusal": "content_filter",
}
#: Names of the SDK's placeholders for unset parameters (``NotGiven`` before 1.8, ``Omit`` after).
_SENTINELS = frozenset({"NotGiven", "Omit"})


class AnthropicCallState:
    """What the caller's thread keeps for the resolver: the request, then the response or events."""

    __slots__ = ("body", "chunks", "response")

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.response: Any = None
        self.chunks: list[Any] = []


def _is_sentinel(value: Any) -> bool:
    return type(value).__name__ in _SENTINELS


def snapshot_body(json_data: Any, extra_json: Any = None) -> dict[str, Any]:
    """A shallow copy of the body as it will be sent: placeholders dropped, ``extra_body`` merged."""
    snap: dict[str, Any] = {}
    for source in (json_data, extra_json):
        if isinstance(source, Mapping):
            for key, value in source.items():
                if not _is_sentinel(value):
                    snap[key] = value
    messages = snap.get("messages")
    if isinstance(messages, (list, tuple)):
        snap["messages"] = [dict(m) if isinstance(m, dict) else m for m in messages]
    elif messages is not None:
        snap["messages"] = None  # a generator the SDK will consume: not ours to iterate
        snap["_messages_not_captured"] = type(messages).__name__
    return snap


# ---------------------------------------------------------------------------------------
# Request


def request_params(body: Mapping[str, Any]) -> RequestParams:
    output_config = body.get("output_config")
    # Structured output (``messages.parse``): ``output_config.format``, or the top-level
    # ``output_format`` that the structured-outputs beta took before it moved into ``output_config``.
    formats = (get(output_config, "format"), body.get("output_format"))
    json_output = any(fmt is not None and get(fmt, "type") == "json_schema" for fmt in formats)
    return RequestParams(
        max_tokens=as_int(body.get("max_tokens")),
        temperature=as_float(body.get("temperature")),
        top_p=as_float(body.get("top_p")),
        top_k=as_int(body.get("top_k")),
        stop_sequences=as_str_list(body.get("stop_sequences")),
        reasoning_level=as_str(get(output_config, "effort")),
        output_type="json" if json_output else None,
        previous_response_id=_continued_from(body.get("thread")),
        service_tier=as_str(body.get("service_tier")),
    )


def _continued_from(thread: Any) -> str | None:
    """The reply a message-threads turn continues from (``thread: {type: continue, previous_message_id}``).

    Such a turn (the 2.x tool runner's default) sends only the messages the server lacks; the
    earlier ones, with the tool call being answered, are in the span of the reply it names.
    """
    if get(thread, "type") != "continue":
        return None
    return as_str(get(thread, "previous_message_id"))


def content_part(block: Any) -> Part:
    """One content block of a request or response message, as a conventions part."""
    kind = get(block, "type")
    if kind == "text":
        return {"type": "text", "content": get(block, "text", "")}
    if kind == "tool_use":
        return {"type": "tool_call", "id": get(block, "id"), "name": get(block, "name"), "arguments": _input(block)}
    if kind == "tool_result":
        return {"type": "tool_call_response", "id": get(block, "tool_use_id"), "response": _result(block)}
    if kind == "thinking":
        return {"type": "reasoning", "content": get(block, "thinking", "")}
    if kind == "redacted_thinking":
        return {"type": "reasoning", "content": "", "redacted": True}
    if kind in ("image", "document"):
        return _media(kind, get(block, "source"))
    if kind in ("server_tool_use", "mcp_tool_use"):
        return {
            "type": "server_tool_call",
            "id": get(block, "id"),
            "name": get(block, "name"),
            "server_tool_call": {"type": kind, "arguments": _input(block)},
        }
    if isinstance(kind, str) and kind.endswith("_tool_result"):
        return {
            "type": "server_tool_call_response",
            "id": get(block, "tool_use_id"),
            "server_tool_call_response": {"type": kind},
        }
    if isinstance(block, str):
        return {"type": "text", "content": block}
    return {"type": str(kind)}


def _input(block: Any) -> Any:
    value = get(block, "input")
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    return json_or_text(value)


def _result(block: Any) -> Any:
    content = get(block, "content")
    if isinstance(content, str) or content is None:
        return content
    if isinstance(content, (list, tuple)):
        texts = [get(item, "text") for item in content if get(item, "type") == "text"]
        if len(texts) == len(content):
            return "".join(t for t in texts if isinstance(t, str))
        return [content_part(item) for item in content]
    return str(content)


def _media(kind: str, source: Any) -> Part:
    modality = "image" if kind == "image" else "document"
    source_type = get(source, "type")
    if source_type == "base64":
        return {
            "type": "blob",
            "modality": modality,
            "mime_type": get(source, "media_type"),
            "content": get(source, "data"),
        }
    if source_type == "url":
        return {"type": "uri", "modality": modality, "uri": get(source, "url")}
    if source_type == "file":
        return {"type": "file", "modality": modality, "file_id": get(source, "file_id")}
    if source_type == "text":
        return {"type": "text", "content": get(source, "data", "")}
    return {"type": "blob", "modality": modality}


def _parts(content: Any) -> list[Part]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, (list, tuple)):
        return [content_part(block) for block in content]
    return []


def input_messages(body: Mapping[str, Any]) -> list[Message] | None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    out = []
    for message in messages:
        role = get(message, "role")
        out.append(Message(role=role if isinstance(role, str) else "user", parts=_parts(get(message, "content"))))
    return out


def system_instructions(body: Mapping[str, Any]) -> list[Part] | None:
    system = body.get("system")
    if system is None:
        return None
    parts = _parts(system)
    return parts or None


def tool_definitions(body: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    tools = body.get("tools")
    if not isinstance(tools, (list, tuple)) or not tools:
        return None
    out: list[dict[str, Any]] = []
    for tool in tools:
        kind = get(tool, "type")
        if kind in (None, "custom"):
            definition: dict[str, Any] = {"type": "function", "name": get(tool, "name")}
            if get(tool, "description") is not None:
                definition["description"] = get(tool, "description")
            if get(tool, "input_schema") is not None:
                definition["parameters"] = get(tool, "input_schema")
        else:  # a server tool (web_search_20250305, bash_20250124, ...)
            definition = {"type": str(kind), "name": get(tool, "name")}
        out.append(definition)
    return out


# ---------------------------------------------------------------------------------------
# Response


def usage_of(usage: Any) -> Usage:
    """Usage per the conventions: input includes cache reads and writes."""
    return Usage.with_cache_apart(
        as_int(get(usage, "input_tokens")),
        as_int(get(usage, "output_tokens")),
        as_int(get(usage, "cache_read_input_tokens")),
        as_int(get(usage, "cache_creation_input_tokens")),
        as_int(get(get(usage, "output_tokens_details"), "thinking_tokens")),
    )


def _finish(record: LLMCall, stop_reason: Any, stop_details: Any, parts: list[Part]) -> None:
    reason = as_str(stop_reason)
    if reason is not None:
        record.finish_reasons = [reason]
    record.output_messages = [
        Message(role="assistant", parts=parts, finish_reason=_FINISH.get(reason, reason) if reason else None)
    ]
    if reason == "refusal":
        details: dict[str, Any] = {"stop_reason": reason}
        category = as_str(get(stop_details, "category"))
        if category is not None:
            details["category"] = category
        record.policy_events.append(
            PolicyEvent("refusal", "refused", source=record.provider, name="stop_reason", details=details)
        )


def _response(record: LLMCall, message: Any) -> None:
    record.response_id = as_str(get(message, "id"))
    record.response_model = as_str(get(message, "model"))
    usage = get(message, "usage")
    record.usage = usage_of(usage)
    record.service_tier = as_str(get(usage, "service_tier"))
    content = get(message, "content")
    parts = [content_part(block) for block in content] if isinstance(content, (list, tuple)) else []
    _finish(record, get(message, "stop_reason"), get(message, "stop_details"), parts)


class _Block:
    """A content block being assembled from stream deltas."""

    __slots__ = ("json", "start", "text", "thinking")

    def __init__(self, start: Any) -> None:
        self.start = start
        self.text: list[str] = []
        self.json: list[str] = []
        self.thinking: list[str] = []

    def part(self) -> Part:
        kind = get(self.start, "type")
        if kind == "text":
            return {"type": "text", "content": (get(self.start, "text") or "") + "".join(self.text)}
        if kind == "thinking":
            return {"type": "reasoning", "content": (get(self.start, "thinking") or "") + "".join(self.thinking)}
        if kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
            raw = "".join(self.json)
            arguments = json_or_text(raw) if raw else _input(self.start)
            if kind == "tool_use":
                return {
                    "type": "tool_call",
                    "id": get(self.start, "id"),
                    "name": get(self.start, "name"),
                    "arguments": arguments,
                }
            return {
                "type": "server_tool_call",
                "id": get(self.start, "id"),
                "name": get(self.start, "name"),
                "server_tool_call": {"type": kind, "arguments": arguments},
            }
        return content_part(self.start)


def _stream(record: LLMCall, events: list[Any]) -> None:
    """Assemble the answer from the stream's events (usage in ``message_delta`` is cumulative)."""
    blocks: dict[int, _Block] = {}
    usage: dict[str, Any] = {}
    stop_reason: Any = None
    stop_details: Any = None
    for event in events:
        kind = get(event, "type")
        if kind == "message_start":
            message = get(event, "message")
            record.response_id = as_str(get(message, "id"))
            record.response_model = as_str(get(message, "model"))
            _merge_usage(usage, get(message, "usage"))
        elif kind == "content_block_start":
            blocks[as_int(get(event, "index")) or 0] = _Block(get(event, "content_block"))
        elif kind == "content_block_delta":
            block = blocks.get(as_int(get(event, "index")) or 0)
            delta = get(event, "delta")
            if block is None or delta is None:
                continue
            delta_type = get(delta, "type")
            if delta_type == "text_delta":
                block.text.append(get(delta, "text") or "")
            elif delta_type == "input_json_delta":
                block.json.append(get(delta, "partial_json") or "")
            elif delta_type == "thinking_delta":
                block.thinking.append(get(delta, "thinking") or "")
        elif kind == "message_delta":
            delta = get(event, "delta")
            stop_reason = get(delta, "stop_reason") or stop_reason
            stop_details = get(delta, "stop_details") or stop_details
            _merge_usage(usage, get(event, "usage"))
    record.usage = usage_of(usage)
    record.service_tier = as_str(usage.get("service_tier"))
    parts = [blocks[i].part() for i in sorted(blocks)]
    _finish(record, stop_reason, stop_details, parts)


def _merge_usage(into: dict[str, Any], usage: Any) -> None:
    for name in (
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "service_tier",
        "output_tokens_details",
    ):
        value = get(usage, name)
        if value is not None:
            into[name] = value


def resolve_messages(record: LLMCall, state: AnthropicCallState) -> None:
    """Fill ``record`` from the request and the ``Message`` or the stream's events."""
    body = state.body
    record.params = request_params(body)
    record.system_instructions = system_instructions(body)
    record.input_messages = input_messages(body)
    record.tool_definitions = tool_definitions(body)
    if "_messages_not_captured" in body:
        record.notes.append(f"messages passed as {body['_messages_not_captured']}, not a list: not recorded")
    if state.response is not None:
        _response(record, state.response)
    elif state.chunks:
        _stream(record, state.chunks)
