"""The payee's side against a payer who opens channels and signs claims to hurt it: channels
that expire by ``CancelAfter``, claims the ledger will refuse, and one bad channel among good
ones. Everything runs against the test ledger, which models ``CancelAfter`` and rippled's
canonical-signature rule (see ``test_testledger.py``)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aigent_xrpl.claims import ClaimRejected, sign_claim
from aigent_xrpl.settlement import PaychanEngine, RedeemFailed
from aigent_xrpl.testledger import TestLedger, channel_id
from xrpl import CryptoAlgorithm
from xrpl.asyncio.clients import AsyncJsonRpcClient
from xrpl.asyncio.transaction import autofill_and_sign, submit
from xrpl.models import PaymentChannelCreate
from xrpl.wallet import Wallet

from .conftest import MakeCtx, malleate, new_wallet


async def channel_to(
    ledger: TestLedger, payer: Wallet, payee: str, cancel_after: int | None = None
) -> str:
    """A 10 XRP channel the payer opens itself (our engine never sets CancelAfter)."""
    client = AsyncJsonRpcClient(ledger.url)
    create = PaymentChannelCreate(
        account=payer.address,
        destination=payee,
        amount="10000000",
        settle_delay=3600,
        public_key=payer.public_key,
        cancel_after=cancel_after,
    )
    signed = await autofill_and_sign(create, client, payer)
    assert (await submit(signed, client)).result["engine_result"] == "tesSUCCESS"
    return channel_id(payer.address, payee, signed.sequence)


def claim(channel: str, drops: int, payer: Wallet) -> dict[str, str]:
    return sign_claim(channel, drops, payer.public_key, payer.private_key).to_json()


def payee_engine(ledger: TestLedger, make_ctx: MakeCtx, **settings: object) -> PaychanEngine:
    ctx = make_ctx(new_wallet(ledger), name="bob")
    ctx.settings.update(settings)
    return PaychanEngine(ctx)


async def test_claims_on_a_channel_that_cancels_too_soon_are_refused(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    bob = payee_engine(ledger, make_ctx)  # min_settle_delay 3600 s by default
    mallory = new_wallet(ledger)
    soon = await channel_to(ledger, mallory, bob.xrpl.wallet.address, ledger._now() + 600)
    with pytest.raises(ClaimRejected, match="CancelAfter"):
        await bob.receive_claim("mallory", claim(soon, 1_000_000, mallory))
    assert bob.store.best(soon) is None  # nothing kept, nothing credited
    later = await channel_to(ledger, mallory, bob.xrpl.wallet.address, ledger._now() + 7200)
    assert await bob.receive_claim("mallory", claim(later, 1_000_000, mallory)) == 1_000_000
    bob.clock = lambda: time.time() + 4000  # now CancelAfter is under an hour away
    with pytest.raises(ClaimRejected, match="CancelAfter"):
        await bob.receive_claim("mallory", claim(later, 2_000_000, mallory))
    # the claim already held, sent again after a reconnect, is still a harmless no-op
    assert await bob.receive_claim("mallory", claim(later, 1_000_000, mallory)) == 0
    await bob.close()


@pytest.mark.slow
async def test_a_claim_on_an_expiring_channel_is_redeemed_before_it_expires(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    # The periodic round is an hour away: only the channel's CancelAfter can bring it forward.
    # Real seconds pass here (the loop sleeps), so the windows leave room for a loaded machine:
    # about 3 s to accept the claim, then the redeem at 3 s before CancelAfter.
    bob = payee_engine(ledger, make_ctx, min_settle_delay=6, redeem_interval=3600)
    await bob.start()
    mallory = new_wallet(ledger)
    cancel_after = ledger._now() + 10
    channel = await channel_to(ledger, mallory, bob.xrpl.wallet.address, cancel_after)
    assert await bob.receive_claim("mallory", claim(channel, 4_000_000, mallory)) == 4_000_000
    deadline = time.monotonic() + 20
    while channel in ledger.channels and ledger.channels[channel]["balance"] == 0:
        assert time.monotonic() < deadline, "the claim was not redeemed"
        await asyncio.sleep(0.1)
    assert ledger.channels[channel]["balance"] == 4_000_000  # paid, not closed unpaid
    assert ledger._now() < cancel_after
    await bob.close()


async def test_a_claim_lost_to_an_expired_channel_is_reported_not_counted(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    bob = payee_engine(ledger, make_ctx)
    mallory = new_wallet(ledger)
    channel = await channel_to(ledger, mallory, bob.xrpl.wallet.address, ledger._now() + 7200)
    await bob.receive_claim("mallory", claim(channel, 3_000_000, mallory))
    ledger.clock = lambda: time.time() + 7200  # nobody redeemed in time
    before = ledger.balance(bob.xrpl.wallet.address)
    with pytest.raises(RedeemFailed, match="expired") as failed:
        await bob.redeem()
    assert failed.value.redeemed == 0
    assert channel in failed.value.failures and "3000000" in failed.value.failures[channel]
    assert ledger.balance(bob.xrpl.wallet.address) == before - 10  # only the fee
    await bob.close()


@pytest.mark.parametrize("algorithm", [CryptoAlgorithm.SECP256K1, CryptoAlgorithm.ED25519])
async def test_a_claim_the_ledger_would_refuse_is_not_credited(
    ledger: TestLedger, make_ctx: MakeCtx, algorithm: CryptoAlgorithm
) -> None:
    bob = payee_engine(ledger, make_ctx)
    mallory = Wallet.create(algorithm=algorithm)
    ledger.fund(mallory.address)
    channel = await channel_to(ledger, mallory, bob.xrpl.wallet.address)
    good = claim(channel, 1_000_000, mallory)
    twin = {**good, "signature": malleate(good["signature"], mallory.public_key)}
    with pytest.raises(ClaimRejected, match="canonical"):
        await bob.receive_claim("mallory", twin)
    assert bob.store.best(channel) is None
    assert await bob.receive_claim("mallory", good) == 1_000_000
    await bob.close()


async def test_one_failing_channel_does_not_stop_the_others_in_any_round(
    ledger: TestLedger, make_ctx: MakeCtx
) -> None:
    bob = payee_engine(ledger, make_ctx)
    me = bob.xrpl.wallet.address
    mallory, alice = new_wallet(ledger), new_wallet(ledger)
    bad_channel = await channel_to(ledger, mallory, me)
    good_channel = await channel_to(ledger, alice, me)
    # a claim the ledger refuses, stored as a version that did not check canonical signatures
    # did: it comes first in every round
    bad = claim(bad_channel, 1_000_000, mallory)
    bad["signature"] = malleate(bad["signature"], mallory.public_key)
    from aigent_xrpl.claims import Claim

    bob.store.save_incoming(Claim.from_json(bad), "mallory", 10_000_000, 0)
    for total in (2_000_000, 5_000_000):  # two rounds, each with a new claim from Alice
        await bob.receive_claim("alice", claim(good_channel, total, alice))
        with pytest.raises(RedeemFailed, match=bad_channel) as failed:
            await bob.redeem()
        assert ledger.channels[good_channel]["balance"] == total
        assert failed.value.redeemed == (2_000_000 if total == 2_000_000 else 3_000_000)
        assert list(failed.value.failures) == [bad_channel]
    assert ledger.channels[bad_channel]["balance"] == 0
    with pytest.raises(RedeemFailed):
        await bob.close()  # still redeems what it can on the way out, and says what failed
