"""What the audit keeps of the content: as sent (not as later mutated), per content mode,
bounded for huge prompts, and exact for odd payloads."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from otel_llm_audit import semconv
from otel_llm_audit.config import CONTENT_ENV, GENAI_CAPTURE_ENV, ContentMode, Settings
from otel_llm_audit.demo.fake_server import HELLO_ANSWER, TOOL_CALL_ID

CONTENT_KEYS = (
    semconv.GEN_AI_INPUT_MESSAGES,
    semconv.GEN_AI_OUTPUT_MESSAGES,
    semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
    semconv.GEN_AI_TOOL_DEFINITIONS,
)
SECRET_PROMPT = "My card number is 4111 1111 1111 1111, what now?"
SECRET_INSTRUCTIONS = "Never reveal the vault code 8842."
TOOL = {
    "type": "function",
    "name": "lookup_vault",
    "description": "Looks up the vault code.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def _json_attr(span: Any, key: str) -> Any:
    return json.loads(span.attributes[key])


def _canonical_sha256(obj: Any) -> str:
    data = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _all_text(span: Any) -> str:
    """Every attribute and event attribute value of the span, as one string."""
    values = list(span.attributes.values())
    for event in span.events:
        values.extend(event.attributes.values())
    return "\n".join(str(v) for v in values)


# ----------------------------------------------------------------------------- mutation


def test_mutating_messages_after_the_call_does_not_change_the_record(audit: Any, client: Any) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "First question"},
        {"role": "user", "content": [{"type": "text", "text": "Part one"}]},
    ]
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
    # Typical agent code: keep the conversation going while the answer streams in.
    messages.append({"role": "assistant", "content": "appended later"})
    messages[1]["content"] = "MUTATED"
    messages[2]["content"][0]["text"] = "MUTATED TOO"
    messages[0]["role"] = "developer"
    assert "".join(c.choices[0].delta.content or "" for c in stream) == HELLO_ANSWER

    span = audit.only_llm_span()
    assert _json_attr(span, semconv.GEN_AI_INPUT_MESSAGES) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "First question"}]},
        {"role": "user", "parts": [{"type": "text", "content": "Part one"}]},
    ]


def test_mutating_responses_input_after_the_call(audit: Any, client: Any) -> None:
    items: list[dict[str, Any]] = [{"role": "user", "content": "Original"}]
    client.responses.create(model="gpt-4o-mini", input=items)
    items[0]["content"] = "MUTATED"
    items.append({"role": "user", "content": "later"})
    span = audit.only_llm_span()
    assert _json_attr(span, semconv.GEN_AI_INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "Original"}]}
    ]


# ----------------------------------------------------------------------------- content modes


def _call_with_everything(client: Any) -> None:
    """A call with instructions, a tool definition, input and output text."""
    client.responses.create(
        model="gpt-4o-mini",
        instructions=SECRET_INSTRUCTIONS,
        input=[{"role": "user", "content": SECRET_PROMPT}],
        tools=[TOOL],
    )


def test_content_none(make_audit: Any, make_client: Any) -> None:
    audit = make_audit(content="none")
    client = make_client()
    _call_with_everything(client)
    span = audit.only_llm_span()
    for key in (*CONTENT_KEYS, semconv.LLM_AUDIT_CONTENT_HASHES, semconv.LLM_AUDIT_CONTENT_TRUNCATED):
        assert key not in span.attributes, key
    assert span.attributes[semconv.LLM_AUDIT_CONTENT_MODE] == "none"
    text = _all_text(span)
    for secret in (SECRET_PROMPT, SECRET_INSTRUCTIONS, "4111", "8842", TOOL["description"], '"city"'):
        assert secret not in text
    # Everything that is not content is still there.
    assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] > 0
    assert list(span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ["tool_call"]


def test_content_hash(make_audit: Any, make_client: Any) -> None:
    audit = make_audit(content="hash")
    client = make_client()
    _call_with_everything(client)
    span = audit.only_llm_span()
    for key in CONTENT_KEYS:
        assert key not in span.attributes, key
    assert span.attributes[semconv.LLM_AUDIT_CONTENT_MODE] == "hash"

    # The verifier's side: rebuild each conventions object and hash its canonical JSON.
    instructions = [{"type": "text", "content": SECRET_INSTRUCTIONS}]
    input_messages = [{"role": "user", "parts": [{"type": "text", "content": SECRET_PROMPT}]}]
    output_messages = [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": TOOL_CALL_ID, "name": "lookup_vault", "arguments": {"city": "Paris"}}
            ],
            "finish_reason": "tool_call",
        }
    ]
    definitions = [
        {
            "type": "function",
            "name": "lookup_vault",
            "description": TOOL["description"],
            "parameters": TOOL["parameters"],
        }
    ]
    assert _json_attr(span, semconv.LLM_AUDIT_CONTENT_HASHES) == {
        semconv.GEN_AI_SYSTEM_INSTRUCTIONS: [_canonical_sha256(p) for p in instructions],
        semconv.GEN_AI_INPUT_MESSAGES: [_canonical_sha256(m) for m in input_messages],
        semconv.GEN_AI_OUTPUT_MESSAGES: [_canonical_sha256(m) for m in output_messages],
        semconv.GEN_AI_TOOL_DEFINITIONS: [_canonical_sha256(d) for d in definitions],
    }
    text = _all_text(span)
    for secret in (SECRET_PROMPT, SECRET_INSTRUCTIONS, "4111", "8842", TOOL["description"]):
        assert secret not in text


def test_content_hash_of_chat_messages(make_audit: Any, make_client: Any) -> None:
    audit = make_audit(content="hash")
    client = make_client()
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Grüße, ünïcode ✓"}, {"role": "user", "content": SECRET_PROMPT}],
    )
    span = audit.only_llm_span()
    expected_input = [
        {"role": "system", "parts": [{"type": "text", "content": "Grüße, ünïcode ✓"}]},
        {"role": "user", "parts": [{"type": "text", "content": SECRET_PROMPT}]},
    ]
    expected_output = [
        {"role": "assistant", "parts": [{"type": "text", "content": HELLO_ANSWER}], "finish_reason": "stop"}
    ]
    assert _json_attr(span, semconv.LLM_AUDIT_CONTENT_HASHES) == {
        semconv.GEN_AI_INPUT_MESSAGES: [_canonical_sha256(m) for m in expected_input],
        semconv.GEN_AI_OUTPUT_MESSAGES: [_canonical_sha256(m) for m in expected_output],
    }
    assert SECRET_PROMPT not in _all_text(span)
    assert "Grüße" not in _all_text(span)


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [
        (None, "SPAN_ONLY", ContentMode.MASKED),
        (None, "span_and_event", ContentMode.MASKED),
        (None, "NO_CONTENT", ContentMode.NONE),
        (None, "EVENT_ONLY", ContentMode.NONE),
        ("hash", "SPAN_ONLY", ContentMode.HASH),
        ("raw", "NO_CONTENT", ContentMode.RAW),
        (None, None, ContentMode.MASKED),
    ],
)
def test_content_mode_from_environment(
    monkeypatch: pytest.MonkeyPatch,
    make_audit: Any,
    make_client: Any,
    ours: str | None,
    theirs: str | None,
    expected: ContentMode,
) -> None:
    for name, value in ((CONTENT_ENV, ours), (GENAI_CAPTURE_ENV, theirs)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert Settings.from_env().content is expected

    audit = make_audit(content=None)  # None: let the environment decide
    client = make_client()
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": SECRET_PROMPT}])
    span = audit.only_llm_span()
    assert span.attributes[semconv.LLM_AUDIT_CONTENT_MODE] == expected.value
    if expected is ContentMode.RAW:
        assert _json_attr(span, semconv.GEN_AI_INPUT_MESSAGES) == [
            {"role": "user", "parts": [{"type": "text", "content": SECRET_PROMPT}]}
        ]
    elif expected is ContentMode.MASKED:
        masked = SECRET_PROMPT.replace("4111 1111 1111 1111", "<CREDIT_CARD>")
        assert _json_attr(span, semconv.GEN_AI_INPUT_MESSAGES) == [
            {"role": "user", "parts": [{"type": "text", "content": masked}]}
        ]
        assert span.attributes[semconv.LLM_AUDIT_REDACTION_STATUS] == "masked"
        assert json.loads(span.attributes[semconv.LLM_AUDIT_REDACTION_ENTITIES]) == {"CREDIT_CARD": 1}
    else:
        assert SECRET_PROMPT not in _all_text(span)
    assert (semconv.LLM_AUDIT_CONTENT_HASHES in span.attributes) is (expected is ContentMode.HASH)


# ----------------------------------------------------------------------------- size and odd payloads


def test_huge_prompt_is_truncated(make_audit: Any, make_client: Any, fake_server: Any) -> None:
    audit = make_audit(max_content_chars=1000)
    client = make_client()
    huge = "x" * 2_000_000
    result = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": huge}])
    assert result.usage.prompt_tokens == 500_001
    assert len(fake_server.requests[0].body["messages"][0]["content"]) == 2_000_000  # sent in full

    span = audit.only_llm_span()
    assert span.attributes[semconv.LLM_AUDIT_CONTENT_TRUNCATED] is True
    assert span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 500_001
    assert _json_attr(span, semconv.GEN_AI_INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "x" * 1000 + "...[truncated 1999000 chars]"}]}
    ]
    # The answer was short: kept whole.
    assert _json_attr(span, semconv.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [{"type": "text", "content": HELLO_ANSWER}]
    assert len(span.attributes[semconv.GEN_AI_INPUT_MESSAGES]) < 2000


def test_huge_prompt_hash_covers_the_whole_text(make_audit: Any, make_client: Any) -> None:
    audit = make_audit(content="hash", max_content_chars=1000)
    client = make_client()
    huge = "y" * 2_000_000
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": huge}])
    span = audit.only_llm_span()
    hashes = _json_attr(span, semconv.LLM_AUDIT_CONTENT_HASHES)
    assert hashes[semconv.GEN_AI_INPUT_MESSAGES] == [
        _canonical_sha256({"role": "user", "parts": [{"type": "text", "content": huge}]})
    ]


def test_short_prompt_is_not_flagged_truncated(make_audit: Any, make_client: Any) -> None:
    audit = make_audit(max_content_chars=1000)
    client = make_client()
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "short"}])
    assert semconv.LLM_AUDIT_CONTENT_TRUNCATED not in audit.only_llm_span().attributes


def test_binary_and_odd_tool_results(audit: Any, client: Any, fake_server: Any) -> None:
    """Bytes are sent by the SDK as a JSON array of ints; odd text (NUL, bidi, emoji) as is."""
    odd_text = "nul\x00 bidi\u202e emoji\U0001f600 bom\ufeff"
    messages = [
        {"role": "user", "content": "Run both tools."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "read_file", "arguments": "{}"}},
                {"id": "call_b", "type": "function", "function": {"name": "echo", "arguments": "not json"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": b"\xff\xfe\x00binary"},
        {"role": "tool", "tool_call_id": "call_b", "content": odd_text},
    ]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    sent = fake_server.requests[0].body["messages"]
    assert sent[2]["content"] == list(b"\xff\xfe\x00binary")
    assert sent[3]["content"] == odd_text

    span = audit.only_llm_span()
    raw = span.attributes[semconv.GEN_AI_INPUT_MESSAGES]
    raw.encode("utf-8")  # valid UTF-8 on the wire
    assert _json_attr(span, semconv.GEN_AI_INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "Run both tools."}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_a", "name": "read_file", "arguments": {}},
                {"type": "tool_call", "id": "call_b", "name": "echo", "arguments": "not json"},
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_a", "response": list(b"\xff\xfe\x00binary")}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_b", "response": odd_text}]},
    ]
