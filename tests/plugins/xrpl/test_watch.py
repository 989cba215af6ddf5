"""The XRPL watcher against the local test ledger: balances and pools recorded when they move,
transactions once each, nothing new after a restart, and the digest showing the moves."""

from __future__ import annotations

import time
from pathlib import Path

import aigent_xrpl
import pytest
from aigent_xrpl.errors import XrplInputError
from aigent_xrpl.service import RIPPLE_EPOCH, XrplService
from aigent_xrpl.testledger import TestLedger

from aigent import Character, PluginContext, Watcher
from aigent.secrets import Secrets
from aigent.spending import Limits
from aigent.watch import WatchConfig, WatchService, WatchStore, digest

from .conftest import MakeCtx, new_wallet

ISSUER = "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh"


def watchers(ledger: TestLedger, tmp_path: Path, watch: object) -> list[Watcher]:
    settings = {"url": ledger.url, "cache_ttl": 0, "watch": watch}
    ctx = PluginContext(
        character=Character(name="w", settings={"xrpl": settings}),
        secrets=Secrets(environ={}),  # watching needs no wallet
        data_dir=tmp_path,
        plugin="xrpl",
        settings=settings,
    )
    found: list[Watcher] = []
    aigent_xrpl.register_watchers(register=found.append, ctx=ctx)  # as the entry point has it
    return found


async def test_moves_on_watched_accounts_and_pools_reach_the_digest(
    ledger: TestLedger, make_ctx: MakeCtx, tmp_path: Path
) -> None:
    alice, bob = new_wallet(ledger), new_wallet(ledger)
    ledger.add_amm_pool("1000000000", {"currency": "USD", "issuer": ISSUER, "value": "500"})
    usd = {"currency": "USD", "issuer": ISSUER}
    ledger.add_offer(ISSUER, {**usd, "value": "100"}, "250000000")  # 2.5 XRP per USD
    usd_book = [f"USD/{ISSUER}", "XRP"]
    watch = {"accounts": [bob.address], "amm": [["XRP", f"USD/{ISSUER}"]], "books": [usd_book]}
    path = tmp_path / "watch.sqlite"
    service = WatchService(watchers(ledger, tmp_path, watch), WatchConfig(), path)
    assert await service.poll_once() == 3  # bob's XRP, the pool and the book, first seen
    assert await service.poll_once() == 0

    await XrplService(make_ctx(alice, {"XRP": Limits(max_per_payment=10_000_000)})).pay(
        bob.address, "7", purpose="test"
    )
    paid = ledger.txs[ledger.account_txs[bob.address][-1]]
    paid["date"] -= 2 * 86400  # its ledger closed two days ago (the watcher polls only now)
    pool = ledger.amm_pools[0]
    pool["amount"], pool["amount2"]["value"] = "1300000000", "385"  # someone bought USD
    ledger.offers[0]["TakerPays"] = "260000000"  # the best offer asks more
    assert await service.poll_once() == 4  # bob's balance, the payment, the pool, the book
    await service.stop()

    restarted = WatchService(watchers(ledger, tmp_path, watch), WatchConfig(), path)
    assert await restarted.poll_once() == 0  # the same values and the same transaction
    await restarted.stop()

    store = WatchStore(path)
    items = store.items()
    store.close()
    tx = next(o for o in items if o.data["kind"] == "transaction")
    assert tx.time == paid["date"] + RIPPLE_EPOCH  # the ledger's close, not when polled
    assert all(o.time > time.time() - 3600 for o in items if o is not tx)  # first seen
    kinds = sorted(str(o.data["kind"]) for o in items)
    assert kinds == ["balance", "book", "change", "change", "change", "pool", "transaction"]
    text = digest(items, time.time() - 3 * 86400, latest=10)
    assert "xrpl: 7 item(s) (1 balance, 1 book, 3 change, 1 pool, 1 transaction)" in text
    book = f"Book USD/{ISSUER} for XRP: best 2.6 XRP per USD/{ISSUER}, 100 USD/{ISSUER} offered"
    assert f"{book} (+0.1)" in text
    changes = text.split("top changes:")[1].splitlines()[1:3]
    assert f"AMM XRP/USD/{ISSUER} pool holds 1300 XRP and 385 USD/{ISSUER} (+300)" in changes[0]
    assert f"{bob.address} holds 107 XRP (+7)" in changes[1]
    assert f"Payment 7 XRP from {alice.address} to {bob.address}: tesSUCCESS" in text


@pytest.mark.parametrize(
    ("watch", "message"),
    [
        ({"amm": [["XRP"]]}, r"settings\.xrpl\.watch\.amm\.0: a pair"),
        ({"amm": [["XRP", "USD"]]}, r"'USD': write XRP or CURRENCY/rIssuer"),
        ({"accounts": "r..."}, r"accounts, amm and books are lists"),
        ({"books": [["XRP", "EUR"]]}, r"books\.0: 'EUR': write XRP or CURRENCY/rIssuer"),
    ],
)
def test_a_bad_watch_setting_says_which_and_how(
    ledger: TestLedger, tmp_path: Path, watch: object, message: str
) -> None:
    with pytest.raises(XrplInputError, match=message):
        watchers(ledger, tmp_path, watch)


def test_no_watch_setting_offers_no_watcher(ledger: TestLedger, tmp_path: Path) -> None:
    assert watchers(ledger, tmp_path, None) == []
