"""Paying over STREAM: send an amount (and optionally a request) to a receiver's credentials.

The message travels as StreamData in the first packet and the receiver's answer comes back as
StreamData in its encrypted Fulfill, so a paid request is one round trip when the amount fits in
one packet. Larger amounts are split by the path's maximum packet amount, learnt from F08 errors.

Money works with any STREAM receiver (ilp-protocol-stream's server included). Answers in the
Fulfill are what :class:`~aigent_connector.stream.StreamReceiver` gives; ilp-protocol-stream
sends its own data back in separate packets to the sender's address, which this one-shot sender
does not have. Every call uses stream 1 from offset 0: for receivers that reassemble streams
(ilp-protocol-stream), take fresh credentials per call.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from aigent_connector.errors import ConnectorError
from aigent_connector.packets import (
    FULFILL,
    MAX_AMOUNT,
    MAX_DATA,
    REJECT,
    AmountTooLarge,
    Fulfill,
    InvalidPacket,
    Prepare,
    Reject,
    valid_address,
)
from aigent_connector.stream import crypto
from aigent_connector.stream.frames import (
    ConnectionAssetDetails,
    Frame,
    InvalidStreamPacket,
    StreamData,
    StreamMoney,
)
from aigent_connector.stream.packet import StreamPacket

Send = Callable[[Prepare], Awaitable[Fulfill | Reject]]

STREAM_ID = 1  # the first client-initiated stream
PACKET_EXPIRY = 30.0
MAX_SEQUENCE = 2**31  # ilp-protocol-stream closes a connection before reusing sequence numbers
# Room for the packet header, frame headers and encryption around a request's bytes.
MAX_REQUEST = MAX_DATA - crypto.OVERHEAD - 64


@dataclass
class StreamResult:
    """What a payment did: ``delivered`` is in the receiver's units, ``sent`` in ours."""

    delivered: int = 0
    sent: int = 0
    reply_data: bytes = b""
    packets: int = 0
    destination_asset: tuple[str, int] | None = None
    rejects: list[Reject] = field(default_factory=list)


class StreamPaymentError(ConnectorError):
    """The payment stopped before it was complete. ``result`` says what got through, and
    ``reject`` is the final Reject (its code and message come from the receiver or a hop)."""

    def __init__(self, message: str, result: StreamResult, reject: Reject | None = None) -> None:
        super().__init__(message)
        self.result = result
        self.reject = reject


async def stream_pay(
    send: Send,
    destination_account: str,
    shared_secret: bytes,
    amount: int,
    data: bytes = b"",
    *,
    max_packet_amount: int | None = None,
    min_exchange_rate: Fraction | int | float = 0,
    timeout: float = 30,  # noqa: ASYNC109 - one deadline for all packets, as documented
) -> StreamResult:
    """Pay ``amount`` (our units) to a STREAM receiver; ``data`` is a request it answers.

    ``send`` is how Prepares leave this node, for instance ``connector.send``. Each packet asks
    the receiver to take it only if at least ``amount * min_exchange_rate`` arrives. Raises
    :class:`StreamPaymentError` on a final Reject (the receiver refusing the request, say) or
    when ``timeout`` seconds pass, and ``ValueError`` for arguments that cannot work.
    """
    if not valid_address(destination_account):
        raise ValueError(f"{destination_account!r} is not a valid ILP address")
    if len(shared_secret) != 32:
        raise ValueError(f"the shared secret must be 32 bytes, not {len(shared_secret)}")
    if not 0 <= amount <= MAX_AMOUNT:
        raise ValueError(f"amount {amount} is outside 0..2^64-1")
    if len(data) > MAX_REQUEST:
        raise ValueError(f"a request is at most {MAX_REQUEST} bytes (one packet), not {len(data)}")
    if max_packet_amount is not None and max_packet_amount <= 0:
        raise ValueError("max_packet_amount must be positive")
    payment = _Payment(send, destination_account, shared_secret, Fraction(min_exchange_rate))
    payment.deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    try:
        async with asyncio.timeout(timeout):
            await payment.run(amount, data, max_packet_amount or MAX_AMOUNT)
    except TimeoutError:
        last = payment.result.rejects[-1] if payment.result.rejects else None
        raise StreamPaymentError(
            f"timed out after {timeout}s with {payment.result.sent} of {amount} sent"
            + (f" (last error {last.code} {last.message})" if last else ""),
            payment.result,
            last,
        ) from None
    return payment.result


