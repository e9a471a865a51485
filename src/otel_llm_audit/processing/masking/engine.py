"""The masking engine: detect with presidio, replace, remember.

A :class:`Masker` is built once per policy (building presidio's analyzer and warming it up
costs a few hundred milliseconds) and then shared by every thread that masks: the span
pipeline's worker, or several. Each call is independent; the only shared state is the result
cache and its counters, behind one lock.

Work avoided, in the order it is tried:

1. the cache: a chat application resends its whole history and the same system prompt on
   every call, so most texts reaching the masker were masked a moment ago. The cache is a
   bounded LRU keyed by a salted SHA-256 digest of the text (the text itself is not kept as a
   key, and the digests say nothing without the per-masker random salt; SHA-256 rather than
   BLAKE2b because CPUs hash it in hardware, 40 % faster here);
2. duplicates within one batch (:meth:`Masker.mask_texts`) are masked once;
3. the pre-filter (:mod:`.prefilter`): recognizers that cannot find anything in a text do not
   run, and a text that triggers none skips presidio altogether;
4. inside presidio, the phone recognizer only sees windows that could hold a kept number.

Failures are loud: if presidio raises, :meth:`Masker.mask_text` raises :class:`MaskingError`,
so the caller can withhold the content (fail closed) instead of exporting it unmasked.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import json_walk
from .errors import MaskingConfigError, MaskingError
from .policy import MaskingPolicy
from .replace import Detection, Replacer, apply, resolve

if TYPE_CHECKING:
    from .recognizers import AnalyzerSetup, CandidatePhoneRecognizer

__all__ = ["MaskResult", "Masker"]

_log = logging.getLogger(__name__)

_T = TypeVar("_T")
_UNPARSED: Any = object()  # an array element known only by its text (see Masker.mask_json)
_LANGUAGE = "en"
_MIN_KEY_BYTES = 16
_PHONE_TAIL = 8  # an extension such as " ext. 12" starts this close to a phone number
_NO_ENTITIES: Mapping[str, int] = MappingProxyType({})
_SHORT_TEXT = 40  # characters
_SHORT_TEXTS_KEPT = 8192

#: Exercises every built-in trigger once, so patterns compile, the e-mail suffix list and the
#: phone metadata load at start-up rather than on the first span (about 200 ms).
_WARM_UP = (
    "warm-up: jane.doe@example.com, +1 415 555 0143, card 4111 1111 1111 1111, SSN 219-09-9999, "
    "IBAN DE89 3704 0044 0532 0130 00, ip 203.0.113.7 and 2001:db8::7, mac 00:1a:2b:3c:4d:5e, "
    "passport 912803456, account 12345678, dl A1234567, 2026-11-26T10:15:30Z, MRN: 12345678, "
    "sk-proj-Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0UvWx sk-ant-api03-Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv "
    "AKIAIOSFODNN7EXAMPLE ghp_Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1234 "
    "Authorization: Bearer Ab1Cd2Ef3Gh4Ij5Kl6Mn7 1BoatSLRHtKNngkdXEeobR76b53LETtpyT BD1234567"
)


@dataclass(frozen=True)
class MaskResult:
    """A masked text and what was masked in it: entity type -> count, never the values."""

    text: str
    entities: Mapping[str, int] = field(default_factory=lambda: _NO_ENTITIES)

    @property
    def masked(self) -> bool:
        """Whether anything was replaced."""
        return bool(self.entities)


def _find_phone(setup: AnalyzerSetup) -> _Phone | None:
    from .recognizers import CONTEXT_BOOST, CandidatePhoneRecognizer

    for entity, recognizers in setup.recognizers.items():
        for recognizer in recognizers:
            if isinstance(recognizer, CandidatePhoneRecognizer) and len(recognizers) == 1:
                return _Phone(recognizer, entity, min(1.0, recognizer.SCORE + CONTEXT_BOOST))
    return None


def _compile(pattern: str) -> Any:
    """Compile with presidio's engine, which the policy validated the pattern against."""
    import regex

    return regex.compile(pattern)


def _result(text: str, counts: Counter[str]) -> MaskResult:
    if not counts:
        return MaskResult(text)
    return MaskResult(text, MappingProxyType(dict(sorted(counts.items()))))


