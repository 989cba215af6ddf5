"""What the X client must not forget across restarts, and across the servers that may run the
agent: the last mention it saw, what it replied to, what it posted (to never post the same text
twice) and each month's post count.

It lives in the agent's store ``twitter`` (aigent.storage: ``twitter.sqlite`` in the data
directory, or the agent's schema in the database a fleet shares). A post is written as an
intent before it goes out and marked posted after: an intent whose outcome is unknown (the
server died mid-post) is never posted again, nor is its mention answered again. Whoever writes
the intent first posts; a second server in a hand-over finds it and does nothing. A
``twitter-state.json`` from before is imported once.

Calls block: make them from a thread.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aigent.storage import Migration, Storage, Store

log = logging.getLogger("aigent.twitter")

KEEP = 5000  # posts listed by State.posts (all stay remembered)
LEGACY = "twitter-state.json"
"""The file the client kept its state in before it had a store."""

MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE twitter_marks (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE twitter_posted (hash TEXT PRIMARY KEY, seq BIGINT NOT NULL,
        at DOUBLE PRECISION NOT NULL, state TEXT NOT NULL, post_id TEXT NOT NULL DEFAULT '',
        text TEXT NOT NULL DEFAULT '', receipts TEXT NOT NULL DEFAULT '{}',
        reply_to TEXT NOT NULL DEFAULT '');
    CREATE INDEX twitter_posted_in_order ON twitter_posted (seq);
    CREATE TABLE twitter_replied (mention_id TEXT PRIMARY KEY, conversation TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL);
    CREATE TABLE twitter_conversations (conversation TEXT PRIMARY KEY,
        replies BIGINT NOT NULL);
    CREATE TABLE twitter_budgets (month TEXT PRIMARY KEY, posts BIGINT NOT NULL);
    """,
)
"""The store ``twitter``: watermarks (``twitter_marks``), texts posted by hash
(``twitter_posted``: ``posting`` until the post is known to have gone out, then ``posted``),
mentions answered (``twitter_replied``), replies per conversation and posts per month
(``twitter_budgets``). Named for the store: on PostgreSQL an agent's stores share a schema."""

POSTING, POSTED = "posting", "posted"


