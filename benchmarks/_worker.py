"""One configuration, one fresh process: set up, warm up, time N calls per scenario, verify, report.

Run by ``openai_overhead.py`` with the interpreter of the configuration's virtual environment
(instrumentors patch ``openai`` globally, so each configuration lives in its own process).
It needs only ``openai``/``httpx2`` and, for instrumented configurations, the OpenTelemetry SDK
and the configuration's instrumentor; not ``rich``.

Per call it records wall time (``perf_counter_ns``) and CPU time of the caller's thread
(``thread_time_ns``) around one complete application call (for a stream: create, then iterate to
the end). Per block it records the process CPU time (all threads) from the first timed call until
the background work those calls caused has been flushed, so work moved off the caller's thread
is still counted. Before reporting it checks that the configuration exported exactly one LLM
span per call, from its own instrumentation scope, with the prompt and answer captured; a
configuration that fails the check exits non-zero (a broken instrumentor looks fast).

The result is one JSON document written to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import statistics
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import _mock

CONFIGS = ("none", "llm_audit", "llm_audit_masked", "llm_audit_budgets", "openai_v2", "openllmetry", "openinference")

#: Environment each configuration needs before its instrumentor is imported (the driver sets it
#: too; repeated here so a worker run by hand behaves the same).
CONFIG_ENV: dict[str, dict[str, str]] = {
    "none": {},
    "llm_audit": {},
    "llm_audit_masked": {},
    "llm_audit_budgets": {},
    "openai_v2": {
        "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
        # openai-v2 2.4b0 reads "true" as no content; span_only puts content on the span.
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only",
    },
    "openllmetry": {"TRACELOOP_TRACE_CONTENT": "true"},
    "openinference": {"OPENINFERENCE_HIDE_INPUTS": "false", "OPENINFERENCE_HIDE_OUTPUTS": "false"},
}

#: Instrumentation scope name prefixes whose spans count as the configuration's LLM spans.
SCOPE_PREFIXES: dict[str, tuple[str, ...]] = {
    "llm_audit": ("otel_llm_audit",),
    "llm_audit_masked": ("otel_llm_audit",),
    "llm_audit_budgets": ("otel_llm_audit",),
    "openai_v2": ("opentelemetry.instrumentation.openai_v2", "opentelemetry.util.genai"),
    "openllmetry": ("opentelemetry.instrumentation.openai",),
    "openinference": ("openinference.instrumentation.openai",),
}

#: Distributions whose versions every configuration records, besides its SDK's and its peer's.
COMMON_DISTS = (
    "httpx",
    "pydantic",
    "pydantic-core",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation",
    "wrapt",
    "otel-llm-audit",
)

VERSION_DISTS = (
    "openai",
    "httpx2",
    *COMMON_DISTS,
    "opentelemetry-instrumentation-openai-v2",
    "opentelemetry-util-genai",
    "opentelemetry-instrumentation-openai",
    "openinference-instrumentation-openai",
    "openinference-instrumentation",
)


class BenchmarkError(RuntimeError):
    """The configuration did not do what it claims; its timings must not be trusted."""


# ---------------------------------------------------------------------------------------------
# The exporters: as cheap as an exporter can be, so only the instrumentation is measured.


def _make_exporters() -> tuple[Any, Any]:
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class CountingSpanExporter(SpanExporter):
        """Drops spans; counts them by (scope, name) and keeps the first few of each name."""

        keep_per_name = 3

        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.reset()

        def reset(self) -> None:
            with self.lock:
                self.count = 0
                self.by_key: Counter[tuple[str, str]] = Counter()
                self.samples: list[Any] = []

        def export(self, spans: Sequence[Any]) -> Any:
            with self.lock:
                self.count += len(spans)
                for span in spans:
                    scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
                    key = (scope, span.name)
                    self.by_key[key] += 1
                    if self.by_key[key] <= self.keep_per_name:
                        self.samples.append(span)
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            return None

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    class NoOpMetricExporter(MetricExporter):
        """Receives the collected metrics (so the SDK does all its collection work) and drops them."""

        def __init__(self) -> None:
            super().__init__(preferred_temporality={}, preferred_aggregation={})
            self.exports = 0
            self.points = 0

        def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
            self.exports += 1
            for rm in metrics_data.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        self.points += len(metric.data.data_points)
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            return None

    return CountingSpanExporter(), NoOpMetricExporter()


# ---------------------------------------------------------------------------------------------
# Configurations


class Setup:
    """What a configuration built: how to flush it and how to inspect what it exported."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.span_exporter: Any = None
        self.metric_exporter: Any = None
        self.flush: Callable[[], bool] = lambda: True
        self.shutdown: Callable[[], None] = lambda: None
        self.details: dict[str, Any] = {}
        #: Our AuditSpanProcessor, to read its completion backlog and dropped-content count.
        self.audit_processor: Any = None


