"""``aigent verify``: check a published message against its Merkle proof and the chain.

Three ways in: a receipt file (a third party needs only it and an RPC URL), a message id, or
a message's text and agent (both looked up in the local proof store, ``--data-dir``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer


def verify_receipt(receipt: dict[str, Any], rpc_url: str | None, text: str | None) -> list[str]:
    """Return output lines; the first is VERIFIED or NOT VERIFIED, the rest say why."""
    from .receipt import check_receipt

    try:
        problems = check_receipt(receipt, text=text)
    except (KeyError, TypeError, ValueError) as exc:
        return ["NOT VERIFIED", f"malformed receipt: {type(exc).__name__}: {exc}"]
    anchor = receipt.get("anchor")
    if not problems and not anchor:
        problems.append("receipt has no anchor transaction yet (the batch is not anchored)")
    if problems:
        return ["NOT VERIFIED", *problems]
    assert anchor is not None
    from . import chain

    url = rpc_url or _preset_url(int(anchor["chain_id"]))
    if url is None:
        return ["NOT VERIFIED", f"no --rpc given and no known RPC for chain {anchor['chain_id']}"]
    try:
        w3 = chain.connect(url, int(anchor["chain_id"]))
        found = chain.find_root(
            w3, anchor["contract"], receipt["root"], hint_block=anchor.get("block_number")
        )
    except Exception as exc:
        return ["NOT VERIFIED", f"could not check the chain at {url}: {exc}"]
    if found is None:
        return [
            "NOT VERIFIED",
            f"unknown root: {receipt['root']} was never anchored in registry "
            f"{anchor['contract']} on chain {anchor['chain_id']} (not found in registry)",
        ]
    if found["tx_hash"].lower() != str(anchor["tx_hash"]).lower():
        return [
            "NOT VERIFIED",
            f"root anchored by tx {found['tx_hash']}, receipt says {anchor['tx_hash']}",
        ]
    when = datetime.fromtimestamp(found["time"], UTC).isoformat().replace("+00:00", "Z")
    return [
        "VERIFIED",
        f"message {receipt.get('message_id', '?')} by {receipt['canonical'].get('agent')}",
        f"tx {found['tx_hash']}",
        f"block {found['block_number']} time {when} chain {anchor['chain_id']}",
        f"anchored by {found['anchorer']} in registry {anchor['contract']}",
    ]


def _preset_url(chain_id: int) -> str | None:
    from .chain import PRESETS

    for name in ("mainnet", "porcini"):
        if PRESETS[name]["chain_id"] == chain_id:
            return str(PRESETS[name]["rpc_url"])
    return None


def _from_store(
    data_dir: Path, message_id: str | None, text: str | None, agent: str | None
) -> tuple[dict[str, Any] | None, list[str]]:
    from .store import ProofStore

    db = data_dir / "trn_proofs.sqlite"
    if not db.exists():
        return None, [f"no proof store at {db}: give the agent's --data-dir"]
    store = ProofStore(db)
    try:
        if message_id:
            receipt = store.receipt(message_id)
            if receipt is None:
                return None, [f"message {message_id} is not in the proof store at {db}"]
            return receipt, []
        ids = store.find(agent or "", text or "")
        if not ids:
            if store.count_by_agent(agent or ""):
                why = (
                    f"no message by {agent} has exactly this text: the text was changed "
                    "(tampered) or never published"
                )
            else:
                why = f"no message by agent {agent!r} is in the proof store at {db}"
            return None, [why]
        return store.receipt(ids[0]), []
    finally:
        store.close()


def verify(
    receipt_file: Annotated[
        Path | None, typer.Argument(help="receipt JSON (message.receipts['trn'])")
    ] = None,
    rpc: Annotated[str | None, typer.Option(help="chain RPC URL to check the anchor")] = None,
    text: Annotated[str | None, typer.Option(help="the message text to check")] = None,
    agent: Annotated[str | None, typer.Option(help="the agent that published --text")] = None,
    message_id: Annotated[
        str | None, typer.Option("--message-id", help="a message id in the proof store")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="the agent's data directory (its proof store)")
    ] = None,
) -> None:
    """Verify that a published message was anchored on The Root Network, unchanged."""
    receipt: dict[str, Any] | None = None
    problems: list[str] = []
    if receipt_file is not None:
        try:
            receipt = json.loads(receipt_file.read_text())
        except (OSError, ValueError) as exc:
            problems = [f"cannot read receipt {receipt_file}: {exc}"]
        if receipt is not None and not isinstance(receipt, dict):
            receipt, problems = None, [f"{receipt_file} is not a receipt object"]
    elif message_id or (text is not None and agent):
        receipt, problems = _from_store(data_dir or Path("."), message_id, text, agent)
    else:
        typer.echo(
            "give a receipt file, --message-id ID --data-dir DIR, or --text TEXT --agent NAME "
            "--data-dir DIR",
            err=True,
        )
        raise typer.Exit(2)
    lines = ["NOT VERIFIED", *problems] if receipt is None else verify_receipt(receipt, rpc, text)
    for line in lines:
        typer.echo(line)
    if lines[0] != "VERIFIED":
        raise typer.Exit(1)
