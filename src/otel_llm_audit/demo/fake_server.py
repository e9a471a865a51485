"""A deterministic OpenAI- and Anthropic-compatible model server on loopback.

The demo command and the test suite drive the *real* ``openai`` SDK through
its real HTTP stack against this server, so what the auditor records is what
it would record against the real API: real request bodies, real headers
(``traceparent``, ``authorization``), real SSE parsing, real error mapping.
No network and no API key are involved, and every answer is a pure function
of the request, so tests can assert exact values.

Scripting rules (all driven by the request, nothing random):

* ``model`` ``error-<status>`` (e.g. ``error-429``) answers that HTTP status
  with an OpenAI error body; ``error-midstream`` with ``stream: true`` sends
  two content chunks and then drops the connection; ``malformed-json``
  answers 200 with a body (or SSE data line) that is not JSON.
* A model name ending in ``-chunks-N``, or an ``x-fake-chunks: N`` header,
  streams exactly N content fragments; otherwise fragments are 4 characters.
* Chat/Responses with function tools and a last user turn call the first
  function tool with ``{"city": "Paris"}``; after a tool result the answer
  is the weather sentence; a json_schema format answers ``{"answer": "42"}``.
* A named ``tool_choice`` (chat ``{"type": "function", "function": {"name":
  N}}``, Responses ``{"type": "function", "name": N}``) calls tool ``N``
  instead of the first, even after a tool turn (the API forces the call).
  Such a forced call's arguments are ``{"city": "Paris"}`` unless the tool's
  parameters require properties and ``city`` is not one of them: then each
  required property gets its schema's first ``examples`` entry, its
  ``default`` or its first ``enum`` value, else ``"Paris"`` (``1`` for
  numbers, ``true`` for booleans), so agents' tools with other schemas
  (``{"input": ...}``) accept them and a demo can script realistic
  arguments; and its id is ``call_fake_N``, N one more than the tool calls
  already in the conversation (agent SDKs refuse a reused call id).
* ``[think aloud]`` in any prompt text (a message, the instructions) makes
  a tool-call answer say :data:`TOOL_PREAMBLE` first: chat ``content``
  beside ``tool_calls``, Responses a ``message`` output item before the
  ``function_call`` (streamed as its own item).
* Token counts: prompt = characters of all text // 4 + 1 (half of it cached
  when any text contains ``[cached]``), completion = len(answer) // 4 + 1.
* Safety (model-name substrings, chat and Responses, streamed or not):
  ``refuse`` -> the refusal sentence as ``message.refusal`` / ``delta.refusal``
  (content null), or a Responses ``refusal`` part (``response.refusal.*``
  events); ``filter-completion`` -> no text and finish reason
  ``content_filter`` (Responses: status ``incomplete``, reason
  ``content_filter``); ``filter-prompt`` -> Azure's 400 ``content_filter``
  error (chat: ``innererror.content_filter_result``; Responses:
  ``content_filters``), with violence (medium) and a jailbreak filtered;
  ``invalid-prompt`` -> OpenAI's own 400 ``invalid_prompt`` (a prompt its usage
  policies block, as reasoning models answer it).
* Azure OpenAI (``openai.AzureOpenAI(azure_endpoint=<server root>)``):
  ``POST /openai/deployments/{deployment}/chat/completions`` and
  ``POST /openai/responses`` (any ``api-version``) answer as above, plus
  Azure's annotations: ``prompt_filter_results`` (streamed: a first chunk with
  no choices and empty id and model) and per-choice ``content_filter_results``
  (Responses: ``content_filters`` for prompt and completion), all ``safe``
  except ``filter-completion`` (violence filtered at high severity) and
  ``flag-prompt`` (a jailbreak detected in the prompt, not filtered).

Anthropic Messages API (``anthropic.Anthropic(base_url=server.anthropic_base_url)``,
the server root; the SDK appends ``/v1/messages``; any query such as
``?beta=true`` is accepted):

* ``POST /v1/messages`` answers a ``message`` (``msg_fake_N``, model plus
  ``-2026-01-01``) with a ``request-id: req_fake_N`` header; ``stream: true``
  answers named SSE events (message_start, content_block_start, ping,
  content_block_delta..., content_block_stop, message_delta, message_stop).
  ``POST /v1/messages/count_tokens`` answers ``{"input_tokens": N}``.
* Missing/invalid ``model``, ``max_tokens`` (not for count_tokens),
  ``messages``, ``system`` or ``thinking`` answer 400 ``invalid_request_error``
  worded like the API (``max_tokens: Field required``).
* Same planning as chat: tools and a last user turn without a ``tool_result``
  answer a ``tool_use`` block (``toolu_fake_1``, first tool or
  ``tool_choice``'s named tool, input ``{"city": "Paris"}``, stop ``tool_use``;
  ``tool_choice: none`` disables it); a ``tool_result`` in the last user turn
  answers the weather sentence; otherwise the hello sentence, cut at the first
  matching ``stop_sequences`` entry (stop ``stop_sequence``). ``thinking``
  (any type but ``disabled``) adds a ``thinking`` block with a signature first.
  Structured output (``output_config.format`` or the older top-level
  ``output_format`` of type ``json_schema``, as ``messages.parse`` sends)
  answers the text ``{"answer": "42"}`` instead of either sentence. A
  ``thread`` field (message threads beta, sent by the 2.x tool runner) is
  accepted and ignored: each request is answered from the messages it carries.
* Model name conventions (substrings, combinable): ``refuse`` -> stop
  ``refusal`` with a short text; ``-maxtokens`` -> stop ``max_tokens`` with
  the first half of the text (never a tool call); ``-cached`` ->
  ``cache_read_input_tokens`` 100 and ``cache_creation_input_tokens`` 20;
  ``-chunks-N`` / ``x-fake-chunks`` -> N deltas per content block.
  ``error-<status>`` -> that status with an Anthropic error body;
  ``error-midstream`` (stream) -> an SSE ``error`` event (overloaded_error)
  right after the first text delta; ``error-disconnect`` (stream) -> the
  connection drops after the first text delta; ``malformed-json`` -> 200
  with an invalid JSON body or SSE data line.
* Token counts: input = characters of system text, message text, tool_result
  content and tool_use input JSON // 4 + 1 (cache tokens come on top);
  output = sum over content blocks of (characters // 4 + 1), where a block's
  characters are its text, its thinking or its input as JSON.

Anthropic on Amazon Bedrock (``anthropic.AnthropicBedrock(base_url=server.anthropic_base_url,
aws_access_key=..., aws_secret_key=..., aws_region=...)``) and Google Vertex AI
(``anthropic.AnthropicVertex(base_url=server.base_url, region=..., project_id=...,
access_token=...)``), with the same planning, ids, models and scripts as above:

* Bedrock: ``POST /model/{model}/invoke`` answers the ``message`` as JSON;
  ``POST /model/{model}/invoke-with-response-stream`` streams the same events
  as ``application/vnd.amazon.eventstream`` messages (``:event-type: chunk``,
  payload ``{"bytes": base64(event JSON)}``, CRC32s checked by botocore), with
  ``amazon-bedrock-invocationMetrics`` on ``message_stop``. The model is the
  URL-unquoted path segment; the body must carry ``anthropic_version`` and must
  not carry ``model`` or ``stream`` (400 ``ValidationException``, like
  Bedrock). Responses carry ``x-amzn-requestid`` (no ``request-id``); errors
  are ``{"message": ...}`` with ``x-amzn-errortype``. ``error-midstream`` ends
  the stream with a ``modelStreamErrorException`` exception message. The
  SigV4 ``authorization`` header is recorded, not checked.
* Vertex: ``POST [/v1]/projects/{p}/locations/{r}/publishers/anthropic/models/
  {model}:rawPredict`` or ``:streamRawPredict`` answers exactly like
  ``/v1/messages`` (plain SSE; the body's ``stream`` decides, as rawPredict
  passes the body through) for the path's model; the body must carry
  ``anthropic_version``. ``models/count-tokens:rawPredict`` counts tokens for
  the body's ``model``.

Amazon Bedrock Runtime through botocore (``boto3.client("bedrock-runtime",
endpoint_url=server.bedrock_endpoint_url, region_name=..., aws_access_key_id=...,
aws_secret_access_key=...)``, the server root; SigV4 is recorded, not checked):

* Converse: ``POST /model/{modelId}/converse`` answers ``{"output": {"message":
  {"role": "assistant", "content": [...]}}, "stopReason", "usage": {"inputTokens",
  "outputTokens", "totalTokens"[, "cacheReadInputTokens", "cacheWriteInputTokens"]},
  "metrics": {"latencyMs": 1}[, "trace"]}``; ``/converse-stream`` streams event-stream
  messages whose ``:event-type`` is the event name and whose payload is the event JSON
  itself (not base64-wrapped): messageStart, [contentBlockStart for toolUse],
  contentBlockDelta..., contentBlockStop per block, messageStop, metadata (usage,
  metrics and the guardrail trace). Same planning as Messages: ``toolConfig`` tools and
  a last user turn -> a ``toolUse`` block (``tooluse_fake_1``, ``toolChoice`` ``tool``'s
  name or the first tool, input ``{"city": "Paris"}``, stop ``tool_use``); a
  ``toolResult`` in the last user turn -> the weather sentence; ``thinking``,
  ``reasoning_config`` or ``reasoningConfig`` in ``additionalModelRequestFields`` -> a
  ``reasoningContent`` block first; ``inferenceConfig.stopSequences`` -> stop
  ``stop_sequence``; ``refuse`` -> stop ``content_filtered``; ``-maxtokens``,
  ``-cached`` (cache tokens 100 read / 20 written, ``totalTokens`` includes them) and
  ``-chunks-N`` as above. Roles must alternate starting with ``user``, and
  toolUse/toolResult blocks need ``toolConfig`` (400 ``ValidationException``).
* Guardrails (``guardrailConfig.guardrailIdentifier`` substrings): ``gr-block-output``
  -> the answer is replaced by :data:`GUARDRAIL_BLOCKED_MESSAGE`, stop
  ``guardrail_intervened`` (outputAssessments: VIOLENCE, HIGH, BLOCKED; ``modelOutput``
  holds the answer); ``gr-block`` -> the input is blocked (no model call, usage 0,
  inputAssessment: VIOLENCE, HIGH, BLOCKED); ``gr-anonymize`` -> e-mail addresses in user
  text are reported as ``EMAIL`` ``ANONYMIZED`` and the turn goes on (stop ``end_turn``);
  any other id passes. ``trace: enabled`` (or ``enabled_full``) adds ``trace.guardrail``
  (stream: on ``metadata``), keyed by the identifier (an ARN's last segment).
* Errors: a model id containing ``error-<status>`` (optionally
  ``error-<status>-<Name>Exception``, e.g. ``error-429-ModelNotReadyException``) answers
  that status with ``{"message": ...}`` and ``x-amzn-errortype`` (default per status:
  400 Validation, 403 AccessDenied, 404 ResourceNotFound, 408 ModelTimeout, 424
  ModelError, 429 Throttling, 503 ServiceUnavailable, else InternalServer), so botocore
  raises ``ClientError`` with that code. In converse-stream ``error-midstream`` sends a
  ``modelStreamErrorException`` exception message after the first delta and
  ``error-disconnect`` drops the connection there.
* InvokeModel for other model families (``/invoke`` and ``/invoke-with-response-stream``,
  chosen by the model id, region prefix or ARN allowed; everything else stays Anthropic):
  ``amazon.nova-`` (the Converse body and answer, usage with ``cacheReadInputTokenCount``
  / ``cacheWriteInputTokenCount``, no metrics), ``meta.llama`` (``prompt`` ->
  ``generation``), ``mistral.`` (``prompt`` -> ``outputs``, or ``messages`` ->
  ``choices``, tools -> ``tool_calls``), ``cohere.command`` (``prompt`` ->
  ``generations``, or ``message`` -> Command R's ``text``/``chat_history``) and
  ``amazon.titan-text`` / ``amazon.titan-tg1`` (``inputText`` -> ``results``). Streams
  are ``chunk`` messages of the family's own chunk JSON, the last one carrying
  ``amazon-bedrock-invocationMetrics``; ``error-<status>`` and ``-maxtokens`` apply.

Google Gen AI (``google-genai``, the Gemini API and Gemini on Vertex AI, with
``http_options={"base_url": server.google_base_url}``): ``:generateContent``,
``:streamGenerateContent?alt=sse``, ``:countTokens``, ``:embedContent``,
``:batchEmbedContents`` and Vertex's ``:predict``, with safety conventions from markers in the
prompt text (``block-prompt``, ``prohibited-prompt``, ``block-answer``, ``flag-answer``,
``finish-<REASON>``); see :mod:`otel_llm_audit.demo.fake_google`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import socket
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["FakeModelServer", "RecordedRequest"]

JsonDict = dict[str, Any]

#: Fixed ``created`` timestamp (2026-01-01T00:00:00Z) so payloads never vary.
CREATED = 1767225600
#: Appended to the requested model so response model != request model, as with
#: real aliases (``gpt-4o-mini`` -> ``gpt-4o-mini-2024-07-18``).
MODEL_SUFFIX = "-2026-01-01"
SYSTEM_FINGERPRINT = "fp_fake"
HELLO_ANSWER = "Hello from the fake model."
WEATHER_ANSWER = "The weather in Paris is 18°C and sunny."
JSON_ANSWER = '{"answer": "42"}'
TOOL_CALL_ID = "call_fake_1"
TOOL_ARGUMENTS = '{"city": "Paris"}'
#: What a tool-call answer says first when a prompt asks ``[think aloud]`` (the model's stated reasoning).
TOOL_PREAMBLE = "I will call the tool to answer this."
THINK_ALOUD_MARKER = "[think aloud]"
DEFAULT_EMBEDDING_DIMENSIONS = 8
CHUNKS_HEADER = "x-fake-chunks"
_DEFAULT_PIECE_CHARS = 4
_MAX_CHOICES = 16
_MAX_CHUNKS = 10_000
_MAX_DIMENSIONS = 4096
_CHUNKS_SUFFIX = re.compile(r"-chunks-(\d+)$")
_ERROR_MODEL = re.compile(r"error-(\d{3})")
_RESPONSE_PATH = re.compile(r"/v1/responses/([^/]+)")

# Anthropic Messages API scripting (see the module docstring).
TOOL_USE_ID = "toolu_fake_1"
#: The scripted ``tool_use`` input; ``json.dumps(TOOL_INPUT) == TOOL_ARGUMENTS``.
TOOL_INPUT: dict[str, str] = {"city": "Paris"}
REFUSAL_ANSWER = "I can't help with that."
THINKING_TEXT = "The user wants a short, friendly answer."
#: A fixed base64 blob standing in for Claude's opaque thinking signature.
THINKING_SIGNATURE = "ZmFrZS10aGlua2luZy1zaWduYXR1cmU="
CACHE_READ_TOKENS = 100
CACHE_CREATION_TOKENS = 20
REFUSE_MARKER = "refuse"
MAXTOKENS_MARKER = "-maxtokens"
CACHED_MARKER = "-cached"
#: The SSE ``error`` event an ``error-midstream`` Messages stream sends after its first text delta.
MIDSTREAM_ERROR_EVENT: dict[str, Any] = {
    "type": "error",
    "error": {"type": "overloaded_error", "message": "Overloaded"},
}
_ANTHROPIC_PATH = "/v1/messages"
_COUNT_TOKENS_PATH = "/v1/messages/count_tokens"

# Anthropic on Amazon Bedrock and Google Vertex AI (see the module docstring).
#: ``POST /model/{model}/invoke`` and ``/invoke-with-response-stream`` (model URL-quoted).
_BEDROCK_PATH = re.compile(r"/model/([^/]+)/(invoke|invoke-with-response-stream)")
#: ``POST [/v1]/projects/{p}/locations/{r}/publishers/anthropic/models/{model}:rawPredict|streamRawPredict``.
_VERTEX_PATH = re.compile(
    r"(?:/v1(?:beta1)?)?/projects/[^/]+/locations/[^/]+/publishers/anthropic/models/([^/]+):(rawPredict|streamRawPredict)"
)
#: Vertex's token counting endpoint is this "model" with ``:rawPredict``; the model is in the body.
VERTEX_COUNT_TOKENS_MODEL = "count-tokens"
BEDROCK_STREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"
#: Bedrock's error type (``x-amzn-errortype``) per status; others are ``InternalServerException``.
_BEDROCK_ERROR_TYPES: dict[int, str] = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    503: "ServiceUnavailableException",
}
#: The ``:exception-type`` of the message an ``error-midstream`` Bedrock stream ends with, after its first text delta.
BEDROCK_MIDSTREAM_EXCEPTION = "modelStreamErrorException"

_ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_ERROR_KINDS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "model_not_found"),
    409: ("invalid_request_error", "conflict"),
    422: ("invalid_request_error", "unprocessable_entity"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the server saw it, for assertions in tests.

    ``headers`` keys are lower-cased so lookups do not depend on the casing
    a given HTTP client happens to use; ``body`` is the parsed JSON (or
    ``None`` when absent or not JSON) and ``raw_body`` the exact bytes.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw_body: bytes


class _BadRequest(Exception):
    """Raised by payload builders to answer an OpenAI-style 400."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True)
