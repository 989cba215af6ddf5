"""Merkle tree with RFC 6962-style domain separation (leaf 0x00, node 0x01; odd node promoted).

SHA-256 is used because it is in the standard library; receipts name the algorithm.
"""

from __future__ import annotations

import hashlib

HASH_ALG = "sha256"


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def build(leaves: list[bytes]) -> tuple[bytes, list[list[dict[str, str]]]]:
    """Return the root and, per leaf, its proof path ``[{"side": "L"|"R", "hash": hex}]``."""
    if not leaves:
        raise ValueError("cannot build a Merkle tree with no leaves")
    proofs: list[list[dict[str, str]]] = [[] for _ in leaves]
    # positions[i] = index of leaf i's ancestor in the current level
    positions = list(range(len(leaves)))
    level = list(leaves)
    while len(level) > 1:
        nxt: list[bytes] = []
        for i in range(0, len(level), 2):
            if i + 1 < len(level):
                nxt.append(node_hash(level[i], level[i + 1]))
            else:
                nxt.append(level[i])
        for leaf_idx, pos in enumerate(positions):
            sib = pos ^ 1
            if sib < len(level):
                side = "R" if sib > pos else "L"
                proofs[leaf_idx].append({"side": side, "hash": level[sib].hex()})
            positions[leaf_idx] = pos // 2
        level = nxt
    return level[0], proofs


def root_from_proof(leaf: bytes, path: list[dict[str, str]]) -> bytes:
    acc = leaf
    for step in path:
        sib = bytes.fromhex(step["hash"])
        if step["side"] == "R":
            acc = node_hash(acc, sib)
        elif step["side"] == "L":
            acc = node_hash(sib, acc)
        else:
            raise ValueError(f"bad proof step side {step['side']!r}; expected 'L' or 'R'")
    return acc
