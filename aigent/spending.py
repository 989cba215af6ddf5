"""Spending limits enforced in code, below the model, for every way an agent can pay.

Every spend (an ILP payment to another agent, an XRPL payment, a state-changing chain call) asks
:meth:`SpendingPolicy.reserve` first. The policy checks, in this order: that limits exist for the
asset (no limits means no spending), the allowlist of destinations, the maximum per payment, the
hourly and daily caps (over a rolling window, counting reservations not yet settled), and a
confirmation step above a threshold. Nothing the model says reaches this code except the
destination and the amount, so it cannot talk its way past a cap.

Reservations are written to SQLite before the money moves and are counted until released, so a
crash between reserving and paying can only make the agent spend less, never more.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from aigent.errors import AigentError

HOUR = 3600.0
MAX_AMOUNT = 2**63 - 1  # SQLite's INTEGER
DAY = 86400.0


class SpendDenied(AigentError):
    """A spend was refused by the policy. The message says which limit and by how much."""


class Limits(BaseModel):
    """Limits for one asset, in its smallest unit at ``asset_scale``."""

    model_config = ConfigDict(extra="forbid")

    asset_scale: int = Field(default=6, ge=0, le=255)
    max_per_payment: int | None = Field(default=None, ge=0)
    per_hour: int | None = Field(default=None, ge=0)
    per_day: int | None = Field(default=None, ge=0)
    allowlist: list[str] | None = None
    """Destinations allowed (exact, or a prefix ending in '.' for ILP addresses); None = any."""
    confirm_above: int | None = Field(default=None, ge=0)


@dataclass(frozen=True)
class Spend:
    asset: str
    amount: int
    destination: str
    purpose: str = ""
    id: str = ""

    def describe(self, scale: int) -> str:
        value = Decimal(self.amount).scaleb(-scale).normalize()
        return f"{value:f} {self.asset} to {self.destination}" + (
            f" ({self.purpose})" if self.purpose else ""
        )


Confirm = Callable[[Spend, str], Awaitable[bool]]


class SpendingPolicy:
    """The limits of one agent, with a durable record of what it reserved and spent."""

    def __init__(
        self,
        limits: dict[str, Limits],
        db_path: Path,
        confirm: Confirm | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self.db_path = db_path
        self.confirm = confirm
        self.clock = clock
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS spends (id TEXT PRIMARY KEY, at REAL NOT NULL, "
                "asset TEXT NOT NULL, amount INTEGER NOT NULL, destination TEXT NOT NULL, "
                "purpose TEXT NOT NULL, state TEXT NOT NULL)"
            )
            self._db = db
        return self._db

    def spent(self, asset: str, window: float) -> int:
        """Reserved or spent in the last ``window`` seconds (released reservations excluded)."""
        row = (
            self._conn()
            .execute(
                "SELECT COALESCE(SUM(amount), 0) FROM spends "
                "WHERE asset = ? AND at > ? AND state != 'released'",
                (asset, self.clock() - window),
            )
            .fetchone()
        )
        return int(row[0])

    async def reserve(self, asset: str, amount: int, destination: str, purpose: str = "") -> Spend:
        """Check every limit and record the reservation, or raise :class:`SpendDenied`."""
        spend = Spend(asset, amount, destination, purpose, uuid.uuid4().hex)
        limits = self.limits.get(asset)
        if limits is None:
            raise SpendDenied(
                f"no spending limits are configured for {asset}, so the agent may not spend it: "
                f"add spending.{asset} to the character (max_per_payment, per_hour, per_day)"
            )
        if amount <= 0:
            raise SpendDenied(f"refused a spend of {amount} {asset}: amounts must be positive")
        if amount > MAX_AMOUNT:
            raise SpendDenied(
                f"refused a spend of {amount} {asset}: more than the policy can record "
                f"({MAX_AMOUNT}); count the asset at a smaller asset_scale"
            )
        what = spend.describe(limits.asset_scale)
        if limits.allowlist is not None and not _allowed(destination, limits.allowlist):
            raise SpendDenied(f"refused {what}: the destination is not on the allowlist")
        if limits.max_per_payment is not None and amount > limits.max_per_payment:
            raise SpendDenied(
                f"refused {what}: over the maximum per payment of "
                f"{_fmt(limits.max_per_payment, limits.asset_scale, asset)}"
            )
        if limits.confirm_above is not None and amount > limits.confirm_above:
            question = f"confirm paying {what}?"
            if self.confirm is None or not await self.confirm(spend, question):
                raise SpendDenied(f"refused {what}: it needs confirmation and was not confirmed")
        async with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")  # across processes sharing the data directory too
            try:
                for cap, window, label in (
                    (limits.per_hour, HOUR, "hourly"),
                    (limits.per_day, DAY, "daily"),
                ):
                    if cap is not None:
                        used = self.spent(asset, window)
                        if used + amount > cap:
                            raise SpendDenied(
                                f"refused {what}: the {label} cap of "
                                f"{_fmt(cap, limits.asset_scale, asset)} would be exceeded "
                                f"({_fmt(used, limits.asset_scale, asset)} already spent)"
                            )
                db.execute(
                    "INSERT INTO spends VALUES (?, ?, ?, ?, ?, ?, 'reserved')",
                    (spend.id, self.clock(), asset, amount, destination, purpose),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return spend

    def commit(self, spend: Spend) -> None:
        """The money moved: the reservation becomes a spend."""
        self._set_state(spend, "spent")

    def release(self, spend: Spend) -> None:
        """The payment did not happen: the reservation no longer counts."""
        self._set_state(spend, "released")

    def _set_state(self, spend: Spend, state: str) -> None:
        self._conn().execute("UPDATE spends SET state = ? WHERE id = ?", (state, spend.id))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _allowed(destination: str, allowlist: list[str]) -> bool:
    return any(
        destination == entry or (entry.endswith(".") and destination.startswith(entry))
        for entry in allowlist
    )


def _fmt(amount: int, scale: int, asset: str) -> str:
    return f"{Decimal(amount).scaleb(-scale).normalize():f} {asset}"