def _sdk_providers(setup: Setup) -> tuple[Any, Any]:
    """The peers' pipeline: TracerProvider + BatchSpanProcessor(counting exporter), MeterProvider."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    span_exporter, metric_exporter = _make_exporters()
    resource = Resource.create({"service.name": "openai-overhead-bench"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=60_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    setup.span_exporter, setup.metric_exporter = span_exporter, metric_exporter

    def flush() -> bool:
        ok = tracer_provider.force_flush(60_000)
        return meter_provider.force_flush(60_000) and ok

    def shutdown() -> None:
        tracer_provider.shutdown()
        meter_provider.shutdown()

    setup.flush, setup.shutdown = flush, shutdown
    return tracer_provider, meter_provider


def configure_llm_audit(setup: Setup, instrument: Callable[[], None]) -> Setup:
    """This package's pipeline (content raw, or masked for ``llm_audit_masked``), then ``instrument()``."""
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    import otel_llm_audit
    from otel_llm_audit.processing.pipeline import AuditSpanProcessor

    span_exporter, metric_exporter = _make_exporters()
    budgets = setup.name == "llm_audit_budgets"
    pipeline = otel_llm_audit.configure(
        content="masked" if setup.name == "llm_audit_masked" else "raw",
        span_exporters=[span_exporter],
        metric_readers=[PeriodicExportingMetricReader(metric_exporter, export_interval_millis=60_000)],
        instrument=False,
        http_spans=False,
        policy=ten_budgets() if budgets else None,
        budget_ledger=exhausted_ledger(ten_budgets()) if budgets else None,
    )
    if budgets:  # every call is in scope of every budget: the check before each call does all its work
        otel_llm_audit.audit_context(user_id="u-1", team="t", application="bench", tenant_id="acme").__enter__()
    if pipeline.masking is not None and not pipeline.masking.wait_ready(120):
        raise RuntimeError("the masker did not start")
    instrument()
    setup.span_exporter, setup.metric_exporter = span_exporter, metric_exporter
    setup.flush = lambda: pipeline.force_flush(60_000)
    setup.shutdown = pipeline.shutdown
    setup.details["otel_llm_audit_file"] = otel_llm_audit.__file__
    processors = getattr(pipeline.tracer_provider._active_span_processor, "_span_processors", ())
    setup.audit_processor = next((p for p in processors if isinstance(p, AuditSpanProcessor)), None)
    return setup


def exhausted_ledger(policy: Any) -> str:
    """A ledger file where each budget that counts per value is exhausted for some other value.

    The check before each call then has exhausted scopes to look through (and never finds the
    benchmark's own), as in a busy service where some users or teams have run out.
    """
    import tempfile

    from otel_llm_audit.processing.budget_ledger import BudgetLedger, Charge
    from otel_llm_audit.processing.budgets import ledger_name, period_key, scope_key

    path = os.path.join(tempfile.mkdtemp(prefix="bench-budgets-"), "budgets.db")
    ledger = BudgetLedger(path)
    now = time.time_ns()
    for budget in policy.budgets:
        if "*" not in budget.scope.values():
            continue  # exhausting it would block the benchmark's own calls
        scoped = {d: ("someone-else" if v == "*" else v) for d, v in budget.scope.items()}
        period = period_key(budget.period, now, None, None)
        ledger.charge([Charge(ledger_name(budget), scope_key(scoped), period or "", 2 * budget.limit, [])])
    ledger.close()
    return path


def ten_budgets() -> Any:
    """Ten budgets that all enforce and apply to every call, none reached by the benchmark's calls."""
    from otel_llm_audit import Budget, PolicyConfig

    scopes = [
        {}, {"team": "*"}, {"user": "*"}, {"application": "*"}, {"tenant": "*"}, {"model": "*"},
        {"team": "t", "model": "*"}, {"user": "*", "model": "*"}, {"tenant": "acme", "team": "*"},
        {"application": "bench", "user": "*"},
    ]  # fmt: skip
    periods = ["hour", "day", "month", "session", "run"]
    return PolicyConfig(
        budgets=tuple(
            Budget(name=f"b{i}", scope=scope, period=periods[i % 3], limit_usd=1e9, enforce=True)
            for i, scope in enumerate(scopes)
        )
    )


