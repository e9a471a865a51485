"""The local audit store: an append-only SQLite database of sealed spans, with an outbox.

Why SQLite: it is crash-safe by design (write-ahead log: a transaction is on disk or it is
not, even under SIGKILL), it ships with Python, several processes may share one file, and its
indexes answer ``find`` over millions of spans in milliseconds. Records are only ever
inserted; the one delete is the size policy's pruning, which leaves a signed trace of itself
(see :mod:`otel_llm_audit.delivery.store_writer`).

Tables:

- ``records``: one row per sealed span, in the order sealed (``id`` is the position). ``body``
  is the canonical encoding the seal covers (:mod:`otel_llm_audit.processing.canonical`); the
  other columns (identity, model, cost, flags) are a query index derived from it.
- ``resources``: the full OTLP resource of each record (the seal covers only its identity keys).
- ``outbox``: ``(record, destination)`` pairs not yet acknowledged by that destination, with a
  lease so that two processes sharing a store never send the same record at the same time.
- ``meta``: the format version.

Durability: ``sync="normal"`` (default) survives a killed process; ``sync="full"`` also survives
power loss, at the cost of an fsync per transaction.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from otel_llm_audit import semconv

FORMAT_VERSION = "1"

#: The first bytes of every SQLite database file.
SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resources (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    attributes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL DEFAULT '',
    body BLOB NOT NULL,
    resource_id INTEGER NOT NULL,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    user_id TEXT,
    session_id TEXT,
    tenant_id TEXT,
    team TEXT,
    application TEXT,
    model TEXT,
    provider TEXT,
    operation TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_usd REAL,
    policy INTEGER NOT NULL DEFAULT 0,
    error INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS records_stream_seq ON records (stream, seq);
CREATE INDEX IF NOT EXISTS records_trace ON records (trace_id);
CREATE INDEX IF NOT EXISTS records_start ON records (start_ns);
CREATE INDEX IF NOT EXISTS records_user ON records (user_id, start_ns) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_session ON records (session_id, start_ns) WHERE session_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_tenant ON records (tenant_id, start_ns) WHERE tenant_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_team ON records (team, start_ns) WHERE team IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_model ON records (model, start_ns) WHERE model IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_policy ON records (start_ns) WHERE policy = 1;
CREATE INDEX IF NOT EXISTS records_error ON records (start_ns) WHERE error = 1;
CREATE TABLE IF NOT EXISTS outbox (
    record_id INTEGER NOT NULL,
    destination TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER NOT NULL DEFAULT 0,
    lessee TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (destination, record_id)
) WITHOUT ROWID;
-- Pruning asks "is this record still waiting anywhere?" per record: without this, a scan each.
CREATE INDEX IF NOT EXISTS outbox_record ON outbox (record_id);
"""

#: The index columns of ``records``, in the order :class:`RecordRow` carries them.
INDEX_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "start_ns",
    "end_ns",
    "user_id",
    "session_id",
    "tenant_id",
    "team",
    "application",
    "model",
    "provider",
    "operation",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "policy",
    "error",
)

#: The index columns derived from a span's attributes, events and status (the rest are its ids,
#: name and times), in ``INDEX_COLUMNS`` order.
DERIVED_COLUMNS = INDEX_COLUMNS[6:]


def derived_index(attributes: Mapping[str, Any], event_names: Iterable[str], status_code: int) -> tuple[Any, ...]:
    """The values of ``DERIVED_COLUMNS`` for a span.

    One derivation for the store writer (from an SDK span) and for the query commands reading
    an OTLP JSON file (from a decoded span), so ``find`` and ``cost`` answer alike on both.
    """
    get = attributes.get
    return (
        _text(get(semconv.USER_ID)),
        _text(get(semconv.SESSION_ID)),
        _text(get(semconv.LLM_AUDIT_TENANT_ID)),
        _text(get(semconv.LLM_AUDIT_TEAM)),
        _text(get(semconv.LLM_AUDIT_APPLICATION)),
        _text(get(semconv.GEN_AI_RESPONSE_MODEL) or get(semconv.GEN_AI_REQUEST_MODEL)),
        _text(get(semconv.GEN_AI_PROVIDER_NAME) or get("gen_ai.system")),
        _text(get(semconv.GEN_AI_OPERATION_NAME)),
        _int(get(semconv.GEN_AI_USAGE_INPUT_TOKENS)),
        _int(get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS)),
        _float(get(semconv.LLM_AUDIT_COST_USD)),
        int(any(name == semconv.EVENT_LLM_AUDIT_POLICY for name in event_names)),
        int(status_code == 2 or semconv.ERROR_TYPE in attributes),
    )


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


