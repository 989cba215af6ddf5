"""Watching data into memory: watchers that plugins offer, a store of what they saw, a digest.

A plugin offers :class:`Watcher` objects through ``register_watchers``; each ``poll(since)``
returns :class:`Observation` items (an XRPL balance that changed, a TRN transfer, a post that
mentions the agent). The built-in ``watch`` plugin polls them on the character's schedule
(``settings.watch``), keeps each item once by ``(source, id)`` in ``watch.sqlite`` in the agent's
data directory (apart from conversation memory) at the time it happened, within a retention
window and a size budget per source, and recalls a time window's items for a question that
names one ("today", "since Monday", "in the last 3 days": :func:`window_of`).
``aigent analyze FILE --since 24h`` prints :func:`digest` of what was stored.
"""

from __future__ import annotations

import asyncio
import calendar
import json
import logging
import re
import time
import weakref
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aigent.errors import AigentError
from aigent.storage import FileStorage, Migration, SqliteStore, Storage, Store

log = logging.getLogger("aigent.watch")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``"30s"``, ``"5m"``, ``"24h"``, ``"30d"`` or ``"2w"``."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not found or float(found[1]) <= 0:
        raise ValueError(
            f"{text!r} is not a duration: write a number and a unit, e.g. 5m, 24h, 30d"
        )
    return float(found[1]) * _UNITS[found[2]]


@dataclass(frozen=True)
class Observation:
    """One thing a watcher saw. ``id`` is unique within ``source``: seeing it again is a no-op.
    ``time`` is when it happened (Unix seconds) by the platform's own clock where it has one (a
    post's creation, a ledger's close, a block's timestamp), else when it was first seen; the
    windows of questions and digests are read by it. ``data`` plain JSON values, with
    ``change`` (a number) when the item is a movement, so the digest can rank movers."""

    source: str
    id: str
    time: float
    text: str
    data: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Watcher(Protocol):
    """Something a plugin watches. ``name`` is the source its items are stored under."""

    name: str

    async def poll(self, since: float | None) -> list[Observation]:
        """Items since ``since`` (the newest stored item's time, None on the first poll): a
        hint, not a filter; returning an item already stored is harmless (the first one
        stored is kept, with its time)."""
        ...


