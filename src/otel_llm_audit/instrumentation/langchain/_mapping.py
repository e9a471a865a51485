"""LangChain and LangGraph objects as our records: messages, model calls, documents, commands.

Only duck typing here (``.type``, ``.content``, ``.tool_calls``, ``.page_content``...), so
this module imports neither ``langchain_core`` nor ``langgraph`` and reads every release
the same way. Everything is defensive: an object of an unexpected shape gives less detail,
never an exception (callers still guard).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from otel_llm_audit.records import LLMCall, Message, Part, RequestParams, Usage

#: LangChain message types -> the conventions' roles.
_ROLES = {
    "human": "user",
    "HumanMessageChunk": "user",
    "ai": "assistant",
    "AIMessageChunk": "assistant",
    "system": "system",
    "SystemMessageChunk": "system",
    "developer": "system",
    "tool": "tool",
    "ToolMessageChunk": "tool",
    "function": "tool",
    "FunctionMessageChunk": "tool",
}
#: Roles as application code writes them in ``("user", "hi")`` tuples and dicts.
_ROLE_ALIASES = {"human": "user", "ai": "assistant", "user": "user", "assistant": "assistant"}
#: LangChain / provider stop reasons -> the conventions' finish reasons.
_FINISH = {"tool_calls": "tool_call", "tool_use": "tool_call", "function_call": "tool_call", "end_turn": "stop"}
#: How deep :func:`jsonable` walks application state before it gives a placeholder.
_MAX_DEPTH = 8


# ------------------------------------------------------------------------------ messages


def message_of(value: Any) -> Message:
    """A LangChain message (or a ``(role, text)`` tuple, a role/content dict, a string) as a :class:`Message`."""
    if isinstance(value, str):
        return Message("user", [{"type": "text", "content": value}])
    if isinstance(value, tuple) and len(value) == 2:
        role, content = value
        return Message(_ROLE_ALIASES.get(str(role), str(role)), _content_parts(content))
    if isinstance(value, Mapping):
        role = str(value.get("role") or value.get("type") or "user")
        return Message(_ROLE_ALIASES.get(role, _ROLES.get(role, role)), _content_parts(value.get("content")))
    kind = str(getattr(value, "type", "") or "")
    role = _ROLES.get(kind) or str(getattr(value, "role", None) or kind or "user")
    content = getattr(value, "content", None)
    if role == "tool":
        parts: list[Part] = [
            {"type": "tool_call_response", "id": getattr(value, "tool_call_id", None), "response": _text_or(content)}
        ]
    else:
        parts = _content_parts(content)
    for call in getattr(value, "tool_calls", None) or ():
        parts.append(tool_call_part(call))
    name = getattr(value, "name", None)
    return Message(role, parts, name=name if isinstance(name, str) else None)


def messages_of(values: Any) -> list[Message] | None:
    """A list of messages as :class:`Message` objects; ``None`` when ``values`` is not one."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        return None
    return [message_of(v) for v in values]


def state_messages(state: Any) -> list[Message] | None:
    """The messages of a graph state or chain input (``{"messages": [...]}``, a message list)."""
    if isinstance(state, Mapping):
        messages = state.get("messages")
        return messages_of(messages) if messages else None
    if (
        isinstance(state, Sequence)
        and state
        and not isinstance(state, (str, bytes))
        and all(hasattr(m, "content") and hasattr(m, "type") for m in state)
    ):
        return messages_of(state)
    return None


def last_state_message(state: Any) -> list[Message] | None:
    """The final message of a graph's output state: what the workflow or agent answered."""
    messages = state.get("messages") if isinstance(state, Mapping) else None
    if isinstance(messages, Sequence) and messages and not isinstance(messages, (str, bytes)):
        return [message_of(messages[-1])]
    return None


def tool_call_part(call: Any) -> Part:
    """A LangChain tool call (``{"name", "args", "id"}``) as a ``tool_call`` part."""
    get = call.get if isinstance(call, Mapping) else lambda key, default=None: getattr(call, key, default)
    return {"type": "tool_call", "id": get("id"), "name": get("name"), "arguments": get("args")}


