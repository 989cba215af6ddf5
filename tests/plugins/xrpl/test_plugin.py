"""The plugin as the agent sees it: discovered by entry point, actions and context registered."""

from __future__ import annotations

import json

import pytest
from aigent_xrpl.testledger import TestLedger

from aigent.spending import Limits
from tests.fixtures.registrations import plugin_actions, registered

from .conftest import MakeCtx, new_wallet


async def test_actions_and_context_from_the_installed_plugin(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    alice, bob = new_wallet(ledger), new_wallet(ledger)
    ctx = make_ctx(alice, {"XRP": Limits(max_per_payment=1_000_000)})
    actions = plugin_actions("xrpl", ctx)
    assert {"xrpl_pay", "xrpl_balances", "xrpl_amm_info", "xrpl_book_offers"} <= set(actions)
    assert "destination" in actions["xrpl_pay"].spec().parameters["properties"]
    # Paying, issuing and trusting an issuer are kept off channels that may not spend.
    assert {n for n, a in actions.items() if a.moves_value} == {
        "xrpl_pay", "xrpl_currency_create", "xrpl_issue", "xrpl_trust_set", "x402_fetch",
    }  # fmt: skip

    await actions["xrpl_pay"].run({"destination": bob.address, "amount": "0.75"})
    assert ledger.balance(bob.address) == 100_750_000
    with pytest.raises(Exception, match="maximum per payment"):
        await actions["xrpl_pay"].fn(destination=bob.address, amount="2")
    assert ledger.balance(bob.address) == 100_750_000

    balances = json.loads(await actions["xrpl_balances"].run({"account": bob.address}))
    assert balances == {"XRP": "100.75"}

    providers = registered("xrpl", "register_context_providers", ctx)
    text = await providers[0].get(None, None)
    assert alice.address in text and "XRP" in text
