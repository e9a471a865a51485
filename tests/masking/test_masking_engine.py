"""The Masker: policy settings at work, pseudonyms, cache, failures, threads, overlaps."""

from __future__ import annotations

import json
import logging
import re
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("presidio_analyzer")

from otel_llm_audit.processing.masking import (
    Detection,
    Masker,
    MaskingConfigError,
    MaskingError,
    MaskingPolicy,
)
from otel_llm_audit.processing.masking.replace import resolve

KEY_ENV = "OTEL_LLM_AUDIT_MASKING_KEY"
KEY = "test-key-0123456789abcdef"


@pytest.fixture(scope="module")
def masker() -> Masker:
    return Masker(MaskingPolicy.load())


def load(tmp_path: Path, text: str, **overrides: Any) -> MaskingPolicy:
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return MaskingPolicy.load(path, **overrides)


# ---------------------------------------------------------------------------------------------
# policy settings at work


def test_threshold_from_yaml(tmp_path: Path) -> None:
    text = "call (415) 555-0143 or SSN 219-09-9999"
    strict = Masker(load(tmp_path, "thresholds: {PHONE_NUMBER: 0.9}\n"))
    # presidio scores phone numbers 0.4 (0.75 with a context word): 0.9 keeps none of them.
    assert strict.mask_text(text).text == "call (415) 555-0143 or SSN <US_SSN>"
    lenient = Masker(load(tmp_path, "thresholds: {PHONE_NUMBER: 0.4}\n"))
    assert lenient.mask_text(text).text == "call <PHONE_NUMBER> or SSN <US_SSN>"


def test_allow_list_and_allow_patterns(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        r"""
        allow_list: [support@acme-corp.com]
        allow_patterns: ['10\.0\.\d+\.\d+']
        """,
    )
    masker = Masker(policy)
    result = masker.mask_text("write to support@acme-corp.com or jane@acme-corp.com from 10.0.3.7 or 203.0.113.7")
    assert result.text == "write to support@acme-corp.com or <EMAIL_ADDRESS> from 10.0.3.7 or <IP_ADDRESS>"


def test_deny_list_always_masked(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        r"""
        allow_list: [Project Nightingale]
        deny_list:
          - Project Nightingale
          - {regex: "\\bACME-\\d{4}\\b", entity: INTERNAL_PROJECT}
        """,
    )
    masker = Masker(policy)
    result = masker.mask_text("project nightingale and ACME-2041 but not ACME-20411 or Nightingales")
    assert result.text == "<DENY_LIST> and <INTERNAL_PROJECT> but not ACME-20411 or Nightingales"
    assert dict(result.entities) == {"DENY_LIST": 1, "INTERNAL_PROJECT": 1}


def test_custom_recognizer_with_context(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        r"""
        custom_recognizers:
          - name: employee_id
            entity: EMPLOYEE_ID
            regex: "\\bEMP-\\d{6}\\b"
            score: 0.2
            context: [employee, staff]
          - name: ticket
            entity: INTERNAL_TICKET
            regex: "\\bSEC-\\d{3,5}\\b"
            score: 0.9
        """,
    )
    masker = Masker(policy)
    assert (
        masker.mask_text("employee EMP-123456 filed SEC-4412").text == "employee <EMPLOYEE_ID> filed <INTERNAL_TICKET>"
    )
    # 0.2 is below the 0.4 threshold: only a context word lifts it (to 0.55)
    assert masker.mask_text("see EMP-123456").text == "see EMP-123456"
    assert {"EMPLOYEE_ID", "INTERNAL_TICKET"} <= set(policy.entities)  # declaring a recognizer enables it


def test_removed_entity_is_not_masked(tmp_path: Path) -> None:
    masker = Masker(load(tmp_path, "remove_entities: [EMAIL_ADDRESS]\n"))
    assert masker.mask_text("jane@example.com, SSN 219-09-9999").text == "jane@example.com, SSN <US_SSN>"


def test_unknown_entity_type_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(MaskingConfigError, match="no recognizer for"):
        Masker(load(tmp_path, "add_entities: [SHOE_SIZE]\n"))


