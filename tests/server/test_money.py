"""Money and anchors over real HTTP, each seen in the REST API and as live events.

Two ``aigent serve`` apps, each on its own port: one hosts Bob, who charges per message and
settles by XRPL payment channel; the other hosts Alice, Bob's child over BTP. Her chat makes
her model call the built-in ``ask_agent`` action, so she pays Bob over ILP (STREAM, SPSP);
owing him past her settle threshold, her ``xrpl-paychan`` engine opens a channel on the XRPL
test ledger and sends a claim, which Bob checks and redeems. A third agent anchors its replies
on anvil. Nothing is mocked: connectors, BTP, STREAM, the test ledger and the EVM node are real.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aigent_server.app import Settings
from aigent_xrpl.testledger import TestLedger
from xrpl.wallet import Wallet

from tests.fixtures.anvil import run_anvil
from tests.fixtures.openai_server import OpenAIServer, reply, tool_call
from tests.server.conftest import TOKEN, Served, character, serve, wait_for

PRICE = 1000
CHANNEL_DROPS = 1_000_000


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_events(
    client: httpx.Client, want: int, timeout: float = 20.0, **params: str
) -> list[tuple[str, dict[str, Any]]]:
    """The first ``want`` events of ``/api/events`` with ``params`` (recent ones replay first),
    as (SSE event name, data); fails naming what did arrive if they do not come in time."""
    seen: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    done = threading.Event()

    def read() -> None:
        with client.stream("GET", "/api/events", params=params, timeout=timeout) as events:
            name = ""
            for line in events.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    seen.append((name, json.loads(line[6:])))
                    if len(seen) >= want:
                        break
        done.set()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    done.wait(max(0.0, deadline - time.monotonic()))
    assert len(seen) >= want, f"wanted {want} events for {params}, got {seen}"
    return seen[:want]


@pytest.fixture(scope="module")
def xrpl_ledger() -> Iterator[TestLedger]:
    with TestLedger() as running:
        yield running


@pytest.fixture(scope="module", autouse=True)
def _fast_xrpl() -> Iterator[None]:
    # the test ledger validates at once: no ledger close to wait for
    import xrpl.asyncio.transaction.reliable_submission as rs

    before = rs._LEDGER_CLOSE_TIME
    rs._LEDGER_CLOSE_TIME = 0.01
    yield
    rs._LEDGER_CLOSE_TIME = before


@pytest.fixture(scope="module")
def wallets(xrpl_ledger: TestLedger) -> Iterator[dict[str, Wallet]]:
    made = {"ALICE": Wallet.create(), "BOB": Wallet.create()}
    env = {
        "ALICE_XRPL_SEED": made["ALICE"].seed or "",
        "BOB_XRPL_SEED": made["BOB"].seed or "",
        "ALICE_BTP_TOKEN": "alice-btp-secret",
    }
    for wallet in made.values():
        xrpl_ledger.fund(wallet.address, 100_000_000)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield made
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def xrpl_settings(ledger: TestLedger, who: str) -> dict[str, Any]:
    return {
        "url": ledger.url,
        "seed_env": f"{who}_XRPL_SEED",
        "context": [],
        "channel_drops": CHANNEL_DROPS,
        "redeem_interval": 0.5,
        "cache_ttl": 0,
    }


@contextmanager
def running_pair(
    tmp_path_factory: pytest.TempPathFactory,
    model: OpenAIServer,
    xrpl_ledger: TestLedger,
    admins: frozenset[str] = frozenset(),
) -> Iterator[tuple[Served, Served, str]]:
    """(Bob's server, Alice's server, Bob's SPSP URL); ``admins`` sign in as the operator."""
    folder = tmp_path_factory.mktemp("money-characters")
    btp, spsp = free_port(), free_port()
    bob = character(
        model,
        "Bob",
        price={"amount": PRICE, "asset_code": "XRP", "asset_scale": 6},
        connector={
            "node_id": "bob",
            "address": "test.bob",
            "listen": {"port": btp},
            "spsp": {"port": spsp},
            "peers": {
                "alice": {
                    "relation": "child",
                    "token_env": "ALICE_BTP_TOKEN",
                    "settlement": "xrpl-paychan",
                    "max_balance": 100_000,
                }
            },
        },
        settings={"xrpl": xrpl_settings(xrpl_ledger, "BOB"), "x402": {}},  # x402 tests too
    )
    (folder / "bob.json").write_text(json.dumps(bob), encoding="utf-8")
    alice = character(
        model,
        "Alice",
        spending={"XRP": {"max_per_payment": 2_000_000, "per_day": 5_000_000}},
        connector={
            "node_id": "alice",
            "parent": "bob",
            "peers": {
                "bob": {
                    "relation": "parent",
                    "url": f"ws://127.0.0.1:{btp}",
                    "username": "alice",
                    "token_env": "ALICE_BTP_TOKEN",
                    "settlement": "xrpl-paychan",
                    "settle_threshold": -500,
                    "settle_to": 0,
                }
            },
        },
        settings={"xrpl": xrpl_settings(xrpl_ledger, "ALICE")},
    )
    (folder / "alice.json").write_text(json.dumps(alice), encoding="utf-8")
    bob_server = serve(
        Settings(data_dir=tmp_path_factory.mktemp("bob-server"), files=[folder / "bob.json"],
                 token=TOKEN, admins=admins)
    )  # fmt: skip
    try:
        with bob_server.operator() as client:
            wait_for(lambda: client.get("/api/agents/Bob").json()["state"] == "running",
                     what="Bob running")  # fmt: skip
        alice_server = serve(
            Settings(data_dir=tmp_path_factory.mktemp("alice-server"),
                     files=[folder / "alice.json"], token=TOKEN, admins=admins)
        )  # fmt: skip
        try:
            with alice_server.operator() as client:
                state = wait_for(
                    lambda: (
                        (a := client.get("/api/agents/Alice").json())["state"]
                        in ("running", "failed")
                        and a
                    ),
                    what="Alice started",
                )
                assert state["state"] == "running", state["error"]
            yield bob_server, alice_server, f"http://127.0.0.1:{spsp}/.well-known/pay"
        finally:
            alice_server.stop()
    finally:
        bob_server.stop()


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
    model: OpenAIServer,
    xrpl_ledger: TestLedger,
    wallets: dict[str, Wallet],
) -> Iterator[tuple[Served, Served, str]]:
    with running_pair(tmp_path_factory, model, xrpl_ledger) as running:
        yield running


