"""Which ids the direct provider claims, where it sends them, and which key it uses."""

from __future__ import annotations

import pytest
from aigent_openai.plugin import PROVIDERS, OpenAIProvider

from aigent import MissingSecret, PluginError
from tests.plugins.openai.conftest import KEY


@pytest.mark.parametrize(
    "model_id",
    [
        "openai/gpt-4o-mini",
        "xai/grok-4.3",
        "groq/openai/gpt-oss-20b",
        "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "deepseek/deepseek-chat",
        "openrouter/meta-llama/llama-3.3-70b-instruct",
        "mistral/mistral-small-latest",
        "ollama/llama3.2",
        "hosted_vllm/Qwen/Qwen2.5-7B-Instruct",
    ],
)
def test_it_claims_the_openai_compatible_providers(model_id: str) -> None:
    assert OpenAIProvider().supports(model_id)


@pytest.mark.parametrize(
    "model_id",
    ["anthropic/claude-sonnet-4", "gemini/gemini-2.5-flash", "local", "local/x.gguf", "openai/"],
)
def test_it_leaves_other_ids_to_other_plugins(model_id: str) -> None:
    assert not OpenAIProvider().supports(model_id)


def test_public_apis_are_reached_over_https_only() -> None:
    for provider, (base, _) in PROVIDERS.items():
        if provider != "ollama" and base is not None:
            assert base.startswith("https://"), provider
    assert PROVIDERS["ollama"][0] == "http://localhost:11434/v1"  # this machine only


def test_a_missing_key_says_how_to_fix(build) -> None:
    with pytest.raises(MissingSecret) as info:
        build("xai/grok-4.3", api_base=None, secrets={})
    message = str(info.value)
    assert "model 'xai/grok-4.3' needs XAI_API_KEY, which is not set" in message
    assert "export XAI_API_KEY=..." in message
    assert '"models": {"large": "local"}' in message


def test_the_default_base_and_the_providers_key(build) -> None:
    model = build("groq/openai/gpt-oss-20b", api_base=None, secrets={"GROQ_API_KEY": KEY})
    assert model.base_url == "https://api.groq.com/openai/v1"
    assert model.wire_model == "openai/gpt-oss-20b"


def test_api_key_secret_names_another_key(build) -> None:
    with pytest.raises(MissingSecret, match="needs TEAM_KEY"):
        build(api_base=None, api_key_secret="TEAM_KEY")
    model = build(api_base=None, api_key_secret="TEAM_KEY", secrets={"TEAM_KEY": KEY})
    assert model._headers["authorization"] == f"Bearer {KEY}"


def test_an_endpoint_from_the_environment_as_litellm_reads_it(build, openai_server) -> None:
    # OPENAI_API_BASE points openai/ ids at an in-house server, which may need no key.
    model = build("openai/stand-in", api_base=None, secrets={"OPENAI_API_BASE": openai_server.url})
    assert model.base_url == openai_server.url
    assert "authorization" not in model._headers


def test_ollama_gets_its_openai_compatible_path(build) -> None:
    assert build("ollama/llama3.2", api_base=None).base_url == "http://localhost:11434/v1"
    # litellm users write Ollama's own address; the OpenAI-compatible API is under /v1.
    assert build("ollama/llama3.2", api_base="http://gpu:11434/").base_url == "http://gpu:11434/v1"


def test_vllm_needs_an_address(build) -> None:
    with pytest.raises(MissingSecret, match='add "api_base": "http://host:8000/v1"'):
        build("hosted_vllm/qwen", api_base=None)


@pytest.mark.parametrize(
    ("config", "settings", "problem"),
    [
        ({"api_base": "gpu-box:8000/v1"}, {}, "api_base 'gpu-box:8000/v1' is not an http"),
        ({}, {"tools": "xml"}, "settings.openai.tools must be one of auto, native, json"),
        ({}, {"retries": -1}, "settings.openai.retries must be a number of at least 0"),
        ({}, {"timeout": "soon"}, "settings.openai.timeout must be a number"),
        ({}, {"prices": {"x": [1]}}, r"'x' must be \[input_per_token, output_per_token\]"),
        ({}, {"prices": ["x"]}, "settings.openai.prices: must be an object"),
    ],
)
def test_bad_configuration_names_what_and_how_to_fix(build, config, settings, problem) -> None:
    with pytest.raises(PluginError, match=f"plugin 'openai': .*{problem}"):
        build(settings=settings, **config)
