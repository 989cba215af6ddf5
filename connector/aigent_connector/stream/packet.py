"""The STREAM packet (RFC 29 §5.2): what travels, encrypted, in the data of ILP packets.

``version 1 | ILP packet type | sequence | prepareAmount | frames``; bytes after the frames are
ignored (a sender may pad). Unknown frame types are skipped, so a newer peer's frames do no harm.
"""

from __future__ import annotations

from dataclasses import dataclass

from aigent_connector.oer import OerError, Reader, var_uint
from aigent_connector.packets import FULFILL, PREPARE, REJECT
from aigent_connector.stream import crypto
from aigent_connector.stream.frames import (
    MAX_UINT64,
    Frame,
    InvalidStreamPacket,
    encode_frame,
    read_frame,
)

VERSION = 1


@dataclass(frozen=True)
class StreamPacket:
    sequence: int
    ilp_packet_type: int
    prepare_amount: int = 0
    frames: tuple[Frame, ...] = ()

    def __post_init__(self) -> None:
        if self.ilp_packet_type not in (PREPARE, FULFILL, REJECT):
            raise InvalidStreamPacket(f"ILP packet type {self.ilp_packet_type} is not 12, 13 or 14")
        for value, what in ((self.sequence, "sequence"), (self.prepare_amount, "prepareAmount")):
            if not 0 <= value <= MAX_UINT64:
                raise InvalidStreamPacket(f"{what} {value} is outside 0..2^64-1")

    def encode(self) -> bytes:
        return (
            bytes([VERSION, self.ilp_packet_type])
            + var_uint(self.sequence)
            + var_uint(self.prepare_amount)
            + var_uint(len(self.frames))
            + b"".join(encode_frame(frame) for frame in self.frames)
        )

    @classmethod
    def decode(cls, data: bytes) -> StreamPacket:
        """The packet in ``data`` or :class:`InvalidStreamPacket` saying what is wrong."""
        try:
            reader = Reader(data)
            version = reader.uint(1, "version")
            if version != VERSION:
                raise InvalidStreamPacket(f"unsupported STREAM version {version} (expected 1)")
            kind = reader.uint(1, "ILP packet type")
            sequence = reader.var_uint("sequence")
            prepare_amount = reader.var_uint("prepareAmount")
            count = reader.var_uint("frame count")
            frames: list[Frame] = []
            for index in range(count):
                if reader.remaining == 0:
                    raise InvalidStreamPacket(f"{count} frames announced, only {index} present")
                frame = read_frame(reader)
                if frame is not None:
                    frames.append(frame)
            return cls(sequence, kind, prepare_amount, tuple(frames))
        except OerError as exc:
            raise InvalidStreamPacket(str(exc)) from None

    def encrypt(self, shared_secret: bytes) -> bytes:
        return crypto.encrypt(crypto.encryption_key(shared_secret), self.encode())

    @classmethod
    def decrypt(cls, shared_secret: bytes, data: bytes) -> StreamPacket:
        """Raises :class:`crypto.DecryptionError` or :class:`InvalidStreamPacket`."""
        return cls.decode(crypto.decrypt(crypto.encryption_key(shared_secret), data))
