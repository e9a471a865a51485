"""What ``verify`` reports: findings located by position, and the result the CLI and ``--json`` share.

One data shape for people and machines: the terminal table and the ``--json`` document are
two renderings of the same :class:`VerifyResult`, so a test of one is a test of the other.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

ERROR = "error"
WARNING = "warning"
INFO = "info"

#: A record's hash does not recompute, or it no longer chains to its successor (rewritten).
MODIFIED = "MODIFIED"
#: Sequence numbers missing from a stream (not covered by a signed prune checkpoint).
DELETED = "DELETED"
#: A record without a seal, a second record for a sequence number, a forged stream.
INSERTED = "INSERTED"
#: A record stored after one with a higher sequence number.
REORDERED = "REORDERED"
#: The same record again (at-least-once delivery): not tampering.
DUPLICATE = "DUPLICATE"
#: A checkpoint whose signature does not verify (or is missing while a key was given).
CHECKPOINT_SIGNATURE = "CHECKPOINT_SIGNATURE"
#: A checkpoint attests a chain head that is not the stored one.
CHECKPOINT_MISMATCH = "CHECKPOINT_MISMATCH"
#: A checkpoint's ``prev_signature`` is not the signature of the checkpoint before it.
CHECKPOINT_DELETED = "CHECKPOINT_DELETED"
#: Records sealed with another key than the one given (or with none).
WRONG_KEY = "WRONG_KEY"
#: A line of an OTLP JSON file that is not a JSON document.
UNREADABLE = "UNREADABLE"
#: Records the store's size policy removed, attested by a signed prune checkpoint.
PRUNED = "PRUNED"
#: Records no checkpoint attests (after the last one; a stream without a final shutdown checkpoint).
UNATTESTED = "UNATTESTED"
#: What could not be checked without a key (HMAC records, checkpoint signatures).
NOT_CHECKED = "NOT_CHECKED"

SEVERITY = {
    MODIFIED: ERROR,
    DELETED: ERROR,
    INSERTED: ERROR,
    REORDERED: ERROR,
    DUPLICATE: INFO,
    CHECKPOINT_SIGNATURE: ERROR,
    CHECKPOINT_MISMATCH: ERROR,
    CHECKPOINT_DELETED: ERROR,
    WRONG_KEY: ERROR,
    UNREADABLE: ERROR,
    PRUNED: INFO,
    UNATTESTED: WARNING,
    NOT_CHECKED: WARNING,
}


class VerifyInputError(Exception):
    """The source cannot be verified at all (missing, not a store, nothing sealed in it)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem (or note), located: ``position`` is the store's record id or the file's span ordinal."""

    kind: str
    severity: str
    stream: str
    position: int | None
    seq: int | None
    message: str
    #: The line of an OTLP JSON file the record is on (``None`` for a store).
    line: int | None = None
    #: The last sequence number of a range (deleted, pruned, reordered or wrong-key runs).
    seq_end: int | None = None
    #: How many records the finding covers.
    count: int = 1
    #: Another record it refers to: the one before a gap, the original of a duplicate or of a
    #: conflicting record, the one a reordered record was found after.
    related_position: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def finding(
    kind: str,
    stream: str,
    position: int | None,
    seq: int | None,
    message: str,
    *,
    line: int | None = None,
    seq_end: int | None = None,
    count: int = 1,
    related_position: int | None = None,
) -> Finding:
    """A finding with the severity its kind has."""
    return Finding(kind, SEVERITY[kind], stream, position, seq, message, line, seq_end, count, related_position)


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """One stream as found: how many records, which sequence numbers, how it was sealed and closed."""

    stream: str
    records: int
    first_seq: int | None
    last_seq: int | None
    checkpoints: int
    #: The reason of the stream's last checkpoint (``shutdown`` when it closed cleanly).
    last_checkpoint: str
    algorithm: str
    key_id: str
    #: With ``partial``: the sequence numbers up to the stream's last present or attested one that the
    #: copy does not hold (filtered out by a route, not reported as deleted). 0 otherwise: there,
    #: a missing sequence number is a ``DELETED`` finding.
    absent: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}


@dataclass(slots=True)
class VerifyResult:
    """Everything ``verify`` found in one source."""

    source: str
    #: ``store`` or ``otlp``.
    source_kind: str
    records: int = 0
    checkpoints: int = 0
    #: What the seals were checked with: ``none``, ``hmac-sha256`` or ``ed25519`` (and its key id).
    key: str = "none"
    key_id: str = ""
    any_order: bool = False
    #: Verified as a filtered subset of each stream (``--partial``): missing records are counted, not deleted.
    partial: bool = False
    findings: list[Finding] = field(default_factory=list)
    streams: list[StreamSummary] = field(default_factory=list)

    def sort(self) -> None:
        """Findings by position (then line), stream-wide notes last."""
        self.findings.sort(
            key=lambda f: (
                f.position is None,
                f.position or 0,
                f.line or 0,
                _SEVERITY_ORDER[f.severity],
                f.kind,
                f.seq or 0,
            )
        )

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == ERROR)

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity == WARNING)

    @property
    def ok(self) -> bool:
        """No finding of severity error: nothing was modified, deleted, inserted or reordered."""
        return self.errors == 0

    @property
    def counts(self) -> dict[str, int]:
        """Findings per kind."""
        return dict(sorted(Counter(f.kind for f in self.findings).items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "source_kind": self.source_kind,
            "ok": self.ok,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "key": self.key,
            "key_id": self.key_id,
            "any_order": self.any_order,
            "partial": self.partial,
            "errors": self.errors,
            "warnings": self.warnings,
            "counts": self.counts,
            "streams": [s.to_json() for s in self.streams],
            "findings": [f.to_json() for f in self.findings],
        }
