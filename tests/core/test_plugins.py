"""Plugin discovery: built-ins, installed entry points, a character's plugins, clear failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aigent import Agent, PluginError

ROOT = Path(__file__).resolve().parents[2]


def test_builtin_plugins_come_through_entry_points() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "aigent.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    plugins = {p["name"]: p for p in json.loads(out)}
    assert plugins["clock"]["source"] == "built-in"
    assert plugins["clock"]["distribution"] == "aigent"
    assert plugins["clock"]["hooks"] == ["register_context_providers"]


async def test_a_local_py_plugin_named_by_the_character_is_used(
    scripted_character, tmp_path
) -> None:
    plugin = tmp_path / "shout.py"
    plugin.write_text(
        "from aigent import hookimpl\n\n"
        "def shout(text: str) -> str:\n"
        "    '''Say it loudly.'''\n"
        "    return text.upper()\n\n"
        "@hookimpl\n"
        "def register_actions(register):\n"
        "    register(shout)\n"
    )
    path = scripted_character(
        plugins=[str(Path(__file__).parents[1] / "fixtures" / "scripted_model.py"), "shout.py"]
    )
    agent = Agent.from_file(path)
    async with agent:
        result = await agent.run_action("shout", {"text": "hey"})
    assert result.output == "HEY"
    assert agent.plugins.info["shout"].source == "character"


@pytest.mark.parametrize(
    ("spec", "source", "message"),
    [
        ("not_a_real_plugin_pkg", None, "plugin 'not_a_real_plugin_pkg': is not installed"),
        ("missing.py", None, "plugin 'missing.py': no such file"),
        ("broken.py", "import nonexistent_module_xyz\n", "failed to import"),
        (
            "raises.py",
            "from aigent import hookimpl\n@hookimpl\ndef register_actions(register):\n"
            "    raise ValueError('needs WEATHER_KEY')\n",
            "register_actions failed (ValueError: needs WEATHER_KEY)",
        ),
        (
            "wrong.py",
            "from aigent import hookimpl\n@hookimpl\ndef register_actoins(register):\n    pass\n",
            "does not match the hook specifications",
        ),
    ],
)
async def test_a_plugin_that_fails_is_named_and_the_agent_does_not_start(
    scripted_character, tmp_path, spec, source, message
) -> None:
    if source is not None:
        (tmp_path / spec).write_text(source)
    fixture = str(Path(__file__).parents[1] / "fixtures" / "scripted_model.py")
    agent = Agent.from_file(scripted_character(plugins=[fixture, spec]))
    with pytest.raises(PluginError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await agent.start()
    assert not agent._started


@pytest.mark.slow
def test_third_party_plugin_installs_and_the_agent_uses_its_action(tmp_path) -> None:
    """Builds and installs examples/plugin-weather for real (into a target directory, so the
    test environment is not changed), then runs an agent in a fresh process that finds it
    through its entry point."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT / "examples" / "plugin-weather"),
        ],
        check=True,
    )
    character = tmp_path / "weather.json"
    character.write_text(
        json.dumps(
            {
                "name": "Forecaster",
                "models": {"large": "scripted"},
                "plugins": [str(ROOT / "tests" / "fixtures" / "scripted_model.py"), "weather"],
                "memory": {"enabled": False},
                "data_dir": str(tmp_path / "data"),
            }
        )
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    listed = subprocess.run(
        [sys.executable, "-m", "aigent.cli", "plugins"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "weather (aigent-weather 0.1.0) [installed]: register_actions" in listed
    chat = subprocess.run(
        [
            sys.executable,
            "-m",
            "aigent.cli",
            "chat",
            str(character),
            "-m",
            "what is the get_weather in Lisbon?",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.strip() == "tool said: Lisbon: sunny, 21°C"


class _Provider:
    def __init__(self, name: str) -> None:
        self.name = name

    def supports(self, model_id: str) -> bool:
        return model_id == "same/model"

    def get_model(self, config, ctx):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def _provider_plugin(name: str, **marks: bool) -> object:
    from aigent import hookimpl

    class Plugin:
        @hookimpl(**marks)
        def register_models(self, register) -> None:  # type: ignore[no-untyped-def]
            register(_Provider(name))

    return Plugin()


def test_which_plugin_serves_a_model_id_is_written_down_and_deterministic() -> None:
    """tryfirst beats everything; then plugins passed in code beat the character's, which beat
    installed ones; trylast comes after all: pytest's rule, not the file system's order."""
    from aigent.plugins import Plugins

    plugins = Plugins()
    plugins.add(_provider_plugin("installed-last", trylast=True), "a", "installed")
    plugins.add(_provider_plugin("installed"), "b", "installed")
    plugins.add(_provider_plugin("character"), "c", "character")
    plugins.add(_provider_plugin("code"), "d", "code")
    order = [r.value.name for r in plugins.collect("register_models")]
    assert order == ["code", "character", "installed", "installed-last"]
    plugins.add(_provider_plugin("first", tryfirst=True), "e", "installed")
    assert plugins.collect("register_models")[0].value.name == "first"


def test_two_stores_with_one_name_the_first_in_precedence_wins() -> None:
    from aigent import hookimpl
    from aigent.plugins import Plugins

    def store_plugin(tag: str) -> object:
        class Plugin:
            @hookimpl
            def register_memory_stores(self, register) -> None:  # type: ignore[no-untyped-def]
                register("mem", lambda ctx, embedder: tag)

        return Plugin()

    plugins = Plugins()
    plugins.add(store_plugin("installed"), "x", "installed")
    plugins.add(store_plugin("code"), "y", "code")
    assert plugins.named("register_memory_stores")["mem"].plugin == "y"


@pytest.mark.parametrize(
    ("hook", "body", "expected"),
    [
        ("register_clients", "register('x')", "expected register(name: str, factory)"),
        ("register_memory_stores", "register(lambda c, e: None, 'x')", "register(name: str"),
        ("register_models", "register('openai')", "provider with supports()"),
        ("register_services", "register(lambda: None)", "service with start() and stop()"),
        ("register_actions", "register(42)", "a function or an Action"),
    ],
)
def test_a_wrong_register_call_names_the_plugin_and_what_was_expected(
    hook: str, body: str, expected: str, tmp_path: Path
) -> None:
    from aigent.plugins import Plugins

    source = tmp_path / "wrong.py"
    needs_ctx = hook in {"register_actions", "register_services"}
    source.write_text(
        "from aigent import hookimpl\n\n"
        f"@hookimpl\ndef {hook}(register{', ctx' if needs_ctx else ''}):\n    {body}\n"
    )
    plugins = Plugins()
    plugins.load_named(str(source))
    with pytest.raises(PluginError) as raised:
        plugins.collect(hook, ctx=None)
    assert "plugin 'wrong'" in str(raised.value)
    assert expected in str(raised.value)
