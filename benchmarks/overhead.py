"""Framework overhead per message: `Agent.chat` against a bare HTTP call to the same server.

A model server on loopback (the OpenAI wire-format stand-in from the tests) answers at once.
We time N messages through `Agent.chat` (litellm plugin, memory off) and N bare HTTP calls to
the same endpoint, and report messages/s and per-stage p50/p95 from `reply.timings`:

- aigent's own overhead: `timings["overhead"]` (total minus time inside the model call);
- everything above the wire: agent end-to-end minus the bare HTTP call (includes litellm).

Run: uv run --all-packages python benchmarks/overhead.py [messages]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.openai_server import OpenAIServer  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def bare(url: str, n: int) -> list[float]:
    import httpx

    body = {"model": "stand-in", "messages": [{"role": "user", "content": "hi"}]}
    times = []
    async with httpx.AsyncClient() as client:
        for _ in range(n):
            t = time.perf_counter()
            r = await client.post(f"{url}/chat/completions", json=body,
                                  headers={"authorization": "Bearer sk-bench"})  # fmt: skip
            r.json()
            times.append((time.perf_counter() - t) * 1000)
    return times


async def through_agent(url: str, n: int) -> tuple[list[float], dict[str, list[float]]]:
    from aigent import Agent, Character

    character = Character.model_validate({
        "name": "Bench", "bio": ["answers fast"],
        "models": {"large": {"model": "openai/stand-in", "api_base": url}},
        "secrets": {"OPENAI_API_KEY": "sk-bench"}, "memory": {"enabled": False},
        "data_dir": tempfile.mkdtemp(),
    })  # fmt: skip
    stages: dict[str, list[float]] = {}
    totals = []
    async with Agent(character) as agent:
        for i in range(20):  # warm up: imports, connection pools
            await agent.chat(f"warm {i}", room=f"w{i}")
        for i in range(n):
            t = time.perf_counter()
            reply = await agent.chat(f"message {i}", room=f"r{i % 10}")
            totals.append((time.perf_counter() - t) * 1000)
            for stage, ms in reply.timings.items():
                stages.setdefault(stage, []).append(ms)
    return totals, stages


async def in_process(n: int) -> list[float]:
    """The same pipeline with a model that answers in-process: the framework alone."""
    from aigent import Agent, Character

    character = Character.model_validate({
        "name": "Bench", "bio": ["answers fast"], "models": {"large": "scripted"},
        "plugins": [str(ROOT / "tests" / "fixtures" / "scripted_model.py")],
        "memory": {"enabled": False}, "data_dir": tempfile.mkdtemp(),
    })  # fmt: skip
    overheads = []
    async with Agent(character) as agent:
        for i in range(n + 20):
            reply = await agent.chat(f"message {i}", room=f"r{i % 10}")
            overheads.append(reply.timings["total"])
    return overheads[20:]


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    server = OpenAIServer().start()
    try:
        await bare(server.url, 20)
        http = await bare(server.url, n)
        totals, stages = await through_agent(server.url, n)
    finally:
        server.stop()
    alone = await in_process(n)
    print(f"{n} messages, loopback model server answering at once\n")
    print(
        f"bare HTTP call      p50 {pct(http, 50):6.2f} ms  p95 {pct(http, 95):6.2f} ms  "
        f"{1000 / statistics.mean(http):7.1f} calls/s"
    )
    print(
        f"Agent.chat          p50 {pct(totals, 50):6.2f} ms  p95 {pct(totals, 95):6.2f} ms  "
        f"{1000 / statistics.mean(totals):7.1f} messages/s"
    )
    print("\nper stage (ms)       p50      p95")
    for stage, values in stages.items():
        print(f"  {stage:12s} {pct(values, 50):8.3f} {pct(values, 95):8.3f}")
    print(
        f"\nframework alone (in-process model): p50 {pct(alone, 50):.3f} ms, "
        f"p95 {pct(alone, 95):.3f} ms, {1000 / statistics.mean(alone):.0f} messages/s"
    )
    above = [t - pct(http, 50) for t in totals]
    print(
        f"\naigent's own overhead (timings.overhead): p50 {pct(stages['overhead'], 50):.2f} ms, "
        f"p95 {pct(stages['overhead'], 95):.2f} ms"
    )
    print(
        f"above the bare call (incl. litellm):      p50 {pct(above, 50):.2f} ms, "
        f"p95 {pct(above, 95):.2f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
