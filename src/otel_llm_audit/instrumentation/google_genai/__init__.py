"""Google Gen AI instrumentor (``google-genai``): the Gemini API and Gemini on Vertex AI.

Entry point ``llm_audit_google_genai`` (group ``opentelemetry_instrumentor``). It wraps the
SDK's API client (``google.genai._api_client.BaseApiClient``, ``ApiClient`` in 1.0): its
``request``, ``request_streamed``, ``async_request`` and ``async_request_streamed``, which
every ``models.generate_content``, ``generate_content_stream`` and ``embed_content`` call (sync
and ``client.aio``), and the chats built on them, go through once per HTTP call. The methods
are looked up on the class at call time, so clients created before ``instrument()`` are
audited too. ``gen_ai.provider.name`` is ``gcp.vertex_ai`` for a Vertex AI client
(``vertexai=True``), else ``gcp.gemini``.

Usage without the distro::

    from otel_llm_audit.instrumentation.google_genai import GoogleGenAIInstrumentor
    GoogleGenAIInstrumentor().instrument()
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from otel_llm_audit.emitter.spans import Emitter

logger = logging.getLogger("otel_llm_audit")

_instruments = ("google-genai >= 1.0.0",)
_SCOPE = "otel_llm_audit.instrumentation.google_genai"
_METHODS = ("request", "request_streamed", "async_request", "async_request_streamed")


class GoogleGenAIInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Records every Gemini API and Vertex AI model call of ``google-genai`` as an audited GenAI span."""

    def __init__(self) -> None:
        super().__init__()
        if not hasattr(self, "_wrapped_class"):
            self._wrapped_class: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        conflict = self._check_dependency_conflicts()
        if conflict:
            logger.info("otel-llm-audit: not instrumenting google-genai: %s", conflict)
            return
        try:
            from google.genai import _api_client
        except ImportError as err:
            logger.info("otel-llm-audit: google-genai is not importable, not instrumenting it: %s", err)
            return
        from otel_llm_audit.instrumentation.google_genai import _wrappers

        client_class = getattr(_api_client, "BaseApiClient", None) or getattr(_api_client, "ApiClient", None)
        if client_class is None or not all(hasattr(client_class, name) for name in _METHODS):
            logger.warning("otel-llm-audit: google-genai's API client has an unknown shape, not instrumenting it")
            return
        _wrappers.ACTIVE.emitter = Emitter(_SCOPE, kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        factories = (
            _wrappers.make_sync_wrapper,
            _wrappers.make_stream_wrapper,
            _wrappers.make_async_wrapper,
            _wrappers.make_async_stream_wrapper,
        )
        wrapped: list[str] = []
        try:
            for name, factory in zip(_METHODS, factories, strict=True):
                wrap_function_wrapper(client_class, name, factory())
                wrapped.append(name)
        except Exception:
            logger.warning("otel-llm-audit: could not wrap google-genai's API client", exc_info=True)
            for name in wrapped:
                _unwrap(client_class, name)
            _wrappers.ACTIVE.emitter = None
            return
        self._wrapped_class = client_class
        try:  # trace headers on the built request (else through the per-request HTTP options)
            wrap_function_wrapper(client_class, "_build_request", _wrappers.make_build_wrapper())
            _wrappers.ACTIVE.headers_on_build = True
        except Exception:
            logger.debug("otel-llm-audit: google-genai has no _build_request to wrap", exc_info=True)

    def _uninstrument(self, **kwargs: Any) -> None:
        from otel_llm_audit.instrumentation.google_genai import _wrappers

        _wrappers.ACTIVE.emitter = None
        if self._wrapped_class is not None:
            for name in _METHODS:
                _unwrap(self._wrapped_class, name)
            if _wrappers.ACTIVE.headers_on_build:
                _unwrap(self._wrapped_class, "_build_request")
                _wrappers.ACTIVE.headers_on_build = False
            self._wrapped_class = None


def _unwrap(client_class: Any, name: str) -> None:
    try:
        unwrap(client_class, name)
    except Exception:
        logger.debug("otel-llm-audit: could not unwrap google-genai %s", name, exc_info=True)


__all__ = ["GoogleGenAIInstrumentor"]
