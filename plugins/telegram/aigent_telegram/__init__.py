"""A Telegram client for aigent: answers private chats, mentions, replies and forum topics.

It speaks the Bot API itself, on aiohttp (which every aigent install already has, for its
connector), rather than through python-telegram-bot: on top of a loaded aigent,
``telegram.ext`` took 0.57-0.82 s to import and +28 MB here against 0.23-0.29 s and +8.6 MB
for this client, for the three methods used, and brings httpx and an application framework
with its own loop management.
"""

from aigent_telegram.plugin import register_clients, register_context_providers, register_watchers

__all__ = ["register_clients", "register_context_providers", "register_watchers"]
