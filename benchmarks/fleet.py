"""Several ``aigent serve`` processes on one PostgreSQL: failover, throughput, and what the
database costs on the message path.

Everything runs on this machine: a throwaway PostgreSQL (tests/connector/postgres_server.py,
Debian's server binaries), the OpenAI wire-format stand-in answering at once
(``peers/model_server.py``), and N agents (default 10) from character files, in aigent's default
configuration (memory and connector on). Each server is ``aigent serve``'s app in its own
process with the rate limit raised (a benchmark is one client sending hundreds of requests a
second); the fleet's servers share one schema.

- chat latency, PostgreSQL against SQLite: one server on SQLite and one on PostgreSQL, each
  running all N agents; the same messages, one at a time, the two taking turns message by
  message so that the machine's load weighs on both alike. Timed call -> answer from a
  blocking httpx client here: the server's history write (and the agent's ledger and spending
  records, in the database's schema for that agent) are in it.
- paid message, PostgreSQL against SQLite: a selling agent on each of those two servers
  (price 1,000 drops), and a buyer here (an aigent ``Agent`` in this process, the seller's
  child over BTP) asking it, the two buyers taking turns. Timed ``buyer.ask()`` call -> answer:
  SPSP, the STREAM payment through both connectors, the seller's model call, and the seller's
  ledger, spending-free earnings record and history (in SQLite or in PostgreSQL) are in it; the
  buyer's own side (its SQLite ledger and spending records) is the same for both.
- messages/s, two servers against one: C clients (asyncio tasks here, one keep-alive
  connection each) spread across the N agents. First the PostgreSQL server alone with all N;
  then a second joins, the agents split between the two by lease, and each client sends to the
  server that runs its agent (``/api/agents`` says which). The clients, the model and both
  servers share this machine's cores, so on two cores this shows what the lease machinery
  costs more than what a second machine would add.
- failover: the server holding the most agents is SIGKILLed; the time until every agent is
  running on the survivor, against the target of two lease periods (``--lease-seconds``).

Run: uv run --all-packages python benchmarks/fleet.py [--agents 10] [--messages 200] [--json]
A benchmark, not a test: targets are printed as PASS/MISS, never enforced.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # for tests/connector/postgres_server.py

from peers.model_server import ModelServer  # noqa: E402
from serve import HEADERS, TOKEN, WARMUP, character, free_port, pct  # noqa: E402

from tests.connector.postgres_server import throwaway_postgres  # noqa: E402

SCHEMA = "bench"
# The URL (a secret) comes in the environment, as with ``aigent serve``.
SERVER = """
import os, sys
from pathlib import Path
import uvicorn
from aigent_server.app import Settings, create_app
port = int(sys.argv[2])
settings = Settings(
    data_dir=Path(sys.argv[1]), files=[Path(p) for p in sys.argv[4:]],
    token=os.environ["AIGENT_SERVE_TOKEN"], rate=1e6, burst=1_000_000,
    database_url=os.environ.get("AIGENT_SERVE_DATABASE_URL") or None,
    database_schema=os.environ.get("AIGENT_BENCH_SCHEMA", "aigent"),
    lease_seconds=float(sys.argv[3]), server_name=f"127.0.0.1:{port}",
)
uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
            timeout_graceful_shutdown=1)
"""


PRICE = 1000
BTP_TOKEN = "bench-buyer-btp"


def seller(name: str, url: str) -> tuple[dict[str, Any], int, int]:
    """A selling agent's character, and its BTP and SPSP ports."""
    btp, spsp = free_port(), free_port()
    data = character(name, url)
    data["price"] = {"amount": PRICE, "asset_code": "XRP", "asset_scale": 6}
    data["secrets"]["BUYER_BTP_TOKEN"] = BTP_TOKEN
    data["connector"] = {
        "node_id": name.lower(), "address": f"test.{name.lower()}",
        "listen": {"port": btp}, "spsp": {"port": spsp},
        "peers": {"buyer": {"relation": "child", "token_env": "BUYER_BTP_TOKEN",
                            "max_balance": 10**12}},
    }  # fmt: skip
    return data, btp, spsp


def buyer(root: Path, label: str, btp: int) -> Any:
    """An agent in this process that pays a seller on the server (its child over BTP)."""
    from aigent import Agent, Character

    data = {
        "name": f"Buyer{label}",
        "models": {"large": {"model": "openai/stand-in", "api_base": "http://127.0.0.1:9"}},
        "memory": {"enabled": False},
        "secrets": {"BUYER_BTP_TOKEN": BTP_TOKEN},
        "spending": {"XRP": {"max_per_payment": 10 * PRICE, "per_day": 10**12}},
        "connector": {"node_id": "buyer", "parent": "seller", "peers": {"seller": {
            "relation": "parent", "url": f"ws://127.0.0.1:{btp}", "username": "buyer",
            "token_env": "BUYER_BTP_TOKEN"}}},
    }  # fmt: skip
    return Agent(Character.model_validate(data), data_dir=root / f"buyer-{label}")


