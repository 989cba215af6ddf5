"""Memory: recall latency at 10k and 100k stored items, and ingest throughput, with the default
(hashing) embedder and with a trivial one, so storage and embedding costs are seen apart.

Run: uv run --all-packages python benchmarks/memory.py [sizes, e.g. 10000,100000]
Embedded Chroma (PersistentClient) in a temporary directory; queries are 200 sentences.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from aigent import Agent, Character, Incoming, hookimpl

WORDS = (
    "agent ledger packet payment channel claim memory knowledge token price message route peer "
    "balance settle anchor proof chain block model reply user room fact cat teal harbour lisbon "
    "refund invoice backup shipping password plan premium support office conference gift card"
).split()


class Trivial:
    """Random unit-ish vectors: no embedding work, so what remains is Chroma's own cost."""

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


async def run(embedder: str, sizes: list[int]) -> None:
    character = Character.model_validate({
        "name": f"bench-{embedder}",
        "memory": {"embedder": embedder, "top_k": 5}, "data_dir": tempfile.mkdtemp(),
    })  # fmt: skip
    agent = Agent(character)
    agent.plugins.add(TrivialPlugin(), "trivial-embedder")
    agent.plugins.load_installed()
    store: Any = agent._resolve_memory()  # memory alone: no model is needed here
    rng = random.Random(7)
    stored = 0
    for size in sizes:
        started = time.perf_counter()
        new = size - stored
        while stored < size:
            n = min(500, size - stored)
            texts = [sentence(rng) for _ in range(n)]
            ids = [f"m{stored + i}" for i in range(n)]
            meta = [{"agent": character.name, "user": f"u{(stored + i) % 50}", "room": "r",
                     "role": "user", "at": float(stored + i)} for i in range(n)]  # fmt: skip
            await asyncio.to_thread(store.add_chunks, store.messages, ids, texts, meta)
            stored += n
        rate = new / (time.perf_counter() - started)
        latencies = []
        for i in range(200):
            query = Incoming(text=sentence(rng), user=f"u{i % 50}")
            t = time.perf_counter()
            await store.recall(query, character.name)
            latencies.append((time.perf_counter() - t) * 1000)
        print(
            f"{embedder:8s} {size:>7,} items  recall p50 {pct(latencies, 50):6.2f} ms  "
            f"p95 {pct(latencies, 95):6.2f} ms   ingest {rate:7.0f} items/s"
        )


async def main() -> None:
    sizes = [int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "10000,100000").split(",")]
    for embedder in ("hashing", "trivial"):
        await run(embedder, sizes)


if __name__ == "__main__":
    asyncio.run(main())
