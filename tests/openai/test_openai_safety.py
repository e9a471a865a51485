"""What OpenAI and Azure OpenAI say about safety becomes an ``llm_audit.policy`` event.

Driven through the real ``openai`` SDK against the fake server's safety conventions (see its
module docstring): ``refuse`` (a refusal), ``filter-completion`` (finish reason / incomplete
reason ``content_filter``; on Azure also violence filtered at high severity),
``filter-prompt`` (Azure's 400 ``content_filter`` error) and ``flag-prompt`` (Azure: a
jailbreak detected in the prompt, annotated only). The Azure client talks to the fake
server's ``/openai/deployments/{deployment}/chat/completions`` and ``/openai/responses``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.trace import StatusCode

from otel_llm_audit import semconv
from otel_llm_audit.demo.fake_server import REFUSAL_ANSWER, FakeModelServer
from span_helpers import policy_events

MESSAGES = [{"role": "user", "content": "Hi"}]
OPENAI = "openai"
AZURE = "azure.ai.openai"

#: The Azure categories the fake server's ``filter-completion`` filters on the choice.
VIOLENCE_HIGH = {"violence": {"filtered": True, "severity": "high"}}
#: What its ``filter-prompt`` error says in ``innererror.content_filter_result`` / ``content_filters``.
PROMPT_BLOCK = {
    "jailbreak": {"detected": True, "filtered": True},
    "violence": {"filtered": True, "severity": "medium"},
}


@pytest.fixture
def azure(audit: Any, fake_server: FakeModelServer) -> Iterator[openai.AzureOpenAI]:
    """An Azure OpenAI client on the fake server's root, after the audit pipeline is built."""
    client = openai.AzureOpenAI(
        azure_endpoint=fake_server.base_url.removesuffix("/v1"),
        api_key="azure-test-key",
        api_version="2024-10-21",
        max_retries=0,
    )
    try:
        yield client
    finally:
        client.close()


def policy(category: str, action: str, source: str, name: str, details: dict[str, Any]) -> dict[str, Any]:
    """The exact attributes of one ``llm_audit.policy`` event."""
    return {
        semconv.LLM_AUDIT_POLICY_CATEGORY: category,
        semconv.LLM_AUDIT_POLICY_ACTION: action,
        semconv.LLM_AUDIT_POLICY_SOURCE: source,
        semconv.LLM_AUDIT_POLICY_NAME: name,
        semconv.LLM_AUDIT_POLICY_DETAILS: details,
    }


def finish_filter(source: str, choice_index: int = 0, categories: dict[str, Any] | None = None) -> dict[str, Any]:
    details: dict[str, Any] = {"scope": "completion", "choice_index": choice_index, "finish_reason": "content_filter"}
    if categories is not None:
        details["categories"] = categories
    return policy("content_filter", "blocked", source, "finish_reason", details)


def chat_refusal(source: str, choice_index: int = 0) -> dict[str, Any]:
    return policy("refusal", "refused", source, "refusal", {"choice_index": choice_index})


def _all_text(span: Any) -> str:
    values = [str(v) for v in span.attributes.values()]
    for event in span.events:
        values.extend(str(v) for v in event.attributes.values())
    return "\n".join(values)


def _output(span: Any) -> Any:
    return json.loads(span.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])


def _chat(client: Any, model: str, stream: bool, **kwargs: Any) -> list[Any]:
    """Call chat completions; the choices of the answer, or every chunk of the stream."""
    result = client.chat.completions.create(model=model, messages=MESSAGES, stream=stream, **kwargs)
    return list(result) if stream else list(result.choices)


def _responses(client: Any, model: str, stream: bool) -> Any:
    """Call the Responses API; the final response either way."""
    if not stream:
        return client.responses.create(model=model, input="Hi")
    final = None
    for event in client.responses.create(model=model, input="Hi", stream=True):
        if event.type in ("response.completed", "response.incomplete"):
            final = event.response
    return final


STREAM = pytest.mark.parametrize("stream", [False, True], ids=["sync", "stream"])


# ----------------------------------------------------------------------------- chat completions


