"""The recognizers: presidio's predefined pattern set, plus what LLM traffic leaks most.

Everything here runs offline by construction:

* the NLP engine is presidio's ``no_op`` engine (no spaCy model), unless the policy names a
  model that is installed;
* e-mail validation uses a private ``tldextract`` extractor with no suffix-list URL and no
  disk cache, so it neither fetches publicsuffix.org nor depends on the process having set
  ``TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS`` before someone else imported ``tldextract``.

This module imports presidio; import it lazily (the engine does).
"""

from __future__ import annotations

import os

# Before anything imports tldextract (presidio does): a module-level extractor reads it once.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import base64
import binascii
import inspect
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import regex
import tldextract
from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer import predefined_recognizers as _predefined
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine, NlpEngineProvider
from presidio_analyzer.predefined_recognizers import EmailRecognizer, MedicalLicenseRecognizer, PhoneRecognizer

from .context import ContextRules, is_weak_number
from .errors import MaskingConfigError
from .policy import MaskingPolicy

__all__ = [
    "CONTEXT_BOOST",
    "MIN_SCORE_WITH_CONTEXT",
    "AnalyzerSetup",
    "CandidatePhoneRecognizer",
    "OfflineEmailRecognizer",
    "TextWindowContextEnhancer",
    "build_analyzer",
    "builtin_recognizers",
]

_log = logging.getLogger(__name__)

#: How much a context word adds to a score, and the floor it lifts a score to: presidio's
#: ``LemmaContextAwareEnhancer`` defaults, so scores mean what presidio's documentation says.
CONTEXT_BOOST = 0.35
MIN_SCORE_WITH_CONTEXT = 0.4

#: Case-sensitive, as secrets and identifiers are; presidio's default adds IGNORECASE.
_CASE_SENSITIVE = regex.DOTALL | regex.MULTILINE

_LANGUAGE = "en"

#: spaCy labels mapped to presidio entity types, for the optional NER model; everything else
#: (ORG, DATE, CARDINAL, ...) is ignored: presidio's default keeps ORG, which turns "SSN" and
#: "Grafana" into organisations.
_NER_MAPPING = {
    "PER": "PERSON",
    "PERSON": "PERSON",
    "LOC": "LOCATION",
    "GPE": "LOCATION",
    "FAC": "LOCATION",
    "NORP": "NRP",
}
_NER_IGNORED = [
    "ORG",
    "ORGANIZATION",
    "CARDINAL",
    "ORDINAL",
    "QUANTITY",
    "MONEY",
    "PERCENT",
    "DATE",
    "TIME",
    "PRODUCT",
    "LANGUAGE",
    "LAW",
    "EVENT",
    "WORK_OF_ART",
    "MISC",
]


# --------------------------------------------------------------------------------------------
# presidio recognizers, adjusted


#: Local parts that are credentials, not mailboxes: ``https://ghp_...@github.com/org/repo``.
_CREDENTIAL_LOCAL_PART = re.compile(
    r"(?:gh[pousr]_|github_pat_|glpat-|sk-|x-access-token:|oauth2:)|(?:AKIA|ASIA)[A-Z0-9]{16}"
)


class OfflineEmailRecognizer(EmailRecognizer):
    """presidio's e-mail recognizer, validating domains against the bundled suffix list only.

    It also refuses an "address" whose local part is a credential (a token in a clone URL's
    user-info): the secret recognizers mask the credential under its own type, and the host
    after it is not personal data.

    Its pattern does not let a local part contain "/", "=", "?" or "&" (which the RFC allows
    and nobody uses): presidio's does, so in "GET /api/users/jane@example.com" it matched
    "users/jane@example.com", whose "host" ``users`` then failed validation, and the address
    was not masked at all; in a URL it swallowed the host, in a query string the key name.
    """

    _extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

    def __init__(self, **kwargs: Any) -> None:
        patterns = [Pattern(p.name, _without_separators(p.regex), p.score) for p in EmailRecognizer.PATTERNS]
        super().__init__(patterns=patterns, **kwargs)

    def validate_result(self, pattern_text: str) -> bool:
        if _CREDENTIAL_LOCAL_PART.match(pattern_text):
            return False
        return bool(self._extractor(pattern_text).fqdn)


