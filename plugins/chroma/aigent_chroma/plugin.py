"""Hooks: the ``chroma`` memory store, the ``hashing`` and ``litellm`` embedders, and
``aigent memory``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aigent import hookimpl

if TYPE_CHECKING:
    import typer

    from aigent import Embedder, PluginContext
    from aigent_chroma.store import ChromaStore


def chroma_store(ctx: PluginContext, embedder: Embedder) -> ChromaStore:
    from aigent import progress
    from aigent_chroma.store import ChromaStore

    with progress(f"opening memory for {ctx.character.name}"):
        store = ChromaStore(ctx, embedder)
    if ctx.character.knowledge:
        with progress("ingesting knowledge (only what changed)"):
            store.ingester.ingest()
    return store


@hookimpl
def register_embedders(register: Any) -> None:
    from aigent_chroma.embedders import hashing, litellm_embedder

    register("hashing", hashing)
    register("litellm", litellm_embedder)


@hookimpl
def register_memory_stores(register: Any) -> None:
    register("chroma", chroma_store)


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from aigent_chroma.commands import add_commands

    add_commands(cli)
