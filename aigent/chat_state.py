"""What a chat client (Discord, Telegram) must not forget across restarts, and across the
servers that may run the agent: where it has read up to in each source, the messages it
answered, its turns in a row with other bots per channel, the threads it follows and the
platform's session.

It lives in the agent's store named for the client (aigent.storage: ``discord.sqlite`` in the
data directory, or the agent's schema in the database a fleet shares), tables named for it
(``discord_replies``). A reply is written as an intent before it is sent, in one transaction
with the "answered already?" check, and marked sent after: whoever writes the intent first
answers, and an intent whose outcome is unknown (the server died mid-send) is never answered
again. Only a reply known not to have gone out is forgotten. A ``<name>-state.json`` from
before is imported once.

Calls block: make them from a thread (``run_blocking(POOL, ...)``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aigent.storage import Migration, Storage, StorageError

log = logging.getLogger("aigent.conversations")

POOL = "chat-state"
"""The thread pool chat clients' store calls run in (aigent.blocking)."""

KEEP = 5000  # answered messages and followed threads kept (the oldest forgotten first)
SENDING, SENT = "sending", "sent"


def migrations(name: str) -> tuple[Migration, ...]:
    """The store ``name``'s tables, prefixed with its name: on PostgreSQL an agent's stores
    share a schema. ``{name}_replies`` holds each answered message (``sending`` until the
    reply is known to have gone out, then ``sent``); ``{name}_marks`` the session and whether
    a JSON file was imported."""
    return (
        f"""
        CREATE TABLE {name}_watermarks (source TEXT PRIMARY KEY, last TEXT NOT NULL);
        CREATE TABLE {name}_replies (message TEXT PRIMARY KEY, seq BIGINT NOT NULL,
            at DOUBLE PRECISION NOT NULL, channel TEXT NOT NULL, from_bot BIGINT NOT NULL,
            state TEXT NOT NULL, reply TEXT NOT NULL DEFAULT '');
        CREATE INDEX {name}_replies_in_order ON {name}_replies (seq);
        CREATE TABLE {name}_bot_turns (channel TEXT PRIMARY KEY, turns BIGINT NOT NULL);
        CREATE TABLE {name}_threads (thread TEXT PRIMARY KEY, seq BIGINT NOT NULL);
        CREATE INDEX {name}_threads_in_order ON {name}_threads (seq);
        CREATE TABLE {name}_marks (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        """,
    )


