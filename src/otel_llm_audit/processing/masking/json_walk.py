"""Masking inside JSON: every string value, keys untouched, the same shape afterwards.

Content attributes such as ``gen_ai.input.messages`` are JSON documents. Masking the
serialised text as a whole would work for the values but risks breaking the document (a
replacement that swallows a quote) and analyses the structure's own punctuation every time;
instead the document is parsed, its string values are masked one by one (so a message that
is resent in the next call is a cache hit, whatever surrounds it), and it is serialised again.

Each value is analysed together with the name of the member that holds it, as context:
``{"ssn": "219099999"}`` carries its context word in the key, not in the value. Integers are
looked at too (``{"phone": 4155550143}``); one that holds personal data is replaced by the
masked string, the only change of type this walk makes, because leaking it would be worse.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["collect", "dumps", "is_json", "rebuild", "try_parse"]

_NOT_JSON = object()


def try_parse(text: str) -> Any:
    """The parsed document, or ``_NOT_JSON`` when ``text`` is not a JSON object or array.

    Bare scalars ("42", "\\"hi\\"", "true") are treated as text: a prompt that happens to be a
    number is still a prompt, and masking it as text gives the same result.
    """
    stripped = text.lstrip()
    if not stripped or stripped[0] not in "[{":
        return _NOT_JSON
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


def is_json(value: Any) -> bool:
    return value is not _NOT_JSON


def collect(document: Any) -> list[tuple[str | None, str]]:
    """Every maskable leaf as (nearest member name, text), in document order."""
    found: list[tuple[str | None, str]] = []
    stack: list[tuple[Any, str | None]] = [(document, None)]
    while stack:
        node, key = stack.pop()
        if isinstance(node, str):
            found.append((key, node))
        elif isinstance(node, dict):
            stack.extend((v, k) for k, v in reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend((v, key) for v in reversed(node))
        elif isinstance(node, int) and not isinstance(node, bool):
            found.append((key, str(node)))
    return found


def rebuild(document: Any, masked: dict[tuple[str | None, str], str]) -> Any:
    """A copy of ``document`` with each leaf replaced by its masked text where it changed."""

    def walk(node: Any, key: str | None) -> Any:
        if isinstance(node, str):
            return masked.get((key, node), node)
        if isinstance(node, dict):
            return {k: walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, key) for v in node]
        if isinstance(node, int) and not isinstance(node, bool):
            return masked.get((key, str(node)), node)
        return node

    return walk(document, None)


def dumps(document: Any) -> str:
    """Compact JSON, non-ASCII kept as is (what the exporters carry anyway)."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
