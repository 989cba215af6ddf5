"""The TRN plugin's stores (proofs, created tokens) in the agent's storage, on SQLite files and
on a real PostgreSQL (tests/fixtures/stores.py): what one server wrote is there for the server
that runs the agent next; two servers at once (a hand-over) never seal an item twice or plan
two anchor txs for one batch; an existing file from before stores were versioned keeps its
data."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from aigent_trn import after_publish, chain
from aigent_trn.created import MIGRATIONS as TOKEN_MIGRATIONS
from aigent_trn.created import CreatedToken, CreatedTokens
from aigent_trn.receipt import check_receipt
from aigent_trn.store import MIGRATIONS, NAME, AnchorRaced, ProofStore

from aigent import Character, PluginContext, Secrets
from aigent.messages import Outgoing
from aigent.storage import FileStorage, Storage
from tests.fixtures.stores import Servers, pg, servers  # noqa: F401


def _ctx(storage: Storage, data_dir: Path) -> PluginContext:
    settings = {"batch_size": 3}
    return PluginContext(
        character=Character(name="Tester", settings={"trn": settings}),
        secrets=Secrets({}),
        data_dir=data_dir,
        storage=storage,
        plugin="trn",
        settings=settings,
    )


def _proofs(storage: Storage) -> ProofStore:
    return ProofStore(storage.open(NAME, MIGRATIONS))


def test_published_messages_and_a_planned_batch_are_there_for_the_next_server(
    servers: Servers,  # noqa: F811
    tmp_path: Path,
) -> None:
    first = servers()
    messages = [Outgoing(text=f"answer {i}", agent="Tester") for i in range(4)]
    for message in messages:  # the hook the agent calls: the third seals a batch of 3
        asyncio.run(after_publish(_ctx(first, tmp_path / "a"), message))
    store = _proofs(first)
    (batch,) = store.unanchored()
    store.plan(batch["id"], "0x" + "ab" * 32, "0xf00d")
    first.close()  # the server dies: the tx was signed and recorded, not yet known mined

    store = _proofs(servers())  # another server, another data directory
    (again,) = store.unanchored()
    assert again == {**batch, "planned_tx": "0x" + "ab" * 32, "planned_raw": "0xf00d"}
    assert again["size"] == 3 and store.queued() == 1
    assert sorted(store.message_ids(batch["id"])) == sorted(m.id for m in messages[:3])
    receipt = store.receipt(messages[1].id)
    assert receipt is not None and receipt["status"] == "sealed" and receipt["proof"]
    assert check_receipt(receipt, text="answer 1") == []
    assert store.find("Tester", "answer 2") == [messages[2].id]
    assert store.find("Tester", "answer") == [] and store.count_by_agent("Tester") == 4
    store.mark_anchored(batch["id"], "0x" + "ab" * 32, 7, 7672, "0x" + "11" * 20)
    stats = store.stats()
    assert stats["anchored_messages"] == 3 and type(stats["anchored_messages"]) is int
    assert stats["queued_messages"] == 1 and stats["anchored_batches"] == 1
    assert store.receipt(messages[0].id)["anchor"]["block_number"] == 7  # type: ignore[index]
    (listed,) = store.batches(5, [batch["id"]])
    assert listed["count"] == 3 and listed["status"] == "anchored"
    assert store.batches(5, []) == []


def test_two_servers_seal_at_once_and_no_item_lands_in_two_batches(
    servers: Servers,  # noqa: F811
) -> None:
    setup = _proofs(servers())
    for i in range(40):
        setup.enqueue(f"m{i:02}", bytes([i]) * 32, b'{"agent": "Tester", "content": "x"}')
    sealed: list[int] = []

    def server() -> None:
        store = _proofs(servers())  # its own connection, as each server has
        while (batch := store.seal(3)) is not None:
            sealed.append(batch)

    threads = [threading.Thread(target=server) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert setup.queued() == 0
    placed = [mid for batch in sealed for mid in setup.message_ids(batch)]
    assert sorted(placed) == [f"m{i:02}" for i in range(40)]  # each once
    assert sum(b["count"] for b in setup.batches(100)) == 40


def test_only_one_of_two_servers_may_plan_a_batch(servers: Servers) -> None:  # noqa: F811
    setup = _proofs(servers())
    setup.enqueue("m1", b"\x01" * 32, b'{"agent": "Tester", "content": "x"}')
    batch = setup.seal(10)
    assert batch is not None
    one, other = _proofs(servers()), _proofs(servers())
    seen = one.unanchored()[0]["planned_tx"]
    assert seen is None and other.unanchored()[0]["planned_tx"] is None
    one.plan(batch, "0x01", "0xraw1", replacing=seen)
    with pytest.raises(AnchorRaced, match="another process"):
        other.plan(batch, "0x02", "0xraw2", replacing=seen)  # it read the batch before
    assert setup.unanchored()[0]["planned_tx"] == "0x01"
    other.plan(batch, "0x03", "0xraw3", replacing="0x01")  # the stale tx, replaced knowingly
    setup.mark_anchored(batch, "0x03", 1, 7672, "0x" + "11" * 20)
    with pytest.raises(AnchorRaced):
        one.plan(batch, "0x04", None, replacing="0x03")  # anchored: never planned again


def test_a_refused_record_leaves_no_nonce_gap(anvil: dict[str, Any]) -> None:
    """A tx signed but not recorded (the store refused: the batch was raced, the database
    went away) is never sent, and the next tx from the key takes its nonce, not the one after."""
    w3 = chain.connect(anvil["url"], 7672)
    signer = chain.Signer(w3, anvil["keys"][6])
    before = w3.eth.get_transaction_count(signer.address)

    def refuse(tx_hash: str, raw: str) -> None:
        raise AnchorRaced("raced")

    to = "0x000000000000000000000000000000000000dEaD"
    with pytest.raises(AnchorRaced):
        signer.send_recorded({"to": to, "value": 1, "gas": 21_000}, refuse)
    receipt = signer.transact({"to": to, "value": 1, "gas": 21_000}, timeout=10)
    assert receipt["status"] == 1
    assert w3.eth.get_transaction_count(signer.address) == before + 1


def test_created_tokens_follow_the_agent(servers: Servers) -> None:  # noqa: F811
    first = servers()
    book = CreatedTokens(first.open("trn_tokens", TOKEN_MIGRATIONS))
    book.add(CreatedToken(7672, "AGC", "Agent Coin", "0x" + "aB" * 20, 18, 1.5))
    book.add(CreatedToken(7668, "AGC", "Mainnet Coin", "0x" + "cd" * 20, 6, 2.5))
    first.close()

    book = CreatedTokens(servers().open("trn_tokens", TOKEN_MIGRATIONS))
    book.load()
    found = book.get(7672, "agc")
    assert found == CreatedToken(7672, "AGC", "Agent Coin", "0x" + "aB" * 20, 18, 1.5)
    assert book.get(7672, "0x" + "AB" * 20) == found  # by address, any case
    assert [t.name for t in book.on(7668)] == ["Mainnet Coin"]
    assert book.get(7672, "OTHER") is None


LEGACY = """
CREATE TABLE items (
    message_id TEXT PRIMARY KEY, leaf TEXT NOT NULL, canonical TEXT NOT NULL,
    batch_id INTEGER, proof TEXT, queued_at REAL NOT NULL);
