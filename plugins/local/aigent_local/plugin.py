"""Hooks of the local-model plugin: the ``local`` model provider and ``aigent serve-model``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aigent import hookimpl

if TYPE_CHECKING:
    import typer

    from aigent import ModelConfig, PluginContext
    from aigent_local.model import LocalModel


class LocalProvider:
    """Serves ``local`` (the bundled SmolLM2-135M-Instruct), ``local/<path.gguf>`` and any
    ``.gguf`` path."""

    name = "local"

    def supports(self, model_id: str) -> bool:
        return model_id == "local" or model_id.startswith("local/") or model_id.endswith(".gguf")

    def get_model(self, config: ModelConfig, ctx: PluginContext) -> LocalModel:
        from aigent_local.model import LocalModel, resolve_path

        base = ctx.character.source.parent if ctx.character.source else Path.cwd()
        model = LocalModel(
            resolve_path(config.model, base),
            model_id=config.model,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            n_ctx=int(ctx.settings.get("n_ctx", 4096)),
        )
        model.load()  # at assembly, with progress, so the first message is not the slow one
        return model


@hookimpl
def register_models(register: Any) -> None:
    register(LocalProvider())


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from aigent_local.commands import add_commands

    add_commands(cli)