#: The local part's special characters in presidio's e-mail pattern, and ours: without the
#: path and query separators "/", "=", "?" and "&".
_PRESIDIO_LOCAL_SPECIALS = "!#$%&'*+\\-/=?^_`{|}~"
_OUR_LOCAL_SPECIALS = "!#$%'*+\\-^_`{|}~"


def _without_separators(regex: str) -> str:
    """presidio's e-mail pattern with path and query separators taken out of the local part."""
    changed = regex.replace(_PRESIDIO_LOCAL_SPECIALS, _OUR_LOCAL_SPECIALS)
    if changed == regex:  # presidio changed its pattern: keep it, and say the fix did not apply
        _log.warning("otel-llm-audit: presidio's e-mail pattern changed; '/' before an address is not handled")
    return changed


class BoundedMedicalLicenseRecognizer(MedicalLicenseRecognizer):
    """presidio's DEA number recognizer, required to stand alone as a word.

    The stock pattern has no boundaries, so it finds a checksum-valid "DEA number" in about
    one of ten hex trace ids, commit SHAs and request ids ("...bda2931017..."), the very
    values an investigator needs.
    """

    def __init__(self, **kwargs: Any) -> None:
        bounded = [
            Pattern(p.name, r"(?<![A-Za-z0-9])(?:" + p.regex + r")(?![A-Za-z0-9])", p.score)
            for p in MedicalLicenseRecognizer.PATTERNS
        ]
        super().__init__(patterns=bounded, **kwargs)


#: Runs of digits and phone punctuation: where ``phonenumbers`` could possibly find a number.
_PHONE_RUN = re.compile(r"[+(]?\d(?:[ \t().\-/]*\d){3,}")
_MIN_PHONE_DIGITS = 4  # the shortest valid number in any region (German numbers) has four
_PHONE_WINDOW = 4  # phonenumbers looks one character before a number and ":dd" after it

#: Shapes of a whole run that are not phone numbers: dotted versions and IPv4 addresses
#: ("3.12.1", "10.0.19045.3570"; but "415.555.0143" is a phone number), decimals ("234.56"
#: of "$1,234.56"), slashed dates. ``phonenumbers`` accepts a sixth of four-part versions as
#: valid numbers somewhere, and spends time on all of these.
_NOT_PHONE = re.compile(
    r"(?!\d{3}\.\d{3}\.\d{4}$)\d{1,3}(?:\.\d{1,5}){2,3}"
    r"|\d+\.\d{1,3}"
    r"|\d{1,2}/\d{1,2}/\d{2,4}"
)
#: An ISO date at the start of a run ("2026-11-26 10" when a time follows): cut off.
_DATE_PREFIX = re.compile(r"\d{4}-\d{1,2}-\d{1,2}(?![\d\-/])[ \t]*")


def _glued(text: str, start: int, end: int) -> bool:
    """Whether the run is part of an identifier: a letter touches it, or a "-"/"_" and a letter.

    "PO-2026-05590", UUID fragments, "api-7f9c6d5b8-52283", "2026-11-26T10": identifiers and
    timestamps, not phone numbers. (phonenumbers itself rejects a number that touches a letter,
    but only after parsing it in every region.)
    """
    if start > 0:
        before = text[start - 1]
        if before.isalpha() or (before in "-_" and start > 1 and text[start - 2].isalnum()):
            return True
    if end < len(text):
        after = text[end]
        if after.isalpha() or (after in "-_" and end + 1 < len(text) and text[end + 1].isalnum()):
            return True
    return False


