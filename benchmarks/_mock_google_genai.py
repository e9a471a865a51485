"""Canned Gemini API traffic for the instruction-count benchmark: no network, no server.

The real ``google-genai`` SDK (3.x) talks to an ``httpx.MockTransport`` passed through
``HttpOptions(client_args={"transport": ...})``, whose handler returns pre-encoded bytes: per
call the SDK's own work runs (converting the config and contents to the wire format, building
the request, the httpx client stack, JSON / SSE parsing into pydantic ``GenerateContentResponse``
models) plus the instrumentation. The payloads have the Gemini API's shapes (those of
``otel_llm_audit.demo.fake_google``; the stream's chunks are cut by its ``stream_chunks``),
built once at import. Prompts, answer and markers are ``_mock``'s.

Scenarios (``client.models`` on a sync ``genai.Client``, Gemini API, ``gemini-2.5-flash``):

* ``generate``: ``generate_content`` with a system instruction and a user prompt, one candidate
  of ~600 characters with safety ratings and usage;
* ``stream``: ``generate_content_stream``, 20 ``data:`` chunks of text, the last one with the
  finish reason, safety ratings and full usage; the caller iterates 20 responses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from _mock import ANSWER_TEXT, SYSTEM_PROMPT, USER_PROMPT

MODEL = "gemini-2.5-flash"

#: Chunks in the stream (each a ``GenerateContentResponse`` the caller iterates).
STREAM_TOTAL_CHUNKS = 20
STREAM_TEXT_DELTAS = STREAM_TOTAL_CHUNKS

MARKERS: dict[str, tuple[str, ...]] = {
    "generate": ("QX7-PELICAN", "zebra-quartz"),
    "stream": ("QX7-PELICAN", "zebra-quartz"),
}
SCENARIOS = ("generate", "stream")
STREAMING = {"stream"}

_CATEGORIES = (
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
)
RESPONSE: dict[str, Any] = {
    "candidates": [
        {
            "content": {"role": "model", "parts": [{"text": ANSWER_TEXT}]},
            "finishReason": "STOP",
            "safetyRatings": [{"category": c, "probability": "NEGLIGIBLE"} for c in _CATEGORIES],
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 142,
        "candidatesTokenCount": 131,
        "totalTokenCount": 273,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 142}],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 131}],
    },
    "modelVersion": "gemini-2.5-flash-001",
    "responseId": "bench-gemini-0001",
}
GENERATE_BODY = json.dumps(RESPONSE).encode()


def _stream_body() -> bytes:
    from otel_llm_audit.demo.fake_google import stream_chunks

    chunks = stream_chunks(RESPONSE, STREAM_TOTAL_CHUNKS)
    assert len(chunks) == STREAM_TOTAL_CHUNKS, len(chunks)
    return b"".join(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n" for chunk in chunks)


STREAM_BODY = _stream_body()

_JSON_HEADERS = {"content-type": "application/json; charset=UTF-8"}
_SSE_HEADERS = {"content-type": "text/event-stream"}


def make_client(scenario: str) -> Any:
    """A real ``google.genai.Client`` (Gemini API) whose transport answers with the scenario's bytes."""
    import httpx
    from google import genai
    from google.genai import types

    streaming = scenario in STREAMING
    body = STREAM_BODY if streaming else GENERATE_BODY
    headers = _SSE_HEADERS if streaming else _JSON_HEADERS

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=headers, content=body)

    options = types.HttpOptions(client_args={"transport": httpx.MockTransport(handler)})
    return genai.Client(api_key="bench-not-a-real-key", http_options=options)


def make_call(scenario: str) -> Callable[[], int]:
    """One complete call the way an application makes it; returns the responses the caller saw."""
    from google.genai import types

    client = make_client(scenario)
    keep = [client]  # genai.Client closes its httpx client when it is collected
    config = types.GenerateContentConfig(system_instruction=SYSTEM_PROMPT, max_output_tokens=300, temperature=0.5)

    if scenario == "generate":
        generate = client.models.generate_content

        def call() -> int:
            result = generate(model=MODEL, contents=USER_PROMPT, config=config)
            if not keep or "zebra-quartz" not in (result.text or ""):
                raise AssertionError("no answer text")
            return 1

    elif scenario == "stream":
        generate_stream = client.models.generate_content_stream

        def call() -> int:
            n = 0 if keep else -1
            for _chunk in generate_stream(model=MODEL, contents=USER_PROMPT, config=config):
                n += 1
            return n

    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    return call
