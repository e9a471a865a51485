"""Instructions each OpenTelemetry instrumentation adds to an Anthropic Messages call, counted by callgrind.

    python benchmarks/anthropic_instructions.py                  # all configurations, ~25 minutes on 2 cores
    python benchmarks/anthropic_instructions.py --configs llm_audit --scenarios messages_text --repeat ''

The Anthropic counterpart of ``openai_instructions.py``, with the same method and the same code:
its ``worker_main`` (one configuration, one scenario, one block of calls, the callgrind markers
around the counted region), its ``Runner`` (valgrind command, N- and 2N-call processes, native
calibration of instructions per microsecond), ``parse_callgrind``, ``snapshot_src`` and
``summarize``. What differs is bound in here:

* the calls: ``_mock_anthropic`` (``messages.create`` of the real ``anthropic`` 2.x SDK over an
  ``httpx2.MockTransport``: a text answer, two ``tool_use`` blocks, a stream of 23 text deltas,
  28 events iterated by the caller);
* the configurations and their verification: ``_anthropic_worker`` (``none``, ``none_sdk_off``,
  ``llm_audit``, ``llm_audit_masked``, ``anthropic_sdk``, and the peers
  ``openllmetry_anthropic`` / ``openinference_anthropic``, each also as ``<peer>_sdk_off``, in
  their own venvs made by ``bash benchmarks/setup_envs.sh openllmetry_anthropic openinference_anthropic``).

``openai_instructions.py`` reads its mock, configure/verify functions and environment table
from module globals; this script points those at the Anthropic ones (``bind_worker`` in the
worker process, ``bind_driver`` in the driver) instead of copying the code.

Per streamed chunk = (stream overhead - text overhead) / 28 events. Spans per call, by scope, are
reported for every configuration: the SDK traces itself when a tracer provider is set, so the
peers export two spans per call (theirs and the SDK's), ours one.

Results: ``benchmarks/results/anthropic_instructions.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _anthropic_worker  # noqa: E402
import _mock_anthropic  # noqa: E402
import _worker  # noqa: E402
import openai_instructions as oi  # noqa: E402
from openai_overhead import DEFAULT_VENVS, GOAL_CHAT_US, GOAL_CHUNK_US  # noqa: E402

CONFIGS = _anthropic_worker.CONFIGS
#: The peers' configurations run in the peer's venv; the others in the llm_audit venv (anthropic 2.14.0 there).
VENV_OF = {c: _anthropic_worker.PEER_OF.get(c, "llm_audit") for c in CONFIGS}
PEERS = tuple(c for c in CONFIGS if c in _anthropic_worker.PEER_OF)
LABELS = {
    "none": "uninstrumented",
    "none_sdk_off": "uninstrumented, ANTHROPIC_OPEN_TELEMETRY=false",
    "llm_audit": "otel-llm-audit",
    "llm_audit_masked": "otel-llm-audit, content masked",
    "anthropic_sdk": "anthropic SDK's own span (content mode)",
    "openllmetry_anthropic": "OpenLLMetry anthropic 0.62.4",
    "openllmetry_anthropic_sdk_off": "OpenLLMetry anthropic 0.62.4, SDK span off",
    "openinference_anthropic": "OpenInference anthropic 3.1.0",
    "openinference_anthropic_sdk_off": "OpenInference anthropic 3.1.0, SDK span off",
}
SCENARIO_LABELS = {
    "messages_text": "messages, text answer",
    "messages_tools": "messages, 2 tool_use blocks",
    "stream": (
        f"stream, {_mock_anthropic.STREAM_TEXT_DELTAS} text deltas ({_mock_anthropic.STREAM_TOTAL_CHUNKS} events)"
    ),
}
#: The per-chunk figure: (stream - this scenario) / events.
CHUNK_BASE = "messages_text"
CORE_DISTS = ("anthropic", "httpx2", "pydantic", "pydantic-core", "opentelemetry-sdk", "wrapt")
OURS = ("llm_audit", "llm_audit_masked")


def bind_worker() -> None:
    """In a worker process: ``oi.worker_main`` configures, calls and verifies the Anthropic way."""
    _worker.configure = _anthropic_worker.configure
    _worker.verify = _anthropic_worker.verify
    _worker.VERSION_DISTS = _anthropic_worker.VERSION_DISTS
    oi._mock = _mock_anthropic


def bind_driver() -> None:
    """In the driver: the scenarios' streaming flag and the configurations' environment."""
    oi._mock = _mock_anthropic
    for name, env in _anthropic_worker.CONFIG_ENV.items():
        known = oi.CONFIG_ENV.setdefault(name, env)
        if known != env:
            raise SystemExit(f"configuration {name!r} means {known} for openai_instructions, {env} here")
    # child_env() keeps the caller's environment except a few prefixes; not the SDK's switches.
    for key in [k for k in os.environ if k.startswith("ANTHROPIC_")]:
        del os.environ[key]


class AnthropicRunner(oi.Runner):
    def _worker_cmd(self, config: str, scenario: str, calls: int, warmup: int, out: Path, blocks: int = 1) -> list[str]:
        cmd = super()._worker_cmd(config, scenario, calls, warmup, out, blocks)
        cmd[1] = str(Path(__file__).resolve())
        return cmd


def resolve_pythons(configs: list[str], venvs: Path, core_python: str | None) -> tuple[dict[str, str], list[str]]:
    pythons: dict[str, str] = {}
    notes: list[str] = []
    for config in configs:
        venv_python = venvs / VENV_OF[config] / "bin" / "python"
        if config in PEERS:
            if venv_python.exists():
                pythons[config] = str(venv_python)
            else:
                notes.append(f"skipping {config}: no {venv_python} (bash benchmarks/setup_envs.sh {VENV_OF[config]})")
        elif core_python:
            pythons[config] = core_python
        elif venv_python.exists():
            pythons[config] = str(venv_python)
        else:
            pythons[config] = sys.executable
            notes.append(f"{config}: no {venv_python}, using {sys.executable}")
    return pythons, notes


# ---------------------------------------------------------------------------------------------
# Summary and report


def add_per_chunk(summary: dict[str, Any]) -> None:
    k = _mock_anthropic.STREAM_TOTAL_CHUNKS
    rate = summary["instructions_per_us"].get("stream", summary["instructions_per_us_mean"])
    for entry in summary["configs"].values():
        s, c = entry.get("stream", {}), entry.get(CHUNK_BASE, {})
        if "all_over_none" in s and "all_over_none" in c:
            pc = {
                "caller": (s["caller_over_none"] - c["caller_over_none"]) / k,
                "all": (s["all_over_none"] - c["all_over_none"]) / k,
            }
            pc["caller_us"] = pc["caller"] / rate
            pc["all_us"] = pc["all"] / rate
            entry["per_chunk"] = pc


def spans_per_call(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per configuration and scenario: spans per call by scope, and how the SDK's span sits, from the 2N run."""
    out: dict[str, dict[str, Any]] = {}
    for config, per in results.items():
        out[config] = {}
        for sc, pair in per.items():
            runs = pair.get("runs", {})
            verified = runs.get("2n", {}).get("verified") or runs.get("n", {}).get("verified")
            if pair.get("ok") and verified:
                keep = ("spans_per_call", "sdk_span", "sdk_tracer")
                out[config][sc] = {k: verified[k] for k in keep if k in verified}
            else:
                out[config][sc] = {"ok": False, "error": pair.get("error")}
    return out