class WatchConfig(BaseModel):
    """``settings.watch`` in a character file."""

    model_config = ConfigDict(extra="forbid")

    every: str = "5m"
    retention: str = "30d"
    max_items: int = Field(default=10_000, gt=0)
    sources: list[str] | None = None
    """Watcher names to poll; all the agent's plugins offer when absent."""

    @field_validator("every", "retention")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @classmethod
    def parse(cls, raw: object, file: Path | str | None = None) -> WatchConfig:
        where = str(file) if file else "character"
        try:
            return cls.model_validate({} if raw is None or raw is True else raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = "".join(f".{p}" for p in first["loc"])
            raise AigentError(
                f"{where}: settings.watch{path}: {first['msg']} "
                "(expected e.g. {every: 5m, retention: 30d, max_items: 10000, sources: [xrpl]})"
            ) from None


class Inbox:
    """A watcher for what a client already receives (a chat channel's messages): the client
    puts items as they arrive, each poll takes them. Bounded: past ``size`` unpolled
    items, the oldest are dropped; items not yet polled when the process ends are lost."""

    def __init__(self, name: str, size: int = 10_000) -> None:
        self.name = name
        self._items: deque[Observation] = deque(maxlen=size)

    def put(self, item: Observation) -> None:
        self._items.append(item)

    async def poll(self, since: float | None) -> list[Observation]:
        taken = list(self._items)
        self._items.clear()
        return taken


class LastSeen:
    """The last value a watcher saw of each thing it follows (a balance, a pool's reserve),
    kept in the agent's ``watch`` store (table ``last_seen``) so a restart, here or on the
    server that runs the agent next, compares with what was seen before it. :meth:`observe`
    turns a value into an item only when it differs: ``kind`` on first sight, ``change`` (with
    the difference in ``data["change"]``) after. Ids carry the values, so seeing the same thing
    again stores nothing new.

    ``path`` is the JSON file the values were kept in before (``xrpl-watched.json``): imported
    once, when the store has none for this source. Without ``storage`` the store is the one in
    that file's directory."""

    def __init__(self, source: str, path: Path, storage: Storage | None = None) -> None:
        self.source = source
        self.path = path
        self.store = (storage or FileStorage(path.parent)).open("watch", MIGRATIONS)
        self._last: dict[str, Decimal] | None = None
        self._saved: dict[str, Decimal] = {}

    def _read(self) -> dict[str, Decimal]:
        with self.store.exclusive():
            rows = self.store.execute(
                "SELECT key, value FROM last_seen WHERE source = ?", (self.source,)
            )
            if not rows and self.path.exists():
                legacy = {k: str(Decimal(v)) for k, v in json.loads(self.path.read_text()).items()}
                self.store.executemany(
                    "INSERT INTO last_seen (source, key, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (source, key) DO NOTHING",
                    [(self.source, k, v) for k, v in legacy.items()],
                )
                rows = list(legacy.items())
        return {str(k): Decimal(v) for k, v in rows}

    def _write(self, changed: dict[str, Decimal]) -> None:
        self.store.executemany(
            "INSERT INTO last_seen (source, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (source, key) DO UPDATE SET value = excluded.value",
            [(self.source, k, str(v)) for k, v in changed.items()],
        )

    async def load(self) -> None:
        if self._last is None:
            self._last = await asyncio.to_thread(self._read)
            self._saved = dict(self._last)

    async def save(self) -> None:
        """Call after a round: a crash before the service stores the round's items loses
        those moves (the next round compares with the new values), never records one twice."""
        if self._last is None:
            return
        changed = {k: v for k, v in self._last.items() if self._saved.get(k) != v}
        if changed:
            await asyncio.to_thread(self._write, changed)
            self._saved.update(changed)

    def observe(
        self, key: str, value: Decimal, now: float, text: str, kind: str
    ) -> Observation | None:
        """An item stamped ``now``, the time the move was first seen (a balance has no time
        of its own), or None when ``value`` is the last one seen: an unchanged value re-polled
        never moves into a later window. A change's id carries the values and that time, so
        a balance going back and forth is each move, none taken for an earlier one."""
        if self._last is None:
            raise RuntimeError("LastSeen.load() first")
        before = self._last.get(key)
        if before == value:
            return None
        self._last[key] = value
        if before is None:
            return Observation(self.source, f"{key}={value}", now, text, {"kind": kind, "key": key})
        change = value - before
        return Observation(
            self.source,
            f"{key}:{before}->{value}@{now:.3f}",
            now,
            f"{text} ({change:+f})",
            {"kind": "change", "key": key, "change": float(change), "value": str(value)},
        )


MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE IF NOT EXISTS observations (source TEXT NOT NULL, id TEXT NOT NULL,
        time DOUBLE PRECISION NOT NULL, text TEXT NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (source, id));
    CREATE INDEX IF NOT EXISTS observations_time ON observations (time);
    """,
    # 2: the last values watchers saw (LastSeen), once JSON files beside the store
    """
    CREATE TABLE IF NOT EXISTS last_seen (source TEXT NOT NULL, key TEXT NOT NULL,
        value TEXT NOT NULL, PRIMARY KEY (source, key));
    """,
)
"""The agent's store ``watch`` (aigent.storage): ``observations`` and ``last_seen``."""

_shared: weakref.WeakKeyDictionary[Any, Store] = weakref.WeakKeyDictionary()


_BATCH = 500  # rows per insert: 2,500 parameters, far below both databases' limits


class WatchStore:
    """Observations, one row per ``(source, id)``, in the agent's store ``watch`` (or the
    SQLite file at a path). Blocking; call it off the loop."""

    def __init__(self, where: Path | Store) -> None:
        self.store: Store = SqliteStore(where, MIGRATIONS) if isinstance(where, Path) else where

    def ready(self) -> None:
        """Open the store now (and migrate it)."""
        self.store.execute("SELECT 1")

    @staticmethod
    def path_in(data_dir: Path) -> Path:
        """Where an agent's watched items live, apart from its conversation memory."""
        return data_dir / "watch.sqlite"

    @staticmethod
    def where(storage: Storage) -> Path | Store:
        """Where the agent with ``storage`` keeps its watched items: the file in its data
        directory (which exists once something was watched), or its store in the database a
        fleet shares (opened once per storage, kept)."""
        if isinstance(storage, FileStorage):
            return WatchStore.path_in(storage.data_dir)
        if storage not in _shared:
            _shared[storage] = storage.open("watch", MIGRATIONS)
        return _shared[storage]

    def add(self, items: Sequence[Observation]) -> int:
        """Store ``items``; returns how many were new."""
        new = 0
        with self.store.exclusive():
            # Rows in batches: one round trip each, not one per item (a database over the
            # network made a round of 10,000 items take 1.5 s one by one).
            for start in range(0, len(items), _BATCH):
                batch = items[start : start + _BATCH]
                rows = ", ".join(["(?, ?, ?, ?, ?)"] * len(batch))
                args = [v for o in batch for v in (o.source, o.id, o.time, o.text,
                                                    json.dumps(o.data))]  # fmt: skip
                new += len(
                    self.store.execute(
                        f"INSERT INTO observations VALUES {rows} "
                        "ON CONFLICT (source, id) DO NOTHING RETURNING id",
                        args,
                    )
                )
        return new

    def prune(self, retention: float, max_items: int, now: float | None = None) -> int:
        """Drop items older than ``retention`` seconds, then each source's oldest beyond
        ``max_items`` (per source, so a busy channel never pushes out the chain's moves)."""
        cutoff = (now if now is not None else time.time()) - retention
        with self.store.exclusive():
            old = self.store.execute(
                "DELETE FROM observations WHERE time < ? RETURNING id", (cutoff,)
            )
            over = self.store.execute(
                "DELETE FROM observations WHERE (source, id) IN (SELECT source, id FROM (SELECT "
                "source, id, ROW_NUMBER() OVER (PARTITION BY source ORDER BY time DESC, id DESC) "
                "AS n FROM observations) AS ranked WHERE n > ?) RETURNING id",
                (max_items,),
            )
        return len(old) + len(over)

    def latest(self, source: str) -> float | None:
        ((latest,),) = self.store.execute(
            "SELECT MAX(time) FROM observations WHERE source = ?", (source,)
        )
        return None if latest is None else float(latest)

    def floor(self, source: str, max_items: int) -> float | None:
        """The time of ``source``'s oldest kept item when it holds ``max_items`` or more (an
        older item would be dropped as soon as stored), else None."""
        rows = self.store.execute(
            "SELECT time FROM observations WHERE source = ? ORDER BY time DESC LIMIT 1 OFFSET ?",
            (source, max_items - 1),
        )
        return float(rows[0][0]) if rows else None

    def items(self, since: float = 0.0, until: float | None = None) -> list[Observation]:
        """Items in ``[since, until]``, oldest first."""
        rows = self.store.execute(
            "SELECT source, id, time, text, data FROM observations "
            "WHERE time >= ? AND time <= ? ORDER BY time, source, id",
            (since, until if until is not None else float("inf")),
        )
        return [Observation(s, i, float(t), x, json.loads(d)) for s, i, t, x, d in rows]

    def count(self) -> int:
        ((count,),) = self.store.execute("SELECT COUNT(*) FROM observations")
        return int(count)

    def close(self) -> None:
        self.store.close()


def watched(where: Path | Store) -> bool:
    """Whether anything may have been watched there (a file not made yet holds nothing)."""
    return where.exists() if isinstance(where, Path) else True


def read_window(where: Path | Store, since: float, until: float | None = None) -> list[Observation]:
    """The items stored at ``where`` (:meth:`WatchStore.where`) in ``[since, until]`` (none if
    nothing was watched yet). Blocking: off the event loop in async code."""
    if not watched(where):
        return []
    store = WatchStore(where)
    try:
        return store.items(since, until)
    finally:
        if isinstance(where, Path):  # a store given is its owner's to close
            store.close()


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(seconds))


