"""The tokens page in a real Chromium (Debian's, driven by Playwright): the operator creates a
token on TRN (anvil) and mints it; a mint over the limit shows the policy's refusal and moves
nothing. Screenshots at desktop and phone width go to tests/server/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aigent_server.app import Settings
from eth_account import Account

from tests.fixtures.openai_server import OpenAIServer
from tests.server.chains import Chains, running_chains, token_agent
from tests.server.conftest import TOKEN, Served, serve
from tests.server.test_web import CHROMIUM, shot
from tests.server.test_web import browser as browser  # the fixture, shared

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (Debian: apt-get install chromium)"
)
SPENDING = {
    "MKR": {"asset_scale": 2, "max_per_payment": 100_00, "per_day": 1_000_00},
    "AGC": {"asset_scale": 2, "max_per_payment": 100_00},
}


@pytest.fixture(scope="module")
def chains() -> Iterator[Chains]:
    with running_chains() as running:
        yield running


@pytest.fixture(scope="module")
def admin() -> Any:
    return Account.create()


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, model: OpenAIServer, chains: Chains, admin: Any
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("web-token-characters")
    minter = token_agent(folder, model, chains, "Minter", chains.wallet(), SPENDING)
    running = serve(
        Settings(
            data_dir=tmp_path_factory.mktemp("web-tokens"),
            files=[minter],
            token=TOKEN,
            admins=frozenset({admin.address}),
        )
    )
    try:
        yield running
    finally:
        running.stop()


def held_on_xrpl(site: Served) -> str:
    with site.operator() as client:
        return str(client.get("/api/agents/Minter/tokens").json()["xrpl"]["address"])


def test_create_a_token_and_mint_it(browser: Any, site: Served, chains: Chains, admin: Any) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(
        f"localStorage.setItem('aigent.wallet.key', '{bytes(admin.key).hex()}')"
    )
    page = context.new_page()
    try:
        page.goto(site.url + "/#/wallet")
        page.click("#sign-in")
        page.wait_for_selector('[data-agent="Minter"] [data-state="running"]')
        page.click('#tabs a[data-page="tokens"]')
        page.wait_for_selector('#trn-tokens [data-token="XRP"]')
        page.wait_for_selector('#xrpl-tokens [data-token="XRP"]')
        assert page.text_content('#xrpl-tokens [data-token="XRP"] .balance') == "100"

        page.fill("#create-name", "Maker Coin")
        page.fill("#create-symbol", "mkr")  # the field writes it in capitals
        page.fill("#create-decimals", "6")
        page.click("#create-submit")
        page.wait_for_selector('#trn-tokens [data-token="MKR"]')
        assert page.text_content('#trn-tokens [data-token="MKR"] .balance') == "0"
        assert page.input_value("#mint-token") == "trn:MKR"

        page.fill("#mint-amount", "42.5")
        page.click("#mint-submit")
        page.wait_for_selector('#trn-tokens [data-token="MKR"] .balance:text-is("42.5")')
        with site.operator() as client:
            held = client.get("/api/agents/Minter/tokens").json()["trn"]
        mkr = next(t for t in held["tokens"] if t["symbol"] == "MKR")
        assert chains.trn_balance(mkr["address"], held["address"]) == 42_500_000

        # over the maximum per payment: the policy's words on the form, nothing minted
        page.fill("#mint-amount", "250")
        page.click("#mint-submit")
        page.wait_for_selector("#mint-error:not([hidden])")
        assert "maximum per payment of 100 MKR" in (page.text_content("#mint-error") or "")
        assert chains.trn_balance(mkr["address"], held["address"]) == 42_500_000
        shot(page, "8-tokens-refused", full_page=False)

        # the XRPL: a currency code, then issued to a holder that trusts the agent for it
        page.click("#create-chain-xrpl")
        page.fill("#create-currency", "agc")
        page.click("#create-submit")
        page.wait_for_selector('#xrpl-tokens [data-currency="AGC"]')
        assert page.input_value("#mint-token") == "xrpl:AGC"
        holder = chains.wallet()
        issuer = held_on_xrpl(site)
        chains.ledger.set_trust_line(holder.address, issuer, "AGC", "1000")
        page.fill("#mint-amount", "5")
        page.fill("#mint-to", holder.address)
        page.click("#mint-submit")
        page.wait_for_selector('#xrpl-tokens [data-currency="AGC"] .balance:text-is("5 out")')
        assert chains.ledger.line_balance(holder.address, issuer, "AGC") == 5
        shot(page, "8-tokens")

        # what happened, and what was refused, is in the explorer's live feed
        page.click('#tabs a[data-page="explorer"]')
        page.wait_for_selector('.event[data-kind="token"]:has-text("minted 42.5 MKR")')
        refused = page.text_content('.event[data-kind="token"]:has-text("250 MKR")') or ""
        assert "not minted: refused 250 MKR" in refused
        shot(page, "8-tokens-explorer", full_page=False)

        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(site.url + "/#/tokens/Minter")
        page.wait_for_selector('#trn-tokens [data-token="MKR"]')
        shot(page, "phone-tokens", full_page=False)
        shot(page, "phone-tokens-full")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the tokens page scrolls sideways on a phone ({width}px)"
    finally:
        context.close()
