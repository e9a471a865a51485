"""``otel-llm-audit verify``: every kind of tampering is detected and located exactly; untouched trails verify clean.

The stores are real (a ``StoreWriter`` fed real SDK spans, or ``configure(store=...)``); the
tampering is what an attacker with the file would do: SQL on the store (editing a body,
recomputing the plain SHA-256 seals, deleting, inserting or swapping rows), or editing the
lines of an exported OTLP JSON file. Each test asserts the exact findings: kind, position and
sequence number (and line, for files).

Layout of the standard store (``_build``): ten spans and two checkpoints, one stream::

    position  1-5    seq 0-4    spans
    position  6      seq 5      checkpoint (interval), attests seq 4
    position  7-11   seq 6-10   spans
    position  12     seq 11     checkpoint (shutdown), attests seq 10
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich.console import Console

import otel_llm_audit
from otel_llm_audit import semconv
from otel_llm_audit.cli import main
from otel_llm_audit.cli.verify import render
from otel_llm_audit.delivery.store import AuditStore
from otel_llm_audit.delivery.store_writer import StoreWriter
from otel_llm_audit.delivery.stored_spans import export_requests
from otel_llm_audit.processing import canonical
from otel_llm_audit.processing.sealing import GENESIS, UNKEYED, SealKey, load_seal_key
from otel_llm_audit.processing.verification import verify
from otel_llm_audit.processing.verify_findings import (
    CHECKPOINT_DELETED,
    CHECKPOINT_MISMATCH,
    CHECKPOINT_SIGNATURE,
    DELETED,
    DUPLICATE,
    ERROR,
    INSERTED,
    MODIFIED,
    NOT_CHECKED,
    PRUNED,
    REORDERED,
    UNATTESTED,
    UNREADABLE,
    WRONG_KEY,
    VerifyInputError,
    VerifyResult,
)

RESOURCE = Resource.create({"service.name": "ward-assistant", "service.instance.id": "pod-7"})


# Building real stores -------------------------------------------------------------------------


def _spans(count: int, padding: int = 0) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("app.scope", "1.0")
    for i in range(count):
        with tracer.start_as_current_span(f"chat gpt-4o {i}") as span:
            span.set_attribute(semconv.USER_ID, f"u-{i % 3}")
            span.set_attribute("i", i)
            if padding:
                span.set_attribute("padding", "x" * padding)
    spans = list(exporter.get_finished_spans())
    provider.shutdown()
    return spans


def _build(path: Path, key: SealKey = UNKEYED) -> Path:
    """The standard store (see the module docstring)."""
    store = AuditStore(path)
    writer = StoreWriter(store, key=key, resource=RESOURCE, checkpoint_interval=0, checkpoint_records=10**9)
    for i, span in enumerate(_spans(10)):
        writer.export([span])
        if i == 4:
            writer.checkpoint("interval")
    writer.shutdown()
    store.close()
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return _build(tmp_path / "audit.db")


@pytest.fixture
def hmac_key(tmp_path: Path) -> tuple[Path, SealKey]:
    path = tmp_path / "seal.key"
    path.write_text(secrets.token_hex(32) + "\n")
    return path, load_seal_key(path)


def _ed25519_pems(tmp_path: Path, name: str) -> tuple[Path, Path]:
    pytest.importorskip("cryptography", reason="Ed25519 checkpoint signatures need the `cryptography` package")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    private_path, public_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.pub.pem"
    private_path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public_path.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private_path, public_path


@pytest.fixture
def ed25519(tmp_path: Path) -> tuple[SealKey, SealKey]:
    """(the private key the writer signs with, the public key a verifier holds)."""
    private_path, public_path = _ed25519_pems(tmp_path, "seal")
    return load_seal_key(private_path), load_seal_key(public_path)


# Tampering, as an attacker with the file would ----------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _document(path: Path, position: int) -> dict[str, Any]:
    with _connect(path) as connection:
        (body,) = connection.execute("SELECT body FROM records WHERE id = ?", (position,)).fetchone()
    return dict(json.loads(body))


def _set_attribute(document: dict[str, Any], key: str, typed: list[Any]) -> None:
    for pair in document["attributes"]:
        if pair[0] == key:
            pair[1] = typed
            return
    raise AssertionError(f"no attribute {key}")


def _edit(path: Path, position: int, change: Callable[[dict[str, Any]], None], *, rehash: bool = False) -> None:
    """Change a record's body; with ``rehash``, recompute its plain SHA-256 seal too (no key needed)."""
    document = _document(path, position)
    change(document)
    body = canonical.encode(document)
    connection = _connect(path)
    connection.execute("UPDATE records SET body = ? WHERE id = ?", (body, position))
    if rehash:
        stream, seq, prev = connection.execute(
            "SELECT stream, seq, prev_hash FROM records WHERE id = ?", (position,)
        ).fetchone()
        digest = UNKEYED.record_hash(stream, seq, prev, body)
        connection.execute("UPDATE records SET hash = ? WHERE id = ?", (digest, position))
    connection.close()


