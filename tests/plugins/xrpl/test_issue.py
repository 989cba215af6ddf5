"""Issuing a currency and trusting an issuer through the plugin's actions, on the test ledger:
a holder sets a trust line, the issuer issues under its spending limits for the currency."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from aigent_xrpl.errors import XrplInputError
from aigent_xrpl.service import LSF_DEFAULT_RIPPLE
from aigent_xrpl.testledger import TestLedger

from aigent.spending import Limits, SpendDenied
from tests.fixtures.registrations import plugin_actions

from .conftest import MakeCtx, new_wallet

# AGC counted at 2 decimals: at most 100 per payment, 150 a day
AGC = {"AGC": Limits(asset_scale=2, max_per_payment=10_000, per_day=15_000)}


async def test_a_holder_trusts_the_issuer_and_the_issuer_issues_within_its_limits(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    issuer, holder = new_wallet(ledger), new_wallet(ledger)
    issuing = make_ctx(issuer, AGC, name="issuer")
    mine = plugin_actions("xrpl", issuing)
    theirs = plugin_actions("xrpl", make_ctx(holder, {}, name="holder"))

    # no trust line yet: refused before anything is submitted
    with pytest.raises(XrplInputError, match="no trust line for AGC"):
        await mine["xrpl_issue"].run(
            {"currency": "AGC", "destination": holder.address, "amount": "5"}
        )
    before = ledger.balance(issuer.address)
    assert before == 100_000_000  # not even a fee was paid

    # a trust line needs no spending limits: it moves nothing out of the holder
    out = await theirs["xrpl_trust_set"].run(
        {"currency": "AGC", "issuer": issuer.address, "limit": "1000"}
    )
    assert json.loads(out)["result"] == "tesSUCCESS"
    assert ledger.lines[(holder.address, issuer.address, "AGC")]["limit"] == Decimal(1000)

    await mine["xrpl_issue"].run({"currency": "AGC", "destination": holder.address, "amount": "60"})
    assert ledger.line_balance(holder.address, issuer.address, "AGC") == Decimal(60)
    assert issuing.spending is not None and issuing.spending.spent("AGC", 3600) == 6_000

    # over the maximum per payment, then over the daily cap: refused, nothing issued
    with pytest.raises(SpendDenied, match="maximum per payment"):
        await mine["xrpl_issue"].fn(currency="AGC", destination=holder.address, amount="101")
    await mine["xrpl_issue"].fn(currency="AGC", destination=holder.address, amount="80")
    with pytest.raises(SpendDenied, match="daily cap"):
        await mine["xrpl_issue"].fn(currency="AGC", destination=holder.address, amount="20")
    assert ledger.line_balance(holder.address, issuer.address, "AGC") == Decimal(140)

    # each side sees the line from where it stands
    held = json.loads(await theirs["xrpl_tokens"].run({}))
    assert held["holding"] == [
        {"currency": "AGC", "issuer": issuer.address, "balance": "140", "limit": "1000"}
    ]
    issued = json.loads(await mine["xrpl_tokens"].run({}))
    assert issued["address"] == issuer.address and issued["holding"] == []
    assert issued["issued"] == [
        {"currency": "AGC", "holder": holder.address, "amount": "140", "limit": "1000"}
    ]
    assert issued["currencies"] == [{"currency": "AGC", "outstanding": "140", "holders": 1}]


async def test_creating_a_currency_sets_the_account_up_once_and_is_remembered(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    issuer = new_wallet(ledger)
    create = plugin_actions("xrpl", make_ctx(issuer, {}, name="issuer"))["xrpl_currency_create"]
    made = json.loads(await create.run({"currency": "AGC"}))
    assert made == {"currency": "AGC", "issuer": issuer.address}
    assert ledger.accounts[issuer.address]["flags"] & LSF_DEFAULT_RIPPLE
    await create.run({"currency": "BEE"})  # the flag is set: no second AccountSet, no fee
    assert ledger.balance(issuer.address) == 100_000_000 - 10
    with pytest.raises(XrplInputError, match="not an XRPL currency code"):
        await create.fn(currency="TOOLONG")

    # a new process on the same data directory lists both, held by nobody yet
    again = plugin_actions("xrpl", make_ctx(issuer, {}, name="issuer"))
    listed = json.loads(await again["xrpl_tokens"].run({}))
    assert listed["currencies"] == [
        {"currency": "AGC", "outstanding": "0", "holders": 0},
        {"currency": "BEE", "outstanding": "0", "holders": 0},
    ]


async def test_bad_input_is_refused_with_what_to_fix(ledger: TestLedger, make_ctx: MakeCtx) -> None:
    issuer, holder = new_wallet(ledger), new_wallet(ledger)
    actions = plugin_actions("xrpl", make_ctx(holder, AGC))
    trust = actions["xrpl_trust_set"].fn
    with pytest.raises(XrplInputError, match="not an XRPL currency code"):
        await trust(currency="AGCX", issuer=issuer.address, limit="10")
    with pytest.raises(XrplInputError, match="XRP is the ledger's own coin"):
        await trust(currency="XRP", issuer=issuer.address, limit="10")
    with pytest.raises(XrplInputError, match="not an XRPL address"):
        await trust(currency="AGC", issuer="rNotAnAddress", limit="10")
    with pytest.raises(XrplInputError, match="limit is not a number"):
        await trust(currency="AGC", issuer=issuer.address, limit="lots")
    with pytest.raises(XrplInputError, match="amount must be positive"):
        await actions["xrpl_issue"].fn(currency="AGC", destination=issuer.address, amount="-1")
    assert ledger.balance(holder.address) == 100_000_000  # nothing was submitted


async def test_an_allowlist_for_the_currency_names_the_issuers_the_agent_may_trust(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    trusted, stranger, holder = new_wallet(ledger), new_wallet(ledger), new_wallet(ledger)
    limits = {"AGC": Limits(max_per_payment=1, allowlist=[trusted.address])}
    trust = plugin_actions("xrpl", make_ctx(holder, limits))["xrpl_trust_set"].fn
    with pytest.raises(SpendDenied, match="allowlist"):
        await trust(currency="AGC", issuer=stranger.address, limit="10")
    await trust(currency="AGC", issuer=trusted.address, limit="10")
    assert (holder.address, stranger.address, "AGC") not in ledger.lines
    assert (holder.address, trusted.address, "AGC") in ledger.lines
