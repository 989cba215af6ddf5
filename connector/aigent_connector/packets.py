"""ILPv4 packets (RFC 27): Prepare, Fulfill and Reject, encoded in canonical OER (RFC 30).

``decode`` never fails with anything but :class:`InvalidPacket`, whose message says what is
wrong; a connector answers it with an F01 Reject (:func:`reject_invalid`). Trailing bytes after
a packet, and after the fields inside its envelope, are ignored, as the RFC requires.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from aigent_connector.errors import ConnectorError
from aigent_connector.oer import OerError, Reader, length_at, var_octets

PREPARE, FULFILL, REJECT = 12, 13, 14
MAX_DATA = 32767
MAX_MESSAGE = 8191
MAX_ADDRESS = 1023
MAX_AMOUNT = 2**64 - 1
# RFC 15: a scheme, then one or more segments.
ADDRESS = re.compile(r"^(g|private|example|peer|self|test[1-3]?|local)([.][a-zA-Z0-9_~-]+)+$")
CODE = re.compile(r"^[FTR][0-9A-Z]{2}$")
TIMESTAMP = re.compile(r"^\d{17}$")


class InvalidPacket(ConnectorError, ValueError):
    """Bytes that are not a valid ILP packet. Answer with F01 and this message."""


def valid_address(address: str) -> bool:
    return len(address) <= MAX_ADDRESS and ADDRESS.match(address) is not None


def parse_timestamp(raw: bytes) -> datetime:
    """``YYYYMMDDHHmmSSfff`` in UTC, exactly 17 ASCII digits; anything else is refused."""
    if len(raw) == 17 and raw.isdigit() and int(raw[12:14]) <= 59:
        # The common case without strptime, which costs more than the rest of a Prepare.
        try:
            return datetime(
                int(raw[:4]), int(raw[4:6]), int(raw[6:8]), int(raw[8:10]), int(raw[10:12]),
                int(raw[12:14]), int(raw[14:]) * 1000, UTC,
            )  # fmt: skip
        except ValueError:
            pass  # a day or hour that does not exist: said below
    text = raw.decode("ascii", errors="replace")
    if not TIMESTAMP.match(text):
        raise InvalidPacket(f"expiresAt {text!r} is not 17 digits YYYYMMDDHHmmSSfff")
    if int(text[12:14]) > 59:  # strptime's %S takes 60 and 61; ILP has no leap seconds
        raise InvalidPacket(f"expiresAt {text!r} is not a valid UTC time")
    try:
        return datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(
            microsecond=int(text[14:]) * 1000, tzinfo=UTC
        )
    except ValueError:
        raise InvalidPacket(f"expiresAt {text!r} is not a valid UTC time") from None


def format_timestamp(when: datetime) -> bytes:
    if when.tzinfo is not UTC:
        when = when.astimezone(UTC)
    return b"%04d%02d%02d%02d%02d%02d%03d" % (
        when.year, when.month, when.day, when.hour, when.minute, when.second,
        when.microsecond // 1000,
    )  # fmt: skip


@dataclass(frozen=True)
class Prepare:
    amount: int
    expires_at: datetime
    execution_condition: bytes
    destination: str
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.amount <= MAX_AMOUNT:
            raise InvalidPacket(f"amount {self.amount} is outside 0..2^64-1")
        if len(self.execution_condition) != 32:
            raise InvalidPacket("executionCondition must be 32 bytes")
        if not valid_address(self.destination):
            raise InvalidPacket(f"destination {self.destination!r} is not a valid ILP address")
        if len(self.data) > MAX_DATA:
            raise InvalidPacket(f"data is {len(self.data)} bytes, over {MAX_DATA}")
        if self.expires_at.tzinfo is None:
            raise InvalidPacket("expiresAt must carry a time zone (UTC)")


@dataclass(frozen=True)
class Fulfill:
    fulfillment: bytes
    data: bytes = b""

    def __post_init__(self) -> None:
        if len(self.fulfillment) != 32:
            raise InvalidPacket("fulfillment must be 32 bytes")
        if len(self.data) > MAX_DATA:
            raise InvalidPacket(f"data is {len(self.data)} bytes, over {MAX_DATA}")


@dataclass(frozen=True)
class Reject:
    code: str
    triggered_by: str = ""
    message: str = ""
    data: bytes = b""

    def __post_init__(self) -> None:
        if not CODE.match(self.code):
            raise InvalidPacket(f"code {self.code!r} is not an ILP error code such as F01")
        if self.triggered_by and not valid_address(self.triggered_by):
            raise InvalidPacket(f"triggeredBy {self.triggered_by!r} is not a valid ILP address")
        if len(self.message.encode()) > MAX_MESSAGE:
            raise InvalidPacket(f"message is over {MAX_MESSAGE} bytes")
        if len(self.data) > MAX_DATA:
            raise InvalidPacket(f"data is {len(self.data)} bytes, over {MAX_DATA}")


Packet = Prepare | Fulfill | Reject


@dataclass(frozen=True)
class AmountTooLarge:
    """The data of an F08 Reject: what arrived and the most this hop takes."""

    received_amount: int
    maximum_amount: int

    def encode(self) -> bytes:
        return self.received_amount.to_bytes(8, "big") + self.maximum_amount.to_bytes(8, "big")

    @classmethod
    def decode(cls, data: bytes) -> AmountTooLarge:
        if len(data) < 16:
            raise InvalidPacket("F08 data must hold two 8-byte amounts")
        return cls(int.from_bytes(data[:8], "big"), int.from_bytes(data[8:16], "big"))


def encode(packet: Packet) -> bytes:
    if isinstance(packet, Prepare):
        body = (
            packet.amount.to_bytes(8, "big")
            + format_timestamp(packet.expires_at)
            + packet.execution_condition
            + var_octets(packet.destination.encode("ascii"))
            + var_octets(packet.data)
        )
        kind = PREPARE
    elif isinstance(packet, Fulfill):
        body = packet.fulfillment + var_octets(packet.data)
        kind = FULFILL
    else:
        body = (
            packet.code.encode("ascii")
            + var_octets(packet.triggered_by.encode("ascii"))
            + var_octets(packet.message.encode("utf-8"))
            + var_octets(packet.data)
        )
        kind = REJECT
    return bytes([kind]) + var_octets(body)


# --- the fast paths: fields read in place, packets forwarded as bytes ----------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_MINUTES: dict[bytes, int] = {}  # "YYYYMMDDHHmm" -> its first millisecond since the epoch


def expiry_ms(raw: bytes) -> int:
    """A 17-digit ``expiresAt`` as milliseconds since the epoch; :class:`InvalidPacket` as
    :func:`parse_timestamp`. A minute's digits are checked (and converted) once."""
    minute = _MINUTES.get(raw[:12])
    tail = raw[12:]
    if minute is None or len(tail) != 5 or not tail.isdigit() or tail[0] > 0x35:  # > "5"
        when = parse_timestamp(raw)  # says what is wrong, or is right after all
        minute = int(when.replace(second=0, microsecond=0).timestamp()) * 1000
        if len(_MINUTES) >= 1024:
            _MINUTES.clear()
        _MINUTES[raw[:12]] = minute
        return minute + when.second * 1000 + when.microsecond // 1000
    return minute + int(tail)  # SSfff: seconds and milliseconds, in milliseconds


