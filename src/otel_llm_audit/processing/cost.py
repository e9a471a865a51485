"""What an LLM call cost, from its token counts and a price table.

The price table ships with the package (``prices.yaml`` beside this module) so a cost can be
put on every span without a network call; override files (YAML or JSON, same format) layer
corrections and private prices on top, e.g. negotiated discounts or a model released after
this package. Nothing here fetches prices from anywhere.

Token counts follow the OpenTelemetry GenAI conventions: ``gen_ai.usage.input_tokens``
*includes* cache-read and cache-write tokens, and ``gen_ai.usage.output_tokens`` *includes*
reasoning tokens. Each part is priced at its own rate when the table has one and at the plain
input or output rate otherwise.

A model the table cannot price gets no cost (``None``) rather than a guess: an audit trail with
a missing number is honest, one with a wrong number is not. That is why model-name resolution
is careful about which near-misses it accepts (see :meth:`PriceTable.price_for`).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "PRICES_ENV",
    "Cost",
    "ModelPrice",
    "PriceTable",
    "PriceTableError",
    "default_price_table",
]

#: Environment variable naming extra price files, separated by ``os.pathsep``.
PRICES_ENV = "OTEL_LLM_AUDIT_PRICES"

_SHIPPED_PACKAGE = "otel_llm_audit.processing"
_SHIPPED_NAME = "prices.yaml"
_SHIPPED_LABEL = "otel_llm_audit/processing/prices.yaml"

_CURRENCY = "USD"
_UNIT = "per_million_tokens"
_PER = 1_000_000
_DECIMALS = 10

#: Bound on the memoised (provider, model) -> price lookups per table. Real deployments see a
#: handful of distinct models; the bound only stops unbounded growth from odd model strings.
_LOOKUP_CACHE_SIZE = 4096

_TOP_KEYS = frozenset({"version", "effective_date", "currency", "unit", "providers"})
_PROVIDER_KEYS = frozenset({"models", "inherits", "note"})
_MODEL_KEYS = frozenset({"input", "output", "cached_input", "cache_write", "reasoning", "aliases", "note"})

#: Snapshot and version suffixes that name a release of a model priced like the base model,
#: stripped one at a time (a Bedrock id can carry a date and a version: ``-20250219-v1:0``).
_SUFFIXES = (
    re.compile(r"[-@]\d{4}-\d{2}-\d{2}$"),  # gpt-4o-2024-08-06
    re.compile(r"[-@]\d{8}$"),  # claude-sonnet-4-20250514, claude-sonnet-4@20250514 (Vertex)
    re.compile(r"-v\d+(?::[0-9a-z]+)*$"),  # anthropic.claude-3-7-sonnet-...-v1:0, ...-v1
    re.compile(r"-latest$"),  # claude-3-7-sonnet-latest
    re.compile(r"-\d{3,4}$"),  # gemini-2.0-flash-001, gpt-4-0613
)

#: Words that, after a registered name, mean a different tier or modality with a different
#: price: ``o3-pro`` is not ``o3``, ``gpt-5.1-codex-mini`` is not ``gpt-5.1``, a realtime or
#: audio model bills audio tokens the table does not know. The prefix fallback refuses them.
_VARIANT_WORDS = frozenset(
    {
        "audio",
        "flash",
        "haiku",
        "image",
        "large",
        "lite",
        "max",
        "medium",
        "micro",
        "mini",
        "nano",
        "opus",
        "plus",
        "pro",
        "realtime",
        "research",
        "small",
        "sonnet",
        "transcribe",
        "tts",
        "turbo",
        "ultra",
    }
)


class PriceTableError(ValueError):
    """A price file could not be read or does not follow the format.

    Carries the file (``path``) and what is wrong with it (``reason``) so a misconfigured
    override is reported where it can be fixed instead of silently mispricing calls.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """List prices of one model, in USD per million tokens.

    ``None`` for an optional rate means "no separate rate": cache reads and writes are then
    charged as plain input and reasoning tokens as plain output.
    """

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None


