"""The fake model server's Anthropic Messages API, driven through the real ``anthropic`` SDK.

Like ``test_fake_server.py`` for OpenAI, these tests pin the wire format
against the installed SDK's own parsers (``Message``, the raw event
stream, ``messages.stream()`` and its accumulator, error mapping), so an
instrumentation tested against the fake sees what production sees. They
run unchanged against anthropic 0.50 (``x-api-key``, ``?beta=true``, no
``OverloadedError`` export, no ``APIStatusError.type``) and 2.x.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

anthropic = pytest.importorskip("anthropic")

try:  # the package may not have its __init__ yet; the namespace import still works
    from otel_llm_audit.demo.fake_server import FakeModelServer
except ImportError:  # pragma: no cover - only when run without PYTHONPATH=src / install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from otel_llm_audit.demo.fake_server import FakeModelServer

MODEL = "claude-haiku-4-5"
HELLO = "Hello from the fake model."
WEATHER = "The weather in Paris is 18°C and sunny."
REFUSAL = "I can't help with that."
THINKING = "The user wants a short, friendly answer."
SIGNATURE = "ZmFrZS10aGlua2luZy1zaWduYXR1cmU="
HELLO_PIECES = ["Hell", "o fr", "om t", "he f", "ake ", "mode", "l."]
WEATHER_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME_TOOL: dict[str, Any] = {
    "name": "get_time",
    "description": "Current time in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
NO_CACHE = {
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
    "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
    "service_tier": "standard",
}


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    """A fresh server per test so ids and recorded requests start at zero."""
    with FakeModelServer() as fake:
        yield fake


@pytest.fixture
def client(server: FakeModelServer) -> Iterator[Any]:
    """Real sync SDK client pointed at the fake; retries off for exact counts."""
    sdk = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
    yield sdk
    sdk.close()


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def overloaded_error() -> type[BaseException]:
    """``OverloadedError`` (529) is exported from the package only in newer SDKs."""
    found = getattr(anthropic, "OverloadedError", None)
    return found if found is not None else anthropic._exceptions.OverloadedError  # type: ignore[no-any-return]


def disconnect_errors() -> tuple[type[BaseException], ...]:
    """What a dropped SSE connection raises: raw httpx (0.x) or httpx2 (1.x+) errors, or a wrapped one."""
    errors: list[type[BaseException]] = [anthropic.APIConnectionError]
    for module_name in ("httpx", "httpx2"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        errors.append(module.RemoteProtocolError)
    return tuple(errors)


def post_raw(server: FakeModelServer, path: str, body: Any, method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    """POST bytes (or JSON) with urllib; returns status, lower-cased headers and the body bytes."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        server.anthropic_base_url + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def sse_pairs(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(``event:`` name, parsed ``data:``) for each SSE frame."""
    pairs = []
    for frame in raw.decode().split("\n\n"):
        if not frame.strip():
            continue
        fields = dict(line.split(": ", 1) for line in frame.splitlines())
        pairs.append((fields["event"], json.loads(fields["data"])))
    return pairs


# --------------------------------------------------------------------------
# Non-streaming create
# --------------------------------------------------------------------------


