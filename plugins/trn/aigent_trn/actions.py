"""Actions the model may call. Amounts are human units ("1.5"), converted with the token's
decimals; every state change goes through the service, hence through the spending policy."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aigent import moves_value

from .service import from_units, to_units

if TYPE_CHECKING:
    from .service import TrnService


MAX_BLOCKS = 10_000
"""The widest block range a model may ask transfers for."""


def actions_for(get: Callable[[], TrnService]) -> list[Callable[..., Any]]:
    async def units(token: str, amount: str) -> int:
        return to_units(amount, (await get().token_info(token))["decimals"])

    async def trn_balances(address: str = "") -> str:
        """Native XRP and configured token balances of a TRN address; the agent's by default."""
        return json.dumps(await get().balances(address or None))

    async def trn_token_balance(token: str, address: str = "") -> str:
        """Balance of one ERC-20 (name from settings or 0x address) for an address."""
        svc = get()
        info = await svc.token_info(token)
        raw = await svc.token_balance(token, address or None)
        return json.dumps({"token": info["symbol"], "balance": from_units(raw, info["decimals"])})

    async def trn_token_allowance(token: str, owner: str, spender: str) -> str:
        """How much ``spender`` may still move from ``owner``'s balance of a token."""
        svc = get()
        info = await svc.token_info(token)
        raw = await svc.allowance(token, owner, spender)
        return json.dumps({"allowance": from_units(raw, info["decimals"])})

    @moves_value
    async def trn_token_transfer(token: str, to: str, amount: str) -> str:
        """Send an ERC-20 amount to an address, within the agent's spending limits."""
        return json.dumps({"tx": await get().transfer(token, to, await units(token, amount))})

    @moves_value
    async def trn_token_approve(token: str, spender: str, amount: str) -> str:
        """Allow ``spender`` to move up to ``amount`` of the agent's token (counted as a spend)."""
        tx = await get().approve(token, spender, await units(token, amount))
        return json.dumps({"tx": tx})

    @moves_value
    async def trn_token_transfer_from(token: str, owner: str, to: str, amount: str) -> str:
        """Move ``amount`` from ``owner`` (who approved the agent) to ``to``."""
        tx = await get().transfer_from(token, owner, to, await units(token, amount))
        return json.dumps({"tx": tx})

    # Creating a token moves no value by itself (minting does, and is counted), but it spends
    # gas and makes the agent the minter of a new asset: only channels that may spend lead to it.
    @moves_value
    async def trn_token_create(name: str, symbol: str, decimals: int = 18) -> str:
        """Create a new ERC-20 token on TRN that the agent mints (it deploys the contract).
        ``symbol`` (capital letters and digits) names it from then on in the token actions;
        minting and sending it stay within the spending limits set for that symbol."""
        token = await get().create_token(name, symbol, decimals)
        return json.dumps(token.public())

    async def trn_tokens() -> str:
        """The agent's TRN account and what it holds: native XRP, the configured tokens and
        the tokens it created, with balances."""
        return json.dumps(await get().holdings())

    @moves_value
    async def trn_token_mint(token: str, amount: str, to: str = "") -> str:
        """Mint a token the agent created (it is the minter) to ``to``, the agent itself by
        default, within the spending limits for the token."""
        svc = get()
        to = to or await svc.address()
        return json.dumps({"tx": await svc.mint(token, to, await units(token, amount))})

    async def trn_dex_quote(amount_in: str, path: list[str]) -> str:
        """Quote a DEX swap: how much of the last token ``amount_in`` of the first one buys."""
        svc = get()
        first, last = await svc.token_info(path[0]), await svc.token_info(path[-1])
        amounts = await svc.quote(to_units(amount_in, first["decimals"]), path)
        return json.dumps({"amount_out": from_units(amounts[-1], last["decimals"])})

    @moves_value
    async def trn_dex_swap(amount_in: str, min_out: str, path: list[str]) -> str:
        """Swap exactly ``amount_in`` of path[0] for at least ``min_out`` of path[-1] on the
        TRN DEX, within the agent's spending limits."""
        svc = get()
        first, last = await svc.token_info(path[0]), await svc.token_info(path[-1])
        tx = await svc.swap_exact_in(
            to_units(amount_in, first["decimals"]), to_units(min_out, last["decimals"]), path
        )
        return json.dumps({"tx": tx})

    async def trn_recent_transfers(token: str, address: str, blocks: int = 1000) -> str:
        """Transfers of a token from or to an address in the last ``blocks`` blocks (at most
        10,000: a wider range is cut to the most recent 10,000)."""
        span = max(1, min(blocks, MAX_BLOCKS))  # the model chooses it: never a chain-sized scan
        return json.dumps(await get().recent_transfers(token, address, span))

    async def trn_anchoring_stats() -> str:
        """How many published messages are anchored on TRN, queued or waiting, and the last
        anchor transaction."""
        from .service import stored

        return json.dumps(await stored(get().anchoring_stats))

    return [
        trn_balances,
        trn_token_balance,
        trn_token_allowance,
        trn_token_transfer,
        trn_token_approve,
        trn_token_transfer_from,
        trn_token_mint,
        trn_token_create,
        trn_tokens,
        trn_dex_quote,
        trn_dex_swap,
        trn_recent_transfers,
        trn_anchoring_stats,
    ]
