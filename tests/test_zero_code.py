"""Zero-code set-up: entry points, ``opentelemetry-instrument``, and what reaches a receiver.

These tests run the application in a fresh subprocess, as a user would, and read the bytes
that left it: the OTLP JSON file of the embedded default, or OTLP/HTTP protobuf posted to a
loopback receiver.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import distribution, entry_points
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from packaging.requirements import Requirement

from otel_llm_audit import semconv
from otel_llm_audit.cli.otlp_reader import SpanView, read_spans
from otel_llm_audit.delivery.store import AuditStore
from otel_llm_audit.delivery.store_writer import CHECKPOINT_SCOPE
from otel_llm_audit.delivery.stored_spans import export_requests
from otel_llm_audit.demo.fake_server import FakeModelServer
from otel_llm_audit.instrumentation.openai import OpenAIInstrumentor

BIN = Path(sys.executable).parent
APP = textwrap.dedent(
    """
    import sys
    import openai
    client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-test", max_retries=0)
    question = sys.argv[2] if len(sys.argv) > 2 else "What is the capital of France?"
    reply = client.chat.completions.create(
        model="gpt-4o-mini", temperature=0.5, messages=[{"role": "user", "content": question}],
    )
    print(reply.choices[0].message.content)
    """
)


@pytest.fixture
def fake_model() -> Iterator[FakeModelServer]:
    with FakeModelServer() as server:
        yield server


def _run_instrumented(tmp_path: Path, base_url: str, *app_args: str, **env: str) -> subprocess.CompletedProcess[str]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_"))}
    clean.update(env)
    return subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, str(app), base_url, *app_args],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _stored_spans(tmp_path: Path) -> list[SpanView]:
    """The spans in the default local audit store, read through its OTLP JSON export."""
    store = AuditStore(tmp_path / "llm-audit" / "audit.db", readonly=True)
    exported = tmp_path / "exported.jsonl"
    exported.write_text("".join(json.dumps(doc) + "\n" for doc in export_requests(store, store.iter_records())))
    spans, bad = read_spans(exported)
    assert bad == 0
    return spans


def _llm_span(spans: list[SpanView]) -> SpanView:
    llm = [s for s in spans if s.scope == "otel_llm_audit.instrumentation.openai"]
    assert len(llm) == 1, [s.name for s in spans]
    return llm[0]


def test_entry_point_is_ours_and_loads() -> None:
    eps = {ep.name: ep for ep in entry_points(group="opentelemetry_instrumentor")}
    assert eps["llm_audit_openai"].value == "otel_llm_audit.instrumentation.openai:OpenAIInstrumentor"
    assert eps["llm_audit_openai"].load() is OpenAIInstrumentor
    configurators = {ep.name: ep.value for ep in entry_points(group="opentelemetry_configurator")}
    assert configurators["llm_audit"] == "otel_llm_audit.distro:LlmAuditConfigurator"


def test_instruments_any_extra_equals_instrumentation_dependencies() -> None:
    """``opentelemetry-instrument`` reads the extra; ``.instrument()`` reads the methods: keep them equal.

    ``instruments-any``, not ``instruments``: with the latter, an application with only one of
    the libraries would get none of this package's instrumentors.
    """
    requires = distribution("otel-llm-audit").requires or []
    parsed = [Requirement(r) for r in requires]

    def extra(name: str) -> list[str]:
        return sorted(f"{r.name}{r.specifier}" for r in parsed if r.marker and r.marker.evaluate({"extra": name}))

    ours = [ep for ep in entry_points(group="opentelemetry_instrumentor") if ep.name.startswith("llm_audit_")]
    declared = sorted(
        f"{r.name}{r.specifier}" for ep in ours for r in map(Requirement, ep.load()().instrumentation_dependencies())
    )
    assert (
        extra("instruments-any")
        == declared
        == [
            "anthropic>=0.50.0",
            "botocore>=1.31.57",
            "google-genai>=1.0.0",
            "langchain-core>=0.3.40",
            "mcp>=1.21.1",
            "openai-agents>=0.2.0",
            "openai>=1.66.0",
        ]
    )
    assert extra("instruments") == []
    assert {ep.name for ep in ours} == {
        "llm_audit_openai",
        "llm_audit_anthropic",
        "llm_audit_bedrock",
        "llm_audit_google_genai",
        "llm_audit_langchain",
        "llm_audit_openai_agents",
        "llm_audit_mcp",
    }
    # opentelemetry-instrument loads every instrumentor: none may import its library up front
    probe = (
        "import sys\n"
        + "".join(f"import {ep.value.split(':')[0]}\n" for ep in ours)
        + (
            "print(sorted(m for m in ('openai', 'anthropic', 'botocore', 'google.genai', 'langchain_core', 'langgraph',"
            " 'agents', 'mcp') if m in sys.modules))"
        )
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_opentelemetry_instrument_writes_otlp_json_by_default(tmp_path: Path, fake_model: FakeModelServer) -> None:
    result = _run_instrumented(
        tmp_path, fake_model.base_url, OTEL_LLM_AUDIT_CONTENT="raw", OTEL_SERVICE_NAME="zero-code-app"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Hello from the fake model."
    assert not (tmp_path / "llm-audit" / "traces.jsonl").exists()  # the store is the embedded default
    spans = _stored_spans(tmp_path)
    span = _llm_span(spans)
    assert span.name == "chat gpt-4o-mini"
    assert span.attributes[semconv.LLM_AUDIT_INTEGRITY_ALGORITHM] == "sha256"  # sealed into the store
    assert span.kind == 3  # CLIENT
    attrs = span.attributes
    assert attrs[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[semconv.GEN_AI_PROVIDER_NAME] == "openai"
    assert attrs[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert attrs[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2026-01-01"
    assert attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ["stop"]
    assert json.loads(attrs[semconv.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "What is the capital of France?"}]}
    ]
    assert attrs[semconv.LLM_AUDIT_PRICING_VERSION]
    assert attrs[semconv.LLM_AUDIT_COST_USD] > 0
    # The HTTP client span nests under the LLM span, and the provider saw that trace.
    http = [s for s in spans if s.scope.startswith("opentelemetry.instrumentation.httpx")]
    assert len(http) == 1 and http[0].parent_span_id == span.span_id and http[0].trace_id == span.trace_id
    traceparent = fake_model.requests[-1].headers["traceparent"]
    assert traceparent.split("-")[1] == span.trace_id
    metrics_lines = (tmp_path / "llm-audit" / "metrics.jsonl").read_text()
    assert '"name":"gen_ai.client.token.usage"' in metrics_lines
    assert '"name":"llm_audit.cost"' in metrics_lines


def test_opentelemetry_instrument_masks_by_default(tmp_path: Path, fake_model: FakeModelServer) -> None:
    """No setting at all: content is recorded masked, in the file the default writes."""
    question = "Mail the results to jane.doe@example.com, SSN 219-09-9999."
    result = _run_instrumented(tmp_path, fake_model.base_url, question)
    assert result.returncode == 0, result.stderr
    stored = b"".join(p.read_bytes() for p in (tmp_path / "llm-audit").iterdir())
    assert b"jane.doe@example.com" not in stored and b"219-09-9999" not in stored
    spans = _stored_spans(tmp_path)
    attrs = _llm_span(spans).attributes
    assert attrs[semconv.LLM_AUDIT_CONTENT_MODE] == "masked"
    assert json.loads(attrs[semconv.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Mail the results to <EMAIL_ADDRESS>, SSN <US_SSN>."}]}
    ]
    assert attrs[semconv.LLM_AUDIT_REDACTION_STATUS] == "masked"
    assert json.loads(attrs[semconv.LLM_AUDIT_REDACTION_ENTITIES]) == {"EMAIL_ADDRESS": 1, "US_SSN": 1}
    assert attrs[semconv.LLM_AUDIT_AUDIT_RECORD] is True


def test_disabling_our_entry_point_leaves_other_instrumentations(tmp_path: Path, fake_model: FakeModelServer) -> None:
    result = _run_instrumented(tmp_path, fake_model.base_url, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="llm_audit_openai")
    assert result.returncode == 0, result.stderr
    spans = _stored_spans(tmp_path)
    assert [s.scope for s in spans if s.scope.startswith("otel_llm_audit") and s.scope != CHECKPOINT_SCOPE] == []
    assert len([s for s in spans if s.scope.startswith("opentelemetry.instrumentation.httpx")]) == 1


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        type(self).bodies.append(self.rfile.read(length))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


def test_otlp_http_receiver_gets_the_audit_span(tmp_path: Path, fake_model: FakeModelServer) -> None:
    _Receiver.bodies = []
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{receiver.server_address[1]}"
        result = _run_instrumented(
            tmp_path,
            fake_model.base_url,
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_METRICS_EXPORTER="none",
            OTEL_LLM_AUDIT_CONTENT="hash",
        )
    finally:
        receiver.shutdown()
    assert result.returncode == 0, result.stderr
    # An exporter was configured: no local file, but the store in front of it (store-and-forward).
    assert sorted(p.name for p in (tmp_path / "llm-audit").iterdir() if not p.name.startswith("audit.db-")) == [
        "audit.db"
    ]
    assert AuditStore(tmp_path / "llm-audit" / "audit.db", readonly=True).pending() == 0  # all delivered
    spans = []
    for body in _Receiver.bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                spans.extend((ss.scope.name, s) for s in ss.spans)
    ours = [s for scope, s in spans if scope == "otel_llm_audit.instrumentation.openai"]
    assert len(ours) == 1
    attrs = {kv.key: kv.value for kv in ours[0].attributes}
    assert attrs[semconv.LLM_AUDIT_CONTENT_MODE].string_value == "hash"
    hashes = json.loads(attrs[semconv.LLM_AUDIT_CONTENT_HASHES].string_value)
    assert set(hashes) == {semconv.GEN_AI_INPUT_MESSAGES, semconv.GEN_AI_OUTPUT_MESSAGES}
    assert all(len(h) == 64 for h in hashes[semconv.GEN_AI_INPUT_MESSAGES])
    assert semconv.GEN_AI_INPUT_MESSAGES not in attrs
    assert b"capital of France" not in b"".join(_Receiver.bodies)
