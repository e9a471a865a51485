"""``messages.parse``, beta messages and the tool runner of the real ``anthropic`` SDK, against the fake server.

Same setup as ``test_anthropic_messages.py`` (its fixtures are repeated here: test modules in
``tests/anthropic`` do not import each other), on the oldest (0.50) and newest (2.x) SDK lines:

* ``messages.parse`` / ``beta.messages.parse`` (structured output, ``output_format=`` a pydantic
  model) and the tool runner (``beta.messages.tool_runner`` with ``@beta_tool`` functions) are not
  in 0.50; their tests skip there, decided by the feature itself, not by a version number.
* Beta messages run on both lines: ``POST /v1/messages?beta=true`` up to 1.x, ``/v1/messages`` in
  2.x, with the ``anthropic-beta`` header built from ``betas=``.
* The 2.x tool runner continues a server-side message thread by default (message-threads beta):
  its second request carries only the ``tool_result`` turn and ``thread.previous_message_id``, which
  is recorded as ``gen_ai.request.previous_response.id``; with ``thread=False`` it re-sends the
  whole history, the ``tool_use`` turn included.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
from typing import Any

import anthropic
import pydantic
import pytest
from anthropic.resources.beta.messages import Messages as BetaMessagesResource
from anthropic.resources.messages import Messages as MessagesResource
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from otel_llm_audit import _guard, semconv
from otel_llm_audit.demo import fake_server as fs
from otel_llm_audit.demo.fake_server import FakeModelServer

try:
    from anthropic.types.beta.parsed_beta_message import ParsedBetaMessage
except ImportError:  # anthropic 0.50: no structured outputs
    ParsedBetaMessage = None  # type: ignore[assignment,misc]

MODEL = "claude-haiku-4-5"
RESPONSE_MODEL = f"{MODEL}-2026-01-01"
SCOPE = "otel_llm_audit.instrumentation.anthropic"
SDK_SCOPE = "com.anthropic.sdk.python"
SDK_TRACES_ITSELF = hasattr(anthropic, "_tracing")  # anthropic >= 1.14
#: The 2.x SDK sends beta calls to /v1/messages; earlier lines add ?beta=true.
BETA_PATH = "/v1/messages" if int(anthropic.__version__.split(".")[0]) >= 2 else "/v1/messages?beta=true"
BETA = "token-efficient-tools-2025-02-19"
USER = [{"role": "user", "content": "Hi there"}]
WEATHER_QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOL_RESULT = "18C, sunny in Paris"

HAS_PARSE = hasattr(MessagesResource, "parse")
HAS_BETA_PARSE = hasattr(BetaMessagesResource, "parse")
HAS_STREAM_OUTPUT_FORMAT = "output_format" in inspect.signature(MessagesResource.stream).parameters
HAS_TOOL_RUNNER = hasattr(BetaMessagesResource, "tool_runner")
#: Message threads (2.x): the tool runner continues a server-side thread unless ``thread=False``.
HAS_THREADS = importlib.util.find_spec("anthropic.lib.threads") is not None
#: Where the survey places these features (the release that introduced each is not verifiable offline).
_SINCE = "added after 0.50.0; present in 0.125.0, see docs/notes/anthropic-sdk-survey.md"
_HAVE = f"anthropic {anthropic.__version__} has no"
needs_parse = pytest.mark.skipif(not HAS_PARSE, reason=f"{_HAVE} messages.parse (structured outputs, {_SINCE})")
needs_beta_parse = pytest.mark.skipif(not HAS_BETA_PARSE, reason=f"{_HAVE} beta.messages.parse ({_SINCE})")
needs_stream_output_format = pytest.mark.skipif(
    not HAS_STREAM_OUTPUT_FORMAT, reason=f"{_HAVE} output_format on messages.stream ({_SINCE})"
)
needs_tool_runner = pytest.mark.skipif(
    not HAS_TOOL_RUNNER, reason=f"{_HAVE} beta.messages.tool_runner / @beta_tool ({_SINCE})"
)
needs_sdk_tracing = pytest.mark.skipif(not SDK_TRACES_ITSELF, reason="anthropic < 1.14 has no spans of its own")


class Answer(pydantic.BaseModel):
    """The structured output the fake answers (``{"answer": "42"}``) when a JSON schema is requested."""

    answer: str


JSON_OUTPUT = [{"role": "assistant", "parts": [{"type": "text", "content": fs.JSON_ANSWER}], "finish_reason": "stop"}]
HELLO_OUTPUT = [{"role": "assistant", "parts": [{"type": "text", "content": fs.HELLO_ANSWER}], "finish_reason": "stop"}]
TOOL_CALL = {"type": "tool_call", "id": fs.TOOL_USE_ID, "name": "get_weather", "arguments": fs.TOOL_INPUT}
TOOL_RESPONSE = {"type": "tool_call_response", "id": fs.TOOL_USE_ID, "response": TOOL_RESULT}


def _ours(audit: Any) -> list[ReadableSpan]:
    spans = [s for s in audit.spans() if s.instrumentation_scope is not None and s.instrumentation_scope.name == SCOPE]
    return sorted(spans, key=lambda s: s.start_time or 0)


def _only(audit: Any) -> ReadableSpan:
    spans = _ours(audit)
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def _json(span: ReadableSpan, key: str) -> Any:
    return json.loads(span.attributes[key])


def _tokens(*texts: str) -> int:
    """The fake's token formula: characters // 4 + 1."""
    return sum(len(t) for t in texts) // 4 + 1


