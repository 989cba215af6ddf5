"""web3.py side: one signer per key, registry deploy/anchor, on-chain lookup of roots.

web3 is imported inside functions so plugin discovery stays cheap.
"""

from __future__ import annotations

import json
import threading
from importlib import resources
from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "mainnet": {"chain_id": 7668, "rpc_url": "https://root.rootnet.live/archive"},
    "porcini": {"chain_id": 7672, "rpc_url": "https://porcini.rootnet.app/archive"},
    "local": {"chain_id": 7672, "rpc_url": "http://127.0.0.1:8545"},
}
# Errors meaning "this exact tx is already in the pool or mined": check the receipt instead.
_ALREADY = ("already known", "nonce too low", "known transaction")


def artefact() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("AnchorRegistry.json").read_text())


def connect(rpc_url: str, expected_chain_id: int) -> Any:
    from web3 import HTTPProvider, Web3

    w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    got = w3.eth.chain_id
    if got != expected_chain_id:
        raise RuntimeError(
            f"RPC {rpc_url} is chain {got}, expected {expected_chain_id}; "
            "fix settings.trn.network or settings.trn.rpc_url"
        )
    return w3


class Signer:
    """Serialises sends from one key with a local nonce counter; fees set explicitly."""

    def __init__(self, w3: Any, private_key: str) -> None:
        from eth_account import Account

        self._w3 = w3
        self._acct = Account.from_key(private_key)
        self._lock = threading.Lock()
        self._nonce: int | None = None

    @property
    def address(self) -> str:
        return self._acct.address

    def send(self, tx: dict[str, Any]) -> str:
        """Sign and send; return the tx hash (computed locally before sending)."""
        w3 = self._w3
        with self._lock:
            if self._nonce is None:
                self._nonce = w3.eth.get_transaction_count(self.address, "pending")
            base = w3.eth.get_block("latest")["baseFeePerGas"]
            tx = {
                **tx,
                "from": self.address,
                "nonce": self._nonce,
                "chainId": w3.eth.chain_id,
                "maxPriorityFeePerGas": 0,
                "maxFeePerGas": base * 2,
            }
            if "gas" not in tx:
                tx["gas"] = w3.eth.estimate_gas(tx)
            signed = self._acct.sign_transaction(tx)
            tx_hash = w3.to_hex(signed.hash)
            try:
                w3.eth.send_raw_transaction(signed.raw_transaction)
            except Exception as exc:
                if not any(s in str(exc).lower() for s in _ALREADY):
                    self._nonce = None  # resync from the node next time
                    raise
            self._nonce += 1
            return tx_hash


def deploy_registry(w3: Any, signer: Signer) -> str:
    art = artefact()
    tx_hash = signer.send({"data": art["bytecode"]})
    rcpt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
    return rcpt["contractAddress"]


def anchor_pending(w3: Any, signer: Signer, store: Any, registry: str) -> list[str]:
    """Anchor every sealed batch; a batch with a planned tx is checked, never re-sent blindly."""
    from web3 import Web3

    contract = w3.eth.contract(address=Web3.to_checksum_address(registry), abi=artefact()["abi"])
    done = []
    for batch in store.unanchored():
        if batch["planned_tx"]:
            found = find_root(w3, registry, batch["root"])
            if found:
                store.mark_anchored(
                    batch["id"], found["tx_hash"], found["block_number"], w3.eth.chain_id, registry
                )
                done.append(found["tx_hash"])
                continue
        size = store.batch_size(batch["id"])
        data = contract.encode_abi("anchor", args=[bytes.fromhex(batch["root"]), size])
        tx_hash = signer.send({"to": contract.address, "data": data, "gas": 60_000})
        store.plan(batch["id"], tx_hash)
        rcpt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        store.mark_anchored(batch["id"], tx_hash, rcpt["blockNumber"], w3.eth.chain_id, registry)
        done.append(tx_hash)
    return done


def find_root(w3: Any, registry: str, root_hex: str, from_block: int = 0) -> dict[str, Any] | None:
    from web3 import Web3

    topic0 = Web3.to_hex(Web3.keccak(text="Anchored(bytes32,address,uint256)"))
    logs = w3.eth.get_logs(
        {
            "address": Web3.to_checksum_address(registry),
            "fromBlock": from_block,
            "toBlock": "latest",
            "topics": [topic0, "0x" + root_hex],
        }
    )
    if not logs:
        return None
    log = logs[0]
    block = w3.eth.get_block(log["blockNumber"])
    return {
        "tx_hash": Web3.to_hex(log["transactionHash"]),
        "block_number": log["blockNumber"],
        "time": block["timestamp"],
        "anchorer": "0x" + bytes(log["topics"][2])[-20:].hex(),
    }
