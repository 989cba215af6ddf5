"""The baseline: the same request body POSTed straight to the model server with httpx (the
client under both frameworks: litellm's OpenAI path and elizaOS's OpenAI plugin), from the same
kind of process, timed the same way. Runs in either side's environment (it needs only httpx), so
each side's baseline uses that side's httpx and that side's prompt.

Run by benchmarks/overhead.py with ``--body FILE``: the first chat-completions body the framework
sent, replayed unchanged for every message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from driver_loop import Driver, claim_stdout, rss_kib, since_spawn_ms


async def main(url: str, body: dict[str, Any]) -> None:
    channel = claim_stdout()
    import httpx

    headers = {"authorization": "Bearer sk-bench"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        ready_ms, ready_rss = since_spawn_ms(), rss_kib()

        async def chat(text: str, user: str, room: str) -> tuple[str, dict[str, float]]:
            response = await client.post("/chat/completions", json=body)
            response.raise_for_status()
            return str(response.json()["choices"][0]["message"]["content"]), {}

        setup = {"client": f"httpx {httpx.__version__}"}
        await Driver(channel, chat).serve(ready_ms, ready_rss, setup)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="the model server's /v1 URL")
    parser.add_argument("--body", required=True, help="a JSON file: the request body to send")
    args = parser.parse_args()
    asyncio.run(main(args.url, json.loads(Path(args.body).read_text())))
