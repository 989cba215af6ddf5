"""``aigent-connector start|validate|health`` (also ``aigent connector ...`` when aigent is
installed). Heavy imports (aiohttp, websockets) wait until a command runs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="connector",
    help="Run and check an Interledger connector node.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ConfigFile = Annotated[Path, typer.Argument(help="The node's YAML (or JSON) configuration.")]
TOKEN_ENV = "AIGENT_CONNECTOR_ADMIN_TOKEN"


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(1)


@app.command()
def validate(config: ConfigFile) -> None:
    """Check a configuration, including that every token_env variable is set."""
    from aigent_connector.config import ConfigError, load_config

    try:
        cfg = load_config(config)
        for name, peer in cfg.peers.items():
            peer.resolve_token(f"{config}: peers.{name}.token_env")
        if cfg.admin is not None:
            cfg.admin.resolve_token(f"{config}: admin.token_env")
        if cfg.local_delivery is not None:
            cfg.local_delivery.resolve_token(f"{config}: local_delivery.token_env")
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    where = cfg.address or f"(address from parent {cfg.parent})"
    listen = f"BTP on {cfg.listen.host}:{cfg.listen.port}" if cfg.listen else "no BTP listener"
    admin = f"admin on {cfg.admin.host}:{cfg.admin.port}" if cfg.admin else "no admin API"
    handler = f", packets to {cfg.local_delivery.url}" if cfg.local_delivery else ""
    typer.echo(f"✓ {config}: node {cfg.node_id} {where}, {len(cfg.peers)} peers, "
               f"{len(cfg.routes)} routes, {listen}, {admin}{handler}")  # fmt: skip


@app.command()
def start(config: ConfigFile) -> None:
    """Run a node until interrupted (Ctrl-C or SIGTERM)."""
    from aigent_connector.config import ConfigError, load_config
    from aigent_connector.node import Node

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from None

    async def run() -> None:
        try:
            node = Node(cfg)  # opens the ledger: a database that cannot be reached fails here
            await node.start()
        except ConfigError as exc:
            raise _fail(f"{config}: {exc}") from None
        except (OSError, ConnectionError) as exc:
            raise _fail(f"{config}: cannot start: {exc}") from None
        try:
            parts = [f"connector {cfg.node_id} is up as {node.connector.address}"]
            if node.btp_port is not None and cfg.listen is not None:
                parts.append(f"BTP on ws://{cfg.listen.host}:{node.btp_port}")
            if node.admin_url:
                parts.append(f"admin API on {node.admin_url}")
            typer.secho("; ".join(parts), fg="green", err=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        finally:
            await node.stop()

    _run_fast(run())


def _run_fast(main: Coroutine[Any, Any, None]) -> None:
    """uvloop where it is installed (the packet path is mostly event-loop work), else asyncio."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


@app.command()
def health(
    url: Annotated[str, typer.Option(help="The node's admin API.")] = "http://127.0.0.1:7780",
    token: Annotated[
        str | None,
        typer.Option(help=f"Admin token (default: ${TOKEN_ENV}); adds peers and balances."),
    ] = None,
) -> None:
    """Ask a running node whether it is up; exit 1 if it is not."""
    token = token or os.environ.get(TOKEN_ENV)

    async def ask() -> dict[str, object]:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(f"{url.rstrip('/')}/health") as response:
                report: dict[str, object] = await response.json()
            if token:
                headers = {"Authorization": f"Bearer {token}"}
                for path in ("peers", "balances"):
                    async with session.get(f"{url.rstrip('/')}/{path}", headers=headers) as r:
                        if r.status == 401:
                            raise PermissionError("the admin token was refused")
                        report[path] = await r.json()
            return report

    try:
        report = asyncio.run(ask())
    except PermissionError as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:  # unreachable, not JSON: the node is not healthy from here
        raise _fail(f"{url} did not answer: {type(exc).__name__}: {exc}") from None
    typer.echo(json.dumps(report, indent=2))
    if report.get("status") != "ok":
        raise typer.Exit(1)


def main() -> None:
    """The ``aigent-connector`` console script."""
    app(prog_name="aigent-connector")


if __name__ == "__main__":
    main()
