"""Balances per peer account, durable in a store (SQLite WAL by default), with the reference
connector's semantics.

An incoming Prepare from a peer *reserves* its amount against the account's maximum balance (the
credit we extend); a Reject *reverts* the reservation; a Fulfill *commits* it. An outgoing
Prepare reserves against the minimum balance (the credit the peer extends to us) and a Fulfill
commits it. Every step is keyed by a transfer id, so a repeated step is a no-op, and a crash at
any moment leaves each transfer either done or not: nothing is lost and nothing is counted
twice. :meth:`Ledger.recover` releases reservations whose packets have expired (their Prepare
can no longer be fulfilled), including rows that earlier versions wrote for them.

Speed without giving up crash safety: the owning process keeps the accounts and the open
reservations in memory (loaded at start) and decides every step there. What must survive a
crash is written to the :class:`Store`: balances, and a row per committed transfer whose id may
be repeated (the plain methods, settlements). A reservation is a hold in memory only: one lost
in a crash frees credit that was never spent, since its Prepare can no longer be fulfilled
through us once the process and its links are gone. The plain methods (``reserve``,
``commit``...) write before they return. The event-loop ones (``hold``, ``commit_nowait``,
``release``) group the writes of everything decided in one turn of the event loop into one
transaction, and :meth:`Ledger.when_durable` says when it is written: a connector passes a
Fulfill upstream only then. How far "written" goes is the store's :data:`Durability`:
``"fsync"``, on disk (survives a power cut), or ``"os"``, handed to the OS (survives a killed
process, not a crash of the machine), many times faster when few packets are in flight.
A connector's packets commit with ``record=False``: their ids are fresh, so a row per packet
would only grow the file. One process owns a ledger at a time.

When an account's balance crosses its settle threshold, the ledger reports how much should be
settled (:class:`Settlement`); the connector hands that to a settlement engine.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from aigent_connector.errors import ConnectorError

log = logging.getLogger("aigent.connector.ledger")

Direction = Literal["in", "out"]
Durability = Literal["fsync", "os"]
"""How far a commit goes before it counts as written: flushed to disk (``"fsync"``), or to the
OS, which writes it later (``"os"``: nothing is lost when the process is killed)."""
DURABILITIES = ("fsync", "os")
Transfer = str | int
"""A transfer's id: a string for steps that may be repeated, a number for fresh ones."""

# Transactions between checkpoints: a checkpoint copies each page once however often it was
# written, so rarer ones cost less; the WAL grows to about this many pages meanwhile.
CHECKPOINT_EVERY = 1000


class LedgerError(ConnectorError):
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


AccountRow = tuple[str, int, int, int, int | None, int | None, int | None, int]
"""(id, balance, reserved_in, reserved_out, min_balance, max_balance, settle_threshold,
settle_to)"""
TransferRow = tuple[Transfer, str, str, int, float, str]
"""(id, account, direction, amount, expires_at, state)"""


class Store(Protocol):
    """Where a :class:`Ledger` keeps what must survive a crash: account rows and transfer rows.
    :class:`~aigent_connector.sqlite_store.SqliteStore` is the default; another (PostgreSQL for
    operators who run many nodes, say) implements these five methods."""

    name: str
    """Says which store this is in messages (a path; never a password)."""
    writes_block: bool
    """True when a write waits on the network: the ledger then writes from a thread, so the
    event loop never waits. False for a local file, whose append is cheaper than a thread."""

    def load(self) -> tuple[list[AccountRow], list[TransferRow]]:
        """Every account row, and the transfer rows still in state ``reserved``."""
        ...

    def has_transfer(self, transfer: str) -> bool:
        """Whether a transfer row with this id exists (a repeated step is then a no-op)."""
        ...

    def write(self, accounts: list[AccountRow], transfers: list[TransferRow]) -> None:
        """Upsert these rows in one transaction, durable when this returns; raise if not."""
        ...

    def maintain(self) -> None:
        """Housekeeping every few hundred writes (a WAL checkpoint); runs in a thread."""
        ...

    def close(self) -> None: ...


