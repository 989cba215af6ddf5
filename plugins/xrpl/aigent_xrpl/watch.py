"""What the agent watches on the XRP Ledger (``settings.xrpl.watch``), for the core's watch
service: the balances and transactions of watched accounts, the reserves of AMM pools and the
best price of order books.

A balance or a pool is recorded when it differs from the last one seen: its first sighting as
``balance``/``pool``, each move after as ``change`` with the difference in ``data["change"]``.
The last values seen are kept in the agent's ``watch`` store (:class:`aigent.watch.LastSeen`;
``xrpl-watched.json`` before, imported once), so a restart compares with what was seen before
it."""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aigent import Observation
from aigent.watch import LastSeen
from aigent_xrpl.errors import XrplInputError
from aigent_xrpl.service import XrplService

if TYPE_CHECKING:
    from aigent import PluginContext
    from aigent.storage import Storage


def _asset(spec: str, where: str) -> dict[str, str]:
    """``XRP`` or ``CUR/rIssuer``."""
    if spec.upper() == "XRP":
        return {"currency": "XRP"}
    currency, _, issuer = spec.partition("/")
    if not currency or not issuer:
        raise XrplInputError(
            f"settings.xrpl.watch.{where}: {spec!r}: write XRP or CURRENCY/rIssuer"
        )
    return {"currency": currency, "issuer": issuer}


def _amount(value: Any) -> tuple[str, Decimal]:
    """An amount in rippled's JSON (drops as a string, or an issued amount) as (asset, value)."""
    if isinstance(value, dict):
        return f"{value['currency']}/{value['issuer']}", Decimal(str(value["value"]))
    return "XRP", Decimal(str(value)) / 1_000_000


class XrplWatcher:
    """A transaction is stored at its ledger's close time; a balance, pool or book move at the
    time it is first seen (they have no time of their own)."""

    name = "xrpl"

    def __init__(
        self,
        service: XrplService,
        settings: dict[str, Any],
        memo: Path,
        storage: Storage | None = None,
    ) -> None:
        self.service = service
        accounts = settings.get("accounts", [])
        pools = settings.get("amm", [])
        books = settings.get("books", [])
        if not all(isinstance(x, list) for x in (accounts, pools, books)):
            raise XrplInputError(
                "settings.xrpl.watch: accounts, amm and books are lists, e.g. "
                '{"accounts": ["r..."], "amm": [["XRP", "USD/r..."]], "books": [["USD/r...", '
                '"XRP"]]}'
            )
        self.accounts = [str(a) for a in accounts]
        self.pools, self.books = _pairs(pools, "amm"), _pairs(books, "books")
        self.seen = LastSeen(self.name, memo, storage)

    async def poll(self, since: float | None) -> list[Observation]:
        await self.seen.load()
        now, found = time.time(), list[Observation | None]()
        for account in self.accounts:
            for asset, value in (await self.service.balances(account)).items():
                text = f"{account} holds {value} {asset}"
                key = f"balance:{account}:{asset}"
                found.append(self.seen.observe(key, Decimal(value), now, text, "balance"))
            for tx in await self.service.recent_transactions(account, 20):
                if tx["hash"] is None:
                    continue
                found.append(
                    Observation(
                        self.name,
                        f"tx:{tx['hash']}",
                        tx["time"] if tx["time"] is not None else now,  # its ledger's close
                        f"{tx['type']} {_shown(tx['amount'])} from {tx['from']} to "
                        f"{tx['to'] or '-'}: {tx['result']}",
                        {"kind": "transaction", **tx},
                    )
                )
        for first, second in self.pools:
            pool = await self.service.amm_info(first, second)
            (a, x), (b, y) = _amount(pool["amount"]), _amount(pool["amount2"])
            text = f"AMM {a}/{b} pool holds {x:f} {a} and {y:f} {b}"
            found.append(self.seen.observe(f"amm:{a}:{b}", x, now, text, "pool"))
        for gets, pays in self.books:
            offers = await self.service.book_offers(gets, pays, 20)
            if not offers:
                continue
            # Offers come best first: the first one's rate is the book's price.
            g, best_gets = _amount(offers[0]["TakerGets"])
            p, best_pays = _amount(offers[0]["TakerPays"])
            price = (best_pays / best_gets).normalize() if best_gets else Decimal(0)
            depth = sum(_amount(o["TakerGets"])[1] for o in offers)
            text = f"Book {g} for {p}: best {price:f} {p} per {g}, {depth:f} {g} offered"
            found.append(self.seen.observe(f"book:{g}:{p}", price, now, text, "book"))
        await self.seen.save()
        return [o for o in found if o is not None]


def _pairs(value: list[Any], where: str) -> list[tuple[dict[str, str], dict[str, str]]]:
    """``[[XRP, USD/rIssuer], ...]`` as pairs of assets in rippled's JSON."""
    out = []
    for i, pair in enumerate(value):
        if not isinstance(pair, list) or len(pair) != 2:
            raise XrplInputError(f"settings.xrpl.watch.{where}.{i}: a pair, e.g. [XRP, USD/r...]")
        out.append((_asset(str(pair[0]), f"{where}.{i}"), _asset(str(pair[1]), f"{where}.{i}")))
    return out


def _shown(amount: Any) -> str:
    if amount is None:
        return ""
    try:
        asset, value = _amount(amount)
    except (KeyError, InvalidOperation):
        return str(amount)
    return f"{value:f} {asset}"


def watcher_for(service: XrplService, ctx: PluginContext) -> XrplWatcher | None:
    settings = ctx.settings.get("watch")
    if not settings:
        return None
    if not isinstance(settings, dict):
        raise XrplInputError("settings.xrpl.watch: an object with accounts and amm")
    return XrplWatcher(service, settings, ctx.data_dir / "xrpl-watched.json", ctx.storage)
