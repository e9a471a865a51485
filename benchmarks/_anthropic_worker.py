"""The Anthropic configurations of the instruction-count benchmark: set up, verify, report versions.

The counterpart of ``_worker.configure`` / ``_worker.verify`` for the ``anthropic`` SDK, on the
same exporters and peer pipeline (``_worker._make_exporters``, ``_worker._sdk_providers``).
Only the standard library, ``_worker`` and ``_mock_anthropic`` at import: it runs in every venv.

``anthropic`` >= 2 opens an OpenTelemetry span of its own per call (scope
``com.anthropic.sdk.python``) whenever OpenTelemetry gives it a recording tracer. So:

* ``none`` has no tracer provider (the SDK gets the API's proxy tracer, starts a non-recording
  span per call and drops it: what an application without OpenTelemetry runs);
  ``none_sdk_off`` also sets ``ANTHROPIC_OPEN_TELEMETRY=false`` (the SDK skips its tracing code);
* ``llm_audit`` / ``llm_audit_masked``: our instrumentor replaces the SDK's span by a
  non-recording one carrying ours, so exactly one LLM span per call is expected;
* ``anthropic_sdk``: no instrumentor, the SDK's own span with content
  (``ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE=content``) on the peers' pipeline;
* the peers set a global tracer provider, so the SDK's span is there beside theirs: verification
  requires one span per call from the peer's scope with content, allows the SDK's spans, and
  reports how many of each there were per call and how they nest;
* ``<peer>_sdk_off``: the same peer with ``ANTHROPIC_OPEN_TELEMETRY=false``, one span per call
  (what the peer itself costs, and what a user who switches the SDK's span off runs).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import _mock_anthropic
import _worker
from _worker import BenchmarkError, Setup

SDK_SCOPE = "com.anthropic.sdk.python"

CONFIGS = (
    "none",
    "none_sdk_off",
    "llm_audit",
    "llm_audit_masked",
    "anthropic_sdk",
    "openllmetry_anthropic",
    "openllmetry_anthropic_sdk_off",
    "openinference_anthropic",
    "openinference_anthropic_sdk_off",
)
PEERS = ("openllmetry_anthropic", "openinference_anthropic")
#: Configuration -> the peer whose venv and instrumentor it uses.
PEER_OF = {**{p: p for p in PEERS}, **{f"{p}_sdk_off": p for p in PEERS}}
SDK_OFF = {"ANTHROPIC_OPEN_TELEMETRY": "false"}

CONFIG_ENV: dict[str, dict[str, str]] = {
    "none": {},
    "none_sdk_off": {"ANTHROPIC_OPEN_TELEMETRY": "false"},
    "llm_audit": {},
    "llm_audit_masked": {},
    "anthropic_sdk": {"ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE": "content"},
    "openllmetry_anthropic": {"TRACELOOP_TRACE_CONTENT": "true"},
    "openinference_anthropic": {"OPENINFERENCE_HIDE_INPUTS": "false", "OPENINFERENCE_HIDE_OUTPUTS": "false"},
}
CONFIG_ENV.update({f"{p}_sdk_off": {**CONFIG_ENV[p], **SDK_OFF} for p in PEERS})

#: Instrumentation scope name prefixes of the configuration's own LLM spans.
SCOPE_PREFIXES: dict[str, tuple[str, ...]] = {
    "llm_audit": ("otel_llm_audit",),
    "llm_audit_masked": ("otel_llm_audit",),
    "anthropic_sdk": (SDK_SCOPE,),
    "openllmetry_anthropic": ("opentelemetry.instrumentation.anthropic",),
    "openinference_anthropic": ("openinference.instrumentation.anthropic",),
}
SCOPE_PREFIXES.update({f"{p}_sdk_off": SCOPE_PREFIXES[p] for p in PEERS})

#: Spans besides the configuration's own that may be there: the SDK's, beside a peer's.
TOLERATED_SCOPES: dict[str, tuple[str, ...]] = {p: (SDK_SCOPE,) for p in PEERS}

VERSION_DISTS = (
    "anthropic",
    "httpx2",
    "httpx",
    "pydantic",
    "pydantic-core",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation",
    "wrapt",
    "otel-llm-audit",
    "opentelemetry-instrumentation-anthropic",
    "opentelemetry-semantic-conventions-ai",
    "openinference-instrumentation-anthropic",
    "openinference-instrumentation",
    "openinference-semantic-conventions",
)


def configure(name: str) -> Setup:
    for key, value in CONFIG_ENV[name].items():
        os.environ[key] = value
    setup = Setup(name)
    if name in ("none", "none_sdk_off"):
        return setup
    if name in ("llm_audit", "llm_audit_masked"):
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        import otel_llm_audit
        from otel_llm_audit.instrumentation.anthropic import AnthropicInstrumentor
        from otel_llm_audit.processing.pipeline import AuditSpanProcessor

        span_exporter, metric_exporter = _worker._make_exporters()
        pipeline = otel_llm_audit.configure(
            content="masked" if name == "llm_audit_masked" else "raw",
            span_exporters=[span_exporter],
            metric_readers=[PeriodicExportingMetricReader(metric_exporter, export_interval_millis=60_000)],
            instrument=False,
            http_spans=False,
        )
        if pipeline.masking is not None and not pipeline.masking.wait_ready(120):
            raise RuntimeError("the masker did not start")
        AnthropicInstrumentor().instrument()
        setup.span_exporter, setup.metric_exporter = span_exporter, metric_exporter
        setup.flush = lambda: pipeline.force_flush(60_000)
        setup.shutdown = pipeline.shutdown
        setup.details["otel_llm_audit_file"] = otel_llm_audit.__file__
        processors = getattr(pipeline.tracer_provider._active_span_processor, "_span_processors", ())
        setup.audit_processor = next((p for p in processors if isinstance(p, AuditSpanProcessor)), None)
        return setup
    tracer_provider, meter_provider = _worker._sdk_providers(setup)
    peer = PEER_OF.get(name)
    if name == "anthropic_sdk":
        pass  # the global tracer provider is all the SDK needs
    elif peer == "openllmetry_anthropic":
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor as LlmetryInstrumentor

        LlmetryInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    elif peer == "openinference_anthropic":
        from openinference.instrumentation.anthropic import AnthropicInstrumentor as OIInstrumentor

        OIInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    else:
        raise ValueError(f"unknown configuration {name!r}")
    return setup


def _sdk_tracer(scenario: str) -> str:
    """What tracer a fresh client of this process gets: ``None`` (tracing off) or its class."""
    client = _mock_anthropic.make_client(scenario)
    tracer = client._tracer
    return "None" if tracer is None else type(tracer).__name__


def verify(setup: Setup, scenario: str, expected_calls: int) -> dict[str, Any]:
    """One span per call from the configuration's scope with content; the SDK's spans only where tolerated."""
    exporter = setup.span_exporter
    if exporter is None:
        return {"spans": 0, "spans_per_call": {}, "sdk_tracer": _sdk_tracer(scenario)}
    prefixes = SCOPE_PREFIXES[setup.name]
    tolerated = TOLERATED_SCOPES.get(setup.name, ())
    with exporter.lock:
        by_key = dict(exporter.by_key)
        samples = list(exporter.samples)
    described = ", ".join(f"{scope}:{name}={n}" for (scope, name), n in sorted(by_key.items())) or "nothing"
    ours = {k: v for k, v in by_key.items() if k[0].startswith(prefixes)}
    others = {k: v for k, v in by_key.items() if k not in ours}
    llm_spans = sum(ours.values())
    if llm_spans != expected_calls:
        raise BenchmarkError(
            f"{setup.name}/{scenario}: expected {expected_calls} LLM spans from scopes {prefixes}, "
            f"got {llm_spans} (exported: {described})"
        )
    unexpected = {k: v for k, v in others.items() if not k[0].startswith(tolerated)}
    if unexpected:
        raise BenchmarkError(f"{setup.name}/{scenario}: unexpected extra spans (exported: {described})")
    wanted = _mock_anthropic.MARKERS[scenario]
    own_samples = [s for s in samples if (s.instrumentation_scope.name if s.instrumentation_scope else "") in
                   {scope for scope, _ in ours}]  # fmt: skip
    for span in own_samples:
        text = _worker._span_text(span)
        missing = [m for m in wanted if m not in text]
        if missing:
            raise BenchmarkError(
                f"{setup.name}/{scenario}: span {span.name!r} lacks captured content {missing} "
                f"(attributes: {sorted((span.attributes or {}).keys())})"
            )
    per_scope: Counter[str] = Counter()
    for (scope, _name), n in by_key.items():
        per_scope[scope] += n
    result: dict[str, Any] = {
        "spans": llm_spans,
        "span_names": sorted({name for (_scope, name) in ours}),
        "spans_per_call": {scope: n / expected_calls for scope, n in sorted(per_scope.items())},
        "sample_attribute_count": len(own_samples[0].attributes or {}),
        "sample_event_count": len(own_samples[0].events or ()),
        "sample_content_chars": len(_worker._span_text(own_samples[0])),
    }
    sdk_samples = [s for s in samples if s.instrumentation_scope and s.instrumentation_scope.name == SDK_SCOPE]
    if sdk_samples and setup.name != "anthropic_sdk":
        # How the SDK's span sits beside the configuration's own (the first calls' spans).
        own_ids = {s.context.span_id: s.name for s in own_samples}
        own_parents = {s.parent.span_id for s in own_samples if s.parent is not None}
        sdk = sdk_samples[0]
        if sdk.parent is not None and sdk.parent.span_id in own_ids:
            relation = f"child of the {own_ids[sdk.parent.span_id]!r} span"
        elif sdk.context.span_id in own_parents:
            relation = "parent of the configuration's span"
        else:
            relation = "unrelated to the configuration's span" if sdk.parent is None else "child of another span"
        text = _worker._span_text(sdk)
        result["sdk_span"] = {
            "name": sdk.name,
            "relation": relation,
            "attribute_count": len(sdk.attributes or {}),
            "has_content_markers": [m for m in wanted if m in text],
            "gen_ai_attributes": sorted(k for k in (sdk.attributes or {}) if k.startswith("gen_ai.")),
        }
    return result
