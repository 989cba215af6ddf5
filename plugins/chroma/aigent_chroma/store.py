"""Conversation memory and knowledge in Chroma: embedded under the agent's data directory by
default, a Chroma server when ``memory.url`` (or ``CHROMA_URL``) is set.

Two collections per agent: ``<agent>-messages`` (every message and reply, with agent, user,
room and time) and ``<agent>-knowledge`` (chunks of the character's knowledge; ``shared``
entries go to ``shared-knowledge``). Each collection records the embedder and dimension it was
built with; opening it with another is refused rather than mixing vectors.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from aigent import AigentError, Embedder, Incoming, PluginContext, Recalled, Reply
from aigent_chroma.knowledge import Ingested, KnowledgeIngester

T = TypeVar("T")
CHARS_PER_TOKEN = 4  # a budget estimate; exact token counts would need the model's tokenizer


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run an embedder from synchronous code (ingestion), inside an event loop or not."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class EmbedderMismatch(AigentError):
    """A collection built with one embedder was opened with another."""


def collection_name(*parts: str) -> str:
    name = re.sub(r"[^a-zA-Z0-9._-]+", "-", "-".join(parts)).strip("-._")
    return (name or "agent")[:60].rstrip("-._") + "-v1"


def open_client(url: str | None, path: Path) -> Any:
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # no phoning home
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if url:
        parsed = urlparse(url if "://" in url else f"http://{url}")
        return chromadb.HttpClient(
            host=parsed.hostname or "localhost",
            port=parsed.port or 8000,
            ssl=parsed.scheme == "https",
            settings=settings,
        )
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=settings)


class ChromaStore:
    def __init__(self, ctx: PluginContext, embedder: Embedder) -> None:
        self.ctx = ctx
        self.embedder = embedder
        memory = ctx.character.memory
        self.top_k = memory.top_k
        self.min_score = memory.min_score
        self.budget_chars = memory.token_budget * CHARS_PER_TOKEN
        url = memory.url or ctx.secrets.get("CHROMA_URL")
        self.where = url or str(ctx.data_dir / "chroma")
        self.client = open_client(url, ctx.data_dir / "chroma")
        agent = ctx.character.name
        self.messages = self._collection(collection_name(agent, "messages"))
        self.knowledge = self._collection(collection_name(agent, "knowledge"))
        self._shared: Any = None
        self.ingester = KnowledgeIngester(ctx, self)

    # --- collections and the embedder guard ---------------------------------------------------

    def _collection(self, name: str) -> Any:
        dimension = self._dimension()
        collection = self.client.get_or_create_collection(
            name,
            embedding_function=None,
            metadata={
                "hnsw:space": "cosine",
                "aigent:embedder": self.embedder.name,
                "aigent:dimension": dimension,
            },
        )
        built_with = (collection.metadata or {}).get("aigent:embedder")
        built_dim = (collection.metadata or {}).get("aigent:dimension")
        if built_with != self.embedder.name or built_dim != dimension:
            raise EmbedderMismatch(
                f"memory collection {name!r} at {self.where} was built with embedder "
                f"{built_with!r} ({built_dim} dimensions), but this agent embeds with "
                f"{self.embedder.name!r} ({dimension} dimensions); mixing them would return "
                f"nonsense. Either set memory.embedder back to {built_with!r}, or rebuild with "
                f"`aigent memory clear {self.ctx.character.source or 'CHARACTER'}` (knowledge "
                "is re-ingested; past conversations are lost)"
            )
        return collection

    def _dimension(self) -> int:
        if not self.embedder.dimension:  # provider embedders learn it from a first call
            run_sync(self.embedder.embed(["dimension probe"]))
        return self.embedder.dimension

    def shared_knowledge(self) -> Any:
        if self._shared is None:
            self._shared = self._collection(collection_name("shared", "knowledge"))
        return self._shared

    # --- the MemoryStore protocol ----------------------------------------------------------------

    async def remember(self, message: Incoming, reply: Reply, agent: str) -> None:
        now = time.time()
        texts = [message.text, reply.text]
        vectors = await self.embedder.embed(texts)
        base = {
            "agent": agent,
            "user": message.user,
            "room": message.room,
            "client": message.client,
            "message_id": message.id,
        }
        await asyncio.to_thread(
            self.messages.add,
            ids=[f"{message.id}-in", f"{message.id}-out"],
            embeddings=vectors,
            documents=texts,
            metadatas=[
                {**base, "role": "user", "at": now},
                {**base, "role": "agent", "at": now + 1e-6},
            ],
        )

    async def recall(self, message: Incoming, agent: str) -> list[Recalled]:
        if self.top_k == 0:
            return []
        [vector] = await self.embedder.embed([message.text])
        found = await asyncio.to_thread(self._query, vector, message.user, agent)
        found = [r for r in found if r.score >= self.min_score and r.text != message.text]
        found.sort(key=lambda r: r.score, reverse=True)
        chosen: list[Recalled] = []
        used = 0
        for item in found[: self.top_k]:
            if used + len(item.text) > self.budget_chars:
                continue  # never a whole document in the prompt: chunks within the budget
            chosen.append(item)
            used += len(item.text)
        return chosen

    def _query(self, vector: list[float], user: str, agent: str) -> list[Recalled]:
        results: list[Recalled] = []
        where = {"$and": [{"agent": agent}, {"user": user}]}
        results += self._search(self.messages, vector, self.top_k, where)
        results += self._search(self.knowledge, vector, self.top_k, None)
        if self._shared is not None or self.ingester.uses_shared:
            results += self._search(self.shared_knowledge(), vector, self.top_k, None)
        return results

    @staticmethod
    def _search(
        collection: Any, vector: list[float], k: int, where: dict[str, Any] | None
    ) -> list[Recalled]:
        count = collection.count()
        if count == 0:
            return []
        result = collection.query(
            query_embeddings=[vector],
            n_results=min(k, count),
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        return [
            Recalled(text=doc, score=1.0 - dist, metadata=dict(meta or {}))
            for doc, meta, dist in zip(
                result["documents"][0],
                result["metadatas"][0],
                result["distances"][0],
                strict=True,
            )
        ]

    async def search(self, query: str, k: int = 5) -> list[Recalled]:
        """Best matches across messages and knowledge, for ``aigent memory search``."""
        [vector] = await self.embedder.embed([query])
        found = await asyncio.to_thread(
            lambda: (
                self._search(self.messages, vector, k, None)
                + self._search(self.knowledge, vector, k, None)
                + (
                    self._search(self.shared_knowledge(), vector, k, None)
                    if self.ingester.uses_shared
                    else []
                )
            )
        )
        return sorted(found, key=lambda r: r.score, reverse=True)[:k]

    async def ingest(self) -> Ingested:
        return await asyncio.to_thread(self.ingester.ingest)

    def stats(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "embedder": self.embedder.name,
            "dimension": self.embedder.dimension,
            "messages": self.messages.count(),
            "knowledge chunks": self.knowledge.count(),
            "knowledge files": len(self.ingester.manifest.files),
        }

    async def close(self) -> None:
        return None

    def add_chunks(
        self,
        collection: Any,
        ids: Sequence[str],
        texts: Sequence[str],
        meta: Sequence[dict[str, Any]],
    ) -> None:
        vectors = run_sync(self.embedder.embed(list(texts)))
        collection.upsert(
            ids=list(ids), embeddings=vectors, documents=list(texts), metadatas=list(meta)
        )
