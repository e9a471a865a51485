"""Where the caller's time goes in the ``llm_audit`` configuration of ``openai_overhead.py``.

    /work/bench-venvs/llm_audit/bin/python benchmarks/profile_caller.py [--scenario chat_text]

Runs in one process, with the same pipeline as the benchmark's ``llm_audit`` worker, and reports:

1. **A/B in one process**: instrumentation switched off and on (``uninstrument()`` /
   ``instrument()``) in alternating blocks around the same client; the median difference is
   the caller-thread overhead without cross-process noise. Then the same with the completion
   worker held back during the timed block (its queue is parked and replayed afterwards), which
   separates the caller's own work from the interference of the completion thread competing
   for the GIL. And a reference floor: a bare SDK span (no attributes) started and ended
   around the same call by a wrapt wrapper, with an ordinary BatchSpanProcessor.
2. **Breakdown**: every function on the caller's path wrapped in a timer (inclusive time per
   LLM call, nested rows indented); the timer's own cost (~0.2 us per wrapped call) is
   measured and shown.
3. Optionally ``--cprofile``: cProfile of the caller's thread only, top functions by own time.

Nothing in ``src/`` is changed: the timers are installed by monkeypatching in this process.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _mock
import _worker


def _block(call: Callable[[], int], n: int) -> list[int]:
    perf = time.perf_counter_ns
    out = [0] * n
    for i in range(n):
        t0 = perf()
        call()
        out[i] = perf() - t0
    return out


def _thread_cpu_block(call: Callable[[], int], n: int) -> list[int]:
    tt = time.thread_time_ns
    out = [0] * n
    for i in range(n):
        t0 = tt()
        call()
        out[i] = tt() - t0
    return out


def ab(
    make: Callable[[], Callable[[], int]],
    on: Callable[[], None],
    off: Callable[[], None],
    blocks: int,
    per_block: int,
    before_on_block: Callable[[], None] = lambda: None,
    after_on_block: Callable[[], None] = lambda: None,
) -> dict[str, float]:
    """Median per-call wall and caller-CPU time, instrumentation off vs on, alternating blocks.

    openai's resources bind ``client.post`` when they are built, so a fresh client is made after
    every switch (outside the timing) and warmed up.
    """
    res: dict[str, list[float]] = {"off_wall": [], "on_wall": [], "off_cpu": [], "on_cpu": []}
    for i in range(blocks * 2):
        enabled = i % 2 == 1
        (on if enabled else off)()
        call = make()
        for _ in range(20):
            call()
        gc.collect()
        if enabled:
            before_on_block()
        # interleave wall-time and CPU-time calls so both see the same conditions
        wall = _block(call, per_block // 2)
        cpu = _thread_cpu_block(call, per_block // 2)
        if enabled:
            after_on_block()
        key = "on" if enabled else "off"
        res[f"{key}_wall"].append(statistics.median(wall) / 1e3)
        res[f"{key}_cpu"].append(statistics.median(cpu) / 1e3)
    out = {k: statistics.median(v) for k, v in res.items()}
    out["overhead_wall_us"] = statistics.median([b - a for a, b in zip(res["off_wall"], res["on_wall"], strict=True)])
    out["overhead_cpu_us"] = statistics.median([b - a for a, b in zip(res["off_cpu"], res["on_cpu"], strict=True)])
    return out


# ---------------------------------------------------------------------------------------------
# Timers


class Timers:
    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.order: list[str] = []
        self.depth: dict[str, int] = {}
        self._stack = 0
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, attr: str, label: str | None = None) -> None:
        """Replace ``owner.attr`` by a timer around it (methods stay methods); skip what is gone."""
        is_class = isinstance(owner, type)
        if (is_class and attr not in owner.__dict__) or not hasattr(owner, attr):
            print(f"(no {getattr(owner, '__name__', owner)}.{attr} in this version: not timed)")
            return
        original = owner.__dict__[attr] if is_class else getattr(owner, attr)
        label = label or f"{getattr(owner, '__name__', type(owner).__name__)}.{attr}"
        self.order.append(label)
        self.totals[label] = 0
        self.counts[label] = 0
        perf = time.perf_counter_ns
        timers = self

        def run(fn: Any, args: Any, kwargs: Any) -> Any:
            if label not in timers.depth:
                timers.depth[label] = timers._stack
            timers._stack += 1
            t0 = perf()
            try:
                return fn(*args, **kwargs)
            finally:
                timers.totals[label] += perf() - t0
                timers.counts[label] += 1
                timers._stack -= 1

        replacement: Any
        if is_class and isinstance(original, staticmethod):
            fn = original.__func__
            replacement = staticmethod(lambda *a, **k: run(fn, a, k))
        elif is_class and hasattr(original, "__get__"):
            # bind exactly as attribute access would (plain functions, wrapt wrappers)

            def method(self_: Any, *a: Any, **k: Any) -> Any:
                return run(original.__get__(self_, type(self_)), a, k)

            replacement = method
        else:

            def plain(*a: Any, **k: Any) -> Any:
                return run(original, a, k)

            replacement = plain
        setattr(owner, attr, replacement)
        self._undo.append(lambda: setattr(owner, attr, original))

    def reset(self) -> None:
        for k in self.totals:
            self.totals[k] = 0
            self.counts[k] = 0

    def undo(self) -> None:
        for u in reversed(self._undo):
            u()
        self._undo.clear()


def install_timers(setup: Any) -> Timers:
    import openai._base_client as base_client
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.sdk import trace as sdk_trace
    from opentelemetry.sdk.trace import export as sdk_export

    from otel_llm_audit.emitter import handoff, spans
    from otel_llm_audit.instrumentation import stainless
    from otel_llm_audit.instrumentation.openai import _capture, _wrappers
    from otel_llm_audit.processing import identity, pipeline

    t = Timers()
    # Outermost: the whole wrapt-wrapped client method (our wrapper + the SDK's own method).
    method = wrapped_method()
    outer, inner_label = outer_labels(method)
    wrapper = base_client.SyncAPIClient.__dict__[method]
    t.wrap(base_client.SyncAPIClient, method, outer)
    inner = wrapper.__wrapped__
    # The SDK's own method, called by our wrapper through wrapt: time it to subtract it.
    holder = {"inner": inner}
    perf = time.perf_counter_ns

    def timed_inner(*args: Any, **kwargs: Any) -> Any:
        t0 = perf()
        try:
            return holder["inner"](*args, **kwargs)
        finally:
            t.totals[inner_label] += perf() - t0
            t.counts[inner_label] += 1

    t.order.append(inner_label)
    t.totals[inner_label] = 0
    t.counts[inner_label] = 0
    wrapper.__wrapped__ = timed_inner  # wrapt lets the wrapped target be replaced
    t._undo.append(lambda: setattr(wrapper, "__wrapped__", inner))

    t.wrap(stainless.RequestWrapper, "_start", "RequestWrapper._start")
    t.wrap(stainless, "is_instrumentation_enabled")
    t.wrap(_wrappers, "_start")
    t.wrap(_capture, "snapshot_body")
    t.wrap(_wrappers, "server_of")
    t.wrap(_wrappers, "LLMCall", "LLMCall(...)")
    t.wrap(spans.Emitter, "start_llm_call")
    t.wrap(spans, "current_identity")
    t.wrap(spans, "start_attributes")
    t.wrap(spans, "span_name")
    t.wrap(sdk_trace.Tracer, "start_span")
    t.wrap(sdk_trace.SynchronousMultiSpanProcessor, "on_start", "MultiSpanProcessor.on_start")
    t.wrap(identity.AuditIdentitySpanProcessor, "on_start")
    t.wrap(pipeline.AuditSpanProcessor, "on_start")
    t.wrap(handoff, "claim")
    t.wrap(sdk_export.BatchSpanProcessor, "on_start")
    t.wrap(trace, "set_span_in_context")
    t.wrap(otel_context, "attach")
    t.wrap(otel_context, "detach")
    t.wrap(stainless, "finish")
    t.wrap(stainless, "is_raw_response")
    t.wrap(stainless, "is_stream")
    t.wrap(stainless, "stream_proxy")
    t.wrap(spans.LLMCallSpan, "end")
    t.wrap(spans.Emitter, "finish")
    t.wrap(handoff, "is_claimed")
    t.wrap(handoff, "hand_over")
    t.wrap(sdk_trace.Span, "end")
    t.wrap(sdk_trace.Span, "_readable_span")
    t.wrap(sdk_trace.SynchronousMultiSpanProcessor, "on_end", "MultiSpanProcessor.on_end")
    t.wrap(pipeline.AuditSpanProcessor, "on_end")
    t.wrap(handoff, "take")
    proc = _audit_processor(setup)
    if proc is not None and hasattr(proc, "_queue"):
        t.wrap(proc._queue, "put_nowait", "completion queue.put_nowait")
    # A point where the SDK releases the GIL on every POST: uuid4() for the idempotency key
    # reads os.urandom (getrandom(2) runs without the GIL). Whoever waits for the GIL runs there.
    import os

    t.wrap(os, "urandom", "os.urandom (SDK's uuid4 idempotency key; releases the GIL)")
    # streaming only
    import openai

    from otel_llm_audit.instrumentation import streams

    t.wrap(streams.SyncStreamProxy, "__next__", "SyncStreamProxy.__next__ (per chunk)")
    t.wrap(openai.Stream, "__next__", "  SDK Stream.__next__ itself (subtracted)")
    t.wrap(streams._StreamState, "chunk", "_StreamState.chunk")
    t.wrap(streams._StreamState, "finish", "_StreamState.finish")
    return t


def wrapped_method() -> str:
    """Which ``SyncAPIClient`` method our instrumentor wraps (``request`` now, ``post`` before)."""
    import openai._base_client as base_client

    for name in ("request", "post"):
        if hasattr(base_client.SyncAPIClient.__dict__.get(name), "__wrapped__"):
            return name
    raise RuntimeError("SyncAPIClient is not instrumented")


def outer_labels(method: str) -> tuple[str, str]:
    return f"SyncAPIClient.{method} (wrapt wrapper + SDK {method})", f"  SDK {method} itself (subtracted)"


def _audit_processor(setup: Any) -> Any:
    from opentelemetry import trace

    from otel_llm_audit.processing.pipeline import AuditSpanProcessor

    provider = trace.get_tracer_provider()
    for p in getattr(provider._active_span_processor, "_span_processors", ()):
        if isinstance(p, AuditSpanProcessor):
            return p
    return None


def timer_cost(n: int = 200_000) -> float:
    t = Timers()

    class Box:
        @staticmethod
        def f() -> None:
            return None

    raw = Box.f
    t0 = time.perf_counter_ns()
    for _ in range(n):
        raw()
    base = time.perf_counter_ns() - t0
    t.wrap(Box, "f")
    g = Box.f
    t0 = time.perf_counter_ns()
    for _ in range(n):
        g()
    return ((time.perf_counter_ns() - t0) - base) / n / 1e3


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="chat_text", choices=_mock.SCENARIOS)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--per-block", type=int, default=300)
    parser.add_argument("--calls", type=int, default=2000, help="calls for the breakdown")
    parser.add_argument("--cprofile", action="store_true", help="also cProfile the caller's thread")
    parser.add_argument("--no-ab", action="store_true", help="skip the A/B measurements")
    args = parser.parse_args()

    setup = _worker.configure("llm_audit")
    from otel_llm_audit.instrumentation.openai import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()  # a singleton: the one configure()'s caller instrumented

    def make() -> Callable[[], int]:
        return _mock.make_call(args.scenario)

    call = make()
    for _ in range(300):
        call()
    setup.flush()

    print(f"scenario {args.scenario}; timings in microseconds per LLM call\n")
    if not args.no_ab:
        # Flush after each instrumented block, so the completion backlog of an "on" block does
        # not slow down the following "off" block.
        res = ab(
            make, instrumentor.instrument, instrumentor.uninstrument, args.blocks, args.per_block,
            after_on_block=lambda: setup.flush(),
        )  # fmt: skip
        print(
            f"A/B, one process: off {res['off_wall']:.0f} us, on {res['on_wall']:.0f} us -> "
            f"overhead {res['overhead_wall_us']:+.1f} us wall, {res['overhead_cpu_us']:+.1f} us caller CPU"
        )

        # Same, with the completion worker held back during the timed blocks.
        # Held back: the processor's on_end only remembers the span (its hand-off stays in
        # place); the real on_end runs for all of them after the block.
        proc = _audit_processor(setup)
        parked: list[Any] = []
        real_on_end = proc.on_end

        def park() -> None:
            proc.on_end = parked.append

        def replay() -> None:
            del proc.on_end
            for span in parked:
                real_on_end(span)
            parked.clear()
            setup.flush()

        res2 = ab(make, instrumentor.instrument, instrumentor.uninstrument, args.blocks, args.per_block, park, replay)
        print(
            f"A/B, completion worker held back during the block: overhead {res2['overhead_wall_us']:+.1f} us wall, "
            f"{res2['overhead_cpu_us']:+.1f} us caller CPU  (difference to the above = interference of "
            f"the completion thread on the caller)"
        )

        # Reference floor: a wrapt wrapper that starts and ends a bare SDK span around the same
        # client method as ours.
        floor_method = wrapped_method()
        instrumentor.uninstrument()
        import wrapt
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import SpanKind

        exporter, _ = _worker._make_exporters()
        floor_tp = TracerProvider()
        floor_tp.add_span_processor(BatchSpanProcessor(exporter))
        tracer = floor_tp.get_tracer("bench.floor")
        import openai._base_client as base_client

        def floor_wrapper(wrapped: Any, instance: Any, a: Any, kw: Any) -> Any:
            span = tracer.start_span("chat", kind=SpanKind.CLIENT)
            try:
                return wrapped(*a, **kw)
            finally:
                span.end()

        def floor_on() -> None:
            wrapt.wrap_function_wrapper(base_client, f"SyncAPIClient.{floor_method}", floor_wrapper)

        def floor_off() -> None:
            from opentelemetry.instrumentation.utils import unwrap

            if hasattr(base_client.SyncAPIClient.__dict__[floor_method], "__wrapped__"):
                unwrap(base_client.SyncAPIClient, floor_method)

        res3 = ab(make, floor_on, floor_off, args.blocks, args.per_block)
        floor_off()
        floor_tp.shutdown()
        print(
            f"reference floor (wrapt wrapper + bare SDK span around {floor_method}, ends before a stream is read): "
            f"{res3['overhead_wall_us']:+.1f} us wall, {res3['overhead_cpu_us']:+.1f} us caller CPU\n"
        )

    # Breakdown
    instrumentor.instrument()
    for _ in range(200):
        call()
    setup.flush()
    wrapped_method_name = wrapped_method()
    timers = install_timers(setup)
    call = make()  # after the timers: resources bind client.post when built
    for _ in range(200):
        call()
    setup.flush()
    timers.reset()
    gc.collect()
    walls: list[int] = []
    cpus: list[int] = []
    perf, tcpu = time.perf_counter_ns, time.thread_time_ns
    t0 = perf()
    for _ in range(args.calls):
        c0, w0 = tcpu(), perf()
        call()
        walls.append(perf() - w0)
        cpus.append(tcpu() - c0)
    elapsed = (perf() - t0) / args.calls / 1e3
    setup.flush()
    timers.undo()
    cost = timer_cost()
    n = args.calls
    print(
        f"breakdown over {n} calls ({elapsed:.0f} us mean per call with timers; median wall "
        f"{statistics.median(walls) / 1e3:.0f} us, median caller CPU {statistics.median(cpus) / 1e3:.0f} us; "
        f"one timer costs ~{cost:.2f} us):"
    )
    print(f"{'function (inclusive, nested rows indented)':64s} {'us/call':>8s} {'calls/call':>10s}")
    outer, inner_label = outer_labels(wrapped_method_name)
    for label in timers.order:
        count = timers.counts[label]
        if not count:
            continue
        indent = "  " * timers.depth.get(label, 0)
        print(f"{indent + label:64s} {timers.totals[label] / n / 1e3:8.1f} {count / n:10.2f}")
    ours = (timers.totals[outer] - timers.totals[inner_label]) / n / 1e3
    proxy = "SyncStreamProxy.__next__ (per chunk)"
    if timers.counts[proxy]:
        sdk_next = timers.totals["  SDK Stream.__next__ itself (subtracted)"]
        per_chunk = (timers.totals[proxy] - sdk_next) / timers.counts[proxy] / 1e3
        print(
            f"=> stream proxy per chunk (our __next__ minus the SDK's): {per_chunk:.2f} us "
            f"(includes ~{2 * cost:.1f} us of timers); the stream's end (span end) is inside it"
        )
    timed = sum(1 for lbl in timers.order if timers.counts[lbl]) - 1
    print(
        f"\n=> our caller-thread path inside SyncAPIClient.{wrapped_method_name}: {ours:.1f} us per call "
        f"(includes ~{timed * cost:.1f} us of timers)"
    )

    if args.cprofile:
        call = make()
        for _ in range(100):
            call()
        setup.flush()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(n):
            call()
        prof.disable()
        setup.flush()
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf)
        stats.sort_stats("tottime").print_stats(35)
        print(buf.getvalue())
    setup.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
