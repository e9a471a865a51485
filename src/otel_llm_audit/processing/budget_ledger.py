"""Spend per budget, scope and period, added up by every process on one machine.

Why SQLite (a file of its own, ``llm-audit/budgets.db`` by default): it ships with Python, its
``BEGIN IMMEDIATE`` transactions serialise writers across processes without a server, and WAL
mode lets readers go on meanwhile. One transaction per charged batch adds the amounts and
records which thresholds fired, with a primary key on (budget, scope, period, threshold): so a
threshold fires exactly once per period however many threads and processes cross it at the same
moment. It is not the audit store's file, because budgets apply with the store turned off, and
the store's writer should not wait on budget charges nor budget charges on it.

Fleets (several machines) each add up their own spend here; a fleet-wide view is the
``llm_audit.cost`` metric summed in the metrics backend (see the README).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Ledger values that keep the spend in this process's memory only.
IN_MEMORY = ("off", "memory", ":memory:")
#: ``RETURNING`` (SQLite 3.35+) adds and reads back in one statement.
_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
#: Thresholds this process remembers having claimed (an optimisation; the table decides).
_MAX_CLAIMS = 100_000

#: How long a charge waits for another process's transaction before it is kept for later: the
#: completion worker must never stall on the ledger.
BUSY_TIMEOUT_S = 0.05

# Keyed (budget, period, scope): the refresh reads one budget's current period.
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS spend (
        budget TEXT NOT NULL, period TEXT NOT NULL, scope TEXT NOT NULL,
        amount REAL NOT NULL, updated_ns INTEGER NOT NULL,
        PRIMARY KEY (budget, period, scope))""",
    "CREATE INDEX IF NOT EXISTS spend_updated ON spend (updated_ns)",
    """CREATE TABLE IF NOT EXISTS fired (
        budget TEXT NOT NULL, period TEXT NOT NULL, scope TEXT NOT NULL, threshold REAL NOT NULL,
        fired_ns INTEGER NOT NULL, pid INTEGER NOT NULL,
        PRIMARY KEY (budget, period, scope, threshold))""",
)


class LedgerUnavailableError(RuntimeError):
    """The ledger could not be written in time (another process holds it, or it is closed)."""


@dataclass(frozen=True, slots=True)
class Charge:
    """An amount to add to one budget's scope in one period, with the amounts of its thresholds."""

    budget: str
    scope: str
    period: str
    amount: float
    #: (fraction, absolute amount) pairs, in ascending order.
    thresholds: Sequence[tuple[float, float]]


@dataclass(frozen=True, slots=True)
class Charged:
    """The total after a charge, and the thresholds this charge was the first to cross."""

    charge: Charge
    total: float
    crossed: tuple[float, ...]


