"""``ask_a2a`` pays paid A2A agents, over real HTTP: Bob (served, priced, x402 on) is asked by
Carol, who holds an XRPL wallet (aigent-xrpl's x402 payer pays his 402 on the XRPL test
ledger), and by Alice, Bob's child over BTP with no wallet plugin (her message goes as a paid
message to the SPSP URL his card names, over ILP). Each asker's model stand-in calls the
built-in ``ask_a2a`` action; Bob's earnings show the rail each answer was paid on. Refusals
(over ``max_price``, over the spending cap, no way to pay) happen before anything is signed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aigent_server.app import Settings
from aigent_xrpl.testledger import TestLedger
from xrpl.wallet import Wallet

from aigent import Agent, Character
from tests.fixtures.openai_server import OpenAIServer, reply, tool_call
from tests.server.conftest import TOKEN, Served, character, serve, wait_for
from tests.server.test_money import (  # noqa: F401  (fixtures used by name)
    PRICE,
    _fast_xrpl,
    running_pair,
    wallets,
    xrpl_ledger,
)


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
    model: OpenAIServer,
    xrpl_ledger: TestLedger,  # noqa: F811
    wallets: dict[str, Wallet],  # noqa: F811
) -> Iterator[tuple[Served, Served, str]]:
    with running_pair(tmp_path_factory, model, xrpl_ledger) as running:
        yield running


@pytest.fixture(scope="module")
def askers(
    tmp_path_factory: pytest.TempPathFactory,
    model: OpenAIServer,
    xrpl_ledger: TestLedger,  # noqa: F811
) -> Iterator[tuple[Served, Wallet]]:
    """A server with Carol (an XRPL wallet, no connector; a day's cap of 1.5 messages) and
    Dan (neither a wallet nor a connector)."""
    wallet = Wallet.create()
    xrpl_ledger.fund(wallet.address, 50_000_000)
    folder = tmp_path_factory.mktemp("askers")
    carol = character(
        model,
        "Carol",
        plugins=["xrpl"],
        connector={"enabled": False},
        settings={"xrpl": {"url": xrpl_ledger.url, "seed_env": "CAROL_XRPL_SEED",
                           "context": [], "cache_ttl": 0}},
        secrets={"CAROL_XRPL_SEED": wallet.seed or ""},
        spending={"XRP": {"max_per_payment": 5000, "per_day": 1500}},
    )  # fmt: skip
    dan = character(
        model, "Dan", connector={"enabled": False}, spending={"XRP": {"per_day": 1_000_000}}
    )
    for data in (carol, dan):
        (folder / f"{data['name']}.json").write_text(json.dumps(data), encoding="utf-8")
    server = serve(
        Settings(data_dir=folder / "data", files=sorted(folder.glob("*.json")), token=TOKEN)
    )
    try:
        with server.operator() as api:
            for name in ("Carol", "Dan"):
                wait_for(
                    lambda n=name: api.get(f"/api/agents/{n}").json()["state"] == "running",
                    what=f"{name} running",
                )
        yield server, wallet
    finally:
        server.stop()


def ask_bob(
    api: httpx.Client, asker: str, model: OpenAIServer, bob_url: str, max_price: int, *answers: str
) -> str:
    """``asker``'s model calls ask_a2a on Bob, then ``answers`` come (Bob's, then the asker's
    own); what the tool returned to the asker's model."""
    arguments = {"url": bob_url, "question": "what is a ledger?", "max_price": max_price}
    model.queue(tool_call("ask_a2a", arguments), *(reply(a) for a in answers))
    answer = api.post(f"/api/agents/{asker}/messages", json={"text": "ask Bob"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == answers[-1]
    tool = model.requests[-1].body["messages"][-1]
    assert tool["role"] == "tool"
    return str(tool["content"])


@contextmanager
def _restored(payers: list[Any], saved: list[Any]) -> Iterator[None]:
    try:
        yield
    finally:
        payers[:] = saved


def rails(bob: httpx.Client) -> dict[str, int]:
    earned = bob.get("/api/agents/Bob/money").json()["earned"]
    return {r["rail"]: r["messages"] for r in earned["rails"]}


def test_a_paid_a2a_agent_is_paid_over_x402_and_refused_over_max_price_or_the_cap(
    pair: tuple[Served, Served, str],
    askers: tuple[Served, Wallet],
    model: OpenAIServer,
    xrpl_ledger: TestLedger,  # noqa: F811
    wallets: dict[str, Wallet],  # noqa: F811
) -> None:
    bob_server, _, _ = pair
    server, carol_wallet = askers
    bob_url = f"{bob_server.url}/a2a/Bob"
    with server.operator() as api, bob_server.operator() as bob:
        before = rails(bob)
        balance = xrpl_ledger.balance(carol_wallet.address)

        # --- over max_price: refused from the card's price, nothing signed or sent to Bob
        asked = len(model.requests)
        refused = ask_bob(api, "Carol", model, bob_url, PRICE - 1, "Carol: too dear")
        assert len(model.requests) == asked + 2  # Bob's model was never asked
        assert "charges 0.001 XRP per message, more than max_price 999" in refused, refused
        assert xrpl_ledger.balance(carol_wallet.address) == balance
        assert api.get("/api/agents/Carol/payments").json()["payments"] == []

        # --- within it: Bob's 402 is paid on the XRPL and he answers
        result = ask_bob(
            api, "Carol", model, bob_url, PRICE, "a ledger keeps balances", "Carol: ok"
        )
        paid = json.loads(result)
        assert paid["text"] == "a ledger keeps balances" and paid["agent"] == "Bob"
        assert paid["rail"] == "x402-xrpl" and paid["paid"] == PRICE
        tx = xrpl_ledger.txs[paid["tx"]]
        assert tx["Account"] == carol_wallet.address
        assert tx["Destination"] == wallets["BOB"].address and tx["Amount"] == str(PRICE)
        assert tx["meta"]["TransactionResult"] == "tesSUCCESS"
        left = xrpl_ledger.balance(carol_wallet.address)
        assert left < balance - PRICE + 1  # the price and the fee
        (spent,) = api.get("/api/agents/Carol/payments").json()["payments"]
        assert spent["destination"] == wallets["BOB"].address and spent["state"] == "spent"
        after = rails(bob)
        assert after.get("x402-xrpl", 0) == before.get("x402-xrpl", 0) + 1

        # --- a second one would pass the day's cap (1500 drops): refused before signing
        asked = len(model.requests)
        capped = ask_bob(api, "Carol", model, bob_url, PRICE, "Carol: capped")
        assert len(model.requests) == asked + 2  # Bob answered nothing unpaid
        assert "daily cap of 0.0015 XRP would be exceeded" in capped, capped
        assert xrpl_ledger.balance(carol_wallet.address) == left
        payments = api.get("/api/agents/Carol/payments").json()["payments"]
        assert [p["state"] for p in payments] == ["spent"]
        assert rails(bob) == after


def test_without_an_x402_payer_the_ilp_fallback_pays_and_answers(
    pair: tuple[Served, Served, str],
    model: OpenAIServer,
) -> None:
    """Alice, as an agent without an x402 payer: her connector (Bob's child) pays the SPSP URL
    Bob's card names. (The xrpl plugin settles her channel, so it is hers and offers her a
    payer; the test takes it from her registry for the while, as if she had none.)"""
    bob_server, alice_server, bob_spsp = pair
    alice = alice_server.server.config.app.state.fleet.hosted["Alice"].agent
    payers = list(alice.ctx.x402_payers)
    assert [p.name for p in payers] == ["x402-xrpl"]
    alice.ctx.x402_payers.clear()
    with (
        alice_server.operator() as api,
        bob_server.operator() as bob,
        _restored(alice.ctx.x402_payers, payers),
    ):
        card = httpx.get(f"{bob_server.url}/a2a/Bob/.well-known/agent-card.json").json()
        (extension,) = card["capabilities"]["extensions"]
        assert extension["params"]["spsp_url"] == bob_spsp and extension["params"]["x402"]
        before = rails(bob)
        result = ask_bob(
            api, "Alice", model, f"{bob_server.url}/a2a/Bob", 5000, "paid by STREAM", "Alice: ok"
        )
        paid = json.loads(result)
        assert paid == {
            "text": "paid by STREAM",
            "agent": "Bob",
            "rail": "ilp",
            "paid": PRICE,
            "asset_code": "XRP",
            "asset_scale": 6,
        }
        assert rails(bob).get("ilp", 0) == before.get("ilp", 0) + 1
        payments = api.get("/api/agents/Alice/payments").json()["payments"]
        to_bob = [p for p in payments if p["destination"].startswith("test.bob")]
        assert [(p["amount"], p["state"]) for p in to_bob] == [(PRICE, "spent")], payments


def test_an_agent_with_no_way_to_pay_is_told_what_it_needs(
    pair: tuple[Served, Served, str],
    askers: tuple[Served, Wallet],
    model: OpenAIServer,
) -> None:
    bob_server, _, bob_spsp = pair
    server, _ = askers
    with server.operator() as api:
        asked = len(model.requests)
        refused = ask_bob(api, "Dan", model, f"{bob_server.url}/a2a/Bob", PRICE, "Dan: cannot")
    assert len(model.requests) == asked + 2
    assert "charges 0.001 XRP per message and takes x402 (exact on xrpl:1)" in refused, refused
    assert f"or ILP at {bob_spsp}" in refused
    assert "the aigent-xrpl plugin with a wallet" in refused
    assert "its connector on (connector.enabled)" in refused


async def test_agent_ask_a2a_in_code_pays_over_x402_and_names_the_rail(
    pair: tuple[Served, Served, str],
    model: OpenAIServer,
    xrpl_ledger: TestLedger,  # noqa: F811
    wallets: dict[str, Wallet],  # noqa: F811
    tmp_path: Path,
) -> None:
    """The embedding API: an agent that is not started is assembled to find its payers."""
    bob_server, _, _ = pair
    wallet = Wallet.create()
    xrpl_ledger.fund(wallet.address, 50_000_000)
    data = character(
        model,
        "Embedded",
        plugins=["xrpl"],
        connector={"enabled": False},
        memory={"enabled": False},
        settings={"xrpl": {"url": xrpl_ledger.url, "seed_env": "EMBEDDED_SEED", "context": []}},
        secrets={"EMBEDDED_SEED": wallet.seed or ""},
        spending={"XRP": {"per_day": 10_000}},
    )
    agent = Agent(Character.model_validate(data), data_dir=tmp_path)
    try:
        model.queue(reply("answered in code, paid"))
        answer = await agent.ask_a2a(f"{bob_server.url}/a2a/Bob", "hi", max_price=PRICE)
    finally:
        await agent.stop()
    assert str(answer) == "answered in code, paid"
    assert (answer.rail, answer.paid, answer.asset_code) == ("x402-xrpl", PRICE, "XRP")
    assert xrpl_ledger.txs[answer.tx]["Account"] == wallet.address
