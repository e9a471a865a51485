"""AWS Bedrock Runtime request and response shapes -> records. Knows botocore's shapes, not OpenTelemetry.

``Converse`` / ``ConverseStream`` have one shape for every model family. ``InvokeModel`` /
``InvokeModelWithResponseStream`` carry the model family's own JSON body: Anthropic's
Messages body (read with the Anthropic capture module), Amazon Nova's, Meta Llama's,
Amazon Titan's, Mistral's and Cohere's. Everything here runs off the caller's thread.

Guardrails: the request's ``guardrailConfig`` names the guardrail; a ``guardrail_intervened``
stop reason and the guardrail trace's assessments become policy events (category
``guardrail``; action ``blocked``, ``redacted`` for anonymised personal data, ``flagged`` for
what was detected and let through). The trace's matched values (the personal data itself)
are never copied into an event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from otel_llm_audit.instrumentation.anthropic import _capture as anthropic_capture
from otel_llm_audit.instrumentation.readers import as_float, as_int, as_str, as_str_list, get, json_or_text
from otel_llm_audit.records import LLMCall, Message, Part, PolicyEvent, RequestParams, Usage

#: Converse ``stopReason`` -> the conventions' ``finish_reason`` of an output message.
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_call",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
_GUARDRAIL_SOURCE = "aws.bedrock.guardrail"


class BedrockCallState:
    """What the caller's thread keeps: the operation, the request, the response or events."""

    __slots__ = ("body", "chunks", "operation", "params", "response")

    def __init__(self, operation: str, params: dict[str, Any], body: Any) -> None:
        self.operation = operation
        self.params = params
        self.body = body  # InvokeModel: the parsed request body
        self.response: Any = None
        self.chunks: list[Any] = []


def snapshot_params(params: Any) -> dict[str, Any]:
    """A shallow copy of the API parameters, with the message list and its dicts copied."""
    if not isinstance(params, Mapping):
        return {}
    snap = dict(params)
    messages = snap.get("messages")
    if isinstance(messages, (list, tuple)):
        snap["messages"] = [dict(m) if isinstance(m, dict) else m for m in messages]
    return snap


def parse_body(body: Any) -> Any:
    """The JSON body of an InvokeModel request or response (bytes, str or a file-like)."""
    if body is None:
        return None
    if hasattr(body, "read"):
        return None  # a stream the caller owns: never read here
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return None
    return body if isinstance(body, Mapping) else None


# ---------------------------------------------------------------------------------------
# Converse


def _block_part(block: Any) -> Part:
    if not isinstance(block, Mapping):
        return {"type": "text", "content": str(block)}
    if "text" in block:
        return {"type": "text", "content": block["text"]}
    if "toolUse" in block:
        use = block["toolUse"]
        return {
            "type": "tool_call",
            "id": get(use, "toolUseId"),
            "name": get(use, "name"),
            "arguments": get(use, "input"),
        }
    if "toolResult" in block:
        result = block["toolResult"]
        return {"type": "tool_call_response", "id": get(result, "toolUseId"), "response": _tool_result(result)}
    if "reasoningContent" in block:
        text = get(get(block["reasoningContent"], "reasoningText"), "text")
        return {"type": "reasoning", "content": text or ""}
    if "guardContent" in block:
        return {"type": "text", "content": get(get(block["guardContent"], "text"), "text", "")}
    for media in ("image", "document", "video"):
        if media in block:
            item = block[media]
            return {
                "type": "blob",
                "modality": media,
                "mime_type": get(item, "format"),
                "content": get(get(item, "source"), "bytes"),
            }
    return {"type": next(iter(block), "unknown")}


def _tool_result(result: Any) -> Any:
    content = get(result, "content")
    if not isinstance(content, (list, tuple)):
        return content
    texts = [get(item, "text") for item in content]
    if all(isinstance(t, str) for t in texts):
        return "".join(texts)
    return [get(item, "json") if get(item, "json") is not None else get(item, "text") for item in content]


