"""The STREAM receiver, driven with real encrypted Prepares (built the way a sender builds
them), checking what a sender would see: Fulfill or Reject, code, and the encrypted reply."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta

import pytest
from aigent_connector.packets import Fulfill, Prepare, Reject
from aigent_connector.stream import (
    ErrorCode,
    Incoming,
    RejectWith,
    StreamPacket,
    StreamReceiver,
    crypto,
)
from aigent_connector.stream import frames as f
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.connector.test_stream_codec import frame_strategy

ADDRESS = "test.agent"


class Payer:
    """Builds Prepares for one set of credentials and opens the receiver's replies."""

    def __init__(self, destination: str, secret: bytes) -> None:
        self.destination, self.secret, self.sequence = destination, secret, 0

    def prepare(
        self,
        amount: int,
        *frames: f.Frame,
        minimum: int = 0,
        fulfillable: bool = True,
        kind: int = 12,
    ) -> Prepare:
        self.sequence += 1
        data = StreamPacket(self.sequence, kind, minimum, frames).encrypt(self.secret)
        condition = (
            crypto.condition(self.secret, data) if fulfillable else hashlib.sha256(b"?").digest()
        )
        expiry = datetime.now(UTC) + timedelta(seconds=30)
        return Prepare(amount, expiry, condition, self.destination, data)

    def reply(self, answer: Fulfill | Reject) -> StreamPacket:
        packet = StreamPacket.decrypt(self.secret, answer.data)
        assert packet.sequence == self.sequence
        assert packet.ilp_packet_type == (13 if isinstance(answer, Fulfill) else 14)
        return packet


def kinds(packet: StreamPacket) -> list[type]:
    return [type(frame) for frame in packet.frames]


@pytest.fixture
def money() -> list[tuple[str | None, int]]:
    return []


@pytest.fixture
def receiver(money: list[tuple[str | None, int]]) -> StreamReceiver:
    return StreamReceiver(ADDRESS, os.urandom(32), on_money=lambda t, a: money.append((t, a)))


async def test_money_is_fulfilled_and_accounted(
    receiver: StreamReceiver, money: list[tuple[str | None, int]]
) -> None:
    payer = Payer(*receiver.credentials("order-7"))
    prepare = payer.prepare(500, f.StreamMoney(1, 1), minimum=490)
    answer = await receiver.handle(prepare)
    assert isinstance(answer, Fulfill)
    assert hashlib.sha256(answer.fulfillment).digest() == prepare.execution_condition
    reply = payer.reply(answer)
    assert reply.prepare_amount == 500
    assert f.ConnectionAssetDetails("XRP", 6) in reply.frames
    assert f.StreamMaxMoney(1, 2**64 - 1, 500) in reply.frames
    assert money == [("order-7", 500)]
    second = await receiver.handle(payer.prepare(250, f.StreamMoney(1, 1)))
    assert isinstance(second, Fulfill)
    assert f.StreamMaxMoney(1, 2**64 - 1, 750) in payer.reply(second).frames
    assert money == [("order-7", 500), ("order-7", 250)]


async def test_credentials_need_no_stored_state() -> None:
    secret = os.urandom(32)
    first, second = StreamReceiver(ADDRESS, secret), StreamReceiver(ADDRESS, secret)
    got: list[tuple[str | None, int]] = []
    second.on_money = lambda tag, amount: got.append((tag, amount))
    destination, shared = first.credentials("made-by-first")
    assert destination.startswith(ADDRESS + ".") and len(shared) == 32
    assert first.credentials("x") != first.credentials("x")  # fresh each time
    answer = await second.handle(Payer(destination, shared).prepare(9, f.StreamMoney(1, 1)))
    assert isinstance(answer, Fulfill) and got == [("made-by-first", 9)]
    stranger = StreamReceiver(ADDRESS, os.urandom(32))
    refused = await stranger.handle(Payer(destination, shared).prepare(9, f.StreamMoney(1, 1)))
    assert isinstance(refused, Reject) and refused.code == "F02"


async def test_undecryptable_data_is_f06(receiver: StreamReceiver) -> None:
    destination, _ = receiver.credentials()
    answer = await receiver.handle(Payer(destination, os.urandom(32)).prepare(5))
    assert isinstance(answer, Reject) and answer.code == "F06" and answer.triggered_by == ADDRESS
    destination, secret = receiver.credentials()
    fulfill_type = await receiver.handle(Payer(destination, secret).prepare(5, kind=13))
    assert isinstance(fulfill_type, Reject) and fulfill_type.code == "F06"


async def test_unknown_addresses_are_f02(receiver: StreamReceiver) -> None:
    _, secret = receiver.credentials()
    for destination in (
        "test.agent.bm90LWEtdG9rZW4",
        "test.other.abc",
        "test.agent",
        "test.agent.a~b",
    ):
        answer = await receiver.handle(Payer(destination, secret).prepare(1))
        assert isinstance(answer, Reject) and answer.code == "F02", destination