async def paid(buyers: list[tuple[Any, str]], messages: int) -> list[list[float]]:
    """Each paid question to each seller in turn; milliseconds per seller."""
    times: list[list[float]] = [[] for _ in buyers]
    for agent, _ in buyers:
        await agent.start()
    try:
        for i in range(WARMUP + messages):
            for k, (agent, spsp) in enumerate(buyers):
                start = time.perf_counter()
                answer = await agent.ask(spsp, f"paid question {i}", max_price=2 * PRICE)
                elapsed = (time.perf_counter() - start) * 1000
                if not answer.text:
                    raise RuntimeError(f"no answer from {spsp}")
                if i >= WARMUP:
                    times[k].append(elapsed)
    finally:
        for agent, _ in buyers:
            await agent.stop()
    return times


class Server:
    """One ``aigent serve`` app in a process of its own."""

    def __init__(self, root: Path, label: str, files: list[str], lease: float, db: str) -> None:
        self.port = free_port()
        self.name = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.name}"
        self.log = (root / f"{label}.log").open("wb")
        env = {**os.environ, "AIGENT_SERVE_TOKEN": TOKEN, "AIGENT_SERVE_DATABASE_URL": db,
               "AIGENT_BENCH_SCHEMA": SCHEMA}  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(root / f"data-{label}"), str(self.port),
             str(lease), *files],
            stdout=self.log, stderr=self.log, cwd=root, env=env,
        )  # fmt: skip

    def running(self) -> set[str]:
        """The agents this server runs (empty while it is not answering)."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"server exited {self.proc.returncode}; see {self.log.name}")
        try:
            reply = httpx.get(self.url + "/api/agents", headers=HEADERS, timeout=5)
            reply.raise_for_status()
        except httpx.HTTPError:
            return set()
        agents = reply.json()
        if any(a["state"] == "failed" for a in agents):
            raise RuntimeError(f"an agent failed to start; see {self.log.name}")
        return {a["name"] for a in agents if a["state"] == "running" and a.get("server") in
                (None, self.name)}  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def until(check: Any, what: str, timeout: float = 120.0) -> float:
    """Seconds until ``check()`` is true; an error naming ``what`` after ``timeout``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"{what}: not after {timeout:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - start


def paired(servers: list[Server], names: list[str], messages: int) -> list[list[float]]:
    """Each message to each server in turn; milliseconds per server."""
    times: list[list[float]] = [[] for _ in servers]
    clients = [httpx.Client(base_url=s.url, headers=HEADERS, timeout=30) for s in servers]
    try:
        for i in range(WARMUP + messages):
            name = names[i % len(names)]
            for k, client in enumerate(clients):
                start = time.perf_counter()
                answer = client.post(
                    f"/api/agents/{name}/messages",
                    json={"text": f"question {i}", "user": "bench", "room": "latency"},
                )
                elapsed = (time.perf_counter() - start) * 1000
                answer.raise_for_status()
                if i >= WARMUP:
                    times[k].append(elapsed)
    finally:
        for client in clients:
            client.close()
    return times


async def throughput(route: dict[str, str], clients: int, each: int) -> float:
    """``clients`` senders, client i to the i-th agent (mod N) on the server that runs it."""
    names = sorted(route)
    limits = httpx.Limits(max_connections=clients + 5, max_keepalive_connections=clients + 5)
    async with httpx.AsyncClient(headers=HEADERS, timeout=60, limits=limits) as client:

        async def one(i: int) -> None:
            name = names[i % len(names)]
            for n in range(each):
                answer = await client.post(
                    f"{route[name]}/api/agents/{name}/messages",
                    json={"text": f"load {n}", "user": f"u{i}", "room": f"load-{i}"},
                )
                answer.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(clients)))
        return clients * each / (time.perf_counter() - start)


def route(servers: list[Server]) -> dict[str, str]:
    """Each agent's server, every agent warmed up there (its first messages open connections
    and the memory store, which is start-up, not throughput)."""
    found = {name: s.url for s in servers for name in s.running()}
    with httpx.Client(headers=HEADERS, timeout=30) as client:
        for name, url in found.items():
            for i in range(3):
                answer = client.post(
                    f"{url}/api/agents/{name}/messages", json={"text": f"warm {i}", "room": "warm"}
                )
                answer.raise_for_status()
    return found


