"""Memory and knowledge in Chroma, on a server shared by many hosts or embedded. chromadb is
imported on first use."""

from aigent_chroma.plugin import register_memory_stores

__all__ = ["register_memory_stores"]
