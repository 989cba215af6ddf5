"""What the test ledger itself enforces, so that tests against it mean something."""

from __future__ import annotations

import json
import time
from pathlib import Path

from aigent_xrpl.claims import claim_message
from aigent_xrpl.testledger import TestLedger
from xrpl.asyncio.clients import AsyncJsonRpcClient
from xrpl.asyncio.transaction import autofill_and_sign, submit
from xrpl.core.keypairs import is_valid_message
from xrpl.models import Payment, PaymentChannelClaim
from xrpl.models.requests import AccountChannels, LedgerEntry
from xrpl.wallet import Wallet

from .conftest import malleate, new_wallet

VECTORS = Path("/work/shared/reference/ilp-vectors.json")


def test_claim_encoding_matches_the_published_vector() -> None:
    # the vector from xrpl-py's own tests (copied here so the test runs from a clean clone)
    channel = "43904CBFCDCEC530B4037871F86EE90BF799DF8D2E0EA564BC8A3F332E4F5FB1"
    expected = "434C4D00" + channel + "00000000000003E8"
    assert claim_message(channel, 1000).hex().upper() == expected
    if VECTORS.exists():
        vector = json.loads(VECTORS.read_text())["xrpl_paychan_claim"][0]
        assert vector["encode_for_signing_claim_hex"] == expected


async def test_sequence_numbers_and_replays_are_checked(ledger: TestLedger) -> None:
    alice, bob = new_wallet(ledger), new_wallet(ledger)
    client = AsyncJsonRpcClient(ledger.url)
    tx = Payment(account=alice.address, destination=bob.address, amount="1000000")
    first = await autofill_and_sign(tx, client, alice)
    other = Payment(account=alice.address, destination=bob.address, amount="2000000")
    second = await autofill_and_sign(other, client, alice)  # same sequence: a collision
    assert (await submit(first, client)).result["engine_result"] == "tesSUCCESS"
    assert (await submit(first, client)).result["engine_result"] == "tefALREADY"
    assert (await submit(second, client)).result["engine_result"] == "tefPAST_SEQ"
    assert ledger.balance(bob.address) == 101_000_000


async def test_a_claim_the_payer_did_not_sign_pays_nothing(ledger: TestLedger) -> None:
    from aigent_xrpl.claims import sign_claim
    from aigent_xrpl.testledger import channel_id
    from xrpl.asyncio.transaction import submit_and_wait
    from xrpl.models import PaymentChannelCreate

    alice, bob = new_wallet(ledger), new_wallet(ledger)
    client = AsyncJsonRpcClient(ledger.url)
    create = PaymentChannelCreate(
        account=alice.address,
        destination=bob.address,
        amount="5000000",
        settle_delay=3600,
        public_key=alice.public_key,
    )
    signed = await autofill_and_sign(create, client, alice)
    await submit_and_wait(signed, client)
    channel = channel_id(alice.address, bob.address, signed.sequence)
    assert ledger.channels[channel]["amount"] == 5_000_000
    forged = sign_claim(channel, 5_000_000, alice.public_key, Wallet.create().private_key)
    claim = PaymentChannelClaim(
        account=bob.address,
        channel=channel,
        balance="5000000",
        amount="5000000",
        signature=forged.signature,
        public_key=alice.public_key,
    )
    result = await submit(await autofill_and_sign(claim, client, bob), client)
    assert result.result["engine_result"] == "temBAD_SIGNATURE"
    assert ledger.channels[channel]["balance"] == 0


def test_the_ledger_runs_as_its_own_process_with_a_faucet() -> None:
    import subprocess
    import sys

    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "aigent_xrpl.testledger"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        address = Wallet.create().address
        body = {"method": "testledger_fund", "params": [{"account": address, "drops": 5}]}
        assert httpx.post(url, json=body).json()["result"]["balance"] == "5"
        body = {"method": "account_info", "params": [{"account": address}]}
        assert httpx.post(url, json=body).json()["result"]["account_data"]["Balance"] == "5"
    finally:
        proc.terminate()
        proc.wait(10)


async def _open(
    ledger: TestLedger, alice: Wallet, bob: Wallet, cancel_after: int | None
) -> tuple[AsyncJsonRpcClient, str, str]:
    """Alice opens a 5 XRP channel to Bob; (client, channel id, engine result)."""
    from aigent_xrpl.testledger import channel_id
    from xrpl.models import PaymentChannelCreate

    client = AsyncJsonRpcClient(ledger.url)
    create = PaymentChannelCreate(
        account=alice.address,
        destination=bob.address,
        amount="5000000",
        settle_delay=3600,
        public_key=alice.public_key,
        cancel_after=cancel_after,
    )
    signed = await autofill_and_sign(create, client, alice)
    result = (await submit(signed, client)).result["engine_result"]  # validated at once here
    return client, channel_id(alice.address, bob.address, signed.sequence), result


