"""Memory: recall latency at 10k and 100k stored items, ingest throughput and resident memory,
for each store (the embedded SQLite default, embedded Chroma), with the default (hashing)
embedder and with a trivial one, so storage and embedding costs are seen apart.

Run: uv run --all-packages python benchmarks/memory.py [sizes] [stores] [embedders] [users]
e.g. ``benchmarks/memory.py 10000,100000 sqlite,chroma hashing,trivial 50,1``.
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
    store: Any = agent._resolve_memory()  # memory alone: no model is needed here
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


def main() -> None:
    args = sys.argv[1:]
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
