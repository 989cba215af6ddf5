"""ERC-20 (our SimpleToken) and the DEX router interface on anvil, every state change under
the spending policy.

The DEX here is a STAND-IN: TRN's DEX is a precompile at 0x...DDDD that anvil cannot run, so
tests deploy contracts/DexRouterStandIn.sol, a constant-product pool behind the same Uniswap V2
Router01 functions (deadline as a block number, as on TRN). Our code talks to it exactly as it
talks to the precompile: only the router address differs (settings.trn.dex_router).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aigent_trn import chain
from aigent_trn.service import TrnService

from aigent import Character, PluginContext
from aigent.secrets import Secrets
from aigent.spending import Limits, SpendDenied, SpendingPolicy
from tests.fixtures.registrations import plugin_actions, registered

E18 = 10**18


@pytest.fixture(scope="module")
def market(anvil: dict[str, Any]) -> dict[str, Any]:
    """Two tokens minted by key 8, and a stand-in router with a 1000 AAA : 2000 BBB pool."""
    w3 = chain.connect(anvil["url"], 7672)
    owner = chain.Signer(w3, anvil["keys"][8])
    a = chain.deploy(w3, owner, "SimpleToken", ("Alpha", "AAA", 18))
    b = chain.deploy(w3, owner, "SimpleToken", ("Beta", "BBB", 18))
    router = chain.deploy(w3, owner, "DexRouterStandIn")
    art = chain.artefact("SimpleToken")
    for token in (a, b):
        c = w3.eth.contract(address=token, abi=art["abi"])
        owner.transact({"to": token, "data": c.encode_abi("mint", [owner.address, 10**6 * E18])})
        owner.transact({"to": token, "data": c.encode_abi("approve", [router, 2**256 - 1])})
    r = w3.eth.contract(address=router, abi=chain.artefact("DexRouterStandIn")["abi"])
    deadline = w3.eth.block_number + 10
    data = r.encode_abi(
        "addLiquidity", [a, b, 1000 * E18, 2000 * E18, 0, 0, owner.address, deadline]
    )
    owner.transact({"to": router, "data": data})
    return {"w3": w3, "owner": owner, "A": a, "B": b, "router": router, "url": anvil["url"]}


MakeService = Callable[..., TrnService]


@pytest.fixture
def make_service(anvil: dict[str, Any], market: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    policies: list[SpendingPolicy] = []

    def make(key: str, limits: dict[str, Limits], name: str = "a", **extra: Any) -> Any:
        settings = {
            "network": "local",
            "rpc_url": anvil["url"],
            "tokens": {"AAA": market["A"], "BBB": market["B"]},
            "dex_router": market["router"],
            **extra,
        }
        policy = SpendingPolicy(limits, tmp_path / name / "spending.sqlite")
        policies.append(policy)
        ctx = PluginContext(
            character=Character(name=name, settings={"trn": settings}),
            secrets=Secrets(environ={"TRN_PRIVATE_KEY": key}),
            data_dir=tmp_path / name,
            plugin="trn",
            settings=settings,
            spending=policy,
        )
        return TrnService(ctx), ctx

    yield make
    for p in policies:
        p.close()


def _limits(cap: int) -> dict[str, Limits]:
    # limits at 6 decimals for 18-decimal tokens: the plugin converts (rounding up)
    return {
        t: Limits(asset_scale=6, max_per_payment=cap * 10**6, per_day=30 * cap * 10**6)
        for t in ("AAA", "BBB")
    }


async def test_mint_transfer_approve_transfer_from_and_balances(
    anvil: dict[str, Any], market: dict[str, Any], make_service: Any
) -> None:
    agent, _ = make_service(anvil["keys"][9], _limits(100))
    me = await agent.address()
    token = await agent.deploy_token("Agent Coin", "AGC", 6)
    agent.settings.tokens["AGC"] = token
    agent.ctx.spending.limits["AGC"] = Limits(asset_scale=6, max_per_payment=10**9)
    await agent.mint("AGC", me, 500 * 10**6)
    assert await agent.token_balance("AGC") == 500 * 10**6
    assert (await agent.token_info(token))["symbol"] == "AGC"

    bob = chain.Signer(market["w3"], anvil["keys"][1]).address
    carol = chain.Signer(market["w3"], anvil["keys"][2]).address
    await agent.transfer("AGC", bob, 120 * 10**6)
    assert await agent.token_balance("AGC", bob) == 120 * 10**6
    assert (await agent.balances())["AGC"] == "380"

    # bob approves the agent; the agent moves bob's tokens to carol
    bob_limits = {"AGC": Limits(asset_scale=6, max_per_payment=50 * 10**6)}
    bob_svc, _ = make_service(anvil["keys"][1], bob_limits, name="bob")
    bob_svc.settings.tokens["AGC"] = token
    await bob_svc.approve("AGC", me, 50 * 10**6)
    assert await agent.allowance("AGC", bob, me) == 50 * 10**6
    await agent.transfer_from("AGC", bob, carol, 30 * 10**6)
    assert await agent.token_balance("AGC", carol) == 30 * 10**6
    assert await agent.allowance("AGC", bob, me) == 20 * 10**6
    with pytest.raises(Exception, match="allowance too low"):
        await agent.transfer_from("AGC", bob, carol, 21 * 10**6)
    # the reverted call moved nothing, so its reservation does not count
    assert agent.ctx.spending.spent("AGC", 3600) == (500 + 120 + 30) * 10**6

    # only the deployer may mint; bob's attempt is refused by the contract, not by us
    with pytest.raises(Exception, match="only the minter"):
        await bob_svc.mint("AGC", bob, 1)


async def test_transfer_over_the_cap_is_refused_and_nothing_moves(
    anvil: dict[str, Any], market: dict[str, Any], make_service: Any
) -> None:
    agent, _ = make_service(anvil["keys"][8], _limits(100))
    bob = chain.Signer(market["w3"], anvil["keys"][1]).address
    before = await agent.token_balance("AAA", bob)
    with pytest.raises(SpendDenied, match="maximum per payment"):
        await agent.transfer("AAA", bob, 101 * E18)
    # a token the character set no limits for may not be spent at all
    stray = await agent.deploy_token("Stray", "STR", 18)
    with pytest.raises(SpendDenied, match="no spending limits"):
        await agent.mint(stray, bob, 1)
    agent._cache.clear()
    assert await agent.token_balance("AAA", bob) == before


async def test_dex_quote_and_swap_under_the_cap(
    anvil: dict[str, Any], market: dict[str, Any], make_service: Any
) -> None:
    agent, _ = make_service(anvil["keys"][8], _limits(100))
    me = await agent.address()
    amounts = await agent.quote(10 * E18, ["AAA", "BBB"])
    expected = 10 * E18 * 997 * 2000 * E18 // (1000 * E18 * 1000 + 10 * E18 * 997)
    assert amounts == [10 * E18, expected]  # constant product with the 0.3% fee
    before = await agent.token_balance("BBB", me)
    await agent.swap_exact_in(10 * E18, expected, ["AAA", "BBB"])
    agent._cache.clear()
    assert await agent.token_balance("BBB", me) == before + expected
    # the pool moved: the same trade now buys less
    assert (await agent.quote(10 * E18 + 1, ["AAA", "BBB"]))[1] < expected

    with pytest.raises(SpendDenied, match="maximum per payment"):
        await agent.swap_exact_in(101 * E18, 0, ["AAA", "BBB"])
    # slippage guard: asking for more than the pool gives reverts and is not counted
    spent = agent.ctx.spending.spent("AAA", 3600)
    with pytest.raises(Exception, match="INSUFFICIENT_OUTPUT_AMOUNT"):
        await agent.swap_exact_in(E18, 10**6 * E18, ["AAA", "BBB"])
    assert agent.ctx.spending.spent("AAA", 3600) == spent

    bought = 5 * E18
    cost = (await agent.run(_amounts_in, market["router"], bought, [market["A"], market["B"]]))[0]
    before = await agent.token_balance("BBB", me)
    await agent.swap_exact_out(bought, cost, ["AAA", "BBB"])
    agent._cache.clear()
    assert await agent.token_balance("BBB", me) == before + bought


def _amounts_in(w3: Any, router: str, out: int, path: list[str]) -> list[int]:
    from aigent_trn import dex

    return dex.amounts_in(w3, router, out, path)


async def test_actions_and_context_from_the_installed_plugin(
    anvil: dict[str, Any], market: dict[str, Any], make_service: Any
) -> None:
    watched = chain.Signer(market["w3"], anvil["keys"][8]).address
    _, ctx = make_service(
        anvil["keys"][8], _limits(100), name="acts", watch=[watched], log_page=3, cache_ttl=60
    )
    actions = plugin_actions("trn", ctx)
    assert {"trn_token_transfer", "trn_dex_swap", "trn_dex_quote", "trn_balances"} <= set(actions)
    assert {n for n, a in actions.items() if a.moves_value} == {
        "trn_token_transfer", "trn_token_approve", "trn_token_transfer_from", "trn_token_mint",
        "trn_token_create", "trn_dex_swap",
    }  # fmt: skip
    quote = json.loads(
        await actions["trn_dex_quote"].run({"amount_in": "1", "path": ["AAA", "BBB"]})
    )
    assert 1.5 < float(quote["amount_out"]) < 2.0
    with pytest.raises(SpendDenied):
        await actions["trn_token_transfer"].fn(token="AAA", to="0x" + "33" * 20, amount="101")
    with pytest.raises(Exception, match="more than 18 decimals"):
        await actions["trn_token_transfer"].fn(token="AAA", to="0x" + "33" * 20, amount="1e-19")
    await actions["trn_token_transfer"].fn(token="AAA", to="0x" + "33" * 20, amount="1.5")
    moves = json.loads(
        await actions["trn_recent_transfers"].run({"token": "AAA", "address": "0x" + "33" * 20})
    )
    assert moves[-1]["value"] == 15 * 10**17 and moves[-1]["from"] == watched
    # The model picks the range: a chain-sized one is cut to the most recent 10,000 blocks.
    await actions["trn_recent_transfers"].run(
        {"token": "AAA", "address": "0x" + "33" * 20, "blocks": 10**12}
    )
    service = ctx.state["service"]
    assert any(key.endswith(":10000") for key in service._cache)
    assert not any(key.endswith(f":{10**12}") for key in service._cache)

    (provider,) = registered("trn", "register_context_providers", ctx)
    text = await provider.get(None, None)
    assert "TRN anchoring: 0 messages anchored" in text
    assert f"Your TRN account {watched} holds" in text and "AAA" in text
    assert f"Recent AAA transfers of {watched}" in text  # found through 3-block log pages
