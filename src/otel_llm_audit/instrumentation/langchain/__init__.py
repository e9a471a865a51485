"""LangChain / LangGraph instrumentor: every run of every runnable, graph, tool, retriever and model.

Entry point ``llm_audit_langchain`` (group ``opentelemetry_instrumentor``). It hooks
``langchain_core.callbacks.BaseCallbackManager.__init__`` so every callback manager LangChain
builds carries our inheritable handler once: chains, LangGraph graphs (which depend on
``langchain-core`` only, so apps that never import ``langchain`` are covered), agents, tools,
retrievers and chat models all report to it. See ``docs/integrations/langchain.md``.

Usage without the distro::

    from otel_llm_audit.instrumentation.langchain import LangChainInstrumentor
    LangChainInstrumentor().instrument()  # max_runs=..., idle_ttl_s=... bound the run map

Provider spans (OpenAI, Anthropic, ...) made inside a run nest under its span through a
parent resolver (:mod:`otel_llm_audit.emitter.parents`); no context is attached in callbacks.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable, Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from otel_llm_audit import _guard
from otel_llm_audit.emitter import parents
from otel_llm_audit.emitter.spans import Emitter

logger = logging.getLogger("otel_llm_audit")

SCOPE = "otel_llm_audit.instrumentation.langchain"
_LANGGRAPH_MODULE = f"{__name__}._langgraph"


class LangChainInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Records LangChain and LangGraph runs as workflow, agent, step, tool, retrieval and LLM spans.

    ``instrument()`` accepts ``tracer_provider``, ``meter_provider``, and the run-map bounds
    ``max_runs`` (default 10,000 runs in flight) and ``idle_ttl_s`` (default 3600 s; ``None``
    disables the idle limit). An evicted run's span ends with ``error.type = abandoned``.
    """

    #: In the ``instruments-any`` extra of pyproject.toml too (a test checks it).
    instruments = ("langchain-core >= 0.3.40",)

    def __init__(self) -> None:
        super().__init__()
        if not hasattr(self, "_handler"):
            self._handler: Any = None
            self._langgraph: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.instruments

    @property
    def handler(self) -> Any:
        """The callback handler in force (``None`` when not instrumented): for diagnostics and tests."""
        return self._handler

    def _instrument(self, **kwargs: Any) -> None:
        # opentelemetry-instrument skips the version check for our distro's instrumentors: make it.
        conflict = self._check_dependency_conflicts()
        if conflict:
            logger.info("otel-llm-audit: not instrumenting langchain: %s", conflict)
            return
        try:
            from otel_llm_audit.instrumentation.langchain._handler import AuditCallbackHandler
            from otel_llm_audit.instrumentation.langchain._runs import DEFAULT_IDLE_TTL_S, DEFAULT_MAX_RUNS
        except ImportError as err:
            logger.info("otel-llm-audit: langchain-core is not importable, not instrumenting it: %s", err)
            return
        emitter = Emitter(SCOPE, kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        handler = AuditCallbackHandler(
            emitter,
            max_runs=int(kwargs.get("max_runs", DEFAULT_MAX_RUNS)),
            idle_ttl_s=kwargs.get("idle_ttl_s", DEFAULT_IDLE_TTL_S),
        )
        try:
            wrap_function_wrapper(
                "langchain_core.callbacks.base", "BaseCallbackManager.__init__", _manager_init_wrapper(handler)
            )
        except Exception:
            logger.warning("otel-llm-audit: could not hook the LangChain callback manager", exc_info=True)
            return
        self._handler = handler
        parents.register(handler.resolve_parent, llm_call_resolver=handler.resolve_llm_parent)
        self._install_vector_stores(emitter)
        self._install_langgraph(emitter)

    def _uninstrument(self, **kwargs: Any) -> None:
        handler = self._handler
        if handler is None:
            return
        self._handler = None
        try:
            from langchain_core.callbacks.base import BaseCallbackManager

            unwrap(BaseCallbackManager, "__init__")
        except Exception:
            logger.debug("otel-llm-audit: could not unhook the LangChain callback manager", exc_info=True)
        parents.unregister(handler.resolve_parent)
        self._uninstall_vector_stores()
        self._uninstall_langgraph()
        handler.close()  # managers built before keep the handler: it is inert from here on

    def _install_vector_stores(self, emitter: Emitter) -> None:
        """Direct vector-store searches (LangChain gives them no callbacks) as retrieval spans."""
        try:
            from otel_llm_audit.instrumentation.langchain import _vectorstores

            _vectorstores.install(emitter)
        except Exception as err:
            _guard.report_internal_error("langchain.vectorstores_install", err)

    def _uninstall_vector_stores(self) -> None:
        try:
            from otel_llm_audit.instrumentation.langchain import _vectorstores

            _vectorstores.uninstall()
        except Exception as err:
            _guard.report_internal_error("langchain.vectorstores_uninstall", err)

    def _install_langgraph(self, emitter: Emitter) -> None:
        """LangGraph internals (checkpointer, branches, interrupts), when langgraph and the module exist."""
        try:
            if importlib.util.find_spec("langgraph") is None or importlib.util.find_spec(_LANGGRAPH_MODULE) is None:
                return
            module = importlib.import_module(_LANGGRAPH_MODULE)
            module.install(emitter)
            self._langgraph = module
        except Exception as err:
            _guard.report_internal_error("langchain.langgraph_install", err)

    def _uninstall_langgraph(self) -> None:
        module, self._langgraph = self._langgraph, None
        if module is None:
            return
        try:
            module.uninstall()
        except Exception as err:
            _guard.report_internal_error("langchain.langgraph_uninstall", err)


def _manager_init_wrapper(handler: Any) -> Callable[..., None]:
    """Give every run callback manager our handler, inheritable, exactly once.

    New lists are assigned rather than appended to: the manager may hold a list the
    application passed in and still uses.
    """

    from langchain_core.callbacks.manager import AsyncCallbackManager, CallbackManager

    run_managers = (CallbackManager, AsyncCallbackManager)

    def wrapper(wrapped: Callable[..., None], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        wrapped(*args, **kwargs)
        try:
            # Only managers that dispatch run callbacks: LangGraph's graph-lifecycle managers
            # (``on_interrupt`` / ``on_resume``) build on BaseCallbackManager too.
            if handler.active and isinstance(instance, run_managers):
                if handler not in instance.handlers:
                    instance.handlers = [*instance.handlers, handler]
                if handler not in instance.inheritable_handlers:
                    instance.inheritable_handlers = [*instance.inheritable_handlers, handler]
        except Exception as err:
            _guard.report_internal_error("langchain.callback_manager", err)

    return wrapper


__all__ = ["LangChainInstrumentor"]