def _messages(messages: Any) -> list[Message] | None:
    if not isinstance(messages, (list, tuple)):
        return None
    out = []
    for message in messages:
        content = get(message, "content")
        parts = [_block_part(b) for b in content] if isinstance(content, (list, tuple)) else []
        out.append(Message(role=str(get(message, "role", "user")), parts=parts))
    return out


def _system(system: Any) -> list[Part] | None:
    if not isinstance(system, (list, tuple)):
        return None
    parts = [_block_part(b) for b in system if isinstance(b, Mapping) and ("text" in b or "guardContent" in b)]
    return parts or None


def _tools(tool_config: Any) -> list[dict[str, Any]] | None:
    tools = get(tool_config, "tools")
    if not isinstance(tools, (list, tuple)) or not tools:
        return None
    out = []
    for tool in tools:
        spec = get(tool, "toolSpec")
        if spec is None:
            continue
        definition: dict[str, Any] = {"type": "function", "name": get(spec, "name")}
        if get(spec, "description") is not None:
            definition["description"] = get(spec, "description")
        schema = get(get(spec, "inputSchema"), "json")
        if schema is not None:
            definition["parameters"] = schema
        out.append(definition)
    return out or None


def _usage(usage: Any) -> Usage:
    return Usage.with_cache_apart(
        as_int(get(usage, "inputTokens")),
        as_int(get(usage, "outputTokens")),
        as_int(get(usage, "cacheReadInputTokens")),
        as_int(get(usage, "cacheWriteInputTokens")),
    )


def _finish(record: LLMCall, stop_reason: Any, parts: list[Part]) -> None:
    reason = as_str(stop_reason)
    if reason is not None:
        record.finish_reasons = [reason]
    if reason == "content_filtered":  # the model provider's own filter, not a guardrail
        details = {"stop_reason": reason}
        record.policy_events.append(
            PolicyEvent("content_filter", "blocked", source=record.provider, name="stopReason", details=details)
        )
    record.output_messages = [
        Message(role="assistant", parts=parts, finish_reason=_FINISH.get(reason, reason) if reason else None)
    ]


def _request_id(response: Any) -> str | None:
    return as_str(get(get(response, "ResponseMetadata"), "RequestId"))


def resolve_converse(record: LLMCall, state: BedrockCallState) -> None:
    params = state.params
    config = params.get("inferenceConfig")
    record.params = RequestParams(
        max_tokens=as_int(get(config, "maxTokens")),
        temperature=as_float(get(config, "temperature")),
        top_p=as_float(get(config, "topP")),
        stop_sequences=as_str_list(get(config, "stopSequences")),
    )
    record.system_instructions = _system(params.get("system"))
    record.input_messages = _messages(params.get("messages"))
    record.tool_definitions = _tools(params.get("toolConfig"))
    response = state.response
    if response is not None:
        record.provider_request_id = _request_id(response)
        message = get(get(response, "output"), "message")
        content = get(message, "content")
        parts = [_block_part(b) for b in content] if isinstance(content, (list, tuple)) else []
        record.usage = _usage(get(response, "usage"))
        _finish(record, get(response, "stopReason"), parts)
        guardrail_events(record, get(response, "stopReason"), get(get(response, "trace"), "guardrail"))
    elif state.chunks:
        _converse_stream(record, state.chunks)


class _StreamBlock:
    __slots__ = ("json", "start", "text", "thinking")

    def __init__(self, start: Any) -> None:
        self.start = start
        self.text: list[str] = []
        self.json: list[str] = []
        self.thinking: list[str] = []

    def part(self) -> Part:
        use = get(self.start, "toolUse")
        if use is not None:
            return {
                "type": "tool_call",
                "id": get(use, "toolUseId"),
                "name": get(use, "name"),
                "arguments": json_or_text("".join(self.json)) if self.json else None,
            }
        if self.thinking and not self.text:
            return {"type": "reasoning", "content": "".join(self.thinking)}
        return {"type": "text", "content": "".join(self.text)}


