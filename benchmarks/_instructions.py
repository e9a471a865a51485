"""The instruction-count benchmark for one provider's SDK: a :class:`Provider` consumed by shared code.

``openai_instructions.py`` holds the method: its ``worker_main`` (one configuration, one
scenario, one block of calls, the callgrind markers around the counted region), its ``Runner``
(valgrind command, N- and 2N-call processes, native calibration of instructions per
microsecond), ``parse_callgrind``, ``snapshot_src`` and ``summarize``. That code reads its mock,
its configure/verify functions and its environment table from module globals; for another
SDK, :func:`bind_worker` (in the worker process) and :func:`bind_driver` (in the driver) point
those at the provider's instead of copying the code. What a provider is:

* a mock module: ``SCENARIOS``, ``STREAMING``, ``STREAM_TOTAL_CHUNKS``, ``MARKERS`` and
  ``make_call(scenario)`` (the real SDK over an in-process transport, no network);
* a worker spec (``_provider_worker.WorkerSpec``): the configurations, the peer venv each runs
  in, their environment, ``configure(name)`` and ``verify(setup, scenario, calls)``;
* labels, the non-streaming scenario the per-chunk figure subtracts, the core distributions
  that must be the same in every venv, and notes for the report.

``python benchmarks/<provider>_instructions.py`` runs :func:`main` with its provider; results go
to ``benchmarks/results/<provider>_instructions.{json,md}``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _worker  # noqa: E402
import openai_instructions as oi  # noqa: E402
from openai_overhead import GOAL_CHAT_US, GOAL_CHUNK_US  # noqa: E402

OURS = ("llm_audit", "llm_audit_masked")
LABELS = {"none": "uninstrumented", "llm_audit": "otel-llm-audit", "llm_audit_masked": "otel-llm-audit, content masked"}


@dataclass(frozen=True)
class Provider:
    #: Short name: ``results/<name>_instructions.{json,md}``, temporary directory names.
    name: str
    #: The script, as the report's reproduce command names it.
    script: str
    #: "Instructions added per <call>": e.g. "Anthropic Messages call".
    call: str
    #: The SDK's distribution, whose version heads the report.
    sdk_dist: str
    mock: Any
    #: The configurations: a ``_provider_worker.WorkerSpec``.
    worker: Any
    #: The peers' labels (``none`` and ours are :data:`LABELS`').
    peer_labels: dict[str, str]
    scenario_labels: dict[str, str]
    #: Per streamed chunk = (stream - chunk_base) / chunks.
    chunk_base: str
    #: What the caller iterates in a stream: "chunk", "event".
    chunk_word: str
    #: Distributions that must be the same version in every venv.
    core_dists: tuple[str, ...]
    #: Distribution name prefixes of the peers, for the versions line.
    peer_dists: tuple[str, ...]
    #: Environment variable prefixes of the SDK (switches, credentials) dropped from the children's environment.
    env_prefixes: tuple[str, ...] = ()
    default_repeat: str = ""
    #: How the uninstrumented baseline runs, in the report's first sentence.
    baseline: str = "no tracer provider"
    #: Paragraphs appended to the report (caveats specific to this SDK and its peers).
    notes: tuple[str, ...] = ()
    stream: str = "stream"

    @property
    def labels(self) -> dict[str, str]:
        return {**LABELS, **self.peer_labels}

    @property
    def venv_of(self) -> dict[str, str]:
        """Peers run in their own venv; the others in the llm_audit venv."""
        return {c: self.worker.peer_of.get(c, "llm_audit") for c in self.worker.configs}

    @property
    def peers(self) -> tuple[str, ...]:
        return tuple(c for c in self.worker.configs if c in self.worker.peer_of)


def bind_worker(p: Provider) -> None:
    """In a worker process: ``oi.worker_main`` configures, calls and verifies the provider's way."""
    _worker.configure = p.worker.configure
    _worker.verify = p.worker.verify
    _worker.VERSION_DISTS = p.worker.version_dists
    oi._mock = p.mock


def bind_driver(p: Provider) -> None:
    """In the driver: the scenarios' streaming flag and the configurations' environment."""
    oi._mock = p.mock
    for name, env in p.worker.all_env.items():
        known = oi.CONFIG_ENV.setdefault(name, env)
        if known != env:
            raise SystemExit(f"configuration {name!r} means {known} for openai_instructions, {env} here")
    # child_env() keeps the caller's environment except a few prefixes; not the SDK's switches.
    for key in [k for k in os.environ if p.env_prefixes and k.startswith(p.env_prefixes)]:
        del os.environ[key]


