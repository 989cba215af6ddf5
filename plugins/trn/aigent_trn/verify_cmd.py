"""``aigent verify``: check a published message against its Merkle proof and the chain.

Three ways in: a receipt file (a third party needs it, an RPC URL, and the agent's registry and
anchoring address), a message id, or a message's text and agent (both looked up in the local
proof store, ``--data-dir``). The receipt is the forger's to write, so nothing it says about
who anchored it, or where, is taken on its word.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer


def verify_receipt(
    receipt: dict[str, Any],
    rpc_url: str | None,
    text: str | None,
    registry: str | None = None,
    anchorer: str | None = None,
) -> list[str]:
    """Return output lines; the first is VERIFIED or NOT VERIFIED, the rest say why.

    VERIFIED needs what the receipt cannot vouch for itself: the ``registry`` the verifier
    expects (anyone can deploy a contract that logs ``Anchored`` naming any anchorer) and the
    agent's own ``anchorer`` address (anyone can anchor any root, even before the agent does).
    Without them, it says what it checked and what it did not.
    """
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

    chain_id, named, tx = int(anchor["chain_id"]), str(anchor["contract"]), str(anchor["tx_hash"])
    root = receipt["root"]
    if registry is not None and named.lower() != registry.lower():
        return [
            "NOT VERIFIED",
            f"the receipt names registry {named}, not the one you expect ({registry}): anyone "
            "can deploy a registry; if you do trust that one, name it with --registry",
        ]
    url = rpc_url or _preset_url(chain_id)
    if url is None:
        return ["NOT VERIFIED", f"no --rpc given and no known RPC for chain {chain_id}"]
    hint = anchor.get("block_number")
    try:
        w3 = chain.connect(url, chain_id)
        found = chain.find_root(w3, named, root, hint_block=hint, anchorer=anchorer, tx_hash=tx)
        if found is None:
            return ["NOT VERIFIED", *_why_not_found(w3, receipt, anchorer)]
    except Exception as exc:
        return ["NOT VERIFIED", f"could not check the chain at {url}: {exc}"]
    when = datetime.fromtimestamp(found["time"], UTC).isoformat().replace("+00:00", "Z")
    where = f"block {found['block_number']} time {when} chain {chain_id}"
    if registry is not None and anchorer is not None:
        return [
            "VERIFIED",
            f"message {receipt.get('message_id', '?')} by {receipt['canonical'].get('agent')}",
            f"tx {found['tx_hash']}",
            where,
            f"anchored by {found['anchorer']} in registry {named} (the anchorer and registry "
            "you named)",
        ]
    unchecked = []
    if anchorer is None:
        unchecked.append(
            f"not checked: that {found['anchorer']} is the anchoring address of agent "
            f"{receipt['canonical'].get('agent')!r}: anyone can anchor any root; pass "
            "--anchorer ADDRESS, the agent's own (as it publishes it)"
        )
    if registry is None:
        unchecked.append(
            f"not checked: that {named} is the agent's registry and not a contract that logs "
            "whatever its deployer likes: pass --registry ADDRESS (as the agent publishes it)"
        )
    return [
        "NOT VERIFIED",
        f"checked: the message hashes to the receipt's leaf and its proof leads to root {root}",
        f"checked: tx {found['tx_hash']} ({where}) logged root {root} in {named}, "
        f"anchored by {found['anchorer']}" + (" (the anchorer you named)" if anchorer else ""),
        *unchecked,
    ]


def _why_not_found(w3: Any, receipt: dict[str, Any], anchorer: str | None) -> list[str]:
    """Why the receipt's tx is not an anchoring of its root (by ``anchorer``), naming who did
    anchor it, if anyone."""
    from . import chain

    anchor, root = receipt["anchor"], receipt["root"]
    registry, tx, hint = anchor["contract"], anchor["tx_hash"], anchor.get("block_number")
    chain_id = anchor["chain_id"]
    own = chain.find_root(w3, registry, root, hint_block=hint, anchorer=anchorer)
    if anchorer is not None and own is not None:
        return [f"the receipt names tx {tx}, but {anchorer} anchored this root in tx "
                f"{own['tx_hash']}: tx {tx} is not the agent's anchor"]  # fmt: skip
    anyone = own if anchorer is None else chain.find_root(w3, registry, root, hint_block=hint)
    if anyone is None:
        return [
            f"unknown root: {root} was never anchored in registry {registry} on chain "
            f"{chain_id} (not found in registry)"
        ]
    if anchorer is not None:
        return [
            f"root {root} was never anchored by {anchorer} in registry {registry}; "
            f"{anyone['anchorer']} anchored it (tx {anyone['tx_hash']})"
        ]
    return [f"the receipt names tx {tx}, which did not anchor this root; "
            f"{anyone['anchorer']} anchored it in tx {anyone['tx_hash']}"]  # fmt: skip


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


def _address(option: str) -> Any:
    """A typer callback refusing anything but a 0x address, naming the option."""

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        from web3 import Web3

        if not Web3.is_address(value):
            raise typer.BadParameter(
                f"{option} must be a 0x address of 40 hex digits (a valid checksum if mixed "
                f"case), not {value!r}"
            )
        return str(Web3.to_checksum_address(value))

    return check


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
    anchorer: Annotated[
        str | None,
        typer.Option(
            "--anchorer",
            "--agent-address",
            help="the agent's own anchoring address: only its anchor of the root counts",
            callback=_address("--anchorer"),
        ),
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option(
            help="the agent's registry contract: a receipt naming another one fails",
            callback=_address("--registry"),
        ),
    ] = None,
) -> None:
    """Verify that a published message was anchored on The Root Network, unchanged, by the
    agent: VERIFIED needs --registry and --anchorer (the agent's, as it publishes them)."""
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
    lines = (
        ["NOT VERIFIED", *problems]
        if receipt is None
        else verify_receipt(receipt, rpc, text, registry=registry, anchorer=anchorer)
    )
    for line in lines:
        typer.echo(line)
    if lines[0] != "VERIFIED":
        raise typer.Exit(1)
