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
