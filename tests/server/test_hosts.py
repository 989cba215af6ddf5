"""ILP between hosts, end to end with real processes on loopback: a hub connector (the aigent
connector run standalone by its CLI) and two ``aigent serve`` processes on one PostgreSQL. Agent
Alice runs on one server and Bob on the other, each a BTP child of the hub with the address the
hub gives it over IL-DCP. Alice's model asks Bob a paid question (``ask_agent``: SPSP, STREAM
through the hub); Bob's server is SIGKILLed; Bob starts on Alice's server with the same ILP
address, STREAM secret and ledger from PostgreSQL. A question that was in flight when the
server died is paid and answered once, by Bob on his next server; Alice pays him again. Every
ledger (Alice's, Bob's, the hub's two accounts) and Alice's spending equal the three
payments, each counted once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.connector.postgres_server import Server
from tests.connector.test_postgres_store import pg  # noqa: F401  (the session's server)
from tests.fixtures.openai_server import OpenAIServer, reply, slow, tool_call
from tests.server.conftest import character
from tests.server.test_command import free_port
from tests.server.test_fleet_postgres import LEASE, TOKEN, _agents, _serve, stop

PRICE = 1000
TOKENS = {
    "ALICE_BTP_TOKEN": f"alice-{uuid.uuid4().hex}",
    "BOB_BTP_TOKEN": f"bob-{uuid.uuid4().hex}",
    "HUB_ADMIN_TOKEN": f"admin-{uuid.uuid4().hex}",
}


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TOKENS.items():  # the hub and both servers inherit them
        monkeypatch.setenv(name, value)


class Hub:
    """The hub: ``aigent-connector start`` in a process of its own, SQLite ledger, admin API."""

    def __init__(self, folder: Path) -> None:
        self.btp, self.admin = free_port(), free_port()
        config = {
            "node_id": "hub", "address": "g.hub", "ledger_path": str(folder / "hub.sqlite"),
            "listen": {"port": self.btp},
            "admin": {"port": self.admin, "token_env": "HUB_ADMIN_TOKEN"},
            "peers": {
                "alice": {"relation": "child", "token_env": "ALICE_BTP_TOKEN",
                          "max_balance": 1_000_000},
                "bob": {"relation": "child", "token_env": "BOB_BTP_TOKEN"},
            },
        }  # fmt: skip
        path = folder / "hub.yaml"
        path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aigent_connector.cli", "start", str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, self.process.communicate()[0]
            try:
                if httpx.get(f"http://127.0.0.1:{self.admin}/health", timeout=1).is_success:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the hub did not start"
            time.sleep(0.1)

    def balances(self) -> dict[str, int]:
        found = httpx.get(
            f"http://127.0.0.1:{self.admin}/balances",
            headers={"Authorization": f"Bearer {TOKENS['HUB_ADMIN_TOKEN']}"},
            timeout=5,
        )
        found.raise_for_status()
        return {name: account["balance"] for name, account in found.json().items()}

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.communicate()[0]


@pytest.fixture
def hub(tmp_path: Path, tokens: None) -> Iterator[Hub]:
    running = Hub(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def child_of(hub: Hub, name: str) -> dict[str, Any]:
    """An agent's connector as a BTP child of the hub: its address comes from the hub."""
    return {
        "node_id": name, "parent": "hub",
        "peers": {"hub": {"relation": "parent", "url": f"ws://127.0.0.1:{hub.btp}",
                          "username": name, "token_env": f"{name.upper()}_BTP_TOKEN"}},
    }  # fmt: skip


def operator(port: int) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=60,
    )


def where(ports: tuple[int, int]) -> dict[str, int]:
    """Which server's port runs each running agent."""
    found: dict[str, int] = {}
    for port in ports:
        try:
            listed = _agents(port)
        except httpx.HTTPError:
            continue
        servers = {a["server"] for a in listed if a["state"] == "running"}
        this = next((s for s in servers if s.endswith(f":{port}")), None)
        for agent in listed:
            if agent["state"] == "running" and agent["server"] == this:
                found[agent["name"]] = port
    return found


def ask_bob(alice_port: int, model: OpenAIServer, spsp: str, answer: str) -> None:
    """Alice's model calls ask_agent; Bob's model answers the paid question; Alice replies."""
    model.queue(
        tool_call("ask_agent", {"receiver": spsp, "question": "what is ILP?", "max_price": 5000}),
        reply(answer),
        reply(f"Bob says: {answer}"),
    )
    with operator(alice_port) as alice:
        said = alice.post("/api/agents/Alice/messages", json={"text": "ask Bob"})
    assert said.status_code == 200, said.text
    assert said.json()["text"] == f"Bob says: {answer}"


def ledger(port: int, agent: str) -> dict[str, Any]:
    with operator(port) as client:
        found = client.get(f"/api/agents/{agent}/ledger")
    assert found.status_code == 200, found.text
    book: dict[str, Any] = found.json()
    return book


def balance(book: dict[str, Any], peer: str) -> int:
    (account,) = [a for a in book["accounts"] if a["peer"] == peer]
    value: int = account["balance"]
    return value


