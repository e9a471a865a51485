"""The Anthropic instrumentor on the SDK's Bedrock and Vertex clients, against the loopback fake server.

``anthropic.AnthropicBedrock`` and ``anthropic.AnthropicVertex`` subclass the same base client as
``anthropic.Anthropic`` and rewrite the call inside ``request``: Bedrock to
``POST /model/{model}/invoke[-with-response-stream]`` (model and stream moved from the body to the
path, SigV4-signed by botocore, streams in AWS's binary event-stream format), Vertex to
``POST /v1/projects/{p}/locations/{r}/publishers/anthropic/models/{model}:rawPredict`` or
``:streamRawPredict`` (plain SSE, bearer token). The fake server speaks both, so these tests drive
the real clients through their real HTTP stack, on the oldest (0.50) and newest (2.x) SDK lines.

Bedrock needs ``boto3`` and ``botocore`` (the SDK's ``bedrock`` extra); without them its tests
skip. Vertex runs without ``google-auth`` because an ``access_token`` is given.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import anthropic
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_llm_audit import semconv
from otel_llm_audit.demo import fake_server as fs
from otel_llm_audit.demo.fake_server import FakeModelServer, RecordedRequest
from otel_llm_audit.instrumentation.anthropic import AnthropicInstrumentor

SCOPE = "otel_llm_audit.instrumentation.anthropic"
SDK_TRACES_ITSELF = hasattr(anthropic, "_tracing")  # anthropic >= 1.14
HAS_BOTO = all(importlib.util.find_spec(name) is not None for name in ("boto3", "botocore"))
needs_boto = pytest.mark.skipif(
    not HAS_BOTO, reason="AnthropicBedrock signs with boto3/botocore (anthropic[bedrock]), not installed here"
)


#: Our ``traceparent`` is never part of the signature: anthropic 1.14+ takes trace headers off
#: before signing and puts them back after, and the instrumentor does the same for older releases
#: (botocore 1.31.57, the ``anthropic[bedrock]`` floor, would otherwise sign it; 1.44 never does).
TRACEPARENT_SIGNED = False

BEDROCK_MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
VERTEX_MODEL = "claude-haiku-4-5@20251001"
AWS_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_REGION = "us-east-1"
GCP_PROJECT = "audit-test-project"
GCP_REGION = "us-east5"
GCP_TOKEN = "ya29.fake-access-token"

USER = [{"role": "user", "content": "Hi there"}]
INPUT_TOKENS = len("Hi there") // 4 + 1
OUTPUT_TOKENS = len(fs.HELLO_ANSWER) // 4 + 1
HELLO_OUTPUT = [{"role": "assistant", "parts": [{"type": "text", "content": fs.HELLO_ANSWER}], "finish_reason": "stop"}]
SIGV4 = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})"
)


@pytest.fixture(autouse=True)
def _no_ambient_cloud_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's AWS / GCP environment out of the clients under test."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_BEARER_TOKEN_BEDROCK",  # 2.x: would switch Bedrock to bearer auth (and clash with keys)
        "ANTHROPIC_BEDROCK_BASE_URL",
        "ANTHROPIC_VERTEX_BASE_URL",
        "ANTHROPIC_VERTEX_PROJECT_ID",
        "CLOUD_ML_REGION",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def audit(make_audit: Callable[..., Any]) -> Any:
    """The audit pipeline (raw content) with the Anthropic SDK instrumented on it."""
    return make_audit(content="raw").add_instrumentor(AnthropicInstrumentor())


def _bedrock_kwargs(fake_server: FakeModelServer) -> dict[str, Any]:
    return {
        "base_url": fake_server.anthropic_base_url,
        "aws_access_key": AWS_ACCESS_KEY,
        "aws_secret_key": AWS_SECRET_KEY,
        "aws_region": AWS_REGION,
        "max_retries": 0,
    }


def _vertex_kwargs(fake_server: FakeModelServer) -> dict[str, Any]:
    # Vertex's base URL carries /v1 (https://{region}-aiplatform.googleapis.com/v1): the fake's base_url does too.
    return {
        "base_url": fake_server.base_url,
        "region": GCP_REGION,
        "project_id": GCP_PROJECT,
        "access_token": GCP_TOKEN,
        "max_retries": 0,
    }


@pytest.fixture
def bedrock(audit: Any, fake_server: FakeModelServer) -> Iterator[anthropic.AnthropicBedrock]:
    if not HAS_BOTO:
        pytest.skip("AnthropicBedrock signs with boto3/botocore (anthropic[bedrock]), not installed here")
    with anthropic.AnthropicBedrock(**_bedrock_kwargs(fake_server)) as client:
        yield client


@pytest.fixture
def vertex(audit: Any, fake_server: FakeModelServer) -> Iterator[anthropic.AnthropicVertex]:
    with anthropic.AnthropicVertex(**_vertex_kwargs(fake_server)) as client:
        yield client


def _vertex_path(model: str, specifier: str) -> str:
    return f"/v1/projects/{GCP_PROJECT}/locations/{GCP_REGION}/publishers/anthropic/models/{model}:{specifier}"


def _ours(audit: Any) -> list[ReadableSpan]:
    return [s for s in audit.spans() if s.instrumentation_scope is not None and s.instrumentation_scope.name == SCOPE]


def _only(audit: Any) -> ReadableSpan:
    """The one span of the call: ours, and nothing else that claims to be an LLM call."""
    spans = audit.spans()
    ours = [s for s in spans if s.instrumentation_scope is not None and s.instrumentation_scope.name == SCOPE]
    assert len(ours) == 1, [(s.instrumentation_scope and s.instrumentation_scope.name, s.name) for s in spans]
    others = [s.name for s in spans if s is not ours[0] and "gen_ai.operation.name" in (s.attributes or {})]
    assert others == []
    return ours[0]


def _json(span: ReadableSpan, key: str) -> Any:
    return json.loads(span.attributes[key])


def _assert_traceparent_is(span: ReadableSpan, request: RecordedRequest) -> None:
    _, trace_id, span_id, _ = request.headers["traceparent"].split("-")
    assert trace_id == f"{span.context.trace_id:032x}"
    assert span_id == f"{span.context.span_id:016x}"


def _assert_call_span(
    span: ReadableSpan, *, provider: str, model: str, message_id: str, port: int, stream: bool
) -> None:
    attrs = span.attributes
    assert span.name == f"chat {model}"
    assert span.status.status_code is StatusCode.UNSET
    assert attrs[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[semconv.GEN_AI_PROVIDER_NAME] == provider
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == model
    assert attrs[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert attrs.get(semconv.GEN_AI_REQUEST_STREAM, False) is stream
    assert attrs[semconv.GEN_AI_RESPONSE_ID] == message_id
    assert attrs[semconv.GEN_AI_RESPONSE_MODEL] == model + fs.MODEL_SUFFIX
    assert list(attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["end_turn"]
    assert attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] == INPUT_TOKENS
    assert attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == OUTPUT_TOKENS
    assert attrs[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[semconv.SERVER_PORT] == port
    assert _json(span, semconv.GEN_AI_INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hi there"}]}
    ]
    assert _json(span, semconv.GEN_AI_OUTPUT_MESSAGES) == HELLO_OUTPUT
    if stream:
        assert attrs[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0


def _signed_headers(request: RecordedRequest) -> list[str]:
    """Check the SigV4 signature against what the server received; the names of the signed headers.

    The fake cannot know the secret, the test does: recomputing the signature over the received
    method, path, signed headers and body proves nothing was added to or changed in a signed
    header after signing (a header added unsigned does not break a signature).
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    match = SIGV4.fullmatch(request.headers["authorization"])
    assert match is not None, request.headers["authorization"]
    assert (match["key"], match["region"], match["service"]) == (AWS_ACCESS_KEY, AWS_REGION, "bedrock")
    signed = match["signed"].split(";")
    missing = [name for name in signed if name not in request.headers]
    assert missing == [], f"signed headers that never reached the server: {missing}"
    aws = AWSRequest(
        method=request.method,
        url=f"http://{request.headers['host']}{request.path}",
        headers={name: request.headers[name] for name in signed},
        data=request.raw_body,
    )
    aws.context["timestamp"] = request.headers["x-amz-date"]
    signer = SigV4Auth(Credentials(AWS_ACCESS_KEY, AWS_SECRET_KEY), "bedrock", AWS_REGION)
    assert signer.signed_headers(signer.headers_to_sign(aws)) == match["signed"]
    string_to_sign = signer.string_to_sign(aws, signer.canonical_request(aws))
    assert signer.signature(string_to_sign, aws) == match["signature"], "SigV4 signature does not match the wire"
    return signed


