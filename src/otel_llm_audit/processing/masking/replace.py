"""From detections to masked text: resolve overlaps, then replace.

Overlaps are common (an SSN is also a plausible phone number, a JWT after "Bearer" is also a
bearer token). Each group of overlapping detections becomes one replacement that covers the
union of their characters, labelled with the best detection's type (highest score, then
longest, then first). Covering the union rather than only the winner's span is deliberate:
every character some recognizer was confident about is masked, so a partial overlap never
leaves the tail of a value in clear.

Pseudonyms are HMAC-SHA256 over the entity type and a normalised value, keyed with a secret
the policy only names: the same card number written "4111 1111 1111 1111" or
"4111-1111-1111-1111" gets the same token, the same e-mail in any case too, so incidents can
be correlated across spans without the value, and without the key the token cannot be
reversed by trying candidate values (which a plain hash of a phone number could be).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Detection", "Replacer", "apply", "resolve"]

#: Types whose values are normalised to their letters and digits before pseudonymising.
_NUMERIC_TYPES = frozenset(
    {
        "CREDIT_CARD",
        "IBAN_CODE",
        "PHONE_NUMBER",
        "UK_NHS",
        "US_BANK_NUMBER",
        "US_ITIN",
        "US_PASSPORT",
        "US_SSN",
        "MEDICAL_RECORD_NUMBER",
    }
)
_CASELESS_TYPES = frozenset({"EMAIL_ADDRESS", "PERSON", "LOCATION"})
_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]+")


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected entity: a type, a half-open character span, and a score in [0, 1]."""

    entity: str
    start: int
    end: int
    score: float


def _better(a: Detection, b: Detection) -> bool:
    """Whether ``a`` should label a group rather than ``b``: score, then length, then first."""
    if a.score != b.score:
        return a.score > b.score
    if (a.end - a.start) != (b.end - b.start):
        return (a.end - a.start) > (b.end - b.start)
    return (a.start, a.entity) < (b.start, b.entity)


def resolve(detections: Iterable[Detection]) -> list[Detection]:
    """Non-overlapping detections in text order, one per group of overlapping ones."""
    ordered = sorted((d for d in detections if d.end > d.start), key=lambda d: (d.start, -d.end))
    resolved: list[Detection] = []
    group_start = group_end = -1
    best: Detection | None = None
    for det in ordered:
        if best is not None and det.start < group_end:
            group_end = max(group_end, det.end)
            if _better(det, best):
                best = det
            continue
        if best is not None:
            resolved.append(Detection(best.entity, group_start, group_end, best.score))
        best, group_start, group_end = det, det.start, det.end
    if best is not None:
        resolved.append(Detection(best.entity, group_start, group_end, best.score))
    return resolved


class Replacer:
    """Turns a resolved detection into its replacement token.

    The key is held privately and appears in no repr: ``repr(replacer)`` names the mode only.
    """

    __slots__ = ("_key", "_length", "mode")

    def __init__(self, mode: str = "type", *, key: bytes | None = None, length: int = 8) -> None:
        if mode == "pseudonym" and not key:
            raise ValueError("pseudonym replacement needs a key")
        self.mode = mode
        self._key = key or b""
        self._length = length

    def __repr__(self) -> str:
        return f"Replacer(mode={self.mode!r})"

    def token(self, entity: str, value: str) -> str:
        if self.mode != "pseudonym":
            return f"<{entity}>"
        digest = hmac.new(
            self._key, f"{entity}\x00{_normalise(entity, value)}".encode("utf-8", "surrogatepass"), hashlib.sha256
        )
        return f"<{entity}_{digest.hexdigest()[: self._length]}>"


def _normalise(entity: str, value: str) -> str:
    value = value.strip()
    if entity in _NUMERIC_TYPES:
        return _NOT_ALNUM.sub("", value).upper()
    if entity in _CASELESS_TYPES:
        return " ".join(value.split()).casefold()
    return value


def apply(text: str, resolved: list[Detection], replacer: Replacer) -> tuple[str, Counter[str]]:
    """Replace each resolved detection in ``text``; count replacements per type."""
    counts: Counter[str] = Counter()
    if not resolved:
        return text, counts
    out: list[str] = []
    pos = 0
    for det in resolved:
        out.append(text[pos : det.start])
        out.append(replacer.token(det.entity, text[det.start : det.end]))
        counts[det.entity] += 1
        pos = det.end
    out.append(text[pos:])
    return "".join(out), counts