def test_agents_on_two_servers_pay_through_a_hub_and_one_moves_after_sigkill(
    pg: Server,  # noqa: F811
    hub: Hub,
    tmp_path: Path,
    model: OpenAIServer,
) -> None:
    schema = f"h_{uuid.uuid4().hex[:10]}"
    spsp = free_port()
    folder = tmp_path / "characters"
    folder.mkdir()
    alice = character(
        model, "Alice", connector=child_of(hub, "alice"),
        spending={"XRP": {"max_per_payment": 10_000, "per_day": 100_000}},
    )  # fmt: skip
    bob = character(
        model, "Bob", connector={**child_of(hub, "bob"), "spsp": {"port": spsp}},
        price={"amount": PRICE, "asset_code": "XRP", "asset_scale": 6},
    )  # fmt: skip
    for data in (alice, bob):
        (folder / f"{data['name'].lower()}.json").write_text(json.dumps(data), encoding="utf-8")
    bob_spsp = f"http://127.0.0.1:{spsp}/.well-known/pay"
    reach = [arg for port in (model.url.split("/")[2].split(":")[1], hub.btp, spsp)
             for arg in ("--allow-host", f"127.0.0.1:{port}")]  # fmt: skip
    ports = free_port(), free_port()
    servers: list[subprocess.Popen[str]] = []
    try:
        # The first server alone takes both agents; the second, joining, takes its share.
        servers.append(_serve(folder, tmp_path / "data0", ports[0], pg, schema, *reach))
        deadline = time.monotonic() + 90
        while where(ports) != {"Alice": ports[0], "Bob": ports[0]}:
            assert servers[0].poll() is None, servers[0].communicate()
            assert time.monotonic() < deadline, f"not both on the first server: {where(ports)}"
            time.sleep(0.2)
        servers.append(_serve(folder, tmp_path / "data1", ports[1], pg, schema, *reach))
        while len(set((placed := where(ports)).values())) != 2 or len(placed) != 2:
            for process in servers:
                assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"not one on each server: {placed}"
            time.sleep(0.2)
        alice_port, bob_port = placed["Alice"], placed["Bob"]
        doomed = servers[ports.index(bob_port)]
        assert ledger(bob_port, "Bob")["address"] == "g.hub.bob"  # from the hub, over IL-DCP
        assert ledger(alice_port, "Alice")["address"] == "g.hub.alice"

        # --- the first paid question: Alice's server -> hub -> Bob's server
        ask_bob(alice_port, model, bob_spsp, "a protocol for payments")
        assert balance(ledger(bob_port, "Bob"), "hub") == PRICE  # the hub owes Bob
        assert balance(ledger(alice_port, "Alice"), "hub") == -PRICE  # Alice owes the hub
        assert hub.balances() == {"alice": PRICE, "bob": -PRICE}

        # --- a second question in flight: Bob's model is still thinking when his server dies
        model.queue(
            tool_call("ask_agent", {"receiver": bob_spsp, "question": "and STREAM?",
                                    "max_price": 5000}),
            slow(20, "never heard: the server dies first"),
            reply("money and data in one packet"),  # Bob again, on his next server
            reply("Bob says: money and data in one packet"),
        )  # fmt: skip
        asked = len(model.requests)
        in_flight: dict[str, Any] = {}

        def ask_in_flight() -> None:
            with operator(alice_port) as client:
                said = client.post("/api/agents/Alice/messages", json={"text": "ask Bob more"})
            in_flight["status"], in_flight["body"] = said.status_code, said.json()

        asking = threading.Thread(target=ask_in_flight, daemon=True)
        asking.start()
        while len(model.requests) < asked + 2:  # Alice's call, then Bob's (the slow one)
            assert time.monotonic() < deadline + 60, "Bob's model was not asked"
            time.sleep(0.05)

        # --- Bob's server is killed; Bob comes back on Alice's, with his address and ledger
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
        killed = time.monotonic()
        while where((alice_port,)).get("Bob") != alice_port:
            assert time.monotonic() - killed < 2 * LEASE + 30, f"Bob did not move: {where(ports)}"
            time.sleep(0.2)
        moved = time.monotonic() - killed
        assert ledger(alice_port, "Bob")["address"] == "g.hub.bob"

        # The hub answered Alice's packet T01 when Bob's link died; her STREAM sender kept
        # trying, and Bob, back with the same address and STREAM secret, took the payment
        # and answered: the question was paid once and not lost.
        asking.join(timeout=120)
        assert in_flight.get("status") == 200, in_flight
        assert in_flight["body"]["text"] == "Bob says: money and data in one packet"
        assert balance(ledger(alice_port, "Bob"), "hub") == 2 * PRICE  # his ledger went on
        assert balance(ledger(alice_port, "Alice"), "hub") == -2 * PRICE
        assert hub.balances() == {"alice": 2 * PRICE, "bob": -2 * PRICE}

        # --- a third paid question: both agents on one server, still through the hub
        ask_bob(alice_port, model, bob_spsp, "packets with conditions")
        assert balance(ledger(alice_port, "Bob"), "hub") == 3 * PRICE
        assert balance(ledger(alice_port, "Alice"), "hub") == -3 * PRICE
        assert hub.balances() == {"alice": 3 * PRICE, "bob": -3 * PRICE}
        with operator(alice_port) as client:
            spent = client.get("/api/agents/Alice/payments").json()["payments"]
        assert sorted((p["amount"], p["state"]) for p in spent) == [(PRICE, "spent")] * 3
        print(f"\nBob running on the other server {moved:.2f} s after SIGKILL "
              f"(lease {LEASE} s)")  # fmt: skip
    finally:
        outputs = stop(servers)
    for output in outputs:
        assert pg.password not in output
        for token in TOKENS.values():
            assert token not in output
