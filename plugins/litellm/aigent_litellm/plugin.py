"""The ``litellm`` model provider: ``provider/model`` ids, keys from the agent's secrets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aigent import MissingSecret, hookimpl, key_for_host

if TYPE_CHECKING:
    from aigent import ModelConfig, PluginContext
    from aigent_litellm.model import LiteLLMModel

# The secret each provider needs; providers not listed (ollama, hosted_vllm, ...) need none.
KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "xai": "XAI_API_KEY",
    "groq": "GROQ_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "together_ai": "TOGETHERAI_API_KEY",
}
# Environment variables litellm itself reads for an endpoint, honoured the same way here.
BASES = {"openai": "OPENAI_API_BASE", "ollama": "OLLAMA_API_BASE"}


class LiteLLMProvider:
    name = "litellm"

    def supports(self, model_id: str) -> bool:
        return "/" in model_id and not model_id.startswith("local/")

    def get_model(self, config: ModelConfig, ctx: PluginContext) -> LiteLLMModel:
        from aigent_litellm.model import LiteLLMModel, preload

        provider = config.model.split("/", 1)[0]
        api_base = config.api_base or (
            ctx.secrets.get(BASES[provider]) if provider in BASES else None
        )
        key_name = config.api_key_secret or KEYS.get(provider)
        api_key = ctx.secrets.get(key_name) if key_name else None
        if key_name and api_key is None:
            if api_base is None:  # an in-house OpenAI-compatible server may need no key
                raise MissingSecret(
                    f"model {config.model!r} needs {key_name}, which is not set. Set it in the "
                    f"environment (export {key_name}=...), in a .env file, or in the character's "
                    "secrets; or run on the bundled local model, which needs no key: set "
                    '"models": {"large": "local"} in the character'
                )
            api_key = "no-key"
        if api_base and api_key != "no-key":
            api_key = key_for_host("litellm", config, api_base, key_name, api_key) or "no-key"
        settings: dict[str, Any] = ctx.settings
        preload()  # at assembly, off the event loop: no message waits for the import
        return LiteLLMModel(
            config.model,
            api_base=api_base,
            api_key=api_key,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            timeout=config.timeout or float(settings.get("timeout", 60)),
            retries=int(settings.get("retries", 3)),
            tool_mode=str(settings.get("tools", "auto")),
        )


@hookimpl(trylast=True)
def register_models(register: Any) -> None:
    # Last: litellm serves what no more direct provider (aigent-openai, say) claims.
    register(LiteLLMProvider())


@hookimpl
def register_embedders(register: Any) -> None:
    from aigent_litellm.embedder import litellm_embedder

    register("litellm", litellm_embedder)
