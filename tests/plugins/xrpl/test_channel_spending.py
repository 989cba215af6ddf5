"""Opening and funding payment channels spends XRP, so both go through the spending policy."""

from __future__ import annotations

import pytest
from aigent_xrpl.service import XrplError
from aigent_xrpl.settlement import PaychanEngine
from aigent_xrpl.testledger import TestLedger
from xrpl.wallet import Wallet

from aigent.spending import Limits, SpendDenied

from .conftest import MakeCtx, new_wallet

LIMITS = {"XRP": Limits(max_per_payment=5_000_000, per_day=8_000_000)}


async def test_a_channel_above_the_cap_is_refused_and_nothing_moves(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    alice, bob = new_wallet(ledger), new_wallet(ledger)
    engine = PaychanEngine(make_ctx(alice, LIMITS))
    with pytest.raises(SpendDenied, match="maximum per payment"):
        await engine.open_channel("bob", bob.address, 5_000_001)
    assert ledger.channels == {}
    assert ledger.balance(alice.address) == 100_000_000
    assert engine.ctx.spending is not None and engine.ctx.spending.spent("XRP", 86400) == 0
    assert engine.store.channel_for("bob", "out") is None
    engine.store.close()


async def test_funding_counts_against_the_daily_cap(ledger: TestLedger, make_ctx: MakeCtx) -> None:
    alice, bob = new_wallet(ledger), new_wallet(ledger)
    engine = PaychanEngine(make_ctx(alice, LIMITS))
    channel = await engine.open_channel("bob", bob.address, 5_000_000)
    assert engine.ctx.spending is not None
    assert engine.ctx.spending.spent("XRP", 86400) == 5_000_000
    await engine.fund_channel("bob", 2_000_000)
    assert ledger.channels[channel]["amount"] == 7_000_000
    with pytest.raises(SpendDenied, match="daily cap"):
        await engine.fund_channel("bob", 2_000_000)  # 9 XRP in a day > 8
    assert ledger.channels[channel]["amount"] == 7_000_000
    assert engine.store.channel_for("bob", "out") == (channel, 7_000_000)
    assert engine.ctx.spending.spent("XRP", 86400) == 7_000_000
    engine.store.close()


async def test_a_failed_open_releases_its_reservation(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    alice = new_wallet(ledger)
    engine = PaychanEngine(make_ctx(alice, LIMITS))
    nobody = Wallet.create().address  # not on the ledger: tecNO_DST
    with pytest.raises(XrplError, match="tecNO_DST"):
        await engine.open_channel("bob", nobody, 1_000_000)
    assert engine.ctx.spending is not None and engine.ctx.spending.spent("XRP", 86400) == 0
    with pytest.raises(XrplError, match="positive whole number"):
        await engine.open_channel("bob", nobody, 0)
    engine.store.close()


async def test_no_spending_limits_means_no_channel(ledger: TestLedger, make_ctx: MakeCtx) -> None:
    alice, bob = new_wallet(ledger), new_wallet(ledger)
    engine = PaychanEngine(make_ctx(alice))  # no limits for XRP
    with pytest.raises(SpendDenied, match="no spending limits"):
        await engine.open_channel("bob", bob.address, 1_000_000)
    assert ledger.channels == {}
    engine.store.close()
