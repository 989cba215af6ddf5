"""Hooks: the ``chroma`` memory store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aigent import hookimpl

if TYPE_CHECKING:
    from aigent import Embedder, PluginContext
    from aigent_chroma.store import ChromaStore


class Chroma:
    """The store's factory. Chosen when the character names it, or (``accepts``) when a
    Chroma server is configured, before the default embedded store."""

    def __call__(self, ctx: PluginContext, embedder: Embedder) -> ChromaStore:
        from aigent import progress
        from aigent_chroma.store import ChromaStore

        with progress(f"opening memory for {ctx.character.name}"):
            store = ChromaStore(ctx, embedder)
        if ctx.character.knowledge:
            with progress("ingesting knowledge (only what changed)"):
                store.ingester.ingest()
        return store

    def accepts(self, ctx: PluginContext) -> bool:
        from aigent_chroma.store import server_url  # chromadb is not imported by this

        return server_url(ctx) is not None

    def clear(self, ctx: PluginContext) -> None:
        from aigent_chroma.store import clear

        clear(ctx)


@hookimpl(tryfirst=True)
def register_memory_stores(register: Any) -> None:
    register("chroma", Chroma())
