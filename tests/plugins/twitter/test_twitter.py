"""The X client against a local server speaking the X API v2 wire format, tweepy pointed at it.
The loop's scheduling runs on a controllable clock, not on sleeps."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aigent_twitter.client import TwitterClient, split_thread
from aigent_twitter.schedule import Scheduler

from aigent import Agent, Incoming, Outgoing, Secrets, hookimpl, load_character
from aigent.character import Loop, Memory, Models, Task
from tests.conftest import SCRIPTED_MODEL
from tests.fixtures.x_api import XApiServer

SECRETS = {
    "TWITTER_API_KEY": "ck-test-key-123",
    "TWITTER_API_SECRET": "cs-test-secret-456",
    "TWITTER_ACCESS_TOKEN": "at-test-token-789",
    "TWITTER_ACCESS_TOKEN_SECRET": "ats-test-secret-000",
}


@pytest.fixture
def x_api() -> Iterator[XApiServer]:
    server = XApiServer().start()
    try:
        yield server
    finally:
        server.stop()


class Clock:
    """Starts at the real time (the stand-in's reset headers use it), then moves only when
    the code under test sleeps."""

    def __init__(self) -> None:
        self.now = time.time()
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Receipts:
    """Stands in for an anchoring plugin: it sees every published post and its X id."""

    def __init__(self) -> None:
        self.seen: list[Outgoing] = []

    @hookimpl
    def after_publish(self, message: Outgoing) -> None:
        message.receipts["test"] = {"post": message.channel_id}
        self.seen.append(message)


@pytest.fixture
def make_client(write_character, tmp_path, x_api):  # type: ignore[no-untyped-def]
    def make(
        secrets: dict[str, str] | None = SECRETS, **settings: Any
    ) -> tuple[TwitterClient, Clock, Receipts]:
        path = write_character({
            "name": "Poster", "models": {"large": "scripted"}, "plugins": [str(SCRIPTED_MODEL)],
            "memory": {"enabled": False}, "data_dir": str(tmp_path / "data"),
            "secrets": secrets or {},
            "settings": {"twitter": {"api_base": x_api.url, **settings}},
        })  # fmt: skip
        receipts = Receipts()
        agent = Agent.from_file(path, plugins=[receipts])
        agent.assemble()
        clock = Clock()
        client = TwitterClient(agent.ctx.for_plugin("twitter"), agent, clock=clock,
                               sleep=clock.sleep, rng=random.Random(1))  # fmt: skip
        return client, clock, receipts

    return make


async def test_posts_go_through_the_hooks_with_their_id(make_client, x_api) -> None:
    client, _, receipts = make_client()
    post_id = await client.post_something()
    assert post_id in x_api.posts
    assert x_api.posts[post_id]["text"].startswith("echo: Write one new post")
    assert receipts.seen[0].channel_id == post_id and receipts.seen[0].kind == "post"
    assert client.state.posts[-1] == {"id": post_id, "text": x_api.posts[post_id]["text"],
                                      "receipts": {"test": {"post": post_id}}}  # fmt: skip
    assert any(h.get("Authorization", "").startswith("OAuth ") for _, _, h in x_api.requests)
    # The same text is never posted twice.
    assert await client.publish(x_api.posts[post_id]["text"]) is None


async def test_long_text_becomes_a_thread_and_280_is_enforced(make_client, x_api) -> None:
    client, _, _ = make_client()
    text = " ".join(f"word{i}" for i in range(120))
    first = await client.publish(text)
    thread = [p for p in x_api.posts.values() if p["author_id"] == "1000"]
    assert len(thread) == len(split_thread(text)) >= 3
    assert all(len(p["text"]) <= 280 for p in thread)
    assert thread[0]["id"] == first and thread[1]["in_reply_to"] == first
    assert thread[-1]["text"].endswith(f"({len(thread)}/{len(thread)})")
    assert split_thread("x" * 600)[0].startswith("x" * 200)


async def test_mentions_are_answered_once_even_after_a_restart(make_client, x_api) -> None:
    first = x_api.mention("@agent what is interledger?")
    client, _, _ = make_client()
    assert await client.reply_to_mentions() == 1
    reply = next(p for p in x_api.posts.values() if p.get("in_reply_to") == first)
    assert reply["text"] == "echo: @agent what is interledger?"
    await client.agent.stop()  # a restart: state comes from disk
    again, _, _ = make_client()
    assert again.state.last_mention_id == first
    assert await again.reply_to_mentions() == 0
    second = x_api.mention("@agent and STREAM?")
    assert await again.reply_to_mentions() == 1
    requests = [p for m, p, _ in x_api.requests if p.endswith("/mentions")]
    assert len(requests) == 3
    assert any(p.get("in_reply_to") == second for p in x_api.posts.values())


async def test_reply_loops_between_agents_stop(make_client, x_api) -> None:
    client, _, _ = make_client(max_replies_per_conversation=2)
    for i in range(5):  # another agent keeps answering in the same conversation
        x_api.mention(f"@agent round {i}", author="3000", conversation="777")
        await client.reply_to_mentions()
    replies = [p for p in x_api.posts.values() if p["author_id"] == "1000"]
    assert len(replies) == 2


async def test_429_waits_for_the_reset_without_crashing(make_client, x_api) -> None:
    client, clock, _ = make_client()
    reset = int(clock.now) + 600
    x_api.fail("/2/tweets", 429, b'{"title": "Too Many Requests"}',
               {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)})  # fmt: skip
    x_api.mention("@agent hi")
    client.scheduler.loop = Loop(tasks=[Task(name="post-tweet")], delay=900)
    assert await client.step() is False  # the 429: reported, not raised
    assert client.scheduler.delay(failed=True) <= 66
    assert await client.step() is True  # waits until the reset, then posts
    assert clock.slept and clock.now >= reset


async def test_malformed_and_server_errors_back_off(make_client, x_api) -> None:
    client, _, _ = make_client()
    client.scheduler.loop = Loop(tasks=[Task(name="reply-to-tweet")])
    x_api.fail("/2/users/1000/mentions", 200, b"{not json")
    await client.api.me()
    assert await client.step() is False
    x_api.fail("/2/users/1000/mentions", 503, b'{"title": "Service Unavailable"}')
    assert await client.step() is False
    x_api.mention("@agent hello")
    assert await client.step() is True


async def test_tweet_interval_spaces_own_posts(make_client, x_api) -> None:
    client, clock, _ = make_client(tweet_interval=5400)
    client.ctx.settings["post_prompt"] = "first"
    assert await client.post_something()
    client.ctx.settings["post_prompt"] = "second"
    await clock.sleep(900)
    assert await client.post_something() is None  # too soon after the last post
    await clock.sleep(4500)
    assert await client.post_something()
    assert len([p for p in x_api.posts.values() if p["author_id"] == "1000"]) == 2


async def test_monthly_budget(make_client, x_api) -> None:
    client, _, _ = make_client(monthly_post_budget=2)
    assert await client.publish("one") and await client.publish("two")
    assert await client.publish("three") is None
    assert len([p for p in x_api.posts.values() if p["author_id"] == "1000"]) == 2


async def test_rate_limit_headers_are_honoured_before_calling(make_client, x_api) -> None:
    client, clock, _ = make_client()
    x_api.remaining = 1
    await client.publish("spend the last request")  # remaining drops to 0, reset in 900 s
    before = clock.now
    await client.publish("must wait for the window")
    assert clock.now - before >= 899


def test_the_loop_follows_weights_and_time_of_day() -> None:
    loop = Loop(delay=900, jitter=0.1, use_time_multipliers=True,
                tasks=[Task(name="post-tweet", weight=1), Task(name="like-tweet", weight=1)],
                time_multipliers={"tweet_night_multiplier": 0.0,
                                  "engagement_day_multiplier": 3.0})  # fmt: skip
    scheduler = Scheduler(loop, random.Random(3))
    night = [scheduler.pick(datetime(2026, 1, 1, 3)) for _ in range(200)]
    assert set(night) == {"like-tweet"}  # no posting at 3 am
    day = [scheduler.pick(datetime(2026, 1, 1, 12)) for _ in range(2000)]
    assert 0.70 < day.count("like-tweet") / len(day) < 0.80  # 3:1 in the day
    delays = [scheduler.delay() for _ in range(200)]
    assert min(delays) >= 810 and max(delays) <= 990 and len(set(delays)) > 100
    assert scheduler.delay(failed=True) <= 66


async def test_zerepy_file_drives_the_loop_unchanged(x_api, tmp_path) -> None:
    """The ZerePy example agent runs its tasks on X through the real loop."""
    source = Path(__file__).parents[2] / "data" / "characters" / "zerepy.json"
    character = load_character(source)
    # Only the model is swapped for the stand-in (no provider keys here); tasks, weights,
    # multipliers, loop_delay and the twitter options are the file's own.
    character = character.model_copy(update={
        "models": Models.model_validate({"large": "scripted"}),
        "plugins": [str(SCRIPTED_MODEL)],
        "memory": Memory(enabled=False),
    })  # fmt: skip
    character.settings["twitter"]["api_base"] = x_api.url
    agent = Agent(character, secrets=Secrets(SECRETS, [], environ={}), data_dir=tmp_path / "z")
    agent.assemble()
    clock = Clock()
    client = TwitterClient(agent.ctx.for_plugin("twitter"), agent, clock=clock, sleep=clock.sleep,
                           rng=random.Random(5))  # fmt: skip
    assert [t.name for t in client.scheduler.loop.tasks] == ["post-tweet", "reply-to-tweet",
                                                             "like-tweet"]  # fmt: skip
    x_api.mention("@agent gm", author="42")
    for _ in range(6):
        assert await client.step() is True
        await clock.sleep(client.scheduler.delay())
    assert 810 <= clock.slept[0] <= 990  # loop_delay 900 with jitter
    assert x_api.likes or any(p["author_id"] == "1000" for p in x_api.posts.values())


def test_dry_run_without_credentials_shows_what_it_would_post(tmp_path) -> None:
    character = tmp_path / "dry.json"
    character.write_text(json.dumps({
        "name": "Dry", "models": {"large": "scripted"}, "plugins": [str(SCRIPTED_MODEL)],
        "clients": ["twitter"], "memory": {"enabled": False}, "data_dir": str(tmp_path / "d"),
        "loop": {"delay": 1, "jitter": 0, "tasks": [{"name": "post-tweet", "weight": 1}]},
    }))  # fmt: skip
    code = (
        "import asyncio\nfrom aigent import Agent\n"
        f"agent = Agent.from_file({str(character)!r})\n"
        "async def main():\n"
        "    async with agent:\n"
        "        await asyncio.sleep(2.5)\n"
        "asyncio.run(main())\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("TWITTER_")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "[dry run] Dry would post: echo: Write one new post" in result.stderr
    # Never posts the same text twice, even in dry run.
    assert result.stderr.count("would post") == 1


async def test_timeline_is_offered_as_context_and_cached(make_client, x_api) -> None:
    from aigent_twitter.plugin import Timeline

    client, _, _ = make_client()
    x_api.mention("interledger is having a moment", author="77")
    timeline = Timeline(client.ctx)
    text = await timeline.get(None, client.agent)  # type: ignore[arg-type]
    assert text is not None and "- interledger is having a moment" in text
    calls = len(x_api.requests)
    assert await timeline.get(None, client.agent) == text  # type: ignore[arg-type]
    assert len(x_api.requests) == calls  # served from the cache


async def test_a_client_named_only_in_clients_brings_its_context(write_character, tmp_path, x_api):  # type: ignore[no-untyped-def]
    """`"clients": ["twitter"]` without "twitter" in plugins: the X timeline still reaches the
    model as context (the plugin is enabled at assembly, before behaviour is collected)."""
    import sys

    x_api.mention("the harbour is teal today", author="77")
    path = write_character({
        "name": "Timeline", "models": {"large": "scripted"}, "plugins": [str(SCRIPTED_MODEL)],
        "memory": {"enabled": False}, "data_dir": str(tmp_path / "data"), "secrets": SECRETS,
        "clients": ["twitter"], "connector": {"enabled": False},
        "settings": {"twitter": {"api_base": x_api.url, "dry_run": False}},
    })  # fmt: skip
    agent = Agent.from_file(path)
    agent.assemble()
    assert "twitter" in agent.plugins.enabled
    assert any(type(p).__name__ == "Timeline" for p in agent.providers)
    reply = await agent.handle(Incoming(text="what is new?", user="ann"), publish=False)
    scripted = next(m for n, m in sys.modules.items() if n.startswith("aigent_local_plugin_scr"))
    assert "the harbour is teal today" in scripted.CALLS[-1]["messages"][0].content
    assert reply.text
    await agent.stop()
