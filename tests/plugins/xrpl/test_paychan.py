"""Payment-channel settlement against the local test ledger, including a crash mid-settlement."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap

import pytest
from aigent_xrpl import register_settlement_engines
from aigent_xrpl.claims import ClaimRejected, sign_claim
from aigent_xrpl.settlement import PaychanEngine
from aigent_xrpl.testledger import TestLedger
from xrpl.wallet import Wallet

from aigent.spending import Limits

from .conftest import MakeCtx, new_wallet

CHANNEL_LIMITS = {"XRP": Limits(max_per_payment=20_000_000, per_day=50_000_000)}


async def _pair(ledger: TestLedger, make_ctx: MakeCtx) -> tuple[PaychanEngine, PaychanEngine, str]:
    alice, bob = new_wallet(ledger), new_wallet(ledger)
    payer = PaychanEngine(make_ctx(alice, CHANNEL_LIMITS, name="alice"))
    payee = PaychanEngine(make_ctx(bob, CHANNEL_LIMITS, name="bob"))
    channel = await payer.open_channel("bob", bob.address, 10_000_000)
    return payer, payee, channel


def test_the_engine_is_registered_under_its_name() -> None:
    found: dict[str, object] = {}
    register_settlement_engines(lambda name, factory: found.__setitem__(name, factory))
    assert list(found) == ["xrpl-paychan"]


async def test_claims_credit_the_payee_and_redeem_on_chain(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    payer, payee, channel = await _pair(ledger, make_ctx)
    sent: list[dict[str, object]] = []

    async def send(peer: str, claim: dict[str, object]) -> None:
        sent.append(claim)

    payer.send_claim = send
    assert await payer.settle("bob", 1_000_000) == 1_000_000
    assert await payer.settle("bob", 500_000) == 500_000
    assert [c["value"] for c in sent] == ["1000000", "1500000"]
    json.dumps(sent)  # what goes over BTP is plain JSON
    assert await payee.receive_claim("alice", sent[0]) == 1_000_000
    assert await payee.receive_claim("alice", sent[1]) == 500_000
    bob_before = ledger.balance(payee.xrpl.wallet.address)
    assert await payee.redeem() == 1_500_000
    assert ledger.balance(payee.xrpl.wallet.address) == bob_before + 1_500_000 - 10
    assert await payee.redeem() == 0  # idempotent: nothing more to take
    assert ledger.channels[channel]["balance"] == 1_500_000
    await payee.close(close_channels=True)
    assert channel not in ledger.channels  # closed; the rest went back to alice
    await payer.close()


async def test_bad_replayed_and_over_amount_claims_are_refused(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    payer, payee, channel = await _pair(ledger, make_ctx)
    good = (await payer.create_claim("bob", 2_000_000)).to_json()
    newer = (await payer.create_claim("bob", 1)).to_json()
    assert await payee.receive_claim("alice", newer) == 2_000_001
    assert await payee.receive_claim("alice", newer) == 0  # re-sent: held already, no credit
    with pytest.raises(ClaimRejected, match="does not exceed"):
        await payee.receive_claim("alice", good)  # replayed older claim
    tampered = {**good, "value": "3000000"}
    with pytest.raises(ClaimRejected, match="bad signature"):
        await payee.receive_claim("alice", tampered)
    wallet = payer.xrpl.wallet
    too_much = sign_claim(channel, 10_000_001, wallet.public_key, wallet.private_key)
    with pytest.raises(ClaimRejected, match="exceeds channel amount"):
        await payee.receive_claim("alice", too_much.to_json())
    stranger = Wallet.create()
    forged = sign_claim(channel, 4_000_000, wallet.public_key, stranger.private_key)
    with pytest.raises(ClaimRejected, match="bad signature"):
        await payee.receive_claim("alice", forged.to_json())
    await payee.redeem()
    assert ledger.channels[channel]["balance"] == 2_000_001
    ledger.channels[channel]["expiration"] = 10**9  # the payer asked to close the channel
    with pytest.raises(ClaimRejected, match="closing"):
        await payee.receive_claim("alice", (await payer.create_claim("bob", 1)).to_json())
    ledger.channels[channel]["expiration"] = None
    with pytest.raises(Exception, match="exceed"):
        await payer.create_claim("bob", 9_000_000)  # beyond what the channel holds
    await payer.fund_channel("bob", 5_000_000)
    assert (await payer.create_claim("bob", 9_000_000)).amount == 11_000_002
    await payer.close()
    await payee.close()


async def test_a_settlement_id_never_signs_twice(ledger: TestLedger, make_ctx: MakeCtx) -> None:
    payer, _payee, _ = await _pair(ledger, make_ctx)
    first = await payer.create_claim("bob", 1_000, settlement_id="s1")
    again = await payer.create_claim("bob", 1_000, settlement_id="s1")
    assert again == first
    assert (await payer.create_claim("bob", 1_000, settlement_id="s2")).amount == 2_000


CHILD = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from pathlib import Path
    from aigent import Character, PluginContext
    from aigent.secrets import Secrets
    from aigent_xrpl.settlement import PaychanEngine
    import xrpl.asyncio.transaction.reliable_submission as rs
    rs._LEDGER_CLOSE_TIME = 0.01  # the test ledger validates at once

    mode, url, seed, data, arg = sys.argv[1:6]
    ctx = PluginContext(character=Character(name="x"), secrets=Secrets(environ={"XRPL_SEED": seed}),
                        data_dir=Path(data), plugin="xrpl", settings={"url": url})
    engine = PaychanEngine(ctx)

    async def main():
        if mode == "sign":
            claim = await engine.create_claim("bob", 1_000_000, settlement_id="s1")
            print(json.dumps(claim.to_json()), flush=True)
        elif mode == "receive":
            print(await engine.receive_claim("alice", json.loads(arg)), flush=True)
        elif mode == "redeem":
            print(await engine.redeem(), flush=True)
        time.sleep(60)  # killed here, before any orderly shutdown

    asyncio.run(main())
    """
)


