"""Embeddings, sync and async: operation, dimensions, encoding formats, usage, cost."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from otel_llm_audit import semconv
from otel_llm_audit.processing.cost import PriceTable

TEXT = "the quick brown fox"  # 19 characters -> 19 // 4 + 1 = 5 input tokens


def _check_embeddings_span(span: Any, fake_server: Any, *, dimensions: int, encoding: str, tokens: int) -> None:
    assert span.name == "embeddings text-embedding-3-small"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    attrs = span.attributes
    assert attrs[semconv.GEN_AI_OPERATION_NAME] == semconv.GenAiOperationNameValues.EMBEDDINGS
    assert attrs[semconv.GEN_AI_PROVIDER_NAME] == "openai"
    assert attrs[semconv.GEN_AI_REQUEST_MODEL] == "text-embedding-3-small"
    assert attrs[semconv.GEN_AI_RESPONSE_MODEL] == "text-embedding-3-small-2026-01-01"
    assert attrs[semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == dimensions
    assert list(attrs[semconv.GEN_AI_REQUEST_ENCODING_FORMATS]) == [encoding]
    assert attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] == tokens
    assert semconv.GEN_AI_USAGE_OUTPUT_TOKENS not in attrs
    assert attrs[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[semconv.SERVER_PORT] == fake_server.port
    # Embeddings have no chat API type, messages or finish reasons.
    for absent in (
        semconv.OPENAI_API_TYPE,
        semconv.GEN_AI_INPUT_MESSAGES,
        semconv.GEN_AI_OUTPUT_MESSAGES,
        semconv.GEN_AI_RESPONSE_FINISH_REASONS,
        semconv.GEN_AI_REQUEST_STREAM,
    ):
        assert absent not in attrs, absent
    cost = PriceTable.load().cost(
        "openai", "text-embedding-3-small-2026-01-01", input_tokens=tokens, output_tokens=None
    )
    assert cost is not None
    assert attrs[semconv.LLM_AUDIT_COST_USD] == cost.total_usd


def test_embeddings_sync_default_encoding(audit: Any, client: Any, fake_server: Any) -> None:
    result = client.embeddings.create(model="text-embedding-3-small", input=TEXT)
    assert len(result.data) == 1
    assert len(result.data[0].embedding) == 8
    # The SDK asks for base64 when the caller names no format, and decodes it for them:
    # the audit records what was sent.
    assert fake_server.requests[0].body["encoding_format"] == "base64"
    _check_embeddings_span(audit.only_llm_span(), fake_server, dimensions=8, encoding="base64", tokens=5)


def test_embeddings_sync_float_with_dimensions(audit: Any, client: Any, fake_server: Any) -> None:
    result = client.embeddings.create(
        model="text-embedding-3-small", input=[TEXT, "a second input"], dimensions=16, encoding_format="float"
    )
    assert [len(d.embedding) for d in result.data] == [16, 16]
    # (19 + 14) // 4 + 1 = 9
    _check_embeddings_span(audit.only_llm_span(), fake_server, dimensions=16, encoding="float", tokens=9)


@pytest.mark.parametrize("encoding", ["float", "base64"])
async def test_embeddings_async(audit: Any, async_client: Any, fake_server: Any, encoding: str) -> None:
    result = await async_client.embeddings.create(
        model="text-embedding-3-small", input=TEXT, dimensions=12, encoding_format=encoding
    )
    assert result.model == "text-embedding-3-small-2026-01-01"
    assert result.usage.prompt_tokens == 5
    _check_embeddings_span(audit.only_llm_span(), fake_server, dimensions=12, encoding=encoding, tokens=5)


async def test_embeddings_async_error(audit: Any, async_client: Any) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        await async_client.embeddings.create(model="error-400", input=TEXT)
    assert raised.value.status_code == 400
    span = audit.only_llm_span()
    assert span.name == "embeddings error-400"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "openai.BadRequestError"
    assert semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT not in span.attributes
