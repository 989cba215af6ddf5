"""The XRPL plugin's stores (payment-channel claims, issued currencies) in the agent's storage,
on SQLite files and on a real PostgreSQL (tests/fixtures/stores.py), with the local test
ledger: what one server signed or received is there for the server that runs the agent next;
a claim's total never goes back and a settlement is signed once, even with two servers signing
at once (a hand-over); an existing file from before stores were versioned keeps its channels."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from aigent_xrpl.claims import MIGRATIONS, NAME, Claim, ClaimRejected, ClaimStore
from aigent_xrpl.currencies import MIGRATIONS as CURRENCY_MIGRATIONS
from aigent_xrpl.currencies import IssuedCurrencies
from aigent_xrpl.settlement import PaychanEngine
from aigent_xrpl.testledger import TestLedger
from xrpl.wallet import Wallet

from aigent import Character, PluginContext
from aigent.secrets import Secrets
from aigent.spending import Limits, SpendingPolicy
from aigent.storage import FileStorage, Storage
from tests.fixtures.stores import Servers, pg, servers  # noqa: F401

from .conftest import new_wallet

LIMITS = {"XRP": Limits(max_per_payment=20_000_000, per_day=50_000_000)}


def _engine(ledger: TestLedger, wallet: Wallet, storage: Storage, data_dir: Path) -> PaychanEngine:
    """An agent's engine as one server runs it: its storage, its own data directory. (The
    other agent of a pair has storage of its own: one channel, two agents' views of it.)"""
    settings = {"url": ledger.url, "cache_ttl": 60}
    ctx = PluginContext(
        character=Character(name="a", settings={"xrpl": settings}),
        secrets=Secrets(environ={"XRPL_SEED": wallet.seed or ""}),
        data_dir=data_dir,
        storage=storage,
        plugin="xrpl",
        settings=settings,
        spending=SpendingPolicy(LIMITS, data_dir / "spending.sqlite"),
    )
    return PaychanEngine(ctx)


def _claims(storage: Storage) -> ClaimStore:
    return ClaimStore(storage.open(NAME, MIGRATIONS))


async def test_claims_signed_on_one_server_carry_on_from_there_on_the_next(
    ledger: TestLedger,
    servers: Servers,  # noqa: F811
    tmp_path: Path,
) -> None:
    alice, bob = new_wallet(ledger), new_wallet(ledger)
    first = servers()
    payer = _engine(ledger, alice, first, tmp_path / "one")
    channel = await payer.open_channel("bob", bob.address, 10_000_000)
    signed = await payer.create_claim("bob", 1_000_000, settlement_id="s1")
    first.close()  # the server dies after handing the claim out

    payer = _engine(ledger, alice, servers(), tmp_path / "two")
    assert payer.latest_claim("bob") == signed.to_json()
    again = await payer.create_claim("bob", 1_000_000, settlement_id="s1")
    assert again == signed  # the same settlement: the same claim, not a second one
    more = await payer.create_claim("bob", 500_000, settlement_id="s2")
    assert more.amount == 1_500_000  # on top of what the dead server signed, never from 0
    assert payer.store.channel_for("bob", "out") == (channel, 10_000_000)
    (state,) = payer.channels("bob")
    assert (state.channel, state.direction, state.claimed) == (channel, "out", 1_500_000)

    payee = _engine(ledger, bob, FileStorage(tmp_path / "payee"), tmp_path / "payee")
    assert await payee.receive_claim("alice", more.to_json()) == 1_500_000
    assert await payee.redeem() == 1_500_000
    assert ledger.channels[channel]["balance"] == 1_500_000


