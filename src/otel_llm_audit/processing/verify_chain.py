"""One stream's records as ``verify`` saw them: compact enough for a million records, exact on links.

Records are kept by sequence number in flat arrays (8 bytes of position and 64 bytes of hashes
per record), not in dicts of objects: a million-record store is checked in ~70 MB. Hashes are
kept whole (32 bytes), so every link check is exact. Sequence numbers far from the rest (a
forged record claiming seq 10**12) go to a small dict instead of stretching the arrays.

The analysis is all after the scan, in sequence order: gaps, links, the records out of their
place (a longest increasing subsequence, so one moved record is one finding, not a cascade).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

DIGEST = 32
ZERO = bytes(DIGEST)
#: The longest jump forward the arrays stretch over; further records go to the sparse dict.
_MAX_JUMP = 1 << 22
#: Links are compared a block at a time (one C-level comparison per block when all is well).
_BLOCK = 1024


@dataclass(slots=True)
class Slot:
    """One record's place in its stream."""

    seq: int
    position: int
    line: int
    hash: bytes
    prev: bytes


@dataclass(slots=True)
class Checkpoint:
    """A checkpoint record, parsed: what it attests and how it is signed."""

    stream: str
    position: int
    line: int
    seq: int
    key_id: str
    attested_seq: int
    attested_hash: str
    reason: str
    algorithm: str
    signature: str
    prev_signature: str
    pruned: list[list[Any]]
    payload: bytes
    #: Its signature verified with the given key (or no key was given and it is taken at its word).
    trusted: bool = False


