"""Shared fixtures: the loopback fake model server, an audit pipeline, OpenAI clients.

Everything runs against :class:`~otel_llm_audit.demo.fake_server.FakeModelServer` on
127.0.0.1: the real ``openai`` SDK, its real HTTP stack, no network. The ``audit`` fixture
builds the pipeline with ``configure()`` (our processors in front of an in-memory exporter)
and instruments only the OpenAI SDK, so each test sees exactly the spans it caused.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_llm_audit
from otel_llm_audit import _guard
from otel_llm_audit.bootstrap import AuditPipeline
from otel_llm_audit.config import set_settings
from otel_llm_audit.demo.fake_server import FakeModelServer
from otel_llm_audit.emitter.handoff import SCOPE_PREFIX

# Tests build pipelines that export straight to in-memory exporters; the tests of the local
# audit store (and the demo) name a store explicitly. Subprocesses inherit this too.
os.environ.setdefault("OTEL_LLM_AUDIT_STORE", "off")
# Likewise the audit log records: the tests of them pass their exporters.
os.environ.setdefault("OTEL_LOGS_EXPORTER", "none")

try:  # the openai tests need the SDK; the other test modules do not
    import openai
except ImportError:  # pragma: no cover - openai is part of the dev extra
    openai = None  # type: ignore[assignment]


@dataclass
class Audit:
    """What a test needs from the audit pipeline it runs under."""

    exporter: InMemorySpanExporter
    metric_reader: InMemoryMetricReader
    pipeline: AuditPipeline
    instrumentor: Any
    extra_instrumentors: list[Any] = field(default_factory=list)

    @property
    def tracer_provider(self) -> TracerProvider:
        return self.pipeline.tracer_provider

    @property
    def meter_provider(self) -> MeterProvider:
        assert self.pipeline.meter_provider is not None
        return self.pipeline.meter_provider

    def spans(self) -> list[ReadableSpan]:
        """Every finished span, after the completion worker and the batch processor drained."""
        assert self.pipeline.force_flush(10_000), "the audit pipeline did not flush in time"
        return list(self.exporter.get_finished_spans())

    def llm_spans(self) -> list[ReadableSpan]:
        """Only the spans of otel-llm-audit's instrumentation (not HTTP and the like)."""
        return [
            s
            for s in self.spans()
            if s.instrumentation_scope is not None and s.instrumentation_scope.name.startswith(SCOPE_PREFIX)
        ]

    def only_llm_span(self) -> ReadableSpan:
        """The one LLM span a single call produced (fails if there is not exactly one)."""
        spans = self.llm_spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def add_instrumentor(self, instrumentor: Any) -> Audit:
        """Instrument another library on this pipeline; it is uninstrumented after the test."""
        instrumentor.instrument(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)
        self.extra_instrumentors.append(instrumentor)
        return self

    def clear(self) -> None:
        self.pipeline.force_flush(10_000)
        self.exporter.clear()

    def metrics(self) -> dict[str, list[Any]]:
        """Metric name -> data points, from the in-memory reader."""
        out: dict[str, list[Any]] = {}
        data = self.metric_reader.get_metrics_data()
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out


def _openai_instrumentor() -> Any:
    from otel_llm_audit.instrumentation.openai import OpenAIInstrumentor

    return OpenAIInstrumentor()


def _ensure_uninstrumented() -> None:
    """BaseInstrumentor is a singleton: never let one test's instrumentation leak into the next."""
    if openai is None:
        return
    instrumentor = _openai_instrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture
def fake_server() -> Iterator[FakeModelServer]:
    server = FakeModelServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_audit() -> Iterator[Callable[..., Audit]]:
    """Build an audit pipeline with the given settings (``content="hash"``, ...)."""
    built: list[Audit] = []

    def build(**settings: Any) -> Audit:
        _ensure_uninstrumented()
        settings.setdefault("content", "raw")
        exporter = InMemorySpanExporter()
        reader = InMemoryMetricReader()
        pipeline = otel_llm_audit.configure(
            span_exporters=[exporter],
            metric_readers=[reader],
            tracer_provider=TracerProvider(),
            set_global=False,
            instrument=False,
            **settings,
        )
        instrumentor = _openai_instrumentor()
        instrumentor.instrument(tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider)
        audit = Audit(exporter, reader, pipeline, instrumentor)
        built.append(audit)
        return audit

    _guard.reset_internal_error_counts()
    try:
        yield build
    finally:
        for audit in reversed(built):
            for extra in audit.extra_instrumentors:
                if extra.is_instrumented_by_opentelemetry:
                    extra.uninstrument()
            _ensure_uninstrumented()
            audit.pipeline.shutdown()
        set_settings(None)
        _guard.reset_internal_error_counts()


@pytest.fixture
def audit(make_audit: Callable[..., Audit], request: pytest.FixtureRequest) -> Audit:
    """The default pipeline: raw content, OpenAI instrumented, nothing else.

    Other settings through indirect parametrization::

        @pytest.mark.parametrize("audit", [{"content": "hash"}], indirect=True)

    ``client`` and ``async_client`` are built after it when a test uses both.
    """
    settings = dict(getattr(request, "param", None) or {"content": "raw"})
    return make_audit(**settings)


@pytest.fixture(autouse=True)
def _leave_openai_uninstrumented() -> Iterator[None]:
    yield
    _ensure_uninstrumented()


@pytest.fixture
def make_client(fake_server: FakeModelServer) -> Iterator[Callable[[], Any]]:
    """Make a sync client on demand (after ``make_audit(...)``), closed after the test."""
    if openai is None:  # pragma: no cover
        pytest.skip("openai is not installed")
    made: list[Any] = []

    def make() -> Any:
        made.append(openai.OpenAI(base_url=fake_server.base_url, api_key="sk-test", max_retries=0))
        return made[-1]

    try:
        yield make
    finally:
        for c in made:
            c.close()


def _audit_first(request: pytest.FixtureRequest) -> None:
    """Instrument before the client exists when the test uses ``audit`` (see its docstring)."""
    if "audit" in request.fixturenames:
        request.getfixturevalue("audit")


@pytest.fixture
def client(make_client: Callable[[], Any], request: pytest.FixtureRequest) -> Any:
    _audit_first(request)
    return make_client()


@pytest.fixture
async def async_client(fake_server: FakeModelServer, request: pytest.FixtureRequest) -> Any:
    if openai is None:  # pragma: no cover
        pytest.skip("openai is not installed")
    _audit_first(request)
    c = openai.AsyncOpenAI(base_url=fake_server.base_url, api_key="sk-test", max_retries=0)
    try:
        yield c
    finally:
        await c.close()
