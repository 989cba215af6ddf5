"""The README's paid-agents example, end to end: two processes, BTP between them, a paid
question per message, settlement over an XRPL payment channel on the local test ledger (no
XRPL server can run here; see plugins/xrpl/README.md for what the test ledger checks)."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def free_base_port() -> int:
    """A base port P with P+1..P+3 free (the example uses fixed offsets)."""
    for _ in range(50):
        base = random.randrange(20_000, 60_000)
        try:
            for port in range(base + 1, base + 4):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports")


def test_alice_pays_bob_per_question_and_settles_on_xrpl(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "paid_agents" / "run.py"),
         "--questions", "4", "--model", "scripted",
         "--plugin", str(ROOT / "tests" / "fixtures" / "scripted_model.py"),
         "--base-port", str(free_base_port()), "--work", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("SUMMARY "))
    summary = json.loads(line.removeprefix("SUMMARY "))

    assert summary["answers"] == [
        f"echo: Question {i}: what does an Interledger connector do?" for i in range(1, 5)
    ]
    assert summary["spent"] == 4 * 1000 + 20_000  # four questions, and the channel it opened
    # Alice's threshold is -2500: the third question made her owe 3000, which she settled.
    (_id, amount, state, settled), *_ = summary["settlements"]
    assert (amount, state, settled) == (3000, "done", 3000)
    assert summary["balance"] == -1000  # the fourth question, not yet settled
    # Bob redeemed the claim on the test ledger when he stopped (less the 10-drop fee).
    assert summary["bob_onchain_gain"] == 3000 - 10
    assert (
        "Bob earned 0.001 XRP from alice (in all, earned 0.004 XRP from 4 paid messages)"
        in (summary["bob_log"])
    )
