"""Tool approvals, which the SDK's tracing does not report: small wrappers on its public ``RunState``.

* ``NextStepInterruption`` is built when a run stops for approvals (openai-agents 0.8+,
  ``agents.run_internal.run_steps``): the processor records an ``llm_audit.interrupt`` per
  pending call on the paused agent's span, and the pause in the ledger.
* ``RunState.approve`` / ``RunState.reject``: the review, waiting for the resumed run
  (``reject``'s ``rejection_message`` is the reason).
* ``RunState.to_json`` (so ``to_string`` too) adds the trace's pauses under the top-level key
  ``otel_llm_audit``; ``RunState.from_json`` / ``from_string`` read that key back and strip it
  before the SDK sees the state, so a review in another process links to the pause.

Each wrapper calls the SDK first (its results and exceptions pass through untouched) and
reports, never raises, its own failures. Versions without these names (before 0.8) get no
approval events: there are no approvals there.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from typing import Any

from wrapt import wrap_function_wrapper

from otel_llm_audit import _guard
from otel_llm_audit.instrumentation.openai_agents._ledger import ApprovalLedger, Review
from otel_llm_audit.instrumentation.readers import as_str, get

logger = logging.getLogger("otel_llm_audit")

#: The key of our data in a serialized ``RunState``.
STATE_KEY = "otel_llm_audit"

Wrapped = Callable[..., Any]
Args = tuple[Any, ...]
Kwargs = dict[str, Any]
Wrapper = Callable[[Wrapped, Any, Args, Kwargs], Any]


class ApprovalHooks:
    """Installs the wrappers and restores exactly the originals on :meth:`uninstall`."""

    def __init__(self, on_interruption: Callable[[Any], None], ledger: ApprovalLedger) -> None:
        self._on_interruption = on_interruption
        self._ledger = ledger
        self._patched: list[tuple[type, str, Any]] = []

    def install(self) -> bool:
        """Wrap what this SDK version has; ``True`` when approval pauses are seen (0.8+)."""
        targets: list[tuple[str, str, str, Wrapper]] = [
            ("agents.run_internal.run_steps", "NextStepInterruption", "__init__", self._interruption),
            ("agents.run_state", "RunState", "approve", self._review("approved")),
            ("agents.run_state", "RunState", "reject", self._review("rejected")),
            ("agents.run_state", "RunState", "to_json", self._to_json),
            ("agents.run_state", "RunState", "from_json", self._from_json),
            ("agents.run_state", "RunState", "from_string", self._from_string),
        ]
        for module_name, class_name, attribute, wrapper in targets:
            try:
                owner = getattr(importlib.import_module(module_name), class_name)
            except (ImportError, AttributeError):
                logger.debug("otel-llm-audit: no %s.%s: tool approvals are not recorded", module_name, class_name)
                continue
            original = owner.__dict__.get(attribute)
            if original is None:
                continue
            try:
                wrap_function_wrapper(owner, attribute, wrapper)
            except Exception:
                logger.warning("otel-llm-audit: could not wrap %s.%s", class_name, attribute, exc_info=True)
                continue
            self._patched.append((owner, attribute, original))
        return any(attribute == "__init__" for _, attribute, _ in self._patched)

    def uninstall(self) -> None:
        for owner, attribute, original in reversed(self._patched):
            try:
                setattr(owner, attribute, original)
            except Exception:
                logger.debug("otel-llm-audit: could not restore %s.%s", owner, attribute, exc_info=True)
        self._patched = []

    # -- wrappers --------------------------------------------------------------------------

    def _interruption(self, wrapped: Wrapped, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        result = wrapped(*args, **kwargs)
        try:
            self._on_interruption(list(getattr(instance, "interruptions", None) or ()))
        except Exception as err:  # the run's own result reaches the caller whatever happens here
            _guard.report_internal_error("openai_agents.interruption", err)
        return result

    def _review(self, action: str) -> Wrapper:
        def wrapper(wrapped: Wrapped, instance: Any, args: Args, kwargs: Kwargs) -> Any:
            result = wrapped(*args, **kwargs)
            try:
                self._record_review(action, instance, args, kwargs)
            except Exception as err:
                _guard.report_internal_error("openai_agents.review", err)
            return result

        return wrapper

    def _record_review(self, action: str, state: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        item = args[0] if args else kwargs.get("approval_item")
        trace_id = as_str(get(get(state, "_trace_state"), "trace_id"))
        if item is None or trace_id is None:
            return
        raw = get(item, "raw_item")
        call_id = as_str(get(item, "call_id")) or as_str(get(raw, "call_id")) or as_str(get(raw, "id"))
        tool = as_str(get(item, "tool_name")) or as_str(get(raw, "name")) or "tool"
        always = bool(args[1] if len(args) > 1 else kwargs.get("always_approve", kwargs.get("always_reject", False)))
        review = Review(
            call_id=call_id,
            tool=tool,
            action=action,
            reason=as_str(kwargs.get("rejection_message")),
            response={f"always_{'approve' if action == 'approved' else 'reject'}": True} if always else None,
            pause=self._ledger.pause(trace_id, call_id),
        )
        self._ledger.add_review(trace_id, review)

    def _to_json(self, wrapped: Wrapped, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        result = wrapped(*args, **kwargs)
        try:
            trace_id = as_str(get(get(instance, "_trace_state"), "trace_id"))
            extra = self._ledger.export(trace_id) if trace_id else None
            if extra is not None and isinstance(result, dict):
                result[STATE_KEY] = extra  # a fresh dict the SDK built for this call
        except Exception as err:
            _guard.report_internal_error("openai_agents.state_to_json", err)
        return result

    def _from_json(self, wrapped: Wrapped, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        try:
            args, kwargs = self._strip(args, kwargs, "state_json", _strip_dict)
        except Exception as err:
            _guard.report_internal_error("openai_agents.state_from_json", err)
        return wrapped(*args, **kwargs)

    def _from_string(self, wrapped: Wrapped, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        try:
            args, kwargs = self._strip(args, kwargs, "state_string", _strip_string)
        except Exception as err:
            _guard.report_internal_error("openai_agents.state_from_string", err)
        return wrapped(*args, **kwargs)

    def _strip(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str,
        strip: Callable[[Any], tuple[Any, Any]],
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Load our key from the state argument (second positional or keyword ``name``) and remove it."""
        if len(args) > 1:
            ours, cleaned = strip(args[1])
            if ours is not None:
                self._ledger.load(ours)
                return (args[0], cleaned, *args[2:]), kwargs
        elif name in kwargs:
            ours, cleaned = strip(kwargs[name])
            if ours is not None:
                self._ledger.load(ours)
                return args, {**kwargs, name: cleaned}
        return args, kwargs


def _strip_dict(state: Any) -> tuple[Any, Any]:
    if isinstance(state, dict) and STATE_KEY in state:
        return state[STATE_KEY], {k: v for k, v in state.items() if k != STATE_KEY}
    return None, state


def _strip_string(state: Any) -> tuple[Any, Any]:
    if not isinstance(state, str) or f'"{STATE_KEY}"' not in state:
        return None, state
    data = json.loads(state)
    ours, cleaned = _strip_dict(data)
    return (ours, json.dumps(cleaned)) if ours is not None else (None, state)