class _Answer:
    """What the fake model decided to say: text, or a call to ``tool_name``."""

    text: str | None
    tool_name: str | None
    arguments: str = TOOL_ARGUMENTS
    call_id: str = TOOL_CALL_ID
    #: Text said before a tool call (``[think aloud]``), else ``None``.
    preamble: str | None = None

    @property
    def wire_text(self) -> str:
        """The generated characters: the text or the tool-call arguments."""
        return self.text if self.text is not None else self.arguments

    @property
    def finish_reason(self) -> str:
        """Chat finish reason matching the kind of answer."""
        return "stop" if self.text is not None else "tool_calls"


@dataclass(frozen=True)
class _Usage:
    """Deterministic token counts derived from character lengths."""

    prompt: int
    completion: int
    cached: int

    @property
    def total(self) -> int:
        """Prompt plus completion, as the API reports it."""
        return self.prompt + self.completion


# --------------------------------------------------------------------------
# Scripting: pure functions from request body to answer
# --------------------------------------------------------------------------


def _response_model(model: str) -> str:
    """Resolve the requested model to a dated snapshot name, like the real API."""
    return model + MODEL_SUFFIX


def _service_tier(body: JsonDict) -> str:
    """Echo an explicit tier; ``auto`` or absent resolves to ``default``."""
    tier = body.get("service_tier")
    return tier if isinstance(tier, str) and tier != "auto" else "default"


