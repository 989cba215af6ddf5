"""An x402 payment answers one message across a SIGKILL: two ``aigent serve`` processes on one
PostgreSQL; the server answering a paid message is killed while its model thinks (the payment
settled on the XRPL test ledger and booked, no reply sent). The payer sends the same payment
to the other server: while the dead attempt's deadline runs, 409 with Retry-After; after it,
the agent (now on the other server, its earnings store in its PostgreSQL schema) answers it,
without submitting the transaction again or booking it twice; then it is refused as replayed.

Real parts: PostgreSQL, both servers, the XRPL test ledger (in this process, over HTTP), the
``x402-xrpl`` SDK's client signing the payment (test_x402), the OpenAI wire stand-in."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aigent_xrpl.testledger import TestLedger
from xrpl.wallet import Wallet

from tests.connector.postgres_server import Server
from tests.connector.test_postgres_store import pg  # noqa: F401  (the session's server)
from tests.fixtures.openai_server import Behaviour, OpenAIServer, reply
from tests.server.conftest import character
from tests.server.test_command import free_port
from tests.server.test_fleet_exactly_once import _runner, _until
from tests.server.test_fleet_postgres import (  # noqa: F401
    LEASE,
    TOKEN,
    _agents,
    _serve,
    _servers,
    schema,
    stop,
)
from tests.server.test_x402 import stranger

pytestmark = pytest.mark.slow

PRICE = 1000
HOLD = "take your time"
ANSWER_TIMEOUT = 15  # the claim's deadline: past the hand-over (a lease or two)
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}


class HoldingModel(OpenAIServer):
    """Sits on the held question the first time (the server asking is about to die)."""

    def __init__(self) -> None:
        super().__init__()
        self.held = threading.Event()

    def _next(self, body: dict[str, Any]) -> Behaviour:
        if HOLD in json.dumps(body.get("messages", [])[-1:]) and not self.held.is_set():
            self.held.set()
            return Behaviour(text="too late", delay=60)
        return super()._next(body)


@pytest.fixture
def holding() -> Iterator[HoldingModel]:
    model = HoldingModel().start()
    try:
        yield model  # type: ignore[misc]
    finally:
        model.stop()


@pytest.fixture
def ledger() -> Iterator[TestLedger]:
    with TestLedger() as running:
        yield running


def test_a_payment_whose_server_was_sigkilled_mid_answer_is_answered_once_on_the_next(
    pg: Server,  # noqa: F811
    schema: str,  # noqa: F811
    tmp_path: Path,
    holding: HoldingModel,
    ledger: TestLedger,
) -> None:
    bob_wallet, payer = Wallet.create(), Wallet.create()
    ledger.fund(bob_wallet.address, 100_000_000)
    ledger.fund(payer.address, 50_000_000)
    folder = tmp_path / "characters"
    folder.mkdir()
    bob = character(
        holding,  # type: ignore[arg-type]
        "Bob",
        price={"amount": PRICE, "asset_code": "XRP", "asset_scale": 6},
        connector={"node_id": "bob", "address": "test.bob"},
        secrets={"BOB_XRPL_SEED": bob_wallet.seed or ""},
        settings={"xrpl": {"url": ledger.url, "seed_env": "BOB_XRPL_SEED"},
                  "x402": {"answer_timeout": ANSWER_TIMEOUT}},
    )  # fmt: skip
    (folder / "bob.json").write_text(json.dumps(bob), encoding="utf-8")
    ports = free_port(), free_port()
    reach = [arg for url in (holding.url, ledger.url)
             for arg in ("--allow-host", url.split("/")[2])]  # fmt: skip
    servers: list[subprocess.Popen[str]] = []
    try:
        servers.append(_serve(folder, tmp_path / "data0", ports[0], pg, schema, *reach))
        _until(lambda: _runner(ports, "Bob"), "Bob runs", 60, port=ports[0])
        servers.append(_serve(folder, tmp_path / "data1", ports[1], pg, schema, *reach))
        _until(lambda: _up(ports[1]) and len(_servers(ports[0])["servers"]) == 2, "two servers", 60)
        at = next(i for i in (0, 1) if "Bob" in _running(ports[i]))
        other = 1 - at
        url = f"http://127.0.0.1:{ports[at]}/x402/Bob/messages"
        header = str(stranger(tmp_path, "sign", url, ledger.url, payer, "{}")["header"])

        def send(port: int) -> httpx.Response:
            return httpx.post(
                f"http://127.0.0.1:{port}/x402/Bob/messages", json={"text": HOLD},
                headers={"PAYMENT-SIGNATURE": header}, timeout=120,
            )  # fmt: skip

        first: dict[str, Any] = {}

        def ask() -> None:
            try:
                first["answer"] = send(ports[at])
            except httpx.HTTPError as exc:
                first["error"] = exc  # its server died under it

        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        assert holding.held.wait(60), "the paid message did not reach Bob's model"
        assert ledger.balance(bob_wallet.address) == 100_000_000 + PRICE  # settled
        servers[at].send_signal(signal.SIGKILL)
        servers[at].wait(timeout=10)
        killed = time.monotonic()
        asking.join(timeout=30)
        assert "answer" not in first, first  # paid, never answered
        submits = ledger.requests["submit"]
        assert submits == 1

        # The same payment to the other server: once Bob runs there, the dead attempt's
        # claim is still within its deadline, so: wait (a duplicate gets no second answer).
        busy = _until(
            lambda: (
                (r := send(ports[other])).status_code == 409 and "Retry-After" in r.headers and r
            ),
            "the payment answered 409 while its dead attempt's deadline runs",
            4 * LEASE + 30,
        )
        assert busy.json()["reason"] == "answering", busy.text
        print(f"\nBob took the payment again {time.monotonic() - killed:.1f} s after the SIGKILL")
        holding.queue(reply("answered after the crash"))
        time.sleep(int(busy.headers["Retry-After"]) + 0.5)
        answered = send(ports[other])
        assert answered.status_code == 200, answered.text
        assert answered.json()["text"] == "answered after the crash"
        assert ledger.requests["submit"] == submits  # found validated, not submitted again
        assert ledger.balance(bob_wallet.address) == 100_000_000 + PRICE
        replayed = send(ports[other])
        assert replayed.status_code == 402 and replayed.json()["reason"] == "replayed"
        with httpx.Client(base_url=f"http://127.0.0.1:{ports[other]}", headers=OPERATOR) as api:
            money = api.get("/api/agents/Bob/money").json()["earned"]
        assert (money["amount"], money["messages"]) == (PRICE, 1), money  # booked once
    finally:
        stop(servers)


def _up(port: int) -> bool:
    try:
        _agents(port)
    except httpx.HTTPError:
        return False
    return True


def _running(port: int) -> set[str]:
    try:
        return {a["name"] for a in _agents(port) if a["state"] == "running"}
    except httpx.HTTPError:
        return set()
