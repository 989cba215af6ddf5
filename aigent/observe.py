"""Observations: the one way an agent tells whoever watches it what happened to its money.

The spending policy, the payment node and plugins (settlement engines, the anchoring loop)
emit ``(kind, data)``; an app (``aigent serve``, the CLI, a test) subscribes with
``agent.observe(callback)``. Observers are called on the agent's event loop, whichever thread
emitted, and one that raises is logged and skipped: watching can never break a payment. With
nobody watching, an emit is one attribute check.

``data`` is plain JSON (str, int, float, bool, None, lists and dicts of them) and never uses
the keys in :data:`RESERVED`, which whoever republishes an observation puts around it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("aigent.observe")

Observer = Callable[[str, Mapping[str, Any]], None]
"""``callback(kind, data)``: called on the agent's event loop; it should return quickly."""

KINDS: dict[str, str] = {
    "payment.committed": "a payment left: asset, amount, scale, destination, purpose, spend_id",
    "payment.released": "a reservation was released, nothing moved: asset, amount, scale, "
    "destination, purpose, spend_id",
    "payment.held": "a payment's outcome is unknown, so it keeps counting: asset, amount, scale, "
    "destination, purpose, spend_id, note",
    "paid_message": "a paid message was answered and paid: amount, asset, scale, sender, "
    "message_id, rail (ilp, x402-xrpl, ...)",
    "settlement.claim_sent": "a payment-channel claim went to a peer: peer, channel, amount, "
    "total, asset, scale, engine",
    "settlement.claim_received": "a peer's claim was checked and credited: peer, channel, "
    "amount, total, asset, scale, engine",
    "settlement.channel_opened": "a payment channel was opened: peer, channel, capacity, "
    "destination, asset, scale, engine",
    "settlement.channel_funded": "more was locked in a channel: peer, channel, amount, capacity, "
    "asset, scale, engine",
    "settlement.channel_closed": "a channel was closed: peer, channel, redeemed, asset, scale, "
    "engine",
    "settlement.redeemed": "claims were redeemed on chain: peer, channel, amount, total, asset, "
    "scale, engine",
    "anchor.batch": "a batch of message hashes was anchored: batch, root, tx_hash, "
    "block_number, count, chain_id, contract",
}
"""The kinds aigent and its first-party plugins emit, with the fields of their data. A plugin
may emit kinds of its own (dotted lower-case names, e.g. ``myplugin.thing``)."""

RESERVED = frozenset({"id", "kind", "agent", "at", "plugin"})
"""Keys observation data never uses: republishers (an event bus) put them around it."""

_KIND = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")


class ObservationError(ValueError):
    """An emit with a kind or data an observer could not take; says what to change."""


def check(kind: str, data: Mapping[str, Any]) -> None:
    """Refuse a malformed kind or a reserved key (for plugins' emits; the core's are fixed)."""
    if not _KIND.fullmatch(kind):
        raise ObservationError(
            f"observation kind {kind!r} is not a dotted lower-case name (like 'myplugin.done')"
        )
    clash = RESERVED.intersection(data)
    if clash:
        raise ObservationError(
            f"observation {kind!r} uses reserved key(s) {', '.join(sorted(clash))}: rename them "
            f"(reserved: {', '.join(sorted(RESERVED))})"
        )


class Observers:
    """The callbacks watching one agent."""

    __slots__ = ("_fns", "_loop")

    def __init__(self) -> None:
        self._fns: tuple[Observer, ...] = ()
        self._loop: asyncio.AbstractEventLoop | None = None

    def __bool__(self) -> bool:
        return bool(self._fns)

    def add(self, fn: Observer) -> Callable[[], None]:
        """Call ``fn(kind, data)`` for every observation; returns a function that stops it."""
        self._fns = (*self._fns, fn)

        def remove() -> None:
            self._fns = tuple(f for f in self._fns if f is not fn)

        return remove

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop observers run on (the agent's, set when it starts)."""
        self._loop = loop

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        if not self._fns:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                here = asyncio.get_running_loop()
            except RuntimeError:
                here = None
            if here is not loop:  # a worker thread: observers run on the agent's loop
                loop.call_soon_threadsafe(self._call, kind, data)
                return
        self._call(kind, data)

    def _call(self, kind: str, data: dict[str, Any]) -> None:
        for fn in self._fns:
            try:
                fn(kind, data)
            except Exception:
                log.exception("an observer of %r failed (the agent carries on)", kind)
