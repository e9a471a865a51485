"""The local audit store's building blocks: canonical encoding, seals, keys, checkpoints, outbox, size limit."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import rfc8785
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode

import otel_llm_audit
from otel_llm_audit import semconv
from otel_llm_audit.cli.otlp_reader import read_spans
from otel_llm_audit.delivery.otlp_json import OtlpJsonFileSpanExporter, otlp_json_line
from otel_llm_audit.delivery.store import AuditStore, StoreError
from otel_llm_audit.delivery.store_writer import CHECKPOINT_SPAN_NAME, StoreWriter
from otel_llm_audit.delivery.stored_spans import readable_span_of
from otel_llm_audit.processing import canonical
from otel_llm_audit.processing.sealing import (
    GENESIS,
    UNKEYED,
    SealKeyError,
    checkpoint_payload,
    load_seal_key,
)

RESOURCE = Resource.create({"service.name": "ward-assistant", "k8s.pod.name": "pod-7"})


@pytest.fixture
def make_spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _varied_spans(provider: TracerProvider, exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    tracer = provider.get_tracer("app.scope", "2.1")
    with tracer.start_as_current_span("root") as root:
        root.set_attribute("user.id", "u-42")
        with tracer.start_as_current_span("chat gpt-4o", links=[Link(root.get_span_context(), {"why": "x"})]) as span:
            span.set_attributes(
                {
                    "s": 'é 😀 \n\t\x01 "quoted" \\',
                    "b": True,
                    "i": 2**62,
                    "neg": -7,
                    "f": 0.1,
                    "big": 1e16,
                    "tiny": 1e-7,
                    "whole": 3.0,
                    "strs": ("a", "b"),
                    "ints": (1, 2, 3),
                    "floats": (0.5, 1e21),
                    "bools": (True, False),
                    "empty": (),
                    semconv.LLM_AUDIT_INTEGRITY_HASH: "not part of the body",
                }
            )
            span.add_event("llm_audit.policy", {"llm_audit.policy.action": "blocked", "n": 1})
            span.set_status(Status(StatusCode.ERROR, "refused"))
    return list(exporter.get_finished_spans())


def _otlp_json_spans(spans: list[ReadableSpan]) -> list[tuple[dict, list, dict]]:
    request = json.loads(otlp_json_line(encode_spans(spans)))
    out = []
    for resource_spans in request["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                out.append((span, resource_spans["resource"]["attributes"], scope_spans["scope"]))
    return out


def test_canonical_body_is_the_same_from_the_sdk_and_from_otlp_json(make_spans) -> None:
    spans = _varied_spans(*make_spans)
    by_id = {format(s.context.span_id, "016x"): s for s in spans}
    received = _otlp_json_spans(spans)
    assert len(received) == 2
    for span_json, resource, scope in received:
        sdk_span = by_id[span_json["spanId"]]
        body = canonical.span_body(sdk_span)
        assert canonical.otlp_body(span_json, resource, scope) == body
        # json.dumps of the canonical document is its RFC 8785 (JCS) form.
        assert body == rfc8785.dumps(canonical.span_document(sdk_span))
    chat = canonical.span_document(next(s for s in spans if s.name == "chat gpt-4o"))
    attributes = dict((key, typed) for key, typed in chat["attributes"])
    assert attributes["i"] == ["i", str(2**62)] and attributes["big"] == ["d", "1e+16"]
    assert attributes["empty"] == ["a", []]
    assert semconv.LLM_AUDIT_INTEGRITY_HASH not in attributes  # the seal is not sealed
    covered = sorted(k for k in RESOURCE.attributes if k in canonical.RESOURCE_KEYS)
    assert "service.name" in covered and [k for k, _ in chat["resource"]] == covered  # k8s.pod.name is not
    assert chat["scope"] == ["app.scope", "2.1"] and chat["kind"] == 1 and chat["status"] == [2, "refused"]


def test_a_stored_span_rebuilt_for_an_exporter_has_the_same_body(make_spans, tmp_path: Path) -> None:
    spans = _varied_spans(*make_spans)
    store = AuditStore(tmp_path / "audit.db")
    writer = StoreWriter(store, checkpoint_interval=0)
    writer.export(spans)
    records = list(store.iter_records())
    assert [r.seq for r in records] == [0, 1]
    for record in records:
        rebuilt = readable_span_of(record, RESOURCE)
        assert canonical.span_body(rebuilt) == record.body
        ((span_json, resource, scope),) = _otlp_json_spans([rebuilt])
        assert canonical.otlp_body(span_json, resource, scope) == record.body  # what a receiver gets verifies
        attrs = rebuilt.attributes or {}
        assert attrs[semconv.LLM_AUDIT_INTEGRITY_SEQUENCE] == record.seq
        assert attrs[semconv.LLM_AUDIT_INTEGRITY_HASH] == record.hash
        assert attrs[semconv.LLM_AUDIT_INTEGRITY_STREAM] == writer.stream
        assert rebuilt.resource.attributes["k8s.pod.name"] == "pod-7"  # the full resource travels on


def test_records_form_a_hash_chain_and_a_checkpoint_signs_its_head(make_spans, tmp_path: Path) -> None:
    key_file = tmp_path / "seal.key"
    key_file.write_text("8f3a" * 16 + "\n")
    key = load_seal_key(key_file)
    assert (key.record_algorithm, key.checkpoint_algorithm, len(key.key_id)) == ("hmac-sha256", "hmac-sha256", 16)
    store = AuditStore(tmp_path / "audit.db")
    writer = StoreWriter(store, key=key, checkpoint_interval=0, checkpoint_records=3)
    spans = _varied_spans(*make_spans)
    writer.export(spans)
    writer.export(spans[:1])  # the third record reaches checkpoint_records
    writer.shutdown()
    records = list(store.iter_records())
    names = [json.loads(r.body)["name"] for r in records]
    assert names == ["chat gpt-4o", "root", "chat gpt-4o", CHECKPOINT_SPAN_NAME, CHECKPOINT_SPAN_NAME]
    previous = GENESIS
    for expected_seq, record in enumerate(records):
        assert (record.seq, record.prev_hash) == (expected_seq, previous)
        assert record.hash == key.record_hash(record.stream, record.seq, record.prev_hash, record.body)
        assert (record.algorithm, record.key_id) == ("hmac-sha256", key.key_id)
        previous = record.hash
    # Without the secret, the same bytes give another seal: no one else can forge a record.
    assert UNKEYED.record_hash(records[0].stream, 0, GENESIS, records[0].body) != records[0].hash
    first, final = (dict((k, v[1]) for k, v in json.loads(r.body)["attributes"]) for r in records[3:])
    assert first[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_REASON] == "count"
    assert int(first[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_SEQUENCE]) == 2
    assert first[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_HASH] == records[2].hash
    assert first[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_PREV_SIGNATURE] == ""
    assert final[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_REASON] == "shutdown"
    assert final[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_HASH] == records[3].hash  # the checkpoint before it
    assert (
        final[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_PREV_SIGNATURE]
        == first[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_SIGNATURE]
    )
    for attrs in (first, final):
        payload = checkpoint_payload(
            records[0].stream,
            int(attrs[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_SEQUENCE]),
            attrs[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_HASH],
            int(attrs[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_TIME]),
            attrs[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_PREV_SIGNATURE],
            attrs[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_REASON],
        )
        assert key.verify_signature(payload, attrs[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_SIGNATURE])
        assert not key.verify_signature(payload + b" ", attrs[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_SIGNATURE])


def test_checkpoints_keep_coming_when_nothing_happens(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "audit.db")
    writer = StoreWriter(store, checkpoint_interval=0.1)
    deadline = time.monotonic() + 10
    while store.count() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.shutdown()
    reasons = [
        dict((k, v[1]) for k, v in json.loads(r.body)["attributes"])[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_REASON]
        for r in store.iter_records()
    ]
    assert reasons[:3] == ["interval"] * 3 and reasons[-1] == "shutdown"
    first = dict((k, v[1]) for k, v in json.loads(next(store.iter_records()).body)["attributes"])
    assert (
        int(first[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_SEQUENCE]),
        first[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_HASH],
    ) == (-1, GENESIS)  # an empty stream, attested as empty
    assert first[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_ALGORITHM] == "none"


def test_ed25519_checkpoints_verify_with_the_public_key_only(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "seal.pem").write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (tmp_path / "seal.pub.pem").write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signer = load_seal_key(tmp_path / "seal.pem")
    verifier = load_seal_key(tmp_path / "seal.pub.pem")
    assert (signer.record_algorithm, signer.checkpoint_algorithm) == ("sha256", "ed25519")
    assert signer.key_id == verifier.key_id
    signature = signer.sign(b"payload")
    assert verifier.verify_signature(b"payload", signature)
    assert not verifier.verify_signature(b"payl0ad", signature)
    with pytest.raises(SealKeyError, match="can verify checkpoints but not sign"):
        verifier.sign(b"payload")


def test_unusable_keys_are_clear_errors(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    (tmp_path / "short.key").write_text("secret\n")
    with pytest.raises(SealKeyError, match=r"holds 6 bytes; an HMAC secret needs at least 16"):
        load_seal_key(tmp_path / "short.key")
    with pytest.raises(SealKeyError, match="cannot read the seal key file"):
        load_seal_key(tmp_path / "missing.key")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "ec.pem").write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(SealKeyError, match="is not an Ed25519 key"):
        load_seal_key(tmp_path / "ec.pem")
    with pytest.raises(SealKeyError):
        otel_llm_audit.configure(
            span_exporters=[], metric_readers=[], instrument=False, set_global=False,
            store=str(tmp_path / "audit.db"), seal_key_file=str(tmp_path / "short.key"),
        )  # fmt: skip


def test_a_file_that_is_not_a_store_is_a_start_up_error(tmp_path: Path) -> None:
    not_a_store = tmp_path / "traces.jsonl"
    not_a_store.write_text('{"resourceSpans": []}\n')
    with pytest.raises(StoreError, match="is not an audit store"):
        otel_llm_audit.configure(
            span_exporters=[], metric_readers=[], instrument=False, set_global=False, store=str(not_a_store)
        )
    with pytest.raises(StoreError, match="no audit store at"):
        AuditStore(tmp_path / "nothing.db", readonly=True)
    with pytest.raises(ValueError, match="OTEL_LLM_AUDIT_STORE_SYNC must be normal or full"):
        otel_llm_audit.configure(span_exporters=[], instrument=False, set_global=False, store_sync="sometimes")


def test_the_outbox_leases_acknowledges_and_frees_a_dead_process_lease(make_spans, tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "audit.db")
    writer = StoreWriter(store, destinations=["exporter-0"], checkpoint_interval=0)
    writer.export(_varied_spans(*make_spans))
    first = store.claim("exporter-0", limit=1, lease_s=60)
    assert [r.seq for r in first] == [0]
    second = store.claim("exporter-0", limit=10, lease_s=60)
    assert [r.seq for r in second] == [1]  # the leased record is not handed out twice
    assert store.claim("exporter-0", limit=10, lease_s=60) == []
    store.release("exporter-0", [second[0].position])
    assert [r.seq for r in store.claim("exporter-0", limit=10, lease_s=60)] == [1]
    store.acknowledge("exporter-0", [second[0].position])
    assert store.pending("exporter-0") == 1
    # A lease held by a process of this host that no longer exists is due again at once.
    with sqlite3.connect(store.path) as connection:
        connection.execute("UPDATE outbox SET lessee = ? WHERE record_id = ?", (f"{os.uname().nodename}:999999999", 1))
    assert store.claim("exporter-0", limit=10, lease_s=60) == []
    assert store.release_dead_leases("exporter-0") == 1
    assert [r.seq for r in store.claim("exporter-0", limit=10, lease_s=60)] == [0]
    # A restarted container's application has the same PID (1) and host name: an earlier life's
    # lease is told apart by its incarnation token.
    with sqlite3.connect(store.path) as connection:
        connection.execute(
            "UPDATE outbox SET lessee = ? WHERE record_id = ?", (f"{os.uname().nodename}:{os.getpid()}:0ld1ife", 1)
        )
    assert store.release_dead_leases("exporter-0") == 1
    store.release("exporter-0", [1])
    store.claim("exporter-0", limit=10, lease_s=60)  # leased by this very process now: alive
    assert store.release_dead_leases("exporter-0") == 0


def test_the_size_limit_prunes_delivered_records_first_and_signs_what_went(make_spans, tmp_path: Path) -> None:
    provider, exporter = make_spans
    store = AuditStore(tmp_path / "audit.db")
    writer = StoreWriter(store, destinations=["exporter-0"], checkpoint_interval=0, checkpoint_records=10**9)
    tracer = provider.get_tracer("bulk")
    for i in range(400):
        with tracer.start_as_current_span(f"span {i}") as span:
            span.set_attribute("padding", "x" * 2000)
    spans = list(exporter.get_finished_spans())
    writer.export(spans[:200])
    delivered = store.claim("exporter-0", limit=150, lease_s=60)  # records 0..149 reach the destination
    store.acknowledge("exporter-0", [r.position for r in delivered])
    hashes = {r.seq: r.hash for r in store.iter_records()}
    writer._max_bytes = int(store.used_bytes() * 1.2)  # 100 more spans take it past the limit
    writer.export(spans[200:300])
    assert store.used_bytes() <= writer._max_bytes
    remaining = {r.seq for r in store.iter_records()}
    pruned = set(range(300)) - remaining
    assert pruned == set(range(len(pruned))) and 30 < len(pruned) < 150  # the oldest, all of them delivered
    assert writer.pruned_undelivered == 0
    checkpoint = next(r for r in store.iter_records() if CHECKPOINT_SPAN_NAME.encode() in r.body)
    attrs = dict((k, v[1]) for k, v in json.loads(checkpoint.body)["attributes"])
    assert attrs[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_REASON] == "prune"
    last = len(pruned) - 1
    assert json.loads(attrs[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_PRUNED]) == [[writer.stream, last, hashes[last]]]
    # When only undelivered records are left to prune, they go too: logged and counted, not silent.
    writer._max_bytes = int(store.used_bytes() * 0.5)
    writer.export(spans[300:301])
    assert writer.pruned_undelivered > 0


def test_the_pipeline_seals_stores_and_forwards_to_the_exporter(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    pipeline = otel_llm_audit.configure(
        span_exporters=[exporter], metric_readers=[], instrument=False, set_global=False,
        store=str(tmp_path / "audit.db"), content="none", checkpoint_interval=3600,
    )  # fmt: skip
    tracer = pipeline.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle request") as span:
        span.set_attribute("user.id", "nurse-7")
    assert pipeline.force_flush(10_000)
    received = list(exporter.get_finished_spans())
    assert [s.name for s in received] == ["handle request"]
    assert pipeline.store is not None
    store = pipeline.store.store
    (record,) = list(store.iter_records())
    assert (received[0].attributes or {})[semconv.LLM_AUDIT_INTEGRITY_HASH] == record.hash
    assert canonical.span_body(received[0]) == record.body
    assert store.pending() == 0  # acknowledged: out of the outbox
    user = store.connection().execute("SELECT user_id, name FROM records").fetchone()
    assert user == ("nurse-7", "handle request")
    pipeline.shutdown()
    assert [s.name for s in exporter.get_finished_spans()] == ["handle request", CHECKPOINT_SPAN_NAME]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_worker_writes_its_own_stream_and_every_record_is_delivered_once(tmp_path: Path) -> None:
    out = tmp_path / "delivered.jsonl"  # one file both processes append to: what was delivered, by anyone
    pipeline = otel_llm_audit.configure(
        span_exporters=[OtlpJsonFileSpanExporter(out)], metric_readers=[], instrument=False, set_global=False,
        store=str(tmp_path / "audit.db"), content="none", checkpoint_interval=3600,
    )  # fmt: skip
    tracer = pipeline.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("in the parent"):
        pass
    assert pipeline.force_flush(10_000)
    pid = os.fork()
    if pid == 0:  # the child: one span, stored, then gone without a goodbye (as a killed worker would be)
        code = 1
        try:
            assert pipeline.store is not None
            pipeline.store.forwarders[0]._stop.set()  # it dies before its forwarder gets to the span
            with tracer.start_as_current_span("in the child"):
                pass
            assert pipeline.store is not None
            pipeline.force_flush(30_000)  # stored; not delivered (its forwarder is gone): False, after 5 s
            code = 0 if pipeline.store.store.count() == 2 else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert pipeline.store is not None
    # The parent's forwarder delivers what the child stored, once.
    assert pipeline.store.forwarders[0].flush(30)
    spans, bad = read_spans(out)
    assert bad == 0 and sorted(s.name for s in spans) == ["in the child", "in the parent"]
    rows = pipeline.store.store.connection().execute("SELECT name, stream, seq FROM records ORDER BY id").fetchall()
    assert [(name, seq) for name, _, seq in rows] == [("in the parent", 0), ("in the child", 0)]
    assert rows[0][1] != rows[1][1]  # two writers, two chains
    pipeline.shutdown()


def test_a_full_store_queue_makes_the_worker_wait_instead_of_dropping_spans(
    make_spans, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK's batch queue drops spans when full; in front of the store, the worker waits for room."""
    import threading

    from otel_llm_audit.delivery.store_and_forward import StoreAndForwardProcessor
    from otel_llm_audit.processing.pipeline import COMPLETION_THREAD

    provider, exporter = make_spans
    tracer = provider.get_tracer("burst")
    for i in range(60):
        tracer.start_span(f"span {i}").end()
    spans = list(exporter.get_finished_spans())
    store = AuditStore(tmp_path / "audit.db")
    writer = StoreWriter(store, checkpoint_interval=0)
    slow_append = store.append

    def append_slowly(rows, destinations=()):  # a slow disk: the writer falls behind the burst
        time.sleep(0.02)
        return slow_append(rows, destinations)

    store.append = append_slowly  # type: ignore[method-assign]
    processor = StoreAndForwardProcessor(store, writer, [], queue_size=4)

    def as_worker() -> None:
        for span in spans:
            processor.on_end(span)

    worker = threading.Thread(target=as_worker, name=COMPLETION_THREAD)
    worker.start()
    worker.join(timeout=60)
    assert processor.force_flush(30_000)
    assert processor.dropped == 0
    assert sorted(json.loads(r.body)["name"] for r in store.iter_records()) == sorted(s.name for s in spans)

    # Any other thread waits only briefly: a writer that is stuck costs counted, logged spans.
    release = threading.Event()
    store.append = lambda rows, destinations=(): release.wait(30) and slow_append(rows, destinations)  # type: ignore[method-assign]
    with caplog.at_level("ERROR", logger="otel_llm_audit"):
        for span in spans[:20]:
            processor.on_end(span)
    release.set()
    assert processor.dropped > 0
    assert any("the audit store's queue stayed full" in r.getMessage() for r in caplog.records)
    processor.shutdown()


