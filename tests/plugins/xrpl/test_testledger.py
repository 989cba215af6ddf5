"""What the test ledger itself enforces, so that tests against it mean something."""

from __future__ import annotations

import json
from pathlib import Path

from aigent_xrpl.claims import claim_message
from aigent_xrpl.testledger import TestLedger
from xrpl.asyncio.clients import AsyncJsonRpcClient
from xrpl.asyncio.transaction import autofill_and_sign, submit
from xrpl.models import Payment, PaymentChannelClaim
from xrpl.wallet import Wallet

from .conftest import new_wallet

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