_SEAL_COLUMNS = ("stream", "seq", "prev_hash", "hash", "algorithm", "key_id", "body", "resource_id")
_INSERT = (
    f"INSERT INTO records ({', '.join(_SEAL_COLUMNS + INDEX_COLUMNS)}) "
    f"VALUES ({', '.join('?' * (len(_SEAL_COLUMNS) + len(INDEX_COLUMNS)))})"
)


class StoreError(RuntimeError):
    """The store cannot be opened or written (not a store, newer format, disk full...)."""


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One sealed span as stored: its position, its seal and its canonical body."""

    position: int
    stream: str
    seq: int
    prev_hash: str
    hash: str
    algorithm: str
    key_id: str
    body: bytes
    resource_id: int


@dataclass(frozen=True, slots=True)
class RecordRow:
    """What the writer inserts: the seal, the body, the resource and the index values."""

    stream: str
    seq: int
    prev_hash: str
    hash: str
    algorithm: str
    key_id: str
    body: bytes
    resource_attributes: str  #: the resource's OTLP/JSON attribute list, as JSON text
    index: tuple[Any, ...]  #: values of ``INDEX_COLUMNS``


_INCARNATION = {"pid": os.getpid(), "token": uuid.uuid4().hex[:12]}


def _incarnation() -> str:
    """A token for this process's life: a restarted container's app is PID 1 again, but not this one."""
    if _INCARNATION["pid"] != os.getpid():  # a forked child is another process
        _INCARNATION.update(pid=os.getpid(), token=uuid.uuid4().hex[:12])
    return str(_INCARNATION["token"])


def lessee_name() -> str:
    """Who holds an outbox lease: host, process and incarnation (so a later start can tell it is gone)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_incarnation()}"


