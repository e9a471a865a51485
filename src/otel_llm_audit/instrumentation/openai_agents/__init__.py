"""OpenAI Agents SDK instrumentor: the SDK's runs, agents, tools, handoffs and guardrails as an audit trail.

Entry point ``llm_audit_openai_agents`` (group ``opentelemetry_instrumentor``). It installs
a tracing processor in the SDK (``agents.tracing``) that maps the SDK's trace to an
``invoke_workflow`` span, agents to ``invoke_agent`` spans, function tools to
``execute_tool`` spans, handoffs and agents used as tools to ``llm_audit.delegation``
events, guardrails to ``llm_audit.policy`` events, the model's choices to
``llm_audit.decision`` events and tool approvals to ``llm_audit.interrupt`` /
``llm_audit.human_review`` events. The LLM spans come from
:class:`~otel_llm_audit.instrumentation.openai.OpenAIInstrumentor` (instrument both); without
it, they are built from the SDK's own model-call data.

By default the SDK's own processors are **replaced**, so prompts are not also sent to
OpenAI's trace endpoint; ``OpenAIAgentsInstrumentor(keep_sdk_exporter=True)`` or
``OTEL_LLM_AUDIT_OPENAI_AGENTS_KEEP_SDK_EXPORTER=true`` keeps them. ``uninstrument()`` puts
back exactly the processors that were there before. See docs/integrations/openai-agents.md.

Usage without the distro::

    from otel_llm_audit.instrumentation.openai import OpenAIInstrumentor
    from otel_llm_audit.instrumentation.openai_agents import OpenAIAgentsInstrumentor
    OpenAIInstrumentor().instrument()
    OpenAIAgentsInstrumentor().instrument()
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from otel_llm_audit.emitter import parents

logger = logging.getLogger("otel_llm_audit")


class OpenAIAgentsInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Records every OpenAI Agents SDK run as audited workflow, agent and tool spans."""

    scope = "otel_llm_audit.instrumentation.openai_agents"
    #: In the ``instruments-any`` extra of pyproject.toml too (a test checks it).
    instruments = ("openai-agents >= 0.2.0",)

    def __init__(self, keep_sdk_exporter: bool | None = None) -> None:
        """``keep_sdk_exporter``: keep the SDK's own trace processors beside ours (default: replace them).

        The instrumentor is a singleton (as every ``BaseInstrumentor``): ``None`` leaves an
        earlier choice in place; unset everywhere, the environment variable decides.
        """
        super().__init__()
        if keep_sdk_exporter is not None or not hasattr(self, "_keep_sdk_exporter"):
            self._keep_sdk_exporter: bool | None = keep_sdk_exporter
        if not hasattr(self, "_installed"):
            self._installed: tuple[Any, Any, Any, Any] | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.instruments

    def _instrument(self, **kwargs: Any) -> None:
        conflict = self._check_dependency_conflicts()
        if conflict:
            logger.info("otel-llm-audit: not instrumenting openai-agents: %s", conflict)
            return
        try:
            tracing = importlib.import_module("agents.tracing")
        except ImportError as err:
            logger.info("otel-llm-audit: openai-agents is not importable, not instrumenting it: %s", err)
            return
        from otel_llm_audit.emitter.spans import Emitter
        from otel_llm_audit.instrumentation.openai_agents._hooks import ApprovalHooks
        from otel_llm_audit.instrumentation.openai_agents._ledger import ApprovalLedger
        from otel_llm_audit.instrumentation.openai_agents._processor import AuditTracingProcessor
        from otel_llm_audit.instrumentation.openai_agents._sdk import ProcessorSwap, keep_from_env

        keep = kwargs.get("keep_sdk_exporter", self._keep_sdk_exporter)
        if keep is None:
            keep = keep_from_env()
        ledger = ApprovalLedger()
        emitter = Emitter(self.scope, kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        processor = AuditTracingProcessor(emitter, ledger)
        swap = ProcessorSwap(tracing.get_trace_provider(), processor, bool(keep))
        swap.install()
        hooks = ApprovalHooks(processor.on_interruption, ledger)
        processor.approvals = hooks.install()
        # The LLM-call variant is consulted for every LLM span, even when another framework's step
        # is chosen as the parent: that is how a model call the OpenAI instrumentor records is
        # known (no second span). Other spans of ours (a tool's MCP call) mark nothing.
        resolver = processor.resolve  # this very object is unregistered later
        parents.register(resolver, llm_call_resolver=processor.resolve_llm)
        self._installed = (processor, swap, hooks, resolver)

    def _uninstrument(self, **kwargs: Any) -> None:
        installed, self._installed = self._installed, None
        if installed is None:
            return
        processor, swap, hooks, resolver = installed
        parents.unregister(resolver)
        hooks.uninstall()
        try:
            swap.restore()
        except Exception:
            logger.warning("otel-llm-audit: could not restore the Agents SDK trace processors", exc_info=True)
        processor.close()

    @property
    def processor(self) -> Any:
        """The tracing processor in force (``None`` when not instrumented)."""
        return self._installed[0] if self._installed is not None else None


__all__ = ["OpenAIAgentsInstrumentor"]
