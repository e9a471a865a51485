"""Policy and human-review events as OpenTelemetry log records, for SIEM exporters that take logs only.

Each record must carry the trace and span ids of the span its event sits on, the masked
attributes of that event (never more than the span carries), the audit identity, and the
routing attribute the collector's SIEM route tests. Over OTLP, the loopback receiver reads the
bytes the SDK's own log exporter sends.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_llm_audit
from otel_llm_audit import _guard, semconv
from otel_llm_audit.bootstrap import log_exporters_from_env
from otel_llm_audit.config import Settings, set_settings
from otel_llm_audit.delivery import audit_logs
from otel_llm_audit.delivery.otlp_json import OtlpJsonFileLogExporter
from otlp_receiver import OtlpReceiver, any_value

try:  # renamed in SDK 1.39; the old name still works there, with a warning
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as InMemoryLogExporter
except ImportError:  # SDK 1.30
    from opentelemetry.sdk._logs.export import InMemoryLogExporter  # type: ignore[no-redef]

EMAIL = "jane.doe@example.com"
IDENTITY = {"user_id": "nurse-4711", "session_id": "shift-3", "team": "clinical-ai", "application": "discharge"}


def _event_name(record: Any) -> str | None:
    """The record's event name: the field on SDKs that have it, else the older attribute."""
    return getattr(record, "event_name", None) or (record.attributes or {}).get("event.name")


@pytest.fixture
def pipeline() -> Iterator[tuple[Any, InMemorySpanExporter, Any]]:
    spans = InMemorySpanExporter()
    logs = InMemoryLogExporter()
    built = otel_llm_audit.configure(
        span_exporters=[spans],
        metric_readers=[],
        log_exporters=[logs],
        tracer_provider=TracerProvider(),
        set_global=False,
        instrument=False,
        content="masked",
    )
    assert built.masking is not None and built.masking.wait_ready(60)
    _guard.reset_internal_error_counts()
    try:
        yield built, spans, logs
    finally:
        built.shutdown()
        set_settings(None)


def _resource(data: Any) -> Any:
    """The resource of an exported record (beside it on newer SDKs, on it on 1.30)."""
    return getattr(data, "resource", None) or data.log_record.resource


def _records(built: Any, logs: Any) -> list[Any]:
    assert built.force_flush(10_000)
    return [data.log_record for data in logs.get_finished_logs()]


def test_a_policy_event_becomes_one_masked_log_record_on_its_span(pipeline: Any) -> None:
    built, spans, logs = pipeline
    tracer = built.tracer_provider.get_tracer("app")
    with otel_llm_audit.audit_context(**IDENTITY), tracer.start_as_current_span("answer question"):
        otel_llm_audit.record_policy_event(
            category="guardrail",
            action="blocked",
            source="app",
            name="no-dosage-advice",
            details={"why": f"asked to mail {EMAIL}"},
        )
    (record,) = _records(built, logs)
    (span,) = spans.get_finished_spans()
    resource = _resource(logs.get_finished_logs()[0])
    assert span.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True
    assert (record.trace_id, record.span_id) == (span.context.trace_id, span.context.span_id)
    assert (record.severity_number, record.severity_text) == (SeverityNumber.WARN, "WARN")
    assert record.body == "policy guardrail: blocked (no-dosage-advice)"
    assert _event_name(record) == "llm_audit.policy"
    assert record.timestamp == span.events[0].timestamp
    attrs = {k: v for k, v in (record.attributes or {}).items() if k != "event.name"}
    assert attrs == {
        "user.id": "nurse-4711",
        "session.id": "shift-3",
        "llm_audit.team": "clinical-ai",
        "llm_audit.application": "discharge",
        "llm_audit.policy.category": "guardrail",
        "llm_audit.policy.action": "blocked",
        "llm_audit.policy.source": "app",
        "llm_audit.policy.name": "no-dosage-advice",
        "llm_audit.policy.details": '{"why":"asked to mail <EMAIL_ADDRESS>"}',
        "llm_audit.policy.actor": "nurse-4711",  # recorded by the application: its audit context's user
        "llm_audit.audit.record": True,
    }
    # The record carries what the exported span carries, masked the same way.
    assert span.events[0].attributes[semconv.LLM_AUDIT_POLICY_DETAILS] == attrs["llm_audit.policy.details"]
    assert resource.attributes["service.name"] == built.tracer_provider.resource.attributes["service.name"]


