"""The current date and time, so the model does not guess it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aigent.hookspecs import hookimpl

if TYPE_CHECKING:
    from aigent.interfaces import PluginContext
    from aigent.messages import Incoming


class Clock:
    name = "clock"

    async def get(self, message: Incoming, agent: object) -> str:
        now = datetime.now(UTC)
        return f"The current time is {now:%A %d %B %Y, %H:%M} UTC."


@hookimpl
def register_context_providers(register, ctx: PluginContext) -> None:  # type: ignore[no-untyped-def]
    register(Clock())
