"""Read-only XRPL data is cached for ``cache_ttl``: counted at the test ledger's JSON-RPC door."""

from __future__ import annotations

import asyncio

from aigent_xrpl import RecentTransactionsContext, register_context_providers
from aigent_xrpl.service import XrplService
from aigent_xrpl.testledger import TestLedger

from aigent.spending import Limits

from .conftest import MakeCtx, new_wallet

XRP_LIMITS = {"XRP": Limits(max_per_payment=10_000_000)}


async def test_every_read_is_served_from_the_cache_within_the_ttl(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    issuer, alice = new_wallet(ledger), new_wallet(ledger)
    usd = {"currency": "USD", "issuer": issuer.address}
    ledger.add_amm_pool("5000000000", {**usd, "value": "1000"}, trading_fee=300)
    ledger.add_offer(issuer.address, {**usd, "value": "10"}, "2000000")
    xrpl = XrplService(make_ctx(alice))
    now = [1000.0]
    xrpl.clock = lambda: now[0]
    reads = {
        "balances": lambda: xrpl.balances(),
        "trust_lines": lambda: xrpl.trust_lines(issuer.address),
        "amm_info": lambda: xrpl.amm_info({"currency": "XRP"}, usd),
        "book_offers": lambda: xrpl.book_offers(usd, {"currency": "XRP"}),
        "recent_transactions": lambda: xrpl.recent_transactions(),
    }
    first = {name: await read() for name, read in reads.items()}
    served = ledger.requests.copy()
    for name, read in reads.items():
        assert await read() == first[name], name
    assert ledger.requests == served  # not one more request reached the server

    now[0] += xrpl.ttl + 1  # the TTL passes: each read asks the server again
    for read in reads.values():
        await read()
    for method in ("account_info", "account_lines", "amm_info", "book_offers", "account_tx"):
        assert ledger.requests[method] > served[method], method


async def test_parallel_reads_share_one_request_and_copies_are_private(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    alice = new_wallet(ledger)
    xrpl = XrplService(make_ctx(alice))
    results = await asyncio.gather(*(xrpl.recent_transactions() for _ in range(5)))
    assert ledger.requests["account_tx"] == 1
    assert all(r == results[0] for r in results)
    results[0].append({"hash": "made up"})  # a caller changing its answer...
    assert await xrpl.recent_transactions() == results[1]  # ...does not change the cache


async def test_our_own_payment_clears_the_cache(ledger: TestLedger, make_ctx: MakeCtx) -> None:
    alice, bob = new_wallet(ledger), new_wallet(ledger)
    xrpl = XrplService(make_ctx(alice, XRP_LIMITS))
    assert (await xrpl.balances())["XRP"] == "100"
    await xrpl.pay(bob.address, "2")
    assert (await xrpl.balances())["XRP"] == "97.99999"  # 2 XRP and the 10-drop fee


async def test_context_providers_are_chosen_in_settings_and_cached(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    alice, bob = new_wallet(ledger), new_wallet(ledger)
    ctx = make_ctx(alice, XRP_LIMITS)
    await XrplService(ctx).pay(bob.address, "1")
    ctx.settings["context"] = ["balances", "recent_transactions", "weather"]
    found: list[object] = []
    register_context_providers(found.append, ctx)
    assert [type(p).__name__ for p in found] == ["BalancesContext", "RecentTransactionsContext"]
    recent = found[1]
    assert isinstance(recent, RecentTransactionsContext)
    text = await recent.get(None, None)
    assert text is not None and "Payment" in text and bob.address in text
    served = ledger.requests["account_tx"]
    assert await recent.get(None, None) == text
    assert ledger.requests["account_tx"] == served
    ctx.settings.pop("context")
    defaults: list[object] = []
    register_context_providers(defaults.append, ctx)
    assert [type(p).__name__ for p in defaults] == ["BalancesContext"]
