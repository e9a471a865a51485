"""OpenAI request and response shapes -> records. Knows the SDK, not OpenTelemetry.

``snapshot_*`` runs on the caller's thread and only copies what the application could
mutate after the call (its ``messages`` list, its message dicts). The ``resolve_*`` functions
run later, off the caller's thread, and walk the request, the response object or the list of
stream chunks to fill in the record. They must cope with anything: a missing field, a new
SDK type, a malformed chunk becomes a note on the record, never an exception that loses it.

What the provider says about safety becomes a policy event on the record (never the content
that triggered it): a ``content_filter`` finish reason or incomplete reason, a refusal, Azure
OpenAI's content filter annotations (``prompt_filter_results``, per-choice
``content_filter_results``, the Responses API's ``content_filters``) and Azure's 400
``content_filter`` error, which stays an error and carries its policy event too.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from otel_llm_audit.instrumentation.openai._safety import (
    FilterTallies,
    FilterTally,
    choice_policy_events,
    content_filters_events,
    error_policy_events,
    extra,
    may_have_extras,
    refusal_event,
)
from otel_llm_audit.instrumentation.readers import (
    as_float,
    as_int,
    as_str,
    as_str_list,
    get,
    json_or_text,
    view,
)
from otel_llm_audit.records import LLMCall, Message, Part, PolicyEvent, RequestParams, Usage

# ---------------------------------------------------------------------------------------
# Snapshots (caller's thread)


def snapshot_body(body: Any) -> dict[str, Any]:
    """A shallow copy of the request body, with the message lists and dicts copied too."""
    if not isinstance(body, Mapping):
        return {}
    snap = dict(body)
    for key in ("messages", "input"):
        value = snap.get(key)
        if isinstance(value, (list, tuple)):
            snap[key] = [dict(item) if isinstance(item, dict) else item for item in value]
    return snap


class OpenAICallState:
    """What the caller's thread keeps for the resolver: the request, then the response or chunks."""

    __slots__ = ("body", "chunks", "path", "response")

    def __init__(self, path: str, body: dict[str, Any]) -> None:
        self.path = path
        self.body = body
        self.response: Any = None
        self.chunks: list[Any] = []


# ---------------------------------------------------------------------------------------
# Small readers (shared with the other capture modules)

_get = get
_int = as_int
_float = as_float
_str = as_str
_str_list = as_str_list
_json_or_text = json_or_text


# ---------------------------------------------------------------------------------------
# Chat Completions


def chat_params(body: Mapping[str, Any]) -> RequestParams:
    response_format = body.get("response_format")
    fmt_type = _str(_get(response_format, "type"))
    return RequestParams(
        max_tokens=_int(body.get("max_completion_tokens")) or _int(body.get("max_tokens")),
        temperature=_float(body.get("temperature")),
        top_p=_float(body.get("top_p")),
        stop_sequences=_str_list(body.get("stop")),
        frequency_penalty=_float(body.get("frequency_penalty")),
        presence_penalty=_float(body.get("presence_penalty")),
        seed=_int(body.get("seed")),
        choice_count=_int(body.get("n")),
        reasoning_level=_str(body.get("reasoning_effort")),
        output_type=_output_type(fmt_type),
        service_tier=_str(body.get("service_tier")),
    )


def _output_type(fmt_type: str | None) -> str | None:
    if fmt_type is None:
        return None
    return "json" if fmt_type in ("json_object", "json_schema") else "text" if fmt_type == "text" else fmt_type


def chat_content_part(part: Any) -> Part:
    """One element of a chat message's content list, as a conventions part."""
    kind = _get(part, "type")
    if kind == "text":
        return {"type": "text", "content": _get(part, "text", "")}
    if kind == "image_url":
        url = _get(_get(part, "image_url"), "url", "")
        return _uri_or_blob(url, "image")
    if kind == "input_audio":
        audio = _get(part, "input_audio")
        return {"type": "blob", "modality": "audio", "mime_type": f"audio/{_get(audio, 'format', 'wav')}",
                "content": _get(audio, "data", "")}
    if kind == "file":
        file = _get(part, "file")
        file_id = _get(file, "file_id")
        if file_id:
            return {"type": "file", "modality": "document", "file_id": file_id}
        return {"type": "blob", "modality": "document", "content": _get(file, "file_data", "")}
    if kind == "refusal":
        return {"type": "text", "content": _get(part, "refusal", "")}
    return {"type": str(kind or "unknown")}


