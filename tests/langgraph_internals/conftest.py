"""Fixtures of the LangGraph internals tests: pipelines that stand for separate processes.

Each call of ``new_process()`` builds what a fresh process would have: its own
TracerProvider and in-memory exporter, and our LangGraph hooks installed on it from scratch
(``uninstall`` first, which also forgets every pause this "process" did not persist). A
resume that still links to its pause after that can only have read the link from the
checkpoint, as it would in another process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from lg_internals_spans import SCOPE, Process
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm_audit import _guard
from otel_llm_audit.config import Settings, set_settings
from otel_llm_audit.emitter.spans import Emitter
from otel_llm_audit.instrumentation.langchain import _langgraph


@pytest.fixture
def new_process() -> Iterator[Callable[[], Process]]:
    set_settings(Settings.from_env(content="raw"))
    _guard.reset_internal_error_counts()
    made: list[Process] = []

    def make() -> Process:
        _langgraph.uninstall()
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        process = Process(provider, exporter, Emitter(SCOPE, provider))
        _langgraph.install(process.emitter)
        made.append(process)
        return process

    try:
        yield make
    finally:
        _langgraph.uninstall()
        for process in made:
            process.provider.shutdown()
        set_settings(None)
        _guard.reset_internal_error_counts()


@pytest.fixture
def lg(new_process: Callable[[], Process]) -> Process:
    """One process with our LangGraph hooks installed on it."""
    return new_process()
