"""The Anthropic configurations of the instruction-count benchmark: set up, verify, report versions.

The counterpart of ``_worker.configure`` / ``_worker.verify`` for the ``anthropic`` SDK: a
``_provider_worker.WorkerSpec`` (same exporters and peer pipeline as the others), plus how the
SDK's own span sits beside a peer's. Only the standard library, ``_worker``,
``_provider_worker`` and ``_mock_anthropic`` at import: it runs in every venv.

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

from typing import Any

import _mock_anthropic
import _provider_worker
import _worker
from _provider_worker import WorkerSpec, ours, peer
from _worker import COMMON_DISTS, Setup

SDK_SCOPE = "com.anthropic.sdk.python"

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

_OPENLLMETRY = peer("opentelemetry.instrumentation.anthropic", "AnthropicInstrumentor")
_OPENINFERENCE = peer("openinference.instrumentation.anthropic", "AnthropicInstrumentor")
_INSTRUMENT = {"openllmetry_anthropic": _OPENLLMETRY, "openinference_anthropic": _OPENINFERENCE}


class AnthropicSpec(WorkerSpec):
    def verify(self, setup: Setup, scenario: str, expected_calls: int) -> dict[str, Any]:
        """One span per call from the configuration's scope with content; the SDK's spans only where tolerated."""
        if setup.span_exporter is None:
            return {"spans": 0, "spans_per_call": {}, "sdk_tracer": _sdk_tracer(scenario)}
        result, own_samples, samples = _provider_worker.check_spans(self, setup, scenario, expected_calls)
        sdk = next((s for s in samples if s.instrumentation_scope and s.instrumentation_scope.name == SDK_SCOPE), None)
        if sdk is not None and setup.name != "anthropic_sdk":
            result["sdk_span"] = _sdk_span(sdk, own_samples, scenario)
        return result


def _sdk_span(sdk: Any, own_samples: list[Any], scenario: str) -> dict[str, Any]:
    """How the SDK's span sits beside the configuration's own (the first calls' spans)."""
    own_ids = {s.context.span_id: s.name for s in own_samples}
    own_parents = {s.parent.span_id for s in own_samples if s.parent is not None}
    if sdk.parent is not None and sdk.parent.span_id in own_ids:
        relation = f"child of the {own_ids[sdk.parent.span_id]!r} span"
    elif sdk.context.span_id in own_parents:
        relation = "parent of the configuration's span"
    else:
        relation = "unrelated to the configuration's span" if sdk.parent is None else "child of another span"
    text = _worker._span_text(sdk)
    return {
        "name": sdk.name,
        "relation": relation,
        "attribute_count": len(sdk.attributes or {}),
        "has_content_markers": [m for m in _mock_anthropic.MARKERS[scenario] if m in text],
        "gen_ai_attributes": sorted(k for k in (sdk.attributes or {}) if k.startswith("gen_ai.")),
    }


def _sdk_tracer(scenario: str) -> str:
    """What tracer a fresh client of this process gets: ``None`` (tracing off) or its class."""
    client = _mock_anthropic.make_client(scenario)
    tracer = client._tracer
    return "None" if tracer is None else type(tracer).__name__


SPEC = AnthropicSpec(
    mock=_mock_anthropic,
    ours=ours("otel_llm_audit.instrumentation.anthropic", "AnthropicInstrumentor"),
    # anthropic_sdk: no instrumentor, the global tracer provider is all the SDK needs.
    peers={"anthropic_sdk": None, **{c: _INSTRUMENT[p] for c, p in PEER_OF.items()}},
    config_env=CONFIG_ENV,
    scopes=SCOPE_PREFIXES,
    peer_of=PEER_OF,
    version_dists=(
        "anthropic",
        "httpx2",
        *COMMON_DISTS,
        "opentelemetry-instrumentation-anthropic",
        "opentelemetry-semantic-conventions-ai",
        "openinference-instrumentation-anthropic",
        "openinference-instrumentation",
        "openinference-semantic-conventions",
    ),
    bare=("none", "none_sdk_off"),
    #: Spans besides the configuration's own that may be there: the SDK's, beside a peer's.
    tolerated={p: (SDK_SCOPE,) for p in PEERS},
)
