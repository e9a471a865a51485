"""The Google Gen AI configurations of the instruction-count benchmark (``_provider_worker`` spec).

* ``none``: google-genai alone, no OpenTelemetry;
* ``llm_audit`` / ``llm_audit_masked``: our ``GoogleGenAIInstrumentor`` (wraps the API client's
  ``request`` / ``request_streamed``);
* ``otel_google_genai``: the official ``opentelemetry-instrumentation-google-genai`` (wraps
  ``Models.generate_content[_stream]``, telemetry through ``opentelemetry-util-genai``), content
  on the span (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY``). Its 1.3b0
  declares ``google-genai>=1.32.0,<3``; with 3.6.1 ``instrument()`` would refuse, so it is called
  with ``skip_dep_check=True`` (and verified: a span per call with the content);
* ``openllmetry_google_genai``: OpenLLMetry ``opentelemetry-instrumentation-google-generativeai``
  (despite the name it instruments ``google-genai``: ``Models.generate_content[_stream]``),
  content on the span (``TRACELOOP_TRACE_CONTENT=true``);
* ``openinference_google_genai``: OpenInference ``openinference-instrumentation-google-genai``,
  content on the span (its default).

Each peer runs in its own venv (``bash benchmarks/setup_envs.sh otel_google_genai
openllmetry_google_genai openinference_google_genai``).
"""

from __future__ import annotations

import _mock_google_genai
from _provider_worker import WorkerSpec, ours, peer
from _worker import COMMON_DISTS

PEERS = ("otel_google_genai", "openllmetry_google_genai", "openinference_google_genai")

SPEC = WorkerSpec(
    mock=_mock_google_genai,
    ours=ours("otel_llm_audit.instrumentation.google_genai", "GoogleGenAIInstrumentor"),
    peers={
        "otel_google_genai": peer(
            "opentelemetry.instrumentation.google_genai", "GoogleGenAiSdkInstrumentor", skip_dep_check=True
        ),
        "openllmetry_google_genai": peer(
            "opentelemetry.instrumentation.google_generativeai", "GoogleGenerativeAiInstrumentor"
        ),
        "openinference_google_genai": peer("openinference.instrumentation.google_genai", "GoogleGenAIInstrumentor"),
    },
    config_env={
        "otel_google_genai": {
            "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY",
        },
        "openllmetry_google_genai": {"TRACELOOP_TRACE_CONTENT": "true"},
        "openinference_google_genai": {"OPENINFERENCE_HIDE_INPUTS": "false", "OPENINFERENCE_HIDE_OUTPUTS": "false"},
    },
    scopes={
        "otel_google_genai": ("opentelemetry.instrumentation.google_genai",),
        "openllmetry_google_genai": ("opentelemetry.instrumentation.google_generativeai",),
        "openinference_google_genai": ("openinference.instrumentation.google_genai",),
    },
    peer_of={p: p for p in PEERS},
    version_dists=(
        "google-genai",
        *COMMON_DISTS,
        "opentelemetry-instrumentation-google-genai",
        "opentelemetry-util-genai",
        "opentelemetry-instrumentation-google-generativeai",
        "opentelemetry-semantic-conventions-ai",
        "openinference-instrumentation-google-genai",
        "openinference-instrumentation",
        "openinference-semantic-conventions",
    ),
)
