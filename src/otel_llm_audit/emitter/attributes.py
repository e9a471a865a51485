"""How an :class:`~otel_llm_audit.records.LLMCall` becomes span attributes and events.

This is the one place that knows the attribute names of the GenAI conventions and of our
``llm_audit.*`` namespace (all taken from the generated :mod:`otel_llm_audit.semconv`). A
rename upstream is a change here and in ``semconv/``, nowhere else.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

from otel_llm_audit import semconv
from otel_llm_audit._version import __version__
from otel_llm_audit.config import ContentMode, Settings
from otel_llm_audit.emitter.content import ContentEncoder
from otel_llm_audit.records import ErrorInfo, LLMCall

logger = logging.getLogger("otel_llm_audit")

AttributeValue = str | bool | int | float | list[str] | list[int] | list[float]

#: Providers whose reproducibility fields live under the ``openai.*`` namespace.
_OPENAI_FAMILY = frozenset({"openai", "azure.ai.openai"})


@dataclass(slots=True)
class EventSpec:
    """A span event to add: name, attributes, and its time (ns since epoch) if known."""

    name: str
    attributes: dict[str, AttributeValue]
    timestamp: int | None = None


@dataclass(slots=True)
class SpanContent:
    """Everything the emitter adds to an LLM span after the call."""

    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    events: list[EventSpec] = field(default_factory=list)
    #: The call's cost, for the cost metric (``None`` when the model has no price).
    cost_usd: float | None = None


def span_name(operation: str, model: str | None) -> str:
    """``{gen_ai.operation.name} {gen_ai.request.model}``, the conventions' span name."""
    return f"{operation} {model}" if model else operation


