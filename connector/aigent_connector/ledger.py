"""Balances per peer account, durable in SQLite (WAL), with the reference connector's semantics.

An incoming Prepare from a peer *reserves* its amount against the account's maximum balance (the
credit we extend); a Reject *reverts* the reservation; a Fulfill *commits* it. An outgoing
Prepare reserves against the minimum balance (the credit the peer extends to us) and a Fulfill
commits it. Every step is keyed by the packet's id, so a repeated step is a no-op, and a crash at
any moment leaves each transfer either done or not: nothing is lost and nothing is counted
twice. :meth:`SqliteLedger.recover` releases reservations whose packets have expired (their
Prepare can no longer be fulfilled), including rows that earlier versions wrote for them.

Speed without giving up crash safety: the owning process keeps the accounts and the open
reservations in memory (loaded at start) and decides every step there. What must survive a
crash is written to SQLite: balances and committed transfers. A reservation is a hold in memory
only: one lost in a crash frees credit that was never spent, since its Prepare can no longer be
fulfilled through us once the process and its links are gone. The plain methods (``reserve``,
``commit``...) write before they return. The ``a``-prefixed ones on the connector's hot path
group the writes of everything that happened in one event-loop turn into one transaction:
``acommit`` returns only once that transaction is committed (durable to the OS in WAL mode), so
a Fulfill is never passed upstream before its commit is on disk. One process owns a ledger file
at a time; others may read it.

When an account's balance crosses its settle threshold, the ledger reports how much should be
settled (:class:`Settlement`); the connector hands that to a settlement engine.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

log = logging.getLogger("aigent.connector.ledger")

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
-- Only rows still 'reserved' (written by earlier versions) are indexed: recovery reads them.
DROP INDEX IF EXISTS transfers_reserved;
CREATE INDEX IF NOT EXISTS transfers_open ON transfers (expires_at) WHERE state = 'reserved';
"""

_UPSERT_ACCOUNT = (
    "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
    "balance = excluded.balance, reserved_in = excluded.reserved_in, "
    "reserved_out = excluded.reserved_out, min_balance = excluded.min_balance, "
    "max_balance = excluded.max_balance, settle_threshold = excluded.settle_threshold, "
    "settle_to = excluded.settle_to"
)
CHECKPOINT_EVERY = 200  # transactions; a few hundred pages of WAL
_UPSERT_TRANSFER = "INSERT OR REPLACE INTO transfers VALUES (?, ?, ?, ?, ?, ?)"


class LedgerError(Exception):
    """A transfer the ledger refuses; ``code`` is the ILP error code to reject with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class LedgerUnavailable(LedgerError):
    """A write to the database failed; the ledger refuses everything until it is reopened
    (which reloads the state from the database, the only truth after a failed write)."""

    def __init__(self, message: str) -> None:
        super().__init__("T00", message)


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

    async def areserve(
        self, transfer: str, account: str, direction: Direction, amount: int, expires_at: float
    ) -> None: ...

    async def acommit(self, transfer: str) -> Settlement | None: ...

    def commit_nowait(self, transfer: str) -> Settlement | None: ...

    async def durable(self) -> None: ...

    async def arevert(self, transfer: str) -> None: ...

    def recover(self, now: float) -> int: ...

    def account(self, account: str) -> Account: ...


class _State:
    """One account as the owning process knows it (the database row, plus unflushed steps)."""

    __slots__ = ("balance", "high", "low", "reserved_in", "reserved_out", "settle_to", "threshold")

    def __init__(self, row: tuple) -> None:
        (self.balance, self.reserved_in, self.reserved_out, self.low, self.high,
         self.threshold, self.settle_to) = row  # fmt: skip

    def row(self, account: str) -> tuple:
        return (account, self.balance, self.reserved_in, self.reserved_out, self.low, self.high,
                self.threshold, self.settle_to)  # fmt: skip


class _Batch:
    """One transaction's worth: account rows, transfer rows, and who waits for it."""

    __slots__ = ("accounts", "done", "transfers")

    def __init__(
        self, accounts: list[tuple], transfers: list[tuple], done: asyncio.Future[None] | None
    ) -> None:
        self.accounts = accounts
        self.transfers = transfers
        self.done = done