def _content_parts(content: Any) -> list[Part]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        parts: list[Part] = []
        for block in content:
            part = _content_block(block)
            if part is not None:
                parts.append(part)
        return parts
    return [{"type": "text", "content": str(content)}]


def _content_block(block: Any) -> Part | None:
    if isinstance(block, str):
        return {"type": "text", "content": block}
    if not isinstance(block, Mapping):
        return {"type": "text", "content": str(block)}
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "content": block.get("text", "")}
    if kind in ("thinking", "reasoning"):
        return {"type": "reasoning", "content": block.get(kind) or block.get("text") or ""}
    if kind in ("tool_use", "tool_call", "function_call"):
        return None  # the message's tool_calls carry it, parsed
    if kind == "image_url":
        url = block.get("image_url")
        url = url.get("url") if isinstance(url, Mapping) else url
        if isinstance(url, str) and url.startswith("data:"):
            header, _, data = url.partition(",")
            return {"type": "blob", "modality": "image", "mime_type": header[5:].split(";", 1)[0], "content": data}
        return {"type": "uri", "modality": "image", "uri": str(url)}
    if kind in ("image", "audio", "video", "file"):
        modality = "document" if kind == "file" else kind
        if block.get("url"):
            return {"type": "uri", "modality": modality, "uri": str(block["url"])}
        if block.get("data") or block.get("base64"):
            part: Part = {"type": "blob", "modality": modality, "content": block.get("data") or block.get("base64")}
            if block.get("mime_type"):
                part["mime_type"] = block["mime_type"]
            return part
        if block.get("id") or block.get("file_id"):
            return {"type": "file", "modality": modality, "file_id": block.get("id") or block.get("file_id")}
    return {"type": str(kind or "unknown")}


def _text_or(content: Any) -> Any:
    """A tool result's text, joining text blocks; other content as it is."""
    if isinstance(content, Sequence) and not isinstance(content, (str, bytes)):
        texts = [b.get("text") if isinstance(b, Mapping) else b for b in content]
        if texts and all(isinstance(t, str) for t in texts):
            return "".join(texts)  # type: ignore[arg-type]
    return content


def text_of(message: Any) -> str | None:
    """The plain text a model wrote alongside its tool calls (its stated reasoning), if any."""
    content = getattr(message, "content", None)
    if isinstance(content, str):
        return content or None
    if isinstance(content, Sequence):
        texts = [
            b if isinstance(b, str) else b.get("text", "")
            for b in content
            if isinstance(b, str) or (isinstance(b, Mapping) and b.get("type") == "text")
        ]
        joined = "".join(texts)
        return joined or None
    return None


# --------------------------------------------------------------------------- model calls


def tool_names(tools: Any) -> list[str]:
    """The names of the tools bound to a model call (OpenAI, Anthropic or plain shapes)."""
    names: list[str] = []
    if not isinstance(tools, Sequence) or isinstance(tools, (str, bytes)):
        return names
    for tool in tools:
        if isinstance(tool, Mapping):
            function = tool.get("function")
            name = function.get("name") if isinstance(function, Mapping) else tool.get("name")
        else:
            name = getattr(tool, "name", None)
        if isinstance(name, str):
            names.append(name)
    return names


def tool_definitions(tools: Any) -> list[dict[str, Any]] | None:
    """Bound tools as the conventions' ``gen_ai.tool.definitions``."""
    if not isinstance(tools, Sequence) or isinstance(tools, (str, bytes)) or not tools:
        return None
    out: list[dict[str, Any]] = []
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        nested = tool.get("function")
        function: Mapping[str, Any] = nested if isinstance(nested, Mapping) else tool
        definition: dict[str, Any] = {"type": "function", "name": function.get("name")}
        description = function.get("description")
        if description is not None:
            definition["description"] = description
        schema = function.get("parameters") or function.get("input_schema")
        if schema is not None:
            definition["parameters"] = schema
        out.append(definition)
    return out or None


def provider_of(metadata: Mapping[str, Any], invocation_params: Mapping[str, Any], fallback: str) -> str:
    """``gen_ai.provider.name``: LangChain's ``ls_provider``, else the model's ``_type``, else its name."""
    provider = metadata.get("ls_provider") or invocation_params.get("_type") or fallback
    return str(provider)


