"""Seals: a hash chain over the canonical spans of one stream, and signed checkpoints over it.

The design follows AWS CloudTrail's log file integrity validation: every record's hash covers
the hash of the record before it, and at intervals a checkpoint signs the head of the chain
together with the previous checkpoint's signature. Editing, deleting, inserting or reordering
a record breaks the chain at that record; rewriting the whole chain breaks the signatures.

A *stream* is one writer's sequence (one process, one store): records are numbered from 0 and
the first one's previous hash is 64 zeros.

Keys (``OTEL_LLM_AUDIT_SEAL_KEY_FILE``):

- none: records are chained with SHA-256 and checkpoints are unsigned. Catches accidental
  corruption and naive edits; someone who recomputes the hashes is not caught.
- an HMAC secret (any file that is not a PEM key, at least 16 bytes): every record's seal is an
  HMAC-SHA256, so no record can be forged or rehashed without the key, and every change is
  located exactly; checkpoints are HMACs too. Verification needs the same secret.
- an Ed25519 private key (PEM, via ``cryptography``): records are chained with SHA-256 and
  checkpoints are Ed25519 signatures, verifiable by anyone with the public key. A rewrite that
  recomputes hashes is caught at the next checkpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from otel_llm_audit.processing.canonical import FORMAT, encode

GENESIS = "0" * 64

ALGORITHM_SHA256 = "sha256"
ALGORITHM_HMAC = "hmac-sha256"
ALGORITHM_ED25519 = "ed25519"
ALGORITHM_NONE = "none"

_MIN_HMAC_KEY = 16


class SealKeyError(ValueError):
    """The seal key file cannot be used (missing, too short, or an unsupported key type)."""


@dataclass(frozen=True, slots=True)
class SealKey:
    """What seals records and signs checkpoints. Build with :func:`load_seal_key`."""

    #: The record seal: ``sha256`` or ``hmac-sha256``.
    record_algorithm: str
    #: The checkpoint signature: ``none``, ``hmac-sha256`` or ``ed25519``.
    checkpoint_algorithm: str
    #: A short fingerprint naming the key (not secret), so a verifier can pick the right one.
    key_id: str = ""
    secret: bytes = b""
    #: ``cryptography``'s Ed25519 private key, when signing with one.
    private_key: Any = None
    #: ``cryptography``'s Ed25519 public key, when verifying (or signing) with one.
    public_key: Any = None

    def record_hash(self, stream: str, sequence: int, prev_hash: str, body: bytes) -> str:
        """The seal of one record: its position in the stream, its predecessor and its bytes."""
        header = f"{FORMAT}\n{stream}\n{sequence}\n{prev_hash}\n".encode()
        if self.record_algorithm == ALGORITHM_HMAC:
            mac = hmac.new(self.secret, header, hashlib.sha256)
            mac.update(body)
            return mac.hexdigest()
        digest = hashlib.sha256(header)
        digest.update(body)
        return digest.hexdigest()

    def sign(self, payload: bytes) -> str:
        """A checkpoint signature (hex); empty when there is no key."""
        if self.checkpoint_algorithm == ALGORITHM_HMAC:
            return hmac.new(self.secret, payload, hashlib.sha256).hexdigest()
        if self.checkpoint_algorithm == ALGORITHM_ED25519:
            if self.private_key is None:
                raise SealKeyError("an Ed25519 public key can verify checkpoints but not sign them")
            return str(self.private_key.sign(payload).hex())
        return ""

    def verify_signature(self, payload: bytes, signature: str) -> bool:
        """Whether ``signature`` is this key's signature of ``payload``."""
        if self.checkpoint_algorithm == ALGORITHM_HMAC:
            return hmac.compare_digest(self.sign(payload), signature)
        if self.checkpoint_algorithm == ALGORITHM_ED25519:
            from cryptography.exceptions import InvalidSignature

            try:
                self.public_key.verify(bytes.fromhex(signature), payload)
            except (InvalidSignature, ValueError):
                return False
            return True
        return False


UNKEYED = SealKey(record_algorithm=ALGORITHM_SHA256, checkpoint_algorithm=ALGORITHM_NONE)


