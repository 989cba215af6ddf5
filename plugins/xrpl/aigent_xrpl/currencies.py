"""The currencies an agent issues on the XRPL, kept in its data directory.

On the ledger a currency is nothing until someone holds it: it lives only in trust lines. The
agent remembers the codes it chose to issue, by issuing address (another wallet issues other
currencies), so they are listed before anyone trusts it, and after a restart. Read once into
memory and written through: lookups never touch the disk.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS currencies (
    issuer TEXT NOT NULL, currency TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (issuer, currency));
"""


class IssuedCurrencies:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        rows = self._db.execute("SELECT issuer, currency FROM currencies ORDER BY created_at")
        self._codes: list[tuple[str, str]] = [(r[0], r[1]) for r in rows]

    def of(self, issuer: str) -> list[str]:
        """The codes ``issuer`` (the agent's address) issues, oldest first."""
        return [code for who, code in self._codes if who == issuer]

    def add(self, issuer: str, currency: str, at: float) -> None:
        with self._lock:
            if (issuer, currency) in self._codes:
                return
            self._db.execute(
                "INSERT OR IGNORE INTO currencies (issuer, currency, created_at) VALUES (?, ?, ?)",
                (issuer, currency, at),
            )
            self._codes.append((issuer, currency))

    def close(self) -> None:
        with self._lock:
            self._db.close()