def _converse_stream(record: LLMCall, events: list[Any]) -> None:
    blocks: dict[int, _StreamBlock] = {}
    stop_reason: Any = None
    trace: Any = None
    for event in events:
        if not isinstance(event, Mapping):
            continue
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            blocks[as_int(get(start, "contentBlockIndex")) or 0] = _StreamBlock(get(start, "start"))
        elif "contentBlockDelta" in event:
            item = event["contentBlockDelta"]
            index = as_int(get(item, "contentBlockIndex")) or 0
            block = blocks.setdefault(index, _StreamBlock(None))
            delta = get(item, "delta")
            if get(delta, "text") is not None:
                block.text.append(str(get(delta, "text")))
            elif get(delta, "toolUse") is not None:
                block.json.append(str(get(get(delta, "toolUse"), "input") or ""))
            elif get(delta, "reasoningContent") is not None:
                block.thinking.append(str(get(get(delta, "reasoningContent"), "text") or ""))
        elif "messageStop" in event:
            stop_reason = get(event["messageStop"], "stopReason")
        elif "metadata" in event:
            metadata = event["metadata"]
            record.usage = _usage(get(metadata, "usage"))
            trace = get(get(metadata, "trace"), "guardrail")
    _finish(record, stop_reason, [blocks[i].part() for i in sorted(blocks)])
    guardrail_events(record, stop_reason, trace)


# ---------------------------------------------------------------------------------------
# Guardrails

#: Policy -> the lists its assessments hold (each item has ``action`` and a type or name).
_POLICIES = {
    "topicPolicy": ("topics",),
    "contentPolicy": ("filters",),
    "wordPolicy": ("customWords", "managedWordLists"),
    "sensitiveInformationPolicy": ("piiEntities", "regexes"),
    "contextualGroundingPolicy": ("filters",),
}
#: Keys of an assessment item that describe it (``match`` is the matched text itself: never kept).
_DESCRIBING = ("type", "name", "confidence", "filterStrength", "action", "detected", "score", "threshold")


def _assessment_summary(assessment: Any) -> tuple[dict[str, list[dict[str, Any]]], set[str]]:
    """The policies that acted or detected, and the set of actions taken."""
    summary: dict[str, list[dict[str, Any]]] = {}
    actions: set[str] = set()
    if not isinstance(assessment, Mapping):
        return summary, actions
    for policy, lists in _POLICIES.items():
        section = assessment.get(policy)
        if not isinstance(section, Mapping):
            continue
        for name in lists:
            for item in section.get(name) or ():
                if not isinstance(item, Mapping):
                    continue
                action = as_str(item.get("action"))
                if action in (None, "NONE") and not item.get("detected"):
                    continue
                summary.setdefault(f"{policy}.{name}", []).append({k: item[k] for k in _DESCRIBING if k in item})
                if action:
                    actions.add(action)
    return summary, actions


def _guardrail_action(actions: set[str], intervened: bool) -> str:
    if "BLOCKED" in actions or intervened:
        return "blocked"
    if "ANONYMIZED" in actions:
        return "redacted"
    return "flagged"


def guardrail_events(record: LLMCall, stop_reason: Any, trace: Any) -> None:
    """Policy events for a guardrail that intervened, and for each assessment that acted or detected."""
    intervened = stop_reason == "guardrail_intervened"
    emitted = False
    scopes: list[tuple[str, str, Any]] = []
    if isinstance(trace, Mapping):
        for guardrail_id, assessment in (trace.get("inputAssessment") or {}).items():
            scopes.append(("input", str(guardrail_id), assessment))
        for guardrail_id, assessments in (trace.get("outputAssessments") or {}).items():
            for assessment in assessments if isinstance(assessments, list) else [assessments]:
                scopes.append(("output", str(guardrail_id), assessment))
    for scope, guardrail_id, assessment in scopes:
        summary, actions = _assessment_summary(assessment)
        if not summary:
            continue
        details: dict[str, Any] = {"scope": scope, "guardrail_id": guardrail_id, "policies": summary}
        action = _guardrail_action(actions, intervened and "BLOCKED" in actions)
        record.policy_events.append(
            PolicyEvent("guardrail", action, source=_GUARDRAIL_SOURCE, name=guardrail_id, details=details)
        )
        emitted = True
    if intervened and not emitted:
        details = {"stop_reason": "guardrail_intervened"}
        name = record.guardrail_id
        record.policy_events.append(
            PolicyEvent("guardrail", "blocked", source=_GUARDRAIL_SOURCE, name=name, details=details)
        )


