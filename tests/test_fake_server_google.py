"""The fake model server's Google side (Gemini API and Vertex AI), raw on the wire and through ``google-genai``.

The raw tests pin the JSON shapes Google sends (what the instrumentation reads); the SDK tests
check that the installed ``google-genai`` (1.0 or 3.x) parses them into its own types.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from otel_llm_audit.demo import fake_google
from otel_llm_audit.demo import fake_server as fs
from otel_llm_audit.demo.fake_server import FakeModelServer

GEMINI = "/v1beta/models/gemini-2.5-flash"
VERTEX = "/v1beta1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash"
USER = {"contents": [{"role": "user", "parts": [{"text": "Hi there"}]}]}
KEY = {"x-goog-api-key": "AIza-fake"}


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as started:
        yield started


def _post(server: FakeModelServer, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(
        server.google_base_url + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **(headers if headers is not None else KEY)},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _json(server: FakeModelServer, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    status, data = _post(server, path, body, headers)
    return status, json.loads(data)


def _sse(data: bytes) -> list[Any]:
    frames = [f for f in data.split(b"\r\n\r\n") if f]
    assert all(f.startswith(b"data: ") for f in frames)
    return [json.loads(f[len(b"data: ") :]) for f in frames]


def test_generate_content_gemini_shape(server: FakeModelServer) -> None:
    status, answer = _json(server, f"{GEMINI}:generateContent", USER)
    assert status == 200
    assert answer == {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": fs.HELLO_ANSWER}]},
                "finishReason": "STOP",
                "safetyRatings": [{"category": c, "probability": "NEGLIGIBLE"} for c in fake_google.CATEGORIES],
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 3,
            "candidatesTokenCount": 7,
            "totalTokenCount": 10,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 3}],
            "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 7}],
        },
        "modelVersion": "gemini-2.5-flash-001",
        "responseId": "fake-gemini-1",
    }


def test_generate_content_vertex_shape(server: FakeModelServer) -> None:
    status, answer = _json(server, f"{VERTEX}:generateContent", USER, {"authorization": "Bearer ya29.x"})
    assert status == 200
    rating = answer["candidates"][0]["safetyRatings"][0]
    assert rating == {
        "category": "HARM_CATEGORY_HATE_SPEECH",
        "probability": "NEGLIGIBLE",
        "probabilityScore": 0.05,
        "severity": "HARM_SEVERITY_NEGLIGIBLE",
        "severityScore": 0.04,
    }
    assert answer["usageMetadata"]["trafficType"] == "ON_DEMAND"
    assert answer["createTime"] == fake_google.CREATE_TIME
    assert answer["responseId"] == "fake-gemini-1"
    assert server.requests[-1].headers["authorization"] == "Bearer ya29.x"


def test_express_mode_vertex_path_without_project(server: FakeModelServer) -> None:
    status, answer = _json(server, "/v1/publishers/google/models/gemini-2.5-pro:generateContent", USER, {})
    assert status == 200
    assert answer["modelVersion"] == "gemini-2.5-pro-001"


def test_gemini_api_needs_a_key(server: FakeModelServer) -> None:
    status, answer = _json(server, f"{GEMINI}:generateContent", USER, {})
    assert status == 403
    assert answer["error"]["status"] == "PERMISSION_DENIED"
    status, _ = _json(server, f"{GEMINI}:generateContent?key=AIza-fake", USER, {})
    assert status == 200


def test_stream_frames_usage_and_finish(server: FakeModelServer) -> None:
    status, data = _post(server, "/v1beta/models/gemini-2.5-flash-chunks-3:streamGenerateContent?alt=sse", USER)
    assert status == 200
    chunks = _sse(data)
    assert len(chunks) == 3
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text == fs.HELLO_ANSWER
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None, None, "STOP"]
    assert [c["usageMetadata"].get("candidatesTokenCount") for c in chunks] == [None, None, 7]
    assert {c["responseId"] for c in chunks} == {"fake-gemini-1"}


def test_cached_content_thinking_and_tools(server: FakeModelServer) -> None:
    body = {
        **USER,
        "cachedContent": "cachedContents/abc",
        "generationConfig": {"thinkingConfig": {"include_thoughts": True}},
        "tools": [{"functionDeclarations": [{"name": "get_weather"}]}],
    }
    _, answer = _json(server, f"{GEMINI}:generateContent", body)
    parts = answer["candidates"][0]["content"]["parts"]
    assert parts == [
        {"text": fs.THINKING_TEXT, "thought": True},
        {"functionCall": {"name": "get_weather", "args": fs.TOOL_INPUT}},
    ]
    usage = answer["usageMetadata"]
    assert usage["cachedContentTokenCount"] == 100
    assert usage["promptTokenCount"] == 3 + 100
    assert usage["thoughtsTokenCount"] == len(fs.THINKING_TEXT) // 4 + 1
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"] + 11
    after = {
        "contents": [
            *USER["contents"],
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": 18}}}]},
        ],
        "tools": body["tools"],
    }
    _, answer = _json(server, f"{GEMINI}:generateContent", after)
    assert answer["candidates"][0]["content"]["parts"] == [{"text": fs.WEATHER_ANSWER}]


@pytest.mark.parametrize("vertex", [False, True])
def test_safety_conventions(server: FakeModelServer, vertex: bool) -> None:
    path = f"{VERTEX if vertex else GEMINI}:generateContent"

    def ask(text: str) -> Any:
        return _json(server, path, {"contents": [{"role": "user", "parts": [{"text": text}]}]})[1]

    blocked = ask("block-prompt")
    assert "candidates" not in blocked
    assert blocked["promptFeedback"]["blockReason"] == "SAFETY"
    harassment = [r for r in blocked["promptFeedback"]["safetyRatings"] if r.get("blocked")]
    assert [(r["category"], r["probability"]) for r in harassment] == [("HARM_CATEGORY_HARASSMENT", "HIGH")]
    assert ask("prohibited-prompt")["promptFeedback"]["blockReason"] == "PROHIBITED_CONTENT"
    answer = ask("block-answer")["candidates"][0]
    assert answer["finishReason"] == "SAFETY" and "content" not in answer
    assert [r["category"] for r in answer["safetyRatings"] if r.get("blocked")] == ["HARM_CATEGORY_DANGEROUS_CONTENT"]
    flagged = ask("flag-answer")["candidates"][0]
    assert flagged["content"]["parts"] == [{"text": fs.HELLO_ANSWER}]
    assert [r["probability"] for r in flagged["safetyRatings"] if r["category"] == "HARM_CATEGORY_HARASSMENT"] == [
        "MEDIUM"
    ]
    assert ask("finish-RECITATION")["candidates"][0]["finishReason"] == "RECITATION"


@pytest.mark.parametrize(
    ("status", "name"), [(400, "INVALID_ARGUMENT"), (429, "RESOURCE_EXHAUSTED"), (503, "UNAVAILABLE")]
)
def test_error_models(server: FakeModelServer, status: int, name: str) -> None:
    got, answer = _json(server, f"/v1beta/models/error-{status}:generateContent", USER)
    assert got == status
    assert answer["error"]["code"] == status and answer["error"]["status"] == name


def test_invalid_requests_are_400(server: FakeModelServer) -> None:
    status, answer = _json(server, f"{GEMINI}:generateContent", {"contents": []})
    assert status == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
    status, _ = _json(server, f"{GEMINI}:generateContent", {**USER, "generationConfig": {"candidateCount": 99}})
    assert status == 400
    status, _ = _json(server, f"{GEMINI}:unknownMethod", USER)
    assert status == 404


def test_midstream_error_frame(server: FakeModelServer) -> None:
    _, data = _post(server, "/v1beta/models/error-midstream:streamGenerateContent?alt=sse", USER)
    chunks = _sse(data)
    assert len(chunks) == 2 and chunks[1]["error"]["code"] == 500


def test_embeddings_shapes(server: FakeModelServer) -> None:
    batch = {
        "requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "abc"}]}, "outputDimensionality": 4}
        ]
    }
    _, answer = _json(server, "/v1beta/models/text-embedding-004:batchEmbedContents", batch)
    assert [len(e["values"]) for e in answer["embeddings"]] == [4]
    status, _ = _json(server, "/v1beta/models/other:batchEmbedContents", batch)
    assert status == 400  # the request's model must be the URL's
    vertex = "/v1beta1/projects/p/locations/l/publishers/google/models"
    _, predicted = _json(server, f"{vertex}/text-embedding-005:predict", {"instances": [{"content": "abcdefgh"}]})
    assert predicted["predictions"][0]["embeddings"]["statistics"] == {"token_count": 3, "truncated": False}
    assert predicted["metadata"] == {"billableCharacterCount": 8}
    _, single = _json(server, f"{vertex}/gemini-embedding-001:embedContent", {"content": {"parts": [{"text": "ab"}]}})
    assert len(single["embedding"]["values"]) == fs.DEFAULT_EMBEDDING_DIMENSIONS
    assert single["usageMetadata"]["promptTokenCount"] == 1
    _, counted = _json(server, f"{GEMINI}:countTokens", USER)
    assert counted == {"totalTokens": 3}


def test_other_routes_are_untouched(server: FakeModelServer) -> None:
    status, _ = _json(
        server, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
    )
    assert status == 200


# ----------------------------------------------------------------------------- through the SDK


def test_the_sdk_parses_every_answer(server: FakeModelServer) -> None:
    genai = pytest.importorskip("google.genai")
    from google.genai import errors, types
    from google.oauth2.credentials import Credentials

    gemini = genai.Client(api_key="AIza-fake", http_options={"base_url": server.google_base_url})
    vertex = genai.Client(
        vertexai=True,
        project="p",
        location="us-central1",
        credentials=Credentials(token="ya29.fake"),
        http_options={"base_url": server.google_base_url},
    )
    for client in (gemini, vertex):
        response = client.models.generate_content(model="gemini-2.5-flash", contents="Hi there")
        assert response.text == fs.HELLO_ANSWER
        assert response.usage_metadata.total_token_count == 10
        assert response.candidates[0].safety_ratings[0].probability == types.HarmProbability.NEGLIGIBLE
        streamed = "".join(
            c.text for c in client.models.generate_content_stream(model="gemini-2.5-flash", contents="Hi")
        )
        assert streamed == fs.HELLO_ANSWER
        blocked = client.models.generate_content(model="gemini-2.5-flash", contents="block-prompt")
        assert blocked.prompt_feedback.block_reason == types.BlockedReason.SAFETY
        embedded = client.models.embed_content(model="text-embedding-004", contents=["a", "b"])
        assert len(embedded.embeddings) == 2
        with pytest.raises(errors.ClientError) as raised:
            client.models.generate_content(model="error-429", contents="x")
        assert raised.value.code == 429
    assert len([r for r in server.requests if "/projects/p/locations/us-central1/" in r.path]) == 5
