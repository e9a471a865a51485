"""Where the query commands read spans from: the local audit store or an OTLP JSON lines file.

An incident responder may hold either: the store on the machine that ran the application, or
a copy a collector wrote (or ``otel-llm-audit export`` made). The commands ask the same
questions of both through :class:`Source`; the store answers them with SQL over its index
columns, a file with one streaming scan. :func:`facts_of` derives, from a span, the very
columns the store indexes, so both answer alike (a test holds them equal).

Errors a responder can fix (no such file, not a store, unreadable) raise :class:`SourceError`,
which the command line prints as one line (exit status 2), never as a traceback.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from otel_llm_audit.cli.otlp_reader import SpanView
from otel_llm_audit.delivery.store import DERIVED_COLUMNS, derived_index
from otel_llm_audit.delivery.store_writer import CHECKPOINT_SPAN_NAME as CHECKPOINT_SPAN_NAME

#: ``CHECKPOINT_SPAN_NAME``: the store writer's checkpoint records are integrity bookkeeping,
#: not application activity, so ``find`` and ``cost`` leave them out (``show`` and ``export`` keep them).

#: ``cost --by`` choices -> the :class:`SpanFacts` field (and store column) they group on.
GROUPS: dict[str, str] = {
    "team": "team",
    "application": "application",
    "app": "application",
    "model": "model",
    "user": "user_id",
    "tenant": "tenant_id",
    "session": "session_id",
    "provider": "provider",
}

#: ``find``/``cost`` options -> the field they filter on (exact match, ``*`` as a wildcard).
TEXT_FILTERS: tuple[tuple[str, str], ...] = (
    ("user", "user_id"),
    ("session", "session_id"),
    ("tenant", "tenant_id"),
    ("team", "team"),
    ("app", "application"),
    ("model", "model"),
)

#: Costs are summed in different orders by SQLite and Python; nano-dollars are the unit we answer in.
COST_DIGITS = 9

#: A trace id has 32 hex digits; ``show`` takes any unique prefix of at least 8 (like git's short
#: hashes: 8 digits is one in four billion, and ``find`` shows 12 in a narrow terminal).
TRACE_ID_DIGITS = 32
MIN_TRACE_PREFIX = 8


class SourceError(Exception):
    """A source that cannot be read, in one line a responder can act on."""


@dataclass(frozen=True, slots=True)
class SpanFacts:
    """What ``find`` and ``cost`` know of a span: the audit store's index columns."""

    trace_id: str
    span_id: str
    name: str
    start_ns: int
    end_ns: int
    user_id: str | None
    session_id: str | None
    tenant_id: str | None
    team: str | None
    application: str | None
    model: str | None
    provider: str | None
    operation: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    policy: bool
    error: bool


def facts_of(span: SpanView) -> SpanFacts:
    """A span's index columns, derived as the store writer derives them (``store.derived_index``)."""
    values = derived_index(span.attributes, (e["name"] for e in span.events), span.status_code)
    derived: dict[str, Any] = dict(zip(DERIVED_COLUMNS, values, strict=True))
    derived["policy"], derived["error"] = bool(derived["policy"]), bool(derived["error"])
    return SpanFacts(
        trace_id=span.trace_id,
        span_id=span.span_id,
        name=span.name,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        **derived,
    )


@dataclass(frozen=True, slots=True)
class Filters:
    """What ``find`` and ``cost`` select: all given conditions hold (times in ns since the epoch).

    ``text`` maps a :class:`SpanFacts` field to a value, matched exactly, or with ``*`` standing
    for any run of characters (``--model 'gpt-4o-mini*'`` for every dated snapshot).
    """

    text: tuple[tuple[str, str], ...] = ()
    since_ns: int | None = None
    until_ns: int | None = None
    policy: bool = False
    errors: bool = False

    def matches(self, facts: SpanFacts) -> bool:
        """Whether ``facts`` is selected (the scan's twin of the store's SQL)."""
        if facts.name == CHECKPOINT_SPAN_NAME:
            return False
        if self.since_ns is not None and facts.start_ns < self.since_ns:
            return False
        if self.until_ns is not None and facts.start_ns >= self.until_ns:
            return False
        if self.policy and not facts.policy:
            return False
        if self.errors and not facts.error:
            return False
        for field_name, wanted in self.text:
            value = getattr(facts, field_name)
            if value is None or not _text_matches(wanted, value):
                return False
        return True


def _text_matches(pattern: str, value: str) -> bool:
    if "*" not in pattern:
        return value == pattern
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), value, re.DOTALL) is not None


def glob_pattern(pattern: str) -> str:
    """``pattern`` (``*`` the only wildcard) as an SQLite GLOB pattern: ``?`` and ``[`` taken literally."""
    return "".join({"?": "[?]", "[": "[[]"}.get(char, char) for char in pattern)


