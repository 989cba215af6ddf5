"""Run a traffic script against a ledger and SIGKILL it at moments of the run, several times;
collect what it acknowledged. The script takes (db path, first packet number) and prints JSON
lines ["reserved" | "fulfilled" | "rejected", i, amount]."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from aigent_connector.ledger import Ledger


def kill_mid_traffic(
    script: str, db: Path, rounds: int = 3, pause: float = 0.4
) -> tuple[dict[int, int], set[int]]:
    """(fulfilled packets and their amounts, packets left in flight by the kills)."""
    acknowledged: dict[int, int] = {}
    in_flight: set[int] = set()
    start = 0
    for round_ in range(rounds):
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(db), str(start)], stdout=subprocess.PIPE, text=True
        )
        time.sleep(pause + 0.3 * round_)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        for line in out.splitlines():
            try:
                event, i, amount = json.loads(line)
            except json.JSONDecodeError:
                continue  # the kill cut the last line short
            start = max(start, i)
            if event == "reserved":
                in_flight.add(i)
            else:
                in_flight.discard(i)
                if event == "fulfilled":
                    acknowledged[i] = amount
        start += 1000  # packet ids of the next run never collide with a half-done one
    return acknowledged, in_flight


def group_commit_traffic(opening: str) -> str:
    """A traffic script for :func:`kill_mid_traffic`: 50 packets in flight through the ledger's
    group-commit path (a third rejected). ``opening`` is Python that binds ``ledger`` from
    ``sys.argv[1]``."""
    return GROUP_COMMIT_TRAFFIC.replace("OPENING", opening)


GROUP_COMMIT_TRAFFIC = """
import asyncio, json, sys, time

async def main():
    OPENING
    ledger.configure("alice", max_balance=10**12)
    ledger.configure("bob", min_balance=-10**12)
    counter = iter(range(int(sys.argv[2]), 10**9))

    async def worker():
        for i in counter:
            amount = i % 97 + 1
            await ledger.areserve(f"in{i}", "alice", "in", amount, time.time() + 30)
            await ledger.areserve(f"out{i}", "bob", "out", amount, time.time() + 30)
            print(json.dumps(["reserved", i, amount]), flush=True)
            await asyncio.sleep(0)
            if i % 3 == 0:
                await ledger.arevert(f"out{i}")
                await ledger.arevert(f"in{i}")
                print(json.dumps(["rejected", i, amount]), flush=True)
            else:
                ledger.commit_nowait(f"out{i}")
                await ledger.acommit(f"in{i}")
                print(json.dumps(["fulfilled", i, amount]), flush=True)

    await asyncio.gather(*(worker() for _ in range(50)))

asyncio.run(main())
"""


def assert_nothing_lost(
    ledger: Ledger,
    rows: list[tuple[str, int, str]],
    acknowledged: dict[int, int],
    in_flight: set[int],
) -> None:
    """After the kills (and a recovery): every acknowledged Fulfill is in the store, no packet
    counts twice, both legs of a packet or neither, and the balances equal what was committed.
    ``rows`` are the store's transfer rows (id, amount, state)."""
    committed_in = {int(t[2:]): a for t, a, s in rows if s == "committed" and t.startswith("in")}
    committed_out = {int(t[3:]): a for t, a, s in rows if s == "committed" and t[:3] == "out"}
    assert len(acknowledged) > 100
    assert set(acknowledged) <= set(committed_in)  # nothing acknowledged was lost
    assert set(committed_in) - set(acknowledged) <= in_flight  # at most the cut-off ones
    assert set(committed_in) == set(committed_out)  # both legs of a packet, or neither
    assert ledger.account("alice").balance == sum(committed_in.values())
    assert ledger.account("bob").balance == -sum(committed_out.values())
    assert ledger.account("alice").reserved_in == 0