def test_create_exact_message_and_recorded_request(client: Any, server: FakeModelServer) -> None:
    # Not traceparent: with a global tracer provider set (by earlier tests), anthropic 1.14+
    # replaces a caller's traceparent with its own span's, so assert the recording on a custom header.
    message = client.messages.create(
        model=MODEL,
        max_tokens=256,
        system="You are terse.",
        messages=[user("Say hello")],
        extra_headers={"x-audit-probe": "probe-1"},
    )
    assert (message.id, message.type, message.role) == ("msg_fake_1", "message", "assistant")
    assert message.model == "claude-haiku-4-5-2026-01-01"
    assert [block.to_dict() for block in message.content] == [{"type": "text", "text": HELLO}]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    # input: (14 + 9) // 4 + 1 = 6; output: 26 // 4 + 1 = 7
    assert message.usage.to_dict() == {"input_tokens": 6, "output_tokens": 7, **NO_CACHE}
    assert message._request_id == "req_fake_1"

    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert request.headers["x-audit-probe"] == "probe-1"
    assert "sk-ant-test" in (request.headers.get("x-api-key", "") + request.headers.get("authorization", ""))
    assert request.headers["anthropic-version"]
    assert request.body == {
        "max_tokens": 256,
        "messages": [user("Say hello")],
        "model": MODEL,
        "system": "You are terse.",
    }

    # system as text blocks and content as blocks count the same characters
    again = client.messages.create(
        model=MODEL,
        max_tokens=256,
        system=[{"type": "text", "text": "You are terse."}],
        messages=[user([{"type": "text", "text": "Say hello"}])],
    )
    assert (again.id, again._request_id) == ("msg_fake_2", "req_fake_2")
    assert again.usage.input_tokens == 6


def test_cached_model_reports_cache_reads_and_writes(client: Any) -> None:
    message = client.messages.create(model="claude-haiku-4-5-cached", max_tokens=64, messages=[user("hi")])
    assert message.model == "claude-haiku-4-5-cached-2026-01-01"
    assert message.usage.to_dict() == {
        "input_tokens": 1,  # 2 // 4 + 1; cache tokens are on top, as with the real API
        "output_tokens": 7,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 100,
        "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 0},
        "service_tier": "standard",
    }


def test_refusal_max_tokens_and_stop_sequence_conventions(client: Any) -> None:
    refused = client.messages.create(model="claude-refuse", max_tokens=64, messages=[user("bad idea")])
    assert refused.stop_reason == "refusal"
    assert [block.text for block in refused.content] == [REFUSAL]
    assert refused.to_dict()["stop_details"] == {"type": "refusal", "category": None, "explanation": None}
    assert refused.usage.output_tokens == len(REFUSAL) // 4 + 1

    with client.messages.stream(model="claude-refuse", max_tokens=64, messages=[user("bad idea")]) as stream:
        assert "".join(stream.text_stream) == REFUSAL
        assert stream.get_final_message().stop_reason == "refusal"

    cut = client.messages.create(model="claude-haiku-4-5-maxtokens", max_tokens=64, messages=[user("hi")])
    assert (cut.stop_reason, cut.content[0].text) == ("max_tokens", "Hello from th")
    assert cut.usage.output_tokens == 13 // 4 + 1
    # -maxtokens wins over tools: the answer is cut text, not a tool call
    cut_tool = client.messages.create(
        model="claude-haiku-4-5-maxtokens", max_tokens=64, messages=[user("hi")], tools=[WEATHER_TOOL]
    )
    assert cut_tool.stop_reason == "max_tokens"

    stopped = client.messages.create(
        model=MODEL, max_tokens=64, messages=[user("hi")], stop_sequences=["model", "fake"]
    )
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "fake")
    assert stopped.content[0].text == "Hello from the "
    assert stopped.to_dict()["stop_details"] is None


# --------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------


def test_stream_helper_text_stream_and_final_message(client: Any, server: FakeModelServer) -> None:
    with client.messages.stream(model=MODEL, max_tokens=64, messages=[user("Say hello")]) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
        assert stream.request_id == "req_fake_1"
    assert pieces == HELLO_PIECES
    assert final.id == "msg_fake_1"
    assert final.model == "claude-haiku-4-5-2026-01-01"
    assert [block.text for block in final.content] == [HELLO]
    assert (final.stop_reason, final.stop_sequence) == ("end_turn", None)
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3, 7)  # 9 // 4 + 1
    assert final.usage.cache_read_input_tokens == 0
    assert server.requests[0].body["stream"] is True


