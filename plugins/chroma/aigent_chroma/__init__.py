"""Memory and knowledge for aigent agents, in Chroma. chromadb is imported on first use."""

from aigent_chroma.plugin import register_commands, register_embedders, register_memory_stores

__all__ = ["register_commands", "register_embedders", "register_memory_stores"]