def goals(summary: dict[str, Any], scenarios: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for config in OURS:
        entry = summary["configs"].get(config)
        if not entry:
            continue
        calls = {sc: entry[sc]["caller_over_none_us"] for sc in scenarios if "caller_over_none_us" in entry.get(sc, {})}
        pc = entry.get("per_chunk")
        found[config] = {
            "caller_us_per_call": calls,
            "call_goal_us": GOAL_CHAT_US,
            "call_goal_met": bool(calls) and all(v <= GOAL_CHAT_US for v in calls.values()),
            "caller_us_per_chunk": pc["caller_us"] if pc else None,
            "chunk_goal_us": GOAL_CHUNK_US,
            "chunk_goal_met": pc is not None and pc["caller_us"] <= GOAL_CHUNK_US,
        }
    return found


def _spans_cell(info: dict[str, Any]) -> str:
    if info.get("ok") is False:
        return "FAILED"
    per = info.get("spans_per_call", {})
    if not per:
        tracer = info.get("sdk_tracer")
        return f"0 (SDK tracer: {tracer})" if tracer else "0"
    parts = [f"{n:g} `{scope}`" for scope, n in per.items()]
    return " + ".join(parts)


def markdown(summary: dict[str, Any], configs: list[str], scenarios: list[str], meta: dict[str, Any]) -> str:
    shown = [c for c in configs if c != "none" and c in summary["configs"]]
    base = summary["configs"].get("none", {})
    ipus = summary["instructions_per_us"]
    k = _mock_anthropic.STREAM_TOTAL_CHUNKS
    lines = [
        f"Instructions added per Anthropic Messages call, anthropic {meta['anthropic_version']} "
        f"(callgrind; difference of {meta['calls']}- and {2 * meta['calls']}-call processes, streams "
        f"{meta['stream_calls']} / {2 * meta['stream_calls']}; {meta['machine']}; {meta['date']}). Cell: **K "
        "instructions on the caller's thread / on all threads** over the uninstrumented SDK (no tracer "
        "provider), then the same in approximate microseconds.",
        "",
        "| scenario (uninstrumented per call) | " + " | ".join(LABELS[c] for c in shown) + " |",
        "|---|" + "---|" * len(shown),
    ]
    for sc in scenarios:
        b = base.get(sc, {})
        label = SCENARIO_LABELS[sc]
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
                    f"{oi._k(row['caller_over_none'])} K / {oi._k(row['all_over_none'])} K "
                    f"(~{row['caller_over_none_us']:+.0f} / {row['all_over_none_us']:+.0f} us)"
                )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if "stream" in scenarios and CHUNK_BASE in scenarios:
        cells = []
        for c in shown:
            pc = summary["configs"][c].get("per_chunk")
            cells.append(
                "-"
                if not pc
                else f"{pc['caller'] / 1e3:+.1f} K / {pc['all'] / 1e3:+.1f} K "
                f"(~{pc['caller_us']:+.1f} / {pc['all_us']:+.1f} us)"
            )
        lines.append(f"| per streamed event: (stream - text) / {k} | " + " | ".join(cells) + " |")

    lines += ["", "Spans exported per call, by instrumentation scope (the 2N run of each scenario):", ""]
    lines += ["| configuration | " + " | ".join(SCENARIO_LABELS[sc] for sc in scenarios) + " |"]
    lines += ["|---|" + "---|" * len(scenarios)]
    spans = meta["spans_per_call"]
    everyone = [c for c in configs if c in summary["configs"]]
    relations = []
    for c in everyone:
        cells = [_spans_cell(spans.get(c, {}).get(sc, {"ok": False})) for sc in scenarios]
        lines.append(f"| {LABELS[c]} | " + " | ".join(cells) + " |")
        for sc in scenarios:
            sdk = spans.get(c, {}).get(sc, {}).get("sdk_span")
            if sdk:
                relations.append((c, sc, sdk))
    if relations:
        by_config: dict[str, list[str]] = {}
        for c, sc, sdk in relations:
            content = ", ".join(sdk["has_content_markers"]) or "none"
            by_config.setdefault(c, []).append(
                f"{sc}: `{sdk['name']}`, {sdk['relation']}, {sdk['attribute_count']} attributes, content markers: "
                f"{content}"
            )
        lines += [""]
        for c, items in by_config.items():
            lines.append(f"- {LABELS[c]}, the SDK's span: " + "; ".join(items) + ".")

    lines += [
        "",
        "Absolute instructions per call, K, caller's thread + background threads (completion, batch "
        "export, metrics, masking; the final flush included):",
        "",
        "| scenario | " + " | ".join(LABELS[c] for c in everyone) + " |",
        "|---|" + "---|" * len(everyone),
    ]
    for sc in scenarios:
        cells = []
        for c in everyone:
            row = summary["configs"][c].get(sc, {})
            cells.append(f"{row['caller'] / 1e3:,.0f} {row['background'] / 1e3:+,.0f}" if row.get("ok") else "FAILED")
        lines.append(f"| {SCENARIO_LABELS[sc]} | " + " | ".join(cells) + " |")

    for config, g in meta["goals"].items():
        per_call = g["caller_us_per_call"]
        met = ", ".join(f"{sc} {v:+.0f} us" for sc, v in per_call.items() if v <= g["call_goal_us"])
        missed = ", ".join(f"{sc} {v:+.0f} us" for sc, v in per_call.items() if v > g["call_goal_us"])
        verdict = "; ".join(part for part in (met and f"met by {met}", missed and f"NOT met by {missed}") if part)
        chunk = g["caller_us_per_chunk"]
        lines += [
            "",
            f"Goals, {LABELS[config]} (caller's thread): at most {g['call_goal_us']:.0f} us per call: {verdict}; "
            f"at most {g['chunk_goal_us']:.0f} us per streamed event: {'met' if g['chunk_goal_met'] else 'NOT met'}"
            + (f" ({chunk:+.2f} us)." if chunk is not None else "."),
        ]
    rates = ", ".join(f"{sc} {v:,.0f}" for sc, v in ipus.items())
    lines += [
        "",
        f"Microseconds = instructions / instructions-per-us of the uninstrumented SDK on this machine, "
        f"per scenario ({rates} instructions/us: callgrind count per `none` call over its native "
        f"thread-CPU time per call, fastest of {meta['calibration_blocks']} blocks of N calls). The instruction "
        "counts are the measurement; the us columns are approximate. User-space instructions only: "
        "system calls and memory stalls are not in them.",
    ]
    notes = [
        f"{LABELS[c]} / {sc}: {row['note']}"
        for c in everyone
        for sc, row in summary["configs"][c].items()
        if isinstance(row, dict) and row.get("note")
    ]
    if notes:
        lines += ["", "Caveats: " + "; ".join(notes) + "."]
    for config in OURS:
        backlog = [
            f"{sc} {bl['2n']} of {2 * bl['calls']}"
            for sc, row in summary["configs"].get(config, {}).items()
            if isinstance(row, dict) and (bl := row.get("completion_backlog_at_end_of_calls"))
        ]
        if backlog:
            lines += [
                "",
                f"{LABELS[config]}: completion backlog when the calls of the 2N run ended (completed during "
                "the counted flush): " + ", ".join(backlog) + ".",
            ]
    for rep in meta.get("repeats") or []:
        if rep.get("ok"):
            lines += [
                "",
                f"Repeatability, {LABELS[rep['config']]} / {rep['scenario']} run again: caller "
                f"{rep['first_caller'] / 1e3:,.1f} K vs {rep['second_caller'] / 1e3:,.1f} K per call "
                f"({rep['caller_diff_pct']:+.2f}%), all threads {rep['first_all'] / 1e3:,.1f} K vs "
                f"{rep['second_all'] / 1e3:,.1f} K ({rep['all_diff_pct']:+.2f}%).",
            ]
    if meta.get("core_mismatch"):
        lines += ["", "WARNING, core packages differ between configurations: " + "; ".join(meta["core_mismatch"])]
    vers = meta.get("versions", {})
    peer_versions = sorted(
        {
            f"{d} {v}"
            for c in everyone
            for d, v in vers.get(c, {}).items()
            if d.startswith(("opentelemetry-instrumentation-anthropic", "openinference-instrumentation"))
        }
    )
    core = vers.get("llm_audit") or vers.get("none") or {}
    lines += [
        "",
        "Versions: " + ", ".join(f"{d} {core[d]}" for d in CORE_DISTS if d in core) + "; " + ", ".join(peer_versions),
        "",
        f"Command: `{meta['command']}`",
        "",
    ]
    return "\n".join(lines)


