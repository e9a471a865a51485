"""The LLM span of each model call: from the OpenAI instrumentor when it runs, else from the SDK's data.

Either way there is exactly one LLM span per request the fake server received, nested in the
agent that made the call.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

agents = pytest.importorskip("agents")

from agent_runs import run_streamed  # noqa: E402
from agent_spans import by_name, one, parent_of  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

from otel_llm_audit import semconv  # noqa: E402
from otel_llm_audit.demo.fake_server import WEATHER_ANSWER, FakeModelServer  # noqa: E402

OPENAI_SCOPE = "otel_llm_audit.instrumentation.openai"
AGENTS_SCOPE = "otel_llm_audit.instrumentation.openai_agents"


@agents.function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def llm_spans(spans: list[Any]) -> list[Any]:
    return [s for s in spans if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == "chat"]


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "streamed"])
@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("openai_instrumented", [True, False], ids=["openai-instrumented", "sdk-data"])
def test_one_llm_span_per_model_call(
    make_agents_audit: Any,
    make_model: Any,
    fake_server: FakeModelServer,
    api: str,
    streamed: bool,
    openai_instrumented: bool,
) -> None:
    audit = make_agents_audit(openai=openai_instrumented)
    agent = agents.Agent(name="Weather", instructions="Answer.", model=make_model(api), tools=[get_weather])
    if streamed:
        result = asyncio.run(run_streamed(agent, "Weather in Paris?"))
    else:
        result = asyncio.run(agents.Runner.run(agent, "Weather in Paris?"))
    assert result.final_output == WEATHER_ANSWER

    spans = audit.spans()
    model_requests = [r for r in fake_server.requests if r.path.endswith(("/chat/completions", "/responses"))]
    assert len(model_requests) == 2
    calls = llm_spans(spans)
    assert len(calls) == 2
    assert {s.instrumentation_scope.name for s in calls} == {OPENAI_SCOPE if openai_instrumented else AGENTS_SCOPE}
    agent_span = one(spans, "invoke_agent Weather")
    assert [parent_of(s, spans) for s in calls] == [agent_span, agent_span]
    assert len({s.context.trace_id for s in spans}) == 1
    first, second = sorted(calls, key=lambda s: s.start_time)
    tool = one(spans, "execute_tool get_weather")
    assert first.end_time <= tool.start_time and tool.end_time <= second.start_time
    for call in calls:
        assert call.kind is SpanKind.CLIENT
        assert call.attributes[semconv.GEN_AI_PROVIDER_NAME] == "openai"
        if not (streamed and api == "chat"):  # the SDK does not ask for usage in streamed chat
            assert call.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] > 0
            assert call.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    if openai_instrumented:
        return

    # Built from the SDK's data: what the SDK kept of each call, content included.
    if api == "chat":
        assert [s.name for s in calls] == ["chat gpt-4o-mini", "chat gpt-4o-mini"]
        assert first.attributes[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    else:  # the SDK keeps the response, not the request: only the response model is known
        assert [s.name for s in calls] == ["chat", "chat"]
        assert first.attributes[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2026-01-01"
        assert first.attributes[semconv.GEN_AI_RESPONSE_ID] == "resp_fake_1"
    inputs = json.loads(first.attributes[semconv.GEN_AI_INPUT_MESSAGES])
    assert inputs[-1] == {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]}
    outputs = json.loads(first.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])
    assert outputs[0]["role"] == "assistant"
    # The call id as the SDK kept it (openai-agents 0.2 loses it in streamed chat: "").
    kept_id = result.raw_responses[0].output[0].call_id
    assert kept_id == "call_fake_1" or (api == "chat" and streamed and kept_id == "")
    assert outputs[0]["parts"] == [
        {"type": "tool_call", "id": kept_id, "name": "get_weather", "arguments": {"city": "Paris"}}
    ]
    answer = json.loads(second.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])
    assert answer[0]["parts"] == [{"type": "text", "content": WEATHER_ANSWER}]
    assert first.attributes[semconv.LLM_AUDIT_CONTENT_MODE] == "raw"


def test_a_failed_model_call_is_recorded_from_the_sdk_data(make_agents_audit: Any, make_model: Any) -> None:
    """The fake answers 429: the run fails with the SDK's exception, the LLM span says why."""
    import openai

    audit = make_agents_audit(openai=False)
    agent = agents.Agent(name="Weather", instructions="Answer.", model=make_model("chat", "error-429"))
    with pytest.raises(openai.RateLimitError):
        asyncio.run(agents.Runner.run(agent, "Weather in Paris?"))
    spans = audit.spans()
    call = one(spans, "chat error-429")
    assert not call.status.is_ok
    assert call.attributes[semconv.ERROR_TYPE] == "openai.RateLimitError"
    assert parent_of(call, spans).name == "invoke_agent Weather"  # type: ignore[union-attr]
    for name in ("invoke_agent Weather", "invoke_workflow Agent workflow"):
        span = one(spans, name)
        assert span.attributes[semconv.ERROR_TYPE] == "openai.RateLimitError", name
        assert not span.status.is_ok
    assert by_name(spans, "execute_tool get_weather") == []