@dataclass(frozen=True, slots=True)
class Cost:
    """The cost of one call in USD, rounded to 10 decimal places.

    ``input_usd`` includes cache reads and writes; ``output_usd`` includes reasoning.
    """

    total_usd: float
    input_usd: float
    output_usd: float


class PriceTable:
    """Prices by provider and model, with the lookup rules that map model ids onto them.

    Immutable once built and safe to share between threads. Build it with :meth:`load`.
    """

    def __init__(
        self,
        version: str,
        effective_date: str,
        prices: Mapping[str, Mapping[str, ModelPrice]],
    ) -> None:
        """A table from already-resolved prices.

        ``prices`` maps provider -> name -> price, where names include aliases and inherited
        models. Most callers want :meth:`load` instead.
        """
        self.version = version
        self.effective_date = effective_date
        self._prices: dict[str, dict[str, ModelPrice]] = {
            provider.lower(): {name.lower(): price for name, price in models.items()}
            for provider, models in prices.items()
        }
        # Memoised per instance (an lru_cache on the method would keep every table alive).
        self._lookup: Callable[[str, str], ModelPrice | None] = functools.lru_cache(maxsize=_LOOKUP_CACHE_SIZE)(
            self._resolve
        )

    def __repr__(self) -> str:
        return f"PriceTable(version={self.version!r}, effective_date={self.effective_date!r})"

    @classmethod
    def load(cls, *override_paths: str | os.PathLike[str]) -> PriceTable:
        """The shipped table, then each override file in order.

        An override adds models or replaces them whole, per provider and model; it may also
        set a provider's ``inherits``. Its ``version`` key (or, without one, its file stem) is
        appended to the version, so every cost can be traced to the prices used:
        ``2026-11-26.1+negotiated``. A missing or malformed file raises
        :class:`PriceTableError` naming it.
        """
        shipped_text = resources.files(_SHIPPED_PACKAGE).joinpath(_SHIPPED_NAME).read_text("utf-8")
        shipped = _parse_document(_load_yaml(shipped_text, _SHIPPED_LABEL), _SHIPPED_LABEL, shipped=True)
        version = shipped.version or ""
        effective_date = shipped.effective_date or ""
        providers = dict(shipped.providers)
        for raw_path in override_paths:
            path = os.fspath(raw_path)
            doc = _parse_document(_read_file(path), path, shipped=False)
            version += "+" + (doc.version or Path(path).stem)
            if doc.effective_date:
                effective_date = doc.effective_date
            for name, spec in doc.providers.items():
                base = providers.get(name)
                if base is None:
                    providers[name] = spec
                    continue
                providers[name] = _ProviderSpec(
                    source=spec.source if spec.inherits_set else base.source,
                    inherits=spec.inherits if spec.inherits_set else base.inherits,
                    inherits_set=spec.inherits_set or base.inherits_set,
                    models={**base.models, **spec.models},
                )
        return cls(version, effective_date, _flatten(providers))

    def price_for(self, provider: str, model: str) -> ModelPrice | None:
        """The price of ``model`` as served by ``provider``, or ``None`` if unknown.

        Resolution, first hit wins:

        1. the name as given (lower-cased; for ARNs and resource paths such as
           ``.../foundation-model/anthropic.claude-...`` or ``models/gemini-2.5-pro``, the part
           after the last ``/``), then as an alias;
        2. the same after stripping snapshot suffixes one at a time: ``-2024-08-06``,
           ``-20250514``, ``@20250514``, ``-v1:0``, ``-latest``, ``-001``;
        3. the longest registered name that the stripped id extends at a ``-`` boundary, so
           ``gpt-4o-mini-search-preview`` is ``gpt-4o-mini`` (not ``gpt-4o``) — except when the
           rest starts with a digit (``claude-opus-4-9`` is a new version, not
           ``claude-opus-4``) or names another tier (``-mini``, ``-pro``, ``-realtime``, ...),
           since those are priced differently.

        ``provider`` is ``gen_ai.provider.name``; providers marked ``inherits`` (Azure OpenAI,
        Vertex AI) see their parent's models too. Results are memoised.
        """
        return self._lookup(provider, model)

    def cost(
        self,
        provider: str,
        model: str,
        *,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> Cost | None:
        """The cost of one call, or ``None`` when the model has no price or no usage was seen.

        ``input_tokens`` includes ``cache_read_tokens`` and ``cache_write_tokens``, and
        ``output_tokens`` includes ``reasoning_tokens`` (GenAI semantic conventions). A count
        that is missing is taken as zero as long as the other side is present (an embedding
        call has no output tokens). If the cache counts exceed the input count, the uncached
        part is taken as zero rather than negative, and likewise for reasoning; cached and
        reasoning tokens are still charged as reported.
        """
        if input_tokens is None and output_tokens is None:
            return None
        price = self.price_for(provider, model)
        if price is None:
            return None
        total_in = _count(input_tokens)
        cache_read = _count(cache_read_tokens)
        cache_write = _count(cache_write_tokens)
        total_out = _count(output_tokens)
        reasoning = _count(reasoning_tokens)
        uncached = max(total_in - cache_read - cache_write, 0)
        visible = max(total_out - reasoning, 0)

        input_usd = (
            _usd(uncached, price.input)
            + _usd(cache_read, _or(price.cached_input, price.input))
            + _usd(cache_write, _or(price.cache_write, price.input))
        )
        output_usd = _usd(visible, price.output) + _usd(reasoning, _or(price.reasoning, price.output))
        input_usd = round(input_usd, _DECIMALS)
        output_usd = round(output_usd, _DECIMALS)
        return Cost(
            total_usd=round(input_usd + output_usd, _DECIMALS),
            input_usd=input_usd,
            output_usd=output_usd,
        )

    def _resolve(self, provider: str, model: str) -> ModelPrice | None:
        models = self._prices.get(provider.strip().lower())
        if not models:
            return None
        name = model.strip().lower()
        if not name:
            return None
        candidates = [name]
        if "/" in name:
            candidates.append(name.rsplit("/", 1)[1])
        stripped = name
        for candidate in candidates:
            found, stripped = _exact_or_stripped(models, candidate)
            if found is not None:
                return found
        return _longest_prefix(models, stripped)


def _exact_or_stripped(models: Mapping[str, ModelPrice], name: str) -> tuple[ModelPrice | None, str]:
    """Exact (or alias) match on ``name``, then on it with snapshot suffixes peeled off."""
    current = name
    while current:
        found = models.get(current)
        if found is not None:
            return found, current
        for pattern in _SUFFIXES:
            shorter = pattern.sub("", current)
            if shorter != current:
                current = shorter
                break
        else:
            return None, current
    return None, current


def _longest_prefix(models: Mapping[str, ModelPrice], name: str) -> ModelPrice | None:
    """The longest registered name that ``name`` extends with an acceptable variant suffix."""
    best: str | None = None
    for key in models:
        extends = len(key) < len(name) and name.startswith(key) and name[len(key)] == "-"
        if extends and (best is None or len(key) > len(best)):
            best = key
    if best is None:
        return None
    rest = name[len(best) + 1 :]
    words = [w for w in re.split(r"[-._:]", rest) if w]
    if not words or words[0][0].isdigit() or any(w in _VARIANT_WORDS for w in words):
        return None
    return models[best]


def _count(tokens: int | None) -> int:
    return max(int(tokens), 0) if tokens is not None else 0


def _or(rate: float | None, fallback: float) -> float:
    return fallback if rate is None else rate


def _usd(tokens: int, rate_per_million: float) -> float:
    return tokens * rate_per_million / _PER if tokens else 0.0


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True, slots=True)
class _ModelSpec:
    price: ModelPrice
    aliases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _ProviderSpec:
    source: str
    inherits: str | None
    #: Whether the file said anything about ``inherits`` (an override may set it to null).
    inherits_set: bool
    models: dict[str, _ModelSpec] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Document:
    version: str | None
    effective_date: str | None
    providers: dict[str, _ProviderSpec]


