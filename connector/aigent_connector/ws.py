"""A lean RFC 6455 WebSocket on ``asyncio.Protocol``, for BTP links.

BTP sends many small binary frames; a general library's per-frame locks, generators and tasks
cost more than the frames. Here a frame is parsed straight out of ``data_received`` and written
straight to the transport. What it does: the HTTP/1.1 Upgrade handshake (server and client),
binary and text messages, client masking, fragmented messages, ping/pong with keepalive, the
close handshake, a maximum message size. What it does not: extensions (no compression),
subprotocols, HTTP proxies. ``wss://`` works through the stdlib ``ssl`` module.

A server can bound what strangers cost it: ``max_connections`` sockets in all, and, when its
handler admits connections (:meth:`WebSocket.admit`, as BTP does once a peer authenticates),
``max_pending`` not yet admitted (``max_pending_per_address`` of them from any one address, so
one host cannot take every slot from the others), each held to ``pending_max_size`` per message
and a short queue until then. A socket over a cap is answered 503 and closed before it is read.

A protocol violation fails the connection with close code 1002 (1007 for bad UTF-8, 1009 for
an oversized message) and a reason that says what was wrong.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import ssl as ssl_module
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aigent_connector.errors import ConnectorError

log = logging.getLogger("aigent.connector.ws")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_SIZE = 1 << 20
MAX_HEADERS = 16 * 1024
HANDSHAKE_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0
# Messages read but not yet taken by recv(); past this the socket stops being read.
QUEUE_HIGH = 256
PENDING_QUEUE_HIGH = 2  # the same, for a connection its server has not admitted yet

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
OPEN, CLOSING, CLOSED = 1, 2, 3
# Close codes a peer may send (RFC 6455 7.4.1; 1004-1006 and 1015 are never on the wire).
_VALID_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})

Message = bytes | str
Handler = Callable[["WebSocket"], Awaitable[None]]


class WebSocketError(ConnectorError, ConnectionError):
    """Base of this module's errors: all are connection errors to a caller."""


class HandshakeError(WebSocketError):
    """The HTTP Upgrade handshake failed (bad URL, refused, not a WebSocket server...)."""


class ConnectionClosed(WebSocketError):
    """The connection is closed (or closing); ``code`` and ``reason`` are the peer's, or
    1006 when the TCP connection dropped without a close frame."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"WebSocket closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept answer to a Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def apply_mask(data: bytes, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated; masking and unmasking are the same."""
    n = len(data)
    if n == 0:
        return b""
    # One big-int XOR is far faster in CPython than a byte loop, and exact: little-endian keeps
    # every byte in its place and the result never needs more than n bytes.
    key = (mask * ((n + 3) >> 2))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


_mask = apply_mask


def _use_speedups() -> None:
    """Mask with the ``websockets`` package's C function when it is installed (six times
    faster); looked up on first use, not at import, so importing this module stays light."""
    global _mask
    if _mask is apply_mask:
        try:
            from websockets.speedups import apply_mask as c_apply_mask
        except ImportError:  # pure Python it is
            return
        _mask = c_apply_mask


def _header(opcode: int, length: int, masked: bool) -> bytes:
    bit = 0x80 if masked else 0
    if length < 126:
        return bytes((0x80 | opcode, bit | length))
    if length < 65536:
        return struct.pack("!BBH", 0x80 | opcode, bit | 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, bit | 127, length)


def _parse_headers(block: bytes) -> tuple[str, dict[str, str]]:
    """The start line and the headers (names lower-cased, repeats joined with commas)."""
    try:
        text = block.decode("latin-1")
    except UnicodeDecodeError as exc:  # latin-1 decodes anything; kept for clarity
        raise HandshakeError("unreadable HTTP head") from exc
    lines = text.split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HandshakeError(f"malformed HTTP header line {line[:60]!r}")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return lines[0], headers


def _has_token(value: str | None, token: str) -> bool:
    return value is not None and token in (t.strip().lower() for t in value.split(","))