def _rewrite_chain(path: Path, from_position: int) -> None:
    """Recompute every SHA-256 seal and link from ``from_position`` on: a consistent rewrite without the key."""
    connection = _connect(path)
    (seq,) = connection.execute("SELECT seq FROM records WHERE id = ?", (from_position,)).fetchone()
    before = connection.execute("SELECT hash FROM records WHERE seq = ?", (seq - 1,)).fetchone()
    prev = before[0] if before else GENESIS
    rows = connection.execute(
        "SELECT id, stream, seq, body FROM records WHERE id >= ? ORDER BY seq", (from_position,)
    ).fetchall()
    for position, stream, seq, body in rows:
        digest = UNKEYED.record_hash(stream, seq, prev, body)
        connection.execute("UPDATE records SET prev_hash = ?, hash = ? WHERE id = ?", (prev, digest, position))
        prev = digest
    connection.close()


def _delete(path: Path, *positions: int) -> None:
    connection = _connect(path)
    connection.executemany("DELETE FROM records WHERE id = ?", [(p,) for p in positions])
    connection.close()


def _copy_row(path: Path, position: int, new_position: int, **changes: Any) -> None:
    """Insert a copy of a record at ``new_position`` (the unique (stream, seq) index dropped first)."""
    connection = _connect(path)
    connection.execute("DROP INDEX IF EXISTS records_stream_seq")
    columns = [row[1] for row in connection.execute("PRAGMA table_info(records)")]
    values = connection.execute("SELECT * FROM records WHERE id = ?", (position,)).fetchone()
    row = dict(zip(columns, values, strict=True))
    row.update(changes, id=new_position)
    placeholders = ", ".join("?" * len(row))
    connection.execute(f"INSERT INTO records ({', '.join(row)}) VALUES ({placeholders})", tuple(row.values()))
    connection.close()


# Reading results ------------------------------------------------------------------------------


def _found(result: VerifyResult, severity: str | None = None) -> list[tuple[str, int | None, int | None]]:
    return [(f.kind, f.position, f.seq) for f in result.findings if severity is None or f.severity == severity]


def _one(result: VerifyResult, kind: str) -> Any:
    matching = [f for f in result.findings if f.kind == kind]
    assert len(matching) == 1, result.findings
    return matching[0]


# Untouched stores verify clean ----------------------------------------------------------------


def test_untouched_store_without_key_verifies_clean(db: Path) -> None:
    result = verify(db)
    assert result.findings == []
    assert result.ok
    assert (result.records, result.checkpoints, result.key) == (12, 2, "none")
    (stream,) = result.streams
    assert (stream.records, stream.first_seq, stream.last_seq, stream.checkpoints) == (12, 0, 11, 2)
    assert (stream.last_checkpoint, stream.algorithm, stream.key_id) == ("shutdown", "sha256", "")
    assert main(["verify", str(db)]) == 0


def test_untouched_store_with_hmac_key_verifies_clean(tmp_path: Path, hmac_key: tuple[Path, SealKey]) -> None:
    key_path, key = hmac_key
    db = _build(tmp_path / "audit.db", key)
    result = verify(db, key=load_seal_key(key_path))
    assert result.findings == []
    assert (result.key, result.key_id) == ("hmac-sha256", key.key_id)
    assert main(["verify", str(db), "--key", str(key_path)]) == 0
    # Without the key: nothing is wrong, but it says what it could not check.
    unkeyed = verify(db)
    assert unkeyed.ok
    assert [(f.kind, f.count) for f in unkeyed.findings] == [(NOT_CHECKED, 12), (NOT_CHECKED, 2)]
    assert "HMAC-sealed records were not recomputed" in unkeyed.findings[0].message
    assert "checkpoint signatures were not checked" in unkeyed.findings[1].message


def test_untouched_store_with_ed25519_verifies_clean_with_the_public_key(
    tmp_path: Path, ed25519: tuple[SealKey, SealKey]
) -> None:
    private, public = ed25519
    db = _build(tmp_path / "audit.db", private)
    result = verify(db, key=public)
    assert result.findings == []
    assert (result.key, result.key_id) == ("ed25519", private.key_id)
    unkeyed = verify(db)
    assert [(f.kind, f.count) for f in unkeyed.findings] == [(NOT_CHECKED, 2)]


