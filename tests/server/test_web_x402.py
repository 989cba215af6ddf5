"""The money page in a real Chromium after Bob was paid both ways: by a stranger with the
``x402-xrpl`` SDK's client and by Alice over ILP; the Earned tile splits the total by rail.
Screenshots (desktop and 390 px) go to tests/server/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aigent_xrpl.testledger import TestLedger
from eth_account import Account
from xrpl.wallet import Wallet

from tests.fixtures.openai_server import OpenAIServer, reply
from tests.server.conftest import Served
from tests.server.test_money import (  # noqa: F401  (fixtures, found by name)
    _fast_xrpl,
    pay_and_settle,
    running_pair,
    wallets,
    xrpl_ledger,
)
from tests.server.test_web import CHROMIUM, browser, shot  # noqa: F401
from tests.server.test_web_money import signed_in
from tests.server.test_x402 import stranger

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (Debian: apt-get install chromium)"
)


@pytest.fixture(scope="module")
def admin() -> Any:
    return Account.create()


@pytest.fixture(scope="module")
def paid_both_ways(
    tmp_path_factory: pytest.TempPathFactory,
    model: OpenAIServer,
    xrpl_ledger: TestLedger,  # noqa: F811
    wallets: dict[str, Wallet],  # noqa: F811
    admin: Any,
) -> Iterator[Served]:
    admins = frozenset({admin.address})
    with running_pair(tmp_path_factory, model, xrpl_ledger, admins) as (bob, alice, spsp):
        payer = Wallet.create()
        xrpl_ledger.fund(payer.address, 50_000_000)
        model.queue(reply("paid answer"))
        folder: Path = tmp_path_factory.mktemp("payer")
        url = f"{bob.url}/x402/Bob/messages"
        assert stranger(folder, "pay", url, xrpl_ledger.url, payer)["status"] == 200
        with alice.operator() as client:
            pay_and_settle(client, model, spsp)
        yield bob


def test_the_money_page_splits_earnings_by_rail(
    browser: Any,  # noqa: F811
    paid_both_ways: Served,
    admin: Any,
) -> None:
    bob = paid_both_ways
    for name, viewport in (("desktop", {"width": 1280, "height": 900}),
                           ("phone", {"width": 390, "height": 844})):  # fmt: skip
        ctx, page = signed_in(browser, bob, admin, viewport=viewport)
        try:
            page.goto(bob.url + "/#/money/Bob")
            page.wait_for_selector("#rails")
            assert (page.text_content("#earned") or "").strip() == "0.002 XRP"
            rails = page.locator("#rails > div").all_text_contents()
            assert rails == ["0.001 XRP over ILP", "0.001 XRP by x402 (XRPL)"], rails
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], f"the page scrolls sideways ({width}px)"
            shot(page, f"money-rails-{name}", full_page=False)
        finally:
            ctx.close()