def runner_class(script: Path) -> type[oi.Runner]:
    """``oi.Runner`` whose worker processes run ``script`` (which binds the provider) instead of oi's."""

    class ProviderRunner(oi.Runner):
        def _worker_cmd(
            self, config: str, scenario: str, calls: int, warmup: int, out: Path, blocks: int = 1
        ) -> list[str]:
            cmd = super()._worker_cmd(config, scenario, calls, warmup, out, blocks)
            cmd[1] = str(script)
            return cmd

    return ProviderRunner


# ---------------------------------------------------------------------------------------------
# Summary and report


def spans_per_call(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per configuration and scenario: spans (and log records) per call by scope, from the 2N run."""
    out: dict[str, dict[str, Any]] = {}
    for config, per in results.items():
        out[config] = {}
        for sc, pair in per.items():
            runs = pair.get("runs", {})
            verified = runs.get("2n", {}).get("verified") or runs.get("n", {}).get("verified")
            if pair.get("ok") and verified:
                keep = ("spans_per_call", "logs_per_call", "sdk_span", "sdk_tracer")
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
    cell = " + ".join(f"{n:g} `{scope}`" for scope, n in per.items())
    logs = info.get("logs_per_call")
    if logs is not None:
        cell += "; log records: " + (", ".join(f"{n:g} `{key}`" for key, n in logs.items()) or "0")
    return cell


def _spans_table(p: Provider, meta: dict[str, Any], everyone: list[str], scenarios: list[str]) -> list[str]:
    lines = ["", "Spans exported per call, by instrumentation scope (the 2N run of each scenario):", ""]
    lines += ["| configuration | " + " | ".join(p.scenario_labels[sc] for sc in scenarios) + " |"]
    lines += ["|---|" + "---|" * len(scenarios)]
    spans = meta["spans_per_call"]
    by_config: dict[str, list[str]] = {}
    for c in everyone:
        cells = [_spans_cell(spans.get(c, {}).get(sc, {"ok": False})) for sc in scenarios]
        lines.append(f"| {p.labels[c]} | " + " | ".join(cells) + " |")
        for sc in scenarios:
            sdk = spans.get(c, {}).get(sc, {}).get("sdk_span")
            if sdk:
                content = ", ".join(sdk["has_content_markers"]) or "none"
                by_config.setdefault(c, []).append(
                    f"{sc}: `{sdk['name']}`, {sdk['relation']}, {sdk['attribute_count']} attributes, "
                    f"content markers: {content}"
                )
    if by_config:
        lines += [""]
        for c, items in by_config.items():
            lines.append(f"- {p.labels[c]}, the SDK's span: " + "; ".join(items) + ".")
    return lines


def _goal_lines(p: Provider, meta: dict[str, Any]) -> list[str]:
    lines = []
    for config, g in meta["goals"].items():
        per_call = g["caller_us_per_call"]
        met = ", ".join(f"{sc} {v:+.0f} us" for sc, v in per_call.items() if v <= g["call_goal_us"])
        missed = ", ".join(f"{sc} {v:+.0f} us" for sc, v in per_call.items() if v > g["call_goal_us"])
        verdict = "; ".join(part for part in (met and f"met by {met}", missed and f"NOT met by {missed}") if part)
        chunk = g["caller_us_per_chunk"]
        lines += [
            "",
            f"Goals, {p.labels[config]} (caller's thread): at most {g['call_goal_us']:.0f} us per call: {verdict}; "
            f"at most {g['chunk_goal_us']:.0f} us per streamed {p.chunk_word}: "
            f"{'met' if g['chunk_goal_met'] else 'NOT met'}" + (f" ({chunk:+.2f} us)." if chunk is not None else "."),
        ]
    return lines


def _backlog_lines(p: Provider, summary: dict[str, Any]) -> list[str]:
    lines = []
    for config in OURS:
        backlog = [
            f"{sc} {bl['2n']} of {2 * bl['calls']}"
            for sc, row in summary["configs"].get(config, {}).items()
            if isinstance(row, dict) and (bl := row.get("completion_backlog_at_end_of_calls"))
        ]
        if backlog:
            lines += [
                "",
                f"{p.labels[config]}: completion backlog when the calls of the 2N run ended (completed during "
                "the counted flush): " + ", ".join(backlog) + ".",
            ]
    return lines


def markdown(p: Provider, summary: dict[str, Any], configs: list[str], scenarios: list[str], meta: dict) -> str:
    shown = [c for c in configs if c != "none" and c in summary["configs"]]
    everyone = [c for c in configs if c in summary["configs"]]
    sdk_version = meta.get("sdk_version") or meta.get(f"{p.sdk_dist}_version", "?")
    lines = [
        f"Instructions added per {p.call}, {p.sdk_dist} {sdk_version} "
        f"(callgrind; difference of {meta['calls']}- and {2 * meta['calls']}-call processes, streams "
        f"{meta['stream_calls']} / {2 * meta['stream_calls']}; {meta['machine']}; {meta['date']}). Cell: **K "
        f"instructions on the caller's thread / on all threads** over the uninstrumented SDK ({p.baseline}), "
        "then the same in approximate microseconds.",
        "",
        "| scenario (uninstrumented per call) | " + " | ".join(p.labels[c] for c in shown) + " |",
        "|---|" + "---|" * len(shown),
    ]
    lines += oi.cost_rows(summary, shown, scenarios, p.scenario_labels)
    if p.stream in scenarios and p.chunk_base in scenarios:
        label = f"per streamed {p.chunk_word}: (stream - text) / {p.mock.STREAM_TOTAL_CHUNKS}"
        lines.append(oi.per_chunk_row(summary, shown, label))
    lines += _spans_table(p, meta, everyone, scenarios)
    threads = "completion, batch export, metrics, masking"
    lines += oi.absolute_table(summary, everyone, scenarios, p.labels, p.scenario_labels, threads)
    lines += _goal_lines(p, meta)
    lines += [
        "",
        oi.rates_sentence(summary, meta) + " The instruction counts are the measurement; the us columns are "
        "approximate. User-space instructions only: system calls and memory stalls are not in them.",
    ]
    lines += oi.caveat_lines(summary, everyone, p.labels)
    lines += _backlog_lines(p, summary)
    lines += oi.repeat_lines(meta, p.labels)
    if meta.get("core_mismatch"):
        lines += ["", "WARNING, core packages differ between configurations: " + "; ".join(meta["core_mismatch"])]
    for note in p.notes:
        lines += ["", note]
    if meta.get("skipped"):
        lines += ["", "Not measured: " + "; ".join(meta["skipped"]) + "."]
    vers = meta.get("versions", {})
    peer_versions = sorted(
        {f"{d} {v}" for c in everyone for d, v in vers.get(c, {}).items() if d.startswith(p.peer_dists)}
    )
    core = vers.get("llm_audit") or vers.get("none") or {}
    lines += [
        "",
        "Versions: " + ", ".join(f"{d} {core[d]}" for d in p.core_dists if d in core) + "; " + ", ".join(peer_versions),
        "",
        f"Command: `{meta['command']}`",
        "",
    ]
    return "\n".join(lines)


def core_mismatch(p: Provider, versions: dict[str, dict[str, str]]) -> list[str]:
    found = []
    for dist in p.core_dists:
        seen = {c: v.get(dist) for c, v in versions.items()}
        if len(set(seen.values())) > 1:
            found.append(f"{dist}: " + ", ".join(f"{c} {v}" for c, v in seen.items()))
    return found


def main(p: Provider, argv: list[str] | None = None) -> int:
    parser = oi.make_parser(
        f"Instructions each OpenTelemetry instrumentation adds to a {p.call}.",
        p.worker.configs,
        p.mock.SCENARIOS,
        p.default_repeat,
    )
    args = oi.finish_args(parser, parser.parse_args(argv), p.worker.configs, p.mock.SCENARIOS)
    if args.worker:
        bind_worker(p)
        return oi.worker_main(args)
    if args.report_only is not None:
        payload = json.loads(args.report_only.read_text())
        meta = payload["meta"]
        print(markdown(p, payload["summary"], meta["configs"], meta["scenarios"], meta))
        return 0
    if not shutil.which("valgrind"):
        print("error: valgrind not found (apt-get install -y valgrind)", file=sys.stderr)
        return 2
    bind_driver(p)
    pythons, notes = oi.resolve_pythons(args.configs, args.venvs, args.core_python, p.venv_of, p.peers)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    configs = [c for c in args.configs if c in pythons]
    cmd = oi.command_line(p.script, argv)
    started = time.perf_counter()
    run = oi.measure(args, pythons, configs, p.name, runner_class(HERE.parent / p.script))
    summary = oi.summarize(run["results"], run["calib"], args.scenarios, p.stream, p.chunk_base)
    meta = oi.run_meta(args, run, cmd, pythons=pythons, skipped=notes)
    versions = meta["versions"]
    meta.update(
        sdk_version=next((v[p.sdk_dist] for v in versions.values() if p.sdk_dist in v), "?"),
        core_mismatch=core_mismatch(p, versions),
        spans_per_call=spans_per_call(run["results"]),
        goals=goals(summary, args.scenarios),
        elapsed_s=time.perf_counter() - started,
        stream_chunks_per_call=p.mock.STREAM_TOTAL_CHUNKS,
        stream_text_deltas_per_call=p.mock.STREAM_TEXT_DELTAS,
    )
    md = markdown(p, summary, configs, args.scenarios, meta)
    return oi.report(args, run, summary, meta, md, f"{p.name}_instructions")