def pay_and_settle(alice: httpx.Client, model: OpenAIServer, bob_spsp: str) -> None:
    """Alice's model calls ask_agent; Bob's model answers the paid question; Alice replies."""
    model.queue(
        tool_call(
            "ask_agent",
            {"receiver": bob_spsp, "question": "what is a connector?", "max_price": 5000},
        ),
        reply("a connector forwards packets"),
        reply("Bob says: a connector forwards packets"),
    )
    answer = alice.post("/api/agents/Alice/messages", json={"text": "ask Bob"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == "Bob says: a connector forwards packets"


def test_a_paid_message_and_its_settlement_show_in_the_api_and_as_events(
    pair: tuple[Served, Served, str], model: OpenAIServer, xrpl_ledger: TestLedger,
    wallets: dict[str, Wallet],
) -> None:  # fmt: skip
    bob_server, alice_server, bob_spsp = pair
    bob, alice = bob_server.operator(), alice_server.operator()
    with bob, alice:
        pay_and_settle(alice, model, bob_spsp)

        # --- the paid message, on Bob's side: earnings, ledger, the event
        earnings = bob.get("/api/agents/Bob/earnings", params={"every": "hour"}).json()
        assert earnings["total"] == {"amount": PRICE, "messages": 1, "text": "0.001 XRP"}
        assert earnings["buckets"][-1]["amount"] == PRICE
        assert len(earnings["buckets"]) == 25  # the last 24 hours and the one running now
        by_day = bob.get("/api/agents/Bob/earnings", params={"every": "day"}).json()
        assert by_day["buckets"][-1] == {**by_day["buckets"][-1], "amount": PRICE, "messages": 1}
        ((_, paid),) = read_events(bob, 1, agent="Bob", kind="paid_message")
        assert paid["kind"] == "paid_message" and paid["amount"] == PRICE
        assert paid["sender"] == "alice" and paid["asset"] == "XRP" and paid["scale"] == 6

        # --- Alice owed Bob past her threshold: her engine opened a channel and sent a claim
        def settled() -> Any:
            peers = alice.get("/api/agents/Alice/settlements").json()["peers"]
            done = peers and [s["state"] for s in peers[0]["settlements"]] == ["done"]
            return peers if done else None

        (peer,) = wait_for(settled, what="Alice's settlement")
        assert peer["peer"] == "bob" and peer["engine"] == "xrpl-paychan"
        assert [(s["amount"], s["state"]) for s in peer["settlements"]] == [(PRICE, "done")]
        (channel,) = peer["channels"]
        assert channel["direction"] == "out" and channel["capacity"] == CHANNEL_DROPS
        assert channel["claimed"] == PRICE and channel["state"] == "open"
        assert channel["channel"] in xrpl_ledger.channels

        ledger = alice.get("/api/agents/Alice/ledger").json()
        assert ledger["address"] == "test.bob.alice" and ledger["asset"] == "XRP"
        (account,) = ledger["accounts"]
        assert account["peer"] == "bob" and account["balance"] == 0  # paid, then settled
        assert account["settle_threshold"] == -500 and account["connected"] is True
        assert account["settlement_engine"] == "xrpl-paychan"

        spent = alice.get("/api/agents/Alice/payments").json()["payments"]
        assert sorted((p["amount"], p["state"]) for p in spent) == [
            (PRICE, "spent"), (CHANNEL_DROPS, "spent")]  # fmt: skip

        payments = read_events(alice, 2, agent="Alice", kind="payment")
        assert sorted(d["amount"] for _, d in payments) == [PRICE, CHANNEL_DROPS]
        assert {name for name, _ in payments} == {"payment.committed"}
        channel_paid = next(d for _, d in payments if d["amount"] == CHANNEL_DROPS)
        assert channel_paid["destination"] == wallets["BOB"].address
        assert channel_paid["purpose"] == "payment channel to bob"
        opened, sent = read_events(alice, 2, agent="Alice", kind="settlement")
        assert opened[0] == "settlement.channel_opened" and opened[1]["capacity"] == CHANNEL_DROPS
        assert sent[0] == "settlement.claim_sent"
        assert (sent[1]["amount"], sent[1]["total"], sent[1]["channel"]) == (
            PRICE, PRICE, channel["channel"])  # fmt: skip

        # --- Bob checked the claim, credited it, and his engine redeems it on the ledger
        def redeemed() -> Any:
            (p,) = bob.get("/api/agents/Bob/settlements").json()["peers"]
            return p if p["channels"] and p["channels"][0]["redeemed"] == PRICE else None

        bob_peer = wait_for(redeemed, what="Bob's redeem")
        (incoming,) = bob_peer["channels"]
        assert incoming["direction"] == "in" and incoming["claimed"] == PRICE
        assert xrpl_ledger.channels[channel["channel"]]["balance"] == PRICE
        (bob_account,) = bob.get("/api/agents/Bob/ledger").json()["accounts"]
        assert bob_account["peer"] == "alice" and bob_account["balance"] == 0
        received, redeem = read_events(bob, 2, agent="Bob", kind="settlement")
        assert received[0] == "settlement.claim_received" and received[1]["amount"] == PRICE
        assert redeem[0] == "settlement.redeemed" and redeem[1]["total"] == PRICE
        assert received[1]["peer"] == "alice" and received[1]["plugin"] == "xrpl"

        # filters: by agent, and an unknown kind is refused with the known ones listed
        assert all(d["agent"] == "Bob" for _, d in read_events(bob, 3, agent="Bob"))
        refused = bob.get("/api/events", params={"kind": "sale"})
        assert refused.status_code == 422 and "paid_message" in refused.text


def test_a_stopped_agent_has_no_ledger_and_bad_queries_say_why(
    pair: tuple[Served, Served, str],
) -> None:
    bob_server, _, _ = pair
    with bob_server.operator() as bob:
        bad = bob.get("/api/agents/Bob/earnings", params={"every": "week"})
        assert bad.status_code == 422 and "hour" in bad.text
        far = bob.get("/api/agents/Bob/earnings", params={"every": "hour", "since": 0})
        assert far.status_code == 422 and "at most 2000" in far.text
        assert bob.get("/api/agents/Nobody/ledger").status_code == 404
        assert bob_server.client().get("/api/agents/Bob/ledger").status_code == 401
        assert bob.get("/api/agents/Bob/anchors").json() == {"services": {}}


@pytest.fixture(scope="module")
def anvil() -> Iterator[Any]:
    with run_anvil() as node:
        yield node


def test_an_anchored_batch_shows_in_the_api_and_as_an_event(
    tmp_path: Path, model: OpenAIServer, anvil: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aigent_trn import chain

    w3 = chain.connect(anvil.url, anvil.chain_id)
    registry = chain.deploy_registry(w3, chain.Signer(w3, anvil.keys[3]))
    monkeypatch.setenv("ANCHOR_KEY", anvil.keys[6])
    trn = {
        "network": "local", "rpc_url": anvil.url, "chain_id": anvil.chain_id,
        "registry": registry, "key_env": "ANCHOR_KEY", "batch_size": 2, "batch_seconds": 0.3,
        "poll_seconds": 0.05,
    }  # fmt: skip
    path = tmp_path / "notary.json"
    path.write_text(
        json.dumps(character(model, "Notary", plugins=["trn"], settings={"trn": trn})),
        encoding="utf-8",
    )
    served = serve(Settings(data_dir=tmp_path / "server", files=[path], token=TOKEN))
    try:
        with served.operator() as client:
            wait_for(lambda: client.get("/api/agents/Notary").json()["state"] == "running",
                     what="Notary running")  # fmt: skip
            replies = [
                client.post("/api/agents/Notary/messages", json={"text": f"note {i}"}).json()
                for i in range(2)
            ]
            ((_, batch),) = read_events(client, 1, agent="Notary", kind="anchor")
            assert batch["kind"] == "anchor.batch" and batch["count"] == 2
            assert batch["contract"] == registry and batch["chain_id"] == anvil.chain_id
            receipt = client.get(f"/api/agents/Notary/messages/{replies[0]['id']}/receipt")
            trn_receipt = receipt.json()["receipts"]["trn"]
            assert trn_receipt["root"] == batch["root"]
            assert trn_receipt["anchor"]["tx_hash"] == batch["tx_hash"]

            (service,) = client.get("/api/agents/Notary/anchors").json()["services"].values()
            assert service["anchored_batches"] == 1 and service["anchored_messages"] == 2
            assert service["running"] is True and service["last_error"] is None
            (latest,) = service["batches"]
            assert (latest["status"], latest["tx_hash"], latest["count"]) == (
                "anchored", batch["tx_hash"], 2)  # fmt: skip
            assert anvil.keys[6] not in json.dumps(service)
    finally:
        served.stop()


EMITTER = """
from decimal import Decimal

from aigent import hookimpl


@hookimpl
def register_services(register, ctx):
    class Started:
        name = "started"

        async def start(self):
            ctx.emit("tally.started", rate=Decimal("0.25"))

        async def stop(self):
            pass

    register(Started())
"""


def test_a_plugins_own_kind_arrives_as_plugin_event_in_plain_json(
    tmp_path: Path, model: OpenAIServer
) -> None:
    (tmp_path / "tally.py").write_text(EMITTER, encoding="utf-8")
    path = tmp_path / "counter.json"
    path.write_text(json.dumps(character(model, "Counter", plugins=["tally.py"])), encoding="utf-8")
    served = serve(Settings(data_dir=tmp_path / "server", files=[path], token=TOKEN))
    try:
        with served.operator() as client:
            ((name, event),) = read_events(client, 1, agent="Counter", kind="plugin")
            assert name == "plugin.event" and event["event"] == "tally.started"
            assert event["rate"] == "0.25" and event["plugin"]  # a Decimal, as text
    finally:
        served.stop()
