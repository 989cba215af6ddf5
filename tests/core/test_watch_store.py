"""The watched-data store (aigent.watch) in the agent's store ``watch``, on SQLite and on the
database a fleet shares: what one server watched is there for the next, the last values a
watcher saw follow the agent (its old JSON file imported once), and the size budget holds."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from aigent.storage import StorageError
from aigent.watch import MIGRATIONS, LastSeen, Observation, WatchConfig, WatchService, WatchStore
from tests.fixtures.stores import Servers, pg, servers  # noqa: F401

T = 1_700_000_000.0


class Feed:
    """A watcher that returns what it is given, every poll (the store keeps each once)."""

    name = "feed"

    def __init__(self, items: list[Observation]) -> None:
        self.items = items

    async def poll(self, since: float | None) -> list[Observation]:
        return list(self.items)


def seen(i: int, at: float = T) -> Observation:
    return Observation("feed", f"item-{i}", at + i, f"item {i}", {"kind": "item", "n": i})


async def test_what_one_server_watched_is_there_for_the_next(servers: Servers) -> None:  # noqa: F811
    config = WatchConfig(retention="3650d")
    one = servers()
    service = WatchService([Feed([seen(1), seen(2)])], config, WatchStore.where(one))
    assert await service.poll_once() == 2
    await service.stop()
    one.close()  # type: ignore[attr-defined]

    two = servers()
    again = WatchService([Feed([seen(1), seen(2), seen(3)])], config, WatchStore.where(two))
    assert await again.poll_once() == 1  # only the new one
    await again.stop()
    store = WatchStore(WatchStore.where(two))
    assert [o.id for o in store.items()] == ["item-1", "item-2", "item-3"]
    assert store.items()[0].data == {"kind": "item", "n": 1}
    assert store.latest("feed") == T + 3 and store.latest("other") is None


def test_the_size_budget_keeps_the_newest(servers: Servers) -> None:  # noqa: F811
    store = WatchStore(servers().open("watch", MIGRATIONS))
    assert store.add([seen(i) for i in range(10)]) == 10
    assert store.add([seen(3)]) == 0
    assert store.prune(retention=5 * 86400, max_items=4, now=T + 86400) == 6
    assert [o.id for o in store.items()] == [f"item-{i}" for i in range(6, 10)]
    assert store.prune(retention=60, max_items=100, now=T + 3600) == 4  # all too old
    assert store.count() == 0


async def test_the_last_values_follow_the_agent(servers: Servers, tmp_path: Path) -> None:  # noqa: F811
    memo = tmp_path / "xrpl-watched.json"
    one = servers()
    last = LastSeen("xrpl", memo, one)
    await last.load()
    first = last.observe("balance:rA:XRP", Decimal("10"), T, "rA holds 10 XRP", "balance")
    assert first is not None and first.data["kind"] == "balance"
    await last.save()
    one.close()  # type: ignore[attr-defined]

    again = LastSeen("xrpl", memo, servers())
    await again.load()
    assert again.observe("balance:rA:XRP", Decimal("10"), T + 1, "rA holds 10 XRP", "x") is None
    moved = again.observe("balance:rA:XRP", Decimal("12.5"), T + 2, "rA holds 12.5 XRP", "x")
    assert moved is not None and moved.data["change"] == 2.5
    assert not memo.exists()  # nothing written beside the store


async def test_a_last_values_file_from_before_is_imported_once(
    servers: Servers,  # noqa: F811
    tmp_path: Path,
) -> None:
    memo = tmp_path / "trn-watched.json"
    memo.write_text(json.dumps({"balance:0xA:ROOT": "5.25"}))
    storage = servers()
    last = LastSeen("trn", memo, storage)
    await last.load()
    assert last.observe("balance:0xA:ROOT", Decimal("5.25"), T, "t", "balance") is None
    assert last.observe("balance:0xA:ROOT", Decimal("6"), T, "t", "balance") is not None
    await last.save()

    memo.write_text(json.dumps({"balance:0xA:ROOT": "1"}))  # stale: the store has moved on
    again = LastSeen("trn", memo, servers())
    await again.load()
    assert again.observe("balance:0xA:ROOT", Decimal("6"), T, "t", "balance") is None
    other = LastSeen("xrpl", memo, storage)  # another source has nothing of its own
    await other.load()
    assert other.observe("balance:0xA:ROOT", Decimal("1"), T, "t", "balance") is None


def test_a_watch_file_from_before_versions_opens_with_its_items(tmp_path: Path) -> None:
    path = WatchStore.path_in(tmp_path)
    old = sqlite3.connect(path)
    with old:
        old.execute(
            "CREATE TABLE observations (source TEXT NOT NULL, id TEXT NOT NULL, "
            "time REAL NOT NULL, text TEXT NOT NULL, data TEXT NOT NULL, "
            "PRIMARY KEY (source, id))"
        )
        old.execute("INSERT INTO observations VALUES ('feed', 'old', ?, 'old', '{}')", (T,))
    old.close()
    store = WatchStore(path)
    assert [o.id for o in store.items()] == ["old"]
    assert store.add([seen(1)]) == 1
    store.close()


async def test_a_watch_store_newer_than_the_code_stops_the_service_at_start(
    servers: Servers,  # noqa: F811
) -> None:
    storage = servers()
    storage.open("watch", (*MIGRATIONS, "CREATE TABLE watch_later (x TEXT)")).execute("SELECT 1")
    service = WatchService([Feed([])], WatchConfig(), WatchStore.where(storage))
    with pytest.raises(StorageError, match=r"version 3, newer than this aigent knows \(2\)"):
        await service.start()


def test_a_round_larger_than_a_batch_counts_each_item_once(servers: Servers) -> None:  # noqa: F811
    """Items go in by batches: every one is stored, the new ones counted, repeats (within a
    round or from an earlier one) kept once."""
    store = WatchStore(servers().open("watch", MIGRATIONS))
    first = [seen(i) for i in range(1_201)] + [seen(7), seen(900)]  # two repeated in the round
    assert store.add(first) == 1_201
    assert store.add([seen(i) for i in range(1_195, 1_210)]) == 9
    found = store.items()
    assert len(found) == 1_210 and len({o.id for o in found}) == 1_210
