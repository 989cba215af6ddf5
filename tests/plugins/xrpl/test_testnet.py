"""The same flows against the public XRPL testnet. Run with AIGENT_NETWORK_TESTS=1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from aigent_xrpl.service import TESTNET_URL, XrplService
from aigent_xrpl.settlement import PaychanEngine

from aigent import Character, PluginContext
from aigent.secrets import Secrets
from aigent.spending import Limits, SpendingPolicy

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(
        os.environ.get("AIGENT_NETWORK_TESTS") != "1",
        reason="needs the public XRPL testnet: set AIGENT_NETWORK_TESTS=1",
    ),
]


async def _ctx(tmp_path: Path, name: str) -> tuple[PluginContext, str]:
    from xrpl.asyncio.clients import AsyncJsonRpcClient
    from xrpl.asyncio.wallet import generate_faucet_wallet

    wallet = await generate_faucet_wallet(AsyncJsonRpcClient(TESTNET_URL))
    settings = {"url": TESTNET_URL, "cache_ttl": 0}
    ctx = PluginContext(
        character=Character(name=name, settings={"xrpl": settings}),
        secrets=Secrets(environ={"XRPL_SEED": wallet.seed or ""}),
        data_dir=tmp_path / name,
        plugin="xrpl",
        settings=settings,
        spending=SpendingPolicy(
            {"XRP": Limits(max_per_payment=2_000_000)}, tmp_path / name / "spend.sqlite"
        ),
    )
    return ctx, wallet.address


async def test_testnet_payment_channel_and_claim(tmp_path: Path) -> None:
    alice_ctx, _ = await _ctx(tmp_path, "alice")
    bob_ctx, bob = await _ctx(tmp_path, "bob")
    alice = XrplService(alice_ctx)
    before = float((await XrplService(bob_ctx).balances())["XRP"])
    await alice.pay(bob, "1")
    payer, payee = PaychanEngine(alice_ctx, alice), PaychanEngine(bob_ctx)
    await payer.open_channel("bob", bob, 2_000_000)
    claim = await payer.create_claim("bob", 1_500_000)
    assert await payee.receive_claim("alice", claim.to_json()) == 1_500_000
    assert await payee.redeem() == 1_500_000
    after = float((await XrplService(bob_ctx).balances())["XRP"])
    assert after > before + 2.4