# ----------------------------------------------------------------------------- Bedrock


@needs_boto
def test_bedrock_create(audit: Any, bedrock: anthropic.AnthropicBedrock, fake_server: FakeModelServer) -> None:
    message = bedrock.messages.create(model=BEDROCK_MODEL, max_tokens=64, messages=USER)
    assert message.id == "msg_fake_1"
    assert message.content[0].text == fs.HELLO_ANSWER
    assert (message.usage.input_tokens, message.usage.output_tokens) == (INPUT_TOKENS, OUTPUT_TOKENS)
    span = _only(audit)
    _assert_call_span(
        span, provider="aws.bedrock", model=BEDROCK_MODEL, message_id=message.id, port=fake_server.port, stream=False
    )
    # Claude Haiku 4.5 in-region on Bedrock: $1.10 / $5.50 per million tokens.
    assert span.attributes[semconv.LLM_AUDIT_COST_USD] == pytest.approx(
        (INPUT_TOKENS * 1.10 + OUTPUT_TOKENS * 5.50) / 1e6
    )

    (request,) = fake_server.requests
    assert unquote(request.path) == f"/model/{BEDROCK_MODEL}/invoke"
    assert "model" not in request.body and "stream" not in request.body
    assert isinstance(request.body["anthropic_version"], str)
    _assert_traceparent_is(span, request)
    assert ("traceparent" in _signed_headers(request)) is TRACEPARENT_SIGNED  # and the signature holds