def _uri_or_blob(url: Any, modality: str) -> Part:
    if isinstance(url, str) and url.startswith("data:"):
        header, _, data = url.partition(",")
        mime = header[5:].split(";", 1)[0] or None
        part: Part = {"type": "blob", "modality": modality, "content": data}
        if mime:
            part["mime_type"] = mime
        return part
    return {"type": "uri", "modality": modality, "uri": str(url)}


def chat_message(message: Any) -> Message:
    if type(message) is dict and len(message) == 2:  # {"role": ..., "content": "..."}: most of a history
        role, content = message.get("role"), message.get("content")
        if type(role) is str and type(content) is str and role != "tool":
            return Message(role=role, parts=[{"type": "text", "content": content}])
    role = str(_get(message, "role", "user"))
    parts: list[Part] = []
    content = _get(message, "content")
    if role == "tool":
        parts.append({"type": "tool_call_response", "id": _get(message, "tool_call_id"),
                      "response": _text_of(content)})
    elif isinstance(content, str):
        parts.append({"type": "text", "content": content})
    elif isinstance(content, (list, tuple)):
        parts.extend(chat_content_part(p) for p in content)
    for call in _get(message, "tool_calls") or ():
        function = _get(call, "function")
        parts.append({"type": "tool_call", "id": _get(call, "id"), "name": _get(function, "name"),
                      "arguments": _json_or_text(_get(function, "arguments"))})
    legacy_call = _get(message, "function_call")
    if legacy_call:
        parts.append({"type": "tool_call", "name": _get(legacy_call, "name"),
                      "arguments": _json_or_text(_get(legacy_call, "arguments"))})
    return Message(role=role, parts=parts, name=_str(_get(message, "name")))


def _text_of(content: Any) -> Any:
    """A tool result's text; content that is not a list of text parts is kept as sent."""
    if isinstance(content, (list, tuple)) and any(isinstance(_get(p, "text"), str) for p in content):
        return "".join(str(_get(p, "text", "")) for p in content)
    return content


def tool_definitions(tools: Any) -> list[dict[str, Any]] | None:
    """Chat and Responses tool lists as the conventions' ``gen_ai.tool.definitions``."""
    if not isinstance(tools, (list, tuple)) or not tools:
        return None
    out: list[dict[str, Any]] = []
    for tool in tools:
        kind = _get(tool, "type", "function")
        function = _get(tool, "function") or tool  # chat nests under "function"; responses does not
        if kind == "function":
            definition: dict[str, Any] = {"type": "function", "name": _get(function, "name")}
            for key in ("description", "parameters"):
                value = _get(function, key)
                if value is not None:
                    definition[key] = value
            out.append(definition)
        else:
            out.append({"type": str(kind), "name": str(_get(tool, "name") or kind)})
    return out


_FINISH_TO_PART_REASON = {"tool_calls": "tool_call", "function_call": "tool_call"}


def chat_usage(usage: Any) -> Usage:
    return Usage(
        input_tokens=_int(_get(usage, "prompt_tokens")),
        output_tokens=_int(_get(usage, "completion_tokens")),
        cache_read_input_tokens=_int(_get(_get(usage, "prompt_tokens_details"), "cached_tokens")),
        reasoning_output_tokens=_int(_get(_get(usage, "completion_tokens_details"), "reasoning_tokens")),
    )


def resolve_chat(record: LLMCall, state: OpenAICallState) -> None:
    body = state.body
    record.params = chat_params(body)
    messages = body.get("messages")
    if isinstance(messages, (list, tuple)):
        record.input_messages = [chat_message(m) for m in messages]
    record.tool_definitions = tool_definitions(body.get("tools") or body.get("functions"))
    if state.chunks:
        _resolve_chat_chunks(record, state.chunks)
    elif state.response is not None:
        _resolve_chat_completion(record, state.response)
    if record.error is not None:
        error_policy_events(record)


