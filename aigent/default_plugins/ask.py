"""``ask_agent``: pay another agent to answer a question, as an action the model may call.

Offered only to an agent whose connector is on and that has spending limits, and (like every
value-moving action) only for messages from channels the character lets spend. The spending
policy decides every payment below the model, whatever the model says.
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
    payments = ctx.payments
    if payments is None or not ctx.character.spending:
        return

    @moves_value
    async def ask_agent(receiver: str, question: str, max_price: int) -> str:
        """Pay another agent to answer a question. ``receiver`` is its payment pointer or SPSP
        URL; ``max_price`` is the most to pay, in the smallest unit of your payment asset.
        Returns the other agent's answer."""
        answer = await payments.ask(receiver, question, max_price=max_price)
        return answer.model_dump_json(include={"text", "agent", "paid", "message_id"})

    register(Action.from_function(ask_agent, timeout=ASK_TIMEOUT))
