"""The system prompt: who the character is, in short native chat messages, not pages of rules."""

from __future__ import annotations

from collections.abc import Sequence

from aigent.character import Character

MAX_EXAMPLES = 3


def system_prompt(character: Character, context: Sequence[str] = ()) -> str:
    """The character's persona, its style and any context gathered for this message."""
    c = character
    parts = [c.system or f"You are {c.name}. Stay in character and answer as {c.name}."]
    if c.bio:
        parts.append("About you: " + " ".join(c.bio))
    if c.lore:
        parts.append("Background: " + " ".join(c.lore))
    if c.adjectives:
        parts.append("You are " + ", ".join(c.adjectives) + ".")
    if c.topics:
        parts.append("You know about: " + ", ".join(c.topics) + ".")
    style = [*c.style.all, *c.style.chat]
    if style:
        parts.append("Style: " + "; ".join(style) + ".")
    if c.message_examples:
        shown = []
        for convo in c.message_examples[:MAX_EXAMPLES]:
            lines = [f"{_speaker(turn.user, c.name)}: {turn.text}" for turn in convo]
            shown.append("\n".join(lines))
        parts.append("Examples of how you talk:\n" + "\n\n".join(shown))
    for block in context:
        if block:
            parts.append(block)
    return "\n\n".join(parts)


def _speaker(user: str, name: str) -> str:
    if user == name or user in {"{{agentName}}", "{{name2}}"}:
        return name
    return "User" if user.startswith("{{") else user
