"""aigent plugin for The Root Network: Merkle receipts for every published message, anchored
on chain while the agent runs; ERC-20 and DEX calls under the spending policy; on-chain data
as context and actions.

Settings (``settings.trn``, see :class:`aigent_trn.config.TrnSettings`): ``network``
(porcini | mainnet | local), ``rpc_url``, ``chain_id``, ``registry``, ``key_env``
(default ``TRN_PRIVATE_KEY``), ``batch_size``, ``batch_seconds``, ``poll_seconds``,
``from_block``, ``log_page``, ``cache_ttl``, ``tokens``, ``watch`` (addresses whose transfers
and balances are context, and watched into memory with ``settings.watch``), ``dex_router``,
``deadline_blocks``, ``anchor``. Name ``trn`` in the character's ``plugins``: receipts,
actions, context, and the anchoring loop that runs while the agent runs. Heavy imports (web3)
happen inside functions. Every error of the plugin's own is a :class:`TrnError`.
"""

from .errors import TrnError
from .plugin import (
    ChainContext,
    after_publish,
    register_actions,
    register_commands,
    register_context_providers,
    register_services,
    register_watchers,
    service_for,
)

__all__ = [
    "ChainContext",
    "TrnError",
    "after_publish",
    "register_actions",
    "register_commands",
    "register_context_providers",
    "register_services",
    "register_watchers",
    "service_for",
]