def test_a_human_review_is_an_info_record_and_other_audit_events_are_not_logged(pipeline: Any) -> None:
    built, spans, logs = pipeline
    tracer = built.tracer_provider.get_tracer("app")
    with otel_llm_audit.audit_context(user_id="dr-who"), tracer.start_as_current_span("approve discharge"):
        otel_llm_audit.record_decision(point="route", chosen="pharmacist", options=["pharmacist", "physician"])
        otel_llm_audit.record_human_review(subject="discharge letter", action="approved", reason="checked")
    (record,) = _records(built, logs)
    assert _event_name(record) == "llm_audit.human_review"
    assert (record.severity_number, record.body) == (SeverityNumber.INFO, "human review: approved by dr-who")
    assert record.attributes["llm_audit.review.subject"] == "discharge letter"
    assert record.attributes["llm_audit.audit.record"] is True
    (span,) = spans.get_finished_spans()
    assert [e.name for e in span.events] == ["llm_audit.decision", "llm_audit.human_review"]


def test_the_masking_stages_pii_event_on_an_llm_span_is_a_log_record(
    make_audit: Callable[..., Any], make_client: Callable[[], Any]
) -> None:
    logs = InMemoryLogExporter()
    audit = make_audit(content="masked", log_exporters=[logs])
    assert audit.pipeline.masking.wait_ready(60)
    make_client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"Write to {EMAIL} about the appointment."}]
    )
    span = audit.only_llm_span()
    (record,) = [data.log_record for data in logs.get_finished_logs()]
    assert (record.trace_id, record.span_id) == (span.context.trace_id, span.context.span_id)
    assert record.body == "policy pii: masked (pii_masking)"
    assert record.attributes["llm_audit.policy.category"] == "pii"
    assert json.loads(record.attributes["llm_audit.policy.details"])["entities"] == {"EMAIL_ADDRESS": 1}
    assert record.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert record.attributes["gen_ai.operation.name"] == "chat"
    assert EMAIL not in json.dumps(dict(record.attributes), default=str)


def test_no_records_when_switched_off_or_when_nothing_happened(make_audit: Callable[..., Any]) -> None:
    logs = InMemoryLogExporter()
    off = make_audit(audit_logs=False, log_exporters=[logs])
    assert off.pipeline.logger_provider is None
    tracer = off.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("plain"), tracer.start_as_current_span("guarded"):
        otel_llm_audit.record_policy_event(category="guardrail", action="flagged", source="app")
    assert off.pipeline.force_flush(10_000)
    assert logs.get_finished_logs() == ()
    assert [s.name for s in off.exporter.get_finished_spans()] == ["guarded", "plain"]


