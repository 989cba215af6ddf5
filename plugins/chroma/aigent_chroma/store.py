"""Conversation memory and knowledge in Chroma: a Chroma server when ``memory.url`` (or
``CHROMA_URL``) is set, so agents on several hosts share one memory; embedded under the agent's
data directory when the character names ``"store": "chroma"`` without a server.

Two collections per agent: ``<agent>-messages`` (every message and reply, with agent, user,
room and time) and ``<agent>-knowledge`` (chunks of the character's knowledge; ``shared``
entries go to ``shared-knowledge``). Each collection records the embedder and dimension it was
built with; opening it with another is refused rather than mixing vectors.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

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
    within_budget,
)


def collection_name(*parts: str) -> str:
    name = re.sub(r"[^a-zA-Z0-9._-]+", "-", "-".join(parts)).strip("-._")
    return (name or "agent")[:60].rstrip("-._") + "-v1"


def server_url(ctx: PluginContext) -> str | None:
    return ctx.character.memory.url or ctx.secrets.get("CHROMA_URL")


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
        url = server_url(ctx)
        self.where = url or str(ctx.data_dir / "chroma")
        self.client = open_client(url, ctx.data_dir / "chroma")
        agent = ctx.character.name
        self.messages = self._collection(collection_name(agent, "messages"))
        self.knowledge = self._collection(collection_name(agent, "knowledge"))
        self._shared: Any = None
        self.ingester = KnowledgeIngester(
            ctx, self, embedder, ctx.data_dir / "knowledge-manifest.json"
        )

    # --- collections and the embedder guard ---------------------------------------------------

    def _collection(self, name: str) -> Any:
        dimension = embedder_dimension(self.embedder)
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
                f"memory collection {name!r} at {self.where}",
                built_with,
                built_dim,
                self.embedder,
                self.ctx,
            )
        return collection

    def shared_knowledge(self) -> Any:
        if self._shared is None:
            self._shared = self._collection(collection_name("shared", "knowledge"))
        return self._shared

    # --- the MemoryStore protocol ----------------------------------------------------------------

    async def remember(self, exchanges: Sequence[Exchange], agent: str) -> None:
        texts: list[str] = []
        ids: list[str] = []
        metadatas: list[dict[str, Any]] = []
        for exchange in exchanges:
            message = exchange.message
            base = {
                "agent": agent,
                "user": message.identity,
                "room": message.room,
                "client": message.client,
                "message_id": message.id,
            }
            texts += [message.text, exchange.reply.text]
            ids += [f"{message.id}-in", f"{message.id}-out"]
            metadatas += [
                {**base, "role": "user", "at": exchange.at},
                {**base, "role": "agent", "at": exchange.at + 1e-6},
            ]
        vectors = await self.embedder.embed(texts)
        await asyncio.to_thread(
            self.messages.upsert,
            ids=ids,
            embeddings=vectors,
            documents=texts,
            metadatas=metadatas,
        )

    async def recall(self, message: Incoming, agent: str) -> list[Recalled]:
        if self.top_k == 0:
            return []
        [vector] = await self.embedder.embed([message.text])
        found = await asyncio.to_thread(self._query, vector, message.identity, agent)
        return within_budget(found, message.text, self.top_k, self.min_score, self.budget_chars)

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

    async def close(self) -> None:
        return None

    # --- for `aigent memory` -----------------------------------------------------------------

    async def search(self, query: str, k: int = 5) -> list[Recalled]:
        """Best matches across messages and knowledge."""
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

    async def stats(self) -> dict[str, Any]:
        return {
            "store": "chroma",
            "where": self.where,
            "embedder": self.embedder.name,
            "dimension": self.embedder.dimension,
            "messages": await asyncio.to_thread(self.messages.count),
            "knowledge chunks": await asyncio.to_thread(self.knowledge.count),
            "knowledge files": len(self.ingester.manifest.files),
        }

    # --- the KnowledgeSink protocol ------------------------------------------------------------

    def add_chunks(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        vectors: Sequence[Sequence[float]],
        source: str,
        shared: bool,
    ) -> None:
        collection = self.shared_knowledge() if shared else self.knowledge
        collection.upsert(
            ids=list(ids),
            embeddings=[list(v) for v in vectors],
            documents=list(texts),
            metadatas=[{"source": source, "kind": "knowledge"} for _ in ids],
        )

    def delete_chunks(self, ids: Sequence[str], shared: bool) -> None:
        collection = self.shared_knowledge() if shared else self.knowledge
        collection.delete(ids=list(ids))


def clear(ctx: PluginContext) -> None:
    """Delete the agent's collections without opening them through the embedder guard:
    clearing is how a mismatch is fixed."""
    client = open_client(server_url(ctx), ctx.data_dir / "chroma")
    for kind in ("messages", "knowledge"):
        try:
            client.delete_collection(collection_name(ctx.character.name, kind))
        except Exception:  # not there: nothing to clear
            continue
    (ctx.data_dir / "knowledge-manifest.json").unlink(missing_ok=True)