def _ripple_now(ledger: TestLedger) -> int:
    return ledger._now()


async def test_cancel_after_is_kept_shown_and_must_be_in_the_future(ledger: TestLedger) -> None:
    alice, bob = new_wallet(ledger), new_wallet(ledger)
    at = _ripple_now(ledger) + 100
    client, channel, result = await _open(ledger, alice, bob, at)
    assert result == "tesSUCCESS"
    entry = await client.request(LedgerEntry(payment_channel=channel))
    assert entry.result["node"]["CancelAfter"] == at
    listed = await client.request(AccountChannels(account=alice.address))
    assert listed.result["channels"][0]["cancel_after"] == at
    _, late, result = await _open(ledger, alice, bob, _ripple_now(ledger) - 1)
    assert result == "tecEXPIRED" and late not in ledger.channels


async def test_a_channel_past_cancel_after_closes_on_the_next_claim_and_pays_nothing(
    ledger: TestLedger,
) -> None:
    from aigent_xrpl.claims import sign_claim

    alice, bob = new_wallet(ledger), new_wallet(ledger)
    client, channel, _ = await _open(ledger, alice, bob, _ripple_now(ledger) + 100)
    claim = sign_claim(channel, 2_000_000, alice.public_key, alice.private_key)
    tx = PaymentChannelClaim(
        account=bob.address,
        channel=channel,
        balance="1000000",
        amount="2000000",
        signature=claim.signature,
        public_key=alice.public_key,
    )
    result = await submit(await autofill_and_sign(tx, client, bob), client)
    assert result.result["engine_result"] == "tesSUCCESS"  # before CancelAfter: it pays
    assert ledger.channels[channel]["balance"] == 1_000_000
    alice_before, bob_before = ledger.balance(alice.address), ledger.balance(bob.address)
    ledger.clock = lambda: time.time() + 101  # CancelAfter has passed
    later = PaymentChannelClaim(
        account=bob.address,
        channel=channel,
        balance="2000000",
        amount="2000000",
        signature=claim.signature,
        public_key=alice.public_key,
    )
    result = await submit(await autofill_and_sign(later, client, bob), client)
    assert result.result["engine_result"] == "tesSUCCESS"  # as rippled: it closes the channel
    assert channel not in ledger.channels
    assert ledger.balance(bob.address) == bob_before - 10  # the fee, and nothing paid
    assert ledger.balance(alice.address) == alice_before + 4_000_000  # the rest went back
    stored = ledger.txs[result.result["tx_json"]["hash"]]
    deleted = stored["meta"]["AffectedNodes"][0]["DeletedNode"]
    assert deleted["LedgerIndex"] == channel and deleted["FinalFields"]["Balance"] == "1000000"


async def test_a_fund_after_cancel_after_closes_the_channel(ledger: TestLedger) -> None:
    from xrpl.models import PaymentChannelFund

    alice, bob = new_wallet(ledger), new_wallet(ledger)
    client, channel, _ = await _open(ledger, alice, bob, _ripple_now(ledger) + 5)
    ledger.clock = lambda: time.time() + 5  # exactly at CancelAfter counts as past, as rippled
    fund = PaymentChannelFund(account=alice.address, channel=channel, amount="1000000")
    result = await submit(await autofill_and_sign(fund, client, alice), client)
    assert result.result["engine_result"] == "tesSUCCESS"
    assert channel not in ledger.channels


async def test_claims_with_malleated_signatures_are_refused_as_rippled_does(
    ledger: TestLedger,
) -> None:
    from aigent_xrpl.claims import sign_claim
    from xrpl import CryptoAlgorithm

    for algorithm in (CryptoAlgorithm.SECP256K1, CryptoAlgorithm.ED25519):
        alice = Wallet.create(algorithm=algorithm)
        ledger.fund(alice.address)
        bob = new_wallet(ledger)
        client, channel, _ = await _open(ledger, alice, bob, None)
        good = sign_claim(channel, 1_000_000, alice.public_key, alice.private_key)
        twin = malleate(good.signature, alice.public_key)
        assert is_valid_message(
            claim_message(channel, 1_000_000), bytes.fromhex(twin), alice.public_key
        )  # xrpl-py alone takes it
        tx = PaymentChannelClaim(
            account=bob.address,
            channel=channel,
            balance="1000000",
            amount="1000000",
            signature=twin,
            public_key=alice.public_key,
        )
        result = await submit(await autofill_and_sign(tx, client, bob), client)
        assert result.result["engine_result"] == "temBAD_SIGNATURE", algorithm
        assert ledger.channels[channel]["balance"] == 0