def test_extra_presidio_entity_can_be_enabled(tmp_path: Path) -> None:
    masker = Masker(load(tmp_path, "add_entities: [UK_NINO]\n"))
    result = masker.mask_text("NI number AB123456C")
    # presidio 2.2.364's UK_NINO pattern takes the space before the number with it; 2.2.366's does not.
    assert result.text in ("NI number <UK_NINO>", "NI number<UK_NINO>")
    assert dict(result.entities) == {"UK_NINO": 1}


def test_ner_model_directory_is_used_without_download(tmp_path: Path) -> None:
    spacy = pytest.importorskip("spacy")
    model_dir = tmp_path / "blank_en"
    spacy.blank("en").to_disk(model_dir)  # a tokenizer-only "model": no weights, no network
    masker = Masker(load(tmp_path, f"ner_model: {model_dir}\n"))
    assert masker.mask_text("Mail jane@example.com").text == "Mail <EMAIL_ADDRESS>"


# ---------------------------------------------------------------------------------------------
# pseudonyms


def test_pseudonym_stable_normalised_and_keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    policy = MaskingPolicy.load(replacement="pseudonym")
    a = Masker(policy)
    b = Masker(policy)
    other = Masker(policy, pseudonym_key=b"another-key-0123456789")

    first = a.mask_text("mail Jane.Doe@Example.com, card 4111 1111 1111 1111").text
    match = re.fullmatch(r"mail <EMAIL_ADDRESS_([0-9a-f]{8})>, card <CREDIT_CARD_([0-9a-f]{8})>", first)
    assert match is not None
    assert b.mask_text("mail Jane.Doe@Example.com, card 4111 1111 1111 1111").text == first  # same key
    # normalised: case of an address, separators of a number
    assert a.mask_text("jane.doe@example.com").text == f"<EMAIL_ADDRESS_{match.group(1)}>"
    assert a.mask_text("4111-1111-1111-1111").text == f"<CREDIT_CARD_{match.group(2)}>"
    # another value, another token; another key, another token
    assert a.mask_text("john@example.com").text != f"<EMAIL_ADDRESS_{match.group(1)}>"
    assert other.mask_text("jane.doe@example.com").text != f"<EMAIL_ADDRESS_{match.group(1)}>"


