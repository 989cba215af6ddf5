"""The ``serve`` command itself (imported only when the CLI is built)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from aigent_server.app import SUFFIXES

Sources = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Character files, or directories of them (.json, .yaml, .yml); a directory is "
        "watched: files added, changed or removed there while the server runs are followed."
    ),
]


def serve(
    sources: Sources = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    data_dir: Annotated[
        Path, typer.Option(help="Where the server keeps its registry, uploads and agents' data.")
    ] = Path(".aigent/server"),
    admin: Annotated[
        list[str] | None,
        typer.Option(
            help="A wallet address that signs in as the operator (sees the agents loaded from "
            "files). Repeat for more; also AIGENT_SERVE_ADMINS, comma-separated."
        ),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            help="A host (name, or name:port) that uploaded characters may reach, besides the "
            "public API hosts aigent knows: e.g. 127.0.0.1:11434 for a local Ollama. Repeat for "
            "more; also AIGENT_SERVE_ALLOW_HOSTS, comma-separated."
        ),
    ] = None,
    share_env: Annotated[
        list[str] | None,
        typer.Option(
            help="A variable of the server's environment uploaded characters may read as a "
            "secret (they see only model providers' API keys otherwise: never a wallet seed, a "
            "peer token or X credentials). Repeat for more; also AIGENT_SERVE_SHARE_ENV."
        ),
    ] = None,
    a2a_default: Annotated[
        str | None,
        typer.Option(
            help="The agent whose A2A card is /.well-known/agent-card.json (default: the only "
            "agent loaded from files, if just one). Every agent's card is at "
            "/a2a/<name>/.well-known/agent-card.json."
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar="AIGENT_SERVE_DATABASE_URL",
            show_envvar=True,
            help="PostgreSQL for the server's state, shared by several aigent serve processes "
            "that split the agents between them (postgresql://user@host:port/db; the password "
            "in PGPASSWORD or ~/.pgpass). Default: SQLite in --data-dir, one server.",
        ),
    ] = None,
    database_schema: Annotated[
        str, typer.Option(help="The installation's schema in that database.")
    ] = "aigent",
    lease_seconds: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="With --database-url: how long an agent's lease lasts; its server renews it "
            "every third of that, and another takes the agent over once it lapses.",
        ),
    ] = 15.0,
    advertise_url: Annotated[
        str | None,
        typer.Option(
            help="With --database-url: the URL the fleet's other servers reach this one at "
            "(they pass it requests for the agents it runs). Default: http://HOST:PORT, the "
            "machine's name when listening on every address.",
        ),
    ] = None,
) -> None:
    """Host many agents behind one REST API, live events and a web app (on --port, 8000)."""
    import uvicorn

    from aigent import AigentError, load_character
    from aigent_server.app import Settings, create_app
    from aigent_server.confine import ENV, SHARE_ENV, parse_rule
    from aigent_server.database import DatabaseError

    files: list[Path] = []
    folders: list[Path] = []
    for source in sources or []:
        if source.is_dir():
            folders.append(source.resolve())
            files.extend(sorted(p for p in source.iterdir() if p.suffix.lower() in SUFFIXES))
        elif source.exists():
            files.append(source)
        else:
            raise typer.BadParameter(f"{source}: no such file or directory", param_hint="SOURCES")
    good: list[Path] = []
    for file in files:
        try:
            load_character(file)
        except AigentError as exc:
            # One broken file must not keep the others from being served.
            typer.secho(f"✗ {exc} (not served)", fg="red", err=True)
            continue
        good.append(file.resolve())
    admins = {a.strip() for a in os.environ.get("AIGENT_SERVE_ADMINS", "").split(",") if a.strip()}
    admins.update(admin or [])
    token = os.environ.get("AIGENT_SERVE_TOKEN") or None
    allowed = [h.strip() for h in os.environ.get(ENV, "").split(",") if h.strip()]
    allowed.extend(allow_host or [])
    for entry in allowed:
        try:
            parse_rule(entry)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--allow-host") from None
    shared = [n.strip() for n in os.environ.get(SHARE_ENV, "").split(",") if n.strip()]
    shared.extend(share_env or [])
    settings = Settings(
        data_dir=data_dir.expanduser().resolve(),
        files=good,
        token=token,
        admins=frozenset(admins),
        watch=folders,
        allow_hosts=tuple(allowed),
        share_env=tuple(shared),
        a2a_default=a2a_default,
        database_url=database_url or None,
        database_schema=database_schema,
        lease_seconds=lease_seconds,
        server_name=f"{socket.gethostname()}:{port}",
        server_url=advertise_url or _own_url(host, port),
    )
    where = f"http://{host}:{port}/"
    typer.echo(f"serving {len(good)} agent file(s) at {where} (API: {where}api/docs)")
    for folder in folders:
        typer.echo(f"  watching {folder}: files added, changed or removed there are followed")
    if allowed:
        typer.echo(f"  uploaded characters may also reach: {', '.join(allowed)}")
    if shared:
        typer.echo(f"  uploaded characters may also read: {', '.join(shared)}")
    if token is None:
        typer.echo("  no AIGENT_SERVE_TOKEN set: scripts cannot use the API, only signed-in users")
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(
            f"  listening on {host}: reachable from other machines; put HTTPS in front",
            fg="yellow",
        )
    if database_url:
        typer.echo(f"  sharing state and agents through PostgreSQL (schema {database_schema})")
    try:
        app = create_app(settings)
    except DatabaseError as exc:
        typer.secho(f"✗ {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=3,  # open event streams never end on their own
    )


def _own_url(host: str, port: int) -> str:
    """Where the other servers reach this one, short of --advertise-url."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
