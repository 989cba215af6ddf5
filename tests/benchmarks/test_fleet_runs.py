"""benchmarks/fleet.py stays runnable: a tiny run starts a real PostgreSQL, a SQLite server and
two fleet servers, sends real messages, SIGKILLs one and prints the table. No timing is
asserted: only that each figure was measured and is sane on its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.connector.postgres_server import NoPostgres, bindir

ROOT = Path(__file__).parents[2]
BENCHMARK = ROOT / "benchmarks" / "fleet.py"


@pytest.mark.slow
def test_a_tiny_run_measures_failover_throughput_and_the_database_cost() -> None:
    try:
        bindir()
    except NoPostgres as exc:
        pytest.skip(str(exc))
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--agents", "3", "--messages", "6", "--clients", "3",
         "--lease-seconds", "2", "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    out = done.stdout
    figures = json.loads(out.strip().splitlines()[-1])["results"]
    for db in ("SQLite", "PostgreSQL"):
        assert 0 < figures[f"chat p50, {db} (ms)"] <= figures[f"chat p95, {db} (ms)"]
        paid = figures[f"paid message p50, {db} (ms)"]
        assert 0 < paid <= figures[f"paid message p95, {db} (ms)"]
    for servers in ("one server", "two servers"):
        assert figures[f"messages/s, 3 clients, {servers}"] > 0
    assert figures["agents on the killed server"] >= 1  # it held some: the failover was real
    assert figures["failover after SIGKILL (s)"] > 0
    assert "failover / lease period" in out and ("PASS" in out or "MISS" in out)
