"""OpenAI instrumentor: Chat Completions, Responses and Embeddings, sync and async.

Entry point ``llm_audit_openai`` (group ``opentelemetry_instrumentor``), so
``opentelemetry-instrument`` loads it and ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=llm_audit_openai``
disables it without touching other vendors' ``openai`` instrumentors.

Usage without the distro::

    from otel_llm_audit.instrumentation.openai import OpenAIInstrumentor
    OpenAIInstrumentor().instrument()
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

#: Equal to the ``instruments`` extra in pyproject.toml (a test checks it).
_instruments = ("openai >= 1.66.0",)

_SCOPE = "otel_llm_audit.instrumentation.openai"
_TARGETS = (
    ("SyncAPIClient", "request", False),
    ("AsyncAPIClient", "request", True),
)


class OpenAIInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Records every OpenAI model call as an audited GenAI span."""

    def __init__(self) -> None:
        super().__init__()
        if not hasattr(self, "_wrapped"):
            self._wrapped: list[tuple[Any, str]] = []

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        # opentelemetry-instrument loads every instrumentor of this package when any of their
        # libraries is installed, and skips the version check: make it here.
        conflict = self._check_dependency_conflicts()
        if conflict:
            logger.info("otel-llm-audit: not instrumenting openai: %s", conflict)
            return
        try:
            from openai import _base_client
        except ImportError as err:
            logger.info("otel-llm-audit: openai is not importable, not instrumenting it: %s", err)
            return
        from otel_llm_audit.instrumentation.openai._wrappers import (
            make_async_wrapper,
            make_sync_wrapper,
            set_active_emitter,
        )

        set_active_emitter(Emitter(_SCOPE, kwargs.get("tracer_provider"), kwargs.get("meter_provider")))
        self._wrapped = []
        for class_name, method, is_async in _TARGETS:
            owner = getattr(_base_client, class_name, None)
            if owner is None or not hasattr(owner, method):
                logger.info("otel-llm-audit: openai has no %s.%s; that path is not audited", class_name, method)
                continue
            factory = make_async_wrapper if is_async else make_sync_wrapper
            try:
                wrap_function_wrapper(_base_client, f"{class_name}.{method}", factory())
            except Exception:
                logger.warning("otel-llm-audit: could not wrap openai %s.%s", class_name, method, exc_info=True)
                continue
            self._wrapped.append((owner, method))

    def _uninstrument(self, **kwargs: Any) -> None:
        from otel_llm_audit.instrumentation.openai._wrappers import set_active_emitter

        set_active_emitter(None)  # wrappers still bound inside existing clients pass through
        for owner, method in self._wrapped:
            try:
                unwrap(owner, method)
            except Exception:
                logger.debug("otel-llm-audit: could not unwrap openai %s", method, exc_info=True)
        self._wrapped = []
