"""A conversation in OpenAI's chat-completions shape, with tools native or described in text.

:func:`wire_messages` is what every OpenAI-format plugin sends. When a model cannot call tools
natively (small local models, some servers), :func:`tools_in_text` rewrites a conversation so
it needs no tool support, and :func:`parse_tool_calls` finds a call in the reply. A malformed
call stays plain text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from aigent.messages import ChatMessage, ToolCall, ToolSpec

INSTRUCTIONS = (
    "You can call these tools. To call one, answer with only a JSON object "
    '{{"tool": "<name>", "arguments": {{...}}}} and nothing else.\n{tools}'
)
_WHOLE_CALL = re.compile(r"(?:```(?:json)?\s*)?(\{.*\})(?:\s*```)?", re.DOTALL)


def tools_in_text(messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> list[ChatMessage]:
    """The conversation with tools described in the system message, earlier calls as JSON text
    and tool results as user turns."""
    out: list[ChatMessage] = []
    for m in messages:
        if m.role == "tool":
            out.append(ChatMessage(role="user", content=f"Result of {m.name}: {m.content}"))
        elif m.role == "assistant" and m.tool_calls:
            calls = [{"tool": c.name, "arguments": c.arguments} for c in m.tool_calls]
            text = json.dumps(calls[0] if len(calls) == 1 else calls)
            out.append(ChatMessage(role="assistant", content=text))
        else:
            out.append(ChatMessage(role=m.role, content=m.content))
    if tools:
        listing = "\n".join(
            f"- {t.name}: {t.description} Arguments (JSON schema): {json.dumps(t.parameters)}"
            for t in tools
        )
        described = INSTRUCTIONS.format(tools=listing)
        if out and out[0].role == "system":
            out[0] = ChatMessage(role="system", content=out[0].content + "\n\n" + described)
        else:
            out.insert(0, ChatMessage(role="system", content=described))
    return out


def parse_tool_calls(text: str, tools: Sequence[ToolSpec]) -> tuple[list[ToolCall], str]:
    """(calls, remaining text): a JSON call naming an offered tool, else ``([], text)``.

    A call is the model's whole turn, as the instructions ask (a code fence around it is
    allowed): a JSON object inside other text is text, such as a post or a message the model
    quotes back, and is never run."""
    match = _WHOLE_CALL.fullmatch(text.strip())
    if not match:
        return [], text
    try:
        data = json.loads(match.group(1))
    except json.JSONDecodeError:
        return [], text
    if not isinstance(data, dict) or data.get("tool") not in {t.name for t in tools}:
        return [], text
    arguments = data.get("arguments")
    return [
        ToolCall(name=data["tool"], arguments=arguments if isinstance(arguments, dict) else {})
    ], ""


def wire_messages(
    messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = (), native: bool = True
) -> list[dict[str, Any]]:
    """``messages`` as OpenAI's chat-completions ``messages``: with tool calls and results in
    its native fields, or (``native=False``) with tools described in the text."""
    if not native:
        return [{"role": m.role, "content": m.content} for m in tools_in_text(messages, tools)]
    out = []
    for m in messages:
        item: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            item["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                }
                for c in m.tool_calls
            ]
        if m.tool_call_id:
            item["tool_call_id"] = m.tool_call_id
            if m.name:
                item["name"] = m.name
        out.append(item)
    return out
