"""The lean WebSocket under BTP: handshake, masking, fragments, ping/pong, close, bad frames.

Peers are real: our own client and server, the ``websockets`` library (an independent RFC 6455
implementation), and a raw TCP socket that writes frames byte by byte where a test needs a frame
no well-behaved library would send.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aigent_connector import ws
from aigent_connector.ws import ConnectionClosed, HandshakeError, WebSocket


async def echo(sock: WebSocket) -> None:
    async for message in sock:
        await sock.send(message)


@pytest.fixture
async def server() -> AsyncIterator[ws.Server]:
    srv = await ws.serve(echo, "127.0.0.1", 0, max_size=64 * 1024)
    yield srv
    srv.close()
    await srv.wait_closed()


def port_of(srv: ws.Server) -> int:
    return srv.sockets[0].getsockname()[1]


class Raw:
    """A TCP client that speaks WebSocket by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, request: bytes | None = None) -> tuple[Raw, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(request or (
            f"GET /btp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode())  # fmt: skip
        head = await reader.readuntil(b"\r\n\r\n")
        if request is None:
            assert f"Sec-WebSocket-Accept: {ws.accept_key(key)}".encode() in head
        return cls(reader, writer), head

    def frame(self, opcode: int, payload: bytes, fin: bool = True, mask: bool = True,
              rsv: int = 0) -> None:  # fmt: skip
        b0 = (0x80 if fin else 0) | rsv | opcode
        n = len(payload)
        bit = 0x80 if mask else 0
        if n < 126:
            head = bytes((b0, bit | n))
        elif n < 65536:
            head = struct.pack("!BBH", b0, bit | 126, n)
        else:
            head = struct.pack("!BBQ", b0, bit | 127, n)
        key = os.urandom(4)
        self.writer.write(head + (key + ws.apply_mask(payload, key) if mask else payload))

    async def read(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame; asserts the server did not mask it."""
        b0, b1 = await self.reader.readexactly(2)
        assert not b1 & 0x80, "server frames must not be masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return b0 & 0x0F, await self.reader.readexactly(n)

    async def closed_with(self) -> int:
        """Read to the close frame; its code. Then the server must drop TCP."""
        while True:
            opcode, payload = await asyncio.wait_for(self.read(), 5)
            if opcode == ws.CLOSE:
                try:
                    assert await asyncio.wait_for(self.reader.read(), 5) == b""
                except ConnectionResetError:
                    pass  # closed with our unread bytes in its buffer: the kernel resets
                return struct.unpack("!H", payload[:2])[0]


def test_accept_key_is_rfc_6455s_example() -> None:
    assert ws.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_masking_is_its_own_inverse_and_matches_a_byte_loop() -> None:
    mask = b"\x37\xfa\x21\x3d"
    for size in (0, 1, 3, 4, 5, 125, 1000):
        data = os.urandom(size)
        masked = ws.apply_mask(data, mask)
        assert masked == bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        assert ws.apply_mask(masked, mask) == data


async def test_our_client_and_server_echo_binary_and_text(server: ws.Server) -> None:
    async with await ws.connect(f"ws://user:pw@127.0.0.1:{port_of(server)}/a/b?x=1") as sock:
        big = os.urandom(60_000)  # a 16-bit length, many TCP segments
        await sock.send(b"\x00\x01binary")
        await sock.send("text ✓")
        await sock.send(big)
        assert await sock.recv() == b"\x00\x01binary"
        assert await sock.recv() == "text ✓"
        assert await sock.recv() == big
    assert sock.close_code == 1000
    assert server.connections == set() or all(not c.open for c in server.connections)


async def test_the_websockets_library_talks_to_our_server(server: ws.Server) -> None:
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{port_of(server)}", compression=None) as peer:
        await peer.send(b"hello")
        assert await peer.recv() == b"hello"
        # A fragmented message (three frames) comes back whole.
        await peer.send([b"frag-", b"men-", b"ted"])
        assert await peer.recv() == b"frag-men-ted"
        pong = await peer.ping(b"are you there")
        await asyncio.wait_for(pong, 5)


async def test_our_client_talks_to_a_websockets_server() -> None:
    from websockets.asyncio.server import serve

    async def reverse(peer: object) -> None:
        async for message in peer:  # type: ignore[attr-defined]
            await peer.send(message[::-1])  # type: ignore[attr-defined]

    async with serve(reverse, "127.0.0.1", 0, compression=None) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        sock = await ws.connect(f"ws://127.0.0.1:{port}/")
        await sock.send(b"abc" * 50_000)  # a 64-bit length, masked by us, unmasked by it
        assert await sock.recv() == b"cba" * 50_000
        await sock.close()
        assert sock.close_code == 1000


async def test_the_server_reassembles_fragments_around_a_ping(server: ws.Server) -> None:
    raw, _ = await Raw.open(port_of(server))
    raw.frame(ws.BINARY, b"one ", fin=False)
    raw.frame(ws.PING, b"ping in the middle")  # control frames may come between fragments
    raw.frame(ws.CONTINUATION, b"two ", fin=False)
    raw.frame(ws.CONTINUATION, b"three")
    assert await raw.read() == (ws.PONG, b"ping in the middle")
    assert await raw.read() == (ws.BINARY, b"one two three")
    raw.frame(ws.CLOSE, struct.pack("!H", 1000))
    assert await raw.closed_with() == 1000


async def test_a_frame_split_across_writes_is_read_whole(server: ws.Server) -> None:
    raw, _ = await Raw.open(port_of(server))
    key = os.urandom(4)
    payload = os.urandom(3000)
    data = struct.pack("!BBH", 0x82, 0x80 | 126, len(payload)) + key + ws.apply_mask(payload, key)
    for i in range(0, len(data), 7):  # seven bytes at a time, header split too
        raw.writer.write(data[i : i + 7])
        await raw.writer.drain()
        await asyncio.sleep(0)
    assert await raw.read() == (ws.BINARY, payload)


@pytest.mark.parametrize(
    ("send", "code"),
    [
        (lambda r: r.frame(ws.BINARY, b"x", mask=False), 1002),  # clients must mask
        (lambda r: r.frame(ws.BINARY, b"x", rsv=0x40), 1002),  # no extension negotiated
        (lambda r: r.frame(0x3, b"x"), 1002),  # reserved opcode
        (lambda r: r.frame(ws.CONTINUATION, b"x"), 1002),  # nothing to continue
        (lambda r: r.frame(ws.PING, b"x" * 126), 1002),  # control frame too long
        (lambda r: r.frame(ws.PING, b"x", fin=False), 1002),  # fragmented control frame
        (lambda r: (r.frame(ws.BINARY, b"a", fin=False), r.frame(ws.BINARY, b"b")), 1002),
        (lambda r: r.frame(ws.CLOSE, b"\x03"), 1002),  # a one-byte close payload
        (lambda r: r.frame(ws.CLOSE, struct.pack("!H", 1005)), 1002),  # never on the wire
        (lambda r: r.frame(ws.TEXT, b"\xff\xfe"), 1007),  # not UTF-8
        (lambda r: r.frame(ws.BINARY, b"x" * 70_000), 1009),  # over max_size (64 KiB here)
        (
            lambda r: (
                r.frame(ws.BINARY, b"x" * 40_000, fin=False),
                r.frame(ws.CONTINUATION, b"x" * 40_000),
            ),
            1009,
        ),  # message over max_size
    ],
)
async def test_protocol_violations_close_with_a_code(server: ws.Server, send, code: int) -> None:
    raw, _ = await Raw.open(port_of(server))
    send(raw)
    assert await raw.closed_with() == code


async def test_the_server_refuses_what_is_not_a_websocket_upgrade(server: ws.Server) -> None:
    port = port_of(server)
    _, head = await Raw.open(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    old = (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
    )
    _, head = await Raw.open(port, old)
    assert head.startswith(b"HTTP/1.1 426") and b"Sec-WebSocket-Version: 13" in head
    # And the server still serves real clients afterwards.
    async with await ws.connect(f"ws://127.0.0.1:{port}") as sock:
        await sock.send(b"still here")
        assert await sock.recv() == b"still here"


async def test_the_client_refuses_a_server_that_does_not_upgrade() -> None:
    async def not_websocket(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    srv = await asyncio.start_server(not_websocket, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    with pytest.raises(HandshakeError, match="404"):
        await ws.connect(f"ws://127.0.0.1:{port}/")
    srv.close()
    with pytest.raises(HandshakeError, match="ws:// or wss://"):
        await ws.connect(f"http://127.0.0.1:{port}/")


async def test_keepalive_pings_and_drops_a_silent_peer() -> None:
    opened: list[WebSocket] = []

    async def hold(sock: WebSocket) -> None:
        opened.append(sock)
        await sock.wait_closed()

    srv = await ws.serve(hold, "127.0.0.1", 0, ping_interval=0.1)
    raw, _ = await Raw.open(port_of(srv))
    opcode, _payload = await asyncio.wait_for(raw.read(), 5)
    assert opcode == ws.PING
    # We never answer: after one more interval the server gives up on us.
    assert await raw.closed_with() == 1011
    assert opened[0].close_code == 1011
    srv.close()
    await srv.wait_closed()


async def test_a_peer_that_answers_pings_stays_connected() -> None:
    srv = await ws.serve(echo, "127.0.0.1", 0, ping_interval=0.05)
    sock = await ws.connect(f"ws://127.0.0.1:{port_of(srv)}", ping_interval=0.05)
    await asyncio.sleep(0.4)  # several ping rounds each way
    assert sock.open
    await sock.send(b"alive")
    assert await sock.recv() == b"alive"
    await sock.close()
    srv.close()
    await srv.wait_closed()


async def test_close_handshake_reaches_both_sides(server: ws.Server) -> None:
    sock = await ws.connect(f"ws://127.0.0.1:{port_of(server)}")
    await sock.close(4000, "done here")
    assert sock.close_code == 4000 and not sock.open
    with pytest.raises(ConnectionClosed):
        await sock.send(b"too late")
    with pytest.raises(ConnectionClosed):
        await sock.recv()


async def test_server_shutdown_closes_clients_with_going_away() -> None:
    srv = await ws.serve(echo, "127.0.0.1", 0)
    sock = await ws.connect(f"ws://127.0.0.1:{port_of(srv)}")
    srv.close()
    await asyncio.wait_for(srv.wait_closed(), 5)
    await asyncio.wait_for(sock.wait_closed(), 5)
    assert sock.close_code == 1001


async def test_wss_over_tls(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
               "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
               "-keyout", str(key), "-out", str(cert)]  # fmt: skip
    await asyncio.to_thread(subprocess.run, command, check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    srv = await ws.serve(echo, "localhost", 0, ssl=server_ctx)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    async with await ws.connect(f"wss://localhost:{port_of(srv)}/", ssl=client_ctx) as sock:
        await sock.send(b"secret")
        assert await sock.recv() == b"secret"
    # Without trusting the certificate, the default context refuses it.
    with pytest.raises(ssl.SSLError):
        await ws.connect(f"wss://localhost:{port_of(srv)}/")
    srv.close()
    await srv.wait_closed()
