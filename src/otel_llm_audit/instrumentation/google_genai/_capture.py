"""Google Gen AI request and response shapes -> records. Knows the wire format, not OpenTelemetry.

The instrumentor sits on the SDK's API client, so what it sees is Google's REST format: the
request body the SDK built for this one HTTP call (``contents``, ``systemInstruction``,
``generationConfig``, ``tools``; keys camelCase, with snake_case keys inside parts that older
SDKs dumped from their own models), and the response as JSON (a dict from ``google-genai``
1.0 to 1.2x, a ``HttpResponse`` whose ``body`` is the JSON text in later releases; a stream's
chunks likewise). Reading Google's wire format rather than the SDK's pydantic types keeps one
reader for every SDK release.

Everything here runs off the caller's thread except :func:`classify` and
:func:`prompt_block_of`, which are cheap.

Token accounting follows the conventions: ``gen_ai.usage.input_tokens`` is Google's
``promptTokenCount`` (which already includes ``cachedContentTokenCount``) plus
``toolUsePromptTokenCount`` (both billed as input); ``gen_ai.usage.output_tokens`` is
``candidatesTokenCount`` plus ``thoughtsTokenCount`` (Google counts thinking apart from the
candidates, and bills it as output); cache reads and reasoning are reported as their subsets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from otel_llm_audit.instrumentation.google_genai import _safety
from otel_llm_audit.instrumentation.readers import as_float, as_int, as_str, as_str_list, get
from otel_llm_audit.records import ErrorInfo, LLMCall, Message, Part, RequestParams, Usage

GENERATE = "generate_content"
EMBEDDINGS = "embeddings"

#: API method (after the ``:`` of the path) -> (operation, streams?).
_METHODS: dict[str, tuple[str, bool]] = {
    "generateContent": (GENERATE, False),
    "streamGenerateContent": (GENERATE, True),
    "embedContent": (EMBEDDINGS, False),
    "batchEmbedContents": (EMBEDDINGS, False),
    "predict": (EMBEDDINGS, False),  # Vertex text-embedding models (Imagen's predict is left alone)
}

#: ``finishReason`` -> the conventions' ``finish_reason`` of an output message.
_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
    "LANGUAGE": "error",
    "OTHER": "error",
    "FINISH_REASON_UNSPECIFIED": "error",
}
_ROLES = {"model": "assistant"}

#: The ``error.type`` of a call whose prompt Google blocked (no candidates at all).
PROMPT_BLOCKED_ERROR = "content_filter"


class GoogleCallState:
    """What the caller's thread keeps: the request body as sent, then the response or the chunks."""

    __slots__ = ("body", "chunks", "method", "response")

    def __init__(self, method: str, body: Any) -> None:
        self.method = method
        self.body = body
        self.response: Any = None
        self.chunks: list[Any] = []


def classify(path: str, body: Any) -> tuple[str, str, bool, str] | None:
    """``(operation, request model, streams?, method)`` of a model call's path, ``None`` for other calls.

    Paths as the SDK passes them: ``models/gemini-2.5-flash:generateContent``,
    ``publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse``,
    ``projects/p/locations/l/publishers/google/models/text-embedding-005:predict``.
    """
    resource, _, method = path.partition("?")[0].rpartition(":")
    found = _METHODS.get(method)
    if found is None or not resource:
        return None
    if method == "predict" and not _is_embedding_predict(body):
        return None
    operation, streams = found
    return operation, model_of(resource), streams, method


def model_of(resource: str) -> str:
    """The model id of a resource name (``.../models/gemini-2.5-flash`` -> ``gemini-2.5-flash``)."""
    resource = resource.strip("/")
    marker = resource.rfind("models/")
    if marker == 0 or (marker > 0 and resource[marker - 1] == "/"):
        return resource[marker + len("models/") :]
    if resource.startswith("projects/"):  # projects/p/locations/l/endpoints/123: keep from the type on
        parts = resource.split("/")
        return "/".join(parts[4:]) or resource
    return resource  # tunedModels/123


def _is_embedding_predict(body: Any) -> bool:
    instances = get(body, "instances")
    if not isinstance(instances, list) or not instances:
        return False
    first = instances[0]
    return isinstance(first, Mapping) and "content" in first and "prompt" not in first


def _pick(obj: Any, camel: str, snake: str) -> Any:
    value = get(obj, camel)
    return get(obj, snake) if value is None else value


# ---------------------------------------------------------------------------------------
# Responses as JSON


