"""Speed and scale of the local audit store: throughput, verify and find on 1M spans, memory under a backlog.

    python benchmarks/audit_store.py                  # everything, ~12 min on 2 cores (+5-7 min once: the 1M store)
    python benchmarks/audit_store.py --quick          # a ~35 s smoke run, writes nothing unless --out-dir is given
    python benchmarks/audit_store.py --parts throughput,profile   # some of the parts only

Parts (``--parts``, default all), each configuration in a fresh subprocess:

* ``throughput``: sustained LLM spans per second through completion, masking, sealing and the
  store, the process pinned to one core (``os.sched_setaffinity``). Spans are made the way the
  OpenAI instrumentation makes them: the package's own OpenAI adapter starts each call's record
  from the request body (``OpenAIAdapter.start``: the fast path of the emitter), the response
  object goes on the call's state and ``call.end()`` hands it to the pipeline, which resolves it
  (``_capture.resolve_chat``), completes, masks, seals and stores it off the application's thread.
  Only the SDK's HTTP round trip is left out (the fake server cannot answer 2,000 calls a
  second). Pipeline: ``configure(store=..., content="masked", seal_key_file=HMAC key,
  span_exporters=[], metric_readers=[], instrument=False)``. Configurations: ``store`` (the
  store, masked content), ``off`` (``store="off"``, no exporter: completion and masking only),
  ``memory`` (``store="off"`` and an in-memory exporter behind the SDK's batch processor) and
  ``store_raw`` (the store with ``content="raw"``: no masking). Workloads: ``contact`` (every
  prompt carries an email address and a phone number) and ``prose`` (the masking benchmark's
  conversational prose: personal data in ~10 % of prompts, ~2 % of answers).
  Per process: a warm-up, then a *burst* block (spans made back to back; end to end = first
  span until ``pipeline.force_flush()`` returns with every span in the store) and a *paced*
  block (spans at a fixed rate under capacity; the application's per-span cost while the
  pipeline keeps up). The application thread's wall and CPU time per span (start + end of the
  call), its garbage collections, and every store operation's thread (none may be the
  application's) are recorded. Checks: every span stored (or exported) exactly once, the store
  verifies clean, no content dropped, masking status, and no seeded personal value (the email
  address, the phone number, the corpus generators' values; names aside) in any stored body.
* ``profile``: the ``store`` configuration once more per workload with ``cProfile`` on each
  pipeline thread (a thread-CPU clock, so waiting for the GIL or another thread is not counted):
  where the time goes (masking, completion, canonical encoding, sealing, SQLite); then the store
  thread's steps timed directly on the same spans, and presidio's detection time per prompt
  with and without its contact details.
* ``verify``: builds (once, cached under ``benchmarks/.cache/``) a store of 1,000,000 realistic
  spans: masked LLM spans made by the real pipeline as templates, written with ``StoreWriter``
  in 10 streams (as 10 process runs would), new ids, times over 30 days, 5,000 users, sealed
  with an HMAC key, a signed checkpoint every 10,000 records. Then times
  ``otel-llm-audit verify STORE`` in a fresh process.
* ``find``: on the same store, ``otel-llm-audit find --user U --since .. --until .. --source STORE``
  (one day, and all time), ``find --team T`` over one day, and ``otel-llm-audit cost --by team``;
  the counts and totals are checked against what the generator wrote.
* ``backlog``: an OTLP endpoint that refuses connections (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
  on a closed port of 127.0.0.1) while ``--backlog-spans`` (300,000: ten minutes at 500 spans/s)
  go into the store as fast as the pipeline takes them: the producer waits while 2,000 spans
  wait for completion or 4,000 for the store's writer (``--backlog-rate R`` paces them instead;
  ``--backlog-no-store-throttle`` does not wait for the writer, and shows its batch queue
  dropping spans when the writer falls behind); the parent samples the child's RSS every second.
  Also the store's size on disk and the bytes a queued span holds in each bounded queue
  (``tracemalloc``), for the stated bound. The store's limit is set to ``--backlog-store-mb``
  (4,096): the default 1,024 MiB holds fewer spans of this size than the backlog.

Results: ``benchmarks/results/audit_store.{json,md}``. ``--live-src`` measures the working tree as
it changes; by default ``src/`` is copied once when the run starts.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import hashlib
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # before presidio (and tldextract) are imported

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
CACHE = HERE / ".cache"
sys.path.insert(0, str(HERE / "masking"))

PARTS = ("throughput", "profile", "verify", "find", "backlog")
CONFIGS = ("store", "off", "memory", "store_raw")
WORKLOADS = ("contact", "prose")
CONFIG_LABELS = {
    "store": "store, masked",
    "off": 'store="off", no exporter, masked',
    "memory": 'store="off", in-memory exporter, masked',
    "store_raw": "store, raw (no masking)",
}
GOAL_SPANS_PER_S = 2000.0
GOAL_VERIFY_S = 30.0
GOAL_FIND_S = 2.0
CHECKPOINT_NAME = "llm_audit.checkpoint"
OPENAI_SCOPE = "otel_llm_audit.instrumentation.openai"
GENERATOR_VERSION = "3"
SEAL_SECRET = "benchmark-hmac-seal-key-0123456789abcdef"
MODELS = ("gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini", "gpt-4.1-mini", "gpt-4o", "gpt-4.1")
TEAMS = ("triage", "billing", "claims", "onboarding", "support-eu", "support-us", "research", "legal")
APPLICATIONS = ("discharge-assistant", "claims-copilot", "helpdesk-bot", "kyc-review", "notes-summariser")
SYSTEM_PROMPT = (
    "You are a helpful assistant for Example Health & Finance. Answer briefly and politely, in plain "
    "language; never reveal internal notes. If the customer shares contact details, use them only to "
    "follow up on this request."
)
#: The 1M store spans 30 days from here (find's --since/--until are inside it).
STORE_T0 = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
STORE_DAYS = 30
STORE_USERS = 5000
STORE_STREAMS = 10
QUERY_USER = "user-00042"
QUERY_DAY = 14
QUERY_TEAM = "claims"


# ------------------------------------------------------------------------------------ workload


@dataclass
class Call:
    """One chat completion as the application makes it: request, response, who is acting."""

    options: Any  # what the SDK's ``client.request`` receives (url, method, json_data)
    response: dict[str, Any]
    identity: Any  # an ``audit_context`` (entered around the call)
    seeded: tuple[str, ...]  # personal data this call carries that masking must remove
    contact: tuple[str, str] | None = None  # the email address and phone number added to the prompt


class Workload:
    """Deterministic chat calls: prose prompts and answers, contact details in every prompt (``contact``)."""

    def __init__(self, kind: str, seed: int) -> None:
        import bench_pipeline  # the masking benchmark's prose generators (benchmarks/masking)
        import corpus

        if kind not in WORKLOADS:
            raise ValueError(f"workload must be one of {WORKLOADS}, not {kind!r}")
        self.kind = kind
        self.rng = random.Random(f"{kind}-{seed}")
        self._prose = bench_pipeline
        self._corpus = corpus
        self.count = 0

    def call(self) -> Call:
        import otel_llm_audit

        rng = self.rng
        index = self.count
        self.count += 1
        domain = rng.choice(("support", "clinical", "finance", "coding"))
        user = self._prose.prose_user(rng, domain, f"u{index}")
        prompt = user.text
        # the corpus generators' personal data (~10 % of prompts), names aside (no pattern finds them)
        seeded = [prompt[s.start : s.end] for s in user.spans if s.entity not in self._prose.UNDETECTABLE]
        if self.kind == "contact":
            first, last = rng.choice(self._corpus.FIRST_NAMES), rng.choice(self._corpus.LAST_NAMES)
            email = self._corpus.email(rng, first, last)
            phone, _ = self._corpus.phone(rng)
            prompt = f"{prompt} You can reach me at {email} or by phone on {phone}."
            seeded += [email, phone]
            contact: tuple[str, str] | None = (email, phone)
        else:
            contact = None
        reply = self._prose.prose_answer(rng, domain, f"a{index}")
        answer = reply.text
        seeded += [answer[s.start : s.end] for s in reply.spans if s.entity not in self._prose.UNDETECTABLE]
        model = rng.choice(MODELS)
        body = {
            "model": model,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}],
            "temperature": 0.2,
            "max_tokens": 800,
        }
        prompt_tokens = (len(SYSTEM_PROMPT) + len(prompt)) // 4
        response = {
            "id": f"chatcmpl-{self.kind}-{index:09d}",
            "object": "chat.completion",
            "created": 1_790_000_000 + index,
            "model": f"{model}-2025-04-14",
            "system_fingerprint": "fp_0aa8d3e20b",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(answer) // 4,
                "total_tokens": prompt_tokens + len(answer) // 4,
            },
        }
        user_no = rng.randrange(STORE_USERS)
        identity = otel_llm_audit.audit_context(
            user_id=f"user-{user_no:05d}",
            session_id=f"sess-{user_no:05d}-{index // 20}",
            actor_type="human",
            auth_method="oidc",
            tenant_id=f"tenant-{user_no % 40:02d}",
            team=TEAMS[user_no % len(TEAMS)],
            application=APPLICATIONS[user_no % len(APPLICATIONS)],
        )
        options = SimpleNamespace(url="/chat/completions", method="post", json_data=body)
        return Call(options, response, identity, tuple(seeded), contact)

    def calls(self, n: int) -> list[Call]:
        return [self.call() for _ in range(n)]


class _Client:
    """What ``server_of`` reads from an OpenAI client: its base URL."""

    _base_url = SimpleNamespace(host="api.openai.com", port=None, scheme="https")


# ------------------------------------------------------------------------------------- harness


class Harness:
    """``configure()`` for one configuration, and the application's side of a call."""

    def __init__(
        self, config: str, tmp: Path, key_file: str, *, exporters_from_env: bool = False, **settings: Any
    ) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        import otel_llm_audit
        from otel_llm_audit.emitter.spans import Emitter
        from otel_llm_audit.instrumentation.openai._wrappers import OpenAIAdapter

        self.config = config
        self.memory: Any = None
        self.store_path = tmp / f"audit-{config}.db"
        kwargs: dict[str, Any] = {}
        if config in ("store", "store_raw"):
            kwargs = {"store": str(self.store_path), "seal_key_file": key_file}
            if not exporters_from_env:
                kwargs["span_exporters"] = []
        elif config == "off":
            kwargs = {"store": "off", "span_exporters": []}
        elif config == "memory":
            self.memory = InMemorySpanExporter()
            kwargs = {"store": "off", "span_exporters": [self.memory]}
        else:
            raise ValueError(f"unknown configuration {config!r}")
        kwargs.update(settings)
        self.pipeline = otel_llm_audit.configure(
            metric_readers=[],
            tracer_provider=TracerProvider(),
            set_global=False,
            instrument=False,
            http_spans=False,
            content="raw" if config == "store_raw" else "masked",
            **kwargs,
        )
        if self.pipeline.masking is not None and not self.pipeline.masking.wait_ready(120):
            raise RuntimeError("the masking stage did not start within 120 s")
        self.processor: Any = self.pipeline.processor
        self.emitter = Emitter(OPENAI_SCOPE, self.pipeline.tracer_provider, None)
        self.adapter = OpenAIAdapter()
        self.client = _Client()
        #: Store operations (SQLite connection requests) by phase and thread, while watching.
        self.store_threads: Counter[tuple[str, str]] = Counter()
        self._watching = ""
        if self.pipeline.store is not None:
            self._watch_store_threads()

    def _watch_store_threads(self) -> None:
        """Count the threads that touch the store: every SQLite operation asks for its connection."""
        store = self.pipeline.store.store  # type: ignore[union-attr]
        original = store.connection

        def connection() -> Any:
            if self._watching:
                self.store_threads[(self._watching, threading.current_thread().name)] += 1
            return original()

        store.connection = connection

    @contextlib.contextmanager
    def watching(self, phase: str) -> Iterator[None]:
        self._watching = phase
        try:
            yield
        finally:
            self._watching = ""

    def store_ops(self, phase: str) -> dict[str, int]:
        return {thread: n for (p, thread), n in self.store_threads.items() if p == phase}

    def do_call(self, call: Call) -> None:
        """What the instrumented SDK does on the application's thread around the HTTP round trip."""
        span = self.adapter.start(self.emitter, self.client, call.options, False)
        if span is not None:
            span.state.response = call.response
            span.end()

    def backlog(self) -> int:
        """Spans waiting for completion and masking (the audit processor's queue)."""
        return len(self.processor._items)

    def flush(self, timeout_s: float = 600.0) -> bool:
        return bool(self.pipeline.force_flush(int(timeout_s * 1000)))

    def flush_into_store(self, timeout_s: float = 600.0) -> None:
        """Everything ended so far is in the store, without waiting for destinations (``force_flush`` would
        give a down receiver 5 s)."""
        from otel_llm_audit.processing import pipeline as pipeline_mod

        self.processor._wait_for(pipeline_mod._Marker(), time.monotonic() + timeout_s)
        self.pipeline.store._batch.force_flush()  # type: ignore[union-attr]


