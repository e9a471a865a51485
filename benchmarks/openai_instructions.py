"""Instructions each OpenTelemetry instrumentation adds to an OpenAI call, counted by callgrind.

    python benchmarks/openai_instructions.py                     # all configurations, ~15 minutes
    python benchmarks/openai_instructions.py --configs llm_audit --scenarios chat_text --calls 40

The wall-time benchmark (``openai_overhead.py``) cannot resolve 50-100 us differences on a
shared 2-core machine. This one counts executed instructions instead, which do not depend on
what else the machine is doing. Same configurations, same scenarios, same verification
(``_worker.configure`` / ``_worker.verify`` / ``_mock.make_call``); only the measurement
differs:

* Every (configuration, scenario, block size) runs in its own fresh process under
  ``valgrind --tool=callgrind --separate-threads=yes --instr-atstart=no``: the process starts,
  imports, configures and warms up uninstrumented (valgrind's fast path, nothing counted), then
  a tiny helper library (compiled once per run from ``valgrind/callgrind.h``, called through
  ``ctypes``) issues ``CALLGRIND_START_INSTRUMENTATION`` just before the first timed call and
  ``CALLGRIND_STOP_INSTRUMENTATION`` just after the flush that follows the last one.
  Instrumentation is process-wide, so every thread is counted while it is on, each in its own
  file: thread 1 is the caller, the others are the completion / batch / metric threads.
* Each pair runs twice, with N and with 2N timed calls; per call = (count(2N) - count(N)) / N.
  The difference cancels everything that does not scale with calls: the markers themselves,
  the constant part of the final flush (metric collection, the last batch), the ctypes calls.
  The flush is inside both runs, so the background work the calls left is counted.
* Overhead = per-call count minus the uninstrumented (``none``) per-call count, on the caller's
  thread and on all threads. The microsecond estimate divides by the instructions per
  microsecond of the uninstrumented SDK, measured natively on this machine: callgrind count per
  ``none`` call over its native thread-CPU time per call (median of block means), per scenario.

Results: ``benchmarks/results/openai_instructions.{json,md}``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
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

# One table of configurations, venvs and labels for both benchmarks.
from openai_overhead import DEFAULT_VENVS, LABELS, PEERS, SCENARIO_LABELS, VENV_OF  # noqa: E402

#: The client requests, callable from Python through ctypes.
MARKER_C = r"""
#include <valgrind/valgrind.h>
#include <valgrind/callgrind.h>
int bench_on_valgrind(void) { return RUNNING_ON_VALGRIND; }
void bench_start(void) { CALLGRIND_START_INSTRUMENTATION; }
void bench_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
"""


# ---------------------------------------------------------------------------------------------
# Worker: one configuration, one scenario, one block of calls (run inside valgrind, or natively
# for the calibration). Only the standard library, _worker and _mock: it runs in every venv.


def worker_main(args: argparse.Namespace) -> int:
    import ctypes
    import gc
    import threading
    import traceback

    import _worker

    result: dict[str, Any] = {"config": args.config, "scenario": args.scenario, "calls": args.calls, "ok": False}
    setup = None
    try:
        lib = None
        if args.marker_lib:
            lib = ctypes.CDLL(args.marker_lib)
            result["on_valgrind"] = int(lib.bench_on_valgrind())
            if not result["on_valgrind"]:
                raise _worker.BenchmarkError("--marker-lib given but not running under valgrind")
        setup = _worker.configure(args.config)
        result["details"] = setup.details
        call = _mock.make_call(args.scenario)
        expected = _mock.STREAM_TOTAL_CHUNKS if args.scenario in _mock.STREAMING else 1
        if setup.span_exporter is not None:
            setup.flush()
            setup.span_exporter.reset()
        for _ in range(args.warmup):
            if call() != expected:
                raise _worker.BenchmarkError(f"{args.scenario}: the caller did not see {expected} chunks")
        if not setup.flush():
            raise _worker.BenchmarkError("flush after warm-up timed out")
        exports_before = setup.metric_exporter.exports if setup.metric_exporter is not None else None
        gc.collect()

        thread_cpu = time.thread_time_ns
        perf = time.perf_counter_ns
        blocks = []
        bad = 0
        backlog = None
        ok = True
        for _block in range(args.blocks):
            # Counted region: from here ...
            if lib is not None:
                lib.bench_start()
            c0, w0 = thread_cpu(), perf()
            for _ in range(args.calls):
                if call() != expected:
                    bad += 1
            c1, w1 = thread_cpu(), perf()
            backlog = _worker.completion_backlog(setup.audit_processor)
            ok = setup.flush() and ok
            if lib is not None:
                lib.bench_stop()
            # ... to here (the flush included: it is the background work these calls left).
            blocks.append({"thread_cpu_ns": c1 - c0, "wall_ns": w1 - w0, "drain_wall_ns": perf() - w1})
        if bad:
            raise _worker.BenchmarkError(f"{args.scenario}: {bad} calls did not see {expected} chunks")
        if not ok:
            raise _worker.BenchmarkError("flush after the counted calls timed out")
        result["verified"] = _worker.verify(setup, args.scenario, args.warmup + args.blocks * args.calls)
        audit = setup.audit_processor
        dropped = audit.dropped_content_count if audit is not None else None
        if dropped:
            raise _worker.BenchmarkError(f"{dropped} spans lost their content (completion queue full)")
        result["blocks"] = blocks
        result["completion_backlog"] = backlog
        if setup.metric_exporter is not None:
            # Periodic collections during the counted region would not scale with calls.
            result["metric_exports_in_block"] = setup.metric_exporter.exports - exports_before
        result["threads"] = sorted(
            ({"name": t.name, "native_id": t.native_id} for t in threading.enumerate()),
            key=lambda t: t["native_id"] or 0,
        )
        result["versions"] = _worker.versions()
        result["python"] = sys.version.split()[0]
        result["executable"] = sys.executable
        result["ok"] = True
    except _worker.BenchmarkError as err:
        result["error"] = str(err)
    except Exception as err:
        result["error"] = f"{type(err).__name__}: {err}"
        result["traceback"] = traceback.format_exc()
    finally:
        if setup is not None:
            with contextlib.suppress(Exception):
                setup.shutdown()
    Path(args.out).write_text(json.dumps(result, indent=1))
    if not result["ok"]:
        print(f"[{args.config}/{args.scenario}] FAILED: {result['error']}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------------------------
# Driver


def build_marker_lib(tmp: Path) -> Path:
    src = tmp / "callgrind_marker.c"
    lib = tmp / "callgrind_marker.so"
    src.write_text(MARKER_C)
    cc = os.environ.get("CC", "cc")
    proc = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(lib), str(src)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(
            f"cannot compile the callgrind marker library ({cc}; needs valgrind/callgrind.h, "
            f"package valgrind):\n{proc.stderr}"
        )
    return lib


def snapshot_src(tmp: Path) -> tuple[Path, str]:
    """Copy ``src/`` once, so every process measures the same code while others edit the tree."""
    dest = tmp / "src"
    shutil.copytree(REPO / "src", dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    digest = hashlib.sha256()
    for path in sorted(dest.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(dest)).encode())
            digest.update(path.read_bytes())
    return dest, digest.hexdigest()[:16]


def child_env(config: str, src: Path | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "TRACELOOP_", "OPENINFERENCE_", "OPENAI_", "PYTHONPATH"))
    }
    env.update(CONFIG_ENV[config])
    if src is not None:
        env["PYTHONPATH"] = str(src)
    env["PYTHONHASHSEED"] = "0"  # same dict/set layouts in every process: same instructions
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def resolve_pythons(
    configs: list[str],
    venvs: Path,
    core_python: str | None,
    venv_of: dict[str, str] = VENV_OF,
    peers: tuple[str, ...] = PEERS,
) -> tuple[dict[str, str], list[str]]:
    """Peers run in their venv (skipped without one); the others in the llm_audit venv or ``--core-python``."""
    pythons: dict[str, str] = {}
    notes: list[str] = []
    for config in configs:
        venv_python = venvs / venv_of[config] / "bin" / "python"
        if config in peers:
            if venv_python.exists():
                pythons[config] = str(venv_python)
            else:
                notes.append(f"skipping {config}: no {venv_python} (bash benchmarks/setup_envs.sh {venv_of[config]})")
        elif core_python:
            pythons[config] = core_python
        elif venv_python.exists():
            pythons[config] = str(venv_python)
        else:
            pythons[config] = sys.executable
            notes.append(f"{config}: no {venv_python}, using {sys.executable}")
    return pythons, notes


_TOTALS = re.compile(r"^totals:\s+(\d+)", re.M)
_THREAD = re.compile(r"^thread:\s+(\d+)", re.M)
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def parse_callgrind(out_dir: Path, stderr: str) -> dict[str, Any]:
    """Instructions per valgrind thread id (1 = the main thread, our caller) from the output files."""
    per_thread: dict[int, int] = {}
    for path in sorted(out_dir.glob("cg.*")):
        text = path.read_text(errors="replace")
        totals, thread = _TOTALS.search(text), _THREAD.search(text)
        if not totals or not thread:
            continue
        tid = int(thread.group(1))
        per_thread[tid] = per_thread.get(tid, 0) + int(totals.group(1))
    collected = _COLLECTED.search(stderr)
    return {
        "per_thread": {str(k): v for k, v in sorted(per_thread.items())},
        "caller": per_thread.get(1, 0),
        "all": sum(per_thread.values()),
        "collected": int(collected.group(1)) if collected else None,
    }


class Runner:
    def __init__(self, args: argparse.Namespace, pythons: dict[str, str], tmp: Path, src: Path | None, lib: Path):
        self.args, self.pythons, self.tmp, self.src, self.lib = args, pythons, tmp, src, lib
        self.seq = 0
        self.commands: list[str] = []

    def _worker_cmd(self, config: str, scenario: str, calls: int, warmup: int, out: Path, blocks: int = 1) -> list[str]:
        return [
            self.pythons[config], str(Path(__file__).resolve()), "--worker",
            "--config", config, "--scenario", scenario, "--calls", str(calls),
            "--warmup", str(warmup), "--blocks", str(blocks), "--out", str(out),
        ]  # fmt: skip

    def callgrind(self, config: str, scenario: str, calls: int, warmup: int) -> dict[str, Any]:
        self.seq += 1
        run_dir = self.tmp / f"run{self.seq:03d}-{config}-{scenario}-{calls}"
        run_dir.mkdir()
        out = run_dir / "result.json"
        cmd = [
            "valgrind", "--tool=callgrind", "--separate-threads=yes", "--instr-atstart=no",
            f"--callgrind-out-file={run_dir}/cg.%p",
            *self._worker_cmd(config, scenario, calls, warmup, out),
            "--marker-lib", str(self.lib),
        ]  # fmt: skip
        if not self.commands:
            self.commands.append(shlex.join(cmd))
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, env=child_env(config, self.src), capture_output=True, text=True, timeout=self.args.timeout
            )
            stderr, rc = proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as err:
            stderr, rc = (err.stderr or b"").decode(errors="replace") if isinstance(err.stderr, bytes) else "", -1
        elapsed = time.perf_counter() - started
        result: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {"ok": False}
        result["process_wall_s"] = elapsed
        if rc != 0 or not result.get("ok"):
            result["ok"] = False
            result.setdefault("error", f"worker exited {rc}")
            result["stderr_tail"] = stderr[-3000:]
            return result
        audit_file = result.get("details", {}).get("otel_llm_audit_file", "")
        if self.src is not None and config.startswith("llm_audit") and not audit_file.startswith(str(self.src)):
            result.update(ok=False, error=f"measured {audit_file}, not the snapshot of src/")
            return result
        counts = parse_callgrind(run_dir, stderr)
        result["instructions"] = counts
        if counts["collected"] is not None and counts["collected"] != counts["all"]:
            result["warning"] = f"thread files sum to {counts['all']}, valgrind collected {counts['collected']}"
        if not self.args.keep_files:
            for path in run_dir.glob("cg.*"):
                path.unlink()
        return result

    def pair(self, config: str, scenario: str) -> dict[str, Any]:
        """N and 2N calls in two fresh processes; per call = difference / N."""
        streaming = scenario in _mock.STREAMING
        n = self.args.stream_calls if streaming else self.args.calls
        warmup = self.args.stream_warmup if streaming else self.args.warmup
        runs = {}
        for label, calls in (("n", n), ("2n", 2 * n)):
            res = self.callgrind(config, scenario, calls, warmup)
            runs[label] = res
            status = "ok" if res.get("ok") else f"FAILED: {res.get('error')}"
            print(
                f"  {config:13s} {scenario:10s} {calls:4d} calls  {res['process_wall_s']:6.1f} s  {status}",
                file=sys.stderr,
                flush=True,
            )
            if not res.get("ok"):
                if res.get("traceback") or res.get("stderr_tail"):
                    print(res.get("traceback") or res.get("stderr_tail"), file=sys.stderr)
                return {"ok": False, "error": res.get("error"), "n": n, "runs": runs}
        a, b = runs["n"]["instructions"], runs["2n"]["instructions"]
        pair: dict[str, Any] = {
            "ok": True,
            "n": n,
            "caller": (b["caller"] - a["caller"]) / n,
            "all": (b["all"] - a["all"]) / n,
            # Valgrind numbers threads by slot (a slot freed by a short-lived thread is reused), so
            # only thread 1, the main thread, has a fixed identity; the rest are summed.
            "background": (b["all"] - b["caller"] - a["all"] + a["caller"]) / n,
            "runs": runs,
        }
        exports = {k: runs[k].get("metric_exports_in_block") for k in ("n", "2n")}
        if exports["n"] != exports["2n"]:
            # A periodic (60 s) metric collection fell inside one counted region and not the other.
            pair["note"] = f"metric exports in the counted region differ: {exports}"
        return pair

    def calibrate(self, scenario: str) -> dict[str, Any]:
        """Native thread-CPU time per uninstrumented call (the caller is the only thread)."""
        streaming = scenario in _mock.STREAMING
        calls = self.args.stream_calls if streaming else self.args.calls
        warmup = self.args.stream_warmup if streaming else self.args.warmup
        out = self.tmp / f"calibrate-{scenario}.json"
        cmd = self._worker_cmd("none", scenario, calls, warmup, out, blocks=self.args.calibration_blocks)
        proc = subprocess.run(cmd, env=child_env("none", self.src), capture_output=True, text=True, timeout=600)
        result = json.loads(out.read_text()) if out.exists() else {"ok": False, "error": proc.stderr[-2000:]}
        if not result.get("ok"):
            return result
        per_call = [blk["thread_cpu_ns"] / calls / 1e3 for blk in result["blocks"]]
        return {
            "ok": True,
            "calls_per_block": calls,
            "block_mean_cpu_us": per_call,
            # The fastest block: the least disturbed by other work on the machine (thread CPU time
            # excludes preemption, but not a neighbour's cache and memory-bandwidth pressure).
            "cpu_us_per_call": min(per_call),
            "cpu_us_per_call_median": float(statistics.median(per_call)),
            "wall_us_per_call": float(statistics.median(b["wall_ns"] / calls / 1e3 for b in result["blocks"])),
        }


# ---------------------------------------------------------------------------------------------
# Summary and report


def summarize(
    results: dict[str, dict[str, Any]],
    calib: dict[str, Any],
    scenarios: list[str],
    stream: str = "stream",
    chunk_base: str = "chat_text",
) -> dict[str, Any]:
    """Per-call counts over ``none`` per configuration and scenario; per chunk = (stream - chunk_base) / chunks."""
    base = results.get("none", {})
    ipus: dict[str, float] = {}
    for sc in scenarios:
        if base.get(sc, {}).get("ok") and calib.get(sc, {}).get("ok"):
            ipus[sc] = base[sc]["all"] / calib[sc]["cpu_us_per_call"]
    pooled = statistics.fmean(ipus.values()) if ipus else float("nan")
    summary: dict[str, Any] = {
        "instructions_per_us": ipus,
        "instructions_per_us_mean": pooled,
        "configs": {},
    }
    for config, per in results.items():
        entry: dict[str, Any] = {}
        for sc in scenarios:
            mine, b = per.get(sc, {}), base.get(sc, {})
            if not mine.get("ok"):
                entry[sc] = {"ok": False, "error": mine.get("error")}
                continue
            row: dict[str, Any] = {
                "ok": True,
                "caller": mine["caller"],
                "all": mine["all"],
                "background": mine["background"],
            }
            if mine.get("note"):
                row["note"] = mine["note"]
            backlog = [mine["runs"][k].get("completion_backlog") for k in ("n", "2n")]
            if backlog[0] is not None:
                row["completion_backlog_at_end_of_calls"] = {"n": backlog[0], "2n": backlog[1], "calls": mine["n"]}
            if b.get("ok"):
                row["caller_over_none"] = mine["caller"] - b["caller"]
                row["all_over_none"] = mine["all"] - b["all"]
                rate = ipus.get(sc, pooled)
                row["caller_over_none_us"] = row["caller_over_none"] / rate
                row["all_over_none_us"] = row["all_over_none"] / rate
                row["ratio_all"] = mine["all"] / b["all"]
            entry[sc] = row
        s, c = entry.get(stream, {}), entry.get(chunk_base, {})
        if "all_over_none" in s and "all_over_none" in c:
            rate = ipus.get(stream, pooled)
            k = _mock.STREAM_TOTAL_CHUNKS
            entry["per_chunk"] = {
                "caller": (s["caller_over_none"] - c["caller_over_none"]) / k,
                "all": (s["all_over_none"] - c["all_over_none"]) / k,
            }
            entry["per_chunk"]["caller_us"] = entry["per_chunk"]["caller"] / rate
            entry["per_chunk"]["all_us"] = entry["per_chunk"]["all"] / rate
        summary["configs"][config] = entry
    return summary


def _k(v: float) -> str:
    return f"{v / 1e3:+,.0f}"


def cost_rows(
    summary: dict[str, Any], shown: list[str], scenarios: list[str], scenario_labels: dict[str, str]
) -> list[str]:
    """The main table's rows: per scenario, each configuration's K instructions and us over ``none``."""
    base = summary["configs"].get("none", {})
    ipus = summary["instructions_per_us"]
    lines = []
    for sc in scenarios:
        b = base.get(sc, {})
        label = scenario_labels[sc]
        if b.get("ok"):
            label += f" ({b['all'] / 1e3:,.0f} K, ~{b['all'] / ipus.get(sc, float('nan')):.0f} us)"
        cells = []
        for c in shown:
            row = summary["configs"][c].get(sc, {})
            if not row.get("ok"):
                cells.append("FAILED")
            elif "all_over_none" not in row:
                cells.append("-")
            else:
                cells.append(
                    f"{_k(row['caller_over_none'])} K / {_k(row['all_over_none'])} K "
                    f"(~{row['caller_over_none_us']:+.0f} / {row['all_over_none_us']:+.0f} us)"
                )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def per_chunk_row(summary: dict[str, Any], shown: list[str], label: str) -> str:
    cells = []
    for c in shown:
        pc = summary["configs"][c].get("per_chunk")
        cells.append(
            "-"
            if not pc
            else f"{pc['caller'] / 1e3:+.1f} K / {pc['all'] / 1e3:+.1f} K "
            f"(~{pc['caller_us']:+.1f} / {pc['all_us']:+.1f} us)"
        )
    return f"| {label} | " + " | ".join(cells) + " |"


def absolute_table(
    summary: dict[str, Any],
    everyone: list[str],
    scenarios: list[str],
    labels: dict[str, str],
    scenario_labels: dict[str, str],
    threads: str,
) -> list[str]:
    lines = [
        "",
        f"Absolute instructions per call, K, caller's thread + background threads ({threads}; the final "
        "flush included):",
        "",
        "| scenario | " + " | ".join(labels[c] for c in everyone) + " |",
        "|---|" + "---|" * len(everyone),
    ]
    for sc in scenarios:
        cells = []
        for c in everyone:
            row = summary["configs"][c].get(sc, {})
            cells.append(f"{row['caller'] / 1e3:,.0f} {row['background'] / 1e3:+,.0f}" if row.get("ok") else "FAILED")
        lines.append(f"| {scenario_labels[sc]} | " + " | ".join(cells) + " |")
    return lines


def rates_sentence(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    rates = ", ".join(f"{sc} {v:,.0f}" for sc, v in summary["instructions_per_us"].items())
    return (
        f"Microseconds = instructions / instructions-per-us of the uninstrumented SDK on this machine, "
        f"per scenario ({rates} instructions/us: callgrind count per `none` call over its native "
        f"thread-CPU time per call, fastest of {meta['calibration_blocks']} blocks of N calls)."
    )


def caveat_lines(summary: dict[str, Any], everyone: list[str], labels: dict[str, str]) -> list[str]:
    notes = [
        f"{labels[c]} / {sc}: {row['note']}"
        for c in everyone
        for sc, row in summary["configs"][c].items()
        if isinstance(row, dict) and row.get("note")
    ]
    return ["", "Caveats: " + "; ".join(notes) + "."] if notes else []


def repeat_lines(meta: dict[str, Any], labels: dict[str, str]) -> list[str]:
    lines = []
    for rep in meta.get("repeats") or []:
        if rep.get("ok"):
            lines += [
                "",
                f"Repeatability, {labels[rep['config']]} / {rep['scenario']} run again: caller "
                f"{rep['first_caller'] / 1e3:,.1f} K vs {rep['second_caller'] / 1e3:,.1f} K per call "
                f"({rep['caller_diff_pct']:+.2f}%), all threads {rep['first_all'] / 1e3:,.1f} K vs "
                f"{rep['second_all'] / 1e3:,.1f} K ({rep['all_diff_pct']:+.2f}%).",
            ]
    return lines


def markdown(summary: dict[str, Any], configs: list[str], scenarios: list[str], meta: dict[str, Any]) -> str:
    shown = [c for c in configs if c != "none" and c in summary["configs"]]
    lines = [
        f"Instructions added per call (callgrind; difference of {meta['calls']}- and {2 * meta['calls']}-call "
        f"processes, streams {meta['stream_calls']} / {2 * meta['stream_calls']}; {meta['machine']}; "
        f"{meta['date']}). Cell: **K instructions on the caller's thread / on all threads** over the "
        "uninstrumented SDK, then the same in approximate microseconds.",
        "",
        "| scenario (uninstrumented per call) | " + " | ".join(LABELS[c] for c in shown) + " |",
        "|---|" + "---|" * len(shown),
    ]
    lines += cost_rows(summary, shown, scenarios, SCENARIO_LABELS)
    if "stream" in scenarios and "chat_text" in scenarios:
        lines.append(
            per_chunk_row(summary, shown, f"per streamed chunk: (stream - chat) / {_mock.STREAM_TOTAL_CHUNKS}")
        )
    everyone = [c for c in configs if c in summary["configs"]]
    lines += absolute_table(summary, everyone, scenarios, LABELS, SCENARIO_LABELS, "completion, batch export, metrics")
    lines += [
        "",
        rates_sentence(summary, meta) + " Instrumentation code "
        "may run at a different rate, so the us column is approximate; the instruction counts are the "
        "measurement. They are user-space instructions only: time in the kernel (system calls) and "
        "memory stalls are not in them.",
    ]
    lines += caveat_lines(summary, everyone, LABELS)
    ours = summary["configs"].get("llm_audit", {})
    backlog = [
        f"{sc} {bl['2n']} of {2 * bl['calls']}"
        for sc, row in ours.items()
        if isinstance(row, dict) and (bl := row.get("completion_backlog_at_end_of_calls"))
    ]
    if backlog:
        lines += [
            "",
            "otel-llm-audit's completion backlog when the calls of the 2N run ended (completed during the "
            "counted flush): " + ", ".join(backlog) + ".",
        ]
    lines += repeat_lines(meta, LABELS)
    lines += ["", f"Command: `{meta['command']}`", ""]
    return "\n".join(lines)


#: --quick: a smoke run, numbers meaning little, nothing written unless --out-dir is given.
QUICK = {"calls": 20, "stream_calls": 10, "warmup": 10, "stream_warmup": 5, "calibration_blocks": 3, "repeat": ""}


def make_parser(description: str, configs: tuple[str, ...], scenarios: tuple[str, ...], repeat: str):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--configs", default=",".join(configs))
    p.add_argument("--scenarios", default=",".join(scenarios))
    p.add_argument("--calls", type=int, default=100, help="N for non-streaming scenarios (runs N and 2N)")
    p.add_argument("--stream-calls", type=int, default=40, help="N for the stream (runs N and 2N)")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--stream-warmup", type=int, default=15)
    p.add_argument(
        "--repeat",
        default=repeat,
        help="config:scenario pairs to run a second time, to check that counts repeat ('' for none)",
    )
    p.add_argument("--calibration-blocks", type=int, default=15, help="native blocks of N calls for instr/us")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK['calls']}/{QUICK['stream_calls']} calls, no repeat, writes nothing unless --out-dir",
    )
    p.add_argument("--venvs", type=Path, default=DEFAULT_VENVS)
    p.add_argument("--core-python", default=None)
    p.add_argument("--out-dir", type=Path, default=None, help="default benchmarks/results (none with --quick)")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--live-src", action="store_true")
    p.add_argument("--keep-files", action="store_true", help="keep the callgrind.out files (in a temp dir)")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--report-only", type=Path, default=None)
    # Worker mode (internal).
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--scenario", help=argparse.SUPPRESS)
    p.add_argument("--blocks", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--marker-lib", default=None, help=argparse.SUPPRESS)
    return p


def finish_args(
    p: argparse.ArgumentParser, args: argparse.Namespace, configs: tuple[str, ...], scenarios: tuple[str, ...]
) -> argparse.Namespace:
    if args.worker:
        return args
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) == p.get_default(key):
                setattr(args, key, value)
        if args.out_dir is None:
            args.no_write = True
    if args.out_dir is None:
        args.out_dir = HERE / "results"
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in args.configs if c not in configs]
    if unknown:
        p.error(f"unknown configurations {unknown} (known: {', '.join(configs)})")
    if "none" not in args.configs:
        args.configs.insert(0, "none")
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if any(s not in scenarios for s in args.scenarios):
        p.error(f"scenarios are {', '.join(scenarios)}")
    args.repeat = [tuple(r.split(":", 1)) for r in args.repeat.split(",") if ":" in r]
    return args


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = make_parser(__doc__.splitlines()[0], CONFIGS, _mock.SCENARIOS, "llm_audit:chat_text")
    return finish_args(p, p.parse_args(argv), CONFIGS, _mock.SCENARIOS)


def repeat_pair(runner: Runner, first: dict[str, Any] | None, config: str, sc: str) -> dict[str, Any] | None:
    """Run a (configuration, scenario) pair again: do the per-call counts repeat?"""
    if not first or not first.get("ok"):
        return None
    second = runner.pair(config, sc)
    rep: dict[str, Any] = {"config": config, "scenario": sc, "ok": second.get("ok", False)}
    if second.get("ok"):
        rep.update(
            first_caller=first["caller"],
            second_caller=second["caller"],
            first_all=first["all"],
            second_all=second["all"],
            caller_diff_pct=100 * (second["caller"] - first["caller"]) / first["caller"],
            all_diff_pct=100 * (second["all"] - first["all"]) / first["all"],
            # Whole-run totals, before taking differences: how much each process varies.
            run_totals={
                "first": {k: first["runs"][k]["instructions"]["all"] for k in ("n", "2n")},
                "second": {k: second["runs"][k]["instructions"]["all"] for k in ("n", "2n")},
            },
            second_result=second,
        )
    return rep


def measure(
    args: argparse.Namespace, pythons: dict[str, str], configs: list[str], prefix: str, runner_cls: type = Runner
) -> dict[str, Any]:
    """Calibration, then every (configuration, scenario) pair, then the repeats; one valgrind process at a time."""
    results: dict[str, dict[str, Any]] = {}
    calib: dict[str, Any] = {}
    repeats: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix=f"{prefix}-instr-") as tmp_name:
        tmp = Path(tmp_name)
        if args.keep_files:
            tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}-instr-kept-"))
            print(f"callgrind files kept in {tmp}", file=sys.stderr)
        lib = build_marker_lib(tmp)
        src, src_digest = (None, "live tree") if args.live_src else snapshot_src(tmp)
        runner = runner_cls(args, pythons, tmp, src, lib)
        print("calibration: native uninstrumented runs", file=sys.stderr, flush=True)
        for sc in args.scenarios:
            calib[sc] = runner.calibrate(sc)
            if calib[sc].get("ok"):
                print(f"  none {sc:14s} {calib[sc]['cpu_us_per_call']:.0f} us CPU per call", file=sys.stderr)
            else:
                print(f"  none {sc:14s} FAILED: {calib[sc].get('error')}", file=sys.stderr)
        for config in configs:  # sequentially: never two valgrind processes at once
            results[config] = {}
            for sc in args.scenarios:
                results[config][sc] = runner.pair(config, sc)
        for config, sc in args.repeat:
            rep = repeat_pair(runner, results.get(config, {}).get(sc), config, sc)
            if rep is not None:
                repeats.append(rep)
    return {"results": results, "calib": calib, "repeats": repeats, "commands": runner.commands, "src": src_digest}


def run_meta(args: argparse.Namespace, run: dict[str, Any], cmd: str, **extra: Any) -> dict[str, Any]:
    versions: dict[str, dict[str, str]] = {}
    for config, per in run["results"].items():
        for pair in per.values():
            found = pair.get("runs", {}).get("n", {})
            if found.get("versions"):
                versions[config] = found["versions"]
                break
    commands = run["commands"]
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": cmd,
        "example_valgrind_command": commands[0] if commands else None,
        "configs": list(run["results"]),
        "scenarios": args.scenarios,
        "calls": args.calls,
        "stream_calls": args.stream_calls,
        "warmup": args.warmup,
        "stream_warmup": args.stream_warmup,
        "calibration_blocks": args.calibration_blocks,
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, CPython {platform.python_version()}",
        "valgrind": subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip(),
        "src_digest": run["src"],
        "versions": versions,
        "repeats": [{k: v for k, v in r.items() if k != "second_result"} for r in run["repeats"]],
        **extra,
    }


def report(args: argparse.Namespace, run: dict[str, Any], summary: dict[str, Any], meta: dict, md: str, stem: str):
    """Print the report, write ``<stem>.{json,md}``; the exit status: 1 if a pair failed."""
    print()
    print(md)
    commands = run["commands"]
    if commands:
        print(f"One of the valgrind runs:\n  {commands[0]}")
    failed = [f"{c}/{s}" for c, per in run["results"].items() for s, r in per.items() if not r.get("ok")]
    for f in failed:
        print(f"FAILED {f}")
    if not args.no_write:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "meta": meta,
            "summary": summary,
            "calibration": run["calib"],
            "raw": run["results"],
            "repeats": run["repeats"],
        }
        (args.out_dir / f"{stem}.json").write_text(json.dumps(payload, indent=1) + "\n")
        (args.out_dir / f"{stem}.md").write_text(md)
        print(f"wrote {args.out_dir / (stem + '.json')} and {args.out_dir / (stem + '.md')}")
    print(f"elapsed {meta['elapsed_s']:.0f} s", file=sys.stderr)
    return 1 if failed else 0


def command_line(script: str, argv: list[str] | None) -> str:
    return f"python {script}" + "".join(" " + shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    if args.report_only is not None:
        payload = json.loads(args.report_only.read_text())
        meta = payload["meta"]
        print(markdown(payload["summary"], meta["configs"], meta["scenarios"], meta))
        return 0
    if not shutil.which("valgrind"):
        print("error: valgrind not found (apt-get install -y valgrind)", file=sys.stderr)
        return 2
    pythons, notes = resolve_pythons(args.configs, args.venvs, args.core_python)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    configs = [c for c in args.configs if c in pythons]
    cmd = command_line("benchmarks/openai_instructions.py", argv)
    started = time.perf_counter()
    run = measure(args, pythons, configs, "openai")
    summary = summarize(run["results"], run["calib"], args.scenarios)
    meta = run_meta(
        args,
        run,
        cmd,
        pythons=pythons,
        skipped=notes,
        elapsed_s=time.perf_counter() - started,
        stream_chunks_per_call=_mock.STREAM_TOTAL_CHUNKS,
    )
    md = markdown(summary, configs, args.scenarios, meta)
    return report(args, run, summary, meta, md, "openai_instructions")


if __name__ == "__main__":
    sys.exit(main())