@dataclass
class SourceSummary:
    """What one source brought in a window: how many items of each kind, the biggest changes
    (by ``data["change"]``) and the latest items, newest first."""

    source: str
    count: int
    kinds: dict[str, int]
    top: list[Observation]
    latest: list[Observation]


def summarize(items: Sequence[Observation], top: int = 3, latest: int = 3) -> list[SourceSummary]:
    """Per source, in name order: the figures :func:`digest` prints (and the server shows)."""
    by_source: dict[str, list[Observation]] = {}
    for item in items:
        by_source.setdefault(item.source, []).append(item)
    out = []
    for source in sorted(by_source):
        group = sorted(by_source[source], key=lambda o: o.time)
        kinds = Counter(str(o.data.get("kind", "item")) for o in group)
        movers = [o for o in group if isinstance(o.data.get("change"), int | float)]
        ranked = sorted(movers, key=lambda o: (-abs(float(o.data["change"])), o.time))
        out.append(
            SourceSummary(
                source, len(group), dict(sorted(kinds.items())), ranked[:top], group[::-1][:latest]
            )
        )
    return out


def digest(
    items: Sequence[Observation], since: float, now: float | None = None, latest: int = 3
) -> str:
    """A plain digest per source: how many items, the biggest movers, the ``latest`` items."""
    now = now if now is not None else time.time()
    head = f"Watched since {_when(since)} UTC until {_when(now)} UTC: {len(items)} item(s)."
    if not items:
        return head + "\nNothing was observed in this window."
    lines = [head]
    for summary in summarize(items, latest=latest):
        counted = ", ".join(f"{n} {k}" for k, n in summary.kinds.items())
        lines.append(f"\n{summary.source}: {summary.count} item(s) ({counted})")
        if summary.top:
            lines.append("  top changes:")
            lines.extend(f"    {o.text}" for o in summary.top)
        lines.append("  latest:")
        lines.extend(f"    {_when(o.time)}  {o.text}" for o in summary.latest)
    return "\n".join(lines)