def _lessee_alive(lessee: str) -> bool:
    host, _, rest = lessee.partition(":")
    pid, _, token = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's process: wait for its lease to expire
    if int(pid) == os.getpid():
        return token == _incarnation()  # same PID, earlier life: gone
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class AuditStore:
    """One SQLite store file. Thread-safe: each thread gets its own connection."""

    def __init__(self, path: str | os.PathLike[str], *, sync: str = "normal", readonly: bool = False) -> None:
        self.path = os.fspath(path)
        if sync not in ("normal", "full"):
            raise ValueError(f"store sync must be 'normal' or 'full'; got {sync!r}")
        self._sync = sync
        self.readonly = readonly
        self._local = threading.local()
        self._resource_ids: dict[str, int] = {}
        if readonly:
            if not os.path.exists(self.path):
                raise StoreError(f"no audit store at {self.path!r}")
            with open(self.path, "rb") as handle:
                if handle.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                    raise StoreError(f"{self.path!r} is not an audit store (not an SQLite database)")
        else:
            parent = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(parent, exist_ok=True)
            if os.path.exists(self.path) and os.path.getsize(self.path) > 0:
                with open(self.path, "rb") as handle:
                    if handle.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                        raise StoreError(f"{self.path!r} is not an audit store (not an SQLite database)")
        try:
            connection = self.connection()
            if not readonly:
                with connection:
                    connection.executescript(_SCHEMA)
                    connection.execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?)", (FORMAT_VERSION,)
                    )
        except sqlite3.Error as err:
            raise StoreError(f"cannot open the audit store {self.path!r}: {err}") from None
        self._check_format(connection)

    def _check_format(self, connection: sqlite3.Connection) -> None:
        try:
            row = connection.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path!r} is not an audit store: {err}") from None
        if row is None or row[0] != FORMAT_VERSION:
            raise StoreError(
                f"{self.path!r} has store format {row[0] if row else 'unknown'!r}; "
                f"this version reads {FORMAT_VERSION!r}"
            )

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None and getattr(self._local, "pid", None) != os.getpid():
            connection = None  # inherited across fork(): SQLite connections must not cross processes
        if connection is None:
            if self.readonly:
                uri = f"file:{os.path.abspath(self.path)}?mode=ro"
                connection = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
            else:
                connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute(f"PRAGMA synchronous={self._sync.upper()}")
            connection.execute("PRAGMA busy_timeout=30000")
            self._local.connection = connection
            self._local.pid = os.getpid()
        return connection

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (connections run in autocommit mode: ``with connection`` would not begin one)."""
        connection = self.connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    # Writing ----------------------------------------------------------------------------

    def _resource_id(self, connection: sqlite3.Connection, attributes_json: str, new: dict[str, int]) -> int:
        known = self._resource_ids.get(attributes_json) or new.get(attributes_json)
        if known is not None:
            return known
        import hashlib

        digest = hashlib.sha256(attributes_json.encode("utf-8")).hexdigest()
        connection.execute(
            "INSERT OR IGNORE INTO resources (digest, attributes) VALUES (?, ?)", (digest, attributes_json)
        )
        (resource_id,) = connection.execute("SELECT id FROM resources WHERE digest = ?", (digest,)).fetchone()
        new[attributes_json] = resource_id  # cached once committed: a rolled-back row must not be remembered
        return int(resource_id)

    def append(self, rows: Sequence[RecordRow], destinations: Sequence[str] = ()) -> list[int]:
        """Insert ``rows`` in one transaction, queued for each destination; their positions."""
        positions: list[int] = []
        new_resources: dict[str, int] = {}
        with self._transaction() as connection:
            for row in rows:
                resource_id = self._resource_id(connection, row.resource_attributes, new_resources)
                cursor = connection.execute(
                    _INSERT,
                    (
                        row.stream,
                        row.seq,
                        row.prev_hash,
                        row.hash,
                        row.algorithm,
                        row.key_id,
                        row.body,
                        resource_id,
                        *row.index,
                    ),
                )
                position = int(cursor.lastrowid or 0)
                positions.append(position)
            if destinations and positions:
                connection.executemany(
                    "INSERT INTO outbox (record_id, destination) VALUES (?, ?)",
                    [(position, destination) for position in positions for destination in destinations],
                )
        self._resource_ids.update(new_resources)
        return positions

    # The outbox -------------------------------------------------------------------------

    def claim(self, destination: str, limit: int, lease_s: float, lessee: str | None = None) -> list[StoredRecord]:
        """Lease up to ``limit`` unsent records for ``destination``, oldest first."""
        connection = self.connection()
        now = time.time_ns()
        lessee = lessee or lessee_name()
        connection.execute("BEGIN IMMEDIATE")
        try:
            ids = [
                row[0]
                for row in connection.execute(
                    "SELECT record_id FROM outbox WHERE destination = ? AND lease_until < ? ORDER BY record_id LIMIT ?",
                    (destination, now, limit),
                )
            ]
            if ids:
                connection.executemany(
                    "UPDATE outbox SET lease_until = ?, lessee = ?, attempts = attempts + 1 "
                    "WHERE destination = ? AND record_id = ?",
                    [(now + int(lease_s * 1e9), lessee, destination, record_id) for record_id in ids],
                )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return self.records_by_position(ids)

    def acknowledge(self, destination: str, positions: Iterable[int]) -> None:
        """The destination has the records: they leave its outbox."""
        with self._transaction() as connection:
            connection.executemany(
                "DELETE FROM outbox WHERE destination = ? AND record_id = ?",
                [(destination, position) for position in positions],
            )

    def release(self, destination: str, positions: Iterable[int]) -> None:
        """Give the lease back (the send failed): the records are due again at once."""
        with self._transaction() as connection:
            connection.executemany(
                "UPDATE outbox SET lease_until = 0, lessee = '' WHERE destination = ? AND record_id = ?",
                [(destination, position) for position in positions],
            )

    def release_dead_leases(self, destination: str) -> int:
        """Free the leases of processes on this host that are gone (killed mid-send): due now."""
        connection = self.connection()
        lessees = [
            row[0]
            for row in connection.execute(
                "SELECT DISTINCT lessee FROM outbox WHERE destination = ? AND lease_until > 0", (destination,)
            )
        ]
        dead = [lessee for lessee in lessees if lessee and not _lessee_alive(lessee)]
        freed = 0
        with self._transaction() as connection:
            for lessee in dead:
                freed += connection.execute(
                    "UPDATE outbox SET lease_until = 0, lessee = '' WHERE destination = ? AND lessee = ?",
                    (destination, lessee),
                ).rowcount
        return freed

    def pending(self, destination: str | None = None) -> int:
        """Records not yet acknowledged (by ``destination``, or by any)."""
        connection = self.connection()
        if destination is None:
            return int(connection.execute("SELECT COUNT(DISTINCT record_id) FROM outbox").fetchone()[0])
        return int(
            connection.execute("SELECT COUNT(*) FROM outbox WHERE destination = ?", (destination,)).fetchone()[0]
        )

    # Size -------------------------------------------------------------------------------

    def used_bytes(self) -> int:
        """Bytes of the database in use (freed pages are reused, so the file does not shrink)."""
        connection = self.connection()
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        free = connection.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * page_size)

    def oldest_for_pruning(self, limit: int) -> tuple[list[int], int]:
        """Positions to prune, delivered records first; and how many of them were never delivered."""
        connection = self.connection()
        delivered = [
            row[0]
            for row in connection.execute(
                "SELECT id FROM records WHERE NOT EXISTS (SELECT 1 FROM outbox WHERE record_id = records.id) "
                "ORDER BY id LIMIT ?",
                (limit,),
            )
        ]
        if delivered:
            return delivered, 0
        undelivered = [row[0] for row in connection.execute("SELECT id FROM records ORDER BY id LIMIT ?", (limit,))]
        return undelivered, len(undelivered)

    def prune(self, positions: Sequence[int]) -> list[list[Any]]:
        """Delete records; per stream, ``[stream, last pruned sequence, its hash]`` (for the checkpoint)."""
        connection = self.connection()
        if not positions:
            return []
        placeholders = ",".join("?" * len(positions))
        last: dict[str, tuple[int, str]] = {}
        for stream, seq, digest in connection.execute(
            f"SELECT stream, seq, hash FROM records WHERE id IN ({placeholders})", tuple(positions)
        ):
            if stream not in last or seq > last[stream][0]:
                last[stream] = (seq, digest)
        with self._transaction() as connection:
            connection.execute(f"DELETE FROM outbox WHERE record_id IN ({placeholders})", tuple(positions))
            connection.execute(f"DELETE FROM records WHERE id IN ({placeholders})", tuple(positions))
        return [[stream, seq, digest] for stream, (seq, digest) in sorted(last.items())]

    # Reading ----------------------------------------------------------------------------

    _RECORD_COLUMNS = "id, stream, seq, prev_hash, hash, algorithm, key_id, body, resource_id"

    def records_by_position(self, positions: Sequence[int]) -> list[StoredRecord]:
        if not positions:
            return []
        placeholders = ",".join("?" * len(positions))
        rows = self.connection().execute(
            f"SELECT {self._RECORD_COLUMNS} FROM records WHERE id IN ({placeholders}) ORDER BY id", tuple(positions)
        )
        return [StoredRecord(*row) for row in rows]

    def iter_records(self, *, batch: int = 5000, where: str = "", params: Sequence[Any] = ()) -> Iterator[StoredRecord]:
        """Every record (or those matching ``where``, an SQL condition on ``records``) in stored order."""
        connection = self.connection()
        # Not 0: ids start at 1, but a row someone gave id 0 or below by hand must be read too
        # (``verify`` has to see every row that ``find`` or ``show`` could).
        after: float = float("-inf")
        condition = f" AND ({where})" if where else ""
        while True:
            rows = connection.execute(
                f"SELECT {self._RECORD_COLUMNS} FROM records WHERE id > ?{condition} ORDER BY id LIMIT ?",
                (after, *params, batch),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield StoredRecord(*row)
            after = rows[-1][0]

    def count(self, where: str = "", params: Sequence[Any] = ()) -> int:
        condition = f" WHERE {where}" if where else ""
        return int(self.connection().execute(f"SELECT COUNT(*) FROM records{condition}", tuple(params)).fetchone()[0])

    def resource_attributes(self, resource_id: int) -> list[dict[str, Any]]:
        """The full OTLP/JSON attribute list of a stored resource."""
        row = self.connection().execute("SELECT attributes FROM resources WHERE id = ?", (resource_id,)).fetchone()
        return list(json.loads(row[0])) if row else []