def test_store_made_by_configure_and_its_export_verify_clean(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    pipeline = otel_llm_audit.configure(
        span_exporters=[],
        metric_readers=[],
        instrument=False,
        set_global=False,
        store=str(path),
        content="none",
        checkpoint_interval=3600,
        checkpoint_records=7,
    )
    tracer = pipeline.tracer_provider.get_tracer("app")
    for i in range(20):
        with tracer.start_as_current_span(f"step {i}") as span:
            span.set_attribute("i", i)
            if i % 5 == 4:  # several export batches, so several count checkpoints
                pipeline.force_flush()
    pipeline.shutdown()
    result = verify(path)
    assert result.findings == []
    assert result.records == 20 + result.checkpoints
    assert result.checkpoints >= 2
    exported = _export(path, tmp_path / "export.jsonl", batch=3)
    assert verify(exported).findings == []


def test_two_writers_interleaved_in_one_store(tmp_path: Path) -> None:
    # Two processes sharing a store: two streams, their records interleaved by position.
    path = tmp_path / "audit.db"
    store = AuditStore(path)
    writers = [StoreWriter(store, resource=RESOURCE, checkpoint_interval=0, checkpoint_records=10**9) for _ in range(2)]
    for i, span in enumerate(_spans(8)):
        writers[i % 2].export([span])
    for writer in writers:
        writer.shutdown()
    assert verify(path).findings == []
    _delete(path, 5)  # the first writer's third span: seq 2 of its stream, between its positions 3 and 7
    result = verify(path)
    assert _found(result) == [(DELETED, 7, 2)]
    assert result.findings[0].stream == writers[0].stream
    assert [(s.stream, s.records) for s in result.streams] == [(writers[0].stream, 4), (writers[1].stream, 5)]


# Each case, located exactly (store) ----------------------------------------------------------


def test_body_modified_is_caught_at_that_record(db: Path) -> None:
    _edit(db, 3, lambda doc: _set_attribute(doc, semconv.USER_ID, ["s", "u-innocent"]))
    result = verify(db)
    assert _found(result) == [(MODIFIED, 3, 2)]
    assert "does not recompute" in result.findings[0].message
    assert main(["verify", str(db)]) == 1


def test_body_modified_and_rehashed_without_key_is_caught_by_the_link(db: Path) -> None:
    _edit(db, 3, lambda doc: _set_attribute(doc, "i", ["i", "200"]), rehash=True)
    result = verify(db)
    assert _found(result) == [(MODIFIED, 3, 2)]
    assert "is not the prev_hash of seq 3 (position 4)" in result.findings[0].message


def test_body_modified_and_rehashed_with_hmac_is_caught_exactly(tmp_path: Path, hmac_key: tuple[Path, SealKey]) -> None:
    _, key = hmac_key
    db = _build(tmp_path / "audit.db", key)
    _edit(db, 9, lambda doc: _set_attribute(doc, "i", ["i", "200"]), rehash=True)
    result = verify(db, key=key)
    assert _found(result) == [(MODIFIED, 9, 8)]
    assert "HMAC does not verify" in result.findings[0].message


def test_consistent_rewrite_without_key_is_caught_by_the_checkpoints(db: Path) -> None:
    # Seq 2 changed and every seal after it recomputed: every link holds, but both checkpoints
    # attest the old hashes of seq 4 and seq 10.
    _edit(db, 3, lambda doc: _set_attribute(doc, "i", ["i", "200"]))
    _rewrite_chain(db, 3)
    result = verify(db)
    assert _found(result) == [(CHECKPOINT_MISMATCH, 6, 5), (CHECKPOINT_MISMATCH, 12, 11)]
    assert "for seq 4" in result.findings[0].message
    assert "records up to seq 4 were rewritten" in result.findings[0].message
    assert "records after seq 5 up to seq 10 were rewritten" in result.findings[1].message


def test_attested_hash_mismatch_with_ed25519(tmp_path: Path, ed25519: tuple[SealKey, SealKey]) -> None:
    private, public = ed25519
    db = _build(tmp_path / "audit.db", private)
    _edit(db, 8, lambda doc: _set_attribute(doc, semconv.USER_ID, ["s", "u-innocent"]))
    _rewrite_chain(db, 8)  # SHA-256 records: anyone can rehash them, not re-sign the checkpoint
    result = verify(db, key=public)
    assert _found(result) == [(CHECKPOINT_MISMATCH, 12, 11)]


def test_checkpoint_attested_hash_edited_without_key(db: Path) -> None:
    key = semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_HASH
    _edit(db, 12, lambda doc: _set_attribute(doc, key, ["s", "ab" * 32]), rehash=True)
    result = verify(db)
    assert _found(result) == [(CHECKPOINT_MISMATCH, 12, 11)]


def test_record_deleted_in_the_middle(db: Path) -> None:
    _delete(db, 4)
    result = verify(db)
    assert _found(result) == [(DELETED, 5, 3)]
    deleted = result.findings[0]
    assert (deleted.seq_end, deleted.count, deleted.related_position) == (3, 1, 3)
    assert deleted.message == "seq 3 missing between positions 3 and 5"


def test_records_deleted_at_the_head(db: Path) -> None:
    _delete(db, 1, 2)
    result = verify(db)
    assert _found(result) == [(DELETED, 3, 0)]
    assert (result.findings[0].seq_end, result.findings[0].count) == (1, 2)
    assert "head of the stream" in result.findings[0].message


def test_record_deleted_at_the_tail_before_the_final_checkpoint(db: Path) -> None:
    _delete(db, 11)
    result = verify(db)
    assert _found(result) == [(DELETED, 12, 10)]


def test_tail_deleted_with_its_checkpoint_is_reported_as_unattested(db: Path) -> None:
    # The limit of any hash chain: without the final checkpoint, a cut tail looks like a killed
    # process. It is said (a warning, naming the records no checkpoint attests), not hidden.
    _delete(db, 11, 12)
    result = verify(db)
    assert result.ok
    unattested = _one(result, UNATTESTED)
    assert (unattested.position, unattested.seq, unattested.seq_end, unattested.count) == (7, 6, 9, 4)
    assert _found(result) == [(UNATTESTED, 7, 6)]


def test_unsealed_record_inserted(db: Path) -> None:
    _copy_row(db, 4, 100, stream="", seq=0, prev_hash="", hash="")
    result = verify(db)
    assert _found(result) == [(INSERTED, 100, None)]
    assert "without a seal" in result.findings[0].message


def test_forged_record_for_an_existing_seq_inserted(db: Path) -> None:
    # A copy of seq 3 with another user, sealed with a correct SHA-256 over its own bytes and the
    # right prev_hash: only the chain after it tells it is not the record seq 4 was chained to.
    document = _document(db, 4)
    _set_attribute(document, semconv.USER_ID, ["s", "u-someone-else"])
    body = canonical.encode(document)
    with _connect(db) as connection:
        stream, prev = connection.execute("SELECT stream, prev_hash FROM records WHERE id = 4").fetchone()
    _copy_row(db, 4, 50, body=body, hash=UNKEYED.record_hash(stream, 3, prev, body))
    result = verify(db)
    assert _found(result) == [(INSERTED, 50, 3)]
    assert result.findings[0].related_position == 4


def test_forged_stream_inserted_with_hmac(tmp_path: Path, hmac_key: tuple[Path, SealKey]) -> None:
    _, key = hmac_key
    db = _build(tmp_path / "audit.db", key)
    forged = canonical.encode(_document(db, 2))
    # A plain SHA-256 labelled as the HMAC, with the key id copied: all one can do without the key.
    digest = UNKEYED.record_hash("f" * 32, 0, GENESIS, forged)
    _copy_row(db, 2, 40, stream="f" * 32, seq=0, prev_hash=GENESIS, hash=digest, body=forged)
    result = verify(db, key=key)
    assert _found(result, ERROR) == [(INSERTED, 40, 0)]
    assert "forged" in _one(result, INSERTED).message


def test_two_records_swapped_are_reordered(db: Path) -> None:
    connection = _connect(db)
    connection.execute("UPDATE records SET id = -3 WHERE id = 3")
    connection.execute("UPDATE records SET id = 3 WHERE id = 4")
    connection.execute("UPDATE records SET id = 4 WHERE id = -3")
    connection.close()
    result = verify(db)
    assert _found(result) == [(REORDERED, 4, 2)]
    assert result.findings[0].related_position == 3
    assert verify(db, any_order=True).findings == []


def test_one_record_moved_is_one_finding(db: Path) -> None:
    connection = _connect(db)  # seq 7 moved to the front: one record out of place, not seven
    connection.execute("UPDATE records SET id = id + 100")
    connection.execute("UPDATE records SET id = 1 WHERE id = 108")
    connection.close()
    result = verify(db)
    assert _found(result) == [(REORDERED, 1, 7)]
    assert result.findings[0].message == "seq 7 stored out of sequence order: first"


def test_record_hidden_at_a_negative_id_is_still_read(db: Path) -> None:
    connection = _connect(db)
    connection.execute("UPDATE records SET id = -8 WHERE id = 8")
    connection.close()
    assert _found(verify(db)) == [(REORDERED, -8, 7)]


def test_checkpoint_deleted(tmp_path: Path, hmac_key: tuple[Path, SealKey]) -> None:
    _, key = hmac_key
    db = _build(tmp_path / "audit.db", key)
    _delete(db, 6)
    result = verify(db, key=key)
    assert _found(result) == [(DELETED, 7, 5), (CHECKPOINT_DELETED, 12, 11)]


def test_checkpoint_deleted_and_renumbered_with_ed25519(tmp_path: Path, ed25519: tuple[SealKey, SealKey]) -> None:
    # The whole trick: drop the checkpoint, renumber everything after it and recompute the SHA-256
    # chain. No gap, every link holds, but the checkpoint chain and its sequence numbers do not.
    private, public = ed25519
    db = _build(tmp_path / "audit.db", private)
    _delete(db, 6)
    connection = _connect(db)
    connection.execute("UPDATE records SET seq = seq - 1 WHERE id > 6")
    connection.close()
    _rewrite_chain(db, 7)
    result = verify(db, key=public)
    assert _found(result) == [(CHECKPOINT_DELETED, 12, 10), (CHECKPOINT_MISMATCH, 12, 10)]
    assert "renumbered" in _one(result, CHECKPOINT_MISMATCH).message


def test_checkpoint_signature_altered(tmp_path: Path, hmac_key: tuple[Path, SealKey]) -> None:
    _, key = hmac_key
    db = _build(tmp_path / "audit.db", key)
    signature = semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_SIGNATURE
    _edit(db, 6, lambda doc: _set_attribute(doc, signature, ["s", "00" * 32]))
    result = verify(db, key=key)
    assert _found(result) == [(CHECKPOINT_SIGNATURE, 6, 5), (MODIFIED, 6, 5)]


def test_checkpoint_signature_altered_and_rehashed_with_ed25519(
    tmp_path: Path, ed25519: tuple[SealKey, SealKey]
) -> None:
    private, public = ed25519
    db = _build(tmp_path / "audit.db", private)
    signature = semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_SIGNATURE
    _edit(db, 12, lambda doc: _set_attribute(doc, signature, ["s", "00" * 64]), rehash=True)
    result = verify(db, key=public)
    # With its checkpoint void, the records it attested are attested by nothing (a warning).
    assert _found(result) == [(UNATTESTED, 7, 6), (CHECKPOINT_SIGNATURE, 12, 11)]
    assert "does not verify" in _one(result, CHECKPOINT_SIGNATURE).message
    # The same on the first checkpoint: the rehash changes every later hash, so the last
    # checkpoint no longer matches either.
    db = _build(tmp_path / "again.db", private)
    _edit(db, 6, lambda doc: _set_attribute(doc, signature, ["s", "00" * 64]))
    _rewrite_chain(db, 6)
    assert _found(verify(db, key=public)) == [(CHECKPOINT_SIGNATURE, 6, 5), (CHECKPOINT_MISMATCH, 12, 11)]


def test_wrong_hmac_key(tmp_path: Path, hmac_key: tuple[Path, SealKey]) -> None:
    _, key = hmac_key
    db = _build(tmp_path / "audit.db", key)
    other = tmp_path / "other.key"
    other.write_text(secrets.token_hex(32))
    result = verify(db, key=load_seal_key(other))
    assert _found(result) == [(WRONG_KEY, 1, 0)]
    assert (result.findings[0].seq_end, result.findings[0].count) == (11, 12)
    assert main(["verify", str(db), "--key", str(other)]) == 1


def test_wrong_ed25519_key(tmp_path: Path, ed25519: tuple[SealKey, SealKey]) -> None:
    private, _ = ed25519
    db = _build(tmp_path / "audit.db", private)
    _, other_public = _ed25519_pems(tmp_path, "other")
    result = verify(db, key=load_seal_key(other_public))
    assert _found(result) == [(WRONG_KEY, 1, 0)]


def test_store_sealed_without_key_checked_with_one(db: Path, hmac_key: tuple[Path, SealKey]) -> None:
    result = verify(db, key=hmac_key[1])
    assert _found(result) == [(WRONG_KEY, 1, 0)]
    assert "sealed without a key" in result.findings[0].message


def test_pruned_store_verifies_clean_with_the_pruned_ranges_as_info(
    tmp_path: Path, hmac_key: tuple[Path, SealKey]
) -> None:
    _, key = hmac_key
    path = tmp_path / "audit.db"
    store = AuditStore(path)
    writer = StoreWriter(
        store, key=key, resource=RESOURCE, max_bytes=700_000, checkpoint_interval=0, checkpoint_records=300
    )
    spans = _spans(1500, padding=1000)
    for start in range(0, len(spans), 50):
        writer.export(spans[start : start + 50])
    writer.shutdown()
    with _connect(path) as connection:
        first_seq, count = connection.execute("SELECT MIN(seq), COUNT(*) FROM records").fetchone()
    store.close()
    assert first_seq > 500  # pruned more than once
    result = verify(path, key=key)
    assert result.ok
    pruned = _one(result, PRUNED)
    assert (pruned.seq, pruned.seq_end, pruned.count, pruned.severity) == (0, first_seq - 1, first_seq, "info")
    attesting = dict(_document(path, pruned.position)["attributes"])
    assert attesting[semconv.LLM_AUDIT_INTEGRITY_CHECKPOINT_REASON] == ["s", "prune"]
    assert _found(result) == [(PRUNED, pruned.position, 0)]
    assert result.records == count
    # Deleting beyond what was pruned is still a deletion.
    _delete(path, *range(_first_position(path), _first_position(path) + 2))
    assert _found(verify(path, key=key), ERROR) == [(DELETED, _first_position(path), first_seq)]


def test_pruned_heads_of_two_writers_stay_attested(tmp_path: Path, hmac_key: tuple[Path, SealKey]) -> None:
    # Writer B prunes writer A's records; the checkpoint of B that says so is pruned in turn by
    # a later round that touched none of A's records. A's pruned head must still be attested
    # (the writer carries the claims of the prune checkpoints it prunes), not look deleted.
    _, key = hmac_key
    path = tmp_path / "audit.db"
    store = AuditStore(path)
    a, b = (
        StoreWriter(store, key=key, resource=RESOURCE, max_bytes=700_000, checkpoint_interval=0, checkpoint_records=300)
        for _ in range(2)
    )
    spans = _spans(4020, padding=1000)
    a.export(spans[:10])
    for start in range(10, 2010, 50):
        b.export(spans[start : start + 50])
    a.export(spans[2010:2020])
    for start in range(2020, 4020, 50):
        b.export(spans[start : start + 50])
    a.shutdown()
    b.shutdown()
    store.close()
    result = verify(path, key=key)
    assert result.ok
    assert sorted((f.kind, f.stream, f.seq, f.seq_end) for f in result.findings if f.stream == a.stream) == [
        (PRUNED, a.stream, 0, 19)
    ]
    assert {f.kind for f in result.findings} == {PRUNED}


def _first_position(path: Path) -> int:
    with _connect(path) as connection:
        return int(connection.execute("SELECT MIN(id) FROM records").fetchone()[0])


# OTLP JSON files ----------------------------------------------------------------------------


def _export(store_path: Path, out: Path, batch: int = 4) -> Path:
    store = AuditStore(store_path, readonly=True)
    lines = [json.dumps(request) for request in export_requests(store, store.iter_records(), batch=batch)]
    store.close()
    out.write_text("\n".join(lines) + "\n")
    return out


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, lines: list[Any]) -> None:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")


