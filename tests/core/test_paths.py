"""A character file reaches only its own folder: plugins, extends (and knowledge, in memory's
tests) elsewhere are refused with the way to allow them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aigent import Agent, CharacterError, PluginError, load_character
from aigent.paths import allowed_roots

PLUGIN = "from aigent import hookimpl\n\n@hookimpl\ndef register_actions(register):\n    pass\n"


def _layout(tmp_path: Path) -> tuple[Path, Path]:
    home, elsewhere = tmp_path / "character", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    (elsewhere / "evil.py").write_text(PLUGIN)
    return home, elsewhere


def _agent(home: Path, **fields: object) -> Agent:
    data = {"name": "A", "memory": {"enabled": False}, "models": {"large": "local"}, **fields}
    (home / "a.json").write_text(json.dumps(data))
    return Agent.from_file(home / "a.json", load_installed=False)


def test_a_py_plugin_outside_the_characters_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIGENT_ALLOW_PATHS", raising=False)
    home, _ = _layout(tmp_path)
    for spec in ("../elsewhere/evil.py", str(tmp_path / "elsewhere" / "evil.py")):
        with pytest.raises(PluginError) as raised:
            _agent(home).plugins.load_named(spec, home, allowed_roots(home))
        assert "outside the character's folder" in str(raised.value)
        assert "allow_paths" in str(raised.value) and "AIGENT_ALLOW_PATHS" in str(raised.value)


def test_a_plugin_folder_can_be_allowed_by_the_file_or_the_operator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIGENT_ALLOW_PATHS", raising=False)
    home, elsewhere = _layout(tmp_path)
    roots = allowed_roots(home, ["../elsewhere"])
    assert _agent(home).plugins.load_named("../elsewhere/evil.py", home, roots) == "evil"
    monkeypatch.setenv("AIGENT_ALLOW_PATHS", str(elsewhere))
    assert (
        _agent(home).plugins.load_named(str(elsewhere / "evil.py"), home, allowed_roots(home))
        == "evil"
    )


def test_assembly_refuses_an_outside_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIGENT_ALLOW_PATHS", raising=False)
    home, _ = _layout(tmp_path)
    with pytest.raises(PluginError, match="outside the character's folder"):
        _agent(home, plugins=["../elsewhere/evil.py"]).assemble()


def test_extends_outside_the_characters_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIGENT_ALLOW_PATHS", raising=False)
    home, elsewhere = _layout(tmp_path)
    (elsewhere / "base.json").write_text(json.dumps({"name": "Base", "bio": ["b"], "lore": []}))
    child = {"name": "Child", "extends": ["../elsewhere/base.json"], "modelProvider": "openai",
             "clients": [], "bio": ["c"], "lore": []}  # fmt: skip
    (home / "child.json").write_text(json.dumps(child))
    with pytest.raises(CharacterError) as raised:
        load_character(home / "child.json")
    assert "extends[0]" in str(raised.value) and "outside the character's folder" in str(
        raised.value
    )
    monkeypatch.setenv("AIGENT_ALLOW_PATHS", str(elsewhere))
    assert load_character(home / "child.json").name == "Child"