class _Cache(Generic[_T]):
    """A bounded LRU of masked results keyed by a keyed digest of the input."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[bytes, _T] = OrderedDict()
        self._lock = threading.Lock()
        self._salted = hashlib.sha256(secrets.token_bytes(32))
        self.hits = 0
        self.misses = 0

    def digest(self, text: str) -> bytes:
        state = self._salted.copy()
        state.update(text.encode("utf-8", "surrogatepass"))
        return state.digest()[:16]

    def find(self, text: str) -> tuple[bytes, _T | None]:
        """``text``'s digest and what is cached for it (``None``: a miss); hit or miss is counted."""
        state = self._salted.copy()
        state.update(text.encode("utf-8", "surrogatepass"))
        digest = state.digest()[:16]
        with self._lock:
            found = self._data.get(digest)
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
                self._data.move_to_end(digest)
        return digest, found

    def count_hits(self, n: int) -> None:
        with self._lock:
            self.hits += n

    def put(self, digest: bytes, result: _T) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[digest] = result
            self._data.move_to_end(digest)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class _DenyMatcher:
    """The policy's deny list: always masked, score 1.0, no threshold, no allow list."""

    def __init__(self, policy: MaskingPolicy) -> None:
        import regex

        self._rules: list[tuple[str, Any]] = []
        for rule in policy.deny_list:
            if rule.is_regex:
                compiled = regex.compile(rule.pattern, regex.DOTALL | regex.MULTILINE)
            else:
                body = regex.escape(rule.pattern)
                left = r"(?<!\w)" if rule.pattern[:1].isalnum() or rule.pattern[:1] == "_" else ""
                right = r"(?!\w)" if rule.pattern[-1:].isalnum() or rule.pattern[-1:] == "_" else ""
                compiled = regex.compile(left + body + right, regex.IGNORECASE)
            self._rules.append((rule.entity, compiled))

    def __bool__(self) -> bool:
        return bool(self._rules)

    def find(self, text: str) -> list[Detection]:
        return [
            Detection(entity, m.start(), m.end(), 1.0)
            for entity, compiled in self._rules
            for m in compiled.finditer(text)
            if m.end() > m.start()
        ]


@dataclass(frozen=True)
class _Phone:
    """The candidate-window phone recognizer, its entity type and its best possible score."""

    recognizer: CandidatePhoneRecognizer
    entity: str
    max_score: float


def _absorbed(text: str, run: tuple[int, int], strong: list[Detection]) -> bool:
    """Whether any phone number found in ``run`` would vanish inside a stronger detection.

    A match stays within its run, except for an extension ("x12") after it, so the run must
    lie inside the detection and have no digit just after it.
    """
    start, end = run
    if any(ch.isdigit() for ch in text[end : end + _PHONE_TAIL]):
        return False
    return any(d.start <= start and end <= d.end for d in strong)


