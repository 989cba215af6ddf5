"""STREAM (RFC 29): the packet and frame codec, its cryptography, a receiver and a sender.

receiver = StreamReceiver(address, server_secret, on_request=answer)
connector.set_packet_handler(lambda account, prepare: receiver.handle(prepare))
destination, secret = receiver.credentials("order-42")
result = await stream_pay(other.send, destination, secret, 1000, b"question")
"""

from aigent_connector.stream.crypto import DecryptionError
from aigent_connector.stream.frames import ErrorCode, Frame, InvalidStreamPacket
from aigent_connector.stream.packet import StreamPacket
from aigent_connector.stream.receiver import (
    Credentials,
    Incoming,
    RejectWith,
    StreamReceiver,
)
from aigent_connector.stream.sender import StreamPaymentError, StreamResult, stream_pay

__all__ = [
    "Credentials",
    "DecryptionError",
    "ErrorCode",
    "Frame",
    "Incoming",
    "InvalidStreamPacket",
    "RejectWith",
    "StreamPacket",
    "StreamPaymentError",
    "StreamReceiver",
    "StreamResult",
    "stream_pay",
]
