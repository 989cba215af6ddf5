"""Payment-channel claims between two connectors over their BTP link (the ``claim`` protocol).

Wire format, mirroring @kava-labs/ilp-plugin-xrp-paychan: a BTP Message whose primary (only)
protocol data is ``claim``, content type 2 (application/json), holding
``{"channelId": <64 hex>, "value": <cumulative drops, decimal string>, "signature": <hex>,
"publicKey": <hex>}``. The peer answers a Response whose ``claim`` entry is
``{"value": <cumulative drops it now holds>}``, or a BTP Error: F00 NotAcceptedError with the
reason when the claim is refused (bad signature, not increasing, over the channel...), T00 when
it could not check (its XRPL server is unreachable, say).

Crash safety: the paying engine stores a claim before sending it and sends its latest claim
again whenever the link reopens; the receiving engine stores the claim, then credits the
connector ledger under an id made of the channel and the cumulative amount, so a repeat or a
re-send after a crash never credits twice, and a crash before crediting is made good on restart.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from typing import TYPE_CHECKING, Any

from aigent_connector import BtpError, Connector, SideProtocolRefused

from aigent_xrpl.claims import Claim, ClaimRejected
from aigent_xrpl.errors import XrplError

if TYPE_CHECKING:
    from aigent_xrpl.settlement import PaychanEngine

PROTOCOL = "claim"
INFO = "info"
"""Asks the peer for its XRPL address, to open a channel to it (``{"xrpAddress": ...}``)."""
JSON_CONTENT = 2  # BTP's application/json


# Keyed by connector, not kept in an agent's plugin state: a connector answers each side
# protocol through one handler, so every engine attached to it (one per peer, each maybe from
# its own context) must share the exchange that owns ``claim``.
_exchanges: dict[int, ClaimExchange] = {}


def exchange_for(connector: Connector) -> ClaimExchange:
    """The one exchange of ``connector``: it owns the connector's ``claim`` protocol, so every
    engine attached to it (one per peer, as agents make them) shares it."""
    key = id(connector)
    found = _exchanges.get(key)
    if found is None or found.connector is not connector:
        found = _exchanges[key] = ClaimExchange(connector)
        weakref.finalize(connector, _exchanges.pop, key, None)
    return found


class ClaimExchange:
    """Carries claims for the :class:`PaychanEngine` of each peer account of one connector."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector
        self.engines: dict[str, PaychanEngine] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        connector.on_side_protocol(PROTOCOL, self.on_claim)
        connector.on_side_protocol(INFO, self.on_info)
        connector.on_link_up(self._link_up)

    def add(self, account: str, engine: PaychanEngine) -> None:
        asset = self.connector.peer_asset(account)
        if asset is not None and asset != ("XRP", 6):
            # Claims are in drops and credited as they are: any other unit would be wrong.
            raise XrplError(
                f"peer {account} is in {asset[0]} at scale {asset[1]}; "
                "xrpl-paychan settles XRP at scale 6 (drops) only"
            )
        self.engines[account] = engine
        engine.send_claim = self.send
        self.connector.set_settlement_engine(account, engine)  # settle past the threshold
        self.apply_credits(account)  # claims stored before a crash but not yet credited
        if self.connector.connected(account):
            self._link_up(account)

    # -- paying side -------------------------------------------------------------------------
    async def send(self, account: str, claim: dict[str, Any]) -> None:
        """Deliver ``claim``; if the link is down it goes when the link reopens. Raises
        :class:`XrplError` when the peer refuses it."""
        log = self.engines[account].ctx.log
        if not self.connector.connected(account):
            log.info("xrpl-paychan: %s is not connected; claim kept", account)
            return
        try:
            await self.connector.send_side(
                account, PROTOCOL, json.dumps(claim).encode(), JSON_CONTENT
            )
        except BtpError as exc:
            raise XrplError(
                f"{account} refused the claim for {claim.get('value')} drops: {exc}"
            ) from exc
        except (ConnectionError, TimeoutError) as exc:
            log.info(
                "xrpl-paychan: claim to %s not delivered (%s); resent on reconnect",
                account,
                type(exc).__name__,
            )

    async def peer_address(self, account: str) -> str:
        """The XRPL address the peer's engine receives claims at, asked over BTP."""
        if not self.connector.connected(account):
            raise XrplError(f"{account} is not connected, so its XRPL address is unknown")
        try:
            answer = json.loads(await self.connector.send_side(account, INFO, b"{}", JSON_CONTENT))
        except (BtpError, ValueError) as exc:
            raise XrplError(f"{account} did not tell its XRPL address: {exc}") from exc
        address = answer.get("xrpAddress") if isinstance(answer, dict) else None
        if not isinstance(address, str) or not address.startswith("r"):
            raise XrplError(f"{account} answered {answer!r}, not an XRPL address")
        return address

    def _link_up(self, account: str) -> None:
        engine = self.engines.get(account)
        if engine is None:
            return
        task = asyncio.get_running_loop().create_task(self._resend(account, engine))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resend(self, account: str, engine: PaychanEngine) -> None:
        try:
            claim = await asyncio.to_thread(engine.latest_claim, account)  # the store blocks
            if claim is not None:
                await self.send(account, claim)
        except Exception as exc:  # the next reconnect or settlement tries again
            log = self.engines[account].ctx.log
            log.warning("xrpl-paychan: re-sending to %s failed: %s", account, exc)

    # -- receiving side ----------------------------------------------------------------------
    async def on_info(self, account: str, data: bytes) -> bytes:
        engine = self.engines.get(account)
        if engine is None:
            raise SideProtocolRefused(f"no payment-channel settlement is set up with {account}")
        return json.dumps({"xrpAddress": engine.xrpl.wallet.address}).encode()

    async def on_claim(self, account: str, data: bytes) -> bytes:
        engine = self.engines.get(account)
        if engine is None:
            raise SideProtocolRefused(f"no payment-channel settlement is set up with {account}")
        try:
            payload = json.loads(data)
            value = Claim.from_json(payload).amount
        except ValueError as exc:
            raise SideProtocolRefused(f"malformed claim: {exc}") from exc
        try:
            await engine.receive_claim(account, payload)
        except ClaimRejected as exc:
            raise SideProtocolRefused(str(exc)) from exc
        await self.credit(account)
        return json.dumps({"value": str(value)}).encode()

    def apply_credits(self, account: str) -> int:
        """Credit the connector ledger with ``account``'s stored claims not yet credited;
        return the drops credited. Blocks on the store: :meth:`credit` is the same from the
        event loop."""
        store = self.engines[account].store
        total = 0
        for row in store.uncredited(account):
            total += self._credit(row)
            store.set_credited(row[0], row[3])
        return total

    async def credit(self, account: str) -> int:
        """:meth:`apply_credits` with the store's calls in a thread, the ledger's on the loop."""
        store = self.engines[account].store
        total = 0
        for row in await asyncio.to_thread(store.uncredited, account):
            total += self._credit(row)
            await asyncio.to_thread(store.set_credited, row[0], row[3])
        return total

    def _credit(self, row: tuple[str, str, int, int]) -> int:
        channel, peer, credited, best = row
        # the same id again counts nothing: a crash before the store marks it is harmless
        moved = self.connector.settlement_received(
            peer, best - credited, f"xrpl-paychan:{channel}:{best}"
        )
        return (best - credited) if moved else 0
