"""The Responses API (create, list input, streaming, ``stream()``, ``parse()``, ``retrieve()``)
and the Chat Completions helpers (``parse()``, ``stream()``)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion
from openai.types.responses import Response
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

from otel_llm_audit import semconv
from otel_llm_audit.demo.fake_server import HELLO_ANSWER, JSON_ANSWER

_base_client = pytest.importorskip("openai._base_client")
HTTP = getattr(_base_client, "httpx2", None) or _base_client.httpx


class Answer(BaseModel):
    answer: str


def _json_attr(span: Any, key: str) -> Any:
    return json.loads(span.attributes[key])


def _chat_helpers(client: Any) -> Any:
    """``chat.completions.parse`` / ``.stream``: under ``client.beta`` before openai 1.92."""
    if hasattr(client.chat.completions, "parse"):
        return client.chat.completions
    return client.beta.chat.completions  # openai 1.66 .. 1.91


HELLO_OUTPUT = [{"role": "assistant", "parts": [{"type": "text", "content": HELLO_ANSWER}], "finish_reason": "stop"}]
JSON_OUTPUT = [{"role": "assistant", "parts": [{"type": "text", "content": JSON_ANSWER}], "finish_reason": "stop"}]


def _check_responses_span(
    span: Any, *, response_id: str, input_tokens: int, output_tokens: int, stream: bool = False
) -> None:
    attrs = span.attributes
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert attrs[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[semconv.GEN_AI_PROVIDER_NAME] == "openai"
    assert attrs[semconv.OPENAI_API_TYPE] == "responses"
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert attrs[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2026-01-01"
    assert attrs[semconv.GEN_AI_RESPONSE_ID] == response_id
    assert attrs[semconv.GEN_AI_RESPONSE_STATUS] == "completed"
    assert list(attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]
    assert attrs[semconv.OPENAI_RESPONSE_SERVICE_TIER] == "default"
    assert attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] == input_tokens
    assert attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == output_tokens
    assert attrs[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 0
    assert attrs[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 0
    assert attrs[semconv.LLM_AUDIT_COST_USD] > 0
    if stream:
        assert attrs[semconv.GEN_AI_REQUEST_STREAM] is True
        assert attrs[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    else:
        assert semconv.GEN_AI_REQUEST_STREAM not in attrs
        assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in attrs


# ----------------------------------------------------------------------------- Responses API


def test_responses_create_with_instructions(audit: Any, client: Any) -> None:
    result = client.responses.create(model="gpt-4o-mini", input="What is up?", instructions="Be brief.")
    assert type(result) is Response
    assert result.output_text == HELLO_ANSWER

    span = audit.only_llm_span()
    # prompt = (len("Be brief.") + len("What is up?")) // 4 + 1 = 20 // 4 + 1
    _check_responses_span(span, response_id="resp_fake_1", input_tokens=6, output_tokens=7)
    assert _json_attr(span, semconv.GEN_AI_SYSTEM_INSTRUCTIONS) == [{"type": "text", "content": "Be brief."}]
    assert _json_attr(span, semconv.GEN_AI_INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "What is up?"}]}
    ]
    assert _json_attr(span, semconv.GEN_AI_OUTPUT_MESSAGES) == HELLO_OUTPUT


def test_responses_create_with_list_input(audit: Any, client: Any) -> None:
    items = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": [{"type": "input_text", "text": "Again"}]},
    ]
    client.responses.create(model="gpt-4o-mini", input=items, temperature=0.5, max_output_tokens=32)

    span = audit.only_llm_span()
    # prompt = len("Hi" + "Hello" + "Again") // 4 + 1 = 12 // 4 + 1
    _check_responses_span(span, response_id="resp_fake_1", input_tokens=4, output_tokens=7)
    assert semconv.GEN_AI_SYSTEM_INSTRUCTIONS not in span.attributes
    assert span.attributes[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert span.attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 32
    assert _json_attr(span, semconv.GEN_AI_INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello"}]},
        {"role": "user", "parts": [{"type": "text", "content": "Again"}]},
    ]


def test_responses_create_stream(audit: Any, client: Any) -> None:
    stream = client.responses.create(model="gpt-4o-mini", input="What is up?", stream=True)
    assert isinstance(stream, openai.Stream)
    events = list(stream)
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == HELLO_ANSWER

    span = audit.only_llm_span()
    _check_responses_span(span, response_id="resp_fake_1", input_tokens=3, output_tokens=7, stream=True)
    assert _json_attr(span, semconv.GEN_AI_OUTPUT_MESSAGES) == HELLO_OUTPUT


def test_responses_stream_helper(audit: Any, client: Any) -> None:
    with client.responses.stream(model="gpt-4o-mini", input="What is up?") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == HELLO_ANSWER
    assert final.id == "resp_fake_1"
    assert final.output_text == HELLO_ANSWER

    span = audit.only_llm_span()
    _check_responses_span(span, response_id="resp_fake_1", input_tokens=3, output_tokens=7, stream=True)
    assert _json_attr(span, semconv.GEN_AI_OUTPUT_MESSAGES) == HELLO_OUTPUT


def test_responses_stream_helper_left_early_ends_the_span(audit: Any, client: Any) -> None:
    """The helper closes ``stream.response``, not the stream: the span must end on that too."""
    with client.responses.stream(model="gpt-4o-mini", input="What is up?") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                break
        assert audit.llm_spans() == []  # still open while the block runs
    span = audit.only_llm_span()  # ended by the block's exit, not by garbage collection
    assert span.attributes[semconv.GEN_AI_RESPONSE_ID] == "resp_fake_1"
    assert _json_attr(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": HELLO_ANSWER[:4]}], "finish_reason": "error"}
    ]
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes


def test_responses_parse(audit: Any, client: Any) -> None:
    parsed = client.responses.parse(model="gpt-4o-mini", input="Answer?", text_format=Answer)
    assert parsed.output_parsed == Answer(answer="42")

    span = audit.only_llm_span()
    # prompt = len("Answer?") // 4 + 1; completion = len('{"answer": "42"}') // 4 + 1
    _check_responses_span(span, response_id="resp_fake_1", input_tokens=2, output_tokens=5)
    assert span.attributes[semconv.GEN_AI_OUTPUT_TYPE] == "json"
    assert _json_attr(span, semconv.GEN_AI_OUTPUT_MESSAGES) == JSON_OUTPUT


def test_responses_retrieve_is_fetch_response(audit: Any, client: Any) -> None:
    created = client.responses.create(model="gpt-4o-mini", input="What is up?")
    audit.clear()
    fetched = client.responses.retrieve(created.id)
    assert type(fetched) is Response
    assert fetched.id == "resp_fake_1"

    span = audit.only_llm_span()
    assert span.name == "fetch_response"
    assert span.kind is SpanKind.CLIENT
    attrs = span.attributes
    assert attrs[semconv.GEN_AI_OPERATION_NAME] == semconv.GenAiOperationNameValues.FETCH_RESPONSE
    assert attrs[semconv.GEN_AI_RESPONSE_ID] == "resp_fake_1"
    assert attrs[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2026-01-01"
    assert attrs[semconv.GEN_AI_RESPONSE_STATUS] == "completed"
    assert attrs[semconv.OPENAI_API_TYPE] == "responses"
    assert _json_attr(span, semconv.GEN_AI_OUTPUT_MESSAGES) == HELLO_OUTPUT
    # Fetching a stored response uses no tokens: no usage, no cost, no request model.
    for absent in (
        semconv.GEN_AI_REQUEST_MODEL,
        semconv.GEN_AI_USAGE_INPUT_TOKENS,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        semconv.LLM_AUDIT_COST_USD,
        semconv.GEN_AI_INPUT_MESSAGES,
    ):
        assert absent not in attrs, absent


def test_responses_retrieve_unknown_id_is_an_error(audit: Any, client: Any) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client.responses.retrieve("resp_missing")
    assert raised.value.status_code == 404
    span = audit.only_llm_span()
    assert span.name == "fetch_response"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "openai.NotFoundError"
    assert span.attributes[semconv.GEN_AI_RESPONSE_ID] == "resp_missing"


async def test_async_responses_create_and_retrieve(audit: Any, async_client: Any) -> None:
    created = await async_client.responses.create(model="gpt-4o-mini", input="What is up?")
    fetched = await async_client.responses.retrieve(created.id)
    assert fetched.output_text == HELLO_ANSWER
    chat, fetch = sorted(audit.llm_spans(), key=lambda s: s.start_time)
    _check_responses_span(chat, response_id="resp_fake_1", input_tokens=3, output_tokens=7)
    assert fetch.name == "fetch_response"
    assert fetch.attributes[semconv.GEN_AI_RESPONSE_ID] == "resp_fake_1"


# ----------------------------------------------------------------------------- chat helpers


def test_chat_parse(audit: Any, client: Any) -> None:
    completion = _chat_helpers(client).parse(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Answer?"}], response_format=Answer
    )
    assert isinstance(completion, ChatCompletion)
    assert completion.choices[0].message.parsed == Answer(answer="42")

    span = audit.only_llm_span()
    attrs = span.attributes
    assert span.name == "chat gpt-4o-mini"
    assert attrs[semconv.OPENAI_API_TYPE] == "chat_completions"
    assert attrs[semconv.GEN_AI_OUTPUT_TYPE] == "json"
    assert attrs[semconv.GEN_AI_RESPONSE_ID] == "chatcmpl-fake-1"
    assert (attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS], attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == (2, 5)
    assert _json_attr(span, semconv.GEN_AI_OUTPUT_MESSAGES) == JSON_OUTPUT


def test_chat_stream_helper(audit: Any, client: Any) -> None:
    with _chat_helpers(client).stream(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hi"}],
        stream_options={"include_usage": True},
    ) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    kinds = {e.type for e in events}
    assert {"chunk", "content.delta", "content.done"} <= kinds
    assert "".join(e.delta for e in events if e.type == "content.delta") == HELLO_ANSWER
    assert final.choices[0].message.content == HELLO_ANSWER
    assert final.id == "chatcmpl-fake-1"

    span = audit.only_llm_span()
    attrs = span.attributes
    assert attrs[semconv.GEN_AI_REQUEST_STREAM] is True
    assert attrs[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert attrs[semconv.GEN_AI_RESPONSE_ID] == "chatcmpl-fake-1"
    assert list(attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]
    assert (attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS], attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == (1, 7)
    assert _json_attr(span, semconv.GEN_AI_OUTPUT_MESSAGES) == HELLO_OUTPUT


def test_chat_stream_helper_left_early_ends_the_span(audit: Any, client: Any) -> None:
    with _chat_helpers(client).stream(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]) as s:
        for event in s:
            if event.type == "content.delta":
                break
        assert audit.llm_spans() == []
    span = audit.only_llm_span()  # the block's exit ended it; no garbage collection needed
    assert _json_attr(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": HELLO_ANSWER[:4]}], "finish_reason": "error"}
    ]


async def test_async_chat_stream_helper(audit: Any, async_client: Any) -> None:
    async with _chat_helpers(async_client).stream(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        async for event in stream:
            if event.type == "content.delta":
                break
        assert audit.llm_spans() == []
    span = audit.only_llm_span()
    assert span.attributes[semconv.GEN_AI_REQUEST_STREAM] is True
    assert _json_attr(span, semconv.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [
        {"type": "text", "content": HELLO_ANSWER[:4]}
    ]


async def test_async_responses_stream_helper(audit: Any, async_client: Any) -> None:
    async with async_client.responses.stream(model="gpt-4o-mini", input="What is up?") as stream:
        async for _event in stream:
            pass
        final = await stream.get_final_response()
    assert final.output_text == HELLO_ANSWER
    span = audit.only_llm_span()
    _check_responses_span(span, response_id="resp_fake_1", input_tokens=3, output_tokens=7, stream=True)


def test_responses_stream_dropped_midway(audit: Any, client: Any) -> None:
    """A stream that dies after two text deltas: the error, and what arrived before it."""
    stream = client.responses.create(model="error-midstream", input="What is up?", stream=True)
    seen: list[str] = []
    with pytest.raises((openai.APIConnectionError, HTTP.RemoteProtocolError)) as raised:  # 3.x wraps, 1.x not
        for event in stream:
            seen.append(event.type)
    assert seen.count("response.output_text.delta") == 2
    span = audit.only_llm_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == str(raised.value)
    expected_type = (
        "openai.APIConnectionError"
        if isinstance(raised.value, openai.APIConnectionError)
        else f"{HTTP.__name__}.RemoteProtocolError"
    )
    assert span.attributes[semconv.ERROR_TYPE] == expected_type
    assert span.attributes[semconv.GEN_AI_RESPONSE_ID] == "resp_fake_1"
    assert span.attributes[semconv.GEN_AI_RESPONSE_MODEL] == "error-midstream-2026-01-01"
    assert list(span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["error"]
    assert _json_attr(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": HELLO_ANSWER[:8]}], "finish_reason": "error"}
    ]
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes
