"""aigent-connector: Interledger v4 as the RFCs define it."""

from aigent_connector.packets import (
    AmountTooLarge,
    Fulfill,
    InvalidPacket,
    Prepare,
    Reject,
    decode,
    encode,
    reject_invalid,
)

__all__ = [
    "AmountTooLarge",
    "Fulfill",
    "InvalidPacket",
    "Prepare",
    "Reject",
    "decode",
    "encode",
    "reject_invalid",
]