class _State:
    """One account as the owning process knows it (the database row, plus unflushed steps)."""

    __slots__ = ("balance", "high", "low", "reserved_in", "reserved_out", "settle_to", "threshold")

    def __init__(self, row: tuple[int, int, int, int | None, int | None, int | None, int]) -> None:
        (self.balance, self.reserved_in, self.reserved_out, self.low, self.high,
         self.threshold, self.settle_to) = row  # fmt: skip

    def row(self, account: str) -> AccountRow:
        return (account, self.balance, self.reserved_in, self.reserved_out, self.low, self.high,
                self.threshold, self.settle_to)  # fmt: skip


Done = Callable[["LedgerUnavailable | None"], None]
"""Told once a write is durable (``None``) or failed (the error); called on the event loop
that asked."""


class _Batch:
    """One transaction's worth: account rows, transfer rows, and who waits for it."""

    __slots__ = ("accounts", "done", "loop", "transfers")

    def __init__(self, accounts: list[AccountRow], transfers: list[TransferRow]) -> None:
        self.accounts = accounts
        self.transfers = transfers
        self.done: list[Done] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    def wait(self, done: Done) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        self.done.append(done)

    def tell(self, error: LedgerUnavailable | None) -> None:
        """Call the waiters on their loop, from whichever thread wrote."""
        done, loop = self.done, self.loop
        if not done or loop is None:
            return
        self.done = []

        def call() -> None:
            for each in done:
                try:
                    each(error)
                except Exception:  # one waiter's bug must not keep the others waiting
                    log.exception("a ledger waiter failed")

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            call()  # on the loop already: no wake-up through its self-pipe needed
            return
        try:
            loop.call_soon_threadsafe(call)
        except RuntimeError:
            pass  # its loop is closed: nobody is waiting any more