def test_bytes_attributes_survive_the_store_and_the_forwarder(make_spans, tmp_path: Path) -> None:
    provider, exporter = make_spans
    with provider.get_tracer("bin").start_as_current_span("binary") as span:
        span.set_attribute("blob", b"\x00\xff audit")
    (sdk_span,) = exporter.get_finished_spans()
    if "blob" not in (sdk_span.attributes or {}):
        pytest.skip("this opentelemetry-sdk drops bytes attribute values")
    store = AuditStore(tmp_path / "audit.db")
    StoreWriter(store, checkpoint_interval=0).export([sdk_span])
    (record,) = store.iter_records()
    rebuilt = readable_span_of(record, RESOURCE)
    assert (rebuilt.attributes or {})["blob"] == b"\x00\xff audit"
    ((span_json, resource, scope),) = _otlp_json_spans([rebuilt])
    assert canonical.otlp_body(span_json, resource, scope) == record.body  # the receiver's copy verifies


def test_a_write_that_fails_leaves_no_gap_in_the_chain_and_no_stale_resource(make_spans, tmp_path: Path) -> None:
    from otel_llm_audit.delivery.stored_spans import ResourceCache
    from otel_llm_audit.processing.verification import verify

    spans = _varied_spans(*make_spans)
    store = AuditStore(tmp_path / "audit.db")
    writer = StoreWriter(store, checkpoint_interval=0)
    real_append = store.append
    calls = {"n": 0}

    # A real rollback: the first call's transaction is rolled back by failing inside it.
    def failing_inside(rows, destinations=()):
        calls["n"] += 1
        if calls["n"] == 1:  # the resource row goes in, then the record fails: the transaction rolls back
            return real_append([dataclasses.replace(rows[0], body=None)], destinations)
        return real_append(rows, destinations)

    store.append = failing_inside  # type: ignore[method-assign]
    assert writer.export(spans).name == "FAILURE" and writer.lost == 2
    assert writer.export(spans).name == "SUCCESS"
    writer.shutdown()
    records = list(store.iter_records())
    assert [r.seq for r in records] == [0, 1, 2]  # the failed batch left no hole
    assert ResourceCache(store).sdk(records[0].resource_id).attributes["service.name"] == "ward-assistant"
    result = verify(store.path)
    assert result.ok and result.errors == 0


