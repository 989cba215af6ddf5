"""A local model, in-process, with llama.cpp: the default when a character names no model."""

from aigent_local.plugin import register_commands, register_models

__all__ = ["register_commands", "register_models"]
