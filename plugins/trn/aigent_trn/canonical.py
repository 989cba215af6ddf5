"""Canonical encoding of a published message, so anyone can recompute its leaf.

Encoding (version 1): UTF-8 JSON with sorted keys, no whitespace, of
``{"v": 1, "agent": <agent address>, "channel": "<client>:<room>" or channel_id,
"content": <text>, "time": <created_at as integer milliseconds>}``.
Milliseconds as an integer because floats do not round-trip across languages.
"""

from __future__ import annotations

import json
from typing import Any

ENCODING_VERSION = 1


def canonical_fields(agent: str, content: str, time_s: float, channel: str) -> dict[str, Any]:
    return {
        "v": ENCODING_VERSION,
        "agent": agent,
        "channel": channel,
        "content": content,
        "time": round(time_s * 1000),
    }


def canonical_bytes(agent: str, content: str, time_s: float, channel: str) -> bytes:
    fields = canonical_fields(agent, content, time_s, channel)
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def channel_of(message: Any) -> str:
    """The channel a message went to: its channel id if set, else client and room."""
    return message.channel_id or f"{message.client}:{message.room}"