def test_create_stream_true_event_sequence(client: Any) -> None:
    events = list(client.messages.create(model=MODEL, max_tokens=64, messages=[user("Say hello")], stream=True))
    assert [event.type for event in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 7,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0].message
    assert (start.id, start.content, start.stop_reason) == ("msg_fake_1", [], None)
    assert (start.usage.input_tokens, start.usage.output_tokens) == (3, 1)
    assert events[1].content_block.to_dict() == {"type": "text", "text": ""}
    assert [e.delta.text for e in events[2:9]] == HELLO_PIECES
    assert {e.delta.type for e in events[2:9]} == {"text_delta"}
    assert {e.index for e in events[1:10]} == {0}
    delta = events[-2]
    assert (delta.delta.stop_reason, delta.delta.stop_sequence) == ("end_turn", None)
    assert delta.usage.output_tokens == 7  # cumulative, not an increment


def test_wire_sse_event_names_match_types_and_include_ping(server: FakeModelServer) -> None:
    body = {"model": MODEL, "max_tokens": 64, "messages": [user("hi")], "stream": True}
    status, headers, raw = post_raw(server, "/v1/messages", body)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["request-id"] == "req_fake_1"
    pairs = sse_pairs(raw)
    assert all(name == data["type"] for name, data in pairs)
    names = [name for name, _ in pairs]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    message_delta = pairs[-2][1]
    assert message_delta["usage"] == {
        "input_tokens": 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 7,
    }


def test_stream_chunk_count_hooks(client: Any) -> None:
    with client.messages.stream(model="claude-haiku-4-5-chunks-3", max_tokens=64, messages=[user("hi")]) as stream:
        assert list(stream.text_stream) == ["Hello fro", "m the fak", "e model."]
        assert stream.get_final_message().model == "claude-haiku-4-5-chunks-3-2026-01-01"
    events = client.messages.create(
        model=MODEL, max_tokens=64, messages=[user("hi")], stream=True, extra_headers={"x-fake-chunks": "23"}
    )
    texts = [e.delta.text for e in events if e.type == "content_block_delta"]
    assert len(texts) == 23
    assert "".join(texts) == HELLO


def test_thinking_block_precedes_text(client: Any) -> None:
    request: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 2048,
        "messages": [user("hi")],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    message = client.messages.create(**request)
    assert [block.type for block in message.content] == ["thinking", "text"]
    thinking, text = message.content
    assert (thinking.thinking, thinking.signature) == (THINKING, SIGNATURE)
    assert text.text == HELLO
    # thinking: 40 // 4 + 1 = 11; text: 7
    assert message.usage.output_tokens == 18
    assert message.usage.to_dict()["output_tokens_details"] == {"thinking_tokens": 11}

    events = list(client.messages.create(**request, stream=True))
    deltas = [(e.index, e.delta.type) for e in events if e.type == "content_block_delta"]
    assert deltas == [(0, "thinking_delta")] * 10 + [(0, "signature_delta")] + [(1, "text_delta")] * 7
    thinking_deltas = [e.delta for e in events if e.type == "content_block_delta" and e.delta.type == "thinking_delta"]
    assert "".join(delta.thinking for delta in thinking_deltas) == THINKING
    signatures = [e.delta for e in events if e.type == "content_block_delta" and e.delta.type == "signature_delta"]
    assert [delta.signature for delta in signatures] == [SIGNATURE]
    starts = [e.content_block.to_dict() for e in events if e.type == "content_block_start"]
    assert starts == [{"type": "thinking", "thinking": "", "signature": ""}, {"type": "text", "text": ""}]

    with client.messages.stream(**request) as stream:
        assert "".join(stream.text_stream) == HELLO
        final = stream.get_final_message()
    # exclude_none: 0.50's accumulator adds ``citations: None`` to streamed text blocks
    streamed = [block.to_dict(exclude_none=True) for block in final.content]
    assert streamed == [block.to_dict(exclude_none=True) for block in message.content]
    assert final.usage.output_tokens == 18


