"""A streamed call's span ends exactly once, however the caller leaves the stream.

The fake server's ``-chunks-5`` model streams "Hello from the fake model." as exactly five
content chunks ("Hello ", "from ", "the f", "ake m", "odel.") and then a finish chunk.
"""

from __future__ import annotations

import gc
import json
from typing import Any

import openai
import pytest
from opentelemetry.trace import StatusCode

from otel_llm_audit import semconv
from otel_llm_audit.demo.fake_server import HELLO_ANSWER
from otel_llm_audit.emitter import handoff

MODEL = "gpt-4o-mini-chunks-5"
PIECES = ["Hello ", "from ", "the f", "ake m", "odel."]
MESSAGES = [{"role": "user", "content": "Hi"}]

_base_client = pytest.importorskip("openai._base_client")
HTTP = getattr(_base_client, "httpx2", None) or _base_client.httpx


def _output(span: Any) -> Any:
    return json.loads(span.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])


def _check_partial(audit: Any, received: int) -> Any:
    """The one span of an abandoned stream: the text received so far, no finish."""
    span = audit.only_llm_span()
    assert span.name == f"chat {MODEL}"
    assert span.status.status_code is StatusCode.UNSET
    assert _output(span) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "".join(PIECES[:received])}],
            "finish_reason": "error",
        }
    ]
    assert list(span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["error"]
    assert span.attributes[semconv.GEN_AI_RESPONSE_ID] == "chatcmpl-fake-1"
    assert span.attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert not handoff.is_claimed(span)
    return span


def _check_complete(audit: Any) -> Any:
    span = audit.only_llm_span()
    assert span.status.status_code is StatusCode.UNSET
    assert _output(span) == [
        {"role": "assistant", "parts": [{"type": "text", "content": HELLO_ANSWER}], "finish_reason": "stop"}
    ]
    assert list(span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]
    assert not handoff.is_claimed(span)
    return span


def _take(stream: Any, count: int) -> list[str]:
    texts = []
    for chunk in stream:
        texts.append(chunk.choices[0].delta.content)
        if len(texts) == count:
            break
    return texts


async def _atake(stream: Any, count: int) -> list[str]:
    texts = []
    async for chunk in stream:
        texts.append(chunk.choices[0].delta.content)
        if len(texts) == count:
            break
    return texts


def _midstream_error_type(exc: BaseException) -> str:
    """openai 3.x wraps the dropped connection in APIConnectionError; 1.x lets httpx's error through."""
    if isinstance(exc, openai.APIConnectionError):
        return "openai.APIConnectionError"
    return f"{HTTP.__name__}.{type(exc).__name__}"


# ----------------------------------------------------------------------------- sync


def test_full_drain(audit: Any, client: Any) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    assert [c.choices[0].delta.content for c in chunks[:5]] == PIECES
    assert len(chunks) == 6
    _check_complete(audit)


def test_break_then_close(audit: Any, client: Any) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    assert _take(stream, 2) == PIECES[:2]
    assert audit.llm_spans() == []  # a paused stream is not a finished call
    stream.close()
    stream.close()
    _check_partial(audit, 2)


def test_break_then_drop_references(audit: Any, client: Any) -> None:
    def consume_two() -> list[str]:
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        return _take(stream, 2)

    assert consume_two() == PIECES[:2]
    gc.collect()
    _check_partial(audit, 2)


def test_with_block_exit(audit: Any, client: Any) -> None:
    with client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as stream:
        assert isinstance(stream, openai.Stream)
        assert _take(stream, 3) == PIECES[:3]
        assert audit.llm_spans() == []
    _check_partial(audit, 3)


def test_with_block_full_drain(audit: Any, client: Any) -> None:
    with client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as stream:
        assert len(list(stream)) == 6
    _check_complete(audit)


def test_exception_mid_stream(audit: Any, client: Any) -> None:
    stream = client.chat.completions.create(model="error-midstream", messages=MESSAGES, stream=True)
    received: list[Any] = []
    with pytest.raises((openai.APIConnectionError, HTTP.RemoteProtocolError)) as raised:
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 2
    span = audit.only_llm_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == _midstream_error_type(raised.value)
    assert [e.name for e in span.events] == ["exception"]
    assert span.events[0].attributes[semconv.EXCEPTION_MESSAGE] == str(raised.value)
    # What arrived before the drop is still audited.
    assert _output(span) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello fr"}], "finish_reason": "error"}
    ]
    assert not handoff.is_claimed(span)


def test_streaming_response_block_left_early(audit: Any, client: Any) -> None:
    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=MESSAGES, stream=True
    ) as response:
        assert _take(response.parse(), 1) == PIECES[:1]
        assert audit.llm_spans() == []
    _check_partial(audit, 1)


def test_streaming_response_block_never_parsed(audit: Any, client: Any) -> None:
    with client.chat.completions.with_streaming_response.create(model=MODEL, messages=MESSAGES, stream=True):
        pass
    span = audit.only_llm_span()
    assert span.attributes[semconv.GEN_AI_REQUEST_STREAM] is True
    assert semconv.GEN_AI_OUTPUT_MESSAGES not in span.attributes
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in span.attributes
    assert not handoff.is_claimed(span)


# ----------------------------------------------------------------------------- async


async def test_async_full_drain(audit: Any, async_client: Any) -> None:
    stream = await async_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    assert len([c async for c in stream]) == 6
    _check_complete(audit)


@pytest.mark.parametrize("method", ["close", "aclose"])
async def test_async_break_then_close(audit: Any, async_client: Any, method: str) -> None:
    stream = await async_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    assert await _atake(stream, 2) == PIECES[:2]
    assert audit.llm_spans() == []
    await getattr(stream, method)()
    await stream.close()
    _check_partial(audit, 2)


async def test_async_with_block_exit(audit: Any, async_client: Any) -> None:
    async with await async_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as stream:
        assert isinstance(stream, openai.AsyncStream)
        assert await _atake(stream, 4) == PIECES[:4]
        assert audit.llm_spans() == []
    _check_partial(audit, 4)


async def test_async_break_then_drop_references(audit: Any, async_client: Any) -> None:
    async def consume_two() -> list[str]:
        stream = await async_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        return await _atake(stream, 2)

    assert await consume_two() == PIECES[:2]
    gc.collect()
    _check_partial(audit, 2)


async def test_async_exception_mid_stream(audit: Any, async_client: Any) -> None:
    stream = await async_client.chat.completions.create(model="error-midstream", messages=MESSAGES, stream=True)
    with pytest.raises((openai.APIConnectionError, HTTP.RemoteProtocolError)) as raised:
        async for _chunk in stream:
            pass
    span = audit.only_llm_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == _midstream_error_type(raised.value)
    assert not handoff.is_claimed(span)


async def test_async_streaming_response_block_left_early(audit: Any, async_client: Any) -> None:
    async with async_client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=MESSAGES, stream=True
    ) as response:
        assert await _atake(await response.parse(), 1) == PIECES[:1]
        assert audit.llm_spans() == []
    _check_partial(audit, 1)
