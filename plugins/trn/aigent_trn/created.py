"""The tokens an agent created, kept in its storage (``trn_tokens``: a file in its data
directory, or its schema of a fleet's database) so that their symbols outlive a restart or a
move to another server: ``trn_token_mint(token="AGC")`` resolves the symbol to its contract,
and the symbol is the asset its spending limits are kept under (``spending.AGC``).

Each token is recorded with the chain it lives on: switching ``settings.trn.network`` never
offers a contract from another chain. The book is small, so it is read once into memory (from
a thread: :meth:`CreatedTokens.load`) and written through; lookups never touch the store
(they run on the event loop).
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass
from typing import Any

from aigent.storage import Migration, Store

from .errors import TrnInputError

NAME = "trn_tokens"
MIGRATIONS: tuple[Migration, ...] = (
    # 1: in a file, as before stores were versioned (an existing file has it already); in
    # PostgreSQL, where the agent's stores share a schema, under the name 2 gives a file
    {
        "sqlite": """
        CREATE TABLE IF NOT EXISTS tokens (
            chain_id INTEGER NOT NULL, symbol TEXT NOT NULL, name TEXT NOT NULL,
            address TEXT NOT NULL, decimals INTEGER NOT NULL, created_at REAL NOT NULL,
            PRIMARY KEY (chain_id, symbol));
        """,
        "postgresql": """
        CREATE TABLE trn_tokens (
            chain_id BIGINT NOT NULL, symbol TEXT NOT NULL, name TEXT NOT NULL,
            address TEXT NOT NULL, decimals INTEGER NOT NULL,
            created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (chain_id, symbol));
        """,
    },
    {"sqlite": "ALTER TABLE tokens RENAME TO trn_tokens", "postgresql": "SELECT 1"},
)
"""The ``trn_tokens`` store (aigent.storage); append, never edit one that shipped."""
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
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._loaded: dict[tuple[int, str], CreatedToken] | None = None

    def load(self) -> None:
        """Read the book (blocks: call it from a thread before the event loop looks up)."""
        with self._lock:
            if self._loaded is None:
                rows = self.store.execute(
                    "SELECT chain_id, symbol, name, address, decimals, created_at FROM trn_tokens "
                    "ORDER BY created_at, symbol"
                )
                self._loaded = {
                    (int(r[0]), r[1]): CreatedToken(int(r[0]), r[1], r[2], r[3], int(r[4]), r[5])
                    for r in rows
                }

    @property
    def _tokens(self) -> dict[tuple[int, str], CreatedToken]:
        if self._loaded is None:
            self.load()  # a lookup before the service connected (a script, a test): blocks once
        assert self._loaded is not None
        return self._loaded

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
        """Record a deployed token (the caller has checked the symbol is free). Blocks."""
        tokens = self._tokens
        with self._lock:
            self.store.execute(
                "INSERT INTO trn_tokens (chain_id, symbol, name, address, decimals, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (token.chain_id, token.symbol, token.name, token.address, token.decimals,
                 token.created_at),
            )  # fmt: skip
            tokens[(token.chain_id, token.symbol)] = token

    def close(self) -> None:
        self.store.close()
