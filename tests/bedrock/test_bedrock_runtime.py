"""The Bedrock instrumentor against the real ``boto3`` client and the loopback fake server.

Everything goes over HTTP (SigV4-signed, event streams framed as AWS frames them) to
127.0.0.1. Converse arrived in botocore 1.34.116: on older releases those tests skip, and
InvokeModel is tested on both lines.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_llm_audit import semconv
from otel_llm_audit.demo import fake_server as fs
from otel_llm_audit.demo.fake_server import FakeModelServer
from otel_llm_audit.instrumentation.bedrock import BedrockInstrumentor

boto3 = pytest.importorskip("boto3")
botocore_exceptions = pytest.importorskip("botocore.exceptions")

SCOPE = "otel_llm_audit.instrumentation.bedrock"
CLAUDE = "anthropic.claude-haiku-4-5-20251001-v1:0"
USER = [{"role": "user", "content": [{"text": "Hi there"}]}]
WEATHER = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}},
    }
}


@pytest.fixture
def audit_bedrock(make_audit: Callable[..., Any]) -> Callable[..., Any]:
    """Build a pipeline (``make_audit``) with the library instrumented on it."""
    return lambda **settings: make_audit(**settings).add_instrumentor(BedrockInstrumentor())


@pytest.fixture
def audit(audit_bedrock: Callable[..., Any]) -> Any:
    return audit_bedrock(content="raw")


@pytest.fixture
def client(audit: Any, fake_server: FakeModelServer) -> Iterator[Any]:
    made = boto3.client(
        "bedrock-runtime",
        endpoint_url=fake_server.bedrock_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    yield made
    made.close()


needs_converse = pytest.mark.skipif(
    not hasattr(boto3.client("bedrock-runtime", region_name="us-east-1"), "converse"),
    reason="Converse arrived in botocore 1.34.116",
)


def _ours(audit: Any) -> list[ReadableSpan]:
    return [s for s in audit.spans() if s.instrumentation_scope is not None and s.instrumentation_scope.name == SCOPE]


def _only(audit: Any) -> ReadableSpan:
    spans = _ours(audit)
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def _json(span: ReadableSpan, key: str) -> Any:
    return json.loads(span.attributes[key])


# ----------------------------------------------------------------------------- Converse


@needs_converse
def test_converse_records_the_call(audit: Any, client: Any) -> None:
    response = client.converse(
        modelId=CLAUDE,
        system=[{"text": "Be brief."}],
        messages=USER,
        inferenceConfig={"maxTokens": 64, "temperature": 0.2, "stopSequences": ["###"]},
    )
    span = _only(audit)
    attrs = span.attributes
    assert span.name == f"chat {CLAUDE}"
    assert attrs[semconv.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == CLAUDE
    assert attrs[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert attrs[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert list(attrs[semconv.GEN_AI_REQUEST_STOP_SEQUENCES]) == ["###"]
    assert attrs[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[semconv.AWS_REQUEST_ID] == response["ResponseMetadata"]["RequestId"]
    assert list(attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["end_turn"]
    assert attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] == response["usage"]["inputTokens"]
    assert attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == response["usage"]["outputTokens"]
    assert _json(span, semconv.GEN_AI_SYSTEM_INSTRUCTIONS) == [{"type": "text", "content": "Be brief."}]
    assert _json(span, semconv.GEN_AI_INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hi there"}]}
    ]
    assert _json(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": fs.HELLO_ANSWER}], "finish_reason": "stop"}
    ]
    usage = response["usage"]
    expected = (usage["inputTokens"] * 1.10 + usage["outputTokens"] * 5.50) / 1e6
    assert attrs[semconv.LLM_AUDIT_COST_USD] == pytest.approx(expected)


@needs_converse
def test_converse_tool_use_round_trip(audit: Any, client: Any) -> None:
    first = client.converse(modelId=CLAUDE, messages=USER, toolConfig={"tools": [WEATHER]})
    use = first["output"]["message"]["content"][0]["toolUse"]
    history = [
        *USER,
        first["output"]["message"],
        {"role": "user", "content": [{"toolResult": {"toolUseId": use["toolUseId"], "content": [{"text": "18C"}]}}]},
    ]
    client.converse(modelId=CLAUDE, messages=history, toolConfig={"tools": [WEATHER]})
    one, two = sorted(_ours(audit), key=lambda s: s.start_time or 0)
    assert _json(one, semconv.GEN_AI_TOOL_DEFINITIONS) == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": WEATHER["toolSpec"]["inputSchema"]["json"],
        }
    ]
    assert _json(one, semconv.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [
        {"type": "tool_call", "id": use["toolUseId"], "name": "get_weather", "arguments": {"city": "Paris"}}
    ]
    assert _json(two, semconv.GEN_AI_INPUT_MESSAGES)[2]["parts"] == [
        {"type": "tool_call_response", "id": use["toolUseId"], "response": "18C"}
    ]


@needs_converse
def test_converse_stream_ends_once_and_assembles_the_answer(audit: Any, client: Any) -> None:
    response = client.converse_stream(modelId=f"{CLAUDE}-chunks-3", messages=USER)
    events = list(response["stream"])
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == fs.HELLO_ANSWER
    span = _only(audit)
    attrs = span.attributes
    assert attrs[semconv.GEN_AI_REQUEST_STREAM] is True
    assert attrs[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert (
        attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]
        == next(e for e in events if "metadata" in e)["metadata"]["usage"]["outputTokens"]
    )
    assert _json(span, semconv.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [{"type": "text", "content": fs.HELLO_ANSWER}]


@needs_converse
def test_converse_stream_broken_off(audit: Any, client: Any) -> None:
    response = client.converse_stream(modelId=f"{CLAUDE}-chunks-5", messages=USER)
    for event in response["stream"]:
        if "contentBlockDelta" in event:
            break
    span = _only(audit)
    assert span.status.status_code is StatusCode.UNSET


# ----------------------------------------------------------------------------- guardrails


@needs_converse
def test_guardrail_block_is_a_policy_event_with_the_assessment(audit: Any, client: Any) -> None:
    response = client.converse(
        modelId=CLAUDE,
        messages=USER,
        guardrailConfig={"guardrailIdentifier": "gr-block", "guardrailVersion": "1", "trace": "enabled"},
    )
    assert response["stopReason"] == "guardrail_intervened"
    span = _only(audit)
    assert span.attributes[semconv.AWS_BEDROCK_GUARDRAIL_ID] == "gr-block"
    assert span.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True
    (event,) = [e for e in span.events if e.name == semconv.EVENT_LLM_AUDIT_POLICY]
    assert event.attributes[semconv.LLM_AUDIT_POLICY_CATEGORY] == "guardrail"
    assert event.attributes[semconv.LLM_AUDIT_POLICY_ACTION] == "blocked"
    assert event.attributes[semconv.LLM_AUDIT_POLICY_SOURCE] == "aws.bedrock.guardrail"
    details = json.loads(event.attributes[semconv.LLM_AUDIT_POLICY_DETAILS])
    assert details["scope"] == "input"
    assert details["policies"]["contentPolicy.filters"][0]["type"] == "VIOLENCE"
    assert details["policies"]["contentPolicy.filters"][0]["action"] == "BLOCKED"


@needs_converse
def test_guardrail_anonymization_is_redacted_and_never_copies_the_match(audit: Any, client: Any) -> None:
    client.converse(
        modelId=CLAUDE,
        messages=[{"role": "user", "content": [{"text": "Mail jane.doe@example.com please"}]}],
        guardrailConfig={"guardrailIdentifier": "gr-anonymize", "guardrailVersion": "1", "trace": "enabled"},
    )
    span = _only(audit)
    (event,) = [e for e in span.events if e.name == semconv.EVENT_LLM_AUDIT_POLICY]
    assert event.attributes[semconv.LLM_AUDIT_POLICY_ACTION] == "redacted"
    details = json.loads(event.attributes[semconv.LLM_AUDIT_POLICY_DETAILS])
    assert details["policies"]["sensitiveInformationPolicy.piiEntities"] == [
        {"type": "EMAIL", "action": "ANONYMIZED", "detected": True}
    ]
    assert "jane.doe@example.com" not in event.attributes[semconv.LLM_AUDIT_POLICY_DETAILS]


@needs_converse
def test_content_filtered_stop_reason_is_a_policy_event(audit: Any, client: Any) -> None:
    response = client.converse(modelId=f"{CLAUDE}-refuse", messages=USER)
    assert response["stopReason"] == "content_filtered"
    span = _only(audit)
    assert _json(span, semconv.GEN_AI_OUTPUT_MESSAGES)[0]["finish_reason"] == "content_filter"
    (event,) = [e for e in span.events if e.name == semconv.EVENT_LLM_AUDIT_POLICY]
    assert dict(event.attributes) == {
        semconv.LLM_AUDIT_POLICY_CATEGORY: "content_filter",
        semconv.LLM_AUDIT_POLICY_ACTION: "blocked",
        semconv.LLM_AUDIT_POLICY_SOURCE: "aws.bedrock",
        semconv.LLM_AUDIT_POLICY_NAME: "stopReason",
        semconv.LLM_AUDIT_POLICY_DETAILS: '{"stop_reason": "content_filtered"}',
    }


# ----------------------------------------------------------------------------- errors and other calls


@needs_converse
def test_throttling_is_an_error_span_and_the_client_error_is_untouched(audit: Any, client: Any) -> None:
    with pytest.raises(botocore_exceptions.ClientError) as raised:
        client.converse(modelId="error-429", messages=USER)
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    span = _only(audit)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "botocore.errorfactory.ThrottlingException"  # the modelled code


def test_traceparent_goes_out_after_signing(audit: Any, client: Any, fake_server: FakeModelServer) -> None:
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "messages": USER}
    client.invoke_model(modelId=CLAUDE, body=json.dumps(body))
    span = _only(audit)
    (request,) = fake_server.requests
    context = span.get_span_context()
    assert request.headers["traceparent"] == f"00-{context.trace_id:032x}-{context.span_id:016x}-01"
    signed = request.headers["authorization"].split("SignedHeaders=", 1)[1].split(",", 1)[0].split(";")
    assert "traceparent" not in signed and "host" in signed  # not signed: a later rewrite cannot break SigV4
    fake_server.clear()
    client.invoke_model(modelId=CLAUDE, body=json.dumps(body))  # the handler is registered once per client
    (again,) = fake_server.requests
    assert again.headers["traceparent"] != request.headers["traceparent"]


def test_other_aws_calls_are_not_recorded(audit: Any) -> None:
    from botocore.stub import Stubber

    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="AKIAX", aws_secret_access_key="x")
    with Stubber(s3) as stub:
        stub.add_response("list_buckets", {"Buckets": []})
        assert s3.list_buckets()["Buckets"] == []
    assert _ours(audit) == []


# ----------------------------------------------------------------------------- InvokeModel


@pytest.mark.parametrize(
    ("model", "body", "answer_text"),
    [
        ("meta.llama3-8b-instruct-v1:0", {"prompt": "Hi there", "max_gen_len": 64}, lambda a: a["generation"]),
        (
            "amazon.titan-text-express-v1",
            {"inputText": "Hi there", "textGenerationConfig": {"maxTokenCount": 64}},
            lambda a: a["results"][0]["outputText"],
        ),
        (
            "amazon.nova-lite-v1:0",
            {"messages": [{"role": "user", "content": [{"text": "Hi there"}]}], "inferenceConfig": {"maxTokens": 64}},
            lambda a: a["output"]["message"]["content"][0]["text"],
        ),
        (
            CLAUDE,
            {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": "Hi there"}],
            },
            lambda a: a["content"][0]["text"],
        ),
    ],
)
def test_invoke_model_families_and_the_body_still_reads(
    audit: Any, client: Any, model: str, body: dict[str, Any], answer_text: Callable[[Any], str]
) -> None:
    response = client.invoke_model(modelId=model, body=json.dumps(body))
    answer = json.loads(response["body"].read())  # the caller still reads the whole body
    span = _only(audit)
    assert span.attributes[semconv.GEN_AI_REQUEST_MODEL] == model
    assert span.attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert _json(span, semconv.GEN_AI_INPUT_MESSAGES)[0]["parts"][0]["content"] == "Hi there"
    assert _json(span, semconv.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [{"type": "text", "content": answer_text(answer)}]
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0


def test_invoke_model_with_response_stream_anthropic(audit: Any, client: Any) -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    response = client.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(body))
    events = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
    assert events[-1]["type"] == "message_stop"
    span = _only(audit)
    assert span.attributes[semconv.GEN_AI_REQUEST_STREAM] is True
    assert _json(span, semconv.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [{"type": "text", "content": fs.HELLO_ANSWER}]
    assert list(span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["end_turn"]


@needs_converse
def test_masked_by_default(audit_bedrock: Callable[..., Any], fake_server: FakeModelServer) -> None:
    audit = audit_bedrock(content="masked")
    assert audit.pipeline.masking.wait_ready(60)
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=fake_server.bedrock_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    client.converse(modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "My SSN is 219-09-9999."}]}])
    span = _only(audit)
    assert _json(span, semconv.GEN_AI_INPUT_MESSAGES)[0]["parts"][0]["content"] == "My SSN is <US_SSN>."