# --------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------


def test_tool_use_round_trip(client: Any, server: FakeModelServer) -> None:
    first = client.messages.create(
        model=MODEL, max_tokens=256, messages=[user("Weather in Paris?")], tools=[WEATHER_TOOL, TIME_TOOL]
    )
    assert first.stop_reason == "tool_use"
    [call] = first.content
    assert (call.type, call.id, call.name, call.input) == ("tool_use", "toolu_fake_1", "get_weather", {"city": "Paris"})
    assert first.usage.output_tokens == len('{"city": "Paris"}') // 4 + 1

    history = [
        user("Weather in Paris?"),
        {"role": "assistant", "content": first.content},  # SDK blocks go back as they came
        user([{"type": "tool_result", "tool_use_id": call.id, "content": '{"temp_c": 18}'}]),
    ]
    follow_up = client.messages.create(model=MODEL, max_tokens=256, messages=history, tools=[WEATHER_TOOL])
    assert follow_up.stop_reason == "end_turn"
    assert [block.text for block in follow_up.content] == [WEATHER]
    sent = server.requests[-1].body["messages"]
    assert sent[1]["content"][0]["type"] == "tool_use"
    # input: "Weather in Paris?" 17 + '{"city": "Paris"}' 17 + '{"temp_c": 18}' 14 = 48 -> 13
    assert follow_up.usage.input_tokens == 13
    assert follow_up.usage.input_tokens == client.messages.count_tokens(model=MODEL, messages=history).input_tokens

    named = client.messages.create(
        model=MODEL,
        max_tokens=256,
        messages=[user("Time?")],
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice={"type": "tool", "name": "get_time"},
    )
    assert named.content[0].name == "get_time"
    declined = client.messages.create(
        model=MODEL, max_tokens=256, messages=[user("hi")], tools=[WEATHER_TOOL], tool_choice={"type": "none"}
    )
    assert (declined.stop_reason, declined.content[0].text) == ("end_turn", HELLO)


