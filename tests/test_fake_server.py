"""The fake model server, driven through the real ``openai`` SDK and HTTP stack.

These tests pin the wire format against the installed SDK's own parsers
(chat, streaming helpers, Responses, embeddings, error mapping) so that the
demo and the instrumentation tests exercise exactly what production sees.
They run unchanged against openai 1.66 (where the chat ``parse``/``stream``
helpers live under ``client.beta``) and openai 3.x.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

openai = pytest.importorskip("openai")
from pydantic import BaseModel  # noqa: E402

try:  # the package may not have its __init__ yet; the namespace import still works
    from otel_llm_audit.demo.fake_server import FakeModelServer, RecordedRequest
except ImportError:  # pragma: no cover - only when run without PYTHONPATH=src / install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from otel_llm_audit.demo.fake_server import FakeModelServer, RecordedRequest

HELLO = "Hello from the fake model."
WEATHER = "The weather in Paris is 18°C and sunny."
CREATED = 1767225600
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
RESPONSES_WEATHER_TOOL: dict[str, Any] = {"type": "function", "strict": True, **WEATHER_TOOL["function"]}


class Answer(BaseModel):
    """Structured-output target; the fake answers ``{"answer": "42"}``."""

    answer: str


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    """A fresh server per test so ids and recorded requests start at zero."""
    with FakeModelServer() as fake:
        yield fake


@pytest.fixture
def client(server: FakeModelServer) -> Iterator[Any]:
    """Real sync SDK client pointed at the fake; retries off for exact counts."""
    sdk = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    yield sdk
    sdk.close()


def chat_helpers(client: Any) -> Any:
    """``chat.completions`` with ``parse``/``stream``, or ``beta.chat.completions`` on old SDKs."""
    completions = client.chat.completions
    return completions if hasattr(completions, "parse") else client.beta.chat.completions


def midstream_errors() -> tuple[type[BaseException], ...]:
    """What a dropped SSE connection raises: wrapped in 3.x, raw httpx in 1.x."""
    errors: list[type[BaseException]] = [openai.APIConnectionError]
    for module_name in ("httpx", "httpx2"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        errors.append(module.RemoteProtocolError)
    return tuple(errors)


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


# --------------------------------------------------------------------------
# Chat Completions
# --------------------------------------------------------------------------


def test_chat_text_completion_exact_payload(client: Any) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "You are terse."}, user("Say hello")],
    )
    assert completion.id == "chatcmpl-fake-1"
    assert completion.object == "chat.completion"
    assert completion.created == CREATED
    assert completion.model == "gpt-4o-mini-2026-01-01"
    assert completion.system_fingerprint == "fp_fake"
    assert completion.service_tier == "default"
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert (choice.index, choice.finish_reason) == (0, "stop")
    assert choice.message.role == "assistant"
    assert choice.message.content == HELLO
    assert choice.message.tool_calls is None
    # prompt: (14 + 9) // 4 + 1 = 6; completion: 26 // 4 + 1 = 7
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (6, 7, 13)
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details.reasoning_tokens == 0
    second = client.chat.completions.create(model="gpt-4o-mini", messages=[user("again")])
    assert second.id == "chatcmpl-fake-2"


def test_chat_cached_tokens_n_choices_and_content_parts(client: Any) -> None:
    text = "[cached] " + "x" * 31  # 40 characters -> 11 prompt tokens, 5 cached
    completion = client.chat.completions.create(
        model="gpt-4o",
        n=2,
        service_tier="flex",
        messages=[{"role": "user", "content": [{"type": "text", "text": text}]}],
    )
    assert [c.index for c in completion.choices] == [0, 1]
    assert [c.message.content for c in completion.choices] == [HELLO, HELLO]
    assert completion.usage.prompt_tokens == 11
    assert completion.usage.prompt_tokens_details.cached_tokens == 5
    assert completion.usage.completion_tokens == 14  # 7 per choice
    assert completion.service_tier == "flex"


def test_chat_tool_call_round_trip(client: Any) -> None:
    first = client.chat.completions.create(
        model="gpt-4o-mini", messages=[user("Weather?")], tools=[WEATHER_TOOL]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert (call.id, call.type, call.function.name) == ("call_fake_1", "function", "get_weather")
    assert call.function.arguments == '{"city": "Paris"}'
    assert first.usage.completion_tokens == len('{"city": "Paris"}') // 4 + 1

    follow_up = client.chat.completions.create(
        model="gpt-4o-mini",
        tools=[WEATHER_TOOL],
        messages=[
            user("Weather?"),
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]},
            {"role": "tool", "tool_call_id": "call_fake_1", "content": '{"temp_c": 18}'},
        ],
    )
    assert follow_up.choices[0].finish_reason == "stop"
    assert follow_up.choices[0].message.content == WEATHER


def test_a_named_tool_choice_calls_that_tool_with_arguments_from_its_schema(client: Any) -> None:
    order = {
        "type": "function",
        "function": {
            "name": "order_drug",
            "parameters": {
                "type": "object",
                "properties": {
                    "drug": {"type": "string", "examples": ["paracetamol", "ibuprofen"]},
                    "route": {"type": "string", "enum": ["oral", "iv"]},
                    "dose_mg": {"type": "integer", "default": 500},
                    "urgent": {"type": "boolean"},
                    "note": {"type": "string"},
                },
                "required": ["drug", "route", "dose_mg", "urgent", "note"],
            },
        },
    }
    first = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[user("Order it.")],
        tools=[WEATHER_TOOL, order],
        tool_choice={"type": "function", "function": {"name": "order_drug"}},
    )
    [call] = first.choices[0].message.tool_calls
    assert (call.id, call.function.name) == ("call_fake_1", "order_drug")
    assert json.loads(call.function.arguments) == {
        "drug": "paracetamol",
        "route": "oral",
        "dose_mg": 500,
        "urgent": True,
        "note": "Paris",
    }
    # forced even after a tool turn, with the next call id
    again = client.chat.completions.create(
        model="gpt-4o-mini",
        tools=[order],
        tool_choice={"type": "function", "function": {"name": "order_drug"}},
        messages=[
            user("Order it."),
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]},
            {"role": "tool", "tool_call_id": call.id, "content": "ordered"},
        ],
    )
    assert again.choices[0].message.tool_calls[0].id == "call_fake_2"


def test_chat_stream_with_usage_assembles_exact_text(client: Any) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[user("Say hello")], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert {chunk.id for chunk in chunks} == {"chatcmpl-fake-1"}
    assert {chunk.model for chunk in chunks} == {"gpt-4o-mini-2026-01-01"}
    content = [c for c in chunks if c.choices and c.choices[0].delta.content is not None]
    assert [c.choices[0].delta.content for c in content] == [
        "Hell",
        "o fr",
        "om t",
        "he f",
        "ake ",
        "mode",
        "l.",
    ]
    assert content[0].choices[0].delta.role == "assistant"
    finish, usage_chunk = chunks[-2], chunks[-1]
    assert finish.choices[0].finish_reason == "stop"
    assert usage_chunk.choices == []
    assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens) == (3, 7)
    assert usage_chunk.usage.total_tokens == 10
    assert all(c.usage is None for c in chunks[:-1])


def test_chat_stream_chunk_count_hooks(client: Any) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini-chunks-23",
        messages=[user("hi")],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert len(chunks) == 23 + 2  # content chunks + finish chunk + usage chunk
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == HELLO
    assert chunks[0].model == "gpt-4o-mini-chunks-23-2026-01-01"

    header_stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[user("hi")], stream=True, extra_headers={"x-fake-chunks": "3"}
    )
    pieces = [c.choices[0].delta.content for c in header_stream if c.choices[0].finish_reason is None]
    assert pieces == ["Hello fro", "m the fak", "e model."]


def test_chat_stream_tool_call_fragments(client: Any) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[user("Weather?")], tools=[WEATHER_TOOL], stream=True
    )
    chunks = list(stream)
    header = chunks[0].choices[0].delta.tool_calls[0]
    assert (header.index, header.id, header.type) == (0, "call_fake_1", "function")
    assert (header.function.name, header.function.arguments) == ("get_weather", "")
    fragments = [c.choices[0].delta.tool_calls[0].function.arguments for c in chunks[1:-1]]
    assert "".join(fragments) == '{"city": "Paris"}'
    assert all(c.choices[0].delta.tool_calls[0].id is None for c in chunks[1:-1])
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_chat_stream_helper(client: Any) -> None:
    with chat_helpers(client).stream(
        model="gpt-4o-mini", messages=[user("Say hello")], stream_options={"include_usage": True}
    ) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == HELLO
    assert final.choices[0].message.content == HELLO
    assert final.usage.total_tokens == 10


def test_chat_parse_structured_output(client: Any, server: FakeModelServer) -> None:
    completion = chat_helpers(client).parse(
        model="gpt-4o-mini", messages=[user("Answer?")], response_format=Answer
    )
    message = completion.choices[0].message
    assert message.content == '{"answer": "42"}'
    assert message.parsed == Answer(answer="42")
    assert server.requests[-1].body["response_format"]["type"] == "json_schema"


class GetWeather(BaseModel):
    """Strict function tool; the fake calls it with ``{"city": "Paris"}``."""

    city: str


def test_chat_parse_strict_tool_arguments(client: Any) -> None:
    completion = chat_helpers(client).parse(
        model="gpt-4o-mini", messages=[user("Weather?")], tools=[openai.pydantic_function_tool(GetWeather)]
    )
    [call] = completion.choices[0].message.tool_calls
    assert call.function.name == "GetWeather"
    assert call.function.parsed_arguments == GetWeather(city="Paris")


# --------------------------------------------------------------------------
# Responses API
# --------------------------------------------------------------------------


def test_responses_create_echo_and_retrieve(client: Any) -> None:
    response = client.responses.create(
        model="gpt-4.1-mini",
        input="Say hello",
        instructions="Be brief.",
        temperature=0.2,
        top_p=0.9,
        max_output_tokens=50,
        extra_body={"service_tier": "priority"},  # not a keyword argument in openai 1.66
    )
    assert response.id == "resp_fake_1"
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == "gpt-4.1-mini-2026-01-01"
    assert response.output_text == HELLO
    assert response.output[0].id == "msg_fake_1"
    assert (response.instructions, response.temperature, response.top_p) == ("Be brief.", 0.2, 0.9)
    assert (response.max_output_tokens, response.service_tier) == (50, "priority")
    assert response.previous_response_id is None
    # input: (9 + 9) // 4 + 1 = 5; output: 7
    assert response.usage.to_dict() == {
        "input_tokens": 5,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 12,
    }
    follow = client.responses.create(
        model="gpt-4.1-mini", input="[cached] again", previous_response_id=response.id
    )
    assert follow.previous_response_id == "resp_fake_1"
    assert follow.usage.to_dict()["input_tokens_details"]["cached_tokens"] == 2  # half of 14 // 4 + 1

    retrieved = client.responses.retrieve("resp_fake_1")
    assert retrieved.to_dict() == response.to_dict()
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.retrieve("resp_unknown")
    assert missing.value.body["code"] == "not_found"


def test_responses_function_call_round_trip(client: Any) -> None:
    response = client.responses.create(model="gpt-4.1-mini", input="Weather?", tools=[RESPONSES_WEATHER_TOOL])
    [call] = response.output
    assert (call.type, call.call_id, call.name) == ("function_call", "call_fake_1", "get_weather")
    assert call.arguments == '{"city": "Paris"}'
    assert response.output_text == ""
    assert response.tools[0].name == "get_weather"

    answer = client.responses.create(
        model="gpt-4.1-mini",
        tools=[RESPONSES_WEATHER_TOOL],
        previous_response_id=response.id,
        input=[{"type": "function_call_output", "call_id": "call_fake_1", "output": '{"temp_c": 18}'}],
    )
    assert answer.output_text == WEATHER


def test_responses_stream_helper(client: Any) -> None:
    with client.responses.stream(model="gpt-4.1-mini", input="Say hello") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [event.type for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 7,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == HELLO
    assert final.output_text == HELLO
    assert final.usage.output_tokens == 7
    assert client.responses.retrieve(final.id).output_text == HELLO


def test_responses_create_stream_true_sequence_and_tool_call(client: Any) -> None:
    events = list(
        client.responses.create(
            model="gpt-4.1-mini-chunks-2", input="Weather?", tools=[RESPONSES_WEATHER_TOOL], stream=True
        )
    )
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert deltas == ['{"city": ', '"Paris"}']
    assert events[0].response.status == "in_progress"
    assert events[0].response.output == []
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output[0].arguments == '{"city": "Paris"}'
    assert completed.response.usage.total_tokens == completed.response.usage.input_tokens + 5


def test_responses_parse_structured_output(client: Any) -> None:
    parsed = client.responses.parse(model="gpt-4.1-mini", input="Answer?", text_format=Answer)
    assert parsed.output_text == '{"answer": "42"}'
    assert parsed.output_parsed == Answer(answer="42")


# --------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------


def test_embeddings_float_default_and_base64_agree(client: Any) -> None:
    as_float = client.embeddings.create(
        model="text-embedding-3-small", input=["alpha", "beta"], encoding_format="float"
    )
    assert as_float.object == "list"
    assert as_float.model == "text-embedding-3-small-2026-01-01"
    assert [(e.index, e.object, len(e.embedding)) for e in as_float.data] == [
        (0, "embedding", 8),
        (1, "embedding", 8),
    ]
    assert as_float.data[0].embedding != as_float.data[1].embedding
    assert (as_float.usage.prompt_tokens, as_float.usage.total_tokens) == (3, 3)  # 9 // 4 + 1

    default = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    assert [e.embedding for e in default.data] == [e.embedding for e in as_float.data]

    raw = client.embeddings.create(model="text-embedding-3-small", input="alpha", encoding_format="base64")
    decoded = list(struct.unpack("<8f", base64.b64decode(raw.data[0].embedding)))
    assert decoded == as_float.data[0].embedding

    sized = client.embeddings.create(model="text-embedding-3-small", input="alpha", dimensions=40)
    assert len(sized.data[0].embedding) == 40
    assert sized.data[0].embedding[:8] == as_float.data[0].embedding


# --------------------------------------------------------------------------
# Scripted failures
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "status", "exception", "error_type"),
    [
        ("error-429", 429, "RateLimitError", "requests"),
        ("error-500", 500, "InternalServerError", "server_error"),
        ("error-400", 400, "BadRequestError", "invalid_request_error"),
    ],
)
def test_error_models_raise_sdk_exceptions(
    client: Any, model: str, status: int, exception: str, error_type: str
) -> None:
    with pytest.raises(getattr(openai, exception)) as raised:
        client.chat.completions.create(model=model, messages=[user("hi")])
    assert raised.value.status_code == status
    assert raised.value.body["type"] == error_type
    assert raised.value.body["param"] is None
    assert raised.value.response.headers["x-request-id"] == "req_fake_1"
    with pytest.raises(getattr(openai, exception)):
        client.responses.create(model=model, input="hi", stream=True)
    with pytest.raises(getattr(openai, exception)):
        client.embeddings.create(model=model, input="hi")


def test_rate_limit_headers_make_retries_fast(server: FakeModelServer) -> None:
    retrying = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=2)
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as raised:
        retrying.chat.completions.create(model="error-429", messages=[user("hi")])
    assert time.monotonic() - started < 1.0  # retry-after-ms: 1 beats 0.5 s+ backoff
    assert raised.value.response.headers["retry-after"] == "0"
    assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "1", "2"]
    retrying.close()


def test_midstream_disconnect_raises_during_iteration(client: Any) -> None:
    received: list[str] = []
    stream = client.chat.completions.create(model="error-midstream", messages=[user("hi")], stream=True)
    with pytest.raises(midstream_errors()):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["Hell", "o fr"]

    events: list[str] = []
    with pytest.raises(midstream_errors()):
        for event in client.responses.create(model="error-midstream", input="hi", stream=True):
            events.append(event.type)
    assert events[-2:] == ["response.output_text.delta", "response.output_text.delta"]


def test_malformed_json_body(client: Any) -> None:
    with pytest.raises(json.JSONDecodeError):
        client.chat.completions.create(model="malformed-json", messages=[user("hi")])
    with pytest.raises(json.JSONDecodeError):
        list(client.chat.completions.create(model="malformed-json", messages=[user("hi")], stream=True))


# --------------------------------------------------------------------------
# Async client
# --------------------------------------------------------------------------


def test_async_client_end_to_end(server: FakeModelServer) -> None:
    async def scenario() -> tuple[str, str, str, int]:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        try:
            completion = await client.chat.completions.create(model="gpt-4o-mini", messages=[user("hi")])
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[user("hi")],
                stream=True,
                stream_options={"include_usage": True},
            )
            streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            async with client.responses.stream(model="gpt-4.1-mini", input="hi") as response_stream:
                final = await response_stream.get_final_response()
            embedding = await client.embeddings.create(model="text-embedding-3-small", input="alpha")
            with pytest.raises(openai.RateLimitError):
                await client.chat.completions.create(model="error-429", messages=[user("hi")])
            return (
                completion.choices[0].message.content,
                streamed,
                final.output_text,
                len(embedding.data[0].embedding),
            )
        finally:
            await client.close()

    assert asyncio.run(scenario()) == (HELLO, HELLO, HELLO, 8)
    assert server.requests[0].headers["x-stainless-async"].startswith("async")


# --------------------------------------------------------------------------
# Recording, routing and lifecycle
# --------------------------------------------------------------------------


def test_requests_are_recorded_with_headers_and_bodies(client: Any, server: FakeModelServer) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[user("hi")],
        temperature=0.5,
        extra_headers={"traceparent": traceparent},
    )
    [request] = server.requests
    assert isinstance(request, RecordedRequest)
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["traceparent"] == traceparent
    assert request.headers["authorization"] == "Bearer test"
    assert request.body == {"model": "gpt-4o-mini", "messages": [user("hi")], "temperature": 0.5}
    assert json.loads(request.raw_body) == request.body
    with pytest.raises(AttributeError):
        request.method = "GET"  # type: ignore[misc]
    server.clear()
    assert server.requests == []
    assert client.chat.completions.create(model="m", messages=[user("hi")]).id == "chatcmpl-fake-2"


def test_unknown_paths_and_bad_bodies_get_openai_errors(server: FakeModelServer) -> None:
    def call(path: str, data: bytes | None) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(server.base_url + path, data=data, method="POST" if data else "GET")
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    status, body = call("/nope", b"{}")
    assert (status, body["error"]["code"]) == (404, "unknown_url")
    status, body = call("/chat/completions", b"not json")
    assert (status, body["error"]["type"]) == (400, "invalid_request_error")
    status, body = call("/embeddings", json.dumps({"model": "m", "input": [{"bad": 1}]}).encode())
    assert (status, body["error"]["param"]) == (400, "input")
    assert [r.path for r in server.requests] == ["/v1/nope", "/v1/chat/completions", "/v1/embeddings"]


def test_lifecycle() -> None:
    fake = FakeModelServer()
    with pytest.raises(RuntimeError):
        _ = fake.base_url
    assert fake.start() is fake
    assert fake.base_url.startswith("http://127.0.0.1:")
    assert fake.base_url.endswith("/v1")
    fake.stop()
    fake.stop()  # idempotent
