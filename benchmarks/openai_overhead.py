"""Caller-thread time each OpenTelemetry instrumentation adds to an OpenAI call, side by side.

    python benchmarks/openai_overhead.py                       # all configurations, 5 rounds
    python benchmarks/openai_overhead.py --quick --configs none,llm_audit   # a few seconds

Configurations (each in its own fresh process per round; peers in their own virtual
environments made by ``benchmarks/setup_envs.sh``):

* ``none``          the plain ``openai`` SDK, no OpenTelemetry at all
* ``llm_audit``     this package: ``configure(content="raw", ...)`` + its OpenAI instrumentor
* ``llm_audit_budgets`` the same with ten budgets that all enforce and all apply to every call
  (the check before each call does all its work; no limit is ever reached)
* ``openai_v2``     ``opentelemetry-instrumentation-openai-v2`` 2.4b0 (content on spans)
* ``openllmetry``   ``opentelemetry-instrumentation-openai`` 0.62.4 (content on)
* ``openinference`` ``openinference-instrumentation-openai`` 0.1.66 (content on)

Every instrumented configuration exports into the same counting no-op span exporter behind a
``BatchSpanProcessor`` and has a ``MeterProvider`` with a periodic reader and a no-op exporter.
Scenarios drive the real ``openai`` SDK over an in-process ``httpx2.MockTransport`` (see
``_mock.py``): a chat call with a text answer, one with two tool calls, and a stream of 23 chunks
plus a usage chunk, consumed to its end.

Configurations are interleaved over rounds (the order rotates each round); overhead is a
configuration's median minus the uninstrumented median of the same round, then the median over
rounds. Results go to ``benchmarks/results/openai_overhead.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import _mock  # noqa: E402
from _worker import CONFIG_ENV, CONFIGS  # noqa: E402

DEFAULT_VENVS = Path(os.environ.get("BENCH_VENVS", "/work/bench-venvs"))
PEERS = ("openai_v2", "openllmetry", "openinference")
#: Which virtual environment runs which configuration (the baseline shares ours).
VENV_OF = {
    "none": "llm_audit",
    "llm_audit": "llm_audit",
    "llm_audit_masked": "llm_audit",
    "llm_audit_budgets": "llm_audit",
    **{p: p for p in PEERS},
}
LABELS = {
    "none": "uninstrumented",
    "llm_audit": "otel-llm-audit",
    "llm_audit_masked": "otel-llm-audit, content masked",
    "llm_audit_budgets": "otel-llm-audit, ten budgets enforcing",
    "openai_v2": "official openai-v2 2.4b0",
    "openllmetry": "OpenLLMetry 0.62.4",
    "openinference": "OpenInference 0.1.66",
}
SCENARIO_LABELS = {
    "chat_text": "chat, text answer",
    "chat_tools": "chat with 2 tool calls",
    "stream": f"stream, {_mock.STREAM_CONTENT_CHUNKS} chunks + usage",
}
#: Packages that must be the same in every environment for the comparison to be fair.
CORE_DISTS = ("openai", "httpx2", "pydantic", "pydantic-core", "opentelemetry-sdk", "wrapt")
GOAL_CHAT_US = 50.0
GOAL_CHUNK_US = 2.0


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


# ---------------------------------------------------------------------------------------------
# Running the workers


def resolve_pythons(configs: list[str], venvs: Path, core_python: str | None) -> tuple[dict[str, str], list[str]]:
    """The interpreter of each configuration; peers without a venv are skipped, with a message."""
    pythons: dict[str, str] = {}
    notes: list[str] = []
    for config in configs:
        venv_python = venvs / VENV_OF[config] / "bin" / "python"
        if config in PEERS:
            if venv_python.exists():
                pythons[config] = str(venv_python)
            else:
                notes.append(
                    f"skipping {config}: no virtual environment at {venv_python.parent.parent} "
                    f"(create it with: bash benchmarks/setup_envs.sh {config})"
                )
        elif core_python:
            pythons[config] = core_python
        elif venv_python.exists():
            pythons[config] = str(venv_python)
        else:
            pythons[config] = sys.executable
            notes.append(f"{config}: no {venv_python.parent.parent}, using this interpreter ({sys.executable})")
    return pythons, notes


def snapshot_src(tmp: Path) -> tuple[Path, str]:
    """Copy ``src/`` once per run, so every round measures the same code while others edit it.

    The copy goes first on the workers' ``PYTHONPATH``, ahead of the editable install. Returns
    the copy's path and a digest of its contents (recorded in the results).
    """
    import hashlib
    import shutil

    dest = tmp / "src"
    shutil.copytree(REPO / "src", dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    digest = hashlib.sha256()
    for path in sorted(dest.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(dest)).encode())
            digest.update(path.read_bytes())
    return dest, digest.hexdigest()[:16]


def child_env(config: str, src: Path | None = None) -> dict[str, str]:
    """The parent's environment without any OpenTelemetry / vendor settings, plus the config's own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "TRACELOOP_", "OPENINFERENCE_", "OPENAI_", "PYTHONPATH"))
    }
    env.update(CONFIG_ENV[config])
    if src is not None:
        env["PYTHONPATH"] = str(src)
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_worker(
    python: str, config: str, round_no: int, args: argparse.Namespace, tmp: Path, src: Path | None
) -> dict[str, Any]:
    out = tmp / f"{config}-{round_no}.json"
    cmd = [
        python,
        str(HERE / "_worker.py"),
        "--config", config,
        "--scenarios", ",".join(args.scenarios),
        "--calls", str(args.calls),
        "--stream-calls", str(args.stream_calls),
        "--warmup", str(args.warmup),
        "--stream-warmup", str(args.stream_warmup),
        "--round", str(round_no),
        "--server-latency-ms", str(args.server_latency_ms),
        "--out", str(out),
    ]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=child_env(config, src), capture_output=True, text=True, timeout=args.timeout)
    elapsed = time.perf_counter() - started
    if out.exists():
        result: dict[str, Any] = json.loads(out.read_text())
    else:
        result = {"config": config, "ok": False, "error": f"worker exited {proc.returncode} without a result"}
    result["process_wall_s"] = elapsed
    if proc.returncode != 0 or not result.get("ok"):
        result["ok"] = False
        result["stderr_tail"] = proc.stderr[-4000:]
    return result


