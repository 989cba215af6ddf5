"""``ask_agent`` (pay another agent over ILP to answer a question) and ``ask_a2a`` (ask any
A2A agent, paying a paid one over x402 or ILP), as actions the model may call.

Offered only to an agent that has spending limits (``ask_agent`` also needs its connector on),
and (like every value-moving action) only for messages from channels the character lets spend.
The spending policy decides every payment below the model, whatever the model says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aigent.actions import Action, moves_value
from aigent.hookspecs import hookimpl

if TYPE_CHECKING:
    from aigent.interfaces import PluginContext

ASK_TIMEOUT = 90.0  # SPSP, the STREAM payment and the other agent's whole answer


@hookimpl
def register_actions(register: Any, ctx: PluginContext) -> None:
    if not ctx.character.spending:
        return
    spending = ctx.spending

    @moves_value
    async def ask_a2a(url: str, question: str, max_price: int | None = None) -> str:
        """Ask another agent over A2A. ``url`` is its address (or its agent card's URL);
        ``max_price`` is the most to pay, in the smallest unit of its price's asset (omit for
        free agents). Returns the other agent's answer (with what was paid and on which rail,
        for a paid agent)."""
        from aigent.a2a import Means, ask

        async def means() -> Means:
            return Means(ctx.x402_payers, ctx.payments)

        answer = await ask(url, question, max_price=max_price, spending=spending, means=means)
        if answer.rail is None:
            return answer.text
        return answer.model_dump_json(exclude_defaults=True)

    register(Action.from_function(ask_a2a, timeout=ASK_TIMEOUT))
    payments = ctx.payments
    if payments is None:
        return

    @moves_value
    async def ask_agent(receiver: str, question: str, max_price: int) -> str:
        """Pay another agent to answer a question. ``receiver`` is its payment pointer or SPSP
        URL; ``max_price`` is the most to pay, in the smallest unit of your payment asset.
        Returns the other agent's answer."""
        answer = await payments.ask(receiver, question, max_price=max_price)
        return answer.model_dump_json(include={"text", "agent", "paid", "message_id"})

    register(Action.from_function(ask_agent, timeout=ASK_TIMEOUT))
