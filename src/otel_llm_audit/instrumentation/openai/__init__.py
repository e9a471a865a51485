"""OpenAI instrumentor: Chat Completions, Responses and Embeddings, sync and async.

Entry point ``llm_audit_openai`` (group ``opentelemetry_instrumentor``), so
``opentelemetry-instrument`` loads it and ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=llm_audit_openai``
disables it without touching other vendors' ``openai`` instrumentors.

Usage without the distro::

    from otel_llm_audit.instrumentation.openai import OpenAIInstrumentor
    OpenAIInstrumentor().instrument()
"""

from __future__ import annotations

from otel_llm_audit.instrumentation.stainless import RequestWrapper, StainlessInstrumentor


class OpenAIInstrumentor(StainlessInstrumentor):
    """Records every OpenAI model call as an audited GenAI span."""

    library = "openai"
    scope = "otel_llm_audit.instrumentation.openai"
    #: In the ``instruments-any`` extra of pyproject.toml too (a test checks it).
    instruments = ("openai >= 1.66.0",)

    def request_wrapper(self) -> RequestWrapper:
        from otel_llm_audit.instrumentation.openai._wrappers import WRAPPER

        return WRAPPER


__all__ = ["OpenAIInstrumentor"]
