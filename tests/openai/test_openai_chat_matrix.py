"""Chat Completions through every way the SDK can be called, against the loopback fake server.

sync / async x non-streaming / streaming x ``create`` / ``with_raw_response`` /
``with_streaming_response`` x success / HTTP 500 / HTTP 429. Each case checks the whole span
(exact attribute set and values), and that the caller got the SDK's own objects and
exceptions back.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import openai
import pytest
from openai._legacy_response import LegacyAPIResponse
from openai._response import APIResponse, AsyncAPIResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from opentelemetry.trace import SpanKind, StatusCode

from otel_llm_audit import semconv
from otel_llm_audit._version import __version__
from otel_llm_audit.demo.fake_server import HELLO_ANSWER, SYSTEM_FINGERPRINT
from otel_llm_audit.processing.cost import PriceTable

#: The HTTP library this openai is built on: httpx (1.x, 2.x) or httpx2 (3.x).
_base_client = pytest.importorskip("openai._base_client")
HTTP = getattr(_base_client, "httpx2", None) or _base_client.httpx

SYSTEM = "You are terse."
USER = "Say hello."
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
#: The fake server's rule: prompt = all text characters // 4 + 1 = (14 + 10) // 4 + 1.
PROMPT_TOKENS = 7
#: completion = len("Hello from the fake model.") // 4 + 1 = 26 // 4 + 1.
COMPLETION_TOKENS = 7
#: 7 four-character content pieces, one finish chunk, one usage chunk.
STREAM_CHUNKS = 9
RESPONSE_MODEL = "gpt-4o-mini-2026-01-01"

EXPECTED_INPUT = [
    {"role": "system", "parts": [{"type": "text", "content": SYSTEM}]},
    {"role": "user", "parts": [{"type": "text", "content": USER}]},
]
EXPECTED_OUTPUT = [{"role": "assistant", "parts": [{"type": "text", "content": HELLO_ANSWER}], "finish_reason": "stop"}]

ERRORS = {
    "error-500": (openai.InternalServerError, "openai.InternalServerError", 500),
    "error-429": (openai.RateLimitError, "openai.RateLimitError", 429),
}


def _request(model: str, stream: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": model, "messages": MESSAGES}
    if stream:
        kwargs.update(stream=True, stream_options={"include_usage": True})
    return kwargs


def _check_completion(result: Any) -> None:
    assert type(result) is ChatCompletion
    assert result.id == "chatcmpl-fake-1"
    assert result.choices[0].message.content == HELLO_ANSWER
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)


def _check_stream_object(stream: Any, cls: type) -> None:
    """The SDK's stream, behind our proxy: same class, same helpers, same response."""
    assert isinstance(stream, cls)
    assert callable(stream.close)
    assert hasattr(stream, "__enter__" if cls is openai.Stream else "__aenter__")
    assert isinstance(stream.response, HTTP.Response)
    assert stream.response.status_code == 200
    assert stream.response.headers["x-request-id"] == "req_fake_1"