# ---------------------------------------------------------------------------------------------
# Aggregation


def aggregate(rounds: list[dict[str, dict[str, Any]]], configs: list[str], scenarios: list[str]) -> dict[str, Any]:
    """Per configuration and scenario: medians over rounds of per-round figures and overheads."""
    summary: dict[str, Any] = {}
    for config in configs:
        per_scenario: dict[str, Any] = {}
        for scenario in scenarios:
            rows = []
            for rnd in rounds:
                mine, base = rnd.get(config), rnd.get("none")
                if not mine or not mine.get("ok") or scenario not in mine.get("scenarios", {}):
                    continue
                m = mine["scenarios"][scenario]
                row = {
                    "wall_median_us": m["wall_ns"]["median"] / 1e3,
                    "wall_mean_us": m["wall_ns"]["mean"] / 1e3,
                    "wall_p99_us": m["wall_ns"]["p99"] / 1e3,
                    "thread_cpu_median_us": m["thread_cpu_ns"]["median"] / 1e3,
                    "process_cpu_per_call_us": m["process_cpu_per_call_ns"] / 1e3,
                    "drain_ms": m["drain_wall_ns"] / 1e6,
                }
                if m.get("completion_backlog") is not None:
                    row["completion_backlog"] = m["completion_backlog"]
                if base and base.get("ok") and scenario in base.get("scenarios", {}):
                    b = base["scenarios"][scenario]
                    row["overhead_us"] = row["wall_median_us"] - b["wall_ns"]["median"] / 1e3
                    row["overhead_mean_us"] = row["wall_mean_us"] - b["wall_ns"]["mean"] / 1e3
                    row["ratio"] = m["wall_ns"]["median"] / b["wall_ns"]["median"]
                    row["thread_cpu_overhead_us"] = row["thread_cpu_median_us"] - b["thread_cpu_ns"]["median"] / 1e3
                    row["process_cpu_overhead_us"] = row["process_cpu_per_call_us"] - b["process_cpu_per_call_ns"] / 1e3
                rows.append(row)
            if not rows:
                continue
            agg = {key: _median([r[key] for r in rows if key in r]) for key in rows[0]}
            agg["rounds"] = len(rows)
            if "overhead_us" in rows[0]:
                agg["overhead_us_min"] = min(r["overhead_us"] for r in rows)
                agg["overhead_us_max"] = max(r["overhead_us"] for r in rows)
            # Least-disturbed estimate: fastest round against the fastest baseline round. On a
            # shared machine a process can run 20% slower throughout; this ignores such rounds.
            base_walls = [
                rnd["none"]["scenarios"][scenario]["wall_ns"]["median"] / 1e3
                for rnd in rounds
                if rnd.get("none", {}).get("ok") and scenario in rnd["none"].get("scenarios", {})
            ]
            if base_walls and config != "none":
                agg["overhead_min_us"] = min(r["wall_median_us"] for r in rows) - min(base_walls)
            agg["per_round"] = rows
            per_scenario[scenario] = agg
        rss = [r[config]["peak_rss_kb"] for r in rounds if r.get(config, {}).get("ok")]
        base_rss = [r["none"]["peak_rss_kb"] for r in rounds if r.get("none", {}).get("ok")]
        entry: dict[str, Any] = {"scenarios": per_scenario}
        if rss:
            entry["peak_rss_mb"] = _median(rss) / 1024
            if base_rss:
                entry["peak_rss_over_none_mb"] = (_median(rss) - _median(base_rss)) / 1024
        # Per-chunk cost: what streaming adds beyond a non-streaming call, per chunk iterated.
        chunk_rows = []
        for rnd in rounds:
            mine, base = rnd.get(config, {}), rnd.get("none", {})
            try:
                s_over = (
                    mine["scenarios"]["stream"]["wall_ns"]["median"] - base["scenarios"]["stream"]["wall_ns"]["median"]
                )
                c_over = (
                    mine["scenarios"]["chat_text"]["wall_ns"]["median"]
                    - base["scenarios"]["chat_text"]["wall_ns"]["median"]
                )
            except (KeyError, TypeError):
                continue
            if mine.get("ok") and base.get("ok"):
                chunk_rows.append((s_over - c_over) / 1e3 / _mock.STREAM_TOTAL_CHUNKS)
        if chunk_rows and config != "none":
            entry["per_chunk_us"] = _median(chunk_rows)
            entry["per_chunk_us_per_round"] = chunk_rows
        summary[config] = entry
    return summary


