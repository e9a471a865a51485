"""Anthropic instrumentor: the Messages API, sync and async, streaming, beta, Bedrock and Vertex.

Entry point ``llm_audit_anthropic`` (group ``opentelemetry_instrumentor``), so
``opentelemetry-instrument`` loads it and ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=llm_audit_anthropic``
disables it without touching other vendors' ``anthropic`` instrumentors.

One LLM span per call whichever SDK line is installed: releases before 1.14 trace nothing
themselves; from 1.14 the SDK's own call span stands aside for the calls this package audits
(see :mod:`._wrappers`).

Usage without the distro::

    from otel_llm_audit.instrumentation.anthropic import AnthropicInstrumentor
    AnthropicInstrumentor().instrument()
"""

from __future__ import annotations

import logging
from typing import Any

from wrapt import wrap_function_wrapper

from otel_llm_audit.instrumentation.stainless import RequestWrapper, StainlessInstrumentor

logger = logging.getLogger("otel_llm_audit")

_CALL_SPAN_HOOK = "start_api_call_span"


class AnthropicInstrumentor(StainlessInstrumentor):
    """Records every Anthropic Messages call as an audited GenAI span."""

    library = "anthropic"
    scope = "otel_llm_audit.instrumentation.anthropic"
    #: In the ``instruments-any`` extra of pyproject.toml too (a test checks it).
    instruments = ("anthropic >= 0.50.0",)

    def request_wrapper(self) -> RequestWrapper:
        from otel_llm_audit.instrumentation.anthropic._wrappers import WRAPPER

        return WRAPPER

    def _after_instrument(self, base_client: Any) -> None:
        from otel_llm_audit.instrumentation.anthropic._wrappers import make_call_span_replacement

        self._call_span_hook: Any = None
        original = getattr(base_client, _CALL_SPAN_HOOK, None)
        if original is not None:  # anthropic >= 1.14 traces itself
            setattr(base_client, _CALL_SPAN_HOOK, make_call_span_replacement(original))
            self._call_span_hook = (base_client, original)
        else:  # before 1.14: keep our trace headers out of the Bedrock client's signature
            self._wrap_signing()

    def _wrap_signing(self) -> None:
        from otel_llm_audit.instrumentation.anthropic._wrappers import make_signing_wrapper

        try:
            from anthropic.lib.bedrock import _client as bedrock
        except ImportError:  # no Bedrock support in this release (or its dependencies are missing)
            return
        for class_name, is_async in (("AnthropicBedrock", False), ("AsyncAnthropicBedrock", True)):
            owner = getattr(bedrock, class_name, None)
            if owner is None or "_prepare_request" not in vars(owner):
                continue
            try:
                wrap_function_wrapper(bedrock, f"{class_name}._prepare_request", make_signing_wrapper(is_async))
            except Exception:
                logger.warning("otel-llm-audit: could not wrap anthropic %s signing", class_name, exc_info=True)
                continue
            self._wrapped.append((owner, "_prepare_request"))

    def _after_uninstrument(self) -> None:
        hook = getattr(self, "_call_span_hook", None)
        if hook is not None:
            module, original = hook
            setattr(module, _CALL_SPAN_HOOK, original)
            self._call_span_hook = None
