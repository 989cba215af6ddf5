"""Hooks of the local-model plugin: the ``local`` model provider and ``aigent serve-model``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aigent import AigentError, hookimpl

if TYPE_CHECKING:
    import typer

    from aigent import ModelConfig, PluginContext
    from aigent_local.model import LocalModel, Sampling

# settings.local in a character file: name -> (type, what it is)
SETTINGS: dict[str, tuple[type, str]] = {
    "n_ctx": (int, "the context length in tokens"),
    "chat_format": (str, "a llama.cpp chat format, for a GGUF file without a chat template"),
    "repeat_penalty": (float, "llama.cpp's repeat penalty, 1.0 for none"),
    "frequency_penalty": (float, "the OpenAI-style frequency penalty, 0 for none"),
    "presence_penalty": (float, "the OpenAI-style presence penalty, 0 for none"),
}


class LocalProvider:
    """Serves ``local`` (the bundled SmolLM2-135M-Instruct), ``local/<path.gguf>`` and any
    ``.gguf`` path. Settings (``settings.local`` in the character file): :data:`SETTINGS`."""

    name = "local"

    def supports(self, model_id: str) -> bool:
        return model_id == "local" or model_id.startswith("local/") or model_id.endswith(".gguf")

    def get_model(self, config: ModelConfig, ctx: PluginContext) -> LocalModel:
        from aigent_local.model import LocalModel, resolve_path

        base = ctx.character.source.parent if ctx.character.source else Path.cwd()
        settings = _settings(ctx.settings)
        model = LocalModel(
            resolve_path(config.model, base),
            model_id=config.model,
            sampling=_sampling(config, ctx, settings),
            n_ctx=settings.get("n_ctx", 4096),
            chat_format=settings.get("chat_format"),
            speaker=ctx.character.name,
        )
        model.load()  # at assembly, with progress, so the first message is not the slow one
        return model


def _sampling(config: ModelConfig, ctx: PluginContext, settings: dict[str, Any]) -> Sampling:
    """The character's style sets the length unless the model's own ``max_tokens`` does."""
    from aigent_local.length import reply_length
    from aigent_local.model import Sampling

    style = ctx.character.style
    length = reply_length([*style.all, *style.chat])
    penalties = {k: settings[k] for k in SETTINGS if k.endswith("penalty") and k in settings}
    return Sampling(
        **({} if config.temperature is None else {"temperature": config.temperature}),
        max_tokens=config.max_tokens or length.max_tokens,
        max_sentences=length.max_sentences,
        **penalties,
    )


def _settings(raw: dict[str, Any]) -> dict[str, Any]:
    """``settings.local``, checked: a wrong name or type is named with what was expected."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in SETTINGS:
            known = ", ".join(SETTINGS)
            raise AigentError(f"settings.local.{name}: unknown setting (known: {known})")
        kind, what = SETTINGS[name]
        ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
        if not ok or isinstance(value, bool):
            raise AigentError(
                f"settings.local.{name}: expected {kind.__name__} ({what}), got {value!r}"
            )
        out[name] = float(value) if kind is float else value
    return out


@hookimpl
def register_models(register: Any) -> None:
    register(LocalProvider())


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from aigent_local.commands import add_commands

    add_commands(cli)
