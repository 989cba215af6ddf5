"""aigent: AI agents that earn and pay.

The public surface is re-exported here; heavy SDKs are never imported by ``import aigent``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from aigent._progress import enable as enable_progress
    from aigent._progress import progress
    from aigent.actions import Action, moves_value
    from aigent.amounts import format_amount
    from aigent.blocking import run as run_blocking
    from aigent.character import Character, Loop, ModelConfig, Price, Task, load_character
    from aigent.errors import (
        ActionBlocked,
        AigentError,
        CharacterError,
        MissingSecret,
        ModelError,
        ModelNotFound,
        PluginError,
        PublishBlocked,
    )
    from aigent.hookspecs import hookimpl
    from aigent.interfaces import (
        ChannelState,
        ChatModel,
        Client,
        ContextProvider,
        Embedder,
        Evaluator,
        Exchange,
        Ingested,
        MemoryStore,
        ModelProvider,
        Payments,
        PluginContext,
        Recalled,
        ReportsAnchoring,
        ReportsChannels,
        SettlementEngine,
        StreamingChatModel,
        X402Answer,
        X402Paid,
        X402Payer,
    )
    from aigent.knowledge import KnowledgeIngester
    from aigent.memory import (
        CHARS_PER_TOKEN,
        EmbedderMismatch,
        embedder_dimension,
        within_budget,
    )
    from aigent.messages import (
        ChatMessage,
        Incoming,
        ModelResponse,
        Outgoing,
        PaidAnswer,
        Reply,
        ToolCall,
        ToolSpec,
        Usage,
    )
    from aigent.node import PaymentError
    from aigent.retries import delay as retry_delay
    from aigent.retries import parse_retry_after, retryable
    from aigent.runtime import Agent
    from aigent.secrets import Secrets, is_local_url, key_for_host, redact, secret_may_go_to
    from aigent.spending import Spend, SpendDenied, SpendingPolicy
    from aigent.text_tools import parse_tool_calls, tools_in_text, wire_messages
    from aigent.watch import Observation, Watcher

_EXPORTS = {
    "Action": "aigent.actions",
    "moves_value": "aigent.actions",
    "Agent": "aigent.runtime",
    "Character": "aigent.character",
    "ModelConfig": "aigent.character",
    "Loop": "aigent.character",
    "Price": "aigent.character",
    "Task": "aigent.character",
    "ChatModel": "aigent.interfaces",
    "Client": "aigent.interfaces",
    "ContextProvider": "aigent.interfaces",
    "Embedder": "aigent.interfaces",
    "Evaluator": "aigent.interfaces",
    "Ingested": "aigent.interfaces",
    "KnowledgeIngester": "aigent.knowledge",
    "CHARS_PER_TOKEN": "aigent.memory",
    "EmbedderMismatch": "aigent.memory",
    "embedder_dimension": "aigent.memory",
    "within_budget": "aigent.memory",
    "Exchange": "aigent.interfaces",
    "MemoryStore": "aigent.interfaces",
    "ModelProvider": "aigent.interfaces",
    "Payments": "aigent.interfaces",
    "SettlementEngine": "aigent.interfaces",
    "ChannelState": "aigent.interfaces",
    "ReportsAnchoring": "aigent.interfaces",
    "ReportsChannels": "aigent.interfaces",
    "StreamingChatModel": "aigent.interfaces",
    "X402Answer": "aigent.interfaces",
    "X402Paid": "aigent.interfaces",
    "X402Payer": "aigent.interfaces",
    "Observation": "aigent.watch",
    "Watcher": "aigent.watch",
    "format_amount": "aigent.amounts",
    "run_blocking": "aigent.blocking",
    "PaidAnswer": "aigent.messages",
    "PaymentError": "aigent.node",
    "load_character": "aigent.character",
    "ActionBlocked": "aigent.errors",
    "AigentError": "aigent.errors",
    "CharacterError": "aigent.errors",
    "MissingSecret": "aigent.errors",
    "ModelError": "aigent.errors",
    "ModelNotFound": "aigent.errors",
    "PluginError": "aigent.errors",
    "PublishBlocked": "aigent.errors",
    "hookimpl": "aigent.hookspecs",
    "PluginContext": "aigent.interfaces",
    "Recalled": "aigent.interfaces",
    "ChatMessage": "aigent.messages",
    "Incoming": "aigent.messages",
    "ModelResponse": "aigent.messages",
    "Outgoing": "aigent.messages",
    "Reply": "aigent.messages",
    "ToolCall": "aigent.messages",
    "ToolSpec": "aigent.messages",
    "Usage": "aigent.messages",
    "progress": "aigent._progress",
    "enable_progress": "aigent._progress",
    "Secrets": "aigent.secrets",
    "redact": "aigent.secrets",
    "retry_delay": "aigent.retries",
    "retryable": "aigent.retries",
    "parse_retry_after": "aigent.retries",
    "secret_may_go_to": "aigent.secrets",
    "is_local_url": "aigent.secrets",
    "key_for_host": "aigent.secrets",
    "Spend": "aigent.spending",
    "SpendDenied": "aigent.spending",
    "SpendingPolicy": "aigent.spending",
    "parse_tool_calls": "aigent.text_tools",
    "tools_in_text": "aigent.text_tools",
    "wire_messages": "aigent.text_tools",
}

_RENAMED = {"enable_progress": "enable", "retry_delay": "delay", "run_blocking": "run"}

__all__ = [
    "CHARS_PER_TOKEN",
    "Action",
    "ActionBlocked",
    "Agent",
    "AigentError",
    "ChannelState",
    "Character",
    "CharacterError",
    "ChatMessage",
    "ChatModel",
    "Client",
    "ContextProvider",
    "Embedder",
    "EmbedderMismatch",
    "Evaluator",
    "Exchange",
    "Incoming",
    "Ingested",
    "KnowledgeIngester",
    "Loop",
    "MemoryStore",
    "MissingSecret",
    "ModelConfig",
    "ModelError",
    "ModelNotFound",
    "ModelProvider",
    "ModelResponse",
    "Observation",
    "Outgoing",
    "PaidAnswer",
    "PaymentError",
    "Payments",
    "PluginContext",
    "PluginError",
    "Price",
    "PublishBlocked",
    "Recalled",
    "Reply",
    "ReportsAnchoring",
    "ReportsChannels",
    "Secrets",
    "SettlementEngine",
    "Spend",
    "SpendDenied",
    "SpendingPolicy",
    "StreamingChatModel",
    "Task",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "Watcher",
    "X402Answer",
    "X402Paid",
    "X402Payer",
    "__version__",
    "embedder_dimension",
    "enable_progress",
    "format_amount",
    "hookimpl",
    "is_local_url",
    "key_for_host",
    "load_character",
    "moves_value",
    "parse_retry_after",
    "parse_tool_calls",
    "progress",
    "redact",
    "retry_delay",
    "retryable",
    "run_blocking",
    "secret_may_go_to",
    "tools_in_text",
    "wire_messages",
    "within_budget",
]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import aigent` stays cheap and `aigent --help` starts fast.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aigent' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
    globals()[name] = value
    return value
