"""What Gemini and Vertex AI say about safety, as policy events (never the content itself).

Google reports safety in three places, and each becomes an ``llm_audit.policy`` event
(category ``content_filter``, source the provider, ``gcp.gemini`` or ``gcp.vertex_ai``):

* ``promptFeedback.blockReason`` (``SAFETY``, ``PROHIBITED_CONTENT``, ``BLOCKLIST``, ``OTHER``,
  ...): the prompt was refused before any model output; action ``blocked``, name
  ``prompt_feedback``. The call has no candidates, so the span is also an error span
  (``error.type`` ``content_filter``; the wrapper sets it on the caller's thread).
* A candidate's ``finishReason`` that is a filter (``SAFETY``, ``RECITATION``, ``BLOCKLIST``,
  ``PROHIBITED_CONTENT``, ``SPII``, ``IMAGE_SAFETY``, ...): the answer was withheld or cut;
  action ``blocked``, name ``finish_reason``.
* ``safetyRatings`` (of the prompt or of a candidate) rated ``MEDIUM`` or ``HIGH`` (probability
  or, on Vertex, severity) or marked ``blocked``, when no event above covers them: action
  ``flagged`` (``blocked`` if a rating says so), name ``safety_ratings``.

The details name the scope (``prompt`` or ``completion``), the candidate index, the reason, and
per category the probability, severity, scores and ``blocked`` flag Google sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_llm_audit.instrumentation.readers import as_float, as_str, get
from otel_llm_audit.records import LLMCall, PolicyEvent

#: Finish reasons that mean a filter withheld or cut the answer.
FILTER_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)
_RANK = {"NEGLIGIBLE": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3}
_CATEGORY = "content_filter"


def _rank(level: Any) -> int:
    """0..3 for Google's levels (``HARM_SEVERITY_`` prefix allowed), -1 for none or unknown."""
    if not isinstance(level, str):
        return -1
    return _RANK.get(level.removeprefix("HARM_SEVERITY_").removeprefix("HARM_PROBABILITY_"), -1)


class RatingTally:
    """``safetyRatings`` per category, merged across stream chunks (highest level, any ``blocked``)."""

    __slots__ = ("categories",)

    def __init__(self) -> None:
        self.categories: dict[str, dict[str, Any]] = {}

    @classmethod
    def of(cls, ratings: Any) -> RatingTally:
        tally = cls()
        tally.add(ratings)
        return tally

    def add(self, ratings: Any) -> None:
        for rating in ratings if isinstance(ratings, (list, tuple)) else ():
            category = as_str(get(rating, "category"))
            if category is None:
                continue
            entry = self.categories.setdefault(category, {})
            for key, wire in (("probability", "probability"), ("severity", "severity")):
                level = as_str(get(rating, wire))
                if level is not None and _rank(level) >= _rank(entry.get(key)):
                    entry[key] = level
            for key, wire in (("probability_score", "probabilityScore"), ("severity_score", "severityScore")):
                score = as_float(get(rating, wire))
                if score is not None and score >= entry.get(key, -1.0):
                    entry[key] = score
            if get(rating, "blocked") is True:
                entry["blocked"] = True

    def fired(self) -> dict[str, dict[str, Any]]:
        """The categories rated MEDIUM or HIGH, or blocked."""
        return {
            name: entry
            for name, entry in sorted(self.categories.items())
            if entry.get("blocked") or max(_rank(entry.get("probability")), _rank(entry.get("severity"))) >= 2
        }

    @property
    def blocked(self) -> bool:
        return any(entry.get("blocked") for entry in self.categories.values())


def _event(record: LLMCall, action: str, name: str, details: Mapping[str, Any]) -> PolicyEvent:
    return PolicyEvent(_CATEGORY, action, source=record.provider, name=name, details=dict(details))


def prompt_events(record: LLMCall, feedback: Any) -> None:
    """``promptFeedback``: a block reason (blocked), or ratings worth flagging."""
    if feedback is None:
        return
    tally = RatingTally.of(get(feedback, "safetyRatings"))
    fired = tally.fired()
    reason = as_str(get(feedback, "blockReason"))
    details: dict[str, Any] = {"scope": "prompt"}
    if reason:
        details["block_reason"] = reason
        message = as_str(get(feedback, "blockReasonMessage"))
        if message:
            details["block_reason_message"] = message
        if fired:
            details["categories"] = fired
        record.policy_events.append(_event(record, "blocked", "prompt_feedback", details))
    elif fired:
        details["categories"] = fired
        action = "blocked" if tally.blocked else "flagged"
        record.policy_events.append(_event(record, action, "safety_ratings", details))


def candidate_events(record: LLMCall, index: int, reason: str | None, tally: RatingTally) -> None:
    """One event per candidate: its filter finish reason (blocked), else its ratings worth flagging."""
    fired = tally.fired()
    details: dict[str, Any] = {"scope": "completion", "candidate_index": index}
    if reason in FILTER_FINISH_REASONS:
        details["finish_reason"] = reason
        if fired:
            details["categories"] = fired
        record.policy_events.append(_event(record, "blocked", "finish_reason", details))
    elif fired:
        details["categories"] = fired
        action = "blocked" if tally.blocked else "flagged"
        record.policy_events.append(_event(record, action, "safety_ratings", details))
