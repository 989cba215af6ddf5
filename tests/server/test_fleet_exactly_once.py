"""A fleet loses nothing and does nothing twice when a server dies mid-work: two ``aigent serve``
processes on one PostgreSQL; the one running the seller is SIGKILLed while a paid conversation
is in flight (the buyer's payment held by the seller while its model thinks) and while an
anchoring batch is in flight (the anchor transaction sent, the chain not yet mining). The
seller comes back on the other server (the same STREAM secret, ledger, earnings, spending
records, proof store and X state, all in its PostgreSQL schema); the buyer's payment, retried
while the seller was away, is taken and answered there; then the money, the proofs and the X
state equal what happened, exactly once: each mention answered once, three sales counted once
on both ledgers, in the seller's earnings and in the buyer's spending, every published message
anchored once (the batch in flight confirmed, not sent again).

Real parts: PostgreSQL, both servers, the agents' connectors over BTP (the buyer is the
seller's child), STREAM/SPSP, anvil with the AnchorRegistry contract (mining held back with
``evm_setAutomine``, as a slow chain would), the X API v2 stand-in (tests/fixtures/x_api.py).
The model is the OpenAI wire stand-in. What this cannot check: a real TRN node's finality and
X's own dedup; the seller's ports are the same on both servers because both run on this one
machine (between machines, a hub connector or a stable name for the agent is needed)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.connector.postgres_server import Server
from tests.connector.test_postgres_store import pg  # noqa: F401  (the session's server)
from tests.fixtures.anvil import Anvil, run_anvil
from tests.fixtures.openai_server import Behaviour, OpenAIServer, reply, tool_call
from tests.fixtures.x_api import ME, XApiServer
from tests.server.conftest import character
from tests.server.test_command import free_port
from tests.server.test_fleet_postgres import (  # noqa: F401
    LEASE,
    TOKEN,
    _agents,
    _serve,
    schema,
    stop,
)

pytestmark = pytest.mark.slow

PRICE = 1000
HOLD = "take your time"  # the paid question the seller's model sits on
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}
X_SECRETS = {
    "TWITTER_API_KEY": "ck-fleet",
    "TWITTER_API_SECRET": "cs-fleet",
    "TWITTER_ACCESS_TOKEN": "at-fleet",
    "TWITTER_ACCESS_TOKEN_SECRET": "ats-fleet",
}


class SellerModel(OpenAIServer):
    """Echoes, except that it sits on the held question (a model that takes its time)."""

    def __init__(self) -> None:
        super().__init__()
        self.held = threading.Event()

    def _next(self, body: dict[str, Any]) -> Behaviour:
        if HOLD in json.dumps(body.get("messages", [])[-1:]) and not self.held.is_set():
            self.held.set()  # the first time only: the server asking is about to die
            return Behaviour(text="too late", delay=60)
        return super()._next(body)


@pytest.fixture
def chain() -> Iterator[tuple[Anvil, str]]:
    from aigent_trn import chain as trn

    with run_anvil() as anvil:
        w3 = trn.connect(anvil.url, 7672)
        yield anvil, trn.deploy_registry(w3, trn.Signer(w3, anvil.keys[3]))


@pytest.fixture
def x_api() -> Iterator[XApiServer]:
    server = XApiServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def models() -> Iterator[tuple[SellerModel, OpenAIServer]]:
    seller, buyer = SellerModel().start(), OpenAIServer().start()
    try:
        yield seller, buyer  # type: ignore[misc]
    finally:
        seller.stop()
        buyer.stop()


def _rpc(anvil: Anvil, method: str, *params: Any) -> Any:
    answer = httpx.post(anvil.url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                         "params": list(params)})  # fmt: skip
    return answer.json()["result"]


def _until(check: Callable[[], Any], what: str, seconds: float = 30.0, port: int = 0) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        if time.monotonic() > deadline:
            agents = _agents(port) if port else "?"
            raise AssertionError(f"not in {seconds:g} s: {what}; agents: {agents}")
        time.sleep(0.1)
    return found


def _runner(ports: tuple[int, ...], agent: str) -> str | None:
    """The server that runs ``agent``, as the one running it says (None: none yet)."""
    for port in ports:
        try:
            found = {a["name"]: a for a in _agents(port)}
        except httpx.HTTPError:
            continue
        entry = found.get(agent)
        if entry and entry["state"] == "running":
            return str(entry["server"])
    return None


def _ask(port: int, model: OpenAIServer, pointer: str, question: str, said: str) -> None:
    """The buyer, told to through the API, pays the seller to answer ``question``."""
    arguments = {"receiver": pointer, "question": question, "max_price": 2 * PRICE}
    model.queue(tool_call("ask_agent", arguments), reply(said))
    answer = httpx.post(f"http://127.0.0.1:{port}/api/agents/Buyer/messages",
                        json={"text": f"ask the seller {question}"}, headers=OPERATOR,
                        timeout=60)  # fmt: skip
    assert answer.status_code == 200 and answer.json()["text"] == said, answer.text
    tool_result = json.dumps(model.requests[-1].body["messages"][-1])
    assert f"echo: {question}" in tool_result, tool_result  # the seller's paid answer


def _replies(x_api: XApiServer) -> dict[str, list[str]]:
    """Mention id -> the agent's posts replying to it."""
    found: dict[str, list[str]] = {}
    for post in list(x_api.posts.values()):
        if post["author_id"] == ME["id"] and post.get("in_reply_to"):
            found.setdefault(post["in_reply_to"], []).append(post["id"])
    return found


