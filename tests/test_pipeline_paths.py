"""The three ways a span gets completed, sampling on the fast path, and overflow.

- fast path: ``configure()`` attaches our processor; the span is built off the caller's thread;
- claimed path: a user adds ``AuditSpanProcessor`` with ``add_span_processor``; the SDK span is
  completed off the caller's thread;
- inline path: no processor of ours; completed on the caller's thread (tests/openai covers it).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased

import otel_llm_audit
from otel_llm_audit import AuditSpanProcessor, semconv
from otel_llm_audit.config import set_settings
from otel_llm_audit.demo.fake_server import FakeModelServer
from otel_llm_audit.emitter import handoff
from otel_llm_audit.instrumentation.openai import OpenAIInstrumentor

MESSAGES = [{"role": "user", "content": "Summarise the discharge note."}]


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    OpenAIInstrumentor().uninstrument()
    set_settings(None)


def _client(server: FakeModelServer) -> Any:
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)


def _ours(spans: Any) -> list[ReadableSpan]:
    return [s for s in spans if s.instrumentation_scope.name.startswith(handoff.SCOPE_PREFIX)]


def test_claimed_path_completes_a_user_wired_pipeline(server: FakeModelServer) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    processor = AuditSpanProcessor([SimpleSpanProcessor(exporter)])
    provider.add_span_processor(processor)  # not attach_to: the SDK span is claimed and completed
    set_settings(otel_llm_audit.Settings.from_env(content="raw"))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    with otel_llm_audit.audit_context(user_id="u-1", team="ward-7"):
        _client(server).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert processor.force_flush(5000)
    (span,) = _ours(exporter.get_finished_spans())
    assert span.attributes[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2026-01-01"
    assert span.attributes[semconv.USER_ID] == "u-1"
    assert span.attributes[semconv.LLM_AUDIT_TEAM] == "ward-7"
    assert json.loads(span.attributes[semconv.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Summarise the discharge note."}]}
    ]
    assert handoff.outstanding() == 0  # every claim was released
    provider.shutdown()


def _configured(**kwargs: Any) -> tuple[otel_llm_audit.AuditPipeline, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    pipeline = otel_llm_audit.configure(
        span_exporters=[exporter], metric_readers=[], set_global=False, instrument=False, content="raw", **kwargs
    )
    OpenAIInstrumentor().instrument(tracer_provider=pipeline.tracer_provider)
    return pipeline, exporter


def test_fast_path_publishes_to_every_processor_of_the_provider(server: FakeModelServer) -> None:
    pipeline, exporter = _configured(tracer_provider=TracerProvider())
    other = InMemorySpanExporter()
    pipeline.tracer_provider.add_span_processor(SimpleSpanProcessor(other))  # added by the user later
    _client(server).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert pipeline.force_flush(5000)
    (ours,) = _ours(exporter.get_finished_spans())
    (theirs,) = _ours(other.get_finished_spans())
    assert ours.context.span_id == theirs.context.span_id
    assert theirs.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == ours.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]
    assert semconv.GEN_AI_OUTPUT_MESSAGES in theirs.attributes
    pipeline.shutdown()


def test_fast_path_honours_a_sampler_that_drops(server: FakeModelServer) -> None:
    """The sampler in force has the last word; configure() puts the audit sampler in front of the
    application's (tests/test_sampling_keeps_audit.py), so here one replaces it before instrumenting."""
    exporter = InMemorySpanExporter()
    pipeline = otel_llm_audit.configure(
        span_exporters=[exporter], metric_readers=[], set_global=False, instrument=False, content="raw"
    )
    pipeline.tracer_provider.sampler = ALWAYS_OFF
    OpenAIInstrumentor().instrument(tracer_provider=pipeline.tracer_provider)
    reply = _client(server).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert reply.choices[0].message.content == "Hello from the fake model."
    assert pipeline.force_flush(5000)
    assert exporter.get_finished_spans() == ()
    pipeline.shutdown()


