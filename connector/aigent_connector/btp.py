"""BTP 2.0 over WebSocket (RFC 23): authenticated links that carry ILP packets both ways.

A link is symmetric once open: either side may send a Prepare (in a Message with ``ilp``
protocol data) and gets the Fulfill or Reject in the Response with the same request id. The
server accepts a client only after its first frame, an ``auth`` Message with ``auth_username``
and ``auth_token``; the token is compared in constant time, and a client that fails is sent an
Error and dropped. Clients reconnect with exponential backoff; WebSocket pings keep links alive.

What a stranger can cost is capped: at most ``MAX_UNAUTHENTICATED`` connections that have not
authenticated yet (handshaking or before their auth frame; more are answered 503 unread), each
allowed messages of ``AUTH_MAX_SIZE`` until it has, and ``MAX_CONNECTIONS`` in all. An
authenticated peer runs at most ``MAX_SIDE_IN_FLIGHT`` side-protocol handlers at once; more are
answered T00 at once.

The WebSocket underneath is :mod:`aigent_connector.ws`, a lean RFC 6455 implementation for both
``ws://`` and ``wss://``: a frame goes from the socket to :meth:`Link._on_message` and from
:meth:`Link.request` to the socket without a lock, a queue or a task in between.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aigent_connector import btp_packets as btp
from aigent_connector import ws as websocket
from aigent_connector.errors import ConnectorError
from aigent_connector.packets import InvalidPacket, Packet, Prepare, Reject, decode, encode

log = logging.getLogger("aigent.connector.btp")

PrepareHandler = Callable[["Link", int, bytes], None]
"""A Prepare arrived: (link, request id, packet bytes); answer with ``link.answer``."""
Answer = Callable[[bytes | Reject], None]
"""The answer to a Prepare sent: the peer's packet bytes, or a Reject made here."""
SideHandler = Callable[[str, btp.ProtocolData], Awaitable[bytes]]
"""Answers a Message whose primary protocol is not ``ilp``: (account, primary entry) -> data."""
AUTH_TIMEOUT = 10.0
PING_INTERVAL = 20.0
RESPONSE_TIMEOUT = 35.0
SWEEP_INTERVAL = 0.05  # seconds between looks for requests past their deadline
MAX_CONNECTIONS = 1024  # sockets a server holds open, authenticated or not
MAX_UNAUTHENTICATED = 64  # of those, not yet authenticated (each up to ~20 s, ~200 KiB)
MAX_UNAUTHENTICATED_PER_ADDRESS = 8  # of those, from any one address (a peer dials once)
AUTH_MAX_SIZE = 64 * 1024  # largest message before auth: an auth frame, or the biggest Prepare
MAX_SIDE_IN_FLIGHT = 16  # side-protocol Messages a link answers at once


