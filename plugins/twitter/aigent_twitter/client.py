"""The X client: an autonomous loop of weighted tasks, mention replies, and the guards users of
other frameworks asked for: no duplicate posts, no second reply to a post (even after a
restart), a cap on replies per conversation (two agents cannot talk forever), a monthly post
budget per API tier, and waiting out rate limits instead of crashing."""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aigent import Incoming, Loop, Outgoing, PluginContext, Task
from aigent_twitter.api import Credentials, Post, XApi, XApiError
from aigent_twitter.schedule import ENGAGE, POST, REPLY, Scheduler
from aigent_twitter.state import LEGACY, State

log = logging.getLogger("aigent.twitter")

LIMIT = 280
TIER_POSTS_PER_MONTH = {"free": 500, "basic": 3000, "pro": 300_000}
POST_PROMPT = (
    "Write one new post for X in your own voice, about one of your topics. Plain text, no "
    "hashtags unless they matter, under 280 characters. Reply with the post only."
)
DEFAULT_LOOP = Loop(delay=1800, tasks=[Task(name="reply-to-tweet", weight=2),
                                       Task(name="post-tweet", weight=1)])  # fmt: skip


def credentials(ctx: PluginContext) -> Credentials | None:
    s = ctx.secrets
    key = s.get("TWITTER_API_KEY") or s.get("TWITTER_CONSUMER_KEY")
    secret = (
        s.get("TWITTER_API_SECRET") or s.get("TWITTER_API_SECRET_KEY")
        or s.get("TWITTER_CONSUMER_SECRET")
    )  # fmt: skip
    token, token_secret = s.get("TWITTER_ACCESS_TOKEN"), s.get("TWITTER_ACCESS_TOKEN_SECRET")
    if not (key and secret and token and token_secret):
        return None
    return Credentials(key, secret, token, token_secret, s.get("TWITTER_BEARER_TOKEN"))


def split_thread(text: str, limit: int = LIMIT) -> list[str]:
    """Text as posts of at most ``limit`` characters, cut at word boundaries, numbered."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return [text]
    room = limit - 8  # for " (nn/nn)"
    parts: list[str] = []
    current = ""
    for word in text.split(" "):
        while len(word) > room:  # a single overlong word is cut hard
            if current:
                parts.append(current)
                current = ""
            parts.append(word[:room])
            word = word[room:]
        candidate = f"{current} {word}".strip()
        if len(candidate) > room:
            parts.append(current)
            current = word
        else:
            current = candidate
    if current:
        parts.append(current)
    return [f"{part} ({i}/{len(parts)})" for i, part in enumerate(parts, 1)]


class DryRunApi:
    """No credentials: show what would be posted, touch nothing."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.posted: list[str] = []
        self.user_id = "dry-run"

    async def me(self) -> str:
        return self.user_id

    async def post(self, text: str, reply_to: str | None = None, quote: str | None = None) -> str:
        self.posted.append(text)
        where = f" (reply to {reply_to})" if reply_to else ""
        print(f"[dry run] {self.name} would post{where}: {text}", file=sys.stderr, flush=True)
        return f"dry-run-{len(self.posted)}"

    async def mentions(self, since_id: str | None) -> list[Post]:
        return []

    async def like(self, post_id: str) -> None:
        return None

    async def repost(self, post_id: str) -> None:
        return None

    async def home_timeline(self, count: int = 10) -> list[Post]:
        return []

    async def search(self, query: str, count: int = 10) -> list[Post]:
        return []