def _resolve_chat_completion(record: LLMCall, completion: Any) -> None:
    if isinstance(completion, (str, bytes)):
        record.notes.append("response was not a chat completion object")
        return
    record.response_id = _str(_get(completion, "id"))
    record.response_model = _str(_get(completion, "model"))
    record.system_fingerprint = _str(_get(completion, "system_fingerprint"))
    record.service_tier = _str(_get(completion, "service_tier"))
    choices = _get(completion, "choices") or []
    reasons: list[str] = []
    outputs: list[Message] = []
    for choice in choices:
        reason = _str(_get(choice, "finish_reason")) or "error"
        reasons.append(reason)
        message = chat_message(_get(choice, "message") or {})
        refusal = _get(_get(choice, "message"), "refusal")
        if refusal:
            message.parts.append({"type": "refusal", "content": refusal})
        message.role = message.role or "assistant"
        message.finish_reason = _FINISH_TO_PART_REASON.get(reason, reason)
        outputs.append(message)
    record.finish_reasons = reasons
    record.output_messages = outputs
    record.usage = chat_usage(_get(completion, "usage"))
    prompts = FilterTallies()
    prompts.add_prompt_results(completion)
    prompts.emit(record, scope="prompt")
    for position, choice in enumerate(choices):
        index = _int(_get(choice, "index"))
        tally = FilterTally()
        tally.add(extra(choice, "content_filter_results"))
        choice_policy_events(record, position if index is None else index, reasons[position], tally,
                              bool(_get(_get(choice, "message"), "refusal")))


class _ChoiceAccumulator:
    __slots__ = ("filters", "finish_reason", "refusal", "role", "text", "tool_calls")

    def __init__(self) -> None:
        self.role = "assistant"
        self.text: list[str] = []
        self.refusal: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.filters: FilterTally | None = None


def _resolve_chat_chunks(record: LLMCall, chunks: list[Any]) -> None:
    choices: dict[int, _ChoiceAccumulator] = {}
    prompts = FilterTallies()
    for raw_chunk in chunks:
        chunk = view(raw_chunk)
        # Azure's first chunk carries only the prompt filter results, with "" for id and model.
        if record.response_id is None:
            record.response_id = _str(getattr(chunk, "id", None)) or None
        if record.response_model is None:
            record.response_model = _str(getattr(chunk, "model", None)) or None
        if may_have_extras(chunk):
            prompts.add_prompt_results(chunk)
        if record.system_fingerprint is None:
            record.system_fingerprint = _str(getattr(chunk, "system_fingerprint", None))
        if record.service_tier is None:
            record.service_tier = _str(getattr(chunk, "service_tier", None))
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            record.usage = chat_usage(usage)
        for choice in getattr(chunk, "choices", None) or ():
            index = getattr(choice, "index", 0)
            acc = choices.get(index)
            if acc is None:
                acc = choices[index if isinstance(index, int) else 0] = _ChoiceAccumulator()
            delta = getattr(choice, "delta", None)
            if delta is not None:
                role = getattr(delta, "role", None)
                if role:
                    acc.role = role
                content = getattr(delta, "content", None)
                if content:
                    acc.text.append(str(content))
                refusal = getattr(delta, "refusal", None)
                if refusal:
                    acc.refusal.append(str(refusal))
                for call in getattr(delta, "tool_calls", None) or ():
                    slot = acc.tool_calls.setdefault(getattr(call, "index", 0), {"id": None, "name": None, "args": []})
                    slot["id"] = slot["id"] or getattr(call, "id", None)
                    function = getattr(call, "function", None)
                    slot["name"] = slot["name"] or getattr(function, "name", None)
                    arguments = getattr(function, "arguments", None)
                    if arguments:
                        slot["args"].append(str(arguments))
            reason = getattr(choice, "finish_reason", None)
            if reason:
                acc.finish_reason = str(reason)
            filter_results = extra(choice, "content_filter_results") if may_have_extras(choice) else None
            if filter_results:
                if acc.filters is None:
                    acc.filters = FilterTally()
                acc.filters.add(filter_results)
    outputs: list[Message] = []
    reasons: list[str] = []
    prompts.emit(record, scope="prompt")
    for index in sorted(choices):
        acc = choices[index]
        parts: list[Part] = []
        if acc.text:
            parts.append({"type": "text", "content": "".join(acc.text)})
        if acc.refusal:
            parts.append({"type": "refusal", "content": "".join(acc.refusal)})
        for call_index in sorted(acc.tool_calls):
            slot = acc.tool_calls[call_index]
            parts.append({"type": "tool_call", "id": slot["id"], "name": slot["name"],
                          "arguments": _json_or_text("".join(slot["args"]))})
        reason = acc.finish_reason or "error"
        reasons.append(reason)
        outputs.append(Message(role=acc.role, parts=parts,
                               finish_reason=_FINISH_TO_PART_REASON.get(reason, reason)))
        choice_policy_events(record, index, reason, acc.filters or FilterTally(), bool(acc.refusal))
    record.output_messages = outputs
    record.finish_reasons = reasons


