"""Spending limits enforced in code, below the model, for every way an agent can pay.

Every spend (an ILP payment to another agent, an XRPL payment, a state-changing chain call) asks
:meth:`SpendingPolicy.reserve` first. The policy checks, in this order: that limits exist for the
asset (no limits means no spending), the allowlist of destinations, the maximum per payment, the
hourly and daily caps (over a rolling window, counting reservations not yet settled), and a
confirmation step above a threshold. Nothing the model says reaches this code except the
destination and the amount, so it cannot talk its way past a cap.

Every path moves value the same way, through :meth:`SpendingPolicy.spend`::

    async with policy.spend("XRP", drops, to=destination, scale=6, purpose="...") as spend:
        result = await submit(tx)      # the money moves here
        # a refusal known to have moved nothing: spend.nothing_moved(); part of it: spend.moved(n)

Reservations are written to the policy's records (a store, aigent.storage: SQLite in the agent's
data directory, or a database shared by the servers that run it) before the money moves, and
count against the caps until their outcome is known. A reservation is released only when the
payment is known not to have happened: a task cancelled or timed out mid-payment, or a failure
that does not say, leaves it held (counted, with its reason) until the rail resolves it, after a
restart too. So a crash, a cancel or a slow chain can only make the agent spend less, never
more.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from aigent import blocking
from aigent.amounts import format_amount, rescale
from aigent.errors import AigentError
from aigent.observe import Observers
from aigent.storage import Migration, SqliteStore, Store

log = logging.getLogger("aigent.spending")

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


@dataclass
class Spend:
    """One reservation. ``amount`` is counted at the limits' ``asset_scale``."""

    asset: str
    amount: int
    destination: str
    purpose: str = ""
    id: str = ""
    _outcome: int | None = field(default=None, repr=False)
    """What is known to have moved (in the rail's units), set by the paying code."""
    _rail_scale: int | None = field(default=None, repr=False)
    _limits_scale: int | None = field(default=None, repr=False)

    def describe(self, scale: int) -> str:
        return f"{format_amount(self.amount, scale, self.asset)} to {self.destination}" + (
            f" ({self.purpose})" if self.purpose else ""
        )

    def nothing_moved(self) -> None:
        """The payment is known not to have happened (refused before it left): release."""
        self._outcome = 0

    def moved(self, amount: int) -> None:
        """Exactly ``amount`` (rail units) moved, e.g. part of a STREAM payment."""
        self._outcome = amount

    def counted(self, amount: int) -> int:
        if self._rail_scale is None or self._limits_scale is None:
            return amount
        return rescale(amount, self._rail_scale, self._limits_scale)


Confirm = Callable[[Spend, str], Awaitable[bool]]


MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE IF NOT EXISTS spends (id TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL,
        asset TEXT NOT NULL, amount BIGINT NOT NULL, destination TEXT NOT NULL,
        purpose TEXT NOT NULL, state TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS spends_by_asset ON spends (asset, at);
    """,
    # 2: why a reservation is held, for whoever resolves it (a served agent's schema made before
    # stores were versioned has it already)
    {
        "sqlite": "ALTER TABLE spends ADD COLUMN note TEXT NOT NULL DEFAULT ''",
        "postgresql": "ALTER TABLE spends ADD COLUMN IF NOT EXISTS note TEXT NOT NULL DEFAULT ''",
    },
)
"""The policy's store (aigent.storage): a ``spends`` table."""


class SpendingPolicy:
    """The limits of one agent, with a durable record of what it reserved and spent."""

    def __init__(
        self,
        limits: dict[str, Limits],
        db_path: Path,
        confirm: Confirm | None = None,
        clock: Callable[[], float] = time.time,
        observers: Observers | None = None,
    ) -> None:
        self.limits = limits
        self.db_path = db_path
        self.confirm = confirm
        self.clock = clock
        self.observers = observers if observers is not None else Observers()
        """Told ``payment.committed``, ``.released`` or ``.held`` as each spend settles."""
        self.records: Store = SqliteStore(db_path, MIGRATIONS)
        """Replaceable before the agent starts (``Agent`` opens it in the agent's storage)."""
        self._lock = asyncio.Lock()  # one reservation's check-and-write at a time
        self._db_lock = threading.Lock()  # the records, used from the records threads

    def spent(self, asset: str, window: float) -> int:
        """Reserved or spent in the last ``window`` seconds (released reservations excluded)."""
        with self._db_lock:
            return self._spent(asset, window)

    def _spent(self, asset: str, window: float) -> int:
        rows = self.records.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM spends "
            "WHERE asset = ? AND at > ? AND state != 'released'",
            (asset, self.clock() - window),
        )
        return int(rows[0][0])

    @asynccontextmanager
    async def spend(
        self,
        asset: str,
        amount: int,
        *,
        to: str,
        scale: int | None = None,
        purpose: str = "",
    ) -> AsyncIterator[Spend]:
        """The one way to move value: reserve ``amount`` of ``asset`` (in the rail's smallest
        unit at ``scale``) for ``to``, run the body (which moves the money), then settle the
        reservation by what is known:

        - the body returns: the whole amount (or what ``spend.moved(n)`` said) is spent;
        - ``spend.nothing_moved()`` was called (a refusal known to have moved nothing): released;
        - the body raises or is cancelled otherwise: the outcome is unknown, so the reservation
          stays held and counts against the caps; it is never released on a guess.
        """
        limits = self.limits.get(asset)
        counted = amount
        if limits is not None and scale is not None:
            counted = rescale(amount, scale, limits.asset_scale)
        spend = await self.reserve(asset, counted, to, purpose)
        spend._rail_scale = scale
        spend._limits_scale = limits.asset_scale if limits is not None else None
        try:
            yield spend
        except BaseException as exc:
            if spend._outcome == 0:
                settle = functools.partial(self.release, spend)
            elif spend._outcome is not None:
                settle = functools.partial(
                    self._set_state, spend, "spent", spend.counted(spend._outcome)
                )
            else:
                why = "cancelled" if isinstance(exc, asyncio.CancelledError) else repr(exc)[:200]
                why = f"outcome unknown: {why}"
                settle = functools.partial(self.hold, spend, why)
            # Shielded: a second cancel must not leave the record half-told.
            await asyncio.shield(blocking.run("records", settle))
            if spend._outcome == 0:
                self._tell("released", spend, spend.amount)
            elif spend._outcome is not None:
                self._tell("committed", spend, spend.counted(spend._outcome))
            else:
                self._tell("held", spend, spend.amount, note=why)
            raise
        if spend._outcome == 0:
            await blocking.run("records", self.release, spend)
            self._tell("released", spend, spend.amount)
        else:
            moved = spend._outcome
            final = None if moved is None else spend.counted(moved)
            await blocking.run("records", self._set_state, spend, "spent", final)
            self._tell("committed", spend, spend.amount if final is None else final)

    def check_destination(self, asset: str, destination: str) -> None:
        """Refuse, before anything is fetched or sent, a destination (an ILP address, a payment
        pointer, an SPSP URL, a ledger address) that ``spending.<asset>.allowlist`` does not
        name. No allowlist: any destination, within the caps."""
        limits = self.limits.get(asset)
        if limits is None or limits.allowlist is None:
            return
        if not _allowed(destination, limits.allowlist):
            raise SpendDenied(
                f"refused paying {destination}: not on spending.{asset}.allowlist (add it, or "
                "a prefix of it ending in '.' or '/', to let the agent pay it)"
            )

    async def reserve(self, asset: str, amount: int, destination: str, purpose: str = "") -> Spend:
        """Check every limit and record the reservation, or raise :class:`SpendDenied`.
        Paying code uses :meth:`spend`, which settles the reservation as well."""
        spend = Spend(asset, amount, destination, purpose, uuid.uuid4().hex)
        limits = self.limits.get(asset)
        if limits is None:
            raise SpendDenied(
                f"no spending limits are configured for {asset}, so the agent may not spend it: "
                f"add spending.{asset} to the character (max_per_payment, per_hour, per_day)"
            )
        if limits.max_per_payment is None and limits.per_hour is None and limits.per_day is None:
            raise SpendDenied(
                f"spending.{asset} sets no cap, so {asset} is never spent: set max_per_payment, "
                "per_hour or per_day (an entry without caps means 'never', not 'without limit')"
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
                f"{format_amount(limits.max_per_payment, limits.asset_scale, asset)}"
            )
        if limits.confirm_above is not None and amount > limits.confirm_above:
            question = f"confirm paying {what}?"
            if self.confirm is None or not await self.confirm(spend, question):
                raise SpendDenied(f"refused {what}: it needs confirmation and was not confirmed")
        async with self._lock:
            await blocking.run("records", self._record, spend, limits, what)
        return spend

    def _record(self, spend: Spend, limits: Limits, what: str) -> None:
        """Check the caps and write the reservation in one transaction (in a thread: it
        fsyncs)."""
        asset, amount = spend.asset, spend.amount
        with self._db_lock, self.records.exclusive():
            for cap, window, label in (
                (limits.per_hour, HOUR, "hourly"),
                (limits.per_day, DAY, "daily"),
            ):
                if cap is not None:
                    used = self._spent(asset, window)
                    if used + amount > cap:
                        cap_text = format_amount(cap, limits.asset_scale, asset)
                        used_text = format_amount(used, limits.asset_scale, asset)
                        raise SpendDenied(
                            f"refused {what}: the {label} cap of {cap_text} would be "
                            f"exceeded ({used_text} already spent)"
                        )
            self.records.execute(
                "INSERT INTO spends (id, at, asset, amount, destination, purpose, state) "
                "VALUES (?, ?, ?, ?, ?, ?, 'reserved')",
                (spend.id, self.clock(), asset, amount, spend.destination, spend.purpose),
            )

    def release(self, spend: Spend) -> None:
        """The payment is known not to have happened: the reservation no longer counts."""
        self._set_state(spend, "released")

    def hold(self, spend: Spend, note: str) -> None:
        """The outcome is unknown: the reservation keeps counting until :meth:`resolve`."""
        log.warning("spend %s (%s) held: %s", spend.id, spend.describe(0), note)
        with self._db_lock:
            self.records.execute(
                "UPDATE spends SET state = 'held', note = ? WHERE id = ?", (note, spend.id)
            )

    def held(self) -> list[tuple[str, str, int, str, str]]:
        """Reservations whose outcome is unknown: (id, asset, amount, destination, note)."""
        with self._db_lock:
            rows = self.records.execute(
                "SELECT id, asset, amount, destination, note FROM spends WHERE state = 'held'"
            )
        return [(str(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4])) for r in rows]

    def resolve(self, spend_id: str, moved: bool) -> None:
        """A held reservation's outcome became known (a receipt arrived, or the rail says the
        payment failed): it becomes a spend, or is released."""
        with self._db_lock:
            found = self.records.execute(
                "SELECT asset, amount, destination, purpose FROM spends "
                "WHERE id = ? AND state = 'held'",
                (spend_id,),
            )
            row = found[0] if found else None
            self.records.execute(
                "UPDATE spends SET state = ? WHERE id = ? AND state = 'held'",
                ("spent" if moved else "released", spend_id),
            )
        if row is not None:
            spend = Spend(row[0], int(row[1]), row[2], row[3], spend_id)
            self._tell("committed" if moved else "released", spend, spend.amount)

    def recent(self, limit: int = 50) -> list[dict[str, object]]:
        """The latest reservations and spends, newest first (amounts at the limits' scale)."""
        with self._db_lock:
            rows = self.records.execute(
                "SELECT id, at, asset, amount, destination, purpose, state, note FROM spends "
                "ORDER BY at DESC LIMIT ?",
                (limit,),
            )
        keys = ("id", "at", "asset", "amount", "destination", "purpose", "state", "note")
        out = [dict(zip(keys, row, strict=True)) for row in rows]
        for item in out:
            limits = self.limits.get(str(item["asset"]))
            item["scale"] = limits.asset_scale if limits is not None else None
        return out

    def _tell(self, what: str, spend: Spend, amount: int, note: str | None = None) -> None:
        if not self.observers:
            return
        limits = self.limits.get(spend.asset)
        data: dict[str, object] = {
            "asset": spend.asset,
            "amount": amount,
            "scale": limits.asset_scale if limits is not None else None,
            "destination": spend.destination,
            "purpose": spend.purpose,
            "spend_id": spend.id,
        }
        if note is not None:
            data["note"] = note
        self.observers.emit(f"payment.{what}", data)

    def _set_state(self, spend: Spend, state: str, amount: int | None = None) -> None:
        with self._db_lock:
            if amount is None:
                self.records.execute("UPDATE spends SET state = ? WHERE id = ?", (state, spend.id))
            else:
                self.records.execute(
                    "UPDATE spends SET state = ?, amount = ? WHERE id = ?",
                    (state, amount, spend.id),
                )

    def close(self) -> None:
        with self._db_lock:
            self.records.close()


def _allowed(destination: str, allowlist: list[str]) -> bool:
    """Exact, or under an entry ending in '.' (an ILP address prefix) or '/' (a URL prefix)."""
    return any(
        destination == entry or (entry.endswith((".", "/")) and destination.startswith(entry))
        for entry in allowlist
    )
