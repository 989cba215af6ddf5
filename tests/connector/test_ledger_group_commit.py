"""Group commit on the connector's path: many packets per transaction, a Fulfill's commit on
disk before it is acknowledged, a failed write refused loudly, and SIGKILL mid-traffic."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from aigent_connector.ledger import LedgerUnavailable, SqliteLedger

from tests.connector.killing import assert_nothing_lost, group_commit_traffic, kill_mid_traffic

FAR = time.time() + 3600


async def packet(ledger: SqliteLedger, i: int, fulfil: bool = True) -> None:
    """What the connector does for one forwarded packet: two holds, then both commits."""
    await ledger.areserve(f"in{i}", "alice", "in", 10, FAR)
    await ledger.areserve(f"out{i}", "bob", "out", 10, FAR)
    await asyncio.sleep(0)  # the packet is out on the wire
    if fulfil:
        ledger.commit_nowait(f"out{i}")
        await ledger.acommit(f"in{i}")
    else:
        await ledger.arevert(f"out{i}")
        await ledger.arevert(f"in{i}")


async def test_concurrent_packets_share_transactions_and_survive_reopening(
    tmp_path: Path,
) -> None:
    ledger = SqliteLedger(tmp_path / "l.sqlite")
    ledger.configure("alice", max_balance=10**9)
    ledger.configure("bob", min_balance=-(10**9))
    before = ledger.writes
    await asyncio.gather(*(packet(ledger, i, fulfil=i % 4 != 0) for i in range(400)))
    assert ledger.account("alice").balance == 300 * 10
    assert ledger.account("bob").balance == -300 * 10
    assert ledger.writes - before < 300 / 2  # at least two packets per transaction
    ledger.close()
    again = SqliteLedger(tmp_path / "l.sqlite")
    alice = again.account("alice")
    assert (alice.balance, alice.reserved_in) == (3000, 0)
    states = dict(again.store._db.execute("SELECT state, COUNT(*) FROM transfers GROUP BY state"))
    assert states == {"committed": 600}  # rejected packets leave nothing behind


def on_disk(path: Path, copy: Path) -> sqlite3.Connection:
    """What a process started now would read: the ledger's files as the OS has them (the
    ledger holds its file, so the copy is read)."""
    for suffix in ("", "-wal"):
        source = Path(f"{path}{suffix}")
        Path(f"{copy}{suffix}").write_bytes(source.read_bytes() if source.exists() else b"")
    return sqlite3.connect(copy)


async def test_a_commit_is_on_disk_when_acommit_returns(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.sqlite")
    for i in range(20):
        await packet(ledger, i)
        other = on_disk(tmp_path / "l.sqlite", tmp_path / f"copy{i}.sqlite")
        row = other.execute("SELECT state FROM transfers WHERE id = ?", (f"in{i}",)).fetchone()
        assert row == ("committed",)
        out = other.execute("SELECT state FROM transfers WHERE id = ?", (f"out{i}",)).fetchone()
        assert out == ("committed",)  # the outgoing leg went in the same transaction
        balance = other.execute("SELECT balance FROM accounts WHERE id = 'alice'").fetchone()
        assert balance == ((i + 1) * 10,)
        other.close()
    ledger.close()


async def test_holds_are_memory_only_and_a_restart_frees_them(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.sqlite")
    ledger.configure("alice", max_balance=100)
    await ledger.areserve("held", "alice", "in", 60, FAR)
    with pytest.raises(Exception, match="exceeded maximum balance"):
        await ledger.areserve("more", "alice", "in", 60, FAR)  # the hold counts at once
    ledger.commit_nowait("unknown")  # a commit of nothing is a no-op
    await ledger.durable()
    ledger.close()  # as if the process died with the Prepare in flight
    again = SqliteLedger(tmp_path / "l.sqlite")
    assert again.account("alice").reserved_in == 0
    await again.areserve("more", "alice", "in", 60, FAR)  # the credit is back


async def test_a_failed_write_fails_the_waiters_and_every_later_step(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.sqlite")
    await packet(ledger, 1)
    ledger.store._db.execute("PRAGMA query_only=1")  # the disk refuses from here on
    with pytest.raises(LedgerUnavailable, match="could not be written") as info:
        await packet(ledger, 2)
    assert info.value.code == "T00"  # the connector rejects the packet: no Fulfill upstream
    with pytest.raises(LedgerUnavailable):
        await ledger.areserve("in3", "alice", "in", 10, FAR)
    with pytest.raises(LedgerUnavailable):
        ledger.commit("in1")
    ledger.close()  # the process gives up its file (a restart, say)
    again = SqliteLedger(tmp_path / "l.sqlite")  # reopened: what the disk holds, nothing more
    assert again.account("alice").balance == 10


TRAFFIC = group_commit_traffic(
    "from aigent_connector.ledger import SqliteLedger; ledger = SqliteLedger(sys.argv[1])"
)


@pytest.mark.slow
def test_group_committed_balances_survive_sigkill_mid_traffic(tmp_path: Path) -> None:
    """50 packets in flight through the group-commit path, the process killed at random
    moments three times: every acknowledged Fulfill is on disk, no packet counts twice, and
    both balances equal exactly what was committed."""
    db = tmp_path / "ledger.sqlite"
    acknowledged, in_flight = kill_mid_traffic(TRAFFIC, db, pause=0.5)
    ledger = SqliteLedger(db)
    ledger.recover(now=time.time() + 60)
    rows = ledger.store._db.execute("SELECT id, amount, state FROM transfers").fetchall()
    assert_nothing_lost(ledger, rows, acknowledged, in_flight)