@needs_boto
def test_bedrock_stream_text_stream(
    audit: Any, bedrock: anthropic.AnthropicBedrock, fake_server: FakeModelServer
) -> None:
    with bedrock.messages.stream(
        model=BEDROCK_MODEL, max_tokens=64, messages=USER, extra_headers={fs.CHUNKS_HEADER: "3"}
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == fs.HELLO_ANSWER and len(pieces) == 3
    assert final.id == "msg_fake_1"
    span = _only(audit)
    _assert_call_span(
        span, provider="aws.bedrock", model=BEDROCK_MODEL, message_id=final.id, port=fake_server.port, stream=True
    )

    (request,) = fake_server.requests
    assert unquote(request.path) == f"/model/{BEDROCK_MODEL}/invoke-with-response-stream"
    assert "model" not in request.body and "stream" not in request.body
    _assert_traceparent_is(span, request)
    assert ("traceparent" in _signed_headers(request)) is TRACEPARENT_SIGNED


@needs_boto
def test_bedrock_signature_survives_the_http_instrumentation(audit: Any, fake_server: FakeModelServer) -> None:
    httpx_instrumentation = pytest.importorskip("opentelemetry.instrumentation.httpx")

    uses_httpx2 = hasattr(anthropic._base_client, "httpx2")  # 1.x and later
    http_instrumentor = (
        httpx_instrumentation.HTTPX2ClientInstrumentor()
        if uses_httpx2
        else httpx_instrumentation.HTTPXClientInstrumentor()
    )
    http_instrumentor.instrument(tracer_provider=audit.tracer_provider)
    try:
        with anthropic.AnthropicBedrock(**_bedrock_kwargs(fake_server)) as client:
            client.messages.create(model=BEDROCK_MODEL, max_tokens=64, messages=USER)
    finally:
        http_instrumentor.uninstrument()
    span = _only(audit)
    (http_span,) = [s for s in audit.spans() if s.instrumentation_scope and "httpx" in s.instrumentation_scope.name]
    assert http_span.parent is not None and http_span.parent.span_id == span.context.span_id
    (request,) = fake_server.requests
    _assert_traceparent_is(http_span, request)  # the HTTP client span, child of ours, is on the wire
    _signed_headers(request)  # the signature still matches what was sent


@needs_boto
def test_bedrock_midstream_exception_is_an_error_span(audit: Any, bedrock: anthropic.AnthropicBedrock) -> None:
    # The exception message: 0.x's event-stream decoder raises ValueError("Bad response code ..."),
    # later lines (1.10+) turn it into an `error` event and raise APIStatusError.
    with (
        pytest.raises((anthropic.APIStatusError, ValueError)) as raised,
        bedrock.messages.stream(model="error-midstream", max_tokens=64, messages=USER) as stream,
    ):
        stream.until_done()
    assert fs.BEDROCK_MIDSTREAM_EXCEPTION in str(raised.value)
    span = _only(audit)
    assert span.status.status_code is StatusCode.ERROR
    cls = type(raised.value)
    assert span.attributes[semconv.ERROR_TYPE] == (
        cls.__qualname__ if cls.__module__ == "builtins" else f"anthropic.{cls.__qualname__}"
    )
    assert span.attributes[semconv.GEN_AI_RESPONSE_ID] == "msg_fake_1"  # message_start came before the error


@needs_boto
def test_bedrock_http_error_is_an_error_span(audit: Any, bedrock: anthropic.AnthropicBedrock) -> None:
    with pytest.raises(anthropic.RateLimitError) as raised:
        bedrock.messages.create(model="error-429", max_tokens=64, messages=USER)
    assert raised.value.status_code == 429
    span = _only(audit)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "anthropic.RateLimitError"
    assert span.attributes[semconv.GEN_AI_PROVIDER_NAME] == "aws.bedrock"


@needs_boto
def test_bedrock_count_tokens_fails_in_the_sdk_and_is_not_a_model_call(
    audit: Any, bedrock: anthropic.AnthropicBedrock, fake_server: FakeModelServer
) -> None:
    with pytest.raises(anthropic.AnthropicError, match="not supported in Bedrock"):
        bedrock.messages.count_tokens(model=BEDROCK_MODEL, messages=USER)
    assert fake_server.requests == []
    assert _ours(audit) == []


@needs_boto
def test_bedrock_raw_response_carries_the_aws_request_id(
    audit: Any, bedrock: anthropic.AnthropicBedrock, fake_server: FakeModelServer
) -> None:
    raw = bedrock.messages.with_raw_response.create(model=BEDROCK_MODEL, max_tokens=64, messages=USER)
    assert raw.headers["x-amzn-requestid"] == "req_fake_1"
    assert "request-id" not in raw.headers
    message = raw.parse()
    span = _only(audit)
    assert span.attributes[semconv.GEN_AI_RESPONSE_ID] == message.id
    assert _json(span, semconv.GEN_AI_OUTPUT_MESSAGES) == HELLO_OUTPUT


def _post(url: str, body: Any) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, json.loads(err.read())


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"model": BEDROCK_MODEL, "anthropic_version": "bedrock-2023-05-31"}, "extraneous key [model]"),
        ({"stream": True, "anthropic_version": "bedrock-2023-05-31"}, "extraneous key [stream]"),
        ({}, "required key [anthropic_version]"),
    ],
)
def test_fake_bedrock_validates_the_body_like_bedrock(fake_server: FakeModelServer, body: Any, problem: str) -> None:
    body = {**body, "max_tokens": 64, "messages": USER}
    status, headers, payload = _post(f"{fake_server.anthropic_base_url}/model/{BEDROCK_MODEL}/invoke", body)
    assert status == 400
    assert headers["x-amzn-errortype"].startswith("ValidationException:")
    assert headers["x-amzn-requestid"] == "req_fake_1" and "request-id" not in headers
    assert problem in payload["message"]


