"""Helpers shared by the Google Gen AI tests (imported by name: the test directories have no packages)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from otel_llm_audit import semconv
from otel_llm_audit.demo.fake_server import FakeModelServer

genai = pytest.importorskip("google.genai")

SCOPE = "otel_llm_audit.instrumentation.google_genai"
PROJECT = "audit-project"
LOCATION = "us-central1"
PROVIDERS = {"gemini": "gcp.gemini", "vertex": "gcp.vertex_ai"}


def make_client(server: FakeModelServer, backend: str) -> Any:
    """A ``genai.Client`` for ``backend`` (``gemini`` or ``vertex``) on the fake server."""
    options = {"base_url": server.google_base_url}
    if backend == "vertex":
        from google.oauth2.credentials import Credentials

        return genai.Client(
            vertexai=True,
            project=PROJECT,
            location=LOCATION,
            credentials=Credentials(token="ya29.fake-token"),
            http_options=options,
        )
    return genai.Client(api_key="AIza-fake-key", http_options=options)


def close(client: Any) -> None:
    closer = getattr(client, "close", None)  # google-genai >= 1.2x
    if callable(closer):
        closer()


def ours(audit: Any) -> list[ReadableSpan]:
    return sorted(
        (s for s in audit.spans() if s.instrumentation_scope is not None and s.instrumentation_scope.name == SCOPE),
        key=lambda s: s.start_time or 0,
    )


def only(audit: Any) -> ReadableSpan:
    spans = ours(audit)
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def content(span: ReadableSpan, key: str) -> Any:
    return json.loads(span.attributes[key])


def policy(action: str, source: str, name: str, details: dict[str, Any]) -> dict[str, Any]:
    """The exact attributes of one Google ``llm_audit.policy`` event."""
    return {
        semconv.LLM_AUDIT_POLICY_CATEGORY: "content_filter",
        semconv.LLM_AUDIT_POLICY_ACTION: action,
        semconv.LLM_AUDIT_POLICY_SOURCE: source,
        semconv.LLM_AUDIT_POLICY_NAME: name,
        semconv.LLM_AUDIT_POLICY_DETAILS: details,
    }
