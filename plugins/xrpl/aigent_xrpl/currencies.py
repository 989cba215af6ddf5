"""The currencies an agent issues on the XRPL, kept in its storage (``xrpl_currencies``: a file
in its data directory, or its schema of a fleet's database).

On the ledger a currency is nothing until someone holds it: it lives only in trust lines. The
agent remembers the codes it chose to issue, by issuing address (another wallet issues other
currencies), so they are listed before anyone trusts it, and after a restart or a move to
another server. Read once into memory (:meth:`IssuedCurrencies.load`, from a thread) and
written through: lookups never touch the store.
"""

from __future__ import annotations

import threading

from aigent.storage import Migration, Store

NAME = "xrpl_currencies"
MIGRATIONS: tuple[Migration, ...] = (
    # 1: in a file, as before stores were versioned (an existing file has it already); in
    # PostgreSQL, where the agent's stores share a schema, under the name 2 gives a file
    {
        "sqlite": """
        CREATE TABLE IF NOT EXISTS currencies (
            issuer TEXT NOT NULL, currency TEXT NOT NULL, created_at REAL NOT NULL,
            PRIMARY KEY (issuer, currency));
        """,
        "postgresql": """
        CREATE TABLE xrpl_currencies (
            issuer TEXT NOT NULL, currency TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (issuer, currency));
        """,
    },
    {"sqlite": "ALTER TABLE currencies RENAME TO xrpl_currencies", "postgresql": "SELECT 1"},
)
"""The ``xrpl_currencies`` store (aigent.storage); append, never edit one that shipped."""


class IssuedCurrencies:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._loaded: list[tuple[str, str]] | None = None

    def load(self) -> list[tuple[str, str]]:
        """(issuer, code) of every currency issued, oldest first; reads the store the first
        time (blocks: call it from a thread)."""
        with self._lock:
            if self._loaded is None:
                rows = self.store.execute(
                    "SELECT issuer, currency FROM xrpl_currencies ORDER BY created_at, currency"
                )
                self._loaded = [(r[0], r[1]) for r in rows]
            return self._loaded

    def of(self, issuer: str) -> list[str]:
        """The codes ``issuer`` (the agent's address) issues, oldest first."""
        return [code for who, code in self.load() if who == issuer]

    def add(self, issuer: str, currency: str, at: float) -> None:
        """Remember a code (blocks)."""
        codes = self.load()
        with self._lock:
            if (issuer, currency) in codes:
                return
            self.store.execute(
                "INSERT INTO xrpl_currencies (issuer, currency, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (issuer, currency) DO NOTHING",
                (issuer, currency, at),
            )
            codes.append((issuer, currency))

    def close(self) -> None:
        self.store.close()