def _text_of(content: Any) -> str:
    """Text of a message ``content``: a string or a list of parts with ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def _count_usage(prompt_texts: list[str], answer: _Answer, choices: int = 1) -> _Usage:
    """Apply the documented token formula; completion scales with ``n``."""
    prompt = sum(len(text) for text in prompt_texts) // 4 + 1
    cached = prompt // 2 if any("[cached]" in text for text in prompt_texts) else 0
    completion = (len(answer.wire_text + (answer.preamble or "")) // 4 + 1) * choices
    return _Usage(prompt=prompt, completion=completion, cached=cached)


def _text_answer(after_tool: bool, json_schema: bool) -> str:
    """Pick the text reply: structured output wins, then the tool follow-up."""
    if json_schema:
        return JSON_ANSWER
    return WEATHER_ANSWER if after_tool else HELLO_ANSWER


def _first_chat_tool(tools: Any) -> str | None:
    """Name of the first Chat Completions function tool, if any."""
    for tool in tools if isinstance(tools, list) else []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
    return None


def _first_responses_tool(tools: Any) -> str | None:
    """Name of the first Responses API function tool, if any."""
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("name"), str):
            return str(tool["name"])
    return None


def _named_tool_choice(body: JsonDict) -> str | None:
    """The tool a named ``tool_choice`` forces (chat and Responses shapes), if any."""
    choice = body.get("tool_choice")
    if not isinstance(choice, dict):
        return None
    name = choice.get("name")
    if name is None and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
    return name if isinstance(name, str) else None


def _tool_parameters(tools: Any, name: str) -> Any:
    """The parameters schema of function tool ``name`` (chat or Responses shape)."""
    for tool in tools if isinstance(tools, list) else []:
        function = tool.get("function", tool) if isinstance(tool, dict) else None
        if isinstance(function, dict) and function.get("name") == name:
            return function.get("parameters")
    return None


def _scripted_arguments(parameters: Any) -> str:
    """``{"city": "Paris"}``, unless the schema requires other properties (see the module docstring)."""
    if not isinstance(parameters, dict):
        return TOOL_ARGUMENTS
    required = parameters.get("required")
    properties = parameters.get("properties")
    if not isinstance(required, list) or not required or not isinstance(properties, dict) or "city" in properties:
        return TOOL_ARGUMENTS
    values: JsonDict = {}
    for key in required:
        schema = properties.get(key)
        values[str(key)] = _scripted_value(schema if isinstance(schema, dict) else {})
    return json.dumps(values)


def _scripted_value(schema: JsonDict) -> Any:
    """The property's first example, its default or first enum value; else a placeholder of its type."""
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    if "default" in schema:
        return schema["default"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = schema.get("type")
    return 1 if kind in ("integer", "number") else True if kind == "boolean" else "Paris"


def _tool_answer(body: JsonDict, tool: str, prompt_texts: list[str], prior_calls: int, forced: bool) -> _Answer:
    """A call to ``tool``, said aloud first on ``[think aloud]``; forced: arguments its schema accepts, a new id."""
    preamble = TOOL_PREAMBLE if any(THINK_ALOUD_MARKER in text for text in prompt_texts) else None
    if not forced:
        return _Answer(text=None, tool_name=tool, preamble=preamble)
    arguments = _scripted_arguments(_tool_parameters(body.get("tools"), tool))
    call_id = f"call_fake_{prior_calls + 1}"
    return _Answer(text=None, tool_name=tool, arguments=arguments, call_id=call_id, preamble=preamble)


def _chat_messages(body: JsonDict) -> list[JsonDict]:
    """The request's messages, validated enough to script on."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise _BadRequest("'messages' must be a list of message objects.", "messages")
    return messages


def _plan_chat_answer(body: JsonDict, messages: list[JsonDict]) -> _Answer:
    """Decide the chat answer from tools, the last role and response_format."""
    last_role = messages[-1].get("role") if messages else None
    forced = _named_tool_choice(body)
    tool = forced or _first_chat_tool(body.get("tools"))
    if tool is not None and (last_role == "user" or forced):
        prior = sum(len(m.get("tool_calls") or ()) for m in messages if m.get("role") == "assistant")
        return _tool_answer(body, tool, [_text_of(m.get("content")) for m in messages], prior, forced is not None)
    response_format = body.get("response_format")
    json_schema = isinstance(response_format, dict) and response_format.get("type") == "json_schema"
    return _Answer(text=_text_answer(last_role == "tool", json_schema), tool_name=None)


def _responses_input_items(body: JsonDict) -> list[JsonDict]:
    """Normalise Responses ``input`` (string or item list) to a list of items."""
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise _BadRequest("'input' must be a string or a list of input items.", "input")
    return raw


def _responses_prompt_texts(body: JsonDict, items: list[JsonDict]) -> list[str]:
    """All prompt text: instructions, message contents and tool outputs."""
    texts = [body["instructions"]] if isinstance(body.get("instructions"), str) else []
    for item in items:
        is_tool_output = item.get("type") == "function_call_output"
        texts.append(_text_of(item.get("output") if is_tool_output else item.get("content")))
    return texts


def _plan_responses_answer(body: JsonDict, items: list[JsonDict]) -> _Answer:
    """Decide the Responses answer with the same rules as chat."""
    last = items[-1] if items else {}
    forced = _named_tool_choice(body)
    tool = forced or _first_responses_tool(body.get("tools"))
    if tool is not None and (last.get("role") == "user" or forced):
        prior = sum(1 for item in items if item.get("type") == "function_call")
        return _tool_answer(body, tool, _responses_prompt_texts(body, items), prior, forced is not None)
    text_config = body.get("text")
    text_format = text_config.get("format") if isinstance(text_config, dict) else None
    json_schema = isinstance(text_format, dict) and text_format.get("type") == "json_schema"
    after_tool = last.get("type") == "function_call_output"
    return _Answer(text=_text_answer(after_tool, json_schema), tool_name=None)


def _requested_chunks(model: str, headers: dict[str, str]) -> int | None:
    """Chunk count from the ``x-fake-chunks`` header or a ``-chunks-N`` model."""
    raw = headers.get(CHUNKS_HEADER)
    if raw is None:
        match = _CHUNKS_SUFFIX.search(model)
        raw = match.group(1) if match else None
    if raw is None:
        return None
    if not raw.strip().isdigit() or not 1 <= int(raw) <= _MAX_CHUNKS:
        raise _BadRequest(f"Chunk count must be an integer in 1..{_MAX_CHUNKS}.", "model")
    return int(raw)


def _split(text: str, count: int | None) -> list[str]:
    """Split into ``count`` near-equal pieces, or 4-character pieces by default.

    With an explicit count larger than the text some pieces are empty, which
    is valid on the wire and keeps the count exact for tests.
    """
    if count is None:
        step = _DEFAULT_PIECE_CHARS
        return [text[i : i + step] for i in range(0, len(text), step)] or [""]
    base, extra = divmod(len(text), count)
    pieces, start = [], 0
    for index in range(count):
        size = base + (1 if index < extra else 0)
        pieces.append(text[start : start + size])
        start += size
    return pieces


def _choice_count(body: JsonDict) -> int:
    """Honour ``n`` within a sane bound."""
    n = body.get("n", 1)
    if n is None:
        return 1
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= _MAX_CHOICES:
        raise _BadRequest(f"'n' must be an integer in 1..{_MAX_CHOICES}.", "n")
    return n


# --------------------------------------------------------------------------
# Chat Completions payloads
# --------------------------------------------------------------------------


def _chat_usage(usage: _Usage) -> JsonDict:
    """Usage block in the Chat Completions shape, with detail objects."""
    return {
        "prompt_tokens": usage.prompt,
        "completion_tokens": usage.completion,
        "total_tokens": usage.total,
        "prompt_tokens_details": {"cached_tokens": usage.cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_tool_call(name: str, arguments: str = TOOL_ARGUMENTS, call_id: str = TOOL_CALL_ID) -> JsonDict:
    """The scripted tool call, complete (non-streaming shape)."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _chat_message(answer: _Answer) -> JsonDict:
    """Assistant message for a non-streaming choice."""
    content = answer.text if answer.tool_name is None else answer.preamble
    message: JsonDict = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if answer.tool_name is not None:
        message["tool_calls"] = [_chat_tool_call(answer.tool_name, answer.arguments, answer.call_id)]
    return message


def _chat_completion(body: JsonDict, ident: str, answer: _Answer, usage: _Usage, n: int) -> JsonDict:
    """A complete ``chat.completion`` object."""
    return {
        "id": ident,
        "object": "chat.completion",
        "created": CREATED,
        "model": _response_model(body["model"]),
        "choices": [
            {
                "index": i,
                "message": _chat_message(answer),
                "logprobs": None,
                "finish_reason": answer.finish_reason,
            }
            for i in range(n)
        ],
        "usage": _chat_usage(usage),
        "service_tier": _service_tier(body),
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def _chat_deltas(answer: _Answer, pieces: list[str]) -> list[JsonDict]:
    """Deltas for one choice; the first carries the role, as the API does.

    Tool calls stream the standard way: a header delta with id/type/name and
    empty arguments, then one delta per argument fragment.
    """
    if answer.tool_name is None:
        deltas: list[JsonDict] = [{"content": piece} for piece in pieces]
        deltas[0] = {"role": "assistant", **deltas[0]}
        return deltas
    header = {
        "index": 0,
        "id": answer.call_id,
        "type": "function",
        "function": {"name": answer.tool_name, "arguments": ""},
    }
    fragments = [{"tool_calls": [{"index": 0, "function": {"arguments": piece}}]} for piece in pieces]
    if answer.preamble is not None:
        said = [{"content": piece} for piece in _split(answer.preamble, None)]
        said[0] = {"role": "assistant", **said[0]}
        return [*said, {"tool_calls": [header]}, *fragments]
    return [{"role": "assistant", "content": None, "tool_calls": [header]}, *fragments]


def _include_usage(body: JsonDict) -> bool:
    """Whether ``stream_options.include_usage`` asked for a final usage chunk."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _chat_chunks(
    body: JsonDict, ident: str, answer: _Answer, usage: _Usage, pieces: list[str], n: int
) -> list[JsonDict]:
    """All ``chat.completion.chunk`` objects for a streamed answer, in order.

    Choices are interleaved step by step (one choice per chunk), then one
    finish chunk per choice, then the usage chunk with ``choices: []``.
    """
    include_usage = _include_usage(body)
    base: JsonDict = {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": _response_model(body["model"]),
        "service_tier": _service_tier(body),
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if include_usage:
        base["usage"] = None  # the real API sends an explicit null until the last chunk

    def chunk(index: int, delta: JsonDict, finish_reason: str | None) -> JsonDict:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**base, "choices": [choice]}

    deltas = _chat_deltas(answer, pieces)
    chunks = [chunk(i, delta, None) for delta in deltas for i in range(n)]
    chunks += [chunk(i, {}, answer.finish_reason) for i in range(n)]
    if include_usage:
        chunks.append({**base, "choices": [], "usage": _chat_usage(usage)})
    return chunks


# --------------------------------------------------------------------------
# Responses API payloads
# --------------------------------------------------------------------------


def _responses_usage(usage: _Usage) -> JsonDict:
    """Usage block in the Responses API shape."""
    return {
        "input_tokens": usage.prompt,
        "input_tokens_details": {"cached_tokens": usage.cached, "cache_write_tokens": 0},
        "output_tokens": usage.completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total,
    }


def _output_text_part(text: str) -> JsonDict:
    """An ``output_text`` content part."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _output_item(answer: _Answer, number: str) -> JsonDict:
    """The single completed output item: a message or a function call."""
    if answer.tool_name is not None:
        return {
            "id": f"fc_fake_{number}",
            "type": "function_call",
            "status": "completed",
            "call_id": answer.call_id,
            "name": answer.tool_name,
            "arguments": answer.arguments,
        }
    return {
        "id": f"msg_fake_{number}",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [_output_text_part(answer.wire_text)],
    }


def _output_items(answer: _Answer, number: str) -> list[JsonDict]:
    """The output: one item, or the preamble message then the function call (``[think aloud]``)."""
    item = _output_item(answer, number)
    if answer.tool_name is None or answer.preamble is None:
        return [item]
    said = _output_item(_Answer(text=answer.preamble, tool_name=None), f"{number}_0")
    return [said, item]


def _response_object(body: JsonDict, ident: str, answer: _Answer, usage: _Usage) -> JsonDict:
    """A completed ``response`` object echoing the request's settings."""
    number = ident.rsplit("_", 1)[-1]
    return {
        "id": ident,
        "object": "response",
        "created_at": CREATED,
        "completed_at": CREATED,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "background": False,
        "model": _response_model(body["model"]),
        "output": _output_items(answer, number),
        "instructions": body.get("instructions"),
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
        "max_output_tokens": body.get("max_output_tokens"),
        "tools": body.get("tools") or [],
        "tool_choice": body.get("tool_choice", "auto"),
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "service_tier": _service_tier(body),
        "text": body.get("text") or {"format": {"type": "text"}},
        "reasoning": {"effort": None, "summary": None},
        "truncation": body.get("truncation", "disabled"),
        "metadata": body.get("metadata") or {},
        "store": body.get("store", True),
        "user": body.get("user"),
        "usage": _responses_usage(usage),
    }


def _in_progress(response: JsonDict) -> JsonDict:
    """The response as announced by ``response.created``: no output, no usage."""
    return {**response, "status": "in_progress", "output": [], "usage": None, "completed_at": None}


def _message_events(item: JsonDict, pieces: list[str], index: int = 0) -> list[JsonDict]:
    """Item/part/delta/done events for a streamed text message."""
    ids = {"item_id": item["id"], "output_index": index}
    text = item["content"][0]["text"]
    added = {**item, "status": "in_progress", "content": []}
    return [
        {"type": "response.output_item.added", "output_index": index, "item": added},
        {"type": "response.content_part.added", **ids, "content_index": 0, "part": _output_text_part("")},
        *(
            {"type": "response.output_text.delta", **ids, "content_index": 0, "delta": piece, "logprobs": []}
            for piece in pieces
        ),
        {"type": "response.output_text.done", **ids, "content_index": 0, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **ids, "content_index": 0, "part": _output_text_part(text)},
        {"type": "response.output_item.done", "output_index": index, "item": item},
    ]


def _function_call_events(item: JsonDict, pieces: list[str], index: int = 0) -> list[JsonDict]:
    """Item/argument-delta/done events for a streamed function call."""
    ids = {"item_id": item["id"], "output_index": index}
    added = {**item, "status": "in_progress", "arguments": ""}
    return [
        {"type": "response.output_item.added", "output_index": index, "item": added},
        *({"type": "response.function_call_arguments.delta", **ids, "delta": piece} for piece in pieces),
        {"type": "response.function_call_arguments.done", **ids, "arguments": item["arguments"]},
        {"type": "response.output_item.done", "output_index": index, "item": item},
    ]


def _response_events(response: JsonDict, pieces: list[str]) -> list[JsonDict]:
    """The full SSE event sequence for a streamed response, numbered.

    ``pieces`` split the last item (the answer); a preamble item before it streams in 4-character pieces.
    """
    output = response["output"]
    body_events: list[JsonDict] = []
    for index, item in enumerate(output):
        last = index == len(output) - 1
        item_pieces = pieces if last else _split(item["content"][0]["text"], None)
        emit = _message_events if item["type"] == "message" else _function_call_events
        body_events += emit(item, item_pieces, index)
    started = _in_progress(response)
    events = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        *body_events,
        {"type": "response.completed", "response": response},
    ]
    return [{**event, "sequence_number": seq} for seq, event in enumerate(events)]


# --------------------------------------------------------------------------
# Safety scripting: refusals, content filters and Azure OpenAI's annotations
# --------------------------------------------------------------------------

#: Model-name substrings (see the module docstring); ``refuse`` is :data:`REFUSE_MARKER`.
FILTER_COMPLETION_MARKER = "filter-completion"
FILTER_PROMPT_MARKER = "filter-prompt"
FLAG_PROMPT_MARKER = "flag-prompt"
#: OpenAI's own 400 for a prompt its usage policies block (reasoning models): code ``invalid_prompt``.
INVALID_PROMPT_MARKER = "invalid-prompt"
INVALID_PROMPT_MESSAGE = (
    "Invalid prompt: your prompt was flagged as potentially violating our usage policy. "
    "Please try again with a different prompt: https://platform.openai.com/docs/guides/reasoning#advice-on-prompting"
)
#: The message of Azure's 400 ``content_filter`` error.
AZURE_CONTENT_FILTER_MESSAGE = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
    "Please modify your prompt and retry. To learn more about our content filtering policies please read "
    "our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
#: ``AzureOpenAI(azure_endpoint=server root)``: chat is per deployment, the Responses API is not.
_AZURE_CHAT_PATH = re.compile(r"/openai/deployments/[^/]+/chat/completions")
_AZURE_RESPONSES_PATH = "/openai/responses"


def _azure_route(path: str) -> str | None:
    """The OpenAI path an Azure OpenAI path is served as, or None."""
    if _AZURE_CHAT_PATH.fullmatch(path):
        return "/v1/chat/completions"
    return "/v1/responses" if path == _AZURE_RESPONSES_PATH else None


def _safety_answer(model: str, answer: _Answer) -> _Answer:
    """``refuse``: the refusal sentence is what gets generated; ``filter-completion``: nothing is."""
    if REFUSE_MARKER in model:
        return _Answer(text=REFUSAL_ANSWER, tool_name=None)
    if FILTER_COMPLETION_MARKER in model:
        return _Answer(text="", tool_name=None)
    return answer


def _severity_results(**levels: str) -> JsonDict:
    """Azure's four harm categories, ``safe`` unless given; a level at medium or above is filtered."""
    return {
        name: {"filtered": levels.get(name, "safe") in ("medium", "high"), "severity": levels.get(name, "safe")}
        for name in ("hate", "self_harm", "sexual", "violence")
    }


def _azure_prompt_results(model: str) -> JsonDict:
    """A prompt's ``content_filter_results``: ``flag-prompt`` detects (annotates, does not filter) a jailbreak."""
    jailbreak = FLAG_PROMPT_MARKER in model
    return {**_severity_results(), "jailbreak": {"filtered": False, "detected": jailbreak}}


def _azure_completion_results(model: str) -> JsonDict:
    """A choice's ``content_filter_results``: ``filter-completion`` filters violence at high severity."""
    harm = _severity_results(violence="high") if FILTER_COMPLETION_MARKER in model else _severity_results()
    undetected = {"filtered": False, "detected": False}
    return {**harm, "protected_material_code": dict(undetected), "protected_material_text": dict(undetected)}


def _azure_prompt_filter_results(model: str) -> list[JsonDict]:
    return [{"prompt_index": 0, "content_filter_results": _azure_prompt_results(model)}]


def _content_filter_error(responses_api: bool) -> JsonDict:
    """Azure's 400 for a filtered prompt: ``innererror`` on chat, ``content_filters`` on the Responses API."""
    results = {**_severity_results(violence="medium"), "jailbreak": {"filtered": True, "detected": True}}
    error: JsonDict = {"message": AZURE_CONTENT_FILTER_MESSAGE, "param": "prompt", "code": "content_filter"}
    if responses_api:
        error["type"] = "invalid_request_error"
        error["content_filters"] = [{"blocked": True, "source_type": "prompt", "content_filter_results": results}]
    else:
        error.update(type=None, status=400)
        error["innererror"] = {"code": "ResponsibleAIPolicyViolation", "content_filter_result": results}
    return {"error": error}


def _invalid_prompt_error() -> JsonDict:
    """OpenAI's 400 for a prompt its usage policies block (as reasoning models answer it)."""
    error = {"message": INVALID_PROMPT_MESSAGE, "type": "invalid_request_error", "param": None}
    return {"error": {**error, "code": "invalid_prompt"}}


def _safety_chat_completion(completion: JsonDict, model: str, azure: bool) -> None:
    """Script a ``chat.completion`` in place: refusal, content filter finish, Azure annotations."""
    for choice in completion["choices"]:
        message = choice["message"]
        if REFUSE_MARKER in model:
            message["refusal"], message["content"] = message["content"], None
        elif FILTER_COMPLETION_MARKER in model:
            choice["finish_reason"], message["content"] = "content_filter", None
        if azure:
            choice["content_filter_results"] = _azure_completion_results(model)
    if azure:
        completion["prompt_filter_results"] = _azure_prompt_filter_results(model)


def _safety_chat_chunks(chunks: list[JsonDict], model: str, azure: bool) -> list[JsonDict]:
    """Script streamed chunks: refusal deltas, a ``content_filter`` finish, Azure annotations.

    Azure sends the prompt's results first, in a chunk with no choices and empty
    id and model; then each choice chunk carries ``content_filter_results``
    (empty on the role and finish chunks, except a filtered finish).
    """
    for chunk in chunks:
        for choice in chunk["choices"]:
            delta, finish = choice["delta"], choice["finish_reason"]
            if REFUSE_MARKER in model and "content" in delta:
                delta["refusal"] = delta.pop("content")
                if "role" in delta:
                    delta["content"] = None
            if FILTER_COMPLETION_MARKER in model and finish is not None:
                choice["finish_reason"] = "content_filter"
            if azure:
                filtered = finish is not None and FILTER_COMPLETION_MARKER in model
                carries_text = bool(delta.get("content") or delta.get("refusal"))
                choice["content_filter_results"] = _azure_completion_results(model) if filtered or carries_text else {}
    if not azure:
        return chunks
    first = {"choices": [], "created": 0, "id": "", "model": "", "object": ""}
    return [{**first, "prompt_filter_results": _azure_prompt_filter_results(model)}, *chunks]


def _safety_response(response: JsonDict, events: list[JsonDict], model: str, azure: bool) -> None:
    """Script a Responses API object (and its stream events) in place, after the events were built.

    ``refuse``: the message's part becomes a ``refusal`` part (``response.refusal.*``
    events); ``filter-completion``: status ``incomplete``, reason ``content_filter``
    (``response.incomplete``); Azure: ``content_filters`` for prompt and completion.
    """
    item = response["output"][0]
    if REFUSE_MARKER in model and item["type"] == "message":
        item["content"] = [{"type": "refusal", "refusal": item["content"][0]["text"]}]
        for event in events:
            kind = event["type"]
            if kind in ("response.content_part.added", "response.content_part.done"):
                event["part"] = {"type": "refusal", "refusal": event["part"]["text"]}
            elif kind == "response.output_text.delta":
                event["type"] = "response.refusal.delta"
                del event["logprobs"]
            elif kind == "response.output_text.done":
                event["type"], event["refusal"] = "response.refusal.done", event.pop("text")
                del event["logprobs"]
    elif FILTER_COMPLETION_MARKER in model:
        response.update(status="incomplete", incomplete_details={"reason": "content_filter"}, completed_at=None)
        item["status"] = "incomplete"
        for event in events:
            if event["type"] == "response.completed":
                event["type"] = "response.incomplete"
    if azure:
        filtered = FILTER_COMPLETION_MARKER in model
        response["content_filters"] = [
            {"blocked": False, "source_type": "prompt", "content_filter_results": _azure_prompt_results(model)},
            {
                "blocked": filtered,
                "source_type": "completion",
                "content_filter_results": _azure_completion_results(model),
            },
        ]


# --------------------------------------------------------------------------
# Embeddings payloads
# --------------------------------------------------------------------------


def _embedding_inputs(raw: Any) -> list[str | list[int]]:
    """Normalise ``input``: a string, strings, a token list or token lists."""
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(token, int) for token in raw):
        return [list(raw)]
    if isinstance(raw, list) and raw:
        items: list[str | list[int]] = []
        for entry in raw:
            if isinstance(entry, str) or (isinstance(entry, list) and all(isinstance(t, int) for t in entry)):
                items.append(entry)
            else:
                raise _BadRequest("'input' entries must be strings or token lists.", "input")
        return items
    raise _BadRequest("'input' must be a non-empty string or array.", "input")


