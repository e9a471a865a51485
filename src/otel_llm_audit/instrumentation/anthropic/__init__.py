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
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from otel_llm_audit.emitter.spans import Emitter

logger = logging.getLogger("otel_llm_audit")

_instruments = ("anthropic >= 0.50.0",)

_SCOPE = "otel_llm_audit.instrumentation.anthropic"
_TARGETS = (
    ("SyncAPIClient", "request", False),
    ("AsyncAPIClient", "request", True),
)
_CALL_SPAN_HOOK = "start_api_call_span"


class AnthropicInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Records every Anthropic Messages call as an audited GenAI span."""

    def __init__(self) -> None:
        super().__init__()
        if not hasattr(self, "_wrapped"):
            self._wrapped: list[tuple[Any, str]] = []
            self._call_span_hook: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        # opentelemetry-instrument loads every instrumentor of this package when any of their
        # libraries is installed, and skips the version check: make it here.
        conflict = self._check_dependency_conflicts()
        if conflict:
            logger.info("otel-llm-audit: not instrumenting anthropic: %s", conflict)
            return
        try:
            from anthropic import _base_client
        except ImportError as err:
            logger.info("otel-llm-audit: anthropic is not importable, not instrumenting it: %s", err)
            return
        from otel_llm_audit.instrumentation.anthropic._wrappers import (
            WRAPPER,
            make_async_wrapper,
            make_call_span_replacement,
            make_sync_wrapper,
        )

        WRAPPER.emitter = Emitter(_SCOPE, kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        self._wrapped = []
        for class_name, method, is_async in _TARGETS:
            owner = getattr(_base_client, class_name, None)
            if owner is None or not hasattr(owner, method):
                logger.info("otel-llm-audit: anthropic has no %s.%s; that path is not audited", class_name, method)
                continue
            factory = make_async_wrapper if is_async else make_sync_wrapper
            try:
                wrap_function_wrapper(_base_client, f"{class_name}.{method}", factory())
            except Exception:
                logger.warning("otel-llm-audit: could not wrap anthropic %s.%s", class_name, method, exc_info=True)
                continue
            self._wrapped.append((owner, method))
        original = getattr(_base_client, _CALL_SPAN_HOOK, None)
        if original is not None:  # anthropic >= 1.14 traces itself
            setattr(_base_client, _CALL_SPAN_HOOK, make_call_span_replacement(original))
            self._call_span_hook = (_base_client, original)
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

    def _uninstrument(self, **kwargs: Any) -> None:
        from otel_llm_audit.instrumentation.anthropic._wrappers import WRAPPER

        WRAPPER.emitter = None  # wrappers still bound inside existing clients pass through
        for owner, method in self._wrapped:
            try:
                unwrap(owner, method)
            except Exception:
                logger.debug("otel-llm-audit: could not unwrap anthropic %s", method, exc_info=True)
        self._wrapped = []
        if self._call_span_hook is not None:
            module, original = self._call_span_hook
            setattr(module, _CALL_SPAN_HOOK, original)
            self._call_span_hook = None
