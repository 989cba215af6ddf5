"""Memory written behind the reply (aigent/memory.py), and which store an agent uses."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import pytest

from aigent import Agent, Exchange, Incoming, PluginContext, Recalled, Reply, hookimpl
from aigent.memory import WriteBehind, choose_store
from aigent.plugins import Registered


class ListStore:
    """A store that keeps batches in a list; it can be slow, or fail its first writes."""

    def __init__(self, delay: float = 0.0, failures: int = 0) -> None:
        self.batches: list[list[Exchange]] = []
        self.delay = delay
        self.failures = failures
        self.closed = False

    async def remember(self, exchanges: Sequence[Exchange], agent: str) -> None:
        await asyncio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise OSError("disk full")
        self.batches.append(list(exchanges))

    async def recall(self, message: Incoming, agent: str) -> list[Recalled]:
        return []

    async def close(self) -> None:
        self.closed = True

    @property
    def texts(self) -> list[str]:
        return [e.message.text for batch in self.batches for e in batch]


def exchange(i: int) -> Exchange:
    return Exchange(Incoming(text=f"m{i}"), Reply(text=f"r{i}", message_id=str(i)))


async def test_a_full_batch_is_written_at_once_and_the_rest_after_the_interval() -> None:
    store = ListStore()
    writes = WriteBehind(store, "a", flush_seconds=0.5, flush_batch=3)
    writes.start()
    for i in range(3):
        writes.put(exchange(i))
    await asyncio.sleep(0.1)
    assert store.texts == ["m0", "m1", "m2"]  # a batch was waiting: not held for the interval
    writes.put(exchange(3))
    await asyncio.sleep(0.1)
    assert writes.queued == 1
    await asyncio.sleep(0.6)
    assert store.texts == ["m0", "m1", "m2", "m3"]
    assert [len(b) for b in store.batches] == [3, 1]
    await writes.stop()


async def test_nothing_is_written_before_the_interval_unless_a_batch_waits() -> None:
    store = ListStore()
    writes = WriteBehind(store, "a", flush_seconds=0.3, flush_batch=100)
    writes.start()
    writes.put(exchange(0))
    await asyncio.sleep(0.1)
    assert store.batches == []
    await asyncio.sleep(0.4)
    assert store.texts == ["m0"]
    await writes.stop()


async def test_a_clean_stop_writes_everything_queued_in_batches() -> None:
    store = ListStore(delay=0.05)
    writes = WriteBehind(store, "a", flush_seconds=60, flush_batch=4)
    writes.start()
    for i in range(10):
        writes.put(exchange(i))
    await writes.stop()
    assert store.texts == [f"m{i}" for i in range(10)]
    assert [len(b) for b in store.batches] == [4, 4, 2]


async def test_a_write_that_fails_once_is_retried_and_nothing_is_lost(caplog) -> None:
    store = ListStore(failures=1)
    writes = WriteBehind(store, "a", flush_seconds=60, flush_batch=64)
    writes.start()
    writes.put(exchange(0))
    writes.put(exchange(1))
    await writes.stop()
    assert store.texts == ["m0", "m1"]
    assert writes.dropped == 0
    assert "retrying once" in caplog.text


async def test_a_write_that_fails_twice_is_dropped_counted_and_logged(caplog) -> None:
    store = ListStore(failures=2)
    writes = WriteBehind(store, "a", flush_seconds=60, flush_batch=64)
    writes.start()
    for i in range(3):
        writes.put(exchange(i))
    with caplog.at_level(logging.ERROR):
        await writes.stop()
    assert store.texts == []
    assert writes.dropped == 3
    assert "3 exchanges not remembered" in caplog.text
    writes.start()  # and the next exchanges are written again
    writes.put(exchange(9))
    await writes.stop()
    assert store.texts == ["m9"]


class StorePlugin:
    def __init__(self, store: ListStore) -> None:
        self.store = store

    @hookimpl
    def register_memory_stores(self, register: Any) -> None:
        register("list", lambda ctx, embedder: self.store)


async def test_the_reply_does_not_wait_for_memory_and_a_stop_drains_it(
    scripted_character,
) -> None:
    store = ListStore(delay=0.5)  # a slow store
    path = scripted_character(
        connector={"enabled": False},
        memory={"store": "list", "flush_seconds": 0.05},
    )
    agent = Agent.from_file(path, plugins=[StorePlugin(store)])
    async with agent:
        started = time.perf_counter()
        replies = [await agent.chat(f"hello {i}", user="ann") for i in range(3)]
        elapsed = time.perf_counter() - started
        assert elapsed < 0.4, elapsed  # three replies faster than one write
        assert all(r.timings["memory"] < 5 for r in replies)
    assert store.texts == ["hello 0", "hello 1", "hello 2"]
    assert [e.reply.text for b in store.batches for e in b] == [r.text for r in replies]
    assert store.closed


def reg(plugin: str, accepts: bool | None) -> Registered:
    class Factory:
        def __call__(self, ctx: PluginContext, embedder: object) -> None:
            return None

    factory = Factory()
    if accepts is not None:
        factory.accepts = lambda ctx: accepts  # type: ignore[attr-defined]
    return Registered(plugin, plugin, factory)


@pytest.mark.parametrize(
    ("stores", "expected"),
    [
        ({"server": False, "file": None}, "file"),  # the first that accepts
        ({"server": True, "file": None}, "server"),
        ({"server": False, "other": False}, "server"),  # none accepts: the first
        ({}, None),
    ],
)
def test_which_store_is_used_when_the_character_names_none(
    stores: dict[str, bool | None], expected: str | None, scripted_character
) -> None:
    agent = Agent.from_file(scripted_character())
    registered = {name: reg(name, accepts) for name, accepts in stores.items()}
    assert choose_store(registered, agent.ctx) == expected