@STREAM
def test_chat_refusal_is_a_refused_event_without_the_text(audit: Any, client: Any, stream: bool) -> None:
    answer = _chat(client, "gpt-4o-mini-refuse", stream)
    if stream:
        assert "".join(c.choices[0].delta.refusal or "" for c in answer if c.choices) == REFUSAL_ANSWER
    else:
        assert (answer[0].message.refusal, answer[0].message.content) == (REFUSAL_ANSWER, None)
    span = audit.only_llm_span()
    assert policy_events(span) == [chat_refusal(OPENAI)]
    assert span.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True
    assert list(span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]
    # The refusal text is content: it stays in the output messages, never in the event.
    (message,) = _output(span)
    assert {"type": "refusal", "content": REFUSAL_ANSWER} in message["parts"]
    for event in span.events:
        assert REFUSAL_ANSWER not in str(dict(event.attributes))


@STREAM
def test_chat_content_filter_finish_is_blocked_per_choice(audit: Any, client: Any, stream: bool) -> None:
    answer = _chat(client, "gpt-4o-mini-filter-completion", stream, n=2)
    reasons = [c.choices[0].finish_reason for c in answer if c.choices] if stream else [c.finish_reason for c in answer]
    assert [r for r in reasons if r] == ["content_filter", "content_filter"]
    span = audit.only_llm_span()
    assert policy_events(span) == [finish_filter(OPENAI, 0), finish_filter(OPENAI, 1)]
    assert span.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True
    assert list(span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["content_filter", "content_filter"]
    assert span.status.status_code is StatusCode.UNSET


async def test_async_stream_content_filter(audit: Any, async_client: Any) -> None:
    stream = await async_client.chat.completions.create(
        model="gpt-4o-mini-filter-completion", messages=MESSAGES, stream=True
    )
    assert [c.choices[0].finish_reason async for c in stream][-1] == "content_filter"
    assert policy_events(audit.only_llm_span()) == [finish_filter(OPENAI)]


@STREAM
def test_plain_chat_has_no_policy_event(audit: Any, client: Any, stream: bool) -> None:
    _chat(client, "gpt-4o-mini", stream)
    span = audit.only_llm_span()
    assert policy_events(span) == []
    assert semconv.LLM_AUDIT_AUDIT_RECORD not in span.attributes


def test_refusal_event_survives_content_none(make_audit: Any, make_client: Any) -> None:
    audit = make_audit(content="none")
    _chat(make_client(), "gpt-4o-mini-refuse", stream=False)
    span = audit.only_llm_span()
    assert policy_events(span) == [chat_refusal(OPENAI)]
    assert REFUSAL_ANSWER not in _all_text(span)


# ----------------------------------------------------------------------------- Azure OpenAI chat


@STREAM
def test_azure_filtered_completion_carries_its_categories(
    audit: Any, azure: Any, fake_server: FakeModelServer, stream: bool
) -> None:
    answer = _chat(azure, "gpt-4o-filter-completion", stream)
    assert fake_server.requests[-1].path == (
        "/openai/deployments/gpt-4o-filter-completion/chat/completions?api-version=2024-10-21"
    )
    if stream:  # Azure's first chunk: no choices, the prompt's filter results, empty id and model
        assert (answer[0].id, answer[0].choices) == ("", [])
        assert answer[0].model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    span = audit.only_llm_span()
    assert span.attributes[semconv.GEN_AI_PROVIDER_NAME] == AZURE
    # One event for the choice: its finish reason and the categories that filtered it.
    assert policy_events(span) == [finish_filter(AZURE, 0, VIOLENCE_HIGH)]
    # The empty id and model of Azure's first chunk do not hide the real ones.
    assert span.attributes[semconv.GEN_AI_RESPONSE_ID] == "chatcmpl-fake-1"
    assert span.attributes[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-filter-completion-2026-01-01"


@STREAM
def test_azure_prompt_annotation_is_flagged(audit: Any, azure: Any, stream: bool) -> None:
    _chat(azure, "gpt-4o-flag-prompt", stream)
    span = audit.only_llm_span()
    details = {"scope": "prompt", "prompt_index": 0, "categories": {"jailbreak": {"detected": True, "filtered": False}}}
    assert policy_events(span) == [policy("content_filter", "flagged", AZURE, "prompt_filter_results", details)]
    assert span.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True
    assert list(span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]


@STREAM
def test_azure_safe_annotations_are_no_event(audit: Any, azure: Any, stream: bool) -> None:
    _chat(azure, "gpt-4o", stream)
    span = audit.only_llm_span()
    assert policy_events(span) == []
    assert semconv.LLM_AUDIT_AUDIT_RECORD not in span.attributes
    assert span.attributes[semconv.GEN_AI_RESPONSE_ID] == "chatcmpl-fake-1"


@STREAM
def test_azure_refusal(audit: Any, azure: Any, stream: bool) -> None:
    _chat(azure, "gpt-4o-refuse", stream)
    assert policy_events(audit.only_llm_span()) == [chat_refusal(AZURE)]


@STREAM
def test_azure_blocked_prompt_is_an_error_span_with_its_event(audit: Any, azure: Any, stream: bool) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        _chat(azure, "gpt-4o-filter-prompt", stream)
    assert raised.value.code == "content_filter"
    span = audit.only_llm_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "openai.BadRequestError"
    assert [e.name for e in span.events] == ["exception", semconv.EVENT_LLM_AUDIT_POLICY]
    details = {"scope": "prompt", "code": "content_filter", "categories": PROMPT_BLOCK}
    assert policy_events(span) == [policy("content_filter", "blocked", AZURE, "error", details)]
    assert span.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True


@STREAM
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_openai_invalid_prompt_is_an_error_span_with_its_event(audit: Any, client: Any, stream: bool, api: str) -> None:
    call = _chat if api == "chat" else _responses
    with pytest.raises(openai.BadRequestError) as raised:
        call(client, "o4-mini-invalid-prompt", stream)
    assert raised.value.code == "invalid_prompt"
    span = audit.only_llm_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "openai.BadRequestError"
    assert [e.name for e in span.events] == ["exception", semconv.EVENT_LLM_AUDIT_POLICY]
    details = {"scope": "prompt", "code": "invalid_prompt"}
    assert policy_events(span) == [policy("content_filter", "blocked", OPENAI, "error", details)]
    assert span.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True


def test_other_errors_are_no_policy_event(audit: Any, azure: Any) -> None:
    with pytest.raises(openai.BadRequestError):
        _chat(azure, "error-400", stream=False)
    span = audit.only_llm_span()
    assert span.status.status_code is StatusCode.ERROR
    assert policy_events(span) == []


# ----------------------------------------------------------------------------- Responses API


@STREAM
def test_responses_refusal_part(audit: Any, client: Any, stream: bool) -> None:
    response = _responses(client, "gpt-4o-mini-refuse", stream)
    assert response.output[0].content[0].refusal == REFUSAL_ANSWER
    span = audit.only_llm_span()
    details = {"output_index": 0, "content_index": 0}
    assert policy_events(span) == [policy("refusal", "refused", OPENAI, "refusal", details)]
    assert _output(span)[0]["parts"] == [{"type": "refusal", "content": REFUSAL_ANSWER}]
    for event in span.events:
        assert REFUSAL_ANSWER not in str(dict(event.attributes))


@STREAM
def test_responses_incomplete_content_filter(audit: Any, client: Any, stream: bool) -> None:
    response = _responses(client, "gpt-4o-mini-filter-completion", stream)
    assert (response.status, response.incomplete_details.reason) == ("incomplete", "content_filter")
    span = audit.only_llm_span()
    incomplete = policy("content_filter", "blocked", OPENAI, "incomplete_details", {"reason": "content_filter"})
    assert policy_events(span) == [incomplete]
    assert list(span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["content_filter"]
    assert span.attributes[semconv.GEN_AI_RESPONSE_STATUS] == "incomplete"


@STREAM
def test_azure_responses_content_filters(audit: Any, azure: Any, fake_server: FakeModelServer, stream: bool) -> None:
    _responses(azure, "gpt-4o-filter-completion", stream)
    assert fake_server.requests[-1].path == "/openai/responses?api-version=2024-10-21"
    span = audit.only_llm_span()
    completion = {"scope": "completion", "categories": VIOLENCE_HIGH}
    assert policy_events(span) == [
        policy("content_filter", "blocked", AZURE, "content_filters", completion),
        policy("content_filter", "blocked", AZURE, "incomplete_details", {"reason": "content_filter"}),
    ]


@STREAM
def test_azure_responses_blocked_prompt(audit: Any, azure: Any, stream: bool) -> None:
    with pytest.raises(openai.BadRequestError):
        _responses(azure, "gpt-4o-filter-prompt", stream)
    span = audit.only_llm_span()
    assert span.status.status_code is StatusCode.ERROR
    details = {"scope": "prompt", "code": "content_filter", "categories": PROMPT_BLOCK}
    assert policy_events(span) == [policy("content_filter", "blocked", AZURE, "error", details)]


def test_fetching_a_filtered_response_reports_it_too(audit: Any, client: Any) -> None:
    """``GET /responses/{id}`` (background mode's way to the result) says what the stored response says."""
    created = client.responses.create(model="gpt-4o-mini-filter-completion", input="Hi")
    client.responses.retrieve(created.id)
    spans = sorted(audit.llm_spans(), key=lambda s: s.start_time)
    incomplete = policy("content_filter", "blocked", OPENAI, "incomplete_details", {"reason": "content_filter"})
    assert [policy_events(s) for s in spans] == [[incomplete], [incomplete]]


# ----------------------------------------------------------------------------- shapes the fake does not send


def _resolve_chat(provider: str, *, response: Any = None, chunks: list[Any] | None = None) -> Any:
    from otel_llm_audit.instrumentation.openai import _capture
    from otel_llm_audit.records import LLMCall

    record = LLMCall(operation="chat", provider=provider, request_model="gpt-4o", stream=chunks is not None)
    state = _capture.OpenAICallState("/chat/completions", {"model": "gpt-4o", "messages": MESSAGES})
    state.response = response
    state.chunks = list(chunks or ())
    _capture.resolve_chat(record, state)
    return record


def _as_dicts(record: Any) -> list[dict[str, Any]]:
    return [
        {"category": e.category, "action": e.action, "source": e.source, "name": e.name, "details": e.details}
        for e in record.policy_events
    ]


def test_azure_annotations_merge_across_dict_chunks() -> None:
    """Plain-dict chunks (as some wrappers hand them over): per choice, the worst of every chunk, once."""
    matches = [{"filtered": True, "id": "banned-words"}, {"filtered": False, "id": "other-list"}]
    blocklist = {"filtered": True, "details": matches}
    citation = {"URL": "https://github.com/example/repo", "license": "MIT"}
    chunks = [
        {"id": "", "model": "", "choices": [], "prompt_annotations": [
            {"prompt_index": 0, "content_filter_result": {"hate": {"filtered": False, "severity": "low"}}}]},
        {"id": "chatcmpl-1", "model": "gpt-4o-2024-08-06", "choices": [{"index": 0, "delta": {"content": "a"},
            "content_filter_results": {"violence": {"filtered": False, "severity": "low"}}}]},
        {"id": "chatcmpl-1", "model": "gpt-4o-2024-08-06", "choices": [{"index": 0, "delta": {"content": "b"},
            "content_filter_results": {"violence": {"filtered": False, "severity": "medium"},
                                       "custom_blocklists": blocklist,
                                       "protected_material_code": {"filtered": False, "detected": True,
                                                                   "citation": citation}}}]},
        {"id": "chatcmpl-1", "model": "gpt-4o-2024-08-06", "choices": [{"index": 0, "delta": {},
            "finish_reason": "stop", "content_filter_results": {"violence": {"filtered": False, "severity": "safe"}}}]},
    ]  # fmt: skip
    record = _resolve_chat(AZURE, chunks=chunks)
    assert (record.response_id, record.response_model) == ("chatcmpl-1", "gpt-4o-2024-08-06")
    assert _as_dicts(record) == [
        {"category": "content_filter", "action": "flagged", "source": AZURE, "name": "prompt_filter_results",
         "details": {"scope": "prompt", "prompt_index": 0,
                     "categories": {"hate": {"filtered": False, "severity": "low"}}}},
        {"category": "content_filter", "action": "blocked", "source": AZURE, "name": "content_filter_results",
         "details": {"scope": "completion", "choice_index": 0, "categories": {
             "custom_blocklists": {"filtered": True, "ids": ["banned-words"]},
             "protected_material_code": {"filtered": False, "detected": True,
                                         "citation": {"url": "https://github.com/example/repo", "license": "MIT"}},
             "violence": {"filtered": False, "severity": "medium"}}}},
    ]  # fmt: skip


def test_refusal_and_filter_in_a_dict_completion() -> None:
    completion = {
        "id": "chatcmpl-2",
        "model": "gpt-4o",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "refusal": "No."}},
            {"index": 1, "finish_reason": "content_filter", "message": {"role": "assistant", "content": None}},
        ],
    }
    record = _resolve_chat(OPENAI, response=completion)
    assert [(e.category, e.action, e.name, e.details) for e in record.policy_events] == [
        ("refusal", "refused", "refusal", {"choice_index": 0}),
        ("content_filter", "blocked", "finish_reason",
         {"scope": "completion", "choice_index": 1, "finish_reason": "content_filter"}),
    ]  # fmt: skip