def _thread_cpu_ns() -> dict[str, int]:
    """CPU time so far of every live thread, by name (``name#ident``)."""
    out: dict[str, int] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        with contextlib.suppress(OSError, AttributeError):
            out[f"{thread.name}#{thread.ident}"] = time.clock_gettime_ns(time.pthread_getcpuclockid(thread.ident))
    return out


def _cpu_per_span(before: dict[str, int], after: dict[str, int], n: int) -> dict[str, float]:
    out: Counter[str] = Counter()
    for name, ns in after.items():
        out[name.split("#")[0]] += ns - before.get(name, 0)
    return {name: round(ns / n / 1000, 1) for name, ns in sorted(out.items()) if ns}


class _GcClock:
    """CPU time of the garbage collections run on the application's thread."""

    def __init__(self) -> None:
        self.main = threading.main_thread().ident
        self.ns = 0
        self.count = 0
        self._start = 0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if threading.get_ident() != self.main:
            return
        if phase == "start":
            self._start = time.thread_time_ns()
        else:
            self.ns += time.thread_time_ns() - self._start
            self.count += 1

    def reset(self) -> None:
        self.ns = 0
        self.count = 0


def _summary(values_ns: Sequence[int]) -> dict[str, float]:
    """Median, p90, p99, max and mean, in microseconds."""
    ordered = sorted(values_ns)
    n = len(ordered)
    if not n:
        return {}

    def pct(p: float) -> float:
        return round(ordered[min(n - 1, int(p * n))] / 1000, 1)

    return {
        "median": pct(0.5),
        "p90": pct(0.9),
        "p99": pct(0.99),
        "max": round(ordered[-1] / 1000, 1),
        "mean": round(sum(ordered) / n / 1000, 1),
    }


def _app_loop(h: Harness, calls: Sequence[Call], rate: float = 0.0) -> dict[str, Any]:
    """Make ``calls`` on this (the application's) thread, back to back or at ``rate`` per second."""
    walls: list[int] = []
    cpus: list[int] = []
    perf, cpu = time.perf_counter_ns, time.thread_time_ns
    start = perf()
    interval = int(1e9 / rate) if rate else 0
    for i, call in enumerate(calls):
        if interval:
            wait = start + i * interval - perf()
            if wait > 0:
                time.sleep(wait / 1e9)
        with call.identity:
            w0, c0 = perf(), cpu()
            h.do_call(call)
            c1, w1 = cpu(), perf()
        walls.append(w1 - w0)
        cpus.append(c1 - c0)
    end = perf()
    return {"start": start, "end": end, "walls": walls, "cpus": cpus}


def throughput_block(h: Harness, calls: Sequence[Call], gc_clock: _GcClock, rate: float = 0.0) -> dict[str, Any]:
    """One timed block: the application's loop, then ``force_flush`` until every span is stored."""
    gc.collect()
    threads_before = _thread_cpu_ns()
    gc_clock.reset()
    h.store_threads.clear()
    with h.watching("loop"):
        loop = _app_loop(h, calls, rate)
    backlog = h.backlog()
    gc_ns, gc_count = gc_clock.ns, gc_clock.count
    with h.watching("flush"):
        flushed = h.flush()
    done = time.perf_counter_ns()
    n = len(calls)
    threads = _cpu_per_span(threads_before, _thread_cpu_ns(), n)
    app_loop_cpu = sum(loop["cpus"]) / n / 1000
    return {
        "spans": n,
        "rate_asked": rate,
        "flushed": flushed,
        "end_to_end_s": round((done - loop["start"]) / 1e9, 4),
        "spans_per_s": round(n / ((done - loop["start"]) / 1e9), 1),
        "app_loop_s": round((loop["end"] - loop["start"]) / 1e9, 4),
        "flush_after_last_span_s": round((done - loop["end"]) / 1e9, 4),
        "backlog_at_last_span": backlog,
        "app_wall_us": _summary(loop["walls"]),
        "app_cpu_us": _summary(loop["cpus"]),
        "app_cpu_total_us_per_span": round(sum(loop["cpus"]) / n / 1000, 2),
        "app_gc_us_per_span": round(gc_ns / n / 1000, 2),
        "app_gc_collections": gc_count,
        "thread_cpu_us_per_span": threads,
        # The application thread's CPU outside its calls: mostly force_flush, which exports what is still
        # queued on the calling thread (the SDK's BatchSpanProcessor does), plus this loop's own bookkeeping.
        "app_thread_flush_cpu_us_per_span": round(threads.get("MainThread", 0.0) - app_loop_cpu, 1),
        # While the application made its calls; then during its force_flush (which exports on the calling thread).
        "store_ops_by_thread": h.store_ops("loop"),
        "store_ops_on_app_thread": h.store_ops("loop").get(threading.main_thread().name, 0),
        "store_ops_during_flush_by_thread": h.store_ops("flush"),
    }


def _attributes_of_body(body: bytes) -> dict[str, Any]:
    document = json.loads(body)
    return {key: value[1] for key, value in document["attributes"]}


def _check_content(
    attribute_sets: Sequence[dict[str, Any]], bodies: Sequence[bytes], seeded: dict[str, tuple[str, ...]]
) -> dict[str, Any]:
    """Masking status, content present, and no seeded value verbatim in what was stored or exported.

    ``seeded`` maps a call's response id to the values it carried; each span is searched for its own.
    """
    statuses = Counter(str(a.get("llm_audit.redaction.status", "-")) for a in attribute_sets)
    modes = Counter(str(a.get("llm_audit.content.mode", "-")) for a in attribute_sets)
    with_content = sum(1 for a in attribute_sets if "gen_ai.input.messages" in a and "gen_ai.output.messages" in a)
    leaked: list[str] = []
    searched = 0
    for attrs, body in zip(attribute_sets, bodies, strict=True):
        for value in seeded.get(str(attrs.get("gen_ai.response.id")), ()):
            searched += 1
            if value.encode() in body or json.dumps(value)[1:-1].encode() in body:
                leaked.append(value)
    return {
        "redaction_status": dict(statuses),
        "content_mode": dict(modes),
        "with_content": with_content,
        "seeded_values": sum(len(v) for v in seeded.values()),
        "seeded_values_searched": searched,
        "seeded_values_leaked": len(leaked),
        "leaked_examples": leaked[:3],
    }


def worker_throughput(p: dict[str, Any]) -> dict[str, Any]:
    tmp = Path(p["tmp"])
    workload = Workload(p["workload"], p["seed"])
    warmup = workload.calls(p["warmup"])
    burst = workload.calls(p["spans"])
    paced = workload.calls(p["paced_spans"])
    made = time.perf_counter()
    h = Harness(p["config"], tmp, p["key_file"])
    result: dict[str, Any] = {"configure_s": round(time.perf_counter() - made, 2)}
    gc_clock = _GcClock()
    for call in warmup:
        with call.identity:
            h.do_call(call)
    h.flush()
    result["burst"] = throughput_block(h, burst, gc_clock)
    result["paced"] = throughput_block(h, paced, gc_clock, rate=p["paced_rate"]) if paced else None
    result["dropped_content"] = h.processor.dropped_content_count
    masking = h.pipeline.masking
    result["masking_failures"] = dict(masking.failure_counts) if masking is not None else {}
    produced = len(warmup) + len(burst) + len(paced)
    result["produced"] = produced
    seeded = {} if p["config"] == "store_raw" else {c.response["id"]: c.seeded for c in burst + paced if c.seeded}
    writer = h.pipeline.store.writer if h.pipeline.store is not None else None
    h.pipeline.shutdown()
    if writer is not None:
        from otel_llm_audit.delivery.store import AuditStore

        result["store_lost"] = writer.lost
        store = AuditStore(h.store_path, readonly=True)
        result["stored"] = store.count("name != ?", (CHECKPOINT_NAME,))
        result["checkpoints"] = store.count("name = ?", (CHECKPOINT_NAME,))
        distinct = store.connection().execute("SELECT COUNT(DISTINCT span_id) FROM records").fetchone()[0]
        result["distinct_span_ids"] = int(distinct) - result["checkpoints"]
        last = [r.body for r in store.iter_records(where="name != ?", params=(CHECKPOINT_NAME,))][-len(burst + paced) :]
        result["content"] = _check_content([_attributes_of_body(b) for b in last], last, seeded)
        result["store_bytes_per_span"] = round(_store_bytes(h.store_path) / max(result["stored"], 1))
        store.close()
        from otel_llm_audit.processing.sealing import load_seal_key
        from otel_llm_audit.processing.verification import verify

        verified = verify(h.store_path, key=load_seal_key(p["key_file"]))
        result["verify"] = {"ok": verified.ok, "errors": verified.errors, "records": verified.records}
    elif h.memory is not None:
        spans = h.memory.get_finished_spans()
        result["stored"] = len(spans)
        result["distinct_span_ids"] = len({s.context.span_id for s in spans})
        attrs = [dict(s.attributes or {}) for s in spans[-len(burst + paced) :]]
        blobs = [json.dumps(a, default=str).encode() for a in attrs]
        result["content"] = _check_content(attrs, blobs, seeded)
    problems = []
    expect_stored = writer is not None or h.memory is not None
    if expect_stored and result["stored"] != produced:
        problems.append(f"{result['stored']} spans stored or exported, {produced} made")
    if expect_stored and result["distinct_span_ids"] != produced:
        problems.append(f"{result['distinct_span_ids']} distinct span ids for {produced} spans")
    if result["dropped_content"]:
        problems.append(f"{result['dropped_content']} spans lost their content to a full queue")
    for block in ("burst", "paced"):
        if result[block] and result[block]["store_ops_on_app_thread"]:
            problems.append(f"{block}: {result[block]['store_ops_on_app_thread']} store operations on the app thread")
    if "verify" in result and not result["verify"]["ok"]:
        problems.append(f"the store does not verify: {result['verify']['errors']} errors")
    content = result.get("content")
    if content and content["seeded_values_searched"] != content["seeded_values"]:
        problems.append(f"searched {content['seeded_values_searched']} of {content['seeded_values']} seeded values")
    if content and content["with_content"] != len(burst + paced):
        problems.append(f"content on {content['with_content']} of {len(burst + paced)} spans")
    result["problems"] = problems
    return result


