"""The tokens an agent created, kept in its data directory so that their symbols outlive a
restart: ``trn_token_mint(token="AGC")`` resolves the symbol to its contract, and the symbol is
the asset its spending limits are kept under (``spending.AGC``).

Each token is recorded with the chain it lives on: switching ``settings.trn.network`` never
offers a contract from another chain. The book is small, so it is read once into memory and
written through; lookups never touch the disk (they run on the event loop).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import TrnInputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    chain_id INTEGER NOT NULL, symbol TEXT NOT NULL, name TEXT NOT NULL, address TEXT NOT NULL,
    decimals INTEGER NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (chain_id, symbol));
"""
SYMBOL = re.compile(r"^[A-Z][A-Z0-9]{0,10}$")
RESERVED = {"XRP"}
"""Symbols that already name an asset of the agent's (TRN's native coin)."""


@dataclass(frozen=True)
class CreatedToken:
    chain_id: int
    symbol: str
    name: str
    address: str
    decimals: int
    created_at: float

    def public(self) -> dict[str, Any]:
        return asdict(self)


def check_new(name: str, symbol: str, decimals: int) -> None:
    """Refuse, before any gas is spent, a token that could not be created or named."""
    if not name.strip() or len(name) > 64:
        raise TrnInputError(f"a token's name must be 1 to 64 characters, got {name!r}")
    if not SYMBOL.match(symbol):
        raise TrnInputError(
            f"symbol {symbol!r} is not usable: 1 to 11 capital letters and digits, starting with "
            "a letter (it becomes the asset name of the spending limits, spending.<SYMBOL>)"
        )
    if symbol in RESERVED:
        raise TrnInputError(f"symbol {symbol} is taken by TRN's native coin: choose another")
    if not 0 <= decimals <= 36:
        raise TrnInputError(f"decimals must be between 0 and 36, got {decimals}")


class CreatedTokens:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        rows = self._db.execute(
            "SELECT chain_id, symbol, name, address, decimals, created_at FROM tokens "
            "ORDER BY created_at"
        ).fetchall()
        self._tokens = {(r[0], r[1]): CreatedToken(*r) for r in rows}

    def on(self, chain_id: int) -> list[CreatedToken]:
        """The tokens created on this chain, oldest first."""
        return [t for (c, _), t in self._tokens.items() if c == chain_id]

    def get(self, chain_id: int, token: str) -> CreatedToken | None:
        """The token with this symbol or contract address on this chain, if the agent made it."""
        found = self._tokens.get((chain_id, token.upper()))
        if found is not None:
            return found
        lowered = token.lower()
        return next((t for t in self.on(chain_id) if t.address.lower() == lowered), None)

    def add(self, token: CreatedToken) -> None:
        """Record a deployed token (the caller has checked the symbol is free)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO tokens (chain_id, symbol, name, address, decimals, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (token.chain_id, token.symbol, token.name, token.address, token.decimals,
                 token.created_at),
            )  # fmt: skip
            self._tokens[(token.chain_id, token.symbol)] = token

    def close(self) -> None:
        with self._lock:
            self._db.close()