class ChatState:
    """A chat client's memory in the agent's store ``name``."""

    def __init__(
        self,
        storage: Storage,
        name: str,
        legacy: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not name.isidentifier() or not name.islower():
            # It prefixes table names, which SQL reads unquoted.
            raise StorageError(f"a chat state's name is lower-case letters, digits and _: {name!r}")
        self.name = name
        self.store = storage.open(name, migrations(name))
        self.legacy = legacy
        self.clock = clock

    def ready(self) -> None:
        """Open the store now (and migrate it), and take in the JSON file the client kept
        before, if the store has not taken one in yet."""
        self.store.execute("SELECT 1")
        if self.legacy is not None and self.legacy.exists():
            self.import_json(self.legacy)

    # --- where it has read up to -----------------------------------------------------------------

    def watermark(self, source: str) -> str | None:
        """The last id handled in ``source`` (a channel, or the update stream)."""
        rows = self.store.execute(
            f"SELECT last FROM {self.name}_watermarks WHERE source = ?", (source,)
        )
        return str(rows[0][0]) if rows else None

    def advance(self, source: str, last: str) -> None:
        """Everything in ``source`` up to ``last`` is handled (never moves back)."""
        with self.store.exclusive():
            current = self.watermark(source)
            if current is None or _newer(last, current):
                self.store.execute(
                    f"INSERT INTO {self.name}_watermarks (source, last) VALUES (?, ?) "
                    "ON CONFLICT (source) DO UPDATE SET last = excluded.last",
                    (source, last),
                )

    def seen(self, message: str, source: str | None = None) -> bool:
        """``message`` was answered (or is being answered), or lies at or below ``source``'s
        watermark (ids that grow with time)."""
        if self.answered(message):
            return True
        mark = self.watermark(source) if source is not None else None
        return mark is not None and not _newer(message, mark)

    # --- answering: intent, then outcome ---------------------------------------------------------

    def answered(self, message: str) -> bool:
        rows = self.store.execute(
            f"SELECT 1 FROM {self.name}_replies WHERE message = ?", (message,)
        )
        return bool(rows)

    def bot_turns(self, channel: str) -> int:
        """Replies in a row to other bots in ``channel``, since a person last spoke there."""
        rows = self.store.execute(
            f"SELECT turns FROM {self.name}_bot_turns WHERE channel = ?", (channel,)
        )
        return int(rows[0][0]) if rows else 0

    def may_answer(self, message: str, channel: str, from_bot: bool, limit: int) -> str | None:
        """Before the model is asked: None if ``message`` may be answered, else why not. A
        person speaking resets the channel's bot turns; a bot may be answered ``limit`` times
        in a row, then not until a person speaks (two agents answering each other would
        otherwise never stop). :meth:`begin_reply` checks again, atomically."""
        if self.answered(message):
            return f"message {message} was answered before"
        if not from_bot:
            self.store.execute(f"DELETE FROM {self.name}_bot_turns WHERE channel = ?", (channel,))
            return None
        if self.bot_turns(channel) >= limit:
            return f"another bot was answered {limit} times in a row in {channel}"
        return None

    def begin_reply(self, message: str, channel: str, from_bot: bool, limit: int) -> str | None:
        """Write the intent to answer ``message`` (a bot's turn counted with it): None when
        written (send the reply now), else why not. In one transaction no other server
        interleaves with, so of two servers answering at once, one does."""
        with self.store.exclusive():
            if self.answered(message):
                return f"message {message} was answered before"
            if from_bot and self.bot_turns(channel) >= limit:
                return f"another bot was answered {limit} times in a row in {channel}"
            self.store.execute(
                f"INSERT INTO {self.name}_replies "
                "(message, seq, at, channel, from_bot, state) VALUES (?, "
                f"(SELECT COALESCE(MAX(seq), 0) + 1 FROM {self.name}_replies), ?, ?, ?, ?)",
                (message, self.clock(), channel, int(from_bot), SENDING),
            )
            if from_bot:
                self.store.execute(
                    f"INSERT INTO {self.name}_bot_turns (channel, turns) VALUES (?, 1) "
                    "ON CONFLICT (channel) "
                    f"DO UPDATE SET turns = {self.name}_bot_turns.turns + 1",
                    (channel,),
                )
        return None

    def finish_reply(self, message: str, reply: str, thread: str | None = None) -> None:
        """The reply went out as ``reply`` (its first part's id); in ``thread``, which the
        agent follows from now on."""
        with self.store.exclusive():
            self.store.execute(
                f"UPDATE {self.name}_replies SET state = ?, reply = ? WHERE message = ?",
                (SENT, reply, message),
            )
            if thread is not None:
                self.store.execute(
                    f"INSERT INTO {self.name}_threads (thread, seq) VALUES (?, "
                    f"(SELECT COALESCE(MAX(seq), 0) + 1 FROM {self.name}_threads)) "
                    "ON CONFLICT (thread) DO NOTHING",
                    (thread,),
                )
                self._prune("threads")
            self._prune("replies")

    def abandon_reply(self, message: str) -> None:
        """Nothing went out (the platform refused it, a hook blocked it): forget the intent,
        and the bot's turn it took, so the message can be answered later."""
        with self.store.exclusive():
            rows = self.store.execute(
                f"DELETE FROM {self.name}_replies WHERE message = ? AND state = ? "
                "RETURNING channel, from_bot",
                (message, SENDING),
            )
            if rows and rows[0][1]:
                self.store.execute(
                    f"UPDATE {self.name}_bot_turns SET turns = turns - 1 "
                    "WHERE channel = ? AND turns > 0",
                    (rows[0][0],),
                )

    def state_of(self, message: str) -> str | None:
        """``sending``, ``sent``, or None when ``message`` has no reply."""
        rows = self.store.execute(
            f"SELECT state FROM {self.name}_replies WHERE message = ?", (message,)
        )
        return str(rows[0][0]) if rows else None

    def follows(self, thread: str) -> bool:
        """The agent has answered in ``thread`` (or forum topic): it follows it."""
        rows = self.store.execute(f"SELECT 1 FROM {self.name}_threads WHERE thread = ?", (thread,))
        return bool(rows)

    def _prune(self, table: str) -> None:
        # Older ids than these lie below their source's watermark or update offset, which
        # keeps them from being handled again; the table stays small.
        self.store.execute(
            f"DELETE FROM {self.name}_{table} WHERE seq <= "
            f"(SELECT seq FROM {self.name}_{table} ORDER BY seq DESC LIMIT 1 OFFSET {KEEP})"
        )

    # --- the platform's session ------------------------------------------------------------------

    def _mark(self, name: str) -> str | None:
        rows = self.store.execute(f"SELECT value FROM {self.name}_marks WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else None

    def _set_mark(self, name: str, value: str) -> None:
        self.store.execute(
            f"INSERT INTO {self.name}_marks (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def session(self) -> dict[str, Any]:
        """What the platform needs to pick up where the client left off (a gateway session)."""
        value = self._mark("session")
        found = json.loads(value) if value is not None else {}
        return found if isinstance(found, dict) else {}

    def save_session(self, session: dict[str, Any]) -> None:
        self._set_mark("session", json.dumps(session))

    # --- before the store ------------------------------------------------------------------------

    def import_json(self, path: Path) -> None:
        """Take in the JSON file the client kept its state in before it had a store, once."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("%s cannot be read (%s); the %s client starts without it",
                        path, exc, self.name)  # fmt: skip
            return
        if not isinstance(data, dict):
            log.warning("%s is not a JSON object; the %s client starts without it", path, self.name)
            return
        with self.store.exclusive():
            if self._mark("imported") is not None:
                return
            self._import(data)
            self._set_mark("imported", path.name)
        log.info("imported %s into the agent's store %s", path, self.name)

    def _import(self, data: dict[str, Any]) -> None:
        t = self.name
        self.store.executemany(
            f"INSERT INTO {t}_watermarks (source, last) VALUES (?, ?) "
            "ON CONFLICT (source) DO NOTHING",
            [(str(s), str(v)) for s, v in (data.get("watermarks") or {}).items()],
        )
        # In the order they were answered: the oldest are forgotten first.
        start = int(self.store.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {t}_replies")[0][0])
        self.store.executemany(
            f"INSERT INTO {t}_replies (message, seq, at, channel, from_bot, state) "
            "VALUES (?, ?, 0, '', 0, ?) ON CONFLICT (message) DO NOTHING",
            [(str(m), start + i, SENT) for i, m in enumerate(data.get("replied") or [], 1)],
        )
        self.store.executemany(
            f"INSERT INTO {t}_bot_turns (channel, turns) VALUES (?, ?) "
            "ON CONFLICT (channel) DO NOTHING",
            [(str(c), int(n)) for c, n in (data.get("bot_turns") or {}).items()],
        )
        start = int(self.store.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {t}_threads")[0][0])
        self.store.executemany(
            f"INSERT INTO {t}_threads (thread, seq) VALUES (?, ?) ON CONFLICT (thread) DO NOTHING",
            [(str(th), start + i) for i, th in enumerate(data.get("threads") or [], 1)],
        )
        if isinstance(data.get("session"), dict) and data["session"]:
            self.store.execute(
                f"INSERT INTO {t}_marks (name, value) VALUES ('session', ?) "
                "ON CONFLICT (name) DO NOTHING",
                (json.dumps(data["session"]),),
            )


def _newer(a: str, b: str) -> bool:
    """Chat ids (Discord snowflakes, Telegram update ids) are numbers that grow with time;
    compare them as such (as text, "9" > "10")."""
    if a.isdigit() and b.isdigit():
        return int(a) > int(b)
    return a > b