def _flat(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [span for rs in request["resourceSpans"] for ss in rs["scopeSpans"] for span in ss["spans"]]


def _seal_of(span: dict[str, Any], name: str) -> Any:
    for item in span["attributes"]:
        if item["key"] == name:
            return next(iter(item["value"].values()))
    raise AssertionError(name)


@pytest.fixture
def exported(db: Path, tmp_path: Path) -> Path:
    """The standard store exported four spans a line: seqs 0-3, 4-7 (checkpoint 5), 8-11 (checkpoint 11)."""
    return _export(db, tmp_path / "export.jsonl")


def _found_in_file(result: VerifyResult, severity: str | None = None) -> list[tuple[str, int | None, int | None, Any]]:
    return [(f.kind, f.position, f.line, f.seq) for f in result.findings if severity is None or f.severity == severity]


def test_untouched_export_verifies_clean(exported: Path) -> None:
    assert [len(_flat(line)) for line in _lines(exported)] == [4, 4, 4]
    result = verify(exported)
    assert result.findings == []
    assert (result.source_kind, result.records, result.checkpoints) == ("otlp", 12, 2)
    assert main(["verify", str(exported)]) == 0


def test_export_of_an_hmac_store_verifies_with_the_key(tmp_path: Path, hmac_key: tuple[Path, SealKey]) -> None:
    _, key = hmac_key
    exported = _export(_build(tmp_path / "audit.db", key), tmp_path / "export.jsonl")
    assert verify(exported, key=key).findings == []


def test_export_with_base64_ids_verifies_clean(exported: Path) -> None:
    # protobuf's generic JSON mapping writes ids as base64, not hex; the seal covers the id, not its spelling
    lines = _lines(exported)
    for line in lines:
        for span in _flat(line):
            for field in ("traceId", "spanId", "parentSpanId"):
                if span.get(field):
                    span[field] = base64.b64encode(bytes.fromhex(span[field])).decode()
    _write(exported, lines)
    assert verify(exported).findings == []


def test_export_attribute_edited(exported: Path) -> None:
    lines = _lines(exported)
    span = _flat(lines[0])[2]
    for item in span["attributes"]:
        if item["key"] == semconv.USER_ID:
            item["value"] = {"stringValue": "u-innocent"}
    _write(exported, lines)
    assert _found_in_file(verify(exported)) == [(MODIFIED, 3, 1, 2)]


def test_export_span_deleted(exported: Path) -> None:
    lines = _lines(exported)
    groups = lines[1]["resourceSpans"][0]["scopeSpans"]
    assert [_seal_of(s, semconv.LLM_AUDIT_INTEGRITY_SEQUENCE) for s in groups[2]["spans"]] == ["6", "7"]
    del groups[2]["spans"][0]  # seq 6, the 7th span
    _write(exported, lines)
    result = verify(exported)
    assert _found_in_file(result) == [(DELETED, 7, 2, 6)]
    assert result.findings[0].message == "seq 6 missing between positions 6 and 7"


def test_export_span_duplicated_is_info_only(exported: Path) -> None:
    lines = _lines(exported)
    _write(exported, [*lines, lines[1]])  # a batch delivered twice (at-least-once)
    result = verify(exported)
    assert result.ok
    assert _found_in_file(result) == [
        (DUPLICATE, 13, 4, 4),
        (DUPLICATE, 14, 4, 5),
        (DUPLICATE, 15, 4, 6),
        (DUPLICATE, 16, 4, 7),
    ]
    assert result.findings[0].related_position == 5
    assert main(["verify", str(exported)]) == 0


def test_export_lines_reordered(exported: Path) -> None:
    lines = _lines(exported)
    _write(exported, [lines[1], lines[0], lines[2]])
    result = verify(exported)
    reordered = _one(result, REORDERED)
    assert _found_in_file(result) == [(REORDERED, 5, 2, 0)]
    assert (reordered.seq_end, reordered.count) == (3, 4)
    assert verify(exported, any_order=True).findings == []
    assert main(["verify", str(exported), "--any-order"]) == 0
    assert main(["verify", str(exported)]) == 1


def test_export_unsealed_span_inserted(exported: Path) -> None:
    lines = _lines(exported)
    intruder = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "chat gpt-4o",
        "kind": 1,
        "startTimeUnixNano": "1",
        "endTimeUnixNano": "2",
        "attributes": [{"key": semconv.USER_ID, "value": {"stringValue": "u-framed"}}],
    }
    lines[1]["resourceSpans"][0]["scopeSpans"][2]["spans"].append(intruder)
    _write(exported, lines)
    result = verify(exported)
    assert _found_in_file(result) == [(INSERTED, 9, 2, None)]


