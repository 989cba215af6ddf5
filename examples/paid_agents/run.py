"""Two agents in two processes: Alice pays Bob per question over Interledger, and settles on XRPL.

    uv run --all-packages python examples/paid_agents/run.py

What happens:
1. A local XRPL test ledger starts (``aigent_xrpl.testledger``: no XRPL server runs here), and
   a wallet is funded for each agent.
2. Bob starts in his own process with ``aigent run bob.json``: a connector listening for BTP
   peers, an SPSP endpoint, and a price of 0.001 XRP per message.
3. Alice starts here, connects to Bob as his child over BTP (her address comes from him over
   IL-DCP) and asks him questions with ``agent.ask``. Each question pays exactly his price,
   through her spending limits; his answer comes back inside the ILP Fulfill.
4. When what Alice owes Bob crosses her settle threshold, her XRPL payment-channel engine signs
   a claim and hands it to Bob over BTP; Bob verifies it and redeems it on the test ledger.

Options: ``--questions N``, ``--model ID`` and ``--plugin PATH`` (the tests use a scripted
stand-in model; the default is the local model, which needs no key), ``--base-port P`` (the
four ports P+1..P+4 are used), ``--work DIR`` (where the data directories go).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOKEN = "alice-bob-btp-token"


def rpc(url: str, method: str, **params: Any) -> dict[str, Any]:
    body = json.dumps({"method": method, "params": [params]}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())["result"]
    return result


def xrp_balance(url: str, address: str) -> int:
    return int(rpc(url, "account_info", account=address)["account_data"]["Balance"])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"Bob exited early:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"Bob did not open port {port}:\n{log.read_text()[-3000:]}")


def characters(work: Path, base: int, ledger_url: str, model: str | None, plugin: str | None
               ) -> tuple[Path, Path]:  # fmt: skip
    """The example characters, with this run's ports, data directories and model."""
    written = []
    for name in ("bob", "alice"):
        data = json.loads((HERE / f"{name}.json").read_text())
        data["data_dir"] = str(work / name)
        data["settings"]["xrpl"]["url"] = ledger_url
        connector = data["connector"]
        if name == "bob":
            connector["listen"]["port"] = base + 1
            connector["spsp"]["port"] = base + 2
        else:
            connector["peers"]["bob"]["url"] = f"ws://127.0.0.1:{base + 1}"
        if model:
            data["models"] = {"large": model}
        if plugin:
            data["plugins"].append(str(Path(plugin).resolve()))
        path = work / f"{name}.json"
        path.write_text(json.dumps(data, indent=2))
        written.append(path)
    return written[0], written[1]


async def alice_asks(alice_file: Path, spsp_url: str, questions: int) -> dict[str, Any]:
    from aigent import Agent

    answers = []
    async with Agent.from_file(alice_file) as alice:
        assert alice.node is not None
        print(f"Alice: {alice.node.status()}")
        for i in range(questions):
            question = f"Question {i + 1}: what does an Interledger connector do?"
            answer = await alice.ask(spsp_url, question, max_price=2000)
            answers.append(answer.text)
            owed = alice.node.connector.ledger.account("bob").balance
            print(f"Alice paid {answer.paid} drops; Bob said: {answer.text!r} (balance {owed})")
        settler = alice.node.connector.settler
        if settler is not None:
            await asyncio.wait_for(settler.idle(), 30)
        history = settler.history("bob") if settler is not None else []
        balance = alice.node.connector.ledger.account("bob").balance
        spent = alice.spending.spent("XRP", 86400)
        for settlement_id, amount, state, settled in history:
            print(f"Alice settled {settled or 0} of {amount} drops with Bob ({state}, "
                  f"{settlement_id}): an XRPL payment-channel claim sent over BTP")  # fmt: skip
        print(f"Alice now owes Bob {-balance} drops; spent under her limits today: {spent}")
    return {"answers": answers, "settlements": history, "balance": balance, "spent": spent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--model", default=None)
    parser.add_argument("--plugin", default=None)
    parser.add_argument("--base-port", type=int, default=7700)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="Print a JSON summary at the end.")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="paid-agents-"))
    work.mkdir(parents=True, exist_ok=True)
    base = args.base_port

    from xrpl.wallet import Wallet

    ledger = subprocess.Popen(
        [sys.executable, "-m", "aigent_xrpl.testledger", "--port", str(base + 3)],
        stdout=subprocess.PIPE,
    )
    bob_proc: subprocess.Popen[bytes] | None = None
    try:
        assert ledger.stdout is not None
        ledger_url = ledger.stdout.readline().decode().strip()
        wallets = {name: Wallet.create() for name in ("bob", "alice")}
        for wallet in wallets.values():
            rpc(ledger_url, "testledger_fund", account=wallet.address, drops=100_000_000)
        print(f"Test ledger at {ledger_url}; Bob {wallets['bob'].address}, "
              f"Alice {wallets['alice'].address}")  # fmt: skip
        bob_file, alice_file = characters(work, base, ledger_url, args.model, args.plugin)

        bob_log = work / "bob.log"
        bob_env = {**os.environ, "XRPL_SEED": wallets["bob"].seed or "", "ALICE_BTP_TOKEN": TOKEN}
        bob_proc = subprocess.Popen(
            [sys.executable, "-m", "aigent.cli", "run", str(bob_file)],
            stdin=subprocess.DEVNULL, stdout=bob_log.open("w"), stderr=subprocess.STDOUT,
            env=bob_env,
        )  # fmt: skip
        wait_for_port(base + 2, bob_proc, bob_log)
        spsp_url = f"http://127.0.0.1:{base + 2}/.well-known/pay"
        bob_before = xrp_balance(ledger_url, wallets["bob"].address)

        os.environ["XRPL_SEED"] = wallets["alice"].seed or ""
        os.environ["ALICE_BTP_TOKEN"] = TOKEN
        summary = asyncio.run(alice_asks(alice_file, spsp_url, args.questions))

        # Bob redeems his best claim on shutdown (and every redeem_interval while running).
        bob_proc.send_signal(signal.SIGTERM)
        bob_proc.wait(timeout=60)
        bob_after = xrp_balance(ledger_url, wallets["bob"].address)
        summary["bob_onchain_gain"] = bob_after - bob_before
        summary["bob_log"] = bob_log.read_text()
        print(f"Bob's XRPL balance moved by {bob_after - bob_before} drops "
              f"(claims redeemed, less the transaction fee)")  # fmt: skip
        print("Bob's log:\n" + summary["bob_log"])
        if args.json:
            print("SUMMARY " + json.dumps(summary))
    finally:
        if bob_proc is not None and bob_proc.poll() is None:
            bob_proc.kill()
        ledger.terminate()
        ledger.wait(timeout=10)


if __name__ == "__main__":
    main()