def _store_bytes(path: Path) -> int:
    return sum(os.path.getsize(f"{path}{suffix}") for suffix in ("", "-wal") if os.path.exists(f"{path}{suffix}"))


# ------------------------------------------------------------------------------------- profile

PROFILE_GROUPS: dict[str, list[tuple[str, str, str]]] = {
    # thread -> (label, file suffix, function) whose cumulative CPU is reported
    "masking": [
        ("masking engine, per JSON document (mask_json)", "engine.py", "mask_json"),
        ("  presidio AnalyzerEngine.analyze (all recognizers)", "analyzer_engine.py", "analyze"),
        ("    phone numbers (presidio PhoneRecognizer: phonenumbers)", "phone_recognizer.py", "analyze"),
        ("    regex pattern recognizers", "pattern_recognizer.py", "analyze"),
        ("  prefilter (which recognizers may match)", "prefilter.py", "select"),
    ],
    "completion": [
        ("Emitter.complete: resolve + attributes + cost", "spans.py", "complete"),
        ("  resolve the response (openai _capture)", "records.py", "resolve"),
        ("  content JSON (llm_call_content)", "attributes.py", "llm_call_content"),
        ("DeferredSpan.build", "deferred.py", "build"),
        ("hand-off downstream (_forward)", "pipeline.py", "_forward"),
    ],
    "store": [
        ("canonical encoding (span_body)", "canonical.py", "span_body"),
        ("seal (HMAC-SHA256 chain)", "sealing.py", "seal"),
        ("index columns (index_values)", "store_writer.py", "index_values"),
        ("SQLite insert + commit (AuditStore.append)", "store.py", "append"),
        ("checkpoints", "store_writer.py", "_checkpoint_locked"),
    ],
}


def worker_profile(p: dict[str, Any]) -> dict[str, Any]:
    """The ``store`` configuration under cProfile, one profiler per pipeline thread (thread-CPU clock)."""
    import cProfile
    import pstats

    from otel_llm_audit.processing import masking_stage

    tmp = Path(p["tmp"])
    workload = Workload(p["workload"], p["seed"])
    warmup, burst = workload.calls(p["warmup"]), workload.calls(p["spans"])
    h = Harness("store", tmp, p["key_file"])
    for call in warmup:
        with call.identity:
            h.do_call(call)
    h.flush()
    profiles = {name: cProfile.Profile(time.thread_time_ns, 1e-9) for name in PROFILE_GROUPS}

    def profiled(profile: Any, function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            profile.enable()
            try:
                return function(*args)
            finally:
                profile.disable()

        return run

    h.processor._process = profiled(profiles["completion"], h.processor._process)
    original_job_run = masking_stage._Job.run
    masking_stage._Job.run = profiled(profiles["masking"], original_job_run)  # type: ignore[method-assign]
    writer = h.pipeline.store.writer  # type: ignore[union-attr]
    kept: list[Any] = []  # the masked spans the store received, timed again below without the profiler
    profiled_export = profiled(profiles["store"], writer.export)

    def export(spans: Sequence[Any]) -> Any:
        kept.extend(spans)
        return profiled_export(spans)

    writer.export = export  # type: ignore[method-assign]
    gc_clock = _GcClock()
    block = throughput_block(h, burst, gc_clock)
    masking_stage._Job.run = original_job_run  # type: ignore[method-assign]
    del writer.export  # the class's method again
    n = len(burst)
    threads: dict[str, Any] = {}
    for name, profile in profiles.items():
        stats = pstats.Stats(profile)
        table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
        total = sum(row[2] for row in table.values())
        groups = []
        for label, suffix, function in PROFILE_GROUPS[name]:
            matches = [row[3] for key, row in table.items() if key[0].endswith(suffix) and key[2] == function]
            cumulative = max(matches, default=0.0)  # the outermost of same-named functions (no double count)
            groups.append({"label": label, "us_per_span": round(cumulative / n * 1e6, 1)})
        top = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:12]
        threads[name] = {
            "total_us_per_span": round(total / n * 1e6, 1),
            "groups": groups,
            "top_self": [
                {
                    "function": f"{Path(key[0]).name}:{key[1]}({key[2]})",
                    "calls_per_span": round(row[1] / n, 2),
                    "self_us_per_span": round(row[2] / n * 1e6, 1),
                    "cumulative_us_per_span": round(row[3] / n * 1e6, 1),
                }
                for key, row in top
            ],
        }
    masker = h.pipeline.masking.redactor.masker  # type: ignore[union-attr]
    result = {
        "block": block,
        "threads": threads,
        "spans": n,
        "store_steps_us": store_steps(kept[-n:], Path(p["tmp"]), p["key_file"]),
        "detect_us": detect_costs(masker, burst),
    }
    h.pipeline.shutdown()
    return result