def test_fake_vertex_needs_anthropic_version(fake_server: FakeModelServer) -> None:
    url = fake_server.base_url + _vertex_path(VERTEX_MODEL, "rawPredict").removeprefix("/v1")
    status, headers, payload = _post(url, {"max_tokens": 64, "messages": USER})
    assert status == 400
    assert payload["error"] == {"type": "invalid_request_error", "message": "anthropic_version: Field required"}
    assert headers["request-id"] == payload["request_id"]


# ----------------------------------------------------------------------------- Vertex


def test_vertex_create(audit: Any, vertex: anthropic.AnthropicVertex, fake_server: FakeModelServer) -> None:
    message = vertex.messages.create(model=VERTEX_MODEL, max_tokens=64, messages=USER)
    assert message.id == "msg_fake_1"
    assert message.content[0].text == fs.HELLO_ANSWER
    span = _only(audit)
    _assert_call_span(
        span, provider="gcp.vertex_ai", model=VERTEX_MODEL, message_id=message.id, port=fake_server.port, stream=False
    )

    (request,) = fake_server.requests
    assert unquote(request.path) == _vertex_path(VERTEX_MODEL, "rawPredict")
    assert request.headers["authorization"] == f"Bearer {GCP_TOKEN}"
    assert "model" not in request.body
    assert isinstance(request.body["anthropic_version"], str)
    _assert_traceparent_is(span, request)


