"""``mask_json``: string values masked inside the document, keys and shape kept."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("presidio_analyzer")

from otel_llm_audit.processing.masking import Masker, MaskingPolicy


@pytest.fixture(scope="module")
def masker() -> Masker:
    return Masker(MaskingPolicy.load())


def shape(node: Any) -> Any:
    """The document's structure: keys, list lengths and leaf types, without the values."""
    if isinstance(node, dict):
        return {k: shape(v) for k, v in node.items()}
    if isinstance(node, list):
        return [shape(v) for v in node]
    return type(node).__name__


INPUT_MESSAGES = [
    {"role": "system", "parts": [{"type": "text", "content": "You are a billing assistant. Be brief."}]},
    {
        "role": "user",
        "parts": [
            {"type": "text", "content": "I am Jane (jane.doe@example.com), card 4111 1111 1111 1111 was charged twice."}
        ],
    },
    {
        "role": "assistant",
        "parts": [
            {
                "type": "tool_call",
                "id": "call_1",
                "name": "lookup_customer",
                "arguments": {"email": "jane.doe@example.com", "since": "2026-11-01T00:00:00Z", "limit": 5},
            }
        ],
    },
    {
        "role": "tool",
        "parts": [
            {
                "type": "tool_call_response",
                "id": "call_1",
                "response": {
                    "customer_id": "cus_8f3a2b1c",
                    "phone": "+1 415 555 0143",
                    "orders": [219099999, 219099998],
                },
            }
        ],
    },
]


def test_compact_input_stays_compact(masker: Masker) -> None:
    original = json.dumps(INPUT_MESSAGES, separators=(",", ":"))
    result = masker.mask_json(original)
    assert result.text == json.dumps(json.loads(result.text), ensure_ascii=False, separators=(",", ":"))
    assert result.text != original


def test_resent_history_is_masked_from_the_element_cache(masker: Masker) -> None:
    first = masker.mask_json(json.dumps(INPUT_MESSAGES[:2]))
    misses = masker.cache_misses
    hits = masker.cache_hits
    second = masker.mask_json(json.dumps([*INPUT_MESSAGES[:2], {"role": "user", "parts": []}]))
    assert second.text.startswith(first.text[:-1] + ",")
    assert dict(second.entities) == dict(first.entities) == {"EMAIL_ADDRESS": 1, "CREDIT_CARD": 1}
    # the two resent messages are answered whole: no text analysed, their leaves counted as hits
    assert masker.cache_misses - misses == 0
    assert masker.cache_hits - hits >= 6


def test_input_messages_shape_preserved(masker: Masker) -> None:
    original = json.dumps(INPUT_MESSAGES, indent=2)
    result = masker.mask_json(original)
    masked = json.loads(result.text)

    assert shape(masked) == shape(INPUT_MESSAGES)
    # elements that changed are serialised compactly; the unchanged first message keeps its text
    first = json.dumps(INPUT_MESSAGES[0], indent=2).replace("\n", "\n  ")
    assert result.text.startswith("[" + first + ",{")
    assert masked[0] == INPUT_MESSAGES[0]
    assert masked[1]["parts"][0]["content"] == "I am Jane (<EMAIL_ADDRESS>), card <CREDIT_CARD> was charged twice."
    arguments = masked[2]["parts"][0]["arguments"]
    assert arguments == {"email": "<EMAIL_ADDRESS>", "since": "2026-11-01T00:00:00Z", "limit": 5}
    response = masked[3]["parts"][0]["response"]
    assert response == {"customer_id": "cus_8f3a2b1c", "phone": "<PHONE_NUMBER>", "orders": [219099999, 219099998]}
    assert dict(result.entities) == {"EMAIL_ADDRESS": 2, "CREDIT_CARD": 1, "PHONE_NUMBER": 1}
    for value in ("jane.doe@example.com", "4111 1111 1111 1111", "415 555 0143"):
        assert value not in result.text


def test_keys_holding_personal_data_are_masked(masker: Masker) -> None:
    document = {"jane@example.com": "hello", "nested": [{"4111 1111 1111 1111": 1}]}
    result = masker.mask_json(json.dumps(document))
    assert json.loads(result.text) == {"<EMAIL_ADDRESS>": "hello", "nested": [{"<CREDIT_CARD>": 1}]}
    assert dict(result.entities) == {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 1}