def phone_candidates(text: str, rules: ContextRules, entity: str = "PHONE_NUMBER") -> list[tuple[int, int]]:
    """Spans of ``text`` worth giving to ``phonenumbers``: everything else cannot be kept.

    A run of fewer than four digits is never a valid number. Versions, IP addresses, decimals,
    dates and identifiers are not phone numbers (``_NOT_PHONE``, ``_DATE_PREFIX``,
    :func:`_glued`). A weakly formatted number (see :func:`~.context.is_weak_number`) is only
    kept as a phone number with a context word (``require_context_for_weak_numbers``), and
    every match inside a weak run is itself weak, so without a context word the run is
    skipped. The context test uses the run's window, which contains the window of any match
    inside it.
    """
    weak_rule = entity in rules.weak_needs_context
    spans = []
    for match in _PHONE_RUN.finditer(text):
        start, end = match.span()
        value = match.group()
        date = _DATE_PREFIX.match(value)
        if date is not None:
            start += date.end()
            value = value[date.end() :]
        if sum(ch.isdigit() for ch in value) < _MIN_PHONE_DIGITS:
            continue
        if _NOT_PHONE.fullmatch(value) is not None or _glued(text, start, end):
            continue
        if weak_rule and is_weak_number(value) and not rules.supports(entity, text, start, end):
            continue
        spans.append((start, end))
    return spans


class CandidatePhoneRecognizer(PhoneRecognizer):
    """presidio's phone recognizer, run on the few windows that could hold a kept number.

    The stock recognizer hands the whole text to ``phonenumbers`` once per region (eight by
    default), and ``phonenumbers`` tries to parse every digit group it meets: dates, ports,
    versions, ids. That is most of presidio's time on technical text. Here the same matcher
    runs on a window around each candidate run (see :func:`phone_candidates`); the window
    keeps enough neighbours for ``phonenumbers``' own checks (a letter just before, a time
    suffix just after), and only matches overlapping the run are kept.
    """

    def __init__(self, rules: ContextRules, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rules = rules
        self._last = threading.local()

    def candidates(self, text: str) -> list[tuple[int, int]]:
        """:func:`phone_candidates` of ``text``, remembered for the next call in this thread.

        The pre-filter asks first, then presidio runs this recognizer on the same text.
        """
        last = getattr(self._last, "value", None)
        if last is not None and last[0] is text:
            spans: list[tuple[int, int]] = last[1]
            return spans
        spans = phone_candidates(text, self._rules, self.supported_entities[0])
        self._last.value = (text, spans)
        return spans

    def remember(self, text: str, spans: list[tuple[int, int]]) -> None:
        """Narrow the candidates of ``text`` for the next :meth:`analyze` in this thread."""
        self._last.value = (text, spans)

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        for start, end in self.candidates(text):
            lo = max(0, start - _PHONE_WINDOW)
            hi = min(len(text), end + _PHONE_WINDOW)
            for result in super().analyze(text[lo:hi], entities, cast(NlpArtifacts, nlp_artifacts)):
                result.start += lo
                result.end += lo
                if result.start < end and result.end > start:
                    results.append(result)
        return EntityRecognizer.remove_duplicates(results)


# --------------------------------------------------------------------------------------------
# this package's recognizers: secrets and medical record numbers


def _b64url_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded))


class SecretRecognizer(PatternRecognizer):
    """A case-sensitive pattern recognizer for a kind of credential.

    ``validate`` rejects look-alikes the pattern alone would take ("sk-learn-compatible-
    estimator" has the shape of an API key but no digit): random tokens of this length
    virtually always mix letters and digits.
    """

    def __init__(
        self,
        entity: str,
        patterns: Sequence[tuple[str, float]],
        *,
        validate: Callable[[str], bool] | None = None,
        context: Sequence[str] = (),
    ) -> None:
        super().__init__(
            supported_entity=entity,
            name=f"llm_audit_{entity.lower()}",
            patterns=[Pattern(f"{entity.lower()}_{i}", p, s) for i, (p, s) in enumerate(patterns)],
            context=list(context),
            global_regex_flags=_CASE_SENSITIVE,
        )
        self._validate = validate

    def validate_result(self, pattern_text: str) -> bool | None:
        if self._validate is None or self._validate(pattern_text):
            return None  # keep the pattern's score
        return False