def test_structured_output_answers_json_text(client: Any, server: FakeModelServer) -> None:
    """``output_config.format`` (what ``messages.parse`` sends) or the older top-level ``output_format``."""
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    json_format = {"type": "json_schema", "schema": schema}
    answer = '{"answer": "42"}'
    for extra in ({"output_config": {"format": json_format}}, {"output_format": json_format}):
        message = client.messages.create(model=MODEL, max_tokens=64, messages=[user("hi")], extra_body=extra)
        assert (message.stop_reason, [b.text for b in message.content]) == ("end_turn", [answer])
        assert message.usage.output_tokens == len(answer) // 4 + 1
        streamed = client.messages.create(
            model=MODEL, max_tokens=64, messages=[user("hi")], extra_body=extra, stream=True
        )
        text = "".join(e.delta.text for e in streamed if e.type == "content_block_delta")
        assert text == answer
    # Structured output after a tool result: still JSON; a tool call still comes first.
    after_tool = [
        user("Weather?"),
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_fake_1", "name": "get_weather", "input": {}}],
        },
        user([{"type": "tool_result", "tool_use_id": "toolu_fake_1", "content": "18C"}]),
    ]
    extra = {"output_config": {"format": json_format}}
    follow_up = client.messages.create(
        model=MODEL, max_tokens=64, messages=after_tool, tools=[WEATHER_TOOL], extra_body=extra
    )
    assert follow_up.content[0].text == answer
    first = client.messages.create(
        model=MODEL, max_tokens=64, messages=[user("Weather?")], tools=[WEATHER_TOOL], extra_body=extra
    )
    assert first.stop_reason == "tool_use"
    cut = client.messages.create(model=f"{MODEL}-maxtokens", max_tokens=64, messages=[user("hi")], extra_body=extra)
    assert (cut.stop_reason, cut.content[0].text) == ("max_tokens", answer[: len(answer) // 2])
    plain = client.messages.create(
        model=MODEL, max_tokens=64, messages=[user("hi")], extra_body={"output_config": {"effort": "low"}}
    )
    assert plain.content[0].text == HELLO  # output_config without a format: plain text


def test_thread_field_is_accepted_and_each_turn_answers_its_own_messages(server: FakeModelServer) -> None:
    """The 2.x tool runner's message threads: ``create`` with the history, then ``continue`` with the tool result."""
    first_body = {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [user("Weather?")],
        "tools": [WEATHER_TOOL],
        "thread": {"type": "create"},
    }
    status, _, raw = post_raw(server, "/v1/messages", first_body)
    first = json.loads(raw)
    assert (status, first["stop_reason"]) == (200, "tool_use")
    second_body = {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [user([{"type": "tool_result", "tool_use_id": "toolu_fake_1", "content": "18C"}])],
        "thread": {"type": "continue", "previous_message_id": first["id"]},
    }
    status, _, raw = post_raw(server, "/v1/messages", second_body)
    second = json.loads(raw)
    assert (status, second["stop_reason"], second["content"][0]["text"]) == (200, "end_turn", WEATHER)
    assert server.requests[-1].body["thread"] == {"type": "continue", "previous_message_id": "msg_fake_1"}


def test_tool_use_streams_input_json_deltas(client: Any) -> None:
    events = list(
        client.messages.create(
            model="claude-haiku-4-5-chunks-2",
            max_tokens=256,
            messages=[user("Weather?")],
            tools=[WEATHER_TOOL],
            stream=True,
        )
    )
    assert events[1].content_block.to_dict() == {
        "type": "tool_use",
        "id": "toolu_fake_1",
        "name": "get_weather",
        "input": {},
    }
    partials = [e.delta.partial_json for e in events if e.type == "content_block_delta"]
    assert partials == ['{"city": ', '"Paris"}']
    assert events[-2].delta.stop_reason == "tool_use"

    with client.messages.stream(model=MODEL, max_tokens=256, messages=[user("Weather?")], tools=[WEATHER_TOOL]) as s:
        final = s.get_final_message()
    assert final.content[0].input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"


# --------------------------------------------------------------------------
# count_tokens
# --------------------------------------------------------------------------


def test_count_tokens(client: Any, server: FakeModelServer) -> None:
    counted = client.messages.count_tokens(model=MODEL, system="You are terse.", messages=[user("Say hello")])
    assert counted.input_tokens == 6
    assert counted.to_dict() == {"input_tokens": 6}
    [request] = server.requests
    assert request.path == "/v1/messages/count_tokens"
    assert "max_tokens" not in request.body
    # counting spends no message id
    assert client.messages.create(model=MODEL, max_tokens=8, messages=[user("hi")]).id == "msg_fake_1"
    with pytest.raises(anthropic.RateLimitError):
        client.messages.count_tokens(model="error-429", messages=[user("hi")])


# --------------------------------------------------------------------------
# Async client
# --------------------------------------------------------------------------


def test_async_client_end_to_end(server: FakeModelServer) -> None:
    async def scenario() -> tuple[str, str, str, int, str]:
        client = anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
        try:
            message = await client.messages.create(model=MODEL, max_tokens=64, messages=[user("hi")])
            events = await client.messages.create(model=MODEL, max_tokens=64, messages=[user("hi")], stream=True)
            streamed = "".join([e.delta.text async for e in events if e.type == "content_block_delta"])
            async with client.messages.stream(model=MODEL, max_tokens=64, messages=[user("hi")]) as stream:
                final = await stream.get_final_message()
            counted = await client.messages.count_tokens(model=MODEL, messages=[user("hi")])
            # not overloaded_error(): anthropic 0.50's *async* client maps 529 to InternalServerError
            with pytest.raises(anthropic.APIStatusError) as raised:
                await client.messages.create(model="error-529", max_tokens=64, messages=[user("hi")])
            assert raised.value.status_code == 529
            return (
                message.content[0].text,
                streamed,
                final.content[0].text,
                counted.input_tokens,
                raised.value.body["error"]["type"],
            )
        finally:
            await client.close()

    assert asyncio.run(scenario()) == (HELLO, HELLO, HELLO, 1, "overloaded_error")
    assert server.requests[0].headers["x-stainless-async"].startswith("async")


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exception", "error_type"),
    [
        (400, "BadRequestError", "invalid_request_error"),
        (401, "AuthenticationError", "authentication_error"),
        (403, "PermissionDeniedError", "permission_error"),
        (404, "NotFoundError", "not_found_error"),
        (429, "RateLimitError", "rate_limit_error"),
        (500, "InternalServerError", "api_error"),
        (529, "OverloadedError", "overloaded_error"),
    ],
)
def test_error_models_raise_sdk_exceptions(client: Any, status: int, exception: str, error_type: str) -> None:
    error_class = overloaded_error() if exception == "OverloadedError" else getattr(anthropic, exception)
    model = f"error-{status}"
    with pytest.raises(error_class) as raised:
        client.messages.create(model=model, max_tokens=64, messages=[user("hi")])
    error = raised.value
    assert error.status_code == status
    assert error.body == {
        "type": "error",
        "error": {"type": error_type, "message": f"Fake error {status} scripted by model '{model}'."},
        "request_id": "req_fake_1",
    }
    assert error.request_id == "req_fake_1"
    assert getattr(error, "type", error_type) == error_type  # APIStatusError.type exists from 0.125 on
    with pytest.raises(error_class), client.messages.stream(model=model, max_tokens=64, messages=[user("hi")]):
        pass


def test_retryable_errors_retry_fast(server: FakeModelServer) -> None:
    retrying = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=2)
    started = time.monotonic()
    with pytest.raises(overloaded_error()):
        retrying.messages.create(model="error-529", max_tokens=64, messages=[user("hi")])
    assert time.monotonic() - started < 1.0  # retry-after-ms: 1 beats the SDK's 0.5 s+ backoff
    assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "1", "2"]
    with pytest.raises(anthropic.RateLimitError) as raised:
        retrying.messages.create(model="error-429", max_tokens=64, messages=[user("hi")])
    assert raised.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    retrying.close()


