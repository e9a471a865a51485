"""Which entity types can possibly be found in a text, decided before presidio runs.

presidio runs every recognizer over every text. Most texts in LLM traffic hold no personal
data at all, and most of the rest hold one or two kinds, so most of that work finds nothing.
Before presidio runs, each enabled entity type gets a trigger, true whenever its recognizers
could produce a detection that survives the policy; only triggered types are analysed, and
a text that triggers nothing skips presidio altogether.

A trigger must never be false when a detection was possible (that would be a silent miss).
So the deciding test is exact and derived from the recognizers themselves: one of their own
regular expressions (compiled with their own flags) matches, restricted to the patterns that
can reach the entity's threshold. A pattern whose score is below the threshold only counts
when one of the entity's context words occurs in the text, since only a context word can lift
it; a recognizer that validates its matches (checksums) can lift any pattern to 1.0, so all
of its patterns count. For types in ``require_context_for_weak_numbers`` with no context word
in the text, only a match that is not a weak number counts.

In front of the exact test sits an optional cheaper one, a relaxation of the same patterns
("an @" for e-mail addresses, "13 digits with optional single separators" for cards), which
rejects most texts with one scan. Recognizers that are not pattern recognizers (NER) always
run; the phone recognizer has its own candidate test. The benchmark checks that detections
with and without the pre-filter are identical on its corpus.

The cheap tests that are regular expressions are compiled together into one RE2 set
(``google-re2``): one linear pass over the text answers all of them, about thirty times
faster than asking Python's engine each in turn, which was most of the masking time on
ordinary prose. Without ``google-re2`` (a platform it has no wheel for) each is asked
with Python's ``re``, with the same result.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .policy import BUILTIN_ENTITIES

if TYPE_CHECKING:
    from presidio_analyzer import EntityRecognizer

    from .context import ContextRules
    from .policy import MaskingPolicy
    from .recognizers import AnalyzerSetup

__all__ = ["EntityTrigger", "Prefilter", "Trigger", "build_triggers", "select"]

#: The shipped ``mrn_pattern``; for it (and only it) the literal gate below is a relaxation.
_SHIPPED_MRN_PATTERN = r"(?i)(?<=\b(?:mrn|medical record(?: number| no\.?| num| #)?)[\s:#-]{0,3})\d{6,10}\b"


#: The shipped MRN pattern's words, matched as its engine does (case-insensitive, where "i"
#: is also U+0130 and U+0131: ``str.casefold`` turns the dotted capital into two characters,
#: so "MEDİCAL" slipped past a substring test). For the RE2 set the two are spelled out.
_MRN_WORDS = re.compile("mrn|medical", re.IGNORECASE)
_MRN_GATE = "(?i)mrn|med[iI\u0130\u0131]cal"


def _mrn_gate(text: str) -> bool:
    return _MRN_WORDS.search(text) is not None


_log = logging.getLogger(__name__)

Trigger = Callable[[str], bool]


class _Literal(str):
    """A gate that is a plain substring test (case-sensitive): ``in`` in Python, escaped in RE2."""


#: Cheap relaxations of presidio's predefined patterns and of this package's, per entity
#: type: each is true on every text where the recognizers' own patterns can match. A string
#: is a regular expression; a pair is (any text, ASCII text): ``\d`` matches every Unicode
#: digit, as in presidio's patterns, but Python's engine only skips ahead quickly to a first
#: character given as a plain set, so ASCII texts (``str.isascii``, where ``\d`` is [0-9])
#: get a form that starts with one. Each pattern starts with one character rare in prose
#: (a digit, a separator) for the same reason. A :class:`_Literal` is a substring test (an
#: order of magnitude faster than a regular expression in Python); a callable is used as is.
_GATES: dict[str, str | tuple[str, str] | Trigger] = {
    "CREDIT_CARD": (r"\d(?:[ -]?\d){12}", r"[0-9](?:[ -]?[0-9]){12}"),
    "US_SSN": (r"\d(?:[ .-]?\d){8}", r"[0-9](?:[ .-]?[0-9]){8}"),
    "US_ITIN": (r"9\d\d[ -]?\d\d[ -]?\d{4}", r"9[0-9][0-9][ -]?[0-9][0-9][ -]?[0-9]{4}"),
    "US_PASSPORT": (r"\d{8}", r"[0-9][0-9]{7}"),
    "US_BANK_NUMBER": (r"\d{8}", r"[0-9][0-9]{7}"),
    "UK_NHS": (r"\d{3}[ -]?\d{3}[ -]?\d{4}", r"[0-9][0-9]{2}[ -]?[0-9]{3}[ -]?[0-9]{4}"),
    "IBAN_CODE": (r"[A-Z]{2}\d\d", r"[A-Z][A-Z][0-9][0-9]"),
    # IPv4 "d.d.d.d"; IPv6 has two colons around at most four hex digits somewhere ("::" too)
    "IP_ADDRESS": (
        r"\d\.\d{1,3}\.\d{1,3}\.\d|:[0-9A-Fa-f]{0,4}:",
        r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]|:[0-9A-Fa-f]{0,4}:",
    ),
    # six hex pairs joined by ":" or "-" hold three pairs between separators; three groups of
    # four joined by "." hold one group between dots
    "MAC_ADDRESS": r"[:-][0-9A-Fa-f]{2}[:-][0-9A-Fa-f]{2}[:-][0-9A-Fa-f]{2}[:-]|\.[0-9A-Fa-f]{4}\.",
    # A valid address starts with "bc1" (any case: presidio matches case-insensitively) or
    # with 1 or 3 followed by base58 characters: either way a 1 or a 3 and 25 more.
    "CRYPTO": r"[13][A-Za-z0-9]{25}",
    # two letters and seven digits: the digits alone
    "MEDICAL_LICENSE": (r"\d{7}", r"[0-9][0-9]{6}"),
    # every alternative of presidio's licence patterns holds an ASCII digit
    "US_DRIVER_LICENSE": r"[0-9]",
    "UUID": r"[0-9A-Fa-f]{8}-",
    "URL": r"\.[A-Za-z]|://",
    "EMAIL_ADDRESS": _Literal("@"),
    "OPENAI_API_KEY": _Literal("sk-"),
    "ANTHROPIC_API_KEY": _Literal("sk-ant-"),
    "AWS_ACCESS_KEY_ID": r"A[KS]IA[A-Z0-9]{16}",
    "AWS_SECRET_ACCESS_KEY": lambda text: "secret" in text.casefold(),
    "GITHUB_TOKEN": r"gh[pousr]_|github_pat_",
    "JWT": _Literal("eyJ"),
    "BEARER_TOKEN": lambda text: "bearer" in text.casefold(),
}


#: The phone recognizer's cheap test: four digits with phone punctuation between them, the
#: least :func:`~.recognizers.phone_candidates` keeps (asked only in the RE2 set: with Python's
#: engine the candidate scan itself is as cheap).
_PHONE_GATE = r"\d(?:[ \t().\-/]*\d){3}"


@dataclass(frozen=True)
class EntityTrigger:
    """The two tests of one entity type: a cheap gate, then the exact test."""

    entity: str
    gate: Trigger
    exact: Trigger
    #: Order in which exact tests are asked: cheap ones first (see :func:`select`).
    cost: int
    #: The gate's regular expression (``\d`` for any decimal digit), for the RE2 set; then a
    #: context word must occur too if ``context`` (an RE2 anchor, then ``context_test``).
    #: ``None``: ``gate`` is asked instead.
    pattern: str | None = None
    context: str | None = None
    context_test: Trigger | None = None


class Prefilter:
    """The triggers of a policy, their regular-expression gates asked in one pass."""

    def __init__(self, triggers: Sequence[EntityTrigger], *, use_re2: bool = True) -> None:
        self.triggers = list(triggers)
        patterns: list[str] = []
        #: set index of a gate -> (the trigger's position, set index of its context anchor, its context test)
        self._by_index: dict[int, tuple[int, int | None, Trigger | None]] = {}
        #: the triggers whose gate is not in the set: (position, gate)
        self._asked: list[tuple[int, Trigger]] = []
        for position, trigger in enumerate(self.triggers):
            if trigger.pattern is None:
                self._asked.append((position, trigger.gate))
                continue
            patterns.append(trigger.pattern.replace(r"\d", r"\p{Nd}"))
            gate = len(patterns) - 1
            context = None
            if trigger.context is not None:
                patterns.append(trigger.context)
                context = len(patterns) - 1
            self._by_index[gate] = (position, context, trigger.context_test)
        #: Matches at the end of every text: its absence means RE2 gave up (out of memory for
        #: its automaton, which it reports as "no match"), and the gates are asked one by one.
        self._completed = len(patterns)
        self._set = _compile_set([*patterns, r"\z"]) if use_re2 and patterns else None
        self._gave_up = 0

    @property
    def uses_re2(self) -> bool:
        return self._set is not None

    def select(self, text: str) -> list[str]:
        """The entity types to analyse in ``text`` (see :func:`select`)."""
        if self._set is None:
            return select(self.triggers, text)
        matched = self._set.Match(text)
        if not matched or self._completed not in matched:
            self._gave_up += 1
            if self._gave_up == 1:
                _log.warning("masking pre-filter: RE2 could not finish a text; such texts get the gates one by one")
            return select(self.triggers, text)
        passed = [position for position, gate in self._asked if gate(text)]
        if len(matched) > 1:
            by_index = self._by_index
            for index in matched:
                found = by_index.get(index)
                if found is None:
                    continue  # a context anchor
                position, context, context_test = found
                if context is not None and (context not in matched or not _test(context_test, text)):
                    continue
                passed.append(position)
        if not passed:
            return []
        passed.sort()  # the triggers' own order: cheapest exact test first
        triggers = self.triggers
        return _exact([triggers[p] for p in passed], text)


def _test(test: Trigger | None, text: str) -> bool:
    return test is None or test(text)


def _compile_set(patterns: Sequence[str]) -> Any:
    """One RE2 set of the gates' patterns, or ``None`` without ``google-re2``."""
    try:
        import re2
    except ImportError:
        _log.info("google-re2 is not installed: the masking pre-filter asks its gates one by one")
        return None
    try:
        options = re2.Options()
        gates = re2.Set.SearchSet(options)
        for pattern in patterns:
            gates.Add(pattern)
        gates.Compile()
    except Exception as err:  # a pattern RE2 cannot take: the gates are asked one by one
        _log.warning("masking pre-filter: RE2 could not compile the gates (%s); using Python's engine", err)
        return None
    return gates