_PREFIXES: dict[int, bytes] = {}  # first millisecond of a minute -> "YYYYMMDDHHmm"


def format_expiry_ms(ms: int) -> bytes:
    """:func:`format_timestamp` of a time in milliseconds since the epoch."""
    into = ms % 60_000
    minute = ms - into
    prefix = _PREFIXES.get(minute)
    if prefix is None:
        if len(_PREFIXES) >= 1024:
            _PREFIXES.clear()
        prefix = _PREFIXES[minute] = format_timestamp(datetime.fromtimestamp(minute / 1000, UTC))[
            :12
        ]
    return prefix + b"%05d" % into


class PrepareFields(NamedTuple):
    """What a connector reads of a Prepare to switch it; the packet itself is forwarded."""

    amount: int
    expires_ms: int
    condition: bytes
    destination: str
    start: int
    """Where the fields begin in the packet (after the type and the length prefix)."""


_DESTINATIONS: dict[bytes, str] = {}  # destinations seen, checked: STREAM reuses each many times


def _destination(raw: bytes) -> str:
    """``raw`` as an ILP address, or ``ValueError``; checked once per distinct address."""
    found = _DESTINATIONS.get(raw)
    if found is None:
        found = raw.decode("ascii")
        if ADDRESS.match(found) is None:
            raise ValueError("not an ILP address")
        if len(_DESTINATIONS) >= 4096:
            _DESTINATIONS.clear()
        _DESTINATIONS[raw] = found
    return found


def _read_prepare(packet: bytes) -> tuple[PrepareFields, int, int]:
    """A Prepare's fields, and where its data starts and how long it is, read in place. Raises
    (anything) on input that is not plainly a valid Prepare; the careful decoder then says
    exactly what is wrong."""
    if packet[0] != PREPARE:
        raise ValueError("not a Prepare")
    size, start = length_at(packet, 1)
    pos = start + 57
    n = packet[pos]
    if n < 0x80:  # addresses are short: a one-byte length, read in place
        pos += 1
    else:
        n, pos = length_at(packet, pos)
    destination = _destination(packet[pos : pos + n])
    m, at = length_at(packet, pos + n)
    end = start + size
    if end > len(packet) or n > MAX_ADDRESS or m > MAX_DATA or at + m > end:
        raise ValueError("over")
    fields = PrepareFields(int.from_bytes(packet[start : start + 8], "big"),
                           expiry_ms(packet[start + 8 : start + 25]),
                           packet[start + 25 : start + 57], destination, start)  # fmt: skip
    return fields, at, m