def _best_of(repeat: int, function: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter_ns()
        function()
        best = min(best, time.perf_counter_ns() - started)
    return best


def store_steps(spans: Sequence[Any], tmp: Path, key_file: str) -> dict[str, float]:
    """The store thread's steps on the same masked spans, timed directly (best of 3, microseconds per span)."""
    from otel_llm_audit.delivery.store import AuditStore
    from otel_llm_audit.delivery.store_writer import StoreWriter, index_values
    from otel_llm_audit.processing.canonical import span_body
    from otel_llm_audit.processing.sealing import Sealer, load_seal_key

    n = len(spans)
    if not n:
        return {}
    key = load_seal_key(key_file)
    bodies = [span_body(s) for s in spans]
    out = {
        "canonical encoding (span_body)": _best_of(3, lambda: [span_body(s) for s in spans]),
        "seal (HMAC-SHA256 over header + body)": _best_of(3, lambda: [Sealer(key).seal(b) for b in bodies]),
        "index columns (index_values)": _best_of(3, lambda: [index_values(s) for s in spans]),
    }
    scratch = AuditStore(tmp / "steps.db")
    # Rows for each repetition come from their own writer (stream): a row is inserted once.
    row_sets = iter([[StoreWriter(scratch, key=key, checkpoint_interval=0)._row(s) for s in spans] for _ in range(6)])

    def append(destinations: tuple[str, ...]) -> None:
        rows = next(row_sets)
        started = time.perf_counter_ns()
        for i in range(0, n, 512):
            scratch.append(rows[i : i + 512], destinations)
        timings.append(time.perf_counter_ns() - started)

    for destinations, label in (
        ((), "SQLite insert + commit, 512 a transaction (AuditStore.append)"),
        (("exporter-0",), "  the same with one destination's outbox row"),
    ):
        timings: list[int] = []
        for _ in range(3):
            append(destinations)
        out[label] = min(timings)

    def export_all() -> None:
        writer = StoreWriter(scratch, key=key, checkpoint_interval=0)
        for i in range(0, n, 512):
            writer.export(spans[i : i + 512])

    out["all of it: StoreWriter.export, 512 a batch"] = _best_of(3, export_all)
    scratch.close()
    return {label: round(ns / n / 1000, 1) for label, ns in out.items()}


def detect_costs(masker: Any, calls: Sequence[Call]) -> dict[str, Any]:
    """presidio detection per prompt (``Masker.detect``, uncached), with and without its contact details."""
    variants: dict[str, list[str]] = {"prompt as sent": [], "without the phone number": [], "without either": []}
    answers = [c.response["choices"][0]["message"]["content"] for c in calls]
    for call in calls:
        prompt = call.options.json_data["messages"][1]["content"]
        variants["prompt as sent"].append(prompt)
        if call.contact is not None:
            phone = call.contact[1]
            variants["without the phone number"].append(prompt.replace(f" or by phone on {phone}", ""))
            variants["without either"].append(prompt.split(" You can reach me at ")[0])
    out: dict[str, Any] = {}
    for label, texts in {**variants, "answer": answers}.items():
        if not texts:
            continue
        times = []
        for text in texts:
            started = time.perf_counter_ns()
            masker.detect(text)
            times.append(time.perf_counter_ns() - started)
        out[label] = {"texts": len(texts), "chars": round(sum(map(len, texts)) / len(texts)), **_summary(times)}
    return out


# ---------------------------------------------------------------------------- the 1M-span store


def _cache_key(spans: int) -> str:
    """Changes whenever the generator or the bytes a store holds change (a stale cache must not be timed).

    The canonical encoding and the seals (their modules' source) and the store's schema and format
    version; not the rest of the store's code, which others edit often and which does not change
    what a store built earlier contains (``verify`` reports it if it did).
    """
    from otel_llm_audit.delivery import store

    digest = hashlib.sha256(f"{GENERATOR_VERSION}/{spans}/{STORE_STREAMS}/{STORE_USERS}".encode())
    digest.update(f"{store.FORMAT_VERSION}\n{store._SCHEMA}".encode())
    for name in ("processing/canonical.py", "processing/sealing.py"):
        digest.update((REPO / "src" / "otel_llm_audit" / name).read_bytes())
    return digest.hexdigest()[:12]


def store_paths(spans: int, cache: Path) -> dict[str, Path]:
    stem = f"audit-{spans}-{_cache_key(spans)}"
    return {"store": cache / f"{stem}.db", "meta": cache / f"{stem}.json", "key": cache / "seal-hmac.key"}


def _templates(p: dict[str, Any]) -> list[Any]:
    """Masked LLM spans made by the real pipeline (store off, in-memory exporter): the rows to repeat."""
    tmp = Path(p["tmp"])
    h = Harness("memory", tmp, "")
    calls = Workload("prose", p["seed"]).calls(p["templates"]) + Workload("contact", p["seed"]).calls(p["templates"])
    for i, call in enumerate(calls):
        with call.identity:
            if i % 50 == 7:  # a failed call now and then (find --errors, error.type)
                span = h.adapter.start(h.emitter, h.client, call.options, False)
                if span is not None:
                    span.end(TimeoutError("Request timed out."))
            else:
                h.do_call(call)
    h.flush()
    spans = list(h.memory.get_finished_spans())
    h.pipeline.shutdown()
    if len(spans) != len(calls):
        raise RuntimeError(f"{len(spans)} template spans for {len(calls)} calls")
    return spans


def worker_generate(p: dict[str, Any]) -> dict[str, Any]:
    """Write the store: ``StoreWriter.export`` in batches, one writer (stream) per simulated process run."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.trace import SpanContext, TraceFlags

    from otel_llm_audit.delivery.store import AuditStore
    from otel_llm_audit.delivery.store_writer import StoreWriter
    from otel_llm_audit.processing.sealing import load_seal_key

    started = time.perf_counter()
    templates = _templates(p)
    templates_s = time.perf_counter() - started
    target = Path(p["store"])
    partial = target.with_suffix(".partial")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{partial}{suffix}")
    store = AuditStore(partial)
    key = load_seal_key(p["key_file"])
    rng = random.Random(p["seed"])
    n, streams = p["spans"], STORE_STREAMS
    t0 = int(STORE_T0.timestamp() * 1e9)
    step = STORE_DAYS * 86_400 * 10**9 // n
    day_start = t0 + QUERY_DAY * 86_400 * 10**9
    day_end = day_start + 86_400 * 10**9
    expected = {"user_day": 0, "user_all": 0, "team_day": 0, "errors": 0, "policy": 0}
    team_cost: Counter[str] = Counter()
    team_calls: Counter[str] = Counter()
    batch: list[Any] = []
    index = 0
    for stream in range(streams):
        resource = Resource.create(
            {
                "service.name": "clinic-assistant",
                "service.instance.id": f"pod-{stream:02d}",
                "deployment.environment.name": "production",
            }
        )
        writer = StoreWriter(store, key=key, resource=resource, checkpoint_interval=0, checkpoint_records=10_000)
        for _ in range(n // streams if stream < streams - 1 else n - index):
            template = templates[rng.randrange(len(templates))]
            user_no = rng.randrange(STORE_USERS)
            user = f"user-{user_no:05d}"
            team = TEAMS[user_no % len(TEAMS)]
            start = t0 + index * step + rng.randrange(step)
            shift = start - (template.start_time or 0)
            attrs = dict(template.attributes or {})
            attrs.update(
                {
                    "user.id": user,
                    "session.id": f"sess-{user_no:05d}-{(start - t0) // (3600 * 10**9)}",
                    "llm_audit.tenant.id": f"tenant-{user_no % 40:02d}",
                    "llm_audit.team": team,
                    "llm_audit.application": APPLICATIONS[user_no % len(APPLICATIONS)],
                }
            )
            span = ReadableSpan(
                name=template.name,
                context=SpanContext(
                    rng.getrandbits(128) | 1, rng.getrandbits(64) | 1, is_remote=False, trace_flags=TraceFlags(1)
                ),
                parent=None,
                resource=resource,
                attributes=attrs,
                events=[Event(e.name, e.attributes, (e.timestamp or 0) + shift) for e in template.events],
                kind=template.kind,
                status=template.status,
                start_time=start,
                end_time=(template.end_time or 0) + shift,
                instrumentation_scope=template.instrumentation_scope,
            )
            if user == QUERY_USER:
                expected["user_all"] += 1
                expected["user_day"] += day_start <= start < day_end
            if team == QUERY_TEAM and day_start <= start < day_end:
                expected["team_day"] += 1
            expected["errors"] += "error.type" in attrs
            expected["policy"] += any(e.name == "llm_audit.policy" for e in template.events)
            team_cost[team] += float(attrs.get("llm_audit.cost.usd", 0.0) or 0.0)
            # ``cost`` counts the calls that report usage or a cost (a failed call has neither)
            team_calls[team] += any(
                k in attrs for k in ("llm_audit.cost.usd", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")
            )
            batch.append(span)
            index += 1
            if len(batch) == 1000:
                writer.export(batch)
                batch = []
        if batch:
            writer.export(batch)
            batch = []
        writer.shutdown()
        print(json.dumps({"progress": index, "elapsed_s": round(time.perf_counter() - started, 1)}), file=sys.stderr)
    connection = store.connection()
    checkpoints = store.count("name = ?", (CHECKPOINT_NAME,))
    records = store.count()
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    os.replace(partial, target)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{partial}{suffix}")
    meta = {
        "spans": n,
        "records": records,
        "checkpoints": checkpoints,
        "streams": streams,
        "users": STORE_USERS,
        "templates": len(templates),
        "from": STORE_T0.isoformat(),
        "days": STORE_DAYS,
        "query": {
            "user": QUERY_USER,
            "team": QUERY_TEAM,
            "since": (STORE_T0 + dt.timedelta(days=QUERY_DAY)).isoformat().replace("+00:00", "Z"),
            "until": (STORE_T0 + dt.timedelta(days=QUERY_DAY + 1)).isoformat().replace("+00:00", "Z"),
        },
        "expected": expected,
        "by_team": {t: {"calls": team_calls[t], "cost_usd": round(team_cost[t], 9)} for t in sorted(team_calls)},
        "bytes": os.path.getsize(target),
        "templates_s": round(templates_s, 1),
        "generate_s": round(time.perf_counter() - started, 1),
        "key_algorithm": key.record_algorithm,
    }
    return meta


# ------------------------------------------------------------------------------------- backlog


def _rss_kb(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _emit(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


class _DropCounter:
    """Counts spans the SDK batch queue in front of the store's writer drops whole (it only logs them, and its
    log filter drops repeats): a span offered while the queue is full."""

    def __init__(self, store_proc: Any) -> None:
        self.count = 0
        batch = store_proc._batch
        queue_owner = batch._batch_processor
        original = batch.on_end

        def on_end(span: Any) -> None:
            if len(queue_owner._queue) >= queue_owner._max_queue_size:
                self.count += 1
            original(span)

        batch.on_end = on_end


def worker_backlog(p: dict[str, Any]) -> dict[str, Any]:
    """Spans into the store while the only OTLP destination refuses connections; RSS is sampled by the parent."""
    import tracemalloc

    from otel_llm_audit.processing import pipeline as pipeline_mod

    port = _closed_port()
    os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"http://127.0.0.1:{port}/v1/traces"
    os.environ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"
    tmp = Path(p["tmp"])
    h = Harness("store", tmp, p["key_file"], exporters_from_env=True, store_max_mb=p["store_max_mb"])
    store_proc = h.pipeline.store
    assert store_proc is not None and len(store_proc.forwarders) == 1, "expected one OTLP destination"
    forwarder = store_proc.forwarders[0]
    sdk_drops = _DropCounter(store_proc)
    store_queue = store_proc._batch._batch_processor._queue  # the SDK batch queue in front of the store's writer
    workload = Workload(p["workload"], p["seed"])
    for call in workload.calls(p["warmup"]):
        with call.identity:
            h.do_call(call)
    h.flush_into_store(60)
    gc.collect()
    total, rate, high_water, store_high_water = p["spans"], p["rate"], p["high_water"], p["store_high_water"]
    baseline = _rss_kb()
    baseline_objects = len(gc.get_objects())
    _emit({"event": "baseline", "rss_kb": baseline, "t": time.time()})
    started = time.perf_counter()
    peak_backlog = peak_store_queue = 0
    points = []
    for i in range(total):
        if rate:
            wait = started + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        else:  # as fast as the pipeline takes them: wait while either stage has a backlog
            while h.backlog() >= high_water or (store_high_water and len(store_queue) >= store_high_water):
                time.sleep(0.002)
        call = workload.call()  # made now: the application's own memory stays flat
        with call.identity:
            h.do_call(call)
        peak_backlog = max(peak_backlog, h.backlog())
        peak_store_queue = max(peak_store_queue, len(store_queue))
        if (i + 1) % p["progress_every"] == 0 or i + 1 == total:
            point = {
                "event": "progress",
                "produced": i + 1,
                "elapsed_s": round(time.perf_counter() - started, 1),
                "rss_kb": _rss_kb(),
                "backlog": h.backlog(),
                "store_queue": len(store_queue),
                "stored": h.pipeline.store.store.count(),  # type: ignore[union-attr]
                "sdk_dropped": sdk_drops.count,
                "gc_objects": len(gc.get_objects()),
                "t": time.time(),
            }
            points.append(point)
            _emit(point)
    produced_s = time.perf_counter() - started
    h.flush_into_store()
    done_s = time.perf_counter() - started
    _emit({"event": "stored", "t": time.time(), "rss_kb": _rss_kb()})
    result: dict[str, Any] = {
        "endpoint": os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"],
        "store_max_mb": p["store_max_mb"],
        "produced": total,
        "warmup": p["warmup"],
        "produce_s": round(produced_s, 1),
        "produced_per_s": round(total / produced_s, 1),
        "until_stored_s": round(done_s, 1),
        "rate_asked": rate,
        "peak_completion_backlog": peak_backlog,
        "peak_store_queue": peak_store_queue,
        "store_high_water": store_high_water,
        "sdk_dropped_spans": sdk_drops.count,
        "baseline_rss_kb": baseline,
        "baseline_gc_objects": baseline_objects,
        "points": points,
        "stored": h.pipeline.store.store.count("name != ?", (CHECKPOINT_NAME,)),  # type: ignore[union-attr]
        "pending_delivery": h.pipeline.store.store.pending(forwarder.destination),  # type: ignore[union-attr]
        "spans_missing": total
        + p["warmup"]
        - h.pipeline.store.store.count(  # type: ignore[union-attr]
            "name != ?", (CHECKPOINT_NAME,)
        ),
        "forwarder_sent": forwarder.sent,
        "forwarder_failed_attempts": forwarder.failed_attempts,
        "dropped_content": h.processor.dropped_content_count,
        "store_lost": store_proc.writer.lost,
        "pruned_undelivered": store_proc.writer.pruned_undelivered,
        "store_file_bytes": os.path.getsize(h.store_path),
        "store_wal_bytes": os.path.getsize(f"{h.store_path}-wal") if os.path.exists(f"{h.store_path}-wal") else 0,
        "store_used_bytes": h.pipeline.store.store.used_bytes(),  # type: ignore[union-attr]
        "queue_sizes": {
            "completion_queue_spans": h.processor._max_items,
            "store_batch_queue_spans": store_proc._batch._batch_processor._max_queue_size,
            "forwarder_batch_spans": forwarder._batch_size,
        },
    }
    # Bytes a queued span holds in each bounded queue, for the bound (after the run: RSS is measured first).
    k = p["size_probe"]

    def make_calls() -> None:  # each call made in the traced window and dropped: what stays is what a queue holds
        for _ in range(k):
            call = workload.call()
            with call.identity:
                h.do_call(call)

    gate = threading.Event()
    original_process = h.processor._process

    def held_process(batch: list[Any]) -> None:
        if batch:
            gate.wait()
        original_process(batch)

    gc.collect()
    tracemalloc.start()
    h.processor._process = held_process  # the completion worker holds its first batch: spans pile up
    before = tracemalloc.get_traced_memory()[0]
    make_calls()
    gc.collect()  # what the queue holds, not garbage waiting for a collection
    queued_completion = tracemalloc.get_traced_memory()[0] - before
    gate.set()
    h.processor._process = original_process
    h.flush_into_store(120)
    writer_gate = threading.Event()
    writer = store_proc.writer
    original_export = writer.export

    def held_export(spans: Any) -> Any:
        writer_gate.wait()
        return original_export(spans)

    writer.export = held_export  # type: ignore[method-assign]
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    make_calls()
    h.processor._wait_for(pipeline_mod._Marker(), time.monotonic() + 120)  # completed, masked: all in the store queue
    gc.collect()
    queued_store = tracemalloc.get_traced_memory()[0] - before
    writer_gate.set()
    writer.export = original_export  # type: ignore[method-assign]
    tracemalloc.stop()
    result["bytes_per_queued_span"] = {
        "completion_queue": round(queued_completion / k),
        "store_batch_queue": round(queued_store / k),
        "note": "the completion queue's items keep the request snapshot and the response object until completion",
    }
    return result


# --------------------------------------------------------------------------- worker dispatch

WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "throughput": worker_throughput,
    "profile": worker_profile,
    "generate": worker_generate,
    "backlog": worker_backlog,
}


def worker_main(role: str, params_json: str) -> int:
    p = json.loads(params_json)
    if p.get("cpu", -1) >= 0:
        os.sched_setaffinity(0, {p["cpu"]})  # before any thread starts: they all inherit it
    import otel_llm_audit

    result: dict[str, Any] = {"role": role, "params": p, "pid": os.getpid()}
    try:
        result["affinity"] = sorted(os.sched_getaffinity(0))
        result["otel_llm_audit_file"] = otel_llm_audit.__file__
        started = time.perf_counter()
        result.update(WORKERS[role](p))
        result["worker_s"] = round(time.perf_counter() - started, 1)
        result["ok"] = True
    except Exception as err:  # reported, not raised: the parent prints it and marks the part FAILED
        import traceback

        result.update(ok=False, error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc()[-4000:])
    Path(p["out"]).write_text(json.dumps(result, default=str))
    sys.stdout.flush()
    os._exit(0)  # no exit handlers: a backlog's forwarder would wait for its destination


# -------------------------------------------------------------------------------- orchestrator


class Runner:
    """Starts workers and CLI commands in fresh processes, with the snapshot of ``src/`` first on the path."""

    def __init__(self, args: argparse.Namespace, tmp: Path, src: Path | None) -> None:
        self.args = args
        self.tmp = tmp
        self.src = src
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTHONPATH"))}
        if src is not None:
            self.env["PYTHONPATH"] = str(src)
        self.env["PYTHONHASHSEED"] = "0"
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.key_file = tmp / "seal-hmac.key"
        self.key_file.write_text(SEAL_SECRET)
        self._count = 0

    def worker(
        self,
        role: str,
        params: dict[str, Any],
        on_line: Callable[[str], None] | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        self._count += 1
        out = self.tmp / f"{role}-{self._count}.json"
        work = self.tmp / f"work-{self._count}"
        work.mkdir()
        p = {"out": str(out), "tmp": str(work), "key_file": str(self.key_file), **params}
        cmd = [self.args.python, str(Path(__file__).resolve()), "--worker", role, "--params", json.dumps(p)]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if on_start is not None:
            on_start(proc.pid)
        stderr_lines: list[str] = []
        reader = threading.Thread(target=lambda: stderr_lines.extend(proc.stderr or []), daemon=True)
        reader.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            if on_line is not None:
                on_line(line)
        code = proc.wait()
        reader.join(5)
        result: dict[str, Any] = (
            json.loads(out.read_text()) if out.exists() else {"ok": False, "error": f"worker exited {code}"}
        )
        result["process_wall_s"] = round(time.perf_counter() - started, 1)
        if not result.get("ok"):
            result["stderr_tail"] = "".join(stderr_lines)[-3000:]
        elif self.src is not None and not str(result.get("otel_llm_audit_file", "")).startswith(str(self.src)):
            result.update(ok=False, error="the worker did not import the snapshot of src/")
        shutil.rmtree(work, ignore_errors=True)
        return result

    def cli(self, argv: Sequence[str], timeout: float = 600) -> dict[str, Any]:
        """Run ``otel-llm-audit ARGV`` in a fresh process: wall time, CPU, peak RSS, exit code, output."""
        cmd = [self.args.python, "-c", "import sys; from otel_llm_audit.cli import main; sys.exit(main())", *argv]
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            started = time.perf_counter()
            proc = subprocess.Popen(cmd, env={**self.env, "COLUMNS": "160"}, stdout=out, stderr=err, text=True)
            deadline = started + timeout
            status, usage = 0, None
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.002)
            wall = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        return {
            "argv": list(argv),
            "wall_s": round(wall, 3),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3) if usage else None,
            "max_rss_mb": round(usage.ru_maxrss / 1024, 1) if usage else None,
            "exit_code": proc.returncode,
            "stdout": stdout,
            "stderr_tail": stderr[-2000:],
        }


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def run_throughput(runner: Runner, args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    combos = [(w, c) for w in args.workloads for c in args.configs]
    for round_no in range(args.rounds):
        order = combos[round_no % len(combos) :] + combos[: round_no % len(combos)] if combos else []
        for workload, config in order:
            params = {
                "workload": workload,
                "config": config,
                "round": round_no,
                "seed": 100 + round_no,
                "cpu": args.cpu,
                "warmup": args.warmup,
                "spans": args.spans,
                "paced_spans": args.paced_spans,
                "paced_rate": args.paced_rate,
            }
            result = runner.worker("throughput", params)
            runs.append(result)
            if result.get("ok"):
                b = result["burst"]
                log(
                    f"throughput {workload:7s} {config:9s} round {round_no}: {b['spans_per_s']:8.1f} spans/s, "
                    f"app CPU {b['app_cpu_total_us_per_span']:.1f} us/span, problems: {result['problems'] or 'none'}"
                )
            else:
                log(f"throughput {workload} {config} round {round_no}: FAILED {result.get('error')}")
    return {"runs": runs, "summary": summarize_throughput(runs)}


def summarize_throughput(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    keys = sorted({(r["params"]["workload"], r["params"]["config"]) for r in runs if r.get("params")})
    for workload, config in keys:
        mine = [
            r for r in runs if r.get("ok") and (r["params"]["workload"], r["params"]["config"]) == (workload, config)
        ]
        failed = [r for r in runs if not r.get("ok") and r.get("params", {}).get("workload") == workload]
        if not mine:
            rows.append({"workload": workload, "config": config, "ok": False, "failed": len(failed)})
            continue
        burst = [r["burst"] for r in mine]
        paced = [r["paced"] for r in mine if r.get("paced")]
        threads: dict[str, list[float]] = {}
        for b in burst:
            for name, us in b["thread_cpu_us_per_span"].items():
                threads.setdefault(name, []).append(us)
        rows.append(
            {
                "workload": workload,
                "config": config,
                "ok": True,
                "rounds": len(mine),
                "spans_per_s": _median([b["spans_per_s"] for b in burst]),
                "spans_per_s_all": [b["spans_per_s"] for b in burst],
                "app_cpu_us_per_span": _median([b["app_cpu_total_us_per_span"] for b in burst]),
                "app_cpu_median_us": _median([b["app_cpu_us"]["median"] for b in burst]),
                "app_wall_median_us": _median([b["app_wall_us"]["median"] for b in burst]),
                "app_wall_p99_us": _median([b["app_wall_us"]["p99"] for b in burst]),
                "app_gc_us_per_span": _median([b["app_gc_us_per_span"] for b in burst]),
                "app_loop_share": _median([b["app_loop_s"] / b["end_to_end_s"] for b in burst]),
                "backlog_at_last_span": _median([b["backlog_at_last_span"] for b in burst]),
                "thread_cpu_us_per_span": {name: _median(v) for name, v in sorted(threads.items())},
                "app_thread_flush_cpu_us_per_span": _median([b["app_thread_flush_cpu_us_per_span"] for b in burst]),
                "paced_rate": paced[0]["rate_asked"] if paced else None,
                "paced_app_wall_median_us": _median([x["app_wall_us"]["median"] for x in paced]) if paced else None,
                "paced_app_wall_p99_us": _median([x["app_wall_us"]["p99"] for x in paced]) if paced else None,
                "paced_app_cpu_median_us": _median([x["app_cpu_us"]["median"] for x in paced]) if paced else None,
                "paced_app_cpu_p99_us": _median([x["app_cpu_us"]["p99"] for x in paced]) if paced else None,
                "paced_flush_after_last_s": _median([x["flush_after_last_span_s"] for x in paced]) if paced else None,
                "store_ops_on_app_thread": sum(
                    r["burst"]["store_ops_on_app_thread"] + (r["paced"] or {}).get("store_ops_on_app_thread", 0)
                    for r in mine
                ),
                "store_ops_total": sum(
                    sum(r["burst"]["store_ops_by_thread"].values())
                    + sum((r["paced"] or {}).get("store_ops_by_thread", {}).values())
                    for r in mine
                ),
                "store_bytes_per_span": _median(
                    [r["store_bytes_per_span"] for r in mine if "store_bytes_per_span" in r]
                )
                if any("store_bytes_per_span" in r for r in mine)
                else None,
                "leaked": sum(r.get("content", {}).get("seeded_values_leaked", 0) for r in mine),
                "seeded": sum(r.get("content", {}).get("seeded_values", 0) for r in mine),
                "seeded_searched": sum(r.get("content", {}).get("seeded_values_searched", 0) for r in mine),
                "redaction_status": dict(
                    sum((Counter(r.get("content", {}).get("redaction_status", {})) for r in mine), Counter())
                ),
                "problems": sorted({p for r in mine for p in r.get("problems", [])}),
                "failed": len(failed),
            }
        )
    return rows


def run_profile(runner: Runner, args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    out = {}
    for workload in args.workloads:
        params = {
            "workload": workload,
            "seed": 900,
            "cpu": args.cpu,
            "warmup": args.warmup,
            "spans": args.profile_spans,
        }
        result = runner.worker("profile", params)
        out[workload] = result
        if result.get("ok"):
            totals = {name: t["total_us_per_span"] for name, t in result["threads"].items()}
            log(f"profile {workload}: CPU us/span under cProfile by thread {totals}")
        else:
            log(f"profile {workload}: FAILED {result.get('error')}")
    return out


def ensure_store(runner: Runner, args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    paths = store_paths(args.store_spans, args.cache_dir)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    if not paths["key"].exists():
        paths["key"].write_text(SEAL_SECRET)
    if paths["store"].exists() and paths["meta"].exists() and not args.rebuild_store:
        meta = json.loads(paths["meta"].read_text())
        meta["cached"] = True
        log(f"store: {meta['spans']:,} spans cached at {paths['store']}")
        return {"ok": True, "paths": {k: str(v) for k, v in paths.items()}, "meta": meta}
    for old in args.cache_dir.glob(f"audit-{args.store_spans}-*"):  # an older generator's or encoding's store
        old.unlink()
    log(f"store: generating {args.store_spans:,} spans into {paths['store']} (cached for the next runs)")
    params = {
        "spans": args.store_spans,
        "store": str(paths["store"]),
        "seed": 4242,
        "templates": args.templates,
        "key_file": str(paths["key"]),
    }
    result = runner.worker("generate", params)
    if not result.get("ok"):
        log(f"store: FAILED {result.get('error')}\n{result.get('stderr_tail', '')}")
        return {"ok": False, "error": result.get("error")}
    meta = {k: v for k, v in result.items() if k not in ("params", "role", "pid", "ok", "affinity")}
    meta["cached"] = False
    paths["meta"].write_text(json.dumps(meta, indent=2))
    log(f"store: {meta['spans']:,} spans, {meta['bytes'] / 1e9:.2f} GB, generated in {meta['generate_s']} s")
    return {"ok": True, "paths": {k: str(v) for k, v in paths.items()}, "meta": meta}


def _cli_available(runner: Runner, command: str) -> bool:
    probe = runner.cli([command, "--help"], timeout=60)
    return probe["exit_code"] == 0


def wait_for_cli(runner: Runner, commands: Sequence[str], args: argparse.Namespace, log: Callable[[str], None]) -> bool:
    """The verify and find commands are written in parallel: wait (bounded) until they answer ``--help``."""
    deadline = time.monotonic() + args.wait_cli_s
    while True:
        missing = [c for c in commands if not _cli_available(runner, c)]
        if not missing:
            return True
        if time.monotonic() >= deadline:
            log(f"cli: {', '.join(missing)} not available (waited {args.wait_cli_s:.0f} s)")
            return False
        log(f"cli: waiting for {', '.join(missing)}")
        time.sleep(30)


def _timed(runner: Runner, argv: Sequence[str], rounds: int) -> dict[str, Any]:
    runs = [runner.cli(argv) for _ in range(rounds)]
    walls = [r["wall_s"] for r in runs]
    return {
        "argv": list(argv),
        "rounds": rounds,
        "wall_s": _median(walls),
        "wall_s_all": walls,
        "cpu_s": _median([r["cpu_s"] for r in runs if r["cpu_s"] is not None]),
        "max_rss_mb": max((r["max_rss_mb"] or 0) for r in runs),
        "exit_codes": sorted({r["exit_code"] for r in runs}),
        "stdout_head": runs[-1]["stdout"][:1500],
        "stdout_tail": runs[-1]["stdout"][-1500:],
        "stderr_tail": runs[-1]["stderr_tail"][-1500:],
    }


def run_verify(runner: Runner, args: argparse.Namespace, store: dict[str, Any], log: Callable[[str], None]) -> dict:
    if not store.get("ok") or not wait_for_cli(runner, ["verify"], args, log):
        return {"ok": False, "error": "no store or no verify command"}
    path, key = store["paths"]["store"], store["paths"]["key"]
    argv = ["verify", path, *args.verify_args.replace("{key}", key).split()]
    timed = _timed(runner, argv, args.verify_rounds)
    timed.update(_verify_summary(timed["stdout_head"]))
    timed["spans"] = store["meta"]["spans"]
    timed["records"] = store["meta"]["records"]
    timed["ok"] = timed["exit_codes"] == [0] and timed["records_checked"] == timed["records"] and timed["says_ok"]
    log(f"verify: {timed['wall_s']:.2f} s (runs {timed['wall_s_all']}), exit {timed['exit_codes']}")
    return timed


def _count_json(stdout: str) -> int | None:
    """How many spans matched, from ``find --json`` (its ``total``, else the length of its list)."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        return None
    if isinstance(doc, dict):
        for key in ("total", "count", "matched"):
            if isinstance(doc.get(key), int):
                return int(doc[key])
        doc = doc.get("spans")
    return len(doc) if isinstance(doc, list) else None


