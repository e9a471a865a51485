"""Trace context and audit identity, against the real loopback server.

The HTTP client span must nest under the LLM span and the ``traceparent`` the server receives
must name them; the audit identity must be on both spans, follow nested contexts, decorators,
asyncio tasks and (with the threading instrumentation) thread pools, and reach the cost metric.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from opentelemetry.instrumentation.threading import ThreadingInstrumentor
from opentelemetry.trace import SpanKind

import otel_llm_audit
from otel_llm_audit import semconv

_base_client = pytest.importorskip("openai._base_client")
USES_HTTPX2 = hasattr(_base_client, "httpx2")

IDENTITY = {
    "user_id": "u-17",
    "session_id": "s-9",
    "actor_type": "human",
    "auth_method": "oauth2",
    "tenant_id": "clinic-3",
    "team": "triage",
    "application": "discharge-assistant",
}
EXPECTED_IDENTITY = {
    semconv.USER_ID: "u-17",
    semconv.SESSION_ID: "s-9",
    semconv.LLM_AUDIT_ACTOR_TYPE: "human",
    semconv.LLM_AUDIT_AUTH_METHOD: "oauth2",
    semconv.LLM_AUDIT_TENANT_ID: "clinic-3",
    semconv.LLM_AUDIT_TEAM: "triage",
    semconv.LLM_AUDIT_APPLICATION: "discharge-assistant",
}
MESSAGES = [{"role": "user", "content": "Hi"}]


def _identity_of(span: Any) -> dict[str, Any]:
    return {k: span.attributes[k] for k in EXPECTED_IDENTITY if k in span.attributes}


@pytest.fixture
def http_spans(audit: Any) -> Iterator[Any]:
    """Instrument the HTTP library ``openai`` is built on (httpx2 for 3.x, httpx before)."""
    from opentelemetry.instrumentation import httpx as httpx_instrumentation

    cls = (
        httpx_instrumentation.HTTPX2ClientInstrumentor if USES_HTTPX2 else httpx_instrumentation.HTTPXClientInstrumentor
    )
    instrumentor = cls()
    instrumentor.instrument(tracer_provider=audit.tracer_provider)
    assert instrumentor.is_instrumented_by_opentelemetry, "HTTP instrumentation refused to install"
    audit.extra_instrumentors.append(instrumentor)
    try:
        yield instrumentor
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def threading_instrumented(audit: Any) -> Iterator[None]:
    instrumentor = ThreadingInstrumentor()
    instrumentor.instrument(tracer_provider=audit.tracer_provider)
    audit.extra_instrumentors.append(instrumentor)
    try:
        yield
    finally:
        instrumentor.uninstrument()


def _traceparent(trace_id: int, parent: Any) -> str:
    """W3C ``traceparent``; the flags are the parent's (sampled, plus "random" on newer SDKs)."""
    return f"00-{trace_id:032x}-{parent.context.span_id:016x}-{int(parent.context.trace_flags):02x}"


def _llm_and_http(audit: Any) -> tuple[Any, Any]:
    spans = audit.spans()
    llm = [s for s in spans if s.instrumentation_scope.name.startswith("otel_llm_audit")]
    http = [s for s in spans if s.instrumentation_scope.name.startswith("opentelemetry.instrumentation.httpx")]
    assert len(llm) == 1, [s.name for s in spans]
    assert len(http) == 1, [s.name for s in spans]
    return llm[0], http[0]


# ----------------------------------------------------------------------------- trace context


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_http_span_nests_under_llm_span_and_traceparent_names_it(
    audit: Any, http_spans: Any, fake_server: Any, client: Any, stream: bool
) -> None:
    result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=stream)
    if stream:
        list(result)
    llm, http = _llm_and_http(audit)
    assert http.kind is SpanKind.CLIENT
    assert http.parent is not None
    assert http.parent.span_id == llm.context.span_id
    assert http.context.trace_id == llm.context.trace_id
    assert llm.parent is None
    # The HTTP span is inside the LLM span in time too.
    assert llm.start_time <= http.start_time <= http.end_time <= llm.end_time

    assert len(fake_server.requests) == 1
    traceparent = fake_server.requests[0].headers["traceparent"]
    assert traceparent == _traceparent(llm.context.trace_id, http)


