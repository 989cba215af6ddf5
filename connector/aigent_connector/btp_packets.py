"""BTP 2.0 frames (RFC 23): Message, Response, Error and Transfer, each with protocol data.

ILP packets travel in a Message whose first protocol-data entry is ``ilp``; the answer is a
Response with the same request id. Error frames are for transport failures only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aigent_connector.oer import OerError, Reader, length_at, length_prefix, var_octets, var_uint
from aigent_connector.packets import InvalidPacket

RESPONSE, ERROR, MESSAGE, TRANSFER = 1, 2, 6, 7
OCTET_STREAM, TEXT, JSON = 0, 1, 2


@dataclass(frozen=True)
class ProtocolData:
    name: str
    content_type: int
    data: bytes


@dataclass(frozen=True)
class Message:
    request_id: int
    protocol_data: list[ProtocolData] = field(default_factory=list)


@dataclass(frozen=True)
class Response:
    request_id: int
    protocol_data: list[ProtocolData] = field(default_factory=list)


@dataclass(frozen=True)
class Transfer:
    request_id: int
    amount: int
    protocol_data: list[ProtocolData] = field(default_factory=list)


@dataclass(frozen=True)
class Error:
    request_id: int
    code: str
    name: str
    triggered_at: str  # GeneralizedTime, e.g. 20170828183200.000Z
    data: bytes = b""
    protocol_data: list[ProtocolData] = field(default_factory=list)


Frame = Message | Response | Transfer | Error


def find(protocol_data: list[ProtocolData], name: str) -> ProtocolData | None:
    return next((p for p in protocol_data if p.name == name), None)


def _encode_protocol_data(entries: list[ProtocolData]) -> bytes:
    out = var_uint(len(entries))
    for p in entries:
        out += var_octets(p.name.encode("ascii")) + bytes([p.content_type]) + var_octets(p.data)
    return out


def _decode_protocol_data(r: Reader) -> list[ProtocolData]:
    count = r.var_uint("protocolData count")
    entries = []
    for _ in range(count):
        name = r.var_octets("protocolName").decode("ascii", errors="strict")
        content_type = r.uint(1, "contentType")
        entries.append(ProtocolData(name, content_type, r.var_octets("data")))
    return entries


def _encode_fast(kind: int, frame: Message | Response) -> bytes:
    """Message and Response with fewer than 128 entries, the frames that carry packets."""
    parts = [b"\x01", _COUNTS[len(frame.protocol_data)]]
    for p in frame.protocol_data:
        name = p.name.encode("ascii")
        parts += (length_prefix(len(name)), name, _COUNTS[p.content_type],
                  length_prefix(len(p.data)), p.data)  # fmt: skip
    body = b"".join(parts)
    return b"".join((_COUNTS[kind], frame.request_id.to_bytes(4, "big"),
                     length_prefix(len(body)), body))  # fmt: skip


_COUNTS = [bytes([n]) for n in range(256)]


def encode(frame: Frame) -> bytes:
    kind_of = type(frame)
    if (kind_of is Message or kind_of is Response) and len(frame.protocol_data) < 128:
        return _encode_fast(MESSAGE if kind_of is Message else RESPONSE, frame)  # type: ignore[arg-type]
    return encode_careful(frame)


def encode_careful(frame: Frame) -> bytes:
    """:func:`encode` for every frame; the reference the fast path meets."""
    if isinstance(frame, Message | Response):
        kind = MESSAGE if isinstance(frame, Message) else RESPONSE
        body = _encode_protocol_data(frame.protocol_data)
    elif isinstance(frame, Transfer):
        kind = TRANSFER
        body = frame.amount.to_bytes(8, "big") + _encode_protocol_data(frame.protocol_data)
    else:
        kind = ERROR
        body = (
            frame.code.encode("ascii")
            + var_octets(frame.name.encode("ascii"))
            + var_octets(frame.triggered_at.encode("ascii"))
            + var_octets(frame.data)
            + _encode_protocol_data(frame.protocol_data)
        )
    return bytes([kind]) + frame.request_id.to_bytes(4, "big") + var_octets(body)


def _decode_fast(data: bytes) -> Frame:
    """Message and Response straight from the bytes. Raises (anything) on input that is not
    plainly valid; the careful decoder then says exactly what is wrong."""
    kind = data[0]
    if kind != MESSAGE and kind != RESPONSE:
        raise ValueError("left to the careful decoder")
    size, pos = length_at(data, 5)
    end = pos + size
    if end > len(data) or data[pos] != 1:  # the entry count: a 1-byte var_uint here
        raise ValueError("left to the careful decoder")
    count, pos = data[pos + 1], pos + 2
    entries = []
    for _ in range(count):
        n, pos = length_at(data, pos)
        name = data[pos : pos + n].decode("ascii")
        content_type = data[pos + n]
        n, pos = length_at(data, pos + n + 1)
        entries.append(ProtocolData(name, content_type, data[pos : pos + n]))
        pos += n
    if pos > end:
        raise ValueError("left to the careful decoder")
    request_id = int.from_bytes(data[1:5], "big")
    return Message(request_id, entries) if kind == MESSAGE else Response(request_id, entries)


_ILP_ENTRY = b"\x01\x01\x03ilp\x00"  # one entry, named ilp, octet stream


def ilp_frame(kind: int, request_id: int, packet: bytes) -> bytes:
    """A Message or Response carrying just ``packet`` under ``ilp``: what a connector sends."""
    size = length_prefix(len(packet))
    body = length_prefix(7 + len(size) + len(packet))
    return b"".join((_COUNTS[kind], request_id.to_bytes(4, "big"), body, _ILP_ENTRY, size, packet))


def ilp_entry(frame: bytes) -> bytes | None:
    """The ``ilp`` data of a Message or Response (``None`` without one), read in place when it
    is the only entry; :class:`InvalidPacket` for a frame that cannot be read."""
    try:
        size, pos = length_at(frame, 5)
        if frame[pos : pos + 7] == _ILP_ENTRY:
            n, at = length_at(frame, pos + 7)
            if at + n == pos + size <= len(frame):
                return frame[at : at + n]
    except (ValueError, IndexError):
        pass
    decoded = decode(frame)
    if not isinstance(decoded, Message | Response):
        return None
    entry = find(decoded.protocol_data, "ilp")
    return entry.data if entry is not None else None


def decode(data: bytes) -> Frame:
    """A BTP frame, or :class:`InvalidPacket` saying what is wrong."""
    try:
        return _decode_fast(bytes(data))
    except Exception:
        return decode_careful(data)  # another type, or something wrong: the careful way says


def decode_careful(data: bytes) -> Frame:
    """:func:`decode` field by field, every read checked; the reference the fast path meets."""
    try:
        r = Reader(data)
        kind = r.uint(1, "type")
        request_id = r.uint(4, "requestId")
        body = Reader(r.var_octets("content"))
        if kind in (MESSAGE, RESPONSE):
            cls = Message if kind == MESSAGE else Response
            return cls(request_id, _decode_protocol_data(body))
        if kind == TRANSFER:
            amount = body.uint(8, "amount")
            return Transfer(request_id, amount, _decode_protocol_data(body))
        if kind == ERROR:
            code = body.read(3, "code").decode("ascii")
            name = body.var_octets("name").decode("ascii")
            triggered_at = body.var_octets("triggeredAt").decode("ascii")
            payload = body.var_octets("data")
            return Error(request_id, code, name, triggered_at, payload,
                         _decode_protocol_data(body))  # fmt: skip
        raise InvalidPacket(f"unsupported BTP frame type {kind}")
    except OerError as exc:
        raise InvalidPacket(str(exc)) from None
    except UnicodeDecodeError:
        raise InvalidPacket("a BTP text field is not ASCII") from None
