"""Memory of the LangChain instrumentor's run map over 100,000 LangGraph workflows, some abandoned.

A long-running service runs many small workflows; some never finish from the callbacks' point of
view: the caller takes the first update of ``graph.stream()`` and never drains nor closes the
generator (a client that went away, a stuck request). Others fail and the application swallows
the exception. The run map of the LangChain instrumentor must not grow with them.

Each configuration runs in its own fresh subprocess with the same workload:

* ``none``: no instrumentation (the application's own memory: the parked generators grow it);
* ``llm_audit``: ``configure()`` with a counting no-op exporter, then ``LangChainInstrumentor``
  with its default bounds (10,000 runs in flight, 1 hour idle limit);
* ``llm_audit_cap2000``: the same with ``max_runs=2000``, so eviction starts early in the run;
* ``llm_audit_unbounded``: the same with the bounds off (``max_runs=10**9``, ``idle_ttl_s=None``):
  what an unbounded run map, as peers had, would cost.

Workload: ``--runs`` (100,000) runs of a two-node ``StateGraph``; every ``--abandon-every``-th
(8th: 12.5%) is started with ``stream()``, advanced one update and parked forever; every
``--fail-every``-th (33rd: 3%) raises in its second node, caught by the application; the rest
complete with ``invoke()``. At every ``--checkpoint`` (10,000) runs: the traced memory
(``tracemalloc``, started after the warm-up: every live Python allocation) and the RSS after
``gc.collect()``, the run map's size and evictions, spans exported. The audit-attributable memory is a
configuration's RSS growth since
its first timed workflow minus ``none``'s growth at the same checkpoint.

Usage::

    python benchmarks/langchain_run_map.py                 # all three, ~15-25 min on 2 cores
    python benchmarks/langchain_run_map.py --runs 20000 --checkpoint 2000 --no-write   # quicker look

Writes ``benchmarks/results/langchain_run_map.{json,md}`` (unless ``--no-write``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import operator
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Annotated, Any, TypedDict

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONFIGS = ("none", "llm_audit", "llm_audit_cap2000", "llm_audit_unbounded")
DEFAULT_BOUNDS = "max_runs=10,000, idle_ttl_s=3600"


# ------------------------------------------------------------------------------- worker


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class State(TypedDict):
    """The workflows' state (module level: LangGraph resolves its annotations)."""

    steps: Annotated[list[str], operator.add]
    fail: bool


def _graph() -> Any:
    from langgraph.graph import START, StateGraph

    def answer(state: State) -> dict[str, Any]:
        if state.get("fail"):
            raise ValueError("downstream service refused")
        return {"steps": ["answer"]}

    graph = StateGraph(State)
    graph.add_node("intake", lambda state: {"steps": ["intake"]})
    graph.add_node("answer", answer)
    graph.add_edge(START, "intake")
    graph.add_edge("intake", "answer")
    return graph.compile(name="small_flow")