def _embedding_vector(item: str | list[int], dimensions: int) -> list[float]:
    """Hash-derived vector; values are k/128, exact in float32.

    Exactness matters: the SDK asks for base64 float32 by default and
    decodes it, so ``float`` and ``base64`` answers must compare equal.
    """
    seed = item if isinstance(item, str) else " ".join(str(token) for token in item)
    stream = b""
    block = 0
    while len(stream) < dimensions:
        stream += hashlib.sha256(f"{block}:{seed}".encode()).digest()
        block += 1
    return [(byte - 128) / 128 for byte in stream[:dimensions]]


def _encode_vector(vector: list[float], encoding_format: str) -> list[float] | str:
    """``float`` list, or base64 of little-endian float32 as the API sends."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def _embeddings_response(body: JsonDict) -> JsonDict:
    """A ``list`` of ``embedding`` objects with usage."""
    items = _embedding_inputs(body.get("input"))
    dimensions = body.get("dimensions") or DEFAULT_EMBEDDING_DIMENSIONS
    if not isinstance(dimensions, int) or not 1 <= dimensions <= _MAX_DIMENSIONS:
        raise _BadRequest(f"'dimensions' must be an integer in 1..{_MAX_DIMENSIONS}.", "dimensions")
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in ("float", "base64"):
        raise _BadRequest("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    text_chars = sum(len(item) for item in items if isinstance(item, str))
    token_count = sum(len(item) for item in items if isinstance(item, list))
    prompt_tokens = text_chars // 4 + token_count + 1
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": _encode_vector(_embedding_vector(item, dimensions), encoding_format),
        }
        for i, item in enumerate(items)
    ]
    return {
        "object": "list",
        "data": data,
        "model": _response_model(body["model"]),
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


# --------------------------------------------------------------------------
# Anthropic Messages API payloads
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _MessagePlan:
    """What the fake Claude decided to say: complete content blocks and why it stopped."""

    content: tuple[JsonDict, ...]
    stop_reason: str
    stop_sequence: str | None = None

    @property
    def stop_details(self) -> JsonDict | None:
        """Structured refusal details (``null`` for every other stop reason)."""
        if self.stop_reason != "refusal":
            return None
        return {"type": "refusal", "category": None, "explanation": None}


def _field_error(field: str, problem: str) -> _BadRequest:
    """A 400 worded like the real API's validation errors (``max_tokens: Field required``)."""
    return _BadRequest(f"{field}: {problem}", field.split(".", 1)[0])


