"""The XRPL side of a plugin instance: a wallet, an async client, submissions and cached reads."""

from __future__ import annotations

import asyncio
import copy
import re
import time
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING, Any

from aigent_xrpl import currencies as currency_book
from aigent_xrpl.currencies import IssuedCurrencies
from aigent_xrpl.errors import XrplError, XrplInputError

if TYPE_CHECKING:
    from xrpl.asyncio.clients import AsyncJsonRpcClient
    from xrpl.models import Transaction
    from xrpl.wallet import Wallet

    from aigent import PluginContext, Spend

TESTNET_URL = "https://s.altnet.rippletest.net:51234"
LSF_DEFAULT_RIPPLE = 0x00800000
"""An account's flag that lets its issued currencies pass between holders (rippling)."""
# rippled's currency codes: three characters from this set (never "XRP"), or 40 hex digits
STANDARD_CODE = re.compile(r"^[A-Za-z0-9?!@#$%^&*<>(){}\[\]|]{3}$")
HEX_CODE = re.compile(r"^[0-9A-Fa-f]{40}$")
RIPPLE_EPOCH = 946_684_800
"""XRPL times count from 2000-01-01 UTC."""


def currency_code(currency: str) -> str:
    """``currency`` if it can name an issued currency on the XRPL; a clear error otherwise."""
    if currency.upper() == "XRP":
        raise XrplInputError("XRP is the ledger's own coin, not an issued currency")
    if not (STANDARD_CODE.match(currency) or HEX_CODE.match(currency)):
        raise XrplInputError(
            f"currency {currency!r} is not an XRPL currency code: use three letters or digits "
            "(USD, EUR, AGC) or 40 hex digits"
        )
    return currency


def amount_of(amount: str, what: str = "amount", zero: bool = False) -> Decimal:
    """A decimal amount given as text; positive (or zero, where ``zero`` allows it)."""
    try:
        value = Decimal(str(amount))
    except ArithmeticError:
        raise XrplInputError(f"{what} is not a number: {amount!r}") from None
    if not value.is_finite() or value < 0 or (value == 0 and not zero):
        least = "zero or more" if zero else "positive"
        raise XrplInputError(f"{what} must be {least}, got {amount!r}")
    return value


def account_address(address: str, what: str) -> str:
    from xrpl.core.addresscodec import is_valid_classic_address

    if not is_valid_classic_address(address):
        raise XrplInputError(f"{what} {address!r} is not an XRPL address (r...)")
    return address


# Per process, not per agent: two agents (or an agent and its settlement engine) may hold the
# same wallet, and one account's transactions must take its sequence numbers one at a time.
_locks: dict[str, asyncio.Lock] = {}


def account_lock(address: str) -> asyncio.Lock:
    """One lock per account in this process, so that sequence numbers never collide."""
    return _locks.setdefault(address, asyncio.Lock())


def service_for(ctx: PluginContext) -> XrplService:
    """The agent's one service (wallet, client, cache), kept in its plugin state: its actions,
    context and settlement engines share it; another agent never sees it."""
    service = ctx.state.get("service")
    if service is None:
        service = ctx.state["service"] = XrplService(ctx)
    return service  # type: ignore[no-any-return]