def test_fast_path_follows_the_parent_sampling_decision(server: FakeModelServer) -> None:
    pipeline, exporter = _configured(tracer_provider=TracerProvider(sampler=ParentBased(TraceIdRatioBased(1.0))))
    tracer = pipeline.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("request") as parent:
        _client(server).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert pipeline.force_flush(5000)
    (span,) = _ours(exporter.get_finished_spans())
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert span.context.trace_id == parent.get_span_context().trace_id
    assert span.context.trace_flags.sampled
    # The provider saw this span as the parent of its HTTP request.
    traceparent = server.requests[-1].headers["traceparent"]
    assert traceparent == f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01"
    pipeline.shutdown()


def test_a_full_queue_drops_content_never_spans(server: FakeModelServer, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline, exporter = _configured(tracer_provider=TracerProvider(), queue_size=2)
    processor = pipeline.processor  # (a search of the registry could find another test's pipeline, still alive)
    assert processor is not None and processor._max_items == 2
    release = threading.Event()
    original = AuditSpanProcessor._build_and_publish

    def slow(self: AuditSpanProcessor, deferred: Any, *, content_allowed: bool, failure: Any = None) -> None:
        if content_allowed:  # the worker: hold it until the caller has overflowed the queue
            release.wait(10)
        original(self, deferred, content_allowed=content_allowed, failure=failure)

    monkeypatch.setattr(AuditSpanProcessor, "_build_and_publish", slow)
    client = _client(server)
    for _ in range(6):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    dropped = processor.dropped_content_count
    release.set()
    assert pipeline.force_flush(10_000)
    spans = _ours(exporter.get_finished_spans())
    assert len(spans) == 6  # every call has its span
    without_content = [s for s in spans if semconv.GEN_AI_INPUT_MESSAGES not in s.attributes]
    assert dropped >= 2 and len(without_content) == dropped  # the worker holds one batch, the queue two
    assert all(s.attributes[semconv.LLM_AUDIT_CONTENT_MODE] == "none" for s in without_content)
    assert all(s.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] > 0 for s in spans)  # metadata kept
    pipeline.shutdown()


def test_app_exception_inside_a_stream_block_is_not_a_model_error(server: FakeModelServer) -> None:
    pipeline, exporter = _configured(tracer_provider=TracerProvider())
    with (
        pytest.raises(ValueError, match="the application's own bug"),
        _client(server).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ) as stream,
    ):
        next(iter(stream))
        raise ValueError("the application's own bug")
    assert pipeline.force_flush(5000)
    (span,) = _ours(exporter.get_finished_spans())
    assert span.status.is_unset
    assert semconv.ERROR_TYPE not in span.attributes
    # No finish reason had arrived when the block was left: the conventions' "error" placeholder.
    assert list(span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["error"]
    pipeline.shutdown()


def test_unsupported_sdk_version_is_skipped_with_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from openai._base_client import SyncAPIClient

    monkeypatch.setattr(OpenAIInstrumentor, "instruments", ("openai >= 99.0",))
    with caplog.at_level("DEBUG"):
        assert OpenAIInstrumentor().instrument() is None
    assert not hasattr(SyncAPIClient.request, "__wrapped__")
    conflicts = [r for r in caplog.records if "openai" in r.getMessage() and "99.0" in r.getMessage()]
    assert len(conflicts) == 1, [r.getMessage() for r in caplog.records]


def test_a_call_queued_behind_the_stop_marker_is_completed_by_shutdown(
    server: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_llm_audit.processing.pipeline import _Marker

    pipeline, exporter = _configured(tracer_provider=TracerProvider(), queue_size=64)
    (processor,) = [p for p in handoff._pipelines.values() if isinstance(p, AuditSpanProcessor) and p._max_items == 64]
    client = _client(server)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    # The race: the worker passes the stop marker and exits...
    assert processor._wait_for(_Marker(stop=True), time.monotonic() + 5)
    processor._worker.join(5)
    # ...and a call that was already past the shutdown check lands in the queue after it.
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(processor._items) == 1
    monkeypatch.setattr(processor, "_wait_for", lambda marker, deadline: True)  # nobody left to wait for
    pipeline.shutdown()
    spans = _ours(exporter.get_finished_spans())
    assert len(spans) == 2
    assert all(semconv.GEN_AI_INPUT_MESSAGES in s.attributes for s in spans)  # completed, content included
