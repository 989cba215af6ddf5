"""web3.py side: one signer per key, registry deploy/anchor, on-chain lookup of roots.

web3 is imported inside functions so plugin discovery stays cheap. Everything here is
synchronous (web3's HTTP provider); the plugin calls it from worker threads.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any

from .errors import TrnError

PRESETS: dict[str, dict[str, Any]] = {
    "mainnet": {"chain_id": 7668, "rpc_url": "https://root.rootnet.live/archive"},
    "porcini": {"chain_id": 7672, "rpc_url": "https://porcini.rootnet.app/archive"},
    "local": {"chain_id": 7672, "rpc_url": "http://127.0.0.1:8545"},
}
# Errors meaning "this exact tx is already in the pool or mined": check the receipt instead.
_ALREADY = ("already known", "nonce too low", "known transaction")
ANCHORED_TOPIC = "Anchored(bytes32,address,uint256)"
DEFAULT_LOG_PAGE = 2000  # blocks per eth_getLogs call; TRN nodes cap results at 10000


def artefact(name: str = "AnchorRegistry") -> dict[str, Any]:
    """ABI and bytecode of a contract built by ``contracts/build.js``."""
    return json.loads(resources.files(__package__).joinpath(f"{name}.json").read_text())


def connect(rpc_url: str, expected_chain_id: int) -> Any:
    from web3 import HTTPProvider, Web3

    w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    got = w3.eth.chain_id
    if got != expected_chain_id:
        raise TrnError(
            f"RPC {rpc_url} is chain {got}, expected {expected_chain_id}; "
            "fix settings.trn.network or settings.trn.rpc_url"
        )
    return w3


# Per process, not per agent: two agents (or one agent's anchoring loop and its actions)
# sending from one key on one chain must take nonces from one counter, or they collide.
_signers: dict[tuple[str, str], Signer] = {}
_signers_lock = threading.Lock()


def shared_signer(w3: Any, rpc_url: str, private_key: str) -> Signer:
    """One signer per (RPC, key) in the process: two agents (or the anchoring loop and an
    action) sending from one key must share its nonce counter."""
    from eth_account import Account

    address = str(Account.from_key(private_key).address)
    with _signers_lock:
        key = (rpc_url, address)
        if key not in _signers:
            _signers[key] = Signer(w3, private_key)
        return _signers[key]


class Signer:
    """Serialises sends from one key with a local nonce counter; fees set explicitly.

    The key stays inside the eth_account object; this class has no repr that could print it.
    """

    def __init__(self, w3: Any, private_key: str) -> None:
        from eth_account import Account

        self._w3 = w3
        self._acct = Account.from_key(private_key)
        self._lock = threading.RLock()
        self._nonce: int | None = None

    def __repr__(self) -> str:
        return f"Signer({self.address})"

    @property
    def address(self) -> str:
        return str(self._acct.address)

    def sign(self, tx: dict[str, Any]) -> tuple[str, str]:
        """Fill nonce, chain id and fees, sign, and take the nonce: (tx hash, raw tx hex).

        The caller records the hash (and raw tx) durably, then calls :meth:`broadcast`.
        Must be followed by a broadcast of the same raw tx, or the nonce is left as a gap.
        """
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
            self._nonce += 1
            return w3.to_hex(signed.hash), w3.to_hex(signed.raw_transaction)

    def broadcast(self, raw_tx: str) -> None:
        """Send a signed tx; a tx the node already has (or mined) is not an error."""
        try:
            self._w3.eth.send_raw_transaction(raw_tx)
        except Exception as exc:
            if not any(s in str(exc).lower() for s in _ALREADY):
                with self._lock:
                    self._nonce = None  # resync from the node next time
                raise

    def send(self, tx: dict[str, Any]) -> str:
        """Sign and send; return the tx hash (computed locally before sending)."""
        with self._lock:  # sign+send under one lock so nonces reach the node in order
            tx_hash, raw = self.sign(tx)
            self.broadcast(raw)
            return tx_hash

    def send_recorded(self, tx: dict[str, Any], record: Callable[[str, str], None]) -> str:
        """Sign, ``record(tx_hash, raw_tx)`` durably, then send: a crash in between leaves a
        recorded tx that can be re-sent as is, never a sent tx nobody knows about."""
        with self._lock:
            tx_hash, raw = self.sign(tx)
            try:
                record(tx_hash, raw)
            except BaseException:
                self._nonce = None  # never sent: its nonce is free again, take it from the node
                raise
            self.broadcast(raw)
            return tx_hash

    def transact(self, tx: dict[str, Any], timeout: float = 120) -> Any:
        """Send and wait for the receipt; a reverted tx raises with its hash."""
        tx_hash = self.send(tx)
        rcpt = self._w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)
        if rcpt["status"] != 1:
            raise TrnError(f"transaction {tx_hash} reverted")
        return rcpt


def deploy(w3: Any, signer: Signer, name: str, args: tuple[Any, ...] = ()) -> str:
    """Deploy a contract from its artefact; return its address."""
    art = artefact(name)
    ctor: dict[str, Any] = next(
        (e for e in art["abi"] if e["type"] == "constructor"), {"inputs": []}
    )
    types = [i["type"] for i in ctor["inputs"]]
    data = art["bytecode"] + (w3.codec.encode(types, list(args)).hex() if types else "")
    rcpt = signer.transact({"data": data})
    return str(rcpt["contractAddress"])


def deploy_registry(w3: Any, signer: Signer) -> str:
    return deploy(w3, signer, "AnchorRegistry")


def anchor_pending(
    w3: Any, signer: Signer, store: Any, registry: str, from_block: int = 0
) -> list[str]:
    """Anchor every sealed batch; return the anchoring tx hashes.

    A batch with a planned tx is never anchored a second time: if its root is on chain the
    anchor is recorded; otherwise the same signed tx is re-broadcast. Only when that tx can no
    longer be mined (its nonce was used by another tx) and the root is still absent is a new
    anchor tx signed. A tx is planned only in place of the one this call saw: when another
    process (a server taking the agent over) planned the batch meanwhile, its tx stands and
    this one is never sent.
    """
    from web3 import Web3

    from .store import AnchorRaced

    registry = Web3.to_checksum_address(registry)
    contract = w3.eth.contract(address=registry, abi=artefact()["abi"])
    chain_id = w3.eth.chain_id
    done = []
    for batch in store.unanchored():
        tx_hash = batch["planned_tx"]
        if tx_hash:
            found = _receipt_or_root(
                w3, registry, batch["root"], tx_hash, from_block, signer.address
            )
            if found:
                store.mark_anchored(batch["id"], found[0], found[1], chain_id, registry)
                done.append(found[0])
                continue
            if batch["planned_raw"]:
                try:
                    signer.broadcast(batch["planned_raw"])
                except Exception:
                    tx_hash = None  # stale: sign anew below
            else:
                tx_hash = None
        if not tx_hash:
            data = contract.encode_abi("anchor", args=[bytes.fromhex(batch["root"]), batch["size"]])
            batch_id: int = batch["id"]

            seen: str | None = batch["planned_tx"]

            def record(
                planned: str, raw: str, batch_id: int = batch_id, seen: str | None = seen
            ) -> None:
                store.plan(batch_id, planned, raw, replacing=seen)

            try:
                tx_hash = signer.send_recorded(
                    {"to": registry, "data": data, "gas": 60_000}, record
                )
            except AnchorRaced:
                continue  # the other process's tx anchors it; a later round records that
        rcpt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if rcpt["status"] != 1:
            raise TrnError(f"anchor tx {tx_hash} for batch {batch['id']} reverted")
        store.mark_anchored(batch["id"], tx_hash, rcpt["blockNumber"], chain_id, registry)
        done.append(tx_hash)
    return done


def _receipt_or_root(
    w3: Any, registry: str, root_hex: str, tx_hash: str, from_block: int, anchorer: str
) -> tuple[str, int] | None:
    from web3.exceptions import TransactionNotFound

    try:
        rcpt = w3.eth.get_transaction_receipt(tx_hash)
    except TransactionNotFound:
        rcpt = None
    if rcpt is not None and rcpt["status"] == 1:
        return tx_hash, int(rcpt["blockNumber"])
    # only our own anchor counts: the same root anchored by someone else (a copy, a front-run)
    # proves nothing about this agent, so it must still anchor it itself
    found = find_root(w3, registry, root_hex, from_block=from_block, anchorer=anchorer)
    if found:
        return found["tx_hash"], found["block_number"]
    return None


def get_logs_paged(
    w3: Any,
    params: dict[str, Any],
    from_block: int,
    to_block: int | None = None,
    page: int = DEFAULT_LOG_PAGE,
    first_only: bool = False,
    keep: Callable[[Any], bool] | None = None,
) -> list[Any]:
    """``eth_getLogs`` over [from_block, to_block] in pages of ``page`` blocks, since nodes
    refuse wide ranges or too many results; only logs ``keep`` accepts, if given."""
    if page < 1:
        raise ValueError(f"log page must be at least 1 block, got {page}")
    last = w3.eth.block_number if to_block is None else to_block
    logs: list[Any] = []
    start = max(0, from_block)
    while start <= last:
        end = min(last, start + page - 1)
        found = w3.eth.get_logs({**params, "fromBlock": start, "toBlock": end})
        logs.extend(found if keep is None else filter(keep, found))
        if first_only and logs:
            break
        start = end + 1
    return logs


def find_root(
    w3: Any,
    registry: str,
    root_hex: str,
    from_block: int = 0,
    hint_block: int | None = None,
    page: int = DEFAULT_LOG_PAGE,
    anchorer: str | None = None,
    tx_hash: str | None = None,
) -> dict[str, Any] | None:
    """The first ``Anchored`` log of ``root_hex`` emitted by ``registry``, or None; only one
    sent by ``anchorer`` (the registry indexes its sender, so the node filters by it) and
    only one in transaction ``tx_hash``, when they are given.

    ``hint_block`` (from a receipt) is searched first, so verifying a receipt costs one query.
    """
    from web3 import Web3

    topic0 = Web3.to_hex(Web3.keccak(text=ANCHORED_TOPIC))
    topics = [topic0, "0x" + root_hex.removeprefix("0x")]
    if anchorer is not None:
        topics.append("0x" + "00" * 12 + Web3.to_checksum_address(anchorer)[2:].lower())
    params = {"address": Web3.to_checksum_address(registry), "topics": topics}

    def keep(log: Any) -> bool:
        return tx_hash is None or Web3.to_hex(log["transactionHash"]).lower() == tx_hash.lower()

    logs: list[Any] = []
    if hint_block is not None:
        hinted = w3.eth.get_logs({**params, "fromBlock": hint_block, "toBlock": hint_block})
        logs = [log for log in hinted if keep(log)]
    if not logs:
        logs = get_logs_paged(w3, params, from_block, page=page, first_only=True, keep=keep)
    if not logs:
        return None
    log = logs[0]
    block = w3.eth.get_block(log["blockNumber"])
    return {
        "tx_hash": Web3.to_hex(log["transactionHash"]),
        "block_number": log["blockNumber"],
        "time": block["timestamp"],
        "anchorer": Web3.to_checksum_address("0x" + bytes(log["topics"][2])[-20:].hex()),
        "size": int.from_bytes(bytes(log["data"])[:32], "big") if log["data"] else None,
    }
