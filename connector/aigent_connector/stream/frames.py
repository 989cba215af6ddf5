"""STREAM frames (RFC 29 §5.3), with the field order and encodings of ilp-protocol-stream.

Each frame on the wire is ``type (UInt8)`` then its contents as a variable-length octet string,
so a reader can skip frame types it does not know, and ignore bytes at the end of a frame's
contents that a newer version may have added.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from aigent_connector.errors import ConnectorError
from aigent_connector.oer import Reader, var_octets, var_uint

MAX_UINT64 = 2**64 - 1


class InvalidStreamPacket(ConnectorError, ValueError):
    """Bytes that are not a valid STREAM packet or frame; the message says which field."""


class ErrorCode(IntEnum):
    """Why a stream or connection was closed (RFC 29 §5.4)."""

    NO_ERROR = 0x01
    INTERNAL_ERROR = 0x02
    ENDPOINT_BUSY = 0x03
    FLOW_CONTROL_ERROR = 0x04
    STREAM_ID_ERROR = 0x05
    STREAM_STATE_ERROR = 0x06
    FRAME_FORMAT_ERROR = 0x07
    PROTOCOL_VIOLATION = 0x08
    APPLICATION_ERROR = 0x09


def _u64(value: int, what: str) -> None:
    if not 0 <= value <= MAX_UINT64:
        raise InvalidStreamPacket(f"{what} {value} is outside 0..2^64-1")


def _u8(value: int, what: str) -> None:
    if not 0 <= value <= 0xFF:
        raise InvalidStreamPacket(f"{what} {value} is outside 0..255")


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidStreamPacket(f"{what} is not UTF-8") from None


def _saturating_uint(reader: Reader, what: str) -> int:
    """A VarUInt where a sender may write more than 64 bits to mean "no limit"."""
    raw = reader.var_octets(what)
    if not raw:
        raise InvalidStreamPacket(f"{what}: a variable-length integer needs at least one byte")
    return min(int.from_bytes(raw, "big"), MAX_UINT64)


@dataclass(frozen=True)
class ConnectionClose:
    TYPE: ClassVar[int] = 0x01
    error_code: int = ErrorCode.NO_ERROR
    message: str = ""

    def __post_init__(self) -> None:
        _u8(self.error_code, "ConnectionClose.errorCode")

    def contents(self) -> bytes:
        return bytes([self.error_code]) + var_octets(self.message.encode())

    @classmethod
    def read(cls, r: Reader) -> ConnectionClose:
        code = r.uint(1, "errorCode")
        return cls(code, _text(r.var_octets("errorMessage"), "errorMessage"))


@dataclass(frozen=True)
class ConnectionNewAddress:
    TYPE: ClassVar[int] = 0x02
    source_account: str

    def contents(self) -> bytes:
        return var_octets(self.source_account.encode())

    @classmethod
    def read(cls, r: Reader) -> ConnectionNewAddress:
        return cls(_text(r.var_octets("sourceAccount"), "sourceAccount"))


@dataclass(frozen=True)
class ConnectionMaxData:
    TYPE: ClassVar[int] = 0x03
    max_offset: int

    def __post_init__(self) -> None:
        _u64(self.max_offset, "maxOffset")

    def contents(self) -> bytes:
        return var_uint(self.max_offset)

    @classmethod
    def read(cls, r: Reader) -> ConnectionMaxData:
        return cls(r.var_uint("maxOffset"))


@dataclass(frozen=True)
class ConnectionDataBlocked:
    TYPE: ClassVar[int] = 0x04
    max_offset: int

    def __post_init__(self) -> None:
        _u64(self.max_offset, "maxOffset")

    def contents(self) -> bytes:
        return var_uint(self.max_offset)

    @classmethod
    def read(cls, r: Reader) -> ConnectionDataBlocked:
        return cls(r.var_uint("maxOffset"))


@dataclass(frozen=True)
class ConnectionMaxStreamId:
    TYPE: ClassVar[int] = 0x05
    max_stream_id: int

    def __post_init__(self) -> None:
        _u64(self.max_stream_id, "maxStreamId")

    def contents(self) -> bytes:
        return var_uint(self.max_stream_id)

    @classmethod
    def read(cls, r: Reader) -> ConnectionMaxStreamId:
        return cls(r.var_uint("maxStreamId"))


@dataclass(frozen=True)
class ConnectionStreamIdBlocked:
    TYPE: ClassVar[int] = 0x06
    max_stream_id: int

    def __post_init__(self) -> None:
        _u64(self.max_stream_id, "maxStreamId")

    def contents(self) -> bytes:
        return var_uint(self.max_stream_id)

    @classmethod
    def read(cls, r: Reader) -> ConnectionStreamIdBlocked:
        return cls(r.var_uint("maxStreamId"))


@dataclass(frozen=True)
class ConnectionAssetDetails:
    TYPE: ClassVar[int] = 0x07
    asset_code: str
    asset_scale: int

    def __post_init__(self) -> None:
        _u8(self.asset_scale, "sourceAssetScale")

    def contents(self) -> bytes:
        return var_octets(self.asset_code.encode()) + bytes([self.asset_scale])

    @classmethod
    def read(cls, r: Reader) -> ConnectionAssetDetails:
        code = _text(r.var_octets("sourceAssetCode"), "sourceAssetCode")
        return cls(code, r.uint(1, "sourceAssetScale"))


@dataclass(frozen=True)
class StreamClose:
    TYPE: ClassVar[int] = 0x10
    stream_id: int
    error_code: int = ErrorCode.NO_ERROR
    message: str = ""

    def __post_init__(self) -> None:
        _u64(self.stream_id, "streamId")
        _u8(self.error_code, "StreamClose.errorCode")

    def contents(self) -> bytes:
        return (
            var_uint(self.stream_id) + bytes([self.error_code]) + var_octets(self.message.encode())
        )

    @classmethod
    def read(cls, r: Reader) -> StreamClose:
        stream_id = r.var_uint("streamId")
        code = r.uint(1, "errorCode")
        return cls(stream_id, code, _text(r.var_octets("errorMessage"), "errorMessage"))


@dataclass(frozen=True)
class StreamMoney:
    TYPE: ClassVar[int] = 0x11
    stream_id: int
    shares: int

    def __post_init__(self) -> None:
        _u64(self.stream_id, "streamId")
        _u64(self.shares, "shares")

    def contents(self) -> bytes:
        return var_uint(self.stream_id) + var_uint(self.shares)

    @classmethod
    def read(cls, r: Reader) -> StreamMoney:
        return cls(r.var_uint("streamId"), r.var_uint("shares"))


@dataclass(frozen=True)
class StreamMaxMoney:
    TYPE: ClassVar[int] = 0x12
    stream_id: int
    receive_max: int
    total_received: int

    def __post_init__(self) -> None:
        _u64(self.stream_id, "streamId")
        _u64(self.receive_max, "receiveMax")
        _u64(self.total_received, "totalReceived")

    def contents(self) -> bytes:
        return var_uint(self.stream_id) + var_uint(self.receive_max) + var_uint(self.total_received)

    @classmethod
    def read(cls, r: Reader) -> StreamMaxMoney:
        stream_id = r.var_uint("streamId")
        return cls(stream_id, _saturating_uint(r, "receiveMax"), r.var_uint("totalReceived"))


@dataclass(frozen=True)
class StreamMoneyBlocked:
    TYPE: ClassVar[int] = 0x13
    stream_id: int
    send_max: int
    total_sent: int

    def __post_init__(self) -> None:
        _u64(self.stream_id, "streamId")
        _u64(self.send_max, "sendMax")
        _u64(self.total_sent, "totalSent")

    def contents(self) -> bytes:
        return var_uint(self.stream_id) + var_uint(self.send_max) + var_uint(self.total_sent)

    @classmethod
    def read(cls, r: Reader) -> StreamMoneyBlocked:
        stream_id = r.var_uint("streamId")
        return cls(stream_id, _saturating_uint(r, "sendMax"), r.var_uint("totalSent"))


@dataclass(frozen=True)
class StreamData:
    TYPE: ClassVar[int] = 0x14
    stream_id: int
    offset: int
    data: bytes

    def __post_init__(self) -> None:
        _u64(self.stream_id, "streamId")
        _u64(self.offset, "offset")

    def contents(self) -> bytes:
        return var_uint(self.stream_id) + var_uint(self.offset) + var_octets(self.data)

    @classmethod
    def read(cls, r: Reader) -> StreamData:
        return cls(r.var_uint("streamId"), r.var_uint("offset"), r.var_octets("data"))


@dataclass(frozen=True)
class StreamMaxData:
    TYPE: ClassVar[int] = 0x15
    stream_id: int
    max_offset: int

    def __post_init__(self) -> None:
        _u64(self.stream_id, "streamId")
        _u64(self.max_offset, "maxOffset")

    def contents(self) -> bytes:
        return var_uint(self.stream_id) + var_uint(self.max_offset)

    @classmethod
    def read(cls, r: Reader) -> StreamMaxData:
        return cls(r.var_uint("streamId"), r.var_uint("maxOffset"))


@dataclass(frozen=True)
class StreamDataBlocked:
    TYPE: ClassVar[int] = 0x16
    stream_id: int
    max_offset: int

    def __post_init__(self) -> None:
        _u64(self.stream_id, "streamId")
        _u64(self.max_offset, "maxOffset")

    def contents(self) -> bytes:
        return var_uint(self.stream_id) + var_uint(self.max_offset)

    @classmethod
    def read(cls, r: Reader) -> StreamDataBlocked:
        return cls(r.var_uint("streamId"), r.var_uint("maxOffset"))


@dataclass(frozen=True)
class StreamReceipt:
    TYPE: ClassVar[int] = 0x17
    stream_id: int
    receipt: bytes

    def __post_init__(self) -> None:
        _u64(self.stream_id, "streamId")

    def contents(self) -> bytes:
        return var_uint(self.stream_id) + var_octets(self.receipt)

    @classmethod
    def read(cls, r: Reader) -> StreamReceipt:
        return cls(r.var_uint("streamId"), r.var_octets("receipt"))


Frame = (
    ConnectionClose
    | ConnectionNewAddress
    | ConnectionMaxData
    | ConnectionDataBlocked
    | ConnectionMaxStreamId
    | ConnectionStreamIdBlocked
    | ConnectionAssetDetails
    | StreamClose
    | StreamMoney
    | StreamMaxMoney
    | StreamMoneyBlocked
    | StreamData
    | StreamMaxData
    | StreamDataBlocked
    | StreamReceipt
)

FRAME_TYPES: dict[int, type[Frame]] = {
    kind.TYPE: kind
    for kind in (
        ConnectionClose, ConnectionNewAddress, ConnectionMaxData, ConnectionDataBlocked,
        ConnectionMaxStreamId, ConnectionStreamIdBlocked, ConnectionAssetDetails, StreamClose,
        StreamMoney, StreamMaxMoney, StreamMoneyBlocked, StreamData, StreamMaxData,
        StreamDataBlocked, StreamReceipt,
    )
}  # fmt: skip


def encode_frame(frame: Frame) -> bytes:
    return bytes([frame.TYPE]) + var_octets(frame.contents())


def read_frame(reader: Reader) -> Frame | None:
    """The next frame, or None for a frame type this version does not know (skipped)."""
    kind = reader.uint(1, "frame type")
    contents = reader.var_octets("frame contents")
    frame_class = FRAME_TYPES.get(kind)
    if frame_class is None:
        return None
    try:
        return frame_class.read(Reader(contents))
    except InvalidStreamPacket as exc:
        raise InvalidStreamPacket(f"{frame_class.__name__} frame: {exc}") from None
    except ValueError as exc:  # OerError: truncated or non-canonical contents
        raise InvalidStreamPacket(f"{frame_class.__name__} frame: {exc}") from None