def snapshot(response: Any) -> Any:
    """On the caller's thread: what to keep of a response or chunk for the resolver.

    A ``HttpResponse`` (google-genai from the late 1.x releases on) carries the body as text,
    which nothing changes: kept as it is. Earlier releases hand back the parsed JSON and then
    strip the fields their types do not know (``thoughtsTokenCount`` in 1.0) *in place*, so
    a dict is copied, dicts and lists only (the JSON tree).
    """
    return _json_copy(response) if type(response) is dict else response


def _json_copy(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {key: _json_copy(item) for key, item in value.items()}
    if kind is list:
        return [_json_copy(item) for item in value]
    return value


def payload_of(response: Any) -> Any:
    """The JSON of a response or stream chunk: a dict as it is, a ``HttpResponse``'s body parsed."""
    if isinstance(response, Mapping):
        return response
    body = get(response, "body")
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", "replace")
    if isinstance(body, str):
        if not body:
            return {}
        return json.loads(body)
    return None


def prompt_block_of(response: Any) -> ErrorInfo | None:
    """On the caller's thread: the error of a response whose prompt was blocked, else ``None``.

    A ``HttpResponse`` body is parsed only when it contains the key (a string value in the
    JSON cannot contain it unescaped), which is the rare case.
    """
    if not isinstance(response, Mapping):
        body = get(response, "body")
        if not isinstance(body, str) or '"blockReason"' not in body:
            return None
    reason = get(get(payload_of(response), "promptFeedback"), "blockReason")
    if not reason:
        return None
    return ErrorInfo(PROMPT_BLOCKED_ERROR, f"The prompt was blocked by the provider (blockReason {reason}).")


# ---------------------------------------------------------------------------------------
# Request


def _modality(mime_type: Any) -> str:
    kind = mime_type.split("/", 1)[0] if isinstance(mime_type, str) else ""
    return kind if kind in ("image", "video", "audio") else "document"


def part_of(part: Any) -> Part:
    """One part of a request or response ``Content``, as a conventions part (never inline bytes)."""
    if isinstance(part, str):
        return {"type": "text", "content": part}
    text = get(part, "text")
    if isinstance(text, str):
        if get(part, "thought") is True:
            return {"type": "reasoning", "content": text}
        return {"type": "text", "content": text}
    call = _pick(part, "functionCall", "function_call")
    if call is not None:
        out: Part = {"type": "tool_call"}
        if get(call, "id") is not None:
            out["id"] = get(call, "id")
        out["name"] = get(call, "name")
        out["arguments"] = get(call, "args")
        return out
    response = _pick(part, "functionResponse", "function_response")
    if response is not None:
        out = {"type": "tool_call_response"}
        if get(response, "id") is not None:
            out["id"] = get(response, "id")
        out["name"] = get(response, "name")  # Gemini pairs calls and responses by name
        out["response"] = get(response, "response")
        return out
    inline = _pick(part, "inlineData", "inline_data")
    if inline is not None:
        mime = _pick(inline, "mimeType", "mime_type")
        return {"type": "blob", "modality": _modality(mime), "mime_type": mime}  # the bytes are not kept
    file = _pick(part, "fileData", "file_data")
    if file is not None:
        mime = _pick(file, "mimeType", "mime_type")
        return {
            "type": "uri",
            "modality": _modality(mime),
            "mime_type": mime,
            "uri": _pick(file, "fileUri", "file_uri"),
        }
    code = _pick(part, "executableCode", "executable_code")
    if code is not None:
        detail = {"type": "code_execution", "language": get(code, "language"), "code": get(code, "code")}
        return {"type": "server_tool_call", "name": "code_execution", "server_tool_call": detail}
    result = _pick(part, "codeExecutionResult", "code_execution_result")
    if result is not None:
        detail = {"type": "code_execution", "outcome": get(result, "outcome"), "output": get(result, "output")}
        return {"type": "server_tool_call_response", "server_tool_call_response": detail}
    if isinstance(part, Mapping):
        kinds = [k for k in part if k not in ("thought", "thoughtSignature", "thought_signature", "videoMetadata")]
        return {"type": str(kinds[0]) if kinds else "unknown"}
    return {"type": "unknown"}


def _parts(content: Any) -> list[Part]:
    parts = get(content, "parts")
    return [part_of(p) for p in parts] if isinstance(parts, (list, tuple)) else []


def input_messages(body: Any) -> list[Message] | None:
    contents = get(body, "contents")
    if not isinstance(contents, (list, tuple)):
        return None
    out = []
    for content in contents:
        role = as_str(get(content, "role")) or "user"
        out.append(Message(role=_ROLES.get(role, role), parts=_parts(content)))
    return out


def system_instructions(body: Any) -> list[Part] | None:
    system = _pick(body, "systemInstruction", "system_instruction")
    if system is None:
        return None
    parts = [p for p in _parts(system) if p.get("type") == "text"]
    return parts or None


def tool_definitions(body: Any) -> list[dict[str, Any]] | None:
    tools = get(body, "tools")
    if not isinstance(tools, (list, tuple)) or not tools:
        return None
    out: list[dict[str, Any]] = []
    for tool in tools:
        declarations = _pick(tool, "functionDeclarations", "function_declarations")
        for declaration in declarations if isinstance(declarations, (list, tuple)) else ():
            definition: dict[str, Any] = {"type": "function", "name": get(declaration, "name")}
            if get(declaration, "description") is not None:
                definition["description"] = get(declaration, "description")
            schema = get(declaration, "parameters")
            if schema is None:
                schema = _pick(declaration, "parametersJsonSchema", "parameters_json_schema")
            if schema is not None:
                definition["parameters"] = schema
            out.append(definition)
        if isinstance(tool, Mapping):  # a built-in tool: googleSearch, codeExecution, urlContext, ...
            for kind, value in tool.items():
                if kind not in ("functionDeclarations", "function_declarations") and value is not None:
                    out.append({"type": str(kind), "name": str(kind)})
    return out or None


def _top_k(value: Any) -> int | None:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return as_int(value)


def request_params(body: Any) -> RequestParams:
    config = _pick(body, "generationConfig", "generation_config")
    thinking = _pick(config, "thinkingConfig", "thinking_config")
    mime = as_str(_pick(config, "responseMimeType", "response_mime_type"))
    output_type = None
    if mime == "application/json" or mime == "text/x.enum":
        output_type = "json"
    elif mime == "text/plain":
        output_type = "text"
    return RequestParams(
        max_tokens=as_int(_pick(config, "maxOutputTokens", "max_output_tokens")),
        temperature=as_float(get(config, "temperature")),
        top_p=as_float(_pick(config, "topP", "top_p")),
        top_k=_top_k(_pick(config, "topK", "top_k")),
        stop_sequences=as_str_list(_pick(config, "stopSequences", "stop_sequences")),
        frequency_penalty=as_float(_pick(config, "frequencyPenalty", "frequency_penalty")),
        presence_penalty=as_float(_pick(config, "presencePenalty", "presence_penalty")),
        seed=as_int(get(config, "seed")),
        choice_count=as_int(_pick(config, "candidateCount", "candidate_count")),
        reasoning_level=as_str(_pick(thinking, "thinkingLevel", "thinking_level")),
        output_type=output_type,
    )


# ---------------------------------------------------------------------------------------
# Response


def usage_of(usage: Any) -> Usage:
    """Usage per the conventions (see the module docstring)."""
    prompt = as_int(get(usage, "promptTokenCount"))
    tool_prompt = as_int(get(usage, "toolUsePromptTokenCount"))
    candidates = as_int(get(usage, "candidatesTokenCount"))
    thoughts = as_int(get(usage, "thoughtsTokenCount"))
    input_tokens = None if prompt is None and tool_prompt is None else (prompt or 0) + (tool_prompt or 0)
    output_tokens = None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0)
    if output_tokens is None and input_tokens is not None and usage is not None:
        output_tokens = 0  # Google leaves the count out when nothing was generated (a blocked prompt)
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_input_tokens=as_int(get(usage, "cachedContentTokenCount")),
        reasoning_output_tokens=thoughts,
    )