# ---------------------------------------------------------------------------------------
# InvokeModel: the model family's own body


def family_of(model_id: str | None) -> str:
    """``anthropic``, ``nova``, ``llama``, ``titan``, ``mistral``, ``cohere`` or ``other``."""
    model = (model_id or "").lower()
    # Inference profiles prefix the model id with a region group ("us.", "eu.", "global.").
    for family, marker in (
        ("anthropic", "anthropic."),
        ("nova", "amazon.nova"),
        ("titan", "amazon.titan-text"),
        ("llama", "meta.llama"),
        ("mistral", "mistral."),
        ("cohere", "cohere.command"),
    ):
        if marker in model:
            return family
    return "other"


def resolve_invoke(record: LLMCall, state: BedrockCallState) -> None:
    family = family_of(record.request_model)
    body = state.body if isinstance(state.body, Mapping) else {}
    response = state.response
    if response is not None:
        record.provider_request_id = _request_id(response)
    answer = parse_body(get(response, "_llm_audit_body")) if response is not None else None
    if family == "anthropic":
        anthropic_state = anthropic_capture.AnthropicCallState(dict(body))
        if answer is not None:
            anthropic_state.response = answer
        else:
            anthropic_state.chunks = [event for event in (_chunk_json(c) for c in state.chunks) if event is not None]
        anthropic_capture.resolve_messages(record, anthropic_state)
        return
    _family_request(record, family, body)
    if answer is None and state.chunks:
        answer = _merge_chunks(family, [e for e in (_chunk_json(c) for c in state.chunks) if e is not None])
    if isinstance(answer, Mapping):
        _family_response(record, family, answer)


def _chunk_json(event: Any) -> Any:
    data = get(get(event, "chunk"), "bytes")
    return parse_body(data) if data is not None else None


def _family_request(record: LLMCall, family: str, body: Mapping[str, Any]) -> None:
    if family == "nova":
        config = body.get("inferenceConfig")
        record.params = RequestParams(
            max_tokens=as_int(get(config, "max_new_tokens")) or as_int(get(config, "maxTokens")),
            temperature=as_float(get(config, "temperature")),
            top_p=as_float(get(config, "topP")),
            top_k=as_int(get(config, "topK")),
            stop_sequences=as_str_list(get(config, "stopSequences")),
        )
        record.system_instructions = _system(body.get("system"))
        record.input_messages = _messages(body.get("messages"))
        record.tool_definitions = _tools(body.get("toolConfig"))
    elif family == "titan":
        config = body.get("textGenerationConfig")
        record.params = RequestParams(
            max_tokens=as_int(get(config, "maxTokenCount")),
            temperature=as_float(get(config, "temperature")),
            top_p=as_float(get(config, "topP")),
            stop_sequences=as_str_list(get(config, "stopSequences")),
        )
        record.input_messages = _prompt_message(body.get("inputText"))
    elif family in ("llama", "mistral"):
        record.params = RequestParams(
            max_tokens=as_int(body.get("max_gen_len")) or as_int(body.get("max_tokens")),
            temperature=as_float(body.get("temperature")),
            top_p=as_float(body.get("top_p")),
            top_k=as_int(body.get("top_k")),
            stop_sequences=as_str_list(body.get("stop")),
        )
        record.input_messages = _prompt_message(body.get("prompt")) or _messages(body.get("messages"))
    elif family == "cohere":
        record.params = RequestParams(
            max_tokens=as_int(body.get("max_tokens")),
            temperature=as_float(body.get("temperature")),
            top_p=as_float(body.get("p")),
            top_k=as_int(body.get("k")),
            stop_sequences=as_str_list(body.get("stop_sequences")),
        )
        record.input_messages = _prompt_message(body.get("message"))


