"""x402 on EVM: the ``x402`` SDK's ``exact`` scheme (an EIP-3009 ``transferWithAuthorization``
the payer signs), verified and settled by the SDK's own facilitator code running in this
process with the agent's EVM key (it pays the gas), so no outside facilitator is trusted.

``settings.x402.evm`` names the token and what one message costs in it (the character's price
stays the one price list: what is booked is the price; ``amount`` is that price in the token):
``network`` (``eip155:<chain id>``), ``asset`` (the token's address), ``amount`` (smallest
units), ``name`` and ``version`` (the token's EIP-712 domain), ``rpc_url``, ``key_env`` (the
secret holding the settling key) and ``pay_to`` (by default that key's address).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aigent_server.fleet import FleetError, Hosted
from aigent_server.x402 import TIMEOUT, Paid, Refused, claimed, release, settled, take

if TYPE_CHECKING:
    from aigent.node import AgentNode

RAIL_EVM = "x402-evm"
NETWORK = re.compile(r"^eip155:[0-9]+$")
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")

REASONS = {
    "recipient_mismatch": "wrong_pay_to",
    "value_mismatch": "underpayment",
    "valid_before": "expired",
    "nonce_already_used": "replayed",
    "insufficient_balance": "insufficient_funds",
    "signature": "invalid_signature",
}
"""The SDK's invalid reasons (by a part of their name) as this door's reasons."""
USED_BLOCKS = 10_000
"""How far back a retried payment's settlement is looked for (a claim's deadline is minutes)."""

_facilitators: dict[tuple[str, str, str], Any] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class EvmOffer:
    network: str
    asset: str
    amount: str
    pay_to: str
    name: str
    version: str
    rpc_url: str
    key: str = field(repr=False)

    def requirement(self) -> dict[str, Any]:
        return {
            "scheme": "exact",
            "network": self.network,
            "amount": self.amount,
            "asset": self.asset,
            "payTo": self.pay_to,
            "maxTimeoutSeconds": TIMEOUT,
            "extra": {"name": self.name, "version": self.version},
        }


def evm_offer(hosted: Hosted, settings: Any) -> EvmOffer:
    """The agent's EVM terms from ``settings.x402.evm``; 409 naming what is missing."""
    agent = hosted.agent
    assert agent is not None
    where = f"agent {hosted.entry.name!r}: settings.x402.evm"
    if not isinstance(settings, dict):
        raise FleetError(409, f"{where} must be an object (network, asset, amount, ...)")
    missing = [k for k in ("network", "asset", "amount", "name", "rpc_url", "key_env")
               if not settings.get(k)]  # fmt: skip
    if missing:
        raise FleetError(409, f"{where} lacks {', '.join(missing)}")
    network, asset = str(settings["network"]), str(settings["asset"])
    if not NETWORK.match(network):
        raise FleetError(409, f"{where}.network {network!r} is not like 'eip155:<chain id>'")
    if not ADDRESS.match(asset):
        raise FleetError(409, f"{where}.asset {asset!r} is not a token address (0x + 40 hex)")
    if not str(settings["amount"]).isdigit() or int(settings["amount"]) <= 0:
        raise FleetError(409, f"{where}.amount must be a positive whole number of token units")
    key = agent.secrets.get(str(settings["key_env"]))
    if not key:
        raise FleetError(
            409, f"{where}.key_env names {settings['key_env']!r}, which holds no key: set it in "
            "the agent's secrets (it signs the settling transaction and pays its gas)"
        )  # fmt: skip
    from eth_account import Account

    pay_to = str(settings.get("pay_to") or Account.from_key(key).address)
    return EvmOffer(
        network, asset, str(int(settings["amount"])), pay_to, str(settings["name"]),
        str(settings.get("version", "1")), str(settings["rpc_url"]), key,
    )  # fmt: skip