def test_member_name_is_context(masker: Masker) -> None:
    # A bare number holds no context of its own; the member that holds it does.
    document = {"ssn": "219099999", "phone": 4155550143, "order": "219099999", "mrn": "12345678"}
    result = masker.mask_json(json.dumps(document))
    assert json.loads(result.text) == {
        "ssn": "<US_SSN>",
        "phone": "<PHONE_NUMBER>",  # an integer holding personal data becomes the masked string
        "order": "219099999",
        "mrn": "<MEDICAL_RECORD_NUMBER>",
    }


def test_unchanged_document_returned_as_is(masker: Masker) -> None:
    text = '{"role": "user",\n "parts": [{"type": "text", "content": "What is 2 + 2?"}]}'
    result = masker.mask_json(text)
    assert result.text is text
    assert dict(result.entities) == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("contact jane@example.com", "contact <EMAIL_ADDRESS>"),
        ('{"broken": "jane@example.com"', '{"broken": "<EMAIL_ADDRESS>"'),
        ("42", "42"),
        ('"jane@example.com"', '"<EMAIL_ADDRESS>"'),
    ],
)
def test_not_a_json_document_is_masked_as_text(masker: Masker, text: str, expected: str) -> None:
    assert masker.mask_json(text).text == expected


def test_non_ascii_and_escapes_survive(masker: Masker) -> None:
    document = [{"content": 'Grüße, José — mail josé.müller@example.com \u2028 "quoted" \\ back'}]
    result = masker.mask_json(json.dumps(document))
    assert json.loads(result.text) == [{"content": 'Grüße, José — mail <EMAIL_ADDRESS> \u2028 "quoted" \\ back'}]


def test_repeated_values_counted_per_occurrence_and_analysed_once(masker: Masker) -> None:
    message = {"role": "user", "parts": [{"type": "text", "content": "mail a.b@example.com please"}]}
    fresh = Masker(masker.policy)
    result = fresh.mask_json(json.dumps([message, message, message]))
    assert dict(result.entities) == {"EMAIL_ADDRESS": 3}
    # nine leaves, three distinct ("user", "text", the content): each analysed once
    assert fresh.cache_misses == 3
    assert fresh.cache_hits == 6


def test_member_names_holding_personal_data_are_masked_and_never_merged(masker: Masker) -> None:
    document = '{"recipients":{"jane.doe@example.com":"cc","bob@example.org":"to"},"role":"user","n":1}'
    result = masker.mask_json(document)
    assert json.loads(result.text) == {
        "recipients": {"<EMAIL_ADDRESS>": "cc", "<EMAIL_ADDRESS>#2": "to"},
        "role": "user",
        "n": 1,
    }
    assert dict(result.entities) == {"EMAIL_ADDRESS": 2}


def test_short_identifier_names_are_not_analysed(masker: Masker) -> None:
    before = masker.cache_misses
    result = masker.mask_json('{"role":"user","patient_id":"p-1","content":"hello there"}')
    assert result.text == '{"role":"user","patient_id":"p-1","content":"hello there"}'
    assert masker.cache_misses - before <= 3  # the three values at most, no member name


@pytest.mark.parametrize(
    "text",
    ["[]", " [ ] ", "[1]", "[1,2]", ' [ {"a": 1} , "x" ,3 ]\n', "[1] ", '[{"a":[1,2,{"b":"]"}]},"\\"]"]', "[1,\n2]"],
)
def test_split_array_gives_each_element_text_and_value(text: str) -> None:
    from otel_llm_audit.processing.masking.json_walk import split_array

    elements = split_array(text)
    assert elements is not None
    assert [value for _, value in elements] == json.loads(text)
    assert [json.loads(piece) for piece, _ in elements] == json.loads(text)


@pytest.mark.parametrize("text", ["[1,]", "[1 2]", "[", "[1]x", '{"a":1}', "", " ", "[,1]", '["a" "b"]'])
def test_split_array_refuses_what_is_not_a_json_array(text: str) -> None:
    from otel_llm_audit.processing.masking.json_walk import split_array

    assert split_array(text) is None
