"""``aigent verify RECEIPT.json --rpc URL``: a third party needs only the receipt and an RPC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer


def verify_receipt(receipt: dict[str, Any], rpc_url: str | None, text: str | None) -> list[str]:
    """Return output lines; the first is VERIFIED or NOT VERIFIED."""
    from .receipt import check_receipt

    problems = check_receipt(receipt, text=text)
    anchor = receipt.get("anchor")
    if not problems and anchor is None:
        problems.append("receipt has no anchor transaction yet")
    if not problems and rpc_url:
        from . import chain

        w3 = chain.connect(rpc_url, anchor["chain_id"])
        found = chain.find_root(w3, anchor["contract"], receipt["root"])
        if found is None:
            problems.append(f"root {receipt['root']} not found in registry {anchor['contract']}")
        elif found["tx_hash"] != anchor["tx_hash"]:
            problems.append(
                f"root anchored by tx {found['tx_hash']}, receipt says {anchor['tx_hash']}"
            )
        else:
            return [
                "VERIFIED",
                f"tx {found['tx_hash']} block {found['block_number']} time {found['time']} "
                f"anchored by {found['anchorer']}",
            ]
    elif not problems:
        problems.append("no --rpc given: proof is consistent but the anchor was not checked")
    return ["NOT VERIFIED", *problems]


def verify(
    receipt_file: Annotated[Path, typer.Argument(help="receipt JSON (message.receipts['trn'])")],
    rpc: Annotated[str | None, typer.Option(help="chain RPC URL to check the anchor")] = None,
    text: Annotated[
        str | None, typer.Option(help="message text to check the receipt against")
    ] = None,
) -> None:
    """Verify a message's TRN anchoring receipt."""
    lines = verify_receipt(json.loads(receipt_file.read_text()), rpc, text)
    for line in lines:
        typer.echo(line)
    if lines[0] != "VERIFIED":
        raise typer.Exit(1)
