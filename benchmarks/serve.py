"""``aigent serve`` under load: what the HTTP door costs over calling the agent in-process.

One model for everything: the tests' OpenAI wire-format stand-in (``peers/model_server.py``),
answering at once, in a thread of this process. Agents are in aigent's default configuration:
memory on (the default store and embedder), connector on, the model ``openai/stand-in``.

- chat overhead: the same agent, the same messages, one at a time, the two ways taking turns
  message by message. In-process: ``Agent.chat`` in this process. Over HTTP:
  ``POST /api/agents/{name}/messages`` (operator token) to a server in its own process, from a
  blocking httpx client here. Overhead = HTTP percentile minus in-process
  percentile: routing, auth, JSON, the server's history write and events, loopback TCP and the
  client. A second figure without the noise of two separate calls: each HTTP call's time minus
  the agent's own ``timings.total`` in its reply (the same agent, in the server).
- the floor: ``GET /api/health`` one at a time, the same way: the httpx client, loopback TCP,
  uvicorn and the middleware, with no agent, auth or storage behind it.
- messages/s: N clients (asyncio tasks in this process, one keep-alive connection each), each
  sending its messages one after the other, spread across 10 agents (client i talks to agent
  i % 10 in a room of its own); messages / wall time. The clients and the model share these
  cores with the server, so this is a floor, not the server's ceiling; the server's CPU time
  per message (all its threads: agents, memory, HTTP) says what one core of it would carry.
- event latency: an SSE client on ``/api/events?kind=message.out``; for each of 50 messages,
  the time it read the event minus the time the server published it (same clock).
- RSS: VmRSS of a server process hosting 1, 10 and 100 idle agents (all running, none has
  answered yet), two seconds after the last one reported running. The model is not in it.

The server runs with its rate limit raised (a benchmark is one client sending hundreds of
requests a second); everything else is the default configuration.

Run: uv run --all-packages python benchmarks/serve.py [--messages 300] [--json]
A benchmark, not a test: targets are printed as PASS/MISS, never enforced.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peers.model_server import ModelServer  # noqa: E402

TOKEN = "bench-token"
WARMUP = 20
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
# The token comes in the environment, as with ``aigent serve``.
SERVER = """
import os, sys
from pathlib import Path
import uvicorn
from aigent_server.app import Settings, create_app
settings = Settings(
    data_dir=Path(sys.argv[1]), files=[Path(p) for p in sys.argv[3:]],
    token=os.environ["AIGENT_SERVE_TOKEN"], rate=1e6, burst=1_000_000,
)
uvicorn.run(create_app(settings), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
            timeout_graceful_shutdown=1)
