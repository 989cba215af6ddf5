"""Hooks: the ``sqlite`` memory store, the one used when nothing else is asked for."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

from aigent import hookimpl

if TYPE_CHECKING:
    from aigent import Embedder, PluginContext
    from aigent_sqlite.store import SQLiteStore


class SQLite:
    """The store's factory; ``trylast``, so a store that asks for particular settings (a
    Chroma server, say) is offered them first and this one takes everything else."""

    def __call__(self, ctx: PluginContext, embedder: Embedder) -> SQLiteStore:
        from aigent_sqlite.store import SQLiteStore

        return SQLiteStore(ctx, embedder)

    def clear(self, ctx: PluginContext) -> None:
        shutil.rmtree(ctx.data_dir / "memory", ignore_errors=True)


@hookimpl(trylast=True)
def register_memory_stores(register: Any) -> None:
    register("sqlite", SQLite())
