"""elizaOS's side of the benchmark, run with the Python of its own venv (see environment.py).

The agent is built the way elizaOS's Python README builds one: its quick-start character,
``AgentRuntime(character, plugins=[get_openai_plugin(), inmemorydb_plugin])``, ``initialize()``,
then ``runtime.message_service.handle_message(runtime, Memory(...))`` per message. The OpenAI
plugin reads ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` from the environment the parent sets.

``--state cached`` is elizaOS's default: ``compose_state`` keeps one composed state per room
and reuses it. ``--state rebuilt`` drops the room's cached state before each message, so the
providers run every time (what a new message in a busy room costs).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from pathlib import Path

# Appended, not prepended: this directory's name must not hide the real elizaos package.
sys.path.append(str(Path(__file__).resolve().parents[1]))

from driver_loop import Driver, claim_stdout, rss_kib, since_spawn_ms


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", choices=["cached", "rebuilt"], default="cached")
    args = parser.parse_args()
    channel = claim_stdout()

    from elizaos import ChannelType, Character, Content, Memory
    from elizaos.runtime import AgentRuntime
    from elizaos_plugin_inmemorydb import plugin as inmemorydb_plugin
    from elizaos_plugin_openai import get_openai_plugin

    character = Character(
        name="Eliza",
        username="eliza",
        bio="A helpful AI assistant.",
        system="You are helpful and concise.",
    )
    runtime = AgentRuntime(character=character, plugins=[get_openai_plugin(), inmemorydb_plugin])
    await runtime.initialize()
    ready_ms, ready_rss = since_spawn_ms(), rss_kib()
    rebuild = args.state == "rebuilt"

    async def chat(text: str, user: str, room: str) -> tuple[str, dict[str, float]]:
        room_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-room-{room}"))
        if rebuild:
            runtime.state_cache.pop(room_id, None)
        message = Memory(
            entity_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-user-{user}")),
            room_id=room_id,
            content=Content(text=text, source="bench", channel_type=ChannelType.DM.value),
        )
        result = await runtime.message_service.handle_message(runtime, message)
        content = result.response_content
        # elizaOS reports no per-stage timings.
        return (str(content.text) if result.did_respond and content is not None else ""), {}

    try:
        setup = {"state": args.state, "plugins": ", ".join(p.name for p in runtime.plugins)}
        await Driver(channel, chat).serve(ready_ms, ready_rss, setup)
    finally:
        await runtime.stop()


if __name__ == "__main__":
    asyncio.run(main())
