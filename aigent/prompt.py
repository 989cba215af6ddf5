"""The system prompt: who the character is, in short native chat messages, not pages of rules."""

from __future__ import annotations

from collections.abc import Sequence

from aigent.character import Character

MAX_EXAMPLES = 3
MAX_POST_EXAMPLES = 5


def system_prompt(
    character: Character, context: Sequence[str] = (), *, kind: str = "message"
) -> str:
    """The character's persona, its style and any context gathered for this message; for a
    ``post`` (a social client asking for one), the post style and post examples instead of the
    chat style and conversations."""
    c = character
    handle = f" (@{c.username.lstrip('@')})" if c.username else ""
    parts = [c.system or f"You are {c.name}{handle}. Stay in character and answer as {c.name}."]
    if c.bio:
        parts.append("About you: " + " ".join(c.bio))
    if c.lore:
        parts.append("Background: " + " ".join(c.lore))
    if c.adjectives:
        parts.append("You are " + ", ".join(c.adjectives) + ".")
    if c.topics:
        parts.append("You know about: " + ", ".join(c.topics) + ".")
    style = [*c.style.all, *(c.style.post if kind == "post" else c.style.chat)]
    if style:
        parts.append("Style: " + "; ".join(style) + ".")
    if kind == "post" and c.post_examples:
        shown_posts = "\n".join(f"- {post}" for post in c.post_examples[:MAX_POST_EXAMPLES])
        parts.append("Examples of your posts:\n" + shown_posts)
    elif c.message_examples:
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