def configure(name: str) -> Setup:
    for key, value in CONFIG_ENV[name].items():
        os.environ.setdefault(key, value)
    setup = Setup(name)
    if name == "none":
        return setup
    if name in ("llm_audit", "llm_audit_masked", "llm_audit_budgets"):
        from otel_llm_audit.instrumentation.openai import OpenAIInstrumentor as AuditInstrumentor

        return configure_llm_audit(setup, lambda: AuditInstrumentor().instrument())
    tracer_provider, meter_provider = _sdk_providers(setup)
    if name == "openai_v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as V2Instrumentor

        V2Instrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    elif name == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as LlmetryInstrumentor

        LlmetryInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    elif name == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor as OIInstrumentor

        # OpenInference records no metrics; the MeterProvider is there all the same.
        OIInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    else:
        raise ValueError(f"unknown configuration {name!r}")
    return setup


# ---------------------------------------------------------------------------------------------
# Verification


def _span_text(span: Any) -> str:
    parts = [span.name]
    for value in (span.attributes or {}).values():
        parts.append(value if isinstance(value, str) else repr(value))
    for event in span.events or ():
        parts.append(event.name)
        for value in (event.attributes or {}).values():
            parts.append(value if isinstance(value, str) else repr(value))
    return "\n".join(parts)


def verify(setup: Setup, scenario: str, expected_calls: int) -> dict[str, Any]:
    """Exactly one LLM span per call, from this configuration's scope, with content captured."""
    exporter = setup.span_exporter
    if exporter is None:
        return {"spans": 0}
    prefixes = SCOPE_PREFIXES[setup.name]
    with exporter.lock:
        by_key = dict(exporter.by_key)
        samples = list(exporter.samples)
        total = exporter.count
    ours = {k: v for k, v in by_key.items() if k[0].startswith(prefixes)}
    llm_spans = sum(ours.values())
    described = ", ".join(f"{scope}:{name}={n}" for (scope, name), n in sorted(by_key.items())) or "nothing"
    if llm_spans != expected_calls:
        raise BenchmarkError(
            f"{setup.name}/{scenario}: expected {expected_calls} LLM spans from scopes {prefixes}, "
            f"got {llm_spans} (exported: {described})"
        )
    if total != llm_spans:
        raise BenchmarkError(f"{setup.name}/{scenario}: unexpected extra spans (exported: {described})")
    wanted = _mock.MARKERS[scenario]
    for span in samples:
        text = _span_text(span)
        missing = [m for m in wanted if m not in text]
        if missing:
            raise BenchmarkError(
                f"{setup.name}/{scenario}: span {span.name!r} lacks captured content {missing} "
                f"(attributes: {sorted((span.attributes or {}).keys())})"
            )
    sample = samples[0]
    return {
        "spans": llm_spans,
        "span_names": sorted({name for (_scope, name) in ours}),
        "sample_attribute_count": len(sample.attributes or {}),
        "sample_event_count": len(sample.events or ()),
        "sample_content_chars": len(_span_text(sample)),
    }


# ---------------------------------------------------------------------------------------------
# Measurement


def _summary(values: list[int]) -> dict[str, float]:
    ordered = sorted(values)
    n = len(ordered)

    def pct(p: float) -> float:
        return float(ordered[min(n - 1, int(p * n))])

    return {
        "median": float(statistics.median(ordered)),
        "mean": float(statistics.fmean(ordered)),
        "p10": pct(0.10),
        "p90": pct(0.90),
        "p99": pct(0.99),
        "min": float(ordered[0]),
    }


def completion_backlog(audit: Any) -> int | None:
    """Spans waiting in our AuditSpanProcessor (queue.Queue before, a deque since), if we can tell."""
    if audit is None:
        return None
    if hasattr(audit, "_queue"):
        return int(audit._queue.qsize())
    if hasattr(audit, "_items"):
        return len(audit._items)
    return None