def test_vertex_stream_text_stream(audit: Any, vertex: anthropic.AnthropicVertex, fake_server: FakeModelServer) -> None:
    with vertex.messages.stream(
        model=VERTEX_MODEL, max_tokens=64, messages=USER, extra_headers={fs.CHUNKS_HEADER: "3"}
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == fs.HELLO_ANSWER and len(pieces) == 3
    span = _only(audit)
    _assert_call_span(
        span, provider="gcp.vertex_ai", model=VERTEX_MODEL, message_id=final.id, port=fake_server.port, stream=True
    )

    (request,) = fake_server.requests
    assert unquote(request.path) == _vertex_path(VERTEX_MODEL, "streamRawPredict")
    assert request.body["stream"] is True and "model" not in request.body
    _assert_traceparent_is(span, request)


def test_vertex_count_tokens_is_not_a_model_call(
    audit: Any, vertex: anthropic.AnthropicVertex, fake_server: FakeModelServer
) -> None:
    result = vertex.messages.count_tokens(model=VERTEX_MODEL, messages=USER)
    assert result.input_tokens == INPUT_TOKENS
    assert unquote(fake_server.requests[-1].path) == _vertex_path("count-tokens", "rawPredict")
    assert _ours(audit) == []


# ----------------------------------------------------------------------------- async, and the SDK's own spans

#: platform -> (sync client class, async client class, client kwargs, model, provider name)
PLATFORMS: dict[str, tuple[Any, Any, Callable[[FakeModelServer], dict[str, Any]], str, str]] = {
    "bedrock": (
        anthropic.AnthropicBedrock,
        anthropic.AsyncAnthropicBedrock,
        _bedrock_kwargs,
        BEDROCK_MODEL,
        "aws.bedrock",
    ),
    "vertex": (
        anthropic.AnthropicVertex,
        anthropic.AsyncAnthropicVertex,
        _vertex_kwargs,
        VERTEX_MODEL,
        "gcp.vertex_ai",
    ),
}


def _platform(name: str) -> tuple[Any, Any, Callable[[FakeModelServer], dict[str, Any]], str, str]:
    if name == "bedrock" and not HAS_BOTO:
        pytest.skip("AnthropicBedrock signs with boto3/botocore (anthropic[bedrock]), not installed here")
    return PLATFORMS[name]


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_async_create_and_stream(audit: Any, fake_server: FakeModelServer, platform: str) -> None:
    _, async_cls, kwargs, model, provider = _platform(platform)

    async def run() -> tuple[str, str]:
        async with async_cls(**kwargs(fake_server)) as client:
            created = await client.messages.create(model=model, max_tokens=64, messages=USER)
            async with client.messages.stream(model=model, max_tokens=64, messages=USER) as stream:
                text = "".join([piece async for piece in stream.text_stream])
        return created.content[0].text, text

    assert asyncio.run(run()) == (fs.HELLO_ANSWER, fs.HELLO_ANSWER)
    spans = sorted(_ours(audit), key=lambda s: s.start_time or 0)
    assert [s.attributes[semconv.GEN_AI_PROVIDER_NAME] for s in spans] == [provider, provider]
    assert [s.attributes[semconv.GEN_AI_REQUEST_MODEL] for s in spans] == [model, model]
    assert [s.attributes[semconv.GEN_AI_RESPONSE_ID] for s in spans] == ["msg_fake_1", "msg_fake_2"]
    assert [s.attributes.get(semconv.GEN_AI_REQUEST_STREAM, False) for s in spans] == [False, True]
    assert all(_json(s, semconv.GEN_AI_OUTPUT_MESSAGES) == HELLO_OUTPUT for s in spans)
    for span, request in zip(spans, fake_server.requests, strict=True):
        _assert_traceparent_is(span, request)
        if platform == "bedrock":
            assert ("traceparent" in _signed_headers(request)) is TRACEPARENT_SIGNED


@pytest.mark.skipif(not SDK_TRACES_ITSELF, reason="anthropic < 1.14 has no spans of its own")
@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_one_llm_span_per_call_when_the_sdk_traces_itself(
    audit: Any, fake_server: FakeModelServer, platform: str
) -> None:
    sync_cls, _, kwargs, model, _ = _platform(platform)
    with sync_cls(**kwargs(fake_server), open_telemetry={"tracer_provider": audit.tracer_provider}) as client:
        client.messages.create(model=model, max_tokens=64, messages=USER)
        with client.messages.stream(model=model, max_tokens=64, messages=USER) as stream:
            stream.until_done()
    spans = sorted(audit.spans(), key=lambda s: s.start_time or 0)
    assert [(s.instrumentation_scope.name, s.name) for s in spans if s.instrumentation_scope] == [
        (SCOPE, f"chat {model}"),
        (SCOPE, f"chat {model}"),
    ]
    for span, request in zip(spans, fake_server.requests, strict=True):
        _assert_traceparent_is(span, request)  # the SDK's own injection, after signing, with our span's id
        if platform == "bedrock":
            assert "traceparent" not in _signed_headers(request)
