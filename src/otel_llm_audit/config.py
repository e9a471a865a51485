"""One settings object, read from the environment and overridable in code.

Every setting the package honours is a field here, with its environment variable next to
it, so the README's configuration table and the code cannot drift apart silently (a test
compares them).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Any

logger = logging.getLogger("otel_llm_audit")


class ContentMode(str, Enum):
    """What the audit keeps of prompts, answers, tool definitions and tool arguments."""

    NONE = "none"  #: nothing
    HASH = "hash"  #: a SHA-256 of each message's canonical JSON: integrity without content
    RAW = "raw"  #: the content itself, unmasked
    MASKED = "masked"  #: the content with personal data and secrets masked before export (default)


CONTENT_ENV = "OTEL_LLM_AUDIT_CONTENT"
GENAI_CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

#: Values of the GenAI SIG's capture variable, mapped to ours. EVENT_ONLY means "not on
#: spans"; we record content on spans only, so it maps to none. Capturing content means
#: masked content here: unmasked content takes OTEL_LLM_AUDIT_CONTENT=raw, said explicitly.
_GENAI_CAPTURE_VALUES = {
    "no_content": ContentMode.NONE,
    "span_only": ContentMode.MASKED,
    "span_and_event": ContentMode.MASKED,
    "event_only": ContentMode.NONE,
    "true": ContentMode.MASKED,
    "false": ContentMode.NONE,
}

DEFAULT_OUTPUT_FILE = "llm-audit/traces.jsonl"
DEFAULT_STORE = "llm-audit/audit.db"
DEFAULT_BUDGET_LEDGER = "llm-audit/budgets.db"
#: Values of the store setting that turn the store off (spans go straight to the exporters).
STORE_OFF = ("off", "none", "false", "0")

#: field name -> environment variable. Documented in the README's configuration table.
ENVIRONMENT_VARIABLES: dict[str, str] = {
    "content": CONTENT_ENV,
    "max_content_chars": "OTEL_LLM_AUDIT_MAX_CONTENT_CHARS",
    "output_file": "OTEL_LLM_AUDIT_FILE",
    "price_files": "OTEL_LLM_AUDIT_PRICES",
    "queue_size": "OTEL_LLM_AUDIT_QUEUE_SIZE",
    "http_spans": "OTEL_LLM_AUDIT_HTTP_SPANS",
    "baggage_keys": "OTEL_LLM_AUDIT_BAGGAGE_KEYS",
    "masking_policy": "OTEL_LLM_AUDIT_MASKING_POLICY",
    "masking_timeout": "OTEL_LLM_AUDIT_MASKING_TIMEOUT",
    "queue_full": "OTEL_LLM_AUDIT_QUEUE_FULL",
    "queue_block_ms": "OTEL_LLM_AUDIT_QUEUE_BLOCK_MS",
    "store": "OTEL_LLM_AUDIT_STORE",
    "store_max_mb": "OTEL_LLM_AUDIT_STORE_MAX_MB",
    "store_sync": "OTEL_LLM_AUDIT_STORE_SYNC",
    "seal_key_file": "OTEL_LLM_AUDIT_SEAL_KEY_FILE",
    "checkpoint_interval": "OTEL_LLM_AUDIT_CHECKPOINT_INTERVAL",
    "checkpoint_records": "OTEL_LLM_AUDIT_CHECKPOINT_RECORDS",
    "audit_logs": "OTEL_LLM_AUDIT_AUDIT_LOGS",
    "budgets_file": "OTEL_LLM_AUDIT_BUDGETS",
    "budget_ledger": "OTEL_LLM_AUDIT_BUDGET_LEDGER",
}

#: What the caller's thread does when the span queue is full.
QUEUE_FULL_POLICIES = ("drop", "block")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything otel-llm-audit can be told. Build with :meth:`from_env`."""

    #: ``masked`` (default) | ``raw`` | ``hash`` | ``none``.
    content: ContentMode = ContentMode.MASKED
    #: Longest text part kept in content attributes; longer ones are cut and flagged.
    max_content_chars: int = 100_000
    #: Where the embedded default writes OTLP JSON when no exporter is configured.
    output_file: str = DEFAULT_OUTPUT_FILE
    #: Extra price files (YAML or JSON) layered over the shipped table.
    price_files: tuple[str, ...] = ()
    #: Spans waiting for off-thread completion and masking; see ``queue_full``.
    queue_size: int = 8192
    #: Instrument httpx / httpx2 so HTTP client spans nest under LLM spans.
    http_spans: bool = True
    #: Identity fields allowed to cross process boundaries as W3C baggage (none by default).
    baggage_keys: str = ""
    #: A masking policy YAML file layered over the shipped default ("" = the default alone).
    masking_policy: str = ""
    #: Seconds one span may spend in detection before its content is withheld (fail closed).
    masking_timeout: float = 2.0
    #: When the queue is full: ``drop`` the span's content at once, or ``block`` the caller
    #: up to ``queue_block_ms`` for room first. Either way the span itself is exported.
    queue_full: str = "drop"
    #: The longest the caller waits for room in the queue with ``queue_full=block``.
    queue_block_ms: int = 50
    #: The local audit store (SQLite file): every span is sealed and stored there, and exporters
    #: are fed from it (store-and-forward). ``off`` sends straight to the exporters, unsealed.
    store: str = DEFAULT_STORE
    #: The store's size limit in MiB; past it, the oldest records are pruned (delivered ones first).
    store_max_mb: int = 4096
    #: ``normal`` survives a killed process; ``full`` also a power cut (an fsync per write).
    store_sync: str = "normal"
    #: An HMAC secret or an Ed25519 private key (PEM) that seals records and signs checkpoints.
    seal_key_file: str = ""
    #: Seconds between signed checkpoints (written even when idle).
    checkpoint_interval: float = 60.0
    #: Records between signed checkpoints.
    checkpoint_records: int = 10_000
    #: Also emit each policy and human-review event as an OpenTelemetry log record (for SIEM
    #: exporters that take logs only), to the exporters of ``OTEL_LOGS_EXPORTER``.
    audit_logs: bool = True
    #: A YAML file of budgets and anomaly limits ("" = no budgets, default anomaly limits).
    budgets_file: str = ""
    #: The SQLite file where processes on this machine add up their spend.
    budget_ledger: str = DEFAULT_BUDGET_LEDGER

    @property
    def store_enabled(self) -> bool:
        """Whether spans go through the local audit store."""
        return self.store.strip().lower() not in STORE_OFF and self.store.strip() != ""

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Settings from the environment, then ``overrides`` (code wins over environment)."""
        env = os.environ
        values: dict[str, Any] = {
            "content": _content_from_env(env),
            "max_content_chars": _int_env(env, "max_content_chars", 100_000),
            "output_file": env.get(ENVIRONMENT_VARIABLES["output_file"]) or DEFAULT_OUTPUT_FILE,
            "price_files": tuple(p for p in env.get(ENVIRONMENT_VARIABLES["price_files"], "").split(os.pathsep) if p),
            "queue_size": _int_env(env, "queue_size", 8192),
            "http_spans": _bool_env(env, "http_spans", True),
            "baggage_keys": env.get(ENVIRONMENT_VARIABLES["baggage_keys"], ""),
            "masking_policy": env.get(ENVIRONMENT_VARIABLES["masking_policy"], "").strip(),
            "masking_timeout": _float_env(env, "masking_timeout", 2.0),
            "queue_full": env.get(ENVIRONMENT_VARIABLES["queue_full"], "").strip().lower() or "drop",
            "queue_block_ms": _int_env(env, "queue_block_ms", 50),
            "store": env.get(ENVIRONMENT_VARIABLES["store"], "").strip() or DEFAULT_STORE,
            "store_max_mb": _int_env(env, "store_max_mb", 4096),
            "store_sync": env.get(ENVIRONMENT_VARIABLES["store_sync"], "").strip().lower() or "normal",
            "seal_key_file": env.get(ENVIRONMENT_VARIABLES["seal_key_file"], "").strip(),
            "checkpoint_interval": _float_env(env, "checkpoint_interval", 60.0),
            "checkpoint_records": _int_env(env, "checkpoint_records", 10_000),
            "audit_logs": _bool_env(env, "audit_logs", True),
            "budgets_file": env.get(ENVIRONMENT_VARIABLES["budgets_file"], "").strip(),
            "budget_ledger": env.get(ENVIRONMENT_VARIABLES["budget_ledger"], "").strip() or DEFAULT_BUDGET_LEDGER,
        }
        known = {f.name for f in fields(cls)}
        for key, value in overrides.items():
            if key not in known:
                raise TypeError(f"unknown otel-llm-audit setting {key!r}; known: {sorted(known)}")
            if value is not None:
                values[key] = value
        values["content"] = parse_content_mode(values["content"])
        if isinstance(values["price_files"], str):
            values["price_files"] = (values["price_files"],)
        if values["queue_full"] not in QUEUE_FULL_POLICIES:
            raise ValueError(
                f"{ENVIRONMENT_VARIABLES['queue_full']} must be one of {', '.join(QUEUE_FULL_POLICIES)}; "
                f"got {values['queue_full']!r}"
            )
        if values["store_sync"] not in ("normal", "full"):
            raise ValueError(
                f"{ENVIRONMENT_VARIABLES['store_sync']} must be normal or full; got {values['store_sync']!r}"
            )
        if not values["masking_timeout"] > 0:
            raise ValueError(f"{ENVIRONMENT_VARIABLES['masking_timeout']} must be a positive number of seconds")
        return cls(**values)


def parse_content_mode(value: str | ContentMode) -> ContentMode:
    """``ContentMode`` from its name, with a clear error for anything else."""
    if isinstance(value, ContentMode):
        return value
    try:
        return ContentMode(value.strip().lower())
    except ValueError:
        choices = ", ".join(m.value for m in ContentMode)
        raise ValueError(f"{CONTENT_ENV} must be one of {choices}; got {value!r}") from None


def _content_from_env(env: Any) -> ContentMode:
    ours = env.get(CONTENT_ENV)
    if ours:
        return parse_content_mode(ours)
    theirs = env.get(GENAI_CAPTURE_ENV)
    if theirs:
        mode = _GENAI_CAPTURE_VALUES.get(theirs.strip().lower())
        if mode is None:
            logger.warning("otel-llm-audit: ignoring %s=%r (not a known value)", GENAI_CAPTURE_ENV, theirs)
            return ContentMode.NONE
        return mode
    return ContentMode.MASKED


def _float_env(env: Any, name: str, default: float) -> float:
    raw = env.get(ENVIRONMENT_VARIABLES[name])
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{ENVIRONMENT_VARIABLES[name]} must be a number; got {raw!r}") from None
    if not value > 0:
        raise ValueError(f"{ENVIRONMENT_VARIABLES[name]} must be positive; got {raw!r}")
    return value


def _int_env(env: Any, name: str, default: int) -> int:
    raw = env.get(ENVIRONMENT_VARIABLES[name])
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{ENVIRONMENT_VARIABLES[name]} must be an integer; got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{ENVIRONMENT_VARIABLES[name]} must be positive; got {raw!r}")
    return value


def _bool_env(env: Any, name: str, default: bool) -> bool:
    raw = env.get(ENVIRONMENT_VARIABLES[name])
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{ENVIRONMENT_VARIABLES[name]} must be true or false; got {raw!r}")


_current: Settings | None = None
_lock = threading.Lock()


def get_settings() -> Settings:
    """The settings in force: those given to ``configure()``, else read from the environment once."""
    global _current
    current = _current
    if current is None:
        with _lock:
            if _current is None:
                _current = Settings.from_env()
            current = _current
    return current


def set_settings(settings: Settings | None) -> None:
    """Replace the settings in force (``configure()`` and tests); ``None`` re-reads the environment."""
    global _current
    with _lock:
        _current = settings


def updated(settings: Settings, **changes: Any) -> Settings:
    """A copy of ``settings`` with some fields changed."""
    return replace(settings, **changes)


def effective_settings(settings: Settings, *, content_allowed: bool, masked: bool) -> Settings:
    """The settings for one span: no content when it must be dropped, hashes when it cannot be masked."""
    mode = settings.content
    if not content_allowed and mode is not ContentMode.NONE:
        return updated(settings, content=ContentMode.NONE)
    if mode is ContentMode.MASKED and not masked:
        _warn_no_masking_stage()
        return updated(settings, content=ContentMode.HASH)
    return settings


_warned_no_masking = False


def _warn_no_masking_stage() -> None:
    global _warned_no_masking
    if not _warned_no_masking:
        _warned_no_masking = True
        logger.warning(
            "otel-llm-audit: content mode is 'masked' but a span's pipeline has no masking stage (build it with "
            "otel_llm_audit.configure() or AuditSpanProcessor.attach_to(..., masking=...)); content is recorded "
            "as hashes only"
        )
