"""What our completion thread spends per call (the work moved off the caller's thread).

    /work/bench-venvs/llm_audit/bin/python benchmarks/profile_completion.py [chat_text,chat_tools,stream]

With the benchmark's ``llm_audit`` pipeline, each call's completion is taken from the queue
and run on this thread right after the call, one at a time and without contention: the
median is the CPU the completion thread needs per call; then cProfile of the same work.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _mock
import _worker
from profile_caller import _audit_processor


def main() -> int:
    scenarios = (sys.argv[1] if len(sys.argv) > 1 else ",".join(_mock.SCENARIOS)).split(",")
    setup = _worker.configure("llm_audit")
    proc = _audit_processor(setup)
    for scenario in scenarios:
        call = _mock.make_call(scenario)
        for _ in range(100):
            call()
        setup.flush()
        parked: list[Any] = []
        proc.submit = parked.append  # the fast path: keep each finished call instead of queueing it
        times: list[int] = []
        profiler = cProfile.Profile()
        for i in range(600):
            call()
            deferred = parked.pop()
            if i < 300:
                t0 = time.perf_counter_ns()
                proc._build_and_publish(deferred, content_allowed=True)
                times.append(time.perf_counter_ns() - t0)
            else:
                profiler.enable()
                proc._build_and_publish(deferred, content_allowed=True)
                profiler.disable()
        del proc.submit
        print(
            f"{scenario}: completion per call, median {statistics.median(times) / 1e3:.0f} us, "
            f"mean {statistics.fmean(times) / 1e3:.0f} us (one at a time, no contention)"
        )
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(15)
        text = buf.getvalue()
        print(text[text.find("ncalls") :])
    setup.flush()
    setup.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
