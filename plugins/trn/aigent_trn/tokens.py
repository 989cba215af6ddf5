"""ERC-20 calls (a SimpleToken we deploy, or a TRN asset precompile 0xCCCCCCCC...): sync web3."""

from __future__ import annotations

from typing import Any

from .chain import Signer, artefact, deploy, get_logs_paged

TRANSFER_TOPIC = "Transfer(address,address,uint256)"


def erc20(w3: Any, address: str) -> Any:
    from web3 import Web3

    return w3.eth.contract(
        address=Web3.to_checksum_address(address), abi=artefact("SimpleToken")["abi"]
    )


def deploy_token(w3: Any, signer: Signer, name: str, symbol: str, decimals: int) -> str:
    """Deploy ``contracts/SimpleToken.sol``; the signer becomes its only minter."""
    if not 0 <= decimals <= 36:
        raise ValueError(f"decimals must be between 0 and 36, got {decimals}")
    return deploy(w3, signer, "SimpleToken", (name, symbol, decimals))


def info(w3: Any, address: str) -> dict[str, Any]:
    c = erc20(w3, address)
    return {
        "address": c.address,
        "symbol": c.functions.symbol().call(),
        "decimals": c.functions.decimals().call(),
    }


def balance_of(w3: Any, token: str, owner: str) -> int:
    from web3 import Web3

    return int(erc20(w3, token).functions.balanceOf(Web3.to_checksum_address(owner)).call())


def allowance(w3: Any, token: str, owner: str, spender: str) -> int:
    from web3 import Web3

    fn = erc20(w3, token).functions.allowance(
        Web3.to_checksum_address(owner), Web3.to_checksum_address(spender)
    )
    return int(fn.call())


def call_tx(w3: Any, signer: Signer, token: str, fn: str, *args: Any) -> Any:
    """Send a state-changing ERC-20 call (mint/transfer/approve/transferFrom) and wait.

    Checked with eth_call first, so a revert reason (balance too low...) is reported without
    paying gas for a failing tx.
    """
    c = erc20(w3, token)
    bound = getattr(c.functions, fn)(*args)
    bound.call({"from": signer.address})
    return signer.transact({"to": c.address, "data": c.encode_abi(fn, args=list(args))})


def transfers(
    w3: Any,
    token: str,
    address: str,
    from_block: int,
    to_block: int | None = None,
    page: int = 2000,
) -> list[dict[str, Any]]:
    """Transfer events of ``token`` from or to ``address`` in a block range, oldest first."""
    from web3 import Web3

    topic0 = Web3.to_hex(Web3.keccak(text=TRANSFER_TOPIC))
    who = "0x" + "00" * 12 + Web3.to_checksum_address(address)[2:].lower()
    base = {"address": Web3.to_checksum_address(token)}
    last = w3.eth.block_number if to_block is None else to_block
    logs = get_logs_paged(w3, {**base, "topics": [topic0, who]}, from_block, last, page)
    logs += get_logs_paged(w3, {**base, "topics": [topic0, None, who]}, from_block, last, page)
    seen: set[tuple[str, int]] = set()
    out = []
    for log in sorted(logs, key=lambda x: (x["blockNumber"], x["logIndex"])):
        key = (Web3.to_hex(log["transactionHash"]), log["logIndex"])
        if key in seen:  # a transfer to oneself matches both queries
            continue
        seen.add(key)
        out.append(
            {
                "block": log["blockNumber"],
                "tx_hash": key[0],
                "log_index": key[1],
                "from": Web3.to_checksum_address("0x" + bytes(log["topics"][1])[-20:].hex()),
                "to": Web3.to_checksum_address("0x" + bytes(log["topics"][2])[-20:].hex()),
                "value": int.from_bytes(bytes(log["data"]), "big"),
            }
        )
    return out