def _now_generalized() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y%m%d%H%M%S") + f".{now.microsecond // 1000:03d}Z"


class BtpError(ConnectorError):
    """The peer answered a side-protocol Message with a BTP Error (RFC 23)."""

    def __init__(self, code: str, name: str, data: bytes = b"") -> None:
        super().__init__(f"{code} {name}: {data.decode(errors='replace')}")
        self.code = code
        self.name = name
        self.data = data


class SideProtocolRefused(ConnectorError):
    """Raised by a side-protocol handler to answer F00 NotAcceptedError with its message."""


class Link:
    """One open, authenticated BTP connection to a peer account.

    Packets cross it as bytes and callbacks, with no task, future or lock per packet: a Prepare
    that arrives goes to ``on_prepare(link, request_id, packet)``, which answers (now or later)
    with :meth:`answer`; a Prepare sent with :meth:`request` has its answer passed to a
    callback. :meth:`send_prepare` and :meth:`send_side` are the awaitable forms."""

    def __init__(self, account: str, ws: websocket.WebSocket, on_prepare: PrepareHandler) -> None:
        self.account = account
        self.ws = ws
        self.on_prepare = on_prepare
        # Prepares sent and not answered: request id -> (who hears the answer, the loop time
        # to stop waiting). A tuple: cheaper to make than an object, on every packet's path.
        self._requests: dict[int, tuple[Answer, float]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._side: dict[int, asyncio.Future[btp.Frame]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        # A counter from a random start: unique among the link's pending requests, and
        # cheaper than os.urandom per packet.
        self._next_id = int.from_bytes(os.urandom(4), "big")
        self.side_handler: SideHandler | None = None
        """Set by the connector; Messages whose primary protocol is not ``ilp`` go here."""

    @property
    def busy(self) -> bool:
        """The peer reads slower than we write: its socket buffer is over the high-water mark."""
        return self.ws.paused

    # --- ILP packets -----------------------------------------------------------------------------

    def request(self, packet: bytes, wait: float, answer: Answer) -> None:
        """Send a Prepare (its bytes); ``answer`` gets the peer's answer as bytes, or a Reject
        made here: R00 when ``wait`` seconds pass first, T01 when the link closes first."""
        if self.closed.is_set():
            answer(Reject("T01", "", f"link to {self.account} is closed"))
            return
        request_id = self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        try:
            self.ws.send_nowait(btp.ilp_frame(btp.MESSAGE, request_id, packet))
        except websocket.ConnectionClosed as exc:
            answer(Reject("T01", "", f"link to {self.account} is closed: {exc}"))
            return
        self._requests[request_id] = (answer, self._loop.time() + wait)
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(SWEEP_INTERVAL, self._sweep)

    def _sweep(self) -> None:
        """Answer R00 for every request past its deadline. One timer for the link, not one
        per packet (which would cost more than the rest of a packet's bookkeeping): a request
        expires up to SWEEP_INTERVAL late, well inside the expiry margin of every hop."""
        self._sweeper = None
        now = self._loop.time()
        expired = [key for key, (_, deadline) in self._requests.items() if deadline <= now]
        for key in expired:
            self._requests.pop(key)[0](Reject("R00", "", f"{self.account} did not answer in time"))
        if self._requests and not self.closed.is_set():
            self._sweeper = self._loop.call_later(SWEEP_INTERVAL, self._sweep)

    def answer(self, request_id: int, packet: bytes) -> None:
        """Answer the Prepare that came with ``request_id`` with ``packet`` (its bytes)."""
        try:
            self.ws.send_nowait(btp.ilp_frame(btp.RESPONSE, request_id, packet))
        except websocket.ConnectionClosed as exc:
            log.info("could not answer %s: %s", self.account, exc)

    async def send_prepare(self, prepare: Prepare, wait: float) -> Packet:
        """Send a Prepare and wait (at most ``wait`` seconds) for the peer's answer; a Reject
        made here (R00, T01) when it does not come."""
        future: asyncio.Future[bytes | Reject] = self._loop.create_future()

        def answered(answer: bytes | Reject) -> None:
            if not future.done():
                future.set_result(answer)

        self.request(encode(prepare), wait, answered)
        answer = await future
        return answer if isinstance(answer, Reject) else decode(answer)

    # --- side protocols --------------------------------------------------------------------------

    async def send_side(
        self,
        protocol: str,
        data: bytes,
        content_type: int = btp.OCTET_STREAM,
        wait: float = RESPONSE_TIMEOUT,
    ) -> bytes:
        """Send a Message whose primary protocol data is ``protocol`` (a settlement claim,
        say) and return the data the peer answered under that name (``b""`` if none).
        :class:`BtpError` when the peer answers with an Error; :class:`TimeoutError` or
        :class:`ConnectionError` when it does not answer."""
        if protocol == "ilp":
            raise ValueError("ILP packets go through send_prepare, not send_side")
        if self.closed.is_set():
            raise ConnectionError(f"link to {self.account} is closed")
        request_id = self._next_id = (self._next_id + 1) & 0xFFFFFFFF  # as request's
        future: asyncio.Future[btp.Frame] = self._loop.create_future()
        self._side[request_id] = future
        frame = btp.Message(request_id, [btp.ProtocolData(protocol, content_type, data)])
        try:
            await self.ws.send(btp.encode(frame))
            answer = await asyncio.wait_for(future, wait)
        finally:
            self._side.pop(request_id, None)
        if isinstance(answer, btp.Error):
            raise BtpError(answer.code, answer.name, answer.data)
        entry = btp.find(answer.protocol_data, protocol)
        return entry.data if entry is not None else b""

    async def _answer_side(self, frame: btp.Message) -> None:
        # RFC 23: the first entry is the primary protocol, the one that says what to do.
        reply: btp.Frame
        if not frame.protocol_data:
            reply = btp.Response(frame.request_id, [])
        else:
            primary = frame.protocol_data[0]
            try:
                if self.side_handler is None:
                    raise LookupError(primary.name)
                data = await self.side_handler(self.account, primary)
                reply = btp.Response(
                    frame.request_id, [btp.ProtocolData(primary.name, primary.content_type, data)]
                )
            except LookupError:
                reply = self._side_error(frame, "F00", "NotAcceptedError",
                                         f"unsupported protocol {primary.name}")  # fmt: skip
            except SideProtocolRefused as exc:
                reply = self._side_error(frame, "F00", "NotAcceptedError", str(exc))
            except Exception:
                log.exception("side protocol %s from %s failed", primary.name, self.account)
                reply = self._side_error(frame, "T00", "UnreachableError", "internal error")
        try:
            await self.ws.send(btp.encode(reply))
        except Exception as exc:
            log.info("could not answer %s: %s", self.account, exc)

    @staticmethod
    def _side_error(frame: btp.Message, code: str, name: str, message: str) -> btp.Error:
        return btp.Error(frame.request_id, code, name, _now_generalized(), message.encode())

    # --- reading ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Handle frames until the connection closes."""
        try:
            self.ws.set_handler(self._on_message)
            await self.ws.wait_closed()
            log.info("link to %s closed: %d %s", self.account, self.ws.close_code,
                     self.ws.close_reason)  # fmt: skip
        finally:
            self.ws.set_handler(None)
            self.closed.set()
            if self._sweeper is not None:
                self._sweeper.cancel()
            requests, self._requests = self._requests, {}
            for request in requests.values():
                request[0](Reject("T01", "", f"link to {self.account} closed"))
            for future in self._side.values():
                if not future.done():
                    future.set_exception(ConnectionError(f"link to {self.account} closed"))

    def _on_message(self, raw: bytes | str) -> None:
        # Called from the socket's data_received: no await, and a task only for side protocols.
        if isinstance(raw, str) or len(raw) < 5:
            return  # BTP is binary; text frames are not for us
        kind = raw[0]
        request_id = int.from_bytes(raw[1:5], "big")
        if kind == btp.RESPONSE or kind == btp.ERROR:
            request = self._requests.pop(request_id, None)
            if request is not None:
                request[0](self._ilp_answer(kind, raw))
            elif request_id in self._side:
                self._side_answer(request_id, raw)
            return  # an unexpected response is ignored
        if kind != btp.MESSAGE:
            return
        try:
            packet = btp.ilp_entry(raw)
        except InvalidPacket as exc:
            log.warning("unreadable BTP frame from %s: %s", self.account, exc)
            return  # never answer what we cannot read: that is how loops start
        if packet is None:
            try:
                frame = btp.decode(raw)
            except InvalidPacket as exc:
                log.warning("unreadable BTP frame from %s: %s", self.account, exc)
                return
            assert isinstance(frame, btp.Message)  # its first byte said so
            if len(self._tasks) >= MAX_SIDE_IN_FLIGHT:  # no task for it: answered now
                busy = self._side_error(frame, "T00", "UnreachableError",
                                        f"{MAX_SIDE_IN_FLIGHT} side-protocol requests in "
                                        "flight; retry later")  # fmt: skip
                try:
                    self.ws.send_nowait(btp.encode(busy))
                except websocket.ConnectionClosed:
                    pass
                return
            task = asyncio.create_task(self._answer_side(frame))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        try:
            self.on_prepare(self, request_id, packet)
        except Exception:  # a bug there must not leave the peer waiting for the expiry
            log.exception("switching a packet from %s failed", self.account)
            self.answer(request_id, encode(Reject("T00", "", "internal error")))

    def _ilp_answer(self, kind: int, raw: bytes) -> bytes | Reject:
        if kind == btp.ERROR:
            try:
                error = btp.decode(raw)
                why = f"{error.code} {error.name}" if isinstance(error, btp.Error) else ""
            except InvalidPacket:
                why = "(unreadable)"
            return Reject("T01", "", f"peer {self.account} answered BTP error {why}")
        try:
            packet = btp.ilp_entry(raw)
        except InvalidPacket as exc:
            return Reject("T01", "", f"peer {self.account} answered an unreadable frame: {exc}")
        if packet is None:
            return Reject("T01", "", f"peer {self.account} answered without an ILP packet")
        return packet

    def _side_answer(self, request_id: int, raw: bytes) -> None:
        future = self._side[request_id]
        try:
            frame = btp.decode(raw)
        except InvalidPacket as exc:
            log.warning("unreadable BTP answer from %s: %s", self.account, exc)
            return
        if not future.done():
            future.set_result(frame)


def auth_frame(username: str, token: str) -> btp.Message:
    return btp.Message(
        int.from_bytes(os.urandom(4), "big"),
        [
            btp.ProtocolData("auth", btp.OCTET_STREAM, b""),
            btp.ProtocolData("auth_username", btp.TEXT, username.encode()),
            btp.ProtocolData("auth_token", btp.TEXT, token.encode()),
        ],
    )


class Server:
    """Accepts BTP clients whose (username, token) matches one of ``accounts``."""

    def __init__(
        self,
        accounts: dict[str, str],
        on_prepare: PrepareHandler,
        on_link: Callable[[Link], None],
        host: str = "127.0.0.1",
        port: int = 0,
        max_connections: int = MAX_CONNECTIONS,
        max_unauthenticated: int = MAX_UNAUTHENTICATED,
        max_unauthenticated_per_address: int = MAX_UNAUTHENTICATED_PER_ADDRESS,
    ) -> None:
        self.accounts = accounts
        self.on_prepare = on_prepare
        self.on_link = on_link
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.max_unauthenticated = max_unauthenticated
        self.max_unauthenticated_per_address = max_unauthenticated_per_address
        self._server: websocket.Server | None = None

    async def start(self) -> int:
        # No permessage-deflate (ws.py has none): BTP frames are small and binary, and
        # compressing each one costs more CPU than the bytes it saves.
        self._server = await websocket.serve(
            self._connection, self.host, self.port, ping_interval=PING_INTERVAL,
            max_connections=self.max_connections, max_pending=self.max_unauthenticated,
            pending_max_size=AUTH_MAX_SIZE,
            max_pending_per_address=self.max_unauthenticated_per_address,
        )  # fmt: skip
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _connection(self, ws: websocket.WebSocket) -> None:
        account = await self._authenticate(ws)
        if account is None:
            return
        link = Link(account, ws, self.on_prepare)
        self.on_link(link)
        await link.run()

    async def _authenticate(self, ws: websocket.WebSocket) -> str | None:
        try:
            raw = await asyncio.wait_for(ws.recv(), AUTH_TIMEOUT)
            frame = btp.decode(raw) if isinstance(raw, bytes) else None
        except (TimeoutError, InvalidPacket, Exception):
            frame = None
        request_id = frame.request_id if frame is not None else 0
        if (
            isinstance(frame, btp.Message)
            and frame.protocol_data[:1]
            and (frame.protocol_data[0].name == "auth")
        ):
            user = btp.find(frame.protocol_data, "auth_username")
            token = btp.find(frame.protocol_data, "auth_token")
            username = user.data.decode(errors="replace") if user else ""
            expected = self.accounts.get(username)
            given = token.data if token else b""
            # Constant time, and the same work for unknown users as for wrong tokens.
            ok = hmac.compare_digest(given, (expected or "\0" * 32).encode()) and expected
            if ok:
                ws.admit()  # before the answer: the peer may send its first Prepare at once
                await ws.send(btp.encode(btp.Response(request_id, [])))
                return username
        error = btp.Error(request_id, "F00", "NotAcceptedError", _now_generalized(),
                          b"invalid auth_username or auth_token")  # fmt: skip
        try:
            await ws.send(btp.encode(error))
        except websocket.ConnectionClosed:
            pass  # it left before hearing why
        finally:
            await ws.close()
        return None


class Client:
    """Keeps one authenticated link to a BTP server open, reconnecting with backoff."""

    def __init__(
        self,
        url: str,
        account: str,
        username: str,
        token: str,
        on_prepare: PrepareHandler,
        on_link: Callable[[Link], None],
        max_backoff: float = 30.0,
    ) -> None:
        self.url = url
        self.account = account
        self.username = username
        self.token = token
        self.on_prepare = on_prepare
        self.on_link = on_link
        self.max_backoff = max_backoff
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.attempts = 0
        self.last_error: str | None = None
        """Why the last attempt to connect failed, for whoever waits on :attr:`connected`."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    async def _run(self) -> None:
        delay = 0.2
        while True:
            self.attempts += 1
            try:
                ws = await websocket.connect(self.url, ping_interval=PING_INTERVAL)
                async with ws:
                    await ws.send(btp.encode(auth_frame(self.username, self.token)))
                    raw = await asyncio.wait_for(ws.recv(), AUTH_TIMEOUT)
                    if isinstance(raw, str):
                        raise InvalidPacket("the server answered our auth with a text frame")
                    answer = btp.decode(raw)
                    if isinstance(answer, btp.Error):
                        raise PermissionError(f"{self.url} refused our auth: {answer.data!r}")
                    delay = 0.2
                    link = Link(self.account, ws, self.on_prepare)
                    self.on_link(link)
                    self.connected.set()
                    await link.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = str(exc) or type(exc).__name__
                log.info("BTP %s: %s; reconnecting in %.1fs", self.url, exc, delay)
            self.connected.clear()
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.max_backoff)
