"""Canned Anthropic Messages traffic for the instruction-count benchmark: no network, no server.

The real ``anthropic`` SDK (2.x, on ``httpx2``) talks to an ``httpx2.MockTransport`` whose handler
returns pre-encoded bytes, as ``_mock.py`` does for OpenAI: the only per-call work is the SDK's
own (build the request, send it through the httpx2 client stack, parse JSON / SSE into pydantic
models) plus the instrumentation. Every payload is built once at import; the handler does not
parse the request. Prompts, answer and markers are ``_mock``'s, so both benchmarks send and
check the same text.

Scenarios (``messages.create`` on a sync ``anthropic.Anthropic`` client):

* ``messages_text``: system + user message, a ~600-character text answer;
* ``messages_tools``: two tool definitions, an answer with two ``tool_use`` blocks;
* ``stream``: ``stream=True``, consumed to the end: ``message_start``, a ``ping`` (the API sends
  one; the SDK skips it), ``content_block_start``, 23 ``text_delta`` events,
  ``content_block_stop``, ``message_delta`` with the usage, ``message_stop``; the caller iterates
  28 events.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from _mock import ANSWER_TEXT, SYSTEM_PROMPT, TOOL_USER_PROMPT, USER_PROMPT

MODEL = "claude-sonnet-4-5"
RESPONSE_MODEL = "claude-sonnet-4-5-20250929"

#: Text deltas in the stream.
STREAM_TEXT_DELTAS = 23
#: Events the caller iterates: message_start, content_block_start, the deltas, content_block_stop,
#: message_delta, message_stop (the ping is not handed to the caller).
STREAM_TOTAL_CHUNKS = STREAM_TEXT_DELTAS + 5

TOOLS: list[dict[str, Any]] = [
    {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "input_schema": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Lisbon"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
    {
        "name": "get_local_time",
        "description": "Current local time in a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name, e.g. Tokyo"}},
            "required": ["city"],
        },
    },
]

#: scenario -> strings that must appear somewhere in the captured span content (inputs, outputs).
MARKERS: dict[str, tuple[str, ...]] = {
    "messages_text": ("QX7-PELICAN", "zebra-quartz"),
    "messages_tools": ("Tokyo", "get_local_time"),
    "stream": ("QX7-PELICAN", "zebra-quartz"),
}

SCENARIOS = ("messages_text", "messages_tools", "stream")
STREAMING = {"stream"}


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "server_tool_use": None,
        "service_tier": "standard",
    }


def _message(msg_id: str, content: list[dict[str, Any]], stop_reason: str | None, usage: dict[str, Any]) -> dict:
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": RESPONSE_MODEL,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


MESSAGES_TEXT_BODY = json.dumps(
    _message("msg_bench0001", [{"type": "text", "text": ANSWER_TEXT}], "end_turn", _usage(142, 131))
).encode()

MESSAGES_TOOLS_BODY = json.dumps(
    _message(
        "msg_bench0002",
        [
            {
                "type": "tool_use",
                "id": "toolu_bench_weather",
                "name": "get_weather",
                "input": {"city": "Lisbon", "unit": "celsius"},
            },
            {"type": "tool_use", "id": "toolu_bench_time", "name": "get_local_time", "input": {"city": "Tokyo"}},
        ],
        "tool_use",
        _usage(118, 46),
    )
).encode()


def _split(text: str, pieces: int) -> list[str]:
    size = -(-len(text) // pieces)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _stream_body() -> bytes:
    def event(data: dict[str, Any]) -> str:
        return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n"

    texts = _split(ANSWER_TEXT, STREAM_TEXT_DELTAS)
    assert len(texts) == STREAM_TEXT_DELTAS, len(texts)
    events = [
        event({"type": "message_start", "message": _message("msg_bench0003", [], None, _usage(142, 1))}),
        event({"type": "ping"}),
        event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ]
    events += [
        event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}) for t in texts
    ]
    events += [
        event({"type": "content_block_stop", "index": 0}),
        event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {
                    "input_tokens": 142,
                    "output_tokens": 131,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "server_tool_use": None,
                },
            }
        ),
        event({"type": "message_stop"}),
    ]
    return "".join(events).encode()


STREAM_BODY = _stream_body()

_BODIES = {"messages_text": MESSAGES_TEXT_BODY, "messages_tools": MESSAGES_TOOLS_BODY, "stream": STREAM_BODY}
_JSON_HEADERS = {"content-type": "application/json", "request-id": "req_bench"}
_SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "request-id": "req_bench"}


def make_client(scenario: str) -> Any:
    """A real ``anthropic.Anthropic`` client whose transport answers every request with the scenario's bytes."""
    import anthropic
    import httpx2

    body = _BODIES[scenario]
    headers = _SSE_HEADERS if scenario in STREAMING else _JSON_HEADERS

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers=headers, content=body)

    return anthropic.Anthropic(
        api_key="sk-ant-bench-not-a-real-key",
        base_url="https://api.anthropic.com",
        http_client=anthropic.DefaultHttpxClient(transport=httpx2.MockTransport(handler)),
        max_retries=0,
    )


def make_call(scenario: str) -> Callable[[], int]:
    """A no-argument function doing one complete call the way an application would.

    Returns how many events / messages the caller saw (1 for a non-streaming call), so the worker
    can check that a stream was really consumed to its end.
    """
    client = make_client(scenario)
    create = client.messages.create

    if scenario == "messages_text":
        messages = [{"role": "user", "content": USER_PROMPT}]

        def call() -> int:
            result = create(model=MODEL, system=SYSTEM_PROMPT, messages=messages, max_tokens=300)
            if result.content[0].type != "text" or "zebra-quartz" not in result.content[0].text:
                raise AssertionError("no answer text")
            return 1

    elif scenario == "messages_tools":
        messages = [{"role": "user", "content": TOOL_USER_PROMPT}]

        def call() -> int:
            result = create(
                model=MODEL,
                system=SYSTEM_PROMPT,
                messages=messages,
                tools=TOOLS,
                tool_choice={"type": "auto"},
                max_tokens=300,
            )
            uses = [b for b in result.content if b.type == "tool_use"]
            if len(uses) != 2:
                raise AssertionError(f"expected 2 tool_use blocks, got {result.content!r}")
            return 1

    elif scenario == "stream":
        messages = [{"role": "user", "content": USER_PROMPT}]

        def call() -> int:
            stream = create(model=MODEL, system=SYSTEM_PROMPT, messages=messages, max_tokens=300, stream=True)
            n = 0
            for _event in stream:
                n += 1
            return n

    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    return call
