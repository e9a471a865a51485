"""The Anthropic instrumentor against the real ``anthropic`` SDK and the loopback fake server.

Runs on the oldest (0.50) and newest (2.x) supported SDK lines; tests that need one line only
say so. Every test drives the SDK through its real HTTP stack.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import anthropic
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_llm_audit import _guard, semconv
from otel_llm_audit.demo import fake_server as fs
from otel_llm_audit.demo.fake_server import FakeModelServer
from otel_llm_audit.instrumentation.anthropic import _capture

MODEL = "claude-haiku-4-5"
SDK_TRACES_ITSELF = hasattr(anthropic, "_tracing")  # anthropic >= 1.14
SCOPE = "otel_llm_audit.instrumentation.anthropic"
SDK_SCOPE = "com.anthropic.sdk.python"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _ours(audit: Any) -> list[ReadableSpan]:
    return [s for s in audit.spans() if s.instrumentation_scope is not None and s.instrumentation_scope.name == SCOPE]


def _only(audit: Any) -> ReadableSpan:
    spans = _ours(audit)
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def _json(span: ReadableSpan, key: str) -> Any:
    return json.loads(span.attributes[key])


USER = [{"role": "user", "content": "Hi there"}]


# ----------------------------------------------------------------------------- create


def test_create_records_request_response_usage_and_content(audit: Any, client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=64, system="Be brief.", messages=USER, stop_sequences=["###"]
    )
    assert message.content[0].text == fs.HELLO_ANSWER
    span = _only(audit)
    attrs = span.attributes
    assert span.name == f"chat {MODEL}"
    assert attrs[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[semconv.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == MODEL
    assert attrs[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert list(attrs[semconv.GEN_AI_REQUEST_STOP_SEQUENCES]) == ["###"]
    assert attrs[semconv.GEN_AI_RESPONSE_ID] == message.id
    assert attrs[semconv.GEN_AI_RESPONSE_MODEL] == f"{MODEL}-2026-01-01"
    assert list(attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["end_turn"]
    assert attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] == message.usage.input_tokens
    assert attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == message.usage.output_tokens == 7
    assert attrs[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert _json(span, semconv.GEN_AI_SYSTEM_INSTRUCTIONS) == [{"type": "text", "content": "Be brief."}]
    assert _json(span, semconv.GEN_AI_INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hi there"}]}
    ]
    assert _json(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": fs.HELLO_ANSWER}], "finish_reason": "stop"}
    ]
    assert attrs[semconv.LLM_AUDIT_COST_USD] > 0
    assert span.status.status_code is StatusCode.UNSET


def test_input_tokens_include_cache_reads_and_writes_and_cost_uses_cache_prices(
    audit: Any, client: anthropic.Anthropic
) -> None:
    message = client.messages.create(model=f"{MODEL}-cached", max_tokens=64, messages=USER)
    attrs = _only(audit).attributes
    raw_input = message.usage.input_tokens
    assert attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] == raw_input + fs.CACHE_READ_TOKENS + fs.CACHE_CREATION_TOKENS
    assert attrs[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == fs.CACHE_READ_TOKENS
    assert attrs[semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] == fs.CACHE_CREATION_TOKENS
    # claude-haiku-4-5: $1 per million input, $0.10 cache reads, $1.25 cache writes, $5 output
    expected_input = (raw_input * 1.00 + fs.CACHE_READ_TOKENS * 0.10 + fs.CACHE_CREATION_TOKENS * 1.25) / 1e6
    assert attrs[semconv.LLM_AUDIT_COST_INPUT_USD] == pytest.approx(expected_input)
    assert attrs[semconv.LLM_AUDIT_COST_OUTPUT_USD] == pytest.approx(message.usage.output_tokens * 5.00 / 1e6)


def test_tool_use_round_trip_records_definitions_calls_and_results(audit: Any, client: anthropic.Anthropic) -> None:
    first = client.messages.create(model=MODEL, max_tokens=64, messages=USER, tools=[WEATHER_TOOL])
    tool_use = first.content[0]
    assert tool_use.type == "tool_use"
    history = [
        *USER,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "18C, sunny"}]},
    ]
    second = client.messages.create(model=MODEL, max_tokens=64, messages=history, tools=[WEATHER_TOOL])
    assert second.content[0].text == fs.WEATHER_ANSWER
    one, two = sorted(_ours(audit), key=lambda s: s.start_time or 0)
    assert _json(one, semconv.GEN_AI_TOOL_DEFINITIONS) == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": WEATHER_TOOL["input_schema"],
        }
    ]
    assert list(one.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["tool_use"]
    assert _json(one, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": fs.TOOL_USE_ID, "name": "get_weather", "arguments": fs.TOOL_INPUT}],
            "finish_reason": "tool_call",
        }
    ]
    inputs = _json(two, semconv.GEN_AI_INPUT_MESSAGES)
    assert [m["role"] for m in inputs] == ["user", "assistant", "user"]
    assert inputs[1]["parts"] == [
        {"type": "tool_call", "id": fs.TOOL_USE_ID, "name": "get_weather", "arguments": fs.TOOL_INPUT}
    ]
    assert inputs[2]["parts"] == [{"type": "tool_call_response", "id": fs.TOOL_USE_ID, "response": "18C, sunny"}]


def test_refusal_is_a_policy_event(audit: Any, client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=f"{MODEL}-refuse", max_tokens=64, messages=USER)
    assert message.stop_reason == "refusal"
    span = _only(audit)
    assert list(span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["refusal"]
    assert _json(span, semconv.GEN_AI_OUTPUT_MESSAGES)[0]["finish_reason"] == "content_filter"
    (event,) = [e for e in span.events if e.name == semconv.EVENT_LLM_AUDIT_POLICY]
    assert event.attributes[semconv.LLM_AUDIT_POLICY_CATEGORY] == "refusal"
    assert event.attributes[semconv.LLM_AUDIT_POLICY_ACTION] == "refused"
    assert event.attributes[semconv.LLM_AUDIT_POLICY_SOURCE] == "anthropic"
    assert json.loads(event.attributes[semconv.LLM_AUDIT_POLICY_DETAILS]) == {"stop_reason": "refusal"}
    assert span.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True


# ----------------------------------------------------------------------------- streams


def test_stream_helper_text_stream_and_final_message(audit: Any, client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=f"{MODEL}-chunks-3", max_tokens=64, messages=USER) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == fs.HELLO_ANSWER and len(pieces) == 3
    span = _only(audit)
    attrs = span.attributes
    assert attrs[semconv.GEN_AI_REQUEST_STREAM] is True
    assert attrs[semconv.GEN_AI_RESPONSE_ID] == final.id
    assert attrs[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.output_tokens
    assert attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] == final.usage.input_tokens
    assert _json(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": fs.HELLO_ANSWER}], "finish_reason": "stop"}
    ]


def test_stream_with_tool_use_assembles_the_arguments(audit: Any, client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=64, messages=USER, tools=[WEATHER_TOOL]) as stream:
        stream.until_done()
    span = _only(audit)
    assert _json(span, semconv.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [
        {"type": "tool_call", "id": fs.TOOL_USE_ID, "name": "get_weather", "arguments": fs.TOOL_INPUT}
    ]


def test_create_stream_broken_off_ends_the_span_once(audit: Any, client: anthropic.Anthropic) -> None:
    stream = client.messages.create(model=f"{MODEL}-chunks-5", max_tokens=64, messages=USER, stream=True)
    for event in stream:
        if event.type == "content_block_delta":
            break
    stream.close()
    stream.close()
    span = _only(audit)
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes[semconv.GEN_AI_REQUEST_STREAM] is True


def test_midstream_error_event_makes_an_error_span_and_reaches_the_caller(
    audit: Any, client: anthropic.Anthropic
) -> None:
    with (
        pytest.raises(anthropic.APIStatusError) as raised,
        client.messages.stream(model="error-midstream", max_tokens=64, messages=USER) as stream,
    ):
        stream.until_done()
    assert raised.value.body == fs.MIDSTREAM_ERROR_EVENT
    span = _only(audit)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "anthropic.APIStatusError"
    assert [e.name for e in span.events] == ["exception"]


# ----------------------------------------------------------------------------- errors and guards


@pytest.mark.parametrize(("status", "exc_name"), [(400, "BadRequestError"), (429, "RateLimitError")])
def test_http_error_is_an_error_span_and_the_sdk_exception_is_untouched(
    audit: Any, client: anthropic.Anthropic, status: int, exc_name: str
) -> None:
    with pytest.raises(getattr(anthropic, exc_name)) as raised:
        client.messages.create(model=f"error-{status}", max_tokens=64, messages=USER)
    assert raised.value.status_code == status
    span = _only(audit)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == f"anthropic.{exc_name}"
    (event,) = span.events
    assert event.attributes[semconv.EXCEPTION_TYPE] == f"anthropic.{exc_name}"


def test_a_bug_of_ours_never_reaches_the_application(
    audit: Any, client: anthropic.Anthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("capture bug")

    monkeypatch.setattr(_capture, "resolve_messages", boom)
    monkeypatch.setattr(_capture, "snapshot_body", boom)
    message = client.messages.create(model=MODEL, max_tokens=64, messages=USER)
    assert message.content[0].text == fs.HELLO_ANSWER
    assert _ours(audit) == []  # nothing could be started: the call went through unrecorded
    assert _guard.internal_error_counts()["anthropic.start"] == 1


def test_count_tokens_is_not_a_model_call(audit: Any, client: anthropic.Anthropic) -> None:
    result = client.messages.count_tokens(model=MODEL, messages=USER)
    assert result.input_tokens > 0
    assert _ours(audit) == []


def test_traceparent_on_the_wire_carries_our_span(audit: Any, client: anthropic.Anthropic, fake_server: Any) -> None:
    client.messages.create(model=MODEL, max_tokens=64, messages=USER)
    span = _only(audit)
    traceparent = fake_server.requests[-1].headers["traceparent"]
    _, trace_id, span_id, _ = traceparent.split("-")
    assert trace_id == f"{span.context.trace_id:032x}"
    assert span_id == f"{span.context.span_id:016x}"


def test_messages_from_a_generator_are_sent_and_never_consumed_by_us(audit: Any, client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=64, messages=(m for m in USER))  # type: ignore[arg-type]
    assert message.content[0].text == fs.HELLO_ANSWER
    span = _only(audit)
    assert span.attributes[semconv.GEN_AI_RESPONSE_ID] == message.id


# ----------------------------------------------------------------------------- async


def test_async_create_and_stream(audit: Any, fake_server: FakeModelServer) -> None:
    async def run() -> tuple[str, str]:
        async with anthropic.AsyncAnthropic(
            base_url=fake_server.anthropic_base_url, api_key="sk-ant-test", max_retries=0
        ) as client:
            created = await client.messages.create(model=MODEL, max_tokens=64, messages=USER)
            async with client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
                text = "".join([piece async for piece in stream.text_stream])
            return created.content[0].text, text

    created, streamed = asyncio.run(run())
    assert created == streamed == fs.HELLO_ANSWER
    spans = sorted(_ours(audit), key=lambda s: s.start_time or 0)
    assert [s.attributes.get(semconv.GEN_AI_REQUEST_STREAM, False) for s in spans] == [False, True]
    assert all(_json(s, semconv.GEN_AI_OUTPUT_MESSAGES)[0]["parts"][0]["content"] == fs.HELLO_ANSWER for s in spans)


# ----------------------------------------------------------------------------- one span per call, masking


@pytest.mark.skipif(not SDK_TRACES_ITSELF, reason="anthropic < 1.14 has no spans of its own")
def test_exactly_one_llm_span_per_call_when_the_sdk_traces_itself(audit: Any, fake_server: FakeModelServer) -> None:
    traced = {"open_telemetry": {"tracer_provider": audit.tracer_provider}}
    with anthropic.Anthropic(
        base_url=fake_server.anthropic_base_url, api_key="sk-ant-test", max_retries=0, **traced
    ) as client:
        client.messages.create(model=MODEL, max_tokens=64, messages=USER)
        with client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
            stream.until_done()
        client.messages.count_tokens(model=MODEL, messages=USER)
    spans = audit.spans()
    scopes = sorted((s.instrumentation_scope.name, s.name) for s in spans if s.instrumentation_scope is not None)
    assert scopes == [
        (SDK_SCOPE, "anthropic.messages.count_tokens"),  # not a model call: the SDK's span stays
        (SCOPE, f"chat {MODEL}"),
        (SCOPE, f"chat {MODEL}"),
    ]


@pytest.mark.skipif(not SDK_TRACES_ITSELF, reason="anthropic < 1.14 has no spans of its own")
def test_uninstrumented_the_sdk_traces_itself_again(audit: Any, fake_server: FakeModelServer) -> None:
    for instrumentor in audit.extra_instrumentors:
        instrumentor.uninstrument()
    traced = {"open_telemetry": {"tracer_provider": audit.tracer_provider}}
    with anthropic.Anthropic(
        base_url=fake_server.anthropic_base_url, api_key="sk-ant-test", max_retries=0, **traced
    ) as client:
        client.messages.create(model=MODEL, max_tokens=64, messages=USER)
    names = [(s.instrumentation_scope.name, s.name) for s in audit.spans() if s.instrumentation_scope]
    assert names == [(SDK_SCOPE, "anthropic.messages.create")]


def test_masked_by_default(audit_anthropic: Callable[..., Any], fake_server: FakeModelServer) -> None:
    audit = audit_anthropic(content="masked")
    assert audit.pipeline.masking.wait_ready(60)
    with anthropic.Anthropic(base_url=fake_server.anthropic_base_url, api_key="sk-ant-test", max_retries=0) as c:
        c.messages.create(
            model=MODEL,
            max_tokens=64,
            system="Reply to jane.doe@example.com.",
            messages=[{"role": "user", "content": "My SSN is 219-09-9999."}],
        )
    span = _only(audit)
    assert _json(span, semconv.GEN_AI_SYSTEM_INSTRUCTIONS) == [{"type": "text", "content": "Reply to <EMAIL_ADDRESS>."}]
    assert _json(span, semconv.GEN_AI_INPUT_MESSAGES)[0]["parts"][0]["content"] == "My SSN is <US_SSN>."
    assert json.loads(span.attributes[semconv.LLM_AUDIT_REDACTION_ENTITIES]) == {"EMAIL_ADDRESS": 1, "US_SSN": 1}
