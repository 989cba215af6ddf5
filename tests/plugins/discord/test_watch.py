"""Channel messages the Discord client sees, watched into memory (settings.discord.watch) and
each stored once with its channel and author, whether or not it was addressed to the agent."""

from __future__ import annotations

from pathlib import Path

from aigent import Agent
from aigent.watch import WatchStore
from tests.conftest import SCRIPTED_MODEL
from tests.fixtures.discord_api import TOKEN, DiscordServer

from .test_discord import discord  # noqa: F401  (the fixture, found by name)


def stored(path: Path) -> list[str]:
    if not path.exists():
        return []
    store = WatchStore(path)
    try:
        return [o.text for o in store.items()]
    finally:
        store.close()


async def test_channel_messages_are_watched_once_each(
    write_character,
    tmp_path: Path,
    discord: DiscordServer,  # noqa: F811
) -> None:
    path = write_character(
        {
            "name": "Agent",
            "models": {"large": "scripted"},
            "plugins": [str(SCRIPTED_MODEL)],
            "memory": {"enabled": False},
            "data_dir": str(tmp_path / "data"),
            "connector": {"enabled": False},
            "clients": ["discord"],
            "secrets": {"DISCORD_BOT_TOKEN": TOKEN},
            "settings": {
                "watch": {"every": "1s"},
                "discord": {"api_base": discord.url, "watch": True},
            },
        }
    )
    store = tmp_path / "data" / "watch.sqlite"
    async with Agent.from_file(path):
        await discord.ready()
        await discord.message("the XRPL pool is deep today", author={"id": "7", "username": "bo"})
        await discord.message("agreed", author={"id": "8", "username": "cy"}, channel="101")
        await discord.wait_for(lambda: len(stored(store)) == 2)
    assert sorted(stored(store)) == [
        "bo in 100: the XRPL pool is deep today",
        "cy in 101: agreed",
    ]