def _read_fulfill(packet: bytes) -> tuple[bytes, int, int]:
    """A Fulfill's fulfillment, and where its data starts and how long it is, read in place;
    raises (anything) on input that is not plainly a valid Fulfill."""
    if packet[0] != FULFILL:
        raise ValueError("not a Fulfill")
    size, start = length_at(packet, 1)
    m, at = length_at(packet, start + 32)
    if m > MAX_DATA or at + m > start + size or start + size > len(packet):
        raise ValueError("over")
    return packet[start : start + 32], at, m


def _decode_fast(data: bytes) -> Packet:
    """Prepare and Fulfill straight from the bytes. Raises (anything) on input that is not
    plainly valid; the careful decoder then says exactly what is wrong."""
    if data[0] == PREPARE:
        fields, at, m = _read_prepare(data)
        expires = _EPOCH + timedelta(milliseconds=fields.expires_ms)
        return Prepare(fields.amount, expires, fields.condition, fields.destination,
                       data[at : at + m])  # fmt: skip
    fulfillment, at, m = _read_fulfill(data)
    return Fulfill(fulfillment, data[at : at + m])


def peek_prepare(packet: bytes) -> PrepareFields:
    """The fields of a valid Prepare, checked as :func:`decode` checks them, without building
    it; :class:`InvalidPacket` (to answer F01) for anything else, a Fulfill or Reject too."""
    try:
        return _read_prepare(packet)[0]
    except Exception:
        found = decode_careful(packet)  # says what is wrong
        raise InvalidPacket(f"expected a Prepare, got a {type(found).__name__}") from None


def forwarded(packet: bytes, fields: PrepareFields, amount: int, expires_ms: int) -> bytes:
    """``packet`` with a new amount and expiry, the rest as it came."""
    start = fields.start
    if amount == fields.amount:
        return packet[: start + 8] + format_expiry_ms(expires_ms) + packet[start + 25 :]
    return (packet[:start] + amount.to_bytes(8, "big") + format_expiry_ms(expires_ms)
            + packet[start + 25 :])  # fmt: skip


def fulfillment_of(packet: bytes) -> bytes | None:
    """The fulfillment of a valid Fulfill, ``None`` for a valid Reject; :class:`InvalidPacket`
    for anything else (a Prepare among them)."""
    try:
        return _read_fulfill(packet)[0]
    except Exception:
        answer = decode_careful(packet)  # a Reject, or says what is wrong
    if isinstance(answer, Reject):
        return None
    if isinstance(answer, Fulfill):
        return answer.fulfillment
    raise InvalidPacket("expected a Fulfill or a Reject, got a Prepare")


def reject_code(packet: bytes) -> str | None:
    """The code of a Reject's bytes (``None`` for anything else), for metrics."""
    if not packet or packet[0] != REJECT:
        return None
    _, start = length_at(packet, 1)
    return packet[start : start + 3].decode("ascii", errors="replace")


def decode(data: bytes | memoryview) -> Packet:
    """The packet in ``data``, or :class:`InvalidPacket` saying what is wrong."""
    try:
        return _decode_fast(bytes(data))
    except Exception:
        return decode_careful(data)  # a Reject, or something wrong: the careful way names it


def decode_careful(data: bytes | memoryview) -> Packet:
    """:func:`decode` field by field, every read checked; the reference the fast path meets."""
    try:
        envelope = Reader(data)
        kind = envelope.uint(1, "type")
        body = Reader(envelope.var_octets("packet"))
        if kind == PREPARE:
            return Prepare(
                amount=body.uint(8, "amount"),
                expires_at=parse_timestamp(body.read(17, "expiresAt")),
                execution_condition=body.read(32, "executionCondition"),
                destination=_ascii(body.var_octets("destination", MAX_ADDRESS), "destination"),
                data=body.var_octets("data", MAX_DATA),
            )
        if kind == FULFILL:
            return Fulfill(
                fulfillment=body.read(32, "fulfillment"), data=body.var_octets("data", MAX_DATA)
            )
        if kind == REJECT:
            code = _ascii(body.read(3, "code"), "code")
            triggered_by = _ascii(body.var_octets("triggeredBy", MAX_ADDRESS), "triggeredBy")
            raw_message = body.var_octets("message", MAX_MESSAGE)
            try:
                message = raw_message.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidPacket("message is not UTF-8") from None
            return Reject(code, triggered_by, message, body.var_octets("data", MAX_DATA))
        raise InvalidPacket(f"unknown packet type {kind} (12 Prepare, 13 Fulfill, 14 Reject)")
    except OerError as exc:
        raise InvalidPacket(str(exc)) from None


def reject_invalid(error: InvalidPacket, triggered_by: str = "") -> Reject:
    """The F01 answer to a packet that could not be decoded."""
    message = f"invalid packet: {error}"
    return Reject("F01", triggered_by, message.encode()[:MAX_MESSAGE].decode(errors="ignore"))


def _ascii(raw: bytes, what: str) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidPacket(f"{what} is not ASCII") from None
