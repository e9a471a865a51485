"""Budgets that enforce block AWS Bedrock and Google Gen AI calls before anything is sent.

tests/test_budgets.py proves it for the Stainless SDKs (openai, anthropic); the Bedrock
(botocore) and Google Gen AI wrappers have start guards of their own, and a guard that
swallowed the refusal would send the call anyway. So each provider is driven through its real
SDK against the loopback fake model server: one call exhausts a tiny token budget, the next
raises :class:`~otel_llm_audit.BudgetExceededError` and the server's request log shows that
nothing arrived. The blocked call is an error span with the ``blocked`` policy event. A budget
that is not exhausted changes neither the SDK's result nor its own errors.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_llm_audit import Budget, BudgetExceededError, PolicyConfig, semconv
from otel_llm_audit.demo import fake_server as fs
from otel_llm_audit.demo.fake_server import FakeModelServer

BLOCKED_TYPE = "otel_llm_audit.BudgetExceededError"
LIMIT = 5  # tokens: one call of "Hi there" (3 in, 7 out with the fake server's counting) exhausts it
USER_TEXT = "Hi there"
IN_TOKENS, OUT_TOKENS = len(USER_TEXT) // 4 + 1, len(fs.HELLO_ANSWER) // 4 + 1

BEDROCK_SCOPE = "otel_llm_audit.instrumentation.bedrock"
CLAUDE = "anthropic.claude-haiku-4-5-20251001-v1:0"
CONVERSE_USER = [{"role": "user", "content": [{"text": USER_TEXT}]}]
INVOKE_BODY = json.dumps(
    {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "messages": [{"role": "user", "content": USER_TEXT}]}
)

GOOGLE_SCOPE = "otel_llm_audit.instrumentation.google_genai"
GEMINI = "gemini-2.5-flash"
GOOGLE_PROVIDERS = {"gemini": "gcp.gemini", "vertex": "gcp.vertex_ai"}


def _budget(name: str, limit: int = LIMIT) -> Budget:
    return Budget(name=name, period="day", limit_tokens=limit, enforce=True, thresholds=(1.0,))


@pytest.fixture
def budgeted(make_audit: Callable[..., Any], tmp_path: Path) -> Callable[..., Any]:
    """A pipeline (``make_audit``) with ``budgets`` in force and ``instrumentor`` installed on it."""

    def build(instrumentor: Any, *budgets: Budget) -> Any:
        audit = make_audit(content="raw", policy=PolicyConfig(budgets=budgets), budget_ledger=str(tmp_path / "b.db"))
        return audit.add_instrumentor(instrumentor)

    return build


def _ours(audit: Any, scope: str) -> list[ReadableSpan]:
    return sorted(
        (s for s in audit.spans() if s.instrumentation_scope is not None and s.instrumentation_scope.name == scope),
        key=lambda s: s.start_time or 0,
    )


def _policy(span: ReadableSpan) -> list[dict[str, Any]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == semconv.EVENT_LLM_AUDIT_POLICY]


def _budget_event(action: str, name: str, period_key: str, spend: float) -> dict[str, Any]:
    """The exact attributes of the ``llm_audit.policy`` event of a budget with ``_budget(name)``."""
    return {
        semconv.LLM_AUDIT_POLICY_CATEGORY: "budget",
        semconv.LLM_AUDIT_POLICY_ACTION: action,
        semconv.LLM_AUDIT_POLICY_SOURCE: "otel_llm_audit.budgets",
        semconv.LLM_AUDIT_POLICY_NAME: name,
        semconv.LLM_AUDIT_BUDGET_NAME: name,
        semconv.LLM_AUDIT_BUDGET_SCOPE: "{}",
        semconv.LLM_AUDIT_BUDGET_PERIOD: "day",
        semconv.LLM_AUDIT_BUDGET_PERIOD_KEY: period_key,
        semconv.LLM_AUDIT_BUDGET_UNIT: "tokens",
        semconv.LLM_AUDIT_BUDGET_LIMIT: float(LIMIT),
        semconv.LLM_AUDIT_BUDGET_SPEND: spend,
        semconv.LLM_AUDIT_BUDGET_ENFORCED: True,
        semconv.LLM_AUDIT_BUDGET_THRESHOLD: 1.0,
    }


def _check_blocked(
    spans: list[ReadableSpan], raised: BudgetExceededError, name: str, request_model: str, provider: str
) -> None:
    """The first span exhausted budget ``name``; the second is the blocked call, recorded as such."""
    passed, blocked = spans
    attrs = passed.attributes or {}
    spend = attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] + attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]
    assert passed.end_time is not None
    day = time.strftime("%Y-%m-%d", time.gmtime(passed.end_time / 1e9))
    assert _policy(passed) == [_budget_event("flagged", name, day, spend)]
    assert (raised.budget, raised.scope, raised.period, raised.spend, raised.limit, raised.unit) == (
        name, {}, day, spend, LIMIT, "tokens",
    )  # fmt: skip
    assert blocked.status.status_code is StatusCode.ERROR
    message = f"budget {name!r} exhausted for {{}} in period {day}: {spend} of {LIMIT} tokens"
    assert blocked.status.description == str(raised) == message
    assert [e.name for e in blocked.events] == ["exception", semconv.EVENT_LLM_AUDIT_POLICY]
    exception = blocked.events[0].attributes or {}
    assert (exception[semconv.EXCEPTION_TYPE], exception[semconv.EXCEPTION_MESSAGE]) == (BLOCKED_TYPE, str(raised))
    battrs = blocked.attributes or {}
    assert battrs[semconv.ERROR_TYPE] == BLOCKED_TYPE
    assert battrs[semconv.LLM_AUDIT_AUDIT_RECORD] is True
    assert battrs[semconv.GEN_AI_REQUEST_MODEL] == request_model
    assert battrs[semconv.GEN_AI_PROVIDER_NAME] == provider
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in battrs
    assert semconv.GEN_AI_USAGE_OUTPUT_TOKENS not in battrs
    assert _policy(blocked) == [_budget_event("blocked", name, day, spend)]


# ----------------------------------------------------------------------------- AWS Bedrock


@pytest.fixture
def bedrock_client(fake_server: FakeModelServer) -> Iterator[Any]:
    boto3 = pytest.importorskip("boto3")
    made = boto3.client(
        "bedrock-runtime",
        endpoint_url=fake_server.bedrock_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    yield made
    made.close()


def _bedrock_instrumentor() -> Any:
    from otel_llm_audit.instrumentation.bedrock import BedrockInstrumentor

    return BedrockInstrumentor()


def _converse(client: Any) -> Any:
    return client.converse(modelId=CLAUDE, messages=CONVERSE_USER)


def _converse_stream(client: Any) -> Any:
    response = client.converse_stream(modelId=CLAUDE, messages=CONVERSE_USER)
    return list(response["stream"])


def _invoke_model(client: Any) -> Any:
    response = client.invoke_model(modelId=CLAUDE, body=INVOKE_BODY)
    return json.loads(response["body"].read())


def _invoke_model_stream(client: Any) -> Any:
    response = client.invoke_model_with_response_stream(modelId=CLAUDE, body=INVOKE_BODY)
    return [json.loads(e["chunk"]["bytes"]) for e in response["body"]]


BEDROCK_CALLS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "converse": ("converse", _converse),
    "converse_stream": ("converse_stream", _converse_stream),
    "invoke_model": ("invoke_model", _invoke_model),
    "invoke_model_with_response_stream": ("invoke_model_with_response_stream", _invoke_model_stream),
}


@pytest.mark.parametrize("operation", list(BEDROCK_CALLS))
def test_bedrock_calls_are_blocked_before_anything_is_sent(
    budgeted: Callable[..., Any], bedrock_client: Any, fake_server: FakeModelServer, operation: str
) -> None:
    method, call = BEDROCK_CALLS[operation]
    if not hasattr(bedrock_client, method):
        pytest.skip("Converse arrived in botocore 1.34.116")
    audit = budgeted(_bedrock_instrumentor(), _budget("bedrock-day"))
    call(bedrock_client)  # goes through and exhausts the budget (the spend is only known afterwards)
    assert audit.pipeline.force_flush(10_000)  # the completion worker charges the ledger
    assert len(fake_server.requests) == 1
    with pytest.raises(BudgetExceededError) as raised:
        call(bedrock_client)
    assert len(fake_server.requests) == 1  # nothing reached the provider
    spans = _ours(audit, BEDROCK_SCOPE)
    assert len(spans) == 2
    attrs = spans[0].attributes or {}
    assert (attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS], attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == (
        IN_TOKENS, OUT_TOKENS,
    )  # fmt: skip
    _check_blocked(spans, raised.value, "bedrock-day", CLAUDE, "aws.bedrock")


def test_bedrock_results_and_errors_are_untouched_by_a_budget_not_exhausted(
    budgeted: Callable[..., Any], bedrock_client: Any, fake_server: FakeModelServer
) -> None:
    botocore_exceptions = pytest.importorskip("botocore.exceptions")
    audit = budgeted(_bedrock_instrumentor(), _budget("roomy", limit=1_000_000))
    budgeted_answer = _invoke_model(bedrock_client)
    with pytest.raises(botocore_exceptions.ClientError) as budgeted_error:
        bedrock_client.invoke_model(modelId="error-400", body=INVOKE_BODY)
    assert audit.pipeline.force_flush(10_000)
    instrumentor = audit.extra_instrumentors[0]
    instrumentor.uninstrument()
    plain_answer = _invoke_model(bedrock_client)
    with pytest.raises(botocore_exceptions.ClientError) as plain_error:
        bedrock_client.invoke_model(modelId="error-400", body=INVOKE_BODY)
    assert len(fake_server.requests) == 4  # every call was sent
    assert (budgeted_answer.pop("id"), plain_answer.pop("id")) == ("msg_fake_1", "msg_fake_2")  # the server counts
    assert budgeted_answer == plain_answer
    assert budgeted_answer["content"] == [{"type": "text", "text": fs.HELLO_ANSWER}]
    assert type(budgeted_error.value) is type(plain_error.value)
    assert budgeted_error.value.response["Error"] == plain_error.value.response["Error"]
    assert budgeted_error.value.response["Error"]["Code"] == "ValidationException"  # not retried: one request
    answered, failed = _ours(audit, BEDROCK_SCOPE)
    assert [_policy(answered), _policy(failed)] == [[], []]
    assert answered.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})[semconv.ERROR_TYPE] == "botocore.errorfactory.ValidationException"


# ----------------------------------------------------------------------------- Google Gen AI


def _genai_client(server: FakeModelServer, backend: str) -> Any:
    genai = pytest.importorskip("google.genai")
    options = {"base_url": server.google_base_url}
    if backend == "vertex":
        from google.oauth2.credentials import Credentials

        return genai.Client(
            vertexai=True,
            project="audit-project",
            location="us-central1",
            credentials=Credentials(token="ya29.fake-token"),
            http_options=options,
        )
    return genai.Client(api_key="AIza-fake-key", http_options=options)


@pytest.fixture(params=["gemini", "vertex"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def genai_client(fake_server: FakeModelServer, backend: str) -> Iterator[Any]:
    made = _genai_client(fake_server, backend)
    yield made
    closer = getattr(made, "close", None)  # google-genai >= 1.2x
    if callable(closer):
        closer()


def _google_instrumentor() -> Any:
    from otel_llm_audit.instrumentation.google_genai import GoogleGenAIInstrumentor

    return GoogleGenAIInstrumentor()


def test_google_generate_content_is_blocked_before_anything_is_sent(
    budgeted: Callable[..., Any], genai_client: Any, backend: str, fake_server: FakeModelServer
) -> None:
    audit = budgeted(_google_instrumentor(), _budget("gemini-day"))
    answer = genai_client.models.generate_content(model=GEMINI, contents=USER_TEXT)
    assert answer.text == fs.HELLO_ANSWER
    assert audit.pipeline.force_flush(10_000)
    assert len(fake_server.requests) == 1
    with pytest.raises(BudgetExceededError) as raised:
        genai_client.models.generate_content(model=GEMINI, contents=USER_TEXT)
    assert len(fake_server.requests) == 1  # nothing reached the provider
    spans = _ours(audit, GOOGLE_SCOPE)
    assert len(spans) == 2
    attrs = spans[0].attributes or {}
    assert (attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS], attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == (
        IN_TOKENS, OUT_TOKENS,
    )  # fmt: skip
    _check_blocked(spans, raised.value, "gemini-day", GEMINI, GOOGLE_PROVIDERS[backend])


def test_google_generate_content_stream_is_blocked_before_anything_is_sent(
    budgeted: Callable[..., Any], genai_client: Any, backend: str, fake_server: FakeModelServer
) -> None:
    model = f"{GEMINI}-chunks-3"
    audit = budgeted(_google_instrumentor(), _budget("gemini-day"))
    chunks = list(genai_client.models.generate_content_stream(model=model, contents=USER_TEXT))
    assert "".join(c.text for c in chunks) == fs.HELLO_ANSWER
    assert audit.pipeline.force_flush(10_000)
    assert len(fake_server.requests) == 1
    stream = genai_client.models.generate_content_stream(model=model, contents=USER_TEXT)
    with pytest.raises(BudgetExceededError) as raised:
        next(iter(stream))  # the SDK's stream is a generator: the request starts at the first chunk
    assert len(fake_server.requests) == 1  # nothing reached the provider
    spans = _ours(audit, GOOGLE_SCOPE)
    assert len(spans) == 2
    _check_blocked(spans, raised.value, "gemini-day", model, GOOGLE_PROVIDERS[backend])
    assert (spans[1].attributes or {})[semconv.GEN_AI_REQUEST_STREAM] is True


def test_google_results_and_errors_are_untouched_by_a_budget_not_exhausted(
    budgeted: Callable[..., Any], genai_client: Any, fake_server: FakeModelServer
) -> None:
    from google.genai import errors

    ignore = {"response_id", "sdk_http_response", "create_time"}
    audit = budgeted(_google_instrumentor(), _budget("roomy", limit=1_000_000))
    budgeted_answer = genai_client.models.generate_content(model=GEMINI, contents=USER_TEXT)
    with pytest.raises(errors.ClientError) as budgeted_error:
        genai_client.models.generate_content(model="error-429", contents=USER_TEXT)
    assert audit.pipeline.force_flush(10_000)
    instrumentor = audit.extra_instrumentors[0]
    instrumentor.uninstrument()
    plain_answer = genai_client.models.generate_content(model=GEMINI, contents=USER_TEXT)
    with pytest.raises(errors.ClientError) as plain_error:
        genai_client.models.generate_content(model="error-429", contents=USER_TEXT)
    assert len(fake_server.requests) == 4  # every call was sent
    assert type(budgeted_answer) is type(plain_answer)
    assert budgeted_answer.model_dump(exclude=ignore) == plain_answer.model_dump(exclude=ignore)
    assert budgeted_answer.text == fs.HELLO_ANSWER
    assert type(budgeted_error.value) is type(plain_error.value) is errors.ClientError
    assert (budgeted_error.value.code, budgeted_error.value.message) == (
        plain_error.value.code,
        plain_error.value.message,
    )
    assert budgeted_error.value.code == 429
    answered, failed = _ours(audit, GOOGLE_SCOPE)
    assert [_policy(answered), _policy(failed)] == [[], []]
    assert answered.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})[semconv.ERROR_TYPE] == "google.genai.errors.ClientError"
