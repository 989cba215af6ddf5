"""The ``openai`` model provider: ``provider/model`` ids of OpenAI-compatible APIs, served
directly. Ids of other providers (``anthropic/``, ``gemini/``, ...) are left to litellm."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aigent import MissingSecret, PluginError, hookimpl, key_for_host

if TYPE_CHECKING:
    from aigent import ModelConfig, PluginContext
    from aigent_openai.model import OpenAIModel

# provider prefix -> (default base URL, the secret holding its key). The key names are the
# ones litellm's plugin reads, so a character moves between the two paths unchanged.
PROVIDERS: dict[str, tuple[str | None, str | None]] = {
    "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "xai": ("https://api.x.ai/v1", "XAI_API_KEY"),
    "groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "together_ai": ("https://api.together.xyz/v1", "TOGETHERAI_API_KEY"),
    "deepseek": ("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "openrouter": ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "mistral": ("https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    # Ollama's OpenAI-compatible endpoint, on this machine unless told otherwise; no key.
    "ollama": ("http://localhost:11434/v1", None),
    # A vLLM server has no public address: its api_base must be given.
    "hosted_vllm": (None, None),
}
# Environment variables (or secrets) naming an endpoint, as litellm reads them.
BASES = {
    "openai": "OPENAI_API_BASE",
    "ollama": "OLLAMA_API_BASE",
    "hosted_vllm": "HOSTED_VLLM_API_BASE",
}
# Mistral refuses stream_options (422) and sends usage in its last chunk anyway.
NO_STREAM_OPTIONS = {"mistral"}
TOOL_MODES = ("auto", "native", "json")


class OpenAIProvider:
    name = "openai"

    def supports(self, model_id: str) -> bool:
        provider, _, model = model_id.partition("/")
        return bool(model) and provider in PROVIDERS

    def get_model(self, config: ModelConfig, ctx: PluginContext) -> OpenAIModel:
        from aigent_openai.model import OpenAIModel
        from aigent_openai.prices import price_of

        provider, _, wire_model = config.model.partition("/")
        default_base, usual_key = PROVIDERS[provider]
        env_base = ctx.secrets.get(BASES[provider]) if provider in BASES else None
        own_base = config.api_base or env_base
        base = own_base or default_base
        if base is None:
            raise MissingSecret(
                f"model {config.model!r} needs the address of its server: add "
                f'"api_base": "http://host:8000/v1" to the model in the character, '
                f"or set {BASES[provider]}"
            )
        if not base.startswith(("http://", "https://")):
            raise PluginError(
                "openai",
                f"model {config.model!r}: api_base {base!r} is not an http(s) URL",
                'give the server\'s URL, e.g. "api_base": "http://gpu-box:8000/v1"',
            )
        if provider == "ollama" and not base.rstrip("/").endswith("/v1"):
            base = base.rstrip("/") + "/v1"  # litellm-style bases name Ollama's native API
        key_name = config.api_key_secret or usual_key
        api_key = ctx.secrets.get(key_name) if key_name else None
        if key_name and api_key is None and own_base is None:
            # An in-house server (an api_base) may need no key; a public API always does.
            raise MissingSecret(
                f"model {config.model!r} needs {key_name}, which is not set. Set it in the "
                f"environment (export {key_name}=...), in a .env file, or in the character's "
                "secrets; or run on the bundled local model, which needs no key: set "
                '"models": {"large": "local"} in the character'
            )
        api_key = key_for_host("openai", config, base, key_name, api_key)
        settings: dict[str, Any] = ctx.settings
        return OpenAIModel(
            config.model,
            base_url=base,
            api_key=api_key,
            key_name=key_name,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            timeout=config.timeout or _number(settings, "timeout", 60.0, minimum=0.001),
            retries=int(_number(settings, "retries", 3, minimum=0)),
            tool_mode=_tool_mode(settings),
            price=price_of(config.model, wire_model, settings.get("prices")),
            usage_in_stream=provider not in NO_STREAM_OPTIONS,
        )


def _number(settings: dict[str, Any], name: str, default: float, minimum: float) -> float:
    value = settings.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise PluginError(
            "openai",
            f"settings.openai.{name} must be a number of at least {minimum:g}, not {value!r}",
        )
    return float(value)


def _tool_mode(settings: dict[str, Any]) -> str:
    mode = settings.get("tools", "auto")
    if mode not in TOOL_MODES:
        raise PluginError(
            "openai",
            f"settings.openai.tools must be one of {', '.join(TOOL_MODES)}, not {mode!r}",
            '"json" describes tools in the prompt, for models without native tool calls',
        )
    return str(mode)


@hookimpl(tryfirst=True)
def register_models(register: Any) -> None:
    # First, so that with litellm also installed the direct path serves the ids it claims.
    register(OpenAIProvider())