def test_spans_the_batch_processor_will_not_export_are_not_counted_against_the_queue(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

    from otel_llm_audit.delivery.store_and_forward import StoreAndForwardProcessor

    class RecordOnly(Sampler):
        def should_sample(self, *args, **kwargs) -> SamplingResult:
            return SamplingResult(Decision.RECORD_ONLY)

        def get_description(self) -> str:
            return "RecordOnly"

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=RecordOnly())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for _ in range(10):
        provider.get_tracer("t").start_span("recorded, not sampled").end()
    store = AuditStore(tmp_path / "audit.db")
    processor = StoreAndForwardProcessor(store, StoreWriter(store, checkpoint_interval=0), [], queue_size=4)
    for span in exporter.get_finished_spans():
        processor.on_end(span)
    assert (processor._queued, processor.dropped) == (0, 0)
    processor.shutdown()


def test_nothing_is_appended_after_the_final_checkpoint_and_nan_exports_as_json(make_spans, tmp_path: Path) -> None:
    from otel_llm_audit.delivery.stored_spans import export_requests

    provider, exporter = make_spans
    with provider.get_tracer("t").start_as_current_span("odd numbers") as span:
        span.set_attributes({"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf")})
    spans = list(exporter.get_finished_spans())
    store = AuditStore(tmp_path / "audit.db")
    writer = StoreWriter(store, checkpoint_interval=0)
    writer.export(spans)
    writer.shutdown()
    assert writer.export(spans).name == "FAILURE" and writer.lost == 1  # counted, not after the last checkpoint
    writer.checkpoint("interval")
    names = [json.loads(r.body)["name"] for r in store.iter_records()]
    assert names == ["odd numbers", CHECKPOINT_SPAN_NAME]
    (request,) = export_requests(store, store.iter_records())
    text = json.dumps(request, allow_nan=False)  # valid JSON for any reader
    values = {a["key"]: a["value"] for a in request["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]}
    assert (values["nan"], values["inf"], values["ninf"]) == (
        {"doubleValue": "NaN"},
        {"doubleValue": "Infinity"},
        {"doubleValue": "-Infinity"},
    )
    (first,) = [r for r in store.iter_records()][:1]
    span_json = json.loads(text)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    resource = request["resourceSpans"][0]["resource"]["attributes"]
    scope = request["resourceSpans"][0]["scopeSpans"][0]["scope"]
    assert canonical.otlp_body(span_json, resource, scope) == first.body  # and it still verifies
