"""x402 beside ILP, over real HTTP: strangers pay Bob per message with the ``x402-xrpl`` SDK's
own client, unchanged, on the XRPL test ledger, while Alice pays him over ILP; both land in
his one earnings ledger.

The SDK pins versions this workspace cannot share (an older FastAPI and OpenAI), so, like any
payer written by others, it runs in its own environment: ``uv run --with x402-xrpl`` starts
the payer script below in a process of its own, and the test reads what it printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aigent_server.app import Settings
from aigent_xrpl.testledger import TestLedger
from xrpl.wallet import Wallet

from tests.fixtures.openai_server import OpenAIServer, reply, tool_call
from tests.server.conftest import TOKEN, Served, character, serve, wait_for
from tests.server.test_money import (  # noqa: F401  (fixtures used by name)
    PRICE,
    _fast_xrpl,
    pay_and_settle,
    read_events,
    running_pair,
    wallets,
    xrpl_ledger,
)

SDK = "x402-xrpl==0.3.4"

PAYER = r"""
import json, sys

import requests
from xrpl.wallet import Wallet
from x402_xrpl.client import XRPLPresignedPaymentPayer, XRPLPresignedPaymentPayerOptions
from x402_xrpl.clients.base import decode_payment_response
from x402_xrpl.clients.requests import x402_requests
from x402_xrpl.types import PaymentRequirements

mode, url, rpc, seed, *rest = sys.argv[1:]
wallet = Wallet.from_seed(seed)
message = {"text": "hello from a stranger"}
if mode == "pay":
    session = x402_requests(wallet, rpc_url=rpc, network_filter="xrpl:1")
    answer = session.post(url, json=message, timeout=60)
elif mode == "replay":
    answer = requests.post(url, json=message, headers={"PAYMENT-SIGNATURE": rest[0]}, timeout=60)
elif mode == "sign":  # the SDK signs for an offer we changed first; nothing is sent
    offer = requests.post(url, json=message, timeout=60).json()["accepts"][0]
    change = json.loads(rest[0])
    offer.update({k: v for k, v in change.items() if k != "extra"})
    offer["extra"] = {**offer.get("extra", {}), **change.get("extra", {})}
    payer = XRPLPresignedPaymentPayer(
        XRPLPresignedPaymentPayerOptions(wallet=wallet, network="xrpl:1", rpc_url=rpc)
    )
    print(json.dumps({"header": payer.create_payment_header(PaymentRequirements.from_dict(offer))}))
    sys.exit(0)
