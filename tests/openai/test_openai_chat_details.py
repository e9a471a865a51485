"""Chat Completions details: tools, reproducibility parameters, and what the span says of them."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion

from otel_llm_audit import semconv
from otel_llm_audit.demo.fake_server import (
    JSON_ANSWER,
    SYSTEM_FINGERPRINT,
    TOOL_CALL_ID,
    WEATHER_ANSWER,
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
EXPECTED_DEFINITIONS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
QUESTION = "What is the weather in Paris?"  # 29 characters -> 29 // 4 + 1 = 8 prompt tokens
EXPECTED_TOOL_OUTPUT = [
    {
        "role": "assistant",
        "parts": [{"type": "tool_call", "id": TOOL_CALL_ID, "name": "get_weather", "arguments": {"city": "Paris"}}],
        "finish_reason": "tool_call",
    }
]


def _json_attr(span: Any, key: str) -> Any:
    return json.loads(span.attributes[key])


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_tool_definitions_and_tool_call(audit: Any, client: Any, stream: bool) -> None:
    kwargs: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": QUESTION}],
        "tools": [WEATHER_TOOL],
    }
    if stream:
        kwargs.update(stream=True, stream_options={"include_usage": True})
        chunks = list(client.chat.completions.create(**kwargs))
        arguments = "".join(
            c.choices[0].delta.tool_calls[0].function.arguments or ""
            for c in chunks
            if c.choices and c.choices[0].delta.tool_calls
        )
        assert arguments == '{"city": "Paris"}'
    else:
        result = client.chat.completions.create(**kwargs)
        assert result.choices[0].message.tool_calls[0].id == TOOL_CALL_ID

    span = audit.only_llm_span()
    assert _json_attr(span, semconv.GEN_AI_TOOL_DEFINITIONS) == EXPECTED_DEFINITIONS
    assert _json_attr(span, semconv.GEN_AI_OUTPUT_MESSAGES) == EXPECTED_TOOL_OUTPUT
    assert _json_attr(span, semconv.GEN_AI_INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": QUESTION}]}
    ]
    assert list(span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["tool_calls"]
    assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 8
    # completion = len('{"city": "Paris"}') // 4 + 1 = 17 // 4 + 1
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert (semconv.GEN_AI_REQUEST_STREAM in span.attributes) is stream


def test_tool_result_round_trip(audit: Any, client: Any) -> None:
    messages = [
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": TOOL_CALL_ID,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": TOOL_CALL_ID, "content": "18C, sunny"},
    ]
    result = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
    assert result.choices[0].message.content == WEATHER_ANSWER

    span = audit.only_llm_span()
    assert _json_attr(span, semconv.GEN_AI_INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": QUESTION}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": TOOL_CALL_ID, "name": "get_weather", "arguments": {"city": "Paris"}}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": TOOL_CALL_ID, "response": "18C, sunny"}]},
    ]
    assert _json_attr(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": WEATHER_ANSWER}], "finish_reason": "stop"}
    ]
    assert list(span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]


JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]},
        "strict": True,
    },
}


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_reproducibility_parameters(audit: Any, client: Any, stream: bool) -> None:
    kwargs: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Answer in JSON."}],  # 15 chars -> 4 tokens
        "temperature": 0.25,
        "top_p": 0.5,
        "max_completion_tokens": 64,
        "seed": 1234,
        "stop": "END",
        "frequency_penalty": 0.75,
        "presence_penalty": -0.5,
        "n": 2,
        "reasoning_effort": "low",
        "response_format": JSON_SCHEMA_FORMAT,
        "service_tier": "default",
    }
    if stream:
        kwargs.update(stream=True, stream_options={"include_usage": True})
        chunks = list(client.chat.completions.create(**kwargs))
        texts = {0: "", 1: ""}
        for chunk in chunks:
            for choice in chunk.choices:
                texts[choice.index] += choice.delta.content or ""
        assert texts == {0: JSON_ANSWER, 1: JSON_ANSWER}
    else:
        result = client.chat.completions.create(**kwargs)
        assert isinstance(result, ChatCompletion)
        assert [c.message.content for c in result.choices] == [JSON_ANSWER, JSON_ANSWER]

    span = audit.only_llm_span()
    attrs = span.attributes
    expected = {
        semconv.GEN_AI_REQUEST_TEMPERATURE: 0.25,
        semconv.GEN_AI_REQUEST_TOP_P: 0.5,
        semconv.GEN_AI_REQUEST_MAX_TOKENS: 64,
        semconv.GEN_AI_REQUEST_SEED: 1234,
        semconv.GEN_AI_REQUEST_STOP_SEQUENCES: ["END"],
        semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY: 0.75,
        semconv.GEN_AI_REQUEST_PRESENCE_PENALTY: -0.5,
        semconv.GEN_AI_REQUEST_CHOICE_COUNT: 2,
        semconv.GEN_AI_REQUEST_REASONING_LEVEL: "low",
        semconv.GEN_AI_OUTPUT_TYPE: "json",
        semconv.OPENAI_REQUEST_SERVICE_TIER: "default",
        semconv.OPENAI_RESPONSE_SERVICE_TIER: "default",
        semconv.OPENAI_RESPONSE_SYSTEM_FINGERPRINT: SYSTEM_FINGERPRINT,
        semconv.OPENAI_API_TYPE: "chat_completions",
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["stop", "stop"],
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 4,
        # completion = (len('{"answer": "42"}') // 4 + 1) * n = 5 * 2
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 10,
    }
    got = {k: list(attrs[k]) if isinstance(attrs.get(k), tuple) else attrs.get(k) for k in expected}
    assert got == expected
    one_answer = {"role": "assistant", "parts": [{"type": "text", "content": JSON_ANSWER}], "finish_reason": "stop"}
    assert _json_attr(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [one_answer, one_answer]


def test_stop_sequence_list_and_legacy_max_tokens(audit: Any, client: Any, fake_server: Any) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hi"}],
        stop=["END", "\n\n"],
        max_tokens=16,
        n=1,
    )
    assert fake_server.requests[0].body["stop"] == ["END", "\n\n"]
    attrs = audit.only_llm_span().attributes
    assert list(attrs[semconv.GEN_AI_REQUEST_STOP_SEQUENCES]) == ["END", "\n\n"]
    assert attrs[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 16
    # n=1 is the default: the conventions say not to record a choice count of 1.
    assert semconv.GEN_AI_REQUEST_CHOICE_COUNT not in attrs
    for absent in (
        semconv.GEN_AI_REQUEST_TEMPERATURE,
        semconv.GEN_AI_REQUEST_TOP_P,
        semconv.GEN_AI_REQUEST_SEED,
        semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY,
        semconv.GEN_AI_REQUEST_PRESENCE_PENALTY,
        semconv.GEN_AI_REQUEST_REASONING_LEVEL,
        semconv.GEN_AI_OUTPUT_TYPE,
        semconv.OPENAI_REQUEST_SERVICE_TIER,
        semconv.GEN_AI_TOOL_DEFINITIONS,
    ):
        assert absent not in attrs, absent


def test_azure_client_is_azure_provider(audit: Any, fake_server: Any) -> None:
    """AzureOpenAI rewrites the path to /deployments/{model}/...; the fake server has no such route."""
    azure = openai.AzureOpenAI(
        base_url=fake_server.base_url, api_key="sk-test", api_version="2024-10-21", max_retries=0
    )
    try:
        with pytest.raises(openai.NotFoundError):
            azure.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    finally:
        azure.close()
    assert fake_server.requests[0].path == "/v1/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
    span = audit.only_llm_span()
    assert span.name == "chat gpt-4o-mini"
    assert span.attributes[semconv.GEN_AI_PROVIDER_NAME] == semconv.GenAiProviderNameValues.AZURE_AI_OPENAI
    assert span.attributes[semconv.OPENAI_API_TYPE] == "chat_completions"
    assert span.attributes[semconv.ERROR_TYPE] == "openai.NotFoundError"
