"""The Google Gen AI instrumentor against the real ``google-genai`` SDK and the loopback fake server.

Runs on the oldest (1.0) and newest (3.x) supported SDK lines, on both backends (the Gemini API
and Vertex AI): ``models.generate_content``, ``generate_content_stream`` and ``embed_content``,
sync and ``client.aio``, successful and failing, streams drained, broken off, closed and
garbage collected. Every test drives the SDK through its real HTTP stack.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from genai_helpers import PROVIDERS, close, content, make_client, only, ours
from google.genai import errors, types
from opentelemetry.trace import StatusCode

from otel_llm_audit import _guard, semconv
from otel_llm_audit.demo import fake_server as fs
from otel_llm_audit.demo.fake_server import FakeModelServer
from otel_llm_audit.instrumentation.google_genai import GoogleGenAIInstrumentor, _capture

MODEL = "gemini-2.5-flash"
VERSION = "gemini-2.5-flash-001"  # the fake server's modelVersion
USER_TEXT = "Hi there"
SYSTEM = "Be brief."
HELLO_OUT = len(fs.HELLO_ANSWER) // 4 + 1
THOUGHTS = len(fs.THINKING_TEXT) // 4 + 1
FLASH_IN, FLASH_CACHED, FLASH_OUT = 0.30, 0.03, 2.50  # gemini-2.5-flash, USD per million tokens
HAS_THINKING_LEVEL = "thinking_level" in types.ThinkingConfig.model_fields


def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"18°C and sunny in {city}"


# google-genai 1.0 reads AFC signatures from __annotations__ and cannot parse postponed (string) ones.
get_weather.__annotations__ = {"city": str, "return": str}


WEATHER_DECLARATION = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]},
}


def _base_attributes(backend: str, server: FakeModelServer, *, stream: bool = False) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: "generate_content",
        semconv.GEN_AI_PROVIDER_NAME: PROVIDERS[backend],
        semconv.GEN_AI_REQUEST_MODEL: MODEL,
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: server.port,
    }
    if stream:
        attrs[semconv.GEN_AI_REQUEST_STREAM] = True
    return attrs


def _hello(finish: str = "stop") -> list[dict[str, Any]]:
    return [{"role": "assistant", "parts": [{"type": "text", "content": fs.HELLO_ANSWER}], "finish_reason": finish}]


def _user(text: str = USER_TEXT) -> list[dict[str, Any]]:
    return [{"role": "user", "parts": [{"type": "text", "content": text}]}]


# ----------------------------------------------------------------------------- generate_content


def test_generate_content_records_the_call(audit: Any, client: Any, backend: str, fake_server: FakeModelServer) -> None:
    config = types.GenerateContentConfig(
        system_instruction=SYSTEM,
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        max_output_tokens=64,
        stop_sequences=["###"],
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.2,
    )
    response = client.models.generate_content(model=MODEL, contents=USER_TEXT, config=config)
    assert response.text == fs.HELLO_ANSWER
    span = only(audit)
    assert span.name == f"generate_content {MODEL}"
    assert span.status.status_code is StatusCode.UNSET
    prompt = len(USER_TEXT + SYSTEM) // 4 + 1
    expected = {
        **_base_attributes(backend, fake_server),
        semconv.GEN_AI_REQUEST_TEMPERATURE: 0.2,
        semconv.GEN_AI_REQUEST_TOP_P: 0.9,
        semconv.GEN_AI_REQUEST_TOP_K: 40,
        semconv.GEN_AI_REQUEST_MAX_TOKENS: 64,
        semconv.GEN_AI_REQUEST_STOP_SEQUENCES: ["###"],
        semconv.GEN_AI_REQUEST_SEED: 7,
        semconv.GEN_AI_REQUEST_PRESENCE_PENALTY: 0.1,
        semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY: 0.2,
        semconv.GEN_AI_RESPONSE_ID: "fake-gemini-1",
        semconv.GEN_AI_RESPONSE_MODEL: VERSION,
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["STOP"],
        semconv.GEN_AI_USAGE_INPUT_TOKENS: prompt,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: HELLO_OUT,
    }
    attrs = {k: list(v) if isinstance(v, tuple) else v for k, v in span.attributes.items()}
    assert {k: attrs.get(k) for k in expected} == expected
    assert content(span, semconv.GEN_AI_SYSTEM_INSTRUCTIONS) == [{"type": "text", "content": SYSTEM}]
    assert content(span, semconv.GEN_AI_INPUT_MESSAGES) == _user()
    assert content(span, semconv.GEN_AI_OUTPUT_MESSAGES) == _hello()
    assert attrs[semconv.LLM_AUDIT_COST_USD] == pytest.approx((prompt * FLASH_IN + HELLO_OUT * FLASH_OUT) / 1e6)
    assert semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS not in attrs
    assert semconv.GEN_AI_TOOL_DEFINITIONS not in attrs


def test_result_is_the_sdks_own_and_equal_to_an_uninstrumented_call(
    audit: Any, client: Any, backend: str, fake_server: FakeModelServer
) -> None:
    ignore = {"response_id", "sdk_http_response", "create_time"}
    recorded = client.models.generate_content(model=MODEL, contents=USER_TEXT)
    instrumentor = audit.extra_instrumentors[0]
    instrumentor.uninstrument()
    plain = client.models.generate_content(model=MODEL, contents=USER_TEXT)
    instrumentor.instrument(tracer_provider=audit.tracer_provider, meter_provider=audit.meter_provider)
    assert type(recorded) is type(plain) is types.GenerateContentResponse
    assert recorded.model_dump(exclude=ignore) == plain.model_dump(exclude=ignore)
    assert len(ours(audit)) == 1


def test_cached_content_and_thoughts_follow_the_conventions_and_the_price_table(
    audit: Any, client: Any, backend: str
) -> None:
    config = types.GenerateContentConfig(
        cached_content="cachedContents/fake-cache-1", thinking_config=types.ThinkingConfig(include_thoughts=True)
    )
    response = client.models.generate_content(model=MODEL, contents=USER_TEXT, config=config)
    usage = response.usage_metadata
    assert usage.cached_content_token_count == 100
    span = only(audit)
    attrs = span.attributes
    prompt = len(USER_TEXT) // 4 + 1 + 100  # Google's promptTokenCount already includes the cache
    assert attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] == prompt == usage.prompt_token_count
    assert attrs[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 100
    assert attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == HELLO_OUT + THOUGHTS  # thoughts are output
    assert attrs[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == THOUGHTS
    assert content(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": fs.THINKING_TEXT},
                {"type": "text", "content": fs.HELLO_ANSWER},
            ],
            "finish_reason": "stop",
        }
    ]
    expected = ((prompt - 100) * FLASH_IN + 100 * FLASH_CACHED + (HELLO_OUT + THOUGHTS) * FLASH_OUT) / 1e6
    assert attrs[semconv.LLM_AUDIT_COST_USD] == pytest.approx(expected)


@pytest.mark.skipif(not HAS_THINKING_LEVEL, reason="ThinkingConfig.thinking_level arrived after google-genai 1.0")
def test_thinking_level_is_the_reasoning_level(audit: Any, client: Any) -> None:
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_level="LOW"))
    client.models.generate_content(model=MODEL, contents=USER_TEXT, config=config)
    assert only(audit).attributes[semconv.GEN_AI_REQUEST_REASONING_LEVEL] == "LOW"


def test_candidates_json_output_and_media_parts(audit: Any, client: Any, backend: str) -> None:
    config = types.GenerateContentConfig(candidate_count=2, response_mime_type="application/json")
    contents = [
        types.Content(
            role="user",
            parts=[
                types.Part(text="Describe these."),
                types.Part(inline_data=types.Blob(mime_type="image/png", data=b"\x89PNG-secret-bytes")),
                types.Part(file_data=types.FileData(mime_type="application/pdf", file_uri="gs://bucket/report.pdf")),
            ],
        )
    ]
    response = client.models.generate_content(model=MODEL, contents=contents, config=config)
    assert len(response.candidates) == 2
    span = only(audit)
    attrs = span.attributes
    assert attrs[semconv.GEN_AI_REQUEST_CHOICE_COUNT] == 2
    assert attrs[semconv.GEN_AI_OUTPUT_TYPE] == "json"
    assert tuple(attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("STOP", "STOP")
    answer = [{"role": "assistant", "parts": [{"type": "text", "content": fs.JSON_ANSWER}], "finish_reason": "stop"}]
    assert content(span, semconv.GEN_AI_OUTPUT_MESSAGES) == answer * 2
    assert content(span, semconv.GEN_AI_INPUT_MESSAGES) == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "Describe these."},
                {"type": "blob", "modality": "image", "mime_type": "image/png"},
                {
                    "type": "uri",
                    "modality": "document",
                    "mime_type": "application/pdf",
                    "uri": "gs://bucket/report.pdf",
                },
            ],
        }
    ]
    assert "secret" not in str(dict(attrs)) and "UE5H" not in str(dict(attrs))  # no bytes, raw or base64


def test_tool_round_trip_records_definitions_calls_and_results(audit: Any, client: Any) -> None:
    tools = [types.Tool(function_declarations=[types.FunctionDeclaration(**WEATHER_DECLARATION)])]
    config = types.GenerateContentConfig(tools=tools)
    question = types.Content(role="user", parts=[types.Part(text="Weather in Paris?")])
    first = client.models.generate_content(model=MODEL, contents=[question], config=config)
    call = first.candidates[0].content.parts[0].function_call
    assert call.name == "get_weather"
    reply = types.Part.from_function_response(name="get_weather", response={"result": "18°C and sunny"})
    history = [question, first.candidates[0].content, types.Content(role="user", parts=[reply])]
    second = client.models.generate_content(model=MODEL, contents=history, config=config)
    assert second.text == fs.WEATHER_ANSWER
    asked, answered = ours(audit)
    assert content(asked, semconv.GEN_AI_TOOL_DEFINITIONS) == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": WEATHER_DECLARATION["parameters"],
        }
    ]
    tool_call = {"type": "tool_call", "name": "get_weather", "arguments": fs.TOOL_INPUT}
    assert content(asked, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [tool_call], "finish_reason": "tool_call"}
    ]
    assert content(answered, semconv.GEN_AI_INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
        {"role": "assistant", "parts": [tool_call]},
        {
            "role": "user",
            "parts": [{"type": "tool_call_response", "name": "get_weather", "response": {"result": "18°C and sunny"}}],
        },
    ]


def test_automatic_function_calling_is_one_span_per_model_round_trip(audit: Any, client: Any) -> None:
    """AFC runs the Python function and calls the model again inside one ``generate_content``."""
    tracer = audit.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle-request") as parent:
        response = client.models.generate_content(
            model=MODEL, contents="Weather in Paris?", config=types.GenerateContentConfig(tools=[get_weather])
        )
    assert response.text == fs.WEATHER_ANSWER
    asked, answered = ours(audit)
    assert [s.parent.span_id for s in (asked, answered)] == [parent.get_span_context().span_id] * 2
    assert tuple(asked.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("STOP",)
    assert content(asked, semconv.GEN_AI_OUTPUT_MESSAGES)[0]["finish_reason"] == "tool_call"
    sent = content(answered, semconv.GEN_AI_INPUT_MESSAGES)
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[2]["parts"][0]["type"] == "tool_call_response"
    assert sent[2]["parts"][0]["response"] == {"result": "18°C and sunny in Paris"}


def test_traceparent_on_the_wire_carries_our_span(audit: Any, client: Any, fake_server: FakeModelServer) -> None:
    client.models.generate_content(model=MODEL, contents=USER_TEXT)
    span = only(audit)
    _, trace_id, span_id, _ = fake_server.requests[-1].headers["traceparent"].split("-")
    assert trace_id == f"{span.context.trace_id:032x}"
    assert span_id == f"{span.context.span_id:016x}"


@pytest.mark.parametrize("way", ["stream", "async", "async_stream", "through_http_options"])
def test_traceparent_on_every_kind_of_call(
    audit: Any, client: Any, fake_server: FakeModelServer, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    from otel_llm_audit.instrumentation.google_genai import _wrappers

    if way == "through_http_options":  # where _build_request could not be wrapped
        monkeypatch.setattr(_wrappers.ACTIVE, "headers_on_build", False)
        client.models.generate_content(model=MODEL, contents=USER_TEXT)
    elif way == "stream":
        list(client.models.generate_content_stream(model=f"{MODEL}-chunks-3", contents=USER_TEXT))
    else:

        async def run() -> None:
            if way == "async":
                await client.aio.models.generate_content(model=MODEL, contents=USER_TEXT)
            else:
                stream = await client.aio.models.generate_content_stream(model=f"{MODEL}-chunks-3", contents=USER_TEXT)
                async for _ in stream:
                    pass

        asyncio.run(run())
    span = only(audit)
    assert fake_server.requests[-1].headers["traceparent"] == (
        f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01"
    )


def test_a_callers_own_traceparent_wins(audit: Any, client: Any, fake_server: FakeModelServer) -> None:
    mine = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    config = types.GenerateContentConfig(http_options=types.HttpOptions(headers={"traceparent": mine}))
    client.models.generate_content(model=MODEL, contents=USER_TEXT, config=config)
    assert fake_server.requests[-1].headers["traceparent"] == mine
    only(audit)


def test_a_callers_own_http_options_are_kept_and_never_changed(
    audit: Any, client: Any, fake_server: FakeModelServer
) -> None:
    options = types.HttpOptions(headers={"x-app": "audit-test"})
    config = types.GenerateContentConfig(http_options=options)
    client.models.generate_content(model=MODEL, contents=USER_TEXT, config=config)
    sent = fake_server.requests[-1].headers
    assert sent["x-app"] == "audit-test" and "traceparent" in sent
    assert options.headers == {"x-app": "audit-test"}


# ----------------------------------------------------------------------------- streams


def test_stream_is_assembled_and_ends_once(audit: Any, client: Any, backend: str, fake_server: FakeModelServer) -> None:
    chunks = list(client.models.generate_content_stream(model=f"{MODEL}-chunks-3", contents=USER_TEXT))
    assert "".join(c.text for c in chunks) == fs.HELLO_ANSWER
    assert len(chunks) == 3
    span = only(audit)
    attrs = dict(span.attributes)
    assert attrs[semconv.GEN_AI_REQUEST_STREAM] is True
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == f"{MODEL}-chunks-3"
    assert attrs[semconv.GEN_AI_RESPONSE_ID] == "fake-gemini-1"
    assert attrs[semconv.GEN_AI_RESPONSE_MODEL] == f"{MODEL}-chunks-3-001"
    assert tuple(attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("STOP",)
    assert attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] == len(USER_TEXT) // 4 + 1
    assert attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == HELLO_OUT
    assert attrs[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert attrs[semconv.GEN_AI_PROVIDER_NAME] == PROVIDERS[backend]
    assert content(span, semconv.GEN_AI_OUTPUT_MESSAGES) == _hello()
    assert content(span, semconv.GEN_AI_INPUT_MESSAGES) == _user()


def test_stream_with_a_function_call(audit: Any, client: Any) -> None:
    tools = [types.Tool(function_declarations=[types.FunctionDeclaration(**WEATHER_DECLARATION)])]
    chunks = list(
        client.models.generate_content_stream(
            model=MODEL, contents="Weather?", config=types.GenerateContentConfig(tools=tools)
        )
    )
    assert chunks[-1].candidates[0].content.parts[0].function_call.name == "get_weather"
    span = only(audit)
    assert content(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "name": "get_weather", "arguments": fs.TOOL_INPUT}],
            "finish_reason": "tool_call",
        }
    ]


@pytest.mark.parametrize("how", ["break", "close", "garbage"])
def test_stream_broken_off_ends_the_span_once(audit: Any, client: Any, how: str) -> None:
    stream = client.models.generate_content_stream(model=f"{MODEL}-chunks-5", contents=USER_TEXT)
    received = [next(iter(stream)).text]
    if how == "close":
        stream.close()
        stream.close()
    elif how == "break":
        for chunk in stream:
            received.append(chunk.text)
            break
    del stream
    gc.collect()
    span = only(audit)
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes[semconv.GEN_AI_REQUEST_STREAM] is True
    assert semconv.GEN_AI_RESPONSE_FINISH_REASONS not in span.attributes  # the last chunk never arrived
    assert content(span, semconv.GEN_AI_OUTPUT_MESSAGES)[0]["parts"][0]["content"] == "".join(received)


@pytest.mark.parametrize(
    "model",
    [
        "error-disconnect",
        pytest.param(
            "error-midstream",
            marks=pytest.mark.skipif(
                not hasattr(errors.APIError, "raise_error"),
                reason="google-genai 1.0 hands an error frame in a stream to the caller as a chunk",
            ),
        ),
    ],
)
def test_stream_failing_midway_is_an_error_span_and_reaches_the_caller(audit: Any, client: Any, model: str) -> None:
    received = []
    with pytest.raises(Exception):  # noqa: B017 - whatever the SDK and its HTTP stack raise
        for chunk in client.models.generate_content_stream(model=model, contents=USER_TEXT):
            received.append(chunk)
    assert len(received) == 1
    span = only(audit)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] != "content_filter"


# ----------------------------------------------------------------------------- errors and guards


@pytest.mark.parametrize(
    ("status", "name", "exc_type"),
    [(429, "RESOURCE_EXHAUSTED", errors.ClientError), (503, "UNAVAILABLE", errors.ServerError)],
)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_api_error_is_an_error_span_and_the_sdk_exception_is_untouched(
    audit: Any, client: Any, status: int, name: str, exc_type: type[BaseException], stream: bool
) -> None:
    with pytest.raises(exc_type) as raised:
        if stream:
            list(client.models.generate_content_stream(model=f"error-{status}", contents=USER_TEXT))
        else:
            client.models.generate_content(model=f"error-{status}", contents=USER_TEXT)
    assert raised.value.code == status
    span = only(audit)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description.startswith(f"{status} {name}")  # the HTTP status and Google's status
    expected_type = f"google.genai.errors.{exc_type.__name__}"
    assert span.attributes[semconv.ERROR_TYPE] == expected_type
    (event,) = span.events
    assert event.attributes[semconv.EXCEPTION_TYPE] == expected_type
    assert semconv.LLM_AUDIT_COST_USD not in span.attributes


def test_a_bug_of_ours_at_the_start_never_reaches_the_application(
    audit: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("capture bug")

    monkeypatch.setattr(_capture, "classify", boom)
    response = client.models.generate_content(model=MODEL, contents=USER_TEXT)
    assert response.text == fs.HELLO_ANSWER
    assert "".join(c.text for c in client.models.generate_content_stream(model=MODEL, contents=USER_TEXT))
    assert ours(audit) == []  # nothing could be started: the calls went through unrecorded
    assert _guard.internal_error_counts()["google_genai.start"] == 2


def test_a_bug_of_ours_reading_the_response_leaves_a_span_and_the_result(
    audit: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("capture bug")

    monkeypatch.setattr(_capture, "resolve", boom)
    monkeypatch.setattr(_capture, "prompt_block_of", boom)
    response = client.models.generate_content(model=MODEL, contents=USER_TEXT)
    assert response.text == fs.HELLO_ANSWER
    chunks = list(client.models.generate_content_stream(model=MODEL, contents=USER_TEXT))
    assert "".join(c.text for c in chunks) == fs.HELLO_ANSWER
    spans = ours(audit)
    assert len(spans) == 2
    assert all(s.attributes[semconv.GEN_AI_REQUEST_MODEL] == MODEL for s in spans)
    assert all(s.status.status_code is StatusCode.UNSET for s in spans)
    counts = _guard.internal_error_counts()
    assert counts["capture.resolve"] == 2
    assert counts["google_genai.finish"] == 1
    assert counts["google_genai.chunk"] == 1


def test_token_counting_is_not_a_model_call(audit: Any, client: Any) -> None:
    assert client.models.count_tokens(model=MODEL, contents=USER_TEXT).total_tokens > 0
    assert ours(audit) == []


def test_uninstrumented_records_nothing(audit: Any, client: Any) -> None:
    audit.extra_instrumentors[0].uninstrument()
    client.models.generate_content(model=MODEL, contents=USER_TEXT)
    assert ours(audit) == []


# ----------------------------------------------------------------------------- async


def test_async_generate_content_and_stream(audit: Any, backend: str, fake_server: FakeModelServer) -> None:
    client = make_client(fake_server, backend)

    async def run() -> tuple[str, str, int]:
        created = await client.aio.models.generate_content(model=MODEL, contents=USER_TEXT)
        stream = await client.aio.models.generate_content_stream(model=f"{MODEL}-chunks-3", contents=USER_TEXT)
        text = "".join([chunk.text async for chunk in stream])
        broken = await client.aio.models.generate_content_stream(model=f"{MODEL}-chunks-5", contents=USER_TEXT)
        count = 0
        async for _ in broken:
            count += 1
            break
        return created.text, text, count

    created, streamed, count = asyncio.run(run())
    close(client)
    gc.collect()
    assert created == streamed == fs.HELLO_ANSWER
    assert count == 1
    plain, drained, broken = ours(audit)
    assert semconv.GEN_AI_REQUEST_STREAM not in plain.attributes
    assert drained.attributes[semconv.GEN_AI_REQUEST_STREAM] is broken.attributes[semconv.GEN_AI_REQUEST_STREAM] is True
    for span in (plain, drained):
        assert span.attributes[semconv.GEN_AI_PROVIDER_NAME] == PROVIDERS[backend]
        assert content(span, semconv.GEN_AI_OUTPUT_MESSAGES) == _hello()
        assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == HELLO_OUT
    assert semconv.GEN_AI_RESPONSE_FINISH_REASONS not in broken.attributes


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_async_api_error_is_an_error_span(audit: Any, backend: str, fake_server: FakeModelServer, stream: bool) -> None:
    client = make_client(fake_server, backend)

    async def run() -> None:
        if stream:
            async for _ in await client.aio.models.generate_content_stream(model="error-429", contents=USER_TEXT):
                pass
        else:
            await client.aio.models.generate_content(model="error-429", contents=USER_TEXT)

    with pytest.raises(errors.ClientError) as raised:
        asyncio.run(run())
    close(client)
    assert raised.value.code == 429
    span = only(audit)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "google.genai.errors.ClientError"


def test_async_parent_is_the_callers_span(audit: Any, backend: str, fake_server: FakeModelServer) -> None:
    client = make_client(fake_server, backend)
    tracer = audit.tracer_provider.get_tracer("app")

    async def run() -> int:
        with tracer.start_as_current_span("async-request") as parent:
            await client.aio.models.generate_content(model=MODEL, contents=USER_TEXT)
            async for _ in await client.aio.models.generate_content_stream(model=MODEL, contents=USER_TEXT):
                pass
            return int(parent.get_span_context().span_id)

    parent_id = asyncio.run(run())
    close(client)
    assert [s.parent.span_id for s in ours(audit)] == [parent_id, parent_id]


# ----------------------------------------------------------------------------- embeddings


@pytest.mark.parametrize("model", ["text-embedding-004", "gemini-embedding-001"])
def test_embed_content(audit: Any, client: Any, backend: str, fake_server: FakeModelServer, model: str) -> None:
    config = types.EmbedContentConfig(output_dimensionality=16)
    result = client.models.embed_content(model=model, contents=["first text", "second"], config=config)
    assert [len(e.values) for e in result.embeddings] == [16, 16]
    span = only(audit)
    assert span.name == f"embeddings {model}"
    attrs = dict(span.attributes)
    assert attrs[semconv.GEN_AI_OPERATION_NAME] == "embeddings"
    assert attrs[semconv.GEN_AI_PROVIDER_NAME] == PROVIDERS[backend]
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == model
    assert attrs[semconv.SERVER_PORT] == fake_server.port
    assert attrs[semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 16
    method = fake_server.requests[-1].path.rsplit(":", 1)[1]
    if backend == "gemini":
        assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in attrs  # batchEmbedContents reports no usage
    elif method == "predict":  # Vertex text-embedding models: statistics.token_count per instance
        assert attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] == (len("first text") // 4 + 1) + (len("second") // 4 + 1)
    else:  # Vertex Gemini embedding models (newer SDKs): usageMetadata
        assert attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] > 0


def test_async_embed_content(audit: Any, backend: str, fake_server: FakeModelServer) -> None:
    client = make_client(fake_server, backend)

    async def run() -> int:
        result = await client.aio.models.embed_content(model="text-embedding-004", contents="one text")
        return len(result.embeddings[0].values)

    assert asyncio.run(run()) == fs.DEFAULT_EMBEDDING_DIMENSIONS
    close(client)
    span = only(audit)
    assert span.attributes[semconv.GEN_AI_OPERATION_NAME] == "embeddings"
    assert span.attributes[semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == fs.DEFAULT_EMBEDDING_DIMENSIONS


def test_embedding_error_is_an_error_span(audit: Any, client: Any) -> None:
    with pytest.raises(errors.ClientError):
        client.models.embed_content(model="error-400", contents="x")
    span = only(audit)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.GEN_AI_OPERATION_NAME] == "embeddings"


# ----------------------------------------------------------------------------- masking and set-up


def test_masked_by_default(audit_google: Any, fake_server: FakeModelServer) -> None:
    audit = audit_google(content="masked")
    assert audit.pipeline.masking.wait_ready(60)
    client = make_client(fake_server, "gemini")
    client.models.generate_content(model=MODEL, contents="Mail me at jane.doe@example.com")
    close(client)
    span = only(audit)
    assert span.attributes[semconv.LLM_AUDIT_CONTENT_MODE] == "masked"
    assert "jane.doe@example.com" not in span.attributes[semconv.GEN_AI_INPUT_MESSAGES]


def test_clients_created_before_instrument_are_audited(make_audit: Any, fake_server: FakeModelServer) -> None:
    client = make_client(fake_server, "vertex")
    audit = make_audit(content="raw").add_instrumentor(GoogleGenAIInstrumentor())
    client.models.generate_content(model=MODEL, contents=USER_TEXT)
    close(client)
    assert only(audit).attributes[semconv.GEN_AI_PROVIDER_NAME] == "gcp.vertex_ai"


def test_model_resource_names_become_model_ids() -> None:
    assert _capture.model_of("models/gemini-2.5-flash") == "gemini-2.5-flash"
    assert _capture.model_of("publishers/google/models/gemini-2.5-pro") == "gemini-2.5-pro"
    assert _capture.model_of("projects/p/locations/l/publishers/google/models/gemini-2.0-flash-001") == (
        "gemini-2.0-flash-001"
    )
    assert _capture.model_of("tunedModels/my-tuned-1") == "tunedModels/my-tuned-1"
    assert _capture.model_of("projects/p/locations/l/endpoints/123") == "endpoints/123"
    assert _capture.classify("models/x:countTokens", {}) is None
    assert (
        _capture.classify("publishers/google/models/imagen-3.0:predict", {"instances": [{"prompt": "a cat"}]}) is None
    )
    assert _capture.classify("cachedContents", {}) is None