@dataclass(slots=True)
class Chain:
    """One stream's records, checkpoints and the problems seen while reading them."""

    stream: str
    with_lines: bool
    base: int = -1
    positions: array[int] = field(default_factory=lambda: array("q"))
    lines: array[int] = field(default_factory=lambda: array("q"))
    hashes: bytearray = field(default_factory=bytearray)
    prevs: bytearray = field(default_factory=bytearray)
    sparse: dict[int, Slot] = field(default_factory=dict)
    #: Sequence numbers in position order (first occurrence of each).
    order: array[int] = field(default_factory=lambda: array("q"))
    max_seq: int = -1
    inversions: int = 0
    #: Second records for a sequence number already seen, with another hash.
    conflicts: list[Slot] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    #: position -> (seq, line, why): records whose seal does not verify.
    bad: dict[int, tuple[int, int, str]] = field(default_factory=dict)
    records: int = 0
    #: Records whose HMAC verified with the given key (a stream with none is forged).
    keyed_valid: int = 0
    #: HMAC records that could not be recomputed (no key).
    unchecked: int = 0
    #: Runs of records sealed with another key: [position, seq, line, last seq, count, key id].
    wrong_key: list[list[Any]] = field(default_factory=list)
    in_wrong_run: bool = False
    algorithm: str = ""
    key_id: str = ""

    # Reading ---------------------------------------------------------------------------

    def place(self, seq: int, position: int, line: int, digest: bytes, prev: bytes) -> Slot | None:
        """Keep a record under its sequence number; the record already there, if any (nothing kept)."""
        if self.base < 0:
            self.base = seq
        index = seq - self.base
        size = len(self.positions)
        if index == size:
            self.positions.append(position)
            if self.with_lines:
                self.lines.append(line)
            self.hashes += digest
            self.prevs += prev
        elif 0 <= index < size:
            if self.positions[index]:
                return self._slot(index)
            self.positions[index] = position
            if self.with_lines:
                self.lines[index] = line
            start = index * DIGEST
            self.hashes[start : start + DIGEST] = digest
            self.prevs[start : start + DIGEST] = prev
        elif size < index <= size + _MAX_JUMP:
            pad = index - size
            self.positions.frombytes(bytes(8 * pad))
            if self.with_lines:
                self.lines.frombytes(bytes(8 * pad))
            self.hashes += bytes(DIGEST * pad)
            self.prevs += bytes(DIGEST * pad)
            return self.place(seq, position, line, digest, prev)
        else:
            existing = self.sparse.get(seq)
            if existing is not None:
                return existing
            self.sparse[seq] = Slot(seq, position, line, digest, prev)
        self.order.append(seq)
        if seq < self.max_seq:
            self.inversions += 1
        else:
            self.max_seq = seq
        return None

    def _slot(self, index: int) -> Slot:
        start = index * DIGEST
        return Slot(
            self.base + index,
            self.positions[index],
            self.lines[index] if self.with_lines else 0,
            bytes(self.hashes[start : start + DIGEST]),
            bytes(self.prevs[start : start + DIGEST]),
        )

    def get(self, seq: int) -> Slot | None:
        """The record kept for ``seq``."""
        index = seq - self.base
        if self.base >= 0 and 0 <= index < len(self.positions) and self.positions[index]:
            return self._slot(index)
        return self.sparse.get(seq)

    def replace(self, slot: Slot) -> None:
        """Keep ``slot`` for its sequence number instead of the record there (a conflict resolved)."""
        index = slot.seq - self.base
        if self.base >= 0 and 0 <= index < len(self.positions) and self.positions[index]:
            self.positions[index] = slot.position
            if self.with_lines:
                self.lines[index] = slot.line
            start = index * DIGEST
            self.hashes[start : start + DIGEST] = slot.hash
            self.prevs[start : start + DIGEST] = slot.prev
        else:
            self.sparse[slot.seq] = slot

    # Analysis --------------------------------------------------------------------------

    def present_runs(self) -> list[tuple[int, int]]:
        """The sequence numbers present, as sorted ``(first, last)`` runs."""
        runs: list[tuple[int, int]] = []
        positions = self.positions
        size = len(positions)
        index = 0
        while index < size:
            try:
                hole = positions.index(0, index)
            except ValueError:
                hole = size
            if hole > index:
                runs.append((self.base + index, self.base + hole - 1))
            index = hole
            while index < size and not positions[index]:
                index += 1
        runs.extend((seq, seq) for seq in self.sparse)
        runs.sort()
        merged: list[tuple[int, int]] = []
        for first, last in runs:
            if merged and first <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], last))
            else:
                merged.append((first, last))
        return merged

    def link_breaks(self) -> Iterator[int]:
        """Sequence numbers ``s`` whose prev_hash is not the hash of ``s - 1`` (both present); and 0 when
        the first record does not start from the genesis hash."""
        breaks: set[int] = set()
        hashes, prevs, positions = memoryview(self.hashes), memoryview(self.prevs), self.positions
        size = len(positions)
        for start in range(1, size, _BLOCK):
            end = min(size, start + _BLOCK)
            if prevs[start * DIGEST : end * DIGEST] == hashes[(start - 1) * DIGEST : (end - 1) * DIGEST]:
                continue
            for index in range(start, end):
                if (
                    positions[index]
                    and positions[index - 1]
                    and prevs[index * DIGEST : (index + 1) * DIGEST] != hashes[(index - 1) * DIGEST : index * DIGEST]
                ):
                    breaks.add(self.base + index)
        for seq in self.sparse:
            for later in (seq, seq + 1):
                before, after = self.get(later - 1), self.get(later)
                if before is not None and after is not None and after.prev != before.hash:
                    breaks.add(later)
        first = self.get(0)
        if first is not None and first.prev != ZERO:
            breaks.add(0)
        yield from sorted(breaks)

    def out_of_order(self) -> list[int]:
        """Indexes into ``order`` of the records out of place: all but the longest increasing run of
        sequence numbers (the earliest such run by position, so of a swapped pair the later one)."""
        order = self.order
        size = len(order)
        longest = array("q", bytes(8 * size))  # longest increasing run starting at each index
        tails: list[int] = []
        for index in range(size - 1, -1, -1):
            value = -order[index]
            at = bisect_left(tails, value)
            if at == len(tails):
                tails.append(value)
            else:
                tails[at] = value
            longest[index] = at + 1
        need, last, flagged = len(tails), -1, []
        for index in range(size):
            if need and longest[index] == need and order[index] > last:
                last = order[index]
                need -= 1
            else:
                flagged.append(index)
        return flagged