def goals(summary: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """The package's goals: <= 50 us per chat call, <= 2 us per chunk, below every peer."""
    out: list[tuple[str, bool, str]] = []
    ours = summary.get("llm_audit")
    if not ours:
        return out
    chat = ours["scenarios"].get("chat_text", {}).get("overhead_us")
    if chat is not None:
        out.append((f"chat overhead <= {GOAL_CHAT_US:.0f} us", chat <= GOAL_CHAT_US, f"{chat:+.0f} us"))
    chunk = ours.get("per_chunk_us")
    if chunk is not None:
        out.append((f"per-chunk cost <= {GOAL_CHUNK_US:.0f} us", chunk <= GOAL_CHUNK_US, f"{chunk:+.1f} us"))
    for peer in PEERS:
        theirs = summary.get(peer)
        if not theirs:
            continue
        for scenario, agg in ours["scenarios"].items():
            other = theirs["scenarios"].get(scenario, {}).get("overhead_us")
            mine = agg.get("overhead_us")
            if other is None or mine is None:
                continue
            out.append((f"below {peer} on {scenario}", mine < other, f"{mine:+.0f} us vs {other:+.0f} us"))
    return out


# ---------------------------------------------------------------------------------------------
# Reporting


def _cell(agg: dict[str, Any] | None) -> str:
    if not agg or "overhead_us" not in agg:
        return "-"
    return f"{agg['overhead_us']:+.0f} us ({agg['ratio']:.2f}x)"


def markdown(summary: dict[str, Any], configs: list[str], scenarios: list[str], meta: dict[str, Any]) -> str:
    shown = [c for c in configs if c != "none" and c in summary]
    base = summary.get("none", {}).get("scenarios", {})
    lines = ["**Quick smoke run: too few calls for meaningful numbers.**", ""] if meta["quick"] else []
    lines += [
        f"Per-call overhead on the caller's thread, median of {meta['rounds']} interleaved rounds "
        f"({meta['calls']} non-streaming / {meta['stream_calls']} streaming calls per round; "
        f"{meta['machine']}; {meta['date']}).",
        "",
        "| scenario (uninstrumented median) | " + " | ".join(LABELS[c] for c in shown) + " |",
        "|---|" + "---|" * len(shown),
    ]
    for scenario in scenarios:
        b = base.get(scenario, {}).get("wall_median_us")
        label = SCENARIO_LABELS[scenario] + (f" (~{b:.0f} us)" if b else "")
        cells = [_cell(summary[c]["scenarios"].get(scenario)) for c in shown]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if "stream" in scenarios and "chat_text" in scenarios:
        cells = [f"{summary[c]['per_chunk_us']:+.1f} us" if "per_chunk_us" in summary[c] else "-" for c in shown]
        lines.append(
            f"| per streamed chunk, beyond the chat overhead (/{_mock.STREAM_TOTAL_CHUNKS}) | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        "CPU per call, all threads included (work moved to a background thread still costs CPU under "
        "the GIL), over the uninstrumented process; caller's thread alone in brackets:",
        "",
        "| scenario | " + " | ".join(LABELS[c] for c in shown) + " |",
        "|---|" + "---|" * len(shown),
    ]
    for scenario in scenarios:
        cells = []
        for c in shown:
            agg = summary[c]["scenarios"].get(scenario)
            if not agg or "process_cpu_overhead_us" not in agg:
                cells.append("-")
            else:
                cells.append(f"{agg['process_cpu_overhead_us']:+.0f} us ({agg['thread_cpu_overhead_us']:+.0f})")
        lines.append(f"| {SCENARIO_LABELS[scenario]} | " + " | ".join(cells) + " |")
    rss = [
        f"{summary[c]['peak_rss_over_none_mb']:+.1f} MB" if "peak_rss_over_none_mb" in summary[c] else "-"
        for c in shown
    ]
    lines.append("| peak RSS over uninstrumented | " + " | ".join(rss) + " |")
    spread = []
    for c in shown:
        agg = summary[c]["scenarios"].get("chat_text")
        if agg and "overhead_us_min" in agg:
            spread.append(f"{LABELS[c]} {agg['overhead_us_min']:+.0f}..{agg['overhead_us_max']:+.0f} us")
    if spread:
        lines += ["", "Chat overhead range over rounds: " + "; ".join(spread) + "."]
    least = []
    for scenario in scenarios:
        cells = [
            f"{summary[c]['scenarios'][scenario]['overhead_min_us']:+.0f}"
            for c in shown
            if "overhead_min_us" in summary[c]["scenarios"].get(scenario, {})
        ]
        if len(cells) == len(shown):
            least.append(f"{SCENARIO_LABELS[scenario]} " + " / ".join(cells))
    if least:
        lines += [
            "",
            "Least-disturbed estimate (fastest round minus fastest uninstrumented round, us, in the column "
            "order above): " + "; ".join(least) + ".",
        ]
    ours = summary.get("llm_audit", {}).get("scenarios", {})
    backlog = [
        f"{SCENARIO_LABELS[sc]} {ours[sc]['completion_backlog']:.0f} spans ({ours[sc]['drain_ms']:.0f} ms to drain)"
        for sc in scenarios
        if "completion_backlog" in ours.get(sc, {})
    ]
    modes = []
    for sc in scenarios:
        rows = ours.get(sc, {}).get("per_round", [])
        kept = [r["overhead_us"] for r in rows if r.get("completion_backlog", 0) < 10 and "overhead_us" in r]
        behind = [r["overhead_us"] for r in rows if r.get("completion_backlog", 0) >= 10 and "overhead_us" in r]
        if kept and behind:
            modes.append(
                f"{SCENARIO_LABELS[sc]}: kept up {_median(kept):+.0f} us ({len(kept)} rounds), "
                f"fell behind {_median(behind):+.0f} us ({len(behind)} rounds)"
            )
    if modes:
        lines += [
            "",
            "otel-llm-audit's overhead depends on whether its completion thread kept up with the caller "
            "(then the caller pays for the completion under the GIL) or fell behind (then the work waits "
            "for the flush): " + "; ".join(modes) + ".",
        ]
    if backlog:
        lines += [
            "",
            "otel-llm-audit's completion backlog when the timed calls ended (median over rounds; its drain is "
            "excluded from the wall times, included in the CPU figures): " + "; ".join(backlog) + ".",
        ]
    load = meta.get("loadavg_start")
    if load is not None:
        lines += ["", f"Load average when the run started: {load:.2f} (2 CPUs; other work on the machine adds noise)."]
    lines += ["", f"Command: `{meta['command']}`", ""]
    return "\n".join(lines)


def print_table(summary: dict[str, Any], configs: list[str], scenarios: list[str]) -> None:
    shown = [c for c in configs if c in summary]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency of the package
        return
    table = Table(title="OpenAI call overhead (caller's thread, median over rounds)")
    table.add_column("scenario")
    for c in shown:
        table.add_column(LABELS[c], justify="right")
    for scenario in scenarios:
        cells = []
        for c in shown:
            agg = summary[c]["scenarios"].get(scenario)
            if not agg:
                cells.append("-")
            elif c == "none":
                cells.append(f"{agg['wall_median_us']:.0f} us")
            else:
                cells.append(
                    f"{agg.get('overhead_us', float('nan')):+.0f} us ({agg.get('ratio', float('nan')):.2f}x)\n"
                    f"cpu {agg.get('process_cpu_overhead_us', float('nan')):+.0f} "
                    f"(caller {agg.get('thread_cpu_overhead_us', float('nan')):+.0f})"
                )
        table.add_row(SCENARIO_LABELS[scenario], *cells)
    if "stream" in scenarios and "chat_text" in scenarios:
        table.add_row(
            "per chunk",
            *[f"{summary[c]['per_chunk_us']:+.1f} us" if "per_chunk_us" in summary[c] else "-" for c in shown],
        )
    Console().print(table)


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, from {','.join(CONFIGS)}")
    parser.add_argument("--scenarios", default=",".join(_mock.SCENARIOS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000, help="timed non-streaming calls per scenario and round")
    parser.add_argument("--stream-calls", type=int, default=500, help="timed streaming calls per round")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up calls (default: calls / 10)")
    parser.add_argument("--stream-warmup", type=int, default=None)
    parser.add_argument(
        "--server-latency-ms",
        type=float,
        default=0.0,
        help="make the mock transport sleep (GIL released) this long per request; default 0, the worst case "
        "for background work",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run (a few seconds): CI smoke, not numbers")
    parser.add_argument("--venvs", type=Path, default=DEFAULT_VENVS, help="where setup_envs.sh put the venvs")
    parser.add_argument("--core-python", default=None, help="interpreter for none and llm_audit")
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="default benchmarks/results (a --quick run writes nothing unless given)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; keep results/ as it is")
    parser.add_argument("--report-only", type=Path, default=None, help="re-render a saved JSON result; run nothing")
    parser.add_argument(
        "--live-src",
        action="store_true",
        help="import src/ as it is at each worker's start instead of a snapshot taken when the run starts",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per worker process")
    args = parser.parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configurations {unknown}; known: {', '.join(CONFIGS)}")
    if "none" not in args.configs:
        args.configs.insert(0, "none")  # overhead is measured against it, round by round
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    bad = [s for s in args.scenarios if s not in _mock.SCENARIOS]
    if bad:
        parser.error(f"unknown scenarios {bad}; known: {', '.join(_mock.SCENARIOS)}")
    if args.quick:
        args.rounds, args.calls, args.stream_calls = 1, 60, 15
        args.warmup = 10 if args.warmup is None else args.warmup
        args.stream_warmup = 3 if args.stream_warmup is None else args.stream_warmup
    if args.out_dir is None:
        args.out_dir = HERE / "results"
        args.no_write = args.no_write or args.quick  # a smoke run must not overwrite real numbers
    if args.warmup is None:
        args.warmup = max(10, args.calls // 10)
    if args.stream_warmup is None:
        args.stream_warmup = max(3, args.stream_calls // 10)
    return args


def _git_state() -> dict[str, Any]:
    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {"commit": git("rev-parse", "HEAD"), "dirty_src": bool(git("status", "--porcelain", "--", "src"))}


def report_only(path: Path) -> int:
    """Re-render the tables of a saved result (after changing the report, without rerunning)."""
    payload = json.loads(path.read_text())
    meta = payload["meta"]
    configs = [c for c in CONFIGS if any(c in rnd for rnd in payload["raw"])]
    scenarios = [s for s in _mock.SCENARIOS if any(s in payload["summary"][c]["scenarios"] for c in configs)]
    summary = aggregate(payload["raw"], configs, scenarios)
    print_table(summary, configs, scenarios)
    print(markdown(summary, configs, scenarios, meta))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only is not None:
        return report_only(args.report_only)
    pythons, notes = resolve_pythons(args.configs, args.venvs, args.core_python)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    configs = [c for c in args.configs if c in pythons]
    if "none" not in pythons:
        print("error: no interpreter for the uninstrumented baseline", file=sys.stderr)
        return 2

    git_state = _git_state()
    loadavg_start = os.getloadavg()[0]
    if loadavg_start > 0.5:
        print(
            f"WARNING: load average {loadavg_start:.2f} before the run; other processes will add noise",
            file=sys.stderr,
        )
    started = time.perf_counter()
    rounds: list[dict[str, dict[str, Any]]] = []
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="openai-overhead-") as tmp_name:
        tmp = Path(tmp_name)
        src, src_digest = (None, "live tree") if args.live_src else snapshot_src(tmp)
        for round_no in range(args.rounds):
            order = configs[round_no % len(configs) :] + configs[: round_no % len(configs)]
            results: dict[str, dict[str, Any]] = {}
            for config in order:
                if config in failed:
                    continue
                result = run_worker(pythons[config], config, round_no, args, tmp, src)
                audit_file = result.get("details", {}).get("otel_llm_audit_file", "")
                ours = config.startswith("llm_audit")
                if src is not None and ours and audit_file and not audit_file.startswith(str(src)):
                    result.update(ok=False, error=f"measured {audit_file}, not the snapshot of src/")
                results[config] = result
                status = "ok" if result.get("ok") else "FAILED"
                print(
                    f"round {round_no + 1}/{args.rounds} {config:13s} {status} ({result['process_wall_s']:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
                if not result.get("ok"):
                    failed[config] = result.get("error", "unknown error")
                    print(f"  error: {failed[config]}", file=sys.stderr)
                    if result.get("traceback"):
                        print(result["traceback"], file=sys.stderr)
                    elif result.get("stderr_tail"):
                        print(result["stderr_tail"], file=sys.stderr)
            rounds.append(results)
            if "none" in failed:
                break

    summary = aggregate(rounds, configs, args.scenarios)
    versions = {}
    for config in configs:
        for rnd in rounds:
            if config in rnd and "versions" in rnd[config]:
                versions[config] = rnd[config]["versions"]
                break
    mismatches = []
    base_versions = versions.get("none", {})
    for config, found in versions.items():
        for dist in CORE_DISTS:
            if found.get(dist) != base_versions.get(dist):
                mismatches.append(f"{config}: {dist} {found.get(dist)} (baseline {base_versions.get(dist)})")
    for m in mismatches:
        print(f"WARNING: core package differs from the baseline's environment: {m}", file=sys.stderr)

    cmd = "python benchmarks/openai_overhead.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    meta = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": cmd.strip(),
        "rounds": args.rounds,
        "calls": args.calls,
        "stream_calls": args.stream_calls,
        "warmup": args.warmup,
        "stream_warmup": args.stream_warmup,
        "quick": args.quick,
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, CPython {platform.python_version()}",
        "git": git_state,
        "src_digest": src_digest,
        "loadavg_start": loadavg_start,
        "loadavg_end": os.getloadavg()[0],
        "pythons": pythons,
        "versions": versions,
        "version_mismatches": mismatches,
        "skipped": notes,
        "failed": failed,
        "elapsed_s": time.perf_counter() - started,
        "stream_chunks_per_call": _mock.STREAM_TOTAL_CHUNKS,
        "server_latency_ms": args.server_latency_ms,
    }
    checks = [] if args.quick else goals(summary)  # a smoke run's numbers prove nothing
    print_table(summary, configs, args.scenarios)
    md = markdown(summary, configs, args.scenarios, meta)
    print()
    print(md)
    for label, ok, value in checks:
        print(f"{'PASS' if ok else 'MISS'}  {label}: {value}")
    for config, error in failed.items():
        print(f"FAILED {config}: {error}")
    if not args.no_write:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "meta": meta,
            "summary": summary,
            "goals": [{"goal": g, "met": ok, "value": v} for g, ok, v in checks],
            "raw": rounds,
        }
        (args.out_dir / "openai_overhead.json").write_text(json.dumps(payload, indent=1) + "\n")
        (args.out_dir / "openai_overhead.md").write_text(md)
        print(f"wrote {args.out_dir / 'openai_overhead.json'} and {args.out_dir / 'openai_overhead.md'}")
    print(f"elapsed {meta['elapsed_s']:.0f} s", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
