"""The metrics every LLM call feeds (token usage, duration, time to first chunk, cost), and MCP durations.

Instruments and bucket boundaries come from the registry (``semconv/``), so a dashboard built
on these names breaks only when the registry says so.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import metrics

from otel_llm_audit import _guard, semconv
from otel_llm_audit._version import __version__
from otel_llm_audit.context import AuditIdentity
from otel_llm_audit.records import LLMCall

_SCOPE = "otel_llm_audit"


class MetricsRecorder:
    """Records one finished call into the GenAI client metrics and our cost counter."""

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider, schema_url=semconv.SCHEMA_URL)
        self._token_usage = meter.create_histogram(
            semconv.METRIC_GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Tokens used per GenAI call, by token type.",
            explicit_bucket_boundaries_advisory=list(semconv.METRIC_GEN_AI_CLIENT_TOKEN_USAGE_BUCKETS),
        )
        self._duration = meter.create_histogram(
            semconv.METRIC_GEN_AI_CLIENT_OPERATION_DURATION,
            unit="s",
            description="Duration of GenAI calls as the caller sees them.",
            explicit_bucket_boundaries_advisory=list(semconv.METRIC_GEN_AI_CLIENT_OPERATION_DURATION_BUCKETS),
        )
        self._ttfc = meter.create_histogram(
            semconv.METRIC_GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time from request to the first streamed chunk.",
            explicit_bucket_boundaries_advisory=list(
                semconv.METRIC_GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK_BUCKETS
            ),
        )
        self._mcp_duration = {
            "client": meter.create_histogram(
                semconv.METRIC_MCP_CLIENT_OPERATION_DURATION,
                unit="s",
                description="Duration of MCP requests and notifications as their sender sees them.",
                explicit_bucket_boundaries_advisory=list(semconv.METRIC_MCP_CLIENT_OPERATION_DURATION_BUCKETS),
            ),
            "server": meter.create_histogram(
                semconv.METRIC_MCP_SERVER_OPERATION_DURATION,
                unit="s",
                description="Duration of MCP requests and notifications as their handler sees them.",
                explicit_bucket_boundaries_advisory=list(semconv.METRIC_MCP_SERVER_OPERATION_DURATION_BUCKETS),
            ),
        }
        self._cost = meter.create_counter(
            semconv.METRIC_LLM_AUDIT_COST,
            unit="USD",
            description="Cost of GenAI calls from the shipped price table, by team, application, provider, model.",
        )
        _guard.set_error_counter(
            meter.create_counter(
                semconv.METRIC_LLM_AUDIT_INSTRUMENTATION_ERRORS,
                unit="{error}",
                description="Exceptions raised and swallowed inside otel-llm-audit.",
            )
        )

    def record_mcp_duration(self, side: str, seconds: float, dims: Mapping[str, str]) -> None:
        """One MCP request or notification: ``side`` is ``client`` (sent) or ``server`` (handled)."""
        histogram = self._mcp_duration.get(side)
        if histogram is not None:
            histogram.record(seconds, dict(dims))

    def record_llm_call(self, record: LLMCall, identity: AuditIdentity | None, cost_usd: float | None) -> None:
        """Feed one finished call to every instrument."""
        dims: dict[str, str | int] = {
            semconv.GEN_AI_OPERATION_NAME: record.operation,
            semconv.GEN_AI_PROVIDER_NAME: record.provider,
        }
        if record.request_model:
            dims[semconv.GEN_AI_REQUEST_MODEL] = record.request_model
        if record.response_model:
            dims[semconv.GEN_AI_RESPONSE_MODEL] = record.response_model
        if record.server_address:
            dims[semconv.SERVER_ADDRESS] = record.server_address
            if record.server_port:
                dims[semconv.SERVER_PORT] = record.server_port
        duration = record.duration_s
        if duration is not None:
            duration_dims = dict(dims)
            if record.error is not None:
                duration_dims[semconv.ERROR_TYPE] = record.error.type
            self._duration.record(duration, duration_dims)
        if record.stream and record.time_to_first_chunk_s is not None:
            self._ttfc.record(record.time_to_first_chunk_s, dims)
        usage = record.usage
        if usage.input_tokens is not None:
            self._token_usage.record(usage.input_tokens, {**dims, semconv.GEN_AI_TOKEN_TYPE: "input"})
        if usage.output_tokens is not None:
            self._token_usage.record(usage.output_tokens, {**dims, semconv.GEN_AI_TOKEN_TYPE: "output"})
        if cost_usd is not None:
            cost_dims: dict[str, str] = {
                semconv.GEN_AI_PROVIDER_NAME: record.provider,
                semconv.GEN_AI_REQUEST_MODEL: record.request_model or "",
            }
            if identity is not None:
                for key in (
                    semconv.LLM_AUDIT_TEAM,
                    semconv.LLM_AUDIT_APPLICATION,
                    semconv.LLM_AUDIT_TENANT_ID,
                ):
                    value = identity.attributes.get(key)
                    if value is not None:
                        cost_dims[key] = value
            self._cost.add(cost_usd, cost_dims)
