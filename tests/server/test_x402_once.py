"""An x402 payment answers exactly one message, over real HTTP on the XRPL test ledger: the
same payment sent again after its answer failed, or after the attempt answering it died, is
answered (settled and booked once); sent twice at once, one answer and one 409; answered, it is
refused as replayed. Payments are signed by the ``x402-xrpl`` SDK's own client (test_x402)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aigent_xrpl.testledger import TestLedger
from xrpl.wallet import Wallet

from aigent.node import Earnings
from aigent.storage import FileStorage
from tests.fixtures.openai_server import OpenAIServer, error, reply, slow
from tests.server.conftest import Served
from tests.server.test_money import (  # noqa: F401  (fixtures used by name)
    PRICE,
    _fast_xrpl,
    running_pair,
    wallets,
    xrpl_ledger,
)
from tests.server.test_x402 import stranger


@pytest.fixture(scope="module")
def bob(
    tmp_path_factory: pytest.TempPathFactory,
    model: OpenAIServer,
    xrpl_ledger: TestLedger,  # noqa: F811
    wallets: dict[str, Wallet],  # noqa: F811
) -> Iterator[Served]:
    with running_pair(tmp_path_factory, model, xrpl_ledger) as (bob_server, _, _):
        yield bob_server


def signed(bob: Served, ledger: TestLedger, folder: Path) -> tuple[str, Wallet]:
    """A payment header the SDK's client signed for Bob's offer, not sent yet, and its payer."""
    payer = Wallet.create()
    ledger.fund(payer.address, 50_000_000)
    made = stranger(folder, "sign", f"{bob.url}/x402/Bob/messages", ledger.url, payer, "{}")
    return str(made["header"]), payer


def send(bob: Served, header: str, text: str = "hello") -> httpx.Response:
    return httpx.post(
        f"{bob.url}/x402/Bob/messages", json={"text": text},
        headers={"PAYMENT-SIGNATURE": header}, timeout=60,
    )  # fmt: skip


def booked(bob: Served) -> tuple[int, int]:
    """Bob's x402-xrpl earnings: (amount, messages)."""
    with bob.operator() as client:
        rails = client.get("/api/agents/Bob/money").json()["earned"]["rails"]
    found = {r["rail"]: (r["amount"], r["messages"]) for r in rails}
    return found.get("x402-xrpl", (0, 0))


def test_a_payment_whose_answer_failed_is_answered_by_its_retry_once(
    bob: Served,
    model: OpenAIServer,
    xrpl_ledger: TestLedger,  # noqa: F811
    wallets: dict[str, Wallet],  # noqa: F811
    tmp_path: Path,
) -> None:
    header, payer = signed(bob, xrpl_ledger, tmp_path)
    bob_before, earned = xrpl_ledger.balance(wallets["BOB"].address), booked(bob)

    model.queue(error(400, "the model refuses"))
    failed = send(bob, header)
    assert failed.status_code == 502, failed.text
    assert "send the same payment again" in failed.json()["detail"]
    tx = failed.json()["paid"]["tx"]
    assert xrpl_ledger.txs[tx]["meta"]["TransactionResult"] == "tesSUCCESS"
    submits = xrpl_ledger.requests["submit"]

    model.queue(reply("answered at last"))
    retried = send(bob, header)
    assert retried.status_code == 200, retried.text
    assert retried.json()["text"] == "answered at last" and retried.json()["paid"]["tx"] == tx
    assert retried.headers["PAYMENT-RESPONSE"]
    assert xrpl_ledger.requests["submit"] == submits  # settled once, not submitted again
    assert xrpl_ledger.balance(wallets["BOB"].address) == bob_before + PRICE
    assert booked(bob) == (earned[0] + PRICE, earned[1] + 1)  # booked once

    replayed = send(bob, header)
    assert replayed.status_code == 402 and replayed.json()["reason"] == "replayed", replayed.text
    assert booked(bob) == (earned[0] + PRICE, earned[1] + 1)
    assert xrpl_ledger.balance(payer.address) < 50_000_000 - PRICE + 1