# ---------------------------------------------------------------------------------------
# Responses API


def responses_params(body: Mapping[str, Any]) -> RequestParams:
    text = body.get("text")
    conversation = body.get("conversation")
    return RequestParams(
        max_tokens=_int(body.get("max_output_tokens")),
        temperature=_float(body.get("temperature")),
        top_p=_float(body.get("top_p")),
        reasoning_level=_str(_get(body.get("reasoning"), "effort")),
        output_type=_output_type(_str(_get(_get(text, "format"), "type"))),
        previous_response_id=_str(body.get("previous_response_id")),
        service_tier=_str(body.get("service_tier")),
        conversation_id=_str(conversation) or _str(_get(conversation, "id")),
    )


def responses_input_item(item: Any) -> Message:
    kind = _get(item, "type", "message")
    if kind == "function_call":
        return Message(role="assistant", parts=[{"type": "tool_call", "id": _get(item, "call_id"),
                                                 "name": _get(item, "name"),
                                                 "arguments": _json_or_text(_get(item, "arguments"))}])
    if kind == "function_call_output":
        return Message(role="tool", parts=[{"type": "tool_call_response", "id": _get(item, "call_id"),
                                            "response": _get(item, "output")}])
    if kind == "message" or _get(item, "role") is not None:
        content = _get(item, "content")
        parts: list[Part] = []
        if isinstance(content, str):
            parts.append({"type": "text", "content": content})
        else:
            for p in content or ():
                parts.append(_responses_content_part(p))
        return Message(role=str(_get(item, "role", "user")), parts=parts)
    return Message(role="user", parts=[{"type": str(kind)}])


def _responses_content_part(part: Any) -> Part:
    kind = _get(part, "type")
    if kind in ("input_text", "output_text"):
        return {"type": "text", "content": _get(part, "text", "")}
    if kind == "refusal":
        return {"type": "refusal", "content": _get(part, "refusal", "")}
    if kind == "input_image":
        if _get(part, "file_id"):
            return {"type": "file", "modality": "image", "file_id": _get(part, "file_id")}
        return _uri_or_blob(_get(part, "image_url", ""), "image")
    if kind == "input_file":
        if _get(part, "file_id"):
            return {"type": "file", "modality": "document", "file_id": _get(part, "file_id")}
        return {"type": "blob", "modality": "document", "content": _get(part, "file_data", "")}
    return {"type": str(kind or "unknown")}


def resolve_responses(record: LLMCall, state: OpenAICallState) -> None:
    body = state.body
    record.params = responses_params(body)
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        record.system_instructions = [{"type": "text", "content": instructions}]
    user_input = body.get("input")
    if isinstance(user_input, str):
        record.input_messages = [Message(role="user", parts=[{"type": "text", "content": user_input}])]
    elif isinstance(user_input, (list, tuple)):
        record.input_messages = [responses_input_item(i) for i in user_input]
    record.tool_definitions = tool_definitions(body.get("tools"))
    response = state.response
    if state.chunks:
        response = _response_from_events(record, state.chunks)
    if response is not None:
        resolve_response_object(record, response, with_usage=True)
    if record.error is not None:
        error_policy_events(record)


def _response_from_events(record: LLMCall, events: list[Any]) -> Any:
    """The final response of a stream, or what the deltas say when it never came."""
    final = None
    texts: list[str] = []
    refusals: list[str] = []
    refusal_at: dict[str, Any] = {}
    for event in events:
        kind = _get(event, "type")
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            final = _get(event, "response")
        elif kind == "response.created":
            created = _get(event, "response")
            record.response_id = _str(_get(created, "id"))
            record.response_model = _str(_get(created, "model"))
        elif kind == "response.output_text.delta":
            texts.append(str(_get(event, "delta", "")))
        elif kind == "response.refusal.delta":
            refusals.append(str(_get(event, "delta", "")))
            if not refusal_at:
                refusal_at = {"output_index": _int(_get(event, "output_index")),
                              "content_index": _int(_get(event, "content_index"))}
    if final is None and (texts or refusals):
        parts: list[Part] = [{"type": "text", "content": "".join(texts)}] if texts else []
        if refusals:
            parts.append({"type": "refusal", "content": "".join(refusals)})
            record.policy_events.append(refusal_event(record, {k: v for k, v in refusal_at.items() if v is not None}))
        record.output_messages = [Message(role="assistant", parts=parts, finish_reason="error")]
        record.finish_reasons = ["error"]
    return final