def core_mismatch(versions: dict[str, dict[str, str]]) -> list[str]:
    found = []
    for dist in CORE_DISTS:
        seen = {c: v.get(dist) for c, v in versions.items()}
        if len(set(seen.values())) > 1:
            found.append(f"{dist}: " + ", ".join(f"{c} {v}" for c, v in seen.items()))
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--scenarios", default=",".join(_mock_anthropic.SCENARIOS))
    p.add_argument("--calls", type=int, default=100, help="N for non-streaming scenarios (runs N and 2N)")
    p.add_argument("--stream-calls", type=int, default=40, help="N for the stream (runs N and 2N)")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--stream-warmup", type=int, default=15)
    p.add_argument(
        "--repeat", default="llm_audit:messages_text,llm_audit:stream", help="config:scenario pairs to run twice"
    )
    p.add_argument("--calibration-blocks", type=int, default=15, help="native blocks of N calls for instr/us")
    p.add_argument("--venvs", type=Path, default=DEFAULT_VENVS)
    p.add_argument("--core-python", default=None)
    p.add_argument("--out-dir", type=Path, default=HERE / "results")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--live-src", action="store_true")
    p.add_argument("--keep-files", action="store_true", help="keep the callgrind.out files (in a temp dir)")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--report-only", type=Path, default=None)
    # Worker mode (internal): oi.worker_main's arguments.
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--scenario", help=argparse.SUPPRESS)
    p.add_argument("--blocks", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--marker-lib", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        p.error(f"unknown configurations {unknown} (known: {', '.join(CONFIGS)})")
    if "none" not in args.configs:
        args.configs.insert(0, "none")
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if any(s not in _mock_anthropic.SCENARIOS for s in args.scenarios):
        p.error(f"scenarios are {', '.join(_mock_anthropic.SCENARIOS)}")
    args.repeat = [tuple(r.split(":", 1)) for r in args.repeat.split(",") if ":" in r]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        bind_worker()
        return oi.worker_main(args)
    if args.report_only is not None:
        payload = json.loads(args.report_only.read_text())
        meta = payload["meta"]
        print(markdown(payload["summary"], meta["configs"], meta["scenarios"], meta))
        return 0
    if not shutil.which("valgrind"):
        print("error: valgrind not found (apt-get install -y valgrind)", file=sys.stderr)
        return 2
    bind_driver()
    pythons, notes = resolve_pythons(args.configs, args.venvs, args.core_python)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    configs = [c for c in args.configs if c in pythons]
    cmd = "python benchmarks/anthropic_instructions.py" + "".join(
        " " + shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    calib: dict[str, Any] = {}
    repeats: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="anthropic-instr-") as tmp_name:
        tmp = Path(tmp_name)
        if args.keep_files:
            tmp = Path(tempfile.mkdtemp(prefix="anthropic-instr-kept-"))
            print(f"callgrind files kept in {tmp}", file=sys.stderr)
        lib = oi.build_marker_lib(tmp)
        src, src_digest = (None, "live tree") if args.live_src else oi.snapshot_src(tmp)
        runner = AnthropicRunner(args, pythons, tmp, src, lib)
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
            first = results.get(config, {}).get(sc)
            if not first or not first.get("ok"):
                continue
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
                    second_result=second,
                )
            repeats.append(rep)
        commands = runner.commands

    summary = oi.summarize(results, calib, args.scenarios)
    add_per_chunk(summary)
    versions: dict[str, dict[str, str]] = {}
    for config, per in results.items():
        for pair in per.values():
            run = pair.get("runs", {}).get("n", {})
            if run.get("versions"):
                versions[config] = run["versions"]
                break
    meta = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": cmd,
        "example_valgrind_command": commands[0] if commands else None,
        "configs": configs,
        "scenarios": args.scenarios,
        "calls": args.calls,
        "stream_calls": args.stream_calls,
        "warmup": args.warmup,
        "stream_warmup": args.stream_warmup,
        "calibration_blocks": args.calibration_blocks,
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, CPython {platform.python_version()}",
        "valgrind": subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip(),
        "src_digest": src_digest,
        "pythons": pythons,
        "versions": versions,
        "anthropic_version": next((v["anthropic"] for v in versions.values() if "anthropic" in v), "?"),
        "core_mismatch": core_mismatch(versions),
        "skipped": notes,
        "spans_per_call": spans_per_call(results),
        "goals": goals(summary, args.scenarios),
        "repeats": [{k: v for k, v in r.items() if k != "second_result"} for r in repeats],
        "elapsed_s": time.perf_counter() - started,
        "stream_chunks_per_call": _mock_anthropic.STREAM_TOTAL_CHUNKS,
        "stream_text_deltas_per_call": _mock_anthropic.STREAM_TEXT_DELTAS,
    }
    md = markdown(summary, configs, args.scenarios, meta)
    print()
    print(md)
    if commands:
        print(f"One of the valgrind runs:\n  {commands[0]}")
    failed = [f"{c}/{s}" for c, per in results.items() for s, r in per.items() if not r.get("ok")]
    for f in failed:
        print(f"FAILED {f}")
    if not args.no_write:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        payload = {"meta": meta, "summary": summary, "calibration": calib, "raw": results, "repeats": repeats}
        (args.out_dir / "anthropic_instructions.json").write_text(json.dumps(payload, indent=1) + "\n")
        (args.out_dir / "anthropic_instructions.md").write_text(md)
        print(f"wrote {args.out_dir / 'anthropic_instructions.json'} and {args.out_dir / 'anthropic_instructions.md'}")
    print(f"elapsed {meta['elapsed_s']:.0f} s", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
