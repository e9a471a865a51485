"""How a resume value becomes a review: its subject (a label) and the action the human took.

LangGraph does not say what a resume value *means*: ``Command(resume=...)`` carries whatever
the application's review screen sent. These rules read the shapes applications commonly use
(and LangChain's own human-in-the-loop middleware) and fall back to a comparison with what was
proposed. They are documented in ``docs/integrations/langgraph.md``; applications with other
shapes record their reviews themselves with ``otel_llm_audit.record_human_review``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

APPROVED = "approved"
REJECTED = "rejected"
EDITED = "edited"
ESCALATED = "escalated"

#: Words a reviewer's answer may use, by the action they mean (compared lower-cased).
_WORDS: Mapping[str, str] = {
    **dict.fromkeys(("approve", "approved", "accept", "accepted", "allow", "yes", "y", "ok", "continue"), APPROVED),
    **dict.fromkeys(("reject", "rejected", "deny", "denied", "decline", "declined", "no", "n", "ignore"), REJECTED),
    **dict.fromkeys(("edit", "edited", "modify", "modified", "response", "respond"), EDITED),
    **dict.fromkeys(("escalate", "escalated", "escalation"), ESCALATED),
}
#: Keys of a dict answer that name the action, in order of preference.
_ACTION_KEYS = ("action", "type", "decision")
#: Keys of a dict interrupt value that hold a short label for it, in order of preference.
_LABEL_KEYS = ("subject", "type", "kind", "action", "name")
_MAX_LABEL = 80
#: Keys of a dict answer that hold the reviewer's stated reason.
_REASON_KEYS = ("reason", "comment", "message", "feedback")


def review_action(response: Any, proposal: Any) -> str:
    """The action a resume value stands for.

    1. ``True`` / ``False``: approved / rejected.
    2. A word (a string, or a dict's ``action``, ``type`` or ``decision`` value): approve,
       accept, yes, ok -> approved; reject, deny, no, ignore -> rejected; edit, response ->
       edited; escalate -> escalated.
    3. A list of decisions (LangChain's HITL middleware: ``{"decisions": [...]}``, or a list of
       ``{"type": ...}`` answers): rejected if any was rejected, else escalated if any was,
       else edited if any was edited, else approved.
    4. Anything else: approved when it equals what was proposed (the interrupt value), edited
       when it differs (the human supplied or changed the content).
    """
    if isinstance(response, bool):
        return APPROVED if response else REJECTED
    word = _word_action(response)
    if word is not None:
        return word
    decisions = response.get("decisions") if isinstance(response, Mapping) else response
    if isinstance(decisions, (list, tuple)) and decisions:
        actions = [_word_action(d) for d in decisions]
        if all(a is not None for a in actions):
            for action in (REJECTED, ESCALATED, EDITED):
                if action in actions:
                    return action
            return APPROVED
    return APPROVED if _same(response, proposal) else EDITED


def review_subject(proposal: Any, node: str | None) -> str:
    """A short label for what was put to the reviewer (never the content itself).

    A dict's ``subject``, ``type``, ``kind``, ``action`` or ``name`` string; the tool names of
    LangChain's HITL requests (``tool_call send_email``); else ``interrupt <node>``.
    """
    if isinstance(proposal, Mapping):
        for key in _LABEL_KEYS:
            value = proposal.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:_MAX_LABEL]
        requests = proposal.get("action_requests")
        if isinstance(requests, (list, tuple)):
            found = [r.get("name") or r.get("action") for r in requests if isinstance(r, Mapping)]
            names = [n for n in found if isinstance(n, str)]
            if names:
                return ("tool_call " + ", ".join(names))[:_MAX_LABEL]
    return f"interrupt {node}" if node else "interrupt"


def review_reason(response: Any) -> str | None:
    """The reviewer's stated reason: a dict answer's ``reason``, ``comment``, ``message`` or ``feedback``."""
    if isinstance(response, Mapping):
        for key in _REASON_KEYS:
            value = response.get(key)
            if isinstance(value, str) and value.strip():
                return value
    return None


def _word_action(value: Any) -> str | None:
    if isinstance(value, str):
        return _WORDS.get(value.strip().lower())
    if isinstance(value, Mapping):
        for key in _ACTION_KEYS:
            word = value.get(key)
            if isinstance(word, str):
                found = _WORDS.get(word.strip().lower())
                if found is not None:
                    return found
    return None


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # an answer object whose == raises is not the proposal
        return False
