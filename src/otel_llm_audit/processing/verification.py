"""``otel-llm-audit verify``: exact tamper detection over a local audit store or an OTLP JSON lines file.

Every record is re-sealed from its canonical bytes (:mod:`~otel_llm_audit.processing.canonical`)
and compared with its stored seal; then, per stream and in sequence order, every link (a
record's ``prev_hash`` against its predecessor's hash), every gap, every checkpoint (its
signature, the chain head it attests, the checkpoint before it) and the order records were
stored in. Each problem is reported where it is: the store's record id or the file's span
ordinal (and line), the stream and the sequence number.

What this can prove depends on the key (see docs/verify.md): with no key, only naive edits;
with the HMAC secret, every record exactly; with an Ed25519 public key, records up to the last
signed checkpoint.

``partial`` verifies a copy that holds a filtered subset of every stream (the collector routes
only audit records and checkpoints to the SIEM): each present record's seal, the links between
consecutive sequence numbers both present, every checkpoint; missing sequence numbers are
counted per stream (``absent``), not reported as deleted, since the copy cannot say which
records should be there.

Speed: the per-record work is one SHA-256 (or HMAC), two hex decodes and an array append;
checkpoints are found by a bytes search before any JSON is parsed. A million-record store
verifies in well under 30 seconds on one core (benchmarks/).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from otel_llm_audit import semconv
from otel_llm_audit.delivery.store import SQLITE_MAGIC, AuditStore, StoreError
from otel_llm_audit.delivery.store_writer import CHECKPOINT_SCOPE, CHECKPOINT_SPAN_NAME
from otel_llm_audit.processing.canonical import encode, otlp_document
from otel_llm_audit.processing.sealing import (
    ALGORITHM_ED25519,
    ALGORITHM_HMAC,
    ALGORITHM_NONE,
    ALGORITHM_SHA256,
    GENESIS,
    UNKEYED,
    SealKey,
    checkpoint_payload,
)
from otel_llm_audit.processing.verify_chain import DIGEST, ZERO, Chain, Checkpoint, Slot
from otel_llm_audit.processing.verify_findings import (
    CHECKPOINT_DELETED,
    CHECKPOINT_MISMATCH,
    CHECKPOINT_SIGNATURE,
    DELETED,
    DUPLICATE,
    INSERTED,
    MODIFIED,
    NOT_CHECKED,
    PRUNED,
    REORDERED,
    UNATTESTED,
    UNREADABLE,
    WRONG_KEY,
    Finding,
    StreamSummary,
    VerifyInputError,
    VerifyResult,
    finding,
)

__all__ = ["Progress", "VerifyInputError", "VerifyResult", "verify"]

#: ``progress(done, total)``: records (of a store) or bytes (of a file) scanned so far.
Progress = Callable[[int, int], None]

#: How checkpoint records are found without parsing every body: canonical JSON has sorted keys
#: and no whitespace, and an attribute value holding this text would have its quotes escaped.
CHECKPOINT_MARKER = f'"name":"{CHECKPOINT_SPAN_NAME}"'.encode()

_PROGRESS_EVERY = 8192

_A = semconv
_STREAM = _A.LLM_AUDIT_INTEGRITY_STREAM
_SEQUENCE = _A.LLM_AUDIT_INTEGRITY_SEQUENCE
_PREV_HASH = _A.LLM_AUDIT_INTEGRITY_PREV_HASH
_HASH = _A.LLM_AUDIT_INTEGRITY_HASH
_ALGORITHM = _A.LLM_AUDIT_INTEGRITY_ALGORITHM
_KEY_ID = _A.LLM_AUDIT_INTEGRITY_KEY_ID


def verify(
    source: str | os.PathLike[str],
    *,
    key: SealKey | None = None,
    any_order: bool = False,
    partial: bool = False,
    progress: Progress | None = None,
) -> VerifyResult:
    """Verify a store or an OTLP JSON lines file (told apart by the SQLite magic bytes).

    ``key`` is what :func:`~otel_llm_audit.processing.sealing.load_seal_key` loaded (``None``:
    no key). ``any_order`` skips the order check, for a collector's copy that batching may have
    reordered. ``partial`` (which implies ``any_order``) takes the source as a filtered subset of
    each stream, such as the SIEM's copy: missing sequence numbers are counted in each stream's
    ``absent``, not reported as ``DELETED``; every checkpoint is still expected. Raises
    :class:`VerifyInputError` when the source cannot be verified at all.
    """
    path = os.fspath(source)
    if not os.path.exists(path):
        raise VerifyInputError(f"no such file: {path!r}")
    if os.path.isdir(path):
        raise VerifyInputError(f"{path!r} is a directory, not an audit store or an OTLP JSON file")
    with open(path, "rb") as handle:
        head = handle.read(len(SQLITE_MAGIC))
    if key is not None and key.record_algorithm == ALGORITHM_SHA256 and key.checkpoint_algorithm == ALGORITHM_NONE:
        key = None  # the "no key" key
    any_order = any_order or partial  # a route's copy went through a collector's batching
    if head == SQLITE_MAGIC:
        if partial:  # a store holds whole chains: "absent" there would hide a deletion
            raise VerifyInputError(
                f"{path!r} is an audit store, which holds every record of its streams: --partial is for "
                "routed copies (a collector's SIEM pipeline); verify the store without it"
            )
        return verify_store(path, key=key, any_order=any_order, partial=partial, progress=progress)
    return verify_otlp_file(path, key=key, any_order=any_order, partial=partial, progress=progress)


def verify_store(
    path: str,
    *,
    key: SealKey | None = None,
    any_order: bool = False,
    partial: bool = False,
    progress: Progress | None = None,
) -> VerifyResult:
    """Verify every record of an audit store, in position (record id) order."""
    try:
        store = AuditStore(path, readonly=True)
    except (StoreError, sqlite3.DatabaseError) as err:
        raise VerifyInputError(str(err)) from None
    verifier = _Verifier(key, any_order, with_lines=False, partial=partial)
    try:
        total = store.count()
        done = 0
        for record in store.iter_records():
            verifier.stored(
                record.position,
                record.stream,
                record.seq,
                record.prev_hash,
                record.hash,
                record.algorithm,
                record.key_id,
                record.body,
            )
            done += 1
            if progress is not None and done % _PROGRESS_EVERY == 0:
                progress(done, total)
        if progress is not None:
            progress(done, max(total, done))
    except sqlite3.DatabaseError as err:
        raise VerifyInputError(f"{path!r} cannot be read to the end: {err}") from None
    finally:
        store.close()
    return verifier.result(path, "store")


def verify_otlp_file(
    path: str,
    *,
    key: SealKey | None = None,
    any_order: bool = False,
    partial: bool = False,
    progress: Progress | None = None,
) -> VerifyResult:
    """Verify the spans of an OTLP JSON lines file (our ``export``, or the collector's file exporter).

    A span's position is its 1-based ordinal in the file; lines that are not JSON are findings.
    Within one line (one ExportTraceServiceRequest) OTLP groups spans by resource and scope,
    so an exporter legitimately reorders them there: a line's spans are taken in sequence
    order, and order is judged across lines (``any_order`` drops that check too).
    """
    verifier = _Verifier(key, any_order, with_lines=True, partial=partial)
    total = os.path.getsize(path)
    done = parsed = unreadable = 0
    position = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            done += len(raw)
            if progress is not None and number % 256 == 0:
                progress(done, total)
            if not raw.strip():
                continue
            try:
                request = json.loads(raw)
                if not isinstance(request, dict):
                    raise ValueError("not an OTLP/JSON request object")
            except ValueError as err:
                unreadable += 1
                verifier.findings.append(
                    finding(
                        UNREADABLE, "", None, None, f"line {number} is not an OTLP/JSON document: {err}", line=number
                    )
                )
                continue
            parsed += 1
            for span, resource, scope in sorted(_spans_of(request), key=_stream_and_sequence):
                position += 1
                verifier.span(position, number, span, resource, scope)
    if progress is not None:
        progress(total, total)
    if parsed == 0 and unreadable:
        raise VerifyInputError(
            f"{path!r} is neither an audit store nor OTLP JSON lines ({unreadable} unreadable lines)"
        )
    if verifier.records == 0 and verifier.unsealed:
        raise VerifyInputError(
            f"none of the {len(verifier.unsealed)} spans in {path!r} is sealed (no llm_audit.integrity.* "
            "attributes): there is nothing to verify"
        )
    return verifier.result(path, "otlp")


def _stream_and_sequence(item: tuple[Mapping[str, Any], Any, Any]) -> tuple[str, int]:
    """Sort key of a span within one request: its stream and sequence number (unsealed spans last)."""
    stream = sequence = None
    for attribute in item[0].get("attributes") or ():
        if not isinstance(attribute, Mapping):
            continue
        key = attribute.get("key")
        if key == semconv.LLM_AUDIT_INTEGRITY_STREAM:
            stream = (attribute.get("value") or {}).get("stringValue")
        elif key == semconv.LLM_AUDIT_INTEGRITY_SEQUENCE:
            sequence = (attribute.get("value") or {}).get("intValue")
    try:
        return (str(stream) if stream is not None else "\uffff", int(sequence) if sequence is not None else 2**62)
    except (TypeError, ValueError):
        return ("\uffff", 2**62)


def _spans_of(request: Mapping[str, Any]) -> Iterable[tuple[Mapping[str, Any], Any, Any]]:
    """``(span, resource attributes, scope)`` for every span of an ExportTraceServiceRequest."""
    for resource_spans in request.get("resourceSpans") or ():
        if not isinstance(resource_spans, Mapping):
            continue
        resource = (resource_spans.get("resource") or {}).get("attributes")
        groups = resource_spans.get("scopeSpans") or resource_spans.get("instrumentationLibrarySpans") or ()
        for group in groups:
            if not isinstance(group, Mapping):
                continue
            scope = group.get("scope") or group.get("instrumentationLibrary")
            for span in group.get("spans") or ():
                if isinstance(span, Mapping):
                    yield span, resource, scope


def _digest(text: Any) -> bytes | None:
    """A hex SHA-256 as its 32 bytes; ``None`` when it is not one."""
    if not isinstance(text, str) or len(text) != 2 * DIGEST:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def _typed(pairs: Any) -> dict[str, Any]:
    """Canonical ``[key, [tag, value]]`` pairs as ``{key: value}``."""
    return {pair[0]: pair[1][1] for pair in pairs or () if isinstance(pair, list) and len(pair) == 2}


class _Verifier:
    """Reads records one by one (the hot path), then analyses each stream."""

    def __init__(self, key: SealKey | None, any_order: bool, with_lines: bool, partial: bool = False) -> None:
        self.key = key
        self.any_order = any_order
        self.with_lines = with_lines
        #: A filtered subset of each stream: missing sequence numbers are absent, not deleted.
        self.partial = partial
        self.chains: dict[str, Chain] = {}
        self.findings: list[Finding] = []
        #: Sealed records read.
        self.records = 0
        #: (position, line, why) of records without a (usable) seal.
        self.unsealed: list[tuple[int, int, str]] = []
        self._signatures_unchecked: dict[str, int] = {}

    # Reading: a store ------------------------------------------------------------------

    def stored(
        self,
        position: int,
        stream: Any,
        seq: Any,
        prev_hash: Any,
        digest: Any,
        algorithm: Any,
        key_id: Any,
        body: Any,
    ) -> None:
        """One store row. A row whose columns were tampered into other types is a finding, not a crash."""
        if not isinstance(body, bytes):
            body = str(body).encode("utf-8", "surrogatepass")
        if not isinstance(stream, str) or not stream or not isinstance(seq, int) or seq < 0 or not digest:
            self._unsealed(position, 0, f"stream {stream!r}, seq {seq!r}, hash {digest!r}")
            return
        document = None
        if CHECKPOINT_MARKER in body:
            try:
                document = json.loads(body)
            except ValueError:
                document = None
        self.record(
            position, 0, stream, seq, str(prev_hash), str(digest), str(algorithm), str(key_id or ""), body, document
        )

    # Reading: OTLP/JSON ----------------------------------------------------------------

    def span(self, position: int, line: int, span: Mapping[str, Any], resource: Any, scope: Any) -> None:
        """One span of a file: its seal attributes out, its canonical body recomputed."""
        seal: dict[str, Any] = {}
        try:
            for item in span.get("attributes") or ():
                name = item.get("key")
                if name in (_STREAM, _SEQUENCE, _PREV_HASH, _HASH, _ALGORITHM, _KEY_ID):
                    value = item.get("value") or {}
                    seal[name] = value.get("stringValue", value.get("intValue"))
            stream, seq, digest = seal.get(_STREAM), seal.get(_SEQUENCE), seal.get(_HASH)
            if not stream or seq is None or not digest:
                missing = [name for name, value in (("stream", stream), ("hash", digest)) if not value]
                if seq is None:
                    missing.append("sequence")
                why = "no seal" if len(missing) == 3 else f"an incomplete seal (no {', '.join(missing)})"
                self._unsealed(position, line, why)
                return
            seq = int(seq)
            if seq < 0:
                raise ValueError(f"negative sequence number {seq}")
            document = otlp_document(span, resource, scope)
            body = encode(document)
        except (ValueError, TypeError, AttributeError) as err:
            self._unsealed(position, line, f"malformed span or seal: {err}")
            return
        self.record(
            position,
            line,
            str(stream),
            seq,
            str(seal.get(_PREV_HASH) or ""),
            str(digest),
            str(seal.get(_ALGORITHM) or ""),
            str(seal.get(_KEY_ID) or ""),
            body,
            document,
        )

    def _unsealed(self, position: int, line: int, why: str) -> None:
        self.unsealed.append((position, line, why))

    # The hot path ----------------------------------------------------------------------

    def record(
        self,
        position: int,
        line: int,
        stream: str,
        seq: int,
        prev_hash: str,
        hash_text: str,
        algorithm: str,
        key_id: str,
        body: bytes,
        document: Mapping[str, Any] | None,
    ) -> None:
        self.records += 1
        chain = self.chains.get(stream)
        if chain is None:
            chain = self.chains[stream] = Chain(stream, self.with_lines, algorithm=algorithm, key_id=key_id)
        chain.records += 1
        key = self.key
        why = ""
        if key is not None and key_id != key.key_id:
            self._wrong_key(chain, position, seq, line, key_id)
            own_key = False
        else:
            chain.in_wrong_run = False
            own_key = True
        if algorithm == ALGORITHM_SHA256:
            if key is not None and own_key and key.record_algorithm != ALGORITHM_SHA256:
                why = f"sealed with plain sha256 although the key seals with {key.record_algorithm}: rehashed"
            elif UNKEYED.record_hash(stream, seq, prev_hash, body) != hash_text:
                why = "its hash does not recompute from its content: the record was changed"
        elif algorithm == ALGORITHM_HMAC:
            if key is None:
                chain.unchecked += 1
            elif own_key:
                if key.record_algorithm != ALGORITHM_HMAC:
                    why = f"sealed with hmac-sha256 although this key seals with {key.record_algorithm}"
                elif key.record_hash(stream, seq, prev_hash, body) == hash_text:
                    chain.keyed_valid += 1
                else:
                    why = "its HMAC does not verify with the key: the record was changed (or forged)"
        else:
            why = f"unknown seal algorithm {algorithm!r}"
        try:  # (inline rather than _digest(): this runs a million times)
            digest = bytes.fromhex(hash_text)
            prev = bytes.fromhex(prev_hash)
            if len(digest) != DIGEST or len(prev) != DIGEST:
                raise ValueError("not 32 bytes")
        except ValueError:
            digest, prev = _digest(hash_text) or ZERO, _digest(prev_hash) or ZERO
            which = "hash" if digest is ZERO else "prev_hash"
            why = why or f"its {which} is not a SHA-256 hex digest"
        if why:
            chain.bad[position] = (seq, line, why)
        existing = chain.place(seq, position, line, digest, prev)
        if existing is not None:
            if existing.hash == digest:
                if not why:
                    self.findings.append(
                        finding(
                            DUPLICATE,
                            stream,
                            position,
                            seq,
                            f"the same record as position {existing.position} again (a re-delivery)",
                            line=line or None,
                            related_position=existing.position,
                        )
                    )
                return  # a copy: its checkpoint is counted once; a changed copy is reported as modified
            chain.conflicts.append(Slot(seq, position, line, digest, prev))
        if document is not None and document.get("name") == CHECKPOINT_SPAN_NAME:
            scope = document.get("scope")
            if isinstance(scope, list | tuple) and scope and scope[0] == CHECKPOINT_SCOPE:
                self._checkpoint(chain, position, line, seq, key_id, document)

    def _wrong_key(self, chain: Chain, position: int, seq: int, line: int, key_id: str) -> None:
        runs = chain.wrong_key
        if chain.in_wrong_run and runs and runs[-1][5] == key_id:
            run = runs[-1]
            run[3] = seq
            run[4] += 1
        else:
            runs.append([position, seq, line, seq, 1, key_id])
            chain.in_wrong_run = True

    def _checkpoint(
        self, chain: Chain, position: int, line: int, seq: int, key_id: str, document: Mapping[str, Any]
    ) -> None:
        attributes = _typed(document.get("attributes"))
        try:
            attested_seq = int(attributes[_A.LLM_AUDIT_INTEGRITY_CHECKPOINT_SEQUENCE])
            attested_hash = str(attributes[_A.LLM_AUDIT_INTEGRITY_CHECKPOINT_HASH])
            time_ns = int(attributes[_A.LLM_AUDIT_INTEGRITY_CHECKPOINT_TIME])
            reason = str(attributes[_A.LLM_AUDIT_INTEGRITY_CHECKPOINT_REASON])
            algorithm = str(attributes[_A.LLM_AUDIT_INTEGRITY_CHECKPOINT_ALGORITHM])
            signature = str(attributes.get(_A.LLM_AUDIT_INTEGRITY_CHECKPOINT_SIGNATURE, ""))
            prev_signature = str(attributes.get(_A.LLM_AUDIT_INTEGRITY_CHECKPOINT_PREV_SIGNATURE, ""))
            pruned_text = attributes.get(_A.LLM_AUDIT_INTEGRITY_CHECKPOINT_PRUNED)
            pruned = json.loads(pruned_text) if pruned_text else []
            if not isinstance(pruned, list):
                raise ValueError("pruned is not a list")
        except (KeyError, ValueError, TypeError) as err:
            self.findings.append(
                finding(
                    CHECKPOINT_SIGNATURE,
                    chain.stream,
                    position,
                    seq,
                    f"a checkpoint record without its fields ({err}): forged or damaged",
                    line=line or None,
                )
            )
            return
        payload = checkpoint_payload(chain.stream, attested_seq, attested_hash, time_ns, prev_signature, reason, pruned)
        checkpoint = Checkpoint(
            chain.stream,
            position,
            line,
            seq,
            key_id,
            attested_seq,
            attested_hash,
            reason,
            algorithm,
            signature,
            prev_signature,
            pruned,
            payload,
        )
        chain.checkpoints.append(checkpoint)
        key = self.key
        if key is None:
            checkpoint.trusted = True  # no key: taken at its word (naive edits only)
            if algorithm != ALGORITHM_NONE:
                self._signatures_unchecked[chain.stream] = self._signatures_unchecked.get(chain.stream, 0) + 1
            return
        if key_id != key.key_id:
            return  # a WRONG_KEY run covers it
        where = f"checkpoint ({reason}, attesting seq {attested_seq})"
        if algorithm != key.checkpoint_algorithm:
            message = f"{where} is {'unsigned' if algorithm == ALGORITHM_NONE else f'signed with {algorithm}'}, "
            message += f"but the key signs with {key.checkpoint_algorithm}: replaced or forged"
        elif key.verify_signature(payload, signature):
            checkpoint.trusted = True
            return
        else:
            message = f"the signature of this {where} does not verify with the key: altered or forged"
        self.findings.append(finding(CHECKPOINT_SIGNATURE, chain.stream, position, seq, message, line=line or None))

    # Analysis --------------------------------------------------------------------------

    def result(self, source: str, source_kind: str) -> VerifyResult:
        result = VerifyResult(source, source_kind, any_order=self.any_order, partial=self.partial)
        key = self.key
        if key is not None:
            result.key = (
                key.checkpoint_algorithm if key.checkpoint_algorithm == ALGORITHM_ED25519 else key.record_algorithm
            )
            result.key_id = key.key_id
        sealed_source = bool(self.chains) or source_kind == "store"  # every store row should carry a seal
        for position, line, why in self.unsealed:
            if sealed_source:
                self.findings.append(
                    finding(
                        INSERTED,
                        "",
                        position,
                        None,
                        f"a record without a seal in a sealed source: {why}",
                        line=line or None,
                    )
                )
        prunes = self._prunes()
        for stream, chain in self.chains.items():  # in the order first seen
            result.streams.append(self._analyse(chain, prunes.get(stream)))
        result.records = self.records + len(self.unsealed)
        result.checkpoints = sum(len(chain.checkpoints) for chain in self.chains.values())
        result.findings = self.findings
        result.sort()
        return result

    def _prunes(self) -> dict[str, tuple[int, str, Checkpoint]]:
        """Per stream, the highest sequence number a trusted prune checkpoint says was pruned."""
        prunes: dict[str, tuple[int, str, Checkpoint]] = {}
        for chain in self.chains.values():
            for checkpoint in chain.checkpoints:
                if not checkpoint.trusted:
                    continue
                for entry in checkpoint.pruned:
                    try:
                        stream, seq, digest = str(entry[0]), int(entry[1]), str(entry[2])
                    except (IndexError, TypeError, ValueError):
                        continue
                    if stream not in prunes or seq > prunes[stream][0]:
                        prunes[stream] = (seq, digest, checkpoint)
        return prunes

    def _add(self, kind: str, chain: Chain, slot: Slot | None, seq: int | None, message: str, **extra: Any) -> None:
        self.findings.append(
            finding(
                kind,
                chain.stream,
                slot.position if slot else None,
                seq,
                message,
                line=(slot.line or None) if slot else None,
                **extra,
            )
        )

    def _analyse(self, chain: Chain, prune: tuple[int, str, Checkpoint] | None) -> StreamSummary:
        inserted = self._resolve_conflicts(chain)
        runs = chain.present_runs()
        checkpoints = sorted((c for c in chain.checkpoints if c.position not in inserted), key=lambda c: c.seq)
        trusted = [c for c in checkpoints if c.trusted]
        pruned_upto = prune[0] if prune else -1
        absent = self._gaps(chain, runs, trusted, prune)
        self._links(chain, trusted, inserted)
        self._bad(chain, trusted, inserted)
        self._checkpoints(chain, checkpoints, pruned_upto)
        if chain.inversions and not self.any_order:
            self._reordered(chain)
        for position, seq, line, last_seq, count, key_id in chain.wrong_key:
            assert self.key is not None
            sealed = f"with key {key_id}" if key_id else "without a key"
            self.findings.append(
                finding(
                    WRONG_KEY,
                    chain.stream,
                    position,
                    seq,
                    f"{count} record(s) (seq {seq}..{last_seq}) were sealed {sealed}, not with the given key "
                    f"{self.key.key_id}: they cannot be verified with it",
                    line=line or None,
                    seq_end=last_seq,
                    count=count,
                )
            )
        self._warnings(chain, runs, trusted)
        last = checkpoints[-1] if checkpoints else None
        return StreamSummary(
            chain.stream,
            chain.records,
            runs[0][0] if runs else None,
            runs[-1][1] if runs else None,
            len(checkpoints),
            last.reason if last else "",
            chain.algorithm,
            chain.key_id,
            absent,
        )

    def _fit(self, chain: Chain, slot: Slot) -> tuple[bool, bool, bool]:
        """(seal valid, links to its predecessor, its successor links to it)."""
        if slot.seq == 0:
            before_ok = slot.prev == ZERO
        else:
            before = chain.get(slot.seq - 1)
            before_ok = before is not None and before.hash == slot.prev
        after = chain.get(slot.seq + 1)
        after_ok = after is None or after.prev == slot.hash
        return slot.position not in chain.bad, before_ok, after_ok

    def _resolve_conflicts(self, chain: Chain) -> set[int]:
        """Of two records claiming one sequence number, the one that does not fit the chain was inserted."""
        inserted: set[int] = set()
        for extra in chain.conflicts:
            kept = chain.get(extra.seq)
            assert kept is not None
            if self._fit(chain, extra) > self._fit(chain, kept):
                chain.replace(extra)
                kept, extra = extra, kept
            inserted.add(extra.position)
            chain.bad.pop(extra.position, None)
            self.findings.append(
                finding(
                    INSERTED,
                    chain.stream,
                    extra.position,
                    extra.seq,
                    f"a second record for seq {extra.seq} (the other is at position {kept.position}) "
                    "that does not fit the chain",
                    line=extra.line or None,
                    related_position=kept.position,
                )
            )
        return inserted

    def _gaps(
        self,
        chain: Chain,
        runs: list[tuple[int, int]],
        trusted: list[Checkpoint],
        prune: tuple[int, str, Checkpoint] | None,
    ) -> int:
        """Missing sequence numbers: pruned (attested) or deleted; the tail up to the last attested seq too.

        With ``partial``, those not pruned are only counted: the number is returned (``absent``).
        """
        if not runs:
            return 0
        high = max([runs[-1][1], *(c.attested_seq for c in trusted)])
        missing: list[tuple[int, int]] = []
        cursor = 0
        for first, last in runs:
            if first > cursor:
                missing.append((cursor, first - 1))
            cursor = last + 1
        if cursor <= high:
            missing.append((cursor, high))
        pruned_upto = prune[0] if prune else -1
        pruned_absent = absent = 0
        for first, last in missing:
            if first <= pruned_upto:
                pruned_absent += min(last, pruned_upto) - first + 1
                first = pruned_upto + 1
            if first > last:
                continue
            if self.partial:  # filtered out by the route, as far as this copy can tell
                absent += last - first + 1
                continue
            before = chain.get(first - 1) if first > 0 else None
            after = chain.get(last + 1)
            if before is not None and after is not None:
                where = f"between positions {before.position} and {after.position}"
            elif after is not None:
                where = f"before position {after.position} (the head of the stream)"
            elif before is not None:
                where = f"after position {before.position} (attested by a checkpoint, but not here)"
            else:
                where = "(nothing around them is left)"
            what = f"seq {first}" if first == last else f"seqs {first}..{last}"
            self._add(
                DELETED,
                chain,
                after or before,
                first,
                f"{what} missing {where}",
                seq_end=last,
                count=last - first + 1,
                related_position=before.position if before is not None and after is not None else None,
            )
        if prune is None:
            return absent
        upto, digest, checkpoint = prune
        self.findings.append(
            finding(
                PRUNED,
                chain.stream,
                checkpoint.position,
                0,
                f"seqs 0..{upto} were pruned by the store's size limit ({pruned_absent} records gone), "
                f"as the {'signed ' if self.key is not None else ''}prune checkpoint at position "
                f"{checkpoint.position} attests",
                line=checkpoint.line or None,
                seq_end=upto,
                count=pruned_absent,
            )
        )
        successor = chain.get(upto + 1)
        if successor is not None and successor.prev != _digest(digest):
            self.findings.append(
                finding(
                    CHECKPOINT_MISMATCH,
                    checkpoint.stream,
                    checkpoint.position,
                    checkpoint.seq,
                    f"this prune checkpoint attests that seq {upto} of stream {chain.stream} had hash "
                    f"{digest[:16]}..., but seq {upto + 1} (position {successor.position}) does not chain to it",
                    line=checkpoint.line or None,
                )
            )
        return absent

    def _links(self, chain: Chain, trusted: list[Checkpoint], inserted: set[int]) -> None:
        """A broken link: the record whose hash changed was rewritten and rehashed."""
        attested = {c.attested_seq: _digest(c.attested_hash) for c in trusted}
        blamed: set[int] = set()
        for seq in chain.link_breaks():
            after = chain.get(seq)
            assert after is not None
            if seq == 0:
                if after.position not in chain.bad and after.position not in inserted:
                    self._add(
                        MODIFIED, chain, after, 0, "the first record of the stream does not start from the genesis hash"
                    )
                continue
            before = chain.get(seq - 1)
            assert before is not None
            if before.position in chain.bad or after.position in chain.bad:
                continue  # a record there is already reported as modified
            if attested.get(seq - 1) == before.hash:
                culprit, message = after, f"its prev_hash is not the (checkpoint-attested) hash of seq {seq - 1}"
            else:
                culprit = before
                message = (
                    f"its hash is not the prev_hash of seq {seq} (position {after.position}): "
                    "the record was rewritten and rehashed"
                )
            if culprit.position not in blamed:
                blamed.add(culprit.position)
                self._add(MODIFIED, chain, culprit, culprit.seq, message)

    def _bad(self, chain: Chain, trusted: list[Checkpoint], inserted: set[int]) -> None:
        """Records whose seal does not verify: modified, or (a whole HMAC stream none of whose seals
        verify) forged."""
        if not chain.bad:
            return
        key = self.key
        forged = (
            key is not None
            and key.record_algorithm == ALGORITHM_HMAC
            and chain.keyed_valid == 0
            and not trusted
            and not chain.wrong_key
        )
        bad = sorted(chain.bad.items())
        if forged:
            seqs = [seq for _, (seq, _, _) in bad]
            position, (seq, line, _) = bad[0]
            self.findings.append(
                finding(
                    INSERTED,
                    chain.stream,
                    position,
                    min(seqs),
                    f"stream {chain.stream}: none of its {chain.records} records carries a valid seal for this key "
                    "(and no signed checkpoint): forged and inserted",
                    line=line or None,
                    seq_end=max(seqs),
                    count=len(bad),
                )
            )
            return
        for position, (seq, line, why) in bad:
            if position not in inserted:
                self.findings.append(finding(MODIFIED, chain.stream, position, seq, why, line=line or None))

    def _checkpoints(self, chain: Chain, checkpoints: list[Checkpoint], pruned_upto: int) -> None:
        """What each checkpoint attests against what is stored, and the chain of checkpoint signatures."""
        previous: Checkpoint | None = None
        last_trusted: Checkpoint | None = None
        for checkpoint in checkpoints:
            slot = chain.get(checkpoint.seq)
            if checkpoint.trusted:
                self._attested(chain, checkpoint, slot, last_trusted)
                last_trusted = checkpoint
            expected = previous.signature if previous is not None else ""
            if checkpoint.prev_signature != expected and (previous is None or previous.trusted):
                lower = previous.seq if previous is not None else -1
                if pruned_upto <= lower:  # the checkpoint in between cannot have been pruned
                    after = f"after seq {lower} (position {previous.position}) " if previous is not None else ""
                    self._add(
                        CHECKPOINT_DELETED,
                        chain,
                        slot,
                        checkpoint.seq,
                        f"its prev_signature is not the signature of the checkpoint before it: a checkpoint "
                        f"{after}before seq {checkpoint.seq} was deleted",
                        related_position=previous.position if previous is not None else None,
                    )
            previous = checkpoint

    def _attested(self, chain: Chain, checkpoint: Checkpoint, slot: Slot | None, before: Checkpoint | None) -> None:
        attested_seq, attested_hash = checkpoint.attested_seq, checkpoint.attested_hash
        if attested_seq != checkpoint.seq - 1:
            self._add(
                CHECKPOINT_MISMATCH,
                chain,
                slot,
                checkpoint.seq,
                f"the checkpoint attests seq {attested_seq} but is seq {checkpoint.seq}: records were renumbered",
            )
            return
        if attested_seq < 0:
            stored_ok = attested_hash == GENESIS
        else:
            record = chain.get(attested_seq)
            if record is None:
                return  # the missing record is reported as deleted (or pruned)
            stored_ok = record.hash == _digest(attested_hash)
        if not stored_ok:
            self._add(
                CHECKPOINT_MISMATCH,
                chain,
                slot,
                checkpoint.seq,
                f"the checkpoint attests hash {attested_hash[:16]}... for seq {attested_seq}, but the stored record "
                f"has another: records {f'after seq {before.seq} ' if before else ''}up to seq {attested_seq} "
                "were rewritten and rehashed",
            )

    def _reordered(self, chain: Chain) -> None:
        """Records stored out of sequence order, in runs (one finding per moved block)."""
        order = chain.order
        flagged = chain.out_of_order()
        runs: list[list[int]] = []
        for index in flagged:
            if runs and runs[-1][-1] == index - 1 and order[index] == order[index - 1] + 1:
                runs[-1].append(index)
            else:
                runs.append([index])
        for run in runs:
            first, last = order[run[0]], order[run[-1]]
            slot = chain.get(first)
            before = chain.get(order[run[0] - 1]) if run[0] > 0 else None
            what = f"seq {first}" if first == last else f"seqs {first}..{last}"
            after = f" after seq {before.seq} (position {before.position})" if before is not None else " first"
            self._add(
                REORDERED,
                chain,
                slot,
                first,
                f"{what} stored out of sequence order:{after}",
                seq_end=last,
                count=len(run),
                related_position=before.position if before is not None else None,
            )

    def _warnings(self, chain: Chain, runs: list[tuple[int, int]], trusted: list[Checkpoint]) -> None:
        if chain.unchecked:
            self._add(
                NOT_CHECKED,
                chain,
                None,
                None,
                f"{chain.unchecked} HMAC-sealed records were not recomputed (no key given): only their chain links, "
                "sequence and order were checked; pass --key to check their content",
                count=chain.unchecked,
            )
        unchecked_signatures = self._signatures_unchecked.get(chain.stream, 0)
        if unchecked_signatures:
            self._add(
                NOT_CHECKED,
                chain,
                None,
                None,
                f"{unchecked_signatures} checkpoint signatures were not checked (no key given)",
                count=unchecked_signatures,
            )
        if not runs or chain.wrong_key:
            return  # (records sealed with another key: WRONG_KEY already says none of them can be checked)
        last_seq = runs[-1][1]
        if not trusted:
            self._add(
                UNATTESTED,
                chain,
                None,
                runs[0][0],
                f"no {'signed ' if self.key is not None else ''}checkpoint: none of its {chain.records} records is "
                "attested (the process was killed before its first checkpoint, or the records were forged)",
                seq_end=last_seq,
                count=chain.records,
            )
            return
        last = trusted[-1]
        if last.seq < last_seq:
            count, slot = last_seq - last.seq, chain.get(last.seq + 1)
            if self.partial:  # some of those seqs may be absent: the records present, from the first
                after = [(max(first, last.seq + 1), end) for first, end in runs if end > last.seq]
                count, slot = sum(end - first + 1 for first, end in after), chain.get(after[0][0])
            self._add(
                UNATTESTED,
                chain,
                slot,
                last.seq + 1,
                f"seqs {last.seq + 1}..{last_seq} come after the last checkpoint (seq {last.seq}, {last.reason}): "
                "nothing attests them, and records after them could have been deleted",
                seq_end=last_seq,
                count=count,
            )
        elif last.reason != "shutdown":
            self._add(
                UNATTESTED,
                chain,
                chain.get(last.seq),
                last.seq,
                f"the stream ends with a checkpoint of reason {last.reason!r}, not 'shutdown': the process was "
                "killed or is still running, and records it wrote after this one could have been deleted",
            )
