"""``otel-llm-audit verify --partial``: the SIEM's routed copy (audit records and checkpoints only) verifies.

The collector routes to the SIEM only the spans with ``llm_audit.audit.record == true`` and
every checkpoint, so the SIEM holds a filtered subset of each stream. These tests make that copy
as the route does, from a real store's OTLP export, then tamper with it as someone holding the
file would, and assert the exact findings (kind, position, sequence number) and counts.

Layout of the standard store (``_build``): twelve spans, five of them audit records, and three
checkpoints, one stream::

    seq   0  1  2  3  4  5   6  7  8  9  10   11 12 13 14
          .  A  A  .  .  C   A  .  .  A  C    .  .  A  C(shutdown)

``A`` audit record, ``C`` checkpoint (each attests the seq before it), ``.`` filtered out by the
route. The routed copy (``_routed``) holds 8 records, one per position, in this order: seqs 1, 2
(line 1), 5, 6 (line 2), 9, 10 (line 3), 13, 14 (line 4); 7 sequence numbers are absent. The
checkpoint at seq 5 attests an absent record (seq 4); those at 10 and 14 attest present ones.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_llm_audit
from otel_llm_audit import semconv
from otel_llm_audit.cli import main
from otel_llm_audit.delivery.store import AuditStore
from otel_llm_audit.delivery.store_writer import CHECKPOINT_SPAN_NAME, StoreWriter
from otel_llm_audit.delivery.stored_spans import export_requests
from otel_llm_audit.processing import canonical
from otel_llm_audit.processing.sealing import UNKEYED, SealKey, load_seal_key
from otel_llm_audit.processing.verification import VerifyInputError, verify
from otel_llm_audit.processing.verify_findings import (
    CHECKPOINT_DELETED,
    CHECKPOINT_MISMATCH,
    DELETED,
    DUPLICATE,
    INSERTED,
    MODIFIED,
    NOT_CHECKED,
    UNATTESTED,
    WRONG_KEY,
    VerifyResult,
)

RESOURCE = Resource.create({"service.name": "ward-assistant", "service.instance.id": "pod-7"})
#: The spans (by index) that carry an audit event: seqs 1, 2, 6, 9 and 13 of the standard store.
AUDITED = (1, 2, 5, 8, 11)
#: The standard store's sequence numbers the route keeps (audit records and checkpoints).
ROUTED_SEQS = [1, 2, 5, 6, 9, 10, 13, 14]

_SEQUENCE = semconv.LLM_AUDIT_INTEGRITY_SEQUENCE
_STREAM = semconv.LLM_AUDIT_INTEGRITY_STREAM
_PREV_HASH = semconv.LLM_AUDIT_INTEGRITY_PREV_HASH
_HASH = semconv.LLM_AUDIT_INTEGRITY_HASH


# Building real stores and their routed copies --------------------------------------------------


def _spans(count: int) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("app.scope", "1.0")
    for i in range(count):
        with tracer.start_as_current_span(f"chat gpt-4o {i}") as span:
            span.set_attribute(semconv.USER_ID, f"u-{i % 3}")
            span.set_attribute("i", i)
            if i in AUDITED:
                span.set_attribute(semconv.LLM_AUDIT_AUDIT_RECORD, True)
    spans = list(exporter.get_finished_spans())
    provider.shutdown()
    return spans


def _build(path: Path, key: SealKey = UNKEYED) -> Path:
    """The standard store (see the module docstring)."""
    store = AuditStore(path)
    writer = StoreWriter(store, key=key, resource=RESOURCE, checkpoint_interval=0, checkpoint_records=10**9)
    for i, span in enumerate(_spans(12)):
        writer.export([span])
        if i in (4, 8):
            writer.checkpoint("interval")
    writer.shutdown()
    store.close()
    return path


def _export(store_path: Path, out: Path, batch: int = 4) -> Path:
    store = AuditStore(store_path, readonly=True)
    lines = [json.dumps(request) for request in export_requests(store, store.iter_records(), batch=batch)]
    store.close()
    out.write_text("\n".join(lines) + "\n")
    return out


def _value(span: dict[str, Any], key: str) -> Any:
    for item in span.get("attributes") or ():
        if item["key"] == key:
            return next(iter(item["value"].values()))
    return None


def _is_routed(span: dict[str, Any]) -> bool:
    """What the collector's SIEM route keeps. Checkpoints by name: older writers did not flag them."""
    return _value(span, semconv.LLM_AUDIT_AUDIT_RECORD) is True or span.get("name") == CHECKPOINT_SPAN_NAME