def run(args: argparse.Namespace) -> dict[str, float]:
    results: dict[str, float] = {}
    names = [f"Agent{i}" for i in range(args.agents)]
    model = ModelServer().start()
    root = Path(tempfile.mkdtemp(prefix="aigent-fleet-bench-"))
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    servers: list[Server] = []
    try:
        with throwaway_postgres() as pg:
            folder = root / "characters"
            folder.mkdir()
            files = []
            for name in names:
                path = folder / f"{name.lower()}.json"
                path.write_text(json.dumps(character(name, model.url)), encoding="utf-8")
                files.append(str(path))
            lease = args.lease_seconds
            sellers = []
            for label in ("Lite", "Post"):
                data, btp, spsp = seller(f"Seller{label}", model.url)
                path = root / f"seller-{label.lower()}.json"
                path.write_text(json.dumps(data), encoding="utf-8")
                sellers.append((str(path), btp, f"http://127.0.0.1:{spsp}/.well-known/pay"))
            names.append("SellerPost")  # the fleet's: it moves with the others
            sqlite = Server(root, "sqlite", [*files, sellers[0][0]], lease, "")
            first = Server(root, "pg-1", [*files, sellers[1][0]], lease, pg.url())
            files.append(sellers[1][0])
            servers += [sqlite, first]
            until(lambda: sqlite.running() == {*names[:-1], "SellerLite"}, "SQLite starts all")
            until(lambda: first.running() == set(names), "PostgreSQL starts all")

            buyers = [(buyer(root, "lite", sellers[0][1]), sellers[0][2]),
                      (buyer(root, "post", sellers[1][1]), sellers[1][2])]  # fmt: skip
            lite, post = asyncio.run(paid(buyers, args.messages))
            for p in (50, 95):
                results[f"paid message p{p}, SQLite (ms)"] = pct(lite, p)
                results[f"paid message p{p}, PostgreSQL (ms)"] = pct(post, p)
                results[f"paid message p{p}, PostgreSQL / SQLite"] = pct(post, p) / pct(lite, p)

            lite, post = paired([sqlite, first], names[:-1], args.messages)
            for p in (50, 95):
                results[f"chat p{p}, SQLite (ms)"] = pct(lite, p)
                results[f"chat p{p}, PostgreSQL (ms)"] = pct(post, p)
                results[f"chat p{p}, PostgreSQL / SQLite"] = pct(post, p) / pct(lite, p)
            sqlite.stop()

            each = max(1, args.messages // args.clients)
            one = asyncio.run(throughput(route([first]), args.clients, each))
            second = Server(root, "pg-2", files, lease, pg.url())
            servers.append(second)

            def split() -> bool:
                a, b = first.running(), second.running()
                if a & b:
                    raise RuntimeError(f"running on both servers: {sorted(a & b)}")
                return a | b == set(names) and abs(len(a) - len(b)) <= 1

            results["split between two servers (s)"] = until(split, "the agents split")
            two = asyncio.run(throughput(route([first, second]), args.clients, each))
            results[f"messages/s, {args.clients} clients, one server"] = one
            results[f"messages/s, {args.clients} clients, two servers"] = two
            results["messages/s, two / one"] = two / one

            victim, survivor = sorted((first, second), key=lambda s: len(s.running()), reverse=True)
            results["agents on the killed server"] = len(victim.running())
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(10)
            killed = time.monotonic()
            until(lambda: survivor.running() == set(names), "failover", 10 * lease)
            results["failover after SIGKILL (s)"] = time.monotonic() - killed
            results["failover / lease period"] = results["failover after SIGKILL (s)"] / lease
            for server in servers:
                server.stop()
    except BaseException:
        print(f"failed; the servers' logs are in {root}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(root, ignore_errors=True)
    finally:
        for server in servers:
            if not server.log.closed:
                server.stop()
        model.stop()
    return results


# figure -> (target, higher is better)
TARGETS: dict[str, tuple[float, bool]] = {"failover / lease period": (2.0, False)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--messages", type=int, default=200, help="per phase")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--lease-seconds", type=float, default=4.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.agents < 2:
        parser.error("--agents: at least 2, so that two servers can split them")
    results = run(args)
    for name, value in results.items():
        verdict = ""
        if name in TARGETS:
            target, higher = TARGETS[name]
            ok = value >= target if higher else value <= target
            verdict = f"  target {'>=' if higher else '<='} {target:g}: {'PASS' if ok else 'MISS'}"
        print(f"{name:45s} {value:10.2f}{verdict}")
    print(f"(lease period {args.lease_seconds:g} s, {args.agents} agents)")
    if args.json:
        print(json.dumps({"results": results, "lease_seconds": args.lease_seconds}))


if __name__ == "__main__":
    main()
