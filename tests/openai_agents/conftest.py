"""Fixtures of the OpenAI Agents SDK tests: real ``agents.Agent`` / ``Runner`` on the loopback fake server.

``agents_audit`` is the shared ``audit`` pipeline (raw content, the OpenAI instrumentor
installed) plus the Agents instrumentor; ``make_agents_audit`` builds one with other
settings or without the OpenAI instrumentor. Each test leaves the SDK's trace processors as
it found them (the instrumentor is a singleton; ``uninstrument`` restores them).

The modules import ``agents`` with ``pytest.importorskip`` themselves: this directory is
skipped where openai-agents cannot be installed (the oldest-SDKs environment).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otel_llm_audit.demo.fake_server import FakeModelServer


@pytest.fixture(autouse=True)
def _sdk_processors_untouched() -> Iterator[None]:
    """Leave the SDK's processors (and our instrumentor) as they were before the test."""
    tracing = pytest.importorskip("agents.tracing")
    from otel_llm_audit.instrumentation.openai_agents import OpenAIAgentsInstrumentor
    from otel_llm_audit.instrumentation.openai_agents._sdk import read_processors

    before = read_processors(tracing.get_trace_provider())
    yield
    instrumentor = OpenAIAgentsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor._keep_sdk_exporter = None  # the constructor choice outlives the test otherwise (singleton)
    tracing.set_trace_processors(list(before or ()))


@pytest.fixture
def make_agents_audit(make_audit: Callable[..., Any]) -> Callable[..., Any]:
    """``make_agents_audit(openai=True, keep_sdk_exporter=None, **settings)``: the Agents SDK instrumented too."""
    from otel_llm_audit.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    def build(openai: bool = True, keep_sdk_exporter: bool | None = None, **settings: Any) -> Any:
        audit = make_audit(**settings)
        if not openai:
            audit.instrumentor.uninstrument()
        return audit.add_instrumentor(OpenAIAgentsInstrumentor(keep_sdk_exporter=keep_sdk_exporter))

    return build


@pytest.fixture
def agents_audit(make_agents_audit: Callable[..., Any]) -> Any:
    return make_agents_audit()


@pytest.fixture
def make_model(fake_server: FakeModelServer) -> Iterator[Callable[..., Any]]:
    """``make_model(api, name="gpt-4o-mini", across_loops=False)``: a model on a fresh ``AsyncOpenAI`` client.

    One client per model: ``Runner.run_sync`` runs each call on an event loop of its own.
    """
    import openai
    from agents import OpenAIChatCompletionsModel, OpenAIResponsesModel

    clients: list[Any] = []

    def make(api: str, name: str = "gpt-4o-mini", *, across_loops: bool = False) -> Any:
        """``across_loops``: no kept-alive connections, so one client serves several event loops (a resumed run)."""
        extra: dict[str, Any] = {}
        if across_loops:
            from openai._base_client import DEFAULT_CONNECTION_LIMITS

            limits = type(DEFAULT_CONNECTION_LIMITS)(max_connections=10, max_keepalive_connections=0)
            extra["http_client"] = openai.DefaultAsyncHttpxClient(limits=limits)
        client = openai.AsyncOpenAI(base_url=fake_server.base_url, api_key="sk-test", max_retries=0, **extra)
        clients.append(client)
        if api == "chat":
            return OpenAIChatCompletionsModel(model=name, openai_client=client)
        return OpenAIResponsesModel(model=name, openai_client=client)

    yield make
    for client in clients:  # on a loop of its own: the one the client ran on is closed by now
        with contextlib.suppress(Exception):
            asyncio.run(client.close())
