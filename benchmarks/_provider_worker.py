"""What the per-provider workers of the instruction-count benchmark share: configure, verify.

A provider's worker module (``_anthropic_worker``, ``_bedrock_worker``, ``_google_genai_worker``)
describes its configurations in a :class:`WorkerSpec` (``SPEC``), whose ``configure(name)`` and
``verify(setup, scenario, calls)`` ``openai_instructions.worker_main`` calls once
``_instructions.bind_worker`` has put them in place of ``_worker``'s. Only the standard library
and ``_worker`` at import: it runs in every venv.

* ``none``: no tracer provider, no instrumentor (what an application without OpenTelemetry runs).
* ``llm_audit`` / ``llm_audit_masked``: ``_worker.configure_llm_audit`` then our instrumentor.
* a peer: ``_worker._sdk_providers`` (global TracerProvider + BatchSpanProcessor + counting
  exporter, MeterProvider), plus a LoggerProvider with a counting exporter for a peer that puts
  the captured content in log records (the official instrumentations' GenAI events), then the
  peer's instrumentor, passed all three providers.

Verification (after the counted calls, never inside them): exactly one span per call from the
configuration's own instrumentation scope(s); spans of other scopes only where the spec
tolerates them; the first spans of each name (and, for content-in-logs peers, the log records)
carry the prompt's and the answer's markers. Spans and log records per call are reported by
scope, so a peer that silently does nothing fails instead of looking fast.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import _worker
from _worker import BenchmarkError, Setup

OURS = ("llm_audit", "llm_audit_masked")

#: A peer's instrument function: (tracer_provider, meter_provider, logger_provider) -> None.
Instrument = Callable[[Any, Any, Any], None]


def ours(module: str, name: str) -> Callable[[], None]:
    """``instrument()`` of our instrumentor ``module.name``, imported when called."""

    def instrument() -> None:
        getattr(importlib.import_module(module), name)().instrument()

    return instrument


def peer(module: str, name: str, logs: bool = False, **extra: Any) -> Instrument:
    """A peer's instrument function: ``module.name().instrument(tracer_provider=..., meter_provider=..., ...)``."""

    def instrument(tracer_provider: Any, meter_provider: Any, logger_provider: Any) -> None:
        kwargs = {"tracer_provider": tracer_provider, "meter_provider": meter_provider, **extra}
        if logs:
            kwargs["logger_provider"] = logger_provider
        getattr(importlib.import_module(module), name)().instrument(**kwargs)

    return instrument


@dataclass
class WorkerSpec:
    #: The mock module: ``MARKERS`` per scenario.
    mock: Any
    #: ``instrument()`` of our instrumentor for this SDK.
    ours: Callable[[], None]
    #: Peer configuration -> its instrument function (``None``: the global providers alone).
    peers: dict[str, Instrument | None]
    #: Configuration -> environment set before anything is imported.
    config_env: dict[str, dict[str, str]]
    #: Peer configuration -> instrumentation scope name prefixes of its own LLM spans (ours: ``otel_llm_audit``).
    scopes: dict[str, tuple[str, ...]]
    #: Configuration -> the venv (peer name) it runs in; others run in the llm_audit venv.
    peer_of: dict[str, str]
    version_dists: tuple[str, ...]
    #: Configurations without a tracer provider (``none`` and variants).
    bare: tuple[str, ...] = ("none",)
    #: Configuration -> scope prefixes whose spans may be exported beside its own.
    tolerated: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Peers whose captured content is in log records, not on the span.
    content_in_logs: tuple[str, ...] = ()

    @property
    def configs(self) -> tuple[str, ...]:
        return (*self.bare, *OURS, *self.peers)

    @property
    def all_env(self) -> dict[str, dict[str, str]]:
        """Every configuration's environment (empty for most)."""
        return {c: self.config_env.get(c, {}) for c in self.configs}

    def configure(self, name: str) -> Setup:
        return configure(self, name)

    def verify(self, setup: Setup, scenario: str, expected_calls: int) -> dict[str, Any]:
        """One span per call from the configuration's scope with content; others only where tolerated."""
        return check_spans(self, setup, scenario, expected_calls)[0]


def _make_log_exporter() -> Any:
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

    class CountingLogExporter(LogRecordExporter):
        """Drops log records; counts them by (scope, event name) and keeps the first few bodies as text."""

        keep = 20

        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.by_key: Counter[tuple[str, str]] = Counter()
            self.texts: list[str] = []

        def export(self, batch: Sequence[Any]) -> Any:
            with self.lock:
                for item in batch:
                    record = getattr(item, "log_record", item)
                    scope = getattr(item, "instrumentation_scope", None)
                    name = getattr(record, "event_name", None) or (record.attributes or {}).get("event.name", "")
                    self.by_key[(scope.name if scope else "", str(name))] += 1
                    if len(self.texts) < self.keep:
                        self.texts.append(repr(record.body) + repr(dict(record.attributes or {})))
            return LogRecordExportResult.SUCCESS

        def shutdown(self) -> None:
            return None

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    return CountingLogExporter()


