"""The fake model server's Google side: the Gemini API and Gemini on Vertex AI, as ``google-genai`` calls them.

Served by :class:`~otel_llm_audit.demo.fake_server.FakeModelServer` on the same port: point
``genai.Client(api_key=..., http_options={"base_url": server.google_base_url})`` (the Gemini
API) or ``genai.Client(vertexai=True, project=..., location=..., credentials=...,
http_options={"base_url": server.google_base_url})`` (Vertex AI) at the server root.

Routes (any API version prefix: ``v1``, ``v1beta``, ``v1alpha``, ``v1beta1``):

* Gemini API: ``POST /{version}/models/{model}:{method}``; an ``x-goog-api-key`` header (or
  a ``key`` query parameter) is required (403 ``PERMISSION_DENIED`` without one).
* Vertex AI: ``POST /{version}/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}``
  (or ``/{version}/publishers/google/models/...`` in express mode); the bearer token is
  recorded, not checked.
* Methods: ``generateContent``; ``streamGenerateContent`` (``?alt=sse``: ``data: {json}``
  frames separated by ``\\r\\n\\r\\n``, every chunk carrying ``modelVersion``, ``responseId``
  and ``usageMetadata``, the last one the finish reason, safety ratings and the full usage);
  ``countTokens`` (``{"totalTokens": N}``); ``embedContent``, ``batchEmbedContents`` and, on
  Vertex, ``predict`` (the text-embedding models' ``instances`` / ``predictions`` shape, with
  ``statistics.token_count`` and ``metadata.billableCharacterCount``).

Answers (pure functions of the request):

* The hello sentence; the weather sentence when the last turn carries a ``functionResponse``;
  a ``functionCall`` of the first declared function (or ``toolConfig``'s first allowed one)
  with ``{"city": "Paris"}`` when ``functionDeclarations`` are sent and the mode is not
  ``NONE``; :data:`~otel_llm_audit.demo.fake_server.JSON_ANSWER` for ``responseMimeType``
  ``application/json``. ``stopSequences`` cut the text; ``candidateCount`` (1..8) repeats the
  candidate. Candidates' role is ``model``; ``modelVersion`` is the model plus ``-001``;
  ``responseId`` is ``fake-gemini-N`` (Vertex also sends ``createTime``).
* ``generationConfig.thinkingConfig`` (unless ``thinkingBudget`` is 0) reports
  ``thoughtsTokenCount``; with ``includeThoughts`` the thought text comes first as a
  ``thought: true`` part.
* Tokens: prompt = characters of all text (system instruction, parts, function calls and
  responses as JSON) // 4 + 1, plus 100 ``cachedContentTokenCount`` when the request names a
  ``cachedContent`` (the cache is part of ``promptTokenCount``, as Google counts it);
  candidates = per candidate, characters // 4 + 1; ``totalTokenCount`` adds all three.
* Every candidate carries the four ``safetyRatings`` at ``NEGLIGIBLE`` (Vertex adds
  ``probabilityScore``, ``severity`` and ``severityScore``).

Safety conventions, from markers anywhere in the request's user text:

* ``block-prompt``: ``promptFeedback.blockReason`` ``SAFETY`` (harassment ``HIGH``, blocked)
  and no candidates; ``prohibited-prompt``: ``blockReason`` ``PROHIBITED_CONTENT``, no ratings.
* ``block-answer``: one candidate, no content, ``finishReason`` ``SAFETY``, dangerous content
  ``HIGH`` and ``blocked: true``.
* ``flag-answer``: the normal answer, harassment rated ``MEDIUM`` (not blocked).
* ``finish-<REASON>`` (``RECITATION``, ``BLOCKLIST``, ``PROHIBITED_CONTENT``, ``SPII``,
  ``IMAGE_SAFETY``, ``OTHER``, ...): one candidate with that finish reason and no content.

Model conventions: ``error-<status>`` answers that status with Google's error body
(``{"error": {"code", "message", "status"}}``, status names as Google's: 429
``RESOURCE_EXHAUSTED``, ...); ``-maxtokens`` cuts the text in half with ``MAX_TOKENS``;
``-chunks-N`` (or ``x-fake-chunks``) streams N text pieces; in streams ``error-midstream``
sends a ``{"error": ...}`` frame after the first chunk and ``error-disconnect`` drops the
connection there; ``malformed-json`` answers 200 with a body that is not JSON.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from otel_llm_audit.demo import fake_server as fs

JsonDict = dict[str, Any]

#: ``/{version}/models/{model}:{method}`` (the Gemini API).
_GEMINI_PATH = re.compile(r"/(v1|v1beta|v1alpha)/models/([^/:]+):([A-Za-z]+)")
#: ``/{version}[/projects/{p}/locations/{l}]/publishers/google/models/{model}:{method}`` (Vertex AI).
_VERTEX_PATH = re.compile(
    r"/(v1|v1beta1)(?:/projects/[^/]+/locations/[^/]+)?/publishers/google/models/([^/:]+):([A-Za-z]+)"
)
_MAX_CANDIDATES = 8
CACHED_CONTENT_TOKENS = 100
MODEL_VERSION_SUFFIX = "-001"
CREATE_TIME = "2026-01-01T00:00:00.000000Z"
CATEGORIES = (
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
)
BLOCK_PROMPT_MARKER = "block-prompt"
PROHIBITED_PROMPT_MARKER = "prohibited-prompt"
BLOCK_ANSWER_MARKER = "block-answer"
FLAG_ANSWER_MARKER = "flag-answer"
_FINISH_MARKER = re.compile(r"finish-([A-Z_]+)")
#: Google's status name per HTTP status (``google.rpc.Code``).
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_SCORES = {"NEGLIGIBLE": (0.05, 0.04), "LOW": (0.3, 0.2), "MEDIUM": (0.6, 0.5), "HIGH": (0.95, 0.9)}


class _BadRequest(Exception):
    """A request Google would refuse with 400 ``INVALID_ARGUMENT``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def error_body(status: int, message: str) -> JsonDict:
    """Google's error envelope (``google.genai.errors.APIError`` reads ``code``, ``message``, ``status``)."""
    return {"error": {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN")}}


def serve(handler: Any, request: fs.RecordedRequest, path: str) -> bool:
    """Serve a Gemini API or Vertex AI Gemini path; False if ``path`` is neither."""
    match = _GEMINI_PATH.fullmatch(path)
    vertex = False
    if match is None:
        match = _VERTEX_PATH.fullmatch(path)
        vertex = match is not None
    if match is None:
        return False
    model, method = unquote(match.group(2)), match.group(3)
    if not vertex and not _has_api_key(request):
        _send(handler, 403, error_body(403, "Method doesn't allow unregistered callers. Please use an API key."))
        return True
    try:
        _dispatch(handler, request, model, method, vertex)
    except _BadRequest as exc:
        _send(handler, 400, error_body(400, exc.message))
    return True


def _has_api_key(request: fs.RecordedRequest) -> bool:
    if request.headers.get("x-goog-api-key"):
        return True
    return bool(parse_qs(urlsplit(request.path).query).get("key"))


def _dispatch(handler: Any, request: fs.RecordedRequest, model: str, method: str, vertex: bool) -> None:
    body = request.body
    if not isinstance(body, dict):
        raise _BadRequest("Invalid JSON payload received.")
    status = fs._scripted_status(model)
    if status is not None:
        _send(handler, status, error_body(status, f"Fake error {status} scripted by model '{model}'."))
        return
    fake = handler._fake
    if method in ("generateContent", "streamGenerateContent"):
        if model == "malformed-json":
            if method == "generateContent":
                _send_raw(handler, 200, b'{"candidates": [')
            else:
                _send_frames(handler, [b'data: {"candidates": [\r\n\r\n'])
            return
        count = fs._requested_chunks(model, request.headers)
        response = generate_content(body, model, vertex, fake._next_id("fake-gemini-"))
        if method == "generateContent":
            _send(handler, 200, response)
            return
        chunks = stream_chunks(response, count)
        frames = [_sse(chunk) for chunk in chunks]
        if model.startswith(("error-midstream", "error-disconnect")):
            frames = frames[:1]
            if model.startswith("error-midstream"):
                frames.append(_sse(error_body(500, "Fake error in the middle of the stream.")))
            _send_frames(handler, frames, abort=model.startswith("error-disconnect"))
            return
        _send_frames(handler, frames)
    elif method == "countTokens":
        tokens = _prompt_tokens(body)
        answer: JsonDict = {"totalTokens": tokens}
        if vertex:
            answer["totalBillableCharacters"] = sum(len(t) for t in _request_texts(body))
        _send(handler, 200, answer)
    elif method in ("embedContent", "batchEmbedContents") or (method == "predict" and vertex):
        _send(handler, 200, embed(body, model, method, vertex))
    else:
        _send(handler, 404, error_body(404, f"Method not found: {method}."))


# ---------------------------------------------------------------------------------------
# generateContent


def _texts_of_parts(parts: Any) -> list[str]:
    out: list[str] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            out.append(part["text"])
        for key in ("functionCall", "functionResponse"):
            if part.get(key) is not None:
                out.append(json.dumps(part[key]))
    return out


def _contents(body: JsonDict) -> list[JsonDict]:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _BadRequest("* GenerateContentRequest.contents: contents is not specified")
    for content in contents:
        if not isinstance(content, dict) or not isinstance(content.get("parts"), list) or not content["parts"]:
            raise _BadRequest("* GenerateContentRequest.contents.parts: contents.parts must not be empty.")
        if content.get("role") not in (None, "user", "model", "function", "tool"):
            raise _BadRequest(f"Please use a valid role: user, model. Got {content.get('role')!r}.")
    return contents


def _request_texts(body: JsonDict) -> list[str]:
    texts = _texts_of_parts((body.get("systemInstruction") or {}).get("parts"))
    for content in body.get("contents") or []:
        if isinstance(content, dict):
            texts.extend(_texts_of_parts(content.get("parts")))
    return texts


def _user_text(body: JsonDict) -> str:
    return "\n".join(
        text
        for content in body.get("contents") or []
        if isinstance(content, dict) and content.get("role", "user") == "user"
        for text in _texts_of_parts(content.get("parts"))
    )


def _prompt_tokens(body: JsonDict) -> int:
    return sum(len(text) for text in _request_texts(body)) // 4 + 1


def _field(obj: Any, camel: str) -> Any:
    """A field by its JSON name or its proto name: Google accepts both (the SDK sends some nested
    configs, such as ``thinkingConfig``'s fields, in snake_case)."""
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    return obj.get(re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel))


def _function_to_call(body: JsonDict) -> str | None:
    calling = _field(_field(body, "toolConfig"), "functionCallingConfig")
    if _field(calling, "mode") == "NONE":
        return None
    allowed = _field(calling, "allowedFunctionNames")
    if isinstance(allowed, list) and allowed and isinstance(allowed[0], str):
        return allowed[0]
    for tool in body.get("tools") or []:
        for declaration in _field(tool, "functionDeclarations") or []:
            if isinstance(declaration, dict) and isinstance(declaration.get("name"), str):
                return str(declaration["name"])
    return None


def _rating(category: str, probability: str, vertex: bool, blocked: bool = False) -> JsonDict:
    rating: JsonDict = {"category": category, "probability": probability}
    if vertex:
        score, severity = _SCORES[probability]
        rating.update(
            {"probabilityScore": score, "severity": f"HARM_SEVERITY_{probability}", "severityScore": severity}
        )
    if blocked:
        rating["blocked"] = True
    return rating


def _ratings(vertex: bool, **levels: str) -> list[JsonDict]:
    """The four ratings, NEGLIGIBLE unless named (``HARASSMENT="HIGH"``); HIGH ones are blocked."""
    out = []
    for category in CATEGORIES:
        level = levels.get(category.removeprefix("HARM_CATEGORY_"), "NEGLIGIBLE")
        out.append(_rating(category, level, vertex, blocked=level == "HIGH"))
    return out


def _usage(prompt: int, cached: int, candidates: int | None, thoughts: int, vertex: bool) -> JsonDict:
    usage: JsonDict = {"promptTokenCount": prompt}
    if candidates is not None:
        usage["candidatesTokenCount"] = candidates
    usage["totalTokenCount"] = prompt + (candidates or 0) + thoughts
    if cached:
        usage["cachedContentTokenCount"] = cached
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if candidates:
        usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": candidates}]
    if vertex:
        usage["trafficType"] = "ON_DEMAND"
    return usage


def _envelope(response: JsonDict, model: str, response_id: str, vertex: bool) -> JsonDict:
    response["modelVersion"] = model if re.search(r"-\d{3}$", model) else model + MODEL_VERSION_SUFFIX
    if vertex:
        response["createTime"] = CREATE_TIME
    response["responseId"] = response_id
    return response


def _candidate_count(config: JsonDict) -> int:
    n = config.get("candidateCount", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= _MAX_CANDIDATES:
        raise _BadRequest(f"candidateCount must be in 1..{_MAX_CANDIDATES}.")
    return n


def generate_content(body: JsonDict, model: str, vertex: bool, response_id: str) -> JsonDict:
    """The ``GenerateContentResponse`` JSON for one ``generateContent`` request."""
    contents = _contents(body)
    raw_config = body.get("generationConfig")
    config: JsonDict = raw_config if isinstance(raw_config, dict) else {}
    n = _candidate_count(config)
    cached = CACHED_CONTENT_TOKENS if body.get("cachedContent") else 0
    prompt = _prompt_tokens(body) + cached
    user_text = _user_text(body)
    if BLOCK_PROMPT_MARKER in user_text or PROHIBITED_PROMPT_MARKER in user_text:
        feedback: JsonDict
        if BLOCK_PROMPT_MARKER in user_text:
            feedback = {"blockReason": "SAFETY", "safetyRatings": _ratings(vertex, HARASSMENT="HIGH")}
        else:
            feedback = {"blockReason": "PROHIBITED_CONTENT"}
        if vertex:
            feedback["blockReasonMessage"] = "The prompt was blocked due to safety reasons."
        response: JsonDict = {"promptFeedback": feedback, "usageMetadata": _usage(prompt, cached, None, 0, vertex)}
        return _envelope(response, model, response_id, vertex)
    finish = _FINISH_MARKER.search(user_text)
    if BLOCK_ANSWER_MARKER in user_text or finish is not None:
        reason = "SAFETY" if BLOCK_ANSWER_MARKER in user_text else finish.group(1) if finish else "OTHER"
        candidate: JsonDict = {"finishReason": reason, "index": 0}
        if reason == "SAFETY":
            candidate["safetyRatings"] = _ratings(vertex, DANGEROUS_CONTENT="HIGH")
        blocked: JsonDict = {"candidates": [candidate], "usageMetadata": _usage(prompt, cached, None, 0, vertex)}
        return _envelope(blocked, model, response_id, vertex)

    thinking = _field(config, "thinkingConfig")
    thinks = isinstance(thinking, dict) and _field(thinking, "thinkingBudget") != 0
    thoughts = len(fs.THINKING_TEXT) // 4 + 1 if thinks else 0
    parts: list[JsonDict] = []
    if thinks and isinstance(thinking, dict) and _field(thinking, "includeThoughts"):
        parts.append({"text": fs.THINKING_TEXT, "thought": True})
    last_parts = contents[-1]["parts"]
    after_tool = any(isinstance(p, dict) and p.get("functionResponse") is not None for p in last_parts)
    function = None if after_tool else _function_to_call(body)
    reason = "STOP"
    if function is not None:
        parts.append({"functionCall": {"name": function, "args": dict(fs.TOOL_INPUT)}})
        wire = fs.TOOL_ARGUMENTS
    else:
        json_wanted = config.get("responseMimeType") == "application/json"
        text = fs.JSON_ANSWER if json_wanted else fs.WEATHER_ANSWER if after_tool else fs.HELLO_ANSWER
        if fs.MAXTOKENS_MARKER in model:
            text, reason = text[: len(text) // 2], "MAX_TOKENS"
        for stop in config.get("stopSequences") or []:
            if isinstance(stop, str) and stop and stop in text:
                text = text[: text.index(stop)]
        parts.append({"text": text})
        wire = text
    ratings = _ratings(vertex, HARASSMENT="MEDIUM") if FLAG_ANSWER_MARKER in user_text else _ratings(vertex)
    candidates = [
        {
            "content": {"role": "model", "parts": [dict(p) for p in parts]},
            "finishReason": reason,
            "safetyRatings": ratings,
            "index": index,
        }
        for index in range(n)
    ]
    per_candidate = len(wire) // 4 + 1
    usage = _usage(prompt, cached, per_candidate * n, thoughts, vertex)
    return _envelope({"candidates": candidates, "usageMetadata": usage}, model, response_id, vertex)


def stream_chunks(response: JsonDict, count: int | None) -> list[JsonDict]:
    """The ``streamGenerateContent`` chunks of ``response``: text in pieces, the finish on the last one."""
    envelope: JsonDict = {k: response[k] for k in ("modelVersion", "createTime", "responseId") if k in response}
    usage = response["usageMetadata"]
    running = {"promptTokenCount": usage["promptTokenCount"], "totalTokenCount": usage["promptTokenCount"]}
    candidates = response.get("candidates")
    if not candidates or "content" not in candidates[0]:  # blocked: one chunk says it all
        return [response]
    parts = candidates[0]["content"]["parts"]
    leading = [p for p in parts if "text" not in p or p.get("thought")]
    text_parts = [p for p in parts if "text" in p and not p.get("thought")]
    pieces: list[list[JsonDict]] = [[p] for p in leading]
    if text_parts:
        pieces.extend([{"text": piece}] for piece in fs._split(text_parts[0]["text"], count))
    chunks: list[JsonDict] = []
    for number, piece in enumerate(pieces):
        last = number == len(pieces) - 1
        chunk_candidates = []
        for candidate in candidates:
            item: JsonDict = {"content": {"role": "model", "parts": piece}, "index": candidate["index"]}
            if last:
                item["finishReason"] = candidate["finishReason"]
                item["safetyRatings"] = candidate["safetyRatings"]
            chunk_candidates.append(item)
        chunks.append({"candidates": chunk_candidates, "usageMetadata": usage if last else running, **envelope})
    return chunks


# ---------------------------------------------------------------------------------------
# Embeddings


def _embed_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return "".join(_texts_of_parts(content.get("parts")))
    raise _BadRequest("* EmbedContentRequest.content: content is not specified")


def _dimensions(value: Any) -> int:
    if value is None:
        return fs.DEFAULT_EMBEDDING_DIMENSIONS
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= fs._MAX_DIMENSIONS:
        raise _BadRequest(f"outputDimensionality must be in 1..{fs._MAX_DIMENSIONS}.")
    return value


def _tokens(text: str) -> int:
    return len(text) // 4 + 1


def embed(body: JsonDict, model: str, method: str, vertex: bool) -> JsonDict:
    """``embedContent``, ``batchEmbedContents`` or Vertex's ``predict`` for text embeddings."""
    if method == "predict":
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances:
            raise _BadRequest("instances must be a non-empty list.")
        dims = _dimensions((body.get("parameters") or {}).get("outputDimensionality"))
        texts = [_embed_text(i.get("content") if isinstance(i, dict) else None) for i in instances]
        predictions = [
            {
                "embeddings": {
                    "values": fs._embedding_vector(text, dims),
                    "statistics": {"token_count": _tokens(text), "truncated": False},
                }
            }
            for text in texts
        ]
        return {"predictions": predictions, "metadata": {"billableCharacterCount": sum(len(t) for t in texts)}}
    if method == "embedContent":
        text = _embed_text(body.get("content"))
        config: Any = body.get("embedContentConfig") if vertex else body
        dims = _dimensions((config or {}).get("outputDimensionality"))
        answer: JsonDict = {"embedding": {"values": fs._embedding_vector(text, dims)}}
        if vertex:
            tokens = _tokens(text)
            answer["usageMetadata"] = {"promptTokenCount": tokens, "totalTokenCount": tokens}
            answer["truncated"] = False
        return answer
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise _BadRequest("* BatchEmbedContentsRequest.requests: requests is not specified")
    embeddings = []
    total = 0
    for item in requests:
        if not isinstance(item, dict):
            raise _BadRequest("requests must be objects.")
        if not vertex and item.get("model") not in (f"models/{model}", None):
            raise _BadRequest(f"Model {item.get('model')!r} does not match the model in the URL.")
        text = _embed_text(item.get("content"))
        item_config: Any = item.get("embedContentConfig") if vertex else item
        embeddings.append(
            {"values": fs._embedding_vector(text, _dimensions((item_config or {}).get("outputDimensionality")))}
        )
        total += _tokens(text)
    answer = {"embeddings": embeddings}
    if vertex:
        answer["usageMetadata"] = {"promptTokenCount": total, "totalTokenCount": total}
    return answer


# ---------------------------------------------------------------------------------------
# Writers


def _sse(payload: JsonDict) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\r\n\r\n"


def _headers(handler: Any, status: int, content_type: str) -> None:
    handler.send_response(status)
    handler.send_header("content-type", content_type)


def _send(handler: Any, status: int, payload: JsonDict) -> None:
    _send_raw(handler, status, json.dumps(payload).encode())


def _send_raw(handler: Any, status: int, data: bytes) -> None:
    _headers(handler, status, "application/json; charset=UTF-8")
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
    handler.wfile.flush()


def _send_frames(handler: Any, frames: list[bytes], abort: bool = False) -> None:
    """SSE frames with chunked transfer encoding (an abort drops the socket before the last chunk)."""
    _headers(handler, 200, "text/event-stream")
    handler.send_header("transfer-encoding", "chunked")
    handler.end_headers()
    for frame in frames:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
        handler.wfile.flush()
    if abort:
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.shutdown(socket.SHUT_RDWR)
        return
    handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()