def _check_cost(stdout: str, expected: dict[str, dict[str, float]]) -> bool | None:
    """``cost --by team --json`` against the generator's own totals (calls and USD per team)."""
    try:
        groups = {g["team"]: g for g in json.loads(stdout)["groups"]}
    except (ValueError, KeyError, TypeError):
        return None
    if set(groups) != set(expected):
        return False
    return all(
        groups[t]["calls"] == e["calls"] and abs(groups[t]["cost_usd"] - e["cost_usd"]) <= 1e-6 * max(1, e["cost_usd"])
        for t, e in expected.items()
    )


def _verify_summary(stdout: str) -> dict[str, Any]:
    """The record count and verdict of ``verify``'s first line ("N records in S streams, ...: OK")."""
    import re

    found = re.search(r"([\d,]+) records", stdout)
    return {
        "records_checked": int(found.group(1).replace(",", "")) if found else None,
        "says_ok": bool(re.search(r":\s*OK\b", stdout)),
    }


def run_find(runner: Runner, args: argparse.Namespace, store: dict[str, Any], log: Callable[[str], None]) -> dict:
    if not store.get("ok") or not wait_for_cli(runner, ["find", "cost"], args, log):
        return {"ok": False, "error": "no store or no find/cost command"}
    meta = store["meta"]
    q = meta["query"]
    path = store["paths"]["store"]
    source = [*args.source_flag.split(), path]
    queries = {
        "find_user_day": ["find", "--user", q["user"], "--since", q["since"], "--until", q["until"], *source],
        "find_user_all": ["find", "--user", q["user"], *source],
        "find_team_day": ["find", "--team", q["team"], "--since", q["since"], "--until", q["until"], *source],
        "cost_by_team": ["cost", "--by", "team", *source],
        "startup": ["--help"],
    }
    expected = {
        "find_user_day": meta["expected"]["user_day"],
        "find_user_all": meta["expected"]["user_all"],
        "find_team_day": meta["expected"]["team_day"],
    }
    out: dict[str, Any] = {"ok": True, "queries": {}}
    for name, argv in queries.items():
        timed = _timed(runner, argv, args.find_rounds)
        if name in expected:
            check = runner.cli([*argv, "--json"])
            timed["json_count"] = _count_json(check["stdout"])
            timed["expected_count"] = expected[name]
            timed["count_ok"] = timed["json_count"] == expected[name] if timed["json_count"] is not None else None
        if name == "cost_by_team":
            check = runner.cli([*argv, "--json"])
            timed["json_stdout"] = check["stdout"][-3000:]
            timed["expected_by_team"] = meta["by_team"]
            timed["totals_ok"] = _check_cost(check["stdout"], meta["by_team"])
        timed["ok"] = timed["exit_codes"] == [0] or (name.startswith("find") and timed["exit_codes"] == [1])
        out["queries"][name] = timed
        out["ok"] = out["ok"] and timed["ok"]
        log(
            f"{name}: {timed['wall_s']:.3f} s (runs {timed['wall_s_all']}), exit {timed['exit_codes']}, "
            f"count {timed.get('json_count')} / expected {timed.get('expected_count')}"
        )
    return out


