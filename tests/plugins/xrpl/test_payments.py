"""Payments and reads through the plugin, against the local test ledger."""

from __future__ import annotations

from decimal import Decimal

import pytest
from aigent_xrpl.service import XrplError, XrplService
from aigent_xrpl.testledger import TestLedger
from xrpl.asyncio.clients import AsyncJsonRpcClient
from xrpl.asyncio.transaction import autofill_and_sign, submit
from xrpl.models import IssuedCurrencyAmount, Payment, TrustSet
from xrpl.wallet import Wallet

from aigent.spending import Limits, SpendDenied

from .conftest import MakeCtx, new_wallet

XRP_LIMITS = {"XRP": Limits(max_per_payment=5_000_000, per_day=8_000_000)}


async def test_xrp_payment_moves_balances_and_counts_against_the_policy(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    alice, bob = new_wallet(ledger), new_wallet(ledger)
    ctx = make_ctx(alice, XRP_LIMITS)
    xrpl = XrplService(ctx)
    result = await xrpl.pay(bob.address, "2.5", purpose="test")
    assert result["meta"]["TransactionResult"] == "tesSUCCESS"
    assert ledger.balance(bob.address) == 102_500_000
    assert ledger.balance(alice.address) == 100_000_000 - 2_500_000 - 10
    assert ctx.spending is not None and ctx.spending.spent("XRP", 3600) == 2_500_000


async def test_spending_policy_refuses_and_nothing_moves(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    alice, bob = new_wallet(ledger), new_wallet(ledger)
    xrpl = XrplService(make_ctx(alice, XRP_LIMITS))
    with pytest.raises(SpendDenied, match="maximum per payment"):
        await xrpl.pay(bob.address, "6")
    await xrpl.pay(bob.address, "5")
    with pytest.raises(SpendDenied, match="daily cap"):
        await xrpl.pay(bob.address, "4")
    assert ledger.balance(bob.address) == 105_000_000


async def test_failed_payment_releases_its_reservation(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    alice = new_wallet(ledger, 5_000_000)
    ctx = make_ctx(alice, XRP_LIMITS)
    with pytest.raises(XrplError, match="tecUNFUNDED_PAYMENT"):
        await XrplService(ctx).pay(new_wallet(ledger).address, "4.5")
    assert ctx.spending is not None and ctx.spending.spent("XRP", 3600) == 0


async def test_issued_currency_over_a_trust_line(ledger: TestLedger, make_ctx: MakeCtx) -> None:
    issuer, alice, bob = new_wallet(ledger), new_wallet(ledger), new_wallet(ledger)
    client = AsyncJsonRpcClient(ledger.url)
    for holder in (alice, bob):
        trust = TrustSet(
            account=holder.address,
            limit_amount=IssuedCurrencyAmount(currency="USD", issuer=issuer.address, value="100"),
        )
        signed = await autofill_and_sign(trust, client, holder)
        assert (await submit(signed, client)).result["engine_result"] == "tesSUCCESS"
    limits = {"USD": Limits(max_per_payment=50_000_000)}
    await XrplService(make_ctx(issuer, limits, "issuer")).pay(
        alice.address, "40", "USD", issuer.address
    )
    alice_xrpl = XrplService(make_ctx(alice, limits, "alice"))
    await alice_xrpl.pay(bob.address, "15.5", "USD", issuer.address)
    assert ledger.line_balance(alice.address, issuer.address, "USD") == Decimal("24.5")
    assert ledger.line_balance(bob.address, issuer.address, "USD") == Decimal("15.5")
    balances = await alice_xrpl.balances()
    assert balances[f"USD/{issuer.address}"] == "24.5"
    stranger = new_wallet(ledger)
    with pytest.raises(XrplError, match="tecPATH_DRY"):
        await alice_xrpl.pay(stranger.address, "1", "USD", issuer.address)


async def test_a_forged_signature_is_rejected(ledger: TestLedger) -> None:
    alice, mallory, bob = new_wallet(ledger), new_wallet(ledger), new_wallet(ledger)
    client = AsyncJsonRpcClient(ledger.url)
    # mallory signs a payment out of alice's account with her own key
    tx = Payment(account=alice.address, destination=bob.address, amount="1000000")
    forged = Wallet(mallory.public_key, mallory.private_key, master_address=alice.address)
    signed = await autofill_and_sign(tx, client, forged)
    result = (await submit(signed, client)).result
    assert result["engine_result"] == "tefBAD_AUTH"
    assert ledger.balance(bob.address) == 100_000_000


async def test_reads_for_analysis(ledger: TestLedger, make_ctx: MakeCtx) -> None:
    issuer, alice, bob = new_wallet(ledger), new_wallet(ledger), new_wallet(ledger)
    usd = {"currency": "USD", "issuer": issuer.address, "value": "1000"}
    ledger.add_amm_pool("5000000000", usd, trading_fee=300)
    ledger.add_offer(issuer.address, usd, "2000000000")
    xrpl = XrplService(make_ctx(alice, XRP_LIMITS))
    await xrpl.pay(bob.address, "1")
    usd_asset = {"currency": "USD", "issuer": issuer.address}
    pool = await xrpl.amm_info({"currency": "XRP"}, usd_asset)
    assert pool["trading_fee"] == 300 and pool["amount2"]["value"] == "1000"
    offers = await xrpl.book_offers(usd_asset, {"currency": "XRP"})
    assert offers[0]["TakerPays"] == "2000000000"
    txs = await xrpl.recent_transactions()
    assert txs[0]["type"] == "Payment" and txs[0]["to"] == bob.address
    assert (await xrpl.balances())["XRP"] == "98.99999"


async def test_reads_are_cached_for_the_ttl(ledger: TestLedger, make_ctx: MakeCtx) -> None:
    alice = new_wallet(ledger)
    xrpl = XrplService(make_ctx(alice))
    assert (await xrpl.balances())["XRP"] == "100"
    ledger.fund(alice.address, 1_000_000)
    assert (await xrpl.balances())["XRP"] == "100"  # within the TTL: the cached answer
    xrpl.ttl = 0
    assert (await xrpl.balances())["XRP"] == "101"


async def test_missing_seed_says_how_to_fix(ledger: TestLedger, make_ctx: MakeCtx) -> None:
    ctx = make_ctx(new_wallet(ledger))
    ctx.secrets = type(ctx.secrets)(environ={})
    with pytest.raises(XrplError, match="set XRPL_SEED"):
        await XrplService(ctx).balances()
