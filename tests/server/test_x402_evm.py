"""x402 on EVM over real HTTP: a stranger pays Eve per message with the ``x402`` SDK's own
client (``x402ClientSync`` with its ``exact`` EVM scheme, through its requests adapter),
signing an EIP-3009 authorization for a USDC-like test token on a local anvil; Eve's server
verifies and settles it with the SDK's facilitator code and her key. Nothing is mocked."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aigent_server.app import Settings
from eth_account import Account

from tests.fixtures import x402_token
from tests.fixtures.anvil import Anvil, run_anvil
from tests.fixtures.openai_server import OpenAIServer, error, reply
from tests.server.conftest import TOKEN, Served, character, serve, wait_for

PRICE = 1000  # drops: what a message costs, booked in Eve's earnings
TOKEN_PRICE = 10_000  # the same price in the token (0.01 USDC)
SETTLER = 3  # anvil's account whose key Eve settles with (no other server test uses it)


@pytest.fixture(scope="module")
def chain() -> Iterator[tuple[Anvil, str]]:
    with run_anvil() as anvil:
        yield anvil, x402_token.deploy(anvil)


@pytest.fixture(scope="module")
def eve(
    tmp_path_factory: pytest.TempPathFactory, model: OpenAIServer, chain: tuple[Anvil, str]
) -> Iterator[Served]:
    anvil, token = chain
    folder = tmp_path_factory.mktemp("eve")
    evm = {
        "network": f"eip155:{anvil.chain_id}",
        "asset": token,
        "amount": str(TOKEN_PRICE),
        "name": x402_token.NAME,
        "version": x402_token.VERSION,
        "rpc_url": anvil.url,
        "key_env": "EVE_EVM_KEY",
    }
    data = character(
        model,
        "Eve",
        price={"amount": PRICE, "asset_code": "XRP", "asset_scale": 6},
        settings={"x402": {"evm": evm}},
        secrets={"EVE_EVM_KEY": anvil.keys[SETTLER]},
    )
    (folder / "eve.json").write_text(json.dumps(data), encoding="utf-8")
    free = character(model, "Fay", settings={"x402": {}})  # no price: answers anyone
    (folder / "fay.json").write_text(json.dumps(free), encoding="utf-8")
    files = [folder / "eve.json", folder / "fay.json"]
    server = serve(Settings(data_dir=folder / "data", files=files, token=TOKEN))
    try:
        with server.operator() as client:
            state = wait_for(
                lambda: (
                    (a := client.get("/api/agents/Eve").json())["state"] in ("running", "failed")
                    and a
                ),
                what="Eve started",
            )
            assert state["state"] == "running", state["error"]
        yield server
    finally:
        server.stop()


def sdk_client(key: str, network: str, token: str) -> Any:
    """The SDK's client as a payer sets it up: its EVM signer, and our test token allowed
    (its spend controls take only the tokens it knows, or those the payer names)."""
    from x402 import x402ClientSync
    from x402.mechanisms.evm import EthAccountSigner
    from x402.mechanisms.evm.exact import register_exact_evm_client

    client = x402ClientSync()
    register_exact_evm_client(client, EthAccountSigner(Account.from_key(key)))
    client.set_spend_controls(
        {"allowed_assets": [{"network": network, "asset": token,
                             "max_amount_per_payment": str(TOKEN_PRICE)}]}
    )  # fmt: skip
    return client


def test_the_sdk_client_pays_in_a_token_and_replays_and_underpayments_are_refused(
    eve: Served, chain: tuple[Anvil, str], model: OpenAIServer, tmp_path: Path
) -> None:
    from x402.http import decode_payment_response_header, encode_payment_signature_header
    from x402.http.clients import x402_requests
    from x402.schemas import PaymentRequired

    anvil, token = chain
    payer = Account.create()
    x402_token.mint(anvil, token, payer.address, 1_000_000)
    settler = Account.from_key(anvil.keys[SETTLER]).address
    url = f"{eve.url}/x402/Eve/messages"

    # --- no payment: 402 with the token offer (and no XRPL one: only evm is set)
    first = httpx.post(url, json={"text": "hi"})
    assert first.status_code == 402, first.text
    (offer,) = first.json()["accepts"]
    assert offer["network"] == f"eip155:{anvil.chain_id}" and offer["asset"] == token
    assert offer["amount"] == str(TOKEN_PRICE) and offer["payTo"] == settler
    assert offer["extra"] == {"name": x402_token.NAME, "version": x402_token.VERSION}

    # --- the SDK's client pays and gets the reply with a payment response
    model.queue(reply("paid in tokens"))
    session = x402_requests(sdk_client(payer.key.hex(), offer["network"], token))
    answer = session.post(url, json={"text": "hello"}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == "paid in tokens"
    settled = decode_payment_response_header(answer.headers["PAYMENT-RESPONSE"])
    assert settled.success and settled.payer and settled.payer.lower() == payer.address.lower()
    assert x402_token.balance(anvil, token, settler) == TOKEN_PRICE
    assert x402_token.balance(anvil, token, payer.address) == 1_000_000 - TOKEN_PRICE

    # --- the same authorization again: refused, nothing moves
    sent = answer.request.headers["PAYMENT-SIGNATURE"]
    again = httpx.post(url, json={"text": "hi"}, headers={"PAYMENT-SIGNATURE": sent})
    assert again.status_code == 402 and again.json()["reason"] == "replayed", again.text

    # --- half the price, signed by the SDK's client for a changed offer: refused naming both
    required = PaymentRequired.model_validate(first.json())
    required.accepts[0].amount = str(TOKEN_PRICE // 2)
    payload = sdk_client(payer.key.hex(), offer["network"], token).create_payment_payload(required)
    short = httpx.post(
        url, json={"text": "hi"},
        headers={"PAYMENT-SIGNATURE": encode_payment_signature_header(payload)},
    )  # fmt: skip
    assert short.status_code == 402 and short.json()["reason"] == "underpayment", short.text
    assert str(TOKEN_PRICE) in short.json()["error"]
    assert str(TOKEN_PRICE // 2) in short.json()["error"]
    assert x402_token.balance(anvil, token, settler) == TOKEN_PRICE

    # --- one earnings ledger: the message is booked at the price, on rail x402-evm
    with eve.operator() as client:
        earned = client.get("/api/agents/Eve/money").json()["earned"]
        assert earned["rails"] == [
            {"rail": "x402-evm", "amount": PRICE, "messages": 1, "text": "0.001 XRP"}
        ]
    assert base64.b64decode(first.headers["PAYMENT-REQUIRED"])


def test_a_paid_message_the_agent_cannot_answer_says_the_payment_settled(
    eve: Served, chain: tuple[Anvil, str], model: OpenAIServer
) -> None:
    from x402.http.clients import x402_requests

    anvil, token = chain
    payer = Account.create()
    x402_token.mint(anvil, token, payer.address, 1_000_000)
    url = f"{eve.url}/x402/Eve/messages"
    network = f"eip155:{anvil.chain_id}"
    model.queue(error(400, "the model refuses"))
    session = x402_requests(sdk_client(payer.key.hex(), network, token))
    answer = session.post(url, json={"text": "hello"}, timeout=60)
    assert answer.status_code == 502, answer.text
    body = answer.json()
    assert "the payment was settled" in body["detail"] and body["paid"]["tx"] in body["detail"]
    assert answer.headers["PAYMENT-RESPONSE"]
    assert x402_token.balance(anvil, token, payer.address) == 1_000_000 - TOKEN_PRICE

    # --- the same payment again is answered, settled and booked once
    earned = _booked(eve)
    model.queue(reply("answered on the retry"))
    sent = {"PAYMENT-SIGNATURE": answer.request.headers["PAYMENT-SIGNATURE"]}
    retried = httpx.post(url, json={"text": "hello"}, headers=sent, timeout=60)
    assert retried.status_code == 200, retried.text
    assert retried.json()["text"] == "answered on the retry"
    assert retried.json()["paid"]["tx"] == body["paid"]["tx"]
    assert x402_token.balance(anvil, token, payer.address) == 1_000_000 - TOKEN_PRICE
    assert _booked(eve) == earned  # booked when it settled, not again
    replayed = httpx.post(url, json={"text": "hello"}, headers=sent, timeout=60)
    assert replayed.status_code == 402 and replayed.json()["reason"] == "replayed"


def test_a_payment_whose_attempt_died_after_settling_is_answered_by_its_retry(
    eve: Served, chain: tuple[Anvil, str], model: OpenAIServer
) -> None:
    """What a server SIGKILLed between the token transfer and noting it leaves: the claim
    answering, the authorization used on chain, nothing booked. The retry finds the transfer
    (its AuthorizationUsed event) rather than settling again, and answers."""
    from aigent_server.x402_evm import EvmOffer, _facilitator, payment_keys
    from x402.http import encode_payment_signature_header
    from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements

    from aigent.node import Earnings
    from aigent.storage import FileStorage

    anvil, token = chain
    payer = Account.create()
    x402_token.mint(anvil, token, payer.address, 1_000_000)
    url = f"{eve.url}/x402/Eve/messages"
    network = f"eip155:{anvil.chain_id}"
    offer = httpx.post(url, json={"text": "hi"}).json()
    required = PaymentRequired.model_validate(offer)
    payload = sdk_client(payer.key.hex(), network, token).create_payment_payload(required)
    header = encode_payment_signature_header(payload)
    wire = json.loads(base64.b64decode(header))

    earnings = Earnings.open(FileStorage(eve.data_dir / "agents" / "eve"))
    taken = earnings.take(payment_keys(token, wire), "x402-evm", time.time() + 1.5)
    assert taken.outcome == "taken"
    terms = offer["accepts"][0]
    settling = EvmOffer(
        network, token, terms["amount"], terms["payTo"], x402_token.NAME, x402_token.VERSION,
        anvil.url, anvil.keys[SETTLER],
    )  # fmt: skip
    done = _facilitator(settling).settle(
        PaymentPayload.model_validate(wire), PaymentRequirements.model_validate(terms)
    )
    assert done.success, done  # then it died
    earnings.close()
    settler = Account.from_key(anvil.keys[SETTLER]).address
    received, earned = x402_token.balance(anvil, token, settler), _booked(eve)

    early = httpx.post(url, json={"text": "hi"}, headers={"PAYMENT-SIGNATURE": header})
    assert early.status_code == 409 and early.headers["Retry-After"], early.text
    time.sleep(1.6)
    model.queue(reply("answered after the crash"))
    retried = httpx.post(
        url, json={"text": "hi"}, headers={"PAYMENT-SIGNATURE": header}, timeout=60
    )
    assert retried.status_code == 200, retried.text
    assert retried.json()["text"] == "answered after the crash"
    assert retried.json()["paid"]["tx"].lower().removeprefix("0x") == str(
        done.transaction
    ).lower().removeprefix("0x")
    assert x402_token.balance(anvil, token, settler) == received  # not settled twice
    assert _booked(eve) == (earned[0] + PRICE, earned[1] + 1)
    again = httpx.post(url, json={"text": "hi"}, headers={"PAYMENT-SIGNATURE": header})
    assert again.status_code == 402 and again.json()["reason"] == "replayed"


def _booked(eve: Served) -> tuple[int, int]:
    with eve.operator() as client:
        rails = client.get("/api/agents/Eve/money").json()["earned"]["rails"]
    found = {r["rail"]: (r["amount"], r["messages"]) for r in rails}
    return found.get("x402-evm", (0, 0))


def test_a_free_agent_answers_on_the_x402_door_without_payment(
    eve: Served, model: OpenAIServer
) -> None:
    with eve.operator() as client:
        wait_for(lambda: client.get("/api/agents/Fay").json()["state"] == "running", what="Fay")
    model.queue(reply("free answer"))
    answer = httpx.post(f"{eve.url}/x402/Fay/messages", json={"text": "hi"}, timeout=30)
    assert answer.status_code == 200 and answer.json()["text"] == "free answer", answer.text
    assert answer.json()["paid"]["rail"] == "free" and "PAYMENT-RESPONSE" not in answer.headers
