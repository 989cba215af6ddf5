"""Settlement over XRPL payment channels: cumulative claims signed off-chain, redeemed on-chain.

Paying side: :meth:`PaychanEngine.open_channel` once per peer (it and :meth:`fund_channel` lock
XRP away, so they go through the agent's spending policy), then :meth:`settle` signs a claim
for the new cumulative total, writes it to the agent's store, and only then hands it out (to
``send_claim`` if the connector set one; :meth:`latest_claim` gives it again after a crash, or
on the server that runs the agent next). A ``settlement_id`` makes settle idempotent: asking
again for the same settlement returns the same claim.

Receiving side: :meth:`receive_claim` checks the signature (and that the ledger would take it:
fully canonical), that the amount strictly increases and stays within the channel, and that the
channel leaves at least ``min_settle_delay`` seconds to redeem, by ``SettleDelay`` and by
``CancelAfter``; it stores the best claim and returns the newly credited drops. :meth:`redeem`
submits the best claims (periodically from :meth:`start`, sooner when a channel holding an
unredeemed claim is about to expire, and on :meth:`close`); one channel that fails does not stop
the others, and a claim the ledger closed the channel on instead of paying is reported, not
counted. Claims are cumulative, so redeeming the same claim twice cannot pay twice: the ledger
rejects a Balance that does not exceed what the channel has paid, and redeem reads it first.

:meth:`attach` joins the engine to a connector's BTP link (:mod:`aigent_xrpl.btp_claims`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aigent_xrpl import claims
from aigent_xrpl.claims import Claim, ClaimRejected, ClaimStore, claim_is_valid, sign_claim
from aigent_xrpl.errors import XrplError
from aigent_xrpl.service import XrplService, service_for
from aigent_xrpl.signatures import is_canonical

if TYPE_CHECKING:
    from aigent_connector import Connector

    from aigent import ChannelState, PluginContext
    from aigent_xrpl.btp_claims import ClaimExchange

SendClaim = Callable[[str, dict[str, Any]], Awaitable[None]]


class RedeemFailed(XrplError):
    """Some channels could not be redeemed; the others were. ``failures`` maps each failed
    channel to why, ``redeemed`` is what the round did redeem."""

    def __init__(self, redeemed: int, failures: dict[str, str]) -> None:
        self.redeemed = redeemed
        self.failures = failures
        listed = "; ".join(f"{channel}: {why}" for channel, why in failures.items())
        super().__init__(
            f"redeemed {redeemed} drops, but {len(failures)} channel(s) failed: {listed}"
        )


class PaychanEngine:
    name = "xrpl-paychan"

    def __init__(self, ctx: PluginContext, service: XrplService | None = None) -> None:
        self.ctx = ctx
        self.xrpl = service or service_for(ctx)
        self.store = ClaimStore(ctx.storage.open(claims.NAME, claims.MIGRATIONS))
        """In the agent's storage: a served agent's claims follow it to the next server."""
        self.settle_delay = int(ctx.settings.get("settle_delay", 3600))
        self.min_settle_delay = int(ctx.settings.get("min_settle_delay", 3600))
        self.redeem_interval = float(ctx.settings.get("redeem_interval", 300))
        self.channel_drops = int(ctx.settings.get("channel_drops", 10_000_000))
        """How much a channel this engine opens (or tops up) locks at a time."""
        self.send_claim: SendClaim | None = None
        self.exchange: ClaimExchange | None = None
        """Set by :meth:`attach`: the connector link that carries this engine's claims."""
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._retry_at = 0.0
        self.clock = time.time
        """POSIX seconds, compared with the channels' CancelAfter (a test may move it)."""

    # -- paying side -------------------------------------------------------------------------
    async def open_channel(self, peer: str, destination: str, drops: int) -> str:
        """Create and fund a channel to ``destination`` (the peer's XRPL address). The drops
        locked in it count as spent to ``destination`` under the agent's spending policy."""
        from xrpl.models import PaymentChannelCreate

        wallet = self.xrpl.wallet
        tx = PaymentChannelCreate(
            account=wallet.address,
            destination=destination,
            amount=str(drops),
            settle_delay=self.settle_delay,
            public_key=wallet.public_key,
        )
        result = await self._spend(drops, destination, f"payment channel to {peer}", tx)
        channel = next(
            node["CreatedNode"]["LedgerIndex"]
            for node in result["meta"]["AffectedNodes"]
            if node.get("CreatedNode", {}).get("LedgerEntryType") == "PayChannel"
        )
        await asyncio.to_thread(self.store.add_channel, channel, peer, "out", drops)
        self._emit("channel_opened", peer, str(channel), capacity=drops, destination=destination)
        return str(channel)

    async def fund_channel(self, peer: str, drops: int) -> None:
        from xrpl.models import PaymentChannelFund

        channel, amount = await asyncio.to_thread(self._outgoing, peer)
        destination = (await self._channel_entry(channel))["destination_account"]
        tx = PaymentChannelFund(
            account=self.xrpl.wallet.address, channel=channel, amount=str(drops)
        )
        await self._spend(drops, destination, f"payment channel to {peer}", tx)
        await asyncio.to_thread(self.store.add_channel, channel, peer, "out", amount + drops)
        self._emit("channel_funded", peer, channel, amount=drops, capacity=amount + drops)

    def _emit(self, what: str, peer: str, channel: str, **data: Any) -> None:
        self.ctx.emit(
            f"settlement.{what}", peer=peer, channel=channel, asset="XRP", scale=6,
            engine=self.name, **data,
        )  # fmt: skip

    def channels(self, account: str) -> list[ChannelState]:
        """The channels with peer ``account`` as this engine's store knows them (no ledger
        round trip: what is locked, claimed and redeemed, and when it expires)."""
        from aigent import ChannelState

        return [
            ChannelState(
                peer=account,
                channel=channel,
                direction="in" if direction == "in" else "out",
                asset_code="XRP",
                asset_scale=6,
                capacity=capacity,
                claimed=claimed,
                redeemed=redeemed,
                state="closed" if closed else "open",
                expires_at=expires,
            )
            for channel, direction, capacity, claimed, redeemed, expires, closed in (
                self.store.states(account)
            )
        ]

    async def _spend(self, drops: int, destination: str, purpose: str, tx: Any) -> dict[str, Any]:
        """Under the spending policy: a transaction the ledger refused never counts; one whose
        outcome is unknown (cancelled, timed out) stays reserved until it is known."""
        if isinstance(drops, bool) or not isinstance(drops, int) or drops <= 0:
            raise XrplError(f"a channel needs a positive whole number of drops, not {drops!r}")
        if self.ctx.spending is None:
            raise XrplError("this agent has no spending policy, so it may not fund channels")
        async with self.ctx.spending.spend(
            "XRP", drops, to=destination, scale=6, purpose=purpose
        ) as spend:
            return await self.xrpl.submit(tx, spend)

    def _outgoing(self, peer: str) -> tuple[str, int]:
        found = self.store.channel_for(peer, "out")
        if found is None:
            raise XrplError(f"no payment channel to {peer}: open one with open_channel first")
        return found

    async def settle(self, account: str, amount: int, settlement_id: str | None = None) -> int:
        """Sign a claim raising the peer's total by ``amount`` drops; durable before handed out.
        Attached to a connector, the engine opens a channel to the peer (its XRPL address asked
        over BTP) or tops it up when the claim would not fit, under the spending policy."""
        known = settlement_id is not None and (
            await asyncio.to_thread(self.store.settlement, settlement_id) is not None
        )
        if not known:
            await self._ensure_capacity(account, amount)
        claim = await self.create_claim(account, amount, settlement_id)
        if self.send_claim is not None:
            await self.send_claim(account, claim.to_json())
        self._emit("claim_sent", account, claim.channel, amount=amount, total=claim.amount)
        return amount

    async def _ensure_capacity(self, account: str, amount: int) -> None:
        found = await asyncio.to_thread(self.store.channel_for, account, "out")
        if found is None:
            if self.exchange is None:
                return  # create_claim says to open a channel first
            destination = await self.exchange.peer_address(account)
            await self.open_channel(account, destination, max(self.channel_drops, amount))
            return
        channel, capacity = found
        best = await asyncio.to_thread(self.store.best, channel)
        needed = (best[0].amount if best else 0) + amount - capacity
        if needed > 0:
            await self.fund_channel(account, max(self.channel_drops, needed))

    def attach(self, connector: Connector, account: str) -> None:
        """Settle with peer ``account`` of ``connector`` over its BTP link: claims go out as
        ``claim`` side-protocol Messages, incoming ones are verified and credited to the
        connector's ledger, and the latest claim is sent again whenever the link reopens. The
        engine is handed to the connector's settler here too, so attaching by hand (without
        an agent's node) is enough."""
        from aigent_xrpl.btp_claims import exchange_for

        self.exchange = exchange_for(connector)
        self.exchange.add(account, self)

    async def create_claim(
        self, account: str, amount: int, settlement_id: str | None = None
    ) -> Claim:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise XrplError(f"a settlement is a positive whole number of drops, not {amount!r}")
        wallet = self.xrpl.wallet

        def sign_next() -> Claim:
            # Read, sign and write in one transaction no other process sharing the store
            # interleaves with (two servers during a hand-over): a settlement is signed once
            # and each claim raises the last one written, never one read before it.
            with self.store.exclusive():
                channel, capacity = self._outgoing(account)
                best = self.store.best(channel)
                if settlement_id is not None and self.store.settlement(settlement_id) is not None:
                    assert best is not None
                    return best[0]
                total = (best[0].amount if best else 0) + amount
                if total > capacity:
                    raise XrplError(
                        f"the channel to {account} holds {capacity} drops; a claim for {total} "
                        "would exceed it: fund the channel first"
                    )
                claim = sign_claim(channel, total, wallet.public_key, wallet.private_key)
                self.store.save(claim, settlement_id)
                return claim

        async with self._lock:
            # shielded: once signing started, its record is written even if the caller gives up
            return await asyncio.shield(asyncio.to_thread(sign_next))

    def latest_claim(self, account: str) -> dict[str, Any] | None:
        """The last claim signed for ``account`` (to resend after a restart)."""
        found = self.store.channel_for(account, "out")
        best = self.store.best(found[0]) if found else None
        return best[0].to_json() if best else None

    # -- receiving side ----------------------------------------------------------------------
    async def receive_claim(self, account: str, data: dict[str, Any]) -> int:
        """Verify and keep an incoming claim from peer ``account``; return the drops credited.
        The claim already held comes back as 0 (a re-send after a reconnect is harmless)."""
        try:
            claim = Claim.from_json(data)
        except (KeyError, ValueError, TypeError) as exc:
            raise ClaimRejected(f"malformed claim from {account}: {exc}") from exc
        try:
            channel = await self._channel_entry(claim.channel)
        except XrplError as exc:
            if "entryNotFound" in str(exc):
                raise ClaimRejected(f"channel {claim.channel} does not exist") from exc
            raise
        if not claim.public_key:
            claim = Claim(claim.channel, claim.amount, claim.signature, channel["public_key_hex"])
        if channel["destination_account"] != self.xrpl.wallet.address:
            raise ClaimRejected(f"channel {claim.channel} does not pay this agent")
        if not claim_is_valid(claim, channel["public_key_hex"]):
            raise ClaimRejected(f"claim from {account} has a bad signature")
        if not is_canonical(bytes.fromhex(claim.signature), channel["public_key_hex"]):
            raise ClaimRejected(
                f"claim from {account} has a signature that is not fully canonical: it "
                "verifies, but the XRP Ledger refuses such claims, so it could never be redeemed"
            )
        if claim.amount > int(channel["amount"]):
            raise ClaimRejected(
                f"claim for {claim.amount} drops exceeds channel amount {channel['amount']}"
            )
        async with self._lock:
            kept = await asyncio.to_thread(self._keep_incoming, account, claim, channel)
        if kept is None:
            return 0  # held already: a re-send credits nothing, whatever the channel does
        previous, expires = kept
        if expires is not None:
            self._wake.set()  # the redeem loop may have to act before its next round
        self._emit(
            "claim_received", account, claim.channel, amount=claim.amount - previous,
            total=claim.amount,
        )  # fmt: skip
        return claim.amount - previous

    def _keep_incoming(
        self, account: str, claim: Claim, channel: dict[str, Any]
    ) -> tuple[int, float | None] | None:
        """The checks against the claim held and its write, in one transaction of the store
        (another process sharing it cannot slip a claim in between): what the peer had paid
        before and when the channel expires, or None when the claim is held already."""
        with self.store.exclusive():
            best = self.store.best(claim.channel)
            if best is not None and claim.amount == best[0].amount:
                return None
            if channel["expiration"] is not None or channel["settle_delay"] < self.min_settle_delay:
                raise ClaimRejected(
                    f"channel {claim.channel} is closing or settles in under "
                    f"{self.min_settle_delay} s, so its claims cannot be relied on"
                )
            expires = _posix(channel["cancel_after"])
            if expires is not None and expires - self.clock() < self.min_settle_delay:
                # after CancelAfter the ledger closes the channel on the next claim, paying nothing
                raise ClaimRejected(
                    f"channel {claim.channel} expires by CancelAfter in "
                    f"{max(0, expires - self.clock()):.0f} s, under min_settle_delay "
                    f"({self.min_settle_delay} s), so its claims could not be redeemed safely"
                )
            previous = best[0].amount if best else int(channel["balance"])
            if claim.amount <= previous:
                raise ClaimRejected(
                    f"claim for {claim.amount} drops does not exceed the last one ({previous})"
                )
            self.store.save_incoming(claim, account, int(channel["amount"]), previous, expires)
        return previous, expires

    async def _channel_entry(self, channel_id: str) -> dict[str, Any]:
        result = await self.xrpl.request(
            "ledger_entry", payment_channel=channel_id, ledger_index="validated"
        )
        node = result["node"]
        return {
            "destination_account": node["Destination"],
            "public_key_hex": node["PublicKey"],
            "amount": node["Amount"],
            "balance": node.get("Balance", "0"),
            "settle_delay": int(node.get("SettleDelay", 0)),
            "expiration": node.get("Expiration"),
            "cancel_after": node.get("CancelAfter"),
        }

    async def redeem(self, close: bool = False) -> int:
        """Submit the best claim on every incoming channel; return the drops newly redeemed.
        A channel that fails is skipped, never the ones after it; when any failed, this
        raises :class:`RedeemFailed` after trying them all."""
        total = 0
        failures: dict[str, str] = {}
        for channel, peer in await asyncio.to_thread(self.store.channels, "in"):
            try:
                total += await self._redeem_channel(channel, close)
            except Exception as exc:
                failures[channel] = str(exc)
                self.ctx.log.warning(
                    "xrpl-paychan: redeeming channel %s from %s failed: %s", channel, peer, exc
                )
        if failures:
            raise RedeemFailed(total, failures)
        return total

    async def _redeem_channel(self, channel: str, close: bool) -> int:
        from xrpl.models import PaymentChannelClaim
        from xrpl.models.transactions import PaymentChannelClaimFlag

        best, incoming = await asyncio.to_thread(
            lambda: (self.store.best(channel), self.store.channels("in"))
        )
        if best is None:
            return 0
        claim, _redeemed = best
        peer = next((p for c, p in incoming if c == channel), "")
        try:
            on_ledger = int((await self._channel_entry(channel))["balance"])
        except XrplError as exc:
            if "entryNotFound" in str(exc):
                await self._closed(peer, channel, _redeemed)
                return 0  # the channel is gone (closed): nothing left to redeem
            raise
        redeemed = 0
        if on_ledger < claim.amount:
            result = await self.xrpl.submit(
                PaymentChannelClaim(
                    account=self.xrpl.wallet.address,
                    channel=channel,
                    balance=str(claim.amount),
                    amount=str(claim.amount),
                    signature=claim.signature,
                    public_key=claim.public_key,
                    flags=PaymentChannelClaimFlag.TF_CLOSE if close else 0,
                )
            )
            paid = _paid_when_closed(result, channel)
            if paid is not None:
                await self._closed(peer, channel, paid)
            if paid is not None and paid < claim.amount:
                # an expired channel is closed by any claim, which then pays nothing
                raise XrplError(
                    f"the channel expired before its claim for {claim.amount} drops was "
                    f"redeemed: the ledger closed it having paid {paid}, so "
                    f"{claim.amount - paid} drops credited to the peer are lost"
                )
            redeemed = claim.amount - on_ledger
            self._emit("redeemed", peer, channel, amount=redeemed, total=claim.amount)
        elif close:
            result = await self.xrpl.submit(
                PaymentChannelClaim(
                    account=self.xrpl.wallet.address,
                    channel=channel,
                    flags=PaymentChannelClaimFlag.TF_CLOSE,
                )
            )
            paid = _paid_when_closed(result, channel)
            if paid is not None:
                await self._closed(peer, channel, paid)
        await asyncio.to_thread(self.store.mark_redeemed, channel, claim.amount)
        return redeemed

    async def _closed(self, peer: str, channel: str, redeemed: int) -> None:
        if await asyncio.to_thread(self.store.mark_closed, channel, self.clock()):
            self._emit("channel_closed", peer, channel, redeemed=redeemed)

    async def _seconds_to_next_redeem(self, due: float) -> float:
        """Until the periodic round (``due``, monotonic), or sooner: halfway into the last
        ``min_settle_delay`` before a channel holding an unredeemed claim expires; after a
        round, retries such a channel every ``min_settle_delay / 8`` seconds until it does."""
        wait = due - time.monotonic()
        expires = await asyncio.to_thread(self.store.next_expiry, self.clock())
        if expires is not None:
            redeem_by = expires - self.min_settle_delay / 2 - self.clock()
            wait = min(wait, max(redeem_by, self._retry_at - time.monotonic()))
        return wait

    async def _redeem_forever(self) -> None:
        due = time.monotonic() + self.redeem_interval
        while True:
            self._wake.clear()
            wait = await self._seconds_to_next_redeem(due)
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue  # woken by a claim on an expiring channel, or the time has come
            due = time.monotonic() + self.redeem_interval
            self._retry_at = time.monotonic() + self.min_settle_delay / 8
            try:
                await self.redeem()
            except Exception as exc:  # keep the loop alive; the next round retries
                self.ctx.log.warning("xrpl-paychan: redeeming failed: %s", exc)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._redeem_forever())

    async def close(self, close_channels: bool = False) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.redeem(close=close_channels)
        finally:
            self.store.close()


def _posix(ripple_time: int | None) -> float | None:
    from xrpl.utils.time_conversions import RIPPLE_EPOCH

    return None if ripple_time is None else float(ripple_time + RIPPLE_EPOCH)


def _paid_when_closed(result: dict[str, Any], channel: str) -> int | None:
    """What ``channel`` had paid when this transaction deleted it (its final Balance), or None
    when the transaction did not delete it."""
    for node in result.get("meta", {}).get("AffectedNodes", []):
        deleted = node.get("DeletedNode", {})
        if (
            deleted.get("LedgerEntryType") == "PayChannel"
            and str(deleted.get("LedgerIndex", "")).upper() == channel.upper()
        ):
            return int(deleted.get("FinalFields", {}).get("Balance", "0"))
    return None