class TwitterClient:
    name = "twitter"

    def __init__(
        self,
        ctx: PluginContext,
        agent: Any,
        *,
        api: Any = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.ctx = ctx
        self.agent = agent
        self.clock = clock
        self.sleep = sleep
        settings = ctx.settings
        creds = None if settings.get("dry_run") else credentials(ctx)
        self.dry_run = creds is None
        self.api = api or (
            DryRunApi(agent.name)
            if creds is None
            else XApi(creds, api_base=settings.get("api_base"), clock=clock, sleep=sleep)
        )
        self.budget = int(
            settings.get("monthly_post_budget")
            or TIER_POSTS_PER_MONTH.get(str(settings.get("tier", "free")), 500)
        )
        self.max_replies = int(settings.get("max_replies_per_conversation", 3))
        self.state = State.open(ctx.storage, ctx.data_dir / LEGACY, clock)
        self.scheduler = Scheduler(ctx.character.loop or DEFAULT_LOOP, rng or random.Random())
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        mode = "dry run: nothing is posted" if self.dry_run else f"budget {self.budget}/month"
        log.warning("%s on X (%s)", self.agent.name, mode)
        # A store this aigent cannot use (a newer version) stops the agent as it starts.
        await asyncio.to_thread(self.state.ready)
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def run(self) -> None:
        while True:
            ok = await self.step()
            await self.sleep(self.scheduler.delay(failed=not ok))

    async def step(self) -> bool:
        """One iteration of the loop: pick a task by weight and run it. Never raises."""
        task = self.scheduler.pick(datetime.fromtimestamp(self.clock()))
        if task is None:
            return True
        try:
            if task in POST:
                await self.post_something()
            elif task in REPLY:
                await self.reply_to_mentions()
            elif task in ENGAGE:
                await self.engage(task)
            else:
                log.warning("unknown task %r in the loop; skipped", task)
            return True
        except XApiError as exc:
            log.warning("%s: %s", task, exc)
            return False
        except Exception:
            log.exception("task %s failed", task)
            return False

    # --- tasks -----------------------------------------------------------------------------------

    async def post_something(self) -> str | None:
        # ZerePy's tweet_interval: the least time between two of the agent's own posts.
        interval = float(self.ctx.settings.get("tweet_interval", 0))
        if self.clock() - await asyncio.to_thread(lambda: self.state.last_post_at) < interval:
            log.info("not posting yet: tweet_interval is %.0fs", interval)
            return None
        prompt = str(self.ctx.settings.get("post_prompt", POST_PROMPT))
        reply = await self.agent.handle(
            Incoming(text=prompt, user="x-loop", room="x:posts", client="twitter", kind="post"),
            publish=False,
        )
        post_id = await self.publish(reply.text)
        if post_id is not None:
            await asyncio.to_thread(self.state.posted_own)
        return post_id

    async def reply_to_mentions(self) -> int:
        mentions = await self.api.mentions(
            await asyncio.to_thread(lambda: self.state.last_mention_id)
        )
        me = await self.api.me()
        replied = 0
        for mention in sorted(mentions, key=lambda p: int(p.id)):
            # Answering twice is what must never happen: the state's intent, written before
            # the reply is posted (publish), guards it; the watermark only saves fetching.
            try:
                if not await asyncio.to_thread(self._should_skip, mention, me):
                    reply = await self.agent.handle(
                        Incoming(text=mention.text, user=mention.author_id,
                                 room=f"x:{mention.conversation_id or mention.id}",
                                 client="twitter"),
                        publish=False,
                    )  # fmt: skip
                    if await self.publish(
                        reply.text, reply_to=mention.id, conversation=mention.conversation_id
                    ):
                        replied += 1
            finally:  # a mention that failed is not fetched again each round
                await asyncio.to_thread(self.state.saw_mention, mention.id)
        return replied

    def _should_skip(self, mention: Post, me: str) -> bool:
        """Before asking the model (publish checks again, atomically). Blocks."""
        if mention.author_id == me or self.state.replied(mention.id):
            return True
        conversation = mention.conversation_id or mention.id
        if self.state.replies_in(conversation) >= self.max_replies:
            log.info("not replying in conversation %s: %d replies already (a loop?)",
                     conversation, self.max_replies)  # fmt: skip
            return True
        return False

    async def engage(self, task: str) -> None:
        me = await self.api.me()
        for post in await self.api.home_timeline(10):
            if post.author_id == me:
                continue
            if task in {"like-tweet", "like"}:
                await self.api.like(post.id)
            elif task in {"repost", "retweet"}:
                await self.api.repost(post.id)
            else:
                reply = await self.agent.handle(
                    Incoming(text=f"Quote this post with a short comment: {post.text}",
                             user="x-loop", room="x:quotes", client="twitter", kind="post"),
                    publish=False,
                )  # fmt: skip
                await self.publish(reply.text, quote=post.id)
            return

    # --- posting ---------------------------------------------------------------------------------

    async def publish(
        self,
        text: str,
        *,
        reply_to: str | None = None,
        quote: str | None = None,
        conversation: str | None = None,
    ) -> str | None:
        """Post ``text`` (as a thread when long) through the response hooks; the post id and
        its receipts are kept. Returns the first post's id, or None when skipped.

        The intent is written before anything goes out and marked after: a server that dies
        in between leaves an intent whose outcome is unknown, and neither it nor the next
        server posts that text, or answers that mention, again."""
        text = text.strip()
        month = time.strftime("%Y-%m", time.gmtime(self.clock()))
        if not text:
            return None
        parts = split_thread(text)
        why = await asyncio.to_thread(
            self.state.begin_post, text, month, len(parts), self.budget, reply_to,
            conversation, self.max_replies if reply_to else None,
        )  # fmt: skip
        if why is not None:
            log.info("not posting %r: %s", text[:60], why)
            return None
        first: str | None = None

        async def deliver(message: Outgoing) -> str:
            nonlocal first
            previous = reply_to
            for i, part in enumerate(split_thread(message.text)):
                previous = await self.api.post(
                    part, reply_to=previous, quote=quote if i == 0 else None
                )
                first = first or previous
            assert first is not None
            return first

        outgoing = Outgoing(text=text, agent=self.agent.name, kind="reply" if reply_to else "post",
                            client="twitter", room="x", in_reply_to=reply_to)  # fmt: skip
        try:
            await self.agent.publish(outgoing, deliver=deliver)
        except Exception as exc:
            if first is not None:  # part of a thread went out
                await asyncio.to_thread(self.state.finish_post, text, first, outgoing.receipts)
            elif not isinstance(exc, XApiError) or exc.refused:  # known: nothing went out
                await asyncio.to_thread(self.state.abandon_post, text, month, len(parts))
            raise
        assert first is not None
        await asyncio.to_thread(self.state.finish_post, text, first, outgoing.receipts)
        return first
