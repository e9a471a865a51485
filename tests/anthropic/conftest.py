"""Fixtures of the Anthropic tests: a pipeline with the instrumentor, and real SDK clients on the fake server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anthropic
import pytest

from otel_llm_audit.demo.fake_server import FakeModelServer
from otel_llm_audit.instrumentation.anthropic import AnthropicInstrumentor


@pytest.fixture
def audit_anthropic(make_audit: Callable[..., Any]) -> Callable[..., Any]:
    """Build a pipeline (``make_audit``) with the library instrumented on it."""
    return lambda **settings: make_audit(**settings).add_instrumentor(AnthropicInstrumentor())


@pytest.fixture
def audit(audit_anthropic: Callable[..., Any]) -> Any:
    return audit_anthropic(content="raw")


@pytest.fixture
def client(audit: Any, fake_server: FakeModelServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake_server.anthropic_base_url, api_key="sk-ant-test", max_retries=0) as c:
        yield c


@pytest.fixture
async def async_client(audit: Any, fake_server: FakeModelServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=fake_server.anthropic_base_url, api_key="sk-ant-test", max_retries=0
    ) as c:
        yield c