def _mixed(token: str) -> bool:
    return any(c.isdigit() for c in token) and any(c.isalpha() for c in token)


def _jwt_header_ok(token: str) -> bool:
    try:
        header = _b64url_json(token.split(".", 1)[0])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and ("alg" in header or "typ" in header or "enc" in header)


def builtin_recognizers(policy: MaskingPolicy) -> dict[str, EntityRecognizer]:
    """This package's recognizers by entity type (all of them; the caller picks the enabled)."""
    return {
        "OPENAI_API_KEY": SecretRecognizer(
            "OPENAI_API_KEY",
            [(r"\bsk-(?!ant-)(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_-]{32,}", 0.95)],
            validate=_mixed,
        ),
        "ANTHROPIC_API_KEY": SecretRecognizer(
            "ANTHROPIC_API_KEY", [(r"\bsk-ant-(?:[a-z]+[0-9]*-)?[A-Za-z0-9_-]{32,}", 0.95)], validate=_mixed
        ),
        "AWS_ACCESS_KEY_ID": SecretRecognizer("AWS_ACCESS_KEY_ID", [(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", 0.95)]),
        "AWS_SECRET_ACCESS_KEY": SecretRecognizer(
            "AWS_SECRET_ACCESS_KEY",
            [
                (
                    r"(?i:(?<=\b(?:aws_?secret_?access_?key|secret_?access_?key|aws secret access key)"
                    r"[\"']?\s*[:=]\s*[\"']?))[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])",
                    0.9,
                )
            ],
            validate=_mixed,
        ),
        "GITHUB_TOKEN": SecretRecognizer(
            "GITHUB_TOKEN",
            [(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,255})\b", 0.95)],
        ),
        "JWT": SecretRecognizer(
            "JWT",
            [(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", 0.95)],
            validate=_jwt_header_ok,
        ),
        "BEARER_TOKEN": SecretRecognizer(
            "BEARER_TOKEN", [(r"(?i:(?<=\bbearer[ \t]{1,4}))[A-Za-z0-9\-._~+/]{16,}=*", 0.9)], validate=_mixed
        ),
        "MEDICAL_RECORD_NUMBER": PatternRecognizer(
            supported_entity="MEDICAL_RECORD_NUMBER",
            name="llm_audit_medical_record_number",
            patterns=[Pattern("mrn", policy.mrn_pattern, 0.9)],
            global_regex_flags=_CASE_SENSITIVE,
        ),
    }


# --------------------------------------------------------------------------------------------
# context


class TextWindowContextEnhancer(ContextAwareEnhancer):
    """Context from the raw text around each match (see :mod:`.context`), no tokens needed.

    Also applies the two rules that need the same look-around: a negative context word sets
    the score to 0 (presidio then drops the result), and a weak number of a type in
    ``require_context_for_weak_numbers`` is dropped unless a context word supports it.
    """

    def __init__(self, rules: ContextRules) -> None:
        super().__init__(
            context_similarity_factor=CONTEXT_BOOST,
            min_score_with_context_similarity=MIN_SCORE_WITH_CONTEXT,
            context_prefix_count=0,
            context_suffix_count=0,
        )
        self.rules = rules

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[RecognizerResult],
        nlp_artifacts: NlpArtifacts | None,
        recognizers: list[EntityRecognizer],
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        rules = self.rules
        for result in raw_results:
            entity, start, end = result.entity_type, result.start, result.end
            if rules.vetoes(entity, text, start, end):
                result.score = 0.0
                continue
            supported = rules.supports(entity, text, start, end)
            if entity in rules.weak_needs_context and not supported and is_weak_number(text[start:end]):
                result.score = 0.0
                continue
            if supported and not (result.recognition_metadata or {}).get(
                RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY
            ):
                result.score = min(1.0, max(result.score + CONTEXT_BOOST, MIN_SCORE_WITH_CONTEXT))
        return raw_results


# --------------------------------------------------------------------------------------------
# assembling the analyzer


@dataclass
class AnalyzerSetup:
    """A built analyzer and what the engine needs to know about it."""

    analyzer: AnalyzerEngine
    rules: ContextRules
    #: Enabled entity types with at least one recognizer, in policy order.
    entities: tuple[str, ...]
    #: Recognizers per entity type.
    recognizers: Mapping[str, tuple[EntityRecognizer, ...]]
    ner_entities: tuple[str, ...]
    #: Entity types that a custom recognizer of the policy also detects.
    custom_entities: frozenset[str]


def _nlp_engine(policy: MaskingPolicy) -> NlpEngine:
    if policy.ner_model is None:
        config: dict[str, Any] = {
            "nlp_engine_name": "no_op",
            "models": [{"lang_code": _LANGUAGE, "model_name": "no_op"}],
        }
    else:
        import spacy.util

        model = policy.ner_model
        path = Path(model).expanduser()
        if path.is_dir():
            model = str(path)
        elif not spacy.util.is_package(model):
            # policy.load checked this; the environment may have changed since. presidio
            # would download the model here, which this package never lets it do.
            raise MaskingConfigError(f"{policy.source}: ner_model: spaCy model {model!r} is not installed")
        config = {
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": _LANGUAGE, "model_name": model}],
            "ner_model_configuration": {
                "model_to_presidio_entity_mapping": _NER_MAPPING,
                "labels_to_ignore": _NER_IGNORED,
                "low_confidence_score_multiplier": 0.4,
                "low_score_entity_names": [],
            },
        }
    try:
        return NlpEngineProvider(nlp_configuration=config).create_engine()
    except (OSError, ValueError, ImportError) as exc:
        raise MaskingConfigError(f"{policy.source}: ner_model: cannot load {policy.ner_model!r}: {exc}") from exc


def _extra_predefined(entity: str) -> EntityRecognizer | None:
    """A presidio predefined pattern recognizer for ``entity`` that is off by default."""
    for _, cls in inspect.getmembers(_predefined, inspect.isclass):
        if not issubclass(cls, PatternRecognizer) or cls is PatternRecognizer:
            continue
        factory: Callable[..., EntityRecognizer] = cls
        try:
            recognizer = factory(supported_language=_LANGUAGE)
        except Exception:  # a recognizer that needs more arguments is not a candidate
            continue
        if entity in recognizer.supported_entities:
            return recognizer
    return None


def _quiet_language_skips(record: logging.LogRecord) -> bool:
    """Drop presidio's warning for each non-English recognizer it skips (a dozen per build)."""
    return not str(record.msg).startswith("Recognizer not added to registry because language")


def _keep_phone_patterns() -> None:
    """Let ``phonenumbers`` keep its compiled metadata patterns (its own switch, off by default).

    Without it each parse compiles region patterns through ``re.compile`` and relies on the
    ``re`` module's cache of 512, which every other library in the process shares: in an
    application that also runs an SDK, HTTP and OpenTelemetry code, the patterns drop out and
    are compiled again and again. Measured (callgrind, masking 105 prose spans through the
    pipeline): a third of the masking thread's instructions were recompilations.
    """
    try:
        import phonenumbers

        enable = getattr(phonenumbers, "enable_pattern_cache", None)
        if callable(enable):  # phonenumbers releases before it simply recompile
            enable()
    except Exception as err:  # an optimisation only: never a reason not to mask
        _log.debug("phonenumbers pattern cache not enabled: %s", err)


def build_analyzer(policy: MaskingPolicy, *, stock: bool = False) -> AnalyzerSetup:
    """Build the presidio analyzer for ``policy``.

    ``stock=True`` keeps presidio's own e-mail and phone recognizers (the benchmark's
    reference: plain presidio with the same configuration); the engine uses the offline
    e-mail and the candidate-window phone recognizers.
    """
    enabled = list(policy.entities)
    _keep_phone_patterns()
    nlp_engine = _nlp_engine(policy)
    registry = RecognizerRegistry(supported_languages=[_LANGUAGE])
    presidio_log = logging.getLogger("presidio-analyzer")
    presidio_log.addFilter(_quiet_language_skips)
    try:
        registry.load_predefined_recognizers(languages=[_LANGUAGE], nlp_engine=nlp_engine)
    finally:
        presidio_log.removeFilter(_quiet_language_skips)
    predefined: list[EntityRecognizer] = list(registry.recognizers)

    positive: dict[str, set[str]] = {}
    for recognizer in predefined:
        for entity in recognizer.supported_entities:
            positive.setdefault(entity, set()).update(recognizer.context or ())
    for custom in policy.custom_recognizers:
        positive.setdefault(custom.entity, set()).update(custom.context)
    for entity, words in policy.context_words.items():
        positive[entity] = set(words)
    rules = ContextRules(
        positive,
        policy.negative_context,
        before=policy.context_chars_before,
        after=policy.context_chars_after,
        weak_needs_context=policy.require_context_for_weak_numbers,
    )

    chosen: list[EntityRecognizer] = []
    ner_entities: list[str] = []
    for recognizer in predefined:
        kept = [e for e in recognizer.supported_entities if e in enabled or e in policy.ner_entities]
        if not kept:
            continue
        if (
            policy.ner_model is not None
            and not isinstance(recognizer, PatternRecognizer)
            and not isinstance(recognizer, PhoneRecognizer)
        ):
            ner_entities.extend(e for e in kept if e in policy.ner_entities)
            chosen.append(recognizer)
            continue
        if not stock and isinstance(recognizer, EmailRecognizer):
            recognizer = OfflineEmailRecognizer()
        elif not stock and isinstance(recognizer, PhoneRecognizer):
            recognizer = CandidatePhoneRecognizer(rules)
        elif not stock and isinstance(recognizer, MedicalLicenseRecognizer):
            recognizer = BoundedMedicalLicenseRecognizer()
        chosen.append(recognizer)

    builtins = builtin_recognizers(policy)
    covered = {e for r in chosen for e in r.supported_entities}
    for entity in enabled:
        if entity in builtins and entity not in covered:
            chosen.append(builtins[entity])
            covered.add(entity)
    for custom in policy.custom_recognizers:
        chosen.append(
            PatternRecognizer(
                supported_entity=custom.entity,
                name=f"custom_{custom.name}",
                patterns=[Pattern(custom.name, custom.regex, custom.score)],
                context=list(custom.context),
                global_regex_flags=_CASE_SENSITIVE,
            )
        )
        covered.add(custom.entity)
    deny_entities = {rule.entity for rule in policy.deny_list}
    missing = [e for e in enabled if e not in covered and e not in deny_entities]
    for entity in list(missing):
        extra = _extra_predefined(entity)
        if extra is not None:
            chosen.append(extra)
            covered.add(entity)
            missing.remove(entity)
    if missing:
        raise MaskingConfigError(
            f"{policy.source}: entities: no recognizer for {missing}; declare a custom_recognizer for "
            "it, or use one of presidio's predefined types or this package's built-in types"
        )

    registry.recognizers = chosen
    analyzer = AnalyzerEngine(
        registry=registry,
        nlp_engine=nlp_engine,
        supported_languages=[_LANGUAGE],
        context_aware_enhancer=TextWindowContextEnhancer(rules),
        default_score_threshold=0.0,
    )
    by_entity: dict[str, list[EntityRecognizer]] = {}
    for recognizer in chosen:
        for entity in recognizer.supported_entities:
            by_entity.setdefault(entity, []).append(recognizer)
    entities = tuple(e for e in enabled if e in by_entity)
    return AnalyzerSetup(
        analyzer=analyzer,
        rules=rules,
        entities=entities,
        recognizers={e: tuple(rs) for e, rs in by_entity.items()},
        ner_entities=tuple(dict.fromkeys(ner_entities)),
        custom_entities=frozenset(c.entity for c in policy.custom_recognizers),
    )