def _route(source: Path, out: Path) -> Path:
    """The SIEM's copy of an OTLP JSON lines file: only the routed spans, empty groups and lines dropped."""
    routed = []
    for request in _lines(source):
        for resource_spans in request["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                scope_spans["spans"] = [span for span in scope_spans["spans"] if _is_routed(span)]
            resource_spans["scopeSpans"] = [group for group in resource_spans["scopeSpans"] if group["spans"]]
        request["resourceSpans"] = [group for group in request["resourceSpans"] if group["scopeSpans"]]
        if request["resourceSpans"]:
            routed.append(request)
    _write(out, routed)
    return out


def _routed(tmp_path: Path, key: SealKey = UNKEYED) -> Path:
    """The standard store, exported four spans a line, as the SIEM receives it."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    exported = _export(_build(tmp_path / "audit.db", key), tmp_path / "export.jsonl")
    return _route(exported, tmp_path / "siem.jsonl")


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, lines: list[Any]) -> None:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")


def _flat(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [span for rs in request["resourceSpans"] for ss in rs["scopeSpans"] for span in ss["spans"]]


def _span_at(lines: list[dict[str, Any]], seq: int) -> dict[str, Any]:
    """The span of ``seq`` (one stream), to edit in place."""
    (span,) = [span for line in lines for span in _flat(line) if _value(span, _SEQUENCE) == str(seq)]
    return span


def _drop(lines: list[dict[str, Any]], seq: int) -> list[dict[str, Any]]:
    """``lines`` without the span of ``seq`` (as if the route had not taken it, or someone deleted it)."""
    kept = [span for line in lines for span in _flat(line) if _value(span, _SEQUENCE) != str(seq)]
    assert len(kept) == sum(len(_flat(line)) for line in lines) - 1
    for line in lines:
        for resource_spans in line["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                scope_spans["spans"] = [span for span in scope_spans["spans"] if _value(span, _SEQUENCE) != str(seq)]
            resource_spans["scopeSpans"] = [group for group in resource_spans["scopeSpans"] if group["spans"]]
    return lines


def _set(span: dict[str, Any], key: str, value: dict[str, Any]) -> None:
    for item in span["attributes"]:
        if item["key"] == key:
            item["value"] = value
            return
    raise AssertionError(f"no attribute {key}")


def _rehash(lines: list[dict[str, Any]], seq: int) -> None:
    """Recompute the plain SHA-256 seal of ``seq`` from its (edited) content: all one can do without a key."""
    for request in lines:
        for resource_spans in request["resourceSpans"]:
            resource = resource_spans["resource"]["attributes"]
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    if _value(span, _SEQUENCE) != str(seq):
                        continue
                    body = canonical.otlp_body(span, resource, scope_spans["scope"])
                    stream, prev = _value(span, _STREAM), _value(span, _PREV_HASH)
                    _set(span, _HASH, {"stringValue": UNKEYED.record_hash(stream, seq, prev, body)})


def _found(result: VerifyResult) -> list[tuple[str, int | None, int | None]]:
    return [(f.kind, f.position, f.seq) for f in result.findings]


@pytest.fixture
def hmac_key(tmp_path: Path) -> tuple[Path, SealKey]:
    path = tmp_path / "seal.key"
    path.write_text(secrets.token_hex(32) + "\n")
    return path, load_seal_key(path)


@pytest.fixture(autouse=True)
def _no_configured_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_LLM_AUDIT_SEAL_KEY_FILE", raising=False)


# An untampered routed copy verifies -------------------------------------------------------------


def test_routed_copy_of_the_standard_store_verifies_with_absent_counts(
    tmp_path: Path, hmac_key: tuple[Path, SealKey]
) -> None:
    key_path, key = hmac_key
    siem = _routed(tmp_path, key)
    seqs = [int(_value(span, _SEQUENCE)) for line in _lines(siem) for span in _flat(line)]
    assert seqs == ROUTED_SEQS
    result = verify(siem, key=key, partial=True)
    assert result.findings == []
    assert (result.ok, result.partial, result.any_order) == (True, True, True)
    assert (result.records, result.checkpoints, result.key) == (8, 3, "hmac-sha256")
    (stream,) = result.streams
    assert (stream.records, stream.absent, stream.first_seq, stream.last_seq) == (8, 7, 1, 14)
    assert (stream.checkpoints, stream.last_checkpoint) == (3, "shutdown")
    assert main(["verify", str(siem), "--partial", "--key", str(key_path)]) == 0
    # Without the key: the same, plus what could not be checked.
    unkeyed = verify(siem, partial=True)
    assert unkeyed.ok
    assert [(f.kind, f.count) for f in unkeyed.findings] == [(NOT_CHECKED, 8), (NOT_CHECKED, 3)]


def test_routed_copies_of_two_processes_made_by_configure_verify(
    tmp_path: Path, hmac_key: tuple[Path, SealKey]
) -> None:
    # Two applications with the SDK's own audit events (decisions, policy events), each with its
    # store; the SIEM's copy has both, interleaved batch by batch as a collector would forward them.
    key_path, key = hmac_key
    exports = []
    for name, steps, every in (("triage", 12, 4), ("billing", 7, 3)):
        path = tmp_path / f"{name}.db"
        pipeline = otel_llm_audit.configure(
            span_exporters=[],
            metric_readers=[],
            instrument=False,
            set_global=False,
            store=str(path),
            content="none",
            seal_key_file=str(key_path),
            checkpoint_interval=3600,
            checkpoint_records=5,
        )
        tracer = pipeline.tracer_provider.get_tracer("app")
        for i in range(steps):
            with tracer.start_as_current_span(f"{name} step {i}"):
                if i % every == 0:
                    if name == "triage":
                        otel_llm_audit.record_decision("triage", "escalate", options=["escalate", "wait"])
                    else:
                        otel_llm_audit.record_policy_event("budget", "flagged", source="billing-guard")
            pipeline.force_flush()  # one export batch a span: a count checkpoint every five
        pipeline.shutdown()
        exports.append(_lines(_export(path, tmp_path / f"{name}.jsonl", batch=3)))
    full = tmp_path / "both.jsonl"
    _write(full, [line for pair in zip(*exports, strict=False) for line in pair] + exports[0][len(exports[1]) :])
    siem = _route(full, tmp_path / "siem.jsonl")

    def per_stream(path: Path) -> Counter[str]:
        return Counter(_value(span, _STREAM) for line in _lines(path) for span in _flat(line))

    total, kept = per_stream(full), per_stream(siem)
    # triage: 12 spans, 3 decisions, checkpoints after spans 5 and 10 (count) and at shutdown;
    # billing: 7 spans, 3 policy events, one count checkpoint and the shutdown one.
    assert sorted(total.values()) == [7 + 2, 12 + 3]
    assert sorted(kept.values()) == [3 + 2, 3 + 3]
    result = verify(siem, key=key, partial=True)
    assert result.findings == []
    assert {s.stream: (s.records, s.absent) for s in result.streams} == {
        stream: (kept[stream], total[stream] - kept[stream]) for stream in total
    }
    assert sorted(s.absent for s in result.streams) == [4, 9]
    assert main(["verify", str(siem), "--partial", "--key", str(key_path)]) == 0


def test_without_partial_the_routed_copy_is_reported_as_deleted(tmp_path: Path) -> None:
    # Why the flag exists: every span the route did not take looks deleted.
    siem = _routed(tmp_path)
    result = verify(siem)
    assert _found(result) == [(DELETED, 1, 0), (DELETED, 3, 3), (DELETED, 5, 7), (DELETED, 7, 11)]
    assert [(f.seq, f.seq_end, f.count) for f in result.findings] == [(0, 0, 1), (3, 4, 2), (7, 8, 2), (11, 12, 2)]
    assert result.streams[0].absent == 0
    assert main(["verify", str(siem)]) == 1
    assert main(["verify", str(siem), "--partial"]) == 0


# Tampering with a routed copy -------------------------------------------------------------------


def test_modified_record_with_hmac_is_caught_at_that_record(tmp_path: Path, hmac_key: tuple[Path, SealKey]) -> None:
    key_path, key = hmac_key
    siem = _routed(tmp_path, key)
    lines = _lines(siem)
    _set(_span_at(lines, 6), semconv.USER_ID, {"stringValue": "u-innocent"})
    _rehash(lines, 6)  # a plain SHA-256 is no HMAC: rehashing without the key does not help
    _write(siem, lines)
    result = verify(siem, key=key, partial=True)
    assert _found(result) == [(MODIFIED, 4, 6)]
    assert result.findings[0].line == 2
    assert result.streams[0].absent == 7
    assert main(["verify", str(siem), "--partial", "--key", str(key_path)]) == 1


def test_modified_record_without_key_is_caught_unless_it_was_rehashed_and_its_successor_is_absent(
    tmp_path: Path,
) -> None:
    siem = _routed(tmp_path)
    pristine = _lines(siem)

    # Edited, not rehashed: its own seal does not recompute.
    lines = json.loads(json.dumps(pristine))
    _set(_span_at(lines, 2), semconv.USER_ID, {"stringValue": "u-innocent"})
    _write(siem, lines)
    assert _found(verify(siem, partial=True)) == [(MODIFIED, 2, 2)]

    # Edited and rehashed, the next seq present in the copy: the link to it breaks.
    lines = json.loads(json.dumps(pristine))
    _set(_span_at(lines, 1), semconv.USER_ID, {"stringValue": "u-innocent"})
    _rehash(lines, 1)
    _write(siem, lines)
    result = verify(siem, partial=True)
    assert _found(result) == [(MODIFIED, 1, 1)]
    assert result.findings[0].message == (
        "its hash is not the prev_hash of seq 2 (position 2): the record was rewritten and rehashed"
    )

    # Edited and rehashed, the next seq absent (filtered out): nothing in this copy can tell.
    # This is the limit docs/verify.md states: without a key, verify the store or a full export.
    lines = json.loads(json.dumps(pristine))
    _set(_span_at(lines, 2), semconv.USER_ID, {"stringValue": "u-innocent"})
    _rehash(lines, 2)
    _write(siem, lines)
    result = verify(siem, partial=True)
    assert result.findings == []
    assert main(["verify", str(siem), "--partial"]) == 0
    # The full export would have caught it: seq 3 chains to the original seq 2.
    exported = _lines(tmp_path / "export.jsonl")
    _set(_span_at(exported, 2), semconv.USER_ID, {"stringValue": "u-innocent"})
    _rehash(exported, 2)
    _write(tmp_path / "export.jsonl", exported)
    assert _found(verify(tmp_path / "export.jsonl")) == [(MODIFIED, 3, 2)]


def test_modified_attested_record_is_caught_at_the_record_and_its_checkpoint(
    tmp_path: Path, hmac_key: tuple[Path, SealKey]
) -> None:
    # With HMAC: the edit is MODIFIED at the record; its hash is unchanged, so the checkpoint
    # attesting it (seq 10) still matches.
    _, key = hmac_key
    siem = _routed(tmp_path, key)
    lines = _lines(siem)
    _set(_span_at(lines, 9), semconv.USER_ID, {"stringValue": "u-innocent"})
    _write(siem, lines)
    assert _found(verify(siem, key=key, partial=True)) == [(MODIFIED, 5, 9)]

    # Without a key, edited and rehashed: the link to the checkpoint breaks, and the checkpoint
    # attests the old hash.
    siem = _routed(tmp_path / "unkeyed")
    lines = _lines(siem)
    _set(_span_at(lines, 9), semconv.USER_ID, {"stringValue": "u-innocent"})
    _rehash(lines, 9)
    _write(siem, lines)
    result = verify(siem, partial=True)
    assert _found(result) == [(MODIFIED, 5, 9), (CHECKPOINT_MISMATCH, 6, 10)]
    assert result.findings[0].message == (
        "its hash is not the prev_hash of seq 10 (position 6): the record was rewritten and rehashed"
    )

    # Rehashing the checkpoint record too (its prev_hash set to the new hash) mends the link, but
    # not what the checkpoint attests.
    attested = _value(_span_at(lines, 9), _HASH)
    _set(_span_at(lines, 10), _PREV_HASH, {"stringValue": attested})
    _rehash(lines, 10)
    _write(siem, lines)
    assert _found(verify(siem, partial=True)) == [(CHECKPOINT_MISMATCH, 6, 10)]


def test_modified_attested_record_with_ed25519_is_caught_by_the_signed_checkpoint(tmp_path: Path) -> None:
    pytest.importorskip("cryptography", reason="Ed25519 checkpoint signatures need the `cryptography` package")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    private_path, public_path = tmp_path / "seal.pem", tmp_path / "seal.pub.pem"
    private_path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public_path.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    siem = _routed(tmp_path, load_seal_key(private_path))
    public = load_seal_key(public_path)
    assert verify(siem, key=public, partial=True).findings == []
    lines = _lines(siem)
    # seq 13, attested by the shutdown checkpoint: rehashed, and the checkpoint record re-linked.
    _set(_span_at(lines, 13), semconv.USER_ID, {"stringValue": "u-innocent"})
    _rehash(lines, 13)
    _set(_span_at(lines, 14), _PREV_HASH, {"stringValue": _value(_span_at(lines, 13), _HASH)})
    _rehash(lines, 14)
    # seq 6, attested by nothing present: rehashed, its successor absent.
    _set(_span_at(lines, 6), semconv.USER_ID, {"stringValue": "u-innocent"})
    _rehash(lines, 6)
    _write(siem, lines)
    # Only the signed checkpoint's attestation is authentic: seq 13 is caught, seq 6 is not.
    assert _found(verify(siem, key=public, partial=True)) == [(CHECKPOINT_MISMATCH, 8, 14)]


def test_deleted_checkpoint_is_caught_by_the_checkpoint_chain(tmp_path: Path, hmac_key: tuple[Path, SealKey]) -> None:
    _, key = hmac_key
    siem = _routed(tmp_path, key)
    pristine = _lines(siem)

    # The middle checkpoint (seq 10, line 3): the next one's prev_signature names it.
    _write(siem, _drop(json.loads(json.dumps(pristine)), 10))
    assert [int(_value(s, _SEQUENCE)) for line in _lines(siem) for s in _flat(line)] == [1, 2, 5, 6, 9, 13, 14]
    result = verify(siem, key=key, partial=True)
    assert _found(result) == [(CHECKPOINT_DELETED, 7, 14)]
    assert result.streams[0].absent == 8
    assert main(["verify", str(siem), "--partial"]) == 1

    # The first checkpoint (seq 5): the second one's prev_signature is not empty.
    _write(siem, _drop(json.loads(json.dumps(pristine)), 5))
    assert _found(verify(siem, key=key, partial=True)) == [(CHECKPOINT_DELETED, 5, 10)]

    # The last one (shutdown): nothing after it can tell, but the stream no longer ends cleanly.
    _write(siem, _drop(json.loads(json.dumps(pristine)), 14))
    result = verify(siem, key=key, partial=True)
    assert result.ok
    assert _found(result) == [(UNATTESTED, 7, 11)]
    unattested = result.findings[0]
    assert (unattested.seq_end, unattested.count) == (13, 1)  # seqs 11..13, of which only 13 is in the copy


def test_forged_records_with_another_hmac_key(tmp_path: Path, hmac_key: tuple[Path, SealKey]) -> None:
    _, key = hmac_key
    siem = _routed(tmp_path, key)
    other_path = tmp_path / "other.key"
    other_path.write_text(secrets.token_hex(32))
    other = load_seal_key(other_path)
    forged_copy = _routed(tmp_path / "forger", other)

    # A whole stream sealed with another key (the forger's own application), added to the copy.
    _write(siem, [*_lines(siem), *_lines(forged_copy)])
    result = verify(siem, key=key, partial=True)
    assert _found(result) == [(WRONG_KEY, 9, 1)]
    assert (result.findings[0].seq_end, result.findings[0].count) == (14, 8)
    assert main(["verify", str(siem), "--partial"]) == 0  # (no key: nothing to tell them apart)

    # One record forged into the real stream (its stream id and key id copied, the HMAC made with
    # the forger's key), claiming a sequence number the copy does not hold.
    lines = _lines(siem)[:4]  # the real copy, without the forged stream
    forged = _lines(forged_copy)[1]
    stream, key_id = _value(_flat(lines[0])[0], _STREAM), key.key_id
    (span,) = [s for s in _flat(forged) if _value(s, _SEQUENCE) == "6"]
    forged["resourceSpans"][0]["scopeSpans"] = [
        group for group in forged["resourceSpans"][0]["scopeSpans"] if span in group["spans"]
    ]
    _set(span, _STREAM, {"stringValue": stream})
    _set(span, _SEQUENCE, {"intValue": "7"})
    _set(span, semconv.LLM_AUDIT_INTEGRITY_KEY_ID, {"stringValue": key_id})
    resource = forged["resourceSpans"][0]["resource"]["attributes"]
    scope = forged["resourceSpans"][0]["scopeSpans"][0]["scope"]
    _set(
        span,
        _HASH,
        {
            "stringValue": other.record_hash(
                stream, 7, _value(span, _PREV_HASH), canonical.otlp_body(span, resource, scope)
            )
        },
    )
    _write(siem, [*lines, forged])
    result = verify(siem, key=key, partial=True)
    assert _found(result) == [(MODIFIED, 9, 7)]
    assert result.findings[0].message == "its HMAC does not verify with the key: the record was changed (or forged)"

    # The same record claiming a sequence number the copy holds (seq 6): a second record for it.
    _set(span, _SEQUENCE, {"intValue": "6"})
    _set(
        span,
        _HASH,
        {
            "stringValue": other.record_hash(
                stream, 6, _value(span, _PREV_HASH), canonical.otlp_body(span, resource, scope)
            )
        },
    )
    _write(siem, [*lines, forged])
    result = verify(siem, key=key, partial=True)
    assert _found(result) == [(INSERTED, 9, 6)]
    assert result.findings[0].related_position == 4


def test_duplicated_line_is_a_redelivery(tmp_path: Path, hmac_key: tuple[Path, SealKey]) -> None:
    key_path, key = hmac_key
    siem = _routed(tmp_path, key)
    lines = _lines(siem)
    _write(siem, [*lines, lines[1]])  # a batch the collector forwarded twice
    result = verify(siem, key=key, partial=True)
    assert result.ok
    assert _found(result) == [(DUPLICATE, 9, 5), (DUPLICATE, 10, 6)]
    assert [f.related_position for f in result.findings] == [3, 4]
    assert (result.streams[0].records, result.streams[0].absent) == (10, 7)
    assert main(["verify", str(siem), "--partial", "--key", str(key_path)]) == 0


def test_partial_implies_any_order(tmp_path: Path) -> None:
    siem = _routed(tmp_path)
    lines = _lines(siem)
    _write(siem, [lines[2], lines[0], lines[3], lines[1]])  # a collector's batching
    result = verify(siem, partial=True)
    assert (result.findings, result.any_order) == ([], True)


# The command line ---------------------------------------------------------------------------------


def test_cli_partial_json_carries_the_absent_counts(
    tmp_path: Path, hmac_key: tuple[Path, SealKey], capsys: pytest.CaptureFixture[str]
) -> None:
    key_path, key = hmac_key
    siem = _routed(tmp_path, key)
    assert main(["verify", str(siem), "--partial", "--key", str(key_path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document == verify(siem, key=key, partial=True).to_json()
    assert (document["ok"], document["partial"], document["any_order"], document["findings"]) == (True, True, True, [])
    (stream,) = document["streams"]
    assert (stream["records"], stream["absent"], stream["first_seq"], stream["last_seq"]) == (8, 7, 1, 14)
    # Without --partial the summary has no absent records: the missing ones are findings.
    assert main(["verify", str(siem), "--key", str(key_path), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert (document["partial"], document["any_order"], document["streams"][0]["absent"]) == (False, False, 0)
    assert document["counts"] == {DELETED: 4}


def test_cli_partial_terminal_report_has_an_absent_column(
    tmp_path: Path, hmac_key: tuple[Path, SealKey], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key_path, key = hmac_key
    siem = _routed(tmp_path, key)
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["verify", str(siem), "--partial", "--key", str(key_path)]) == 0
    out = capsys.readouterr().out
    assert f"{siem} (otlp, partial copy): 8 records in 1 stream, 3 checkpoints, checked with hmac-sha256 key" in out
    header = next(line for line in out.splitlines() if line.startswith("stream "))
    assert header.split() == ["stream", "records", "absent", "seqs", "checkpoints", "last", "checkpoint", "seal"]
    stream = verify(siem, key=key, partial=True).streams[0].stream
    row = next(line for line in out.splitlines() if line.startswith(stream[:12]))
    assert row.split()[1:5] == ["8", "7", "1..14", "3"]


def test_partial_is_refused_on_a_store_where_it_would_hide_deletions(tmp_path: Path) -> None:
    """A store holds whole chains; --partial there would turn a deletion into "absent"."""
    db = tmp_path / "audit.db"
    AuditStore(db).close()
    with pytest.raises(VerifyInputError, match="is an audit store, which holds every record of its streams"):
        verify(str(db), partial=True)
    assert main(["verify", str(db), "--partial"]) == 2
