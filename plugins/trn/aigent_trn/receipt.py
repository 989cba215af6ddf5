"""Offline receipt checks: canonical encoding -> leaf -> proof -> root."""

from __future__ import annotations

import json
from typing import Any

from . import merkle


def check_receipt(receipt: dict[str, Any], text: str | None = None) -> list[str]:
    """Return the list of mismatches (empty means the receipt is internally consistent)."""
    problems: list[str] = []
    fields = receipt["canonical"]
    if text is not None and fields.get("content") != text:
        problems.append("message text differs from the text in the receipt")
    data = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    leaf = merkle.leaf_hash(data)
    if leaf.hex() != receipt["leaf"]:
        problems.append(
            f"leaf mismatch: content hashes to {leaf.hex()}, receipt says {receipt['leaf']}"
        )
    if "root" in receipt:
        root = merkle.root_from_proof(leaf, receipt["proof"])
        if root.hex() != receipt["root"]:
            problems.append(f"proof does not lead to root {receipt['root']} (got {root.hex()})")
    else:
        problems.append("receipt has no root yet: the message is still queued")
    return problems