def resolve_response_object(record: LLMCall, response: Any, *, with_usage: bool) -> None:
    record.response_id = _str(_get(response, "id")) or record.response_id
    record.response_model = _str(_get(response, "model")) or record.response_model
    record.response_status = _str(_get(response, "status"))
    record.service_tier = _str(_get(response, "service_tier"))
    parts: list[Part] = []
    has_tool_call = False
    refusals: list[dict[str, Any]] = []
    for output_index, item in enumerate(_get(response, "output") or ()):
        kind = _get(item, "type")
        if kind == "message":
            for content_index, p in enumerate(_get(item, "content") or ()):
                part = _responses_content_part(p)
                if part["type"] == "refusal":
                    refusals.append({"output_index": output_index, "content_index": content_index})
                parts.append(part)
        elif kind == "function_call":
            has_tool_call = True
            parts.append({"type": "tool_call", "id": _get(item, "call_id"), "name": _get(item, "name"),
                          "arguments": _json_or_text(_get(item, "arguments"))})
        elif kind == "reasoning":
            summary = " ".join(str(_get(s, "text", "")) for s in _get(item, "summary") or ())
            parts.append({"type": "reasoning", "content": summary})
        else:
            parts.append({"type": "server_tool_call", "id": _get(item, "id"), "name": str(kind),
                          "server_tool_call": {"type": str(kind)}})
    incomplete = _get(response, "incomplete_details")
    reason = _responses_finish_reason(record.response_status, incomplete, has_tool_call)
    record.finish_reasons = [reason]
    record.output_messages = [Message(role="assistant", parts=parts, finish_reason=reason)]
    content_filters_events(record, extra(response, "content_filters"), name="content_filters")
    if record.response_status == "incomplete" and _get(incomplete, "reason") == "content_filter":
        record.policy_events.append(PolicyEvent("content_filter", "blocked", source=record.provider,
                                                name="incomplete_details", details={"reason": "content_filter"}))
    for where in refusals:
        record.policy_events.append(refusal_event(record, where))
    if with_usage:
        usage = _get(response, "usage")
        record.usage = Usage(
            input_tokens=_int(_get(usage, "input_tokens")),
            output_tokens=_int(_get(usage, "output_tokens")),
            cache_read_input_tokens=_int(_get(_get(usage, "input_tokens_details"), "cached_tokens")),
            reasoning_output_tokens=_int(_get(_get(usage, "output_tokens_details"), "reasoning_tokens")),
        )


def _responses_finish_reason(status: str | None, incomplete: Any, has_tool_call: bool) -> str:
    if status == "completed":
        return "tool_call" if has_tool_call else "stop"
    if status == "incomplete":
        reason = _get(incomplete, "reason")
        return "length" if reason == "max_output_tokens" else str(reason or "incomplete")
    if status in ("failed", "cancelled"):
        return "error"
    return str(status or "error")


def resolve_fetch(record: LLMCall, state: OpenAICallState) -> None:
    """``GET /responses/{id}``: what was fetched; the conventions say no token usage here."""
    response = state.response
    if state.chunks:
        response = _response_from_events(record, state.chunks)
    if response is not None:
        resolve_response_object(record, response, with_usage=False)


# ---------------------------------------------------------------------------------------
# Embeddings


def resolve_embeddings(record: LLMCall, state: OpenAICallState) -> None:
    body = state.body
    fmt = _str(body.get("encoding_format"))
    record.params = RequestParams(encoding_formats=[fmt] if fmt else None)
    response = state.response
    if response is None:
        return
    record.response_model = _str(_get(response, "model"))
    usage = _get(response, "usage")
    record.usage = Usage(input_tokens=_int(_get(usage, "prompt_tokens")))
    data = _get(response, "data") or []
    if data:
        vector = _get(data[0], "embedding")
        if isinstance(vector, (list, tuple)):
            record.embedding_dimensions = len(vector)
        elif isinstance(vector, str):
            try:
                record.embedding_dimensions = len(base64.b64decode(vector)) // 4
            except ValueError:
                record.notes.append("embedding was neither a list nor base64")
