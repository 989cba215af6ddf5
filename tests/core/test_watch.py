"""Watching data into memory: dedup across polls and restarts, retention and size budget, the
schedule's config errors, the window recall a question gets, and ``aigent analyze``."""

from __future__ import annotations

import asyncio
import calendar
import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from aigent import Agent, AigentError
from aigent.messages import Incoming
from aigent.watch import (
    LastSeen,
    Observation,
    WatchConfig,
    WatchRecall,
    WatchService,
    WatchStore,
    digest,
    parse_duration,
    window_of,
)

FEED = str(Path(__file__).parents[1] / "fixtures" / "watched_feed.py")
SCRIPTED = str(Path(__file__).parents[1] / "fixtures" / "scripted_model.py")


class Moves:
    """A watcher whose items the test sets."""

    name = "moves"

    def __init__(self) -> None:
        self.items: list[Observation] = []

    async def poll(self, since: float | None) -> list[Observation]:
        return list(self.items)


def obs(i: int, at: float, change: float | None = None, source: str = "moves") -> Observation:
    data: dict[str, object] = {"kind": "balance"}
    if change is not None:
        data["change"] = change
    return Observation(source, f"id{i}", at, f"item {i} moved {change}", data)


async def test_items_are_stored_once_across_polls_and_restarts(tmp_path: Path) -> None:
    watcher, now = Moves(), time.time()
    path = tmp_path / "watch.sqlite"
    service = WatchService([watcher], WatchConfig(), path)
    watcher.items = [obs(1, now - 60), obs(2, now - 30)]
    assert await service.poll_once() == 2
    assert await service.poll_once() == 0
    await service.stop()
    again = WatchService([watcher], WatchConfig(), path)  # a restart: a new process's service
    watcher.items.append(obs(3, now))
    assert await again.poll_once() == 1
    await again.stop()
    store = WatchStore(path)
    assert [o.id for o in store.items()] == ["id1", "id2", "id3"]
    store.close()


async def test_retention_and_size_budget_are_enforced_per_source(tmp_path: Path) -> None:
    watcher, chatty, now = Moves(), Moves(), time.time()
    chatty.name = "chatty"
    path = tmp_path / "watch.sqlite"
    watcher.items = [obs(0, now - 3 * 86400), *(obs(i, now - 100 + i) for i in range(1, 6))]
    chatty.items = [obs(i, now - 50 + i, source="chatty") for i in range(10)]
    config = WatchConfig(retention="2d", max_items=3)
    service = WatchService([watcher, chatty], config, path)
    assert await service.poll_once() == 15  # the one past retention is not stored at all
    assert await service.poll_once() == 0  # ...nor again next round
    watcher.items.append(obs(6, now))
    assert await service.poll_once() == 1
    await service.stop()
    store = WatchStore(path)
    kept = [(o.source, o.id) for o in store.items()]
    store.close()
    # Each source keeps its newest three: the busy one does not push the other out.
    assert sorted(kept) == [("chatty", "id7"), ("chatty", "id8"), ("chatty", "id9"),
                            ("moves", "id4"), ("moves", "id5"), ("moves", "id6")]  # fmt: skip


async def test_a_value_keeps_the_time_it_was_first_seen_and_every_move_counts(
    tmp_path: Path,
) -> None:
    memo, store_path = tmp_path / "seen.json", tmp_path / "watch.sqlite"
    seen = LastSeen("moves", memo)
    await seen.load()
    first = seen.observe("balance:bob", Decimal(100), 1000.0, "bob holds 100", "balance")
    assert first is not None and first.time == 1000.0
    assert seen.observe("balance:bob", Decimal(100), 2000.0, "bob holds 100", "balance") is None
    moves = [
        seen.observe("balance:bob", Decimal(v), t, f"bob holds {v}", "balance")
        for v, t in ((107, 3000.0), (100, 4000.0), (107, 5000.0))
    ]
    await seen.save()
    assert [m.time for m in moves if m] == [3000.0, 4000.0, 5000.0]
    store = WatchStore(store_path)
    # 100 -> 107 twice: two moves, the second not taken for the first one again.
    assert store.add([first, *(m for m in moves if m)]) == 4
    store.close()
    again = LastSeen("moves", memo)  # a restart: the same value is no new item
    await again.load()
    assert again.observe("balance:bob", Decimal(107), 9000.0, "bob holds 107", "balance") is None


