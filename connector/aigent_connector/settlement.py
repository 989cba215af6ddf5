"""Settling with peers: when a Fulfill pushes an account's balance below its settle threshold,
a settlement engine pays the peer (an XRPL payment channel claim, say) and the ledger moves
the balance back up by what was paid.

Each settlement gets an id when it is first due and keeps it until it succeeds: it is written
to disk (beside the ledger) before the engine is called, so a retry (after a failure, or after a
crash and restart) hands the engine the same id and an engine that remembers ids never pays
twice. One settlement per account at a time: while one is in flight, further Fulfills that
find the balance still under the threshold do not start another; when it completes the
balance is checked again.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from aigent_connector.ledger import Ledger

if TYPE_CHECKING:
    from aigent_connector.metrics import Metrics

log = logging.getLogger("aigent.connector.settlement")

SCHEMA = """
CREATE TABLE IF NOT EXISTS settlements (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    amount INTEGER NOT NULL,
    state TEXT NOT NULL,
    settled INTEGER,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS settlements_pending ON settlements (account, state);
"""


@runtime_checkable
class SettlementEngine(Protocol):
    """The same shape as aigent's ``SettlementEngine``: pay ``amount`` (in the account's asset
    scale) to peer ``account``, return how much was paid; the same ``settlement_id`` twice
    must not pay twice."""

    async def settle(self, account: str, amount: int, settlement_id: str | None = None) -> int: ...


class Settler:
    """Runs settlements in the background, one worker per account with something due."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        retry_delay: float = 5.0,
        max_retry_delay: float = 300.0,
        metrics: Metrics | None = None,
        path: Path | None = None,
    ) -> None:
        self.ledger = ledger
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.metrics = metrics
        self.engines: dict[str, SettlementEngine] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # Its own file beside the ledger: never contends for the ledger's write lock, and the
        # ledger counts each settlement id once, so the two need no shared transaction.
        if path is None:
            if not isinstance(ledger.path, Path):
                raise ValueError(f"settlements of ledger {ledger.path} need a file: pass path=")
            path = ledger.path.with_name(ledger.path.stem + "-settlements.sqlite")
        self.path = path
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def set_engine(self, account: str, engine: SettlementEngine) -> None:
        self.engines[account] = engine
        self.due(account)  # resume a settlement left pending, or one already due

    def due(self, account: str) -> None:
        """Check ``account`` soon (a Fulfill crossed its threshold); cheap when nothing is."""
        if account not in self.engines or account in self._tasks:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._work(account))
        except RuntimeError:
            return  # no loop yet: the first Fulfill after start will check again
        self._tasks[account] = task
        task.add_done_callback(lambda _: self._tasks.pop(account, None))

    def pending(self, account: str | None = None) -> list[tuple[str, str, int]]:
        """Settlements started but not yet confirmed: (id, account, amount)."""
        query = "SELECT id, account, amount FROM settlements WHERE state = 'pending'"
        args: tuple[str, ...] = ()
        if account is not None:
            query += " AND account = ?"
            args = (account,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created", args).fetchall()
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    def history(self, account: str) -> list[tuple[str, int, str, int | None]]:
        """Every settlement of ``account``: (id, amount, state, settled)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, amount, state, settled FROM settlements WHERE account = ? "
                "ORDER BY created",
                (account,),
            ).fetchall()
        return [(str(r[0]), int(r[1]), str(r[2]), r[3]) for r in rows]

    async def idle(self) -> None:
        """Wait until no settlement is being worked on."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)
        with self._lock:
            self._db.close()

    async def _work(self, account: str) -> None:
        delay = self.retry_delay
        while True:
            waiting = self.pending(account)
            if waiting:
                settlement_id, _, amount = waiting[0]
            else:
                state = self.ledger.account(account)
                if state.settle_threshold is None or state.balance >= state.settle_threshold:
                    return
                settlement_id = f"{account}:{uuid.uuid4().hex}"
                amount = state.settle_to - state.balance
                with self._lock:
                    self._db.execute(
                        "INSERT INTO settlements VALUES (?, ?, ?, 'pending', NULL, ?)",
                        (settlement_id, account, amount, time.time()),
                    )
            engine = self.engines.get(account)
            if engine is None:
                return  # stays pending until an engine is set for the account
            try:
                paid = await engine.settle(account, amount, settlement_id)
                if not isinstance(paid, int) or paid <= 0:
                    raise RuntimeError(f"engine reported {paid!r} settled")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The message only: an engine's traceback could carry its request, keys and all.
                log.warning(
                    "settlement %s of %d with %s failed (%s: %s); retrying in %.0fs",
                    settlement_id, amount, account, type(exc).__name__, str(exc)[:200], delay,
                )  # fmt: skip
                if self.metrics is not None:
                    self.metrics.settlement(account, ok=False)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
                continue
            delay = self.retry_delay
            # With the id the ledger counts it once, even if we crash before marking it done.
            self.ledger.settled(account, paid, settlement_id)
            with self._lock:
                self._db.execute(
                    "UPDATE settlements SET state = 'done', settled = ? WHERE id = ?",
                    (paid, settlement_id),
                )
            if self.metrics is not None:
                self.metrics.settlement(account, ok=True)
            log.info("settled %d with %s (%s)", paid, account, settlement_id)