def test_midstream_error_event_raises_after_first_text_delta(client: Any) -> None:
    received: list[str] = []
    stream = client.messages.create(model="error-midstream", max_tokens=64, messages=[user("hi")], stream=True)
    with pytest.raises(anthropic.APIStatusError) as raised:
        for event in stream:
            received.append(event.type)
    assert received == ["message_start", "content_block_start", "content_block_delta"]
    error = raised.value
    assert error.status_code == 200  # the stream's status: the error arrived inside a 200 response
    assert error.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert error.request_id == "req_fake_1"

    text: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(model="error-midstream", max_tokens=64, messages=[user("hi")]) as helper,
    ):
        text.extend(helper.text_stream)
    assert text == ["Hell"]


def test_disconnect_mid_stream(client: Any) -> None:
    received: list[str] = []
    with pytest.raises(disconnect_errors()):
        for event in client.messages.create(
            model="error-disconnect", max_tokens=64, messages=[user("hi")], stream=True
        ):
            received.append(event.type)
    assert received == ["message_start", "content_block_start", "content_block_delta"]
    # the server is still healthy afterwards
    assert client.messages.create(model=MODEL, max_tokens=8, messages=[user("hi")]).content[0].text == HELLO


def test_malformed_json(client: Any) -> None:
    with pytest.raises(json.JSONDecodeError):
        client.messages.create(model="malformed-json", max_tokens=64, messages=[user("hi")])
    with pytest.raises(json.JSONDecodeError):
        list(client.messages.create(model="malformed-json", max_tokens=64, messages=[user("hi")], stream=True))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": MODEL, "messages": [user("hi")]}, "max_tokens: Field required"),
        ({"model": MODEL, "max_tokens": 8}, "messages: Field required"),
        ({"max_tokens": 8, "messages": [user("hi")]}, "model: Field required"),
        ({"model": MODEL, "max_tokens": 0, "messages": [user("hi")]}, "max_tokens: Input should be greater"),
        ({"model": MODEL, "max_tokens": 8, "messages": []}, "messages: at least one message is required"),
        ({"model": MODEL, "max_tokens": 8, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"model": MODEL, "max_tokens": 8, "messages": [user("hi")], "system": 3}, "system: "),
        (
            {"model": MODEL, "max_tokens": 8, "messages": [user("hi")], "thinking": {"type": "enabled"}},
            "thinking.enabled.budget_tokens",
        ),
        (
            {
                "model": MODEL,
                "max_tokens": 1024,
                "messages": [user("hi")],
                "thinking": {"type": "enabled", "budget_tokens": 1024},
            },
            "`max_tokens` must be greater than `thinking.budget_tokens`",
        ),
        (b"not json", "Request body must be a valid JSON object."),
    ],
)
def test_invalid_requests_get_invalid_request_error(server: FakeModelServer, body: Any, message: str) -> None:
    status, headers, raw = post_raw(server, "/v1/messages", body)
    payload = json.loads(raw)
    assert status == 400
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "invalid_request_error"
    assert payload["error"]["message"].startswith(message)
    assert payload["request_id"] == headers["request-id"] == "req_fake_1"