"""

# figure -> (target, higher is better)
TARGETS: dict[str, tuple[float, bool]] = {
    "overhead p50 (ms)": (1.0, False),
    "RSS, 100 idle agents (MiB)": (1024.0, False),
}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def character(name: str, url: str) -> dict[str, Any]:
    return {
        "name": name,
        "bio": [f"{name} answers questions."],
        "models": {"large": {"model": "openai/stand-in", "api_base": url}},
        "secrets": {"OPENAI_API_KEY": "sk-bench"},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class Server:
    """``aigent serve``'s app in a process of its own, hosting ``count`` agents."""

    def __init__(self, root: Path, count: int, url: str) -> None:
        folder = root / f"chars-{count}"
        folder.mkdir()
        files = []
        for i in range(count):
            path = folder / f"agent{i}.json"
            path.write_text(json.dumps(character(f"Agent{i}", url)), encoding="utf-8")
            files.append(str(path))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (root / f"server-{count}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(root / f"data-{count}"), str(self.port), *files],
            stdout=self.log,
            stderr=self.log,
            cwd=root,
            env={**os.environ, "AIGENT_SERVE_TOKEN": TOKEN},
        )
        self.count = count

    def wait_running(self, timeout: float = 120.0) -> float:
        """Seconds until every agent runs."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}; see {self.log.name}")
            try:
                states = httpx.get(self.url + "/api/health", timeout=5).json()["agents"]
            except httpx.HTTPError:
                states = {}
            if states.get("failed"):
                raise RuntimeError(f"an agent failed to start; see {self.log.name}")
            if states.get("running") == self.count:
                return time.monotonic() - start
            time.sleep(0.1)
        raise RuntimeError(f"{self.count} agents not running after {timeout:.0f} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


async def paired(
    root: Path, url: str, server: Server, messages: int
) -> tuple[list[float], list[float], list[float]]:
    """In-process and over HTTP, one message each in turn, so that the machine's load (shared
    cores) weighs on both alike."""
    from aigent import Agent, Character

    data = {**character("Agent0", url), "data_dir": str(root / "inproc")}
    base: list[float] = []
    http: list[float] = []
    door: list[float] = []
    with httpx.Client(base_url=server.url, headers=HEADERS, timeout=30) as client:
        async with Agent(Character.model_validate(data)) as agent:
            for i in range(WARMUP + messages):
                start = time.perf_counter()
                await agent.chat(f"question {i}", user="bench", room="bench")
                middle = time.perf_counter()
                # Blocking on purpose: a sync client costs less per request than an async one.
                answer = client.post(  # noqa: ASYNC212
                    "/api/agents/Agent0/messages",
                    json={"text": f"question {i}", "user": "bench", "room": "bench"},
                )
                end = time.perf_counter()
                answer.raise_for_status()
                if i >= WARMUP:
                    base.append((middle - start) * 1000)
                    http.append((end - middle) * 1000)
                    door.append((end - middle) * 1000 - answer.json()["timings"]["total"])
    return base, http, door


def floor(server: Server, requests: int) -> list[float]:
    """``GET /api/health`` one at a time: what any request costs, client and TCP included."""
    times: list[float] = []
    with httpx.Client(base_url=server.url, headers=HEADERS, timeout=30) as client:
        for i in range(WARMUP + requests):
            start = time.perf_counter()
            client.get("/api/health").raise_for_status()
            if i >= WARMUP:
                times.append((time.perf_counter() - start) * 1000)
    return times


async def throughput(server: Server, clients: int, each: int) -> float:
    async def one(i: int, client: httpx.AsyncClient) -> None:
        for n in range(each):
            answer = await client.post(
                f"/api/agents/Agent{i % 10}/messages",
                json={"text": f"load {n}", "user": f"u{i}", "room": f"load-{clients}-{i}"},
            )
            answer.raise_for_status()

    limits = httpx.Limits(max_connections=clients + 5, max_keepalive_connections=clients + 5)
    async with httpx.AsyncClient(
        base_url=server.url, headers=HEADERS, timeout=60, limits=limits
    ) as client:
        start = time.perf_counter()
        await asyncio.gather(*(one(i, client) for i in range(clients)))
        return clients * each / (time.perf_counter() - start)


def event_latency(server: Server, count: int) -> list[float]:
    seen: dict[str, float] = {}
    ready = threading.Event()
    stop = threading.Event()

    def read() -> None:
        try:
            follow()
        except httpx.HTTPError:
            pass  # the server stopped under the reader: the figures are already in

    def follow() -> None:
        with httpx.Client(base_url=server.url, headers=HEADERS, timeout=None) as client:
            with client.stream("GET", "/api/events", params={"kind": "message.out"}) as stream:
                ready.set()
                for line in stream.iter_lines():
                    if line.startswith("data: "):
                        event = json.loads(line[6:])
                        if "sse-" in event.get("text", ""):
                            seen[event["text"]] = (time.time() - event["at"]) * 1000
                    if stop.is_set() and len(seen) >= count:
                        return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    ready.wait(10)
    with httpx.Client(base_url=server.url, headers=HEADERS, timeout=30) as client:
        for i in range(count):
            client.post("/api/agents/Agent1/messages", json={"text": f"sse-{i}", "room": "sse"})
    stop.set()
    deadline = time.monotonic() + 10
    while len(seen) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return list(seen.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, float] = {}
    model = ModelServer().start()
    root = Path(tempfile.mkdtemp(prefix="aigent-serve-bench-"))
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    try:
        for count in (1, 100, 10):  # the 10-agent server stays up for the load figures
            server = Server(root, count, model.url)
            try:
                results[f"start, {count} agents (s)"] = server.wait_running()
                time.sleep(2)
                results[f"RSS, {count} idle agents (MiB)"] = rss_mib(server.proc.pid)
                if count != 10:
                    continue
                base, http, door = asyncio.run(paired(root, model.url, server, args.messages))
                results["HTTP minus the agent's own total, p50 (ms)"] = pct(door, 50)
                results["GET /api/health p50 (ms)"] = pct(floor(server, args.messages), 50)
                for p in (50, 95):
                    results[f"in-process p{p} (ms)"] = pct(base, p)
                    results[f"HTTP p{p} (ms)"] = pct(http, p)
                    results[f"overhead p{p} (ms)"] = pct(http, p) - pct(base, p)
                for clients, each in ((10, 30), (100, 5)):
                    cpu = cpu_seconds(server.proc.pid)
                    rate = asyncio.run(throughput(server, clients, each))
                    used = cpu_seconds(server.proc.pid) - cpu
                    results[f"messages/s, {clients} clients / 10 agents"] = rate
                    results[f"server CPU per message, {clients} clients (ms)"] = (
                        used * 1000 / (clients * each)
                    )
                latency = event_latency(server, 50)
                results["event latency p50 (ms)"] = pct(latency, 50)
                results["event latency p95 (ms)"] = pct(latency, 95)
                results[f"RSS, 10 agents after {WARMUP + args.messages + 850} msgs (MiB)"] = (
                    rss_mib(server.proc.pid)
                )
            finally:
                server.stop()
    except BaseException:
        print(f"failed; the servers' logs are in {root}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(root, ignore_errors=True)
    finally:
        model.stop()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, value in results.items():
        verdict = ""
        if name in TARGETS:
            target, higher = TARGETS[name]
            ok = value >= target if higher else value <= target
            verdict = f"  target {'>=' if higher else '<='} {target:g}: {'PASS' if ok else 'MISS'}"
        print(f"{name:45s} {value:10.2f}{verdict}")


if __name__ == "__main__":
    main()
