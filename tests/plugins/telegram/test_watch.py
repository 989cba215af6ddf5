"""Messages the Telegram client sees, watched into memory (settings.telegram.watch): each
stored once with its chat and author, whether or not it was addressed to the agent, at the
time Telegram gives it."""

from __future__ import annotations

import time
from pathlib import Path

from aigent import Agent
from aigent.watch import WatchStore
from tests.conftest import SCRIPTED_MODEL
from tests.fixtures.telegram_api import TOKEN, TelegramServer

from .test_telegram import telegram  # noqa: F401  (the fixture, found by name)


def stored(path: Path) -> list[tuple[str, float]]:
    if not path.exists():
        return []
    store = WatchStore(path)
    try:
        return [(o.text, o.time) for o in store.items()]
    finally:
        store.close()


async def test_chat_messages_are_watched_once_each(
    write_character,
    tmp_path: Path,
    telegram: TelegramServer,  # noqa: F811
) -> None:
    path = write_character(
        {
            "name": "Agent",
            "models": {"large": "scripted"},
            "plugins": [str(SCRIPTED_MODEL)],
            "memory": {"enabled": False},
            "data_dir": str(tmp_path / "data"),
            "connector": {"enabled": False},
            "clients": ["telegram"],
            "secrets": {"TELEGRAM_BOT_TOKEN": TOKEN},
            "settings": {
                "watch": {"every": "1s"},
                "telegram": {"api_base": telegram.url, "poll_timeout": 1, "watch": True},
            },
        }
    )
    store = tmp_path / "data" / "watch.sqlite"
    before = time.time() - 2
    telegram.message("group chatter about the AMM", chat=-100, chat_type="supergroup")
    telegram.message("hello there")
    async with Agent.from_file(path):
        await telegram.wait_for(lambda: len(stored(store)) == 2)
    texts = sorted(text for text, _ in stored(store))
    assert texts == ["ann in -100: group chatter about the AMM", "ann in 5000: hello there"]
    assert all(at >= before for _, at in stored(store))
