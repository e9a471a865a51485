"""End to end: the demo, exported by the SDK over OTLP/HTTP to a loopback receiver, as the collector gets it.

The gateway routes to the SIEM every span whose ``llm_audit.audit.record`` is true, and every log
record with it. This test runs the real demo (``otel-llm-audit demo``) with
``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at the receiver, reads the protobuf bytes the SDK sent,
and checks that the attribute is exactly where it should be: on every span that carries an audit
or policy event, and on the store's checkpoints; on no other span. It also checks that every
attribute key that arrived (resource, span, event, log record) is in the gateway's redaction
allow-list, so the collector never strips what the SDK sends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_llm_audit import semconv
from otel_llm_audit.delivery.store_writer import CHECKPOINT_SPAN_NAME
from otel_llm_audit.processing.sealing import load_seal_key
from otel_llm_audit.processing.verification import verify
from otlp_receiver import OtlpReceiver, any_value

ROOT = Path(__file__).resolve().parents[2]
#: Span events that make a span an audit record.
AUDIT_EVENTS = frozenset(
    {
        semconv.EVENT_LLM_AUDIT_POLICY,
        semconv.EVENT_LLM_AUDIT_HUMAN_REVIEW,
        semconv.EVENT_LLM_AUDIT_INTERRUPT,
        semconv.EVENT_LLM_AUDIT_DECISION,
        semconv.EVENT_LLM_AUDIT_DELEGATION,
    }
)
LOGGED_EVENTS = frozenset({semconv.EVENT_LLM_AUDIT_POLICY, semconv.EVENT_LLM_AUDIT_HUMAN_REVIEW})


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def received(demo_dir: Path) -> OtlpReceiver:
    pytest.importorskip("langgraph")  # the demo's agent workflow: most of the audit events
    out = demo_dir / "demo-traces.jsonl"
    with OtlpReceiver() as receiver:
        # A process of its own, as `otel-llm-audit demo` runs: the demo sets the global tracer
        # provider, which must not outlive it in this test session.
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_METRICS_EXPORTER": "none"}
        env.pop("OTEL_LOGS_EXPORTER", None)  # with an endpoint set, the default is otlp
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from otel_llm_audit.cli import main; sys.exit(main(sys.argv[1:]))",
             "demo", "--output", str(out)],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        # The demo has shut its pipeline down: everything it sent has been answered.
    return receiver


def _events(span: Any) -> list[str]:
    return [event.name for event in span.span.events]


def test_the_routing_attribute_is_on_exactly_the_audit_spans_and_the_checkpoints(received: OtlpReceiver) -> None:
    spans = received.spans
    assert len(spans) > 30
    assert not received.duplicates()
    routed = {s.ids for s in spans if s.attributes.get(semconv.LLM_AUDIT_AUDIT_RECORD) is True}
    expected = {s.ids for s in spans if AUDIT_EVENTS & set(_events(s)) or s.name == CHECKPOINT_SPAN_NAME}
    wrong = sorted((s.name, sorted(set(_events(s)))) for s in spans if (s.ids in routed) != (s.ids in expected))
    assert wrong == []
    # Where it is set at all, it is the boolean true (the collector's condition compares with `true`).
    key = semconv.LLM_AUDIT_AUDIT_RECORD
    values = {repr(s.attributes[key]) for s in spans if key in s.attributes}
    assert values == {"True"}
    # The demo exercises every kind of audit event, so each kind's carrier is covered above.
    kinds = Counter(name for s in spans if s.ids in routed for name in _events(s) if name in AUDIT_EVENTS)
    assert set(kinds) == AUDIT_EVENTS, kinds
    policies = [
        any_value(attr.value)
        for s in spans
        for event in s.span.events
        if event.name == semconv.EVENT_LLM_AUDIT_POLICY
        for attr in event.attributes
        if attr.key == semconv.LLM_AUDIT_POLICY_CATEGORY
    ]
    assert "pii" in policies  # the masking stage's own event: personal data was in the prompt
    checkpoints = [s for s in spans if s.name == CHECKPOINT_SPAN_NAME]
    assert checkpoints and all(s.ids in routed for s in checkpoints)
    # A plain LLM call without any event is not routed: the SIEM gets the audit trail, not everything.
    assert len(routed) < len(spans) / 2


def test_every_policy_and_review_event_arrives_once_as_a_log_record_on_its_span(received: OtlpReceiver) -> None:
    spans = {s.ids: s for s in received.spans}
    expected = Counter(
        (s.trace_id, s.span_id, name) for s in spans.values() for name in _events(s) if name in LOGGED_EVENTS
    )
    got: Counter[tuple[str, str, str]] = Counter()
    for _resource, scope, record in received.log_records:
        attrs = {item.key: any_value(item.value) for item in record.attributes}
        assert attrs[semconv.LLM_AUDIT_AUDIT_RECORD] is True
        assert scope.name == "otel_llm_audit.audit_log"
        name = getattr(record, "event_name", "") or attrs["event.name"]
        got[(record.trace_id.hex(), record.span_id.hex(), name)] += 1
    assert got == expected
    assert sum(got.values()) >= 3


def test_every_key_that_arrives_passes_the_gateways_allow_list(received: OtlpReceiver) -> None:
    with (ROOT / "collector-config" / "gateway.yaml").open(encoding="utf-8") as handle:
        allowed = set(yaml.safe_load(handle)["processors"]["redaction"]["allowed_keys"])
    seen: set[str] = set()
    for span in received.spans:
        seen.update(span.attributes)
        seen.update(attr.key for event in span.span.events for attr in event.attributes)
        seen.update(attr.key for attr in span.resource.attributes)
    for resource, _scope, record in received.log_records:
        seen.update(attr.key for attr in record.attributes)
        seen.update(attr.key for attr in resource.attributes)
    assert len(seen) > 40
    assert sorted(seen - allowed) == []


def test_the_siems_routed_copy_verifies_as_a_partial_copy(received: OtlpReceiver, demo_dir: Path) -> None:
    """What the SIEM pipeline keeps (the routed spans, checkpoints included) verifies with --partial."""
    routed = [s for s in received.spans if s.attributes.get(semconv.LLM_AUDIT_AUDIT_RECORD) is True]
    siem_copy = demo_dir / "siem-spans.jsonl"
    with siem_copy.open("w", encoding="utf-8") as out:
        for span in routed:  # one request per span: the order a collector's batches may give
            body, resource, scope = span.otlp_json()
            request = {
                "resourceSpans": [
                    {"resource": {"attributes": resource}, "scopeSpans": [{"scope": scope, "spans": [body]}]}
                ]
            }
            out.write(json.dumps(request) + "\n")
    key = load_seal_key(str(demo_dir / "demo-seal.key"))
    result = verify(str(siem_copy), key=key, partial=True)
    assert [f.kind for f in result.findings if f.severity == "error"] == []
    absent = sum(stream.absent for stream in result.streams)
    assert absent == len(received.spans) - len(routed) > 0
    assert verify(str(siem_copy), key=key).findings  # the same copy, read as a whole chain, has gaps


def test_the_collectors_blocked_values_match_nothing_the_sdk_sends(received: OtlpReceiver) -> None:
    """The SDK masked already: the collector's patterns must not find (and change) sealed values."""
    import re2

    with (ROOT / "collector-config" / "gateway.yaml").open(encoding="utf-8") as handle:
        patterns = [re2.compile(p) for p in yaml.safe_load(handle)["processors"]["redaction"]["blocked_values"]]
    values: list[str] = []
    for span in received.spans:
        values.extend(v for v in span.attributes.values() if isinstance(v, str))
        values.extend(
            any_value(attr.value)
            for event in span.span.events
            for attr in event.attributes
            if attr.value.HasField("string_value")
        )
    for _resource, _scope, record in received.log_records:
        values.extend(any_value(a.value) for a in record.attributes if a.value.HasField("string_value"))
        values.append(record.body.string_value)
    assert len(values) > 200
    matched = sorted({v[:80] for v in values for p in patterns if p.search(v)})
    assert matched == []