def test_sdk_surfaces_validation_error(client: Any) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        client.post("/v1/messages", body={"model": MODEL, "messages": [user("hi")]}, cast_to=object)
    assert raised.value.body["error"]["message"] == "max_tokens: Field required"


# --------------------------------------------------------------------------
# Routing and lifecycle
# --------------------------------------------------------------------------


def test_beta_query_and_beta_client(client: Any, server: FakeModelServer) -> None:
    status, _, raw = post_raw(
        server, "/v1/messages?beta=true", {"model": MODEL, "max_tokens": 8, "messages": [user("hi")]}
    )
    assert (status, json.loads(raw)["content"][0]["text"]) == (200, HELLO)
    status, _, raw = post_raw(server, "/v1/messages/count_tokens?beta=true", {"model": MODEL, "messages": [user("hi")]})
    assert (status, json.loads(raw)) == (200, {"input_tokens": 1})

    beta = client.beta.messages.create(
        model=MODEL, max_tokens=8, messages=[user("hi")], betas=["interleaved-thinking-2025-05-14"]
    )
    assert beta.content[0].text == HELLO
    last = server.requests[-1]
    assert last.path in ("/v1/messages?beta=true", "/v1/messages")  # 2.x dropped the query
    assert last.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"


def test_unknown_anthropic_paths_get_anthropic_404(server: FakeModelServer) -> None:
    status, _, raw = post_raw(server, "/v1/messages/batches", {"requests": []})
    assert status == 404
    assert json.loads(raw)["error"]["type"] == "not_found_error"
    status, _, raw = post_raw(server, "/v1/messages/msg_fake_1", None, method="GET")
    assert (status, json.loads(raw)["type"]) == (404, "error")
    status, _, raw = post_raw(server, "/v1/chat/nope", {})
    assert (status, json.loads(raw)["error"]["code"]) == (404, "unknown_url")  # OpenAI side unchanged


def test_base_urls() -> None:
    fake = FakeModelServer()
    with pytest.raises(RuntimeError):
        _ = fake.anthropic_base_url
    with fake:
        assert fake.anthropic_base_url == f"http://127.0.0.1:{fake.port}"
        assert fake.base_url == fake.anthropic_base_url + "/v1"
