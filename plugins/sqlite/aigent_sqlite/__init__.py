"""The default memory store: messages and knowledge in one SQLite file (WAL) under the agent's
data directory, recalled by one matrix-vector product per partition (numpy, imported in the
background when memory opens)."""

from aigent_sqlite.plugin import register_memory_stores

__all__ = ["register_memory_stores"]
