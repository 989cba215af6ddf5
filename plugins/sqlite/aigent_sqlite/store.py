"""Memory and knowledge in one SQLite file, ``<data_dir>/memory/memory.sqlite``.

Durability is SQLite's (WAL, synchronous=NORMAL: a committed batch survives a killed process).
Vectors are stored as float32 unit-vector blobs. Recall needs no index: the vectors of one
(agent, user) partition are loaded on its first recall into a matrix kept in a small LRU
(``settings.sqlite.cache_mb``, 64), topped up with newer rows at each recall, and scored with
one matrix-vector product; the knowledge rows likewise. Knowledge is ingested in a thread when
the store opens, so the agent is ready at once (the first recall waits for it only if it is
not done yet); numpy is imported there too when there is anything to score, else at the first
recall that finds rows.

The file records the embedder and dimension it was built with; opening it with another is
refused rather than mixing vectors.
"""

from __future__ import annotations

import array
import asyncio
import concurrent.futures
import math
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aigent import (
    CHARS_PER_TOKEN,
    Embedder,
    EmbedderMismatch,
    Exchange,
    Incoming,
    Ingested,
    KnowledgeIngester,
    PluginContext,
    Recalled,
    embedder_dimension,
    run_blocking,
    within_budget,
)

if TYPE_CHECKING:
    from aigent_sqlite.vectors import Rows

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL, user TEXT NOT NULL, room TEXT NOT NULL, client TEXT NOT NULL,
    message_id TEXT NOT NULL, role TEXT NOT NULL, at REAL NOT NULL, text TEXT NOT NULL,
    UNIQUE (message_id, role)
);
-- Vectors apart, clustered by partition: loading one user's rows is one range scan (with
-- 16 KiB pages a 2 KiB vector stays in its page), about 4x faster than a lookup per row.
CREATE TABLE IF NOT EXISTS vectors (
    agent TEXT NOT NULL, user TEXT NOT NULL, id INTEGER NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (agent, user, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS knowledge (
    id INTEGER PRIMARY KEY,
    chunk TEXT NOT NULL, scope TEXT NOT NULL, source TEXT NOT NULL,
    text TEXT NOT NULL, vector BLOB NOT NULL,
    UNIQUE (scope, chunk)
);
"""
SHARED = "shared"  # the knowledge scope every agent of the file sees
LOAD_SLICE = 4096
CACHE_KIB = 512  # per connection: the matrices are the cache that matters, not SQLite's pages
POOL = "memory"
"""Recalls and writes run in one small pool of their own (aigent's run_blocking): few threads
means few malloc arenas, which is most of what a busy agent's memory grew by otherwise."""
MESSAGE_FIELDS = ("agent", "user", "room", "client", "message_id", "role", "at")


def blob(vector: Sequence[float]) -> bytes:
    """A unit float32 vector as bytes: scoring is then a plain dot product."""
    norm = math.sqrt(math.fsum(v * v for v in vector)) or 1.0
    return array.array("f", [v / norm for v in vector]).tobytes()


class SQLiteStore:
    def __init__(self, ctx: PluginContext, embedder: Embedder) -> None:
        self.ctx = ctx
        self.embedder = embedder
        memory = ctx.character.memory
        self.agent = ctx.character.name
        self.top_k = memory.top_k
        self.min_score = memory.min_score
        self.budget_chars = memory.token_budget * CHARS_PER_TOKEN
        self.cache_bytes = int(float(ctx.settings.get("cache_mb", 64)) * 2**20)
        folder = ctx.data_dir / "memory"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "memory.sqlite"
        self._writer = self._connect(page_size=16384)  # a new file only
        self._writer.executescript(SCHEMA)
        self.dimension = self._guard()
        self._reader = self._connect()
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._partitions: OrderedDict[tuple[str, str], Rows] = OrderedDict()
        self._knowledge: Rows | None = None  # None: (re)load at the next recall
        self.ingester = KnowledgeIngester(ctx, self, embedder, folder / "knowledge-manifest.json")
        self._closed = False
        self._any_rows = False
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        threading.Thread(target=self._open_in_background, name="aigent-sqlite-open").start()

    def _connect(self, page_size: int | None = None) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        if page_size:
            conn.execute(f"PRAGMA page_size={page_size}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        return conn

    def _guard(self) -> int:
        dimension = embedder_dimension(self.embedder)
        wanted = {"embedder": self.embedder.name, "dimension": str(dimension)}
        self._writer.executemany(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", wanted.items()
        )
        built = dict(self._writer.execute("SELECT key, value FROM meta").fetchall())
        if built["embedder"] != wanted["embedder"] or built["dimension"] != wanted["dimension"]:
            self._writer.close()
            raise EmbedderMismatch(
                f"memory at {self.path}",
                built["embedder"],
                int(built["dimension"]),
                self.embedder,
                self.ctx,
            )
        return dimension

    def _open_in_background(self) -> None:
        try:
            if self.ctx.character.knowledge:
                self.ingester.ingest()  # needs no numpy: vectors are stored as plain bytes
            if self._has_rows():
                # numpy (the slow part of opening) only when there is something to score: an
                # agent with nothing stored (an empty knowledge folder included) imports it at
                # its first recall that finds rows, after it is ready.
                import aigent_sqlite.vectors  # noqa: F401
        except BaseException as exc:
            self.ctx.log.exception("memory could not be opened")
            self._ready.set_exception(exc)
        else:
            self._ready.set_result(None)

    def _has_rows(self) -> bool:
        """Whether anything at all is stored (cheap: one indexed probe; once true, cached)."""
        if not self._any_rows:
            with self._read_lock:
                [found] = self._reader.execute(
                    "SELECT EXISTS (SELECT 1 FROM vectors) OR EXISTS (SELECT 1 FROM knowledge)"
                ).fetchone()
                self._any_rows = bool(found)
        return self._any_rows

    async def ready(self) -> None:
        """Wait until numpy is imported and knowledge is ingested."""
        await asyncio.wrap_future(self._ready)

    # --- the MemoryStore protocol ----------------------------------------------------------------

    async def remember(self, exchanges: Sequence[Exchange], agent: str) -> None:
        texts = [t for e in exchanges for t in (e.message.text, e.reply.text)]
        vectors = await self.embedder.embed(texts)
        rows = []
        for i, exchange in enumerate(exchanges):
            m = exchange.message
            base = (agent, m.identity, m.room, m.client, m.id)
            rows.append((*base, "user", exchange.at, m.text, blob(vectors[2 * i])))
            reply = exchange.reply.text
            rows.append((*base, "agent", exchange.at + 1e-6, reply, blob(vectors[2 * i + 1])))
        await run_blocking(POOL, self._insert, rows)

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        with self._write_lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                # A batch retried after a failure that came after its commit is not stored twice.
                marks = ",".join("?" * len(rows))
                done = set(
                    self._writer.execute(
                        f"SELECT message_id, role FROM messages WHERE message_id IN ({marks})",
                        [r[4] for r in rows],
                    ).fetchall()
                )
                rows = [r for r in rows if (r[4], r[5]) not in done]
                [last] = self._writer.execute(
                    "SELECT coalesce(max(id), 0) FROM messages"
                ).fetchone()
                numbered = [(last + 1 + n, *row) for n, row in enumerate(rows)]
                self._writer.executemany(
                    "INSERT INTO messages (id, agent, user, room, client, message_id, role, at, "
                    "text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [r[:-1] for r in numbered],
                )
                self._writer.executemany(
                    "INSERT INTO vectors (agent, user, id, vector) VALUES (?, ?, ?, ?)",
                    [(r[1], r[2], r[0], r[-1]) for r in numbered],
                )
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    def _write(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """One transaction: a batch is stored whole or not at all."""
        with self._write_lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                self._writer.executemany(sql, rows)
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    async def recall(self, message: Incoming, agent: str) -> list[Recalled]:
        if self.top_k == 0:
            return []
        [vector] = await self.embedder.embed([message.text])
        if not self._ready.done():
            await self.ready()
        found = await run_blocking(POOL, self._recall, vector, agent, message.identity)
        return within_budget(found, message.text, self.top_k, self.min_score, self.budget_chars)

    def _recall(self, vector: list[float], agent: str, user: str) -> list[Recalled]:
        self._ready.result()  # an error while opening is raised here, for every recall
        if not self._has_rows():
            return []  # nothing stored yet: no need for numpy
        from aigent_sqlite.vectors import as_query

        query = as_query(vector)
        with self._read_lock:
            rows = self._partition(agent, user)
            messages = rows.top(query, self.top_k)
            knowledge = self._knowledge_rows().top(query, self.top_k)
            return self._messages(messages) + self._chunks(knowledge)

    def _partition(self, agent: str, user: str) -> Rows:
        from aigent_sqlite.vectors import Rows

        key = (agent, user)
        rows = self._partitions.pop(key, None)
        if rows is None:
            rows = Rows(self.dimension)
            [count] = self._reader.execute(
                "SELECT count(*) FROM vectors WHERE agent = ? AND user = ?", (agent, user)
            ).fetchone()
            rows.reserve(count)
        self._partitions[key] = rows  # the most recently used last
        self._load(
            rows,
            "SELECT id, vector FROM vectors WHERE agent = ? AND user = ? AND id > ? ORDER BY id",
            (agent, user, rows.last_id),
        )
        self._evict(keep=key)
        return rows

    def _load(self, rows: Rows, sql: str, args: tuple[Any, ...]) -> None:
        """Rows in slices: a first load of a large partition never holds its blobs twice."""
        cursor = self._reader.execute(sql, args)
        while found := cursor.fetchmany(LOAD_SLICE):
            rows.extend([r[0] for r in found], [r[1] for r in found])

    def _evict(self, keep: tuple[str, str]) -> None:
        total = sum(rows.nbytes for rows in self._partitions.values())
        for key in list(self._partitions):
            if total <= self.cache_bytes or key == keep:
                break
            total -= self._partitions.pop(key).nbytes

    def _knowledge_rows(self) -> Rows:
        from aigent_sqlite.vectors import Rows

        if self._knowledge is None:
            rows = Rows(self.dimension)
            self._load(
                rows,
                "SELECT id, vector FROM knowledge WHERE scope IN (?, ?) ORDER BY id",
                (self.agent, SHARED),
            )
            self._knowledge = rows
        return self._knowledge

    def _messages(self, scored: list[tuple[int, float]]) -> list[Recalled]:
        if not scored:
            return []
        score = dict(scored)
        marks = ",".join("?" * len(score))
        found = self._reader.execute(
            f"SELECT id, text, {', '.join(MESSAGE_FIELDS)} FROM messages WHERE id IN ({marks})",
            list(score),
        ).fetchall()
        return [
            Recalled(
                text=r[1], score=score[r[0]], metadata=dict(zip(MESSAGE_FIELDS, r[2:], strict=True))
            )
            for r in found
        ]

    def _chunks(self, scored: list[tuple[int, float]]) -> list[Recalled]:
        if not scored:
            return []
        score = dict(scored)
        marks = ",".join("?" * len(score))
        found = self._reader.execute(
            f"SELECT id, text, source FROM knowledge WHERE id IN ({marks})", list(score)
        ).fetchall()
        return [
            Recalled(text=r[1], score=score[r[0]], metadata={"source": r[2], "kind": "knowledge"})
            for r in found
        ]

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        concurrent.futures.wait([self._ready])  # an ingestion under way finishes first
        with self._write_lock, self._read_lock:
            self._partitions.clear()
            self._reader.close()
            self._writer.close()

    # --- for `aigent memory` -----------------------------------------------------------------

    async def search(self, query: str, k: int = 5) -> list[Recalled]:
        """Best matches across all of the agent's messages (every user) and its knowledge."""
        [vector] = await self.embedder.embed([query])
        await self.ready()
        return await run_blocking(POOL, self._search, vector, k)

    def _search(self, vector: list[float], k: int) -> list[Recalled]:
        from aigent_sqlite.vectors import Rows, as_query

        query = as_query(vector)
        with self._read_lock:
            every = Rows(self.dimension)  # not cached: a search is a one-off scan
            self._load(
                every, "SELECT id, vector FROM vectors WHERE agent = ? ORDER BY id", (self.agent,)
            )
            hits = self._messages(every.top(query, k))
            hits += self._chunks(self._knowledge_rows().top(query, k))
        return sorted(hits, key=lambda r: r.score, reverse=True)[:k]

    async def ingest(self) -> Ingested:
        await self.ready()
        return await asyncio.to_thread(self.ingester.ingest)

    async def stats(self) -> dict[str, Any]:
        await self.ready()
        return await asyncio.to_thread(self._stats)

    def _stats(self) -> dict[str, Any]:
        with self._read_lock:
            [messages] = self._reader.execute(
                "SELECT count(*) FROM messages WHERE agent = ?", (self.agent,)
            ).fetchone()
            [chunks] = self._reader.execute(
                "SELECT count(*) FROM knowledge WHERE scope IN (?, ?)", (self.agent, SHARED)
            ).fetchone()
            cached = sum(rows.nbytes for rows in self._partitions.values())
        return {
            "store": "sqlite",
            "where": str(self.path),
            "embedder": self.embedder.name,
            "dimension": self.dimension,
            "messages": messages,
            "knowledge chunks": chunks,
            "knowledge files": len(self.ingester.manifest.files),
            "cached partitions": f"{len(self._partitions)} ({cached / 2**20:.1f} MiB)",
        }

    # --- the KnowledgeSink protocol (called by the ingester, in a thread) -----------------------

    def add_chunks(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        vectors: Sequence[Sequence[float]],
        source: str,
        shared: bool,
    ) -> None:
        scope = SHARED if shared else self.agent
        rows = [
            (chunk, scope, source, text, blob(vector))
            for chunk, text, vector in zip(ids, texts, vectors, strict=True)
        ]
        self._write(
            "INSERT OR REPLACE INTO knowledge (chunk, scope, source, text, vector) "
            "VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        self._forget_knowledge_rows()

    def delete_chunks(self, ids: Sequence[str], shared: bool) -> None:
        scope = SHARED if shared else self.agent
        self._write(
            "DELETE FROM knowledge WHERE scope = ? AND chunk = ?", [(scope, i) for i in ids]
        )
        self._forget_knowledge_rows()

    def _forget_knowledge_rows(self) -> None:
        with self._read_lock:
            self._knowledge = None  # reloaded at the next recall