CREATE TABLE batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT, root TEXT NOT NULL, size INTEGER NOT NULL,
    status TEXT NOT NULL, planned_tx TEXT, tx_hash TEXT, block_number INTEGER,
    chain_id INTEGER, contract TEXT, sealed_at REAL NOT NULL);
INSERT INTO items VALUES ('m1', 'aa', '{"agent": "Old", "content": "hi"}', 1, '[]', 1.0);
INSERT INTO batches (root, size, status, planned_tx, sealed_at)
    VALUES ('aa', 1, 'sealed', '0xplanned', 1.0);
"""


@pytest.mark.parametrize(
    "columns", [(), ("planned_raw TEXT",), ("planned_raw TEXT", "anchored_at REAL")]
)
def test_a_proof_file_from_before_versioning_keeps_its_batches(
    tmp_path: Path, columns: tuple[str, ...]
) -> None:
    """Files written by each earlier release (the columns they had added) open as they are."""
    path = tmp_path / "trn_proofs.sqlite"
    db = sqlite3.connect(path)
    db.executescript(LEGACY + "".join(f"ALTER TABLE batches ADD COLUMN {c};" for c in columns))
    db.close()
    store = ProofStore(path)
    (batch,) = store.unanchored()
    assert batch["planned_tx"] == "0xplanned" and batch["planned_raw"] is None
    assert store.find("Old", "hi") == ["m1"]
    store.mark_anchored(batch["id"], "0xplanned", 3, 7672, "0x" + "11" * 20)
    assert store.stats()["last_anchor"]["block_number"] == 3
    store.enqueue("m2", b"\x02" * 32, b'{"agent": "Old", "content": "more"}')
    assert store.seal(5) == 2  # AUTOINCREMENT carries on from the old batches
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    tables = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    assert {name for (name,) in tables} >= {"trn_items", "trn_batches"}  # as in PostgreSQL
    assert not {name for (name,) in tables} & {"items", "batches"}


def test_a_token_file_from_before_versioning_keeps_its_tokens(tmp_path: Path) -> None:
    path = tmp_path / "trn_tokens.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE tokens (chain_id INTEGER NOT NULL, symbol TEXT NOT NULL, name TEXT NOT "
        "NULL, address TEXT NOT NULL, decimals INTEGER NOT NULL, created_at REAL NOT NULL, "
        "PRIMARY KEY (chain_id, symbol));"
        "INSERT INTO tokens VALUES (7672, 'OLD', 'Old Coin', '0xabc', 6, 1.0);"
    )
    db.close()
    book = CreatedTokens(FileStorage(tmp_path).open("trn_tokens", TOKEN_MIGRATIONS))
    assert book.get(7672, "OLD") == CreatedToken(7672, "OLD", "Old Coin", "0xabc", 6, 1.0)
    book.add(CreatedToken(7672, "NEW", "New Coin", "0xdef", 18, 2.0))
    book.close()
    again = CreatedTokens(FileStorage(tmp_path).open("trn_tokens", TOKEN_MIGRATIONS))
    assert [t.symbol for t in again.on(7672)] == ["OLD", "NEW"]
