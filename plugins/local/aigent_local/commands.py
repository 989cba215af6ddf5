"""``aigent serve-model``. Imported only when the CLI builds its commands."""

from pathlib import Path
from typing import Annotated

import typer


def add_commands(cli: typer.Typer) -> None:
    @cli.command("serve-model")
    def serve_model(
        model: Annotated[str, typer.Option(help="'local' or a path to a .gguf file.")] = "local",
        host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    ) -> None:
        """Serve a local model as an OpenAI-compatible endpoint (/v1/chat/completions), so
        several agents and hosts can share one in-house model server."""
        from aigent import enable_progress
        from aigent_local.model import LocalModel, resolve_path
        from aigent_local.server import serve

        enable_progress()
        local = LocalModel(resolve_path(model, Path.cwd()), model_id=model)
        local.load()
        serve(local, host, port)