def _finish_reasons(reasons: list[str]) -> list[str] | None:
    """Google's finish reasons in candidate order; ``error`` where one is missing among others
    (the conventions' placeholder), none at all when no candidate finished (a stream broken off)."""
    if not any(reasons):
        return None
    return [reason or "error" for reason in reasons]


def _message(parts: list[Part], reason: str | None) -> Message:
    finish = _FINISH.get(reason, reason.lower()) if reason else None
    if finish == "stop" and any(p.get("type") == "tool_call" for p in parts):
        finish = "tool_call"
    return Message(role="assistant", parts=parts, finish_reason=finish)


def _response(record: LLMCall, payload: Any) -> None:
    record.response_id = as_str(get(payload, "responseId"))
    record.response_model = as_str(get(payload, "modelVersion"))
    record.usage = usage_of(get(payload, "usageMetadata"))
    candidates = get(payload, "candidates")
    reasons: list[str] = []
    outputs: list[Message] = []
    for candidate in candidates if isinstance(candidates, list) else ():
        reason = as_str(get(candidate, "finishReason"))
        reasons.append(reason or "")
        outputs.append(_message(_parts(get(candidate, "content")), reason))
    record.finish_reasons = _finish_reasons(reasons)
    record.output_messages = outputs or None
    _safety.prompt_events(record, get(payload, "promptFeedback"))
    for index, candidate in enumerate(candidates if isinstance(candidates, list) else ()):
        position = as_int(get(candidate, "index"))
        _safety.candidate_events(
            record,
            index if position is None else position,
            as_str(get(candidate, "finishReason")),
            _safety.RatingTally.of(get(candidate, "safetyRatings")),
        )