async def test_probes_get_f99_with_the_amount_that_arrived(
    receiver: StreamReceiver, money: list[tuple[str | None, int]]
) -> None:
    payer = Payer(*receiver.credentials())
    new_address = f.ConnectionNewAddress("test.client")
    answer = await receiver.handle(payer.prepare(1000, new_address, fulfillable=False))
    assert isinstance(answer, Reject) and answer.code == "F99"
    reply = payer.reply(answer)
    assert reply.prepare_amount == 1000  # how the sender learns the exchange rate
    assert f.ConnectionAssetDetails("XRP", 6) in reply.frames
    assert money == []


async def test_less_than_the_minimum_is_refused(
    receiver: StreamReceiver, money: list[tuple[str | None, int]]
) -> None:
    payer = Payer(*receiver.credentials())
    answer = await receiver.handle(payer.prepare(95, f.StreamMoney(1, 1), minimum=100))
    assert isinstance(answer, Reject) and answer.code == "F99"
    assert payer.reply(answer).prepare_amount == 95
    assert money == []


async def test_requests_are_answered_in_the_fulfill() -> None:
    seen: list[Incoming] = []

    async def answer(incoming: Incoming) -> bytes:
        seen.append(incoming)
        return b"reply to " + incoming.data

    receiver = StreamReceiver(ADDRESS, os.urandom(32), on_request=answer)
    payer = Payer(*receiver.credentials("chat"))
    result = await receiver.handle(
        payer.prepare(300, f.StreamMoney(1, 1), f.StreamData(1, 0, b"hello"))
    )
    assert isinstance(result, Fulfill)
    assert f.StreamData(1, 0, b"reply to hello") in payer.reply(result).frames
    assert seen == [Incoming("chat", 300, b"hello", 1)]
    again = await receiver.handle(payer.prepare(300, f.StreamData(1, 5, b"again")))
    assert isinstance(again, Fulfill)
    assert f.StreamData(1, 14, b"reply to again") in payer.reply(again).frames  # next offset


async def test_a_request_can_be_refused_with_a_code(
    money: list[tuple[str | None, int]],
) -> None:
    def price_check(incoming: Incoming) -> bytes | RejectWith:
        return RejectWith("F99", "costs 1000") if incoming.amount < 1000 else b"ok"

    receiver = StreamReceiver(
        ADDRESS, os.urandom(32), on_request=price_check, on_money=lambda t, a: money.append((t, a))
    )
    payer = Payer(*receiver.credentials())
    answer = await receiver.handle(payer.prepare(10, f.StreamMoney(1, 1), f.StreamData(1, 0, b"q")))
    assert isinstance(answer, Reject)
    assert (answer.code, answer.message) == ("F99", "costs 1000")
    assert payer.reply(answer).prepare_amount == 10
    assert money == []
    with pytest.raises(ValueError, match="not an ILP error code"):
        RejectWith("nope")


async def test_a_reply_too_large_is_refused_clearly() -> None:
    receiver = StreamReceiver(ADDRESS, os.urandom(32), on_request=lambda i: b"x" * 40000)
    payer = Payer(*receiver.credentials())
    answer = await receiver.handle(payer.prepare(1, f.StreamData(1, 0, b"q")))
    assert isinstance(answer, Reject) and answer.code == "F99"
    assert "reply too large: 40000 bytes" in answer.message
    payer.reply(answer)  # still carries a readable STREAM reply


async def test_failing_hooks_never_crash_the_receiver() -> None:
    def broken(incoming: Incoming) -> bytes:
        raise RuntimeError("bug")

    def ledger_down(tag: str | None, amount: int) -> None:
        raise OSError("disk full")

    receiver = StreamReceiver(ADDRESS, os.urandom(32), on_request=broken, on_money=ledger_down)
    payer = Payer(*receiver.credentials())
    answer = await receiver.handle(payer.prepare(1, f.StreamData(1, 0, b"q")))
    assert isinstance(answer, Reject) and answer.code == "F99"
    receiver.on_request = None
    declined = await receiver.handle(payer.prepare(5, f.StreamMoney(1, 1)))
    assert isinstance(declined, Reject) and declined.code == "T00"  # sender may retry


async def test_closed_streams_take_no_more_money(receiver: StreamReceiver) -> None:
    payer = Payer(*receiver.credentials())
    closing = await receiver.handle(payer.prepare(7, f.StreamMoney(1, 1), f.StreamClose(1)))
    assert isinstance(closing, Fulfill)  # money on the closing packet still counts
    assert f.ConnectionMaxStreamId(22) in payer.reply(closing).frames  # room for another
    late = await receiver.handle(payer.prepare(7, f.StreamMoney(1, 1)))
    assert isinstance(late, Reject) and late.code == "F99"
    close = next(x for x in payer.reply(late).frames if isinstance(x, f.StreamClose))
    assert close.error_code == ErrorCode.STREAM_STATE_ERROR
    other = await receiver.handle(payer.prepare(7, f.StreamMoney(3, 1)))
    assert isinstance(other, Fulfill)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (f.StreamMoney(2, 1), ErrorCode.PROTOCOL_VIOLATION),  # even ids are the server's
        (f.StreamMoney(23, 1), ErrorCode.STREAM_ID_ERROR),  # over the 10 streams allowed
        (f.StreamData(1, 70000, b"x"), ErrorCode.FLOW_CONTROL_ERROR),  # beyond the window
    ],
)
async def test_protocol_errors_close_the_connection(
    receiver: StreamReceiver, frame: f.Frame, code: ErrorCode
) -> None:
    payer = Payer(*receiver.credentials())
    answer = await receiver.handle(payer.prepare(1, frame))
    assert isinstance(answer, Reject) and answer.code == "F99"
    close = next(x for x in payer.reply(answer).frames if isinstance(x, f.ConnectionClose))
    assert close.error_code == code
    assert receiver.connection_count == 0


