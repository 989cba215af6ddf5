"""What travels through an agent: chat messages, tool calls, model responses and replies."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(BaseModel):
    """A model's request to run an action."""

    id: str = Field(default_factory=lambda: f"call_{uuid.uuid4().hex[:12]}")
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ChatMessage(BaseModel):
    """One message in the OpenAI chat shape, which every provider maps to and from."""

    role: Role
    content: str = ""
    name: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None


class ToolSpec(BaseModel):
    """An action offered to the model: its name, description and JSON-schema parameters."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        if other.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + other.cost_usd


class ModelResponse(BaseModel):
    """What a chat model returns for one call."""

    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    model: str = ""
    usage: Usage = Field(default_factory=Usage)


ActionError = Literal["unknown", "denied", "invalid", "timeout", "failed"]


class ActionResult(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    ok: bool
    output: str
    error: ActionError | None = None
    """Why it did not run, for code that must tell failures apart (an HTTP door, say):
    ``unknown`` action; ``denied`` by a policy (``spend_from``, a ``before_action`` hook, the
    spending limits); ``invalid`` arguments (a ``ValueError``); ``timeout``; ``failed`` (it
    ran and raised). None when ``ok``."""


class Incoming(BaseModel):
    """A message arriving at an agent, from any client."""

    text: str
    user: str = "user"
    room: str = "default"
    client: str = "direct"
    kind: Literal["message", "post"] = "message"
    """``post``: the agent is asked to write a post of its own (a social client's loop), so
    the prompt follows the character's post style and post examples."""
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    received_at: float = Field(default_factory=time.time)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def identity(self) -> str:
        """Who this is, for memory and history: ``user`` namespaced by the client it came
        through, so identities from different channels never meet (a payer over ILP who calls
        itself "user" is not the terminal's or an app's "user"). Messages from code and the
        terminal (``client="direct"``) keep the name the app gave."""
        return self.user if self.client == "direct" else f"{self.client}:{self.user}"


class Outgoing(BaseModel):
    """A message leaving an agent: what response hooks see and may annotate."""

    text: str
    agent: str
    kind: Literal["reply", "post", "paid_answer"] = "reply"
    client: str = "direct"
    room: str = "default"
    in_reply_to: str | None = None
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = Field(default_factory=time.time)
    channel_id: str | None = None
    receipts: dict[str, Any] = Field(default_factory=dict)


class Reply(BaseModel):
    """The agent's answer to one message, with how it was made.

    ``timings`` holds milliseconds per stage (context, model, actions, evaluators, memory,
    publish, total) so the framework's own overhead can be measured.
    """

    text: str
    message_id: str
    model: str = ""
    usage: Usage = Field(default_factory=Usage)
    actions: list[ActionResult] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    receipts: dict[str, Any] = Field(default_factory=dict)

    def __str__(self) -> str:
        return self.text


class PaidAnswer(BaseModel):
    """What comes back inside the Fulfill: the reply, and the receipts to verify it later."""

    model_config = ConfigDict(extra="ignore")
    text: str
    agent: str
    message_id: str = ""
    paid: int = 0
    asset_code: str = ""
    asset_scale: int = 0
    receipts: dict[str, Any] = {}
