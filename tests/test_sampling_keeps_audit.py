"""An application's sampler never drops an audit span (issue 6, item 5).

The application samples its traces; ``configure()`` puts
:class:`~otel_llm_audit.processing.sampling.AuditSampler` in front of that sampler. Driven
through the public API, the real ``openai`` SDK and its HTTP stack against the fake model
server: the application's own spans follow its sampler, ours are all recorded, under the
application's root span (same trace, parent id = the root's span id), and the HTTP span of an
LLM call is recorded because its parent, our span, is sampled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import MappingProxyType
from typing import Any

import openai
import pytest
from opentelemetry.context import Context
from opentelemetry.instrumentation import httpx as httpx_instrumentation
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

import otel_llm_audit
from otel_llm_audit import AuditPipeline, AuditSpanProcessor, __version__, _guard, api, semconv
from otel_llm_audit.config import Settings, set_settings
from otel_llm_audit.demo.fake_server import FakeModelServer
from otel_llm_audit.emitter.handoff import SCOPE_PREFIX
from otel_llm_audit.emitter.spans import Emitter
from otel_llm_audit.instrumentation.openai import OpenAIInstrumentor
from otel_llm_audit.processing import sampling
from otel_llm_audit.processing.sampling import AuditSampler
from otel_llm_audit.records import McpRequest, WorkflowStep

#: The HTTP library the openai SDK is built on: httpx2 from 3.x, httpx before.
HttpInstrumentor = (
    httpx_instrumentation.HTTPX2ClientInstrumentor
    if hasattr(openai._base_client, "httpx2")
    else httpx_instrumentation.HTTPXClientInstrumentor
)

MESSAGES = [{"role": "user", "content": "Is warfarin safe with ibuprofen?"}]

#: Our spans, by name, that the workload below makes (the HTTP span is the instrumentation's).
OURS = [
    "chat gpt-4o-mini",
    "llm_audit.decision",
    "llm_audit.policy",
    "search_memory",
    "step triage",
    "tools/call lookup_patient",
]
APP = ["handle question", "load chart", "read notes db"]


class _Scripted(Sampler):
    """Answers with a fixed decision, trace state and added attribute, and remembers each question."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.asked: list[str] = []

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Any = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        self.asked.append(name)
        added = None if self.decision is Decision.DROP else {**(attributes or {}), "sampler.note": "scripted"}
        return SamplingResult(self.decision, added, TraceState([("vendor", "th:8")]))

    def get_description(self) -> str:
        return "Scripted"


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _uninstrument() -> Iterator[None]:
    yield
    OpenAIInstrumentor().uninstrument()
    HttpInstrumentor().uninstrument()
    set_settings(None)


Build = Callable[..., AuditPipeline]


@pytest.fixture
def build(monkeypatch: pytest.MonkeyPatch) -> Iterator[Build]:
    """``configure()`` in front of an in-memory exporter, OpenAI and httpx instrumented on its provider."""
    built: list[AuditPipeline] = []

    def make(tracer_provider: TracerProvider | None = None) -> AuditPipeline:
        exporter = InMemorySpanExporter()
        pipeline = otel_llm_audit.configure(
            span_exporters=[exporter],
            metric_readers=[],
            tracer_provider=tracer_provider,
            set_global=False,
            instrument=False,
            content="none",
        )
        provider = pipeline.tracer_provider
        OpenAIInstrumentor().instrument(tracer_provider=provider)
        HttpInstrumentor().instrument(tracer_provider=provider)
        # the public API's spans (events with no recording span to carry them) go to this provider
        monkeypatch.setattr(api, "_tracer", lambda: provider.get_tracer(api._SCOPE, __version__))
        built.append(pipeline)
        return pipeline

    yield make
    for pipeline in built:
        pipeline.shutdown()