class SqliteLedger:
    """The default store: one SQLite file in WAL mode; safe across crashes."""

    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL") -> None:
        # WAL with synchronous=NORMAL survives a killed process (the OS keeps the writes);
        # FULL also survives a power cut, at the cost of an fsync per transaction.
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA wal_autocheckpoint=0")  # done in a thread: _checkpoint_soon
        self._db.executescript(SCHEMA)
        self._checkpointer = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False
        )
        self._checkpointer.execute("PRAGMA busy_timeout=5000")
        self._lock = threading.Lock()
        self._accounts: dict[str, _State] = {
            row[0]: _State(row[1:]) for row in self._db.execute("SELECT * FROM accounts")
        }
        self._reserved: dict[str, tuple[str, Direction, int, float]] = {
            row[0]: row[1:]
            for row in self._db.execute(
                "SELECT id, account, direction, amount, expires_at FROM transfers "
                "WHERE state = 'reserved'"
            )
        }
        self._stored = set(self._reserved)  # holds that have a row in the database
        # Holds without a row died with the process that made them: only rows count.
        for state in self._accounts.values():
            state.reserved_in = state.reserved_out = 0
        for account, direction, amount, _ in self._reserved.values():
            state = self._accounts.setdefault(account, _State((0, 0, 0, None, None, None, 0)))
            if direction == "in":
                state.reserved_in += amount
            else:
                state.reserved_out += amount
        # The plain methods look repeated ids up here, beside the writes of the event loop.
        self._reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._reader.execute("PRAGMA busy_timeout=5000")
        self._dirty: set[str] = set()
        self._unwritten: dict[str, tuple] = {}  # transfer id -> its row, as it is now
        self._in_flight: dict[str, tuple] = {}  # rows being written now
        # Group commit: what the tasks decide during one turn of the event loop is written in
        # one transaction, cut in a callback between two task steps (see _kick).
        self._write_lock = threading.Lock()  # taken before self._lock, never after
        self._next: asyncio.Future[None] | None = None  # waiters for the next transaction
        self._current: asyncio.Future[None] | None = None  # waiters for rows in flight
        self._queued: _Batch | None = None  # cut, not yet written
        self._checkpoints: ThreadPoolExecutor | None = None
        self._writing = False  # a batch is being written
        self._scheduled = False  # a batch is about to be cut
        self._broken: str | None = None
        self._closed = False
        self.writes = 0
        """Transactions written so far: far fewer than commits when group commit works."""

    def close(self) -> None:
        """Write what is left and close; the ledger refuses every step afterwards."""
        if self._checkpoints is not None:
            self._checkpoints.shutdown(wait=True)
        if self._broken is None and not self._closed:
            self._write_now()
        with self._write_lock, self._lock:
            if self._closed:
                return
            self._closed = True
            self._db.close()
            self._reader.close()
            self._checkpointer.close()

    # --- steps, decided in memory ----------------------------------------------------------------

    def _state(self, account: str) -> _State:
        state = self._accounts.get(account)
        if state is None:
            state = self._accounts[account] = _State((0, 0, 0, None, None, None, 0))
            self._dirty.add(account)
        return state

    def _check(self) -> None:
        if self._broken is not None:
            raise LedgerUnavailable(self._broken)
        if self._closed:
            raise LedgerUnavailable(f"ledger {self.path} is closed")

    def _reserve(
        self, transfer: str, account: str, direction: Direction, amount: int, expires_at: float,
        look_up: bool = True,
    ) -> None:  # fmt: skip
        self._check()
        if transfer in self._reserved or transfer in self._unwritten or transfer in self._in_flight:
            return
        if (
            look_up
            and self._reader.execute("SELECT 1 FROM transfers WHERE id = ?", (transfer,)).fetchone()
        ):
            return
        state = self._state(account)
        if direction == "in":
            high = state.high
            if high is not None and state.balance + state.reserved_in + amount > high:
                raise LedgerError(
                    "T04",
                    f"exceeded maximum balance of account {account}: balance {state.balance}, "
                    f"reserved {state.reserved_in}, prepare {amount}, maximum {high}",
                )
            state.reserved_in += amount
        else:
            low = state.low
            if low is not None and state.balance - state.reserved_out - amount < low:
                raise LedgerError(
                    "T04",
                    f"insufficient liquidity with account {account}: balance {state.balance}, "
                    f"reserved {state.reserved_out}, prepare {amount}, minimum {low}",
                )
            state.reserved_out += amount
        self._dirty.add(account)
        # The hold itself is not written: one lost in a crash only frees credit that was never
        # spent, as its Prepare dies with the links. The transfer's row is written at commit.
        self._reserved[transfer] = (account, direction, amount, expires_at)

    def _commit(self, transfer: str) -> Settlement | None:
        self._check()
        held = self._reserved.pop(transfer, None)
        if held is None:
            return None  # unknown, or already committed or reverted: nothing to do
        account, direction, amount, expires_at = held
        state = self._accounts[account]
        if direction == "in":
            state.balance += amount
            state.reserved_in -= amount
        else:
            state.balance -= amount
            state.reserved_out -= amount
        self._dirty.add(account)
        self._stored.discard(transfer)
        self._unwritten[transfer] = (transfer, account, direction, amount, expires_at, "committed")
        if state.threshold is not None and state.balance < state.threshold:
            return Settlement(account, state.settle_to - state.balance)
        return None

    def _revert(self, transfer: str) -> None:
        self._check()
        held = self._reserved.pop(transfer, None)
        if held is None:
            return
        account, direction, amount, expires_at = held
        state = self._accounts[account]
        if direction == "in":
            state.reserved_in -= amount
        else:
            state.reserved_out -= amount
        self._dirty.add(account)
        if transfer in self._stored:  # reserved by an earlier version: close its row
            self._stored.discard(transfer)
            self._unwritten[transfer] = (transfer, account, direction, amount, expires_at,
                                         "reverted")  # fmt: skip

    # --- writing ---------------------------------------------------------------------------------

    def _take(self) -> _Batch:
        """What to write next (self._lock is held): its rows are in flight from now on."""
        batch = _Batch([self._accounts[a].row(a) for a in self._dirty],
                       list(self._unwritten.values()), self._next)  # fmt: skip
        self._in_flight.update(self._unwritten)
        self._dirty.clear()
        self._unwritten.clear()
        self._next = None
        return batch

    def _write(self, batch: _Batch) -> LedgerUnavailable | None:
        """One transaction (the write lock is held); the error, if the disk refused it."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(_UPSERT_ACCOUNT, batch.accounts)
                self._db.executemany(_UPSERT_TRANSFER, batch.transfers)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except Exception as exc:
            # Memory is now ahead of the database: refuse everything rather than guess.
            with self._lock:
                self._broken = f"ledger {self.path} could not be written: {exc}"
            return LedgerUnavailable(self._broken)
        self.writes += 1
        if self.writes % CHECKPOINT_EVERY == 0:
            self._checkpoint_soon()
        return None

    def _checkpoint_soon(self) -> None:
        """Copy the WAL into the database in a thread: the fsync of a checkpoint (milliseconds
        on a busy disk) never stalls the event loop. One call, so one GIL hand-back."""
        with self._lock:
            if self._closed:
                return
            if self._checkpoints is None:
                self._checkpoints = ThreadPoolExecutor(1, thread_name_prefix="aigent-ledger")
            try:
                self._checkpoints.submit(self._checkpoint)
            except RuntimeError:
                pass  # closing: SQLite checkpoints when the last connection closes

    def _checkpoint(self) -> None:
        try:
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # the next one tries again; the WAL just grows meanwhile
            log.warning("checkpoint of %s failed: %s", self.path, exc)

    def _written(self, batch: _Batch, error: LedgerUnavailable | None) -> None:
        """After a write: tell whoever waits for it (any thread; the write lock is held)."""
        with self._lock:
            for row in batch.transfers:
                self._in_flight.pop(row[0], None)
            drained = None
            if not self._in_flight:
                drained, self._current = self._current, None
            if error is not None:
                _resolve(self._next, error)
                self._next = None
        _resolve(batch.done, error)
        _resolve(drained, error)

    def _write_now(self) -> None:
        """Write everything decided so far before returning (the plain methods)."""
        with self._write_lock:
            with self._lock:
                self._check()
                # One cut on the loop but not yet written goes first: writes stay in order.
                older, self._queued = self._queued, None
                batch = self._take()
            for each in (older, batch):
                if each is None:
                    continue
                error = self._write(each) if each.accounts or each.transfers else None
                self._written(each, error)
                if error is not None:
                    raise error

    def _kick(self) -> None:
        """Write soon (self._lock is held; on the event loop). The batch is cut in a callback
        of the loop, between two steps of any task: a connector's two commits for a packet,
        made in one step, always go in the same transaction."""
        if not self._writing and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._submit)

    def _submit(self) -> None:
        """Cut a batch and write it (a callback of the event loop)."""
        with self._lock:
            self._scheduled = False
            if self._writing or not self._unwritten or self._broken or self._closed:
                return
            self._queued, self._writing = self._take(), True
        self._write_queued()

    def _write_queued(self) -> None:
        """One transaction, on the event loop: a WAL append (no fsync), tens of microseconds.
        A thread would cost more: it needs the GIL back after every SQLite call, and a busy
        loop hands it over only every switch interval (5 ms)."""
        with self._write_lock:
            with self._lock:
                batch, self._queued = self._queued, None
            if batch is not None:  # else a plain method wrote it first
                self._written(batch, self._write(batch))
        with self._lock:
            self._writing = False

    # --- the public steps ------------------------------------------------------------------------

    def configure(
        self,
        account: str,
        *,
        min_balance: int | None = None,
        max_balance: int | None = None,
        settle_threshold: int | None = None,
        settle_to: int = 0,
    ) -> None:
        with self._lock:
            self._check()
            state = self._state(account)
            state.low, state.high = min_balance, max_balance
            state.threshold, state.settle_to = settle_threshold, settle_to
            self._dirty.add(account)
        self._write_now()

    def reserve(
        self, transfer: str, account: str, direction: Direction, amount: int, expires_at: float
    ) -> None:
        """Hold ``amount`` for a Prepare; :class:`LedgerError` (T04) when the credit limit
        would be crossed. Reserving a transfer that is held or committed is a no-op."""
        with self._lock:
            self._reserve(transfer, account, direction, amount, expires_at)
        self._write_now()

    def commit(self, transfer: str) -> Settlement | None:
        """The Fulfill: the reservation becomes balance. Returns a settlement when the
        account's balance crossed its settle threshold. Written on return."""
        with self._lock:
            settlement = self._commit(transfer)
        self._write_now()
        return settlement

    def revert(self, transfer: str) -> None:
        """The Reject (or expiry): the reservation is released. Written on return."""
        with self._lock:
            self._revert(transfer)
        self._write_now()

    async def areserve(
        self, transfer: str, account: str, direction: Direction, amount: int, expires_at: float
    ) -> None:
        """:meth:`reserve`, for the event loop (a hold is in memory: nothing to wait for).
        ``transfer`` must be a fresh id (the connector makes one per packet): unlike
        :meth:`reserve`, this does not look for it among transfers committed before, a read
        that would cost as much as the rest of the packet's ledger work."""
        with self._lock:
            self._reserve(transfer, account, direction, amount, expires_at, look_up=False)
            # Nothing to write now: the account's new hold goes with the next commit.

    async def acommit(self, transfer: str) -> Settlement | None:
        """:meth:`commit`, returning once the group commit that holds it is durable."""
        settlement = self.commit_nowait(transfer)
        await self.durable()
        return settlement

    def commit_nowait(self, transfer: str) -> Settlement | None:
        """:meth:`commit` decided at once and written with the next group commit, for the event
        loop. ``await durable()`` before anyone learns of the Fulfill (a connector commits the
        outgoing leg this way and then the incoming one with :meth:`acommit`, one write)."""
        with self._lock:
            settlement = self._commit(transfer)
            if self._unwritten:
                self._kick()
        return settlement

    async def durable(self) -> None:
        """Return once every step decided so far is written (at once if there is none)."""
        with self._lock:
            self._check()
            if self._unwritten:
                if self._next is None:
                    self._next = asyncio.get_running_loop().create_future()
                batch = self._next
                self._kick()
            elif self._in_flight:
                if self._current is None:  # a plain method is writing from another thread
                    self._current = asyncio.get_running_loop().create_future()
                batch = self._current
            else:
                return
        await asyncio.shield(batch)  # one waiter cancelled must not fail the others

    async def arevert(self, transfer: str) -> None:
        """:meth:`revert`, for the event loop; written with the next commit (if at all: a hold
        that was never written needs no undoing on disk)."""
        with self._lock:
            self._revert(transfer)
            if self._unwritten:  # an old row to close: worth a write of its own
                self._kick()

    def settled(self, account: str, amount: int, settlement_id: str | None = None) -> bool:
        """A settlement of ``amount`` to the peer went through: the balance moves back up.
        (A settlement *from* the peer is a negative ``amount``: what it owes moves down.)
        With ``settlement_id`` a repeat is a no-op, so a retry after a crash counts once;
        returns whether the balance moved."""
        self._write_now()  # everything earlier on disk, so the check below sees it
        with self._lock:
            self._check()
            if settlement_id is not None:
                # Kept in transfers under state 'settled', which recover() never touches.
                if settlement_id in self._unwritten or settlement_id in self._in_flight:
                    return False
                known = self._reader.execute(
                    "SELECT 1 FROM transfers WHERE id = ?", (settlement_id,)
                ).fetchone()
                if known:
                    return False
                self._unwritten[settlement_id] = (settlement_id, account, "settle", amount, 0,
                                                  "settled")  # fmt: skip
            self._state(account).balance += amount
            self._dirty.add(account)
        self._write_now()
        return True

    def recover(self, now: float | None = None) -> int:
        """Revert every reservation whose packet expired (after a restart, say)."""
        now = time.time() if now is None else now
        with self._lock:
            self._check()
            expired = [t for t, held in self._reserved.items() if held[3] <= now]
            for transfer in expired:
                self._revert(transfer)
        self._write_now()
        return len(expired)

    def account(self, account: str) -> Account:
        with self._lock:
            state = self._accounts.get(account)
            if state is None:
                return Account(account, 0, 0, 0, None, None, None, 0)
            return Account(*state.row(account))


def _resolve(future: asyncio.Future[None] | None, error: Exception | None) -> None:
    """Settle ``future`` on its own loop, from whichever thread wrote."""
    if future is None:
        return

    def settle() -> None:
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    loop = future.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        settle()  # on the loop already: no wake-up through its self-pipe needed
        return
    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:
        pass  # its loop is closed: nobody is waiting any more
