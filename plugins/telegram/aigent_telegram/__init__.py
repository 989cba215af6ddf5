"""A Telegram client for aigent: answers private chats, mentions, replies and forum topics.

It speaks the Bot API itself, on aiohttp (which every aigent install already has, for its
connector), rather than through python-telegram-bot: that took 0.8-1.2 s to import and 39 MB
of memory here (``telegram.ext``) for the three methods used, and brings httpx and an
application framework with its own loop management.
"""

from aigent_telegram.plugin import register_clients, register_context_providers

__all__ = ["register_clients", "register_context_providers"]
