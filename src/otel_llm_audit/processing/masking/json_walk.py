"""Masking inside JSON: every string value, keys untouched, the same shape afterwards.

Content attributes such as ``gen_ai.input.messages`` are JSON documents. Masking the
serialised text as a whole would work for the values but risks breaking the document (a
replacement that swallows a quote) and analyses the structure's own punctuation every time;
instead the document is parsed, its string values are masked one by one (so a message that
is resent in the next call is a cache hit, whatever surrounds it), and it is serialised again.

Member names are masked too, unless they are short identifiers ("role", "content"): a tool's
arguments may well be keyed by e-mail address. Two names masked alike are numbered
(``<EMAIL_ADDRESS>``, ``<EMAIL_ADDRESS>#2``) so no member is lost.

Each value is analysed together with the name of the member that holds it, as context:
``{"ssn": "219099999"}`` carries its context word in the key, not in the value. Integers are
looked at too (``{"phone": 4155550143}``); one that holds personal data is replaced by the
masked string, the only change of type this walk makes, because leaking it would be worse.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["collect", "dumps", "is_json", "parse_element", "rebuild", "split_array", "try_parse"]

_NOT_JSON = object()
#: ``scan_once(text, index) -> (value, end)``: what ``json.loads`` runs, without its checks
#: for a whole document (it raises ``StopIteration`` where no value starts).
_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace
_SPACE_CHARS = frozenset(" \t\n\r")


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


def split_array(text: str) -> list[tuple[str, Any]] | None:
    """The elements of a top-level JSON array, each as (its exact text, its parsed value).

    ``None`` when ``text`` is not a JSON array. A chat history is an array of messages, and
    every call resends the previous messages unchanged: masked one element at a time, each
    message's text is a cache key of its own, so a resent message costs one digest instead
    of a walk over its leaves. Parsing is ``json``'s own scanner (C), one element at a time.
    """
    space = _SPACE_CHARS
    i = _skip_space(text, 0) if text[:1] in space else 0
    if text[i : i + 1] != "[":
        return None
    i += 1
    if text[i : i + 1] in space:
        i = _skip_space(text, i)
    elements: list[tuple[str, Any]] = []
    scan = _SCAN
    try:
        if text[i : i + 1] == "]":
            end = i + 1
        else:
            while True:
                value, end = scan(text, i)
                elements.append((text[i:end], value))
                after = text[end : end + 1]
                if after and after in space:
                    end = _skip_space(text, end)
                    after = text[end : end + 1]
                if after == ",":
                    i = end + 1
                    if text[i : i + 1] in space:
                        i = _skip_space(text, i)
                    continue
                if after != "]":
                    return None
                end += 1
                break
    except (StopIteration, ValueError, RecursionError):
        return None
    if end != len(text) and _skip_space(text, end) != len(text):
        return None
    return elements


def parse_element(text: str) -> Any:
    """One element's value, from its exact text (as :func:`split_array` gives it)."""
    return json.loads(text)


def _skip_space(text: str, start: int) -> int:
    found = _SPACE.match(text, start)
    return found.end() if found is not None else start


def is_json(value: Any) -> bool:
    return value is not _NOT_JSON


#: Member names that cannot hold anything the masker looks for: short identifiers ("role",
#: "content", "patient_id"). Others (an address or a phone number used as a key, a token)
#: are masked like values; the shortest secret we detect (an AWS key id) has 20 characters.
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,15}")
_plain_keys: dict[str, bool] = {}  # member names repeat in every message: judged once
_PLAIN_KEYS_KEPT = 4096
#: The context of a member name being masked: none (a key has no key of its own).
KEY_CONTEXT: str | None = None


def collect(document: Any) -> list[tuple[str | None, str]]:
    """Every maskable leaf as (nearest member name, text), in document order; member names too.

    ``document`` comes from ``json.loads``, so exact type checks suffice (and ``bool`` is not
    taken for an ``int``); a recursion too deep raises ``RecursionError``, which the masker
    turns into a masking failure.
    """
    found: list[tuple[str | None, str]] = []
    append = found.append
    plain_keys = _plain_keys

    def walk(node: Any, key: str | None) -> None:
        kind = type(node)
        if kind is str:
            append((key, node))
        elif kind is dict:
            for k, v in node.items():
                plain = plain_keys.get(k)
                if plain is None:
                    plain = _PLAIN_KEY.fullmatch(k) is not None
                    if len(plain_keys) < _PLAIN_KEYS_KEPT:
                        plain_keys[k] = plain
                if not plain:
                    append((KEY_CONTEXT, k))
                walk(v, k)
        elif kind is list:
            for v in node:
                walk(v, key)
        elif kind is int:
            append((key, str(node)))

    walk(document, None)
    return found


def rebuild(document: Any, masked: dict[tuple[str | None, str], str]) -> Any:
    """A copy of ``document`` with each leaf replaced by its masked text where it changed."""

    def walk(node: Any, key: str | None) -> Any:
        if isinstance(node, str):
            return masked.get((key, node), node)
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for k, v in node.items():
                name = masked.get((KEY_CONTEXT, k)) or str(k)
                if name in out:  # two masked names collide: number them, never merge members
                    name = next(f"{name}#{n}" for n in range(2, len(node) + 2) if f"{name}#{n}" not in out)
                out[name] = walk(v, k)
            return out
        if isinstance(node, list):
            return [walk(v, key) for v in node]
        if isinstance(node, int) and not isinstance(node, bool):
            return masked.get((key, str(node)), node)
        return node

    return walk(document, None)


def dumps(document: Any) -> str:
    """Compact JSON, non-ASCII kept as is (what the exporters carry anyway)."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
