"""OpenAI on the shared Stainless ``request`` wrapper: which paths are model calls, and how.

Every endpoint method of the SDK (``chat.completions.create`` / ``parse`` / ``stream``,
``responses.create`` / ``parse`` / ``stream`` / ``retrieve``, ``embeddings.create``, and their
``with_raw_response`` / ``with_streaming_response`` forms) ends in ``client.request(cast_to,
options, ...)``; :mod:`otel_llm_audit.instrumentation.stainless` wraps it, and this module says
which of those requests are model calls and how their record starts. This covers them all,
sync and async, on openai 1.x, 2.x and 3.x, and records the body as it was sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otel_llm_audit.emitter.spans import Emitter, LLMCallSpan
from otel_llm_audit.instrumentation.openai import _capture
from otel_llm_audit.instrumentation.stainless import RequestWrapper, server_of
from otel_llm_audit.records import LLMCall

Resolver = Callable[[LLMCall, _capture.OpenAICallState], None]


class _Endpoint:
    """How one API path maps to the conventions."""

    __slots__ = ("api_type", "operation", "resolver")

    def __init__(self, operation: str, api_type: str | None, resolver: Resolver) -> None:
        self.operation = operation
        self.api_type = api_type
        self.resolver = resolver


_POST_ENDPOINTS = {
    "/chat/completions": _Endpoint("chat", "chat_completions", _capture.resolve_chat),
    "/responses": _Endpoint("chat", "responses", _capture.resolve_responses),
    "/embeddings": _Endpoint("embeddings", None, _capture.resolve_embeddings),
}
_FETCH = _Endpoint("fetch_response", "responses", _capture.resolve_fetch)


def _get_endpoint(path: str) -> _Endpoint | None:
    """``GET /responses/{id}`` is a fetch; its sub-resources (input_items, ...) are not."""
    if path.startswith("/responses/") and path.count("/") == 2:
        return _FETCH
    return None


_PROVIDER_BY_TYPE: dict[type, str] = {}


def _provider_of(client: Any) -> str:
    """``azure.ai.openai`` for the Azure clients, ``openai`` otherwise; decided once per client class."""
    cls = type(client)
    provider = _PROVIDER_BY_TYPE.get(cls)
    if provider is None:
        provider = _PROVIDER_BY_TYPE[cls] = "azure.ai.openai" if "Azure" in cls.__name__ else "openai"
    return provider


def _start(
    emitter: Emitter, client: Any, path: str, endpoint: _Endpoint, json_body: Any, stream: bool
) -> LLMCallSpan | None:
    body = _capture.snapshot_body(json_body)
    state = _capture.OpenAICallState(path, body)
    host, port = server_of(client)
    model = body.get("model")
    record = LLMCall(
        operation=endpoint.operation,
        provider=_provider_of(client),
        request_model=model if isinstance(model, str) else None,
        server_address=host,
        server_port=port,
        api_type=endpoint.api_type,
        stream=stream,
    )
    if endpoint is _FETCH:
        record.response_id = path.rsplit("/", 1)[-1]
    resolver = endpoint.resolver
    record.resolver = lambda rec: resolver(rec, state)
    call = emitter.start_llm_call(record, enforce=True)
    if call is not None:
        call.state = state
    return call


class OpenAIAdapter:
    """Model calls among the OpenAI client's requests: POST chat, responses, embeddings; GET a response."""

    name = "openai"
    marks_context = False

    def start(self, emitter: Emitter, client: Any, options: Any, stream: bool) -> LLMCallSpan | None:
        path = getattr(options, "url", None)
        if not isinstance(path, str):
            return None
        method = str(getattr(options, "method", "")).lower()
        endpoint = _POST_ENDPOINTS.get(path) if method == "post" else _get_endpoint(path) if method == "get" else None
        if endpoint is None:
            return None
        return _start(emitter, client, path, endpoint, getattr(options, "json_data", None), stream)


#: The wrappers the instrumentor installs; ``WRAPPER.emitter`` is the emitter in force.
WRAPPER = RequestWrapper(OpenAIAdapter())
