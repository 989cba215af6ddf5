"""One exception hierarchy. Every message says what happened and what to do next."""

from __future__ import annotations


class AigentError(Exception):
    """Base of every error aigent raises on purpose. The CLI prints these without a traceback."""


class CharacterError(AigentError):
    """A character file that cannot be used: names the file, the field and what was expected."""

    def __init__(self, file: str, problems: list[tuple[str, str]]) -> None:
        self.file = file
        self.problems = problems
        lines = [
            f"{file}: {field}: {what}" if field else f"{file}: {what}" for field, what in problems
        ]
        super().__init__("\n".join(lines))


class PluginError(AigentError):
    """A plugin failed to import or to configure; the agent does not start half-configured."""

    def __init__(self, plugin: str, problem: str, hint: str = "") -> None:
        self.plugin = plugin
        message = f"plugin {plugin!r}: {problem}"
        if hint:
            message += f"\n  hint: {hint}"
        super().__init__(message)


class ModelNotFound(AigentError):
    """No installed plugin serves the model a character asks for."""


class MissingSecret(AigentError):
    """A provider needs a key that is not configured. Says where to put it."""


class ModelError(AigentError):
    """A model call failed after retries and fallbacks."""


class ActionBlocked(AigentError):
    """A ``before_action`` hook refused an action (a spending limit, say)."""


class PublishBlocked(AigentError):
    """A ``before_publish`` hook refused to let a message out."""
