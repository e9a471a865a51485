"""What OpenAI and Azure OpenAI say about safety, as policy events (never the content itself).

A ``content_filter`` finish reason or incomplete reason, a refusal, Azure OpenAI's content
filter annotations (``prompt_filter_results``, per-choice ``content_filter_results``, the
Responses API's ``content_filters``) and Azure's 400 ``content_filter`` error, which stays an
error span and carries its policy event too. Used by :mod:`._capture`, off the caller's thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_llm_audit.instrumentation.readers import DictView, as_int, as_str, get
from otel_llm_audit.records import LLMCall, PolicyEvent

_get = get
_int = as_int
_str = as_str


#: Azure's severity levels; anything above ``safe`` is worth an event even when not filtered.
_SEVERITY_RANK = {"safe": 0, "low": 1, "medium": 2, "high": 3}


def _severity_rank(severity: Any) -> int:
    """-1 for none, 0 for ``safe``; a level this module does not know ranks above ``high``."""
    if not isinstance(severity, str):
        return -1
    return _SEVERITY_RANK.get(severity, len(_SEVERITY_RANK))


_UNKNOWN = object()


def may_have_extras(obj: Any) -> bool:
    """False only for an SDK object (pydantic 2) that has no undeclared fields: most OpenAI chunks."""
    extra = getattr(obj, "__pydantic_extra__", _UNKNOWN)
    return type(extra) is not dict or bool(extra)


def extra(obj: Any, name: str) -> Any:
    """A field the SDK does not declare (Azure's annotations), read without pydantic's slow miss path."""
    extra = getattr(obj, "__pydantic_extra__", None)
    if type(extra) is dict:
        return extra.get(name)
    if type(obj) is DictView:
        return obj.data.get(name)
    return _get(obj, name)


def _plain(value: Any) -> Any:
    """Dicts and lists as such: extras of SDK objects are plain already, chunk views are unwrapped."""
    kind = type(value)
    if kind is dict or kind is list:
        return value
    if kind is DictView:
        return value.data
    if value is None or isinstance(value, (Mapping, list, tuple)):
        return value
    dump = getattr(value, "model_dump", None)
    return dump() if callable(dump) else None


class FilterTally:
    """Azure content filter results of one prompt or choice, merged across stream chunks.

    Per category: ``filtered`` and ``detected`` if any chunk said so, the highest ``severity``,
    the ids of the custom blocklists or topics that matched, a protected-material citation.
    """

    __slots__ = ("_last", "categories")

    def __init__(self) -> None:
        self.categories: dict[str, dict[str, Any]] = {}
        self._last: Any = None

    def add(self, results: Any) -> None:
        results = _plain(results)
        if not isinstance(results, Mapping) or results == self._last:  # Azure repeats them on every chunk
            return
        self._last = results
        for name, result in results.items():
            result = _plain(result)
            if isinstance(result, (list, tuple)):  # custom_blocklists in older API versions
                result = {"details": result}
            if not isinstance(result, Mapping) or not isinstance(name, str):
                continue
            entry = self.categories.get(name)
            if entry is None:
                entry = self.categories[name] = {}
            for flag in ("filtered", "detected"):
                value = result.get(flag)
                if isinstance(value, bool):
                    entry[flag] = entry.get(flag, False) or value
            severity = _str(result.get("severity"))
            if severity is not None and _severity_rank(severity) >= _severity_rank(entry.get("severity")):
                entry["severity"] = severity
            matches = _plain(result.get("details"))  # custom blocklists and topics: which of them matched
            if isinstance(matches, (list, tuple)):
                hit = [m for m in matches if _get(m, "filtered") is True or _get(m, "detected") is True]
                ids = {i for i in (_str(_get(m, "id")) for m in hit) if i}
                if ids:
                    entry["ids"] = sorted({*entry.get("ids", ()), *ids})
            citation = _plain(result.get("citation"))
            if isinstance(citation, Mapping):
                cited = {k: v for k, v in (("url", _str(citation.get("URL") or citation.get("url"))),
                                           ("license", _str(citation.get("license")))) if v}
                if cited:
                    entry["citation"] = cited

    def fired(self) -> dict[str, dict[str, Any]]:
        """The categories that filtered, detected, or rated the content above ``safe``."""
        return {
            name: entry
            for name, entry in sorted(self.categories.items())
            if entry.get("filtered") or entry.get("detected") or _severity_rank(entry.get("severity")) > 0
        }


class FilterTallies:
    """Azure's ``prompt_filter_results`` (``prompt_annotations`` in early API versions), per prompt index."""

    __slots__ = ("by_index",)

    def __init__(self) -> None:
        self.by_index: dict[int, FilterTally] = {}

    def add_prompt_results(self, holder: Any) -> None:
        results = extra(holder, "prompt_filter_results")
        if results is None:
            results = extra(holder, "prompt_annotations")
        results = _plain(results)
        if not isinstance(results, (list, tuple)):
            return
        for position, entry in enumerate(results):
            index = _int(_get(entry, "prompt_index"))
            tally = self.by_index.get(position if index is None else index)
            if tally is None:
                tally = self.by_index[position if index is None else index] = FilterTally()
            found = _get(entry, "content_filter_results")
            tally.add(found if found is not None else _get(entry, "content_filter_result"))

    def emit(self, record: LLMCall, scope: str) -> None:
        for index in sorted(self.by_index):
            fired = self.by_index[index].fired()
            if fired:
                details = {"scope": scope, "prompt_index": index, "categories": fired}
                record.policy_events.append(_filter_event(record, "prompt_filter_results", fired, details))


def _filter_event(record: LLMCall, name: str, fired: Mapping[str, Any], details: dict[str, Any],
                  blocked: bool = False) -> PolicyEvent:
    """``blocked`` when the provider withheld content, ``flagged`` when it only annotated it."""
    blocked = blocked or any(entry.get("filtered") for entry in fired.values())
    return PolicyEvent("content_filter", "blocked" if blocked else "flagged", source=record.provider,
                       name=name, details=details)


def refusal_event(record: LLMCall, details: dict[str, Any]) -> PolicyEvent:
    """The model declined: the refusal text is content and stays in the output messages only."""
    return PolicyEvent("refusal", "refused", source=record.provider, name="refusal", details=details)


def choice_policy_events(record: LLMCall, index: int, reason: str, filters: FilterTally, refused: bool) -> None:
    """One content filter event per choice (its finish reason and its Azure annotations), then its refusal."""
    fired = filters.fired()
    if reason == "content_filter" or fired:
        details: dict[str, Any] = {"scope": "completion", "choice_index": index}
        if reason == "content_filter":
            details["finish_reason"] = reason
        if fired:
            details["categories"] = fired
        name = "finish_reason" if reason == "content_filter" else "content_filter_results"
        record.policy_events.append(_filter_event(record, name, fired, details, blocked=reason == "content_filter"))
    if refused:
        record.policy_events.append(refusal_event(record, {"choice_index": index}))


def content_filters_events(record: LLMCall, items: Any, name: str, code: str | None = None) -> int:
    """Azure's Responses API ``content_filters``: one item per checked source (prompt, completion)."""
    items = _plain(items)
    if not isinstance(items, (list, tuple)):
        return 0
    emitted = 0
    for item in items:
        tally = FilterTally()
        tally.add(_get(item, "content_filter_results"))
        fired = tally.fired()
        blocked = _get(item, "blocked") is True
        if not (fired or blocked):
            continue
        details: dict[str, Any] = {"scope": _str(_get(item, "source_type")) or "unknown"}
        if code is not None:
            details["code"] = code
        if fired:
            details["categories"] = fired
        record.policy_events.append(_filter_event(record, name, fired, details, blocked=blocked or code is not None))
        emitted += 1
    return emitted


#: OpenAI's own error codes for a request its usage policies blocked: ``invalid_prompt`` (a
#: prompt flagged as potentially violating the usage policy, as reasoning models answer it) and
#: ``moderation_blocked`` (image generation's safety system).
_OPENAI_BLOCK_CODES = frozenset({"invalid_prompt", "moderation_blocked"})


def error_policy_events(record: LLMCall) -> None:
    """A 400 that says the request was blocked by a policy; the span stays an error span.

    Azure's ``content_filter`` error keeps its filter results in the SDK exception's ``.body``
    (chat: ``innererror.content_filter_result``; the Responses API: ``content_filters``).
    OpenAI's ``invalid_prompt`` / ``moderation_blocked`` say only that it was blocked.
    """
    error = record.error
    exc = error.exception if error is not None else None
    if exc is None:
        return
    body = _plain(getattr(exc, "body", None))
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        body = body["error"]  # a body the SDK did not unwrap
    if not isinstance(body, Mapping):
        return
    inner = _plain(body.get("innererror"))
    code = _str(body.get("code")) or _str(getattr(exc, "code", None))
    if code in _OPENAI_BLOCK_CODES:
        record.policy_events.append(_filter_event(record, "error", {}, {"scope": "prompt", "code": code}, blocked=True))
        return
    inner_code = _str(_get(inner, "code"))
    if code != "content_filter" and inner_code != "ResponsibleAIPolicyViolation":
        return
    code = code or inner_code or "content_filter"
    if content_filters_events(record, body.get("content_filters"), name="error", code=code):
        return
    tally = FilterTally()
    tally.add(_get(inner, "content_filter_result") or _get(inner, "content_filter_results"))
    fired = tally.fired()
    details: dict[str, Any] = {"scope": "prompt", "code": code}
    if fired:
        details["categories"] = fired
    record.policy_events.append(_filter_event(record, "error", fired, details, blocked=True))
