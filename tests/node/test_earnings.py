"""The one earnings ledger: every rail books into it, a ledger from before rails reads as ILP,
and a payment claimed once stays claimed across a reopen (what refuses x402 replays)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from aigent.node import Earnings


def test_a_ledger_from_before_rails_is_migrated_and_reads_as_ilp(tmp_path: Path) -> None:
    path = tmp_path / "earnings.sqlite"
    old = sqlite3.connect(path)
    with old:
        old.execute(
            "CREATE TABLE sales (message_id TEXT PRIMARY KEY, at REAL NOT NULL, "
            "amount INTEGER NOT NULL, asset TEXT NOT NULL, sender TEXT NOT NULL)"
        )
        old.execute("INSERT INTO sales VALUES ('m1', 1.0, 1000, 'XRP', 'alice')")
    old.close()

    earnings = Earnings(path)
    assert earnings.by_rail() == {"ilp": (1000, 1)}
    earnings.record("tx1", 1000, "XRP", "rPayer", "x402-xrpl")
    earnings.record("tx1", 1000, "XRP", "rPayer", "x402-xrpl")  # booked once
    assert earnings.by_rail() == {"ilp": (1000, 1), "x402-xrpl": (1000, 1)}
    assert earnings.total() == (2000, 2)
    earnings.close()


def test_a_claim_holds_once_and_across_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "earnings.sqlite"
    earnings = Earnings(path)
    assert earnings.claim("xrpl-tx:AB", "x402-xrpl") is True
    assert earnings.claim("xrpl-tx:AB", "x402-xrpl") is False
    earnings.close()
    again = Earnings(path)
    assert again.claim("xrpl-tx:AB", "x402-xrpl") is False
    assert again.claim("xrpl-tx:CD", "x402-xrpl") is True
    again.close()
