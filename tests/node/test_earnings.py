"""The one earnings ledger: every rail books into it, a ledger from before rails reads as ILP,
and a payment claimed once stays claimed on the next server that runs the agent (what refuses
x402 replays), on SQLite and on the database a fleet shares."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from aigent.node import Earnings, _Sale
from aigent.storage import FileStorage
from tests.fixtures.stores import Servers, pg, servers  # noqa: F401

HOUR = 3600.0


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

    earnings = Earnings.open(FileStorage(tmp_path))
    assert earnings.by_rail() == {"ilp": (1000, 1)}
    earnings.record("tx1", 1000, "XRP", "rPayer", "x402-xrpl")
    earnings.record("tx1", 1000, "XRP", "rPayer", "x402-xrpl")  # booked once
    assert earnings.by_rail() == {"ilp": (1000, 1), "x402-xrpl": (1000, 1)}
    assert earnings.total() == (2000, 2)
    earnings.close()


def test_a_ledger_with_rails_from_before_versions_opens_as_it_was(tmp_path: Path) -> None:
    """The file the code before aigent.storage wrote (rail and spent, user_version 0)."""
    path = tmp_path / "earnings.sqlite"
    old = sqlite3.connect(path)
    with old:
        old.execute(
            "CREATE TABLE sales (message_id TEXT PRIMARY KEY, at REAL NOT NULL, "
            "amount INTEGER NOT NULL, asset TEXT NOT NULL, sender TEXT NOT NULL, "
            "rail TEXT NOT NULL DEFAULT 'ilp')"
        )
        old.execute("CREATE TABLE spent (key TEXT PRIMARY KEY, at REAL NOT NULL, rail TEXT)")
        old.execute("INSERT INTO sales VALUES ('m1', 1.0, 1000, 'XRP', 'alice', 'x402-xrpl')")
        old.execute("INSERT INTO spent VALUES ('xrpl-tx:AB', 1.0, 'x402-xrpl')")
    old.close()

    earnings = Earnings.open(FileStorage(tmp_path))
    assert earnings.by_rail() == {"x402-xrpl": (1000, 1)}
    assert earnings.take(["xrpl-tx:AB"], "x402-xrpl", time.time() + 60).outcome == "used"
    earnings.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone() == (3,)


def test_a_used_payment_stays_used_on_the_next_server(servers: Servers) -> None:  # noqa: F811
    first = servers()
    earnings = Earnings.open(first)
    taken = earnings.take(["xrpl-tx:AB"], "x402-xrpl", time.time() + 60)
    assert taken.outcome == "taken"
    assert earnings.answered("xrpl-tx:AB", taken.attempt, "m1") is True
    assert earnings.take(["xrpl-tx:AB"], "x402-xrpl", time.time() + 60).outcome == "used"
    earnings.record("m1", 500, "XRP", "alice", "ilp")
    first.close()  # type: ignore[attr-defined]  # the server goes away

    again = Earnings.open(servers())
    assert again.take(["xrpl-tx:AB"], "x402-xrpl", time.time() + 60).outcome == "used"
    assert again.take(["xrpl-tx:CD"], "x402-xrpl", time.time() + 60).outcome == "taken"
    assert again.earned is None  # not read yet: a listing shows nothing rather than wait
    again.record("m1", 500, "XRP", "alice", "ilp")  # the same message, booked once
    assert again.total() == (500, 1) == again.earned
    again.record("m2", 250, "XRP", "bob", "ilp")
    again.record("m2", 250, "XRP", "bob", "ilp")
    assert again.earned == (750, 2) == again.total()


def test_a_payment_of_several_keys_is_taken_whole_or_not_at_all(
    servers: Servers,  # noqa: F811
) -> None:
    """An x402 payment is its transaction and its invoice: a replay that reuses either is
    refused, and the refusal marks neither of its other keys (a fresh invoice stays usable)."""
    earnings = Earnings.open(servers())
    until = time.time() + 60
    assert earnings.take(["xrpl-tx:AB", "x402-invoice:1"], "x402-xrpl", until).held
    assert earnings.take(["xrpl-tx:AB", "x402-invoice:2"], "x402-xrpl", until).outcome == "used"
    assert earnings.take(["xrpl-tx:CD", "x402-invoice:1"], "x402-xrpl", until).outcome == "used"
    # Neither refusal used its fresh key: each goes with another payment later.
    assert earnings.take(["xrpl-tx:CD", "x402-invoice:2"], "x402-xrpl", until).held
    found = earnings.store.execute("SELECT key FROM spent ORDER BY key")
    assert [k for (k,) in found] == [
        "x402-invoice:1", "x402-invoice:2", "xrpl-tx:AB", "xrpl-tx:CD"]  # fmt: skip


def test_earnings_over_time_put_each_sale_in_its_hour(servers: Servers) -> None:  # noqa: F811
    """Late in an hour stays in that hour on both backends (a cast would round it up)."""
    earnings = Earnings.open(servers())
    start = 1_700_000_000 // 3600 * HOUR
    for i, (offset, amount) in enumerate([(10, 5), (HOUR - 1, 7), (2 * HOUR + 5, 11)]):
        earnings.book(_Sale(amount, "g.a", f"m{i}", True), "XRP")
        earnings.store.execute("UPDATE sales SET at = ? WHERE message_id = ?",
                               (start + offset, f"m{i}"))  # fmt: skip
    rows = earnings.over_time("hour", start, start + 3 * HOUR - 1)
    assert rows == [(start, 12, 2), (start + HOUR, 0, 0), (start + 2 * HOUR, 11, 1)]


def test_a_payment_is_answered_once_and_a_dead_attempt_is_taken_again(
    servers: Servers,  # noqa: F811
) -> None:
    """The claim's states on both backends: answering until its deadline (a duplicate waits),
    taken again past it by the next server (its first one died), answered for good; only
    the attempt that holds it may mark it answered."""
    keys = ["xrpl-tx:AB", "x402-invoice:1"]
    first = servers()
    earnings = Earnings.open(first)
    now = time.time()
    taken = earnings.take(keys, "x402-xrpl", now + 0.5)
    assert (taken.outcome, taken.settled) == ("taken", "")
    busy = earnings.take(keys, "x402-xrpl", now + 60)
    assert busy.outcome == "answering" and busy.deadline == pytest.approx(now + 0.5)
    assert earnings.take(["xrpl-tx:CD", "x402-invoice:1"], "x402-xrpl", now + 60).outcome == (
        "used"  # the invoice belongs to another payment
    )
    earnings.settled("xrpl-tx:AB", "AB")
    first.close()  # type: ignore[attr-defined]  # the server dies mid-answer

    later = Earnings.open(servers())
    assert later.take(keys, "x402-xrpl", time.time() + 60).outcome == "answering"
    time.sleep(0.6)  # past the dead attempt's deadline
    again = later.take(keys, "x402-xrpl", time.time() + 60)
    assert (again.outcome, again.settled) == ("retaken", "AB")
    assert later.answered("xrpl-tx:AB", taken.attempt, "m-old") is False  # not its claim now
    assert later.answered("xrpl-tx:AB", again.attempt, "m1") is True
    assert later.claim_of("xrpl-tx:AB") == ("answered", "m1")
    assert later.take(keys, "x402-xrpl", time.time() + 60).outcome == "used"
    assert later.answered("xrpl-tx:AB", again.attempt, "m2") is False  # answered once


def test_a_failed_attempt_reopens_its_payment_for_the_retry(servers: Servers) -> None:  # noqa: F811
    earnings = Earnings.open(servers())
    taken = earnings.take(["evm-auth:1", "evm-nonce:1"], "x402-evm", time.time() + 60)
    earnings.reopen("evm-auth:1", "not-its-attempt")
    assert earnings.take(["evm-auth:1", "evm-nonce:1"], "x402-evm", 0).outcome == "answering"
    earnings.reopen("evm-auth:1", taken.attempt)
    assert earnings.claim_of("evm-auth:1") == ("open", "")
    retry = earnings.take(["evm-auth:1", "evm-nonce:1"], "x402-evm", time.time() + 60)
    assert retry.outcome == "retaken"
    assert earnings.answered("evm-auth:1", retry.attempt, "m1") is True
    # A key used before answers were tracked (a row of the earlier table) reads as answered.
    earnings.store.execute(
        "INSERT INTO spent (key, at, rail) VALUES ('xrpl-tx:OLD', 1.0, 'x402-xrpl')"
    )
    assert earnings.take(["xrpl-tx:OLD"], "x402-xrpl", time.time() + 60).outcome == "used"


def test_two_servers_taking_one_payment_at_once_answer_it_once(
    servers: Servers,  # noqa: F811
) -> None:
    ledgers = [Earnings.open(servers()) for _ in range(2)]
    Earnings.open(servers()).total()  # migrated before the race
    payments = [[f"xrpl-tx:{i}", f"x402-invoice:{i}"] for i in range(100)]
    won: list[list[str]] = [[], []]

    def take_all(k: int) -> None:
        for keys in payments:
            taken = ledgers[k].take(keys, "x402-xrpl", time.time() + 60)
            if taken.held and ledgers[k].answered(keys[0], taken.attempt, f"m{k}"):
                won[k].append(keys[0])

    threads = [threading.Thread(target=take_all, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(won[0] + won[1]) == sorted(p[0] for p in payments)
    assert not set(won[0]) & set(won[1])


def test_a_sale_is_booked_once_per_transaction(servers: Servers) -> None:  # noqa: F811
    earnings = Earnings.open(servers())
    assert earnings.record("AB", 1000, "XRP", "rPayer", "x402-xrpl") is True
    assert earnings.record("AB", 1000, "XRP", "rPayer", "x402-xrpl") is False
    assert earnings.total() == (1000, 1)
