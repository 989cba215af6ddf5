"""Sender and receiver for the benchmark, in one process of their own.

Both are BTP clients of the connector under test (children ``sender`` and ``receiver``). The
receiver answers every Prepare with a Fulfill at once; the sender keeps N Prepares in flight and
times each one from the moment its frame is handed to the socket until its Fulfill is read.
The same code, byte for byte the same frames, drives our connector and the reference one.

The load generator must never be what limits the measurement, so it is as lean as Python on
uvloop gets: a bare ``asyncio.Protocol`` per connection speaking just enough RFC 6455 (the
Upgrade request, masked client frames with an all-zero key, which the RFC allows and every
server unmasks the same way), frames built from a template by patching the request id, every
frame read in one ``data_received`` answered in one write, and no task or future per packet.

Run by run.py: ``python loadgen.py CONFIG_JSON``; prints one JSON line of results.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

SECRET = b"benchmark secret: not a real one"
FULFILLMENT = hashlib.sha256(SECRET).digest()
CONDITION = hashlib.sha256(FULFILLMENT).digest()
ZERO_MASK = b"\0\0\0\0"
FULFILL_TYPE = 13


def ws_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """A masked client frame, binary by default (the mask key is zero, so the payload goes as
    it is)."""
    n = len(payload)
    first = 0x80 | opcode
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 65536:
        head = bytes((first, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + ZERO_MASK + payload


class Client(asyncio.Protocol):
    """One WebSocket client connection; ``on_frames(payloads)`` gets each read's messages."""

    def __init__(self, on_frames: Callable[[list[bytes]], None]) -> None:
        self.on_frames = on_frames
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.upgraded = asyncio.get_running_loop().create_future()
        self.open = False
        self.first: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.open:
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if not sep:
                self.buf = buf
                return
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                self.upgraded.set_exception(ConnectionError(head.decode(errors="replace")))
                return
            self.open = True
            self.upgraded.set_result(None)
            buf = rest
        frames, pos, n = [], 0, len(buf)
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = (buf[pos + 2] << 8) | buf[pos + 3], 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            end = pos + head + length
            if end > n:
                break
            opcode = buf[pos] & 0x0F
            if opcode == 0x2:  # binary (servers never mask)
                frames.append(buf[pos + head : end])
            elif opcode == 0x9:  # a ping: keepalive wants its pong
                self.write(ws_frame(buf[pos + head : end], 0xA))
            pos = end
        self.buf = buf[pos:]
        if frames:
            if self.first is not None:
                self.first.set_result(frames.pop(0))
                self.first = None
            if frames:
                self.on_frames(frames)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed during the handshake"))

    def send(self, payload: bytes) -> None:
        self.write(ws_frame(payload))

    def write(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]

    async def request(self, payload: bytes) -> bytes:
        """Send one message and return the next one (the auth exchange)."""
        self.first = asyncio.get_running_loop().create_future()
        self.send(payload)
        return await self.first


async def connect(url: str, username: str, token: str, on_frames: Callable[[list[bytes]], None]
                  ) -> Client:  # fmt: skip
    from aigent_connector import btp_packets as btp
    from aigent_connector.btp import auth_frame

    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: Client(on_frames), parts.hostname,
                                             parts.port)  # fmt: skip
    key = base64.b64encode(os.urandom(16)).decode()
    client.transport.write(  # type: ignore[union-attr]
        f"GET / HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .encode()
    )  # fmt: skip
    await client.upgraded
    answer = btp.decode(await client.request(btp.encode(auth_frame(username, token))))
    if not isinstance(answer, btp.Response):
        raise PermissionError(f"{url} refused {username}: {answer}")
    return client