def _prompt_message(prompt: Any) -> list[Message] | None:
    if not isinstance(prompt, str):
        return None
    return [Message(role="user", parts=[{"type": "text", "content": prompt}])]


def _text_answer(record: LLMCall, text: Any, reason: Any, input_tokens: Any, output_tokens: Any) -> None:
    record.usage = Usage(input_tokens=as_int(input_tokens), output_tokens=as_int(output_tokens))
    _finish(record, reason, [{"type": "text", "content": text if isinstance(text, str) else ""}])


def _family_response(record: LLMCall, family: str, answer: Mapping[str, Any]) -> None:
    if family == "nova":
        content = get(get(get(answer, "output"), "message"), "content")
        parts = [_block_part(b) for b in content] if isinstance(content, (list, tuple)) else []
        record.usage = _usage(answer.get("usage"))
        _finish(record, answer.get("stopReason"), parts)
    elif family == "titan":
        results = answer.get("results") or [{}]
        first = results[0] if isinstance(results, list) and results else {}
        _text_answer(
            record,
            get(first, "outputText"),
            get(first, "completionReason"),
            answer.get("inputTextTokenCount"),
            get(first, "tokenCount"),
        )
    elif family == "llama":
        _text_answer(
            record,
            answer.get("generation"),
            answer.get("stop_reason"),
            answer.get("prompt_token_count"),
            answer.get("generation_token_count"),
        )
    elif family == "mistral":
        outputs = answer.get("outputs") or [{}]
        first = outputs[0] if isinstance(outputs, list) and outputs else {}
        _text_answer(record, get(first, "text"), get(first, "stop_reason"), None, None)
    elif family == "cohere":
        _text_answer(record, answer.get("text"), answer.get("finish_reason"), None, None)
    metrics = answer.get("amazon-bedrock-invocationMetrics")
    if metrics is not None and record.usage.input_tokens is None:
        record.usage = Usage(
            input_tokens=as_int(get(metrics, "inputTokenCount")), output_tokens=as_int(get(metrics, "outputTokenCount"))
        )


def _merge_chunks(family: str, events: list[Any]) -> dict[str, Any] | None:
    """A non-Anthropic family's stream folded into one answer body (text concatenated)."""
    if not events:
        return None
    texts: list[str] = []
    merged: dict[str, Any] = {}
    for event in events:
        if not isinstance(event, Mapping):
            continue
        for key in ("generation", "outputText", "text"):
            if isinstance(event.get(key), str):
                texts.append(event[key])
        delta = get(get(event, "contentBlockDelta"), "delta")
        if isinstance(get(delta, "text"), str):
            texts.append(get(delta, "text"))
        merged.update(
            {k: v for k, v in event.items() if k not in ("generation", "outputText", "text", "contentBlockDelta")}
        )
    text = "".join(texts)
    if family == "llama":
        merged["generation"] = text
    elif family == "titan":
        merged["results"] = [
            {
                "outputText": text,
                "completionReason": merged.get("completionReason"),
                "tokenCount": merged.get("totalOutputTextTokenCount"),
            }
        ]
    elif family == "nova":
        merged["output"] = {"message": {"content": [{"text": text}]}}
        stop = get(merged.get("messageStop"), "stopReason")
        if stop is not None:
            merged["stopReason"] = stop
        usage = get(merged.get("metadata"), "usage")
        if usage is not None:
            merged["usage"] = usage
    else:
        merged["text"] = text
    return merged