def run_backlog(runner: Runner, args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    samples: list[tuple[float, int]] = []
    events: list[dict[str, Any]] = []
    stop = threading.Event()
    pid_box: dict[str, int] = {}

    def on_line(line: str) -> None:
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            events.append(event)
            if event.get("event") == "progress":
                log(
                    f"backlog: {event['produced']:,} spans, RSS {event['rss_kb'] / 1024:.0f} MB, "
                    f"queue {event['backlog']}, {event['elapsed_s']} s"
                )

    def sampler() -> None:
        while not stop.wait(args.rss_interval):
            pid = pid_box.get("pid")
            if pid is None:
                continue
            with contextlib.suppress(OSError, ValueError):
                samples.append((time.time(), _rss_kb(pid)))

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    params = {
        "workload": args.backlog_workload,
        "seed": 77,
        "spans": args.backlog_spans,
        "rate": args.backlog_rate,
        "warmup": args.warmup,
        "high_water": 2000,
        "store_high_water": 0 if args.backlog_no_store_throttle else 4000,
        "progress_every": max(args.backlog_spans // 20, 1),
        "size_probe": args.size_probe,
        "store_max_mb": args.backlog_store_mb,
    }
    try:
        result = runner.worker("backlog", params, on_line=on_line, on_start=lambda pid: pid_box.update(pid=pid))
    finally:
        stop.set()
        thread.join(5)
    if not result.get("ok"):
        log(f"backlog: FAILED {result.get('error')}\n{result.get('stderr_tail', '')}")
        return result
    baseline = next(e for e in events if e.get("event") == "baseline")
    stored = next((e for e in events if e.get("event") == "stored"), None)
    end_t = stored["t"] if stored else samples[-1][0]
    window = [rss for t, rss in samples if baseline["t"] <= t <= end_t]
    peak = max([*window, baseline["rss_kb"]])
    result["rss_samples"] = [[round(t - baseline["t"], 1), rss] for t, rss in samples if t >= baseline["t"] - 5]
    result["rss_samples_in_window"] = len(window)
    result["peak_rss_kb"] = peak
    result["peak_growth_mb"] = round((peak - baseline["rss_kb"]) / 1024, 1)
    spans = result["stored"]
    result["store_bytes_per_span"] = round((result["store_file_bytes"] + result["store_wal_bytes"]) / max(spans, 1))
    q = result["queue_sizes"]
    per = result["bytes_per_queued_span"]
    result["queue_bound_mb"] = round(
        (
            q["completion_queue_spans"] * per["completion_queue"]
            + (q["store_batch_queue_spans"] + q["forwarder_batch_spans"]) * per["store_batch_queue"]
        )
        / 2**20,
        1,
    )
    log(
        f"backlog: {spans:,} spans stored, peak RSS growth {result['peak_growth_mb']} MB over "
        f"{baseline['rss_kb'] / 1024:.0f} MB, store {result['store_bytes_per_span'] * spans / 1e6:.0f} MB"
    )
    return result


# ---------------------------------------------------------------------------------- reporting


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git() -> dict[str, Any]:
    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {"commit": git("rev-parse", "HEAD"), "dirty_src": bool(git("status", "--porcelain", "--", "src"))}


def _versions(python: str) -> dict[str, str]:
    code = (
        "import json, platform\nfrom importlib.metadata import version\nout = {'python': platform.python_version()}\n"
        "for d in ('opentelemetry-sdk', 'presidio-analyzer', 'phonenumbers', 'otel-llm-audit'):\n"
        "    try: out[d] = version(d)\n    except Exception: out[d] = '?'\nimport sqlite3\n"
        "out['sqlite'] = sqlite3.sqlite_version\nprint(json.dumps(out))"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    with contextlib.suppress(ValueError):
        return dict(json.loads(done.stdout))
    return {}


def snapshot_src(tmp: Path) -> tuple[Path, str]:
    """Copy ``src/`` once, so every process of the run measures the same code while others edit it."""
    dest = tmp / "src"
    shutil.copytree(REPO / "src", dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    digest = hashlib.sha256()
    for path in sorted(dest.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(dest)).encode())
            digest.update(path.read_bytes())
    return dest, digest.hexdigest()[:16]


def _fmt(value: Any, spec: str = ",.0f") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return format(value, spec)


def _goal(ok: bool | None) -> str:
    return "met" if ok else "not met" if ok is False else "not measured"


def render(r: dict[str, Any]) -> str:
    meta = r["meta"]
    m = meta["machine"]
    v = meta["versions"]
    lines = [
        "# Audit store: speed and scale",
        "",
        f"Reproduce: `{meta['command']}` (from the repository root). {meta['when_utc']}.",
        "",
        f"Machine: {m['cpu_model']}, {m['nproc']} CPUs (nproc), {m['mem_gb']} GB RAM, Linux {m['kernel']}; Python "
        f"{v.get('python')}, SQLite {v.get('sqlite')}, opentelemetry-sdk {v.get('opentelemetry-sdk')}, "
        f"presidio-analyzer {v.get('presidio-analyzer')}, phonenumbers {v.get('phonenumbers')}, otel-llm-audit "
        f"{v.get('otel-llm-audit')}. Load average {meta['load_start']} at the start, {meta['load_end']} at the end. "
        f"src snapshot {meta['src_digest']} (git {meta['git']['commit'][:12]}, src dirty: {meta['git']['dirty_src']}).",
        "",
    ]
    lines += _render_goals(r)
    if "throughput" in r:
        lines += _render_throughput(r)
    if "profile" in r:
        lines += _render_profile(r["profile"])
    if "store" in r:
        lines += _render_store(r)
    if "backlog" in r:
        lines += _render_backlog(r["backlog"])
    return "\n".join(lines).rstrip() + "\n"


def _throughput_row(r: dict[str, Any], workload: str, config: str) -> dict[str, Any] | None:
    for row in r.get("throughput", {}).get("summary", []):
        if row["workload"] == workload and row["config"] == config and row.get("ok"):
            return row
    return None


def goals(r: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    out: list[tuple[str, bool | None, str]] = []
    if "throughput" in r:
        for workload in r["meta"]["args"]["workloads"]:
            row = _throughput_row(r, workload, "store")
            if row is None:
                out.append((f">= 2,000 LLM spans/s with masked content ({workload})", None, "failed"))
                continue
            out.append(
                (
                    f">= {GOAL_SPANS_PER_S:,.0f} LLM spans/s with masked content, one core ({workload} workload)",
                    row["spans_per_s"] >= GOAL_SPANS_PER_S,
                    f"{row['spans_per_s']:,.0f} spans/s",
                )
            )
        rows = [row for row in r["throughput"]["summary"] if row.get("ok") and row["config"].startswith("store")]
        on_app = sum(row["store_ops_on_app_thread"] for row in rows)
        total = sum(row["store_ops_total"] for row in rows)
        out.append(
            (
                "the application thread never waits on disk",
                on_app == 0 and total > 0,
                f"{on_app} of {total:,} store operations on the application's thread",
            )
        )
    verify = r.get("verify")
    if verify is not None:
        ok = verify.get("ok")
        spans = r.get("store", {}).get("meta", {}).get("spans", 0)
        out.append(
            (
                f"verify a store of {spans:,} spans in < {GOAL_VERIFY_S:.0f} s",
                (verify["wall_s"] < GOAL_VERIFY_S) if ok else None,
                f"{verify['wall_s']:.1f} s" if ok else verify.get("error", "failed"),
            )
        )
    find = r.get("find")
    if find is not None and "queries" in find:
        q = find["queries"]["find_user_day"]
        spans = r.get("store", {}).get("meta", {}).get("spans", 0)
        out.append(
            (
                f"find by user and time range on {spans:,} spans in < {GOAL_FIND_S:.0f} s",
                q["wall_s"] < GOAL_FIND_S if q["ok"] else None,
                f"{q['wall_s']:.2f} s",
            )
        )
    elif find is not None:
        out.append((f"find by user and time range in < {GOAL_FIND_S:.0f} s", None, find.get("error", "failed")))
    backlog = r.get("backlog")
    if backlog is not None and backlog.get("ok"):
        out.append(
            (
                f"memory bounded under a backlog of {backlog['produced']:,} spans",
                backlog["peak_growth_mb"] <= backlog["queue_bound_mb"] + 64 and backlog["spans_missing"] == 0,
                f"peak RSS growth {backlog['peak_growth_mb']:.0f} MB; bound {backlog['queue_bound_mb']:.0f} MB "
                "(queues) + 64 MB (allocator, SQLite caches)"
                + (f"; {backlog['spans_missing']:,} spans LOST" if backlog["spans_missing"] else "; nothing lost"),
            )
        )
    return out


def _render_goals(r: dict[str, Any]) -> list[str]:
    lines = ["## Goals", "", "| goal | result | measured |", "|---|---|---|"]
    for text, ok, measured in goals(r):
        lines.append(f"| {text} | {_goal(ok)} | {measured} |")
    return [*lines, ""]


def _render_throughput(r: dict[str, Any]) -> list[str]:
    t = r["throughput"]
    a = r["meta"]["args"]
    lines = [
        "## Throughput through completion, masking, sealing and the store (one core)",
        "",
        f"Each process pinned to CPU {a['cpu']}; {a['warmup']} warm-up spans, then a burst of {a['spans']:,} spans "
        f"made back to back; end to end = first span until `pipeline.force_flush()` returns with every span stored "
        f"(or exported). Median over {a['rounds']} rounds, one fresh process per workload, configuration and round. "
        "Spans: the package's OpenAI adapter and emitter on the application's thread (the instrumented "
        "`chat.completions.create` without its HTTP round trip); completion, masking, sealing (HMAC-SHA256) and "
        "SQLite on the pipeline's threads. `contact`: every prompt carries an email address and a phone number; "
        "`prose`: personal data in ~10 % of prompts. ~1.2-1.6 KB of message text per span "
        f"(system prompt, prompt of 40-400 characters, answer of 200-1,500); "
        f"store file ~{_fmt(_body_size(r))} bytes per span (at this size, mostly fixed overhead; see the backlog "
        "part for a large store).",
        "",
        "| workload | configuration | end to end, spans/s (rounds) | app thread CPU us/span | app wall us/span "
        "(median / p99) | app GC us/span | queue at last span | pipeline CPU us/span by thread "
        "| seeded values leaked |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for row in t["summary"]:
        if not row.get("ok"):
            lines.append(f"| {row['workload']} | {CONFIG_LABELS[row['config']]} | FAILED | | | | | | |")
            continue
        threads = ", ".join(
            f"{_short(name)} {us:,.0f}"
            for name, us in row["thread_cpu_us_per_span"].items()
            if name != "MainThread" and us >= 0.5
        )
        if row.get("app_thread_flush_cpu_us_per_span", 0) >= 0.5:
            threads += f", flush on the app thread {row['app_thread_flush_cpu_us_per_span']:,.0f}"
        rounds = ", ".join(f"{x:,.0f}" for x in row["spans_per_s_all"])
        leaked = f"{row['leaked']} / {row['seeded']}" if row["seeded"] else "-"
        lines.append(
            f"| {row['workload']} | {CONFIG_LABELS[row['config']]} | {row['spans_per_s']:,.0f} ({rounds}) | "
            f"{row['app_cpu_us_per_span']:.1f} | {row['app_wall_median_us']:.1f} / {row['app_wall_p99_us']:,.0f} | "
            f"{row['app_gc_us_per_span']:.1f} | {row['backlog_at_last_span']:,.0f} | {threads} | {leaked} |"
        )
    lines += [
        "",
        "App thread: start and end of each call on the application's thread (`OpenAIAdapter.start` + `call.end()`), "
        "its CPU time (`thread_time_ns`) and wall time; on one saturated core the wall time includes waiting for the "
        "GIL while the pipeline's threads run (p99), which is the scheduler, not disk: no store operation ran on the "
        "application's thread (counted on every SQLite connection request). Pipeline CPU: per-thread CPU "
        "(`pthread_getcpuclockid`) over the block: `completion` (resolve, attributes, cost, span build), `masking` "
        "(presidio pattern recognizers), `batch` (the SDK batch thread: sealing + SQLite for the store, or the "
        "in-memory exporter), `checkpoint` (timer); *flush on the app thread*: the application thread's CPU "
        "outside its calls, mostly `force_flush()`, which runs the export of whatever is still queued on the "
        "calling thread (the SDK's `BatchSpanProcessor.force_flush` does; a flush is the one place the application "
        "waits for the store, by asking to).",
        "",
    ]
    paced = [row for row in t["summary"] if row.get("ok") and row.get("paced_rate")]
    if paced:
        lines += [
            f"Paced block: {a['paced_spans']:,} spans at {a['paced_rate']:,.0f} spans/s (under every configuration's "
            "capacity), so the pipeline keeps up: the application's cost per span in the steady state.",
            "",
            "| workload | configuration | app wall us/span median / p99 | app CPU us/span median / p99 | "
            "flush after last span, s |",
            "|---|---|---:|---:|---:|",
        ]
        for row in paced:
            lines.append(
                f"| {row['workload']} | {CONFIG_LABELS[row['config']]} | {row['paced_app_wall_median_us']:.1f} / "
                f"{row['paced_app_wall_p99_us']:,.1f} | {row['paced_app_cpu_median_us']:.1f} / "
                f"{row['paced_app_cpu_p99_us']:.1f} | {row['paced_flush_after_last_s']:.3f} |"
            )
        lines.append("")
    problems = [(row["workload"], row["config"], row["problems"]) for row in t["summary"] if row.get("problems")]
    checks = [
        "- Checks: every span stored (or exported) exactly once (records = spans made, distinct span ids = spans "
        "made), each store verifies clean (`processing.verification.verify` with the key), no span lost its "
        "content to a full queue, every span with content; masking status of the stored spans: "
        + "; ".join(
            f"{row['workload']}/{row['config']} {row['redaction_status']}"
            for row in t["summary"]
            if row.get("ok") and row["redaction_status"]
        )
        + ".",
    ]
    for workload, config, found in problems:
        checks.append(f"- PROBLEM {workload}/{config}: {'; '.join(found)}")
    return [*lines, *checks, ""]


def _body_size(r: dict[str, Any]) -> float | None:
    sizes = [
        row["store_bytes_per_span"]
        for row in r.get("throughput", {}).get("summary", [])
        if row.get("ok") and row.get("store_bytes_per_span")
    ]
    return _median(sizes) if sizes else None


def _short(thread: str) -> str:
    return {
        "otel-llm-audit-completion": "completion",
        "otel-llm-audit-masking": "masking",
        "OtelBatchSpanRecordProcessor": "batch",
        "otel-llm-audit-checkpoint": "checkpoint",
    }.get(thread, thread)


def _render_profile(profile: dict[str, Any]) -> list[str]:
    lines = [
        "## Where the time goes (`store` configuration)",
        "",
        "One process per workload, pinned like the throughput runs, one `cProfile.Profile(time.thread_time_ns)` per "
        "pipeline thread (CPU time: waiting for the GIL or for another thread is not counted). The profiler's own "
        "cost per Python call inflates code made of many small calls (canonical encoding, phonenumbers) more than "
        "code in C (hashing, SQLite): read the shares within a thread, and the direct timings below for the store.",
        "",
        "| workload | thread | step (cumulative) | us/span under cProfile | share of the thread |",
        "|---|---|---|---:|---:|",
    ]
    for workload, result in profile.items():
        if not result.get("ok"):
            lines.append(f"| {workload} | FAILED | {result.get('error')} | | |")
            continue
        for thread, data in result["threads"].items():
            total = data["total_us_per_span"] or 1
            lines.append(f"| {workload} | {thread} | **all** | **{total:,.0f}** | 100 % |")
            for group in data["groups"]:
                label = group["label"].replace("  ", "&nbsp;&nbsp;")
                lines.append(
                    f"| {workload} | {thread} | {label} | {group['us_per_span']:,.0f} | "
                    f"{100 * group['us_per_span'] / total:.0f} % |"
                )
    lines.append("")
    for workload, result in profile.items():
        if not result.get("ok"):
            continue
        masking = result["threads"]["masking"]["top_self"][:6]
        lines.append(
            f"- {workload}, masking thread, most self time: "
            + "; ".join(f"`{t['function']}` {t['self_us_per_span']:,.0f} us" for t in masking)
            + "."
        )
    lines.append("")
    steps = {w: r.get("store_steps_us", {}) for w, r in profile.items() if r.get("ok")}
    if any(steps.values()):
        workloads = [w for w in steps if steps[w]]
        lines += [
            "The store thread's steps timed directly on the same masked spans (no profiler; best of 3; "
            "microseconds per span):",
            "",
            "| step | " + " | ".join(workloads) + " |",
            "|---|" + "---:|" * len(workloads),
        ]
        for label in steps[workloads[0]]:
            cells = " | ".join(f"{steps[w].get(label, float('nan')):,.1f}" for w in workloads)
            lines.append(f"| {label.replace('  ', '&nbsp;&nbsp;')} | {cells} |")
        lines.append("")
    for workload, result in profile.items():
        detect = result.get("detect_us") if result.get("ok") else None
        if not detect:
            continue
        lines += [
            f"Detection per text (`Masker.detect`, uncached, on the application's texts of the `{workload}` workload; "
            "microseconds):",
            "",
            "| text | texts | characters | median | p90 | max |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for label, d in detect.items():
            lines.append(
                f"| {label} | {d['texts']:,} | {d['chars']:,} | {d['median']:,.0f} | {d['p90']:,.0f} | "
                f"{d['max']:,.0f} |"
            )
        lines.append("")
    return lines


def _render_store(r: dict[str, Any]) -> list[str]:
    store = r["store"]
    if not store.get("ok"):
        return ["## verify and find on a large store", "", f"Store generation FAILED: {store.get('error')}", ""]
    meta = store["meta"]
    q = meta["query"]
    lines = [
        f"## verify and find on {meta['spans']:,} spans",
        "",
        f"Store: {meta['spans']:,} LLM spans + {meta['checkpoints']:,} checkpoints in {meta['streams']} streams (10 "
        f"process runs), {meta['bytes'] / 1e9:.2f} GB on disk, {meta['users']:,} users over {meta['days']} days from "
        f"{meta['from'][:10]}; built from {meta['templates']} masked spans made by the real pipeline (new ids, times "
        f"and identities), sealed with HMAC-SHA256 and a checkpoint every 10,000 records by `StoreWriter`"
        f" ({'cached' if meta.get('cached') else 'generated in this run'}; generation takes ~{meta['generate_s']:.0f} s"
        f"). Each command in a fresh process, the store in the page cache; median of the rounds.",
        "",
        "| command | wall s (rounds) | CPU s | peak RSS MB | exit | result check |",
        "|---|---:|---:|---:|---:|---|",
    ]
    verify = r.get("verify")
    if verify and "argv" in verify:
        verdict = "OK" if verify.get("says_ok") else "NOT OK"
        lines.append(_cli_row(verify, f"{verify.get('records_checked')} records checked, {verdict}"))
    elif verify:
        lines.append(f"| `otel-llm-audit verify` | not measured: {verify.get('error')} | | | | |")
    find = r.get("find")
    if find and "queries" in find:
        for name, timed in find["queries"].items():
            if "expected_count" in timed:
                check = f"{timed.get('json_count')} spans (expected {timed['expected_count']})"
            elif name == "cost_by_team":
                verdict = {True: "equal", False: "DIFFERENT", None: "unreadable"}[timed.get("totals_ok")]
                check = f"calls and USD per team vs the generator's own sums: {verdict}"
            else:
                check = "interpreter start-up and imports (reference)"
            lines.append(_cli_row(timed, check))
    elif find:
        lines.append(f"| `otel-llm-audit find` | not measured: {find.get('error')} | | | | |")
    lines += [
        "",
        f"Query: user `{q['user']}`, team `{q['team']}`, one day `{q['since']}` .. `{q['until']}`.",
        "",
    ]
    return lines


def _cli_row(timed: dict[str, Any], check: str) -> str:
    command = "otel-llm-audit " + " ".join(_shorten_path(a) for a in timed["argv"])
    runs = ", ".join(f"{w:.2f}" for w in timed["wall_s_all"])
    return (
        f"| `{command}` | {timed['wall_s']:.2f} ({runs}) | {timed['cpu_s']:.2f} | {timed['max_rss_mb']:.0f} | "
        f"{', '.join(map(str, timed['exit_codes']))} | {check} |"
    )


def _shorten_path(arg: str) -> str:
    return "STORE" if arg.endswith(".db") else "KEY" if arg.endswith(".key") else arg


def _render_backlog(b: dict[str, Any]) -> list[str]:
    if not b.get("ok"):
        return ["## Memory under a backlog", "", f"FAILED: {b.get('error')}", ""]
    q = b["queue_sizes"]
    per = b["bytes_per_queued_span"]
    pace = (
        f"at {b['rate_asked']:,.0f} spans/s"
        if b["rate_asked"]
        else f"as fast as the pipeline took them ({b['produced_per_s']:,.0f} spans/s; the producer waited whenever "
        "2,000 spans were queued for completion and masking"
        + (
            f" or {b['store_high_water']:,} in the store's batch queue)"
            if b.get("store_high_water")
            else "; not for the store's batch queue)"
        )
    )
    lines = [
        "## Memory under a backlog (receiver down)",
        "",
        f"`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT={b['endpoint']}` (nothing listens: every attempt is refused) and "
        f"{b['produced']:,} spans (ten minutes at 500 spans/s, time compressed: produced {pace}, "
        f"{b['produce_s']:,.0f} s) into the store, masked `prose` content; one process, not pinned. The parent read "
        f"the child's RSS (`/proc/PID/status` VmRSS) every second ({b['rss_samples_in_window']} samples).",
        "",
        "| spans made | elapsed s | RSS MB | growth over baseline MB | completion queue | store batch queue | "
        "in the store | dropped by the batch queue | Python objects |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = b["baseline_rss_kb"]
    lines.append(f"| 0 | 0 | {base / 1024:,.0f} | 0 | | | | | {b.get('baseline_gc_objects', 0):,} |")
    for point in b["points"]:
        lines.append(
            f"| {point['produced']:,} | {point['elapsed_s']:,.0f} | {point['rss_kb'] / 1024:,.0f} | "
            f"{(point['rss_kb'] - base) / 1024:+,.1f} | {point['backlog']:,} | {point.get('store_queue', 0):,} | "
            f"{point.get('stored', 0):,} | {point.get('sdk_dropped', 0):,} | {point.get('gc_objects', 0):,} |"
        )
    stored_mb = (b["store_file_bytes"] + b["store_wal_bytes"]) / 1e6
    fits = 2**30 / b["store_bytes_per_span"]
    lines += [
        "",
        f"- Peak RSS growth over the baseline (after start-up and {b['warmup']} warm-up spans): "
        f"**{b['peak_growth_mb']:.1f} MB** (peak {b['peak_rss_kb'] / 1024:,.0f} MB).",
        f"- In the store: {b['stored']:,} spans, {b['pending_delivery']:,} records waiting for the destination "
        f"({b['forwarder_failed_attempts']} refused delivery attempts, {b['forwarder_sent']} sent); "
        + (
            "nothing lost"
            if not b["spans_missing"]
            else f"**{b['spans_missing']:,} spans LOST** ({b['sdk_dropped_spans']:,} dropped whole by the SDK batch "
            "queue in front of the store's writer, which only logs it)"
        )
        + f" (writer lost {b['store_lost']}, content dropped {b['dropped_content']}, pruned undelivered "
        f"{b['pruned_undelivered']}).",
        f"- On disk: **{stored_mb:,.0f} MB** for {b['stored']:,} spans ({b['store_bytes_per_span']:,} bytes per span: "
        f"database {b['store_file_bytes'] / 1e6:,.0f} MB + write-ahead log {b['store_wal_bytes'] / 1e6:,.0f} MB; "
        "the body, the query columns and their indexes, and the outbox row). The run set `store_max_mb="
        f"{b['store_max_mb']:,}`: the default limit, 1,024 MiB, holds ~{fits:,.0f} spans of this size"
        + (
            ", fewer than this backlog: with the default the oldest undelivered spans would be pruned (lost, "
            "logged and counted) before the receiver came back."
            if fits < b["stored"]
            else "."
        ),
        f"- The bound: the backlog is on disk; memory holds at most the bounded queues: the completion queue "
        f"({q['completion_queue_spans']:,} spans, ~{per['completion_queue']:,} bytes each as queued, with the "
        f"request and response objects the record keeps), the store's batch queue "
        f"({q['store_batch_queue_spans']:,} masked spans, ~{per['store_batch_queue']:,} bytes each) and one forwarder "
        f"batch ({q['forwarder_batch_spans']} spans): **{b['queue_bound_mb']:,.0f} MB** with every queue full (bytes "
        "per queued span measured with tracemalloc on this workload; longer content scales it), plus SQLite's page "
        "cache (2 MB per connection by default, one connection per thread that touches the store).",
        "",
    ]
    return lines


# ------------------------------------------------------------------------------------ driver


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="a ~1 min smoke run (numbers mean little; writes nothing)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--spans", type=int, default=4000, help="spans per burst block (<= the 8,192 queue)")
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--paced-spans", type=int, default=600)
    parser.add_argument("--paced-rate", type=float, default=200.0)
    parser.add_argument("--profile-spans", type=int, default=1500)
    parser.add_argument("--cpu", type=int, default=(os.cpu_count() or 1) - 1, help="the core throughput runs use")
    parser.add_argument("--store-spans", type=int, default=1_000_000)
    parser.add_argument("--templates", type=int, default=150, help="template spans per workload for the store")
    parser.add_argument("--rebuild-store", action="store_true")
    parser.add_argument("--cache-dir", type=Path, default=CACHE)
    parser.add_argument("--verify-rounds", type=int, default=3)
    parser.add_argument("--find-rounds", type=int, default=5)
    parser.add_argument("--verify-args", default="--key {key}", help="extra verify arguments ({key}: the HMAC key)")
    parser.add_argument("--source-flag", default="--source", help="how find and cost are given the store")
    parser.add_argument("--wait-cli-s", type=float, default=0.0, help="wait this long for verify/find to exist")
    parser.add_argument("--backlog-spans", type=int, default=300_000)
    parser.add_argument("--backlog-rate", type=float, default=0.0, help="spans/s; 0 = as fast as the pipeline takes")
    parser.add_argument("--backlog-workload", default="prose", choices=WORKLOADS)
    parser.add_argument(
        "--backlog-no-store-throttle",
        action="store_true",
        help="the producer waits on the completion queue only (shows the store's batch queue dropping spans)",
    )
    parser.add_argument(
        "--backlog-store-mb",
        type=int,
        default=4096,
        help="the store's size limit for the backlog (the default 1024 MiB holds ~215,000 of these spans)",
    )
    parser.add_argument("--size-probe", type=int, default=2000, help="spans queued to measure bytes per queued span")
    parser.add_argument("--rss-interval", type=float, default=1.0)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--out-dir", type=Path, default=None)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--live-src", action="store_true")
    parser.add_argument("--render", type=Path, help="re-render the markdown of a saved JSON result")
    args = parser.parse_args(argv)
    if args.quick:
        quick = {
            "rounds": 1,
            "spans": 300,
            "warmup": 100,
            "paced_spans": 100,
            "profile_spans": 200,
            "store_spans": 20_000,
            "templates": 20,
            "verify_rounds": 1,
            "find_rounds": 1,
            "backlog_spans": 3000,
            "size_probe": 200,
        }
        explicit = {a.split("=")[0].lstrip("-").replace("-", "_") for a in (argv or sys.argv[1:]) if a.startswith("--")}
        for key, value in quick.items():
            if key not in explicit:
                setattr(args, key, value)
        if "workloads" not in explicit:
            args.workloads = "contact"
    args.parts = [p for p in args.parts.split(",") if p]
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.configs = [c for c in args.configs.split(",") if c]
    unknown = set(args.parts) - set(PARTS) | set(args.workloads) - set(WORKLOADS) | set(args.configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown part, workload or configuration: {', '.join(sorted(unknown))}")
    return args


def drive(args: argparse.Namespace, argv: Sequence[str]) -> int:
    started = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)

    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-audit-store-") as tmp_name:
        tmp = Path(tmp_name)
        src, digest = (None, "live tree") if args.live_src else snapshot_src(tmp)
        runner = Runner(args, tmp, src)
        if "throughput" in args.parts:
            result["throughput"] = run_throughput(runner, args, log)
        if "profile" in args.parts:
            result["profile"] = run_profile(runner, args, log)
        if "verify" in args.parts or "find" in args.parts:
            result["store"] = ensure_store(runner, args, log)
        if "verify" in args.parts:
            result["verify"] = run_verify(runner, args, result["store"], log)
        if "find" in args.parts:
            result["find"] = run_find(runner, args, result["store"], log)
        if "backlog" in args.parts:
            result["backlog"] = run_backlog(runner, args, log)
    command = "python benchmarks/audit_store.py" + ("" if not argv else " " + " ".join(argv))
    result["meta"] = {
        "command": command,
        "when_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpu_model": _cpu_model(),
            "nproc": os.cpu_count(),
            "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "kernel": platform.release(),
        },
        "versions": _versions(args.python),
        "load_start": load_start,
        "load_end": [round(x, 2) for x in os.getloadavg()],
        "src_digest": digest,
        "git": _git(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("params",)},
        "duration_s": round(time.perf_counter() - started, 1),
    }
    text = render(result)
    print(text)
    out_dir = args.out_dir if args.out_dir is not None else (None if args.quick or args.no_write else RESULTS)
    if out_dir is not None and not args.no_write:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "audit_store.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
        (out_dir / "audit_store.md").write_text(text)
        log(f"wrote {out_dir / 'audit_store.json'} and {out_dir / 'audit_store.md'}")
    failed = [text for text, ok, _ in goals(result) if ok is None]
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker, args.params)
    if args.render:
        saved = json.loads(args.render.read_text())
        text = render(saved)
        args.render.with_suffix(".md").write_text(text)
        print(text)
        return 0
    return drive(args, argv)


if __name__ == "__main__":
    raise SystemExit(main())
