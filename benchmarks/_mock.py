"""Canned OpenAI Chat Completions traffic for the overhead benchmark: no network, no server.

The real ``openai`` SDK (3.x, on ``httpx2``) talks to an ``httpx2.MockTransport`` whose handler
returns pre-encoded bytes, so the only per-call work is the SDK's own (build the request, send it
through the httpx2 client stack, parse JSON / SSE into pydantic models) plus the instrumentation.
Every payload is built once at import; the handler does not parse the request.

Marker strings (``MARKERS``) appear in the prompts and answers so the worker can check that each
configuration really captured content, not just emitted an empty span.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
CREATED = 1767225600

#: Streamed content chunks (role chunk and finish chunk included); a usage chunk follows them.
STREAM_CONTENT_CHUNKS = 23
#: What the caller iterates in the streaming scenario: the content chunks plus the usage chunk.
STREAM_TOTAL_CHUNKS = STREAM_CONTENT_CHUNKS + 1

SYSTEM_PROMPT = (
    "You are a careful assistant for a travel agency. Answer in plain English, cite the booking "
    "reference when the customer gives one, never invent prices, and keep answers under 120 words. "
    "If the customer asks about weather or local time, use the tools provided instead of guessing. "
    "Escalate to a human agent when the customer mentions a complaint, a refund or a medical issue."
)
USER_PROMPT = (
    "Hi! I'm flying to Lisbon next Tuesday with booking reference QX7-PELICAN and I land at 14:35. "
    "Can you tell me what I should pack for three days of walking around the old town, and whether "
    "it is easy to get from the airport to Alfama by public transport with two suitcases?"
)
ANSWER_TEXT = (
    "For three days of walking in Lisbon's old town, pack comfortable shoes with good grip (the "
    "calcada pavements are slippery), a light waterproof jacket, layers for cool evenings, sunscreen "
    "and a refillable water bottle. From the airport, the red metro line to Alameda and the green "
    "line onward get you close to Alfama, but with two suitcases a taxi or ride-hailing car (about "
    "20 minutes) is far easier, since Alfama's streets are steep and stepped. Booking QX7-PELICAN "
    "lands at 14:35, so you will reach the old town well before sunset. Enjoy the trip, zebra-quartz!"
)
TOOL_USER_PROMPT = "What's the weather in Lisbon and the local time in Tokyo right now?"

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. Lisbon"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_local_time",
            "description": "Current local time in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "City name, e.g. Tokyo"}},
                "required": ["city"],
            },
        },
    },
]

#: scenario -> strings that must appear somewhere in the captured span content (inputs, outputs).
MARKERS: dict[str, tuple[str, ...]] = {
    "chat_text": ("QX7-PELICAN", "zebra-quartz"),
    "chat_tools": ("Tokyo", "get_local_time"),
    "stream": ("QX7-PELICAN", "zebra-quartz"),
}

SCENARIOS = ("chat_text", "chat_tools", "stream")
STREAMING = {"stream"}


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _completion(message: dict[str, Any], finish_reason: str, usage: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench0001",
            "object": "chat.completion",
            "created": CREATED,
            "model": RESPONSE_MODEL,
            "system_fingerprint": "fp_bench",
            "service_tier": "default",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
            "usage": usage,
        }
    ).encode()


CHAT_TEXT_BODY = _completion(
    {"role": "assistant", "content": ANSWER_TEXT, "refusal": None, "annotations": []}, "stop", _usage(142, 131)
)

CHAT_TOOLS_BODY = _completion(
    {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "annotations": [],
        "tool_calls": [
            {
                "id": "call_bench_weather",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Lisbon", "unit": "celsius"}'},
            },
            {
                "id": "call_bench_time",
                "type": "function",
                "function": {"name": "get_local_time", "arguments": '{"city": "Tokyo"}'},
            },
        ],
    },
    "tool_calls",
    _usage(118, 46),
)


def _split(text: str, pieces: int) -> list[str]:
    size = -(-len(text) // pieces)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _stream_body() -> bytes:
    def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None, choices: bool = True) -> str:
        body = {
            "id": "chatcmpl-bench0002",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": RESPONSE_MODEL,
            "system_fingerprint": "fp_bench",
            "service_tier": "default",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else [],
            "usage": usage,
        }
        return "data: " + json.dumps(body) + "\n\n"

    # 1 role chunk + 21 content chunks + 1 finish chunk = 23 chunks with a choice.
    texts = _split(ANSWER_TEXT, STREAM_CONTENT_CHUNKS - 2)
    assert len(texts) == STREAM_CONTENT_CHUNKS - 2, len(texts)
    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": t}) for t in texts]
    events.append(chunk({}, finish="stop"))
    events.append(chunk({}, usage=_usage(142, 131), choices=False))
    events.append("data: [DONE]\n\n")
    return "".join(events).encode()


STREAM_BODY = _stream_body()

_BODIES = {"chat_text": CHAT_TEXT_BODY, "chat_tools": CHAT_TOOLS_BODY, "stream": STREAM_BODY}
_JSON_HEADERS = {"content-type": "application/json", "x-request-id": "req_bench"}
_SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "x-request-id": "req_bench"}


def make_client(scenario: str, latency_s: float = 0.0) -> Any:
    """A real ``openai.OpenAI`` client whose transport answers every request with the scenario's bytes.

    ``latency_s`` > 0 makes the transport sleep (releasing the GIL, as a real socket wait does)
    before answering; by default it answers at once, the worst case for work moved to a
    background thread, which then competes with the caller for the GIL instead of using its
    idle time.
    """
    import time

    import httpx2
    import openai

    body = _BODIES[scenario]
    headers = _SSE_HEADERS if scenario in STREAMING else _JSON_HEADERS

    if latency_s > 0:

        def handler(request: httpx2.Request) -> httpx2.Response:
            time.sleep(latency_s)
            return httpx2.Response(200, headers=headers, content=body)

    else:

        def handler(request: httpx2.Request) -> httpx2.Response:
            return httpx2.Response(200, headers=headers, content=body)

    http_client = openai.DefaultHttpxClient(transport=httpx2.MockTransport(handler))
    return openai.OpenAI(
        api_key="sk-bench-not-a-real-key",
        base_url="https://api.openai.com/v1",
        http_client=http_client,
        max_retries=0,
    )


def make_call(scenario: str, latency_s: float = 0.0) -> Callable[[], int]:
    """A no-argument function doing one complete call the way an application would.

    Returns how many chunks the caller saw (1 for a non-streaming call), so the worker can check
    that a stream was really consumed to its end.
    """
    client = make_client(scenario, latency_s)
    create = client.chat.completions.create
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": USER_PROMPT if scenario != "chat_tools" else TOOL_USER_PROMPT},
    ]

    if scenario == "chat_text":

        def call() -> int:
            result = create(model=MODEL, messages=messages, temperature=0.2, max_tokens=300)
            if result.choices[0].message.content is None:
                raise AssertionError("no answer text")
            return 1

    elif scenario == "chat_tools":

        def call() -> int:
            result = create(model=MODEL, messages=messages, tools=TOOLS, tool_choice="auto", temperature=0.0)
            calls = result.choices[0].message.tool_calls
            if not calls or len(calls) != 2:
                raise AssertionError(f"expected 2 tool calls, got {calls!r}")
            return 1

    elif scenario == "stream":

        def call() -> int:
            stream = create(
                model=MODEL,
                messages=messages,
                temperature=0.2,
                max_tokens=300,
                stream=True,
                stream_options={"include_usage": True},
            )
            n = 0
            for _chunk in stream:
                n += 1
            return n

    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    return call
