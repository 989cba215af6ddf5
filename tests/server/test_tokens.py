"""Tokens over real HTTP: a server whose agents use a real local EVM node (anvil) for TRN and
the XRPL test ledger. Create, mint, transfer and balances on TRN; a trust line and an issued
currency on the XRPL; every state change refused by the agent's spending limits where they
say so, with nothing moved."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aigent_server.app import Settings

from tests.fixtures.openai_server import OpenAIServer
from tests.server.chains import Chains, running_chains, token_agent
from tests.server.conftest import TOKEN, Served, character, serve, sign_in
from tests.server.test_api import running

# MKR has 6 decimals, counted at 2: at most 100 per payment, 300 a day, asked above 50
MINTER_SPENDING = {
    "MKR": {"asset_scale": 2, "max_per_payment": 10_000, "per_day": 30_000, "confirm_above": 5_000},
    "AGC": {"asset_scale": 2, "max_per_payment": 10_000, "per_day": 30_000},
}
HOLDER_SPENDING = {"AGC": {"asset_scale": 2, "max_per_payment": 5_000}}
BOB = "0x" + "b0" * 20


@pytest.fixture(scope="module")
def chains() -> Iterator[Chains]:
    with running_chains() as running:
        yield running


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, model: OpenAIServer, chains: Chains
) -> Iterator[dict[str, Any]]:
    """Minter (TRN and XRPL), Holder (XRPL only) and Plain (no chain), served by the operator."""
    folder = tmp_path_factory.mktemp("token-characters")
    minter, holder = chains.wallet(), chains.wallet()
    files = [
        token_agent(folder, model, chains, "Minter", minter, MINTER_SPENDING),
        token_agent(folder, model, chains, "Holder", holder, HOLDER_SPENDING, trn_key=None),
        folder / "plain.json",
    ]
    files[2].write_text(json.dumps(character(model, "Plain")), encoding="utf-8")
    server = serve(
        Settings(data_dir=tmp_path_factory.mktemp("token-server"), files=files, token=TOKEN)
    )
    try:
        with server.operator() as client:
            for name in ("Minter", "Holder", "Plain"):
                running(client, name)
        yield {"served": server, "minter": minter, "holder": holder}
    finally:
        server.stop()


def created(client: httpx.Client) -> dict[str, Any]:
    """MKR, created once for the module."""
    tokens = client.get("/api/agents/Minter/tokens").json()["trn"]["tokens"]
    found = next((t for t in tokens if t["symbol"] == "MKR"), None)
    if found is not None:
        return found
    answer = client.post(
        "/api/agents/Minter/tokens", json={"name": "Maker Coin", "symbol": "MKR", "decimals": 6}
    )
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


def test_create_mint_transfer_and_balances(world: dict[str, Any], chains: Chains) -> None:
    served: Served = world["served"]
    me = chains.trn_address()
    with served.operator() as client:
        token = created(client)
        assert token["symbol"] == "MKR" and token["chain"] == "trn" and token["decimals"] == 6
        assert token["address"].startswith("0x")

        # above confirm_above (50), yet no confirmation is parked: the owner asked for it
        minted = client.post("/api/agents/Minter/tokens/MKR/mint", json={"amount": "60"})
        assert minted.status_code == 200, minted.text
        assert minted.json()["tx"].startswith("0x")
        assert client.get("/api/agents/Minter/confirmations").json() == []
        assert chains.trn_balance(token["address"], me) == 60 * 10**6

        sent = client.post(
            "/api/agents/Minter/tokens/MKR/transfer", json={"to": BOB, "amount": "12.5"}
        )
        assert sent.status_code == 200, sent.text
        assert chains.trn_balance(token["address"], BOB) == 12_500_000

        held = client.get("/api/agents/Minter/tokens").json()
        assert held["agent"] == "Minter" and held["trn"]["address"] == me
        rows = {t["symbol"]: t for t in held["trn"]["tokens"]}
        assert rows["MKR"]["balance"] == "47.5" and rows["MKR"]["kind"] == "created"
        assert rows["XRP"]["kind"] == "native" and Decimal(rows["XRP"]["balance"]) > 0
        assert "xrpl" in held and held["xrpl"]["xrp"] == "100"

        # what happened is on the event stream, kind "token"
        seen: list[dict[str, Any]] = []
        with client.stream("GET", "/api/events", params={"agent": "Minter", "kind": "token"}) as ev:
            for line in ev.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                if any(e.get("action") == "transferred" for e in seen):
                    break
        assert [e["action"] for e in seen if e["ok"]][:3] == ["created", "minted", "transferred"]
        assert seen[-1]["to"] == BOB and seen[-1]["amount"] == "12.5"

        # the symbol is the agent's now: a second MKR is bad input
        again = client.post("/api/agents/Minter/tokens", json={"name": "Again", "symbol": "MKR"})
        assert again.status_code == 422 and "already has a token MKR" in again.json()["detail"]


def test_a_mint_over_the_limits_is_refused_and_nothing_moves(
    world: dict[str, Any], chains: Chains
) -> None:
    served: Served = world["served"]
    with served.operator() as client:
        token = created(client)
        before = chains.trn_balance(token["address"], chains.trn_address())
        over = client.post("/api/agents/Minter/tokens/MKR/mint", json={"amount": "100.01"})
        assert over.status_code == 403
        assert "over the maximum per payment of 100 MKR" in over.json()["detail"]
        assert chains.trn_balance(token["address"], chains.trn_address()) == before
        # the daily cap binds the owner's requests too (60 minted above, 300 a day)
        for _ in range(2):
            assert client.post(
                "/api/agents/Minter/tokens/MKR/mint", json={"amount": "100"}
            ).is_success
        capped = client.post("/api/agents/Minter/tokens/MKR/mint", json={"amount": "90"})
        assert capped.status_code == 403 and "daily cap" in capped.json()["detail"]
        assert chains.trn_balance(token["address"], chains.trn_address()) == before + 200 * 10**6
        # a token without limits in the character is never minted
        client.post("/api/agents/Minter/tokens", json={"name": "Loose", "symbol": "LSE"})
        loose = client.post("/api/agents/Minter/tokens/LSE/mint", json={"amount": "1"})
        assert loose.status_code == 403 and "no spending limits" in loose.json()["detail"]


def test_bad_input_gets_422_with_what_to_fix(world: dict[str, Any]) -> None:
    served: Served = world["served"]
    with served.operator() as client:
        created(client)
        mint = "/api/agents/Minter/tokens/MKR/mint"
        for amount, says in [
            ("lots", "not a number"),
            ("-3", "must be positive"),
            ("0.0000001", "more than 6 decimals"),
        ]:
            answer = client.post(mint, json={"amount": amount})
            assert answer.status_code == 422, answer.text
            assert says in answer.json()["detail"]
        assert client.post(mint, json={}).status_code == 422
        unknown = client.post("/api/agents/Minter/tokens/NOPE/mint", json={"amount": "1"})
        assert unknown.status_code == 422 and "unknown token 'NOPE'" in unknown.json()["detail"]
        bad = client.post("/api/agents/Minter/tokens", json={"name": "x", "symbol": "low"})
        assert bad.status_code == 422 and "capital letters" in bad.json()["detail"]


def test_a_trust_line_then_an_issued_currency_on_the_xrpl(
    world: dict[str, Any], chains: Chains
) -> None:
    served: Served = world["served"]
    issuer, holder = world["minter"].address, world["holder"].address
    with served.operator() as client:
        made = client.post("/api/agents/Minter/tokens", json={"chain": "xrpl", "currency": "AGC"})
        assert made.status_code == 201, made.text
        assert made.json() == {"chain": "xrpl", "currency": "AGC", "issuer": issuer}
        listed = client.get("/api/agents/Minter/tokens").json()["xrpl"]["currencies"]
        assert listed == [{"currency": "AGC", "outstanding": "0", "holders": 0}]
        bad = client.post("/api/agents/Minter/tokens", json={"chain": "xrpl", "currency": "A"})
        assert bad.status_code == 422 and "not an XRPL currency code" in bad.json()["detail"]

        issue = "/api/agents/Minter/tokens/AGC/mint"
        early = client.post(issue, json={"chain": "xrpl", "to": holder, "amount": "5"})
        assert early.status_code == 422 and "no trust line for AGC" in early.json()["detail"]

        trusted = client.post(
            "/api/agents/Holder/trustlines",
            json={"currency": "AGC", "issuer": issuer, "limit": "500"},
        )
        assert trusted.status_code == 200, trusted.text
        issued = client.post(issue, json={"chain": "xrpl", "to": holder, "amount": "40"})
        assert issued.status_code == 200, issued.text
        assert chains.ledger.line_balance(holder, issuer, "AGC") == Decimal(40)
        over = client.post(issue, json={"chain": "xrpl", "to": holder, "amount": "101"})
        assert over.status_code == 403 and "maximum per payment" in over.json()["detail"]

        # the holder sends some back to the issuer, within its own limits
        back = client.post(
            "/api/agents/Holder/tokens/AGC/transfer",
            json={"chain": "xrpl", "to": issuer, "issuer": issuer, "amount": "15"},
        )
        assert back.status_code == 200, back.text
        assert chains.ledger.line_balance(holder, issuer, "AGC") == Decimal(25)

        minter = client.get("/api/agents/Minter/tokens").json()["xrpl"]
        assert minter["issued"] == [
            {"currency": "AGC", "holder": holder, "amount": "25", "limit": "500"}
        ]
        assert minter["currencies"] == [{"currency": "AGC", "outstanding": "25", "holders": 1}]
        mine = client.get("/api/agents/Holder/tokens").json()
        assert "trn" not in mine  # no TRN plugin, no TRN section
        assert mine["xrpl"]["holding"][0]["balance"] == "25"


def test_another_users_agent_is_not_found_and_a_plain_agent_has_no_chains(
    world: dict[str, Any],
) -> None:
    served: Served = world["served"]
    stranger, _ = sign_in(served)
    with closing(stranger):
        assert stranger.get("/api/agents/Minter/tokens").status_code == 404
        mint = stranger.post("/api/agents/Minter/tokens/MKR/mint", json={"amount": "1"})
        assert mint.status_code == 404
    with served.operator() as client:
        assert client.get("/api/agents/Plain/tokens").json() == {"agent": "Plain"}
        answer = client.post("/api/agents/Plain/tokens", json={"name": "P", "symbol": "PLN"})
        assert answer.status_code == 404 and "has no TRN" in answer.json()["detail"]
