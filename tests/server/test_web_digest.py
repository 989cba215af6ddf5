"""The digest card on the money page in a real Chromium: what the agent watched, per source,
in the window chosen. Screenshots (desktop and 390 px) go to tests/server/artifacts/."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from eth_account import Account

from aigent.watch import Observation, WatchStore
from tests.fixtures.openai_server import OpenAIServer
from tests.server.conftest import Served, character, sign_in, wait_for
from tests.server.test_web import CHROMIUM, browser, shot  # noqa: F401
from tests.server.test_web_money import signed_in

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (Debian: apt-get install chromium)"
)


def test_the_digest_card_shows_what_the_agent_watched(
    browser: Any,  # noqa: F811
    served: Served,
    model: OpenAIServer,
) -> None:
    owner = Account.create()
    client, _ = sign_in(served, owner)
    made = client.post(
        "/api/agents",
        files={"file": ("a.json", json.dumps(character(model, "Heron")), "application/json")},
    )
    assert made.status_code == 201, made.text
    wait_for(lambda: client.get("/api/agents/Heron").json()["state"] == "running", what="Heron")
    now = time.time()
    store = WatchStore(WatchStore.path_in(served.data_dir / "agents" / "heron"))
    pool = "AMM XRP/USD/rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh pool holds 1300 XRP and 385 USD"
    moved, mention = {"kind": "change", "change": 300}, {"kind": "mention"}
    store.add(
        [
            Observation("xrpl", "p", now - 3600, f"{pool} (+300)", moved),
            Observation("xrpl", "b", now - 1800, "rBob holds 107 XRP (+7)", {**moved, "change": 7}),
            Observation(
                "x", "m1", now - 600, "mention by 2001: your agent paid me in seconds", mention
            ),
            Observation("x", "m0", now - 4 * 86400, "mention by 2002: how do I run one?", mention),
        ]
    )
    store.close()
    try:
        ctx, page = signed_in(browser, served, owner, viewport={"width": 1280, "height": 900})
        try:
            page.goto(served.url + "/#/money/Heron")
            page.wait_for_selector(".digest-source")
            card = page.locator(".digest-card")
            assert card.locator(".digest-source").count() == 2
            assert "your agent paid me in seconds" in (card.text_content() or "")
            assert "how do I run one?" not in (card.text_content() or "")  # four days ago
            page.click('.digest-card [data-since="7d"]')
            page.wait_for_selector('.digest-card li:has-text("how do I run one?")')
            card.scroll_into_view_if_needed()
            shot(page, "digest-desktop")
        finally:
            ctx.close()
        phone = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2}
        ctx, page = signed_in(browser, served, owner, is_mobile=True, **phone)
        try:
            page.goto(served.url + "/#/money/Heron")
            page.wait_for_selector(".digest-source")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the digest scrolls sideways on a phone ({width}px)"
            page.locator(".digest-card").scroll_into_view_if_needed()
            shot(page, "digest-phone", full_page=False)
        finally:
            ctx.close()
    finally:
        client.delete("/api/agents/Heron")
