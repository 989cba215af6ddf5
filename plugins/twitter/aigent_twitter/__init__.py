"""An X (Twitter) client for aigent: posts, replies, likes and an autonomous loop."""

from aigent_twitter.plugin import register_clients, register_context_providers, register_watchers

__all__ = ["register_clients", "register_context_providers", "register_watchers"]