def _check_chunks(chunks: list[Any]) -> None:
    assert len(chunks) == STREAM_CHUNKS
    assert all(type(c) is ChatCompletionChunk for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == HELLO_ANSWER
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == PROMPT_TOKENS


def _call_sync(client: openai.OpenAI, mode: str, model: str, stream: bool) -> None:
    kwargs = _request(model, stream)
    if mode == "plain":
        result = client.chat.completions.create(**kwargs)
        if stream:
            _check_stream_object(result, openai.Stream)
            _check_chunks(list(result))
        else:
            _check_completion(result)
    elif mode == "with_raw_response":
        raw = client.chat.completions.with_raw_response.create(**kwargs)
        assert isinstance(raw, LegacyAPIResponse)
        assert raw.headers["x-request-id"] == "req_fake_1"
        assert raw.status_code == 200
        parsed = raw.parse()
        if stream:
            _check_stream_object(parsed, openai.Stream)
            _check_chunks(list(parsed))
        else:
            _check_completion(parsed)
            assert raw.parse() is parsed  # the SDK caches; the proxy must not break that
    else:
        with client.chat.completions.with_streaming_response.create(**kwargs) as response:
            assert isinstance(response, APIResponse)
            assert response.headers["x-request-id"] == "req_fake_1"
            parsed = response.parse()
            if stream:
                _check_stream_object(parsed, openai.Stream)
                _check_chunks(list(parsed))
            else:
                _check_completion(parsed)


async def _call_async(client: openai.AsyncOpenAI, mode: str, model: str, stream: bool) -> None:
    kwargs = _request(model, stream)
    if mode == "plain":
        result = await client.chat.completions.create(**kwargs)
        if stream:
            _check_stream_object(result, openai.AsyncStream)
            _check_chunks([c async for c in result])
        else:
            _check_completion(result)
    elif mode == "with_raw_response":
        raw = await client.chat.completions.with_raw_response.create(**kwargs)
        assert isinstance(raw, LegacyAPIResponse)
        assert raw.headers["x-request-id"] == "req_fake_1"
        parsed = raw.parse()
        if stream:
            _check_stream_object(parsed, openai.AsyncStream)
            _check_chunks([c async for c in parsed])
        else:
            _check_completion(parsed)
    else:
        async with client.chat.completions.with_streaming_response.create(**kwargs) as response:
            assert isinstance(response, AsyncAPIResponse)
            assert response.headers["x-request-id"] == "req_fake_1"
            parsed = await response.parse()
            if stream:
                _check_stream_object(parsed, openai.AsyncStream)
                _check_chunks([c async for c in parsed])
            else:
                _check_completion(parsed)


@functools.lru_cache(maxsize=1)
def _prices() -> PriceTable:
    return PriceTable.load()


def _expected_cost() -> Any:
    cost = _prices().cost(
        "openai",
        RESPONSE_MODEL,
        input_tokens=PROMPT_TOKENS,
        output_tokens=COMPLETION_TOKENS,
        cache_read_tokens=0,
        cache_write_tokens=None,
        reasoning_tokens=0,
    )
    assert cost is not None and cost.total_usd > 0
    return cost


MODES = ["plain", "with_raw_response", "with_streaming_response"]
OUTCOMES = ["success", "error-500", "error-429"]


def _model(outcome: str) -> str:
    return "gpt-4o-mini" if outcome == "success" else outcome


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_chat_sync(audit: Any, fake_server: Any, client: Any, stream: bool, mode: str, outcome: str) -> None:
    model = _model(outcome)
    if outcome == "success":
        _call_sync(client, mode, model, stream)
        _check_span(audit, fake_server, model, stream, None)
    else:
        with pytest.raises(ERRORS[outcome][0]) as raised:
            _call_sync(client, mode, model, stream)
        _check_span(audit, fake_server, model, stream, raised.value)


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
async def test_chat_async(
    audit: Any, fake_server: Any, async_client: Any, stream: bool, mode: str, outcome: str
) -> None:
    model = _model(outcome)
    if outcome == "success":
        await _call_async(async_client, mode, model, stream)
        _check_span(audit, fake_server, model, stream, None)
    else:
        with pytest.raises(ERRORS[outcome][0]) as raised:
            await _call_async(async_client, mode, model, stream)
        _check_span(audit, fake_server, model, stream, raised.value)


def _check_span(audit: Any, fake_server: Any, model: str, stream: bool, exc: Any) -> None:
    outcome = "success" if exc is None else model
    if exc is not None:
        exc_class, error_type, status = ERRORS[outcome]
        assert type(exc) is exc_class  # the SDK's own class: not wrapped, not re-raised as ours
        assert exc.status_code == status
        assert exc.response.headers["x-request-id"] == "req_fake_1"
        assert exc.body == {
            "message": f"Fake error {status} scripted by model '{model}'.",
            "type": "server_error" if status == 500 else "requests",
            "param": None,
            "code": "server_error" if status == 500 else "rate_limit_exceeded",
        }

    assert len(fake_server.requests) == 1  # max_retries=0 and no extra request of ours
    span = audit.only_llm_span()
    assert span.name == f"chat {model}"
    assert span.kind is SpanKind.CLIENT
    assert span.parent is None
    # Sequences come back as tuples or lists depending on who set them; compare as lists.
    attrs = {k: list(v) if isinstance(v, tuple) else v for k, v in span.attributes.items()}

    expected: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_MODEL: model,
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: fake_server.port,
        semconv.LLM_AUDIT_SDK_VERSION: __version__,
        semconv.OPENAI_API_TYPE: "chat_completions",
        semconv.LLM_AUDIT_CONTENT_MODE: "raw",
        semconv.GEN_AI_INPUT_MESSAGES: EXPECTED_INPUT,
    }
    if stream:
        expected[semconv.GEN_AI_REQUEST_STREAM] = True

    if outcome == "success":
        cost = _expected_cost()
        expected.update(
            {
                semconv.GEN_AI_RESPONSE_ID: "chatcmpl-fake-1",
                semconv.GEN_AI_RESPONSE_MODEL: RESPONSE_MODEL,
                semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
                semconv.OPENAI_RESPONSE_SERVICE_TIER: "default",
                semconv.OPENAI_RESPONSE_SYSTEM_FINGERPRINT: SYSTEM_FINGERPRINT,
                semconv.GEN_AI_USAGE_INPUT_TOKENS: PROMPT_TOKENS,
                semconv.GEN_AI_USAGE_OUTPUT_TOKENS: COMPLETION_TOKENS,
                semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0,
                semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
                semconv.GEN_AI_OUTPUT_MESSAGES: EXPECTED_OUTPUT,
                semconv.LLM_AUDIT_COST_USD: cost.total_usd,
                semconv.LLM_AUDIT_COST_INPUT_USD: cost.input_usd,
                semconv.LLM_AUDIT_COST_OUTPUT_USD: cost.output_usd,
                semconv.LLM_AUDIT_PRICING_VERSION: _prices().version,
            }
        )
        assert span.status.status_code is StatusCode.UNSET
        assert list(span.events) == []
        if stream:
            ttfc = attrs.pop(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
            assert isinstance(ttfc, float)
            assert 0 < ttfc <= (span.end_time - span.start_time) / 1e9
        assert attrs[semconv.LLM_AUDIT_COST_USD] > 0
    else:
        exc_class, error_type, status = ERRORS[outcome]
        expected[semconv.ERROR_TYPE] = error_type
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == str(exc)
        assert len(span.events) == 1
        event = span.events[0]
        assert event.name == "exception"
        assert event.attributes[semconv.EXCEPTION_TYPE] == error_type
        assert event.attributes[semconv.EXCEPTION_MESSAGE] == str(exc)
        assert exc_class.__name__ in event.attributes[semconv.EXCEPTION_STACKTRACE]

    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in attrs
    for key in (semconv.GEN_AI_INPUT_MESSAGES, semconv.GEN_AI_OUTPUT_MESSAGES):
        if key in attrs:
            attrs[key] = json.loads(attrs[key])
    assert attrs == expected