async def test_connection_close_forgets_the_connection(receiver: StreamReceiver) -> None:
    payer = Payer(*receiver.credentials())
    assert isinstance(await receiver.handle(payer.prepare(3, f.StreamMoney(1, 1))), Fulfill)
    assert receiver.connection_count == 1
    answer = await receiver.handle(payer.prepare(0, f.ConnectionClose(), fulfillable=False))
    assert isinstance(answer, Reject) and answer.code == "F99"
    assert receiver.connection_count == 0


async def test_idle_connections_are_dropped() -> None:
    receiver = StreamReceiver(ADDRESS, os.urandom(32), idle_timeout=0.0, max_connections=3)
    for _ in range(5):
        payer = Payer(*receiver.credentials())
        assert isinstance(await receiver.handle(payer.prepare(1, f.StreamMoney(1, 1))), Fulfill)
    assert receiver.connection_count <= 3


def test_bad_configuration_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        StreamReceiver(ADDRESS, b"short")
    with pytest.raises(ValueError, match="not a valid ILP address"):
        StreamReceiver("nope", os.urandom(32))
    receiver = StreamReceiver(ADDRESS, os.urandom(32))
    with pytest.raises(ValueError, match="ASCII"):
        receiver.credentials("ünïcode")
    assert repr(receiver) == "StreamReceiver('test.agent', connections=0)"  # no secret in logs


@settings(max_examples=150, deadline=None)
@given(
    st.lists(frame_strategy, max_size=6),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.booleans(),
)
async def test_any_stream_packet_gets_an_answer_not_a_crash(
    frames: list[f.Frame], amount: int, minimum: int, fulfillable: bool
) -> None:
    async def answer(incoming: Incoming) -> bytes:
        return incoming.data[:100]

    receiver = StreamReceiver(ADDRESS, bytes(32), on_request=answer)
    payer = Payer(*receiver.credentials())
    for _ in range(2):  # a second packet meets the state the first one left
        result = await receiver.handle(
            payer.prepare(amount, *frames, minimum=minimum, fulfillable=fulfillable)
        )
        assert not (isinstance(result, Reject) and result.code == "T00"), result.message
        if isinstance(result, Fulfill):
            assert payer.reply(result).prepare_amount == amount


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
async def test_random_data_is_refused_cleanly(data: bytes) -> None:
    receiver = StreamReceiver(ADDRESS, bytes(32))
    destination, _ = receiver.credentials()
    prepare = Prepare(1, datetime.now(UTC) + timedelta(seconds=30), bytes(32), destination, data)
    result = await receiver.handle(prepare)
    assert isinstance(result, Reject) and result.code == "F06"


async def test_money_is_heard_only_for_a_fulfill_that_goes_out() -> None:
    # A reply too large for the Fulfill turns it into a Reject: the sender keeps its money, so
    # on_money (an agent's earnings) must not hear of it, nor the totals the receiver states.
    heard: list[int] = []

    def answer(incoming: Incoming) -> bytes:
        return b"x" * 40000 if incoming.data == b"big" else b"ok"

    receiver = StreamReceiver(ADDRESS, os.urandom(32), on_request=answer,
                              on_money=lambda tag, amount: heard.append(amount))  # fmt: skip
    payer = Payer(*receiver.credentials())
    refused = await receiver.handle(
        payer.prepare(7, f.StreamMoney(1, 1), f.StreamData(1, 0, b"big"))
    )
    assert isinstance(refused, Reject) and "reply too large" in refused.message
    assert heard == []
    assert not [m for m in payer.reply(refused).frames if isinstance(m, f.StreamMaxMoney)
                and m.total_received]  # fmt: skip
    paid = await receiver.handle(payer.prepare(5, f.StreamMoney(1, 1), f.StreamData(1, 3, b"q")))
    assert isinstance(paid, Fulfill) and heard == [5]
    assert f.StreamMaxMoney(1, 2**64 - 1, 5) in payer.reply(paid).frames
    # A failing on_money declines the packet, and nothing of it is counted either.
    receiver.on_money = lambda tag, amount: 1 / 0
    declined = await receiver.handle(payer.prepare(9, f.StreamMoney(1, 1)))
    assert isinstance(declined, Reject) and declined.code == "T00"
    receiver.on_money = lambda tag, amount: heard.append(amount)
    again = await receiver.handle(payer.prepare(1, f.StreamMoney(1, 1)))
    assert f.StreamMaxMoney(1, 2**64 - 1, 6) in payer.reply(again).frames