class XrplService:
    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.url = str(ctx.settings.get("url", TESTNET_URL))
        self.seed_env = str(ctx.settings.get("seed_env", "XRPL_SEED"))
        self.ttl = float(ctx.settings.get("cache_ttl", 15))
        self._wallet: Wallet | None = None
        self._client: AsyncJsonRpcClient | None = None
        self.clock = time.monotonic
        self._cache: dict[str, tuple[float, Any]] = {}
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._currencies: IssuedCurrencies | None = None

    @property
    def currencies(self) -> IssuedCurrencies:
        """The currencies the agent issues (kept in its storage; their calls block)."""
        if self._currencies is None:
            store = self.ctx.storage.open(currency_book.NAME, currency_book.MIGRATIONS)
            self._currencies = IssuedCurrencies(store)
        return self._currencies

    @property
    def wallet(self) -> Wallet:
        if self._wallet is None:
            from xrpl.wallet import Wallet

            seed = self.ctx.secrets.get(self.seed_env)
            if not seed:
                raise XrplError(
                    f"no XRPL wallet: set {self.seed_env} in the environment or .env to the "
                    "account's seed (s...); the testnet faucet gives one"
                )
            self._wallet = Wallet.from_seed(seed)
        return self._wallet

    @property
    def client(self) -> AsyncJsonRpcClient:
        if self._client is None:
            from xrpl.asyncio.clients import AsyncJsonRpcClient

            self._client = AsyncJsonRpcClient(self.url)
        return self._client

    async def request(self, method: str, **params: Any) -> dict[str, Any]:
        from xrpl.models.requests import GenericRequest

        response = await self.client.request(GenericRequest(method=method, **params))
        if not response.is_successful():
            error = response.result.get("error", "error")
            raise XrplError(f"{method} failed at {self.url}: {error}: {response.result}")
        return dict(response.result)

    async def cached(self, method: str, **params: Any) -> dict[str, Any]:
        """A read answered from memory for ``ttl`` seconds. Identical reads made at the same
        time (context providers and actions run in parallel) share one request; our own
        submissions clear the cache, so the agent sees its own payments at once."""
        key = method + repr(sorted(params.items()))
        now = self.clock()
        hit = self._cache.get(key)
        if hit and now - hit[0] < self.ttl:
            return copy.deepcopy(hit[1])
        waiting = self._inflight.get(key)
        if waiting is not None:
            return copy.deepcopy(await asyncio.shield(waiting))
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self.request(method, **params)
        except asyncio.CancelledError:
            # Those sharing this request were not cancelled themselves: they get an error.
            future.set_exception(XrplError(f"{method} was cancelled"))
            future.exception()  # marked retrieved: nobody else may be waiting
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(result)
        # Drop what has expired, so a long-running agent's cache does not grow without end.
        self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self.ttl}
        self._cache[key] = (now, result)
        return copy.deepcopy(result)

    async def submit(self, tx: Transaction, spend: Spend | None = None) -> dict[str, Any]:
        """Sign and submit as our wallet, serialised per account; return the validated result.

        With ``spend`` (a reservation under the spending policy), say what is known of the
        outcome: nothing moved when the transaction could not be signed, was refused before it
        applied, expired unvalidated (``LastLedgerSequence`` passed) or was validated without
        success; a lost connection or a cancel says nothing, so the reservation stays held."""
        from xrpl.asyncio.transaction import (
            XRPLReliableSubmissionException,
            autofill_and_sign,
            submit_and_wait,
        )

        wallet = self.wallet
        async with account_lock(wallet.address):
            try:
                signed = await autofill_and_sign(tx, self.client, wallet)
            except Exception:
                if spend is not None:
                    spend.nothing_moved()
                raise
            try:
                response = await submit_and_wait(signed, self.client)
            except XRPLReliableSubmissionException as exc:  # refused, or expired unvalidated
                if spend is not None:
                    spend.nothing_moved()
                raise XrplError(f"{tx.transaction_type} failed: {exc}") from exc
            except Exception as exc:
                raise XrplError(f"{tx.transaction_type} failed: {exc}") from exc
        self._cache.clear()
        result = dict(response.result)
        code = result.get("meta", {}).get("TransactionResult", "")
        if code != "tesSUCCESS":
            if spend is not None:
                spend.nothing_moved()  # a tec result burns the fee but moves no value
            raise XrplError(f"{tx.transaction_type} did not succeed: {code}")
        return result

    async def pay(
        self,
        destination: str,
        amount: str,
        currency: str = "XRP",
        issuer: str | None = None,
        purpose: str = "",
    ) -> dict[str, Any]:
        """Pay under the agent's spending policy: reserve, submit, then commit or release."""
        from xrpl.models import IssuedCurrencyAmount, Payment
        from xrpl.utils import xrp_to_drops

        account_address(destination, "destination")
        if currency.upper() == "XRP":
            value: Any = xrp_to_drops(amount_of(amount))
            asset, units, scale = "XRP", int(value), 6  # drops
        else:
            currency_code(currency)
            amount = format(amount_of(amount), "f")
            if not issuer:
                raise XrplInputError(f"paying {currency} needs the issuer's address")
            value = IssuedCurrencyAmount(currency=currency, issuer=issuer, value=amount)
            scale = int(self.ctx.settings.get("issued_scale", 6))
            exact = Decimal(amount).scaleb(scale)
            asset, units = currency, int(exact.to_integral_value(rounding=ROUND_CEILING))
        if self.ctx.spending is None:
            raise XrplError("this agent has no spending policy, so it may not pay")
        tx = Payment(account=self.wallet.address, destination=destination, amount=value)
        async with self.ctx.spending.spend(
            asset, units, to=destination, scale=scale, purpose=purpose
        ) as spend:
            return await self.submit(tx, spend)

    async def create_currency(self, currency: str) -> dict[str, Any]:
        """Make the agent an issuer of ``currency``: turn on DefaultRipple on its account (once;
        without it holders cannot pass the currency to one another) and remember the code, so
        it is listed before anyone trusts the agent for it. It moves no value; it costs a fee
        only when the flag is not set yet."""
        from xrpl.models import AccountSet
        from xrpl.models.transactions import AccountSetAsfFlag

        currency_code(currency)
        me = self.wallet.address
        info = await self.request("account_info", account=me, ledger_index="validated")
        if not int(info["account_data"].get("Flags", 0)) & LSF_DEFAULT_RIPPLE:
            flag = AccountSetAsfFlag.ASF_DEFAULT_RIPPLE
            await self.submit(AccountSet(account=me, set_flag=flag))
        await asyncio.to_thread(self.currencies.add, me, currency, time.time())
        return {"currency": currency, "issuer": me}

    async def issue(self, currency: str, destination: str, amount: str) -> dict[str, Any]:
        """Issue ``amount`` of the agent's own ``currency`` to ``destination``: a Payment of
        an issued currency whose issuer is the agent, under the spending limits for
        ``currency`` like any payment of it. The destination must trust the agent for it
        first (a trust line); without one nothing is submitted."""
        currency_code(currency)
        account_address(destination, "destination")
        amount_of(amount)
        me = self.wallet.address
        if destination == me:
            raise XrplInputError("an issuer cannot issue to itself: name the holder's address")
        lines = await self.request("account_lines", account=destination, peer=me)
        if not any(x["account"] == me and x["currency"] == currency for x in lines["lines"]):
            raise XrplInputError(
                f"{destination} has no trust line for {currency} issued by {me}: it must set "
                f"one first (xrpl_trust_set with currency {currency} and issuer {me})"
            )
        return await self.pay(destination, amount, currency, me, purpose=f"issue {currency}")

    async def trust_set(self, currency: str, issuer: str, limit: str) -> dict[str, Any]:
        """Create or change the agent's trust line to ``issuer`` for ``currency`` (a limit of
        0 lowers it to nothing).

        A trust line moves no value: it says how much of the issuer's currency the agent is
        willing to hold. So it reserves nothing against the spending caps, which count what
        leaves the agent (counting the exposure would eat the cap real payments need). What it
        risks is the issuer's credit, plus the owner reserve it locks: the action is
        ``@moves_value`` (only channels in ``spend_from`` lead to it), and where the owner
        limited whom the agent deals with in that currency (``spending.<currency>.allowlist``)
        the issuer must be on that list."""
        from xrpl.models import IssuedCurrencyAmount, TrustSet

        currency_code(currency)
        account_address(issuer, "issuer")
        value = amount_of(limit, "limit", zero=True)
        if issuer == self.wallet.address:
            raise XrplInputError("the agent issues this currency itself: it needs no trust line")
        if self.ctx.spending is None:
            raise XrplError("this agent has no spending policy, so it may not set trust lines")
        self.ctx.spending.check_destination(currency, issuer)
        tx = TrustSet(
            account=self.wallet.address,
            limit_amount=IssuedCurrencyAmount(
                currency=currency, issuer=issuer, value=format(value, "f")
            ),
        )
        return await self.submit(tx)

    # -- reads for analysis ------------------------------------------------------------------
    async def balances(self, address: str | None = None) -> dict[str, str]:
        from xrpl.utils import drops_to_xrp

        who = address or self.wallet.address
        info = await self.cached("account_info", account=who, ledger_index="validated")
        out = {"XRP": f"{drops_to_xrp(info['account_data']['Balance']).normalize():f}"}
        for line in await self.trust_lines(who):
            out[f"{line['currency']}/{line['account']}"] = line["balance"]
        return out

    async def holdings(self) -> dict[str, Any]:
        """The agent's account: its XRP, the trust lines on which it holds others' currencies,
        those on which others hold the currencies it issues (a line the peer extended to the
        agent, not the agent to the peer), and the currencies it issues with how much of each
        is out (those it created, held by nobody yet, too)."""
        from xrpl.utils import drops_to_xrp

        me = self.wallet.address
        info = await self.cached("account_info", account=me, ledger_index="validated")
        holding, issued = [], []
        for line in await self.trust_lines(me):
            theirs = Decimal(line.get("limit_peer", "0")) > 0 and Decimal(line["limit"]) == 0
            if theirs:
                issued.append(
                    {
                        "currency": line["currency"],
                        "holder": line["account"],
                        "amount": f"{-Decimal(line['balance']):f}",
                        "limit": line.get("limit_peer", "0"),
                    }
                )
            else:
                holding.append(
                    {
                        "currency": line["currency"],
                        "issuer": line["account"],
                        "balance": line["balance"],
                        "limit": line["limit"],
                    }
                )
        issuing = await asyncio.to_thread(self.currencies.of, me)
        outstanding = {code: Decimal(0) for code in issuing}
        for line in issued:
            outstanding[line["currency"]] = outstanding.get(line["currency"], Decimal(0)) + (
                Decimal(line["amount"])
            )
        currencies = [
            {
                "currency": code,
                "outstanding": f"{total:f}",
                "holders": sum(1 for x in issued if x["currency"] == code),
            }
            for code, total in outstanding.items()
        ]
        xrp = f"{drops_to_xrp(info['account_data']['Balance']).normalize():f}"
        return {
            "address": me,
            "xrp": xrp,
            "holding": holding,
            "issued": issued,
            "currencies": currencies,
        }

    async def trust_lines(self, address: str | None = None) -> list[dict[str, Any]]:
        who = address or self.wallet.address
        return list((await self.cached("account_lines", account=who))["lines"])

    async def amm_info(self, asset: dict[str, str], asset2: dict[str, str]) -> dict[str, Any]:
        return dict((await self.cached("amm_info", asset=asset, asset2=asset2))["amm"])

    async def book_offers(
        self, taker_gets: dict[str, str], taker_pays: dict[str, str], limit: int = 10
    ) -> list[dict[str, Any]]:
        result = await self.cached(
            "book_offers", taker_gets=taker_gets, taker_pays=taker_pays, limit=limit
        )
        return list(result["offers"])

    async def recent_transactions(
        self, address: str | None = None, limit: int = 10
    ) -> list[dict[str, Any]]:
        who = address or self.wallet.address
        result = await self.cached("account_tx", account=who, limit=limit)
        out = []
        for entry in result["transactions"]:
            tx = entry.get("tx_json") or entry.get("tx") or {}
            out.append(
                {
                    "hash": entry.get("hash", tx.get("hash")),
                    "type": tx.get("TransactionType"),
                    "from": tx.get("Account"),
                    "to": tx.get("Destination"),
                    "amount": tx.get("Amount", tx.get("DeliverMax")),
                    "result": entry.get("meta", {}).get("TransactionResult"),
                    "time": _closed_at(tx, entry),
                }
            )
        return out


def _closed_at(tx: dict[str, Any], entry: dict[str, Any]) -> int | None:
    """When the ledger holding a transaction closed (Unix seconds): its ``date`` (seconds
    since the XRPL epoch), else API v2's ``close_time_iso``; None for one not yet validated."""
    if isinstance(tx.get("date"), int):
        return int(tx["date"]) + RIPPLE_EPOCH
    iso = entry.get("close_time_iso")
    if isinstance(iso, str):
        try:
            return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return None
    return None
