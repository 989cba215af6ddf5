"""The ledger's default store: one SQLite file in WAL mode.

Durability ``"os"`` is WAL with ``synchronous=NORMAL``: it survives a killed process (the OS
keeps the writes). ``"fsync"`` is ``FULL``: it also survives a power cut, at the cost of an
fsync per transaction (milliseconds on many disks; a group commit shares one among the
packets of a turn of the event loop). Checkpoints are the
ledger's to schedule (:meth:`SqliteStore.maintain`, in a thread), never SQLite's own inside a
commit on the event loop. The process that opens a ledger owns its file until it closes it:
other processes can neither write nor read it meanwhile (the admin API shows balances).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from aigent_connector.ledger import (
    DURABILITIES,
    AccountRow,
    Durability,
    LedgerUnavailable,
    TransferRow,
)

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
-- Only rows still 'reserved' (written by earlier versions) are indexed: recovery reads them.
DROP INDEX IF EXISTS transfers_reserved;
CREATE INDEX IF NOT EXISTS transfers_open ON transfers (expires_at) WHERE state = 'reserved';
"""

OPEN_TIMEOUT = 2.0  # seconds to wait for the file: a killed owner's lock goes at once
PAGE_SIZE = 1024  # the accounts table is small: a commit writes whole pages to the WAL
SYNCHRONOUS = {"fsync": "FULL", "os": "NORMAL"}

_UPSERT_ACCOUNT = (
    "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
    "balance = excluded.balance, reserved_in = excluded.reserved_in, "
    "reserved_out = excluded.reserved_out, min_balance = excluded.min_balance, "
    "max_balance = excluded.max_balance, settle_threshold = excluded.settle_threshold, "
    "settle_to = excluded.settle_to"
)
_UPSERT_TRANSFER = "INSERT OR REPLACE INTO transfers VALUES (?, ?, ?, ?, ?, ?)"


class SqliteStore:
    """One connection that holds the file for as long as it is open (SQLite's exclusive locking
    mode): a second process on the same ledger is refused at once instead of overwriting the
    first one's balances, and a commit needs no file locking (a third of its cost)."""

    writes_block = False

    def __init__(self, path: Path | str, *, durability: Durability = "os") -> None:
        if durability not in DURABILITIES:
            raise ValueError(f"durability must be 'fsync' or 'os', not {durability!r}")
        self.path = Path(path)
        self.name = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one connection, used from the loop and from threads
        db = self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=OPEN_TIMEOUT
        )
        try:
            # Before WAL is on, so that WAL's index lives in memory rather than a shared file.
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # new files only: commits write less
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("BEGIN EXCLUSIVE")  # take the file now, held until close()
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            db.close()
            if "locked" in str(exc):
                raise LedgerUnavailable(
                    f"ledger {self.path} is in use: another connector or agent has it open, "
                    "here or in another process; stop that one, or give each its own ledger "
                    "file (an agent's is in its data_dir)"
                ) from None
            raise LedgerUnavailable(f"ledger {self.path} cannot be opened: {exc}") from None
        db.execute(f"PRAGMA synchronous={SYNCHRONOUS[durability]}")
        db.execute("PRAGMA wal_autocheckpoint=0")  # maintain() does it, in a thread
        db.executescript(SCHEMA)

    def load(self) -> tuple[list[AccountRow], list[TransferRow]]:
        with self._lock:
            accounts = self._db.execute("SELECT * FROM accounts").fetchall()
            reserved = self._db.execute(
                "SELECT id, account, direction, amount, expires_at, state FROM transfers "
                "WHERE state = 'reserved'"
            ).fetchall()
        return accounts, reserved

    def has_transfer(self, transfer: str) -> bool:
        with self._lock:
            found = self._db.execute("SELECT 1 FROM transfers WHERE id = ?", (transfer,))
            return found.fetchone() is not None

    def write(self, accounts: list[AccountRow], transfers: list[TransferRow]) -> None:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(_UPSERT_ACCOUNT, accounts)
                if transfers:
                    db.executemany(_UPSERT_TRANSFER, transfers)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def maintain(self) -> None:
        """Copy the WAL into the database file: it holds the connection (and so any write)
        for a millisecond or so, once in CHECKPOINT_EVERY transactions."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        with self._lock:
            self._db.close()
