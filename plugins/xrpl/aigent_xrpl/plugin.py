"""Hooks: actions that pay and read the XRP Ledger (and pay x402 endpoints from it),
balances and recent transactions as context, the x402 payer ``ask_a2a`` pays with, and the
``xrpl-paychan`` settlement engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aigent import hookimpl, moves_value
from aigent_xrpl.service import service_for

MAX_TRANSACTIONS = 200
"""The most transactions or offers a model may ask for at once."""

if TYPE_CHECKING:
    from aigent import PluginContext
    from aigent_xrpl.settlement import PaychanEngine


def _asset(currency: str, issuer: str | None) -> dict[str, str]:
    if currency.upper() == "XRP":
        return {"currency": "XRP"}
    return {"currency": currency, "issuer": issuer or ""}


class BalancesContext:
    """Puts the agent's own XRPL balances into its context."""

    name = "xrpl-balances"

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx

    async def get(self, message: Any, agent: Any) -> str | None:
        try:
            balances = await service_for(self.ctx).balances()
        except Exception as exc:  # context is best effort; the reply should not fail on it
            self.ctx.log.warning("xrpl: balances unavailable: %s", exc)
            return None
        listed = ", ".join(f"{v} {k}" for k, v in balances.items())
        return f"Your XRPL account {service_for(self.ctx).wallet.address} holds {listed}."


class RecentTransactionsContext:
    """Puts the agent's last few XRPL transactions into its context (cached like the action)."""

    name = "xrpl-recent-transactions"

    def __init__(self, ctx: PluginContext, limit: int = 5) -> None:
        self.ctx = ctx
        self.limit = limit

    async def get(self, message: Any, agent: Any) -> str | None:
        try:
            txs = await service_for(self.ctx).recent_transactions(None, self.limit)
        except Exception as exc:  # best effort, as for balances
            self.ctx.log.warning("xrpl: recent transactions unavailable: %s", exc)
            return None
        if not txs:
            return "Your XRPL account has no transactions yet."
        lines = [
            f"- {t['type']} {t['amount'] or ''} from {t['from']} to {t['to'] or '-'}: {t['result']}"
            for t in txs
        ]
        return "Your latest XRPL transactions:\n" + "\n".join(lines)


CONTEXT_PROVIDERS = {"balances": BalancesContext, "recent_transactions": RecentTransactionsContext}


@hookimpl
def register_context_providers(register: Callable[..., None], ctx: PluginContext) -> None:
    if not ctx.secrets.get(str(ctx.settings.get("seed_env", "XRPL_SEED"))):
        return  # no wallet: nothing of ours to describe
    wanted = ctx.settings.get("context", ["balances"])
    for name in wanted if isinstance(wanted, list) else []:
        provider = CONTEXT_PROVIDERS.get(str(name))
        if provider is None:
            ctx.log.warning(
                "xrpl: unknown context %r (known: %s)", name, ", ".join(CONTEXT_PROVIDERS)
            )
            continue
        register(provider(ctx))


