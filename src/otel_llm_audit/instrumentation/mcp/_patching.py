"""Installs and removes wrappers: class methods now, module attributes when their module loads.

Every patch is remembered so ``uninstrument`` can undo exactly what ``instrument`` did. A
target the installed SDK does not have is skipped (and said once in the log): releases
move things, and a missing hook costs one feature, never the application.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable
from typing import Any

from opentelemetry.instrumentation.utils import unwrap
from wrapt import FunctionWrapper, register_post_import_hook, wrap_function_wrapper

logger = logging.getLogger("otel_llm_audit")

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


class Patcher:
    """The patches of one ``instrument()``; :meth:`undo` removes them all."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str]] = []
        #: Bumped by :meth:`undo`: an import hook from an earlier ``instrument()`` then does nothing.
        self._generation = 0

    def method(self, module_name: str, path: str, wrapper: Wrapper) -> bool:
        """Wrap ``Class.method`` of ``module_name`` (imported now). ``False`` when it is not there."""
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return False
        owner: Any = module
        *parents, name = path.split(".")
        for part in parents:
            owner = getattr(owner, part, None)
            if owner is None:
                return False
        if not hasattr(owner, name):
            return False
        try:
            wrap_function_wrapper(module, path, wrapper)
        except Exception:
            logger.warning("otel-llm-audit: could not wrap mcp %s.%s", module_name, path, exc_info=True)
            return False
        self._undo.append((owner, name))
        return True

    def attribute(self, module_name: str, name: str, original: Any, wrapper: Wrapper) -> None:
        """Wrap the function ``module_name.name`` if it is ``original``, now or when the module is imported.

        For functions other modules import by name (``from mcp.client.stdio import stdio_client``):
        each module that holds a reference gets its own patch.
        """
        generation = self._generation
        target: Callable[..., Any] = original

        def patch(module: Any) -> None:
            if generation != self._generation:
                return
            if getattr(module, name, None) is not target:
                return
            setattr(module, name, FunctionWrapper(target, wrapper))
            self._undo.append((module, name))

        if module_name in sys.modules:
            patch(sys.modules[module_name])
        elif _importable(module_name):
            register_post_import_hook(patch, module_name)

    def undo(self) -> None:
        """Remove every patch, newest first."""
        self._generation += 1
        while self._undo:
            owner, name = self._undo.pop()
            try:
                unwrap(owner, name)
            except Exception:
                logger.debug("otel-llm-audit: could not unwrap mcp %r.%s", owner, name, exc_info=True)


def _importable(module_name: str) -> bool:
    """Whether the installed SDK has ``module_name`` (without importing it when its package is loaded)."""
    try:
        return importlib.util.find_spec(module_name) is not None
    except Exception:  # a parent that fails to import (mcp 2's stub for the removed mcp.server.fastmcp)
        return False
