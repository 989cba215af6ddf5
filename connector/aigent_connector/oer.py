"""Canonical OER (RFC 30), the subset Interledger uses: fixed big-endian integers, length
determinants, variable-length octet strings and unsigned integers."""

from __future__ import annotations

from aigent_connector.errors import ConnectorError


class OerError(ConnectorError, ValueError):
    """Bytes that are not valid OER here; the message says which field and why."""


class Reader:
    """Reads OER from a buffer, refusing to read past its end."""

    def __init__(self, data: bytes | memoryview) -> None:
        self.view = memoryview(data)
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.view) - self.pos

    def read(self, n: int, what: str) -> bytes:
        if n > self.remaining:
            raise OerError(f"{what}: needs {n} bytes, only {self.remaining} left")
        chunk = bytes(self.view[self.pos : self.pos + n])
        self.pos += n
        return chunk

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.read(size, what), "big")

    def length(self, what: str) -> int:
        first = self.uint(1, what)
        if first < 0x80:
            return first
        count = first & 0x7F
        if count == 0 or count > 8:
            raise OerError(f"{what}: invalid length prefix 0x{first:02x}")
        value = self.uint(count, what)
        if value < 0x80:
            raise OerError(f"{what}: length {value} must use the short form (canonical OER)")
        return value

    def var_octets(self, what: str, limit: int | None = None) -> bytes:
        n = self.length(what)
        if limit is not None and n > limit:
            raise OerError(f"{what}: {n} bytes is over the limit of {limit}")
        return self.read(n, what)

    def var_uint(self, what: str) -> int:
        raw = self.var_octets(what)
        if not raw or len(raw) > 8:
            raise OerError(f"{what}: a variable-length integer has 1 to 8 bytes, got {len(raw)}")
        return int.from_bytes(raw, "big")


def length_at(data: bytes, pos: int) -> tuple[int, int]:
    """For fast paths: the canonical length at ``pos`` (up to 65535) and where its content
    starts. Raises ``ValueError`` or ``IndexError`` on anything else; the caller then reads the
    bytes again with a :class:`Reader`, whose errors say what is wrong."""
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    if first == 0x81 and data[pos + 1] >= 0x80:
        return data[pos + 1], pos + 2
    if first == 0x82 and data[pos + 1]:
        return (data[pos + 1] << 8) | data[pos + 2], pos + 3
    raise ValueError("not a short canonical length")


# Every prefix up to 4095, made once: packets and their frames are mostly this small, and the
# connector writes two prefixes per frame.
_PREFIXES = [bytes([n]) for n in range(0x80)] + [b"\x81" + bytes([n]) for n in range(0x80, 0x100)]
_PREFIXES += [b"\x82" + n.to_bytes(2, "big") for n in range(0x100, 0x1000)]


def length_prefix(n: int) -> bytes:
    if n < 0x1000:
        return _PREFIXES[n]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def var_octets(data: bytes) -> bytes:
    return length_prefix(len(data)) + data


def var_uint(value: int) -> bytes:
    if value < 0:
        raise OerError("a variable-length unsigned integer cannot be negative")
    return var_octets(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))
