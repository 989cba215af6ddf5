"""What the PostgreSQL ledger costs next to the SQLite one: the same Ledger, two stores.

Two workloads, each timed for both stores in the same run (the ratio is the figure to quote;
seconds drift with the machine):

* ``packets (N in flight)``: the connector's path. N tasks each move packets as the connector
  does (two holds, then both commits, ``acommit`` waiting for the group commit), so the
  figure is Fulfills made durable per second; a transaction carries many of them.
* ``commits (one at a time)``: ``reserve`` + ``commit``, each ``commit`` its own transaction,
  written before it returns: the cost of one durable write (a round trip and an fsync).

SQLite is a WAL file with synchronous=NORMAL (the default: durable against a killed process);
PostgreSQL is a throwaway local server on loopback TCP with its defaults (synchronous_commit
on: every commit's WAL is fsynced), started for the run unless ``--dsn`` names one.

Run: uv run --all-packages python benchmarks/ledger_stores.py [--seconds S] [--rounds N]
     [--dsn postgresql://user@host/db]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests/connector/postgres_server.py

from aigent_connector.ledger import Ledger, SqliteLedger  # noqa: E402
from aigent_connector.postgres_store import PostgresStore  # noqa: E402

FAR = time.time() + 3600
Opener = Callable[[], Ledger]


async def packets(ledger: Ledger, in_flight: int, seconds: float) -> float:
    """Fulfills per second with ``in_flight`` packets at a time."""
    ledger.configure("alice", max_balance=10**15)
    ledger.configure("bob", min_balance=-(10**15))
    counter = iter(range(10**12))
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        for i in counter:
            if time.perf_counter() >= deadline:
                return
            ledger.hold(f"in{i}", "alice", "in", 10, FAR)
            ledger.hold(f"out{i}", "bob", "out", 10, FAR)
            await asyncio.sleep(0)  # the packet is out on the wire
            ledger.commit_nowait(f"out{i}", record=False)  # as the connector does
            ledger.commit_nowait(f"in{i}", record=False)
            await ledger.durable()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return done / (time.perf_counter() - start)


def commits(ledger: Ledger, seconds: float) -> float:
    """Durable commits per second, one transaction each."""
    ledger.configure("alice", max_balance=10**15)
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        ledger.reserve(f"c{done}", "alice", "in", 1, FAR)
        ledger.commit(f"c{done}")
        done += 1
    return done / (time.perf_counter() - start)


def measure(open_ledger: Opener, seconds: float) -> dict[str, float]:
    figures: dict[str, float] = {}
    for in_flight in (1, 10, 100):
        ledger = open_ledger()
        try:
            figures[f"packets ({in_flight} in flight)"] = asyncio.run(
                packets(ledger, in_flight, seconds)
            )
        finally:
            ledger.close()
    ledger = open_ledger()
    try:
        figures["commits (one at a time)"] = commits(ledger, seconds)
    finally:
        ledger.close()
    return figures


def run(dsn: str, seconds: float, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:

        def sqlite() -> Ledger:
            return SqliteLedger(Path(tmp) / f"{uuid.uuid4().hex}.sqlite")

        def postgres() -> Ledger:
            return Ledger(PostgresStore(dsn, schema=f"bench_{uuid.uuid4().hex[:12]}"))

        results: dict[str, list[dict[str, float]]] = {"sqlite": [], "postgres": []}
        for _ in range(rounds):  # taking turns: drift on the machine hits both alike
            results["sqlite"].append(measure(sqlite, seconds))
            results["postgres"].append(measure(postgres, seconds))
    print(f"{'workload':<26} {'SQLite /s':>11} {'PostgreSQL /s':>14} {'PG / SQLite':>12}")
    for name in results["sqlite"][0]:
        lite = statistics.median(r[name] for r in results["sqlite"])
        pg = statistics.median(r[name] for r in results["postgres"])
        print(f"{name:<26} {lite:>11,.0f} {pg:>14,.0f} {pg / lite:>12.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per workload and store")
    parser.add_argument("--rounds", type=int, default=3, help="medians of this many turns")
    parser.add_argument("--dsn", help="an existing PostgreSQL server (default: a throwaway one)")
    args = parser.parse_args()
    if args.dsn:
        run(args.dsn, args.seconds, args.rounds)
        return
    from tests.connector.postgres_server import throwaway_postgres

    with throwaway_postgres() as server:
        print(f"PostgreSQL: throwaway server on {server.host}:{server.port}", file=sys.stderr)
        run(server.url(), args.seconds, args.rounds)


if __name__ == "__main__":
    main()
