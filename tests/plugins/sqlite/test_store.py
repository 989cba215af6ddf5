"""The default memory store, one SQLite file per agent: isolation, persistence, durability after
a SIGKILL, the partition cache, and opening in the background. What every store does (knowledge,
budget, embedder guard, CLI) is tested in tests/plugins/memory on this store too."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aigent import Agent, Exchange, Incoming, Reply
from tests.conftest import ROOT, SCRIPTED_MODEL


@pytest.fixture
def sqlite_character(write_character, tmp_path) -> Callable[..., Path]:  # type: ignore[no-untyped-def]
    def make(**fields: Any) -> Path:
        data: dict[str, Any] = {
            "name": "Keeper",
            "models": {"large": "scripted"},
            "plugins": [str(SCRIPTED_MODEL)],
            "data_dir": str(tmp_path / "data"),
            "connector": {"enabled": False},
            "memory": {"top_k": 3, **fields.pop("memory", {})},
            **fields,
        }
        return write_character(data)

    return make


def said(user: str, text: str, reply: str = "noted") -> Exchange:
    return Exchange(Incoming(text=text, user=user), Reply(text=reply, message_id="-"))


def open_store(path: Path) -> Any:
    agent = Agent.from_file(path)
    agent.assemble()
    assert type(agent.memory).__name__ == "SQLiteStore"  # the default, with chroma installed
    return agent.memory


async def test_a_user_never_recalls_another_users_messages(sqlite_character) -> None:
    store = open_store(sqlite_character())
    await store.remember(
        [
            said("ann", "my locker code is 4711"),
            said("bob", "my locker code is 1234"),
            said("ann", "I park on level three"),
        ],
        "Keeper",
    )
    for user, mine, theirs in (("ann", "4711", "1234"), ("bob", "1234", "4711")):
        found = await store.recall(Incoming(text="what is my locker code?", user=user), "Keeper")
        texts = " ".join(r.text for r in found)
        assert mine in texts and theirs not in texts
        assert {r.metadata.get("user") for r in found if "user" in r.metadata} == {user}
    await store.close()


async def test_memory_persists_across_a_restart_and_a_retry_stores_nothing_twice(
    sqlite_character,
) -> None:
    path = sqlite_character()
    store = open_store(path)
    batch = [said("ann", "the spare key is under the blue flowerpot")]
    await store.remember(batch, "Keeper")
    await store.remember(batch, "Keeper")  # a retried write
    await store.close()

    again = open_store(path)
    found = await again.recall(Incoming(text="where is the spare key?", user="ann"), "Keeper")
    assert [r.text for r in found].count("the spare key is under the blue flowerpot") == 1
    assert (await again.stats())["messages"] == 2  # the message and its reply, once
    await again.close()


async def test_a_cached_partition_sees_later_writes_and_the_cache_stays_small(
    sqlite_character,
) -> None:
    store = open_store(sqlite_character(settings={"sqlite": {"cache_mb": 0.001}}))
    await store.remember([said("ann", "the boat is called Heron")], "Keeper")
    question = Incoming(text="what is the boat called?", user="ann")
    assert any("Heron" in r.text for r in await store.recall(question, "Keeper"))
    await store.remember([said("ann", "we renamed the boat to Osprey")], "Keeper")
    assert any("Osprey" in r.text for r in await store.recall(question, "Keeper"))
    for user in ("bob", "cy", "dee"):
        await store.remember([said(user, f"{user} likes tea")], "Keeper")
        await store.recall(Incoming(text="tea", user=user), "Keeper")
    assert list(store._partitions) == [("Keeper", "dee")]  # over the budget: only the last kept
    assert any("Osprey" in r.text for r in await store.recall(question, "Keeper"))
    await store.close()


async def test_the_agent_is_ready_before_a_large_knowledge_base_is_ingested(
    sqlite_character, tmp_path
) -> None:
    paragraph = "Harbour pilots guide ships through narrow channels at night. "
    text = "".join(f"Note {i}. " + paragraph * 12 + "\n\n" for i in range(2500))
    (tmp_path / "big.md").write_text(text)  # about 1.8 MB, every chunk different
    (tmp_path / "fact.md").write_text("The harbour master is called Ingrid Solberg.")
    path = sqlite_character(knowledge=[{"path": "big.md"}, {"path": "fact.md"}])
    agent = Agent.from_file(path)
    started = time.perf_counter()
    await agent.start()
    ready_in = time.perf_counter() - started
    store: Any = agent.memory
    assert not store._ready.done(), "ingestion should still be running"
    reply = await agent.chat("who is the harbour master?", user="ann")  # waits for it
    ingested_in = time.perf_counter() - started
    await agent.stop()
    assert ready_in < ingested_in / 2, (ready_in, ingested_in)  # ingestion took the time
    from tests.fixtures import scripted_model  # noqa: F401

    prompt = (
        next(
            m for n, m in sys.modules.items() if "scripted_model" in n and getattr(m, "CALLS", None)
        )
        .CALLS[-1]["messages"][0]
        .content
    )
    assert "Ingrid Solberg" in prompt
    assert reply.text


TRAFFIC = """
import asyncio, json, sys, time
from aigent import Agent

async def main():
    agent = Agent.from_file(sys.argv[1])
    async with agent:
        for i in range(100000):
            await agent.chat(f"fact number {i} is remembered", user="ann")
            print(json.dumps([i, time.time()]), flush=True)
            await asyncio.sleep(0.005)

asyncio.run(main())
"""


@pytest.mark.slow
def test_a_sigkill_loses_at_most_one_flush_interval(sqlite_character, tmp_path) -> None:
    flush = 0.3
    path = sqlite_character(memory={"flush_seconds": flush})
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAFFIC, str(path)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    acknowledged: dict[int, float] = {}
    try:
        while len(acknowledged) < 150:  # several flushes' worth, in flight when killed
            line = proc.stdout.readline()
            assert line, "the agent stopped before the kill"
            i, at = json.loads(line)
            acknowledged[i] = at
        killed_at = time.time()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)

    db = tmp_path / "data" / "memory" / "memory.sqlite"
    with sqlite3.connect(db) as conn:
        stored = {
            int(text.split()[2])
            for (text,) in conn.execute("SELECT text FROM messages WHERE role = 'user'")
        }
    # Replies printed after their flush are not in `acknowledged`: at most those lines.
    assert stored <= set(acknowledged) | set(range(max(acknowledged) + 2))
    lost = set(acknowledged) - stored
    margin = 0.5  # the flush's own work (embedding, commit) on a busy 2-core machine
    assert all(acknowledged[i] > killed_at - flush - margin for i in lost), sorted(lost)
    assert len(stored) >= len(acknowledged) - 100
    print(f"\nacknowledged {len(acknowledged)}, lost {len(lost)} (flush every {flush}s)")