def worker(config: str, runs: int, abandon_every: int, fail_every: int, checkpoint: int) -> None:
    exported = [0]
    handler: Any = None
    if config != "none":
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

        import otel_llm_audit
        from otel_llm_audit.instrumentation.langchain import LangChainInstrumentor

        class Counting(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                exported[0] += len(spans)
                return SpanExportResult.SUCCESS

        pipeline = otel_llm_audit.configure(
            span_exporters=[Counting()], tracer_provider=TracerProvider(), set_global=False, instrument=False
        )
        bounds: dict[str, Any] = {}
        if config == "llm_audit_unbounded":
            bounds = {"max_runs": 10**9, "idle_ttl_s": None}
        elif config == "llm_audit_cap2000":
            bounds = {"max_runs": 2_000}
        instrumentor = LangChainInstrumentor()
        instrumentor.instrument(tracer_provider=pipeline.tracer_provider, **bounds)
        handler = instrumentor.handler

    app = _graph()
    for _ in range(200):  # warm-up: imports, caches, first-call allocations
        app.invoke({"steps": [], "fail": False})
    if handler is not None:
        pipeline.force_flush(30_000)
    gc.collect()
    tracemalloc.start(1)  # from here on: every allocation of the process is counted, ours included
    parked: list[Any] = []  # the application's stuck streams: never drained, never closed
    failed = 0
    start = time.perf_counter()
    points = [_point(0, start, parked, failed, handler, exported)]
    for index in range(1, runs + 1):
        if index % abandon_every == 0:
            stream = app.stream({"steps": [], "fail": False}, stream_mode="updates")
            next(stream)
            parked.append(stream)
        elif index % fail_every == 0:
            try:
                app.invoke({"steps": [], "fail": True})
            except ValueError:
                failed += 1  # swallowed by the application
        else:
            app.invoke({"steps": [], "fail": False})
        if index % checkpoint == 0:
            if handler is not None:
                pipeline.force_flush(30_000)
            points.append(_point(index, start, parked, failed, handler, exported))
            print(json.dumps({"progress": points[-1]}), file=sys.stderr, flush=True)
    print(json.dumps({"config": config, "points": points, "versions": _versions()}), flush=True)
    os._exit(0)  # parked generators stay unclosed: no teardown callbacks


def _point(
    index: int, start: float, parked: list[Any], failed: int, handler: Any, exported: list[int]
) -> dict[str, Any]:
    gc.collect()
    point: dict[str, Any] = {
        "runs": index,
        "rss_mb": round(_rss_mb(), 1),
        "traced_mb": round(tracemalloc.get_traced_memory()[0] / 1e6, 2),
        "parked": len(parked),
        "failed": failed,
        "elapsed_s": round(time.perf_counter() - start, 1),
    }
    if handler is not None:
        point.update(map_size=len(handler.runs), evicted=handler.runs.evicted, spans_exported=exported[0])
    return point


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for dist in ("langgraph", "langchain-core", "opentelemetry-sdk", "otel-llm-audit"):
        try:
            out[dist] = version(dist)
        except Exception:
            out[dist] = "?"
    return out


# ------------------------------------------------------------------------- orchestrator


def run_config(config: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        args.python,
        str(Path(__file__).resolve()),
        "--worker",
        config,
        "--runs",
        str(args.runs),
        "--abandon-every",
        str(args.abandon_every),
        "--fail-every",
        str(args.fail_every),
        "--checkpoint",
        str(args.checkpoint),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{config} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _growth(points: dict[int, dict[str, Any]], runs: int, key: str) -> float:
    return float(points[runs][key] - points[0][key])


TITLES = {
    "llm_audit": f"default bounds ({DEFAULT_BOUNDS})",
    "llm_audit_cap2000": "max_runs=2,000",
    "llm_audit_unbounded": "bounds off",
}


def _table(results: dict[str, dict[str, Any]], key: str, label: str) -> list[str]:
    base = {p["runs"]: p for p in results["none"]["points"]}
    audited = [c for c in CONFIGS[1:] if c in results]
    per = {c: {p["runs"]: p for p in results[c]["points"]} for c in audited}
    head = ["workflows", "parked (never drained)", f"uninstrumented: {label} growth"]
    for config in audited:
        head += [f"otel-llm-audit, {TITLES[config]}: growth (instrumentor's share)", "run map / evicted"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for runs in sorted(base):
        row = [f"{runs:,}", f"{base[runs]['parked']:,}", f"{_growth(base, runs, key):+.1f} MB"]
        for config in audited:
            points = per[config]
            if runs not in points:
                row += ["", ""]
                continue
            grown = _growth(points, runs, key)
            row += [
                f"{grown:+.1f} MB ({grown - _growth(base, runs, key):+.1f})",
                f"{points[runs]['map_size']:,} / {points[runs]['evicted']:,}",
            ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def render(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    """Markdown: memory growth since the first timed workflow, and the instrumentor's share of it."""
    base = {p["runs"]: p for p in results["none"]["points"]}
    audited = [c for c in CONFIGS[1:] if c in results]
    per = {c: {p["runs"]: p for p in results[c]["points"]} for c in audited}
    versions = results["none"]["versions"]
    header = (
        f"LangChain run map over {args.runs:,} LangGraph workflows in one process (two nodes each; every "
        f"{args.abandon_every}th parked after its first update and never drained nor closed, every "
        f"{args.fail_every}th failing in its second node with the exception swallowed by the application, the rest "
        f"completed); each configuration in a fresh process; growth since the first timed workflow (the "
        f"start-up cost of importing and configuring the audit pipeline is excluded); the instrumentor's share "
        f"is a configuration's growth minus the uninstrumented process's. "
        f"langgraph {versions.get('langgraph')}, langchain-core {versions.get('langchain-core')}, "
        f"CPython {versions.get('python')}, {os.cpu_count()} CPUs, "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC."
    )
    last = max(base)
    notes = []
    for config in audited:
        p = per[config].get(last)
        if p is None:
            continue
        share = _growth(per[config], last, "traced_mb") - _growth(base, last, "traced_mb")
        notes.append(
            f"- {TITLES[config]}: {p['map_size']:,} runs in the map at the end, {p['evicted']:,} evicted "
            f"(their spans ended with error.type=abandoned and exported; {p['spans_exported']:,} spans exported "
            f"in all); instrumentor's share of the traced growth {share:+.1f} MB."
        )
    unbounded = per.get("llm_audit_unbounded", {}).get(last)
    if unbounded is not None and unbounded["map_size"]:
        share = _growth(per["llm_audit_unbounded"], last, "traced_mb") - _growth(base, last, "traced_mb")
        notes.append(
            f"- Without bounds each abandoned run keeps about {share * 1e3 / unbounded['map_size']:.1f} KB "
            "(its span and map entry) for as long as the process lives."
        )
    notes.append(
        "- The uninstrumented process grows too: the parked generators are the application's own memory "
        "(about 29 KB each)."
    )
    notes.append(
        "- RSS also counts allocator fragmentation: objects freed on eviction sit in arenas shared with the "
        "parked generators allocated at the same time, so RSS keeps a small slope where the traced memory is flat."
    )
    return "\n".join(
        [
            header,
            "",
            "Traced memory (tracemalloc, every live Python allocation of the process):",
            "",
            *_table(results, "traced_mb", "traced"),
            "",
            "Resident set size (after gc.collect()):",
            "",
            *_table(results, "rss_mb", "RSS"),
            "",
            *notes,
            "",
            "Command: `python benchmarks/langchain_run_map.py`",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=CONFIGS)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--abandon-every", type=int, default=8)
    parser.add_argument("--fail-every", type=int, default=33)
    parser.add_argument("--checkpoint", type=int, default=10_000)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--parallel", type=int, default=2, help="configurations run at once (fresh processes)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.runs, args.abandon_every, args.fail_every, args.checkpoint)
        return
    configs = [c for c in args.configs.split(",") if c]
    if "none" not in configs:
        configs.insert(0, "none")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        futures = {config: pool.submit(run_config, config, args) for config in configs}
        results = {config: future.result() for config, future in futures.items()}
    table = render(results, args)
    print(table)
    if not args.no_write:
        out = HERE / "results"
        out.mkdir(exist_ok=True)
        record = {
            "args": {k: v for k, v in vars(args).items() if k not in ("worker", "python")},
            "when_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "results": results,
        }
        (out / "langchain_run_map.json").write_text(json.dumps(record, indent=2) + "\n")
        (out / "langchain_run_map.md").write_text(table)


if __name__ == "__main__":
    main()
