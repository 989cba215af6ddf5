"""Tokens an agent creates with ``trn_token_create``, on anvil: remembered per agent in its
data directory, named by symbol from then on, and governed by ``spending.<SYMBOL>``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aigent_trn import chain
from aigent_trn.errors import TrnInputError

from aigent import Character, PluginContext
from aigent.secrets import Secrets
from aigent.spending import Limits, SpendDenied, SpendingPolicy
from tests.fixtures.registrations import plugin_actions

KEY = 6  # an anvil account no other TRN test sends from


@pytest.fixture
def make_ctx(anvil: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    policies: list[SpendingPolicy] = []

    def make(limits: dict[str, Limits], data: Path = tmp_path / "agent", **extra: Any) -> Any:
        settings = {"network": "local", "rpc_url": anvil["url"], "anchor": False, **extra}
        policy = SpendingPolicy(limits, data / "spending.sqlite")
        policies.append(policy)
        return PluginContext(
            character=Character(name="Maker", settings={"trn": settings}),
            secrets=Secrets(environ={"TRN_PRIVATE_KEY": anvil["keys"][KEY]}),
            data_dir=data,
            plugin="trn",
            settings=settings,
            spending=policy,
        )

    yield make
    for policy in policies:
        policy.close()


def _balance(anvil: dict[str, Any], token: str, who: str) -> int:
    from aigent_trn import tokens

    return tokens.balance_of(chain.connect(anvil["url"], 7672), token, who)


async def test_a_created_token_is_named_by_its_symbol_and_governed_by_its_limits(
    anvil: dict[str, Any], make_ctx: Any, tmp_path: Path
) -> None:
    limits = {"MKR": Limits(asset_scale=2, max_per_payment=100_00, per_day=200_00)}
    actions = plugin_actions("trn", make_ctx(limits))
    create = {"name": "Maker Coin", "symbol": "MKR", "decimals": 6}
    made = json.loads(await actions["trn_token_create"].run(create))
    assert made["symbol"] == "MKR" and made["decimals"] == 6 and made["chain_id"] == 7672
    me = chain.Signer(chain.connect(anvil["url"], 7672), anvil["keys"][KEY]).address
    bob = "0x" + "b0" * 20

    await actions["trn_token_mint"].run({"token": "MKR", "to": me, "amount": "100"})
    await actions["trn_token_transfer"].run({"token": "mkr", "to": bob, "amount": "40.5"})
    assert _balance(anvil, made["address"], bob) == 40_500_000
    # by address too, the asset is the symbol: the same limits, the same counters
    with pytest.raises(SpendDenied, match="maximum per payment of 100 MKR"):
        await actions["trn_token_mint"].fn(token=made["address"], to=me, amount="100.01")
    with pytest.raises(SpendDenied, match="daily cap of 200 MKR"):
        await actions["trn_token_mint"].fn(token="MKR", to=me, amount="100")
    assert _balance(anvil, made["address"], me) == 59_500_000

    held = json.loads(await actions["trn_tokens"].run({}))
    assert held["address"] == me
    rows = {r["symbol"]: r for r in held["tokens"]}
    assert rows["XRP"]["kind"] == "native"
    assert rows["MKR"]["kind"] == "created" and rows["MKR"]["balance"] == "59.5"
    assert rows["MKR"]["name"] == "Maker Coin" and rows["MKR"]["address"] == made["address"]

    # a new process on the same data directory still knows the symbol
    again = plugin_actions("trn", make_ctx(limits, data=tmp_path / "agent"))
    balance = json.loads(await again["trn_token_balance"].run({"token": "MKR"}))
    assert balance == {"token": "MKR", "balance": "59.5"}
    # a symbol is the agent's once: a second token under it is refused before any gas is spent
    with pytest.raises(TrnInputError, match="already has a token MKR"):
        await again["trn_token_create"].fn(name="Other", symbol="MKR")
    # another agent (another data directory) does not see it
    stranger = plugin_actions("trn", make_ctx(limits, data=tmp_path / "other"))
    with pytest.raises(TrnInputError, match="unknown token 'MKR'"):
        await stranger["trn_token_balance"].fn(token="MKR")


async def test_no_limits_for_the_symbol_means_it_is_never_minted(
    anvil: dict[str, Any], make_ctx: Any
) -> None:
    actions = plugin_actions("trn", make_ctx({}))
    made = json.loads(await actions["trn_token_create"].run({"name": "Free", "symbol": "FREE"}))
    me = chain.Signer(chain.connect(anvil["url"], 7672), anvil["keys"][KEY]).address
    with pytest.raises(SpendDenied, match="no spending limits are configured for FREE"):
        await actions["trn_token_mint"].fn(token="FREE", to=me, amount="1")
    assert _balance(anvil, made["address"], me) == 0


@pytest.mark.parametrize(
    ("name", "symbol", "decimals", "problem"),
    [
        ("Coin", "lower", 18, "capital letters and digits"),
        ("Coin", "TOOLONGSYMBOL", 18, "1 to 11"),
        ("Coin", "XRP", 18, "native coin"),
        ("", "EMPTY", 18, "name must be 1 to 64"),
        ("Coin", "DEC", 40, "decimals must be between 0 and 36"),
    ],
)
async def test_a_token_that_cannot_be_made_is_refused_before_any_gas(
    anvil: dict[str, Any], make_ctx: Any, name: str, symbol: str, decimals: int, problem: str
) -> None:
    w3 = chain.connect(anvil["url"], 7672)
    me = chain.Signer(w3, anvil["keys"][KEY]).address
    nonce = w3.eth.get_transaction_count(me)
    create = plugin_actions("trn", make_ctx({}))["trn_token_create"].fn
    with pytest.raises(TrnInputError, match=problem):
        await create(name=name, symbol=symbol, decimals=decimals)
    assert w3.eth.get_transaction_count(me) == nonce