async def _run_and_kill(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, *args, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    return line.decode().strip()


@pytest.mark.slow
async def test_a_crash_neither_loses_a_claim_nor_spends_twice(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    payer, payee, channel = await _pair(ledger, make_ctx)
    alice, bob = payer.xrpl.wallet, payee.xrpl.wallet
    pay_dir, recv_dir = str(payer.ctx.data_dir), str(payee.ctx.data_dir)
    payer.store.close()
    payee.store.close()

    # the payer signs and is killed: the claim survives, and the same settlement is not re-signed
    handed_out = json.loads(await _run_and_kill("sign", ledger.url, alice.seed, pay_dir, ""))
    restarted = PaychanEngine(payer.ctx)
    assert restarted.latest_claim("bob") == handed_out
    again = await restarted.create_claim("bob", 1_000_000, settlement_id="s1")
    assert again.amount == 1_000_000

    # the payee stores the claim and is killed before redeeming: the claim is not lost
    credited = await _run_and_kill(
        "receive", ledger.url, bob.seed, recv_dir, json.dumps(handed_out)
    )
    assert credited == "1000000"
    # it redeems and is killed before recording that: redeeming again pays nothing more
    assert await _run_and_kill("redeem", ledger.url, bob.seed, recv_dir, "") == "1000000"
    before = ledger.balance(bob.address)
    payee_again = PaychanEngine(payee.ctx)
    assert await payee_again.redeem() == 0
    assert ledger.balance(bob.address) == before
    assert ledger.channels[channel]["balance"] == 1_000_000
    restarted.store.close()
    payee_again.store.close()


async def test_the_engine_tells_observers_and_lists_its_channels(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    alice, bob = new_wallet(ledger), new_wallet(ledger)
    seen: list[tuple[str, str, dict[str, object]]] = []
    payer_ctx = make_ctx(alice, CHANNEL_LIMITS, name="alice")
    payee_ctx = make_ctx(bob, CHANNEL_LIMITS, name="bob")
    payer_ctx.observers.add(lambda kind, data: seen.append(("alice", kind, dict(data))))
    payee_ctx.observers.add(lambda kind, data: seen.append(("bob", kind, dict(data))))
    payer, payee = PaychanEngine(payer_ctx), PaychanEngine(payee_ctx)
    channel = await payer.open_channel("bob", bob.address, 2_000_000)
    await payer.fund_channel("bob", 1_000_000)
    claims: list[dict[str, object]] = []

    async def send(peer: str, claim: dict[str, object]) -> None:
        claims.append(claim)

    payer.send_claim = send
    await payer.settle("bob", 700)
    await payee.receive_claim("alice", claims[0])
    assert await payee.redeem() == 700
    (incoming,) = payee.channels("alice")
    assert (incoming.direction, incoming.claimed, incoming.redeemed, incoming.state) == (
        "in", 700, 700, "open")  # fmt: skip
    await payee.redeem(close=True)
    assert payee.channels("alice")[0].state == "closed"
    (outgoing,) = payer.channels("bob")
    assert (outgoing.direction, outgoing.capacity, outgoing.claimed) == ("out", 3_000_000, 700)
    told = [(who, kind.removeprefix("settlement.")) for who, kind, _ in seen
            if kind.startswith("settlement.")]  # fmt: skip
    assert told == [
        ("alice", "channel_opened"), ("alice", "channel_funded"), ("alice", "claim_sent"),
        ("bob", "claim_received"), ("bob", "redeemed"), ("bob", "channel_closed"),
    ]  # fmt: skip
    details = {kind: data for _, kind, data in seen}
    assert details["settlement.channel_funded"]["capacity"] == 3_000_000
    assert details["settlement.claim_received"]["channel"] == channel
    assert details["settlement.channel_closed"]["redeemed"] == 700
    await payee.close()
    await payer.close()
