"""Secrets go only to hosts the operator chose: never over plain http to another machine.

A character's ``api_base`` (or ``settings.twitter.api_base``) is written by whoever wrote the
file; it must not carry the operator's provider key or X credentials over plain http across a
network, nor redirect signed X requests to someone else's server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aigent import Character, ModelConfig, PluginContext, PluginError, Secrets, secret_may_go_to


def _ctx(tmp_path: Path, **secrets: str) -> PluginContext:
    return PluginContext(
        character=Character(name="A"), secrets=Secrets(environ=secrets), data_dir=tmp_path
    )


def test_which_destinations_may_carry_a_secret() -> None:
    assert secret_may_go_to("https://api.example.com/v1")
    assert secret_may_go_to("http://127.0.0.1:8080/v1")
    assert secret_may_go_to("http://localhost:11434/v1")
    assert secret_may_go_to("http://[::1]:8000/v1")
    assert not secret_may_go_to("http://gpu-box:8000/v1")
    assert not secret_may_go_to("http://10.0.0.7:8000/v1")
    assert secret_may_go_to("http://gpu-box:8000/v1", allow_insecure_http=True)
    assert not secret_may_go_to("ftp://example.com/")


def _openai(config: dict[str, Any], tmp_path: Path, **secrets: str) -> Any:
    from aigent_openai.plugin import OpenAIProvider

    return OpenAIProvider().get_model(ModelConfig(**config), _ctx(tmp_path, **secrets))


def _sends_key(model: Any) -> bool:
    return "authorization" in model._headers


def test_the_provider_key_never_goes_over_plain_http_to_another_host(tmp_path: Path) -> None:
    key = {"OPENAI_API_KEY": "sk-operator-secret"}
    remote = {"model": "openai/qwen", "api_base": "http://gpu-box:8000/v1"}
    assert not _sends_key(_openai(remote, tmp_path, **key))  # an in-house server: no key
    assert _sends_key(_openai({**remote, "allow_insecure_http": True}, tmp_path, **key))
    local = {"model": "openai/qwen", "api_base": "http://127.0.0.1:8000/v1"}
    assert _sends_key(_openai(local, tmp_path, **key))
    assert _sends_key(_openai({"model": "openai/gpt-4o-mini"}, tmp_path, **key))  # https


def test_a_key_the_file_names_for_a_plain_http_host_is_refused_with_the_way_out(
    tmp_path: Path,
) -> None:
    config = {"model": "openai/qwen", "api_base": "http://gpu-box:8000/v1",
              "api_key_secret": "GPU_BOX_KEY"}  # fmt: skip
    with pytest.raises(PluginError) as raised:
        _openai(config, tmp_path, GPU_BOX_KEY="box-secret-123")
    assert "over plain http to http://gpu-box:8000/v1" in str(raised.value)
    assert "allow_insecure_http" in str(raised.value)
    assert "box-secret-123" not in str(raised.value)


def test_litellm_keeps_the_same_rule(tmp_path: Path) -> None:
    from aigent_litellm.plugin import LiteLLMProvider

    ctx = _ctx(tmp_path, ANTHROPIC_API_KEY="sk-ant-operator")
    config = ModelConfig(model="anthropic/claude", api_base="http://proxy.lan:4000")
    assert LiteLLMProvider().get_model(config, ctx)._api_key == "no-key"
    config = ModelConfig(model="anthropic/claude", api_base="https://proxy.example.com")
    assert LiteLLMProvider().get_model(config, ctx)._api_key == "sk-ant-operator"


def test_signed_x_requests_never_go_to_a_host_the_file_names(tmp_path: Path) -> None:
    from aigent_twitter.api import Credentials, XApi, XApiError

    creds = Credentials(bearer_token="bearer-secret", consumer_key="ck", consumer_secret="cs",
                        access_token="at", access_token_secret="ats")  # fmt: skip
    with pytest.raises(XApiError, match="not on this machine"):
        XApi(creds, api_base="https://collector.example.com")
    XApi(creds, api_base="http://127.0.0.1:9/2")  # a local stand-in is fine