#: Relative cost of the exact tests (the rest are 1): presidio's e-mail and IPv6 patterns are
#: slow, and the phone test scans every digit run (its result is reused by the recognizer).
_COSTS = {"IP_ADDRESS": 2, "EMAIL_ADDRESS": 3, "PHONE_NUMBER": 4}
#: Our own secret recognizers: each starts with a literal prefix the cheap trigger already matched.
_LITERAL_GATED = BUILTIN_ENTITIES - {"BEARER_TOKEN", "MEDICAL_RECORD_NUMBER"}


def select(triggers: Sequence[EntityTrigger], text: str) -> list[str]:
    """The entity types to analyse in ``text``; empty when presidio can be skipped.

    Every gate is asked; the exact tests of the types that passed their gate are asked in
    order of cost until one says yes. From then on presidio runs anyway, and running a
    recognizer costs about what its exact test would, so the remaining types are passed to
    presidio untested (presidio's own result is exact). Types whose exact test said no are
    left out.
    """
    return _exact([t for t in triggers if t.gate(text)], text)


def _exact(passed: Sequence[EntityTrigger], text: str) -> list[str]:
    for i, trigger in enumerate(passed):
        if trigger.exact(text):
            return [trigger.entity, *(t.entity for t in passed[i + 1 :])]
    return []


