"""One TRN service per agent: connection, signer, proof store, cached reads, and every
value-moving call under the agent's spending policy. It and the proof store live in the agent's
plugin state (``ctx.state``): the agent's hooks share them, other agents never see them.

web3 is synchronous here; calls run in worker threads so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from aigent import SpendDenied, format_amount, run_blocking

from . import created as token_book
from . import store as proofs
from .config import TrnSettings
from .created import CreatedToken, CreatedTokens, check_new
from .errors import TrnError, TrnInputError
from .store import ProofStore

if TYPE_CHECKING:
    from aigent import PluginContext

    from .chain import Signer

T = TypeVar("T")
NATIVE_DECIMALS = 18  # XRP as the EVM's native coin on TRN is scaled to 18 decimals


def kept(ctx: PluginContext, key: str, make: Callable[[], T]) -> T:
    """``ctx.state[key]``, made on first use: one per agent, shared by the plugin's hooks."""
    if key not in ctx.state:
        ctx.state[key] = make()
    return ctx.state[key]  # type: ignore[no-any-return]


def proof_store(ctx: PluginContext) -> ProofStore:
    """The agent's proof store (``after_publish`` writes, the anchoring loop reads), in its
    storage: it follows the agent to whichever server runs it."""
    return kept(ctx, "store", lambda: ProofStore(ctx.storage.open(proofs.NAME, proofs.MIGRATIONS)))


def created_tokens(ctx: PluginContext) -> CreatedTokens:
    """The tokens the agent created, by symbol (kept across restarts and moves)."""
    return kept(
        ctx,
        "created",
        lambda: CreatedTokens(ctx.storage.open(token_book.NAME, token_book.MIGRATIONS)),
    )


def service_for(ctx: PluginContext) -> TrnService:
    """The agent's service: its context, actions and anchoring loop share one connection,
    signer and cache."""
    return kept(ctx, "service", lambda: TrnService(ctx))


def to_units(amount: str | int | Decimal, decimals: int) -> int:
    """A human amount ("1.5") in the token's smallest units; refuses sub-unit precision."""
    try:
        value = Decimal(str(amount))
    except Exception as exc:
        raise TrnInputError(f"not a number: {amount!r}") from exc
    if not value.is_finite():
        raise TrnInputError(f"not a number: {amount!r}")
    units = value.scaleb(decimals)
    if units != units.to_integral_value():
        raise TrnInputError(f"{amount} has more than {decimals} decimals")
    if units <= 0:
        raise TrnInputError(f"amount must be positive, got {amount}")
    return int(units)


def from_units(units: int, decimals: int) -> str:
    return format_amount(units, decimals)


# Failures that mean the value did not move: the node refused the call before it was sent
# (a failing gas estimate), or the mined call reverted.
_NOTHING_SENT = {"ContractLogicError", "ContractCustomError", "ContractPanicError"}


# Chain calls block (web3 is synchronous), so they run in threads: reads and sends in small
# pools of their own (aigent's run_blocking), because a send waits up to 120 s for its receipt
# and cannot be cancelled. A hung node then holds at most those threads, never the pool every
# other plugin (and the core) shares.
READS, SENDS = "trn-read", "trn-send"
STORE = "trn-store"
"""The proof store's pool: its calls wait on a database, never behind a slow node."""


async def _in_pool(pool: str, fn: Callable[..., T], *args: Any) -> T:
    return await run_blocking(pool, fn, *args)