@hookimpl
def register_actions(register: Callable[..., None], ctx: PluginContext) -> None:
    @moves_value
    async def xrpl_pay(
        destination: str, amount: str, currency: str = "XRP", issuer: str = "", purpose: str = ""
    ) -> str:
        """Pay on the XRP Ledger (XRP, or an issued currency with its issuer), within the
        agent's spending limits. Returns the transaction hash and result."""
        result = await service_for(ctx).pay(destination, amount, currency, issuer or None, purpose)
        return json.dumps({"hash": result.get("hash"), "result": "tesSUCCESS"})

    # Moves no value, but reconfigures the account (DefaultRipple) and costs a fee: only
    # channels that may spend lead to it.
    @moves_value
    async def xrpl_currency_create(currency: str) -> str:
        """Become the issuer of a currency on the XRPL (a three-letter code such as AGC): the
        account is set up for it and the code remembered. Accounts that trust the agent for it
        can then be issued it with xrpl_issue."""
        return json.dumps(await service_for(ctx).create_currency(currency))

    @moves_value
    async def xrpl_issue(currency: str, destination: str, amount: str) -> str:
        """Issue the agent's own currency (it is the issuer) to an account that trusts it
        for that currency, within the spending limits for the currency."""
        result = await service_for(ctx).issue(currency, destination, amount)
        return json.dumps({"hash": result.get("hash"), "result": "tesSUCCESS"})

    # See XrplService.trust_set for how a trust line stands to the spending policy.
    @moves_value
    async def xrpl_trust_set(currency: str, issuer: str, limit: str) -> str:
        """Trust ``issuer`` for up to ``limit`` of its ``currency`` (a trust line), so the
        agent can hold and receive it; a limit of 0 lowers the line to nothing."""
        result = await service_for(ctx).trust_set(currency, issuer, limit)
        return json.dumps({"hash": result.get("hash"), "result": "tesSUCCESS"})

    @moves_value
    async def x402_fetch(
        url: str, method: str = "POST", body: str = "", max_price: str = ""
    ) -> str:
        """Call an HTTP endpoint that may ask for payment (x402): when it answers 402, pay
        what it asks from the agent's XRPL account, within the spending limits and at most
        ``max_price`` (XRP, or units of the asked currency), and return its answer."""
        from aigent_xrpl.x402 import x402_fetch as fetch

        return json.dumps(await fetch(service_for(ctx), url, method, body, max_price))

    async def xrpl_balances(account: str = "") -> str:
        """Balances (XRP and trust lines) of an XRPL account; the agent's own by default."""
        return json.dumps(await service_for(ctx).balances(account or None))

    async def xrpl_trust_lines(account: str = "") -> str:
        """Trust lines of an XRPL account; the agent's own by default."""
        return json.dumps(await service_for(ctx).trust_lines(account or None))

    async def xrpl_tokens() -> str:
        """The agent's XRPL account: its XRP, the currencies it holds on trust lines, and the
        currencies it issued with what each holder holds."""
        return json.dumps(await service_for(ctx).holdings())

    async def xrpl_amm_info(
        currency: str, issuer: str = "", currency2: str = "XRP", issuer2: str = ""
    ) -> str:
        """The AMM pool for two assets: reserves, LP token and trading fee."""
        pool = await service_for(ctx).amm_info(_asset(currency, issuer), _asset(currency2, issuer2))
        return json.dumps(pool)

    async def xrpl_book_offers(
        gets_currency: str,
        pays_currency: str,
        gets_issuer: str = "",
        pays_issuer: str = "",
        limit: int = 10,
    ) -> str:
        """Order book offers in which the taker gets one asset and pays the other (at most
        200)."""
        offers = await service_for(ctx).book_offers(
            _asset(gets_currency, gets_issuer),
            _asset(pays_currency, pays_issuer),
            max(1, min(limit, MAX_TRANSACTIONS)),
        )
        return json.dumps(offers)

    async def xrpl_recent_transactions(account: str = "", limit: int = 10) -> str:
        """Recent transactions of an XRPL account (at most 200); the agent's own by default."""
        limit = max(1, min(limit, MAX_TRANSACTIONS))  # the model chooses it: bounded
        return json.dumps(await service_for(ctx).recent_transactions(account or None, limit))

    for action in (
        xrpl_pay,
        xrpl_currency_create,
        xrpl_issue,
        xrpl_trust_set,
        x402_fetch,
        xrpl_balances,
        xrpl_trust_lines,
        xrpl_tokens,
        xrpl_amm_info,
        xrpl_book_offers,
        xrpl_recent_transactions,
    ):
        register(action)


@hookimpl
def register_x402_payers(register: Callable[..., None], ctx: PluginContext) -> None:
    if not ctx.secrets.get(str(ctx.settings.get("seed_env", "XRPL_SEED"))):
        return  # no wallet: nothing to pay from
    from aigent_xrpl.x402 import payer_for

    register(payer_for(service_for(ctx)))  # ask_a2a pays paid A2A agents through it


@hookimpl
def register_watchers(register: Callable[..., None], ctx: PluginContext) -> None:
    from aigent_xrpl.watch import watcher_for

    watcher = watcher_for(service_for(ctx), ctx)
    if watcher is not None:  # settings.xrpl.watch names what to watch: no wallet needed
        register(watcher)


@hookimpl
def register_settlement_engines(register: Callable[..., None]) -> None:
    def factory(ctx: PluginContext) -> PaychanEngine:
        from aigent_xrpl.settlement import PaychanEngine

        return PaychanEngine(ctx)  # with the agent's service, shared with its actions

    register("xrpl-paychan", factory)
