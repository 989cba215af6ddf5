"""benchmarks/connector/run.py stays runnable: a short run moves real packets through both
connectors and prints the ratios the README quotes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js for ilp-connector")
def test_a_short_benchmark_run_fulfils_packets_through_both_connectors() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "connector" / "run.py"), "--rounds", "1",
         "--seconds", "0.5", "--warmup", "0.2", "--floor", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ours / reference: throughput" in done.stdout
    results = json.loads(done.stdout.strip().splitlines()[-1])["summary"]
    assert "the relay (no ILP: the machine's floor) / reference" in done.stdout
    for name in ("reference", "ours", "relay"):
        rows = results[name]
        assert [row["in_flight"] for row in rows] == [1, 10, 100]
        for row in rows:
            assert row["pps"] > 50 and row["rejects"] == 0, (name, row)
            assert 0 < row["p50_ms"] <= row["p99_ms"]