def _assert_chat_span(span: ReadableSpan, *, response_id: str, stream: bool, output: Any, output_type: Any) -> None:
    """Exactly the attributes of a plain (non-tool) chat call on the fake, nothing more of ours missing."""
    attrs = span.attributes
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert attrs[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[semconv.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == MODEL
    assert attrs[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert attrs.get(semconv.GEN_AI_REQUEST_STREAM, False) is stream
    assert attrs.get(semconv.GEN_AI_OUTPUT_TYPE) == output_type
    assert attrs[semconv.GEN_AI_RESPONSE_ID] == response_id
    assert attrs[semconv.GEN_AI_RESPONSE_MODEL] == RESPONSE_MODEL
    assert list(attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["end_turn"]
    assert attrs[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] == _tokens("Hi there")
    text = output[0]["parts"][0]["content"]
    assert attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == _tokens(text)
    assert _json(span, semconv.GEN_AI_INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hi there"}]}
    ]
    assert _json(span, semconv.GEN_AI_OUTPUT_MESSAGES) == output
    assert semconv.GEN_AI_REQUEST_PREVIOUS_RESPONSE_ID not in attrs
    assert attrs[semconv.LLM_AUDIT_COST_USD] > 0


# ----------------------------------------------------------------------------- messages.parse


@needs_parse
def test_parse_records_json_output_and_hands_back_the_parsed_object(
    audit: Any, client: anthropic.Anthropic, fake_server: FakeModelServer
) -> None:
    tracer = audit.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle_request") as parent:
        parsed = client.messages.parse(model=MODEL, max_tokens=64, messages=USER, output_format=Answer)
    assert isinstance(parsed, anthropic.types.ParsedMessage)
    assert parsed.parsed_output == Answer(answer="42")
    assert isinstance(parsed.content[0], anthropic.types.ParsedTextBlock)
    assert parsed.content[0].text == fs.JSON_ANSWER
    assert fake_server.requests[-1].body["output_config"]["format"]["type"] == "json_schema"
    span = _only(audit)
    _assert_chat_span(span, response_id=parsed.id, stream=False, output=JSON_OUTPUT, output_type="json")
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id


@needs_parse
async def test_async_parse(audit: Any, async_client: anthropic.AsyncAnthropic) -> None:
    parsed = await async_client.messages.parse(model=MODEL, max_tokens=64, messages=USER, output_format=Answer)
    assert parsed.parsed_output == Answer(answer="42")
    _assert_chat_span(_only(audit), response_id=parsed.id, stream=False, output=JSON_OUTPUT, output_type="json")


@needs_beta_parse
def test_beta_parse_with_betas(audit: Any, client: anthropic.Anthropic, fake_server: FakeModelServer) -> None:
    parsed = client.beta.messages.parse(model=MODEL, max_tokens=64, messages=USER, output_format=Answer, betas=[BETA])
    assert isinstance(parsed, ParsedBetaMessage)
    assert parsed.parsed_output == Answer(answer="42")
    assert fake_server.requests[-1].headers["anthropic-beta"] == BETA
    _assert_chat_span(_only(audit), response_id=parsed.id, stream=False, output=JSON_OUTPUT, output_type="json")


@needs_parse
def test_parse_of_a_reply_that_does_not_fit_still_records_what_the_model_said(
    audit: Any, client: anthropic.Anthropic
) -> None:
    # -maxtokens cuts the JSON in half: the SDK's own parsing raises inside the call.
    with pytest.raises(pydantic.ValidationError):
        client.messages.parse(model=f"{MODEL}-maxtokens", max_tokens=64, messages=USER, output_format=Answer)
    span = _only(audit)
    attrs = span.attributes
    assert span.status.status_code is StatusCode.ERROR
    assert attrs[semconv.ERROR_TYPE] == "pydantic_core.ValidationError"
    assert attrs[semconv.GEN_AI_OUTPUT_TYPE] == "json"
    half = fs.JSON_ANSWER[: len(fs.JSON_ANSWER) // 2]
    assert list(attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["max_tokens"]
    assert attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == _tokens(half)
    assert _json(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": half}], "finish_reason": "length"}
    ]
    assert _guard.internal_error_counts() == {}


@needs_parse
def test_parse_http_error_is_an_error_span_and_the_sdk_exception_is_untouched(
    audit: Any, client: anthropic.Anthropic
) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        client.messages.parse(model="error-400", max_tokens=64, messages=USER, output_format=Answer)
    assert raised.value.status_code == 400
    span = _only(audit)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "anthropic.BadRequestError"
    assert span.attributes[semconv.GEN_AI_OUTPUT_TYPE] == "json"


@needs_stream_output_format
def test_stream_with_output_format_gives_the_parsed_final_message(audit: Any, client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=64, messages=USER, output_format=Answer) as stream:
        final = stream.get_final_message()
    assert final.parsed_output == Answer(answer="42")
    _assert_chat_span(_only(audit), response_id=final.id, stream=True, output=JSON_OUTPUT, output_type="json")


# ----------------------------------------------------------------------------- beta messages


def test_beta_create_records_like_create_and_sends_the_beta_header(
    audit: Any, client: anthropic.Anthropic, fake_server: FakeModelServer
) -> None:
    message = client.beta.messages.create(model=MODEL, max_tokens=64, messages=USER, betas=[BETA])
    assert type(message).__name__ == "BetaMessage"
    assert message.content[0].text == fs.HELLO_ANSWER
    request = fake_server.requests[-1]
    assert request.path == BETA_PATH
    assert request.headers["anthropic-beta"] == BETA
    span = _only(audit)
    _assert_chat_span(span, response_id=message.id, stream=False, output=HELLO_OUTPUT, output_type=None)
    _, trace_id, span_id, _ = request.headers["traceparent"].split("-")
    assert (trace_id, span_id) == (f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}")


def test_beta_stream_helpers_end_the_span_once(audit: Any, client: anthropic.Anthropic) -> None:
    with client.beta.messages.stream(model=f"{MODEL}-chunks-3", max_tokens=64, messages=USER, betas=[BETA]) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
        stream.until_done()
    assert "".join(pieces) == fs.HELLO_ANSWER and len(pieces) == 3
    span = _only(audit)
    assert span.name == f"chat {MODEL}-chunks-3"
    attrs = span.attributes
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == f"{MODEL}-chunks-3"
    assert attrs[semconv.GEN_AI_REQUEST_STREAM] is True
    assert attrs[semconv.GEN_AI_RESPONSE_ID] == final.id
    assert attrs[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] == final.usage.input_tokens == _tokens("Hi there")
    assert attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.output_tokens
    assert _json(span, semconv.GEN_AI_OUTPUT_MESSAGES) == HELLO_OUTPUT


def test_beta_stream_tool_use_and_params(audit: Any, client: anthropic.Anthropic) -> None:
    tool = {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    with client.beta.messages.stream(
        model=MODEL, max_tokens=64, messages=USER, tools=[tool], stop_sequences=["###"], system="Be brief."
    ) as stream:
        stream.until_done()
    span = _only(audit)
    assert list(span.attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES]) == ["###"]
    assert _json(span, semconv.GEN_AI_SYSTEM_INSTRUCTIONS) == [{"type": "text", "content": "Be brief."}]
    assert _json(span, semconv.GEN_AI_TOOL_DEFINITIONS) == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": tool["input_schema"],
        }
    ]
    assert _json(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [TOOL_CALL], "finish_reason": "tool_call"}
    ]


def test_beta_create_stream_broken_off_ends_the_span_once(audit: Any, client: anthropic.Anthropic) -> None:
    stream = client.beta.messages.create(
        model=f"{MODEL}-chunks-5", max_tokens=64, messages=USER, stream=True, betas=[BETA]
    )
    for event in stream:
        if event.type == "content_block_delta":
            break
    stream.close()
    stream.close()
    span = _only(audit)
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes[semconv.GEN_AI_REQUEST_STREAM] is True


@pytest.mark.parametrize("stream", [False, True])
def test_beta_http_error_is_an_error_span(audit: Any, client: anthropic.Anthropic, stream: bool) -> None:
    with pytest.raises(anthropic.RateLimitError) as raised:
        if stream:
            with client.beta.messages.stream(model="error-429", max_tokens=64, messages=USER, betas=[BETA]) as s:
                s.until_done()
        else:
            client.beta.messages.create(model="error-429", max_tokens=64, messages=USER, betas=[BETA])
    assert raised.value.status_code == 429
    span = _only(audit)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "anthropic.RateLimitError"
    assert span.attributes.get(semconv.GEN_AI_REQUEST_STREAM, False) is stream


def test_beta_midstream_error_reaches_the_caller(audit: Any, client: anthropic.Anthropic) -> None:
    with (
        pytest.raises(anthropic.APIStatusError) as raised,
        client.beta.messages.stream(model="error-midstream", max_tokens=64, messages=USER, betas=[BETA]) as stream,
    ):
        stream.until_done()
    assert raised.value.body == fs.MIDSTREAM_ERROR_EVENT
    span = _only(audit)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "anthropic.APIStatusError"


async def test_async_beta_create_and_stream(audit: Any, async_client: anthropic.AsyncAnthropic) -> None:
    created = await async_client.beta.messages.create(model=MODEL, max_tokens=64, messages=USER, betas=[BETA])
    async with async_client.beta.messages.stream(model=MODEL, max_tokens=64, messages=USER, betas=[BETA]) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert created.content[0].text == text == fs.HELLO_ANSWER
    first, second = _ours(audit)
    _assert_chat_span(first, response_id=created.id, stream=False, output=HELLO_OUTPUT, output_type=None)
    _assert_chat_span(second, response_id=final.id, stream=True, output=HELLO_OUTPUT, output_type=None)


async def test_async_beta_error(audit: Any, async_client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError):
        await async_client.beta.messages.create(model="error-400", max_tokens=64, messages=USER, betas=[BETA])
    span = _only(audit)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "anthropic.BadRequestError"


# ----------------------------------------------------------------------------- tool runner


def _weather_tool(calls: list[str]) -> Any:
    @anthropic.beta_tool
    def get_weather(city: str) -> str:
        """Current weather for a city.

        Args:
            city: The city.
        """
        calls.append(city)
        return f"18C, sunny in {city}"

    return get_weather


def _async_weather_tool(calls: list[str]) -> Any:
    @anthropic.beta_async_tool
    async def get_weather(city: str) -> str:
        """Current weather for a city.

        Args:
            city: The city.
        """
        calls.append(city)
        return f"18C, sunny in {city}"

    return get_weather


def _assert_two_rounds(audit: Any, *, full_history: bool, stream: bool, parent: Any = None) -> None:
    """Two chat spans: the model asks for the tool, then answers with its result."""
    first, second = _ours(audit)
    for span in (first, second):
        assert span.name == f"chat {MODEL}"
        assert span.status.status_code is StatusCode.UNSET
        assert span.attributes.get(semconv.GEN_AI_REQUEST_STREAM, False) is stream
        if parent is not None:  # both in the caller's trace, children of its span
            assert span.context.trace_id == parent.trace_id
            assert span.parent is not None and span.parent.span_id == parent.span_id
    question = {"role": "user", "parts": [{"type": "text", "content": WEATHER_QUESTION[0]["content"]}]}
    assert _json(first, semconv.GEN_AI_INPUT_MESSAGES) == [question]
    definitions = _json(first, semconv.GEN_AI_TOOL_DEFINITIONS)
    assert [(d["type"], d["name"], d["description"]) for d in definitions] == [
        ("function", "get_weather", "Current weather for a city.")
    ]
    assert definitions[0]["parameters"]["properties"]["city"]["type"] == "string"
    assert list(first.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["tool_use"]
    assert _json(first, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [TOOL_CALL], "finish_reason": "tool_call"}
    ]
    inputs = _json(second, semconv.GEN_AI_INPUT_MESSAGES)
    if full_history:
        assert inputs == [
            question,
            {"role": "assistant", "parts": [TOOL_CALL]},
            {"role": "user", "parts": [TOOL_RESPONSE]},
        ]
        assert semconv.GEN_AI_REQUEST_PREVIOUS_RESPONSE_ID not in second.attributes
        assert semconv.GEN_AI_TOOL_DEFINITIONS in second.attributes
    else:  # a thread continued on the server: only the turn it lacks, linked to the reply it follows
        assert inputs == [{"role": "user", "parts": [TOOL_RESPONSE]}]
        previous = second.attributes[semconv.GEN_AI_REQUEST_PREVIOUS_RESPONSE_ID]
        assert previous == first.attributes[semconv.GEN_AI_RESPONSE_ID]
        assert semconv.GEN_AI_TOOL_DEFINITIONS not in second.attributes  # the thread keeps them
    assert _json(second, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": fs.WEATHER_ANSWER}], "finish_reason": "stop"}
    ]


#: ``thread=False`` where the runner threads by default (2.x); the full history is all earlier lines know.
FULL_HISTORY = {"thread": False} if HAS_THREADS else {}


@needs_tool_runner
@pytest.mark.parametrize("full_history", [True, False], ids=["full-history", "threaded"])
def test_tool_runner_two_rounds_one_span_per_model_call(
    audit: Any, client: anthropic.Anthropic, fake_server: FakeModelServer, full_history: bool
) -> None:
    if not full_history and not HAS_THREADS:
        pytest.skip(f"anthropic {anthropic.__version__} has no message threads (2.x): every turn sends the history")
    calls: list[str] = []
    tracer = audit.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("agent_turn") as parent:
        runner = client.beta.messages.tool_runner(
            model=MODEL,
            max_tokens=64,
            messages=WEATHER_QUESTION,
            tools=[_weather_tool(calls)],
            **(FULL_HISTORY if full_history else {}),
        )
        replies = list(runner)
    assert calls == ["Paris"]
    assert [r.stop_reason for r in replies] == ["tool_use", "end_turn"]
    assert replies[-1].content[0].text == fs.WEATHER_ANSWER
    assert len(fake_server.requests) == 2
    _assert_two_rounds(audit, full_history=full_history, stream=False, parent=parent.get_span_context())
    first, second = _ours(audit)
    assert first.attributes[semconv.GEN_AI_RESPONSE_ID] == replies[0].id
    assert second.attributes[semconv.GEN_AI_RESPONSE_ID] == replies[1].id


@needs_tool_runner
def test_streaming_tool_runner(audit: Any, client: anthropic.Anthropic) -> None:
    calls: list[str] = []
    runner = client.beta.messages.tool_runner(
        model=MODEL, max_tokens=64, messages=WEATHER_QUESTION, tools=[_weather_tool(calls)], stream=True, **FULL_HISTORY
    )
    finals = []
    for stream in runner:
        finals.append(stream.get_final_message())
    assert calls == ["Paris"]
    assert finals[-1].content[0].text == fs.WEATHER_ANSWER
    _assert_two_rounds(audit, full_history=True, stream=True)


@needs_tool_runner
async def test_async_tool_runner(audit: Any, async_client: anthropic.AsyncAnthropic) -> None:
    calls: list[str] = []
    runner = async_client.beta.messages.tool_runner(
        model=MODEL, max_tokens=64, messages=WEATHER_QUESTION, tools=[_async_weather_tool(calls)], **FULL_HISTORY
    )
    replies = [reply async for reply in runner]
    assert calls == ["Paris"]
    assert replies[-1].content[0].text == fs.WEATHER_ANSWER
    _assert_two_rounds(audit, full_history=True, stream=False)


@needs_tool_runner
def test_tool_runner_model_error_ends_the_loop_with_an_error_span(audit: Any, client: anthropic.Anthropic) -> None:
    runner = client.beta.messages.tool_runner(
        model="error-529", max_tokens=64, messages=WEATHER_QUESTION, tools=[_weather_tool([])]
    )
    with pytest.raises(anthropic.APIStatusError) as raised:
        list(runner)
    assert raised.value.status_code == 529
    span = _only(audit)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == f"anthropic.{type(raised.value).__name__}"


# ----------------------------------------------------------------------------- one LLM span per call (SDK tracing)


@needs_sdk_tracing
def test_exactly_one_llm_span_per_call_for_parse_and_beta_when_the_sdk_traces_itself(
    audit: Any, fake_server: FakeModelServer
) -> None:
    traced = {"open_telemetry": {"tracer_provider": audit.tracer_provider}}
    with anthropic.Anthropic(
        base_url=fake_server.anthropic_base_url, api_key="sk-ant-test", max_retries=0, **traced
    ) as client:
        client.messages.parse(model=MODEL, max_tokens=64, messages=USER, output_format=Answer)
        client.beta.messages.parse(model=MODEL, max_tokens=64, messages=USER, output_format=Answer, betas=[BETA])
        client.beta.messages.create(model=MODEL, max_tokens=64, messages=USER, betas=[BETA])
        with client.beta.messages.stream(model=MODEL, max_tokens=64, messages=USER, betas=[BETA]) as stream:
            stream.until_done()
    names = [(s.instrumentation_scope.name, s.name) for s in audit.spans() if s.instrumentation_scope is not None]
    assert sorted(names) == [(SCOPE, f"chat {MODEL}")] * 4


@needs_sdk_tracing
@needs_tool_runner
def test_tool_runner_spans_nest_when_the_sdk_traces_itself(audit: Any, fake_server: FakeModelServer) -> None:
    """The SDK's invoke_agent / execute_tool spans stay; its call spans give way to ours, nested in its agent span."""
    traced = {"open_telemetry": {"tracer_provider": audit.tracer_provider}}
    calls: list[str] = []
    tracer = audit.tracer_provider.get_tracer("app")
    with (
        anthropic.Anthropic(
            base_url=fake_server.anthropic_base_url, api_key="sk-ant-test", max_retries=0, **traced
        ) as client,
        tracer.start_as_current_span("agent_turn") as app,
    ):
        list(
            client.beta.messages.tool_runner(
                model=MODEL, max_tokens=64, messages=WEATHER_QUESTION, tools=[_weather_tool(calls)], **FULL_HISTORY
            )
        )
    assert calls == ["Paris"]
    spans = audit.spans()
    by_scope = sorted((s.instrumentation_scope.name, s.name) for s in spans if s.instrumentation_scope is not None)
    assert by_scope == [
        ("app", "agent_turn"),
        (SDK_SCOPE, "anthropic.custom_tool_use get_weather"),
        (SDK_SCOPE, "anthropic.messages.tool_runner"),
        (SCOPE, f"chat {MODEL}"),
        (SCOPE, f"chat {MODEL}"),
    ]
    (agent,) = [s for s in spans if s.name == "anthropic.messages.tool_runner"]
    (tool,) = [s for s in spans if s.name.startswith("anthropic.custom_tool_use")]
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.call.id"] == fs.TOOL_USE_ID
    assert agent.parent is not None and agent.parent.span_id == app.get_span_context().span_id
    assert tool.parent is not None and tool.parent.span_id == agent.context.span_id
    for chat in _ours(audit):
        assert chat.parent is not None and chat.parent.span_id == agent.context.span_id
    _assert_two_rounds(audit, full_history=True, stream=False)


def test_no_current_span_leaks_to_the_caller(audit: Any, client: anthropic.Anthropic) -> None:
    before = trace.get_current_span()
    client.beta.messages.create(model=MODEL, max_tokens=64, messages=USER, betas=[BETA])
    with client.beta.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
        stream.until_done()
    assert trace.get_current_span() is before
    assert len(_ours(audit)) == 2
