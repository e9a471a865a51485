"""Store-and-forward under faults: no span lost, none duplicated (issue 6, item 2).

Every test runs the real pipeline as users do: ``configure(store=...)`` with the OTLP/HTTP
exporter built from ``OTEL_EXPORTER_OTLP_ENDPOINT``, pointed at a loopback receiver
(:mod:`otlp_receiver`) that can be down, throttle, be unavailable, accept partially, or take a
batch and not answer. What the store recorded (its ``records`` table, checkpoints included) is
compared with what the receiver accepted, span by span.

The exporter differs between SDK versions. The oldest supported (1.30) retries 408 and 5xx
inside one export (1, 2, 4 ... 32 s apart, ignoring ``Retry-After`` and the timeout), fails a
429 at once and raises on a refused connection; the newest tested (1.45) retries 429, 502, 503,
504 and connection errors within its timeout, honouring ``Retry-After`` when it fits in the
timeout and giving up at once when it does not. The forwarder's own retry covers whatever the
exporter gives up on, so the outcome asserted here is the same on both.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan

import otel_llm_audit
from otel_llm_audit import _guard, semconv
from otel_llm_audit.bootstrap import AuditPipeline
from otel_llm_audit.config import set_settings
from otel_llm_audit.delivery.store import AuditStore
from otel_llm_audit.delivery.store_writer import CHECKPOINT_SPAN_NAME
from otel_llm_audit.emitter.spans import Emitter
from otel_llm_audit.processing.canonical import otlp_body
from otel_llm_audit.processing.sealing import load_seal_key
from otlp_receiver import ACCEPT, HELD, OtlpReceiver, Reply, partial_success, throttled, unavailable
from store_forward_child import ANSWER, MODEL, PROMPT, RESPONSE_MODEL, produce

CHILD = Path(__file__).with_name("store_forward_child.py")
Ids = tuple[str, str]

#: The forwarder's default backoff is capped at 30 s (+20 % jitter); one more attempt after that.
RECOVERY_S = 45.0
#: The forwarder leases at most this many records per request: the most a kill can make it resend.
BATCH = 512


# Fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture
def otlp_env(receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> OtlpReceiver:
    """The standard variables only: the exporter is whatever ``OTEL_EXPORTER_OTLP_ENDPOINT`` builds."""
    for name in list(os.environ):
        if name.startswith("OTEL_EXPORTER_OTLP_") or name in ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    return receiver


@pytest.fixture
def make_pipeline() -> Iterator[Callable[..., AuditPipeline]]:
    """``configure()`` against the store at ``path``; every pipeline is shut down after the test."""
    built: list[AuditPipeline] = []

    def build(path: Path, **settings: Any) -> AuditPipeline:
        settings.setdefault("content", "raw")
        settings.setdefault("checkpoint_interval", 3600)
        pipeline = otel_llm_audit.configure(
            store=str(path), instrument=False, set_global=False, metric_readers=[], **settings
        )
        built.append(pipeline)
        return pipeline

    _guard.reset_internal_error_counts()
    try:
        yield build
    finally:
        for pipeline in built:
            pipeline.shutdown()  # a second shutdown does nothing
        set_settings(None)
        _guard.reset_internal_error_counts()


class Producer:
    """Makes spans through a pipeline the way an application does: LLM calls and plain steps."""

    def __init__(self, pipeline: AuditPipeline) -> None:
        self.emitter = Emitter("otel_llm_audit.test", pipeline.tracer_provider)
        self.tracer = pipeline.tracer_provider.get_tracer("app")
        self.count = 0

    def make(self, n: int) -> None:
        for _ in range(n):
            produce(self.emitter, self.tracer, self.count)
            self.count += 1


def stored_ids(path: Path) -> list[Ids]:
    """``(trace_id, span_id)`` of every record in the store, checkpoints included, in stored order."""
    store = AuditStore(path, readonly=True)
    try:
        return [(t, s) for t, s in store.connection().execute("SELECT trace_id, span_id FROM records ORDER BY id")]
    finally:
        store.close()


def store_counts(path: Path) -> tuple[int, int, int]:
    """Records, checkpoint records, and records still in the outbox."""
    store = AuditStore(path, readonly=True)
    try:
        return store.count(), store.count("name = ?", (CHECKPOINT_SPAN_NAME,)), store.pending()
    finally:
        store.close()


def wait_until(condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return condition()


def wait_stored(path: Path, spans: int, timeout_s: float = 30.0) -> None:
    """Wait until ``spans`` application spans (checkpoints aside) are in the store."""

    def stored() -> bool:
        total, checkpoints, _ = store_counts(path)
        return total - checkpoints >= spans

    assert wait_until(stored, timeout_s), f"{spans} spans were not stored in {timeout_s} s: {store_counts(path)}"


def assert_exactly_once(receiver: OtlpReceiver, path: Path) -> list[Ids]:
    """Every stored record arrived once, nothing else arrived, and the outbox is empty."""
    stored = stored_ids(path)
    assert len(set(stored)) == len(stored)
    received = Counter(receiver.ids())
    assert received == Counter(stored), (
        f"missing {len(set(stored) - set(received))}, unexpected {len(set(received) - set(stored))}, "
        f"duplicated {sum(n - 1 for n in received.values() if n > 1)}"
    )
    assert store_counts(path)[2] == 0
    return stored


# a. The receiver down for a minute ---------------------------------------------------------


def _traced_bytes_min(samples: int, every_s: float) -> int:
    """The smallest traced size over ``samples`` readings: transient work in flight drops out."""
    lowest = tracemalloc.get_traced_memory()[0]
    for _ in range(samples - 1):
        time.sleep(every_s)
        lowest = min(lowest, tracemalloc.get_traced_memory()[0])
    return lowest


class _NoTracebacksKept(logging.Filter):
    """Turn a record's exceptions into text before pytest keeps the record.

    pytest keeps every log record of a test. An exporter's "retrying" record carries the
    exception, whose traceback holds the exporter's frame, whose locals hold the batch: kept
    records would keep every failed batch alive, which is the test harness's memory, not ours
    (an application's handlers format a record and drop it).
    """

    LOGGERS = (
        "otel_llm_audit",
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry.exporter.otlp.common.http",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(str(arg) if isinstance(arg, BaseException) else arg for arg in record.args)
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return True


def _live_spans() -> int:
    """SDK span objects alive now (ended spans, rebuilt spans, spans in any queue)."""
    gc.collect()
    return sum(1 for obj in gc.get_objects() if issubclass(type(obj), ReadableSpan))  # type(): lazy proxies raise


def test_receiver_down_for_a_minute_then_back_every_span_arrives_exactly_once(
    otlp_env: OtlpReceiver, make_pipeline: Callable[..., AuditPipeline], tmp_path: Path
) -> None:
    receiver = otlp_env
    receiver.stop()  # down from the start: connections are refused
    path = tmp_path / "audit.db"
    no_tracebacks = _NoTracebacksKept()
    for name in _NoTracebacksKept.LOGGERS:
        logging.getLogger(name).addFilter(no_tracebacks)
    started_tracing = not tracemalloc.is_tracing()
    if started_tracing:
        tracemalloc.start()
    try:
        pipeline = make_pipeline(path)
        assert pipeline.store is not None
        forwarder = pipeline.store.forwarders[0]
        producer = Producer(pipeline)
        stop = threading.Event()
        gate = threading.Lock()  # held by the test: the application pauses
        # Spans per second, half of them LLM calls with 1.5 kB of content. Fast enough that the
        # backlog passes one forwarder batch (512 records, which the forwarder holds while it
        # waits to retry) before memory is first measured, so both readings hold a full batch.
        rate = 50

        def run() -> None:
            due = time.monotonic()
            while not stop.is_set():
                with gate:
                    producer.make(5)
                due = max(due + 5 / rate, time.monotonic() - 1.0)  # no burst after a pause
                stop.wait(max(0.0, due - time.monotonic()))

        def quiet_reading() -> tuple[int, int, int]:
            """Backlog, traced bytes and live spans, read with the application paused and the
            pipeline's queues drained into the store (spans in flight are not the backlog)."""
            with gate:
                wait_stored(path, producer.count)
                return store_counts(path)[2], _traced_bytes_min(5, 0.4), _live_spans()

        thread = threading.Thread(target=run, name="app")
        t0 = time.monotonic()
        thread.start()
        try:
            time.sleep(max(0.0, t0 + 25 - time.monotonic()))
            backlog_early, traced_early, live_early = quiet_reading()
            time.sleep(max(0.0, t0 + 55 - time.monotonic()))
            backlog_late, traced_late, live_spans = quiet_reading()
            time.sleep(max(0.0, t0 + 60 - time.monotonic()))
            assert receiver.requests == []  # nothing got through while it was down
            attempts_while_down = forwarder.failed_attempts
            receiver.start()  # back, on the same port
            back = time.monotonic()
            time.sleep(3)  # the application keeps going while the backlog drains
        finally:
            stop.set()
            thread.join()
        wait_stored(path, producer.count)
        assert receiver.wait_for(stored_ids(path), RECOVERY_S), (
            "the backlog was not delivered after the receiver came back"
        )
        recovered_s = time.monotonic() - back
    finally:
        if started_tracing:
            tracemalloc.stop()
        for name in _NoTracebacksKept.LOGGERS:
            logging.getLogger(name).removeFilter(no_tracebacks)
    pipeline.shutdown()  # its final checkpoint goes out too

    stored = assert_exactly_once(receiver, path)
    assert receiver.duplicates() == Counter()
    assert len(stored) == producer.count + 1  # + the shutdown checkpoint
    assert attempts_while_down >= 4  # it kept trying for the whole minute (1, 2, 4, 8, 16, 30 s apart)
    assert recovered_s < RECOVERY_S
    # The backlog grew by 1,500 spans; held in memory they would take some 5 MB (3.6 kB each
    # as SDK spans). They wait on disk: no more spans are alive than before (the forwarder holds
    # at most one batch, and none through a backoff), and traced memory grows far less than the
    # backlog would weigh. (Absolute counts depend on what earlier tests in the run left alive;
    # the memory benchmark in benchmarks/audit_store.py measures the bound in a fresh process.)
    assert backlog_late - backlog_early >= 25 * rate
    grown = traced_late - traced_early
    assert grown < 2 * 1024 * 1024, f"traced memory grew by {grown} bytes with {backlog_late - backlog_early} more"
    assert live_spans - live_early <= 128, f"{live_spans} spans alive (was {live_early}), backlog {backlog_late}"
    # LLM spans arrived with their content and usage intact.
    llm = [span for span in receiver.spans if span.name == f"chat {MODEL}"]
    assert len(llm) == (producer.count + 1) // 2
    (first,) = [span for span in llm if span.attributes[semconv.GEN_AI_RESPONSE_ID] == "chatcmpl-0"]
    assert first.attributes[semconv.GEN_AI_RESPONSE_MODEL] == RESPONSE_MODEL
    assert first.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 210
    assert first.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 48
    assert json.loads(first.attributes[semconv.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": PROMPT}]}
    ]
    assert json.loads(first.attributes[semconv.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": ANSWER}], "finish_reason": "stop"}
    ]


# b. SIGKILL mid-traffic ---------------------------------------------------------------------


def _start_child(mode: str, path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), mode, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(CHILD.parent),
    )


def _records(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        return store_counts(path)[0]
    except Exception:  # the child is still creating the store
        return 0


def _kill(child: subprocess.Popen[str]) -> None:
    assert child.poll() is None, f"the producer died by itself: {child.communicate()}"
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL


def _drain(path: Path) -> None:
    child = _start_child("drain", path)
    out, err = child.communicate(timeout=90)
    assert child.returncode == 0, (out, err)
    assert out.strip().splitlines()[-1] == '{"pending_before_shutdown": 0, "pending_after_shutdown": 0}'


def test_sigkill_with_the_receiver_down_the_next_start_delivers_every_committed_record(
    otlp_env: OtlpReceiver, tmp_path: Path
) -> None:
    receiver = otlp_env
    receiver.stop()  # a backlog builds up in the store
    path = tmp_path / "audit.db"
    child = _start_child("produce", path)
    try:
        assert wait_until(lambda: _records(path) >= 600, 60), child.poll()
        _kill(child)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    after_kill = stored_ids(path)  # what was committed before the kill: checkpoints included
    records, _, pending = store_counts(path)
    assert records == pending == len(after_kill) >= 600  # all of it waits in the outbox

    receiver.start()
    _drain(path)

    stored = assert_exactly_once(receiver, path)
    assert set(after_kill) <= set(stored)
    assert len(stored) == len(after_kill) + 1  # + the second run's shutdown checkpoint
    assert receiver.duplicates() == Counter()  # nothing was accepted before the kill: nothing to resend


def test_sigkill_with_a_batch_accepted_but_not_acknowledged_resends_only_that_batch(
    otlp_env: OtlpReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = otlp_env
    # Longer than the moment the receiver holds its answer, so the exporter does not time out
    # and resend the held batch by itself before the kill.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "10")
    receiver.script(ACCEPT, ACCEPT, HELD)
    path = tmp_path / "audit.db"
    child = _start_child("produce", path)
    try:
        assert receiver.holding.wait(60), child.poll()
        held = receiver.requests[2].span_ids  # the receiver took these; the child waits for its answer
        # A backlog beyond the held batch, then the kill while the answer is still outstanding.
        assert wait_until(lambda: _records(path) >= len(receiver.ids()) + 100, 30)
        _kill(child)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
        receiver.release()  # the answer goes nowhere: the child is gone
    after_kill = stored_ids(path)
    _, _, pending = store_counts(path)
    accepted_before_kill = receiver.ids()
    assert [request.status for request in receiver.requests] == [200, 200, 200]
    assert 0 < len(held) <= BATCH
    assert pending == len(after_kill) - (len(accepted_before_kill) - len(held))  # only the acknowledged left

    _drain(path)

    # At least once: the held batch reached the receiver, but its acknowledgement never reached
    # the store (the process died waiting for the answer), so the next start sends it again. A
    # retry repeats spans only when a receiver accepted a batch whose answer the sender never got
    # (this kill, or an exporter timing out on a slow answer); the forwarder has one batch in
    # flight, so at most one batch repeats. Receivers deduplicate by trace id and span id.
    received = Counter(receiver.ids())
    stored = stored_ids(path)
    assert set(received) == set(stored)
    assert set(after_kill) <= set(stored)
    assert len(stored) == len(after_kill) + 1  # + the second run's shutdown checkpoint
    assert {ids: n for ids, n in received.items() if n > 1} == dict.fromkeys(held, 2)
    assert store_counts(path)[2] == 0


# c. Throttled, unavailable, refused, partially accepted -----------------------------------


@pytest.mark.parametrize(
    "refusal",
    [throttled(), throttled("1"), unavailable(), unavailable("1"), unavailable("5")],
    ids=["429", "429-retry-after-1", "503", "503-retry-after-1", "503-retry-after-5"],
)
def test_a_refused_request_is_retried_and_every_span_arrives_once(
    otlp_env: OtlpReceiver, make_pipeline: Callable[..., AuditPipeline], tmp_path: Path, refusal: Reply
) -> None:
    receiver = otlp_env
    receiver.script(refusal)
    path = tmp_path / "audit.db"
    pipeline = make_pipeline(path)
    Producer(pipeline).make(6)
    wait_stored(path, 6)
    # No flush: the exporter's retry (where it retries this status) or else the forwarder's backoff
    # delivers on its own.
    assert receiver.wait_for(stored_ids(path), 30)
    pipeline.shutdown()

    assert_exactly_once(receiver, path)
    requests = receiver.requests
    assert requests[0].status == refusal.status
    assert requests[0].retry_after == refusal.retry_after
    assert {request.status for request in requests[1:]} == {200}
    refused = set(requests[0].span_ids)
    assert refused and refused <= set(receiver.ids())
    assert requests[1].time - requests[0].time >= 0.75  # a backoff, not a hot loop


def test_a_refused_connection_is_retried_and_every_span_arrives_once(
    otlp_env: OtlpReceiver, make_pipeline: Callable[..., AuditPipeline], tmp_path: Path
) -> None:
    receiver = otlp_env
    receiver.stop()
    path = tmp_path / "audit.db"
    pipeline = make_pipeline(path)
    assert pipeline.store is not None
    forwarder = pipeline.store.forwarders[0]
    Producer(pipeline).make(6)
    wait_stored(path, 6)
    assert wait_until(lambda: forwarder.failed_attempts >= 1, 10)
    receiver.start()
    assert receiver.wait_for(stored_ids(path), 15)  # the forwarder's backoff, no flush
    pipeline.shutdown()

    assert_exactly_once(receiver, path)
    assert {request.status for request in receiver.requests} == {200}


def test_a_partial_success_is_acknowledged_and_not_retried(
    otlp_env: OtlpReceiver, make_pipeline: Callable[..., AuditPipeline], tmp_path: Path
) -> None:
    receiver = otlp_env
    receiver.script(partial_success(2, "2 spans over the tenant's quota"))
    path = tmp_path / "audit.db"
    pipeline = make_pipeline(path)
    assert pipeline.store is not None
    forwarder = pipeline.store.forwarders[0]
    Producer(pipeline).make(6)
    wait_stored(path, 6)
    assert receiver.wait_for(stored_ids(path), 10)
    pipeline.shutdown()

    # The OTLP specification: a partial success is a success; the rejected spans must not be
    # sent again (the receiver said it will never take them). Each span went out exactly once.
    assert_exactly_once(receiver, path)
    requests = receiver.requests
    assert requests[0].rejected_spans == 2
    assert {request.status for request in requests} == {200}
    assert forwarder.failed_attempts == 0


# d. Clean shutdown while the receiver is down ---------------------------------------------


def test_clean_shutdown_with_the_receiver_down_keeps_the_spans_for_the_next_run(
    otlp_env: OtlpReceiver,
    make_pipeline: Callable[..., AuditPipeline],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = otlp_env
    receiver.stop()
    path = tmp_path / "audit.db"
    pipeline = make_pipeline(path)
    Producer(pipeline).make(20)
    with caplog.at_level(logging.WARNING, logger="otel_llm_audit"):
        pipeline.shutdown()
    records, checkpoints, pending = store_counts(path)
    assert (records, checkpoints, pending) == (21, 1, 21)  # 20 spans + the shutdown checkpoint, all waiting
    waiting = [r.getMessage() for r in caplog.records if "sent at the next start" in r.getMessage()]
    assert waiting == [
        f"otel-llm-audit: 21 spans wait in the audit store {path} for exporter-0; they are sent at the next start"
    ]
    assert receiver.requests == []

    receiver.start()
    later = make_pipeline(path)
    assert later.force_flush(10_000)
    later.shutdown()
    stored = assert_exactly_once(receiver, path)
    assert len(stored) == 22  # + the later run's shutdown checkpoint


def test_a_failing_destination_does_not_hold_up_flush_or_exit(
    otlp_env: OtlpReceiver, make_pipeline: Callable[..., AuditPipeline], tmp_path: Path
) -> None:
    """Once the receiver is known to be down, force_flush and shutdown return at once: the spans are on disk."""
    receiver = otlp_env
    receiver.stop()
    path = tmp_path / "audit.db"
    pipeline = make_pipeline(path)
    assert pipeline.store is not None
    forwarder = pipeline.store.forwarders[0]
    Producer(pipeline).make(5)
    assert wait_until(lambda: forwarder.failed_attempts >= 1, 15)
    errors_before = sum(_guard.internal_error_counts().values())
    started = time.monotonic()
    assert pipeline.force_flush(10_000) is False  # stored, not delivered
    pipeline.shutdown()
    assert time.monotonic() - started < 2.0
    assert store_counts(path)[2] == 6  # 5 spans + the shutdown checkpoint wait in the outbox
    # A receiver that is down is a delivery failure, not an internal error of ours.
    assert sum(_guard.internal_error_counts().values()) == errors_before


# e. The seal travels, and verifies from what the receiver got ---------------------------


def test_seal_attributes_arrive_and_the_body_recomputed_from_the_wire_matches_the_store(
    otlp_env: OtlpReceiver, make_pipeline: Callable[..., AuditPipeline], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = otlp_env
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    key_file = tmp_path / "seal.key"
    key_file.write_text("5f1e0c2b7a9d4e3f8a6b1c0d2e4f6a8b9c7d5e3f1a2b4c6d8e0f1a3b5c7d9e1f\n")
    key = load_seal_key(key_file)
    path = tmp_path / "audit.db"
    pipeline = make_pipeline(path, seal_key_file=str(key_file))
    Producer(pipeline).make(6)
    pipeline.shutdown()

    assert_exactly_once(receiver, path)
    assert {request.content_encoding for request in receiver.requests} == {"gzip"}
    store = AuditStore(path, readonly=True)
    try:
        positions = {
            (t, s): position
            for position, t, s in store.connection().execute("SELECT id, trace_id, span_id FROM records")
        }
        records = {record.position: record for record in store.iter_records()}
    finally:
        store.close()
    names = Counter(span.name for span in receiver.spans)
    assert names == {f"chat {MODEL}": 3, "app.step": 3, CHECKPOINT_SPAN_NAME: 1}
    for span in receiver.spans:
        record = records[positions[span.ids]]
        assert span.attributes[semconv.LLM_AUDIT_INTEGRITY_STREAM] == record.stream
        assert span.attributes[semconv.LLM_AUDIT_INTEGRITY_SEQUENCE] == record.seq
        assert span.attributes[semconv.LLM_AUDIT_INTEGRITY_PREV_HASH] == record.prev_hash
        assert span.attributes[semconv.LLM_AUDIT_INTEGRITY_HASH] == record.hash
        assert span.attributes[semconv.LLM_AUDIT_INTEGRITY_ALGORITHM] == record.algorithm == "hmac-sha256"
        assert span.attributes[semconv.LLM_AUDIT_INTEGRITY_KEY_ID] == record.key_id == key.key_id
        span_json, resource_attributes, scope_json = span.otlp_json()
        body = otlp_body(span_json, resource_attributes, scope_json)
        assert body == record.body
        assert key.record_hash(record.stream, record.seq, record.prev_hash, body) == record.hash
    # One stream, chained in order, sequence 0..6 with the checkpoint last.
    chain = sorted(receiver.spans, key=lambda span: span.attributes[semconv.LLM_AUDIT_INTEGRITY_SEQUENCE])
    assert [span.attributes[semconv.LLM_AUDIT_INTEGRITY_SEQUENCE] for span in chain] == list(range(7))
    assert chain[-1].name == CHECKPOINT_SPAN_NAME
    assert chain[-1].attributes[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_REASON] == "shutdown"
    hashes = [span.attributes[semconv.LLM_AUDIT_INTEGRITY_HASH] for span in chain]
    prev_hashes = [span.attributes[semconv.LLM_AUDIT_INTEGRITY_PREV_HASH] for span in chain]
    assert prev_hashes == ["0" * 64, *hashes[:-1]]
