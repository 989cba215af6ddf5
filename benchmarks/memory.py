"""Memory: recall latency at 10k and 100k stored items, ingest throughput and resident memory,
for each store (the embedded SQLite default, embedded Chroma), with the default (hashing)
embedder and with a trivial one, so storage and embedding costs are seen apart.

Run: uv run --all-packages python benchmarks/memory.py [sizes] [stores] [embedders] [users]
e.g. ``benchmarks/memory.py 10000,100000 sqlite,chroma hashing,trivial 50,1``.
``benchmarks/memory.py --agent [store,...]`` (``off``: memory off): one agent, from process
start: time to ready, RSS at ready and after 1,000 messages, and aigent's overhead per message
(``timings["overhead"]``) with an in-process model, so that only the framework is measured.
Each (store, embedder, users) runs in its own process, so one store's imports do not count
against another's RSS. Items are messages and replies written through ``remember`` (the write-
behind path), spread evenly over ``users`` users; recall = one query over that user's messages
and the knowledge, 200 queries from users picked in turn.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from aigent import Agent, Character, Exchange, Incoming, Reply, hookimpl
from aigent.assembly import open_memory

WORDS = (
    "agent ledger packet payment channel claim memory knowledge token price message route peer "
    "balance settle anchor proof chain block model reply user room fact cat teal harbour lisbon "
    "refund invoice backup shipping password plan premium support office conference gift card"
).split()


class Trivial:
    """Random unit-ish vectors: no embedding work, so what remains is the store's own cost."""

    name = "trivial-512"
    dimension = 512

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[random.random() for _ in range(self.dimension)] for _ in texts]


class TrivialPlugin:
    @hookimpl
    def register_embedders(self, register: Any) -> None:
        register("trivial", lambda ctx: Trivial())


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))) + "."


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


async def run(store_name: str, embedder: str, sizes: list[int], users: int) -> None:
    character = Character.model_validate({
        "name": f"bench-{embedder}", "connector": {"enabled": False},
        "memory": {"store": store_name, "embedder": embedder, "top_k": 5},
        "data_dir": tempfile.mkdtemp(),
    })  # fmt: skip
    agent = Agent(character)
    agent.plugins.add(TrivialPlugin(), "trivial-embedder")
    agent.plugins.load_installed()
    store: Any = open_memory(agent)  # memory alone: no model is needed here
    if hasattr(store, "ready"):
        await store.ready()
    rng = random.Random(7)
    stored = 0
    for size in sizes:
        started = time.perf_counter()
        new = size - stored
        while stored < size:
            n = min(250, (size - stored) // 2)  # an exchange is two items
            batch = [
                Exchange(
                    Incoming(text=sentence(rng), user=f"u{(stored // 2 + i) % users}"),
                    Reply(text=sentence(rng), message_id="-"),
                )
                for i in range(n)
            ]
            await store.remember(batch, character.name)
            stored += 2 * n
        rate = new / (time.perf_counter() - started)
        latencies = []
        for i in range(200):
            query = Incoming(text=sentence(rng), user=f"u{i % users}")
            t = time.perf_counter()
            await store.recall(query, character.name)
            latencies.append((time.perf_counter() - t) * 1000)
        print(
            f"{store_name:7s} {embedder:8s} {size:>7,} items {users:>3} users  "
            f"recall p50 {pct(latencies, 50):6.2f} ms  p95 {pct(latencies, 95):6.2f} ms  "
            f"ingest {rate:6.0f} items/s  RSS {rss_mib():5.0f} MiB",
            flush=True,
        )
    await store.close()


AGENT = """
import time
started = time.perf_counter()
import asyncio, sys, tempfile
sys.path.insert(0, ROOT)
from benchmarks.memory import pct, rss_mib
from aigent import Agent, Character

async def main():
    character = Character.model_validate({
        "name": "Bench", "bio": ["answers fast"], "models": {"large": "scripted"},
        "plugins": [ROOT + "/tests/fixtures/scripted_model.py"],
        "memory": {"store": STORE} if STORE != "off" else {"enabled": False},
        "data_dir": tempfile.mkdtemp(),
    })
    agent = Agent(character)
    await agent.start()
    ready = time.perf_counter() - started
    print(f"{STORE}: ready {ready * 1000:.0f} ms after process start, RSS {rss_mib():.0f} MiB")
    reply = await agent.chat("hello, my name is Ann", user="ann")
    first = time.perf_counter() - started
    print(f"  first reply {first * 1000:.0f} ms after process start, RSS {rss_mib():.0f} MiB")
    overheads, totals = [], []
    for i in range(1000):
        t = time.perf_counter()
        reply = await agent.chat(f"message {i} about the harbour and the boats", user=f"u{i % 10}")
        totals.append((time.perf_counter() - t) * 1000)
        overheads.append(reply.timings["overhead"])
    await agent.stop()
    print(f"  1,000 messages: overhead p50 {pct(overheads, 50):.2f} ms p95 "
          f"{pct(overheads, 95):.2f} ms (chat p50 {pct(totals, 50):.2f} ms), "
          f"RSS {rss_mib():.0f} MiB")

asyncio.run(main())
"""


def agent_run(store: str) -> None:
    import pathlib

    root = str(pathlib.Path(__file__).resolve().parent.parent)
    code = AGENT.replace("ROOT", repr(root)).replace("STORE", repr(store))
    subprocess.run([sys.executable, "-c", code], check=True)


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "--agent":
        for store in (args[1] if len(args) > 1 else "sqlite").split(","):
            agent_run(store)
        return
    if args and args[0] == "--one":
        store, embedder, sizes, users = args[1:5]
        asyncio.run(run(store, embedder, [int(s) for s in sizes.split(",")], int(users)))
        return
    sizes = args[0] if len(args) > 0 else "10000,100000"
    stores = (args[1] if len(args) > 1 else "sqlite,chroma").split(",")
    embedders = (args[2] if len(args) > 2 else "hashing,trivial").split(",")
    spreads = (args[3] if len(args) > 3 else "50").split(",")
    for store in stores:
        for embedder in embedders:
            for users in spreads:
                one = [sys.executable, __file__, "--one", store, embedder, sizes, users]
                subprocess.run(one, check=True)


if __name__ == "__main__":
    main()