async def stored(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` (calls to the agent's stores) off the event loop."""
    return await run_blocking(STORE, fn, *args)


class TrnService:
    def __init__(self, ctx: PluginContext, settings: TrnSettings | None = None) -> None:
        self.ctx = ctx
        self.settings = settings or TrnSettings.parse(ctx.settings)
        self.store = proof_store(ctx)
        self.created = created_tokens(ctx)
        self._create_lock = asyncio.Lock()
        self._w3: Any = None
        self._signer: Signer | None = None
        self._cache: dict[str, tuple[float, Any]] = {}
        self._connect_lock = asyncio.Lock()

    # --- connection -------------------------------------------------------------------------
    async def w3(self) -> Any:
        """Connected web3, the chain id checked against the settings."""
        async with self._connect_lock:
            if self._w3 is None:
                from . import chain

                await stored(self.created.load)  # token() then reads it from memory

                s = self.settings
                try:
                    self._w3 = await _in_pool(READS, chain.connect, s.rpc_url, s.chain_id)
                except TrnError:
                    raise  # the wrong chain: the message says which setting to fix
                except Exception as exc:
                    raise TrnError(f"cannot reach TRN RPC {s.rpc_url}: {exc}") from exc
            return self._w3

    async def signer(self) -> Signer:
        if self._signer is None:
            from .chain import shared_signer

            key = self.ctx.secrets.get(self.settings.key_env)
            if not key:
                raise TrnError(
                    f"no TRN signing key: set {self.settings.key_env} in the environment or "
                    ".env (a 0x... private key); it is never logged"
                )
            w3 = await self.w3()
            try:
                self._signer = shared_signer(w3, self.settings.rpc_url, key)
            except Exception:
                # the library's message could quote the key: say only what is wrong
                raise TrnError(f"{self.settings.key_env} is not a valid private key") from None
        return self._signer

    async def address(self) -> str:
        return (await self.signer()).address

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(w3, *args)`` in a worker thread."""
        w3 = await self.w3()
        return await _in_pool(READS, fn, w3, *args)

    async def cached(self, key: str, make: Callable[[], Awaitable[T]]) -> T:
        hit = self._cache.get(key)
        if hit and time.monotonic() - hit[0] < self.settings.cache_ttl:
            return hit[1]  # type: ignore[no-any-return]
        value = await make()
        self._cache[key] = (time.monotonic(), value)
        return value

    # --- tokens -----------------------------------------------------------------------------
    def token(self, token: str) -> tuple[str, str]:
        """(checksum address, spending asset name) for a configured name, the symbol of a token
        the agent created, or an address. A created token's asset is its symbol, whether it is
        named by symbol or by address: one set of limits, ``spending.<SYMBOL>``, governs it."""
        from web3 import Web3

        for name, address in self.settings.tokens.items():
            if token in (name, address) or token.lower() == address.lower():
                return Web3.to_checksum_address(address), name
        created = self.created.get(self.settings.chain_id, token)
        if created is not None:
            return Web3.to_checksum_address(created.address), created.symbol
        if not Web3.is_address(token):
            known = [*self.settings.tokens, *(t.symbol for t in self.created_here())]
            raise TrnInputError(
                f"unknown token {token!r}: give an address or a name "
                f"({', '.join(known) or 'none configured or created'})"
            )
        checksum = Web3.to_checksum_address(token)
        return checksum, f"erc20:{checksum}"

    def created_here(self) -> list[CreatedToken]:
        """The tokens the agent created on the chain it is connected to."""
        return self.created.on(self.settings.chain_id)

    async def token_info(self, token: str) -> dict[str, Any]:
        from . import tokens

        address, asset = self.token(token)
        found = await self.cached(f"info:{address}", lambda: self.run(tokens.info, address))
        return {**found, "asset": asset}

    async def deploy_token(self, name: str, symbol: str, decimals: int = 18) -> str:
        """Deploy a SimpleToken minted by the agent's key. Costs gas only, so it does not pass
        the spending policy (minting does)."""
        from . import tokens

        signer = await self.signer()
        return await self.run(tokens.deploy_token, signer, name, symbol, decimals)

    async def create_token(self, name: str, symbol: str, decimals: int = 18) -> CreatedToken:
        """Deploy a token the agent mints and remember it under ``symbol``, which then names
        it in every token call and is the asset its spending limits are kept under. Costs gas
        only (minting is what the policy counts). A symbol already in use (configured in
        settings.trn.tokens, or created before on this chain) is refused before any gas is
        spent."""
        from . import tokens

        check_new(name, symbol, decimals)
        async with self._create_lock:  # two creations of one symbol: the second is refused
            chain_id = self.settings.chain_id
            existing = self.created.get(chain_id, symbol)
            if symbol in self.settings.tokens or existing is not None:
                where = existing.address if existing else self.settings.tokens[symbol]
                raise TrnInputError(
                    f"the agent already has a token {symbol} ({where}): choose another symbol"
                )
            w3, signer = await self.w3(), await self.signer()

            def deploy_and_record() -> CreatedToken:
                # one thread call: an action timing out while the deploy is mined still
                # leaves the token recorded, never a contract nobody remembers
                address = tokens.deploy_token(w3, signer, name, symbol, decimals)
                token = CreatedToken(chain_id, symbol, name, address, decimals, time.time())
                self.created.add(token)
                return token

            token = await _in_pool(SENDS, deploy_and_record)
        return token

    async def _spend(
        self,
        token: str,
        amount: int,
        destination: str,
        purpose: str,
        send: Callable[[], Any],
    ) -> Any:
        """Run ``send`` in a thread under the spending policy. ``amount`` is in the token's
        smallest units (its decimals are the rail's scale); the policy counts it at the asset
        scale of ``spending.<asset>``, rounded up, since 18-decimal amounts overflow its
        integers. The reservation is released only when nothing moved (the call reverted, or
        was refused before it was sent); a send that timed out or was cancelled may still be
        mined, so its reservation stays held."""
        if amount <= 0:
            raise TrnInputError(f"amount must be positive, got {amount}")
        if self.ctx.spending is None:
            raise SpendDenied("this agent has no spending policy, so it may not move value")
        info = await self.token_info(token)
        async with self.ctx.spending.spend(
            info["asset"], amount, to=destination, scale=info["decimals"], purpose=purpose
        ) as spend:
            try:
                result = await _in_pool(SENDS, send)
            except Exception as exc:
                if type(exc).__name__ == "TimeExhausted":
                    raise TrnError(f"{purpose}: sent, no receipt yet; reservation kept") from exc
                if type(exc).__name__ in _NOTHING_SENT or "reverted" in str(exc):
                    spend.nothing_moved()
                raise
        self._cache.clear()
        return result

    async def transfer(self, token: str, to: str, amount: int) -> str:
        return await self._token_call(token, "transfer", to, amount, to)

    async def approve(self, token: str, spender: str, amount: int) -> str:
        return await self._token_call(token, "approve", spender, amount, spender)

    async def transfer_from(self, token: str, owner: str, to: str, amount: int) -> str:
        return await self._token_call(token, "transferFrom", to, amount, owner, to)

    async def mint(self, token: str, to: str, amount: int) -> str:
        return await self._token_call(token, "mint", to, amount, to)

    async def _token_call(
        self, token: str, method: str, counterparty: str, amount: int, *addresses: str
    ) -> str:
        """``method(*addresses, amount)`` on an ERC-20, under the spending policy (the amount
        to ``counterparty``); returns the transaction hash."""
        from web3 import Web3

        from . import tokens

        address, asset = self.token(token)
        w3, signer = await self.w3(), await self.signer()
        args = [Web3.to_checksum_address(a) for a in addresses]
        rcpt = await self._spend(
            token, amount, Web3.to_checksum_address(counterparty), f"{method} {asset}",
            lambda: tokens.call_tx(w3, signer, address, method, *args, amount),
        )  # fmt: skip
        return str(Web3.to_hex(rcpt["transactionHash"]))

    async def token_balance(self, token: str, owner: str | None = None) -> int:
        from . import tokens

        address, _ = self.token(token)
        who = owner or await self.address()
        return await self.cached(
            f"bal:{address}:{who}", lambda: self.run(tokens.balance_of, address, who)
        )

    async def allowance(self, token: str, owner: str, spender: str) -> int:
        from . import tokens

        address, _ = self.token(token)
        return await self.run(tokens.allowance, address, owner, spender)

    async def native_balance(self, owner: str | None = None) -> int:
        from web3 import Web3

        who = Web3.to_checksum_address(owner or await self.address())
        return await self.cached(
            f"native:{who}", lambda: self.run(lambda w3: int(w3.eth.get_balance(who)))
        )

    async def balances(self, owner: str | None = None) -> dict[str, str]:
        """Native XRP, every configured token and every token the agent created, in human
        units."""
        out = {"XRP": from_units(await self.native_balance(owner), NATIVE_DECIMALS)}
        for name in [*self.settings.tokens, *(t.symbol for t in self.created_here())]:
            info = await self.token_info(name)
            out[name] = from_units(await self.token_balance(name, owner), info["decimals"])
        return out

    async def holdings(self) -> dict[str, Any]:
        """The agent's account and what it holds, one row per asset: the native coin, the
        configured tokens, the tokens it created (with name, contract and decimals)."""
        me = await self.address()
        rows: list[dict[str, Any]] = [
            {
                "symbol": "XRP",
                "kind": "native",
                "decimals": NATIVE_DECIMALS,
                "balance": from_units(await self.native_balance(me), NATIVE_DECIMALS),
            }
        ]
        for name in self.settings.tokens:
            info = await self.token_info(name)
            rows.append(
                {
                    "symbol": name,
                    "kind": "configured",
                    "address": info["address"],
                    "decimals": info["decimals"],
                    "balance": from_units(await self.token_balance(name, me), info["decimals"]),
                }
            )
        for t in self.created_here():
            rows.append(
                {
                    **t.public(),
                    "kind": "created",
                    "balance": from_units(await self.token_balance(t.symbol, me), t.decimals),
                }
            )
        return {"address": me, "chain_id": self.settings.chain_id, "tokens": rows}

    async def recent_transfers(
        self, token: str, address: str, blocks: int = 1000
    ) -> list[dict[str, Any]]:
        from . import tokens

        token_address, _ = self.token(token)
        w3 = await self.w3()
        head = await _in_pool(READS, lambda: int(w3.eth.block_number))
        start = max(0, head - blocks + 1)
        return await self.cached(
            f"transfers:{token_address}:{address}:{blocks}",
            lambda: self.run(
                tokens.transfers, token_address, address, start, head, self.settings.log_page
            ),
        )

    async def block_time(self, block: int) -> int:
        """When ``block`` was made (its timestamp, Unix seconds)."""
        return await self.run(lambda w3: int(w3.eth.get_block(block)["timestamp"]))

    # --- DEX --------------------------------------------------------------------------------
    async def quote(self, amount_in: int, path: list[str]) -> list[int]:
        from . import dex

        addresses = [self.token(t)[0] for t in path]
        return await self.cached(
            f"quote:{amount_in}:{addresses}",
            lambda: self.run(dex.amounts_out, self.settings.dex_router, amount_in, addresses),
        )

    async def swap_exact_in(
        self, amount_in: int, min_out: int, path: list[str], to: str | None = None
    ) -> str:
        """Swap exactly ``amount_in`` of ``path[0]``; the spend is that input amount. The
        router is approved for exactly this amount inside the same reservation."""
        return await self._swap("in", amount_in, min_out, amount_in, path, to)

    async def swap_exact_out(
        self, amount_out: int, max_in: int, path: list[str], to: str | None = None
    ) -> str:
        """Buy exactly ``amount_out`` of ``path[-1]`` paying at most ``max_in``; the spend
        reserved is ``max_in``."""
        return await self._swap("out", amount_out, max_in, max_in, path, to)

    async def _swap(
        self, exact: str, amount: int, limit: int, spend: int, path: list[str], to: str | None
    ) -> str:
        from web3 import Web3

        from . import dex, tokens

        addresses = [self.token(t)[0] for t in path]
        asset = self.token(path[0])[1]
        w3, signer = await self.w3(), await self.signer()
        dest = Web3.to_checksum_address(to or signer.address)
        s = self.settings
        router = Web3.to_checksum_address(s.dex_router)

        def send() -> Any:
            if tokens.allowance(w3, addresses[0], signer.address, router) < spend:
                tokens.call_tx(w3, signer, addresses[0], "approve", router, spend)
            return dex.swap(
                w3, signer, router, exact, amount, limit, addresses, dest, s.deadline_blocks
            )

        rcpt = await self._spend(path[0], spend, router, f"swap {asset} via DEX", send)
        return str(Web3.to_hex(rcpt["transactionHash"]))

    # --- anchoring ---------------------------------------------------------------------------
    def anchoring_stats(self) -> dict[str, Any]:
        """Blocks (the proof store): call it from a thread."""
        return {**self.store.stats(), "registry": self.settings.registry or None}