async def test_async_http_span_nests_under_llm_span(
    audit: Any, http_spans: Any, fake_server: Any, async_client: Any
) -> None:
    await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    llm, http = _llm_and_http(audit)
    assert http.parent.span_id == llm.context.span_id
    traceparent = fake_server.requests[0].headers["traceparent"]
    assert traceparent == _traceparent(llm.context.trace_id, http)


def test_llm_span_nests_under_the_application_span(audit: Any, http_spans: Any, fake_server: Any, client: Any) -> None:
    tracer = audit.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle request") as app_span:
        client.embeddings.create(model="text-embedding-3-small", input="hello")
    llm, http = _llm_and_http(audit)
    app_context = app_span.get_span_context()
    assert llm.parent.span_id == app_context.span_id
    assert llm.context.trace_id == http.context.trace_id == app_context.trace_id
    assert http.parent.span_id == llm.context.span_id
    assert fake_server.requests[0].headers["traceparent"].split("-")[1:3] == [
        f"{app_context.trace_id:032x}",
        f"{http.context.span_id:016x}",
    ]


# ----------------------------------------------------------------------------- identity


def test_identity_on_llm_and_http_spans(audit: Any, http_spans: Any, client: Any) -> None:
    with otel_llm_audit.audit_context(**IDENTITY):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    llm, http = _llm_and_http(audit)
    assert _identity_of(llm) == EXPECTED_IDENTITY
    assert _identity_of(http) == EXPECTED_IDENTITY

    audit.clear()
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # outside: nobody
    llm, http = _llm_and_http(audit)
    assert _identity_of(llm) == {}
    assert _identity_of(http) == {}


def test_nested_contexts_inherit_and_override(audit: Any, client: Any) -> None:
    outer = {k: v for k, v in IDENTITY.items() if k != "session_id"}
    with otel_llm_audit.audit_context(**outer):
        with otel_llm_audit.audit_context(session_id="s-inner", team="billing"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        inner_span = audit.only_llm_span()
        audit.clear()
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    outer_span = audit.only_llm_span()
    assert _identity_of(inner_span) == {
        **EXPECTED_IDENTITY,
        semconv.SESSION_ID: "s-inner",
        semconv.LLM_AUDIT_TEAM: "billing",
    }
    expected_outer = dict(EXPECTED_IDENTITY)
    del expected_outer[semconv.SESSION_ID]
    assert _identity_of(outer_span) == expected_outer


def test_decorator_on_sync_function(audit: Any, client: Any) -> None:
    @otel_llm_audit.audit_context(user_id="u-dec", actor_type="service")
    def job() -> str:
        return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).id

    assert job() == "chatcmpl-fake-1"
    assert job.__name__ == "job"
    assert _identity_of(audit.only_llm_span()) == {semconv.USER_ID: "u-dec", semconv.LLM_AUDIT_ACTOR_TYPE: "service"}


async def test_decorator_on_async_function(audit: Any, async_client: Any) -> None:
    @otel_llm_audit.audit_context(user_id="u-adec", actor_type="agent")
    async def job() -> str:
        result = await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        return result.id

    assert await job() == "chatcmpl-fake-1"
    assert _identity_of(audit.only_llm_span()) == {semconv.USER_ID: "u-adec", semconv.LLM_AUDIT_ACTOR_TYPE: "agent"}


async def test_identity_follows_into_asyncio_tasks(audit: Any, async_client: Any) -> None:
    async def call(tag: str) -> None:
        await async_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": tag}])

    async def as_user(user: str) -> None:
        async with otel_llm_audit.audit_context(user_id=user, tenant_id=f"t-{user}"):
            await asyncio.create_task(call(user))

    await asyncio.gather(as_user("alice"), as_user("bob"), as_user("carol"))
    spans = audit.llm_spans()
    assert len(spans) == 3
    by_prompt = {
        json.loads(s.attributes[semconv.GEN_AI_INPUT_MESSAGES])[0]["parts"][0]["content"]: _identity_of(s)
        for s in spans
    }
    assert by_prompt == {
        user: {semconv.USER_ID: user, semconv.LLM_AUDIT_TENANT_ID: f"t-{user}"} for user in ("alice", "bob", "carol")
    }


