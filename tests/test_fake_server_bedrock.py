"""The fake model server's Amazon Bedrock Runtime side, driven by the real ``boto3`` client.

``boto3.client("bedrock-runtime", endpoint_url=server.bedrock_endpoint_url, ...)`` signs with SigV4,
serialises with botocore's real service model and parses the answers (JSON, AWS event streams,
``x-amzn-errortype`` errors) with botocore's real parsers: nothing is stubbed.

botocore 1.31.57 (the oldest pinned) predates the Converse API (botocore 1.34.116): its client has no
``converse``/``converse_stream``, so those tests skip there. The Converse wire format is still checked
on it by the raw tests at the end, which sign with botocore's ``SigV4Auth`` and decode the event
stream with botocore's own ``EventStreamBuffer``. InvokeModel for every family runs on both.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("boto3")

import boto3
import botocore
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError
from urllib3.exceptions import ProtocolError

from otel_llm_audit.demo import fake_server as fs
from otel_llm_audit.demo.fake_server import FakeModelServer

AWS_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_REGION = "us-east-1"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "amazon.nova-lite-v1:0"
LLAMA = "meta.llama3-8b-instruct-v1:0"
TITAN = "amazon.titan-text-express-v1"
MISTRAL = "mistral.mistral-7b-instruct-v0:2"
MISTRAL_LARGE = "mistral.mistral-large-2407-v1:0"
COHERE = "cohere.command-text-v14"
COHERE_R = "cohere.command-r-v1:0"

HAS_CONVERSE = "Converse" in botocore.session.get_session().get_service_model("bedrock-runtime").operation_names
needs_converse = pytest.mark.skipif(
    not HAS_CONVERSE, reason=f"botocore {botocore.__version__} has no Converse API (added in 1.34.116)"
)

USER = [{"role": "user", "content": [{"text": "Hi there"}]}]
WEATHER_TOOL = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    }
}
PII_PROMPT = "My e-mail is jane.doe@example.com, reply there."


def tokens(*texts: str) -> int:
    """The fake's token formula: characters // 4 + 1."""
    return sum(len(text) for text in texts) // 4 + 1


def new_client(server: FakeModelServer, **config: Any) -> Any:
    """A real bedrock-runtime client on the fake, retries off unless ``config`` says otherwise."""
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.bedrock_endpoint_url,
        region_name=AWS_REGION,
        aws_access_key_id=AWS_ACCESS_KEY,
        aws_secret_access_key=AWS_SECRET_KEY,
        config=Config(**{"retries": {"max_attempts": 0}, **config}),
    )


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    """A fresh server per test so ids and recorded requests start at zero."""
    with FakeModelServer() as fake:
        yield fake


@pytest.fixture
def client(server: FakeModelServer) -> Iterator[Any]:
    sdk = new_client(server)
    yield sdk
    sdk.close()


def stream_events(response: dict[str, Any]) -> list[dict[str, Any]]:
    """Every event botocore yields from a ConverseStream response."""
    return list(response["stream"])