class BudgetLedger:
    """The shared ledger. One connection per process (reopened after ``fork``), used under a lock."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._memory = path.strip().lower() in IN_MEMORY
        self._lock = threading.Lock()
        self._pid = -1
        self._connection: sqlite3.Connection | None = None
        self._closed = False
        self._claimed: set[tuple[str, str, str, float]] = set()
        try:
            self._connect()
        except (sqlite3.Error, OSError) as err:  # a ledger that cannot be opened is a start-up error
            from otel_llm_audit.processing.budget_config import BudgetConfigError

            raise BudgetConfigError(f"budget ledger {path!r} cannot be opened: {err}") from None
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        """In a forked child: a new lock, and a connection of its own (the parent's is not touched)."""
        self._lock = threading.Lock()
        self._connection = None  # never closed here: it is the parent's
        self._claimed = set()

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise LedgerUnavailableError("the budget ledger is closed (the pipeline shut down)")
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
        target = ":memory:" if self._memory else self.path
        if not self._memory:
            parent = os.path.dirname(os.path.abspath(target))
            os.makedirs(parent, exist_ok=True)
        connection = sqlite3.connect(target, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        if not self._memory:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            connection.execute(statement)
        self._connection = connection
        self._pid = os.getpid()
        return connection

    def charge(self, charges: Iterable[Charge]) -> list[Charged]:
        """Add every charge in one transaction; say which thresholds each crossed first.

        Charges to the same budget, scope and period are added with one statement; walking their
        amounts in order then says which of them crossed each threshold. A threshold is claimed
        with an ``INSERT OR IGNORE`` on its primary key, so only one charge, in one process, ever
        crosses it; this process tries each threshold of a period once.
        """
        charges = list(charges)
        if not charges:
            return []
        groups: dict[tuple[str, str, str], list[int]] = {}
        for index, charge in enumerate(charges):
            groups.setdefault((charge.budget, charge.scope, charge.period), []).append(index)
        now = time.time_ns()
        pid = os.getpid()
        out: list[Charged | None] = [None] * len(charges)
        with self._lock:
            connection = self._connect()
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as err:  # busy past the timeout: the caller keeps the charges
                raise LedgerUnavailableError(f"budget ledger {self.path!r} is busy: {err}") from err
            try:
                for (budget, scope, period), indices in groups.items():
                    added = sum(charges[i].amount for i in indices)
                    total = self._add(connection, budget, scope, period, added, now)
                    running = total - added
                    for i in indices:
                        charge = charges[i]
                        running += charge.amount
                        crossed = []
                        for fraction, amount in charge.thresholds:
                            if running + 1e-9 < amount:
                                break
                            claim = (budget, scope, period, fraction)
                            if claim in self._claimed:
                                continue
                            self._claimed.add(claim)
                            cursor = connection.execute(
                                "INSERT OR IGNORE INTO fired (budget, period, scope, threshold, fired_ns, pid) "
                                "VALUES (?, ?, ?, ?, ?, ?)",
                                (budget, period, scope, fraction, now, pid),
                            )
                            if cursor.rowcount == 1:
                                crossed.append(fraction)
                        out[i] = Charged(charge, running, tuple(crossed))
                connection.execute("COMMIT")
            except BaseException as err:
                self._claimed.clear()  # what this transaction claimed was rolled back
                _rollback(connection)
                if isinstance(err, sqlite3.OperationalError):
                    raise LedgerUnavailableError(f"budget ledger {self.path!r}: {err}") from err
                raise
            if len(self._claimed) > _MAX_CLAIMS:
                self._claimed.clear()  # only an optimisation: the primary key still decides
        return [charged for charged in out if charged is not None]

    def _add(
        self, connection: sqlite3.Connection, budget: str, scope: str, period: str, amount: float, now: int
    ) -> float:
        upsert = (
            "INSERT INTO spend (budget, period, scope, amount, updated_ns) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (budget, period, scope) DO UPDATE SET amount = amount + excluded.amount, "
            "updated_ns = excluded.updated_ns"
        )
        if _RETURNING:
            (total,) = connection.execute(upsert + " RETURNING amount", (budget, period, scope, amount, now)).fetchone()
            return float(total)
        connection.execute(upsert, (budget, period, scope, amount, now))
        (total,) = connection.execute(
            "SELECT amount FROM spend WHERE budget = ? AND period = ? AND scope = ?", (budget, period, scope)
        ).fetchone()
        return float(total)

    def totals(self, budget: str, period: str) -> dict[str, float]:
        """Scope -> spend of one budget in one period (every process's)."""
        with self._lock:
            try:
                rows = (
                    self._connect()
                    .execute("SELECT scope, amount FROM spend WHERE budget = ? AND period = ?", (budget, period))
                    .fetchall()
                )
            except sqlite3.OperationalError as err:
                raise LedgerUnavailableError(f"budget ledger {self.path!r}: {err}") from err
        return {scope: float(amount) for scope, amount in rows}

    def forget_before(self, updated_ns: int) -> int:
        """Drop the spend not added to since ``updated_ns`` (old periods), and its fired thresholds.

        A threshold row goes only with its spend row: a long session keeps both, and does not
        fire its thresholds again.
        """
        with self._lock:
            connection = self._connect()
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as err:
                raise LedgerUnavailableError(f"budget ledger {self.path!r} is busy: {err}") from err
            try:
                removed = connection.execute("DELETE FROM spend WHERE updated_ns < ?", (updated_ns,)).rowcount
                removed += connection.execute(
                    "DELETE FROM fired WHERE NOT EXISTS (SELECT 1 FROM spend WHERE spend.budget = fired.budget "
                    "AND spend.period = fired.period AND spend.scope = fired.scope)"
                ).rowcount
                connection.execute("COMMIT")
            except BaseException:
                _rollback(connection)
                raise
        return removed

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and self._pid == os.getpid():
                self._connection.close()
            self._connection = None
            self._closed = True


def _rollback(connection: sqlite3.Connection) -> None:
    """Roll back, without letting a failed rollback hide the error that caused it."""
    with contextlib.suppress(sqlite3.Error):
        connection.execute("ROLLBACK")