@dataclass(frozen=True, slots=True)
class FindResult:
    """The newest matching spans (at most the limit) and how many matched in all."""

    spans: list[SpanFacts]
    total: int


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """A trace an id prefix matched, with what tells it apart from the others: when and what it was."""

    trace_id: str
    #: When its earliest span started.
    start_ns: int
    #: Its root span's name (the earliest span without a parent; the earliest span when none is stored).
    root_name: str


@dataclass(frozen=True, slots=True)
class CostRow:
    """Totals of one group: ``calls`` are spans with a cost or token counts; ``unpriced`` those without a cost."""

    group: tuple[str | None, ...]
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    unpriced: int


def is_call(facts: SpanFacts) -> bool:
    """Whether a span counts towards ``cost``: it carries a cost or token counts."""
    return facts.cost_usd is not None or facts.input_tokens is not None or facts.output_tokens is not None


def sort_cost_rows(rows: list[CostRow]) -> list[CostRow]:
    """Costliest first; with two levels, first-level groups by their total, each group's rows by cost.

    Ties break on the group names (missing last) so that both sources print the same order.
    """

    def name_key(group: tuple[str | None, ...]) -> tuple[tuple[bool, str], ...]:
        return tuple((value is None, value or "") for value in group)

    first_totals: dict[str | None, float] = {}
    for row in rows:
        first_totals[row.group[0]] = first_totals.get(row.group[0], 0.0) + row.cost_usd
    return sorted(
        rows,
        key=lambda row: (
            -round(first_totals[row.group[0]], COST_DIGITS),
            name_key(row.group[:1]),
            -row.cost_usd,
            name_key(row.group),
        ),
    )


class Source(ABC):
    """Spans to question, wherever they are kept."""

    #: Shown in messages: the path.
    path: str

    @abstractmethod
    def trace(self, trace_id: str) -> list[SpanView]:
        """Every span of one trace (checkpoints included, in stored order)."""

    @abstractmethod
    def traces_with_prefix(self, prefix: str, limit: int) -> list[TraceSummary]:
        """The traces whose id starts with ``prefix`` (lowercase hex), in id order, at most ``limit``."""

    @abstractmethod
    def with_resumed(self, trace_id: str) -> list[SpanView]:
        """The spans of ``trace_id`` and of every trace whose spans link to it (resumed runs), transitively."""

    @abstractmethod
    def all_spans(self) -> Iterator[SpanView]:
        """Every span, in stored order."""

    @abstractmethod
    def find(self, filters: Filters, limit: int) -> FindResult:
        """The newest ``limit`` matching spans (newest first) and the number of all matches."""

    @abstractmethod
    def cost(self, groups: Sequence[str], filters: Filters) -> list[CostRow]:
        """Per group (``GROUPS`` fields), the totals of the matching calls, in no particular order."""

    def warnings(self) -> list[str]:
        """What the responder should know about the last read (skipped lines ...)."""
        return []

    def close(self) -> None:  # noqa: B027 - most sources hold nothing to release
        """Release the source (the store's connection)."""


def default_source_path() -> str:
    """The configured audit store (``OTEL_LLM_AUDIT_STORE``), the source when none is named."""
    from otel_llm_audit.config import ENVIRONMENT_VARIABLES, Settings

    try:
        settings = Settings.from_env()
    except ValueError as err:
        raise SourceError(f"the configuration is not valid: {err}") from None
    if not settings.store_enabled:
        raise SourceError(
            f"no audit store is configured ({ENVIRONMENT_VARIABLES['store']} is {settings.store!r}): "
            "name one with --source PATH"
        )
    return settings.store


def open_source(path: str | None, *, progress: bool = True) -> Source:
    """The store or OTLP JSON lines file at ``path`` (default: the configured store), by its first bytes."""
    from otel_llm_audit.delivery.store import SQLITE_MAGIC

    configured = not path
    path = path or default_source_path()
    if not os.path.exists(path):
        if configured:
            raise SourceError(
                f"no audit store at {os.path.abspath(path)} (OTEL_LLM_AUDIT_STORE): name one with --source PATH"
            )
        raise SourceError(f"no such file: {path}")
    if os.path.isdir(path):
        raise SourceError(f"{path} is a directory, not an audit store or OTLP JSON lines file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError as err:
        raise SourceError(f"cannot read {path}: {err.strerror or err}") from None
    if head.startswith(SQLITE_MAGIC):
        from otel_llm_audit.cli.store_source import StoreSource

        return StoreSource(path)
    if head.lstrip()[:1] not in (b"{", b""):
        raise SourceError(f"{path} is neither an audit store nor an OTLP JSON lines file")
    from otel_llm_audit.cli.file_source import FileSource

    return FileSource(path, progress=progress)