def _workload(provider: TracerProvider, server: FakeModelServer) -> tuple[int, int]:
    """An application request that calls a model, records audit facts, and has spans of its own.

    Returns the trace id and span id of the application's root span.
    """
    app = provider.get_tracer("clinic.app")
    emitter = Emitter(f"{SCOPE_PREFIX}.test", provider)  # an integration's own steps and MCP messages
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
    try:
        with app.start_as_current_span("handle question") as root:
            with app.start_as_current_span("load chart"):
                pass
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            otel_llm_audit.record_decision("route", "pharmacist", options=["pharmacist", "physician"])
            otel_llm_audit.record_policy_event("pii", "masked", source="gateway")
            with (
                otel_llm_audit.memory_operation("search_memory", store_id="notes", query="warfarin") as op,
                app.start_as_current_span("read notes db"),  # the application's work inside our step
            ):
                op.records = [{"id": "n-1", "content": "on warfarin since 2024"}]
            emitter.start_step(WorkflowStep("triage")).end()  # the one kind of span with no gen_ai.* key
            emitter.start_mcp(McpRequest("tools/call", request_id=7, tool_name="lookup_patient")).end()
    finally:
        client.close()
    ctx = root.get_span_context()
    return ctx.trace_id, ctx.span_id


def _spans(pipeline: AuditPipeline) -> dict[str, ReadableSpan]:
    assert pipeline.force_flush(10_000)
    (exporter,) = pipeline.span_exporters
    assert isinstance(exporter, InMemorySpanExporter)
    finished = exporter.get_finished_spans()
    by_name = {span.name: span for span in finished}
    assert len(by_name) == len(finished), [s.name for s in finished]
    return by_name


def _is_child(span: ReadableSpan, parent: ReadableSpan) -> bool:
    return span.parent is not None and span.parent.span_id == parent.context.span_id


def _assert_ours_kept_under_the_dropped_root(spans: dict[str, ReadableSpan], root: tuple[int, int]) -> None:
    trace_id, root_span_id = root
    assert sorted(spans) == sorted([*OURS, "POST", "read notes db"])  # "handle question", "load chart" dropped
    for name in OURS:
        span = spans[name]
        assert span.instrumentation_scope is not None and span.instrumentation_scope.name.startswith(SCOPE_PREFIX)
        assert span.attributes is not None and span.attributes[semconv.LLM_AUDIT_SDK_VERSION] == __version__
        assert span.context.trace_flags.sampled, name
        assert span.context.trace_id == trace_id, name
        assert span.parent is not None and span.parent.span_id == root_span_id, name
    # The HTTP span of the LLM call and the application's span inside our memory step: each a
    # direct child of a sampled span of ours, so recorded, in the same trace.
    assert _is_child(spans["POST"], spans["chat gpt-4o-mini"])
    notes = spans["read notes db"]
    assert _is_child(notes, spans["search_memory"])
    for span in (spans["POST"], notes):
        assert span.context.trace_id == trace_id and span.context.trace_flags.sampled


