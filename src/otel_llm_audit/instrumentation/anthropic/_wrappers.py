"""Anthropic on the shared Stainless ``request`` wrapper, and the SDK's own call span.

Every Messages call of the ``anthropic`` SDK (``messages.create`` / ``stream`` / ``parse``, the
beta forms, the tool runner's turns; the Bedrock and Vertex clients too, which subclass the
same base client and rewrite the path inside ``request``) goes through ``client.request``.
This module says which requests are model calls and how their record starts.

From ``anthropic`` 1.14 the SDK opens an OpenTelemetry span of its own per call. There must be
one LLM span per call, and ours carries what the audit needs (identity, masked content,
cost, the audit pipeline's fast path), so for the calls we audit the SDK's span is replaced
by a non-recording one carrying our span's context: the SDK then records nothing and still
sends ``traceparent`` (with our span's id) after it signs the request. Every other call
(token counting, batches) keeps the SDK's own span, and so do the tool runner's
``invoke_agent`` / ``execute_tool`` spans.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from otel_llm_audit import _guard
from otel_llm_audit.emitter.deferred import light_span
from otel_llm_audit.emitter.spans import Emitter, LLMCallSpan
from otel_llm_audit.instrumentation.anthropic import _capture
from otel_llm_audit.instrumentation.stainless import LLM_CALL_KEY, RequestWrapper, server_of
from otel_llm_audit.records import LLMCall

_MESSAGES_PATHS = frozenset({"/v1/messages", "/v1/messages?beta=true"})

_PROVIDER_BY_TYPE: dict[type, str] = {}


def provider_of(client: Any) -> str:
    """``aws.bedrock``, ``gcp.vertex_ai`` or ``anthropic``, decided once per client class."""
    cls = type(client)
    provider = _PROVIDER_BY_TYPE.get(cls)
    if provider is None:
        declared = getattr(cls, "_gen_ai_provider_name", None)  # anthropic >= 1.14
        if isinstance(declared, str) and declared:
            provider = declared
        else:
            modules = " ".join(k.__module__ for k in cls.__mro__)
            provider = (
                "aws.bedrock" if ".bedrock" in modules else "gcp.vertex_ai" if ".vertex" in modules else "anthropic"
            )
        _PROVIDER_BY_TYPE[cls] = provider
    return provider


class AnthropicAdapter:
    """Model calls among the Anthropic client's requests: ``POST /v1/messages`` (GA and beta)."""

    name = "anthropic"
    marks_context = True

    def start(self, emitter: Emitter, client: Any, options: Any, stream: bool) -> LLMCallSpan | None:
        if getattr(options, "url", None) not in _MESSAGES_PATHS:
            return None
        if str(getattr(options, "method", "")).lower() != "post":
            return None
        body = _capture.snapshot_body(getattr(options, "json_data", None), getattr(options, "extra_json", None))
        state = _capture.AnthropicCallState(body)
        host, port = server_of(client)
        model = body.get("model")
        record = LLMCall(
            operation="chat",
            provider=provider_of(client),
            request_model=model if isinstance(model, str) else None,
            server_address=host,
            server_port=port,
            stream=stream or body.get("stream") is True,
        )
        record.resolver = lambda rec: _capture.resolve_messages(rec, state)
        call = emitter.start_llm_call(record, enforce=True)
        if call is not None:
            call.state = state
            _observe_post_parser(options, state)
        return call


def _observe_post_parser(options: Any, state: _capture.AnthropicCallState) -> None:
    """``messages.parse``: keep the ``Message`` the SDK is about to parse into the caller's type.

    The SDK's ``post_parser`` runs inside ``request``. When the model's JSON does not fit the
    ``output_format`` (a reply cut by ``max_tokens``, say) it raises, and the call would be
    recorded with the error but without what the model said or the tokens it used. The parser
    stays the SDK's own: its result or its exception reaches the caller untouched.
    """
    parser = getattr(options, "post_parser", None)
    if not callable(parser):  # NotGiven for every call but parse
        return

    def post_parser(response: Any) -> Any:
        state.response = response
        return parser(response)

    options.post_parser = post_parser


#: The wrappers the instrumentor installs; ``WRAPPER.emitter`` is the emitter in force.
WRAPPER = RequestWrapper(AnthropicAdapter())


def make_call_span_replacement(original: Callable[..., Any]) -> Callable[..., Any]:
    """``start_api_call_span`` that stands aside for the calls we audit (anthropic >= 1.14)."""

    def start_api_call_span(*args: Any, **kwargs: Any) -> Any:
        if otel_context.get_value(LLM_CALL_KEY):
            ours = trace.get_current_span().get_span_context()
            if ours.is_valid:
                return light_span(ours)  # the audit sampler knows it as ours
        return original(*args, **kwargs)

    start_api_call_span.__wrapped__ = original  # type: ignore[attr-defined]
    return start_api_call_span


# Request signing (Bedrock) ----------------------------------------------------------------
#
# The Bedrock client signs each request (SigV4) in ``_prepare_request``. Older botocore
# releases sign every header present, ``traceparent`` included; an HTTP instrumentation that
# rewrites ``traceparent`` after signing would then break the signature. From 1.14 the SDK
# takes its own trace headers off before signing and puts them back after; for older
# releases this wrapper does the same with the headers we put on the request.

TRACE_HEADERS = ("traceparent", "tracestate", "baggage")


def _take_trace_headers(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    request = args[0] if args else kwargs.get("request")
    held: dict[str, str] = {}
    try:
        headers = getattr(request, "headers", None)
        if headers is not None:
            for name in TRACE_HEADERS:
                value = headers.get(name)
                if value is not None:
                    held[name] = value
                    del headers[name]
    except Exception as err:
        _guard.report_internal_error("anthropic.signing", err)
    return request, held


def _put_back(request: Any, held: dict[str, str]) -> None:
    try:
        for name, value in held.items():
            request.headers[name] = value
    except Exception as err:
        _guard.report_internal_error("anthropic.signing", err)


def make_signing_wrapper(is_async: bool) -> Callable[..., Any]:
    """A wrapt wrapper for ``_prepare_request``: sign without the trace headers of our calls."""
    if is_async:

        async def async_wrapper(
            wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            if not otel_context.get_value(LLM_CALL_KEY):
                return await wrapped(*args, **kwargs)
            request, held = _take_trace_headers(args, kwargs)
            try:
                return await wrapped(*args, **kwargs)
            finally:
                _put_back(request, held)

        return async_wrapper

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not otel_context.get_value(LLM_CALL_KEY):
            return wrapped(*args, **kwargs)
        request, held = _take_trace_headers(args, kwargs)
        try:
            return wrapped(*args, **kwargs)
        finally:
            _put_back(request, held)

    return wrapper