def test_a_failing_record_is_counted_and_the_span_still_exported(
    pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    built, spans, logs = pipeline

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("logs SDK broke")

    monkeypatch.setattr(audit_logs, "emit_log_record", broken)
    tracer = built.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("guarded"):
        otel_llm_audit.record_policy_event(category="guardrail", action="blocked", source="app")
    assert _records(built, logs) == []
    assert [s.name for s in spans.get_finished_spans()] == ["guarded"]
    assert _guard.internal_error_counts().get("audit_logs.emit") == 1


def test_records_reach_an_otlp_receiver_with_their_trace_and_span_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_LOGS_EXPORTER", "otlp")
        spans = InMemorySpanExporter()
        built = otel_llm_audit.configure(
            span_exporters=[spans], metric_readers=[], tracer_provider=TracerProvider(), set_global=False,
            instrument=False, content="masked",
        )  # fmt: skip
        try:
            tracer = built.tracer_provider.get_tracer("app")
            with otel_llm_audit.audit_context(team="trading"), tracer.start_as_current_span("order"):
                otel_llm_audit.record_policy_event(category="limit", action="escalated", source="risk-engine")
            assert built.force_flush(10_000)
            assert receiver.wait_log_records(1, 10)
        finally:
            built.shutdown()
            set_settings(None)
    ((resource, scope, record),) = receiver.log_records
    (span,) = spans.get_finished_spans()
    assert record.trace_id.hex() == format(span.context.trace_id, "032x")
    assert record.span_id.hex() == format(span.context.span_id, "016x")
    assert scope.name == "otel_llm_audit.audit_log"
    attrs = {item.key: any_value(item.value) for item in record.attributes}
    assert attrs["llm_audit.audit.record"] is True
    assert attrs["llm_audit.team"] == "trading"
    assert attrs["llm_audit.policy.action"] == "escalated"
    assert record.severity_text == "WARN" and record.body.string_value == "policy limit: escalated"
    # The event_name field on SDKs (and OTLP protos) that have it, else the older attribute.
    assert (getattr(record, "event_name", "") or attrs.get("event.name")) == "llm_audit.policy"
    service = {item.key: any_value(item.value) for item in resource.attributes}["service.name"]
    assert service == built.tracer_provider.resource.attributes["service.name"]


def test_log_exporters_follow_the_standard_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = Settings.from_env(output_file=str(tmp_path / "llm-audit" / "traces.jsonl"))
    monkeypatch.delenv("OTEL_LOGS_EXPORTER", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", raising=False)
    (default,) = log_exporters_from_env(settings.__class__.from_env(output_file=settings.output_file, store="off"))
    assert isinstance(default, OtlpJsonFileLogExporter)
    assert default.path == os.path.join(str(tmp_path / "llm-audit"), "logs.jsonl")
    default.shutdown()
    # With the store on (the default) and no endpoint: no file, as for traces (the store has it all).
    assert log_exporters_from_env(Settings.from_env(store=str(tmp_path / "audit.db"))) == []
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://127.0.0.1:9/v1/logs")
    (otlp,) = log_exporters_from_env(settings)
    assert type(otlp).__name__ == "OTLPLogExporter"
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
    assert log_exporters_from_env(settings) == []
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "no-such-exporter")
    with pytest.raises(ValueError, match="no exporter named 'no-such-exporter'"):
        log_exporters_from_env(settings)


def test_the_file_exporter_writes_otlp_json_lines_with_hex_ids(tmp_path: Path) -> None:
    path = tmp_path / "logs.jsonl"
    built = otel_llm_audit.configure(
        span_exporters=[InMemorySpanExporter()], metric_readers=[], log_exporters=[OtlpJsonFileLogExporter(path)],
        tracer_provider=TracerProvider(), set_global=False, instrument=False, content="none",
    )  # fmt: skip
    try:
        tracer = built.tracer_provider.get_tracer("app")
        with tracer.start_as_current_span("guarded") as span:
            otel_llm_audit.record_policy_event(category="guardrail", action="allowed", source="app")
        trace_id = format(span.get_span_context().trace_id, "032x")
        assert built.force_flush(10_000)
    finally:
        built.shutdown()
        set_settings(None)
    (line,) = path.read_text(encoding="utf-8").splitlines()
    (record,) = json.loads(line)["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
    assert record["traceId"] == trace_id
    assert record["severityText"] == "INFO"
    assert {"key": "llm_audit.audit.record", "value": {"boolValue": True}} in record["attributes"]


def test_content_withheld_because_masking_failed_is_a_policy_event_and_a_log_record(
    make_audit: Callable[..., Any], make_client: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = InMemoryLogExporter()
    audit = make_audit(content="masked", log_exporters=[logs])
    assert audit.pipeline.masking.wait_ready(60)
    masker = audit.pipeline.masking.redactor.masker

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("detector crashed")

    monkeypatch.setattr(masker, "mask_text", broken)
    monkeypatch.setattr(masker, "mask_json", broken)
    make_client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": EMAIL}])
    span = audit.only_llm_span()
    assert span.attributes[semconv.LLM_AUDIT_REDACTION_STATUS] == "failed"
    assert span.attributes[semconv.LLM_AUDIT_AUDIT_RECORD] is True
    (event,) = [e for e in span.events if e.name == semconv.EVENT_LLM_AUDIT_POLICY]
    assert event.attributes[semconv.LLM_AUDIT_POLICY_ACTION] == "redacted"
    details = json.loads(event.attributes[semconv.LLM_AUDIT_POLICY_DETAILS])
    assert (details["failure"], details["content"]) == ("error", "withheld")
    (record,) = [data.log_record for data in logs.get_finished_logs()]
    assert (record.severity_text, record.body) == ("WARN", "policy pii: redacted (pii_masking)")
    assert (record.trace_id, record.span_id) == (span.context.trace_id, span.context.span_id)
    assert EMAIL not in json.dumps(dict(record.attributes), default=str)
