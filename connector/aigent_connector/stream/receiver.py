"""A STREAM receiver (RFC 29) that behaves like ilp-protocol-stream's server, plus a
request/response seam for paid agents.

It is stateless where it matters: :meth:`StreamReceiver.credentials` seals the connection tag in
the address itself (see :mod:`.crypto`), so any process holding the server secret can receive on
credentials any other one handed out. What it keeps in memory per connection (stream ids, data
offsets, totals) is only for flow control and is dropped after ``idle_timeout``.

Wiring it to a connector is one line::

    connector.set_packet_handler(lambda account, prepare: receiver.handle(prepare))
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from aigent_connector.errors import ConnectorError
from aigent_connector.packets import (
    CODE,
    FULFILL,
    MAX_DATA,
    PREPARE,
    REJECT,
    Fulfill,
    Prepare,
    Reject,
    valid_address,
)
from aigent_connector.stream import crypto
from aigent_connector.stream.frames import (
    MAX_UINT64,
    ConnectionAssetDetails,
    ConnectionClose,
    ConnectionMaxData,
    ConnectionMaxStreamId,
    ConnectionNewAddress,
    ErrorCode,
    Frame,
    InvalidStreamPacket,
    StreamClose,
    StreamData,
    StreamMaxData,
    StreamMaxMoney,
    StreamMoney,
)
from aigent_connector.stream.packet import StreamPacket

log = logging.getLogger("aigent.connector.stream")

MAX_TAG = 200
"""Longest connection tag: it travels sealed in the ILP address, which holds 1023 characters."""


class Credentials(NamedTuple):
    """What a sender needs to pay this receiver (handed out over SPSP, say)."""

    destination_account: str
    shared_secret: bytes

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"Credentials(destination_account={self.destination_account!r}, shared_secret=...)"


@dataclass(frozen=True)
class Incoming:
    """A request that arrived with a payment: the StreamData of one Prepare, and its amount."""

    connection_tag: str | None
    amount: int
    data: bytes
    stream_id: int
    context: object = None
    """What the caller of :meth:`StreamReceiver.handle` passed along with the Prepare (the
    account it came from, say), handed back untouched."""


@dataclass(frozen=True)
class RejectWith:
    """Returned by ``on_request`` to refuse a request: the Prepare is rejected with this code."""

    code: str
    message: str = ""

    def __post_init__(self) -> None:
        if not CODE.match(self.code):
            raise ValueError(f"{self.code!r} is not an ILP error code such as F99 or T00")


MoneyHook = Callable[[str | None, int], Awaitable[None] | None]
RequestHook = Callable[[Incoming], Awaitable[bytes | RejectWith] | bytes | RejectWith]


@dataclass
class _Stream:
    total_received: int = 0
    read_offset: int = 0
    """End of the highest data received: we hand data to the application as it arrives."""
    write_offset: int = 0


@dataclass
class _Connection:
    tag: str | None
    max_stream_id: int
    last_active: float
    streams: dict[int, _Stream] = field(default_factory=dict)
    closed_streams: set[int] = field(default_factory=set)
    total_received: int = 0
    remote_address: str | None = None
    remote_asset: tuple[str, int] | None = None


class _Refuse(ConnectorError):
    """Internal: a request to refuse with F99 (and maybe close the connection)."""

    def __init__(self, message: str, close: ConnectionClose | None = None) -> None:
        super().__init__(message)
        self.close = close


class StreamReceiver:
    """Receives STREAM payments at addresses below ``server_address``.

    Answers as ilp-protocol-stream does: F02 for an address it did not hand out, F06 for data it
    cannot decrypt, F99 carrying an encrypted reply for probes (wrong condition), amounts below
    the sender's minimum and protocol errors, and a Fulfill with an encrypted reply otherwise
    (T00 if ``on_money`` fails, so the sender retries). ``on_money(tag, amount)`` hears every
    fulfilled amount, as the last step before the Fulfill: after every check that could still
    turn it into a Reject (the reply's size included). ``on_request(Incoming)`` hears every
    Prepare that carries StreamData, before it is fulfilled: the bytes it returns go back in
    the reply, a :class:`RejectWith` rejects the Prepare instead. Either hook may be a plain
    function or a coroutine.
    """

    def __init__(
        self,
        server_address: str,
        server_secret: bytes,
        *,
        asset_code: str = "XRP",
        asset_scale: int = 6,
        on_money: MoneyHook | None = None,
        on_request: RequestHook | None = None,
        max_streams: int = 10,
        window: int = 65534,
        idle_timeout: float = 60.0,
        max_connections: int = 10_000,
    ) -> None:
        if len(server_secret) != 32:
            raise ValueError(f"the server secret must be 32 bytes, not {len(server_secret)}")
        self.server_address = server_address
        self._secret = server_secret
        self.asset_code, self.asset_scale = asset_code, asset_scale
        self.on_money, self.on_request = on_money, on_request
        self.max_streams, self.window = max_streams, window
        self.idle_timeout, self.max_connections = idle_timeout, max_connections
        self._connections: dict[str, _Connection] = {}
        self._last_sweep = time.monotonic()

    @property
    def server_address(self) -> str:
        return self._address

    @server_address.setter
    def server_address(self, address: str) -> None:
        # Settable: a node often learns its address from its parent (IL-DCP) after start.
        if not valid_address(address):
            raise ValueError(f"{address!r} is not a valid ILP address")
        self._address = address

    @property
    def connection_count(self) -> int:
        """Connections with state in memory (closed and idle ones are forgotten)."""
        return len(self._connections)

    def __repr__(self) -> str:  # never show the secret
        return f"StreamReceiver({self._address!r}, connections={len(self._connections)})"

    # --- credentials -----------------------------------------------------------------------------

    def credentials(self, connection_tag: str | None = None) -> Credentials:
        """Fresh ``(destination_account, shared_secret)``; the tag comes back with each payment.
        Nothing is stored: the address itself carries the sealed tag."""
        tag = (connection_tag or "").encode("ascii", errors="replace")
        if tag.decode() != (connection_tag or "") or len(tag) > MAX_TAG:
            raise ValueError(f"a connection tag is ASCII, at most {MAX_TAG} characters")
        token = crypto.make_token(self._secret, tag)
        return Credentials(
            f"{self._address}.{crypto.base64url(token)}",
            crypto.shared_secret_from_token(self._secret, token),
        )

    generate_address_and_secret = credentials  # the name ilp-protocol-stream uses

    # --- receiving -------------------------------------------------------------------------------

    async def handle(self, prepare: Prepare, context: object = None) -> Fulfill | Reject:
        """Answer a Prepare addressed to this receiver. Never raises. ``context`` reaches the
        request hook in :attr:`Incoming.context`."""
        prefix = self._address + "."
        if not prepare.destination.startswith(prefix):
            return self._plain_reject("F02", f"{prepare.destination} is not a STREAM address here")
        connection_id = prepare.destination[len(prefix) :].split(".", 1)[0]
        try:
            token = crypto.from_base64url(connection_id)
            tag = crypto.open_token(self._secret, token)
        except ValueError:
            return self._plain_reject("F02", "no such STREAM connection")
        shared_secret = crypto.shared_secret_from_token(self._secret, token)
        try:
            request = StreamPacket.decrypt(shared_secret, prepare.data)
        except (crypto.DecryptionError, InvalidStreamPacket) as exc:
            return self._plain_reject("F06", f"unreadable STREAM data: {exc}")
        if request.ilp_packet_type != PREPARE:
            return self._plain_reject("F06", "the STREAM packet says it is not a Prepare")
        try:
            return await self._exchange(
                connection_id, tag, shared_secret, prepare, request, context
            )
        except Exception:
            log.exception("STREAM receiver failed on a packet")
            return self._plain_reject("T00", "internal error")

    async def _exchange(
        self,
        connection_id: str,
        raw_tag: bytes,
        secret: bytes,
        prepare: Prepare,
        request: StreamPacket,
        context: object,
    ) -> Fulfill | Reject:
        conn, new = self._connection(connection_id, raw_tag)
        reply: list[Frame] = [ConnectionMaxData(self._connection_window(conn))]
        frames = request.frames
        if new or any(isinstance(f, ConnectionNewAddress) for f in frames):
            reply += [ConnectionMaxStreamId(conn.max_stream_id),
                      ConnectionAssetDetails(self.asset_code, self.asset_scale)]  # fmt: skip
        wrapped_up = False

        def wrap_up() -> None:
            # The sender's side of these streams (or the whole connection) is done, whatever
            # happens to this packet; applied last so money on a closing stream still counts.
            nonlocal wrapped_up
            if not wrapped_up:
                wrapped_up = True
                for frame in frames:
                    if isinstance(frame, StreamClose):
                        self._close_stream(conn, frame.stream_id, reply)
                    elif isinstance(frame, ConnectionClose):
                        self._connections.pop(connection_id, None)

        def refuse(code: str = "F99", message: str = "") -> Reject:
            wrap_up()
            return self._reject(code, message, secret, request.sequence, prepare.amount, reply)

        try:
            data = self._read_frames(conn, frames, reply)
        except _Refuse as why:
            if why.close is not None:
                reply.append(why.close)
                self._connections.pop(connection_id, None)
            return refuse("F99", str(why))
        if prepare.amount < request.prepare_amount:
            return refuse()  # below the sender's minimum: the reply says what arrived
        if crypto.condition(secret, prepare.data) != prepare.execution_condition:
            return refuse()  # a probe (exchange-rate test packet): unfulfillable by design
        answer = b""
        if data is not None:
            outcome = await self._ask(Incoming(conn.tag, prepare.amount, data[1], data[0], context))
            if isinstance(outcome, RejectWith):
                return refuse(outcome.code, outcome.message)
            answer = outcome
        # Counted for the totals this Fulfill states, and taken back if it does not go out:
        # on_money hears of the amount only once nothing can turn the Fulfill into a Reject.
        uncredit = self._credit(conn, prepare.amount, frames)
        answering = conn.streams.get(data[0]) if data is not None and answer else None
        answer_frame: StreamData | None = None
        if answering is not None and data is not None:
            answer_frame = StreamData(data[0], answering.write_offset, answer)
            reply.append(answer_frame)
        wrap_up()
        totals: list[Frame] = []
        for stream_id, stream in conn.streams.items():
            totals += [StreamMaxMoney(stream_id, MAX_UINT64, stream.total_received),
                       StreamMaxData(stream_id, stream.read_offset + self.window)]  # fmt: skip
        sealed = StreamPacket(request.sequence, FULFILL, prepare.amount, (*reply, *totals)).encrypt(
            secret
        )
        if len(sealed) > MAX_DATA:
            uncredit()
            room = MAX_DATA - (len(sealed) - len(answer))
            log.error("reply of %d bytes does not fit (at most %d here)", len(answer), room)
            if answer_frame is not None:
                reply.remove(answer_frame)
            return refuse("F99", f"reply too large: {len(answer)} bytes, at most {room} fit")
        if prepare.amount and self.on_money is not None:
            try:
                result = self.on_money(conn.tag, prepare.amount)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                uncredit()
                log.exception("on_money failed; the payment is declined")
                return refuse("T00", "could not record the payment")
        if answering is not None:
            answering.write_offset += len(answer)
        return Fulfill(crypto.fulfillment(secret, prepare.data), sealed)

    def _read_frames(
        self, conn: _Connection, frames: tuple[Frame, ...], reply: list[Frame]
    ) -> tuple[int, bytes] | None:
        """Apply the control frames of a request; returns (stream id, its data) if it has data."""
        chunks: dict[int, list[bytes]] = {}
        for frame in frames:
            if isinstance(frame, StreamMoney | StreamData | StreamMaxMoney | StreamMaxData):
                self._open_stream(conn, frame.stream_id, frame, reply)
            if isinstance(frame, ConnectionNewAddress):
                conn.remote_address = frame.source_account
            elif isinstance(frame, ConnectionAssetDetails):
                conn.remote_asset = (frame.asset_code, frame.asset_scale)
            elif isinstance(frame, StreamData) and frame.stream_id not in conn.closed_streams:
                stream = conn.streams[frame.stream_id]
                end = frame.offset + len(frame.data)
                if end > stream.read_offset + self.window:
                    raise _Refuse("flow control", ConnectionClose(
                        ErrorCode.FLOW_CONTROL_ERROR,
                        f"stream {frame.stream_id} accepts data up to offset "
                        f"{stream.read_offset + self.window}, got {end}"))  # fmt: skip
                if frame.data:
                    chunks.setdefault(frame.stream_id, []).append(frame.data)
        if not chunks:
            return None
        first = next(iter(chunks))
        for stream_id, parts in chunks.items():
            conn.streams[stream_id].read_offset += sum(len(p) for p in parts)
        return first, b"".join(b"".join(parts) for parts in chunks.values())

    def _open_stream(
        self, conn: _Connection, stream_id: int, frame: Frame, reply: list[Frame]
    ) -> None:
        if stream_id in conn.streams:
            return
        if stream_id in conn.closed_streams:
            if isinstance(frame, StreamMoney | StreamData):
                reply.append(StreamClose(stream_id, ErrorCode.STREAM_STATE_ERROR,
                                         "Stream is already closed"))  # fmt: skip
                raise _Refuse("stream already closed")
            return
        if stream_id % 2 == 0:
            raise _Refuse("even stream id", ConnectionClose(
                ErrorCode.PROTOCOL_VIOLATION,
                f"Invalid Stream ID: {stream_id}. Client-initiated streams must have "
                "odd-numbered IDs"))  # fmt: skip
        if stream_id > conn.max_stream_id:
            raise _Refuse("too many streams", ConnectionClose(
                ErrorCode.STREAM_ID_ERROR,
                f"Maximum number of open streams exceeded. Got stream: {stream_id}, "
                f"current max stream ID: {conn.max_stream_id}"))  # fmt: skip
        conn.streams[stream_id] = _Stream()

    def _close_stream(self, conn: _Connection, stream_id: int, reply: list[Frame]) -> None:
        if conn.streams.pop(stream_id, None) is None:
            return
        conn.closed_streams.add(stream_id)
        conn.max_stream_id += 2  # a closed stream makes room for a new one
        reply.append(ConnectionMaxStreamId(conn.max_stream_id))

    def _credit(
        self, conn: _Connection, amount: int, frames: tuple[Frame, ...]
    ) -> Callable[[], None]:
        """Count ``amount`` as received, split over the streams by their shares; returns what
        takes exactly that back (other packets may be counted in between)."""
        before = conn.total_received
        conn.total_received = min(before + amount, MAX_UINT64)
        added = conn.total_received - before
        money = [f for f in frames if isinstance(f, StreamMoney)]
        shares = sum(f.shares for f in money)
        parts: list[tuple[_Stream, int]] = []
        for frame in money if shares else ():
            stream = conn.streams.get(frame.stream_id)
            if stream is not None:
                part = amount * frame.shares // shares
                stream.total_received += part
                parts.append((stream, part))

        def undo() -> None:
            conn.total_received -= added
            for stream, part in parts:
                stream.total_received -= part

        return undo

    async def _ask(self, incoming: Incoming) -> bytes | RejectWith:
        if self.on_request is None:
            return b""  # no request handler: data is accepted and ignored, as a plain receiver
        try:
            outcome = self.on_request(incoming)
            if inspect.isawaitable(outcome):
                outcome = await outcome
        except Exception:
            log.exception("on_request failed")
            return RejectWith("F99", "the request handler failed")
        if isinstance(outcome, RejectWith):
            return outcome
        if not isinstance(outcome, bytes | bytearray):
            log.error("on_request returned %s, expected bytes or RejectWith", type(outcome))
            return RejectWith("F99", "the request handler returned no bytes")
        return bytes(outcome)

    # --- bookkeeping -----------------------------------------------------------------------------

    def _connection(self, connection_id: str, raw_tag: bytes) -> tuple[_Connection, bool]:
        now = time.monotonic()
        self._sweep(now)
        conn = self._connections.get(connection_id)
        if conn is not None:
            conn.last_active = now
            return conn, False
        tag = raw_tag.decode("ascii", errors="replace") if raw_tag else None
        conn = _Connection(tag, 2 * self.max_streams, now)
        self._connections[connection_id] = conn
        return conn, True

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < 1 and len(self._connections) < self.max_connections:
            return
        self._last_sweep = now
        idle = [k for k, c in self._connections.items() if now - c.last_active > self.idle_timeout]
        for key in idle:
            del self._connections[key]
        while len(self._connections) >= self.max_connections:  # oldest first (insertion order)
            del self._connections[next(iter(self._connections))]

    def _connection_window(self, conn: _Connection) -> int:
        return sum(s.read_offset for s in conn.streams.values()) + self.window

    # --- answers ---------------------------------------------------------------------------------

    def _plain_reject(self, code: str, message: str) -> Reject:
        return Reject(code, self._address, message)

    def _reject(
        self,
        code: str,
        message: str,
        secret: bytes,
        sequence: int,
        amount: int,
        frames: list[Frame],
    ) -> Reject:
        """A Reject carrying the encrypted STREAM reply: what arrived (``amount``) and why."""
        sealed = StreamPacket(sequence, REJECT, amount, tuple(frames)).encrypt(secret)
        return Reject(code, self._address, message, sealed)