async def take_evm(
    payload: dict[str, Any], hosted: Hosted, node: AgentNode, offer: EvmOffer
) -> Paid:
    """Verify, claim the authorization and its nonce to answer one message, settle (once),
    book (once)."""
    from x402.schemas import PaymentPayload, PaymentRequirements

    try:
        paid = PaymentPayload.model_validate(payload)
    except ValueError as exc:
        raise Refused("invalid_payload", f"not an x402 EVM payment payload: {exc}") from None
    # Our requirements, never the payer's copy: it may have changed the amount or the payee.
    wanted = PaymentRequirements.model_validate(offer.requirement())
    if str(paid.accepted.asset).lower() != offer.asset.lower():
        raise Refused(
            "wrong_asset", f"the payment is in token {paid.accepted.asset}, not {offer.asset}"
        )
    authorization = (payload.get("payload") or {}).get("authorization") or {}
    payer, nonce = str(authorization.get("from", "")), str(authorization.get("nonce", ""))
    keys = payment_keys(offer.asset, payload)
    facilitator = _facilitator(offer)
    # A payment claimed before was verified then; once settled its nonce is used on chain,
    # which verification would refuse, so a retry of it goes straight to its claim.
    if not await claimed(node, keys[0]):
        verified = await asyncio.to_thread(facilitator.verify, paid, wanted)
        if not verified.is_valid:
            raise _refusal(verified.invalid_reason, verified.invalid_message, offer, authorization)
    hold = await take(
        hosted, node, RAIL_EVM, keys, f"authorization nonce {nonce} of {payer}: sign a new one"
    )
    tx = hold.settled
    if not tx and hold.retaken:  # its attempt may have settled it, then died
        tx = await asyncio.to_thread(_used_in, offer, payer, nonce)
    if not tx:
        result = await asyncio.to_thread(facilitator.settle, paid, wanted)
        if not result.success:
            await release(hold)
            why = result.error_message or result.error_reason or "unknown"
            raise Refused("settlement_failed", f"the token transfer did not settle: {why}")
        tx = str(result.transaction)
    if not hold.settled:
        await settled(hold, tx)
    agent = hosted.agent
    assert agent is not None and agent.character.price is not None
    price = agent.character.price
    await node.sold(price.amount, payer, tx, RAIL_EVM)
    return Paid(
        RAIL_EVM, price.amount, price.asset_code, price.asset_scale, payer, tx, offer.network,
        hold,
    )  # fmt: skip


def payment_keys(asset: str, payload: dict[str, Any]) -> list[str]:
    """The claim keys of an EVM payment: the signed authorization names it (a different
    signature over the same nonce is another payment, refused since the nonce is used, never a
    retry of this one), and its nonce goes with it."""
    inner = payload.get("payload") or {}
    authorization = inner.get("authorization") or {}
    payer, nonce = str(authorization.get("from", "")), str(authorization.get("nonce", ""))
    signed = json.dumps([asset.lower(), authorization, inner.get("signature")], sort_keys=True)
    return [
        "evm-auth:" + hashlib.sha256(signed.encode()).hexdigest(),
        f"evm-nonce:{asset.lower()}:{payer.lower()}:{nonce}",
    ]


def _used_in(offer: EvmOffer, payer: str, nonce: str) -> str:
    """The transaction that used ``payer``'s authorization ``nonce`` on the token (its
    ``AuthorizationUsed`` event, EIP-3009), "" when none did in the recent blocks."""
    from web3 import Web3

    web3 = Web3(Web3.HTTPProvider(offer.rpc_url))
    latest = web3.eth.block_number
    topics = [
        Web3.to_hex(Web3.keccak(text="AuthorizationUsed(address,bytes32)")),
        "0x" + payer.lower().removeprefix("0x").rjust(64, "0"),
        "0x" + nonce.lower().removeprefix("0x").rjust(64, "0"),
    ]
    logs = web3.eth.get_logs(
        {
            "address": Web3.to_checksum_address(offer.asset),
            "fromBlock": max(0, latest - USED_BLOCKS),
            "toBlock": latest,
            "topics": topics,
        }
    )
    return Web3.to_hex(logs[-1]["transactionHash"]) if logs else ""


def _refusal(
    reason: str | None, message: str | None, offer: EvmOffer, authorization: dict[str, Any]
) -> Refused:
    code = next((ours for part, ours in REASONS.items() if part in (reason or "")), "invalid")
    said = {
        "wrong_pay_to": f"the authorization pays {authorization.get('to')}, not {offer.pay_to}",
        "underpayment": f"the price is {offer.amount} units of {offer.asset} a message; the "
        f"authorization is for {authorization.get('value')}",
        "expired": "the authorization's validBefore has passed: sign a new one",
    }.get(code, f"the payment is not valid: {reason}" + (f" ({message})" if message else ""))
    return Refused(code, said)


def _facilitator(offer: EvmOffer) -> Any:
    """One SDK facilitator per RPC, key and network: its signer keeps the account's nonces."""
    from eth_account import Account
    from x402 import x402FacilitatorSync
    from x402.mechanisms.evm import FacilitatorWeb3Signer
    from x402.mechanisms.evm.exact import register_exact_evm_facilitator

    index = (offer.rpc_url, Account.from_key(offer.key).address, offer.network)
    with _lock:
        found = _facilitators.get(index)
        if found is None:
            found = x402FacilitatorSync()
            signer = FacilitatorWeb3Signer(private_key=offer.key, rpc_url=offer.rpc_url)
            register_exact_evm_facilitator(found, signer, networks=offer.network)
            _facilitators[index] = found
        return found