async def test_a_failing_watcher_does_not_stop_the_others(tmp_path: Path) -> None:
    class Broken:
        name = "broken"

        async def poll(self, since: float | None) -> list[Observation]:
            raise ConnectionError("down")

    watcher = Moves()
    watcher.items = [obs(1, time.time())]
    service = WatchService([Broken(), watcher], WatchConfig(), tmp_path / "w.sqlite")
    assert await service.poll_once() == 1
    await service.stop()


def test_digest_counts_ranks_movers_and_lists_the_latest() -> None:
    now = 1_800_000_000.0
    items = [obs(1, now - 50, 5), obs(2, now - 40, -120), obs(3, now - 30, 1), obs(4, now - 20, 0)]
    items.append(Observation("feed", "p1", now - 10, "people like us", {"kind": "post"}))
    text = digest(items, now - 3600, now)
    assert "5 item(s)" in text.splitlines()[0]
    assert "feed: 1 item(s) (1 post)" in text
    assert "moves: 4 item(s) (4 balance)" in text
    movers = text.split("top changes:")[1].splitlines()[1:4]
    assert [m.strip() for m in movers] == [
        "item 2 moved -120",
        "item 1 moved 5",
        "item 3 moved 1",
    ]
    assert "Nothing was observed" in digest([], now - 10, now)


NOW = calendar.timegm((2026, 12, 2, 15, 30, 0))  # a Wednesday, 15:30 UTC


def at(day: int, hour: int = 0, minute: int = 0, month: int = 12) -> float:
    return float(calendar.timegm((2026, month, day, hour, minute, 0)))


@pytest.mark.parametrize(
    ("question", "since", "until"),
    [
        ("what moved on the XRPL AMM pools today?", at(2), NOW),
        ("anything new this morning?", at(2), NOW),
        ("what are people saying about us this week?", at(30, month=11), NOW),
        ("what happened yesterday?", at(1), at(2)),
        ("what moved since yesterday", at(1), NOW),
        ("what did they say since Monday?", at(30, month=11), NOW),
        ("since Wednesday", at(2), NOW),  # today is one: since this morning
        ("since last Friday", at(27, month=11), NOW),
        ("since 2026-11-28", at(28, month=11), NOW),
        ("what moved last week?", at(23, month=11), at(30, month=11)),
        ("what moved in the last week?", NOW - 7 * 86400, NOW),
        ("over the past week", NOW - 7 * 86400, NOW),
        ("in the last 3 days", NOW - 3 * 86400, NOW),
        ("anything in the past three days?", NOW - 3 * 86400, NOW),
        ("what moved on the XRPL AMM pools in the last 24h?", NOW - 86400, NOW),
        ("what happened in the last 2 hours", NOW - 7200, NOW),
        ("last 30 minutes", NOW - 1800, NOW),
        ("in the last hour", NOW - 3600, NOW),
        ("digest for 7d please", NOW - 7 * 86400, NOW),
        ("this month", at(1), NOW),
        ("last month", at(1, month=11), at(1)),
        ("past month", NOW - 30 * 86400, NOW),
        ("this year", at(1, month=1), NOW),
    ],
)
def test_a_question_names_its_window(question: str, since: float, until: float) -> None:
    assert window_of(question, NOW) == (since, until)


@pytest.mark.parametrize("question", ["hello there", "since 2026-13-40", "the last word"])
def test_a_question_naming_no_window_gets_none(question: str) -> None:
    assert window_of(question, NOW) is None


def test_last_month_in_january_is_the_previous_december() -> None:
    new_year = float(calendar.timegm((2027, 1, 10, 9, 0, 0)))
    assert window_of("last month", new_year) == (
        at(1),
        float(calendar.timegm((2027, 1, 1, 0, 0, 0))),
    )


async def test_the_recall_reads_only_the_window_the_question_names(tmp_path: Path) -> None:
    path = tmp_path / "watch.sqlite"
    now = time.time()
    midnight = now - now % 86400
    store = WatchStore(path)
    store.add([
        Observation("moves", "early", midnight - 86400 + 60, "yesterday's first move"),
        Observation("moves", "late", midnight + 1, "today's first move"),
    ])  # fmt: skip
    store.close()
    recall = WatchRecall(path)
    today = await recall.get(Incoming(text="what moved today?"), None)
    yesterday = await recall.get(Incoming(text="and yesterday?"), None)
    assert today is not None and yesterday is not None
    assert "today's first move" in today and "yesterday's" not in today
    assert "yesterday's first move" in yesterday and "today's" not in yesterday
    assert await recall.get(Incoming(text="hello"), None) is None


