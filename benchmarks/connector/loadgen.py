"""Sender and receiver for the benchmark, in one process of their own.

Both are BTP clients of the connector under test (children ``sender`` and ``receiver``). The
receiver answers every Prepare with a Fulfill at once; the sender keeps N Prepares in flight and
times each one from the moment its frame is handed to the socket until its Fulfill is read.
The same code, byte for byte the same frames, drives our connector and the reference one.

Run by run.py: ``python loadgen.py CONFIG_JSON``; prints one JSON line of results.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta

SECRET = b"benchmark secret: not a real one"
FULFILLMENT = hashlib.sha256(SECRET).digest()
CONDITION = hashlib.sha256(FULFILLMENT).digest()


async def connect(url: str, username: str, token: str) -> object:
    from aigent_connector import btp_packets as btp
    from aigent_connector.btp import auth_frame
    from websockets.asyncio.client import connect as ws_connect

    # No permessage-deflate: BTP frames are small and binary; the ws library the reference
    # connector uses does not offer it either.
    ws = await ws_connect(url, compression=None, max_queue=None)
    await ws.send(btp.encode(auth_frame(username, token)))
    answer = btp.decode(await ws.recv())
    if not isinstance(answer, btp.Response):
        raise PermissionError(f"{url} refused {username}: {answer}")
    return ws


async def receiver(ws: object) -> None:
    """Fulfil every Prepare; answer anything else with an empty Response."""
    from aigent_connector import btp_packets as btp
    from aigent_connector.packets import Fulfill, encode

    fulfill = encode(Fulfill(FULFILLMENT, b""))
    async for raw in ws:  # type: ignore[attr-defined]
        frame = btp.decode(raw)
        if not isinstance(frame, btp.Message):
            continue
        ilp = btp.find(frame.protocol_data, "ilp")
        data = [btp.ProtocolData("ilp", btp.OCTET_STREAM, fulfill)] if ilp else []
        await ws.send(btp.encode(btp.Response(frame.request_id, data)))  # type: ignore[attr-defined]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` and all its threads (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sender:
    def __init__(self, ws: object, destination: str, pid: int) -> None:
        self.ws = ws
        self.destination = destination
        self.pid = pid
        self.pending: dict[int, asyncio.Future[bytes]] = {}
        self.next_id = 1

    async def read(self) -> None:
        async for raw in self.ws:  # type: ignore[attr-defined]
            future = self.pending.pop(int.from_bytes(raw[1:5], "big"), None)
            if future is not None and not future.done():
                future.set_result(raw)

    def frame(self) -> bytes:
        from aigent_connector import btp_packets as btp
        from aigent_connector.packets import Prepare, encode

        expires = datetime.now(UTC) + timedelta(seconds=30)
        prepare = Prepare(10, expires, CONDITION, self.destination, b"x" * 64)
        return btp.encode(btp.Message(0, [btp.ProtocolData("ilp", btp.OCTET_STREAM,
                                                           encode(prepare))]))  # fmt: skip

    async def run(self, in_flight: int, warmup: float, seconds: float) -> dict:
        from aigent_connector import btp_packets as btp
        from aigent_connector.packets import FULFILL

        template = self.frame()  # expires in 30 s: enough for one phase
        loop = asyncio.get_running_loop()
        latencies: list[float] = []
        rejects: dict[str, int] = {}
        measuring = False
        stop_at = loop.time() + warmup + seconds

        sent = 0

        async def worker() -> None:
            nonlocal sent
            while loop.time() < stop_at:
                sent += 1
                request_id = self.next_id = (self.next_id + 1) & 0xFFFFFFFF
                future: asyncio.Future[bytes] = loop.create_future()
                self.pending[request_id] = future
                raw = template[:1] + request_id.to_bytes(4, "big") + template[5:]
                started = time.perf_counter()
                await self.ws.send(raw)  # type: ignore[attr-defined]
                answer = await future
                took = time.perf_counter() - started
                ilp = btp.find(btp.decode(answer).protocol_data, "ilp")
                if ilp is not None and ilp.data[0] == FULFILL:
                    if measuring:
                        latencies.append(took)
                else:
                    code = ilp.data[2:5].decode(errors="replace") if ilp else "BTP"
                    rejects[code] = rejects.get(code, 0) + 1

        tasks = [asyncio.create_task(worker()) for _ in range(in_flight)]
        await asyncio.sleep(warmup)
        measuring, began, cpu = True, time.perf_counter(), cpu_seconds(self.pid)
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
        cpu = cpu_seconds(self.pid) - cpu
        latencies.sort()

        def pct(p: float) -> float:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

        return {
            "in_flight": in_flight,
            "sent": sent,
            "packets": len(latencies),
            "pps": len(latencies) / elapsed,
            "p50_ms": pct(0.50) if latencies else None,
            "p99_ms": pct(0.99) if latencies else None,
            "rejects": rejects,
            # What the connector process spent per packet: barely moved by other load.
            "cpu_us": cpu / len(latencies) * 1e6 if latencies else None,
        }


async def main(config: dict) -> None:
    base = config["url"]
    receiving = await connect(base["receiver"], "receiver", config["secrets"]["receiver"])
    sending = await connect(base["sender"], "sender", config["secrets"]["sender"])
    sender = Sender(sending, config["destination"], config["pid"])
    tasks = [asyncio.create_task(receiver(receiving)), asyncio.create_task(sender.read())]
    results = []
    for in_flight in config["in_flight"]:
        results.append(await sender.run(in_flight, config["warmup"], config["seconds"]))
    for task in tasks:
        task.cancel()
    await sending.close()  # type: ignore[attr-defined]
    await receiving.close()  # type: ignore[attr-defined]
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    settings = json.loads(sys.argv[1])
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(settings))
    else:
        uvloop.run(main(settings))
