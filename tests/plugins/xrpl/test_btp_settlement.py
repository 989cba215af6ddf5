"""Two connectors peered over BTP on loopback settle through XRPL payment channels.

Real parts throughout: both connectors speak BTP over real WebSockets, each has its own SQLite
ledger and PaychanEngine, and the channel lives on the local test ledger (which checks every
signature with xrpl-py). Claims travel as the ``claim`` side protocol.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aigent_connector.btp import BtpError
from aigent_connector.connector import Connector, Peer
from aigent_connector.ledger import SqliteLedger
from aigent_connector.packets import Fulfill, Prepare, Reject
from aigent_xrpl.service import XrplError
from aigent_xrpl.settlement import PaychanEngine
from aigent_xrpl.testledger import TestLedger
from xrpl.wallet import Wallet

from aigent.spending import Limits

from .conftest import MakeCtx, new_wallet

FULFILLMENT = os.urandom(32)
CONDITION = hashlib.sha256(FULFILLMENT).digest()
LIMITS = {"XRP": Limits(max_per_payment=20_000_000, per_day=50_000_000)}
CHANNEL = 1_000_000
THRESHOLD = -3_000  # alice settles once she owes bob more than 3000 drops


@dataclass
class Pair:
    """alice (g.alice, BTP server) pays bob (g.bob, BTP client) and settles by claims."""

    ledger: TestLedger
    a: Connector
    b: Connector
    payer: PaychanEngine
    payee: PaychanEngine
    bob_wallet: Wallet
    channel: str
    url: str

    async def pay(self, amount: int) -> None:
        prepare = Prepare(amount, datetime.now(UTC) + timedelta(seconds=10), CONDITION,
                          "g.bob.shop", b"")  # fmt: skip
        answer = await self.a.send(prepare)
        assert isinstance(answer, Fulfill), answer

    def owed(self) -> tuple[int, int]:
        """(what alice's ledger says she owes bob, what bob's says alice owes him)."""
        return -self.a.ledger.account("bob").balance, self.b.ledger.account("alice").balance


async def _eventually(check: Callable[[], bool]) -> None:
    for _ in range(500):  # 10 s
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out waiting")


@pytest.fixture
async def pair(ledger: TestLedger, make_ctx: MakeCtx, tmp_path: Path) -> AsyncIterator[Pair]:
    alice_wallet, bob_wallet = new_wallet(ledger), new_wallet(ledger)
    a = Connector("g.alice", SqliteLedger(tmp_path / "a.sqlite"))
    b = Connector("g.bob", SqliteLedger(tmp_path / "b.sqlite"))
    a.add_peer(Peer("bob"))
    a.routes.add("g.bob", "bob")
    a.ledger.configure("bob", settle_threshold=THRESHOLD, settle_to=0)
    b.add_peer(Peer("alice"))
    b.ledger.configure("alice", max_balance=10_000)

    async def shop(source: str, prepare: Prepare) -> Fulfill | Reject:
        return Fulfill(FULFILLMENT)

    b.set_packet_handler(shop)
    port = await a.listen({"bob": "bob-token"})
    url = f"ws://127.0.0.1:{port}"
    await b.connect(url, "alice", "bob", "bob-token")
    payer = PaychanEngine(make_ctx(alice_wallet, LIMITS, name="alice"))
    payee = PaychanEngine(make_ctx(bob_wallet, LIMITS, name="bob"))
    channel = await payer.open_channel("bob", bob_wallet.address, CHANNEL)
    payer.attach(a, "bob")
    payee.attach(b, "alice")
    yield Pair(ledger, a, b, payer, payee, bob_wallet, channel, url)
    await b.stop()
    await a.stop()
    for engine in (payer, payee):
        engine.store.close()


async def test_fulfilled_packets_settle_by_claim_and_all_ledgers_agree(pair: Pair) -> None:
    assert pair.a.settler is not None  # attach handed the engine to the connector's settler
    for _ in range(3):
        await pair.pay(1_000)
    assert pair.owed() == (3_000, 3_000)  # at the threshold, not past it: no settlement
    assert pair.payer.latest_claim("bob") is None
    await pair.pay(1_500)  # 4500 owed: past the threshold
    await pair.a.settler.idle()
    # alice signed a claim for all she owed and sent it over BTP; bob checked it and credited
    assert pair.payer.latest_claim("bob") is not None
    assert pair.payer.latest_claim("bob")["value"] == "4500"  # type: ignore[index]
    assert pair.owed() == (0, 0)
    assert [(amount, state) for _, amount, state, _ in pair.a.settler.history("bob")] == [
        (4_500, "done")
    ]
    await pair.pay(700)
    assert pair.owed() == (700, 700)

    # bob redeems on the ledger: the channel pays out exactly what was settled, once
    before = pair.ledger.balance(pair.bob_wallet.address)
    assert await pair.payee.redeem() == 4_500
    assert await pair.payee.redeem() == 0
    assert pair.ledger.channels[pair.channel]["balance"] == 4_500
    assert pair.ledger.balance(pair.bob_wallet.address) == before + 4_500 - 10  # less the fee


async def test_a_claim_made_while_the_link_is_down_arrives_on_reconnect(pair: Pair) -> None:
    client = pair.b._clients[0]
    await client.stop()
    await _eventually(lambda: pair.a.links["bob"].closed.is_set())
    # settling does not need the peer online: the claim is durable and goes when it can
    assert await pair.payer.settle("bob", 2_000, "offline-1") == 2_000
    pair.a.ledger.settled("bob", 2_000, "offline-1")
    assert pair.owed() == (-2_000, 0)  # bob has not heard of it yet
    await pair.b.connect(pair.url, "alice", "bob", "bob-token")
    await _eventually(lambda: pair.owed() == (-2_000, -2_000))
    # a second reconnect re-sends the same claim, which credits nothing more
    await pair.b._clients[-1].stop()
    await pair.b.connect(pair.url, "alice", "bob", "bob-token")
    await asyncio.sleep(0.3)
    assert pair.owed() == (-2_000, -2_000)
    assert await pair.payee.redeem() == 2_000


async def test_a_claim_stored_before_a_crash_is_credited_once_on_restart(
    pair: Pair, make_ctx: MakeCtx
) -> None:
    claim = (await pair.payer.create_claim("bob", 1_200)).to_json()
    # bob's engine kept the claim, then the process died before the ledger was credited
    assert await pair.payee.receive_claim("alice", claim) == 1_200
    assert pair.owed() == (0, 0)
    restarted = PaychanEngine(pair.payee.ctx, pair.payee.xrpl)
    restarted.attach(pair.b, "alice")
    assert pair.owed() == (0, -1_200)
    restarted.attach(pair.b, "alice")  # and again: the ledger knows this credit's id
    assert restarted.exchange is not None and restarted.exchange.apply_credits("alice") == 0
    assert pair.owed() == (0, -1_200)
    restarted.store.close()


async def test_bad_claims_and_unknown_protocols_get_a_btp_error(
    pair: Pair, make_ctx: MakeCtx
) -> None:
    link = pair.a.links["bob"]
    with pytest.raises(BtpError) as unknown:
        await link.send_side("carrier-pigeon", b"coo")
    assert unknown.value.code == "F00" and b"unsupported protocol" in unknown.value.data
    good = (await pair.payer.create_claim("bob", 500)).to_json()
    forged = json.dumps({**good, "value": "900000"}).encode()
    with pytest.raises(BtpError, match="bad signature"):
        await link.send_side("claim", forged, 2)
    with pytest.raises(BtpError, match="malformed claim"):
        await link.send_side("claim", b"{not json", 2)
    with pytest.raises(BtpError, match="channelId"):
        await link.send_side("claim", json.dumps({**good, "channelId": "zz"}).encode(), 2)
    with pytest.raises(ValueError, match="send_prepare"):
        await link.send_side("ilp", b"")
    assert pair.owed() == (0, 0)  # nothing refused was credited
    # agents make one engine per peer: another peer's engine on bob's connector changes nothing
    carol = PaychanEngine(make_ctx(new_wallet(pair.ledger), LIMITS, name="bob-for-carol"))
    carol.attach(pair.b, "carol")
    assert carol.exchange is pair.payee.exchange
    # the genuine claim still goes through, and the link still carries packets
    answer = json.loads(await link.send_side("claim", json.dumps(good).encode(), 2))
    assert answer == {"value": "500"}
    assert pair.owed() == (0, -500)
    await pair.pay(100)
    carol.store.close()


async def test_a_refused_claim_makes_settle_fail_loudly(pair: Pair) -> None:
    pair.payee.min_settle_delay = 10**6  # bob now distrusts channels that settle in an hour
    with pytest.raises(XrplError, match="refused the claim"):
        await pair.payer.settle("bob", 1_000, "s-refused")
    assert pair.owed() == (0, 0)
    with pytest.raises(XrplError, match="positive whole number"):
        await pair.payer.settle("bob", 0)


async def test_only_xrp_drops_accounts_can_settle_by_channel(pair: Pair) -> None:
    pair.a.add_peer(Peer("eve", asset_code="USD", asset_scale=2))
    with pytest.raises(XrplError, match="XRP at scale 6"):
        pair.payer.attach(pair.a, "eve")


async def test_any_side_protocol_can_be_served_and_a_crashing_handler_is_t00(pair: Pair) -> None:
    async def echo(account: str, data: bytes) -> bytes:
        return account.encode() + b":" + data[::-1]

    async def broken(account: str, data: bytes) -> bytes:
        raise RuntimeError("bug")

    pair.b.on_side_protocol("echo", echo)
    pair.b.on_side_protocol("broken", broken)
    link = pair.a.links["bob"]
    assert await link.send_side("echo", b"abc") == b"alice:cba"
    with pytest.raises(BtpError) as failed:
        await link.send_side("broken", b"")
    assert failed.value.code == "T00" and failed.value.data == b"internal error"
    assert await link.send_side("echo", b"still up") == b"alice:pu llits"