class WebSocket(asyncio.Protocol):
    """One WebSocket connection, either side. Read with :meth:`recv` (or ``async for``), or hand
    every message to a callback with :meth:`set_handler`; write with :meth:`send` or, without a
    coroutine, :meth:`send_nowait`."""

    def __init__(
        self,
        *,
        client: bool,
        ping_interval: float | None = 20.0,
        max_size: int = MAX_SIZE,
        server: Server | None = None,
    ) -> None:
        self.client = client
        self.ping_interval = ping_interval
        self.max_size = max_size
        self.path = "/"
        self.request_headers: dict[str, str] = {}
        self.state = 0  # handshaking
        self.close_code = 1006
        self.close_reason = ""
        self.paused = False
        self.admitted = True
        """False while the server that accepted it waits to admit it (see :meth:`admit`)."""
        self._queue_high = QUEUE_HIGH
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._buf = bytearray()
        self._need = 0
        self._frag_opcode = 0
        self._frag: list[bytes] = []
        self._frag_size = 0
        self._queue: deque[Message] = deque()
        self._reading_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain: list[asyncio.Future[None]] = []
        self._out: list[bytes] = []
        self._input_done = False  # set once a close frame came in or we failed the connection
        self._on_message: Callable[[Message], None] | None = None
        self._opened: asyncio.Future[None] = self._loop.create_future()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._awaiting_pong = False
        self._key = ""
        self._handler_task: asyncio.Task[None] | None = None
        self._pending_address = ""

    def remote_host(self) -> str:
        """The peer's address (its IP; "" when the transport does not say)."""
        transport = self._transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else ""

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        if self._server is not None:
            if not self._server.take(self):
                self.state = CLOSED
                self._input_done = True
                self._server = None
                self._refuse(503, "too many connections; try again later")
                return
            self._timer = self._loop.call_later(HANDSHAKE_TIMEOUT, self._abort)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = CLOSED
        for timer in (self._timer, self._ping_timer):
            if timer is not None:
                timer.cancel()
        if not self._opened.done():
            self._opened.set_exception(HandshakeError(f"connection lost during handshake: {exc}"))
            self._opened.exception()  # retrieved: nobody may be waiting on a server's
        if not self._closed.done():
            self._closed.set_result(None)
        self._wake()
        for future in self._drain:
            if not future.done():
                future.set_result(None)
        self._drain.clear()
        if self._server is not None:
            self._server.release(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        for future in self._drain:
            if not future.done():
                future.set_result(None)
        self._drain.clear()

    def data_received(self, data: bytes) -> None:
        if self.state == 0:
            self._handshake_data(data)
            return
        if self._input_done:
            return  # nothing after a close frame counts
        buf = self._buf
        if buf:
            buf += data
            if len(buf) < self._need:
                return  # a large frame still arriving: do not re-parse it on every chunk
            data = bytes(buf)
            buf.clear()
        self._parse(data)

    # --- handshake --------------------------------------------------------------------------

    def _handshake_data(self, data: bytes) -> None:
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > MAX_HEADERS:
                if self.client:
                    self._fail_open(HandshakeError("HTTP head from the server too large"))
                else:
                    self._refuse(400, "HTTP head too large")
            return
        block, rest = bytes(self._head[:end]), bytes(self._head[end + 4 :])
        self._head = bytearray()
        try:
            if self.client:
                self._check_response(block)
            else:
                self._answer_request(block)
        except _Refused:
            return
        except HandshakeError as exc:
            if self.client:
                self._fail_open(exc)
            else:
                self._refuse(400, str(exc))
            return
        self._open()
        if rest and self.state == OPEN:
            self._parse(rest)

    def _answer_request(self, block: bytes) -> None:
        start, headers = _parse_headers(block)
        parts = start.split(" ")
        if len(parts) != 3 or parts[0] != "GET" or parts[2] != "HTTP/1.1":
            raise HandshakeError(f"expected a GET over HTTP/1.1, got {start[:60]!r}")
        if not _has_token(headers.get("upgrade"), "websocket"):
            raise HandshakeError("missing Upgrade: websocket")
        if not _has_token(headers.get("connection"), "upgrade"):
            raise HandshakeError("missing Connection: Upgrade")
        if headers.get("sec-websocket-version") != "13":
            self._refuse(426, "only WebSocket version 13", "Sec-WebSocket-Version: 13\r\n")
            raise _Refused
        key = headers.get("sec-websocket-key", "")
        try:
            if len(base64.b64decode(key, validate=True)) != 16:
                raise ValueError
        except ValueError as exc:
            raise HandshakeError("bad Sec-WebSocket-Key") from exc
        self.path = parts[1]
        self.request_headers = headers
        self._transport.write(  # type: ignore[union-attr]
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
        )

    def _check_response(self, block: bytes) -> None:
        start, headers = _parse_headers(block)
        parts = start.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.1"):
            raise HandshakeError(f"not an HTTP/1.1 answer: {start[:60]!r}")
        if parts[1] != "101":
            raise HandshakeError(f"the server refused the upgrade: {start[:80]}")
        if not _has_token(headers.get("upgrade"), "websocket"):
            raise HandshakeError("the server's answer lacks Upgrade: websocket")
        if not _has_token(headers.get("connection"), "upgrade"):
            raise HandshakeError("the server's answer lacks Connection: Upgrade")
        if headers.get("sec-websocket-accept") != accept_key(self._key):
            raise HandshakeError("wrong Sec-WebSocket-Accept from the server")
        if headers.get("sec-websocket-extensions"):
            raise HandshakeError("the server chose an extension we did not offer")

    def _refuse(self, status: int, why: str, extra: str = "") -> None:
        body = why.encode()
        phrase = {400: "Bad Request", 426: "Upgrade Required", 503: "Service Unavailable"}.get(
            status, "Error"
        )
        head = (f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n")  # fmt: skip
        self._transport.write(head.encode() + body)  # type: ignore[union-attr]
        self._transport.close()  # type: ignore[union-attr]

    def _fail_open(self, exc: Exception) -> None:
        if not self._opened.done():
            self._opened.set_exception(exc)
        self._abort()

    def _open(self) -> None:
        self.state = OPEN
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.ping_interval:
            self._ping_timer = self._loop.call_later(self.ping_interval, self._keepalive)
        if not self._opened.done():
            self._opened.set_result(None)
        if self._server is not None:
            self._handler_task = self._loop.create_task(self._server.run_handler(self))

    def _keepalive(self) -> None:
        if self.state != OPEN:
            return
        if self._awaiting_pong:  # no pong for a whole interval: the peer is gone
            self.fail(1011, "keepalive ping timeout")
            return
        self._awaiting_pong = True
        self._write_frame(PING, os.urandom(4))
        self._ping_timer = self._loop.call_later(self.ping_interval, self._keepalive)  # type: ignore[arg-type]

    # --- frames -----------------------------------------------------------------------------

    def _parse(self, data: bytes) -> None:
        pos, n = 0, len(data)
        expect_mask = 0 if self.client else 0x80
        while n - pos >= 2:
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                head = 10
                if length >> 63:
                    self.fail(1002, "frame length has its top bit set")
                    return
            masked = b1 & 0x80
            if masked != expect_mask:
                self.fail(1002, "client frames must be masked, server frames must not be")
                return
            if length > self.max_size:
                self.fail(1009, f"frame of {length} bytes exceeds {self.max_size}")
                return
            start = pos + head + (4 if masked else 0)
            end = start + length
            if end > n:
                break
            payload = data[start:end]
            if masked:
                payload = _mask(payload, data[start - 4 : start])
            pos = end
            callback = self._on_message
            if b0 == 0x82 and callback is not None and not self._frag_opcode:
                # A whole binary message for a handler: the common case, straight through.
                try:
                    callback(payload)
                except Exception:  # the handler's bug must not take the socket's reader down
                    log.exception("WebSocket message handler failed")
                continue
            self._frame(b0, payload)
            if self._input_done:
                return
        if pos < n:
            self._buf += data[pos:]
            self._need = self._frame_size(self._buf) if n - pos >= 2 else 2

    def _frame_size(self, buf: bytearray) -> int:
        """Bytes needed before the buffered frame can be parsed (its header, then all of it)."""
        length = buf[1] & 0x7F
        mask = 4 if buf[1] & 0x80 else 0
        if length == 126:
            return 4 if len(buf) < 4 else 4 + mask + ((buf[2] << 8) | buf[3])
        if length == 127:
            return 10 if len(buf) < 10 else 10 + mask + int.from_bytes(buf[2:10], "big")
        return 2 + mask + length

    def _frame(self, b0: int, payload: bytes) -> None:
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if b0 & 0x70:
            self.fail(1002, "reserved bits set without a negotiated extension")
            return
        if opcode == BINARY or opcode == TEXT:
            if self._frag_opcode:
                self.fail(1002, "new message before the fragmented one finished")
                return
            if fin:
                self._deliver(opcode, payload)
                return
            self._frag_opcode = opcode
            self._frag = [payload]
            self._frag_size = len(payload)
            return
        if opcode == CONTINUATION:
            if not self._frag_opcode:
                self.fail(1002, "continuation frame without a message to continue")
                return
            self._frag_size += len(payload)
            if self._frag_size > self.max_size:
                self.fail(1009, f"message exceeds {self.max_size} bytes")
                return
            self._frag.append(payload)
            if fin:
                opcode, self._frag_opcode = self._frag_opcode, 0
                whole = b"".join(self._frag)
                self._frag = []
                self._deliver(opcode, whole)
            return
        if opcode < 8 or opcode > PONG:
            self.fail(1002, f"unknown opcode {opcode}")
            return
        if not fin or len(payload) > 125:
            self.fail(1002, "control frames must be unfragmented and at most 125 bytes")
            return
        if opcode == PING:
            self._write_frame(PONG, payload)
        elif opcode == PONG:
            self._awaiting_pong = False
        else:
            self._on_close_frame(payload)

    def _deliver(self, opcode: int, payload: bytes) -> None:
        message: Message = payload
        if opcode == TEXT:
            try:
                message = payload.decode()
            except UnicodeDecodeError:
                self.fail(1007, "text message is not valid UTF-8")
                return
        callback = self._on_message
        if callback is not None:
            try:
                callback(message)
            except Exception:  # the handler's bug must not take the socket's reader down
                log.exception("WebSocket message handler failed")
            return
        self._queue.append(message)
        if len(self._queue) >= self._queue_high and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()  # type: ignore[union-attr]
        self._wake()

    def _on_close_frame(self, payload: bytes) -> None:
        code, reason = 1005, ""
        if len(payload) == 1:
            self.fail(1002, "close frame with a one-byte payload")
            return
        if payload:
            code = (payload[0] << 8) | payload[1]
            if code not in _VALID_CODES and not 3000 <= code <= 4999:
                self.fail(1002, f"invalid close code {code}")
                return
            try:
                reason = payload[2:].decode()
            except UnicodeDecodeError:
                self.fail(1007, "close reason is not valid UTF-8")
                return
        self.close_code, self.close_reason = code, reason
        self._input_done = True
        if self.state == OPEN:  # the peer started it: answer with its code
            self._write_frame(CLOSE, payload[:2])
        self.state = CLOSING
        self._wake()
        # RFC 6455 7.1.1: the server closes TCP first; a client gives it a moment to.
        if self.client:
            self._set_timer(CLOSE_TIMEOUT, self._abort)
        else:
            self._transport.close()  # type: ignore[union-attr]

    def _write_frame(self, opcode: int, payload: bytes, now: bool = True) -> None:
        """Write a frame after any still held back; ``now=False`` holds it back too, until
        the end of this event-loop turn, so that the frames of one turn leave in one syscall."""
        if self.client:
            mask = os.urandom(4)
            data = _header(opcode, len(payload), True) + mask + _mask(payload, mask)
        else:
            data = _header(opcode, len(payload), False) + payload
        out = self._out
        out.append(data)
        if now:
            self._flush()
        elif len(out) == 1:
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        out = self._out
        if not out:
            return
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()

    # --- closing ----------------------------------------------------------------------------

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): say why in a close frame, drop TCP."""
        if self.state == CLOSED:
            return
        log.info("failing WebSocket connection: %d %s", code, reason)
        self._input_done = True
        if self.state == OPEN:
            self._write_frame(CLOSE, struct.pack("!H", code) + reason.encode()[:120])
        self.state = CLOSING
        self.close_code, self.close_reason = code, reason
        self._wake()
        self._flush()
        self._transport.close()  # type: ignore[union-attr]

    def start_close(self, code: int = 1000, reason: str = "") -> None:
        """Begin the close handshake without waiting for it."""
        if self.state == OPEN:
            self.state = CLOSING
            self.close_code, self.close_reason = code, reason
            self._write_frame(CLOSE, struct.pack("!H", code) + reason.encode()[:120])
            self._wake()
            self._set_timer(CLOSE_TIMEOUT, self._abort)
        elif self.state == 0 and self._transport is not None:
            self._abort()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close (handshake and all) and wait until the TCP connection is gone."""
        self.start_close(code, reason)
        await asyncio.shield(self._closed)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    def _set_timer(self, delay: float, callback: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(delay, callback)

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- the API ----------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        return self.state == OPEN

    def send_nowait(self, message: Message) -> None:
        """Write one message now (buffered by the transport if the peer is slow)."""
        if self.state != OPEN:
            raise ConnectionClosed(self.close_code, self.close_reason)
        if isinstance(message, str):
            self._write_frame(TEXT, message.encode(), False)
        else:
            self._write_frame(BINARY, message, False)

    async def send(self, message: Message) -> None:
        """Write one message; waits while the transport's buffer is over its high-water mark."""
        self.send_nowait(message)
        if self.paused:
            await self.drain()

    async def drain(self) -> None:
        if self.paused and self.state != CLOSED:
            future = self._loop.create_future()
            self._drain.append(future)
            await future

    async def ping(self, data: bytes = b"") -> None:
        if self.state != OPEN:
            raise ConnectionClosed(self.close_code, self.close_reason)
        self._write_frame(PING, data)

    async def recv(self) -> Message:
        """The next message; :class:`ConnectionClosed` once there are no more."""
        while not self._queue:
            if self.state != OPEN:
                raise ConnectionClosed(self.close_code, self.close_reason)
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = self._queue.popleft()
        if self._reading_paused and len(self._queue) < self._queue_high // 2:
            self._reading_paused = False
            if self.state != CLOSED:
                self._transport.resume_reading()  # type: ignore[union-attr]
        return message

    def admit(self) -> None:
        """The server's handler trusts this connection now (BTP: its peer authenticated): it
        leaves the pending count and gets the server's full message size and queue."""
        if self.admitted:
            return
        self.admitted = True
        if self._server is not None:
            self._server.unpend(self)
            self.max_size = self._server.max_size
        self._queue_high = QUEUE_HIGH

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    def set_handler(self, callback: Callable[[Message], None] | None) -> None:
        """Hand every message to ``callback`` as it is read (messages already queued first),
        instead of queueing them for :meth:`recv`: no task wakes per message."""
        self._on_message = callback
        while callback is not None and self._queue and self._on_message is callback:
            callback(self._queue.popleft())
        if self._reading_paused and self.state != CLOSED:
            self._reading_paused = False
            self._transport.resume_reading()  # type: ignore[union-attr]

    async def __aenter__(self) -> WebSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Refused(HandshakeError):
    """The refusal was already written (426)."""


class Server:
    """Listens for WebSocket clients and runs ``handler(ws)`` for each; closes the connection
    when the handler returns."""

    def __init__(
        self,
        handler: Handler,
        ping_interval: float | None,
        max_size: int,
        *,
        max_connections: int | None = None,
        max_pending: int | None = None,
        pending_max_size: int | None = None,
        max_pending_per_address: int | None = None,
    ) -> None:
        self.handler = handler
        self.ping_interval = ping_interval
        self.max_size = max_size
        self.max_connections = max_connections
        self.max_pending = max_pending
        self.pending_max_size = min(pending_max_size or max_size, max_size)
        self.pending = 0
        """Connections open and not yet admitted (only counted when ``max_pending`` is set)."""
        self.max_pending_per_address = max_pending_per_address
        self.pending_by_address: dict[str, int] = {}
        self.connections: set[WebSocket] = set()
        self._server: asyncio.Server | None = None

    def take(self, ws: WebSocket) -> bool:
        """Count a new connection in, or ``False`` when it is over a cap."""
        if self.max_connections is not None and len(self.connections) >= self.max_connections:
            return False
        if self.max_pending is not None:
            if self.pending >= self.max_pending:
                return False
            address = ws.remote_host()
            held = self.pending_by_address.get(address, 0)
            if self.max_pending_per_address is not None and held >= self.max_pending_per_address:
                return False
            self.pending += 1
            self.pending_by_address[address] = held + 1
            ws._pending_address = address
            ws.admitted = False
            ws.max_size = self.pending_max_size
            ws._queue_high = PENDING_QUEUE_HIGH
        self.connections.add(ws)
        return True

    def release(self, ws: WebSocket) -> None:
        if ws in self.connections:
            self.connections.discard(ws)
            if not ws.admitted:
                ws.admitted = True
                self.unpend(ws)

    def unpend(self, ws: WebSocket) -> None:
        """``ws`` leaves the pending count (admitted, or gone)."""
        self.pending -= 1
        address = ws._pending_address
        left = self.pending_by_address.get(address, 0) - 1
        if left > 0:
            self.pending_by_address[address] = left
        else:
            self.pending_by_address.pop(address, None)

    @property
    def sockets(self) -> tuple[Any, ...]:
        return tuple(self._server.sockets) if self._server is not None else ()

    async def run_handler(self, ws: WebSocket) -> None:
        try:
            await self.handler(ws)
        except Exception:
            log.exception("WebSocket handler failed")
        finally:
            await ws.close()

    def close(self) -> None:
        """Stop listening and start closing every connection with 1001 (going away)."""
        if self._server is not None:
            self._server.close()
        for ws in list(self.connections):
            ws.start_close(1001, "server shutting down")

    async def wait_closed(self) -> None:
        waits = [ws.wait_closed() for ws in list(self.connections)]
        if waits:
            await asyncio.gather(*waits)
        if self._server is not None:
            await self._server.wait_closed()


async def serve(
    handler: Handler,
    host: str,
    port: int,
    *,
    ping_interval: float | None = 20.0,
    max_size: int = MAX_SIZE,
    ssl: ssl_module.SSLContext | None = None,
    max_connections: int | None = None,
    max_pending: int | None = None,
    pending_max_size: int | None = None,
    max_pending_per_address: int | None = None,
) -> Server:
    """Listen on ``host:port`` (0: any free port, see ``server.sockets``). With
    ``max_pending``, a connection is pending until the handler calls :meth:`WebSocket.admit`."""
    _use_speedups()
    server = Server(handler, ping_interval, max_size, max_connections=max_connections,
                    max_pending=max_pending, pending_max_size=pending_max_size,
                    max_pending_per_address=max_pending_per_address)  # fmt: skip
    loop = asyncio.get_running_loop()
    server._server = await loop.create_server(
        lambda: WebSocket(
            client=False, ping_interval=ping_interval, max_size=max_size, server=server
        ),
        host,
        port,
        ssl=ssl,
    )
    return server


async def connect(
    url: str,
    *,
    ping_interval: float | None = 20.0,
    max_size: int = MAX_SIZE,
    open_timeout: float = HANDSHAKE_TIMEOUT,
    ssl: ssl_module.SSLContext | None = None,
) -> WebSocket:
    """Open a client connection to ``ws://host[:port]/path`` or ``wss://...`` (TLS through the
    stdlib's default context unless ``ssl`` is given). Userinfo in the URL is ignored."""
    _use_speedups()
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise HandshakeError(f"not a WebSocket URL (ws:// or wss://): {url!r}")
    host = parts.hostname
    if not host:
        raise HandshakeError(f"no host in {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "wss" else 80)
    except ValueError as exc:
        raise HandshakeError(f"bad port in {url!r}") from exc
    secure = parts.scheme == "wss"
    if secure and ssl is None:
        ssl = ssl_module.create_default_context()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = 443 if secure else 80
    host_header = f"[{host}]" if ":" in host else host
    if port != default_port:
        host_header += f":{port}"
    loop = asyncio.get_running_loop()
    ws = WebSocket(client=True, ping_interval=ping_interval, max_size=max_size)
    ws._key = base64.b64encode(os.urandom(16)).decode()
    ws.path = path

    async def opening() -> None:
        await loop.create_connection(lambda: ws, host, port, ssl=ssl if secure else None,
                                     server_hostname=host if secure else None)  # fmt: skip
        ws._transport.write(  # type: ignore[union-attr]
            (f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {ws._key}\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n").encode()
        )  # fmt: skip
        await ws._opened

    try:
        await asyncio.wait_for(opening(), open_timeout)
    except TimeoutError:
        ws._abort()
        raise HandshakeError(
            f"no WebSocket handshake with {host}:{port} in {open_timeout}s"
        ) from None
    except BaseException:
        ws._abort()
        raise
    return ws