_DAY = 86400
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10, "twelve": 12}  # fmt: skip
_SPAN_UNITS = {**_UNITS, "minute": 60, "min": 60, "hour": 3600, "hr": 3600, "day": _DAY,
               "week": 7 * _DAY, "month": 30 * _DAY}  # fmt: skip
_SPAN = re.compile(
    r"\b(?:last|past|previous)\s+(\d+|" + "|".join(_NUMBERS) + r")\s*"
    r"(minute|min|hour|hr|day|week|month|[mhdw])s?\b"
)
_BARE_SPAN = re.compile(r"\b(\d+)\s*([hdw])\b")  # "24h", "7d"
_ONE_UNIT = re.compile(r"\b(?:the\s+)?(?:last|past)\s+(minute|hour|day)\b")
_SINCE_DAY = re.compile(r"\bsince\s+(?:last\s+)?(" + "|".join(_WEEKDAYS) + r"|yesterday)\b")
_SINCE_DATE = re.compile(r"\bsince\s+(\d{4}-\d{2}-\d{2})\b")
_ROLLING = re.compile(r"\b(?:the\s+(?:last|past)|past)\s+(week|month)\b")


def window_of(question: str, now: float | None = None) -> tuple[float, float] | None:
    """The time window ``(since, until)`` in Unix seconds that ``question`` names, or None
    when it names none. Simple English, days in UTC (weeks start on Monday):

    - "today" (or "this morning", "tonight"): since midnight; "yesterday": the whole of
      yesterday; "since yesterday", "since Monday", "since 2026-11-28": from that day's
      midnight (a weekday is its latest one, today included);
    - "this week" / "this month" / "this year": since the week's Monday, the month's first,
      January 1st; "last week" / "last month": the whole previous calendar week or month;
    - "the last week", "past week", "past month": the last 7 or 30 days;
    - "last 24h", "in the last 3 days", "past two weeks", "last hour", "24h", "7d": that
      long before now (a month is 30 days).
    """
    now = now if now is not None else time.time()
    text = question.lower()
    midnight = now - now % _DAY
    monday = midnight - time.gmtime(now).tm_wday * _DAY

    span = _SPAN.search(text) or _BARE_SPAN.search(text)
    if span:
        count = float(_NUMBERS.get(span[1]) or span[1])
        return now - count * _SPAN_UNITS[span[2]], now
    if found := _ONE_UNIT.search(text):
        return now - _SPAN_UNITS[found[1]], now
    if found := _SINCE_DATE.search(text):
        try:
            named = calendar.timegm(time.strptime(found[1], "%Y-%m-%d"))
        except ValueError:
            return None
        return float(named), now
    if found := _SINCE_DAY.search(text):
        if found[1] == "yesterday":
            return midnight - _DAY, now
        back = (time.gmtime(now).tm_wday - _WEEKDAYS.index(found[1])) % 7
        return midnight - back * _DAY, now
    if found := _ROLLING.search(text):
        return now - _SPAN_UNITS[found[1]], now
    if re.search(r"\b(?:today|tonight|this morning|this afternoon|this evening)\b", text):
        return midnight, now
    if re.search(r"\byesterday\b", text):
        return midnight - _DAY, midnight
    if re.search(r"\bthis week\b", text):
        return monday, now
    if re.search(r"\b(?:last|previous) week\b", text):
        return monday - 7 * _DAY, monday
    day = time.gmtime(now)
    first = float(calendar.timegm((day.tm_year, day.tm_mon, 1, 0, 0, 0)))
    if re.search(r"\bthis month\b", text):
        return first, now
    if re.search(r"\b(?:last|previous) month\b", text):
        year, month = (day.tm_year, day.tm_mon - 1) if day.tm_mon > 1 else (day.tm_year - 1, 12)
        return float(calendar.timegm((year, month, 1, 0, 0, 0))), first
    if re.search(r"\bthis year\b", text):
        return float(calendar.timegm((day.tm_year, 1, 1, 0, 0, 0))), now
    return None


