"""The chat-completions wire format: request bodies out, replies and stream chunks in.

Replies are read as plain JSON (no per-call model validation): only the fields aigent uses are
looked at, and a reply without them is a :class:`WireError` with a short reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aigent import ToolCall, ToolSpec

# Reasoning models take max_completion_tokens and only the default temperature.
_REASONING = ("o1", "o3", "o4", "gpt-5")


class WireError(ValueError):
    """A reply that does not have the chat-completions shape."""


def tools_out(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in tools
    ]


def request_body(
    model: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    *,
    temperature: float | None,
    max_tokens: int | None,
    stream: bool,
    usage_in_stream: bool,
) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": messages}
    if tools:
        body["tools"] = tools
    reasoning = model.startswith(_REASONING)
    if temperature is not None and not reasoning:
        body["temperature"] = temperature
    if max_tokens is not None:
        body["max_completion_tokens" if reasoning else "max_tokens"] = max_tokens
    if stream:
        body["stream"] = True
        if usage_in_stream:
            body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


def parse_reply(raw: bytes) -> tuple[str, list[ToolCall], dict[str, Any]]:
    """(text, tool calls, usage) of a whole chat completion."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise WireError(f"the reply was not JSON: {_preview(raw)}") from None
    try:
        message = data["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise WireError(f"the reply had no message: {_preview(raw)}") from None
    if not isinstance(message, dict):
        raise WireError(f"the reply had no message: {_preview(raw)}")
    usage = data.get("usage")
    return (
        message.get("content") or "",
        tool_calls(message.get("tool_calls") or []),
        usage if isinstance(usage, dict) else {},
    )


def tool_calls(raw: list[Any]) -> list[ToolCall]:
    calls = []
    for call in raw:
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except (json.JSONDecodeError, TypeError):
            arguments = None
        calls.append(
            ToolCall(
                # Malformed arguments reach the action as none at all: its validation then
                # tells the model what is missing, and it can try again.
                arguments=arguments if isinstance(arguments, dict) else {},
                name=function.get("name") or "",
                **({"id": call["id"]} if call.get("id") else {}),
            )
        )
    return calls


class StreamReader:
    """Puts a reply back together from its ``data:`` events: text, tool-call deltas by index,
    and usage (in its own last chunk, or on the finishing one as some servers send it)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] = {}
        self.finished = False

    def feed(self, line: str) -> str | None:
        """One line of the event stream; returns the text it adds, if any."""
        if not line.startswith("data:"):
            return None  # blank separators, ": keep-alive" comments, "event:" names
        payload = line[5:].strip()
        if payload == "[DONE]":
            self.finished = True
            return None
        try:
            chunk = json.loads(payload)
        except json.JSONDecodeError:
            raise WireError(f"a stream event was not JSON: {payload[:120]}") from None
        if not isinstance(chunk, dict):
            raise WireError(f"a stream event was not an object: {payload[:120]}")
        if "error" in chunk:
            raise WireError(f"the server reported an error mid-stream: {error_text(chunk)}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        choices = chunk.get("choices")
        if not choices:
            return None
        choice = choices[0]
        if choice.get("finish_reason"):
            self.finished = True
        delta = choice.get("delta") or {}
        for position, call in enumerate(delta.get("tool_calls") or ()):
            index = call.get("index", position)
            whole = self.calls.setdefault(index, {"id": None, "name": "", "arguments": ""})
            whole["id"] = call.get("id") or whole["id"]
            function = call.get("function") or {}
            # The name comes whole, once (some servers repeat it): the first one stands.
            whole["name"] = whole["name"] or function.get("name") or ""
            whole["arguments"] += function.get("arguments") or ""
        piece = delta.get("content")
        if piece:
            self.parts.append(piece)
            return str(piece)
        return None

    def tool_calls(self) -> list[ToolCall]:
        return tool_calls(
            [
                {"id": c["id"], "function": {"name": c["name"], "arguments": c["arguments"]}}
                for _, c in sorted(self.calls.items())
            ]
        )


def error_text(data: Any) -> str:
    """The human part of an error body: OpenAI's ``error.message``, Ollama's ``error``,
    FastAPI servers' ``detail``."""
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            value = data.get(key)
            if isinstance(value, dict):
                return error_text(value)
            if value:
                return str(value) if isinstance(value, str) else json.dumps(value)[:300]
    return json.dumps(data)[:300]


def error_message(raw: bytes) -> str:
    try:
        return error_text(json.loads(raw))[:300]
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _preview(raw)


def _preview(raw: bytes) -> str:
    text = raw[:120].decode("utf-8", "replace").strip()
    return repr(text) if text else "(empty)"
