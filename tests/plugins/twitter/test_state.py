"""The X client's state in the agent's store ``twitter``, on SQLite and on the database a fleet
shares: what one server answered and posted is there for the next, a server killed between
posting and marking leaves nothing to post twice, two servers at once answer a mention once,
and a ``twitter-state.json`` from before is imported once."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from aigent_twitter.api import XApi, XApiError
from aigent_twitter.client import TwitterClient
from aigent_twitter.state import State

from aigent import Agent
from aigent.storage import FileStorage, Storage
from tests.conftest import SCRIPTED_MODEL
from tests.fixtures.stores import Servers, pg, servers  # noqa: F401
from tests.fixtures.x_api import XApiServer
from tests.plugins.twitter.test_twitter import SECRETS, Clock, x_api  # noqa: F401


class Killed(BaseException):
    """The server dies here (SIGKILL): nothing after runs, nothing is cleaned up."""


class DiesAfterPosting:
    """X accepts the post; the server dies before it hears back."""

    def __init__(self, api: XApi) -> None:
        self.api = api

    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)

    async def post(self, text: str, reply_to: str | None = None, quote: str | None = None) -> str:
        await self.api.post(text, reply_to=reply_to, quote=quote)
        raise Killed


_servers = itertools.count()


def client_on(
    storage: Storage, write_character: Any, tmp_path: Path, server: XApiServer, die: bool = False
) -> TwitterClient:
    """The agent as one server runs it: its stores in ``storage``, a data directory of its
    own (its connector's ledger, which only one process may hold)."""
    data_dir = tmp_path / f"server-{next(_servers)}"
    path = write_character({
        "name": "Poster", "models": {"large": "scripted"}, "plugins": [str(SCRIPTED_MODEL)],
        "memory": {"enabled": False}, "data_dir": str(data_dir), "secrets": SECRETS,
        "settings": {"twitter": {"api_base": server.url}},
    })  # fmt: skip
    agent = Agent.from_file(path, storage=storage)
    agent.assemble()
    clock = Clock()
    client = TwitterClient(agent.ctx.for_plugin("twitter"), agent, clock=clock,
                           sleep=clock.sleep, rng=random.Random(1))  # fmt: skip
    if die:
        client.api = DiesAfterPosting(client.api)  # type: ignore[assignment]
    return client


def ours(server: XApiServer) -> list[dict[str, Any]]:
    return [p for p in server.posts.values() if p["author_id"] == "1000"]


async def test_what_one_server_answered_is_there_for_the_next(
    servers: Servers,  # noqa: F811
    write_character: Any,
    tmp_path: Path,
    x_api: XApiServer,  # noqa: F811
) -> None:
    first = x_api.mention("@agent what is interledger?")
    one = servers()
    client = client_on(one, write_character, tmp_path, x_api)
    assert await client.reply_to_mentions() == 1
    posted = await client.publish("an announcement")
    one.close()  # type: ignore[attr-defined]  # the server goes away

    client = client_on(servers(), write_character, tmp_path, x_api)
    assert client.state.last_mention_id == first
    assert await client.reply_to_mentions() == 0
    assert await client.publish("an announcement") is None
    assert [p["id"] for p in client.state.posts][-1] == posted
    assert len(ours(x_api)) == 2


async def test_a_server_killed_mid_post_leaves_nothing_to_post_twice(
    servers: Servers,  # noqa: F811
    write_character: Any,
    tmp_path: Path,
    x_api: XApiServer,  # noqa: F811
) -> None:
    x_api.mention("@agent what is interledger?")
    one = servers()
    dying = client_on(one, write_character, tmp_path, x_api, die=True)
    try:
        await dying.reply_to_mentions()
    except Killed:
        pass
    one.close()  # type: ignore[attr-defined]
    assert len(ours(x_api)) == 1  # X has the reply; the server never heard

    client = client_on(servers(), write_character, tmp_path, x_api)
    assert await client.reply_to_mentions() == 0  # its intent is there: not answered again
    assert await client.publish("echo: @agent what is interledger?") is None
    assert len(ours(x_api)) == 1


async def test_two_servers_at_once_answer_a_mention_once(
    servers: Servers,  # noqa: F811
    write_character: Any,
    tmp_path: Path,
    x_api: XApiServer,  # noqa: F811
) -> None:
    """A hand-over where both servers still run the agent for a moment."""
    for i in range(5):
        x_api.mention(f"@agent question {i}")
    a = client_on(servers(), write_character, tmp_path, x_api)
    b = client_on(servers(), write_character, tmp_path, x_api)
    a.state.posts_in("2000-01")  # both stores migrated before the race
    b.state.posts_in("2000-01")
    done = await asyncio.gather(a.reply_to_mentions(), b.reply_to_mentions())
    assert sum(done) == 5
    replies = [p["in_reply_to"] for p in ours(x_api)]
    assert sorted(replies) == sorted(set(replies)) and len(replies) == 5


async def test_a_post_x_refused_is_forgotten_and_tried_again(
    servers: Servers,  # noqa: F811
    write_character: Any,
    tmp_path: Path,
    x_api: XApiServer,  # noqa: F811
) -> None:
    """Known not to have gone out: the intent goes, and with it the budget it took."""
    client = client_on(servers(), write_character, tmp_path, x_api)
    x_api.fail("/2/tweets", 403, b'{"title": "Forbidden", "detail": "not allowed"}')
    month = time.strftime("%Y-%m", time.gmtime(client.clock()))
    with pytest.raises(XApiError, match="X refused tweets"):
        await client.publish("hello")
    assert not client.state.already_posted("hello")
    assert client.state.posts_in(month) == 0
    assert await client.publish("hello")
    assert len(ours(x_api)) == 1


def test_a_state_file_from_before_is_imported_once(
    servers: Servers,  # noqa: F811
    tmp_path: Path,
) -> None:
    legacy = tmp_path / "twitter-state.json"
    legacy.write_text(json.dumps({
        "path": "ignored", "last_mention_id": "1234", "replied_to": ["1200", "1234"],
        "posted_hashes": [State.fingerprint("old news"), State.fingerprint("older news")],
        "replies_per_conversation": {"1200": 2}, "month": "2026-11", "posts_this_month": 7,
        "last_post_at": 1_700_000_000.5,
        "posts": [{"id": "99", "text": "old news", "receipts": {"trn": {"root": "0xab"}}}],
    }), encoding="utf-8")  # fmt: skip
    one = servers()
    state = State.open(one, legacy)
    assert state.last_mention_id == "1234" and state.last_post_at == 1_700_000_000.5
    assert state.replied("1200") and state.replied("1234") and not state.replied("1300")
    assert state.replies_in("1200") == 2
    assert state.already_posted("Old   NEWS") and state.already_posted("older news")
    assert state.posts_in("2026-11") == 7
    assert state.posts[-1] == {
        "id": "99",
        "text": "old news",
        "receipts": {"trn": {"root": "0xab"}},
    }
    assert state.begin_post("new", "2026-11", 2, budget=100) is None
    one.close()  # type: ignore[attr-defined]

    again = State.open(servers(), legacy)  # the file is still there: not imported twice
    assert again.posts_in("2026-11") == 9
    assert again.replies_in("1200") == 2


def test_the_budget_and_the_conversation_cap_are_checked_with_the_intent(
    tmp_path: Path,
) -> None:
    state = State.open(FileStorage(tmp_path))
    assert state.begin_post("a", "2026-12", 3, budget=4) is None
    assert (
        state.begin_post("b", "2026-12", 2, budget=4) == "the monthly post budget of 4 is reached"
    )
    assert state.begin_post("a", "2027-01", 1, budget=4) == "the same text was posted before"
    assert (
        state.begin_post("c", "2027-01", 1, 4, reply_to="7", conversation="5", max_replies=1)
        is None
    )
    assert state.begin_post("d", "2027-01", 1, 4, reply_to="7") == "mention 7 was answered before"
    assert (
        state.begin_post("e", "2027-01", 1, 4, reply_to="8", conversation="5", max_replies=1)
        == "conversation 5 has 1 replies already"
    )
    state.abandon_post("c", "2027-01", 1)  # nothing went out
    assert state.posts_in("2027-01") == 0 and state.replies_in("5") == 0
    assert not state.replied("7")
    state.finish_post("a", "42", {})
    state.abandon_post("a", "2026-12", 3)  # posted: never forgotten
    assert state.already_posted("a") and state.posts_in("2026-12") == 3