def build_triggers(policy: MaskingPolicy, setup: AnalyzerSetup) -> list[EntityTrigger]:
    """One trigger per entity type the analyzer will be asked about, cheapest first."""
    from .recognizers import CandidatePhoneRecognizer

    rules = setup.rules
    triggers: list[EntityTrigger] = []
    for entity in setup.entities:
        threshold = policy.threshold_for(entity)
        parts: list[Trigger] = []
        always = False
        needs_context = True
        for recognizer in setup.recognizers[entity]:
            if isinstance(recognizer, CandidatePhoneRecognizer):
                parts.append(_has_candidates(recognizer.candidates))
                needs_context = False
                continue
            derived = _pattern_trigger(recognizer, entity, threshold, rules)
            if derived is None:
                always = True
                break
            exact, only_with_context = derived
            if exact is not _NEVER:
                parts.append(exact)
                needs_context = needs_context and only_with_context
        if always:
            triggers.append(EntityTrigger(entity, _always, _always, 0))
            continue
        pattern = _gate_pattern(entity, policy, setup)
        if not parts:
            _log.warning(
                "masking policy %s: %s can never reach its threshold %.2f; it is not analysed",
                policy.version,
                entity,
                threshold,
            )
            continue
        gate = _gate(entity, policy, setup)
        context = context_test = None
        if needs_context:  # only a context word can lift any of its patterns: ask for one first
            gate = _with_context(gate, rules, entity)
            context = rules.anchor_pattern(entity)
            context_test = _context_of(rules, entity)
            if context is None:
                pattern = None
        exact_test = parts[0] if len(parts) == 1 else _any_of(parts)
        cost = 0 if entity in _LITERAL_GATED else _COSTS.get(entity, 1)
        if pattern is None and any(isinstance(r, CandidatePhoneRecognizer) for r in setup.recognizers[entity]):
            pattern = _PHONE_GATE if len(setup.recognizers[entity]) == 1 else None
        triggers.append(EntityTrigger(entity, gate, exact_test, cost, pattern, context, context_test))
    triggers.sort(key=lambda t: t.cost)
    return triggers