def test_one_payment_sent_twice_at_once_gets_one_answer_and_one_409(
    bob: Served,
    model: OpenAIServer,
    xrpl_ledger: TestLedger,  # noqa: F811
    tmp_path: Path,
) -> None:
    header, _ = signed(bob, xrpl_ledger, tmp_path)
    earned = booked(bob)
    asked = len(model.requests)
    model.queue(slow(2.0, "the one answer"))
    answers: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(send(bob, header))) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.3)  # the second arrives while the first is being answered
    for thread in threads:
        thread.join(timeout=60)
    by_status = {a.status_code: a for a in answers}
    assert sorted(by_status) == [200, 409], [a.text for a in answers]
    assert by_status[200].json()["text"] == "the one answer"
    busy = by_status[409]
    assert busy.json()["reason"] == "answering" and int(busy.headers["Retry-After"]) >= 1
    assert len(model.requests) == asked + 1  # the model was asked once
    assert booked(bob) == (earned[0] + PRICE, earned[1] + 1)
    assert send(bob, header).json()["reason"] == "replayed"


def test_a_payment_whose_attempt_died_after_settling_is_answered_by_its_retry(
    bob: Served,
    model: OpenAIServer,
    xrpl_ledger: TestLedger,  # noqa: F811
    wallets: dict[str, Wallet],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a server SIGKILLed mid-answer leaves: the claim answering, its transaction
    submitted and validated, no sale booked, no reply. Made here as that server would have."""
    header, _ = signed(bob, xrpl_ledger, tmp_path)
    payload = json.loads(base64.b64decode(header))["payload"]
    blob, invoice = payload["signedTxBlob"], payload["invoiceId"]
    tx = hashlib.sha512(b"TXN\x00" + bytes.fromhex(blob)).digest()[:32].hex().upper()
    earnings = Earnings.open(FileStorage(bob.data_dir / "agents" / "bob"))
    keys = ["xrpl-tx:" + tx, "x402-invoice:" + invoice]
    assert earnings.take(keys, "x402-xrpl", time.time() + 1.5).outcome == "taken"
    assert xrpl_ledger.submit(blob)["engine_result"] == "tesSUCCESS"  # then it died
    earnings.close()
    bob_after, earned = xrpl_ledger.balance(wallets["BOB"].address), booked(bob)

    early = send(bob, header)  # within the dead attempt's deadline: it might still answer
    assert early.status_code == 409 and early.headers["Retry-After"], early.text
    time.sleep(1.6)
    # Later than its offer stood: a payment taken in time stays answerable.
    import aigent_server.x402 as door

    later = door.clock() + door.TIMEOUT + 5
    monkeypatch.setattr(door, "clock", lambda: later)
    submits, lookups = xrpl_ledger.requests["submit"], xrpl_ledger.requests["tx"]
    model.queue(reply("answered after the crash"))
    retried = send(bob, header)
    assert retried.status_code == 200, retried.text
    assert retried.json()["text"] == "answered after the crash"
    assert retried.json()["paid"]["tx"] == tx
    assert xrpl_ledger.requests["submit"] == submits  # found validated, not submitted twice
    assert xrpl_ledger.requests["tx"] > lookups
    assert xrpl_ledger.balance(wallets["BOB"].address) == bob_after
    assert booked(bob) == (earned[0] + PRICE, earned[1] + 1)
    with bob.operator() as client:
        history = client.get("/api/agents/Bob/messages", params={"room": f"x402:{_payer(blob)}"})
    replies = [m for m in history.json()["messages"] if m["role"] == "assistant"]
    assert [m["text"] for m in replies] == ["answered after the crash"]
    again = Earnings.open(FileStorage(bob.data_dir / "agents" / "bob"))
    assert again.claim_of("xrpl-tx:" + tx) == ("answered", retried.json()["id"])
    again.close()
    assert send(bob, header).json()["reason"] == "replayed"


def _payer(blob: str) -> Any:
    from xrpl.core.binarycodec import decode

    return decode(blob)["Account"]
