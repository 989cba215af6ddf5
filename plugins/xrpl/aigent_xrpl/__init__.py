"""aigent-xrpl: an XRPL wallet, payments under the spending policy, read-only market data,
settlement over payment channels (``xrpl-paychan``), and x402 payments (``x402_fetch``, and the
payer ``ask_a2a`` pays paid A2A agents with).

Settings (``settings.xrpl`` in the character): ``url`` (JSON-RPC, testnet by default),
``seed_env`` (the environment variable holding the seed, ``XRPL_SEED``), ``cache_ttl`` (seconds),
``context`` (which reads go into the agent's context: ``balances`` by default, and
``recent_transactions``), ``settle_delay`` and ``redeem_interval`` for channels. Heavy imports
happen inside functions. Every error of the plugin's own is an :class:`XrplError`.
"""

from aigent_xrpl.errors import XrplError
from aigent_xrpl.plugin import (
    BalancesContext,
    RecentTransactionsContext,
    register_actions,
    register_context_providers,
    register_settlement_engines,
    register_watchers,
    register_x402_payers,
)
from aigent_xrpl.service import service_for

__all__ = [
    "BalancesContext",
    "RecentTransactionsContext",
    "XrplError",
    "register_actions",
    "register_context_providers",
    "register_settlement_engines",
    "register_watchers",
    "register_x402_payers",
    "service_for",
]