def model_of(metadata: Mapping[str, Any], invocation_params: Mapping[str, Any]) -> str | None:
    for value in (
        metadata.get("ls_model_name"),
        invocation_params.get("model"),
        invocation_params.get("model_name"),
        invocation_params.get("model_id"),
    ):
        if isinstance(value, str) and value:
            return value
    return None


def params_of(metadata: Mapping[str, Any], invocation_params: Mapping[str, Any]) -> RequestParams:
    """The request parameters LangChain reports (``ls_*`` metadata first, then invocation params)."""
    stop = metadata.get("ls_stop") or invocation_params.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    return RequestParams(
        max_tokens=_int(metadata.get("ls_max_tokens") or invocation_params.get("max_tokens")),
        temperature=_float(
            metadata.get("ls_temperature")
            if metadata.get("ls_temperature") is not None
            else invocation_params.get("temperature")
        ),
        top_p=_float(invocation_params.get("top_p")),
        top_k=_int(invocation_params.get("top_k")),
        stop_sequences=[str(s) for s in stop] if isinstance(stop, Sequence) and stop else None,
        frequency_penalty=_float(invocation_params.get("frequency_penalty")),
        presence_penalty=_float(invocation_params.get("presence_penalty")),
        seed=_int(invocation_params.get("seed")),
    )


def resolve_model_call(record: LLMCall, messages: list[Any], tools: Any, response: Any) -> None:
    """Fill a model-call record from the run's messages and LangChain's ``LLMResult`` (off-thread)."""
    record.input_messages = [message_of(m) for m in messages]
    record.tool_definitions = tool_definitions(tools)
    if response is None:
        return
    generations = getattr(response, "generations", None) or []
    first = generations[0] if generations else []
    outputs: list[Message] = []
    reasons: list[str] = []
    llm_output = getattr(response, "llm_output", None) or {}
    for generation in first:
        message = getattr(generation, "message", None)
        if message is not None:
            out = message_of(message)
            out.role = "assistant"
        else:
            out = Message("assistant", _content_parts(getattr(generation, "text", None)))
        reason = finish_reason_of(generation, message)
        out.finish_reason = reason
        reasons.append(reason)
        outputs.append(out)
    record.output_messages = outputs
    record.finish_reasons = reasons
    message = getattr(first[0], "message", None) if first else None
    response_metadata = getattr(message, "response_metadata", None) or {}
    model = response_metadata.get("model_name") or response_metadata.get("model") or llm_output.get("model_name")
    record.response_model = str(model) if model else None
    response_id = response_metadata.get("id")
    record.response_id = str(response_id) if response_id else None
    record.usage = usage_of(message, llm_output)


def finish_reason_of(generation: Any, message: Any) -> str:
    info = getattr(generation, "generation_info", None) or {}
    metadata = getattr(message, "response_metadata", None) or {}
    reason = info.get("finish_reason") or metadata.get("finish_reason") or metadata.get("stop_reason")
    if not reason:
        reason = "tool_calls" if getattr(message, "tool_calls", None) else "stop"
    return _FINISH.get(str(reason), str(reason))


def usage_of(message: Any, llm_output: Mapping[str, Any]) -> Usage:
    """Token counts from ``usage_metadata`` (input includes cache, as in the conventions) or ``llm_output``."""
    usage = getattr(message, "usage_metadata", None)
    if isinstance(usage, Mapping) and usage:
        input_details = usage.get("input_token_details") or {}
        output_details = usage.get("output_token_details") or {}
        return Usage(
            input_tokens=_int(usage.get("input_tokens")),
            output_tokens=_int(usage.get("output_tokens")),
            cache_read_input_tokens=_int(input_details.get("cache_read")),
            cache_write_input_tokens=_int(input_details.get("cache_creation")),
            reasoning_output_tokens=_int(output_details.get("reasoning")),
        )
    token_usage = llm_output.get("token_usage") or llm_output.get("usage") or {}
    if isinstance(token_usage, Mapping):
        return Usage(
            input_tokens=_int(token_usage.get("prompt_tokens", token_usage.get("input_tokens"))),
            output_tokens=_int(token_usage.get("completion_tokens", token_usage.get("output_tokens"))),
        )
    return Usage()


