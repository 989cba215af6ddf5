"""Settling with peers: when a Fulfill pushes an account's balance below its settle threshold,
a settlement engine pays the peer (an XRPL payment channel claim, say) and the ledger moves
the balance back up by what was paid.

Each settlement gets an id when it is first due and keeps it until it succeeds: it is written
to a :class:`SettlementStore` before the engine is called, so a retry (after a failure, or after
a crash and restart, on this machine or another) hands the engine the same id and an engine
that remembers ids never pays twice. The store sits where the ledger does: a SQLite file beside
a SQLite ledger (:class:`SqliteSettlements`), or a table in a PostgreSQL ledger's schema (the
ledger's store makes it, :meth:`~aigent_connector.postgres_store.PostgresStore.settlements`),
so that a node that moves to another host finds what its last host left pending. One
settlement per account at a time: while one is in flight, further Fulfills that find the
balance still under the threshold do not start another; when it completes the balance is
checked again.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from aigent_connector.ledger import Ledger

if TYPE_CHECKING:
    from aigent_connector.metrics import Metrics

log = logging.getLogger("aigent.connector.settlement")

T = TypeVar("T")

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

Pending = tuple[str, str, int]
"""(id, account, amount) of a settlement started and not yet confirmed."""
Record = tuple[str, int, str, "int | None"]
"""(id, amount, state, settled) of one settlement."""


class SettlementStore(Protocol):
    """Where settlements are written before their engine is called: what must outlive the
    process that started them. Rows are ``pending`` until :meth:`finish` marks them ``done``."""

    name: str
    writes_block: bool
    """True when a call waits on the network: the settler then calls it from a thread."""

    def pending(self, account: str | None = None) -> list[Pending]:
        """Pending settlements, oldest first; of ``account`` only if given."""
        ...

    def history(self, account: str) -> list[Record]:
        """Every settlement of ``account``, oldest first."""
        ...

    def start(self, settlement_id: str, account: str, amount: int) -> None:
        """Record a new pending settlement, durable when this returns."""
        ...

    def finish(self, settlement_id: str, settled: int) -> None:
        """Mark a settlement done, ``settled`` paid."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class KeepsSettlements(Protocol):
    """A ledger store that keeps settlements beside its own rows (PostgreSQL's does)."""

    def settlements(self) -> SettlementStore: ...


class SqliteSettlements:
    """Settlements in their own SQLite file: never contends for the ledger's write lock, and
    the ledger counts each settlement id once, so the two need no shared transaction."""

    writes_block = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def pending(self, account: str | None = None) -> list[Pending]:
        query = "SELECT id, account, amount FROM settlements WHERE state = 'pending'"
        args: tuple[str, ...] = ()
        if account is not None:
            query += " AND account = ?"
            args = (account,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created", args).fetchall()
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    def history(self, account: str) -> list[Record]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, amount, state, settled FROM settlements WHERE account = ? "
                "ORDER BY created",
                (account,),
            ).fetchall()
        return [(str(r[0]), int(r[1]), str(r[2]), r[3]) for r in rows]

    def start(self, settlement_id: str, account: str, amount: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO settlements VALUES (?, ?, ?, 'pending', NULL, ?)",
                (settlement_id, account, amount, time.time()),
            )

    def finish(self, settlement_id: str, settled: int) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE settlements SET state = 'done', settled = ? WHERE id = ?",
                (settled, settlement_id),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def adopt_pending(legacy: Path, store: SettlementStore) -> int:
    """Move the pending settlements of the SQLite file ``legacy`` into ``store`` (keeping their
    ids, so none is paid again under a new one) and rename the file ``*.adopted``; how many."""
    old = SqliteSettlements(legacy)
    try:
        pending = old.pending()
        for settlement_id, account, amount in pending:
            if all(row[0] != settlement_id for row in store.history(account)):
                store.start(settlement_id, account, amount)
    finally:
        old.close()
    legacy.rename(legacy.with_name(legacy.name + ".adopted"))
    for suffix in ("-wal", "-shm"):  # SQLite's own, emptied by the close
        legacy.with_name(legacy.name + suffix).unlink(missing_ok=True)
    return len(pending)


def settlement_store(ledger: Ledger, path: Path | None = None) -> SettlementStore:
    """Where ``ledger``'s settlements go: the file ``path`` if given, else with the ledger (its
    PostgreSQL schema, or a file beside its SQLite file)."""
    if path is not None:
        return SqliteSettlements(path)
    if isinstance(ledger.store, KeepsSettlements):
        return ledger.store.settlements()
    if not isinstance(ledger.path, Path):
        raise ValueError(
            f"settlements of ledger {ledger.path} need a place: pass store= (or path= for a "
            "SQLite file)"
        )
    return SqliteSettlements(ledger.path.with_name(ledger.path.stem + "-settlements.sqlite"))


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
        store: SettlementStore | None = None,
    ) -> None:
        self.ledger = ledger
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.metrics = metrics
        self.engines: dict[str, SettlementEngine] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.store = store if store is not None else settlement_store(ledger, path)

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

    def pending(self, account: str | None = None) -> list[Pending]:
        """Settlements started but not yet confirmed: (id, account, amount)."""
        return self.store.pending(account)

    def history(self, account: str) -> list[Record]:
        """Every settlement of ``account``: (id, amount, state, settled)."""
        return self.store.history(account)

    async def idle(self) -> None:
        """Wait until no settlement is being worked on."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)
        self.store.close()

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        """A store call, off the event loop when it waits on the network."""
        if self.store.writes_block:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    async def _work(self, account: str) -> None:
        delay = self.retry_delay
        while True:
            waiting = await self._call(self.store.pending, account)
            if waiting:
                settlement_id, _, amount = waiting[0]
            else:
                state = self.ledger.account(account)
                if state.settle_threshold is None or state.balance >= state.settle_threshold:
                    return
                settlement_id = f"{account}:{uuid.uuid4().hex}"
                amount = state.settle_to - state.balance
                await self._call(self.store.start, settlement_id, account, amount)
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
            await self._call(self.store.finish, settlement_id, paid)
            if self.metrics is not None:
                self.metrics.settlement(account, ok=True)
            log.info("settled %d with %s (%s)", paid, account, settlement_id)
