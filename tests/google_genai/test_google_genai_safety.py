"""What Gemini and Vertex AI say about safety becomes an ``llm_audit.policy`` event.

Driven through the real ``google-genai`` SDK against the fake server's safety conventions
(markers in the prompt text, see :mod:`otel_llm_audit.demo.fake_google`): ``block-prompt``
(``promptFeedback.blockReason`` SAFETY with a blocked harassment rating), ``prohibited-prompt``
(``PROHIBITED_CONTENT``, no ratings), ``block-answer`` (finish reason SAFETY, dangerous content
blocked), ``flag-answer`` (harassment rated MEDIUM, not blocked) and ``finish-<REASON>``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from genai_helpers import PROVIDERS, close, content, make_client, only, policy
from opentelemetry.trace import StatusCode

from otel_llm_audit import semconv
from otel_llm_audit.demo import fake_server as fs
from otel_llm_audit.demo.fake_server import FakeModelServer
from span_helpers import policy_events

MODEL = "gemini-2.5-flash"
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])


def _call(client: Any, text: str, stream: bool) -> list[Any]:
    """The response, or every chunk of the stream."""
    if stream:
        return list(client.models.generate_content_stream(model=MODEL, contents=text))
    return [client.models.generate_content(model=MODEL, contents=text)]


def _rating(level: str, backend: str, blocked: bool = False) -> dict[str, Any]:
    """One category's details as the event carries them (Vertex adds severity and scores)."""
    scores = {"MEDIUM": (0.6, 0.5), "HIGH": (0.95, 0.9)}[level]
    entry: dict[str, Any] = {"probability": level}
    if backend == "vertex":
        entry.update(
            {"probability_score": scores[0], "severity": f"HARM_SEVERITY_{level}", "severity_score": scores[1]}
        )
    if blocked:
        entry["blocked"] = True
    return entry


@STREAM
def test_blocked_prompt_is_an_error_span_with_its_event(audit: Any, client: Any, backend: str, stream: bool) -> None:
    (last,) = _call(client, "block-prompt: tell me something hateful", stream)
    assert last.prompt_feedback.block_reason.value == "SAFETY"  # the SDK's answer is untouched
    assert not last.candidates
    span = only(audit)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "The prompt was blocked by the provider (blockReason SAFETY)."
    assert span.attributes[semconv.ERROR_TYPE] == "content_filter"
    assert span.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True
    assert semconv.GEN_AI_OUTPUT_MESSAGES not in span.attributes
    assert semconv.GEN_AI_RESPONSE_FINISH_REASONS not in span.attributes
    assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] > 0
    details: dict[str, Any] = {
        "scope": "prompt",
        "block_reason": "SAFETY",
        "categories": {"HARM_CATEGORY_HARASSMENT": _rating("HIGH", backend, blocked=True)},
    }
    if backend == "vertex":
        details["block_reason_message"] = "The prompt was blocked due to safety reasons."
    assert policy_events(span) == [policy("blocked", PROVIDERS[backend], "prompt_feedback", details)]
    assert [e.name for e in span.events] == ["exception", semconv.EVENT_LLM_AUDIT_POLICY]


def test_prohibited_prompt_without_ratings(audit: Any, client: Any, backend: str) -> None:
    _call(client, "prohibited-prompt", stream=False)
    span = only(audit)
    assert span.status.status_code is StatusCode.ERROR
    details: dict[str, Any] = {"scope": "prompt", "block_reason": "PROHIBITED_CONTENT"}
    if backend == "vertex":
        details["block_reason_message"] = "The prompt was blocked due to safety reasons."
    assert policy_events(span) == [policy("blocked", PROVIDERS[backend], "prompt_feedback", details)]


@STREAM
def test_blocked_answer_is_a_blocked_event_not_an_error(audit: Any, client: Any, backend: str, stream: bool) -> None:
    chunks = _call(client, "block-answer: how do I build one", stream)
    assert chunks[-1].candidates[0].finish_reason.value == "SAFETY"
    span = only(audit)
    assert span.status.status_code is StatusCode.UNSET
    assert list(span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["SAFETY"]
    assert content(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [], "finish_reason": "content_filter"}
    ]
    details = {
        "scope": "completion",
        "candidate_index": 0,
        "finish_reason": "SAFETY",
        "categories": {"HARM_CATEGORY_DANGEROUS_CONTENT": _rating("HIGH", backend, blocked=True)},
    }
    assert policy_events(span) == [policy("blocked", PROVIDERS[backend], "finish_reason", details)]


@STREAM
def test_medium_rating_is_flagged_and_the_answer_kept(audit: Any, client: Any, backend: str, stream: bool) -> None:
    chunks = _call(client, "flag-answer: hello", stream)
    assert "".join(c.text for c in chunks) == fs.HELLO_ANSWER
    span = only(audit)
    assert span.status.status_code is StatusCode.UNSET
    details = {
        "scope": "completion",
        "candidate_index": 0,
        "categories": {"HARM_CATEGORY_HARASSMENT": _rating("MEDIUM", backend)},
    }
    assert policy_events(span) == [policy("flagged", PROVIDERS[backend], "safety_ratings", details)]


@pytest.mark.parametrize("reason", ["PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY"])
def test_filter_finish_reasons_are_blocked_events(audit: Any, client: Any, backend: str, reason: str) -> None:
    _call(client, f"finish-{reason}", stream=False)
    span = only(audit)
    assert list(span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == [reason]
    details = {"scope": "completion", "candidate_index": 0, "finish_reason": reason}
    assert policy_events(span) == [policy("blocked", PROVIDERS[backend], "finish_reason", details)]


@pytest.mark.parametrize("reason", ["OTHER", "MALFORMED_FUNCTION_CALL"])
def test_other_finish_reasons_are_no_policy_event(audit: Any, client: Any, reason: str) -> None:
    _call(client, f"finish-{reason}", stream=False)
    span = only(audit)
    assert policy_events(span) == []
    assert content(span, semconv.GEN_AI_OUTPUT_MESSAGES)[0]["finish_reason"] == "error"


@STREAM
def test_negligible_ratings_are_no_event(audit: Any, client: Any, stream: bool) -> None:
    _call(client, "Hi there", stream)
    span = only(audit)
    assert policy_events(span) == []
    assert semconv.LLM_AUDIT_AUDIT_RECORD not in span.attributes


def test_async_blocked_prompt_stream(audit: Any, backend: str, fake_server: FakeModelServer) -> None:
    client = make_client(fake_server, backend)

    async def run() -> int:
        stream = await client.aio.models.generate_content_stream(model=MODEL, contents="block-prompt")
        return len([chunk async for chunk in stream])

    assert asyncio.run(run()) == 1
    close(client)
    span = only(audit)
    assert span.status.status_code is StatusCode.ERROR
    assert [e[semconv.LLM_AUDIT_POLICY_NAME] for e in policy_events(span)] == ["prompt_feedback"]


def test_events_never_carry_the_prompt(audit: Any, client: Any) -> None:
    _call(client, "block-prompt: my secret is hunter2", stream=False)
    span = only(audit)
    for event in span.events:
        if event.name == semconv.EVENT_LLM_AUDIT_POLICY:
            assert "hunter2" not in str(dict(event.attributes))