# ----------------------------------------------------------------- tools and documents


def tool_result(output: Any) -> tuple[Any, str | None, bool]:
    """A tool's output as (result content, tool call id, whether the tool reported an error)."""
    if _is_command(output):
        return command_summary(output), None, False
    if hasattr(output, "tool_call_id") and hasattr(output, "content"):  # a ToolMessage
        failed = getattr(output, "status", None) == "error"
        return _text_or(output.content), getattr(output, "tool_call_id", None), failed
    return jsonable(output), None, False


def documents_of(documents: Any) -> list[dict[str, Any]]:
    """Retrieved documents as ``gen_ai.retrieval.documents`` items: id, content, metadata."""
    out: list[dict[str, Any]] = []
    for doc in documents if isinstance(documents, Iterable) else ():
        item: dict[str, Any] = {}
        doc_id = getattr(doc, "id", None)
        if doc_id is not None:
            item["id"] = str(doc_id)
        item["content"] = getattr(doc, "page_content", None) if hasattr(doc, "page_content") else str(doc)
        metadata = getattr(doc, "metadata", None)
        if metadata:
            item["metadata"] = jsonable(metadata)
        out.append(item)
    return out


# ------------------------------------------------------------------ LangGraph commands


def _is_command(value: Any) -> bool:
    cls = type(value)
    return cls.__name__ == "Command" and cls.__module__.startswith("langgraph") and hasattr(value, "goto")


def commands_in(output: Any) -> list[Any]:
    """The LangGraph ``Command`` objects a node or tool returned (one, or several in a list)."""
    if _is_command(output):
        return [output]
    if isinstance(output, (list, tuple)):
        return [item for item in output if _is_command(item)]
    return []


def goto_targets(command: Any) -> list[tuple[str, Any]]:
    """Where a ``Command`` sends control: (node, input) for each ``goto`` (a name or a ``Send``)."""
    goto = getattr(command, "goto", None)
    if not goto:
        return []
    items = goto if isinstance(goto, (list, tuple)) else [goto]
    update = getattr(command, "update", None)
    targets: list[tuple[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            if item != "__end__":
                targets.append((item, update))
        elif hasattr(item, "node") and hasattr(item, "arg"):  # Send(node, arg)
            targets.append((str(item.node), item.arg))
    return targets


def is_parent_handoff(command: Any) -> bool:
    """``Command(graph=Command.PARENT)``: control goes to a node of the enclosing graph."""
    return getattr(command, "graph", None) == "__parent__"


def command_summary(command: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {"goto": [t for t, _ in goto_targets(command)]}
    update = getattr(command, "update", None)
    if update is not None:
        summary["update"] = jsonable(update)
    return summary


#: Exceptions LangGraph raises to steer a run (interrupts, parent commands): not failures.
_CONTROL_FLOW = frozenset({"GraphBubbleUp", "GraphInterrupt", "NodeInterrupt", "ParentCommand", "GraphDelegate"})


def is_control_flow(error: BaseException) -> bool:
    return any(cls.__name__ in _CONTROL_FLOW for cls in type(error).__mro__)


def parent_command(error: BaseException) -> Any | None:
    """The ``Command`` a ``ParentCommand`` carries (a handoff to the enclosing graph)."""
    if type(error).__name__ != "ParentCommand":
        return None
    for arg in error.args:
        if _is_command(arg):
            return arg
    return None


# ------------------------------------------------------------------------------ content


def jsonable(value: Any, depth: int = 0) -> Any:
    """Application state as plain JSON values: messages as the conventions' message objects.

    Bounded in depth; unknown objects become their ``str``. Only called for content the
    content setting records (the emitter hashes, masks or drops it as configured).
    """
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if depth >= _MAX_DEPTH:
        return f"<{type(value).__name__}>"
    if hasattr(value, "content") and hasattr(value, "type") and not isinstance(value, Mapping):
        return message_of(value).to_json_obj()
    if _is_command(value):
        return command_summary(value)
    if hasattr(value, "page_content"):
        return documents_of([value])[0]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v, depth + 1) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return jsonable(dump(), depth + 1)
        except Exception:
            pass
    return str(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
