"""Audit identity across spans, tasks and processes; settings from the environment."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import baggage, propagate
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm_audit import AuditIdentity, AuditIdentitySpanProcessor, audit_context, current_identity, semconv
from otel_llm_audit.config import ContentMode, Settings, set_settings
from otel_llm_audit.context import allowed_baggage_fields

FULL = {
    semconv.USER_ID: "u-17",
    semconv.SESSION_ID: "s-9",
    semconv.LLM_AUDIT_ACTOR_TYPE: "human",
    semconv.LLM_AUDIT_AUTH_METHOD: "oauth2",
    semconv.LLM_AUDIT_TENANT_ID: "clinic-3",
    semconv.LLM_AUDIT_TEAM: "triage",
    semconv.LLM_AUDIT_APPLICATION: "discharge-assistant",
}


@pytest.fixture(autouse=True)
def _settings_read_afresh() -> Iterator[None]:
    """Tests here change the environment: settings cached from it must not outlive them."""
    set_settings(None)
    yield
    set_settings(None)


def _ctx() -> audit_context:
    return audit_context(
        user_id="u-17",
        session_id="s-9",
        actor_type="human",
        auth_method="oauth2",
        tenant_id="clinic-3",
        team="triage",
        application="discharge-assistant",
    )


@pytest.fixture
def traced() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(AuditIdentitySpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_every_span_inside_carries_the_identity(traced: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = traced
    tracer = provider.get_tracer("some.database.instrumentation")
    with _ctx():
        tracer.start_span("SELECT patients").end()
    tracer.start_span("outside").end()
    inside, outside = exporter.get_finished_spans()
    assert {k: inside.attributes[k] for k in FULL} == FULL
    assert not set(FULL) & set(outside.attributes or {})


def test_nested_context_inherits_and_overrides() -> None:
    with audit_context(application="app", team="a"), audit_context(user_id="u2", team="b") as identity:
        assert (identity.application, identity.team, identity.user_id) == ("app", "b", "u2")
        assert current_identity() == identity
    assert current_identity() is None


def test_decorator_sync_and_async_and_tasks() -> None:
    @audit_context(user_id="sync-user")
    def sync_fn() -> str | None:
        identity = current_identity()
        return identity.user_id if identity else None

    @audit_context(user_id="async-user", actor_type="agent")
    async def async_fn() -> tuple[str | None, str | None]:
        async def child() -> str | None:
            identity = current_identity()
            return identity.user_id if identity else None

        seen_in_task = await asyncio.create_task(child())
        identity = current_identity()
        return seen_in_task, identity.actor_type if identity else None

    assert sync_fn() == "sync-user"
    assert asyncio.run(async_fn()) == ("async-user", "agent")
    assert current_identity() is None


def test_invalid_actor_type_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="actor_type must be one of"):
        audit_context(actor_type="robot")  # type: ignore[arg-type]


def test_baggage_carries_only_allowed_keys_and_downstream_restores_them(
    monkeypatch: pytest.MonkeyPatch, traced: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    monkeypatch.setenv("OTEL_LLM_AUDIT_BAGGAGE_KEYS", "tenant_id,llm_audit.team")
    set_settings(None)  # settings are read from the environment again
    carrier: dict[str, str] = {}
    with _ctx():
        propagate.inject(carrier)
    assert "u-17" not in carrier.get("baggage", "")  # user ids stay home by default
    assert "llm_audit.tenant.id=clinic-3" in carrier["baggage"]
    assert "llm_audit.team=triage" in carrier["baggage"]

    # The downstream service: extract the incoming context and start its server span in it.
    provider, exporter = traced
    token = otel_context.attach(propagate.extract(carrier))
    try:
        provider.get_tracer("downstream.http.server").start_span("POST /score").end()
    finally:
        otel_context.detach(token)
    (span,) = exporter.get_finished_spans()
    assert span.attributes[semconv.LLM_AUDIT_TENANT_ID] == "clinic-3"
    assert span.attributes[semconv.LLM_AUDIT_TEAM] == "triage"
    assert semconv.USER_ID not in span.attributes


def test_downstream_ignores_baggage_keys_it_does_not_allow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_LLM_AUDIT_BAGGAGE_KEYS", "")
    set_settings(None)
    ctx = baggage.set_baggage(semconv.USER_ID, "spoofed")
    assert current_identity(ctx) is None


def test_baggage_keys_given_in_code_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_LLM_AUDIT_BAGGAGE_KEYS", "")
    set_settings(Settings.from_env(baggage_keys="tenant_id"))  # what configure(baggage_keys=...) does
    try:
        carrier: dict[str, str] = {}
        with _ctx():
            propagate.inject(carrier)
        assert carrier["baggage"] == "llm_audit.tenant.id=clinic-3"
        assert current_identity(baggage.set_baggage(semconv.LLM_AUDIT_TENANT_ID, "clinic-3")) == AuditIdentity(
            tenant_id="clinic-3"
        )
    finally:
        set_settings(None)


def test_allowed_baggage_fields_parsing() -> None:
    assert allowed_baggage_fields("") == frozenset()
    assert allowed_baggage_fields("all") == frozenset(
        {"user_id", "session_id", "actor_type", "auth_method", "tenant_id", "team", "application"}
    )
    assert allowed_baggage_fields(" team , user.id, nonsense") == frozenset({"team", "user_id"})


def test_content_mode_from_our_variable_and_the_sigs(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OTEL_LLM_AUDIT_CONTENT", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"):
        monkeypatch.delenv(var, raising=False)
    assert Settings.from_env().content is ContentMode.MASKED  # the default
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    assert Settings.from_env().content is ContentMode.MASKED  # capture means masked capture
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "false")
    assert Settings.from_env().content is ContentMode.NONE
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "EVENT_ONLY")
    assert Settings.from_env().content is ContentMode.NONE
    monkeypatch.setenv("OTEL_LLM_AUDIT_CONTENT", "hash")  # ours wins
    assert Settings.from_env().content is ContentMode.HASH
    assert Settings.from_env(content="raw").content is ContentMode.RAW  # code wins
    monkeypatch.setenv("OTEL_LLM_AUDIT_CONTENT", "everything")
    with pytest.raises(ValueError, match="OTEL_LLM_AUDIT_CONTENT must be one of none, hash, raw, masked"):
        Settings.from_env()


def test_bad_numbers_and_unknown_settings_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_LLM_AUDIT_QUEUE_SIZE", "lots")
    with pytest.raises(ValueError, match="OTEL_LLM_AUDIT_QUEUE_SIZE must be an integer"):
        Settings.from_env()
    monkeypatch.delenv("OTEL_LLM_AUDIT_QUEUE_SIZE")
    with pytest.raises(TypeError, match="unknown otel-llm-audit setting 'contnet'"):
        Settings.from_env(contnet="raw")


def test_every_setting_is_documented_in_the_readme() -> None:
    from pathlib import Path

    from otel_llm_audit.config import ENVIRONMENT_VARIABLES

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for field, variable in ENVIRONMENT_VARIABLES.items():
        assert f"| `{field}` | `{variable}` |" in readme, field
    assert set(ENVIRONMENT_VARIABLES) == set(Settings.__dataclass_fields__)