def test_pseudonym_key_never_shown(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    caplog.set_level(logging.DEBUG)
    policy = MaskingPolicy.load(replacement="pseudonym")
    masker = Masker(policy)
    result = masker.mask_json(json.dumps([{"content": "jane@example.com"}]))
    for text in (
        repr(masker),
        str(masker),
        repr(policy),
        repr(result),
        result.text,
        caplog.text,
        repr(masker._replacer),
    ):
        assert KEY not in text


def test_pseudonym_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    policy = MaskingPolicy.load(replacement="pseudonym")
    with pytest.raises(MaskingConfigError, match=KEY_ENV):
        Masker(policy)
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(MaskingConfigError, match="shorter than 16 bytes") as info:
        Masker(policy)
    assert "short'" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# cache


def test_cache_hits_and_misses() -> None:
    masker = Masker(MaskingPolicy.load(), cache_size=2)
    mail = "mail a@example.com, the address on the account"  # longer than the short-text set takes
    plain = "x 1 is a plain text long enough for the LRU cache"
    third = "third text, long enough for the LRU cache as well"
    assert (masker.cache_hits, masker.cache_misses) == (0, 0)
    masker.mask_text(mail)
    masker.mask_text(mail)
    assert (masker.cache_hits, masker.cache_misses) == (1, 1)

    results = masker.mask_texts([plain, mail, plain, plain])
    assert [r.text for r in results] == [plain, "mail <EMAIL_ADDRESS>, the address on the account", plain, plain]
    # the plain text analysed once, then twice a duplicate; the e-mail text came from the cache
    assert (masker.cache_hits, masker.cache_misses) == (4, 2)

    masker.mask_text(third)  # evicts the least recently used entry: the plain text
    assert masker.cache_len == 2
    masker.mask_text(mail)
    assert (masker.cache_hits, masker.cache_misses) == (5, 3)
    masker.mask_text(plain)
    assert (masker.cache_hits, masker.cache_misses) == (5, 4)


def test_short_clean_texts_are_remembered_without_the_lru() -> None:
    masker = Masker(MaskingPolicy.load(), cache_size=2)
    for _ in range(3):
        assert masker.mask_text("user").text == "user"
    assert (masker.cache_hits, masker.cache_misses) == (2, 1)
    assert masker.cache_len == 0  # clean and short: in the set, not in the LRU
    assert masker.mask_text("a@example.com").text == "<EMAIL_ADDRESS>"  # short but not clean: the LRU
    assert masker.cache_len == 1


def test_cache_is_keyed_by_a_digest_not_the_text() -> None:
    masker = Masker(MaskingPolicy.load())
    masker.mask_text("mail jane@example.com")
    keys = list(masker._cache._data)
    assert len(keys) == 1 and isinstance(keys[0], bytes) and len(keys[0]) == 16
    assert b"jane" not in keys[0]
    # the digest is keyed per masker: another masker files the same text elsewhere
    other = Masker(MaskingPolicy.load())
    assert other._cache.digest("mail jane@example.com") != keys[0]


def test_cache_disabled() -> None:
    masker = Masker(MaskingPolicy.load(), cache_size=0)
    masker.mask_text("mail a@example.com")
    masker.mask_text("mail a@example.com")
    assert (masker.cache_hits, masker.cache_misses, masker.cache_len) == (0, 2, 0)


# ---------------------------------------------------------------------------------------------
# failures


def test_analyzer_failure_raises_masking_error(monkeypatch: pytest.MonkeyPatch) -> None:
    masker = Masker(MaskingPolicy.load())

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError(f"boom on {kwargs.get('text')!r}")

    monkeypatch.setattr(masker._analyzer, "analyze", broken)
    with pytest.raises(MaskingError) as info:
        masker.mask_text("mail jane@example.com")
    assert info.value.cause_type == "ValueError"
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert "jane" not in str(info.value)
    with pytest.raises(MaskingError):
        masker.mask_json(json.dumps({"content": "mail jane@example.com"}))
    with pytest.raises(MaskingError):
        masker.mask_texts(["fine", "mail jane@example.com"])
    # a failure is not cached: once the analyzer works again, the text is masked
    monkeypatch.undo()
    assert masker.mask_text("mail jane@example.com").text == "mail <EMAIL_ADDRESS>"


def test_recognizer_failure_raises_masking_error(monkeypatch: pytest.MonkeyPatch) -> None:
    masker = Masker(MaskingPolicy.load())
    (email,) = masker._setup.recognizers["EMAIL_ADDRESS"]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("recognizer down")

    monkeypatch.setattr(email, "analyze", broken)
    with pytest.raises(MaskingError):
        masker.mask_text("mail jane@example.com")


# ---------------------------------------------------------------------------------------------
# threads


TEXTS = [
    "mail jane.doe@example.com, card 4111 1111 1111 1111",
    "SSN 219099999 and order 219099999",
    "call (415) 555-0143 at 2026-11-26T10:15:30Z",
    "key sk-proj-Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0UvWxYz12, trace 4bf92f3577b34da6a3ce929d0e0e4736",
    "nothing personal here, v3.12.1 on port 8080",
    "IBAN DE89 3704 0044 0532 0130 00 from 203.0.113.7",
]


def test_many_threads_get_the_same_results() -> None:
    expected = [Masker(MaskingPolicy.load(), cache_size=0).mask_text(t) for t in TEXTS]
    shared = Masker(MaskingPolicy.load(), cache_size=8)  # small: threads evict each other's entries
    barrier = threading.Barrier(8)

    def work(worker: int) -> list[Any]:
        barrier.wait()
        out = []
        for i in range(60):
            text = TEXTS[(worker + i) % len(TEXTS)] + f" #{i % 5}"
            out.append((text, shared.mask_text(text)))
        return out

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [r for chunk in pool.map(work, range(8)) for r in chunk]
    reference = Masker(MaskingPolicy.load(), cache_size=0)
    for text, result in results:
        assert result == reference.mask_text(text)
    assert [reference.mask_text(t) for t in TEXTS] == expected
    assert shared.cache_hits + shared.cache_misses == 8 * 60


# ---------------------------------------------------------------------------------------------
# pre-filter and overlaps


def test_prefilter_changes_no_detection() -> None:
    policy = MaskingPolicy.load()
    fast = Masker(policy, cache_size=0)
    full = Masker(policy, cache_size=0, prefilter=False)
    texts = [
        *TEXTS,
        *(t.upper() for t in TEXTS),
        *_ENGINE_EDGE_TEXTS,
        "SSN\uff1a219099999",
        "tel +49 30 12345678",
    ]
    for text in texts:
        assert fast.detect(text) == full.detect(text), text


#: Texts where RE2's and Python's engines could disagree: Unicode digits, the Turkish i in
#: context words, the long s, full-width punctuation, a driver's licence with its context word.
_ENGINE_EDGE_TEXTS = [
    "card \u0664\u0661\u0661\u0661 \u0661\u0661\u0661\u0661 \u0661\u0661\u0661\u0661 \u0661\u0661\u0661\u0661",
    "DRIVER L\u0130CENSE A1234567",
    "driver l\u0131cense A1234567",
    "MED\u0130CAL record number 12345678",
    "acct\uff1a 12345678 at the bank",
    "passport 912803456 for travel",
    "\u017fsn 219099999",
    "no digits here at all, only words",
]


def test_re2_prefilter_changes_no_detection() -> None:
    from otel_llm_audit.processing.masking.prefilter import Prefilter, build_triggers

    pytest.importorskip("re2")
    policy = MaskingPolicy.load()
    fast, plain = Masker(policy, cache_size=0), Masker(policy, cache_size=0)
    plain._prefilter = Prefilter(build_triggers(policy, plain._setup), use_re2=False)
    assert fast._prefilter is not None and fast._prefilter.uses_re2 and not plain._prefilter.uses_re2
    texts = [*TEXTS, *(t.upper() for t in TEXTS), *_ENGINE_EDGE_TEXTS]
    for text in texts:
        assert fast.detect(text) == plain.detect(text), text
    # the Turkish i is found by both engines (the patterns' engine equates it with "i")
    assert "US_DRIVER_LICENSE" in fast._prefilter.select("DRIVER L\u0130CENSE A1234567")
    assert "MEDICAL_RECORD_NUMBER" in fast._prefilter.select("MED\u0130CAL record number 12345678")
    assert [d.entity for d in fast.detect("MED\u0130CAL record number 12345678")] == ["MEDICAL_RECORD_NUMBER"]


def test_re2_giving_up_falls_back_to_the_python_gates(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("re2")
    masker = Masker(MaskingPolicy.load(), cache_size=0)
    prefilter = masker._prefilter
    assert prefilter is not None

    class GivesUp:  # what RE2 answers when its automaton runs out of memory: no match at all
        def Match(self, text: str) -> None:
            return None

    prefilter._set = GivesUp()
    with caplog.at_level(logging.WARNING, logger="otel_llm_audit"):
        found = masker.mask_text("card 4111 1111 1111 1111, mail a.b@example.com")
        masker.mask_text("card 4111 1111 1111 1112")
    assert dict(found.entities) == {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 1}
    assert [r.message for r in caplog.records].count(
        "masking pre-filter: RE2 could not finish a text; such texts get the gates one by one"
    ) == 1


def test_overlaps_resolved_by_score_then_length_and_fully_covered() -> None:
    detections = [
        Detection("PHONE_NUMBER", 4, 15, 0.4),
        Detection("US_SSN", 4, 15, 0.85),
        Detection("EMAIL_ADDRESS", 20, 40, 1.0),
        Detection("URL", 30, 44, 1.0),  # same score, shorter: loses the label, its tail is still covered
        Detection("A", 50, 55, 0.5),
        Detection("B", 50, 60, 0.5),  # same score, longer: wins
    ]
    assert resolve(detections) == [
        Detection("US_SSN", 4, 15, 0.85),
        Detection("EMAIL_ADDRESS", 20, 44, 1.0),
        Detection("B", 50, 60, 0.5),
    ]


def test_custom_mrn_pattern(tmp_path: Path) -> None:
    masker = Masker(load(tmp_path, r"mrn_pattern: '(?<=\bPatient-ID )[A-Z]\d{7}\b'" + "\n"))
    assert masker.mask_text("Patient-ID K1234567 seen").text == "Patient-ID <MEDICAL_RECORD_NUMBER> seen"
    assert masker.mask_text("MRN: 12345678").text == "MRN: 12345678"