def test_a_paid_conversation_and_an_anchoring_batch_in_flight_survive_a_sigkill_once(
    pg: Server,  # noqa: F811
    schema: str,  # noqa: F811
    tmp_path: Path,
    chain: tuple[Anvil, str],
    x_api: XApiServer,
    models: tuple[SellerModel, OpenAIServer],
) -> None:
    anvil, registry = chain
    seller_model, buyer_model = models
    btp, spsp = free_port(), free_port()
    pointer = f"http://127.0.0.1:{spsp}/.well-known/pay"
    folder = tmp_path / "characters"
    folder.mkdir()
    seller = character(
        seller_model,  # type: ignore[arg-type]
        "Seller",
        price={"amount": PRICE, "asset_code": "XRP", "asset_scale": 6},
        plugins=["trn", "twitter"],
        clients=["twitter"],
        loop={"delay": 0.3, "jitter": 0, "tasks": [{"name": "respond-to-mentions"}]},
        secrets={**X_SECRETS, "SELLER_TRN_KEY": anvil.keys[5],
                 "BUYER_BTP_TOKEN": "buyer-btp-secret"},
        settings={
            "trn": {"network": "local", "rpc_url": anvil.url, "registry": registry,
                    "key_env": "SELLER_TRN_KEY", "batch_size": 1, "batch_seconds": 0.2,
                    "poll_seconds": 0.1, "cache_ttl": 0},
            "twitter": {"api_base": x_api.url},
        },
        connector={
            "node_id": "seller", "address": "test.seller",
            "listen": {"port": btp}, "spsp": {"port": spsp},
            "peers": {"buyer": {"relation": "child", "token_env": "BUYER_BTP_TOKEN",
                                "max_balance": 1_000_000}},
        },
    )  # fmt: skip
    buyer = character(
        buyer_model,
        "Buyer",
        spending={"XRP": {"max_per_payment": 5 * PRICE, "per_day": 100 * PRICE}},
        secrets={"BUYER_BTP_TOKEN": "buyer-btp-secret"},
        connector={
            "node_id": "buyer", "parent": "seller",
            "peers": {"seller": {"relation": "parent", "url": f"ws://127.0.0.1:{btp}",
                                 "username": "buyer", "token_env": "BUYER_BTP_TOKEN"}},
        },
    )  # fmt: skip
    for data in (seller, buyer):
        (folder / f"{data['name'].lower()}.json").write_text(json.dumps(data), encoding="utf-8")

    ports = free_port(), free_port()
    reach = [arg for url in (seller_model.url, buyer_model.url, anvil.url, x_api.url)
             for arg in ("--allow-host", url.split("/")[2])]  # fmt: skip
    servers: list[subprocess.Popen[str]] = []
    try:
        # The first server alone takes both; the second joins and takes its share: the seller
        # (the first gives back the last by name).
        servers.append(_serve(folder, tmp_path / "data0", ports[0], pg, schema, *reach))
        _until(
            lambda: _runner(ports, "Seller") and _runner(ports, "Buyer"),
            "both run",
            port=ports[0],
        )
        servers.append(_serve(folder, tmp_path / "data1", ports[1], pg, schema, *reach))

        def two_servers() -> list[str]:
            listed = httpx.get(f"http://127.0.0.1:{ports[0]}/api/servers", headers=OPERATOR)
            found = sorted(listed.json()["servers"], key=lambda s: s["started_at"])
            return [s["name"] for s in found] if len(found) == 2 else []

        first, second = _until(two_servers, "two servers", port=ports[0])
        _until(
            lambda: _runner(ports, "Seller") == second,
            "the seller on the second server",
            port=ports[0],
        )
        _until(lambda: _runner(ports, "Buyer") == first, "the buyer on the first")

        # Before: two mentions answered on X, a paid question answered, all anchored.
        before = [x_api.mention(f"@agent question {i}") for i in range(2)]
        _until(lambda: set(before) <= set(_replies(x_api)), "the mentions answered")
        _ask(ports[0], buyer_model, pointer, "first question", "the seller answered first")

        # In flight 1: an anchoring batch. The chain stops mining; the seller publishes; its
        # anchor transaction waits in the pool.
        _rpc(anvil, "evm_setAutomine", False)
        pending = x_api.mention("@agent published while the chain is slow")
        _until(lambda: pending in _replies(x_api), "the slow-chain mention answered")
        _until(lambda: _rpc(anvil, "txpool_status")["pending"] != "0x0", "the anchor tx sent")

        # In flight 2: a paid conversation. The buyer's model asks the seller (paying it), and
        # the seller's model sits on the question, holding the buyer's payment unanswered.
        buyer_model.queue(
            tool_call("ask_agent", {"receiver": pointer, "question": HOLD,
                                    "max_price": 2 * PRICE}),
            reply("the seller did not answer"),
        )  # fmt: skip
        asked: dict[str, Any] = {}

        def ask() -> None:
            to_buyer = f"http://127.0.0.1:{ports[0]}/api/agents/Buyer/messages"
            answer = httpx.post(to_buyer, json={"text": "ask the seller"}, headers=OPERATOR,
                                timeout=120)  # fmt: skip
            asked["status"], asked["body"] = answer.status_code, answer.json()

        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        assert seller_model.held.wait(30), "the paid question did not reach the seller's model"

        servers[1].send_signal(signal.SIGKILL)
        servers[1].wait(timeout=10)
        killed = time.monotonic()
        while_down = x_api.mention("@agent said while the seller's server was down")
        _rpc(anvil, "evm_setAutomine", True)
        _rpc(anvil, "evm_mine")
        _until(lambda: _runner(ports, "Seller") == first, "the seller back", 4 * LEASE)
        print(f"\nthe seller was back {time.monotonic() - killed:.1f} s after the SIGKILL")
        asking.join(timeout=120)
        assert asked.get("status") == 200, asked
        # The buyer's STREAM sender retried (the parent link was down: T01) until the seller
        # was back; the seller's next server, holding the same STREAM secret, took the payment
        # and answered: the conversation in flight completed, once.
        print(
            f"the buyer's question in flight was answered {time.monotonic() - killed:.1f} s "
            "after the SIGKILL"
        )
        assert asked["body"]["text"] == "the seller did not answer"  # what the model said next
        tool_result = json.dumps(buyer_model.requests[-1].body["messages"][-1])
        assert f"echo: {HOLD}" in tool_result, tool_result

        # After: the seller answers what came while it was down, and is paid once.
        _until(lambda: while_down in _replies(x_api), "the mention made while down answered")
        _ask(ports[0], buyer_model, pointer, "and now?", "the seller answered again")
        sales = 3  # before the kill, in flight at the kill, after
        time.sleep(3 * 0.3)  # a few more rounds of the X loop: nothing is answered twice

        # X: each mention answered exactly once, on whichever server.
        replies = _replies(x_api)
        assert set(replies) == {*before, pending, while_down}, replies
        assert all(len(posts) == 1 for posts in replies.values()), replies

        # Money: one sale, counted once on each side.
        with httpx.Client(base_url=f"http://127.0.0.1:{ports[0]}", headers=OPERATOR) as api:
            earned = api.get("/api/agents/Seller/earnings").json()
            ledger_seller = api.get("/api/agents/Seller/ledger").json()
            ledger_buyer = api.get("/api/agents/Buyer/ledger").json()
            payments = api.get("/api/agents/Buyer/payments").json()
            anchors = api.get("/api/agents/Seller/anchors").json()
        total = (earned["total"]["messages"], earned["total"]["amount"])
        assert total == (sales, sales * PRICE), earned
        balances = {a["peer"]: int(a["balance"]) for a in ledger_seller["accounts"]}
        assert balances["buyer"] == sales * PRICE, ledger_seller
        balances = {a["peer"]: int(a["balance"]) for a in ledger_buyer["accounts"]}
        assert balances["seller"] == -sales * PRICE, ledger_buyer
        spends = [(p["state"], int(p["amount"])) for p in payments["payments"]]
        assert spends == [("spent", PRICE)] * sales, payments  # none held, none twice

        # Proofs: what the seller published (four replies on X, three paid answers) anchored,
        # each once: the batch in flight at the kill was confirmed, not sent again, not lost.
        trn = anchors["services"]["trn"]
        assert (trn["queued_messages"], trn["sealed_batches"]) == (0, 0), trn
        assert trn["anchored_messages"] == 4 + sales, trn
        from aigent_trn import chain as trn_chain

        w3 = trn_chain.connect(anvil.url, 7672)
        logs = w3.eth.get_logs({"address": registry, "fromBlock": 0})
        roots = sorted(log["topics"][1].hex().removeprefix("0x") for log in logs)
        assert roots == sorted(b["root"] for b in trn["batches"]), (roots, trn["batches"])
        assert len(roots) == trn["anchored_batches"] == len(set(roots))
    finally:
        stop(servers)