def invoke(client: Any, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """InvokeModel: the parsed JSON body and the HTTP headers."""
    response = client.invoke_model(modelId=model, body=json.dumps(body), contentType="application/json")
    return json.loads(response["body"].read()), response["ResponseMetadata"]["HTTPHeaders"]


def invoke_chunks(client: Any, model: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """InvokeModelWithResponseStream: each ``chunk``'s bytes, parsed."""
    response = client.invoke_model_with_response_stream(modelId=model, body=json.dumps(body))
    return [json.loads(event["chunk"]["bytes"]) for event in response["body"]]


def assert_sigv4(request: fs.RecordedRequest) -> None:
    authorization = request.headers["authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={AWS_ACCESS_KEY}/"), authorization
    assert f"/{AWS_REGION}/bedrock/aws4_request" in authorization


# --------------------------------------------------------------------------
# Converse
# --------------------------------------------------------------------------


def test_endpoint_url_is_the_server_root(server: FakeModelServer) -> None:
    assert server.bedrock_endpoint_url == server.anthropic_base_url == f"http://127.0.0.1:{server.port}"


@needs_converse
def test_converse_exact_answer_and_recorded_request(client: Any, server: FakeModelServer) -> None:
    response = client.converse(
        modelId=CLAUDE,
        messages=USER,
        system=[{"text": "Be brief."}],
        inferenceConfig={"maxTokens": 256, "temperature": 0.2, "topP": 0.9},
    )
    metadata = response.pop("ResponseMetadata")
    assert response == {
        "output": {"message": {"role": "assistant", "content": [{"text": fs.HELLO_ANSWER}]}},
        "stopReason": "end_turn",
        "usage": {
            "inputTokens": tokens("Be brief.", "Hi there"),
            "outputTokens": tokens(fs.HELLO_ANSWER),
            "totalTokens": tokens("Be brief.", "Hi there") + tokens(fs.HELLO_ANSWER),
        },
        "metrics": {"latencyMs": fs.CONVERSE_LATENCY_MS},
    }
    assert metadata["RequestId"] == "req_fake_1"
    assert metadata["HTTPHeaders"]["x-amzn-requestid"] == "req_fake_1"

    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse")
    assert_sigv4(request)
    assert request.body == {
        "messages": USER,
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 256, "temperature": 0.2, "topP": 0.9},
    }


@needs_converse
def test_converse_model_name_conventions(client: Any) -> None:
    half = fs.HELLO_ANSWER[: len(fs.HELLO_ANSWER) // 2]
    truncated = client.converse(modelId="claude-maxtokens", messages=USER)
    assert (truncated["stopReason"], truncated["output"]["message"]["content"]) == ("max_tokens", [{"text": half}])

    refused = client.converse(modelId="claude-refuse", messages=USER)
    assert refused["stopReason"] == "content_filtered"
    assert refused["output"]["message"]["content"] == [{"text": fs.REFUSAL_ANSWER}]

    cached = client.converse(modelId="claude-cached", messages=USER)["usage"]
    assert cached == {
        "inputTokens": tokens("Hi there"),
        "outputTokens": tokens(fs.HELLO_ANSWER),
        "totalTokens": tokens("Hi there") + tokens(fs.HELLO_ANSWER) + 120,
        "cacheReadInputTokens": fs.CACHE_READ_TOKENS,
        "cacheWriteInputTokens": fs.CACHE_CREATION_TOKENS,
    }

    stopped = client.converse(modelId=CLAUDE, messages=USER, inferenceConfig={"stopSequences": ["fake"]})
    assert stopped["stopReason"] == "stop_sequence"
    assert stopped["output"]["message"]["content"] == [{"text": "Hello from the "}]


@needs_converse
def test_converse_reasoning_block_comes_first(client: Any) -> None:
    response = client.converse(
        modelId=CLAUDE,
        messages=USER,
        additionalModelRequestFields={"thinking": {"type": "enabled", "budget_tokens": 1024}},
    )
    reasoning = {"reasoningText": {"text": fs.THINKING_TEXT, "signature": fs.THINKING_SIGNATURE}}
    assert response["output"]["message"]["content"] == [{"reasoningContent": reasoning}, {"text": fs.HELLO_ANSWER}]
    assert response["usage"]["outputTokens"] == tokens(fs.THINKING_TEXT) + tokens(fs.HELLO_ANSWER)


@needs_converse
def test_tool_use_round_trip(client: Any, server: FakeModelServer) -> None:
    tool_config = {"tools": [WEATHER_TOOL], "toolChoice": {"auto": {}}}
    first = client.converse(modelId=CLAUDE, messages=USER, toolConfig=tool_config)
    tool_use = {"toolUseId": fs.CONVERSE_TOOL_USE_ID, "name": "get_weather", "input": {"city": "Paris"}}
    assert first["stopReason"] == "tool_use"
    assert first["output"]["message"] == {"role": "assistant", "content": [{"toolUse": tool_use}]}
    assert first["usage"]["outputTokens"] == tokens(fs.TOOL_ARGUMENTS)

    result = {"toolUseId": fs.CONVERSE_TOOL_USE_ID, "content": [{"json": {"temp_c": 18}}], "status": "success"}
    messages = [*USER, first["output"]["message"], {"role": "user", "content": [{"toolResult": result}]}]
    second = client.converse(modelId=CLAUDE, messages=messages, toolConfig=tool_config)
    assert second["stopReason"] == "end_turn"
    assert second["output"]["message"]["content"] == [{"text": fs.WEATHER_ANSWER}]
    assert second["usage"]["inputTokens"] == tokens("Hi there", fs.TOOL_ARGUMENTS, '{"temp_c": 18}')
    # the document round-trips through botocore's serializer unchanged
    assert server.requests[-1].body["messages"][1]["content"][0]["toolUse"] == tool_use
    assert server.requests[-1].body["messages"][2]["content"][0]["toolResult"] == result

    other = {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object"}}}}
    chosen = client.converse(
        modelId=CLAUDE,
        messages=USER,
        toolConfig={"tools": [WEATHER_TOOL, other], "toolChoice": {"tool": {"name": "get_time"}}},
    )
    assert chosen["output"]["message"]["content"][0]["toolUse"]["name"] == "get_time"


@needs_converse
def test_converse_stream_text_events(client: Any) -> None:
    events = stream_events(client.converse_stream(modelId="claude-chunks-2", messages=USER))
    usage = {
        "inputTokens": tokens("Hi there"),
        "outputTokens": tokens(fs.HELLO_ANSWER),
        "totalTokens": tokens("Hi there") + tokens(fs.HELLO_ANSWER),
    }
    assert events == [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": "Hello from th"}, "contentBlockIndex": 0}},
        {"contentBlockDelta": {"delta": {"text": "e fake model."}, "contentBlockIndex": 0}},
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "end_turn"}},
        {"metadata": {"usage": usage, "metrics": {"latencyMs": fs.CONVERSE_LATENCY_MS}}},
    ]


@needs_converse
def test_converse_stream_tool_use_and_reasoning(client: Any) -> None:
    events = stream_events(
        client.converse_stream(
            modelId="claude-chunks-3",
            messages=USER,
            toolConfig={"tools": [WEATHER_TOOL]},
            additionalModelRequestFields={"reasoning_config": {"type": "enabled", "budget_tokens": 1024}},
        )
    )
    names = [next(iter(event)) for event in events]
    assert names == [
        "messageStart",
        *["contentBlockDelta"] * 4,  # 3 reasoning text pieces and the signature
        "contentBlockStop",
        "contentBlockStart",
        *["contentBlockDelta"] * 3,
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    deltas = [e["contentBlockDelta"] for e in events if "contentBlockDelta" in e]
    reasoning = [d["delta"]["reasoningContent"] for d in deltas if d["contentBlockIndex"] == 0]
    assert "".join(part.get("text", "") for part in reasoning) == fs.THINKING_TEXT
    assert reasoning[-1] == {"signature": fs.THINKING_SIGNATURE}
    assert events[6] == {
        "contentBlockStart": {
            "start": {"toolUse": {"toolUseId": fs.CONVERSE_TOOL_USE_ID, "name": "get_weather"}},
            "contentBlockIndex": 1,
        }
    }
    tool_input = "".join(d["delta"]["toolUse"]["input"] for d in deltas if d["contentBlockIndex"] == 1)
    assert json.loads(tool_input) == {"city": "Paris"}
    assert events[-2] == {"messageStop": {"stopReason": "tool_use"}}


# --------------------------------------------------------------------------
# Guardrails
# --------------------------------------------------------------------------


def guardrail(identifier: str, trace: str = "enabled") -> dict[str, str]:
    return {"guardrailIdentifier": identifier, "guardrailVersion": "1", "trace": trace}


def metrics(characters: int) -> dict[str, Any]:
    """The ``invocationMetrics`` the fake reports for an assessment of ``characters`` characters."""
    units = max(1, -(-characters // 1000))  # one unit per started 1,000 characters
    usage = {
        "topicPolicyUnits": 0,
        "contentPolicyUnits": units,
        "wordPolicyUnits": 0,
        "sensitiveInformationPolicyUnits": units,
        "sensitiveInformationPolicyFreeUnits": 0,
        "contextualGroundingPolicyUnits": 0,
        "contentPolicyImageUnits": 0,
    }
    coverage = {"textCharacters": {"guarded": characters, "total": characters}}
    return {"guardrailProcessingLatency": 1, "usage": usage, "guardrailCoverage": coverage}


VIOLENCE_BLOCKED = {
    "contentPolicy": {
        "filters": [
            {"type": "VIOLENCE", "confidence": "HIGH", "filterStrength": "HIGH", "action": "BLOCKED", "detected": True}
        ]
    }
}


@needs_converse
def test_guardrail_blocks_the_input_with_trace(client: Any) -> None:
    response = client.converse(modelId=CLAUDE, messages=USER, guardrailConfig=guardrail("gr-block"))
    assert response["stopReason"] == "guardrail_intervened"
    assert response["output"]["message"]["content"] == [{"text": fs.GUARDRAIL_BLOCKED_MESSAGE}]
    assert response["usage"] == {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}
    assert response["trace"] == {
        "guardrail": {
            "inputAssessment": {"gr-block": {**VIOLENCE_BLOCKED, "invocationMetrics": metrics(len("Hi there"))}},
            "actionReason": fs.GUARDRAIL_ACTION_REASON,
        }
    }
    # ARNs are keyed by the guardrail id; without trace there is no trace
    arn = "arn:aws:bedrock:us-east-1:123456789012:guardrail/gr-block-7x"
    untraced = client.converse(modelId=CLAUDE, messages=USER, guardrailConfig=guardrail(arn, "disabled"))
    assert untraced["stopReason"] == "guardrail_intervened" and "trace" not in untraced
    traced = client.converse(modelId=CLAUDE, messages=USER, guardrailConfig=guardrail(arn))
    assert list(traced["trace"]["guardrail"]["inputAssessment"]) == ["gr-block-7x"]


@needs_converse
def test_guardrail_blocks_the_output(client: Any) -> None:
    response = client.converse(modelId=CLAUDE, messages=USER, guardrailConfig=guardrail("gr-block-output"))
    assert response["stopReason"] == "guardrail_intervened"
    assert response["output"]["message"]["content"] == [{"text": fs.GUARDRAIL_BLOCKED_MESSAGE}]
    assert response["usage"]["outputTokens"] == tokens(fs.HELLO_ANSWER)  # the model did run
    assert response["trace"]["guardrail"] == {
        "modelOutput": [fs.HELLO_ANSWER],
        "inputAssessment": {"gr-block-output": {"invocationMetrics": metrics(len("Hi there"))}},
        "outputAssessments": {
            "gr-block-output": [{**VIOLENCE_BLOCKED, "invocationMetrics": metrics(len(fs.HELLO_ANSWER))}]
        },
        "actionReason": fs.GUARDRAIL_ACTION_REASON,
    }


@needs_converse
def test_guardrail_anonymizes_pii_and_lets_the_turn_through(client: Any) -> None:
    messages = [{"role": "user", "content": [{"text": PII_PROMPT}]}]
    response = client.converse(modelId=CLAUDE, messages=messages, guardrailConfig=guardrail("gr-anonymize"))
    assert response["stopReason"] == "end_turn"
    assert response["output"]["message"]["content"] == [{"text": fs.HELLO_ANSWER}]
    entity = {"match": "jane.doe@example.com", "type": "EMAIL", "action": "ANONYMIZED", "detected": True}
    assert response["trace"]["guardrail"] == {
        "inputAssessment": {
            "gr-anonymize": {
                "sensitiveInformationPolicy": {"piiEntities": [entity]},
                "invocationMetrics": metrics(len(PII_PROMPT)),
            }
        },
        "outputAssessments": {"gr-anonymize": [{"invocationMetrics": metrics(len(fs.HELLO_ANSWER))}]},
    }
    passed = client.converse(modelId=CLAUDE, messages=messages, guardrailConfig=guardrail("abc123xyz"))
    assert passed["stopReason"] == "end_turn"
    assert passed["trace"]["guardrail"]["inputAssessment"] == {
        "abc123xyz": {"invocationMetrics": metrics(len(PII_PROMPT))}
    }


@needs_converse
def test_guardrail_trace_streams_on_metadata(client: Any) -> None:
    blocked = stream_events(
        client.converse_stream(modelId=CLAUDE, messages=USER, guardrailConfig=guardrail("gr-block"))
    )
    assert blocked[:4] == [
        {"messageStart": {"role": "assistant"}},
        *(
            {"contentBlockDelta": {"delta": {"text": piece}, "contentBlockIndex": 0}}
            for piece in fs._split(fs.GUARDRAIL_BLOCKED_MESSAGE, None)[:3]
        ),
    ]
    assert blocked[-2] == {"messageStop": {"stopReason": "guardrail_intervened"}}
    meta = blocked[-1]["metadata"]
    assert meta["usage"] == {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}
    assessment = meta["trace"]["guardrail"]["inputAssessment"]["gr-block"]
    assert assessment["contentPolicy"] == VIOLENCE_BLOCKED["contentPolicy"]

    messages = [{"role": "user", "content": [{"text": PII_PROMPT}]}]
    anonymized = stream_events(
        client.converse_stream(modelId=CLAUDE, messages=messages, guardrailConfig=guardrail("gr-anonymize"))
    )
    assert anonymized[-2] == {"messageStop": {"stopReason": "end_turn"}}
    policy = anonymized[-1]["metadata"]["trace"]["guardrail"]["inputAssessment"]["gr-anonymize"]
    assert policy["sensitiveInformationPolicy"]["piiEntities"][0]["action"] == "ANONYMIZED"


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

ERROR_CODES = [
    ("error-400", 400, "ValidationException"),
    ("error-403", 403, "AccessDeniedException"),
    ("error-404", 404, "ResourceNotFoundException"),
    ("error-408", 408, "ModelTimeoutException"),
    ("error-424", 424, "ModelErrorException"),
    ("error-429", 429, "ThrottlingException"),
    ("error-429-ModelNotReadyException", 429, "ModelNotReadyException"),
    ("error-500", 500, "InternalServerException"),
    ("error-503", 503, "ServiceUnavailableException"),
]


@needs_converse
@pytest.mark.parametrize(("model", "status", "code"), ERROR_CODES)
def test_converse_error_models_raise_client_error(client: Any, model: str, status: int, code: str) -> None:
    with pytest.raises(ClientError) as raised:
        client.converse(modelId=model, messages=USER)
    error = raised.value.response
    assert error["Error"] == {"Code": code, "Message": f"Fake error {status} scripted by model '{model}'."}
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    assert error["ResponseMetadata"]["RequestId"] == "req_fake_1"
    assert isinstance(raised.value, getattr(client.exceptions, code))  # botocore's modeled exception class


@pytest.mark.parametrize(("marker", "status", "code"), ERROR_CODES)
def test_invoke_error_models_raise_client_error(client: Any, marker: str, status: int, code: str) -> None:
    model = f"meta.llama3-8b-instruct-{marker}"
    with pytest.raises(ClientError) as raised:
        invoke(client, model, {"prompt": "hi"})
    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_botocore_retries_throttling(server: FakeModelServer) -> None:
    retrying = new_client(server, retries={"total_max_attempts": 2, "mode": "standard"})
    with pytest.raises(ClientError) as raised:
        invoke(retrying, "meta.llama3-error-429", {"prompt": "hi"})
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 1
    assert len(server.requests) == 2


@needs_converse
def test_converse_validation_errors(client: Any) -> None:
    assistant_first = [{"role": "assistant", "content": [{"text": "Hi"}]}, *USER]
    with pytest.raises(ClientError) as raised:
        client.converse(modelId=CLAUDE, messages=assistant_first)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert raised.value.response["Error"]["Message"].startswith("A conversation must start with a user message.")

    with pytest.raises(ClientError) as raised:
        client.converse(modelId=CLAUDE, messages=[*USER, *USER])
    assert "alternate between user and assistant" in raised.value.response["Error"]["Message"]

    result = {"toolResult": {"toolUseId": "t1", "content": [{"text": "18C"}]}}
    with pytest.raises(ClientError) as raised:
        client.converse(modelId=CLAUDE, messages=[{"role": "user", "content": [result]}])
    assert raised.value.response["Error"]["Message"] == (
        "The toolConfig field must be defined when using toolUse and toolResult content blocks."
    )


def test_invoke_validation_error(client: Any) -> None:
    with pytest.raises(ClientError) as raised:
        invoke(client, LLAMA, {"inputText": "wrong family"})
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "required key [prompt] not found" in raised.value.response["Error"]["Message"]


@needs_converse
def test_converse_stream_midstream_exception_after_first_delta(client: Any) -> None:
    seen: list[dict[str, Any]] = []
    with pytest.raises(EventStreamError) as raised:
        for event in client.converse_stream(modelId="error-midstream", messages=USER)["stream"]:
            seen.append(event)
    assert seen == [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": "Hell"}, "contentBlockIndex": 0}},
    ]
    assert isinstance(raised.value, ClientError)
    assert raised.value.response["Error"] == {
        "Code": "modelStreamErrorException",
        "Message": "Model stream error (fake).",
    }


@needs_converse
def test_converse_stream_disconnect_after_first_delta(client: Any) -> None:
    seen: list[dict[str, Any]] = []
    with pytest.raises(ProtocolError):
        for event in client.converse_stream(modelId="error-disconnect", messages=USER)["stream"]:
            seen.append(event)
    assert len(seen) == 2


def test_invoke_stream_midstream_exception(client: Any) -> None:
    response = client.invoke_model_with_response_stream(modelId="meta.llama3-error-midstream", body='{"prompt": "hi"}')
    seen: list[dict[str, Any]] = []
    with pytest.raises(EventStreamError) as raised:
        for event in response["body"]:
            seen.append(json.loads(event["chunk"]["bytes"]))
    assert [chunk["generation"] for chunk in seen] == ["Hell"]
    assert raised.value.response["Error"]["Code"] == "modelStreamErrorException"


# --------------------------------------------------------------------------
# InvokeModel for the other model families
# --------------------------------------------------------------------------


def test_invoke_nova(client: Any, server: FakeModelServer) -> None:
    body = {
        "schemaVersion": "messages-v1",
        "system": [{"text": "Be brief."}],
        "messages": USER,
        "inferenceConfig": {"maxTokens": 100, "temperature": 0.5},
    }
    answer, headers = invoke(client, f"us.{NOVA}", body)
    in_tokens, out_tokens = tokens("Be brief.", "Hi there"), tokens(fs.HELLO_ANSWER)
    assert answer == {
        "output": {"message": {"role": "assistant", "content": [{"text": fs.HELLO_ANSWER}]}},
        "stopReason": "end_turn",
        "usage": {
            "inputTokens": in_tokens,
            "outputTokens": out_tokens,
            "totalTokens": in_tokens + out_tokens,
            "cacheReadInputTokenCount": 0,
            "cacheWriteInputTokenCount": 0,
        },
    }
    assert headers["x-amzn-bedrock-input-token-count"] == str(in_tokens)
    assert headers["x-amzn-bedrock-output-token-count"] == str(out_tokens)
    assert server.requests[0].path == "/model/us.amazon.nova-lite-v1%3A0/invoke"
    assert_sigv4(server.requests[0])

    tools = {"tools": [WEATHER_TOOL]}
    called, _ = invoke(client, NOVA, {"messages": USER, "toolConfig": tools})
    assert called["stopReason"] == "tool_use"
    assert called["output"]["message"]["content"][0]["toolUse"]["input"] == {"city": "Paris"}

    chunks = invoke_chunks(client, NOVA, {"messages": USER})
    assert chunks[0] == {"messageStart": {"role": "assistant"}}
    text = "".join(c["contentBlockDelta"]["delta"]["text"] for c in chunks if "contentBlockDelta" in c)
    assert text == fs.HELLO_ANSWER
    assert chunks[-2] == {"messageStop": {"stopReason": "end_turn"}}
    assert chunks[-1]["metadata"]["usage"]["outputTokens"] == out_tokens
    assert chunks[-1]["amazon-bedrock-invocationMetrics"] == {
        "inputTokenCount": tokens("Hi there"),
        "outputTokenCount": out_tokens,
        "invocationLatency": 1,
        "firstByteLatency": 1,
    }


def test_invoke_llama(client: Any) -> None:
    prompt = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\nHi there<|eot_id|>"
    answer, _ = invoke(client, LLAMA, {"prompt": prompt, "max_gen_len": 128, "temperature": 0.5})
    assert answer == {
        "generation": fs.HELLO_ANSWER,
        "prompt_token_count": tokens(prompt),
        "generation_token_count": tokens(fs.HELLO_ANSWER),
        "stop_reason": "stop",
    }
    cut, _ = invoke(client, "meta.llama3-maxtokens", {"prompt": prompt})
    assert (cut["generation"], cut["stop_reason"]) == (fs.HELLO_ANSWER[:13], "length")

    chunks = invoke_chunks(client, "meta.llama3-chunks-2", {"prompt": prompt})
    assert [c["generation"] for c in chunks] == ["Hello from th", "e fake model."]
    assert chunks[0]["prompt_token_count"] == tokens(prompt) and chunks[0]["stop_reason"] is None
    assert chunks[-1]["stop_reason"] == "stop"
    assert chunks[-1]["generation_token_count"] == tokens(fs.HELLO_ANSWER)
    assert chunks[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == tokens(fs.HELLO_ANSWER)


def test_invoke_titan(client: Any) -> None:
    body = {"inputText": "User: Hi there\nBot:", "textGenerationConfig": {"maxTokenCount": 100}}
    answer, _ = invoke(client, TITAN, body)
    assert answer == {
        "inputTextTokenCount": tokens(body["inputText"]),
        "results": [
            {"tokenCount": tokens(fs.HELLO_ANSWER), "outputText": fs.HELLO_ANSWER, "completionReason": "FINISH"}
        ],
    }
    cut, _ = invoke(client, "amazon.titan-text-lite-v1-maxtokens", body)
    assert cut["results"][0]["completionReason"] == "LENGTH"

    chunks = invoke_chunks(client, TITAN, body)
    assert "".join(c["outputText"] for c in chunks) == fs.HELLO_ANSWER
    assert chunks[0]["inputTextTokenCount"] == tokens(body["inputText"])
    assert [c["completionReason"] for c in chunks][-2:] == [None, "FINISH"]
    assert "amazon-bedrock-invocationMetrics" in chunks[-1]


def test_invoke_mistral_text_and_chat(client: Any) -> None:
    prompt = "<s>[INST] Hi there [/INST]"
    answer, _ = invoke(client, MISTRAL, {"prompt": prompt, "max_tokens": 100})
    assert answer == {"outputs": [{"text": fs.HELLO_ANSWER, "stop_reason": "stop"}]}
    chunks = invoke_chunks(client, MISTRAL, {"prompt": prompt})
    assert "".join(c["outputs"][0]["text"] for c in chunks) == fs.HELLO_ANSWER
    assert chunks[-1]["outputs"][0]["stop_reason"] == "stop"

    chat = {"messages": [{"role": "user", "content": "Hi there"}], "max_tokens": 100}
    answer, _ = invoke(client, MISTRAL_LARGE, chat)
    message = {"role": "assistant", "content": fs.HELLO_ANSWER}
    assert answer == {"choices": [{"index": 0, "message": message, "stop_reason": "stop"}]}

    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    called, _ = invoke(client, MISTRAL_LARGE, {**chat, "tools": tools})
    call = {"id": fs.MISTRAL_TOOL_CALL_ID, "function": {"name": "get_weather", "arguments": fs.TOOL_ARGUMENTS}}
    assert called["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": "", "tool_calls": [call]},
        "stop_reason": "tool_calls",
    }
    follow_up = [
        *chat["messages"],
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": fs.MISTRAL_TOOL_CALL_ID, "content": '{"temp_c": 18}'},
    ]
    answered, _ = invoke(client, MISTRAL_LARGE, {"messages": follow_up, "tools": tools})
    assert answered["choices"][0]["message"]["content"] == fs.WEATHER_ANSWER


def test_invoke_cohere_command_and_command_r(client: Any) -> None:
    answer, _ = invoke(client, COHERE, {"prompt": "Hi there", "max_tokens": 100})
    assert answer == {
        "generations": [{"finish_reason": "COMPLETE", "id": "cohere-fake-1-gen", "text": fs.HELLO_ANSWER}],
        "id": "cohere-fake-1",
        "prompt": "Hi there",
    }
    history = [{"role": "USER", "message": "Hello"}, {"role": "CHATBOT", "message": "Hi!"}]
    answer, headers = invoke(client, COHERE_R, {"message": "Hi there", "chat_history": history})
    assert answer == {
        "response_id": "cohere-fake-2",
        "text": fs.HELLO_ANSWER,
        "generation_id": "cohere-fake-2-gen",
        "chat_history": [
            *history,
            {"role": "USER", "message": "Hi there"},
            {"role": "CHATBOT", "message": fs.HELLO_ANSWER},
        ],
        "finish_reason": "COMPLETE",
    }
    assert headers["x-amzn-bedrock-output-token-count"] == str(tokens(fs.HELLO_ANSWER))

    chunks = invoke_chunks(client, COHERE_R, {"message": "Hi there"})
    assert chunks[0]["event_type"] == "stream-start"
    assert "".join(c["text"] for c in chunks if c["event_type"] == "text-generation") == fs.HELLO_ANSWER
    assert chunks[-1]["event_type"] == "stream-end" and chunks[-1]["finish_reason"] == "COMPLETE"
    texts = invoke_chunks(client, COHERE, {"prompt": "Hi there"})
    assert texts[-1]["is_finished"] is True and "amazon-bedrock-invocationMetrics" in texts[-1]


def test_anthropic_model_ids_keep_the_messages_answer(client: Any) -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    answer, _ = invoke(client, CLAUDE, body)
    assert answer["type"] == "message" and answer["content"] == [{"type": "text", "text": fs.HELLO_ANSWER}]
    arn = f"arn:aws:bedrock:us-east-1::foundation-model/{LLAMA}"
    llama, _ = invoke(client, arn, {"prompt": "Hi"})
    assert llama["generation"] == fs.HELLO_ANSWER


# --------------------------------------------------------------------------
# The Converse wire format, checked with botocore's primitives (runs on botocore 1.31.57 too)
# --------------------------------------------------------------------------


def signed_post(server: FakeModelServer, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """POST ``body`` SigV4-signed by botocore's signer, as the client would; status, headers and raw bytes."""
    url = server.bedrock_endpoint_url + path
    aws = AWSRequest(
        method="POST", url=url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    SigV4Auth(Credentials(AWS_ACCESS_KEY, AWS_SECRET_KEY), "bedrock", AWS_REGION).add_auth(aws)
    request = urllib.request.Request(url, data=aws.body, method="POST", headers=dict(aws.headers.items()))
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def test_converse_stream_frames_are_named_events_with_plain_json(server: FakeModelServer) -> None:
    status, headers, raw = signed_post(server, "/model/claude-chunks-1/converse-stream", {"messages": USER})
    assert status == 200
    assert headers["content-type"] == "application/vnd.amazon.eventstream"
    assert headers["x-amzn-requestid"] == "req_fake_1"
    buffer = EventStreamBuffer()
    buffer.add_data(raw)  # botocore checks both CRC32s of every message while decoding
    messages = list(buffer)
    assert [m.headers[":message-type"] for m in messages] == ["event"] * len(messages)
    assert {m.headers[":content-type"] for m in messages} == {"application/json"}
    decoded = [(m.headers[":event-type"], json.loads(m.payload)) for m in messages]
    assert decoded[:4] == [
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"delta": {"text": fs.HELLO_ANSWER}, "contentBlockIndex": 0}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "end_turn"}),
    ]
    assert decoded[4][0] == "metadata" and set(decoded[4][1]) == {"usage", "metrics"}


def test_converse_midstream_exception_frame(server: FakeModelServer) -> None:
    _, _, raw = signed_post(server, "/model/error-midstream/converse-stream", {"messages": USER})
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    last = list(buffer)[-1]
    assert last.headers[":message-type"] == "exception"
    assert last.headers[":exception-type"] == "modelStreamErrorException"
    assert json.loads(last.payload) == {
        "message": "Model stream error (fake).",
        "originalStatusCode": 500,
        "originalMessage": "Internal server error (fake).",
    }


def test_converse_json_and_error_on_the_wire(server: FakeModelServer) -> None:
    status, headers, raw = signed_post(server, "/model/claude/converse", {"messages": USER})
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(raw)["output"]["message"]["content"] == [{"text": fs.HELLO_ANSWER}]
    status, headers, raw = signed_post(server, "/model/error-503/converse", {"messages": USER})
    assert status == 503
    assert headers["x-amzn-errortype"].split(":", 1)[0] == "ServiceUnavailableException"
    assert json.loads(raw) == {"message": "Fake error 503 scripted by model 'error-503'."}


def test_invoke_stream_chunks_are_base64_wrapped(server: FakeModelServer) -> None:
    """Unlike ConverseStream, InvokeModelWithResponseStream wraps each chunk: ``{"bytes": base64(JSON)}``."""
    _, _, raw = signed_post(server, f"/model/{LLAMA}/invoke-with-response-stream", {"prompt": "hi"})
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    first = next(iter(buffer))
    assert first.headers[":event-type"] == "chunk"
    assert json.loads(base64.b64decode(json.loads(first.payload)["bytes"]))["generation"] == "Hell"
