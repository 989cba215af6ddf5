"""A Discord client for aigent: answers direct messages, mentions and threads.

It speaks Discord's gateway WebSocket and REST API itself, on aiohttp (which every aigent
install already has, for its connector), rather than through discord.py: discord.py took
1.3-1.6 s to import and 35 MB of memory here, keeps a cache of every guild and member, and its
endpoints are module constants, so pointing one agent at a stand-in would move every agent in
the process.
"""

from aigent_discord.plugin import register_clients, register_context_providers

__all__ = ["register_clients", "register_context_providers"]