class _Payment:
    def __init__(self, send: Send, destination: str, secret: bytes, rate: Fraction) -> None:
        self.send, self.destination, self.secret, self.rate = send, destination, secret, rate
        self.key = crypto.encryption_key(secret)
        self.sequence = 0
        self.result = StreamResult()
        self.retry_delay = 0.01
        self.deadline = datetime.now(UTC) + timedelta(seconds=PACKET_EXPIRY)

    async def run(self, amount: int, data: bytes, max_packet: int) -> None:
        remaining, pending_data = amount, data
        while remaining > 0 or pending_data:
            chunk = min(remaining, max_packet)
            frames: list[Frame] = []
            if chunk:
                frames.append(StreamMoney(STREAM_ID, chunk))
            if pending_data:
                frames.append(StreamData(STREAM_ID, 0, pending_data))
            answer, reply = await self._send_packet(chunk, frames)
            if isinstance(answer, Fulfill):
                self.result.sent += chunk
                remaining -= chunk
                if reply is not None:
                    self._take_reply(reply)
                pending_data = b""
                self.retry_delay = 0.01
                continue
            self.result.rejects.append(answer)
            if reply is not None:
                self._take_reply(reply)
            max_packet = await self._after_reject(answer, chunk, max_packet)

    async def _send_packet(
        self, amount: int, frames: list[Frame]
    ) -> tuple[Fulfill | Reject, StreamPacket | None]:
        self.sequence += 1
        if self.sequence >= MAX_SEQUENCE:
            raise StreamPaymentError("too many packets on one connection", self.result)
        minimum = int(amount * self.rate)
        request = StreamPacket(self.sequence, 12, minimum, tuple(frames))
        sealed = crypto.encrypt(self.key, request.encode())
        fulfillment = crypto.fulfillment(self.secret, sealed)
        condition = hashlib.sha256(fulfillment).digest()
        # No packet outlives the payment's deadline: one fulfilled after we gave up would move
        # money that the result does not count.
        expires = min(datetime.now(UTC) + timedelta(seconds=PACKET_EXPIRY), self.deadline)
        prepare = Prepare(amount, expires, condition, self.destination, sealed)
        self.result.packets += 1
        answer = await self.send(prepare)
        if isinstance(answer, Fulfill) and hashlib.sha256(answer.fulfillment).digest() != condition:
            raise StreamPaymentError("the receiver's fulfillment does not match", self.result)
        return answer, self._open_reply(answer)

    def _open_reply(self, answer: Fulfill | Reject) -> StreamPacket | None:
        """The receiver's encrypted STREAM reply, if the data holds one for this packet."""
        if not answer.data:
            return None
        try:
            reply = StreamPacket.decode(crypto.decrypt(self.key, answer.data))
        except (crypto.DecryptionError, InvalidStreamPacket):
            return None  # a hop's data (F08 amounts, say), not the receiver's reply
        expected = FULFILL if isinstance(answer, Fulfill) else REJECT
        if reply.sequence != self.sequence or reply.ilp_packet_type != expected:
            return None
        return reply

    def _take_reply(self, reply: StreamPacket) -> None:
        if reply.ilp_packet_type == FULFILL:
            self.result.delivered += reply.prepare_amount
        for frame in reply.frames:
            if isinstance(frame, StreamData) and frame.stream_id == STREAM_ID:
                self.result.reply_data += frame.data
            elif isinstance(frame, ConnectionAssetDetails):
                self.result.destination_asset = (frame.asset_code, frame.asset_scale)

    async def _after_reject(self, reject: Reject, chunk: int, max_packet: int) -> int:
        """The next maximum packet amount, after waiting if the error is temporary; raises on a
        final error."""
        if reject.code == "F08":
            try:
                too_large = AmountTooLarge.decode(reject.data)
                smaller = chunk * too_large.maximum_amount // max(1, too_large.received_amount)
            except InvalidPacket:
                smaller = chunk // 2  # no amounts in the data: halve and learn again
            if smaller <= 0:
                raise StreamPaymentError(
                    "the path's maximum packet amount is 0", self.result, reject
                )
            return min(smaller, chunk - 1)
        if reject.code.startswith(("T", "R")):
            if reject.code == "T04":
                max_packet = max(1, chunk // 2)  # insufficient liquidity: send less at once
            await asyncio.sleep(self.retry_delay)
            self.retry_delay = min(self.retry_delay * 2, 1.0)
            return max_packet
        raise StreamPaymentError(
            f"payment rejected: {reject.code} {reject.message}".rstrip(), self.result, reject
        )
