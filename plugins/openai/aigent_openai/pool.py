"""Keep-alive HTTP clients, one per (base URL, event loop), shared by every model in the process.

A connection belongs to the event loop that opened it, so a client is never handed to another
loop: tests, ``Agent.chat_sync`` and apps running several loops each get their own. Clients of
loops that have since closed are dropped when a new client is made.
"""

from __future__ import annotations

import asyncio
import threading

from aigent_openai._httpx import httpx

_clients: dict[tuple[str, asyncio.AbstractEventLoop], httpx.AsyncClient] = {}
_lock = threading.Lock()  # loops in other threads (chat_sync) make clients too


def client(base_url: str) -> httpx.AsyncClient:
    """The pooled client for ``base_url`` on the running event loop, made on first use."""
    loop = asyncio.get_running_loop()
    found = _clients.get((base_url, loop))
    if found is not None and not found.is_closed:
        return found
    with _lock:
        for key in [key for key in _clients if key[1].is_closed()]:
            # Its sockets cannot be closed from here (their loop is gone); dropping the client
            # lets them be collected instead of kept for ever.
            del _clients[key]
        made = _clients[(base_url, loop)] = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            # Our own retries, our own timeouts (per model); no redirects to follow with a key.
            follow_redirects=False,
        )
    return made


async def close_pools() -> None:
    """Close the clients of the running event loop (an app or test that is about to close it
    calls this; the clients of other loops are theirs to close)."""
    loop = asyncio.get_running_loop()
    with _lock:
        mine = [key for key in _clients if key[1] is loop]
        clients = [_clients.pop(key) for key in mine]
    for item in clients:
        await item.aclose()