class _Candidate:
    """A candidate assembled from stream chunks: text pieces joined, other parts kept in order."""

    __slots__ = ("parts", "ratings", "reason")

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.reason: str | None = None
        self.ratings = _safety.RatingTally()

    def add(self, content: Any) -> None:
        for raw in get(content, "parts") or ():
            part = part_of(raw)
            last = self.parts[-1] if self.parts else None
            if last is not None and part["type"] in ("text", "reasoning") and last["type"] == part["type"]:
                last["content"] += part["content"]
            else:
                self.parts.append(part)


def _stream(record: LLMCall, chunks: list[Any]) -> None:
    """Assemble the answer from the stream's chunks (usage in each chunk is cumulative)."""
    candidates: dict[int, _Candidate] = {}
    usage: Any = None
    feedback: Any = None
    for chunk in chunks:
        payload = payload_of(chunk)
        if not isinstance(payload, Mapping):
            continue
        record.response_id = as_str(payload.get("responseId")) or record.response_id
        record.response_model = as_str(payload.get("modelVersion")) or record.response_model
        usage = payload.get("usageMetadata") or usage
        feedback = payload.get("promptFeedback") or feedback
        for position, raw in enumerate(payload.get("candidates") or ()):
            index = as_int(get(raw, "index"))
            candidate = candidates.setdefault(position if index is None else index, _Candidate())
            candidate.add(get(raw, "content"))
            candidate.reason = as_str(get(raw, "finishReason")) or candidate.reason
            candidate.ratings.add(get(raw, "safetyRatings"))
    record.usage = usage_of(usage)
    ordered = [candidates[i] for i in sorted(candidates)]
    record.finish_reasons = _finish_reasons([c.reason or "" for c in ordered])
    record.output_messages = [_message(c.parts, c.reason) for c in ordered] or None
    _safety.prompt_events(record, feedback)
    for index in sorted(candidates):
        candidate = candidates[index]
        _safety.candidate_events(record, index, candidate.reason, candidate.ratings)


def _embeddings(record: LLMCall, state: GoogleCallState) -> None:
    payload = payload_of(state.response)
    if not isinstance(payload, Mapping):
        return
    vector: Any = None
    if state.method == "predict":
        predictions = payload.get("predictions") or []
        tokens = [as_int(get(get(get(p, "embeddings"), "statistics"), "token_count")) for p in predictions]
        if tokens and all(t is not None for t in tokens):
            record.usage = Usage(input_tokens=sum(t for t in tokens if t is not None))
        if predictions:
            vector = get(get(predictions[0], "embeddings"), "values")
    else:
        embeddings = payload.get("embeddings")
        if isinstance(embeddings, list) and embeddings:
            vector = get(embeddings[0], "values")
        else:
            vector = get(payload.get("embedding"), "values")
        usage = payload.get("usageMetadata")
        if usage is not None:
            record.usage = Usage(input_tokens=as_int(get(usage, "promptTokenCount")))
    if isinstance(vector, list):
        record.embedding_dimensions = len(vector)


def resolve(record: LLMCall, state: GoogleCallState) -> None:
    """Fill ``record`` from the request body and the response or the stream's chunks."""
    if record.operation == EMBEDDINGS:
        _embeddings(record, state)
        return
    body = state.body
    record.params = request_params(body)
    record.system_instructions = system_instructions(body)
    record.input_messages = input_messages(body)
    record.tool_definitions = tool_definitions(body)
    if state.response is not None:
        payload = payload_of(state.response)
        if isinstance(payload, Mapping):
            _response(record, payload)
    elif state.chunks:
        _stream(record, state.chunks)