class Ledger:
    """Balances per account, decided in memory and written through a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.path: Path | str = store.name
        """What :attr:`Store.name` says; a :class:`~pathlib.Path` for SQLite."""
        accounts, reserved = store.load()
        self._accounts: dict[str, _State] = {row[0]: _State(row[1:]) for row in accounts}
        # Rows hold 'in' or 'out' as direction: the store wrote them from these.
        self._reserved: dict[Transfer, tuple[str, Direction, int, float]] = {
            row[0]: (row[1], row[2], row[3], row[4])  # type: ignore[misc]
            for row in reserved
        }
        self._stored: set[Transfer] = set(self._reserved)  # holds that have a row in the database
        # Holds without a row died with the process that made them: only rows count.
        for state in self._accounts.values():
            state.reserved_in = state.reserved_out = 0
        for account, direction, amount, _ in self._reserved.values():
            state = self._accounts.setdefault(account, _State((0, 0, 0, None, None, None, 0)))
            if direction == "in":
                state.reserved_in += amount
            else:
                state.reserved_out += amount
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._unwritten: dict[Transfer, TransferRow] = {}  # transfer id -> its row, as it is now
        self._in_flight: dict[Transfer, TransferRow] = {}  # rows being written now
        # Group commit: what the tasks decide during one turn of the event loop is written in
        # one transaction, cut in a callback between two task steps (see _kick).
        self._write_lock = threading.Lock()  # taken before self._lock, never after
        self._next = _Batch([], [])  # what is decided and not cut yet, and who waits for it
        self._flying: list[_Batch] = []  # cut and not yet written, oldest first
        self._queued: _Batch | None = None  # cut on the loop, not yet written
        self._threads: ThreadPoolExecutor | None = None  # maintenance, and blocking writes
        self._writing = False  # a batch is being written
        self._scheduled = False  # a batch is about to be cut
        self._broken: str | None = None
        self._closed = False
        self.writes = 0
        """Transactions written so far: far fewer than commits when group commit works."""

    def _thread(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(1, thread_name_prefix="aigent-ledger")
        return self._threads

    def close(self) -> None:
        """Write what is left and close; the ledger refuses every step afterwards."""
        if self._threads is not None:
            self._threads.shutdown(wait=True)
        if self._broken is None and not self._closed:
            self._write_now()
        with self._write_lock, self._lock:
            if self._closed:
                return
            self._closed = True
            self.store.close()

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
        self, transfer: Transfer, account: str, direction: Direction, amount: int,
        expires_at: float, look_up: bool = True,
    ) -> None:  # fmt: skip
        if self._broken is not None or self._closed:  # (tested here: twice on every packet)
            self._check()
        if transfer in self._reserved or transfer in self._unwritten or transfer in self._in_flight:
            return
        if look_up and isinstance(transfer, str) and self.store.has_transfer(transfer):
            return
        state = self._accounts.get(account) or self._state(account)
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
        # The hold itself is not written: one lost in a crash only frees credit that was never
        # spent, as its Prepare dies with the links. What a commit changes is written.
        self._reserved[transfer] = (account, direction, amount, expires_at)

    def _commit(self, transfer: Transfer, record: bool = True) -> Settlement | None:
        if self._broken is not None or self._closed:
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
        if record or transfer in self._stored:
            self._stored.discard(transfer)
            self._unwritten[transfer] = (transfer, account, direction, amount, expires_at,
                                         "committed")  # fmt: skip
        if state.threshold is not None and state.balance < state.threshold:
            return Settlement(account, state.settle_to - state.balance)
        return None

    def _revert(self, transfer: Transfer) -> None:
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
        if transfer in self._stored:  # reserved by an earlier version: close its row
            self._stored.discard(transfer)
            self._unwritten[transfer] = (transfer, account, direction, amount, expires_at,
                                         "reverted")  # fmt: skip

    # --- writing ---------------------------------------------------------------------------------

    def _take(self) -> _Batch:
        """What to write next (self._lock is held): its rows are in flight from now on."""
        batch = self._next
        batch.accounts = [self._accounts[a].row(a) for a in self._dirty]
        batch.transfers = list(self._unwritten.values())
        self._in_flight.update(self._unwritten)
        self._dirty.clear()
        self._unwritten.clear()
        self._next = _Batch([], [])
        self._flying.append(batch)
        return batch

    def _write(self, batch: _Batch) -> LedgerUnavailable | None:
        """One transaction (the write lock is held); the error, if the store refused it."""
        try:
            self.store.write(batch.accounts, batch.transfers)
        except Exception as exc:
            # Memory is now ahead of the database: refuse everything rather than guess.
            with self._lock:
                self._broken = f"ledger {self.path} could not be written: {exc}"
            return LedgerUnavailable(self._broken)
        self.writes += 1
        if self.writes % CHECKPOINT_EVERY == 0:
            self._maintain_soon()
        return None

    def _maintain_soon(self) -> None:
        """The store's housekeeping (a checkpoint's fsync: milliseconds on a busy disk) in a
        thread, so it never stalls the event loop."""
        with self._lock:
            if self._closed:
                return
            try:
                self._thread().submit(self._maintain)
            except RuntimeError:
                pass  # closing: SQLite checkpoints when the last connection closes

    def _maintain(self) -> None:
        try:
            self.store.maintain()
        except Exception as exc:  # the next one tries again; the WAL just grows meanwhile
            log.warning("maintenance of %s failed: %s", self.path, exc)

    def _written(self, batch: _Batch, error: LedgerUnavailable | None) -> None:
        """After a write: tell whoever waits for it (any thread; the write lock is held)."""
        with self._lock:
            for row in batch.transfers:
                self._in_flight.pop(row[0], None)
            self._flying.remove(batch)
            failed = None
            if error is not None:  # nothing more will be written: the next waiters hear why
                failed, self._next = self._next, _Batch([], [])
        batch.tell(error)
        if failed is not None:
            failed.tell(error)

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

    def _pending(self) -> bool:
        return bool(self._dirty or self._unwritten)

    def _kick(self) -> None:
        """Write soon (self._lock is held; on the event loop). The batch is cut in a callback
        of the loop, after everything that is ready to run now: what a turn of the loop decides
        (the two commits of every packet answered in it) goes in one transaction."""
        if not self._writing and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._submit)

    def _submit(self) -> None:
        """Cut a batch and write it (a callback of the event loop)."""
        with self._lock:
            self._scheduled = False
            if self._writing or not self._pending() or self._broken or self._closed:
                return
            self._queued, self._writing = self._take(), True
            threaded = self.store.writes_block
        if threaded:
            loop = asyncio.get_running_loop()
            self._thread().submit(self._write_queued, loop)
        else:
            self._write_queued(None)

    def _write_queued(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """One transaction. SQLite's is a WAL append (no fsync), tens of microseconds, so it
        is written on the event loop: a thread would cost more, as it needs the GIL back after
        every SQLite call and a busy loop hands it over only every switch interval (5 ms). A
        store whose writes wait on the network is written here from a thread (``loop`` is then
        the event loop to cut the next batch on)."""
        with self._write_lock:
            with self._lock:
                batch, self._queued = self._queued, None
            if batch is not None:  # else a plain method wrote it first
                self._written(batch, self._write(batch))
        with self._lock:
            self._writing = False
            more = loop is not None and self._pending() and self._next.done
        if more:  # decided while we wrote, and somebody waits: the next batch
            try:
                loop.call_soon_threadsafe(self._resubmit)  # type: ignore[union-attr]
            except RuntimeError:
                pass  # the loop is closed

    def _resubmit(self) -> None:
        with self._lock:
            self._kick()

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

    def hold(
        self, transfer: Transfer, account: str, direction: Direction, amount: int,
        expires_at: float,
    ) -> None:  # fmt: skip
        """:meth:`reserve` for the event loop: in memory, nothing to write. ``transfer`` must
        be fresh (the connector numbers its packets): unlike :meth:`reserve`, this does not
        look it up among the transfers written before, a read that would cost as much as the
        rest of a packet's ledger work."""
        with self._lock:
            self._reserve(transfer, account, direction, amount, expires_at, look_up=False)

    async def areserve(
        self, transfer: str, account: str, direction: Direction, amount: int, expires_at: float
    ) -> None:
        """:meth:`hold`, awaitable."""
        self.hold(transfer, account, direction, amount, expires_at)

    async def acommit(self, transfer: str) -> Settlement | None:
        """:meth:`commit`, returning once the group commit that holds it is durable."""
        settlement = self.commit_nowait(transfer)
        await self.durable()
        return settlement

    def commit_nowait(self, transfer: Transfer, record: bool = True) -> Settlement | None:
        """:meth:`commit` decided at once and written with the next group commit, for the event
        loop: nobody may learn of the Fulfill before :meth:`when_durable` says it is written.
        ``record=False`` writes the balance only, not a row for the transfer: for a fresh id
        that no one will repeat (a connector's packets), that row would only grow the file."""
        with self._lock:
            settlement = self._commit(transfer, record)
            self._kick()
        return settlement

    def when_durable(self, done: Done) -> None:
        """``done(None)`` once every step decided so far is written (at once if there is
        none), or ``done(error)`` if the write failed. Called on this event loop."""
        with self._lock:
            if self._broken is not None or self._closed:
                error: LedgerUnavailable | None = LedgerUnavailable(
                    self._broken or f"ledger {self.path} is closed"
                )
            elif self._pending():
                self._next.wait(done)
                self._kick()
                return
            elif self._flying:  # written by now, or being written (by another thread)
                self._flying[-1].wait(done)
                return
            else:
                error = None
        done(error)

    async def durable(self) -> None:
        """Return once every step decided so far is written (at once if there is none)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def done(error: LedgerUnavailable | None) -> None:
            if future.done():
                return  # the waiter was cancelled
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

        self.when_durable(done)
        await future

    def release(self, transfer: Transfer) -> None:
        """:meth:`revert` for the event loop; nothing to write unless the hold had a row (left
        by an earlier version), which then goes with the next group commit."""
        with self._lock:
            self._revert(transfer)
            if self._unwritten:
                self._kick()

    async def arevert(self, transfer: str) -> None:
        """:meth:`release`, awaitable."""
        self.release(transfer)

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
                if self.store.has_transfer(settlement_id):
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


class SqliteLedger(Ledger):
    """The default ledger: one SQLite file in WAL mode. ``durability`` is ``"os"`` here unless
    told (what benchmarks/connector measures); a node passes its config's
    ``ledger_durability``, ``"fsync"`` by default."""

    def __init__(self, path: Path | str, *, durability: Durability = "os") -> None:
        from aigent_connector.sqlite_store import SqliteStore

        super().__init__(SqliteStore(path, durability=durability))
        self.path = Path(path)