def _is_int(value: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_messages(body: JsonDict) -> list[JsonDict]:
    """``messages``: a non-empty list of user/assistant turns with string or block content."""
    if "messages" not in body:
        raise _field_error("messages", "Field required")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _field_error("messages", "Input should be a valid list")
    if not messages:
        raise _BadRequest("messages: at least one message is required", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _field_error(f"messages.{index}", "Input should be a valid dictionary")
        if message.get("role") not in ("user", "assistant"):
            raise _field_error(f"messages.{index}.role", "Input should be 'user' or 'assistant'")
        content = message.get("content")
        if not isinstance(content, str) and not (
            isinstance(content, list) and all(isinstance(block, dict) for block in content)
        ):
            raise _field_error(f"messages.{index}.content", "Input should be a valid string or list of content blocks")
    return messages


def _validate_thinking(body: JsonDict, count_tokens: bool) -> None:
    """``thinking``: an object; ``enabled`` needs 1024 <= budget_tokens < max_tokens."""
    thinking = body.get("thinking")
    if thinking is None:
        return
    if not isinstance(thinking, dict) or not isinstance(thinking.get("type"), str):
        raise _field_error("thinking", "Input should be a valid dictionary with a 'type'")
    if thinking["type"] != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1024:
        raise _field_error("thinking.enabled.budget_tokens", "Input should be greater than or equal to 1024")
    if not count_tokens and budget >= body["max_tokens"]:
        raise _BadRequest("`max_tokens` must be greater than `thinking.budget_tokens`.", "max_tokens")


def _anthropic_request(body: Any, count_tokens: bool) -> tuple[JsonDict, list[JsonDict]]:
    """Validate a Messages (or count_tokens) body the way the real API does.

    ``model`` and ``messages`` are always required, ``max_tokens`` (an
    integer >= 1) only for ``/v1/messages``; ``system`` is a string or a
    list of text blocks.
    """
    if not isinstance(body, dict):
        raise _BadRequest("Request body must be a valid JSON object.")
    if "model" not in body:
        raise _field_error("model", "Field required")
    if not isinstance(body["model"], str) or not body["model"]:
        raise _field_error("model", "Input should be a non-empty string")
    if not count_tokens:
        if "max_tokens" not in body:
            raise _field_error("max_tokens", "Field required")
        if not _is_int(body["max_tokens"]):
            raise _field_error("max_tokens", "Input should be a valid integer")
        if body["max_tokens"] < 1:
            raise _field_error("max_tokens", "Input should be greater than or equal to 1")
    messages = _validate_messages(body)
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        is_blocks = isinstance(system, list) and all(
            isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
            for block in system
        )
        if not is_blocks:
            raise _field_error("system", "Input should be a valid string or a list of text blocks")
    _validate_thinking(body, count_tokens)
    return body, messages


def _anthropic_texts(content: Any) -> list[str]:
    """Prompt text of a ``system`` or message ``content``.

    Counted: strings, ``text`` blocks, ``tool_result`` content (string or
    text blocks) and ``tool_use`` input as JSON. Not counted: thinking
    blocks, images, documents and tool definitions.
    """
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_result":
            texts.extend(_anthropic_texts(block.get("content")))
        elif kind == "tool_use":
            texts.append(json.dumps(block.get("input", {})))
    return texts


def _anthropic_input_tokens(body: JsonDict, messages: list[JsonDict]) -> int:
    """Input tokens: characters of the system prompt and all message text // 4 + 1."""
    texts = _anthropic_texts(body.get("system"))
    for message in messages:
        texts.extend(_anthropic_texts(message.get("content")))
    return sum(len(text) for text in texts) // 4 + 1


def _thinking_requested(body: JsonDict) -> bool:
    """``thinking`` of any type but ``disabled`` (``enabled``, ``adaptive``, ...)."""
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") != "disabled"


def _json_schema_requested(body: JsonDict) -> bool:
    """Structured output: ``output_config.format`` (or the older top-level ``output_format``) is a JSON schema."""
    config = body.get("output_config")
    formats = (config.get("format") if isinstance(config, dict) else None, body.get("output_format"))
    return any(isinstance(fmt, dict) and fmt.get("type") == "json_schema" for fmt in formats)


def _anthropic_tool(body: JsonDict) -> str | None:
    """The tool the fake will call: ``tool_choice``'s named tool, else the first tool.

    ``tool_choice: {"type": "none"}`` disables tool use.
    """
    tools = body.get("tools")
    tools = tools if isinstance(tools, list) else []
    names = [tool["name"] for tool in tools if isinstance(tool, dict) and isinstance(tool.get("name"), str)]
    choice = body.get("tool_choice")
    choice = choice if isinstance(choice, dict) else {}
    if not names or choice.get("type") == "none":
        return None
    named = choice.get("name")
    return str(named) if choice.get("type") == "tool" and named in names else str(names[0])


def _has_tool_result(message: JsonDict) -> bool:
    """Whether a turn carries a ``tool_result`` block."""
    content = message.get("content")
    return isinstance(content, list) and any(block.get("type") == "tool_result" for block in content)


def _apply_stop_sequences(text: str, body: JsonDict) -> tuple[str, str | None]:
    """Cut ``text`` at the earliest requested stop sequence it contains."""
    sequences = body.get("stop_sequences")
    found = [
        (text.index(seq), seq)
        for seq in (sequences if isinstance(sequences, list) else [])
        if isinstance(seq, str) and seq and seq in text
    ]
    if not found:
        return text, None
    position, sequence = min(found)
    return text[:position], sequence


def _plan_message(body: JsonDict, messages: list[JsonDict]) -> _MessagePlan:
    """Decide the Messages answer with the same rules as chat, plus Claude's stop reasons."""
    model = body["model"]
    if REFUSE_MARKER in model:
        return _MessagePlan(content=({"type": "text", "text": REFUSAL_ANSWER},), stop_reason="refusal")
    blocks: list[JsonDict] = []
    if _thinking_requested(body):
        blocks.append({"type": "thinking", "thinking": THINKING_TEXT, "signature": THINKING_SIGNATURE})
    last = messages[-1]
    after_tool = last.get("role") == "user" and _has_tool_result(last)
    truncated = MAXTOKENS_MARKER in model
    tool = _anthropic_tool(body)
    if tool is not None and not after_tool and not truncated and last.get("role") == "user":
        blocks.append({"type": "tool_use", "id": TOOL_USE_ID, "name": tool, "input": dict(TOOL_INPUT)})
        return _MessagePlan(content=tuple(blocks), stop_reason="tool_use")
    text = _text_answer(after_tool, _json_schema_requested(body))
    if truncated:
        blocks.append({"type": "text", "text": text[: len(text) // 2]})
        return _MessagePlan(content=tuple(blocks), stop_reason="max_tokens")
    text, sequence = _apply_stop_sequences(text, body)
    blocks.append({"type": "text", "text": text})
    return _MessagePlan(
        content=tuple(blocks), stop_reason="stop_sequence" if sequence else "end_turn", stop_sequence=sequence
    )


def _block_wire_text(block: JsonDict) -> str:
    """The generated characters of a block: text, thinking, or tool input JSON."""
    if block["type"] == "tool_use":
        return json.dumps(block["input"])
    return str(block["thinking"] if block["type"] == "thinking" else block["text"])


def _block_tokens(block: JsonDict) -> int:
    """Output tokens of one block: its characters // 4 + 1."""
    return len(_block_wire_text(block)) // 4 + 1


def _anthropic_usage(model: str, input_tokens: int, plan: _MessagePlan) -> JsonDict:
    """Usage in the Messages shape; a ``-cached`` model reports cache reads and writes."""
    cached = CACHED_MARKER in model
    read, written = (CACHE_READ_TOKENS, CACHE_CREATION_TOKENS) if cached else (0, 0)
    usage: JsonDict = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": written, "ephemeral_1h_input_tokens": 0},
        "output_tokens": sum(_block_tokens(block) for block in plan.content),
        "service_tier": "standard",
    }
    thinking = [block for block in plan.content if block["type"] == "thinking"]
    if thinking:
        usage["output_tokens_details"] = {"thinking_tokens": sum(_block_tokens(block) for block in thinking)}
    return usage


def _anthropic_message(body: JsonDict, ident: str, plan: _MessagePlan, usage: JsonDict) -> JsonDict:
    """A complete ``message`` object."""
    return {
        "id": ident,
        "type": "message",
        "role": "assistant",
        "model": _response_model(body["model"]),
        "content": [dict(block) for block in plan.content],
        "stop_reason": plan.stop_reason,
        "stop_sequence": plan.stop_sequence,
        "stop_details": plan.stop_details,
        "usage": usage,
    }


def _empty_block(block: JsonDict) -> JsonDict:
    """A block as announced by ``content_block_start``: no text, input or signature yet."""
    if block["type"] == "tool_use":
        return {**block, "input": {}}
    if block["type"] == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    return {**block, "text": ""}


def _block_deltas(block: JsonDict, count: int | None) -> list[JsonDict]:
    """The ``delta`` objects that rebuild ``block``, split like the OpenAI side."""
    pieces = _split(_block_wire_text(block), count)
    if block["type"] == "tool_use":
        return [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
    if block["type"] == "thinking":
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in pieces]
        return [*deltas, {"type": "signature_delta", "signature": block["signature"]}]
    return [{"type": "text_delta", "text": piece} for piece in pieces]


def _anthropic_events(message: JsonDict, count: int | None) -> list[JsonDict]:
    """The full SSE event sequence for a streamed message.

    ``message_start`` carries the message with no content and
    ``output_tokens: 1``; each block is start/deltas/stop (a ``ping``
    follows the first start, as the real API does); ``message_delta``
    carries the stop reason and cumulative usage; ``message_stop`` ends it.
    """
    usage = message["usage"]
    start_usage = {key: value for key, value in usage.items() if key != "output_tokens_details"}
    started = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "stop_details": None,
        "usage": {**start_usage, "output_tokens": 1},
    }
    events: list[JsonDict] = [{"type": "message_start", "message": started}]
    for index, block in enumerate(message["content"]):
        events.append({"type": "content_block_start", "index": index, "content_block": _empty_block(block)})
        if index == 0:
            events.append({"type": "ping"})
        events.extend(
            {"type": "content_block_delta", "index": index, "delta": delta} for delta in _block_deltas(block, count)
        )
        events.append({"type": "content_block_stop", "index": index})
    delta_usage_keys = (
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
        "output_tokens_details",
    )
    delta = {
        "stop_reason": message["stop_reason"],
        "stop_sequence": message["stop_sequence"],
        "stop_details": message["stop_details"],
    }
    events.append(
        {"type": "message_delta", "delta": delta, "usage": {k: usage[k] for k in delta_usage_keys if k in usage}}
    )
    events.append({"type": "message_stop"})
    return events


def _first_delta_index(events: list[JsonDict]) -> int:
    """Index of the first ``text_delta`` event, else of the first delta of any kind."""
    deltas = [i for i, event in enumerate(events) if event["type"] == "content_block_delta"]
    texts = [i for i in deltas if events[i]["delta"]["type"] == "text_delta"]
    return (texts or deltas or [len(events) - 1])[0]


def _anthropic_error_body(status: int, message: str, request_id: str) -> JsonDict:
    """Anthropic's error envelope; the SDK surfaces it as ``exc.body``."""
    kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}


def _anthropic_error_headers(status: int) -> dict[str, str]:
    """Fast-retry headers like the OpenAI side, with Anthropic's rate-limit header names."""
    if status == 429:
        return {
            "retry-after": "0",
            "retry-after-ms": "1",
            "anthropic-ratelimit-requests-limit": "60",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:01Z",
        }
    return _error_headers(status)


# --------------------------------------------------------------------------
# Anthropic on Amazon Bedrock and Google Vertex AI
# --------------------------------------------------------------------------


def _event_stream_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message (``application/vnd.amazon.eventstream``).

    A 12-byte prelude (total length, headers length, CRC32 of those 8 bytes),
    the headers (each: name length, name, type 7 = string, value length,
    value), the payload, and a CRC32 of everything before it; big-endian.
    """
    encoded = b"".join(
        struct.pack(">B", len(name)) + name.encode() + b"\x07" + struct.pack(">H", len(value.encode())) + value.encode()
        for name, value in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _bedrock_chunk(event: JsonDict) -> bytes:
    """A Messages stream event as Bedrock streams it: a ``chunk`` whose ``bytes`` are the event JSON, base64."""
    payload = {"bytes": base64.b64encode(json.dumps(event).encode()).decode("ascii")}
    headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    return _event_stream_message(headers, json.dumps(payload).encode())


def _bedrock_exception(kind: str, message: str) -> bytes:
    """A mid-stream exception message (``:message-type: exception``), as Bedrock ends a failed stream."""
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return _event_stream_message(headers, json.dumps({"message": message}).encode())


def _bedrock_events(events: list[JsonDict], usage: JsonDict) -> list[JsonDict]:
    """The first-party events, with Bedrock's invocation metrics on ``message_stop``."""
    metrics = {
        "inputTokenCount": usage["input_tokens"],
        "outputTokenCount": usage["output_tokens"],
        "invocationLatency": 1,
        "firstByteLatency": 1,
    }
    return [*events[:-1], {**events[-1], "amazon-bedrock-invocationMetrics": metrics}]


def _bedrock_body(body: Any, model: str) -> JsonDict:
    """Bedrock's Anthropic body, with the path's model added for the shared validation and planning.

    ``anthropic_version`` is required; ``model`` and ``stream`` are in the path
    and refused in the body, as Bedrock does (``extraneous key [model] is not
    permitted``).
    """
    if not isinstance(body, dict):
        raise _BadRequest("Malformed input request, please reformat your input and try again.")
    for key in ("model", "stream"):
        if key in body:
            raise _BadRequest(f"Malformed input request: #: extraneous key [{key}] is not permitted")
    if not isinstance(body.get("anthropic_version"), str):
        raise _BadRequest("Malformed input request: #: required key [anthropic_version] not found")
    return {**body, "model": model}


def _vertex_body(body: Any, model: str) -> JsonDict:
    """Vertex's Anthropic body: ``anthropic_version`` required, the model from the path (count-tokens: the body's)."""
    if not isinstance(body, dict):
        raise _BadRequest("Request body must be a valid JSON object.")
    if not isinstance(body.get("anthropic_version"), str):
        raise _field_error("anthropic_version", "Field required")
    return body if model == VERTEX_COUNT_TOKENS_MODEL else {**body, "model": model}


def _bedrock_error_headers(status: int, request_id: str, kind: str | None = None) -> dict[str, str]:
    """``x-amzn-requestid`` and ``x-amzn-errortype`` (``kind``, else per status), plus the fast-retry hints."""
    kind = kind or _BEDROCK_ERROR_TYPES.get(status, "InternalServerException")
    return {
        "x-amzn-requestid": request_id,
        "x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        **_error_headers(status),
    }


# --------------------------------------------------------------------------
# Amazon Bedrock Runtime: the Converse API and other model families' InvokeModel bodies
# --------------------------------------------------------------------------

#: ``POST /model/{modelId}/converse`` and ``/converse-stream`` (model URL-quoted).
_CONVERSE_PATH = re.compile(r"/model/([^/]+)/(converse|converse-stream)")
#: ``toolUseId`` of the scripted Converse (and Nova) tool call; Bedrock's look like ``tooluse_<22 chars>``.
CONVERSE_TOOL_USE_ID = "tooluse_fake_1"
#: ``metrics.latencyMs`` of every Converse answer.
CONVERSE_LATENCY_MS = 1
#: Claude's stop reasons as Converse reports them (the others keep their names).
_CONVERSE_STOP_REASONS = {"refusal": "content_filtered"}
#: ``error-<status>`` anywhere in a model id, optionally naming the exception (``error-429-ModelNotReadyException``).
_BEDROCK_ERROR_MODEL = re.compile(r"error-(\d{3})(?:-([A-Za-z]+Exception))?")
#: Guardrail identifier conventions (substrings; ``gr-block-output`` is checked before ``gr-block``).
GUARDRAIL_BLOCK_MARKER = "gr-block"
GUARDRAIL_BLOCK_OUTPUT_MARKER = "gr-block-output"
GUARDRAIL_ANONYMIZE_MARKER = "gr-anonymize"
#: What a blocking guardrail answers (Bedrock's default blocked input and output messaging).
GUARDRAIL_BLOCKED_MESSAGE = "Sorry, the model cannot answer this question."
#: ``trace.guardrail.actionReason`` when the guardrail blocked.
GUARDRAIL_ACTION_REASON = "Guardrail blocked."
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
#: Non-Anthropic InvokeModel families, by model id (after any ``us.``/``eu.``/... prefix or ARN path).
_NATIVE_FAMILIES = (
    ("nova", re.compile(r"amazon\.nova-")),
    ("titan", re.compile(r"amazon\.titan-(?:text|tg1)")),
    ("llama", re.compile(r"meta\.llama")),
    ("mistral", re.compile(r"mistral\.")),
    ("cohere", re.compile(r"cohere\.command")),
)
#: Id of the scripted Mistral tool call (Mistral's are nine alphanumerics).
MISTRAL_TOOL_CALL_ID = "FakeCall1"


@dataclass(frozen=True)
class _Guardrail:
    """A request's ``guardrailConfig``: which convention applies and whether to trace."""

    key: str
    kind: str  # "block", "block-output", "anonymize" or "pass"
    trace: bool


def _bedrock_scripted_error(model: str) -> tuple[int, str | None] | None:
    """``(status, exception name or None)`` for a model id containing ``error-<status>[-<Name>Exception]``."""
    match = _BEDROCK_ERROR_MODEL.search(model)
    if match is None or not 400 <= int(match.group(1)) <= 599:
        return None
    return int(match.group(1)), match.group(2)


def _native_family(model: str) -> str | None:
    """The non-Anthropic family of a Bedrock model id (``us.meta.llama3-...``, ARNs too), or None."""
    base = model.rsplit("/", 1)[-1]
    for family, pattern in _NATIVE_FAMILIES:
        if pattern.match(base) or pattern.match(base.split(".", 1)[-1]):
            return family
    return None


def _converse_block(block: JsonDict) -> JsonDict | None:
    """A Converse content block in Messages terms, for the shared planning and token count."""
    if isinstance(block.get("text"), str):
        return {"type": "text", "text": block["text"]}
    guarded = block.get("guardContent")
    if isinstance(guarded, dict) and isinstance(guarded.get("text"), dict):
        return {"type": "text", "text": str(guarded["text"].get("text", ""))}
    tool_use = block.get("toolUse")
    if isinstance(tool_use, dict):
        return {
            "type": "tool_use",
            "id": tool_use.get("toolUseId"),
            "name": tool_use.get("name"),
            "input": tool_use.get("input", {}),
        }
    tool_result = block.get("toolResult")
    if isinstance(tool_result, dict):
        parts = []
        for part in tool_result.get("content") or []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append({"type": "text", "text": part["text"]})
            elif isinstance(part, dict) and "json" in part:
                parts.append({"type": "text", "text": json.dumps(part["json"])})
        return {"type": "tool_result", "tool_use_id": tool_result.get("toolUseId"), "content": parts}
    return None  # image, document, video, cachePoint, reasoningContent: not planned on, not counted


def _converse_messages(raw: Any) -> list[JsonDict]:
    """``messages``, validated with Bedrock's wording: non-empty, user first, alternating roles."""
    if not isinstance(raw, list) or not raw:
        raise _BadRequest("The messages field is required and must contain at least one message.")
    previous = None
    for index, message in enumerate(raw):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _BadRequest(f"The role field in the Message object at messages.{index} must be user or assistant.")
        content = message.get("content")
        if not isinstance(content, list) or not content or not all(isinstance(b, dict) for b in content):
            raise _BadRequest(
                f"The content field in the Message object at messages.{index} is empty. "
                "Add a ContentBlock object to the content field and try again."
            )
        if index == 0 and message["role"] != "user":
            raise _BadRequest(
                "A conversation must start with a user message. "
                "Try again with a conversation that starts with a user message."
            )
        if message["role"] == previous:
            raise _BadRequest(
                "A conversation must alternate between user and assistant roles. "
                "Make sure the conversation alternates between user and assistant roles and try again."
            )
        previous = message["role"]
    return raw


def _converse_thinking(fields: Any) -> JsonDict | None:
    """Claude's ``thinking`` / ``reasoning_config`` or Nova's ``reasoningConfig`` from additionalModelRequestFields."""
    fields = fields if isinstance(fields, dict) else {}
    for key in ("thinking", "reasoning_config", "reasoningConfig"):
        value = fields.get(key)
        if isinstance(value, dict) and value.get("type") != "disabled":
            return {"type": "enabled"}
    return None


def _converse_request(raw: Any, model: str) -> tuple[JsonDict, list[JsonDict]]:
    """A Converse (or Nova InvokeModel) body as a Messages body, for :func:`_plan_message`."""
    if not isinstance(raw, dict):
        raise _BadRequest("Malformed input request, please reformat your input and try again.")
    source = _converse_messages(raw.get("messages"))
    tool_config = raw.get("toolConfig") if isinstance(raw.get("toolConfig"), dict) else None
    uses_tools = any("toolUse" in block or "toolResult" in block for m in source for block in m["content"])
    if uses_tools and tool_config is None:
        raise _BadRequest("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
    messages = [
        {"role": m["role"], "content": [b for b in map(_converse_block, m["content"]) if b is not None]} for m in source
    ]
    system = [b for b in map(_converse_block, [s for s in raw.get("system") or [] if isinstance(s, dict)]) if b]
    inference = raw["inferenceConfig"] if isinstance(raw.get("inferenceConfig"), dict) else {}
    body: JsonDict = {"model": model, "messages": messages, "system": system}
    stop = inference.get("stopSequences")
    if isinstance(stop, list):
        body["stop_sequences"] = stop
    thinking = _converse_thinking(raw.get("additionalModelRequestFields"))
    if thinking is not None:
        body["thinking"] = thinking
    if tool_config is not None:
        specs = [t.get("toolSpec") for t in tool_config.get("tools") or [] if isinstance(t, dict)]
        body["tools"] = [{"name": spec["name"]} for spec in specs if isinstance(spec, dict) and "name" in spec]
        choice = tool_config.get("toolChoice") if isinstance(tool_config.get("toolChoice"), dict) else {}
        if isinstance(choice.get("tool"), dict):
            body["tool_choice"] = {"type": "tool", "name": choice["tool"].get("name")}
        elif "any" in choice:
            body["tool_choice"] = {"type": "any"}
    return body, messages


def _converse_guardrail(raw: JsonDict) -> _Guardrail | None:
    """The request's guardrail convention, or None without ``guardrailConfig``."""
    config = raw.get("guardrailConfig")
    if not isinstance(config, dict) or not isinstance(config.get("guardrailIdentifier"), str):
        return None
    ident = config["guardrailIdentifier"]
    if GUARDRAIL_BLOCK_OUTPUT_MARKER in ident:
        kind = "block-output"
    elif GUARDRAIL_BLOCK_MARKER in ident:
        kind = "block"
    elif GUARDRAIL_ANONYMIZE_MARKER in ident:
        kind = "anonymize"
    else:
        kind = "pass"
    return _Guardrail(key=ident.rsplit("/", 1)[-1], kind=kind, trace=config.get("trace") in ("enabled", "enabled_full"))


def _guardrail_metrics(characters: int) -> JsonDict:
    """An assessment's ``invocationMetrics``: one unit per started 1,000 characters for content and PII policies."""
    units = max(1, -(-characters // 1000))
    usage = {
        "topicPolicyUnits": 0,
        "contentPolicyUnits": units,
        "wordPolicyUnits": 0,
        "sensitiveInformationPolicyUnits": units,
        "sensitiveInformationPolicyFreeUnits": 0,
        "contextualGroundingPolicyUnits": 0,
        "contentPolicyImageUnits": 0,
    }
    coverage = {"textCharacters": {"guarded": characters, "total": characters}}
    return {"guardrailProcessingLatency": 1, "usage": usage, "guardrailCoverage": coverage}


def _violence_blocked() -> JsonDict:
    """The content-policy finding a blocking guardrail reports."""
    blocked = {"type": "VIOLENCE", "confidence": "HIGH", "filterStrength": "HIGH", "action": "BLOCKED"}
    return {"contentPolicy": {"filters": [{**blocked, "detected": True}]}}


def _user_texts(messages: list[JsonDict]) -> list[str]:
    """Text of the user turns (what an input guardrail assesses)."""
    return [text for m in messages if m["role"] == "user" for text in _anthropic_texts(m["content"])]


def _guardrail_trace(guardrail: _Guardrail, messages: list[JsonDict], answer: str) -> JsonDict:
    """``trace.guardrail`` in the shape of botocore's GuardrailTraceAssessment."""
    key = guardrail.key
    prompt = "".join(_user_texts(messages))
    assessment: JsonDict = {"invocationMetrics": _guardrail_metrics(len(prompt))}
    if guardrail.kind == "block":
        blocked = {**_violence_blocked(), **assessment}
        return {"inputAssessment": {key: blocked}, "actionReason": GUARDRAIL_ACTION_REASON}
    if guardrail.kind == "anonymize":
        found = _EMAIL.findall(prompt)
        if found:
            entities = [{"match": email, "type": "EMAIL", "action": "ANONYMIZED", "detected": True} for email in found]
            assessment = {"sensitiveInformationPolicy": {"piiEntities": entities}, **assessment}
    output: JsonDict = {"invocationMetrics": _guardrail_metrics(len(answer))}
    trace: JsonDict = {"inputAssessment": {key: assessment}}
    if guardrail.kind == "block-output":
        trace["modelOutput"] = [answer]
        output = {**_violence_blocked(), **output}
    trace["outputAssessments"] = {key: [output]}
    if guardrail.kind == "block-output":
        trace["actionReason"] = GUARDRAIL_ACTION_REASON
    return trace


def _converse_content(plan: _MessagePlan) -> list[JsonDict]:
    """The planned blocks as Converse content blocks."""
    content: list[JsonDict] = []
    for block in plan.content:
        if block["type"] == "tool_use":
            tool = {"toolUseId": CONVERSE_TOOL_USE_ID, "name": block["name"], "input": block["input"]}
            content.append({"toolUse": tool})
        elif block["type"] == "thinking":
            reasoning = {"text": block["thinking"], "signature": block["signature"]}
            content.append({"reasoningContent": {"reasoningText": reasoning}})
        else:
            content.append({"text": block["text"]})
    return content


def _converse_usage(model: str, input_tokens: int, output_tokens: int) -> JsonDict:
    """Converse usage; ``-cached`` adds cache reads and writes, which ``totalTokens`` includes."""
    usage: JsonDict = {"inputTokens": input_tokens, "outputTokens": output_tokens}
    total = input_tokens + output_tokens
    if CACHED_MARKER in model:
        usage.update(cacheReadInputTokens=CACHE_READ_TOKENS, cacheWriteInputTokens=CACHE_CREATION_TOKENS)
        total += CACHE_READ_TOKENS + CACHE_CREATION_TOKENS
    return {**usage, "totalTokens": total}


def _converse_response(raw: JsonDict, body: JsonDict, messages: list[JsonDict]) -> JsonDict:
    """The complete Converse answer: planned like Messages, then passed through the guardrail."""
    guardrail = _converse_guardrail(raw)
    answer = ""
    if guardrail is not None and guardrail.kind == "block":  # the model is never called
        content: list[JsonDict] = [{"text": GUARDRAIL_BLOCKED_MESSAGE}]
        stop = "guardrail_intervened"
        usage: JsonDict = {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}
    else:
        plan = _plan_message(body, messages)
        content, stop = _converse_content(plan), _CONVERSE_STOP_REASONS.get(plan.stop_reason, plan.stop_reason)
        output_tokens = sum(_block_tokens(block) for block in plan.content)
        usage = _converse_usage(body["model"], _anthropic_input_tokens(body, messages), output_tokens)
        answer = "".join(block["text"] for block in plan.content if block["type"] == "text")
        if guardrail is not None and guardrail.kind == "block-output":
            content, stop = [{"text": GUARDRAIL_BLOCKED_MESSAGE}], "guardrail_intervened"
    response: JsonDict = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": usage,
        "metrics": {"latencyMs": CONVERSE_LATENCY_MS},
    }
    if guardrail is not None and guardrail.trace:
        response["trace"] = {"guardrail": _guardrail_trace(guardrail, messages, answer)}
    for key in ("performanceConfig", "serviceTier"):
        if isinstance(raw.get(key), dict):
            response[key] = raw[key]
    return response


def _converse_block_events(index: int, block: JsonDict, count: int | None) -> list[JsonDict]:
    """[contentBlockStart,] contentBlockDelta... and contentBlockStop for one content block."""
    events: list[JsonDict] = []
    deltas: list[JsonDict]
    if "toolUse" in block:
        tool = block["toolUse"]
        start = {"toolUse": {"toolUseId": tool["toolUseId"], "name": tool["name"]}}
        events.append({"contentBlockStart": {"start": start, "contentBlockIndex": index}})
        deltas = [{"toolUse": {"input": piece}} for piece in _split(json.dumps(tool["input"]), count)]
    elif "reasoningContent" in block:
        reasoning = block["reasoningContent"]["reasoningText"]
        deltas = [{"reasoningContent": {"text": piece}} for piece in _split(reasoning["text"], count)]
        deltas.append({"reasoningContent": {"signature": reasoning["signature"]}})
    else:
        deltas = [{"text": piece} for piece in _split(block["text"], count)]
    events.extend({"contentBlockDelta": {"delta": delta, "contentBlockIndex": index}} for delta in deltas)
    events.append({"contentBlockStop": {"contentBlockIndex": index}})
    return events


def _converse_events(response: JsonDict, count: int | None) -> list[JsonDict]:
    """The ConverseStream events (``{name: payload}``) that rebuild ``response``; the trace rides on metadata."""
    message = response["output"]["message"]
    events: list[JsonDict] = [{"messageStart": {"role": message["role"]}}]
    for index, block in enumerate(message["content"]):
        events.extend(_converse_block_events(index, block, count))
    events.append({"messageStop": {"stopReason": response["stopReason"]}})
    metadata = {
        key: response[key]
        for key in ("usage", "metrics", "trace", "performanceConfig", "serviceTier")
        if key in response
    }
    events.append({"metadata": metadata})
    return events


def _converse_frame(event: JsonDict) -> bytes:
    """A ConverseStream event message: ``:event-type`` is the event name, the payload its JSON (not base64)."""
    [(name, payload)] = event.items()
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return _event_stream_message(headers, json.dumps(payload).encode())


def _event_stream_exception(kind: str, payload: JsonDict) -> bytes:
    """An exception message (``:message-type: exception``, ``:exception-type: kind``) with a JSON payload."""
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return _event_stream_message(headers, json.dumps(payload).encode())


def _first_converse_delta(events: list[JsonDict]) -> int:
    """Index of the first text delta, else of the first delta of any kind."""
    deltas = [i for i, event in enumerate(events) if "contentBlockDelta" in event]
    texts = [i for i in deltas if "text" in events[i]["contentBlockDelta"]["delta"]]
    return (texts or deltas or [len(events) - 1])[0]


def _invocation_metrics(input_tokens: int, output_tokens: int) -> JsonDict:
    """``amazon-bedrock-invocationMetrics`` for the last chunk of an InvokeModel stream."""
    return {
        "inputTokenCount": input_tokens,
        "outputTokenCount": output_tokens,
        "invocationLatency": 1,
        "firstByteLatency": 1,
    }


@dataclass(frozen=True)
class _NativeAnswer:
    """One InvokeModel answer in a family's own shape, its token counts and its stream chunks."""

    body: JsonDict
    input_tokens: int
    output_tokens: int
    chunks: list[JsonDict]
    #: Index of the first chunk that carries generated text (``error-midstream`` stops after it).
    first_text: int


def _native_text(model: str, after_tool: bool = False) -> tuple[str, bool]:
    """The answer of a non-Nova family and whether ``-maxtokens`` cut it in half."""
    text = WEATHER_ANSWER if after_tool else HELLO_ANSWER
    if MAXTOKENS_MARKER in model:
        return text[: len(text) // 2], True
    return text, False


def _tokens(*texts: str) -> int:
    """The fake's token formula: characters // 4 + 1."""
    return sum(len(text) for text in texts) // 4 + 1


def _required_string(body: Any, key: str) -> str:
    """``body[key]`` as a string, or Bedrock's malformed-input 400."""
    if not isinstance(body, dict):
        raise _BadRequest("Malformed input request, please reformat your input and try again.")
    value = body.get(key)
    if not isinstance(value, str):
        raise _BadRequest(
            f"Malformed input request: #: required key [{key}] not found, please reformat your input and try again."
        )
    return value


def _nova_answer(raw: Any, model: str, count: int | None) -> _NativeAnswer:
    """Amazon Nova: the Converse body and answer; usage names cache tokens ``...TokenCount``, no metrics."""
    body, messages = _converse_request(raw, model)
    converse = _converse_response({}, body, messages)
    usage = converse["usage"]
    nova_usage = {
        "inputTokens": usage["inputTokens"],
        "outputTokens": usage["outputTokens"],
        "totalTokens": usage["totalTokens"],
        "cacheReadInputTokenCount": usage.get("cacheReadInputTokens", 0),
        "cacheWriteInputTokenCount": usage.get("cacheWriteInputTokens", 0),
    }
    answer = {"output": converse["output"], "stopReason": converse["stopReason"], "usage": nova_usage}
    events = _converse_events(answer, count)
    events[-1] = {"metadata": {"usage": nova_usage}}
    return _NativeAnswer(answer, usage["inputTokens"], usage["outputTokens"], events, _first_converse_delta(events))


def _llama_answer(raw: Any, model: str, count: int | None) -> _NativeAnswer:
    """Meta Llama: ``prompt`` -> ``generation``, token counts and ``stop_reason`` (stop / length)."""
    prompt = _required_string(raw, "prompt")
    text, truncated = _native_text(model)
    in_tokens, out_tokens = _tokens(prompt), _tokens(text)
    stop = "length" if truncated else "stop"
    body = {
        "generation": text,
        "prompt_token_count": in_tokens,
        "generation_token_count": out_tokens,
        "stop_reason": stop,
    }
    pieces = _split(text, count)
    chunks: list[JsonDict] = [
        {
            "generation": piece,
            "prompt_token_count": in_tokens if i == 0 else None,
            "generation_token_count": i + 1,
            "stop_reason": None,
        }
        for i, piece in enumerate(pieces)
    ]
    chunks[-1].update(generation_token_count=out_tokens, stop_reason=stop)
    return _NativeAnswer(body, in_tokens, out_tokens, chunks, 0)


def _titan_answer(raw: Any, model: str, count: int | None) -> _NativeAnswer:
    """Amazon Titan Text: ``inputText`` -> ``inputTextTokenCount`` and ``results[0]`` (FINISH / LENGTH)."""
    prompt = _required_string(raw, "inputText")
    text, truncated = _native_text(model)
    in_tokens, out_tokens = _tokens(prompt), _tokens(text)
    reason = "LENGTH" if truncated else "FINISH"
    body = {
        "inputTextTokenCount": in_tokens,
        "results": [{"tokenCount": out_tokens, "outputText": text, "completionReason": reason}],
    }
    pieces = _split(text, count)
    chunks: list[JsonDict] = [
        {
            "outputText": piece,
            "index": 0,
            "totalOutputTextTokenCount": i + 1,
            "completionReason": None,
            "inputTextTokenCount": in_tokens if i == 0 else None,
        }
        for i, piece in enumerate(pieces)
    ]
    chunks[-1].update(totalOutputTextTokenCount=out_tokens, completionReason=reason)
    return _NativeAnswer(body, in_tokens, out_tokens, chunks, 0)


def _mistral_answer(raw: Any, model: str, count: int | None) -> _NativeAnswer:
    """Mistral: ``prompt`` -> ``outputs`` (text completion) or ``messages`` -> ``choices`` (chat, with tools)."""
    if isinstance(raw, dict) and "messages" in raw:
        return _mistral_chat_answer(raw, model, count)
    prompt = _required_string(raw, "prompt")
    text, truncated = _native_text(model)
    stop = "length" if truncated else "stop"
    pieces = _split(text, count)
    chunks: list[JsonDict] = [{"outputs": [{"text": piece, "stop_reason": None}]} for piece in pieces]
    chunks[-1]["outputs"][0]["stop_reason"] = stop
    body = {"outputs": [{"text": text, "stop_reason": stop}]}
    return _NativeAnswer(body, _tokens(prompt), _tokens(text), chunks, 0)


def _mistral_chat_answer(raw: JsonDict, model: str, count: int | None) -> _NativeAnswer:
    """Mistral chat completion: tools and a last user turn -> ``tool_calls``; after a tool turn, the weather."""
    messages = raw["messages"]
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise _BadRequest("Malformed input request: #/messages: expected a non-empty array of messages.")
    prompt = [_text_of(m.get("content")) for m in messages]
    tools = [
        t["function"]["name"]
        for t in raw.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict) and "name" in t["function"]
    ]
    last = messages[-1].get("role")
    if tools and last == "user" and raw.get("tool_choice") != "none" and MAXTOKENS_MARKER not in model:
        call = {"id": MISTRAL_TOOL_CALL_ID, "function": {"name": tools[0], "arguments": TOOL_ARGUMENTS}}
        message: JsonDict = {"role": "assistant", "content": "", "tool_calls": [call]}
        body = {"choices": [{"index": 0, "message": message, "stop_reason": "tool_calls"}]}
        return _NativeAnswer(body, _tokens(*prompt), _tokens(TOOL_ARGUMENTS), [body], 0)
    text, truncated = _native_text(model, after_tool=last == "tool")
    stop = "length" if truncated else "stop"
    pieces = _split(text, count)
    chunks: list[JsonDict] = [
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": piece}, "stop_reason": None}]}
        for piece in pieces
    ]
    chunks[-1]["choices"][0]["stop_reason"] = stop
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "stop_reason": stop}]}
    return _NativeAnswer(body, _tokens(*prompt), _tokens(text), chunks, 0)


def _cohere_answer(raw: Any, model: str, count: int | None, ident: str) -> _NativeAnswer:
    """Cohere: Command R ``message`` -> ``text`` / ``chat_history``, or Command ``prompt`` -> ``generations``."""
    chat = isinstance(raw, dict) and "message" in raw
    prompt = _required_string(raw, "message" if chat else "prompt")
    text, truncated = _native_text(model, after_tool=chat and bool(raw.get("tool_results")))
    reason = "MAX_TOKENS" if truncated else "COMPLETE"
    in_tokens, out_tokens = _tokens(prompt, str(raw.get("preamble") or "")), _tokens(text)
    pieces = _split(text, count)
    if not chat:
        body: JsonDict = {
            "generations": [{"finish_reason": reason, "id": f"{ident}-gen", "text": text}],
            "id": ident,
            "prompt": prompt,
        }
        chunks: list[JsonDict] = [{"text": piece, "is_finished": False} for piece in pieces]
        chunks.append({"is_finished": True, "finish_reason": reason})
        return _NativeAnswer(body, in_tokens, out_tokens, chunks, 0)
    history = [h for h in raw.get("chat_history") or [] if isinstance(h, dict)]
    body = {
        "response_id": ident,
        "text": text,
        "generation_id": f"{ident}-gen",
        "chat_history": [*history, {"role": "USER", "message": prompt}, {"role": "CHATBOT", "message": text}],
        "finish_reason": reason,
    }
    chunks = [
        {"event_type": "stream-start", "is_finished": False, "generation_id": body["generation_id"]},
        *({"event_type": "text-generation", "is_finished": False, "text": piece} for piece in pieces),
        {"event_type": "stream-end", "is_finished": True, "finish_reason": reason, "response": body},
    ]
    return _NativeAnswer(body, in_tokens, out_tokens, chunks, 1)


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def _error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> JsonDict:
    """OpenAI's error envelope, which the SDK surfaces as ``exc.body``."""
    default_type, default_code = _ERROR_KINDS.get(
        status,
        ("server_error", "server_error") if status >= 500 else ("invalid_request_error", f"http_{status}"),
    )
    return {"error": {"message": message, "type": default_type, "param": param, "code": code or default_code}}


def _error_headers(status: int) -> dict[str, str]:
    """Headers for retryable errors: tell the SDK to wait 1 ms, not 0.5-8 s.

    ``retry-after: 0`` alone is ignored by the SDK (it only honours delays
    > 0) and falls back to exponential backoff; ``retry-after-ms: 1`` wins.
    """
    if status == 429:
        return {
            "retry-after": "0",
            "retry-after-ms": "1",
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "1ms",
        }
    if status >= 500 or status in (408, 409):
        return {"retry-after": "0", "retry-after-ms": "1"}
    return {}


def _scripted_status(model: str) -> int | None:
    """HTTP status requested by an ``error-<status>`` model, if any."""
    match = _ERROR_MODEL.fullmatch(model)
    if match is None:
        return None
    status = int(match.group(1))
    return status if 400 <= status <= 599 else None


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------


def _sse_data(payload: JsonDict) -> bytes:
    """A Chat Completions style SSE frame (data only)."""
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _sse_event(payload: JsonDict) -> bytes:
    """A Responses API style SSE frame (named event plus data)."""
    return f"event: {payload['type']}\n".encode() + _sse_data(payload)


def _is_anthropic_path(path: str) -> bool:
    """``/v1/messages`` and everything under it belongs to the Anthropic side."""
    return path == _ANTHROPIC_PATH or path.startswith(_ANTHROPIC_PATH + "/")


def _truncate_after_deltas(frames: list[bytes], events: list[JsonDict], keep: int) -> list[bytes]:
    """Frames up to and including the ``keep``-th delta event."""
    seen = 0
    for index, event in enumerate(events):
        if event["type"].endswith(".delta"):
            seen += 1
            if seen == keep:
                return frames[: index + 1]
    return frames


class _Handler(BaseHTTPRequestHandler):
    """Routes OpenAI endpoints to the pure payload builders above."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the real API; SSE uses chunked encoding
    #: The request came in on an Azure OpenAI path (set per request by ``_route_post``).
    _azure = False
    server_version = "FakeModelServer/1.0"
    timeout = 30  # idle keep-alive connections do not pin handler threads forever

    @property
    def _fake(self) -> FakeModelServer:
        """The owning :class:`FakeModelServer` (shared state)."""
        server = self.server
        assert isinstance(server, _FakeHTTPServer)
        return server.fake

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging: tests and the demo own stderr."""

    def do_GET(self) -> None:
        """Serve ``GET /v1/responses/{id}`` from the stored responses."""
        self._serve(self._route_get)

    def do_POST(self) -> None:
        """Serve the chat, responses and embeddings endpoints."""
        self._serve(self._route_post)

    def do_DELETE(self) -> None:
        """Record and refuse: no endpoint deletes anything."""
        self._serve(self._route_unknown)

    def _serve(self, route: Callable[[RecordedRequest], None]) -> None:
        """Record the request, route it, and swallow client disconnects."""
        try:
            request = self._record()
            route(request)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # client went away mid-stream; nothing to report

    def _read_body(self) -> bytes:
        """Read a Content-Length or chunked request body."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            body = b""
            while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # discard trailers
            return body
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _record(self) -> RecordedRequest:
        """Capture the request exactly as received and store it."""
        raw = self._read_body()
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body = None
        request = RecordedRequest(self.command, self.path, headers, body, raw)
        self._fake._record(request)
        return request

    # -- routing ----------------------------------------------------------

    def _route_get(self, request: RecordedRequest) -> None:
        """Retrieve a stored response or answer 404 like the API."""
        match = _RESPONSE_PATH.fullmatch(urlsplit(request.path).path)
        if match is None:
            self._route_unknown(request)
            return
        stored = self._fake._load_response(match.group(1))
        if stored is None:
            message = f"Response with id '{match.group(1)}' not found."
            self._send_json(404, _error_body(404, message, code="not_found"))
            return
        self._send_json(200, stored)

    def _route_post(self, request: RecordedRequest) -> None:
        """Validate the common fields, apply error scripts, then dispatch."""
        path = urlsplit(request.path).path.rstrip("/")
        if _is_anthropic_path(path):
            self._anthropic(request, path)
            return
        if self._anthropic_platform(request, path):
            return
        from otel_llm_audit.demo import fake_google  # the Gemini API and Vertex AI Gemini routes

        if fake_google.serve(self, request, path):
            return
        endpoints = {
            "/v1/chat/completions": self._chat,
            "/v1/responses": self._responses,
            "/v1/embeddings": self._embeddings,
        }
        azure_path = _azure_route(path)
        self._azure = azure_path is not None
        endpoint = endpoints.get(azure_path or path)
        if endpoint is None:
            self._route_unknown(request)
            return
        body = request.body
        if not isinstance(body, dict):
            self._send_json(400, _error_body(400, "We could not parse the JSON body of your request."))
            return
        model = body.get("model")
        if not isinstance(model, str) or not model:
            self._send_json(400, _error_body(400, "You must provide a model parameter.", "model"))
            return
        if self._scripted_failure(model, body):
            return
        try:
            endpoint(body, request.headers)
        except _BadRequest as exc:
            self._send_json(400, _error_body(400, exc.message, exc.param))

    def _route_unknown(self, request: RecordedRequest) -> None:
        """404 for any path the fake does not implement, in the provider's error shape."""
        path = urlsplit(request.path).path
        if _is_anthropic_path(path):
            self._anthropic_error(404, f"Not found: {request.method} {path}", self._fake._next_id("req_fake_"))
            return
        message = f"Invalid URL ({request.method} {path})"
        self._send_json(404, _error_body(404, message, code="unknown_url"))

    def _scripted_failure(self, model: str, body: JsonDict) -> bool:
        """Answer ``error-<status>`` and ``malformed-json`` models; True if done."""
        status = _scripted_status(model)
        if status is not None:
            message = f"Fake error {status} scripted by model '{model}'."
            self._send_json(status, _error_body(status, message), _error_headers(status))
            return True
        if model == "malformed-json":
            if body.get("stream") is True:
                self._send_sse([b'data: {"id": "chatcmpl-fake", "choices": [\n\n'])
            else:
                self._send_bytes(200, b'{"id": "chatcmpl-fake", "object": ', "application/json")
            return True
        return False

    # -- Anthropic Messages API -------------------------------------------

    def _anthropic(self, request: RecordedRequest, path: str) -> None:
        """POST /v1/messages and /v1/messages/count_tokens (any query, e.g. ``?beta=true``)."""
        request_id = self._fake._next_id("req_fake_")
        count_tokens = path == _COUNT_TOKENS_PATH
        if path != _ANTHROPIC_PATH and not count_tokens:
            self._anthropic_error(404, f"Not found: {request.method} {path}", request_id)
            return
        try:
            body, messages = _anthropic_request(request.body, count_tokens)
            if self._anthropic_scripted_failure(body, request_id):
                return
            if count_tokens:
                payload = {"input_tokens": _anthropic_input_tokens(body, messages)}
                self._send_json(200, payload, request_id=request_id)
                return
            self._messages(body, messages, request.headers, request_id)
        except _BadRequest as exc:
            self._anthropic_error(400, exc.message, request_id)

    def _anthropic_error(self, status: int, message: str, request_id: str) -> None:
        """An Anthropic error envelope whose ``request_id`` matches the header."""
        body = _anthropic_error_body(status, message, request_id)
        self._send_json(status, body, _anthropic_error_headers(status), request_id=request_id)

    def _anthropic_scripted_failure(self, body: JsonDict, request_id: str) -> bool:
        """Answer ``error-<status>`` and ``malformed-json`` models; True if done."""
        model = body["model"]
        status = _scripted_status(model)
        if status is not None:
            self._anthropic_error(status, f"Fake error {status} scripted by model '{model}'.", request_id)
            return True
        if model == "malformed-json":
            if body.get("stream") is True:
                frame = b'event: message_start\ndata: {"type": "message_start", "message": {\n\n'
                self._send_sse([frame], request_id=request_id)
            else:
                self._send_bytes(200, b'{"id": "msg_fake", "type": ', "application/json", request_id=request_id)
            return True
        return False

    def _messages(self, body: JsonDict, messages: list[JsonDict], headers: dict[str, str], request_id: str) -> None:
        """POST /v1/messages, streaming or not."""
        plan = _plan_message(body, messages)
        count = _requested_chunks(body["model"], headers)  # validated before any id is spent
        usage = _anthropic_usage(body["model"], _anthropic_input_tokens(body, messages), plan)
        message = _anthropic_message(body, self._fake._next_id("msg_fake_"), plan, usage)
        if body.get("stream") is not True:
            self._send_json(200, message, request_id=request_id)
            return
        events = _anthropic_events(message, count)
        frames = [_sse_event(event) for event in events]
        model = body["model"]
        if model.startswith("error-midstream") or model.startswith("error-disconnect"):
            kept = frames[: _first_delta_index(events) + 1]
            if model.startswith("error-disconnect"):
                self._send_sse(kept, abort=True, request_id=request_id)
            else:
                self._send_sse([*kept, _sse_event(MIDSTREAM_ERROR_EVENT)], request_id=request_id)
            return
        self._send_sse(frames, request_id=request_id)

    # -- Anthropic on Bedrock and Vertex ----------------------------------

    def _anthropic_platform(self, request: RecordedRequest, path: str) -> bool:
        """Serve a Bedrock or Vertex Messages path; False if ``path`` is neither."""
        bedrock = _BEDROCK_PATH.fullmatch(path)
        if bedrock is not None:
            model, stream = unquote(bedrock.group(1)), bedrock.group(2) == "invoke-with-response-stream"
            family = _native_family(model)
            if family is None:
                self._bedrock(request, model, stream)
            else:
                self._bedrock_native(request, model, family, stream)
            return True
        converse = _CONVERSE_PATH.fullmatch(path)
        if converse is not None:
            self._converse(request, unquote(converse.group(1)), converse.group(2) == "converse-stream")
            return True
        vertex = _VERTEX_PATH.fullmatch(path)
        if vertex is not None:
            self._vertex(request, unquote(vertex.group(1)))
            return True
        return False

    def _vertex(self, request: RecordedRequest, model: str) -> None:
        """``:rawPredict`` / ``:streamRawPredict``: the first-party answer (the body's ``stream`` decides)."""
        request_id = self._fake._next_id("req_fake_")
        count_tokens = model == VERTEX_COUNT_TOKENS_MODEL
        try:
            body, messages = _anthropic_request(_vertex_body(request.body, model), count_tokens)
            if self._anthropic_scripted_failure(body, request_id):
                return
            if count_tokens:
                self._send_json(200, {"input_tokens": _anthropic_input_tokens(body, messages)}, request_id=request_id)
                return
            self._messages(body, messages, request.headers, request_id)
        except _BadRequest as exc:
            self._anthropic_error(400, exc.message, request_id)

    def _bedrock(self, request: RecordedRequest, model: str, stream: bool) -> None:
        """``/invoke`` (a ``message``) or ``/invoke-with-response-stream`` (event-stream ``chunk`` messages)."""
        request_id = self._fake._next_id("req_fake_")
        try:
            body, messages = _anthropic_request(_bedrock_body(request.body, model), False)
            count = _requested_chunks(model, request.headers)
        except _BadRequest as exc:
            self._send_bedrock(400, [json.dumps({"message": exc.message}).encode()], request_id)
            return
        status = _scripted_status(model)
        if status is not None:
            payload = json.dumps({"message": f"Fake error {status} scripted by model '{model}'."}).encode()
            self._send_bedrock(status, [payload], request_id)
            return
        plan = _plan_message(body, messages)
        usage = _anthropic_usage(model, _anthropic_input_tokens(body, messages), plan)
        message = _anthropic_message(body, self._fake._next_id("msg_fake_"), plan, usage)
        if not stream:
            counts = {
                "x-amzn-bedrock-input-token-count": str(usage["input_tokens"]),
                "x-amzn-bedrock-output-token-count": str(usage["output_tokens"]),
                "x-amzn-bedrock-invocation-latency": "1",
            }
            self._send_bedrock(200, [json.dumps(message).encode()], request_id, counts)
            return
        events = _bedrock_events(_anthropic_events(message, count), usage)
        frames = [_bedrock_chunk(event) for event in events]
        if model.startswith(("error-midstream", "error-disconnect")):
            frames = frames[: _first_delta_index(events) + 1]
            if model.startswith("error-midstream"):
                frames.append(_bedrock_exception(BEDROCK_MIDSTREAM_EXCEPTION, "Model stream error (fake)."))
        stream_headers = {"x-amzn-bedrock-content-type": "application/json"}
        abort = model.startswith("error-disconnect")
        self._send_bedrock(200, frames, request_id, stream_headers, stream=True, abort=abort)

    # -- Bedrock Runtime: Converse and other model families ---------------

    def _bedrock_failure(self, model: str, request_id: str) -> bool:
        """Answer an ``error-<status>[-<Name>Exception]`` model id with Bedrock's error; True if done."""
        scripted = _bedrock_scripted_error(model)
        if scripted is None:
            return False
        status, kind = scripted
        payload = json.dumps({"message": f"Fake error {status} scripted by model '{model}'."}).encode()
        self._send_bedrock(status, [payload], request_id, _bedrock_error_headers(status, request_id, kind))
        return True

    def _converse(self, request: RecordedRequest, model: str, stream: bool) -> None:
        """``/converse`` (one JSON answer) or ``/converse-stream`` (event-stream messages named by event)."""
        request_id = self._fake._next_id("req_fake_")
        try:
            body, messages = _converse_request(request.body, model)
            count = _requested_chunks(model, request.headers)
        except _BadRequest as exc:
            self._send_bedrock(400, [json.dumps({"message": exc.message}).encode()], request_id)
            return
        if self._bedrock_failure(model, request_id):
            return
        response = _converse_response(request.body, body, messages)
        if not stream:
            self._send_bedrock(200, [json.dumps(response).encode()], request_id)
            return
        events = _converse_events(response, count)
        frames = [_converse_frame(event) for event in events]
        if "error-midstream" in model or "error-disconnect" in model:
            frames = frames[: _first_converse_delta(events) + 1]
            if "error-midstream" in model:
                error = {
                    "message": "Model stream error (fake).",
                    "originalStatusCode": 500,
                    "originalMessage": "Internal server error (fake).",
                }
                frames.append(_event_stream_exception(BEDROCK_MIDSTREAM_EXCEPTION, error))
        abort = "error-disconnect" in model
        self._send_bedrock(200, frames, request_id, stream=True, abort=abort)

    def _bedrock_native(self, request: RecordedRequest, model: str, family: str, stream: bool) -> None:
        """``/invoke[-with-response-stream]`` for Nova, Titan, Llama, Mistral and Cohere bodies."""
        request_id = self._fake._next_id("req_fake_")
        try:
            count = _requested_chunks(model, request.headers)
            if family == "cohere":
                answer = _cohere_answer(request.body, model, count, self._fake._next_id("cohere-fake-"))
            else:
                builders = {
                    "nova": _nova_answer,
                    "titan": _titan_answer,
                    "llama": _llama_answer,
                    "mistral": _mistral_answer,
                }
                answer = builders[family](request.body, model, count)
        except _BadRequest as exc:
            self._send_bedrock(400, [json.dumps({"message": exc.message}).encode()], request_id)
            return
        if self._bedrock_failure(model, request_id):
            return
        if not stream:
            counts = {
                "x-amzn-bedrock-input-token-count": str(answer.input_tokens),
                "x-amzn-bedrock-output-token-count": str(answer.output_tokens),
                "x-amzn-bedrock-invocation-latency": "1",
            }
            self._send_bedrock(200, [json.dumps(answer.body).encode()], request_id, counts)
            return
        metrics = _invocation_metrics(answer.input_tokens, answer.output_tokens)
        chunks = [*answer.chunks[:-1], {**answer.chunks[-1], "amazon-bedrock-invocationMetrics": metrics}]
        frames = [_bedrock_chunk(chunk) for chunk in chunks]
        if "error-midstream" in model or "error-disconnect" in model:
            frames = frames[: answer.first_text + 1]
            if "error-midstream" in model:
                frames.append(_bedrock_exception(BEDROCK_MIDSTREAM_EXCEPTION, "Model stream error (fake)."))
        stream_headers = {"x-amzn-bedrock-content-type": "application/json"}
        abort = "error-disconnect" in model
        self._send_bedrock(200, frames, request_id, stream_headers, stream=True, abort=abort)

    def _send_bedrock(
        self,
        status: int,
        frames: list[bytes],
        request_id: str,
        extra: dict[str, str] | None = None,
        *,
        stream: bool = False,
        abort: bool = False,
    ) -> None:
        """A Bedrock response: ``x-amzn-requestid`` (no ``request-id``); JSON, or event-stream messages chunked."""
        self.send_response(status)
        self.send_header("content-type", BEDROCK_STREAM_CONTENT_TYPE if stream else "application/json")
        headers = _bedrock_error_headers(status, request_id) if status >= 400 else {"x-amzn-requestid": request_id}
        for name, value in {**headers, **(extra or {})}.items():
            self.send_header(name, value)
        if not stream:
            payload = b"".join(frames)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
            return
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for frame in frames:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.wfile.flush()
        if abort:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- endpoints --------------------------------------------------------

    def _chat(self, body: JsonDict, headers: dict[str, str]) -> None:
        """POST /v1/chat/completions (or an Azure deployment's), streaming or not."""
        messages = _chat_messages(body)
        model = body["model"]
        if FILTER_PROMPT_MARKER in model:
            self._send_json(400, _content_filter_error(responses_api=False))
            return
        if INVALID_PROMPT_MARKER in model:
            self._send_json(400, _invalid_prompt_error())
            return
        answer = _safety_answer(model, _plan_chat_answer(body, messages))
        n = _choice_count(body)
        usage = _count_usage([_text_of(m.get("content")) for m in messages], answer, n)
        ident = self._fake._next_id("chatcmpl-fake-")
        if body.get("stream") is not True:
            completion = _chat_completion(body, ident, answer, usage, n)
            _safety_chat_completion(completion, model, self._azure)
            self._send_json(200, completion)
            return
        pieces = _split(answer.wire_text, _requested_chunks(body["model"], headers))
        chunks = _safety_chat_chunks(_chat_chunks(body, ident, answer, usage, pieces, n), model, self._azure)
        frames = [_sse_data(chunk) for chunk in chunks]
        if body["model"] == "error-midstream":
            self._send_sse(frames[:2], abort=True)
            return
        self._send_sse([*frames, b"data: [DONE]\n\n"])

    def _responses(self, body: JsonDict, headers: dict[str, str]) -> None:
        """POST /v1/responses (or Azure's /openai/responses), streaming or not; the result is stored for GET."""
        items = _responses_input_items(body)
        model = body["model"]
        if FILTER_PROMPT_MARKER in model:
            self._send_json(400, _content_filter_error(responses_api=True))
            return
        if INVALID_PROMPT_MARKER in model:
            self._send_json(400, _invalid_prompt_error())
            return
        answer = _safety_answer(model, _plan_responses_answer(body, items))
        usage = _count_usage(_responses_prompt_texts(body, items), answer)
        response = _response_object(body, self._fake._next_id("resp_fake_"), answer, usage)
        self._fake._store_response(response)
        if body.get("stream") is not True:
            _safety_response(response, [], model, self._azure)
            self._send_json(200, response)
            return
        pieces = _split(answer.wire_text, _requested_chunks(body["model"], headers))
        events = _response_events(response, pieces)
        _safety_response(response, events, model, self._azure)
        frames = [_sse_event(event) for event in events]
        if body["model"] == "error-midstream":
            self._send_sse(_truncate_after_deltas(frames, events, 2), abort=True)
            return
        self._send_sse(frames)

    def _embeddings(self, body: JsonDict, headers: dict[str, str]) -> None:
        """POST /v1/embeddings."""
        self._send_json(200, _embeddings_response(body))

    # -- writers ----------------------------------------------------------

    def _start(
        self, status: int, content_type: str, extra: dict[str, str] | None = None, request_id: str | None = None
    ) -> None:
        """Status line and common headers, including a deterministic request id.

        Without ``request_id`` the headers are OpenAI's (a fresh
        ``x-request-id`` and ``openai-processing-ms``); with one they are
        Anthropic's (``request-id: <request_id>``).
        """
        self.send_response(status)
        self.send_header("content-type", content_type)
        if request_id is None:
            self.send_header("x-request-id", self._fake._next_id("req_fake_"))
            self.send_header("openai-processing-ms", "1")
        else:
            self.send_header("request-id", request_id)
        for name, value in (extra or {}).items():
            self.send_header(name, value)

    def _send_bytes(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        extra: dict[str, str] | None = None,
        *,
        request_id: str | None = None,
    ) -> None:
        """A fixed-length body, so keep-alive clients know where it ends."""
        self._start(status, content_type, extra, request_id)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _send_json(
        self, status: int, payload: JsonDict, extra: dict[str, str] | None = None, *, request_id: str | None = None
    ) -> None:
        """Serialise and send a JSON body."""
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", extra, request_id=request_id)

    def _send_sse(self, frames: list[bytes], abort: bool = False, *, request_id: str | None = None) -> None:
        """Stream SSE frames with chunked transfer encoding.

        Chunked encoding (rather than read-until-close) lets an abort be
        detected: dropping the socket before the terminating zero-length
        chunk makes h11 raise "incomplete chunked read" in the client.
        """
        self._start(200, "text/event-stream; charset=utf-8", {"cache-control": "no-cache"}, request_id)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for frame in frames:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.wfile.flush()
        if abort:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _FakeHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its FakeModelServer and never logs."""

    daemon_threads = True
    fake: FakeModelServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Drop handler errors silently instead of printing tracebacks to stderr."""


class _FakeHTTPServerV6(_FakeHTTPServer):
    """IPv6 variant, for ``host="::1"``."""

    address_family = socket.AF_INET6


class FakeModelServer:
    """Deterministic OpenAI- and Anthropic-compatible server on a loopback port.

    Use as a context manager (``with FakeModelServer() as server:``) and
    point an OpenAI client at :attr:`base_url` or an Anthropic client at
    :attr:`anthropic_base_url`. Every request is appended to
    :attr:`requests`; ids (``chatcmpl-fake-1``, ``resp_fake_1``,
    ``msg_fake_1``, ``req_fake_1``, ...) come from per-prefix counters so
    tests can assert them exactly.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}
        self._responses: dict[str, JsonDict] = {}
        self._httpd: _FakeHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeModelServer:
        """Bind (port 0 picks a free port) and serve from a daemon thread."""
        if self._httpd is not None:
            return self
        server_class = _FakeHTTPServerV6 if ":" in self.host else _FakeHTTPServer
        httpd = server_class((self.host, self.port), _Handler)
        httpd.fake = self
        self.port = int(httpd.server_address[1])
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-model-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL including ``/v1``, e.g. ``http://127.0.0.1:54321/v1``."""
        return self.anthropic_base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Anthropic-style base URL: the server root, e.g. ``http://127.0.0.1:54321``.

        The ``anthropic`` SDK appends ``/v1/messages`` itself (its default is
        ``https://api.anthropic.com``), so pass this as ``base_url=``.
        """
        if self._httpd is None:
            raise RuntimeError("FakeModelServer is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def bedrock_endpoint_url(self) -> str:
        """Bedrock Runtime endpoint for botocore: the server root, e.g. ``http://127.0.0.1:54321``.

        Pass it as ``boto3.client("bedrock-runtime", endpoint_url=...)``; botocore puts
        ``/model/{modelId}/converse`` (and the other operations) right under it.
        """
        return self.anthropic_base_url

    @property
    def google_base_url(self) -> str:
        """``google-genai`` base URL (Gemini API and Vertex AI): the server root, e.g. ``http://127.0.0.1:54321``.

        Pass it as ``http_options={"base_url": ...}``; the SDK appends ``/v1beta/models/...`` (Gemini
        API) or ``/v1beta1/projects/{p}/locations/{l}/publishers/google/models/...`` (Vertex AI).
        See :mod:`otel_llm_audit.demo.fake_google` for the routes and conventions.
        """
        return self.anthropic_base_url

    def clear(self) -> None:
        """Forget recorded requests (ids and stored responses are kept)."""
        with self._lock:
            self.requests.clear()

    # -- state shared with handler threads --------------------------------

    def _record(self, request: RecordedRequest) -> None:
        """Append under the lock: handlers run on concurrent threads."""
        with self._lock:
            self.requests.append(request)

    def _next_id(self, prefix: str) -> str:
        """Next deterministic id for ``prefix`` (1, 2, ... per server)."""
        with self._lock:
            self._counters[prefix] = self._counters.get(prefix, 0) + 1
            return f"{prefix}{self._counters[prefix]}"

    def _store_response(self, response: JsonDict) -> None:
        """Keep a Responses API object for ``GET /v1/responses/{id}``."""
        with self._lock:
            self._responses[response["id"]] = response

    def _load_response(self, response_id: str) -> JsonDict | None:
        """Stored response by id, or None."""
        with self._lock:
            return self._responses.get(response_id)
