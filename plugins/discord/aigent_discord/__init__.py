"""A Discord client for aigent: answers direct messages, mentions and threads.

It speaks Discord's gateway WebSocket and REST API itself, on aiohttp (which every aigent
install already has, for its connector), rather than through discord.py: on top of a loaded
aigent, discord.py took 0.58-0.76 s to import and +20 MB here against 0.23-0.29 s and +8.6 MB
for this client, keeps a cache of every guild and member, and its endpoints are class
constants, so pointing one agent at a stand-in would move every agent in the process.
"""

from aigent_discord.plugin import register_clients, register_context_providers, register_watchers

__all__ = ["register_clients", "register_context_providers", "register_watchers"]