def _gate(entity: str, policy: MaskingPolicy, setup: AnalyzerSetup) -> Trigger:
    if entity in setup.custom_entities:
        return _always
    if entity == "MEDICAL_RECORD_NUMBER":
        if policy.mrn_pattern == _SHIPPED_MRN_PATTERN:
            return _mrn_gate
        return _always
    gate = _GATES.get(entity)
    if gate is None:
        return _always
    if callable(gate):
        return gate
    if isinstance(gate, _Literal):
        return lambda text: gate in text
    if isinstance(gate, tuple):
        any_text, ascii_text = re.compile(gate[0]).search, re.compile(gate[1]).search
        return lambda text: (ascii_text if text.isascii() else any_text)(text) is not None
    search = re.compile(gate).search
    return lambda text: search(text) is not None


def _gate_pattern(entity: str, policy: MaskingPolicy, setup: AnalyzerSetup) -> str | None:
    """The gate :func:`_gate` builds as a regular expression for the RE2 set, if it has one."""
    if entity in setup.custom_entities:
        return None
    if entity == "MEDICAL_RECORD_NUMBER":
        return _MRN_GATE if policy.mrn_pattern == _SHIPPED_MRN_PATTERN else None
    gate = _GATES.get(entity)
    if isinstance(gate, _Literal):
        return re.escape(gate)
    if isinstance(gate, tuple):
        return gate[0]
    return gate if isinstance(gate, str) else None


def _context_of(rules: ContextRules, entity: str) -> Trigger:
    return lambda text: rules.search(entity, text)


def _with_context(gate: Trigger, rules: ContextRules, entity: str) -> Trigger:
    return lambda text: gate(text) and rules.anywhere(entity, text)


def _any_of(parts: list[Trigger]) -> Trigger:
    return lambda text: any(part(text) for part in parts)


def _always(text: str) -> bool:
    return True


def _never(text: str) -> bool:
    return False


_NEVER: Trigger = _never


def _pattern_trigger(
    recognizer: EntityRecognizer, entity: str, threshold: float, rules: ContextRules
) -> tuple[Trigger, bool] | None:
    """The exact test for one recognizer, and whether it can only pass with a context word.

    ``None`` if no test can be derived (not a pattern recognizer: always run it); a test that
    is always false if none of its patterns can reach the threshold.
    """
    from presidio_analyzer import Pattern, PatternRecognizer

    from .context import is_weak_number
    from .recognizers import CONTEXT_BOOST, MIN_SCORE_WITH_CONTEXT

    if not isinstance(recognizer, PatternRecognizer):
        return None
    import regex

    validates = type(recognizer).validate_result is not PatternRecognizer.validate_result
    flags = recognizer.global_regex_flags or 0
    # presidio leaves ``patterns`` unannotated (mypy cannot infer it); it is a list of Pattern.
    patterns: list[Pattern] = getattr(recognizer, "patterns", [])
    strong: list[Any] = []
    weak: list[Any] = []
    for pattern in patterns:
        compiled = regex.compile(pattern.regex, flags=flags)
        if validates or pattern.score >= threshold:
            strong.append(compiled)
        elif min(1.0, max(pattern.score + CONTEXT_BOOST, MIN_SCORE_WITH_CONTEXT)) >= threshold:
            weak.append(compiled)
    if not strong and not (weak and rules.has_positive(entity)):
        return _NEVER, True
    weak_rule = entity in rules.weak_needs_context

    def test(text: str) -> bool:
        context = None
        if strong:
            if weak_rule:
                context = rules.anywhere(entity, text)
                if context:
                    if _any_search(strong, text):
                        return True
                elif any(not is_weak_number(m.group()) for p in strong for m in p.finditer(text)):
                    return True
            elif _any_search(strong, text):
                return True
        if weak:
            if context is None:
                context = rules.anywhere(entity, text)
            return context and _any_search(weak, text)
        return False

    return test, not strong


def _has_candidates(candidates: Callable[[str], list[tuple[int, int]]]) -> Trigger:
    return lambda text: bool(candidates(text))


def _any_search(patterns: Sequence[Any], text: str) -> bool:
    return any(p.search(text) is not None for p in patterns)