class Masker:
    """Masks personal data and secrets in texts and JSON documents, per a :class:`MaskingPolicy`.

    Thread-safe; build one per policy and share it. Construction builds presidio's analyzer
    (the ``no_op`` NLP engine, or the policy's spaCy model) and warms it up, so it belongs at
    start-up, not on a span's path. In ``pseudonym`` mode the key comes from ``pseudonym_key``
    or else from the environment variable the policy names; it is never logged or shown.
    """

    def __init__(
        self,
        policy: MaskingPolicy,
        *,
        cache_size: int = 4096,
        pseudonym_key: bytes | None = None,
        prefilter: bool = True,
    ) -> None:
        from .prefilter import Prefilter, build_triggers
        from .recognizers import build_analyzer

        self._policy = policy
        self._replacer = Replacer(
            policy.replacement, key=self.pseudonym_key(policy, pseudonym_key), length=policy.pseudonym_length
        )
        self._setup: AnalyzerSetup = build_analyzer(policy)
        self._analyzer = self._setup.analyzer
        self._thresholds = {e: policy.threshold_for(e) for e in (*self._setup.entities, *self._setup.ner_entities)}
        self._floor = min(self._thresholds.values(), default=policy.default_threshold)
        self._allow = frozenset(policy.allow_list)
        self._allow_patterns = [_compile(p) for p in policy.allow_patterns]
        self._deny = _DenyMatcher(policy)
        self._prefilter = Prefilter(build_triggers(policy, self._setup)) if prefilter else None
        self._ner = self._setup.ner_entities
        self._phone = _find_phone(self._setup) if prefilter else None
        self._cache: _Cache[MaskResult] = _Cache(cache_size)
        #: Masked elements of top-level JSON arrays (messages of a history), by their text.
        self._elements: _Cache[tuple[MaskResult, int]] = _Cache(cache_size)
        #: Short texts found clean ("user", "text", "tool_call", a member name with its value):
        #: most leaves of every message document. Kept as they are, since they hold nothing
        #: the policy masks, and found with a set lookup instead of a keyed digest and a lock.
        self._clean_short: set[tuple[str | None, str]] = set()
        self.detect(_WARM_UP)
        _log.debug("masker ready: policy %s, entities %s", policy.version, ", ".join(self._setup.entities))

    @staticmethod
    def pseudonym_key(policy: MaskingPolicy, explicit: bytes | None = None) -> bytes | None:
        """The pseudonym key ``policy`` needs (``None`` in ``type`` mode); raises if it is missing or short."""
        if policy.replacement != "pseudonym":
            return None
        key = explicit
        if key is None:
            value = os.environ.get(policy.pseudonym_key_env)
            key = value.encode("utf-8") if value else None
        if not key:
            raise MaskingConfigError(
                f"{policy.source}: replacement is 'pseudonym' but the key variable "
                f"{policy.pseudonym_key_env} is not set (or empty)"
            )
        if len(key) < _MIN_KEY_BYTES:
            raise MaskingConfigError(
                f"{policy.source}: the pseudonym key in {policy.pseudonym_key_env} is shorter than "
                f"{_MIN_KEY_BYTES} bytes; a short key lets anyone confirm guessed values from the tokens"
            )
        return key

    def __repr__(self) -> str:
        return f"Masker(policy={self._policy.version}, replacement={self._policy.replacement!r})"

    # ---------------------------------------------------------------------------------------

    @property
    def policy(self) -> MaskingPolicy:
        return self._policy

    @property
    def cache_hits(self) -> int:
        """Texts answered from the cache or from a duplicate earlier in the same batch."""
        return self._cache.hits

    @property
    def cache_misses(self) -> int:
        """Texts that had to be analysed."""
        return self._cache.misses

    @property
    def cache_len(self) -> int:
        return len(self._cache)

    # ---------------------------------------------------------------------------------------

    def detect(self, text: str, *, context_key: str | None = None) -> list[Detection]:
        """The resolved detections in ``text``: what :meth:`mask_text` replaces.

        With ``context_key``, ``text`` is analysed as the value of a JSON member of that name,
        whose name counts as context (offsets are still relative to ``text``).
        """
        prefix = f"{context_key}: " if context_key else ""
        subject = prefix + text
        try:
            found = self._detect(subject)
        except MaskingError:
            raise
        except Exception as exc:
            raise MaskingError(
                f"masking failed ({type(exc).__name__}); the value must not be exported unmasked",
                cause_type=type(exc).__name__,
            ) from None
        if prefix:
            cut = len(prefix)
            found = [Detection(d.entity, max(d.start, cut) - cut, d.end - cut, d.score) for d in found if d.end > cut]
        return resolve(found)

    def _detect(self, text: str) -> list[Detection]:
        found = self._deny.find(text) if self._deny else []
        entities = self._prefilter.select(text) if self._prefilter is not None else list(self._setup.entities)
        if self._ner:
            entities.extend(self._ner)
        if not entities:
            return found
        # With NER, the spaCy pipeline is the expensive part: run it once per text, not once
        # per analyze() call below (presidio would run it again for the phone pass).
        artifacts = self._analyzer.nlp_engine.process_text(text, _LANGUAGE) if self._ner else None
        phone = self._phone
        if phone is None or phone.entity not in entities or len(entities) == 1:
            found.extend(self._analyze(text, entities, artifacts))
            return found
        # Phone numbers last: a digit run already inside a detection that outscores any phone
        # number (a validated card or IBAN, a deny-list match) would only be absorbed by it,
        # and parsing it in eight regions is the most expensive thing presidio does.
        found.extend(self._analyze(text, [e for e in entities if e != phone.entity], artifacts))
        strong = [d for d in found if d.score > phone.max_score]
        runs = phone.recognizer.candidates(text)
        if strong:
            runs = [run for run in runs if not _absorbed(text, run, strong)]
            phone.recognizer.remember(text, runs)
        if runs:
            found.extend(self._analyze(text, [phone.entity], artifacts))
        return found

    def _analyze(self, text: str, entities: list[str], artifacts: Any = None) -> list[Detection]:
        """presidio's detections of ``entities``, kept by threshold and allow lists."""
        results = self._analyzer.analyze(
            text=text, language=_LANGUAGE, entities=entities, score_threshold=self._floor, nlp_artifacts=artifacts
        )
        thresholds = self._thresholds
        kept = []
        for r in results:
            if r.score < thresholds.get(r.entity_type, 1.01):
                continue
            if self._allow or self._allow_patterns:
                value = text[r.start : r.end].strip()
                if value in self._allow or any(p.fullmatch(value) for p in self._allow_patterns):
                    continue
            kept.append(Detection(r.entity_type, r.start, r.end, r.score))
        return kept

    def _mask_uncached(self, text: str, context_key: str | None = None) -> MaskResult:
        masked, counts = apply(text, self.detect(text, context_key=context_key), self._replacer)
        return _result(masked, counts)

    def _mask_cached(self, text: str, context_key: str | None = None) -> MaskResult:
        short = len(text) <= _SHORT_TEXT
        if short and (context_key, text) in self._clean_short:
            self._cache.hits += 1  # unlocked: a statistic, not a decision
            return MaskResult(text)
        digest, found = self._cache.find(text if context_key is None else f"{context_key}\x00{text}")
        if found is not None:
            return found
        result = self._mask_uncached(text, context_key)
        if short and not result.entities:
            clean = self._clean_short
            if len(clean) >= _SHORT_TEXTS_KEPT:
                clean.clear()
            clean.add((context_key, text))
        else:
            self._cache.put(digest, result)
        return result

    # ---------------------------------------------------------------------------------------

    def mask_text(self, text: str) -> MaskResult:
        """Mask ``text``. Raises :class:`MaskingError` if detection fails."""
        if not text:
            return MaskResult(text)
        return self._mask_cached(text)

    def mask_texts(self, texts: Sequence[str]) -> list[MaskResult]:
        """Mask a batch; identical texts are analysed once, and the cache is consulted first."""
        done: dict[str, MaskResult] = {}
        out: list[MaskResult] = []
        duplicates = 0
        for text in texts:
            result = done.get(text)
            if result is None:
                result = self.mask_text(text)
                done[text] = result
            elif text:
                duplicates += 1
            out.append(result)
        if duplicates:
            self._cache.count_hits(duplicates)
        return out

    def mask_json(self, json_text: str) -> MaskResult:
        """Mask every string value of a JSON document; keys and shape are kept.

        The result is compact JSON where something was masked and the input unchanged when
        nothing was. A text that is not a JSON object or array is masked as plain text.

        A top-level array (a chat history, a list of tool definitions) is masked element by
        element, each element's text answered from the cache when it was seen before, so a
        history resent on every call costs a digest per message, not a walk over its leaves.
        Only the elements that changed are serialised again; the others keep their text.
        """
        pieces = getattr(json_text, "elements", None) if type(json_text) is not str else None
        if pieces is not None:  # the emitter's message list: its elements' texts come along
            json_text = str.__str__(json_text)  # a plain copy: the subclass goes no further
            elements: list[tuple[str, Any]] | None = [(piece, _UNPARSED) for piece in pieces]
        else:
            elements = json_walk.split_array(json_text)
        if elements is None:
            document = json_walk.try_parse(json_text)
            if not json_walk.is_json(document):
                return self.mask_text(json_text)
            return self._mask_document(document, json_text)[0]
        results: list[MaskResult] = []
        seen: dict[str, tuple[MaskResult, int]] = {}
        masked = False
        mask_element = self._mask_element
        for text, value in elements:
            found = seen.get(text)
            if found is None:
                found = seen[text] = mask_element(text, value)
            else:
                self._cache.hits += found[1]  # unlocked: a statistic, not a decision
            results.append(found[0])
            masked = masked or bool(found[0].entities)
        if not masked:
            return MaskResult(json_text)
        counts: Counter[str] = Counter()
        for result in results:
            counts.update(result.entities)
        return _result("[" + ",".join(r.text for r in results) + "]", counts)

    def _mask_element(self, text: str, value: Any) -> tuple[MaskResult, int]:
        """One element of a top-level array, from the element cache or masked and remembered.

        ``value`` is the parsed element, or ``_UNPARSED`` (parsed here only if not cached).
        """
        if value is not _UNPARSED and type(value) not in (dict, list):  # a string or number: a leaf
            return self._mask_document(value, text)
        elements = self._elements
        digest, found = elements.find(text)
        if found is not None:
            self._cache.hits += found[1]  # unlocked: a statistic, not a decision
            return found
        if value is _UNPARSED:
            value = json_walk.parse_element(text)
        masked = self._mask_document(value, text)
        elements.put(digest, masked)
        return masked

    def _mask_document(self, document: Any, json_text: str) -> tuple[MaskResult, int]:
        """The masked ``document`` (parsed from ``json_text``) and how many leaves it has."""
        try:
            leaves = json_walk.collect(document)
            results: dict[tuple[str | None, str], MaskResult] = {}
            counts: Counter[str] = Counter()
            duplicates = 0
            for leaf in leaves:
                result = results.get(leaf)
                if result is None:
                    key, value = leaf
                    result = self._mask_cached(value, key) if value else MaskResult(value)
                    results[leaf] = result
                else:
                    duplicates += 1
                if result.entities:
                    counts.update(result.entities)
            if duplicates:
                self._cache.count_hits(duplicates)
            if not counts:
                return MaskResult(json_text), len(leaves)
            changed = {leaf: r.text for leaf, r in results.items() if r.entities}
            return _result(json_walk.dumps(json_walk.rebuild(document, changed)), counts), len(leaves)
        except RecursionError:
            raise MaskingError("masking failed (document nested too deeply)", cause_type="RecursionError") from None