def mark_ours(attrs: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
    """Stamp the start attributes of one of our spans with ``llm_audit.sdk.version``; returns them.

    A sampler sees a span's name and start attributes, never its instrumentation scope, so this
    key, set at start on every span otel-llm-audit produces, is how
    :class:`~otel_llm_audit.processing.sampling.AuditSampler` (and a collector's tail sampling)
    tells an audit span from the application's own, and keeps it when the trace is sampled out.
    """
    attrs[semconv.LLM_AUDIT_SDK_VERSION] = __version__
    return attrs


def start_attributes(record: LLMCall) -> dict[str, AttributeValue]:
    """The sampling-relevant attributes, set when the span starts (with the mark of our spans)."""
    attrs: dict[str, AttributeValue] = {
        semconv.GEN_AI_OPERATION_NAME: record.operation,
        semconv.GEN_AI_PROVIDER_NAME: record.provider,
        semconv.LLM_AUDIT_SDK_VERSION: __version__,
    }
    if record.request_model:
        attrs[semconv.GEN_AI_REQUEST_MODEL] = record.request_model
    if record.server_address:
        attrs[semconv.SERVER_ADDRESS] = record.server_address
        if record.server_port:
            attrs[semconv.SERVER_PORT] = record.server_port
    if record.stream:
        attrs[semconv.GEN_AI_REQUEST_STREAM] = True
    return attrs


def error_type_of(exc: BaseException) -> str:
    """``error.type``: the exception's public name (``openai.RateLimitError``, ``TimeoutError``)."""
    cls = type(exc)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    top = module.split(".", 1)[0]
    if getattr(sys.modules.get(top), cls.__name__, None) is cls:
        return f"{top}.{cls.__name__}"
    return f"{module}.{cls.__qualname__}"


#: ``error.type`` of a step whose end never came (an evicted LangChain run, an Agents SDK span
#: the SDK never ended): its span is ended by us, saying so, rather than lost.
ABANDONED_ERROR_TYPE = "abandoned"


def error_info(exc: BaseException) -> ErrorInfo:
    """The record of a failed call."""
    return ErrorInfo(type=error_type_of(exc), message=_safe_str(exc), exception=exc)


def llm_call_content(record: LLMCall, settings: Settings, price_lookup: Any = None) -> SpanContent:
    """All attributes and events that describe a finished call (beyond the start attributes)."""
    out = SpanContent()
    attrs = out.attributes
    attrs[semconv.LLM_AUDIT_SDK_VERSION] = __version__
    _request_attributes(record, attrs)
    _response_attributes(record, attrs)
    _usage_attributes(record, attrs)
    _content_attributes(record, settings, attrs)
    if price_lookup is not None and record.error is None:
        out.cost_usd = _cost_attributes(record, price_lookup, attrs)
    if record.error is not None:
        attrs[semconv.ERROR_TYPE] = record.error.type
        out.events.append(exception_event(record.error))
    if record.policy_events:
        from otel_llm_audit.emitter.operations import policy_event_attributes

        for event in record.policy_events:
            out.events.append(EventSpec(semconv.EVENT_LLM_AUDIT_POLICY, policy_event_attributes(event)))
        attrs[semconv.LLM_AUDIT_AUDIT_RECORD] = True
    if record.notes:
        logger.info("otel-llm-audit: %s call %s: %s", record.provider, record.response_id, "; ".join(record.notes))
    return out


def exception_event(error: ErrorInfo) -> EventSpec:
    """The span's ``exception`` event, as OpenTelemetry records exceptions."""
    attrs: dict[str, AttributeValue] = {
        semconv.EXCEPTION_TYPE: error.type,
        semconv.EXCEPTION_MESSAGE: error.message,
    }
    if error.exception is not None:
        exc = error.exception
        attrs[semconv.EXCEPTION_STACKTRACE] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return EventSpec(name="exception", attributes=attrs)


def _request_attributes(record: LLMCall, attrs: dict[str, AttributeValue]) -> None:
    p = record.params
    _put(attrs, semconv.GEN_AI_REQUEST_MAX_TOKENS, p.max_tokens)
    _put(attrs, semconv.GEN_AI_REQUEST_TEMPERATURE, p.temperature)
    _put(attrs, semconv.GEN_AI_REQUEST_TOP_P, p.top_p)
    _put(attrs, semconv.GEN_AI_REQUEST_TOP_K, p.top_k)
    _put(attrs, semconv.GEN_AI_REQUEST_STOP_SEQUENCES, p.stop_sequences)
    _put(attrs, semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY, p.frequency_penalty)
    _put(attrs, semconv.GEN_AI_REQUEST_PRESENCE_PENALTY, p.presence_penalty)
    _put(attrs, semconv.GEN_AI_REQUEST_SEED, p.seed)
    if p.choice_count is not None and p.choice_count != 1:
        attrs[semconv.GEN_AI_REQUEST_CHOICE_COUNT] = p.choice_count
    _put(attrs, semconv.GEN_AI_REQUEST_REASONING_LEVEL, p.reasoning_level)
    _put(attrs, semconv.GEN_AI_OUTPUT_TYPE, p.output_type)
    _put(attrs, semconv.GEN_AI_REQUEST_PREVIOUS_RESPONSE_ID, p.previous_response_id)
    _put(attrs, semconv.GEN_AI_REQUEST_ENCODING_FORMATS, p.encoding_formats)
    _put(attrs, semconv.GEN_AI_CONVERSATION_ID, p.conversation_id)
    if record.provider in _OPENAI_FAMILY:
        if p.service_tier and p.service_tier != "auto":
            attrs[semconv.OPENAI_REQUEST_SERVICE_TIER] = p.service_tier
        _put(attrs, semconv.OPENAI_API_TYPE, record.api_type)


def _response_attributes(record: LLMCall, attrs: dict[str, AttributeValue]) -> None:
    _put(attrs, semconv.GEN_AI_RESPONSE_ID, record.response_id)
    _put(attrs, semconv.GEN_AI_RESPONSE_MODEL, record.response_model)
    _put(attrs, semconv.GEN_AI_RESPONSE_STATUS, record.response_status)
    if record.finish_reasons:
        attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = list(record.finish_reasons)
    ttfc = record.time_to_first_chunk_s
    if record.stream and ttfc is not None:
        attrs[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = ttfc
    _put(attrs, semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, record.embedding_dimensions)
    if record.provider in _OPENAI_FAMILY:
        _put(attrs, semconv.OPENAI_RESPONSE_SERVICE_TIER, record.service_tier)
        _put(attrs, semconv.OPENAI_RESPONSE_SYSTEM_FINGERPRINT, record.system_fingerprint)
    elif record.provider == "aws.bedrock":
        _put(attrs, semconv.AWS_REQUEST_ID, record.provider_request_id)
        _put(attrs, semconv.AWS_BEDROCK_GUARDRAIL_ID, record.guardrail_id)


def _usage_attributes(record: LLMCall, attrs: dict[str, AttributeValue]) -> None:
    u = record.usage
    _put(attrs, semconv.GEN_AI_USAGE_INPUT_TOKENS, u.input_tokens)
    _put(attrs, semconv.GEN_AI_USAGE_OUTPUT_TOKENS, u.output_tokens)
    _put(attrs, semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, u.cache_read_input_tokens)
    _put(attrs, semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, u.cache_write_input_tokens)
    _put(attrs, semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, u.reasoning_output_tokens)


def _content_attributes(record: LLMCall, settings: Settings, attrs: dict[str, AttributeValue]) -> None:
    mode = settings.content
    attrs[semconv.LLM_AUDIT_CONTENT_MODE] = mode.value
    if mode is ContentMode.NONE:
        return
    encoder = ContentEncoder(settings.max_content_chars)
    if mode is ContentMode.RAW or mode is ContentMode.MASKED:  # masked: the masking stage comes next
        if record.system_instructions:
            attrs[semconv.GEN_AI_SYSTEM_INSTRUCTIONS] = encoder.dumps(record.system_instructions)
        masked = mode is ContentMode.MASKED
        if record.input_messages:
            attrs[semconv.GEN_AI_INPUT_MESSAGES] = encoder.messages(record.input_messages, with_elements=masked)
        if record.output_messages:
            attrs[semconv.GEN_AI_OUTPUT_MESSAGES] = encoder.messages(record.output_messages, with_elements=masked)
        if record.tool_definitions:
            attrs[semconv.GEN_AI_TOOL_DEFINITIONS] = encoder.dumps(record.tool_definitions)
        if encoder.truncated:
            attrs[semconv.LLM_AUDIT_CONTENT_TRUNCATED] = True
        return
    # Hash mode: prove integrity later without keeping the text.
    from otel_llm_audit.emitter.content import canonical_hash

    hashes: dict[str, list[str]] = {}
    if record.system_instructions:
        hashes[semconv.GEN_AI_SYSTEM_INSTRUCTIONS] = [canonical_hash(p) for p in record.system_instructions]
    if record.input_messages:
        hashes[semconv.GEN_AI_INPUT_MESSAGES] = encoder.hashes(record.input_messages)
    if record.output_messages:
        hashes[semconv.GEN_AI_OUTPUT_MESSAGES] = encoder.hashes(record.output_messages)
    if record.tool_definitions:
        hashes[semconv.GEN_AI_TOOL_DEFINITIONS] = [canonical_hash(t) for t in record.tool_definitions]
    if hashes:
        attrs[semconv.LLM_AUDIT_CONTENT_HASHES] = json.dumps(hashes, separators=(",", ":"), sort_keys=True)


def _cost_attributes(record: LLMCall, prices: Any, attrs: dict[str, AttributeValue]) -> float | None:
    model = record.response_model or record.request_model
    u = record.usage
    if not model or (u.input_tokens is None and u.output_tokens is None):
        return None
    cost = prices.cost(
        record.provider,
        model,
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_input_tokens,
        cache_write_tokens=u.cache_write_input_tokens,
        reasoning_tokens=u.reasoning_output_tokens,
    )
    if cost is None:
        return None
    attrs[semconv.LLM_AUDIT_COST_USD] = cost.total_usd
    attrs[semconv.LLM_AUDIT_COST_INPUT_USD] = cost.input_usd
    attrs[semconv.LLM_AUDIT_COST_OUTPUT_USD] = cost.output_usd
    attrs[semconv.LLM_AUDIT_PRICING_VERSION] = prices.version
    return float(cost.total_usd)


def _put(attrs: dict[str, AttributeValue], key: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, (list, tuple)):
        attrs[key] = [v for v in value if v is not None]
    else:
        attrs[key] = value


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
