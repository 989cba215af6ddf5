"""Balances per peer account, durable in SQLite (WAL), with the reference connector's semantics.

An incoming Prepare from a peer *reserves* its amount against the account's maximum balance (the
credit we extend); a Reject *reverts* the reservation; a Fulfill *commits* it. An outgoing
Prepare reserves against the minimum balance (the credit the peer extends to us) and a Fulfill
commits it. Every step is one SQLite transaction keyed by the packet's id, so a repeated step
is a no-op and a crash at any moment leaves each transfer either done or not: nothing is lost
and nothing is counted twice. On start, :meth:`Ledger.recover` reverts reservations whose
packets have expired (their Prepare can no longer be fulfilled).

When an account's balance crosses its settle threshold, the ledger reports how much should be
settled (:class:`Settlement`); the connector hands that to a settlement engine.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

Direction = Literal["in", "out"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    balance INTEGER NOT NULL DEFAULT 0,
    reserved_in INTEGER NOT NULL DEFAULT 0,
    reserved_out INTEGER NOT NULL DEFAULT 0,
    min_balance INTEGER,
    max_balance INTEGER,
    settle_threshold INTEGER,
    settle_to INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS transfers (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    direction TEXT NOT NULL,
    amount INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transfers_reserved ON transfers (state, expires_at);
"""


