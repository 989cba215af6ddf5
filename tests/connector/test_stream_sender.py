"""stream_pay against our real receiver. Between them sits a small "hop" function that does
what a connector on the path would do (enforce a maximum packet amount with F08, fail
temporarily, skim); the full path over BTP is in test_stream_connectors.py."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import pytest
from aigent_connector.packets import AmountTooLarge, Fulfill, Prepare, Reject
from aigent_connector.stream import (
    Incoming,
    RejectWith,
    StreamPaymentError,
    StreamReceiver,
    stream_pay,
)
from aigent_connector.stream.sender import MAX_REQUEST

Send = Callable[[Prepare], Awaitable[Fulfill | Reject]]


@pytest.fixture
def received() -> list[int]:
    return []


@pytest.fixture
def receiver(received: list[int]) -> StreamReceiver:
    async def answer(incoming: Incoming) -> bytes | RejectWith:
        if incoming.amount < 100:
            return RejectWith("F99", f"a question costs 100, got {incoming.amount}")
        return incoming.data.upper()

    return StreamReceiver(
        "test.bob",
        os.urandom(32),
        on_request=answer,
        on_money=lambda tag, amount: received.append(amount),
    )


def max_packet(send: Send, maximum: int) -> Send:
    async def hop(prepare: Prepare) -> Fulfill | Reject:
        if prepare.amount > maximum:
            data = AmountTooLarge(prepare.amount, maximum).encode()
            return Reject("F08", "test.hop", "too much", data)
        return await send(prepare)

    return hop


async def test_a_paid_request_is_one_packet(receiver: StreamReceiver, received: list[int]) -> None:
    destination, secret = receiver.credentials()
    result = await stream_pay(receiver.handle, destination, secret, 150, b"what time is it?")
    assert result.reply_data == b"WHAT TIME IS IT?"
    assert (result.sent, result.delivered, result.packets) == (150, 150, 1)
    assert result.destination_asset == ("XRP", 6)
    assert received == [150]


async def test_large_amounts_are_split_by_the_paths_maximum(
    receiver: StreamReceiver, received: list[int]
) -> None:
    destination, secret = receiver.credentials()
    hop = max_packet(receiver.handle, 300)
    result = await stream_pay(hop, destination, secret, 1000, b"ask")
    assert result.reply_data == b"ASK"
    assert result.sent == result.delivered == sum(received) == 1000
    assert max(received) <= 300 and result.rejects[0].code == "F08"
    capped = await stream_pay(receiver.handle, destination, secret, 1000, max_packet_amount=250)
    assert capped.packets == 4 and capped.delivered == 1000


async def test_a_refused_request_raises_with_the_receivers_reason(
    receiver: StreamReceiver, received: list[int]
) -> None:
    destination, secret = receiver.credentials()
    with pytest.raises(StreamPaymentError, match="costs 100") as caught:
        await stream_pay(receiver.handle, destination, secret, 10, b"cheap question")
    assert caught.value.reject is not None and caught.value.reject.code == "F99"
    assert caught.value.result.sent == 0 and received == []


async def test_temporary_errors_are_retried(receiver: StreamReceiver) -> None:
    destination, secret = receiver.credentials()
    failures = ["T04", "T00"]

    async def flaky(prepare: Prepare) -> Fulfill | Reject:
        if failures:
            return Reject(failures.pop(0), "test.hop", "busy")
        return await receiver.handle(prepare)

    result = await stream_pay(flaky, destination, secret, 400)
    assert result.delivered == 400 and [r.code for r in result.rejects] == ["T04", "T00"]


async def test_it_gives_up_at_the_timeout(receiver: StreamReceiver) -> None:
    destination, secret = receiver.credentials()

    async def down(prepare: Prepare) -> Fulfill | Reject:
        await asyncio.sleep(0.01)
        return Reject("T01", "test.hop", "peer unreachable")

    with pytest.raises(StreamPaymentError, match=r"timed out.*T01"):
        await stream_pay(down, destination, secret, 5, timeout=0.3)


async def test_a_hop_that_skims_below_the_minimum_is_refused(receiver: StreamReceiver) -> None:
    destination, secret = receiver.credentials()

    async def skim(prepare: Prepare) -> Fulfill | Reject:
        taken = Prepare(
            prepare.amount // 2,
            prepare.expires_at,
            prepare.execution_condition,
            prepare.destination,
            prepare.data,
        )
        return await receiver.handle(taken)

    with pytest.raises(StreamPaymentError, match="F99"):
        await stream_pay(skim, destination, secret, 1000, min_exchange_rate=0.99)
    result = await stream_pay(skim, destination, secret, 1000)  # no minimum: accepted
    assert (result.sent, result.delivered) == (1000, 500)


async def test_bad_arguments_are_refused_before_sending(receiver: StreamReceiver) -> None:
    destination, secret = receiver.credentials()
    with pytest.raises(ValueError, match="at most"):
        await stream_pay(receiver.handle, destination, secret, 1, b"x" * 40000)
    with pytest.raises(ValueError, match="ILP address"):
        await stream_pay(receiver.handle, "not an address", secret, 1)
    with pytest.raises(ValueError, match="32 bytes"):
        await stream_pay(receiver.handle, destination, b"short", 1)
    with pytest.raises(ValueError, match="amount"):
        await stream_pay(receiver.handle, destination, secret, -1)


async def test_the_largest_request_fits_in_one_packet() -> None:
    receiver = StreamReceiver("test.bob", os.urandom(32), on_request=lambda i: b"ok")
    destination, secret = receiver.credentials()
    big = os.urandom(MAX_REQUEST)
    result = await stream_pay(receiver.handle, destination, secret, 2**64 - 1, big)
    assert result.reply_data == b"ok" and result.packets == 1
    assert "shared_secret=..." in repr(receiver.credentials())  # never the secret itself
