"""TRN DEX through its EVM router interface (Uniswap V2 Router01 at 0x...DDDD): sync web3.

On TRN the swap ``deadline`` is a block number, not a UNIX time.
"""

from __future__ import annotations

from typing import Any

from .chain import Signer

ROUTER_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": name,
        "stateMutability": "view",
        "inputs": [
            {"name": "amount", "type": "uint256"},
            {"name": "path", "type": "address[]"},
        ],
        "outputs": [{"name": "amounts", "type": "uint256[]"}],
    }
    for name in ("getAmountsOut", "getAmountsIn")
] + [
    {
        "type": "function",
        "name": name,
        "stateMutability": "nonpayable",
        "inputs": [
            {"name": first, "type": "uint256"},
            {"name": second, "type": "uint256"},
            {"name": "path", "type": "address[]"},
            {"name": "to", "type": "address"},
            {"name": "deadline", "type": "uint256"},
        ],
        "outputs": [{"name": "amounts", "type": "uint256[]"}],
    }
    for name, first, second in (
        ("swapExactTokensForTokens", "amountIn", "amountOutMin"),
        ("swapTokensForExactTokens", "amountOut", "amountInMax"),
    )
]


def router(w3: Any, address: str) -> Any:
    from web3 import Web3

    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=ROUTER_ABI)


def _path(path: list[str]) -> list[str]:
    from web3 import Web3

    if len(path) < 2:
        raise ValueError("a swap path needs at least two token addresses")
    return [Web3.to_checksum_address(p) for p in path]


def amounts_out(w3: Any, router_address: str, amount_in: int, path: list[str]) -> list[int]:
    fn = router(w3, router_address).functions.getAmountsOut(amount_in, _path(path))
    return [int(a) for a in fn.call()]


def amounts_in(w3: Any, router_address: str, amount_out: int, path: list[str]) -> list[int]:
    fn = router(w3, router_address).functions.getAmountsIn(amount_out, _path(path))
    return [int(a) for a in fn.call()]


def swap(
    w3: Any,
    signer: Signer,
    router_address: str,
    exact: str,
    amount: int,
    limit: int,
    path: list[str],
    to: str,
    deadline_blocks: int,
) -> Any:
    """``exact="in"``: swapExactTokensForTokens(amount, min out=limit);
    ``exact="out"``: swapTokensForExactTokens(amount, max in=limit). Returns the receipt."""
    from web3 import Web3

    r = router(w3, router_address)
    deadline = w3.eth.block_number + deadline_blocks
    name = {"in": "swapExactTokensForTokens", "out": "swapTokensForExactTokens"}[exact]
    args = [amount, limit, _path(path), Web3.to_checksum_address(to), deadline]
    getattr(r.functions, name)(*args).call({"from": signer.address})  # revert reason, no gas
    return signer.transact({"to": r.address, "data": r.encode_abi(name, args=args)})
