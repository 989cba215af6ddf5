"""The loop every benchmark driver runs, whatever it drives (standard library only: it is
imported by drivers in aigent's environment and in elizaOS's own venv).

A driver is one process. It builds its agent through the framework's public API, then reports
``ready`` (with its setup) and, after answering one message, ``first_reply``: milliseconds since
the parent spawned it (``BENCH_SPAWNED_AT``, the parent's wall clock just before the spawn, so
interpreter start and imports count) and VmRSS from ``/proc/self/status``. Then it serves
commands, one JSON line each on stdin, answering one JSON line each on stdout:

- ``{"cmd": "chat", "n": N, "in_flight": K}``: N messages, K at a time, each worker its own user
  and room; each call is timed here, call -> answer, in-process. Answers ``latencies_ms``,
  ``seconds`` (wall time of the whole batch), ``served``, ``rss_kib`` and ``stages_ms`` (the
  framework's own per-stage timings, where it reports them).
- ``{"cmd": "status"}``: ``served``, ``rss_kib`` and ``rss_after_kib`` (VmRSS taken right after
  the message that made ``served`` reach ``BENCH_RSS_AFTER``, 1,000 unless told).
- ``{"cmd": "quit"}``.

Frameworks print to stdout (elizaOS logs there), so the protocol gets a private copy of the
original stdout and fd 1 is pointed at stderr before the framework is imported.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import IO, Any

Chat = Callable[[str, str, str], Awaitable[tuple[str, dict[str, float]]]]
"""``chat(text, user, room) -> (reply text, the framework's own stage timings in ms or {})``:
one message through the framework."""


def claim_stdout() -> IO[str]:
    """The protocol's channel; anything else written to stdout goes to stderr from now on."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(2, 1)
    return channel


def since_spawn_ms() -> float:
    return (time.time() - float(os.environ["BENCH_SPAWNED_AT"])) * 1000


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status (the benchmark needs Linux)")


class Driver:
    def __init__(self, channel: IO[str], chat: Chat) -> None:
        self.channel = channel
        self.chat = chat
        self.served = 0
        self.rss_after = int(os.environ.get("BENCH_RSS_AFTER", "1000"))
        self.rss_after_kib: int | None = None

    def send(self, **fields: Any) -> None:
        self.channel.write(json.dumps(fields) + "\n")

    async def one(
        self, text: str, user: str, room: str, stages: dict[str, list[float]] | None = None
    ) -> float:
        start = time.perf_counter()
        answer, timings = await self.chat(text, user, room)
        elapsed = (time.perf_counter() - start) * 1000
        if not answer:
            raise RuntimeError(f"empty reply to {text!r}: the framework did not answer")
        self.served += 1
        if self.served == self.rss_after:
            self.rss_after_kib = rss_kib()
        if stages is not None:
            for stage, ms in timings.items():
                stages.setdefault(stage, []).append(ms)
        return elapsed

    async def batch(
        self, n: int, in_flight: int
    ) -> tuple[list[float], float, dict[str, list[float]]]:
        latencies: list[float] = []
        stages: dict[str, list[float]] = {}

        async def worker(w: int, count: int) -> None:
            for i in range(count):
                text = f"message {i} from worker {w}"
                latencies.append(await self.one(text, f"u{w}", f"r{w}", stages))

        shares = [n // in_flight + (1 if w < n % in_flight else 0) for w in range(in_flight)]
        start = time.perf_counter()
        await asyncio.gather(*(worker(w, count) for w, count in enumerate(shares) if count))
        return latencies, time.perf_counter() - start, stages

    async def serve(self, ready_ms: float, ready_rss: int, setup: dict[str, str]) -> None:
        """``setup``: what the agent was built with, as the framework reports it (printed with
        the results, so a changed default shows)."""
        self.send(event="ready", ms=ready_ms, rss_kib=ready_rss, setup=setup)
        await self.one("hello", "u0", "r0")
        self.send(event="first_reply", ms=since_spawn_ms(), rss_kib=rss_kib())
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                return
            command = json.loads(line)
            if command["cmd"] == "quit":
                return
            if command["cmd"] == "chat":
                latencies, seconds, stages = await self.batch(command["n"], command["in_flight"])
                self.send(latencies_ms=latencies, seconds=seconds, served=self.served,
                          rss_kib=rss_kib(), stages_ms=stages)  # fmt: skip
            elif command["cmd"] == "status":
                self.send(served=self.served, rss_kib=rss_kib(), rss_after_kib=self.rss_after_kib)
            else:
                raise ValueError(f"unknown command {command['cmd']!r}")