class State:
    """The client's memory in its store."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    @classmethod
    def open(
        cls, storage: Storage, legacy: Path | None = None, clock: Callable[[], float] = time.time
    ) -> State:
        """The agent's state; ``legacy`` (a ``twitter-state.json``) is imported if the store
        has not imported one yet. Blocks."""
        state = cls(storage.open("twitter", MIGRATIONS), clock)
        if legacy is not None and legacy.exists():
            state.import_json(legacy)
        return state

    def ready(self) -> None:
        """Open the store now (and migrate it)."""
        self.store.execute("SELECT 1")

    # --- watermarks ------------------------------------------------------------------------------

    def _mark(self, name: str) -> str | None:
        rows = self.store.execute("SELECT value FROM twitter_marks WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else None

    def _set_mark(self, name: str, value: str) -> None:
        self.store.execute(
            "INSERT INTO twitter_marks (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    @property
    def last_mention_id(self) -> str | None:
        return self._mark("last_mention_id")

    def saw_mention(self, mention_id: str) -> None:
        """Mentions up to ``mention_id`` need not be fetched again (never moves back)."""
        with self.store.exclusive():
            last = self.last_mention_id
            if last is None or _newer(mention_id, last):
                self._set_mark("last_mention_id", mention_id)

    @property
    def last_post_at(self) -> float:
        """When the agent last posted on its own (replies aside): what tweet_interval spaces."""
        value = self._mark("last_post_at")
        return float(value) if value is not None else 0.0

    def posted_own(self) -> None:
        self._set_mark("last_post_at", repr(self.clock()))

    # --- what was said ---------------------------------------------------------------------------

    @staticmethod
    def fingerprint(text: str) -> str:
        return hashlib.sha256(" ".join(text.lower().split()).encode()).hexdigest()[:24]

    def already_posted(self, text: str) -> bool:
        """Posted, or being posted (by this server or one that died mid-post)."""
        rows = self.store.execute(
            "SELECT 1 FROM twitter_posted WHERE hash = ?", (self.fingerprint(text),)
        )
        return bool(rows)

    def replied(self, mention_id: str) -> bool:
        rows = self.store.execute(
            "SELECT 1 FROM twitter_replied WHERE mention_id = ?", (mention_id,)
        )
        return bool(rows)

    def replies_in(self, conversation: str) -> int:
        rows = self.store.execute(
            "SELECT replies FROM twitter_conversations WHERE conversation = ?", (conversation,)
        )
        return int(rows[0][0]) if rows else 0

    def posts_in(self, month: str) -> int:
        rows = self.store.execute("SELECT posts FROM twitter_budgets WHERE month = ?", (month,))
        return int(rows[0][0]) if rows else 0

    @property
    def posts(self) -> list[dict[str, Any]]:
        """The latest posts known to have gone out, oldest first: id, text, receipts (an
        imported state's hashes without their post are remembered, not listed)."""
        rows = self.store.execute(
            "SELECT post_id, text, receipts FROM twitter_posted WHERE state = ? AND post_id <> '' "
            "ORDER BY seq DESC LIMIT ?",
            (POSTED, KEEP),
        )
        return [{"id": i, "text": t, "receipts": json.loads(r)} for i, t, r in reversed(rows)]

    # --- posting: intent, then outcome -----------------------------------------------------------

    def begin_post(
        self,
        text: str,
        month: str,
        parts: int,
        budget: int,
        reply_to: str | None = None,
        conversation: str | None = None,
        max_replies: int | None = None,
    ) -> str | None:
        """Write the intent to post ``text`` (``parts`` posts, as a thread), as a reply to
        ``reply_to`` if given: None when written (post it now), else why not (posted before,
        the month's budget, the mention answered or its conversation full). All or nothing,
        in one transaction no other server interleaves with."""
        key = self.fingerprint(text)
        with self.store.exclusive():
            if self.store.execute("SELECT 1 FROM twitter_posted WHERE hash = ?", (key,)):
                return "the same text was posted before"
            if reply_to is not None:
                if self.replied(reply_to):
                    return f"mention {reply_to} was answered before"
                thread = conversation or reply_to
                if max_replies is not None and self.replies_in(thread) >= max_replies:
                    return f"conversation {thread} has {max_replies} replies already"
            used = self.posts_in(month)
            if used + parts > budget:
                return f"the monthly post budget of {budget} is reached"
            now = self.clock()
            # In the order written (clocks tie; the transaction makes the next number safe).
            self.store.execute(
                "INSERT INTO twitter_posted (hash, seq, at, state, text, reply_to) "
                "VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM twitter_posted), ?, ?, ?, ?)",
                (key, now, POSTING, text, reply_to or ""),
            )
            self.store.execute(
                "INSERT INTO twitter_budgets (month, posts) VALUES (?, ?) "
                "ON CONFLICT (month) DO UPDATE SET posts = twitter_budgets.posts + excluded.posts",
                (month, parts),
            )
            if reply_to is not None:
                thread = conversation or reply_to
                self.store.execute(
                    "INSERT INTO twitter_replied (mention_id, conversation, at) VALUES (?, ?, ?)",
                    (reply_to, thread, now),
                )
                self.store.execute(
                    "INSERT INTO twitter_conversations (conversation, replies) VALUES (?, 1) "
                    "ON CONFLICT (conversation) "
                    "DO UPDATE SET replies = twitter_conversations.replies + 1",
                    (thread,),
                )
        return None

    def finish_post(self, text: str, post_id: str, receipts: dict[str, Any]) -> None:
        """The post went out as ``post_id`` (the thread's first)."""
        self.store.execute(
            "UPDATE twitter_posted SET state = ?, post_id = ?, receipts = ? WHERE hash = ?",
            (POSTED, post_id, json.dumps(receipts), self.fingerprint(text)),
        )

    def abandon_post(self, text: str, month: str, parts: int) -> None:
        """Nothing went out (a hook blocked it, X refused it): forget the intent, so the text,
        the mention and the budget are as before it."""
        key = self.fingerprint(text)
        with self.store.exclusive():
            rows = self.store.execute(
                "DELETE FROM twitter_posted WHERE hash = ? AND state = ? RETURNING reply_to",
                (key, POSTING),
            )
            if not rows:
                return
            self.store.execute(
                "UPDATE twitter_budgets SET posts = posts - ? WHERE month = ?", (parts, month)
            )
            (reply_to,) = rows[0]
            if reply_to:
                gone = self.store.execute(
                    "DELETE FROM twitter_replied WHERE mention_id = ? RETURNING conversation",
                    (reply_to,),
                )
                if gone:
                    self.store.execute(
                        "UPDATE twitter_conversations SET replies = replies - 1 "
                        "WHERE conversation = ?",
                        (gone[0][0],),
                    )

    # --- before the store ------------------------------------------------------------------------

    def import_json(self, path: Path) -> None:
        """Take in a ``twitter-state.json`` the client wrote before it had a store, once."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("%s cannot be read (%s); the X client starts without it", path, exc)
            return
        if not isinstance(data, dict):
            log.warning("%s is not a JSON object; the X client starts without it", path)
            return
        with self.store.exclusive():
            if self._mark("imported") is not None:
                return
            self._import(data)
            self._set_mark("imported", path.name)
        log.info("imported %s into the agent's store twitter", path)

    def _import(self, data: dict[str, Any]) -> None:
        if data.get("last_mention_id"):
            self._set_mark("last_mention_id", str(data["last_mention_id"]))
        if data.get("last_post_at"):
            self._set_mark("last_post_at", repr(float(data["last_post_at"])))
        # Older first: State.posts lists them as they were.
        posts: Sequence[dict[str, Any]] = [p for p in data.get("posts") or [] if "text" in p]
        known = {self.fingerprint(str(p["text"])): p for p in posts}
        hashes = [str(h) for h in data.get("posted_hashes") or []]
        for h in known:
            if h not in hashes:
                hashes.append(h)
        self.store.executemany(
            "INSERT INTO twitter_posted (hash, seq, at, state, post_id, text, receipts) "
            "VALUES (?, ?, 0, ?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING",
            [
                (h, i, POSTED, str(known.get(h, {}).get("id", "")),
                 str(known.get(h, {}).get("text", "")),
                 json.dumps(known.get(h, {}).get("receipts") or {}))
                for i, h in enumerate(hashes, start=1)
            ],
        )  # fmt: skip
        self.store.executemany(
            "INSERT INTO twitter_replied (mention_id, conversation, at) VALUES (?, '', 0) "
            "ON CONFLICT (mention_id) DO NOTHING",
            [(str(m),) for m in data.get("replied_to") or []],
        )
        self.store.executemany(
            "INSERT INTO twitter_conversations (conversation, replies) VALUES (?, ?) "
            "ON CONFLICT (conversation) DO NOTHING",
            [(str(c), int(n)) for c, n in (data.get("replies_per_conversation") or {}).items()],
        )
        if data.get("month"):
            self.store.execute(
                "INSERT INTO twitter_budgets (month, posts) VALUES (?, ?) "
                "ON CONFLICT (month) DO NOTHING",
                (str(data["month"]), int(data.get("posts_this_month") or 0)),
            )


def _newer(a: str, b: str) -> bool:
    """X ids are numbers that grow with time; compare them as such (as text, "9" > "10")."""
    if a.isdigit() and b.isdigit():
        return int(a) > int(b)
    return a > b
