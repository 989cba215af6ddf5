"""The money page in a real Chromium: after Alice paid Bob over ILP and settled by XRPL payment
channel (tests/server/test_money.py's pair of servers), Bob's page draws his earnings as a
chart and shows his ledger and incoming channel; Alice's shows her spending against its limits,
her payments and her outgoing channel. Screenshots (desktop and 390 px) go to
tests/server/artifacts/."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aigent_xrpl.testledger import TestLedger
from eth_account import Account
from xrpl.wallet import Wallet

from tests.fixtures.openai_server import OpenAIServer
from tests.server.conftest import Served, wait_for
from tests.server.test_money import (  # noqa: F401  (fixtures, found by name)
    _fast_xrpl,
    pay_and_settle,
    running_pair,
    wallets,
    xrpl_ledger,
)
from tests.server.test_web import CHROMIUM, browser, shot  # noqa: F401

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (Debian: apt-get install chromium)"
)


@pytest.fixture(scope="module")
def admin() -> Any:
    return Account.create()


@pytest.fixture(scope="module")
def settled(
    tmp_path_factory: pytest.TempPathFactory,
    model: OpenAIServer,
    xrpl_ledger: TestLedger,  # noqa: F811
    wallets: dict[str, Wallet],  # noqa: F811
    admin: Any,
) -> Iterator[tuple[Served, Served]]:
    admins = frozenset({admin.address})
    with running_pair(tmp_path_factory, model, xrpl_ledger, admins) as (bob, alice, spsp):
        with alice.operator() as client:
            pay_and_settle(client, model, spsp)
        with bob.operator() as client:
            wait_for(
                lambda: client.get("/api/agents/Bob/settlements").json()["peers"][0]["channels"],
                what="Bob's channel",
            )
        # Earlier days' sales, so the month view has a history to draw (written as the node
        # books them: one row per paid message).
        db = sqlite3.connect(bob.data_dir / "agents" / "bob" / "earnings.sqlite")
        now = time.time()
        with db:
            for day, count in ((2, 3), (3, 1), (5, 6), (8, 2), (9, 4), (12, 5), (16, 2)):
                for i in range(count):
                    db.execute("INSERT INTO sales (message_id, at, amount, asset, sender) "
                               "VALUES (?, ?, ?, 'XRP', 'alice')",
                               (f"past-{day}-{i}", now - day * 86400, 1000))  # fmt: skip
        db.close()
        yield bob, alice


def signed_in(browser: Any, served: Served, admin: Any, **context: Any) -> Any:  # noqa: F811
    ctx = browser.new_context(**context)
    ctx.add_init_script(f"localStorage.setItem('aigent.wallet.key', '{bytes(admin.key).hex()}')")
    page = ctx.new_page()
    page.goto(served.url + "/#/wallet")
    page.click("#sign-in")
    page.wait_for_selector("#agent-grid")
    page.wait_for_selector("#toast", state="hidden", timeout=10_000)  # "Signed in" fades
    return ctx, page


def test_the_money_page_charts_earnings_and_shows_ledger_and_channels(
    browser: Any,  # noqa: F811
    settled: tuple[Served, Served],
    admin: Any,
) -> None:
    bob, alice = settled
    ctx, page = signed_in(browser, bob, admin, viewport={"width": 1280, "height": 900})
    try:
        page.goto(bob.url + "/#/money/Bob")
        page.wait_for_selector("svg.chart rect.bar-rect")
        assert (page.text_content("#earned") or "").strip() == "0.024 XRP"  # 23 earlier, 1 now
        assert page.locator('.tr[data-peer="alice"]').count() == 1
        page.wait_for_selector('.channel:has-text("paid to us")')
        page.click('[data-every="day"]')
        page.wait_for_function("document.querySelectorAll('svg.chart rect.bar-rect').length >= 8")
        labels = page.locator("svg.chart text.axis").all_text_contents()
        assert any("0.00" in label for label in labels), labels  # the y axis in XRP
        shot(page, "money-desktop")
    finally:
        ctx.close()

    ctx, page = signed_in(browser, alice, admin, viewport={"width": 1280, "height": 900})
    try:
        page.goto(alice.url + "/#/money/Alice")
        page.wait_for_selector('.channel:has-text("we pay")')
        assert page.locator('.payment[data-state="spent"]').count() == 2
        page.wait_for_selector("svg.chart text.chart-empty")  # Alice sells nothing: empty state
        shot(page, "money-payer-desktop")
        # The explorer tells the same story as it happened, filtered to settlements.
        page.goto(alice.url + "/#/explorer")
        page.wait_for_selector('.event[data-kind="settlement.claim_sent"]')
        page.wait_for_selector('.event[data-kind="payment.committed"]')
        page.select_option("#kind-filter", "settlement")
        kinds = page.locator(".event").evaluate_all("rows => rows.map(r => r.dataset.kind)")
        assert kinds == ["settlement.claim_sent", "settlement.channel_opened"], kinds
        assert "claim for 0.001 XRP to bob" in (page.text_content(".event") or "")
        page.select_option("#kind-filter", "")
        shot(page, "explorer-money")
    finally:
        ctx.close()

    phone = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}
    ctx, page = signed_in(browser, bob, admin, **phone)
    try:
        page.goto(bob.url + "/#/money/Bob")
        page.wait_for_selector("svg.chart rect.bar-rect")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the money page scrolls sideways on a phone ({width}px)"
        shot(page, "money-phone", full_page=False)  # as the phone shows it
        page.locator(".tr[data-peer]").scroll_into_view_if_needed()
        shot(page, "money-phone-ledger", full_page=False)
    finally:
        ctx.close()