def test_export_forged_span_for_an_existing_seq_inserted(exported: Path) -> None:
    lines = _lines(exported)
    original = _flat(lines[0])[3]  # seq 3
    forged = json.loads(json.dumps(original))
    forged["attributes"] = [a for a in forged["attributes"] if a["key"] != semconv.LLM_AUDIT_INTEGRITY_HASH]
    for item in forged["attributes"]:
        if item["key"] == semconv.USER_ID:
            item["value"] = {"stringValue": "u-framed"}
    resource = lines[0]["resourceSpans"][0]["resource"]["attributes"]
    scope = lines[0]["resourceSpans"][0]["scopeSpans"][0]["scope"]
    stream = _seal_of(original, semconv.LLM_AUDIT_INTEGRITY_STREAM)
    prev = _seal_of(original, semconv.LLM_AUDIT_INTEGRITY_PREV_HASH)
    digest = UNKEYED.record_hash(stream, 3, prev, canonical.otlp_body(forged, resource, scope))
    forged["attributes"].append({"key": semconv.LLM_AUDIT_INTEGRITY_HASH, "value": {"stringValue": digest}})
    lines.append(
        {"resourceSpans": [{"resource": {"attributes": resource}, "scopeSpans": [{"scope": scope, "spans": [forged]}]}]}
    )
    _write(exported, lines)
    result = verify(exported)
    assert _found_in_file(result) == [(INSERTED, 13, 4, 3)]
    assert result.findings[0].related_position == 4