class WatchService:
    """Polls the watchers on a schedule and stores what they return; runs while the agent
    runs. ``poll_once`` is one round, for tests and for a first look on start."""

    name = "watch"

    def __init__(
        self, watchers: Sequence[Watcher], config: WatchConfig, store_path: Path | Store
    ) -> None:
        self.watchers = watchers
        self.config = config
        self.store_path = store_path
        self._store: WatchStore | None = None
        self._task: asyncio.Task[None] | None = None

    async def _open(self) -> WatchStore:
        if self._store is None:
            store = WatchStore(self.store_path)
            # Opened and migrated here: a store this aigent cannot use (a newer version) stops
            # the agent as it starts, rather than failing every round after.
            await asyncio.to_thread(store.ready)
            self._store = store
        return self._store

    def _chosen(self) -> list[Watcher]:
        wanted = self.config.sources
        return [w for w in self.watchers if wanted is None or w.name in wanted]

    async def poll_once(self) -> int:
        """One round over every chosen watcher; returns how many new items were stored. A
        watcher that fails is logged and retried next round; the others still run."""
        store = await self._open()
        retention = parse_duration(self.config.retention)
        added = 0
        for watcher in self._chosen():
            since = await asyncio.to_thread(store.latest, watcher.name)
            try:
                found = await watcher.poll(since)
            except Exception as exc:
                log.warning("watcher %s failed: %s: %s", watcher.name, type(exc).__name__, exc)
                continue
            # Items carry the platform's time: one already past the retention window, or older
            # than a full source keeps, is not stored (it would be dropped at once and come
            # back as new every round).
            floor = await asyncio.to_thread(store.floor, watcher.name, self.config.max_items)
            cutoff = max(time.time() - retention, floor if floor is not None else 0.0)
            fresh = [o for o in found if o.time >= cutoff]
            added += await asyncio.to_thread(store.add, fresh)
        await asyncio.to_thread(store.prune, retention, self.config.max_items)
        return added

    async def _loop(self) -> None:
        every = parse_duration(self.config.every)
        while True:
            try:
                await self.poll_once()
            except Exception:  # the store failed (a full disk, say): try again next round
                log.exception("watch: a round failed")
            await asyncio.sleep(every)

    async def start(self) -> None:
        names = {w.name for w in self.watchers}
        unknown = sorted(set(self.config.sources or ()) - names)
        if unknown:
            raise AigentError(
                f"settings.watch.sources names {', '.join(unknown)}, which no plugin of this "
                f"agent watches; the agent's plugins watch: {', '.join(sorted(names)) or 'nothing'}"
            )
        await self._open()
        self._task = asyncio.create_task(self._loop(), name="aigent-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._store is not None:
            await asyncio.to_thread(self._store.close)
            self._store = None


def named_sources(question: str, sources: set[str]) -> set[str]:
    """The ``sources`` that ``question`` names as words ("what moved on the xrpl today?")."""
    text = question.lower()
    return {s for s in sources if re.search(rf"\b{re.escape(s.lower())}\b", text)}


class WatchRecall:
    """Context: for a question naming a time window, the digest of that window's items (the
    ``LATEST`` newest of each source, so the model can quote them); only the sources the
    question names, when it names any."""

    name = "watch"
    LATEST = 10

    def __init__(self, store_path: Path | Store) -> None:
        self.store_path = store_path

    async def get(self, message: Any, agent: Any) -> str | None:
        window = window_of(str(getattr(message, "text", "")))
        if window is None or not watched(self.store_path):
            return None
        since, until = window
        items = await asyncio.to_thread(read_window, self.store_path, since, until)
        named = named_sources(str(getattr(message, "text", "")), {o.source for o in items})
        if named:
            items = [o for o in items if o.source in named]
        text = digest(items, since, until, latest=self.LATEST)
        return "What the agent watched in the window the question names:\n" + text
