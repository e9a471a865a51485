"""Never break the host: our failures are swallowed and counted, the SDK's behaviour is unchanged,
instrumentation can be repeated and undone, and spans are complete without our processor."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai._base_client import AsyncAPIClient, SyncAPIClient
from openai.types.chat import ChatCompletion
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from otel_llm_audit import _guard, semconv
from otel_llm_audit.config import Settings, set_settings
from otel_llm_audit.demo.fake_server import HELLO_ANSWER
from otel_llm_audit.emitter.spans import Emitter
from otel_llm_audit.instrumentation.openai import OpenAIInstrumentor, _capture, _wrappers

MESSAGES = [{"role": "user", "content": "Hi"}]
START_KEYS = {
    semconv.GEN_AI_OPERATION_NAME,
    semconv.GEN_AI_PROVIDER_NAME,
    semconv.GEN_AI_REQUEST_MODEL,
    semconv.SERVER_ADDRESS,
    semconv.SERVER_PORT,
    semconv.LLM_AUDIT_SDK_VERSION,  # the mark the audit sampler keeps our spans by
}


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("injected failure")


def _create(client: Any, **kwargs: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, **kwargs)


# ----------------------------------------------------------------------------- our failures


@pytest.mark.parametrize(
    ("target", "name"),
    [(_capture, "snapshot_body"), (Emitter, "start_llm_call")],
    ids=["snapshot_body", "start_llm_call"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_failure_at_start_leaves_the_call_alone(
    audit: Any, client: Any, monkeypatch: pytest.MonkeyPatch, target: Any, name: str, stream: bool
) -> None:
    monkeypatch.setattr(target, name, _boom)
    result = _create(client, stream=stream)
    if stream:
        assert type(result) is openai.Stream  # not even proxied: nothing to record
        assert "".join(c.choices[0].delta.content or "" for c in result) == HELLO_ANSWER
    else:
        assert type(result) is ChatCompletion
        assert result.choices[0].message.content == HELLO_ANSWER
    assert _guard.internal_error_counts() == {"openai.start": 1}
    assert audit.llm_spans() == []


def test_failure_at_start_does_not_touch_sdk_errors(audit: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_capture, "snapshot_body", _boom)
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="error-500", messages=MESSAGES)
    assert raised.value.status_code == 500
    assert _guard.internal_error_counts() == {"openai.start": 1}


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_failing_resolver_still_exports_the_span(
    audit: Any, client: Any, fake_server: Any, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    monkeypatch.setattr(_wrappers._POST_ENDPOINTS["/chat/completions"], "resolver", _boom)
    result = _create(client, stream=stream)
    if stream:
        assert "".join(c.choices[0].delta.content or "" for c in result) == HELLO_ANSWER
    else:
        assert result.choices[0].message.content == HELLO_ANSWER

    span = audit.only_llm_span()
    assert span.name == "chat gpt-4o-mini"
    assert span.status.status_code is StatusCode.UNSET
    attrs = span.attributes
    assert set(attrs) >= START_KEYS
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert attrs[semconv.SERVER_PORT] == fake_server.port
    assert attrs[semconv.OPENAI_API_TYPE] == "chat_completions"
    assert attrs[semconv.LLM_AUDIT_CONTENT_MODE] == "raw"
    # Nothing the resolver would have filled in.
    for absent in (
        semconv.GEN_AI_RESPONSE_ID,
        semconv.GEN_AI_USAGE_INPUT_TOKENS,
        semconv.GEN_AI_INPUT_MESSAGES,
        semconv.GEN_AI_OUTPUT_MESSAGES,
        semconv.LLM_AUDIT_COST_USD,
    ):
        assert absent not in attrs, absent
    assert (attrs.get(semconv.GEN_AI_REQUEST_STREAM) is True) is stream
    assert _guard.internal_error_counts() == {"capture.resolve": 1}


def test_failing_span_end_is_swallowed(audit: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Emitter, "finish", _boom)
    assert _create(client).choices[0].message.content == HELLO_ANSWER
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="error-429", messages=MESSAGES)
    assert _guard.internal_error_counts() == {"emitter.finish": 2}


def test_failing_completion_still_exports_the_started_span(
    audit: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Emitter, "complete", _boom)
    assert _create(client).choices[0].message.content == HELLO_ANSWER
    span = audit.only_llm_span()
    assert set(span.attributes) == START_KEYS
    assert _guard.internal_error_counts() == {"pipeline.complete": 1}


# ----------------------------------------------------------------------------- SDK behaviour unchanged


def _outcome(call: Any) -> tuple[type, str]:
    with pytest.raises(Exception) as raised:
        call()
    return type(raised.value), str(raised.value)


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_malformed_json_behaves_as_without_us(audit: Any, client: Any, stream: bool) -> None:
    def call() -> None:
        result = client.chat.completions.create(model="malformed-json", messages=MESSAGES, stream=stream)
        if stream:
            list(result)

    audited = _outcome(call)
    span = audit.only_llm_span()
    audit.instrumentor.uninstrument()
    bare = _outcome(call)
    assert audit.exporter.get_finished_spans() == (span,)  # the bare call recorded nothing
    assert audited == bare
    assert bare[0] is json.JSONDecodeError

    assert span.name == "chat malformed-json"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == bare[1]
    assert span.attributes[semconv.ERROR_TYPE] == "json.JSONDecodeError"
    assert [e.name for e in span.events] == ["exception"]
    assert span.events[0].attributes[semconv.EXCEPTION_TYPE] == "json.JSONDecodeError"
    assert json.loads(span.attributes[semconv.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}]}
    ]
    assert _guard.internal_error_counts() == {}


def test_suppressed_instrumentation_records_nothing(audit: Any, client: Any) -> None:
    with suppress_instrumentation():
        assert _create(client).choices[0].message.content == HELLO_ANSWER
    assert audit.llm_spans() == []
    _create(client)
    assert len(audit.llm_spans()) == 1


# ----------------------------------------------------------------------------- instrument lifecycle


def _is_wrapped() -> list[bool]:
    return [
        hasattr(SyncAPIClient.request, "__wrapped__"),
        hasattr(AsyncAPIClient.request, "__wrapped__"),
    ]


def test_instrument_twice_gives_one_span_per_call(audit: Any, client: Any) -> None:
    assert OpenAIInstrumentor() is audit.instrumentor  # BaseInstrumentor is a singleton
    OpenAIInstrumentor().instrument(tracer_provider=audit.tracer_provider, meter_provider=audit.meter_provider)
    assert not hasattr(SyncAPIClient.request.__wrapped__, "__wrapped__")  # wrapped once, not twice
    _create(client)
    _create(client)
    spans = audit.llm_spans()
    assert [s.attributes[semconv.GEN_AI_RESPONSE_ID] for s in sorted(spans, key=lambda s: s.start_time)] == [
        "chatcmpl-fake-1",
        "chatcmpl-fake-2",
    ]


async def test_instrument_uninstrument_instrument(audit: Any, client: Any, fake_server: Any) -> None:
    assert _is_wrapped() == [True, True]
    _create(client)
    assert len(audit.llm_spans()) == 1

    audit.instrumentor.uninstrument()
    assert _is_wrapped() == [False, False]
    # ``client`` was used while instrumented: its resources still hold the wrapper they bound,
    # which must now stand aside. A client first used now binds the plain SDK method.
    _create(client)
    async_client = openai.AsyncOpenAI(base_url=fake_server.base_url, api_key="sk-test", max_retries=0)
    await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    await async_client.close()
    assert len(audit.llm_spans()) == 1  # nothing new while uninstrumented

    audit.instrumentor.instrument(tracer_provider=audit.tracer_provider, meter_provider=audit.meter_provider)
    assert _is_wrapped() == [True, True]
    _create(client)
    async_client = openai.AsyncOpenAI(base_url=fake_server.base_url, api_key="sk-test", max_retries=0)
    await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    await async_client.close()
    spans = sorted(audit.llm_spans(), key=lambda s: s.start_time)
    assert [s.attributes[semconv.GEN_AI_RESPONSE_ID] for s in spans] == [
        "chatcmpl-fake-1",
        "chatcmpl-fake-4",
        "chatcmpl-fake-5",
    ]


def test_uninstrument_stops_recording_in_clients_already_used(audit: Any, client: Any) -> None:
    _create(client)
    audit.instrumentor.uninstrument()
    for _ in range(3):
        _create(client)
    assert len(audit.llm_spans()) == 1


def test_client_used_before_instrument_is_audited_after(audit: Any, client: Any) -> None:
    audit.instrumentor.uninstrument()
    _create(client)  # builds client.chat.completions with the plain post
    audit.instrumentor.instrument(tracer_provider=audit.tracer_provider, meter_provider=audit.meter_provider)
    _create(client)
    assert len(audit.llm_spans()) == 1


def test_client_constructed_before_instrument_is_audited(audit: Any, fake_server: Any) -> None:
    audit.instrumentor.uninstrument()
    early = openai.OpenAI(base_url=fake_server.base_url, api_key="sk-test", max_retries=0)
    audit.instrumentor.instrument(tracer_provider=audit.tracer_provider, meter_provider=audit.meter_provider)
    try:
        early.responses.create(model="gpt-4o-mini", input="Hi")
        early.embeddings.create(model="text-embedding-3-small", input="Hi")
        early.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        early.close()
    assert sorted(s.name for s in audit.llm_spans()) == [
        "chat gpt-4o-mini",
        "chat gpt-4o-mini",
        "embeddings text-embedding-3-small",
    ]


# ----------------------------------------------------------------------------- without our processor


@pytest.fixture
def plain_pipeline() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A plain SDK pipeline: no configure(), no AuditSpanProcessor."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    set_settings(Settings.from_env(content="raw"))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield provider, exporter
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
        set_settings(None)


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_without_our_processor_the_span_is_completed_inline(
    plain_pipeline: tuple[TracerProvider, InMemorySpanExporter], client: Any, stream: bool
) -> None:
    _, exporter = plain_pipeline
    kwargs: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
    result = _create(client, **kwargs)
    if stream:
        list(result)
    (span,) = exporter.get_finished_spans()  # SimpleSpanProcessor: exported when it ended
    attrs = span.attributes
    assert span.name == "chat gpt-4o-mini"
    assert attrs[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2026-01-01"
    assert attrs[semconv.GEN_AI_RESPONSE_ID] == "chatcmpl-fake-1"
    assert (attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS], attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == (1, 7)
    assert list(attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]
    assert attrs[semconv.LLM_AUDIT_COST_USD] > 0
    assert json.loads(attrs[semconv.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": HELLO_ANSWER}], "finish_reason": "stop"}
    ]
    assert (semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attrs) is stream


def test_without_our_processor_errors_get_their_event(
    plain_pipeline: tuple[TracerProvider, InMemorySpanExporter], client: Any
) -> None:
    _, exporter = plain_pipeline
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="error-500", messages=MESSAGES)
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "openai.InternalServerError"
    assert [e.name for e in span.events] == ["exception"]
