"""The SDK's own trace processors: replaced by ours by default, restored exactly on uninstrument.

The SDK's default processor batches every trace (prompts, tool arguments, answers) to
OpenAI's trace ingest endpoint. An audit trail that also ships the prompts to a third party
unasked is a leak, so instrumenting *replaces* the processors with ours unless the user opts
in to keeping them (constructor argument, ``instrument(keep_sdk_exporter=True)``, or
:data:`KEEP_ENV`).

The SDK has no public getter for its processors; ``DefaultTraceProvider`` keeps them in
``_multi_processor._processors`` (0.2 to 0.24). When they cannot be read (a custom
``TraceProvider``), replacing still happens, and uninstrument cannot put them back: it
says so in the log.
"""

from __future__ import annotations

import logging
import os
from typing import Any

logger = logging.getLogger("otel_llm_audit")

#: Keep the SDK's processors (and so its export to OpenAI) beside ours: ``true`` / ``false`` (default).
KEEP_ENV = "OTEL_LLM_AUDIT_OPENAI_AGENTS_KEEP_SDK_EXPORTER"


def keep_from_env() -> bool:
    """:data:`KEEP_ENV` as a boolean; anything unrecognised keeps the private default (replace)."""
    raw = os.environ.get(KEEP_ENV, "").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw not in ("", "0", "false", "no", "off"):
        logger.warning("otel-llm-audit: %s=%r is not true or false; the SDK's processors are replaced", KEEP_ENV, raw)
    return False


def read_processors(provider: Any) -> tuple[Any, ...] | None:
    """The provider's processors in order, or ``None`` when this provider does not show them."""
    multi = getattr(provider, "_multi_processor", None)
    processors = getattr(multi, "_processors", None)
    return tuple(processors) if isinstance(processors, (tuple, list)) else None


class ProcessorSwap:
    """Our processor in the SDK's trace provider, and the way back."""

    def __init__(self, provider: Any, ours: Any, keep: bool) -> None:
        self.provider = provider
        self.ours = ours
        self.keep = keep
        self.previous: tuple[Any, ...] | None = None

    def install(self) -> None:
        self.previous = read_processors(self.provider)
        if self.keep and self.previous is None:
            self.provider.register_processor(self.ours)
            return
        kept = list(self.previous or ()) if self.keep else []
        self.provider.set_processors([*kept, self.ours])

    def restore(self) -> None:
        """Put back the processors from before, plus any the application added since (not ours)."""
        current = read_processors(self.provider)
        if self.previous is None:
            if current is None:
                logger.warning(
                    "otel-llm-audit: this Agents SDK trace provider does not show its processors; "
                    "ours stays registered but records nothing"
                )
                return
            self.provider.set_processors([p for p in current if p is not self.ours])
            if not self.keep:
                logger.warning("otel-llm-audit: the Agents SDK trace processors from before could not be restored")
            return
        added = [p for p in current or () if p is not self.ours and not any(p is q for q in self.previous)]
        self.provider.set_processors([*self.previous, *added])
