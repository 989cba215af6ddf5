"""The X watcher through a running agent, against the X API stand-in: mentions, timeline and a
search stored once each across polls and a restart, recalled for a question about this week,
and shown by ``aigent analyze``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aigent import Agent, AigentError
from aigent.watch import WatchStore
from tests.conftest import SCRIPTED_MODEL
from tests.fixtures.x_api import XApiServer

from .test_twitter import SECRETS


@pytest.fixture
def x_api() -> Iterator[XApiServer]:
    server = XApiServer().start()
    try:
        yield server
    finally:
        server.stop()


def stored(path: Path) -> list[str]:
    if not path.exists():
        return []
    store = WatchStore(path)
    try:
        return [o.text for o in store.items()]
    finally:
        store.close()


async def until(check: object) -> None:
    for _ in range(200):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_mentions_reach_memory_the_reply_and_the_digest(
    write_character, tmp_path: Path, x_api: XApiServer
) -> None:
    character = write_character(
        {
            "name": "Watcher",
            "models": {"large": "scripted"},
            "plugins": [str(SCRIPTED_MODEL), "twitter"],
            "memory": {"enabled": False},
            "data_dir": str(tmp_path / "data"),
            "secrets": SECRETS,
            "settings": {
                "watch": {"every": "1s", "sources": ["x"]},
                "twitter": {"api_base": x_api.url, "watch": {"searches": ["aigent"]}},
            },
        }
    )
    path = tmp_path / "data" / "watch.sqlite"
    x_api.mention("@agent your agent paid me in seconds", author="2001")
    async with Agent.from_file(character) as agent:
        await until(lambda: len(stored(path)) == 1)
        x_api.mention("@agent how do I run one?", author="2002")
        await until(lambda: len(stored(path)) == 2)
        await asyncio.sleep(1.2)  # another round: the same posts, nothing new
        assert len(stored(path)) == 2
        reply = await agent.chat("what are people saying about us this week?")
        assert "echo:" in reply.text
        calls = sys.modules[
            next(n for n in sys.modules if n.startswith("aigent_local_plugin_scripted_model"))
        ].CALLS
        prompt = "\n".join(m.content for m in calls[-1]["messages"])
        assert "mention by 2001: @agent your agent paid me in seconds" in prompt

    async with Agent.from_file(character):  # a restart polls the same posts again
        await asyncio.sleep(0.5)
    assert sorted(stored(path)) == [
        "mention by 2001: @agent your agent paid me in seconds",
        "mention by 2002: @agent how do I run one?",
    ]
    searched = [r for r in x_api.requests if r[1] == "/2/tweets/search/recent"]
    assert searched  # the search was asked too (the stand-in returns the same posts)

    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "aigent.cli", "analyze", str(character), "--since", "1h"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "x: 2 item(s) (2 mention)" in result.stdout
    assert "how do I run one?" in result.stdout


async def test_watching_x_without_its_secrets_says_which(write_character, tmp_path: Path) -> None:
    character = write_character(
        {
            "name": "Watcher",
            "models": {"large": "scripted"},
            "plugins": [str(SCRIPTED_MODEL), "twitter"],
            "memory": {"enabled": False},
            "data_dir": str(tmp_path / "data"),
            "settings": {"watch": {}, "twitter": {"watch": True}},
        }
    )
    with pytest.raises(AigentError, match=r"settings\.twitter\.watch needs the X API secrets"):
        async with Agent.from_file(character):
            pass


async def test_a_post_is_stored_at_the_time_x_says_it_was_posted(
    tmp_path: Path, x_api: XApiServer
) -> None:
    from aigent_twitter.api import Credentials, XApi
    from aigent_twitter.watch import XWatcher

    from aigent.messages import Incoming
    from aigent.watch import WatchConfig, WatchRecall, WatchService

    now = time.time()
    old = x_api.mention("@agent three days ago you paid me", author="2001", at=now - 3 * 86400)
    x_api.mention("@agent thanks for today's answer", author="2002", at=now)
    creds = Credentials(*(SECRETS[k] for k in sorted(SECRETS)))  # any values: the stand-in
    watcher = XWatcher(XApi(creds, api_base=x_api.url), {"timeline": False})
    path = tmp_path / "watch.sqlite"
    service = WatchService([watcher], WatchConfig(), path)
    assert await service.poll_once() == 2
    assert await service.poll_once() == 0  # seen again: not new, and not moved to now
    await service.stop()
    store = WatchStore(path)
    times = {o.id: o.time for o in store.items()}
    store.close()
    assert times[old] == float(int(now - 3 * 86400))  # X's created_at, to the second
    recall = WatchRecall(path)
    today = await recall.get(Incoming(text="what are people saying about us today?"), None)
    assert today is not None and "today's answer" in today and "three days ago" not in today
    week = await recall.get(Incoming(text="and in the last 7 days?"), None)
    assert week is not None and "three days ago" in week