async def test_a_question_naming_a_source_gets_only_that_source(tmp_path: Path) -> None:
    path = tmp_path / "watch.sqlite"
    now = time.time()
    store = WatchStore(path)
    store.add([
        Observation("xrpl", "pool", now, "AMM XRP/USD pool holds 1300 XRP (+300)"),
        Observation("discord", "m1", now, "ana in general: gm"),
    ])  # fmt: skip
    store.close()
    recall = WatchRecall(path)
    pools = await recall.get(Incoming(text="What moved on the XRPL AMM pools today?"), None)
    assert pools is not None and "AMM XRP/USD" in pools and "gm" not in pools
    everything = await recall.get(Incoming(text="what happened today?"), None)
    assert everything is not None and "AMM XRP/USD" in everything and "gm" in everything


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"every": "soon"}, "settings.watch.every"),
        ({"max_items": 0}, "settings.watch.max_items"),
        ({"retension": "3d"}, "settings.watch.retension"),
        ("5m", "settings.watch"),
    ],
)
def test_a_bad_schedule_names_the_file_and_field(raw: object, field: str) -> None:
    with pytest.raises(AigentError) as err:
        WatchConfig.parse(raw, "eliza.json")
    assert str(err.value).startswith(f"eliza.json: {field}: ")
    with pytest.raises(ValueError, match=r"e\.g\. 5m, 24h, 30d"):
        parse_duration("0h")
    assert WatchConfig.parse(True).every == "5m"  # "watch": true takes the defaults


def stored(path: Path) -> int:
    store = WatchStore(path)
    try:
        return store.count()
    finally:
        store.close()


async def test_the_agent_watches_recalls_the_window_and_analyze_prints_it(
    scripted_character, tmp_path: Path
) -> None:
    posts = tmp_path / "posts.json"
    now = time.time()
    posts.write_text(
        json.dumps(
            [
                {"id": 1, "time": now - 600, "text": "@tester your agent paid me in seconds"},
                {"id": 2, "time": now - 10 * 86400, "text": "an old post, out of the window"},
            ]
        )
    )
    character = scripted_character(
        plugins=[SCRIPTED, FEED],
        settings={
            "watch": {"every": "1s", "sources": ["feed"]},
            "watched_feed": {"file": str(posts)},
        },
    )
    agent = Agent.from_file(character)
    store = tmp_path / "data" / "watch.sqlite"
    async with agent:
        for _ in range(100):
            if store.exists() and stored(store) == 2:
                break
            await asyncio.sleep(0.05)
        reply = await agent.chat("what are people saying about us this week?")
        assert reply.text.startswith("echo: ")
        calls = sys.modules[
            next(n for n in sys.modules if n.startswith("aigent_local_plugin_scripted_model"))
        ].CALLS
        prompt = "\n".join(m.content for m in calls[-1]["messages"])
        assert "your agent paid me in seconds" in prompt
        assert "an old post" not in prompt
        await agent.chat("hello")  # names no window: nothing watched is recalled
        prompt = "\n".join(m.content for m in calls[-1]["messages"])
        assert "your agent paid me" not in prompt

    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "aigent.cli", "analyze", str(character), "--since", "24h"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "feed: 1 item(s) (1 post)" in result.stdout
    assert "your agent paid me in seconds" in result.stdout
    assert "an old post" not in result.stdout


async def test_a_source_no_plugin_watches_stops_the_agent_with_its_name(
    scripted_character, tmp_path: Path
) -> None:
    character = scripted_character(
        plugins=[SCRIPTED, FEED],
        settings={"watch": {"sources": ["xrpl"]}, "watched_feed": {"file": "x"}},
    )
    with pytest.raises(AigentError, match=r"settings\.watch\.sources names xrpl.*watch: feed"):
        async with Agent.from_file(character):
            pass


def test_analyze_before_anything_was_watched_says_how_to_start(scripted_character) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aigent.cli", "analyze", str(scripted_character())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "nothing watched yet" in result.stderr and "settings.watch" in result.stderr