def receiver_answers(fulfill_response: bytes) -> Callable[[Client], Callable[[list[bytes]], None]]:
    """The receiver: every Message is answered with the Fulfill, in one write per read."""
    head, tail = fulfill_response[:1], fulfill_response[5:]
    empty = bytes((1,)) + b"\0\0\0\0" + b"\x02\x01\x00"  # Response, no protocol data

    def bind(client: Client) -> Callable[[list[bytes]], None]:
        def on_frames(frames: list[bytes]) -> None:
            out = []
            for raw in frames:
                if raw[0] != 6:  # only Messages are answered
                    continue
                ilp = b"\x03ilp" in raw[:16]
                answer = head + raw[1:5] + tail if ilp else empty[:1] + raw[1:5] + empty[5:]
                out.append(ws_frame(answer))
            if out:
                client.write(b"".join(out))

        return on_frames

    return bind


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` and all its threads (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sender:
    """Keeps ``in_flight`` Prepares outstanding: every answer read sends the next one."""

    def __init__(self, destination: str, pid: int) -> None:
        from aigent_connector import btp_packets as btp
        from aigent_connector.packets import Prepare, encode

        self.pid = pid
        expires = datetime.now(UTC) + timedelta(minutes=10)  # outlives every phase
        prepare = Prepare(10, expires, CONDITION, destination, b"x" * 64)
        frame = btp.encode(btp.Message(0, [btp.ProtocolData("ilp", btp.OCTET_STREAM,
                                                            encode(prepare))]))  # fmt: skip
        # The ws frame of the template; the request id sits at bytes 1..5 of the payload.
        self.template = ws_frame(frame)
        self.id_at = len(self.template) - len(frame) + 1
        self.client: Client | None = None
        self.started: dict[int, float] = {}
        self.next_id = 1
        self.latencies: list[float] = []
        self.rejects: dict[str, int] = {}
        self.measuring = False
        self.running = False
        self.sent = 0
        self.idle: asyncio.Event | None = None

    def frames(self, count: int, now: float) -> bytes:
        template, at, started = self.template, self.id_at, self.started
        out = []
        for _ in range(count):
            request_id = self.next_id = (self.next_id + 1) & 0xFFFFFFFF
            started[request_id] = now
            out.append(template[:at] + request_id.to_bytes(4, "big") + template[at + 4 :])
        self.sent += count
        return b"".join(out)

    def on_frames(self, frames: list[bytes]) -> None:
        now = time.perf_counter()
        started, latencies, measuring = self.started, self.latencies, self.measuring
        answered = 0
        for raw in frames:
            began = started.pop(int.from_bytes(raw[1:5], "big"), None)
            if began is None:
                continue
            answered += 1
            # The ilp entry is the first: type, id, length, count, "ilp", content type, length.
            at = raw.find(b"\x03ilp") + 5  # the ilp entry's data length
            kind = raw[at + (1 if raw[at] < 0x80 else 1 + (raw[at] & 0x7F))] if at > 4 else -1
            if kind == FULFILL_TYPE:
                if measuring:
                    latencies.append(now - began)
            else:
                code = "BTP" if kind == -1 else "ILP"
                self.rejects[code] = self.rejects.get(code, 0) + 1
        if self.running and answered:
            self.client.write(self.frames(answered, time.perf_counter()))  # type: ignore[union-attr]
        elif not self.started and self.idle is not None:
            self.idle.set()

    async def run(self, in_flight: int, warmup: float, seconds: float) -> dict:
        self.latencies, self.rejects, self.measuring, self.running = [], {}, False, True
        self.idle = asyncio.Event()
        self.client.write(self.frames(in_flight, time.perf_counter()))  # type: ignore[union-attr]
        await asyncio.sleep(warmup)
        self.measuring, began, cpu = True, time.perf_counter(), cpu_seconds(self.pid)
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - began
        cpu = cpu_seconds(self.pid) - cpu
        self.running = False
        latencies = sorted(self.latencies)
        self.measuring = False
        await asyncio.wait_for(self.idle.wait(), 30)  # the stragglers, before the next level

        def pct(p: float) -> float:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

        return {
            "in_flight": in_flight,
            "sent": self.sent,
            "packets": len(latencies),
            "pps": len(latencies) / elapsed,
            "p50_ms": pct(0.50) if latencies else None,
            "p99_ms": pct(0.99) if latencies else None,
            "rejects": self.rejects,
            # What the connector process spent per packet: barely moved by other load.
            "cpu_us": cpu / len(latencies) * 1e6 if latencies else None,
        }


async def main(config: dict) -> None:
    from aigent_connector import btp_packets as btp
    from aigent_connector.packets import Fulfill, encode

    base = config["url"]
    fulfill = btp.ilp_frame(btp.RESPONSE, 0, encode(Fulfill(FULFILLMENT, b"")))
    answers = receiver_answers(fulfill)
    receiving = await connect(base["receiver"], "receiver", config["secrets"]["receiver"],
                              lambda frames: None)  # fmt: skip
    receiving.on_frames = answers(receiving)
    sender = Sender(config["destination"], config["pid"])
    sending = await connect(base["sender"], "sender", config["secrets"]["sender"],
                            sender.on_frames)  # fmt: skip
    sender.client = sending
    results = []
    for in_flight in config["in_flight"]:
        results.append(await sender.run(in_flight, config["warmup"], config["seconds"]))
    sending.transport.close()  # type: ignore[union-attr]
    receiving.transport.close()  # type: ignore[union-attr]
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    settings = json.loads(sys.argv[1])
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(settings))
    else:
        uvloop.run(main(settings))
