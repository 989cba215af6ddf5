"""The ledger: reserve, revert, commit, credit limits, settlement, and a SIGKILL mid-traffic."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from aigent_connector.ledger import LedgerError, Settlement, SqliteLedger

from tests.connector.killing import kill_mid_traffic

FAR = time.time() + 3600


def test_prepare_reserves_reject_reverts_fulfill_commits(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.sqlite")
    ledger.configure("alice", max_balance=1000)
    ledger.reserve("p1", "alice", "in", 600, FAR)
    ledger.reserve("p2", "alice", "in", 300, FAR)
    with pytest.raises(LedgerError) as info:
        ledger.reserve("p3", "alice", "in", 200, FAR)  # 600 + 300 + 200 > 1000
    assert info.value.code == "T04" and "exceeded maximum balance" in str(info.value)
    ledger.revert("p2")
    ledger.commit("p1")
    ledger.commit("p1")  # a repeated Fulfill is not counted twice
    ledger.revert("p1")  # nor can a committed transfer be reverted
    account = ledger.account("alice")
    assert (account.balance, account.reserved_in) == (600, 0)
    ledger.reserve("p3", "alice", "in", 200, FAR)
    assert ledger.account("alice").reserved_in == 200


def test_outgoing_credit_and_settle_threshold(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.sqlite")
    ledger.configure("bob", min_balance=-500, settle_threshold=-300, settle_to=0)
    ledger.reserve("o1", "bob", "out", 200, FAR)
    assert ledger.commit("o1") is None  # -200: above the threshold
    ledger.reserve("o2", "bob", "out", 200, FAR)
    assert ledger.commit("o2") == Settlement("bob", 400)  # -400 < -300: settle back to 0
    with pytest.raises(LedgerError, match="insufficient liquidity"):
        ledger.reserve("o3", "bob", "out", 101, FAR)  # -400 - 101 < -500
    ledger.settled("bob", 400)
    assert ledger.account("bob").balance == 0


def test_recover_reverts_expired_reservations(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.sqlite")
    ledger.reserve("old", "carol", "in", 50, time.time() - 1)
    ledger.reserve("live", "carol", "in", 70, FAR)
    assert ledger.recover() == 1
    assert ledger.account("carol").reserved_in == 70


TRAFFIC = """
import sys, time, json
from aigent_connector.ledger import SqliteLedger, LedgerError
ledger = SqliteLedger(sys.argv[1])
ledger.configure("peer", max_balance=10**12)
i = int(sys.argv[2])
while True:
    i += 1
    amount = i % 97 + 1
    ledger.reserve(f"p{i}", "peer", "in", amount, time.time() + 30)
    print(json.dumps(["reserved", i, amount]), flush=True)
    if i % 3 == 0:
        ledger.revert(f"p{i}")
        print(json.dumps(["rejected", i, amount]), flush=True)
    else:
        ledger.commit(f"p{i}")
        print(json.dumps(["fulfilled", i, amount]), flush=True)
"""


@pytest.mark.slow
def test_balances_survive_sigkill_mid_traffic(tmp_path: Path) -> None:
    """A process moving packets through the ledger is killed at random moments, three times;
    after each restart the balance equals exactly what was fulfilled."""
    db = tmp_path / "ledger.sqlite"
    acknowledged, in_flight = kill_mid_traffic(TRAFFIC, db, pause=0.4)
    ledger = SqliteLedger(db)
    ledger.recover(now=time.time() + 60)  # every unfinished Prepare has expired by now
    rows = ledger.store._db.execute("SELECT id, amount, state FROM transfers").fetchall()
    committed = {int(t[1:]): amount for t, amount, state in rows if state == "committed"}
    assert set(acknowledged) <= set(committed)  # nothing acknowledged was lost
    assert set(committed) - set(acknowledged) <= in_flight  # at most the cut-off ones
    assert not [r for r in rows if r[2] == "reserved"]
    account = ledger.account("peer")
    assert account.balance == sum(committed.values())
    assert account.reserved_in == 0
    assert len(acknowledged) > 100


def test_a_ledger_file_has_one_owner_at_a_time(tmp_path: Path) -> None:
    import subprocess
    import sys

    from aigent_connector.config import ConfigError, parse_config
    from aigent_connector.ledger import LedgerUnavailable
    from aigent_connector.node import open_ledger

    path = tmp_path / "l.sqlite"
    ledger = SqliteLedger(path)
    ledger.configure("alice", max_balance=100)
    # Another process (a second connector started on the same file, say) is refused at once,
    # rather than both keeping balances in memory and overwriting each other's.
    other = subprocess.run(
        [sys.executable, "-c", "import sys; from aigent_connector.ledger import SqliteLedger; "
         "SqliteLedger(sys.argv[1])", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert other.returncode != 0
    assert f"ledger {path} is in use: another connector or agent has it open" in other.stderr
    with pytest.raises(LedgerUnavailable, match="in use: another connector or agent"):
        SqliteLedger(path)  # in this process too
    config = parse_config({"node_id": "n", "address": "g.n", "ledger_path": str(path)})
    with pytest.raises(ConfigError, match=r"ledger_path: ledger .* is in use"):
        open_ledger(config)
    ledger.close()
    again = SqliteLedger(path)  # free once its owner closes it
    assert again.account("alice").max_balance == 100
    again.close()


def _synchronous(ledger: SqliteLedger) -> int:
    return int(ledger.store._db.execute("PRAGMA synchronous").fetchone()[0])  # type: ignore[attr-defined]


async def test_a_node_fsyncs_its_ledger_unless_told_otherwise(tmp_path: Path) -> None:
    # The README's promise, "a Fulfill is passed back only once its commit is on disk", holds
    # by default: SQLite's FULL (2) fsyncs the WAL at every commit; NORMAL (1) leaves it to
    # the OS, which survives a killed process but not a power cut.
    from aigent_connector.config import ConfigError, parse_config
    from aigent_connector.node import Node

    base = {"node_id": "x", "address": "g.x", "ledger_path": str(tmp_path / "x.sqlite")}
    config = parse_config(base)
    assert config.ledger_durability == "fsync"
    for durability, pragma in (("fsync", 2), ("os", 1)):
        node = await Node(parse_config({**base, "ledger_durability": durability})).start()
        try:
            ledger = node.connector.ledger
            assert isinstance(ledger, SqliteLedger) and _synchronous(ledger) == pragma
        finally:
            await node.stop()
    with pytest.raises(ConfigError, match=r"ledger_durability: .*'fsync' or 'os'"):
        parse_config({**base, "ledger_durability": "sometimes"})
    with pytest.raises(ValueError, match="'fsync' or 'os'"):
        SqliteLedger(tmp_path / "y.sqlite", durability="never")  # type: ignore[arg-type]