def test_two_servers_signing_at_once_never_sign_a_settlement_twice_or_go_back(
    ledger: TestLedger,
    servers: Servers,  # noqa: F811
    tmp_path: Path,
) -> None:
    """During a hand-over both servers may still settle for a moment: each claim raises the
    last one written by either, and a settlement id is signed by only one of them."""
    alice, bob = new_wallet(ledger), new_wallet(ledger)
    opener = _engine(ledger, alice, servers(), tmp_path / "opener")
    asyncio.run(opener.open_channel("bob", bob.address, 10_000_000))
    handed: dict[str, list[int]] = {"a": [], "b": []}

    def server(name: str) -> None:
        async def settle() -> None:
            engine = _engine(ledger, alice, servers(), tmp_path / name)
            for i in range(10):
                claim = await engine.create_claim("bob", 100_000, settlement_id=f"{name}{i}")
                handed[name].append(claim.amount)
                await engine.create_claim("bob", 100_000, settlement_id="both")

        asyncio.run(settle())

    threads = [threading.Thread(target=server, args=(name,)) for name in handed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    store = _claims(servers())
    channel, _ = store.channel_for("bob", "out") or ("", 0)
    best = store.best(channel)
    assert best is not None and best[0].amount == 2_100_000  # 20 settlements and "both" once
    rows = store.store.execute("SELECT id, amount FROM paychan_settlements ORDER BY amount")
    assert len(rows) == 21 and len({amount for _, amount in rows}) == 21
    assert [amount for _, amount in rows] == [100_000 * (i + 1) for i in range(21)]
    for amounts in handed.values():  # what each server handed out only ever rose
        assert amounts == sorted(amounts) and len(set(amounts)) == 10


async def test_a_claim_received_on_one_server_is_not_credited_again_on_the_next(
    ledger: TestLedger,
    servers: Servers,  # noqa: F811
    tmp_path: Path,
) -> None:
    alice, bob = new_wallet(ledger), new_wallet(ledger)
    payer = _engine(ledger, alice, FileStorage(tmp_path / "payer"), tmp_path / "payer")
    await payer.open_channel("bob", bob.address, 10_000_000)
    one = await payer.create_claim("bob", 1_000_000)
    two = await payer.create_claim("bob", 2_000_000)

    first = servers()
    payee = _engine(ledger, bob, first, tmp_path / "one")
    assert await payee.receive_claim("alice", two.to_json()) == 3_000_000
    payee.store.set_credited(two.channel, 1_000_000)  # the ledger credited part of it
    first.close()

    payee = _engine(ledger, bob, servers(), tmp_path / "two")
    assert await payee.receive_claim("alice", two.to_json()) == 0  # held: credits nothing
    with pytest.raises(ClaimRejected, match="does not exceed"):
        await payee.receive_claim("alice", one.to_json())  # an older claim: never back
    assert payee.store.uncredited("alice") == [(two.channel, "alice", 1_000_000, 3_000_000)]
    payee.store.set_credited(two.channel, 500_000)  # a stale credit cannot lower it
    assert payee.store.uncredited() == [(two.channel, "alice", 1_000_000, 3_000_000)]
    assert await payee.redeem() == 3_000_000
    assert payee.store.best(two.channel) == (two, 3_000_000)
    assert payee.store.mark_closed(two.channel, 5.0) is True
    assert payee.store.mark_closed(two.channel, 6.0) is False


def test_issued_currencies_follow_the_agent(servers: Servers) -> None:  # noqa: F811
    first = servers()
    book = IssuedCurrencies(first.open("xrpl_currencies", CURRENCY_MIGRATIONS))
    book.add("rAgent", "USD", 1.0)
    book.add("rAgent", "EUR", 2.0)
    book.add("rOther", "GBP", 3.0)
    first.close()
    book = IssuedCurrencies(servers().open("xrpl_currencies", CURRENCY_MIGRATIONS))
    assert book.of("rAgent") == ["USD", "EUR"]
    book.add("rAgent", "USD", 4.0)  # known: kept once
    assert book.of("rAgent") == ["USD", "EUR"] and book.of("rOther") == ["GBP"]


LEGACY = """
CREATE TABLE channels (channel TEXT PRIMARY KEY, peer TEXT NOT NULL, direction TEXT NOT NULL,
    amount INTEGER NOT NULL);
CREATE TABLE claims (channel TEXT PRIMARY KEY, amount INTEGER NOT NULL, signature TEXT NOT NULL,
    public_key TEXT NOT NULL, redeemed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE settlements (id TEXT PRIMARY KEY, channel TEXT NOT NULL, amount INTEGER NOT NULL);
CREATE TABLE credits (channel TEXT PRIMARY KEY, peer TEXT NOT NULL, credited INTEGER NOT NULL);
INSERT INTO channels VALUES ('C2', 'bob', 'out', 5000000);
INSERT INTO channels VALUES ('C1', 'bob', 'out', 9000000);
INSERT INTO claims VALUES ('C1', 4000000, 'AB', 'ED01', 0);
INSERT INTO settlements VALUES ('s1', 'C1', 4000000);
"""


@pytest.mark.parametrize("columns", [(), ("expires REAL",), ("expires REAL", "closed REAL")])
def test_a_claims_file_from_before_versioning_keeps_its_channels(
    tmp_path: Path, columns: tuple[str, ...]
) -> None:
    path = tmp_path / "xrpl-paychan.sqlite"
    db = sqlite3.connect(path)
    db.executescript(LEGACY + "".join(f"ALTER TABLE channels ADD COLUMN {c};" for c in columns))
    db.close()
    store = ClaimStore(path)
    assert store.channel_for("bob", "out") == ("C1", 9_000_000)  # the one written last
    assert [s[0] for s in store.states("bob")] == ["C2", "C1"]
    assert store.settlement("s1") == 4_000_000
    best = store.best("C1")
    assert best is not None and best[0].amount == 4_000_000
    store.add_channel("C2", "bob", "out", 7_000_000)  # topped up: now the latest
    assert store.channel_for("bob", "out") == ("C2", 7_000_000)
    store.close()
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")
    assert {name for (name,) in tables} == {
        "paychan_channels", "paychan_claims", "paychan_settlements", "paychan_credits"
    }  # fmt: skip


def test_claims_share_the_agents_schema_with_its_connectors_settlements(
    servers: Servers,  # noqa: F811
) -> None:
    """In PostgreSQL the agent's stores and its connector's ledger share one schema, where the
    connector keeps a ``settlements`` table of its own: the claims' tables have names of
    theirs."""
    if servers.dialect != "postgresql":
        pytest.skip("a store per file: no table is shared")
    storage = servers()
    connector = storage.open("connector", [CONNECTOR_SETTLEMENTS])
    connector.execute("INSERT INTO settlements VALUES ('s1', 'bob', 5, 'pending', NULL, 1.0)")
    store = _claims(storage)
    store.add_channel("C1", "bob", "out", 10)
    store.save(Claim("C1", 5, "AB", "ED01"), settlement_id="s1")
    assert store.settlement("s1") == 5 and store.channel_for("bob", "out") == ("C1", 10)
    assert connector.execute("SELECT account, state FROM settlements") == [("bob", "pending")]


CONNECTOR_SETTLEMENTS = """
CREATE TABLE settlements (id TEXT PRIMARY KEY, account TEXT NOT NULL, amount BIGINT NOT NULL,
    state TEXT NOT NULL, settled BIGINT, created DOUBLE PRECISION NOT NULL)
"""


def test_a_currency_file_from_before_versioning_keeps_its_codes(tmp_path: Path) -> None:
    path = tmp_path / "xrpl_currencies.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE currencies (issuer TEXT NOT NULL, currency TEXT NOT NULL, "
        "created_at REAL NOT NULL, PRIMARY KEY (issuer, currency));"
        "INSERT INTO currencies VALUES ('rAgent', 'OLD', 1.0);"
    )
    db.close()
    book = IssuedCurrencies(FileStorage(tmp_path).open("xrpl_currencies", CURRENCY_MIGRATIONS))
    book.add("rAgent", "NEW", 2.0)
    assert book.of("rAgent") == ["OLD", "NEW"]
    book.close()
