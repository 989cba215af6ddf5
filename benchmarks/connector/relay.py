"""The floor of the benchmark: a hub that only relays frames, with no ILP in it at all.

It speaks just enough WebSocket and BTP for the load generator (the Upgrade, the auth Message)
and then copies every frame from the sender to the receiver and back, unchanged: no packet is
read, no ledger, no expiry. What it takes per packet is what the machine takes (the loopback
writes, and waking the other core); a real connector can only be slower. ``run.py --floor``
measures it in the same run as the two connectors.

Run by run.py: ``python relay.py CONFIG_JSON``; prints ``READY <port>`` once listening.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import signal
import sys
from typing import ClassVar

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def server_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x82, n)) + payload
    if n < 65536:
        return bytes((0x82, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x82, 127)) + n.to_bytes(8, "big") + payload


class Relay(asyncio.Protocol):
    peers: ClassVar[dict[str, Relay]] = {}  # the two connections, by account

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.open = False
        self.account: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.open:
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if not sep:
                self.buf = buf
                return
            key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                       if line.lower().startswith(b"sec-websocket-key:"))  # fmt: skip
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"  # type: ignore[union-attr]
                                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept
                                 + b"\r\n\r\n")  # fmt: skip
            self.open, buf = True, rest
        out, pos, n = [], 0, len(buf)
        while n - pos >= 2:
            length, head = buf[pos + 1] & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            start = pos + head + 4  # client frames are masked
            end = start + length
            if end > n:
                break
            mask, payload = buf[start - 4 : start], buf[start:end]
            if mask != b"\0\0\0\0":
                key = (mask * (length // 4 + 1))[:length]
                payload = bytes(a ^ b for a, b in zip(payload, key, strict=True))
            pos = end
            if self.account is None:
                self.authenticate(payload)
            else:
                out.append(server_frame(payload))
        self.buf = buf[pos:]
        if out:
            other = "receiver" if self.account == "sender" else "sender"
            self.peers[other].transport.write(b"".join(out))  # type: ignore[union-attr]

    def authenticate(self, payload: bytes) -> None:
        from aigent_connector import btp_packets as btp

        frame = btp.decode(payload)
        user = btp.find(frame.protocol_data, "auth_username")  # type: ignore[union-attr]
        self.account = user.data.decode() if user else "?"
        self.peers[self.account] = self
        answer = btp.encode(btp.Response(frame.request_id, []))
        self.transport.write(server_frame(answer))  # type: ignore[union-attr]


async def main(config: dict) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Relay(config["children"]), "127.0.0.1",
                                      config["port"])  # fmt: skip
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(json.loads(sys.argv[1])))