def _read_file(path: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PriceTableError(path, "price file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PriceTableError(path, f"cannot read price file: {err}") from None
    if path.lower().endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise PriceTableError(path, f"not valid JSON: {err}") from None
    return _load_yaml(text, path)


def _load_yaml(text: str, path: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise PriceTableError(path, f"not valid YAML: {err}") from None


def _parse_document(data: Any, path: str, *, shipped: bool) -> _Document:
    if not isinstance(data, dict):
        raise PriceTableError(path, "expected a mapping with a 'providers' key at the top level")
    _no_unknown_keys(data, _TOP_KEYS, path, "top level")
    version = _optional_text(data, "version", path)
    effective_date = _optional_text(data, "effective_date", path)
    if shipped and (not version or not effective_date):
        raise PriceTableError(path, "the shipped table needs 'version' and 'effective_date'")
    for key, expected in (("currency", _CURRENCY), ("unit", _UNIT)):
        value = data.get(key)
        if value is None and shipped:
            raise PriceTableError(path, f"the shipped table needs '{key}: {expected}'")
        if value is not None and value != expected:
            raise PriceTableError(path, f"'{key}' must be {expected!r}, got {value!r}")
    raw_providers = data.get("providers")
    if not isinstance(raw_providers, dict) or not raw_providers:
        raise PriceTableError(path, "'providers' must be a non-empty mapping")
    providers: dict[str, _ProviderSpec] = {}
    for raw_name, raw_spec in raw_providers.items():
        name = _name(raw_name, path, "provider name")
        providers[name] = _parse_provider(raw_spec, path, name)
    return _Document(version=version, effective_date=effective_date, providers=providers)


def _parse_provider(data: Any, path: str, provider: str) -> _ProviderSpec:
    where = f"provider {provider!r}"
    if not isinstance(data, dict):
        raise PriceTableError(path, f"{where} must be a mapping with 'models' and/or 'inherits'")
    _no_unknown_keys(data, _PROVIDER_KEYS, path, where)
    inherits_set = "inherits" in data
    inherits: str | None = None
    if data.get("inherits") is not None:
        inherits = _name(data["inherits"], path, f"{where} 'inherits'")
    raw_models = data.get("models") or {}
    if not isinstance(raw_models, dict):
        raise PriceTableError(path, f"{where} 'models' must be a mapping of model name to prices")
    models: dict[str, _ModelSpec] = {}
    for raw_name, raw_spec in raw_models.items():
        name = _name(raw_name, path, f"model name under {where}")
        models[name] = _parse_model(raw_spec, path, f"{where} model {name!r}")
    return _ProviderSpec(source=path, inherits=inherits, inherits_set=inherits_set, models=models)


def _parse_model(data: Any, path: str, where: str) -> _ModelSpec:
    if not isinstance(data, dict):
        raise PriceTableError(path, f"{where} must be a mapping with at least 'input' and 'output'")
    _no_unknown_keys(data, _MODEL_KEYS, path, where)
    for required in ("input", "output"):
        if required not in data:
            raise PriceTableError(path, f"{where} has no {required!r} price")
    price = ModelPrice(
        input=_rate(data["input"], path, where, "input"),
        output=_rate(data["output"], path, where, "output"),
        cached_input=_optional_rate(data, "cached_input", path, where),
        cache_write=_optional_rate(data, "cache_write", path, where),
        reasoning=_optional_rate(data, "reasoning", path, where),
    )
    raw_aliases = data.get("aliases") or []
    if not isinstance(raw_aliases, list):
        raise PriceTableError(path, f"{where} 'aliases' must be a list of names")
    aliases = tuple(_name(a, path, f"alias under {where}") for a in raw_aliases)
    return _ModelSpec(price=price, aliases=aliases)


def _rate(value: Any, path: str, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PriceTableError(path, f"{where} {key!r} must be a number (USD per million tokens)")
    rate = float(value)
    if not math.isfinite(rate) or rate < 0:
        raise PriceTableError(path, f"{where} {key!r} must be a finite number >= 0, got {value!r}")
    return rate


def _optional_rate(data: Mapping[str, Any], key: str, path: str, where: str) -> float | None:
    value = data.get(key)
    return None if value is None else _rate(value, path, where, key)


def _optional_text(data: Mapping[str, Any], key: str, path: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, date):  # an unquoted 2026-11-26 in YAML
        return value.isoformat()
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise PriceTableError(path, f"{key!r} must be a string")
    text = str(value).strip()
    if not text:
        raise PriceTableError(path, f"{key!r} must not be empty")
    return text


def _name(value: Any, path: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PriceTableError(path, f"{what} must be a non-empty string, got {value!r}")
    return value.strip().lower()


def _no_unknown_keys(data: Mapping[Any, Any], allowed: Iterable[str], path: str, where: str) -> None:
    # Strict on purpose: a misspelt 'cached_inpt' would otherwise price cache reads at full rate.
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise PriceTableError(path, f"unknown key(s) {', '.join(map(repr, unknown))} at {where}")


def _flatten(providers: Mapping[str, _ProviderSpec]) -> dict[str, dict[str, ModelPrice]]:
    """Resolve ``inherits`` and aliases into one name -> price map per provider."""
    flat: dict[str, dict[str, ModelPrice]] = {}
    for name in providers:
        chain = _inheritance_chain(providers, name)
        effective: dict[str, _ModelSpec] = {}
        for ancestor in reversed(chain):  # root first, so a provider's own entries win
            effective.update(providers[ancestor].models)
        names: dict[str, ModelPrice] = {}
        for spec in effective.values():
            for alias in spec.aliases:
                names[alias] = spec.price
        # Model names beat aliases, so an override adding a model is never shadowed.
        names.update({model: spec.price for model, spec in effective.items()})
        flat[name] = names
    return flat


def _inheritance_chain(providers: Mapping[str, _ProviderSpec], name: str) -> list[str]:
    chain = [name]
    spec = providers[name]
    while spec.inherits is not None:
        parent = spec.inherits
        if parent not in providers:
            raise PriceTableError(spec.source, f"provider {chain[-1]!r} inherits unknown provider {parent!r}")
        if parent in chain:
            cycle = " -> ".join([*chain, parent])
            raise PriceTableError(spec.source, f"providers inherit in a cycle: {cycle}")
        chain.append(parent)
        spec = providers[parent]
    return chain


# --------------------------------------------------------------------------- default table

_default_lock = threading.Lock()
_default: tuple[str, PriceTable] | None = None


def default_price_table() -> PriceTable:
    """The shipped table plus the files named in ``OTEL_LLM_AUDIT_PRICES``, loaded once.

    The variable holds paths separated by ``os.pathsep``. The table is cached for as long as
    the variable keeps its value, and loading is serialised so concurrent first calls load it
    once. A missing or malformed file raises :class:`PriceTableError` on every call (nothing
    bad is cached), so call this at start-up to surface configuration mistakes early.
    """
    global _default
    raw = os.environ.get(PRICES_ENV, "")
    cached = _default
    if cached is not None and cached[0] == raw:
        return cached[1]
    with _default_lock:
        cached = _default
        if cached is not None and cached[0] == raw:
            return cached[1]
        table = PriceTable.load(*(p for p in raw.split(os.pathsep) if p))
        _default = (raw, table)
        return table
