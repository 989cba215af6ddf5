"""aigent's side of the benchmark: one agent, started and used through the public API only.

The character is elizaOS's quick-start character (same name, bio and system prompt as the peer)
in aigent's default configuration: memory on with the default store and embedder, connector on,
the model the OpenAI wire-format stand-in at ``--url``.

Run by benchmarks/overhead.py; see driver_loop.py for what it reports and the commands it takes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from driver_loop import Driver, claim_stdout, rss_kib, since_spawn_ms

CHARACTER = {
    "name": "Eliza",
    "username": "eliza",
    "bio": ["A helpful AI assistant."],
    "system": "You are helpful and concise.",
}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="the model server's /v1 URL")
    parser.add_argument("--data-dir", required=True, help="the agent's data directory")
    args = parser.parse_args()
    channel = claim_stdout()

    from aigent import Agent, Character

    character = Character.model_validate({
        **CHARACTER,
        "models": {"large": {"model": "openai/stand-in", "api_base": args.url}},
        "secrets": {"OPENAI_API_KEY": "sk-bench"},
        "data_dir": args.data_dir,
    })  # fmt: skip
    async with Agent(character) as agent:
        ready_ms, ready_rss = since_spawn_ms(), rss_kib()

        async def chat(text: str, user: str, room: str) -> tuple[str, dict[str, float]]:
            reply = await agent.chat(text, user=user, room=room)
            return reply.text, reply.timings

        setup = {
            "model": agent.model.model_id if agent.model else "none",
            "memory": type(agent.memory).__name__ if agent.memory else "off",
            "connector": "on" if agent.node else "off",
        }
        await Driver(channel, chat).serve(ready_ms, ready_rss, setup)


if __name__ == "__main__":
    asyncio.run(main())