def test_identity_follows_into_thread_pool_with_threading_instrumentation(
    audit: Any, threading_instrumented: None, client: Any
) -> None:
    with otel_llm_audit.audit_context(**IDENTITY), ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(client.chat.completions.create, model="gpt-4o-mini", messages=MESSAGES) for _ in range(2)
        ]
        assert [f.result().object for f in futures] == ["chat.completion", "chat.completion"]
    spans = audit.llm_spans()
    assert len(spans) == 2
    assert [_identity_of(s) for s in spans] == [EXPECTED_IDENTITY, EXPECTED_IDENTITY]


def test_thread_pool_without_threading_instrumentation_loses_identity(audit: Any, client: Any) -> None:
    """The contrast that shows why ``configure()`` installs the threading instrumentation."""
    assert not ThreadingInstrumentor().is_instrumented_by_opentelemetry
    with otel_llm_audit.audit_context(**IDENTITY), ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(client.chat.completions.create, model="gpt-4o-mini", messages=MESSAGES).result()
    assert _identity_of(audit.only_llm_span()) == {}


# ----------------------------------------------------------------------------- metrics


def test_cost_metric_carries_team_and_application(audit: Any, client: Any, fake_server: Any) -> None:
    with otel_llm_audit.audit_context(**IDENTITY):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with otel_llm_audit.audit_context(team="research", application="notebook"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    spans = sorted(audit.llm_spans(), key=lambda s: s.start_time)
    costs = [s.attributes[semconv.LLM_AUDIT_COST_USD] for s in spans]
    assert all(c > 0 for c in costs)

    metrics = audit.metrics()
    cost_points = {tuple(sorted(p.attributes.items())): p.value for p in metrics[semconv.METRIC_LLM_AUDIT_COST]}
    assert cost_points == {
        tuple(
            sorted(
                {
                    semconv.GEN_AI_PROVIDER_NAME: "openai",
                    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                    semconv.LLM_AUDIT_TEAM: "triage",
                    semconv.LLM_AUDIT_APPLICATION: "discharge-assistant",
                    semconv.LLM_AUDIT_TENANT_ID: "clinic-3",
                }.items()
            )
        ): pytest.approx(costs[0]),
        tuple(
            sorted(
                {
                    semconv.GEN_AI_PROVIDER_NAME: "openai",
                    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                    semconv.LLM_AUDIT_TEAM: "research",
                    semconv.LLM_AUDIT_APPLICATION: "notebook",
                }.items()
            )
        ): pytest.approx(costs[1]),
    }
    # No user id in metric dimensions: it would explode cardinality and spread personal data.
    for point in metrics[semconv.METRIC_LLM_AUDIT_COST]:
        assert semconv.USER_ID not in point.attributes

    token_points = {
        p.attributes[semconv.GEN_AI_TOKEN_TYPE]: p for p in metrics[semconv.METRIC_GEN_AI_CLIENT_TOKEN_USAGE]
    }
    assert set(token_points) == {"input", "output"}
    assert (token_points["input"].count, token_points["input"].sum) == (2, 2)  # "Hi" -> 1 token, twice
    assert (token_points["output"].count, token_points["output"].sum) == (2, 14)
    assert dict(token_points["input"].attributes) == {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2026-01-01",
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: fake_server.port,
        semconv.GEN_AI_TOKEN_TYPE: "input",
    }
    (duration,) = metrics[semconv.METRIC_GEN_AI_CLIENT_OPERATION_DURATION]
    assert duration.count == 2
    assert semconv.METRIC_GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK not in metrics  # nothing streamed


def test_error_duration_metric_has_error_type(audit: Any, client: Any) -> None:
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="error-429", messages=MESSAGES)
    audit.spans()
    (point,) = audit.metrics()[semconv.METRIC_GEN_AI_CLIENT_OPERATION_DURATION]
    assert point.attributes[semconv.ERROR_TYPE] == "openai.RateLimitError"
    assert point.count == 1
    assert semconv.METRIC_LLM_AUDIT_COST not in audit.metrics()
