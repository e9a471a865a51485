"""Context words, read straight from the text.

presidio raises a detection's score when a context word ("ssn", "phone", "passport") stands
near it, but it finds those words through the NLP engine's tokens and lemmas. The ``no_op``
engine, which is what makes presidio usable offline and fast, produces none, so in-text
context silently does nothing and "SSN 219099999" stays at the 0.05 of any 9-digit number.

:class:`ContextRules` looks for the words in a window of characters before (and optionally
after) the match instead, with one precompiled regular expression per entity type. The same
rules serve three callers, which is what keeps the fast paths exact: the context enhancer
that scores detections, the phone recognizer that skips weak numbers nobody would keep,
and the pre-filter that skips recognizers whose results could not reach their threshold.

Words match whole (case-insensitive, an optional plural "s"), phrases match with any run of
spaces, hyphens or underscores between their words: "ssn" matches "SSN:" and "SSNs" but not
"lessn"; "social security" matches "Social-Security".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["ContextRules", "compile_words", "is_weak_number"]

_BARE_NUMBER = re.compile(r"\d+")
_ANY_I = "[iI\u0130\u0131]"  # what Python's IGNORECASE takes for "i" (RE2 omits the Turkish two)
_STRONG_DIGITS = 9
_STRONG_MARK = re.compile(r"^\s*\+|\(\d{1,5}\)")


def compile_words(words: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern matching any of ``words`` as a whole word or phrase."""
    parts = []
    for word in sorted({w.strip().lower() for w in words if w and w.strip()}, key=len, reverse=True):
        pieces = [re.escape(piece) for piece in re.split(r"[\s_-]+", word) if piece]
        parts.append(r"[\s_-]+".join(pieces))
    if not parts:
        return None
    return re.compile(r"(?<![0-9a-z])(?:" + "|".join(parts) + r")s?(?![a-z])", re.IGNORECASE)


def is_weak_number(value: str) -> bool:
    """True for a number written without what marks a phone or health number as one.

    Strong marks are a leading "+" and an area code in parentheses ("(415)"). Without them a
    number is weak when it is digits alone ("1732612345", an epoch second) or has fewer than
    nine digits ("3006-8833", a ticket number, though Brazilian local numbers look the same;
    "(132/71)", a blood pressure). "(415) 555-0143", "+44 20 7946 0958", "415-555-0143" and
    "401 023 2137" are not weak. A weak number needs a context word to count
    (``require_context_for_weak_numbers``).
    """
    if _STRONG_MARK.search(value) is not None:
        return False
    if _BARE_NUMBER.fullmatch(value) is not None:
        return True
    return sum(ch.isdigit() for ch in value) < _STRONG_DIGITS


class ContextRules:
    """Positive and negative context per entity type, and the weak-number rule.

    Windows are searched in place (``pattern.search(text, pos, endpos)``) rather than on
    slices: no copy, and a word is judged by its real neighbours, so a window that starts in
    the middle of "lessn" does not see an "ssn".
    """

    def __init__(
        self,
        positive: Mapping[str, Iterable[str]],
        negative: Mapping[str, Iterable[str]],
        *,
        before: int,
        after: int,
        weak_needs_context: Iterable[str] = (),
    ) -> None:
        self.before = before
        self.after = after
        self._positive = {e: p for e, words in positive.items() if (p := compile_words(words)) is not None}
        # The first word of each context phrase, lower-cased: a plain substring test that
        # rules most texts out before the (slower, case-insensitive) pattern runs.
        self._anchors = {
            e: tuple({re.split(r"[\s_-]+", w.strip().casefold())[0] for w in words if w and w.strip()})
            for e, words in positive.items()
            if e in self._positive
        }
        self._negative = {e: p for e, words in negative.items() if (p := compile_words(words)) is not None}
        self.weak_needs_context = frozenset(weak_needs_context)

    def has_positive(self, entity: str) -> bool:
        """Whether ``entity`` has any context words at all."""
        return entity in self._positive

    def _near(self, pattern: re.Pattern[str] | None, text: str, start: int, end: int) -> bool:
        if pattern is None:
            return False
        if pattern.search(text, max(0, start - self.before), start) is not None:
            return True
        return self.after > 0 and pattern.search(text, end, end + self.after) is not None

    def supports(self, entity: str, text: str, start: int, end: int) -> bool:
        """A context word for ``entity`` stands near ``text[start:end]``."""
        return self._near(self._positive.get(entity), text, start, end)

    def vetoes(self, entity: str, text: str, start: int, end: int) -> bool:
        """A negative context word for ``entity`` stands near ``text[start:end]``."""
        return self._near(self._negative.get(entity), text, start, end)

    def anchor_pattern(self, entity: str) -> str | None:
        """An RE2 pattern true wherever a context word for ``entity`` can match (``None``: no words).

        Case-insensitive like the words' own pattern; Python also equates "i" with the dotted
        capital and the dotless i (U+0130, U+0131), which RE2 does not, so those are spelled out.
        """
        anchors = self._anchors.get(entity)
        if not anchors:
            return None
        spelled = ("".join(_ANY_I if ch == "i" else re.escape(ch) for ch in anchor) for anchor in sorted(anchors))
        return "(?i)(?:" + "|".join(spelled) + ")"

    def search(self, entity: str, text: str) -> bool:
        """A context word for ``entity`` occurs in ``text`` (the exact test behind :meth:`anywhere`)."""
        pattern = self._positive.get(entity)
        return pattern is not None and pattern.search(text) is not None

    def anywhere(self, entity: str, text: str) -> bool:
        """A context word for ``entity`` occurs anywhere in ``text`` (a cheap necessary test)."""
        pattern = self._positive.get(entity)
        if pattern is None:
            return False
        lowered = text.casefold()  # a superset of what IGNORECASE equates (long s -> "s")
        if not lowered.isascii():  # ... but for the Turkish i: "İ" folds to "i" + a combining dot
            lowered = lowered.replace("\u0307", "").replace("\u0131", "i")
        if not any(anchor in lowered for anchor in self._anchors[entity]):
            return False
        return pattern.search(text) is not None