def _logger_provider(setup: Setup) -> Any:
    """A LoggerProvider with a batch processor and a counting exporter; flushed and shut down with the rest."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    exporter = _make_log_exporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    flush, shutdown = setup.flush, setup.shutdown

    def flush_all() -> bool:
        ok = flush()
        return provider.force_flush(60_000) and ok

    def shutdown_all() -> None:
        shutdown()
        provider.shutdown()

    setup.flush, setup.shutdown = flush_all, shutdown_all
    setup.details["log_exporter"] = True
    setup.log_exporter = exporter  # type: ignore[attr-defined]
    return provider


def configure(spec: WorkerSpec, name: str) -> Setup:
    for key, value in spec.config_env.get(name, {}).items():
        os.environ[key] = value
    setup = Setup(name)
    if name in spec.bare:
        return setup
    if name in OURS:
        return _worker.configure_llm_audit(setup, spec.ours)
    if name not in spec.peers:
        raise ValueError(f"unknown configuration {name!r}")
    tracer_provider, meter_provider = _worker._sdk_providers(setup)
    logger_provider = _logger_provider(setup) if name in spec.content_in_logs else None
    instrument = spec.peers[name]
    if instrument is not None:
        instrument(tracer_provider, meter_provider, logger_provider)
    return setup


def check_spans(
    spec: WorkerSpec, setup: Setup, scenario: str, expected_calls: int
) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """The checks; returns the report, the configuration's own sample spans and all sample spans."""
    exporter = setup.span_exporter
    if exporter is None:
        return {"spans": 0, "spans_per_call": {}}, [], []
    prefixes = ("otel_llm_audit",) if setup.name in OURS else spec.scopes[setup.name]
    tolerated = spec.tolerated.get(setup.name, ())
    with exporter.lock:
        by_key = dict(exporter.by_key)
        samples = list(exporter.samples)
    described = ", ".join(f"{scope}:{name}={n}" for (scope, name), n in sorted(by_key.items())) or "nothing"
    ours = {k: v for k, v in by_key.items() if k[0].startswith(prefixes)}
    llm_spans = sum(ours.values())
    if llm_spans != expected_calls:
        raise BenchmarkError(
            f"{setup.name}/{scenario}: expected {expected_calls} LLM spans from scopes {prefixes}, "
            f"got {llm_spans} (exported: {described})"
        )
    unexpected = {k: v for k, v in by_key.items() if k not in ours and not k[0].startswith(tolerated)}
    if unexpected:
        raise BenchmarkError(f"{setup.name}/{scenario}: unexpected extra spans (exported: {described})")
    own_scopes = {scope for scope, _ in ours}
    own_samples = [s for s in samples if s.instrumentation_scope and s.instrumentation_scope.name in own_scopes]
    log_exporter = getattr(setup, "log_exporter", None)
    result: dict[str, Any] = {}
    log_texts: list[str] = []
    if log_exporter is not None:
        with log_exporter.lock:
            logs = dict(log_exporter.by_key)
            log_texts = list(log_exporter.texts)
        result["logs_per_call"] = {f"{scope}:{name}": n / expected_calls for (scope, name), n in sorted(logs.items())}
    wanted = spec.mock.MARKERS[scenario]
    for span in own_samples:
        text = _worker._span_text(span) + "\n" + "\n".join(log_texts)
        missing = [m for m in wanted if m not in text]
        if missing:
            where = " or its log records" if log_exporter is not None else ""
            raise BenchmarkError(
                f"{setup.name}/{scenario}: span {span.name!r}{where} lacks captured content {missing} "
                f"(attributes: {sorted((span.attributes or {}).keys())})"
            )
    per_scope: Counter[str] = Counter()
    for (scope, _name), n in by_key.items():
        per_scope[scope] += n
    result.update(
        spans=llm_spans,
        span_names=sorted({name for (_scope, name) in ours}),
        spans_per_call={scope: n / expected_calls for scope, n in sorted(per_scope.items())},
        sample_attribute_count=len(own_samples[0].attributes or {}),
        sample_event_count=len(own_samples[0].events or ()),
        sample_content_chars=len(_worker._span_text(own_samples[0])),
    )
    return result, own_samples, samples
