"""Fixtures for the Google Gen AI tests: the real ``google-genai`` SDK on the loopback fake server.

``client`` is parametrized over both backends: the Gemini API (an API key) and Vertex AI (a
project, a location and an OAuth token that never needs refreshing), each pointed at the fake
server's root through ``http_options.base_url``. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from genai_helpers import close, make_client

from otel_llm_audit.demo.fake_server import FakeModelServer
from otel_llm_audit.instrumentation.google_genai import GoogleGenAIInstrumentor


@pytest.fixture
def audit_google(make_audit: Callable[..., Any]) -> Callable[..., Any]:
    """Build a pipeline (``make_audit``) with google-genai instrumented on it."""
    return lambda **settings: make_audit(**settings).add_instrumentor(GoogleGenAIInstrumentor())


@pytest.fixture
def audit(audit_google: Callable[..., Any]) -> Any:
    return audit_google(content="raw")


@pytest.fixture(params=["gemini", "vertex"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(audit: Any, fake_server: FakeModelServer, backend: str) -> Iterator[Any]:
    made = make_client(fake_server, backend)
    yield made
    close(made)
