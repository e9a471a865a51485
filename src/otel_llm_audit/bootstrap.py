"""``configure()``: one call that builds the audit pipeline and instruments what is installed.

It honours the standard ``OTEL_*`` variables (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_EXPORTER``, ``OTEL_METRICS_EXPORTER``, ``OTEL_LOGS_EXPORTER``,
``OTEL_EXPORTER_OTLP_*``), puts our processors in front of every exporter, and, when no exporter
is configured at all, writes OTLP JSON to local files so nothing needs a server to get started. The
``opentelemetry-instrument`` distro calls the same function.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_llm_audit.config import ContentMode, Settings, set_settings
from otel_llm_audit.delivery.audit_logs import AuditLogProcessor, build_logger_provider
from otel_llm_audit.delivery.otlp_json import (
    LogRecordExporter,
    OtlpJsonFileLogExporter,
    OtlpJsonFileMetricExporter,
    OtlpJsonFileSpanExporter,
)
from otel_llm_audit.delivery.store_and_forward import StoreAndForwardProcessor
from otel_llm_audit.emitter import gate
from otel_llm_audit.processing import sampling
from otel_llm_audit.processing.anomalies import AnomalyRule
from otel_llm_audit.processing.budget_config import PolicyConfig, load_policy_file, parse_policy
from otel_llm_audit.processing.budget_ledger import BudgetLedger
from otel_llm_audit.processing.budgets import BudgetRule
from otel_llm_audit.processing.identity import AuditIdentitySpanProcessor
from otel_llm_audit.processing.pipeline import AuditSpanProcessor
from otel_llm_audit.processing.policy_stage import PolicyStage, SpanRule

if TYPE_CHECKING:
    from otel_llm_audit.processing.masking_stage import MaskingStage

logger = logging.getLogger("otel_llm_audit")

INSTRUMENTOR_GROUP = "opentelemetry_instrumentor"
INSTRUMENTOR_PREFIX = "llm_audit_"


@dataclass
class AuditPipeline:
    """What ``configure()`` built; keep it to flush or shut down at exit."""

    settings: Settings
    tracer_provider: TracerProvider
    meter_provider: MeterProvider | None
    span_exporters: list[SpanExporter]
    metric_readers: list[MetricReader] = field(default_factory=list)
    instrumentors: list[Any] = field(default_factory=list)
    exit_hook: Any = None
    #: The audit span processor: completion, masking, export.
    processor: AuditSpanProcessor | None = None
    #: The local audit store and its forwarders (``None`` with ``store="off"``).
    store: StoreAndForwardProcessor | None = None
    #: Ours alone (never global): policy and human-review events as log records for the SIEM.
    logger_provider: LoggerProvider | None = None
    #: Budgets in force (``None`` when none are configured).
    budgets: BudgetRule | None = None
    #: The budget file's content (or the defaults): budgets and anomaly limits.
    policy: PolicyConfig | None = None

    @property
    def masking(self) -> MaskingStage | None:
        """The masking stage (content mode ``masked``), else ``None``."""
        return self.processor.masking if self.processor is not None else None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        ok = self.tracer_provider.force_flush(timeout_millis)
        if self.meter_provider is not None:
            ok = self.meter_provider.force_flush(timeout_millis) and ok
        return ok

    def shutdown(self) -> None:
        """Flush and stop exporting; undo the instrumentation this call installed."""
        if self.exit_hook is not None:
            atexit.unregister(self.exit_hook)
            self.exit_hook = None
        for instrumentor in self.instrumentors:
            try:
                instrumentor.uninstrument()
            except Exception:  # pragma: no cover - best effort at exit
                logger.debug("otel-llm-audit: uninstrument failed", exc_info=True)
        self.tracer_provider.shutdown()
        if self.budgets is not None and gate.current() is self.budgets:
            gate.install(None)  # (after the provider: the last spans are still charged)
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


_lock = threading.Lock()


def configure(
    *,
    span_exporters: Sequence[SpanExporter] | None = None,
    metric_readers: Sequence[MetricReader] | None = None,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    log_exporters: Sequence[LogRecordExporter] | None = None,
    policy: PolicyConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    instrument: bool = True,
    set_global: bool = True,
    **settings: Any,
) -> AuditPipeline:
    """Build the audit pipeline and, by default, instrument every supported library installed.

    ``settings`` are the fields of :class:`~otel_llm_audit.config.Settings` (``content="raw"``,
    ``price_files=[...]``, ...); they win over the environment. Exporters default to the
    standard ``OTEL_*`` variables, and to OTLP JSON files when none is configured. Policy and
    human-review events are also emitted as log records to ``log_exporters`` (default: from
    ``OTEL_LOGS_EXPORTER``), unless ``audit_logs=False``. ``policy`` is a budget file's path,
    its parsed content, or a :class:`~otel_llm_audit.processing.budget_config.PolicyConfig`
    (default: the ``budgets_file`` setting; without one, no budgets and the default anomaly
    limits); one that cannot be honoured raises ``BudgetConfigError`` here. The
    provider's sampler (``OTEL_TRACES_SAMPLER``, or the one given) is wrapped so that it never
    drops an audit span (:mod:`otel_llm_audit.processing.sampling`).
    """
    resolved = Settings.from_env(**settings)
    _check_prices(resolved)
    policy_config = resolve_policy(resolved, policy)
    set_settings(resolved)
    with _lock:
        exporters = list(span_exporters) if span_exporters is not None else span_exporters_from_env(resolved)
        provider = tracer_provider or TracerProvider(resource=Resource.create())
        # Before any tracer is made from the provider (tracers copy its sampler): an application
        # sampler (OTEL_TRACES_SAMPLER, or the one it passed) never drops an audit span.
        sampling.install(provider)
        readers = list(metric_readers) if metric_readers is not None else metric_readers_from_env(resolved)
        mp = meter_provider
        if mp is None and readers:
            mp = MeterProvider(resource=provider.resource, metric_readers=readers)
        masking = masking_stage_for(resolved, mp)
        store = (
            StoreAndForwardProcessor.build(resolved, exporters, provider.resource) if resolved.store_enabled else None
        )
        downstream: list[SpanProcessor] = [store] if store is not None else [BatchSpanProcessor(e) for e in exporters]
        logger_provider = _audit_logger_provider(resolved, provider.resource, log_exporters)
        if logger_provider is not None:  # behind the masking stage, beside the exporters
            downstream.append(AuditLogProcessor(logger_provider))
        # After the steps that can still fail at start-up: the budgets start a thread and open a file.
        budgets = (
            BudgetRule(policy_config.budgets, BudgetLedger(resolved.budget_ledger), meter_provider=mp)
            if policy_config.budgets
            else None
        )
        rules: list[SpanRule] = [AnomalyRule(policy_config.anomalies)]
        if budgets is not None:
            rules.insert(0, budgets)
        provider.add_span_processor(AuditIdentitySpanProcessor())
        processor = AuditSpanProcessor.attach(
            provider,
            downstream,
            queue_size=resolved.queue_size,
            masking=masking,
            queue_full=resolved.queue_full,
            queue_block_ms=resolved.queue_block_ms,
            route_all=store is not None,
            policy=PolicyStage(rules),
        )
        # The provider instrumentors ask the gate before each call: only when some budget blocks.
        gate.install(budgets if budgets is not None and budgets.enforcing else None)
        if set_global:
            _set_global_providers(provider, mp)
        # atexit runs last-registered first: complete queued spans (and record their metrics)
        # before the providers' own exit handlers shut the meter provider down.
        atexit.register(provider.force_flush)
        pipeline_exit_hook = provider.force_flush
        pipeline = AuditPipeline(
            resolved,
            provider,
            mp,
            exporters,
            readers,
            exit_hook=pipeline_exit_hook,
            processor=processor,
            store=store,
            logger_provider=logger_provider,
            budgets=budgets,
            policy=policy_config,
        )
        if instrument:
            pipeline.instrumentors = instrument_installed(resolved, provider, mp)
    return pipeline


def resolve_policy(
    settings: Settings, policy: PolicyConfig | Mapping[str, Any] | str | os.PathLike[str] | None
) -> PolicyConfig:
    """The budgets and anomaly limits in force: ``policy`` from code, else the budget file, else defaults."""
    if isinstance(policy, PolicyConfig):
        return policy
    if isinstance(policy, Mapping):
        return parse_policy(policy)
    if policy is not None:
        return load_policy_file(policy)
    if settings.budgets_file:
        return load_policy_file(settings.budgets_file)
    return PolicyConfig()


def _audit_logger_provider(
    settings: Settings, resource: Resource, log_exporters: Sequence[LogRecordExporter] | None
) -> LoggerProvider | None:
    """The provider of the audit log records, or ``None`` when they are off or go nowhere."""
    if not settings.audit_logs:
        return None
    exporters = list(log_exporters) if log_exporters is not None else log_exporters_from_env(settings)
    return build_logger_provider(resource, exporters) if exporters else None


def masking_stage_for(settings: Settings, meter_provider: MeterProvider | None) -> MaskingStage | None:
    """The masking stage for ``settings``: one in ``masked`` mode (the default), none otherwise.

    A policy that cannot be honoured (bad YAML, missing NER model or pseudonym key) raises
    :class:`~otel_llm_audit.processing.masking.MaskingConfigError` here, at start-up.
    """
    if settings.content is not ContentMode.MASKED:
        return None
    from otel_llm_audit.processing.masking_stage import MaskingStage

    return MaskingStage.from_settings(settings, meter_provider)


def _check_prices(settings: Settings) -> None:
    """A broken price override file is a start-up error, not a silent gap in cost."""
    from otel_llm_audit.emitter.spans import load_prices

    load_prices(settings)


def _set_global_providers(provider: TracerProvider, meter_provider: MeterProvider | None) -> None:
    current = trace.get_tracer_provider()
    if current is not provider:
        if isinstance(current, TracerProvider):
            logger.warning(
                "otel-llm-audit: a TracerProvider was already set globally; our spans go to the new "
                "one only for instrumentors configured by configure()"
            )
        else:
            trace.set_tracer_provider(provider)
    if meter_provider is not None:
        current_mp = metrics.get_meter_provider()
        if not isinstance(current_mp, MeterProvider):
            metrics.set_meter_provider(meter_provider)


def _otlp_configured(signal: str) -> bool:
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
    )


def _exporter_names(env_var: str, signal: str, default: str = "otlp_json_file") -> list[str]:
    raw = os.environ.get(env_var, "").strip()
    if raw:
        return [n.strip() for n in raw.split(",") if n.strip()]
    if _otlp_configured(signal):
        return ["otlp"]
    return [default] if default else []


def _otlp_entry_point(signal: str) -> str:
    protocol = (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol == "grpc":
        return "otlp_proto_grpc"
    if protocol in ("http/protobuf", "http/json"):
        return "otlp_proto_http"
    raise ValueError(f"unsupported OTLP protocol {protocol!r} (use grpc or http/protobuf)")


def _load_exporter(group: str, name: str) -> Any:
    found = [ep for ep in entry_points(group=group) if ep.name == name]
    if not found:
        hint = " (pip install 'otel-llm-audit[grpc]')" if "grpc" in name else ""
        raise ValueError(f"no exporter named {name!r} is installed in entry point group {group!r}{hint}")
    return found[0].load()()


def span_exporters_from_env(settings: Settings) -> list[SpanExporter]:
    """The span exporters the standard ``OTEL_TRACES_EXPORTER`` / ``OTEL_EXPORTER_OTLP_*`` ask for."""
    exporters: list[SpanExporter] = []
    # With the store on, the store itself is the embedded default: no file exporter beside it.
    default = "" if settings.store_enabled else "otlp_json_file"
    for name in _exporter_names("OTEL_TRACES_EXPORTER", "TRACES", default):
        if name == "none":
            continue
        if name == "otlp_json_file":
            exporters.append(OtlpJsonFileSpanExporter(settings.output_file))
        elif name == "otlp":
            exporters.append(_load_exporter("opentelemetry_traces_exporter", _otlp_entry_point("TRACES")))
        else:
            exporters.append(_load_exporter("opentelemetry_traces_exporter", name))
    return exporters


def metric_readers_from_env(settings: Settings) -> list[MetricReader]:
    """Metric readers for ``OTEL_METRICS_EXPORTER``; a local OTLP JSON file by default."""
    readers: list[MetricReader] = []
    for name in _exporter_names("OTEL_METRICS_EXPORTER", "METRICS"):
        exporter: MetricExporter
        if name == "none":
            continue
        if name == "otlp_json_file":
            exporter = OtlpJsonFileMetricExporter(metrics_file_for(settings.output_file))
        elif name == "otlp":
            exporter = _load_exporter("opentelemetry_metrics_exporter", _otlp_entry_point("METRICS"))
        else:
            exporter = _load_exporter("opentelemetry_metrics_exporter", name)
        readers.append(PeriodicExportingMetricReader(exporter))
    return readers


def log_exporters_from_env(settings: Settings) -> list[LogRecordExporter]:
    """Log exporters for ``OTEL_LOGS_EXPORTER``; by default OTLP when an endpoint is set, else none
    with the store on (the store holds the spans the records come from), else a local file."""
    exporters: list[LogRecordExporter] = []
    default = "" if settings.store_enabled else "otlp_json_file"
    for name in _exporter_names("OTEL_LOGS_EXPORTER", "LOGS", default):
        if name == "none":
            continue
        if name == "otlp_json_file":
            exporters.append(OtlpJsonFileLogExporter(sibling_file(settings.output_file, "logs")))
        elif name == "otlp":
            exporters.append(_load_exporter("opentelemetry_logs_exporter", _otlp_entry_point("LOGS")))
        else:
            exporters.append(_load_exporter("opentelemetry_logs_exporter", name))
    return exporters


def metrics_file_for(traces_file: str) -> str:
    """``llm-audit/traces.jsonl`` -> ``llm-audit/metrics.jsonl``: the metrics sit beside the traces."""
    return sibling_file(traces_file, "metrics")


def sibling_file(traces_file: str, signal: str) -> str:
    """``llm-audit/traces.jsonl`` -> ``llm-audit/<signal>.jsonl``: each signal beside the traces."""
    directory, base = os.path.split(traces_file)
    name = base.replace("traces", signal) if "traces" in base else f"{signal}-{base}"
    return os.path.join(directory, name)


def instrument_installed(
    settings: Settings, tracer_provider: TracerProvider, meter_provider: MeterProvider | None
) -> list[Any]:
    """Instrument every library we support that is installed (and not disabled), plus HTTP clients."""
    disabled = {n.strip() for n in os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",") if n.strip()}
    done: list[Any] = []
    for ep in entry_points(group=INSTRUMENTOR_GROUP):
        if not ep.name.startswith(INSTRUMENTOR_PREFIX) or ep.name in disabled:
            continue
        done.extend(_instrument_entry_point(ep, tracer_provider, meter_provider))
    # Companions: HTTP client spans nest under ours; threading carries the audit identity
    # (which lives in the OpenTelemetry context) into threads and thread pools.
    companions = {"threading"} | ({"httpx", "httpx2"} if settings.http_spans else set())
    for ep in entry_points(group=INSTRUMENTOR_GROUP):
        if ep.name in companions and ep.name not in disabled:
            done.extend(_instrument_entry_point(ep, tracer_provider, meter_provider))
    return done


def _instrument_entry_point(
    ep: Any, tracer_provider: TracerProvider, meter_provider: MeterProvider | None
) -> list[Any]:
    try:
        instrumentor = ep.load()()
    except ImportError as err:
        logger.info("otel-llm-audit: skipping %s: %s", ep.name, err)
        return []
    if getattr(instrumentor, "is_instrumented_by_opentelemetry", False):
        return []
    conflict = (
        instrumentor._check_dependency_conflicts() if hasattr(instrumentor, "_check_dependency_conflicts") else None
    )
    if conflict:
        logger.info("otel-llm-audit: skipping %s: %s", ep.name, conflict)
        return []
    kwargs: dict[str, Any] = {"tracer_provider": tracer_provider}
    if meter_provider is not None:
        kwargs["meter_provider"] = meter_provider
    try:
        instrumentor.instrument(**kwargs)
    except Exception:
        logger.warning("otel-llm-audit: could not instrument %s", ep.name, exc_info=True)
        return []
    return [instrumentor]