def test_export_unreadable_line_is_a_finding_not_a_crash(exported: Path) -> None:
    lines: list[Any] = _lines(exported)
    lines.insert(1, '{"resourceSpans": [ truncated')
    _write(exported, lines)
    result = verify(exported)
    assert _found_in_file(result) == [(UNREADABLE, None, 2, None)]
    assert result.records == 12


# The command line -----------------------------------------------------------------------------


def test_cli_json_has_the_same_findings_and_exit_codes(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_LLM_AUDIT_SEAL_KEY_FILE", raising=False)
    _delete(db, 4)
    _edit(db, 9, lambda doc: _set_attribute(doc, "i", ["i", "99"]))
    expected = verify(db).to_json()
    assert main(["verify", str(db), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document == expected
    assert [(f["kind"], f["position"], f["seq"]) for f in document["findings"]] == [(DELETED, 5, 3), (MODIFIED, 9, 8)]
    assert (document["ok"], document["errors"], document["counts"]) == (False, 2, {DELETED: 1, MODIFIED: 1})

    assert main(["verify", str(db)]) == 1
    out = capsys.readouterr().out
    assert "TAMPERED" in out and "DELETED" in out and "MODIFIED" in out

    # The configured store is the default source.
    clean = _build(db.parent / "clean.db")
    monkeypatch.setenv("OTEL_LLM_AUDIT_STORE", str(clean))
    assert main(["verify"]) == 0
    assert "OK" in capsys.readouterr().out


def _rendered(result: VerifyResult, width: int) -> list[str]:
    """The terminal report from the ``streams`` table on (the summary above names the temporary path)."""
    console = Console(width=width, record=True, file=io.StringIO())
    render(result, console)
    lines = [line.rstrip() for line in console.export_text().splitlines()]
    return lines[lines.index("streams") :]


def test_cli_tables_read_in_80_columns_and_keep_whole_ids_when_wide(
    tmp_path: Path, hmac_key: tuple[Path, SealKey]
) -> None:
    _, key = hmac_key
    db = _build(tmp_path / "audit.db", key)
    _delete(db, 4)
    _edit(db, 9, lambda doc: _set_attribute(doc, "i", ["i", "99"]))
    result = verify(db, key=key)
    (stream,) = result.streams
    sid = stream.stream
    # 80 columns: the stream id shortened to 12 digits, titles and the seal on two lines, details folded
    assert _rendered(result, 80) == [
        "streams",
        "                                           last",
        "stream        records  seqs   checkpoints  checkpoint  seal",
        "─" * 80,
        f"{sid[:12]}       11  0..11            2  shutdown    hmac-sha256",
        f"                                                       ({key.key_id})",
        "findings",
        "position  stream    seq  finding   detail",
        "─" * 80,
        f"       5  {sid[:8]}    3  DELETED   seq 3 missing between positions 3 and 5",
        f"       9  {sid[:8]}    8  MODIFIED  its HMAC does not verify with the key: the",
        "                                   record was changed (or forged)",
    ]
    assert _rendered(result, 200) == [
        "streams",
        "stream                            records  seqs   checkpoints  last checkpoint  seal",
        "─" * 110,
        f"{sid}       11  0..11            2  shutdown         hmac-sha256 ({key.key_id})",
        "findings",
        "position  stream    seq  finding   detail",
        "─" * 108,
        f"       5  {sid[:8]}    3  DELETED   seq 3 missing between positions 3 and 5",
        f"       9  {sid[:8]}    8  MODIFIED  its HMAC does not verify with the key: the record was changed"
        " (or forged)",
    ]


def test_cli_takes_the_configured_key_and_source(
    tmp_path: Path, hmac_key: tuple[Path, SealKey], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key_path, key = hmac_key
    db = _build(tmp_path / "audit.db", key)
    monkeypatch.setenv("OTEL_LLM_AUDIT_SEAL_KEY_FILE", str(key_path))
    assert main(["verify", "--source", str(db), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["key"], document["key_id"], document["findings"]) == ("hmac-sha256", key.key_id, [])


def test_cli_unusable_input_exits_2(tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path / "missing.db")]) == 2
    assert "no such file" in capsys.readouterr().err
    text = tmp_path / "notes.txt"
    text.write_text("not an audit trail\n")
    assert main(["verify", str(text)]) == 2
    assert "neither an audit store nor OTLP JSON" in capsys.readouterr().err
    other_db = tmp_path / "other.db"
    sqlite3.connect(other_db).execute("CREATE TABLE t (x)").connection.close()
    assert main(["verify", str(other_db)]) == 2
    assert "not an audit store" in capsys.readouterr().err
    short_key = tmp_path / "short.key"
    short_key.write_text("too short")
    assert main(["verify", str(db), "--key", str(short_key)]) == 2
    unsealed = tmp_path / "plain.jsonl"
    unsealed.write_text(
        json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "ab" * 16, "spanId": "cd" * 8}]}]}]})
    )
    assert main(["verify", str(unsealed)]) == 2
    assert "nothing to verify" in capsys.readouterr().err
    with pytest.raises(VerifyInputError):
        verify(tmp_path)
