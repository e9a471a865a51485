"""AWS Bedrock Runtime instrumentor (botocore): Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream.

Entry point ``llm_audit_bedrock`` (group ``opentelemetry_instrumentor``). It wraps botocore's
``BaseClient._make_api_call``, which every AWS call goes through; calls that are not one of
the four Bedrock Runtime model operations pass straight through after one dictionary lookup.

Usage without the distro::

    from otel_llm_audit.instrumentation.bedrock import BedrockInstrumentor
    BedrockInstrumentor().instrument()
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

_instruments = ("botocore >= 1.31.57",)
_SCOPE = "otel_llm_audit.instrumentation.bedrock"


class BedrockInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Records every Bedrock Runtime model call as an audited GenAI span."""

    def __init__(self) -> None:
        super().__init__()
        if not hasattr(self, "_wrapped_client"):
            self._wrapped_client: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        conflict = self._check_dependency_conflicts()
        if conflict:
            logger.info("otel-llm-audit: not instrumenting botocore: %s", conflict)
            return
        try:
            from botocore import client as botocore_client
        except ImportError as err:
            logger.info("otel-llm-audit: botocore is not importable, not instrumenting it: %s", err)
            return
        from otel_llm_audit.instrumentation.bedrock._wrappers import ACTIVE, make_wrapper

        ACTIVE.emitter = Emitter(_SCOPE, kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        try:
            wrap_function_wrapper(botocore_client, "BaseClient._make_api_call", make_wrapper())
        except Exception:
            logger.warning("otel-llm-audit: could not wrap botocore BaseClient._make_api_call", exc_info=True)
            return
        self._wrapped_client = botocore_client.BaseClient

    def _uninstrument(self, **kwargs: Any) -> None:
        from otel_llm_audit.instrumentation.bedrock._wrappers import ACTIVE

        ACTIVE.emitter = None
        if self._wrapped_client is not None:
            try:
                unwrap(self._wrapped_client, "_make_api_call")
            except Exception:
                logger.debug("otel-llm-audit: could not unwrap botocore", exc_info=True)
            self._wrapped_client = None
