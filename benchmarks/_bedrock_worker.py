"""The Bedrock Runtime configurations of the instruction-count benchmark (``_provider_worker`` spec).

* ``none``: boto3 alone, no OpenTelemetry;
* ``llm_audit`` / ``llm_audit_masked``: our ``BedrockInstrumentor`` (wraps ``BaseClient._make_api_call``);
* ``otel_botocore``: the official ``opentelemetry-instrumentation-botocore`` (a span per AWS call,
  GenAI attributes for Bedrock Runtime); it captures content only as GenAI log records
  (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``), so it gets a LoggerProvider;
* ``openllmetry_bedrock``: OpenLLMetry ``opentelemetry-instrumentation-bedrock`` (patches the
  client's methods at ``create_client``), content on the span (``TRACELOOP_TRACE_CONTENT=true``);
* ``openinference_bedrock``: OpenInference ``openinference-instrumentation-bedrock`` (same
  approach), content on the span (its default).

Each peer runs in its own venv (``bash benchmarks/setup_envs.sh otel_botocore openllmetry_bedrock
openinference_bedrock``).
"""

from __future__ import annotations

import _mock_bedrock
from _provider_worker import WorkerSpec, ours, peer
from _worker import COMMON_DISTS

SPEC = WorkerSpec(
    mock=_mock_bedrock,
    ours=ours("otel_llm_audit.instrumentation.bedrock", "BedrockInstrumentor"),
    peers={
        "otel_botocore": peer("opentelemetry.instrumentation.botocore", "BotocoreInstrumentor", logs=True),
        "openllmetry_bedrock": peer("opentelemetry.instrumentation.bedrock", "BedrockInstrumentor"),
        "openinference_bedrock": peer("openinference.instrumentation.bedrock", "BedrockInstrumentor"),
    },
    config_env={
        "otel_botocore": {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"},
        "openllmetry_bedrock": {"TRACELOOP_TRACE_CONTENT": "true"},
        "openinference_bedrock": {"OPENINFERENCE_HIDE_INPUTS": "false", "OPENINFERENCE_HIDE_OUTPUTS": "false"},
    },
    scopes={
        "otel_botocore": ("opentelemetry.instrumentation.botocore",),
        "openllmetry_bedrock": ("opentelemetry.instrumentation.bedrock",),
        "openinference_bedrock": ("openinference.instrumentation.bedrock",),
    },
    peer_of={p: p for p in ("otel_botocore", "openllmetry_bedrock", "openinference_bedrock")},
    content_in_logs=("otel_botocore",),
    version_dists=(
        "boto3",
        "botocore",
        *COMMON_DISTS,
        "opentelemetry-instrumentation-botocore",
        "opentelemetry-instrumentation-bedrock",
        "opentelemetry-semantic-conventions-ai",
        "openinference-instrumentation-bedrock",
        "openinference-instrumentation",
        "openinference-semantic-conventions",
    ),
)