def load_seal_key(path: str | os.PathLike[str] | None) -> SealKey:
    """The key in ``path``: an HMAC secret, an Ed25519 private key, or (to verify) its public key.

    ``None`` or ``""`` means no key: SHA-256 chaining and unsigned checkpoints.
    """
    if not path:
        return UNKEYED
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise SealKeyError(f"cannot read the seal key file {os.fspath(path)!r}: {err.strerror}") from None
    if b"-----BEGIN" in data:
        return _ed25519_key(data, os.fspath(path))
    secret = data.strip()
    if len(secret) < _MIN_HMAC_KEY:
        raise SealKeyError(
            f"the seal key file {os.fspath(path)!r} holds {len(secret)} bytes; an HMAC secret needs at least "
            f"{_MIN_HMAC_KEY} (e.g. `openssl rand -hex 32 > {os.fspath(path)}`)"
        )
    key_id = hmac.new(secret, b"otel-llm-audit key id", hashlib.sha256).hexdigest()[:16]
    return SealKey(ALGORITHM_HMAC, ALGORITHM_HMAC, key_id=key_id, secret=secret)


def _ed25519_key(pem: bytes, where: str) -> SealKey:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise SealKeyError(
            f"{where} is a PEM key; Ed25519 signatures need the `cryptography` package "
            "(pip install 'otel-llm-audit[signing]')"
        ) from None
    private: Any = None
    try:
        if b"PRIVATE KEY" in pem:
            private = serialization.load_pem_private_key(pem, password=None)
            public: Any = private.public_key()
        else:
            public = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as err:
        raise SealKeyError(f"cannot load the PEM key in {where}: {err}") from None
    if not isinstance(public, ed25519.Ed25519PublicKey):
        raise SealKeyError(f"{where} is not an Ed25519 key (only Ed25519 PEM keys or HMAC secrets are supported)")
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = hashlib.sha256(raw).hexdigest()[:16]
    return SealKey(ALGORITHM_SHA256, ALGORITHM_ED25519, key_id=key_id, private_key=private, public_key=public)


@dataclass(frozen=True, slots=True)
class Seal:
    """A record's place in its stream's chain."""

    stream: str
    sequence: int
    prev_hash: str
    hash: str


class Sealer:
    """Numbers and chains the records of one stream. Thread-safe; the order of calls is the order sealed."""

    def __init__(self, key: SealKey = UNKEYED, stream: str | None = None) -> None:
        self.key = key
        self.stream = stream or uuid.uuid4().hex
        self._next = 0
        self._head = GENESIS
        self._lock = threading.Lock()

    @property
    def head(self) -> tuple[int, str]:
        """The last sequence number sealed (-1 before the first) and its hash."""
        with self._lock:
            return self._next - 1, self._head

    def rewind(self, sequence: int, prev_hash: str) -> None:
        """Make ``sequence`` the next number again, after ``prev_hash``: records sealed from it on
        were never stored (their write failed), so the chain continues as if they had not been."""
        with self._lock:
            self._next, self._head = sequence, prev_hash

    def seal(self, body: bytes) -> Seal:
        with self._lock:
            sequence, prev = self._next, self._head
            digest = self.key.record_hash(self.stream, sequence, prev, body)
            self._next += 1
            self._head = digest
        return Seal(self.stream, sequence, prev, digest)


def checkpoint_payload(
    stream: str,
    sequence: int,
    record_hash: str,
    time_ns: int,
    prev_signature: str,
    reason: str,
    pruned: list[list[Any]] | None = None,
) -> bytes:
    """The bytes a checkpoint signs: the chain head it attests, when, and the checkpoint before it.

    ``pruned`` lists ``[stream, last pruned sequence, its hash]`` for records the store's size
    policy removed, so a verifier can tell pruning from deletion.
    """
    return encode(
        {
            "v": f"{FORMAT}/checkpoint",
            "stream": stream,
            "sequence": str(sequence),
            "hash": record_hash,
            "time": str(time_ns),
            "prev_signature": prev_signature,
            "reason": reason,
            "pruned": pruned or [],
        }
    )