elif mode == "underpay":
    offer = requests.post(url, json=message, timeout=60).json()["accepts"][0]
    offer["amount"] = str(int(offer["amount"]) // 2)
    payer = XRPLPresignedPaymentPayer(
        XRPLPresignedPaymentPayerOptions(wallet=wallet, network="xrpl:1", rpc_url=rpc)
    )
    header = payer.create_payment_header(PaymentRequirements.from_dict(offer))
    answer = requests.post(url, json=message, headers={"PAYMENT-SIGNATURE": header}, timeout=60)
settled = answer.headers.get("PAYMENT-RESPONSE")
print(json.dumps({
    "status": answer.status_code,
    "body": answer.json(),
    "sent": answer.request.headers.get("PAYMENT-SIGNATURE"),
    "settled": decode_payment_response(settled) if settled else None,
}))
"""


def uv() -> list[str]:
    found = os.environ.get("UV") or shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def stranger(folder: Path, mode: str, url: str, rpc: str, wallet: Wallet, *extra: str) -> Any:
    """Run the SDK's own client in an environment of its own; what it saw, as JSON."""
    script = folder / "payer.py"
    script.write_text(PAYER, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    done = subprocess.run(
        [*uv(), "run", "--quiet", "--no-project", "--with", SDK, "python", str(script),
         mode, url, rpc, wallet.seed or "", *extra],
        capture_output=True, text=True, timeout=300, env=env, cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
    model: OpenAIServer,
    xrpl_ledger: TestLedger,  # noqa: F811
    wallets: dict[str, Wallet],  # noqa: F811
) -> Iterator[tuple[Served, Served, str]]:
    with running_pair(tmp_path_factory, model, xrpl_ledger) as running:
        yield running


def test_strangers_pay_with_the_sdk_client_and_earnings_show_both_rails(
    pair: tuple[Served, Served, str],
    model: OpenAIServer,
    xrpl_ledger: TestLedger,  # noqa: F811
    wallets: dict[str, Wallet],  # noqa: F811
    tmp_path: Path,
) -> None:
    bob_server, alice_server, bob_spsp = pair
    url = f"{bob_server.url}/x402/Bob/messages"
    bob_address = wallets["BOB"].address
    payer = Wallet.create()
    xrpl_ledger.fund(payer.address, 50_000_000)
    anyone = httpx.Client(timeout=30)

    # --- no payment: 402, the requirements from Bob's price, in the body and the header
    first = anyone.post(url, json={"text": "hi"})
    assert first.status_code == 402, first.text
    body = first.json()
    assert body["x402Version"] == 2 and "PAYMENT-SIGNATURE" in body["error"]
    (offer,) = body["accepts"]
    assert offer["scheme"] == "exact" and offer["network"] == "xrpl:1"
    assert offer["amount"] == str(PRICE) and offer["asset"] == "XRP"
    assert offer["payTo"] == bob_address and offer["extra"]["invoiceId"]
    assert first.headers["PAYMENT-REQUIRED"]
    # a bad body is refused before any payment; an agent that did not opt in is not there
    assert anyone.post(url, json={"txt": "hi"}).status_code == 422
    assert (
        anyone.post(f"{alice_server.url}/x402/Alice/messages", json={"text": "hi"}).status_code
        == 404
    )

    # --- the SDK's own client pays and gets the reply with a payment response
    before = xrpl_ledger.balance(bob_address)
    model.queue(reply("paid answer"))
    paid = stranger(tmp_path, "pay", url, xrpl_ledger.url, payer)
    assert paid["status"] == 200, paid
    assert paid["body"]["text"] == "paid answer"
    assert paid["body"]["paid"]["rail"] == "x402-xrpl" and paid["body"]["paid"]["amount"] == PRICE
    settled = paid["settled"]
    assert settled["success"] is True and settled["network"] == "xrpl:1"
    assert settled["payer"] == payer.address and settled["transaction"] in xrpl_ledger.txs
    assert xrpl_ledger.balance(bob_address) == before + PRICE

    # --- the same payment again: refused, saying so
    again = stranger(tmp_path, "replay", url, xrpl_ledger.url, payer, paid["sent"])
    assert again["status"] == 402 and again["body"]["reason"] == "replayed", again
    assert "already used" in again["body"]["error"]

    # --- half the price, signed by the SDK: refused naming the price and what came
    short = stranger(tmp_path, "underpay", url, xrpl_ledger.url, payer)
    assert short["status"] == 402 and short["body"]["reason"] == "underpayment", short
    assert (
        f"{PRICE} drops" in short["body"]["error"]
        and f"{PRICE // 2} drops" in short["body"]["error"]
    )
    assert xrpl_ledger.balance(bob_address) == before + PRICE  # nothing more moved

    # --- Alice pays over ILP: one ledger, split by rail, in the API and as events
    with bob_server.operator() as bob, alice_server.operator() as alice:
        pay_and_settle(alice, model, bob_spsp)
        money = bob.get("/api/agents/Bob/money").json()["earned"]
        assert money["amount"] == 2 * PRICE and money["messages"] == 2
        rails = {r["rail"]: (r["amount"], r["messages"]) for r in money["rails"]}
        assert rails == {"ilp": (PRICE, 1), "x402-xrpl": (PRICE, 1)}
        earnings = bob.get("/api/agents/Bob/earnings").json()
        assert {r["rail"] for r in earnings["rails"]} == {"ilp", "x402-xrpl"}
        events = read_events(bob, 2, agent="Bob", kind="paid_message")
        assert sorted(e["rail"] for _, e in events) == ["ilp", "x402-xrpl"]
        history = bob.get("/api/agents/Bob/messages", params={"room": f"x402:{payer.address}"})
        assert [m["text"] for m in history.json()["messages"]][-1] == "paid answer"
    anyone.close()


def test_wrong_pay_to_wrong_asset_and_expired_offers_are_refused_naming_what(
    pair: tuple[Served, Served, str],
    xrpl_ledger: TestLedger,  # noqa: F811
    wallets: dict[str, Wallet],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bob_server, _, _ = pair
    url = f"{bob_server.url}/x402/Bob/messages"
    payer = Wallet.create()
    xrpl_ledger.fund(payer.address, 50_000_000)
    elsewhere = wallets["ALICE"].address

    def send(header: str) -> dict[str, Any]:
        answer = httpx.post(url, json={"text": "hi"}, headers={"PAYMENT-SIGNATURE": header})
        assert answer.status_code == 402, answer.text
        return dict(answer.json())

    def signed(change: dict[str, Any]) -> str:
        made = stranger(tmp_path, "sign", url, xrpl_ledger.url, payer, json.dumps(change))
        return str(made["header"])

    wrong_to = send(signed({"payTo": elsewhere}))
    assert wrong_to["reason"] == "wrong_pay_to" and elsewhere in wrong_to["error"]
    issuer = Wallet.create().address
    wrong_asset = send(signed({"asset": "USD", "amount": "5", "extra": {"issuer": issuer}}))
    assert wrong_asset["reason"] == "wrong_asset" and "USD" in wrong_asset["error"]
    forged = send(signed({"extra": {"invoiceId": "1.2.3"}}))
    assert forged["reason"] == "invalid_invoice"

    header = signed({})
    import aigent_server.x402 as door

    later = door.clock() + door.TIMEOUT + 5
    monkeypatch.setattr(door, "clock", lambda: later)
    expired = send(header)
    assert expired["reason"] == "expired" and "expired" in expired["error"]
    assert xrpl_ledger.balance(payer.address) == 50_000_000  # nothing submitted, not even a fee


def test_an_agent_pays_an_x402_endpoint_within_its_limits_and_is_refused_over_them(
    pair: tuple[Served, Served, str],
    model: OpenAIServer,
    xrpl_ledger: TestLedger,  # noqa: F811
    wallets: dict[str, Wallet],  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    bob_server, _, _ = pair
    bob_address = wallets["BOB"].address
    carol_wallet = Wallet.create()
    xrpl_ledger.fund(carol_wallet.address, 50_000_000)
    folder = tmp_path_factory.mktemp("carol")
    carol = character(
        model,
        "Carol",
        plugins=["xrpl"],
        connector={"enabled": False},
        settings={"xrpl": {"url": xrpl_ledger.url, "seed_env": "CAROL_XRPL_SEED",
                           "context": [], "cache_ttl": 0}},
        secrets={"CAROL_XRPL_SEED": carol_wallet.seed or ""},
        spending={"XRP": {"max_per_payment": 5000, "per_day": 1500}},
    )  # fmt: skip
    (folder / "carol.json").write_text(json.dumps(carol), encoding="utf-8")
    server = serve(Settings(data_dir=folder / "data", files=[folder / "carol.json"], token=TOKEN))
    url = f"{bob_server.url}/x402/Bob/messages"
    ask = {"url": url, "body": json.dumps({"text": "what is x402?"}), "max_price": "0.01"}
    try:
        with server.operator() as client, bob_server.operator() as bob:
            wait_for(lambda: client.get("/api/agents/Carol").json()["state"] == "running",
                     what="Carol running")  # fmt: skip
            earned = bob.get("/api/agents/Bob/money").json()["earned"]["amount"]
            model.queue(tool_call("x402_fetch", ask), reply("HTTP 402 done"), reply("Carol: ok"))
            answer = client.post("/api/agents/Carol/messages", json={"text": "ask Bob, paying"})
            assert answer.status_code == 200 and answer.json()["text"] == "Carol: ok", answer.text
            tool = model.requests[-1].body["messages"][-1]
            result = json.loads(tool["content"])
            assert result["status"] == 200 and result["body"]["text"] == "HTTP 402 done"
            tx = xrpl_ledger.txs[result["paid"]["tx"]]
            assert tx["Destination"] == bob_address and tx["Amount"] == str(PRICE)
            assert tx["meta"]["TransactionResult"] == "tesSUCCESS"
            left = xrpl_ledger.balance(carol_wallet.address)
            assert bob.get("/api/agents/Bob/money").json()["earned"]["amount"] == earned + PRICE
            (spent,) = client.get("/api/agents/Carol/payments").json()["payments"]
            assert spent["destination"] == bob_address and spent["state"] == "spent"

            # a second one would pass the day's cap: refused before anything is signed
            model.queue(tool_call("x402_fetch", ask), reply("Carol: refused"))
            answer = client.post("/api/agents/Carol/messages", json={"text": "again"})
            assert answer.status_code == 200, answer.text
            refusal = model.requests[-1].body["messages"][-1]["content"]
            assert "daily cap of 0.0015 XRP would be exceeded" in refusal, refusal
            assert xrpl_ledger.balance(carol_wallet.address) == left
            payments = client.get("/api/agents/Carol/payments").json()["payments"]
            assert [p["state"] for p in payments] == ["spent"]
    finally:
        server.stop()


def test_the_a2a_door_takes_the_same_x402_payment(
    pair: tuple[Served, Served, str],
    model: OpenAIServer,
    xrpl_ledger: TestLedger,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A stranger's A2A call to Bob is paid the same way: 402 with the same offer, then the
    SDK's signed payment in PAYMENT-SIGNATURE beside the JSON-RPC call."""
    bob_server, _, _ = pair
    payer = Wallet.create()
    xrpl_ledger.fund(payer.address, 50_000_000)
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "message/send",
        "params": {"message": {"kind": "message", "messageId": "m-x402", "role": "user",
                               "parts": [{"kind": "text", "text": "hi over A2A"}]}},
    }  # fmt: skip
    with bob_server.client() as http, bob_server.operator() as bob:
        unpaid = http.post("/a2a/Bob", json=call)
        assert unpaid.status_code == 402, unpaid.text
        (offer,) = unpaid.json()["accepts"]
        assert offer["network"] == "xrpl:1" and offer["amount"] == str(PRICE)
        before = bob.get("/api/agents/Bob/money").json()["earned"]["rails"]
        signed = stranger(
            tmp_path, "sign", f"{bob_server.url}/x402/Bob/messages", xrpl_ledger.url, payer, "{}"
        )
        model.queue(reply("paid over A2A"))
        paid = http.post("/a2a/Bob", json=call, headers={"PAYMENT-SIGNATURE": signed["header"]})
        assert paid.status_code == 200, paid.text
        assert paid.json()["result"]["parts"][0]["text"] == "paid over A2A"
        after = bob.get("/api/agents/Bob/money").json()["earned"]["rails"]
        count = {r["rail"]: r["messages"] for r in after}
        assert count["x402-xrpl"] == {r["rail"]: r["messages"] for r in before}["x402-xrpl"] + 1
        # Answered over A2A, the payment's claim is closed: the same payment again is refused
        # as replayed (not 409: the answer was marked, not left answering).
        again = http.post("/a2a/Bob", json=call, headers={"PAYMENT-SIGNATURE": signed["header"]})
        assert again.status_code == 402 and again.json()["reason"] == "replayed", again.text


def test_a_replay_is_refused_after_a_restart_too(
    pair: tuple[Served, Served, str],
    model: OpenAIServer,
    xrpl_ledger: TestLedger,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Last in this module: it restarts Bob's server on the same data directory."""
    bob_server, _, _ = pair
    url = f"{bob_server.url}/x402/Bob/messages"
    payer = Wallet.create()
    xrpl_ledger.fund(payer.address, 50_000_000)
    model.queue(reply("first and only"))
    paid = stranger(tmp_path, "pay", url, xrpl_ledger.url, payer)
    assert paid["status"] == 200, paid
    bob_server.stop()
    again = serve(Settings(data_dir=bob_server.data_dir, token=TOKEN))
    try:
        with again.operator() as bob:
            wait_for(lambda: bob.get("/api/agents/Bob").json()["state"] == "running",
                     what="Bob running again")  # fmt: skip
        replay = stranger(
            tmp_path, "replay", f"{again.url}/x402/Bob/messages", xrpl_ledger.url, payer,
            paid["sent"],
        )  # fmt: skip
        assert replay["status"] == 402 and replay["body"]["reason"] == "replayed", replay
    finally:
        again.stop()


def test_an_uploaded_agents_x402_fetch_url_is_confined_like_a_receiver() -> None:
    from aigent_server.confine import Hosts

    from aigent.errors import ActionBlocked

    check = Hosts().plugin()
    with pytest.raises(ActionBlocked, match=r"x402_fetch: url: .*may not reach 127.0.0.1:5432"):
        check.before_action("x402_fetch", {"url": "http://127.0.0.1:5432/x402/Bob/messages"})
    check.before_action("x402_fetch", {"url": "https://s.altnet.rippletest.net:51234/"})
    Hosts(["127.0.0.1:8000"]).plugin().before_action(
        "x402_fetch", {"url": "http://127.0.0.1:8000/x"}
    )