def run_scenario(setup: Setup, scenario: str, calls: int, warmup: int, latency_s: float = 0.0) -> dict[str, Any]:
    call = _mock.make_call(scenario, latency_s)
    expected_chunks = _mock.STREAM_TOTAL_CHUNKS if scenario in _mock.STREAMING else 1
    if setup.span_exporter is not None:
        setup.flush()
        setup.span_exporter.reset()
    for _ in range(warmup):
        if call() != expected_chunks:
            raise BenchmarkError(f"{scenario}: the caller did not see {expected_chunks} chunks")
    if not setup.flush():
        raise BenchmarkError(f"{setup.name}: flush after warm-up timed out")
    gc.collect()

    wall = [0] * calls
    cpu = [0] * calls
    perf = time.perf_counter_ns
    thread_cpu = time.thread_time_ns
    bad = 0
    process_cpu_0 = time.process_time_ns()
    wall_0 = perf()
    for i in range(calls):
        c0 = thread_cpu()
        t0 = perf()
        seen = call()
        t1 = perf()
        c1 = thread_cpu()
        wall[i] = t1 - t0
        cpu[i] = c1 - c0
        if seen != expected_chunks:
            bad += 1
    wall_1 = perf()
    audit = setup.audit_processor
    backlog = completion_backlog(audit)
    # Excluded from the per-call wall times, included in total CPU: the work these calls left
    # for background threads (completion, batching, metric collection).
    ok = setup.flush()
    wall_2 = perf()
    process_cpu_1 = time.process_time_ns()
    if bad:
        raise BenchmarkError(f"{scenario}: {bad} calls did not see {expected_chunks} chunks")
    if not ok:
        raise BenchmarkError(f"{setup.name}: flush after the timed calls timed out")
    checked = verify(setup, scenario, warmup + calls)
    dropped = audit.dropped_content_count if audit is not None else None
    if dropped:
        raise BenchmarkError(
            f"{setup.name}/{scenario}: {dropped} spans lost their content (completion queue full); "
            "the configuration did not capture what it claims"
        )
    return {
        "calls": calls,
        "warmup": warmup,
        "chunks_per_call": expected_chunks,
        "wall_ns": _summary(wall),
        "thread_cpu_ns": _summary(cpu),
        "process_cpu_per_call_ns": (process_cpu_1 - process_cpu_0) / calls,
        "block_wall_ns": wall_1 - wall_0,
        "drain_wall_ns": wall_2 - wall_1,
        #: Spans still waiting for completion when the timed calls ended (llm_audit only).
        "completion_backlog": backlog,
        "verified": checked,
    }


def versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in VERSION_DISTS:
        with contextlib.suppress(PackageNotFoundError):
            found[dist] = version(dist)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, choices=CONFIGS)
    parser.add_argument("--scenarios", default=",".join(_mock.SCENARIOS))
    parser.add_argument("--calls", type=int, default=2000, help="timed non-streaming calls per scenario")
    parser.add_argument("--stream-calls", type=int, default=500, help="timed streaming calls")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--stream-warmup", type=int, default=50)
    parser.add_argument("--server-latency-ms", type=float, default=0.0, help="mock transport sleeps this long")
    parser.add_argument("--round", type=int, default=0, help="rotates the scenario order")
    parser.add_argument("--out", required=True, help="where to write the JSON result")
    parser.add_argument("--profile", default=None, help="cProfile the caller's thread into this file")
    parser.add_argument("--profile-scenario", default="chat_text")
    args = parser.parse_args(argv)

    result: dict[str, Any] = {"config": args.config, "round": args.round, "pid": os.getpid()}
    try:
        started = time.perf_counter()
        setup = configure(args.config)
        result["setup_s"] = time.perf_counter() - started
        result["details"] = setup.details
        scenarios = [s for s in args.scenarios.split(",") if s]
        shift = args.round % len(scenarios)
        scenarios = scenarios[shift:] + scenarios[:shift]
        result["scenario_order"] = scenarios
        latency = args.server_latency_ms / 1000
        result["scenarios"] = {}
        for scenario in scenarios:
            streaming = scenario in _mock.STREAMING
            calls = args.stream_calls if streaming else args.calls
            warmup = args.stream_warmup if streaming else args.warmup
            if args.profile and scenario == args.profile_scenario:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
                result["scenarios"][scenario] = run_scenario(setup, scenario, calls, warmup, latency)
                profiler.disable()
                profiler.dump_stats(args.profile)
            else:
                result["scenarios"][scenario] = run_scenario(setup, scenario, calls, warmup, latency)
        if setup.metric_exporter is not None:
            result["metric_points_at_last_flush"] = setup.metric_exporter.points
            result["metric_exports"] = setup.metric_exporter.exports
        setup.shutdown()
        result["ok"] = True
    except BenchmarkError as err:
        result.update(ok=False, error=str(err))
    except Exception as err:
        result.update(ok=False, error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
    result["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["versions"] = versions()
    result["python"] = sys.version.split()[0]
    result["executable"] = sys.executable
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1)
    if not result["ok"]:
        print(f"[{args.config}] FAILED: {result['error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