def _assert_traceparent_sampled(server: FakeModelServer, http_span: ReadableSpan) -> None:
    """The model provider was told the call is sampled (its own tracing keeps it too)."""
    ctx = http_span.context
    version, trace_id, span_id, flags = server.requests[-1].headers["traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    assert int(flags, 16) & 0x01  # sampled (newer SDKs also set 0x02, "random trace id")


@pytest.mark.parametrize(
    "app_sampler",
    [ALWAYS_OFF, TraceIdRatioBased(0.0), ParentBased(TraceIdRatioBased(0.0)), _Scripted(Decision.RECORD_ONLY)],
    ids=["always_off", "ratio_0", "parentbased_ratio_0", "record_only"],  # record-only spans are never exported
)
def test_a_sampler_that_drops_the_trace_keeps_every_audit_span(
    build: Build, server: FakeModelServer, app_sampler: Sampler
) -> None:
    pipeline = build(TracerProvider(sampler=app_sampler))
    sampler = pipeline.tracer_provider.sampler
    assert isinstance(sampler, AuditSampler) and sampler.delegate is app_sampler
    assert sampler.get_description() == f"AuditSampler{{delegate:{app_sampler.get_description()}}}"
    root = _workload(pipeline.tracer_provider, server)
    spans = _spans(pipeline)
    _assert_ours_kept_under_the_dropped_root(spans, root)
    _assert_traceparent_sampled(server, spans["POST"])


def test_otel_traces_sampler_from_the_environment_is_wrapped(
    build: Build, server: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    pipeline = build()  # configure() makes the provider, which reads OTEL_TRACES_SAMPLER
    assert pipeline.tracer_provider.sampler.get_description() == "AuditSampler{delegate:TraceIdRatioBased{0.0}}"
    root = _workload(pipeline.tracer_provider, server)
    _assert_ours_kept_under_the_dropped_root(_spans(pipeline), root)


def test_always_on_keeps_everything_unchanged(build: Build, server: FakeModelServer) -> None:
    pipeline = build(TracerProvider(sampler=ALWAYS_ON))
    trace_id, root_span_id = _workload(pipeline.tracer_provider, server)
    spans = _spans(pipeline)
    # The recording root span carries the audit events itself: no carrier spans of their own.
    carried = ["llm_audit.decision", "llm_audit.policy"]
    steps = [name for name in OURS if name not in carried]
    assert sorted(spans) == sorted([*steps, *APP, "POST"])
    assert all(s.context.trace_id == trace_id and s.context.trace_flags.sampled for s in spans.values())
    root = spans["handle question"]
    assert root.parent is None and root.context.span_id == root_span_id
    assert [event.name for event in root.events] == carried
    assert root.attributes == {semconv.LLM_AUDIT_AUDIT_RECORD: True}  # no mark: the application's span
    for name in [*steps, "load chart"]:
        assert spans[name].parent is not None and spans[name].parent.span_id == root_span_id, name
    assert _is_child(spans["POST"], spans["chat gpt-4o-mini"])


def test_a_user_wired_processor_keeps_the_http_child_of_a_live_llm_span(server: FakeModelServer) -> None:
    """Without configure(): the LLM span is a live SDK span (the claimed path), known as ours by its scope."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    sampling.install(provider)
    provider.add_span_processor(AuditSpanProcessor([SimpleSpanProcessor(exporter)]))
    set_settings(Settings.from_env(content="none"))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    HttpInstrumentor().instrument(tracer_provider=provider)
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
    with provider.get_tracer("clinic.app").start_as_current_span("handle question") as root:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    client.close()
    assert provider.force_flush(10_000)
    http, llm = sorted(exporter.get_finished_spans(), key=lambda s: s.name)
    assert (http.name, llm.name) == ("POST", "chat gpt-4o-mini")  # not the application's root
    assert llm.parent is not None and llm.parent.span_id == root.get_span_context().span_id
    assert llm.context.trace_id == root.get_span_context().trace_id
    assert _is_child(http, llm)
    _assert_traceparent_sampled(server, http)
    provider.shutdown()


def test_wrapping_is_idempotent(build: Build) -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    first = sampling.install(provider)
    assert sampling.install(provider) is first
    pipeline = build(provider)  # configure() finds the audit sampler already in place
    assert pipeline.tracer_provider.sampler is first
    assert first.delegate is ALWAYS_OFF
    assert AuditSampler(first).delegate is ALWAYS_OFF  # never a wrapper around a wrapper
    assert first.get_description() == "AuditSampler{delegate:AlwaysOffSampler}"


@pytest.mark.parametrize("decision", [Decision.DROP, Decision.RECORD_ONLY])
def test_an_audit_span_is_recorded_and_sampled_with_the_delegates_trace_state(decision: Decision) -> None:
    delegate = _Scripted(decision)
    sampler = AuditSampler(delegate)
    ours = {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.LLM_AUDIT_SDK_VERSION: __version__}
    link = Link(SpanContext(0x1234, 0x99, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)))
    result = sampler.should_sample(None, 0x1234, "chat gpt-4o-mini", SpanKind.CLIENT, ours, [link])
    assert result.decision is Decision.RECORD_AND_SAMPLE
    assert result.trace_state == TraceState([("vendor", "th:8")])
    expected = ours if decision is Decision.DROP else {**ours, "sampler.note": "scripted"}
    assert result.attributes == MappingProxyType(expected)
    assert delegate.asked == ["chat gpt-4o-mini"]  # the delegate is always asked first
    # The application's spans get the delegate's answer as it is.
    theirs = sampler.should_sample(None, 0x1234, "GET /", SpanKind.SERVER, {semconv.GEN_AI_OPERATION_NAME: "chat"})
    assert theirs.decision is decision
    assert delegate.asked == ["chat gpt-4o-mini", "GET /"]


class _Unreadable(dict[str, Any]):
    def __contains__(self, key: object) -> bool:
        raise RuntimeError("attributes that cannot be read")


def test_a_failure_of_ours_leaves_the_applications_decision() -> None:
    _guard.reset_internal_error_counts()
    try:
        result = AuditSampler(ALWAYS_OFF).should_sample(None, 0x1234, "GET /", attributes=_Unreadable(a=1))
        assert result.decision is Decision.DROP
        assert _guard.internal_error_counts() == {"sampling": 1}
    finally:
        _guard.reset_internal_error_counts()