class LedgerError(Exception):
    """A transfer the ledger refuses; ``code`` is the ILP error code to reject with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Account:
    id: str
    balance: int
    reserved_in: int
    reserved_out: int
    min_balance: int | None
    max_balance: int | None
    settle_threshold: int | None
    settle_to: int


@dataclass(frozen=True)
class Settlement:
    """Pay the peer ``amount`` to bring its balance back to ``settle_to``."""

    account: str
    amount: int


class Store(Protocol):
    """What a ledger needs from storage; another one (PostgreSQL, say) implements this."""

    def configure(
        self, account: str, *, min_balance: int | None, max_balance: int | None,
        settle_threshold: int | None, settle_to: int,
    ) -> None: ...  # fmt: skip

    def reserve(
        self, transfer: str, account: str, direction: Direction, amount: int, expires_at: float
    ) -> None: ...

    def commit(self, transfer: str) -> Settlement | None: ...

    def revert(self, transfer: str) -> None: ...

    def recover(self, now: float) -> int: ...

    def account(self, account: str) -> Account: ...


class SqliteLedger:
    """The default store: one SQLite file in WAL mode; safe across processes and crashes."""

    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL") -> None:
        # WAL with synchronous=NORMAL survives a killed process (the OS keeps the writes);
        # FULL also survives a power cut, at the cost of an fsync per transfer.
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _tx(self) -> _Transaction:
        return _Transaction(self._db, self._lock)

    def configure(
        self,
        account: str,
        *,
        min_balance: int | None = None,
        max_balance: int | None = None,
        settle_threshold: int | None = None,
        settle_to: int = 0,
    ) -> None:
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO accounts (id) VALUES (?)", (account,))
            db.execute(
                "UPDATE accounts SET min_balance = ?, max_balance = ?, settle_threshold = ?, "
                "settle_to = ? WHERE id = ?",
                (min_balance, max_balance, settle_threshold, settle_to, account),
            )

    def reserve(
        self, transfer: str, account: str, direction: Direction, amount: int, expires_at: float
    ) -> None:
        """Hold ``amount`` for a Prepare; :class:`LedgerError` (T04) when the credit limit
        would be crossed. Reserving the same transfer twice is a no-op."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM transfers WHERE id = ?", (transfer,)).fetchone():
                return
            db.execute("INSERT OR IGNORE INTO accounts (id) VALUES (?)", (account,))
            row = db.execute(
                "SELECT balance, reserved_in, reserved_out, min_balance, max_balance "
                "FROM accounts WHERE id = ?",
                (account,),
            ).fetchone()
            balance, reserved_in, reserved_out, low, high = row
            if direction == "in":
                if high is not None and balance + reserved_in + amount > high:
                    raise LedgerError(
                        "T04",
                        f"exceeded maximum balance of account {account}: balance {balance}, "
                        f"reserved {reserved_in}, prepare {amount}, maximum {high}",
                    )
                db.execute(
                    "UPDATE accounts SET reserved_in = reserved_in + ? WHERE id = ?",
                    (amount, account),
                )
            else:
                if low is not None and balance - reserved_out - amount < low:
                    raise LedgerError(
                        "T04",
                        f"insufficient liquidity with account {account}: balance {balance}, "
                        f"reserved {reserved_out}, prepare {amount}, minimum {low}",
                    )
                db.execute(
                    "UPDATE accounts SET reserved_out = reserved_out + ? WHERE id = ?",
                    (amount, account),
                )
            db.execute(
                "INSERT INTO transfers VALUES (?, ?, ?, ?, ?, 'reserved')",
                (transfer, account, direction, amount, expires_at),
            )

    def commit(self, transfer: str) -> Settlement | None:
        """The Fulfill: the reservation becomes balance. Returns a settlement when the
        account's balance crossed its settle threshold."""
        with self._tx() as db:
            row = db.execute(
                "SELECT account, direction, amount FROM transfers "
                "WHERE id = ? AND state = 'reserved'",
                (transfer,),
            ).fetchone()
            if row is None:
                return None  # unknown, or already committed or reverted: nothing to do
            account, direction, amount = row
            if direction == "in":
                db.execute(
                    "UPDATE accounts SET balance = balance + ?, reserved_in = reserved_in - ? "
                    "WHERE id = ?",
                    (amount, amount, account),
                )
            else:
                db.execute(
                    "UPDATE accounts SET balance = balance - ?, reserved_out = reserved_out - ? "
                    "WHERE id = ?",
                    (amount, amount, account),
                )
            db.execute("UPDATE transfers SET state = 'committed' WHERE id = ?", (transfer,))
            balance, threshold, settle_to = db.execute(
                "SELECT balance, settle_threshold, settle_to FROM accounts WHERE id = ?",
                (account,),
            ).fetchone()
        if threshold is not None and balance < threshold:
            return Settlement(account, settle_to - balance)
        return None

    def settled(self, account: str, amount: int) -> None:
        """A settlement of ``amount`` to the peer went through: the balance moves back up."""
        with self._tx() as db:
            db.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, account))

    def revert(self, transfer: str) -> None:
        """The Reject (or expiry): the reservation is released."""
        with self._tx() as db:
            self._revert(db, transfer)

    @staticmethod
    def _revert(db: sqlite3.Connection, transfer: str) -> None:
        row = db.execute(
            "SELECT account, direction, amount FROM transfers WHERE id = ? AND state = 'reserved'",
            (transfer,),
        ).fetchone()
        if row is None:
            return
        account, direction, amount = row
        column = "reserved_in" if direction == "in" else "reserved_out"
        db.execute(f"UPDATE accounts SET {column} = {column} - ? WHERE id = ?", (amount, account))
        db.execute("UPDATE transfers SET state = 'reverted' WHERE id = ?", (transfer,))

    def recover(self, now: float | None = None) -> int:
        """Revert every reservation whose packet expired (after a restart, say)."""
        now = time.time() if now is None else now
        with self._tx() as db:
            expired = [
                row[0]
                for row in db.execute(
                    "SELECT id FROM transfers WHERE state = 'reserved' AND expires_at <= ?",
                    (now,),
                )
            ]
            for transfer in expired:
                self._revert(db, transfer)
        return len(expired)

    def account(self, account: str) -> Account:
        row = self._db.execute(
            "SELECT id, balance, reserved_in, reserved_out, min_balance, max_balance, "
            "settle_threshold, settle_to FROM accounts WHERE id = ?",
            (account,),
        ).fetchone()
        if row is None:
            return Account(account, 0, 0, 0, None, None, None, 0)
        return Account(*row)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any error; one writer at a time."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self.db = db
        self.lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        try:
            self.db.execute("ROLLBACK" if kind else "COMMIT")
        finally:
            self.lock.release()
