"""The ``opentelemetry-instrument`` integration: a distro and a configurator.

With the package installed, ``opentelemetry-instrument python app.py`` loads
:class:`LlmAuditConfigurator` (entry point group ``opentelemetry_configurator``, name
``llm_audit``), which builds the same pipeline as :func:`otel_llm_audit.configure`, honouring
the standard ``OTEL_*`` variables. The instrumentors themselves are then loaded by
``opentelemetry-instrument`` from their entry points (``llm_audit_openai``, ``httpx``, ...).

If another configurator is installed too (``opentelemetry-distro`` brings one), choose ours
with ``OTEL_PYTHON_CONFIGURATOR=llm_audit``: two configurators would build two pipelines.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _BaseConfigurator

logger = logging.getLogger("otel_llm_audit")


class LlmAuditDistro(BaseDistro):  # type: ignore[misc]
    """Sets no defaults of its own: the configurator reads the standard variables as they are."""

    def _configure(self, **kwargs: Any) -> None:
        return None


class LlmAuditConfigurator(_BaseConfigurator):
    """Builds the audit pipeline when ``opentelemetry-instrument`` starts the application."""

    def _configure(self, **kwargs: Any) -> None:
        from otel_llm_audit.bootstrap import configure

        # The providers shut down (and so flush our queue) at interpreter exit by themselves.
        configure(instrument=False)
        logger.debug("otel-llm-audit: pipeline configured by opentelemetry-instrument")
