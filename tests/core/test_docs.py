"""docs/plugins.md stays true: a section per hook, examples that compile and load as plugins,
and the page's example plugin, exactly as printed, running in an agent.

The page marks its code blocks with an HTML comment on the line before the fence:
``<!-- example -->`` for a complete example, ``<!-- example-plugin: PATH -->`` for a file of the
example plugin (several blocks with one PATH are one file, in page order).
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from aigent import Agent, Character, PluginContext, PluginError, Secrets, hookspecs
from aigent.plugins import REGISTERS, Plugins

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"
SCRIPTED_MODEL = ROOT / "tests" / "fixtures" / "scripted_model.py"
MARKER = re.compile(r"^<!-- (example|example-plugin: (\S+)) -->$")
FENCE = re.compile(r"^```(\w*)$")


@dataclass
class Block:
    language: str
    code: str
    section: str  # the heading above it
    line: int
    marker: str  # "example", "example-plugin" or "" (unmarked)
    path: str = ""


def read_blocks(text: str) -> list[Block]:
    """Every fenced block with its marker; a marker not directly above a fence is an error."""
    blocks: list[Block] = []
    lines = text.splitlines()
    section, marker, path, i = "", "", "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("#").strip().strip("`")
        if found := MARKER.match(line):
            marker, path = found.group(1).split(":")[0], found.group(2) or ""
            assert FENCE.match(lines[i + 1]), f"docs/plugins.md:{i + 1}: marker without a block"
            i += 1
            continue
        if fence := FENCE.match(line):
            end = lines.index("```", i + 1)
            code = "\n".join(lines[i + 1 : end]) + "\n"
            blocks.append(Block(fence.group(1), code, section, i + 1, marker, path))
            marker, path, i = "", "", end + 1
            continue
        i += 1
    return blocks


TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = read_blocks(TEXT)
EXAMPLES = [b for b in BLOCKS if b.marker == "example"]
HOOKS = sorted(name for name, fn in vars(hookspecs).items() if hasattr(fn, "aigent_spec"))


def example_file(path: str) -> str:
    parts = [b.code for b in BLOCKS if b.marker == "example-plugin" and b.path == path]
    assert parts, f"docs/plugins.md has no example-plugin block for {path}"
    return "\n\n".join(parts)


def test_every_hook_has_a_section_with_a_complete_example() -> None:
    assert len(HOOKS) >= 13, HOOKS  # the hookspecs were found, not an empty list
    headings = [line for line in TEXT.splitlines() if line.startswith("#")]
    for hook in HOOKS:
        assert f"### `{hook}`" in headings, f"docs/plugins.md has no section for {hook}"
        assert any(b.section == hook for b in EXAMPLES), f"the {hook} section has no example"


@pytest.mark.parametrize("block", EXAMPLES, ids=lambda b: f"{b.section or 'top'}-line{b.line}")
def test_a_complete_example_compiles_and_loads_as_a_plugin(block: Block, tmp_path: Path) -> None:
    assert block.language == "python"
    compile(block.code, f"docs/plugins.md:{block.line}", "exec")
    source = tmp_path / f"doc_example_line{block.line}.py"
    source.write_text(block.code, encoding="utf-8")
    plugins = Plugins()
    name = plugins.load_named(str(source))  # a misspelt hook or argument fails here
    ctx = PluginContext(character=Character(name="Docs"), secrets=Secrets({}), data_dir=tmp_path)
    for hook in plugins.info[name].hooks:
        if hook in REGISTERS:  # each register call is checked against its family's shape
            assert plugins.collect(hook, ctx=ctx), f"{hook} registered nothing"
        elif hook == "register_commands":
            cli = typer.Typer()
            getattr(plugins.pm.hook, hook)(cli=cli)
            assert cli.registered_commands or cli.registered_groups


def test_the_example_plugin_is_one_module_named_by_its_entry_point() -> None:
    pyproject = tomllib.loads(example_file("pyproject.toml"))
    [(name, module)] = pyproject["project"]["entry-points"]["aigent"].items()
    assert (name, module) == ("glossary", "aigent_glossary")
    compile(example_file(f"{module}/__init__.py"), "aigent_glossary/__init__.py", "exec")


def write_agent(tmp_path: Path, **settings: Any) -> tuple[Path, dict[str, Any]]:
    """The page's character, with the page's plugin module as a file (its plugin name is the
    file's stem, ``glossary``, as the entry point's would be) and the scripted model."""
    plugin = tmp_path / "glossary.py"
    plugin.write_text(example_file("aigent_glossary/__init__.py"), encoding="utf-8")
    character = json.loads(example_file("character.json"))
    assert character["plugins"] == ["glossary"]
    character["settings"]["glossary"].update(settings)
    character.update(
        models={"large": "scripted"},
        plugins=[str(SCRIPTED_MODEL), str(plugin)],
        data_dir=str(tmp_path / "data"),
        memory={"enabled": False},
        connector={"enabled": False},
    )
    path = tmp_path / "lexi.json"
    path.write_text(json.dumps(character), encoding="utf-8")
    return path, character["settings"]["glossary"]


async def test_the_example_plugin_runs_in_an_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, settings = write_agent(tmp_path)
    meaning = settings["terms"]["ILP"]
    agent = Agent.from_file(path)
    async with agent:
        scripted = agent.plugins.pm.get_plugin("scripted_model")
        monkeypatch.setitem(scripted.TOOL_ARGS, "define", {"term": "ILP"})
        reply = await agent.chat("Please define ILP for me")
        blocked = await agent.run_action("add_term", {"term": "BTP", "meaning": "WebSockets"})

    assert [(a.name, a.ok) for a in reply.actions] == [("define", True)]
    assert reply.text == f"tool said: ILP: {meaning}"
    system_prompt = scripted.CALLS[0]["messages"][0].content
    assert f"Glossary:\n- ilp: {meaning}" in system_prompt  # the context provider
    assert reply.receipts["glossary"] == ["ilp"]  # after_publish
    assert not blocked.ok and "read-only" in blocked.output  # before_action
    assert not (tmp_path / "data" / "glossary.json").exists()

    cli = typer.Typer()
    cli.callback()(lambda: None)  # a group, so the command is called by its name
    agent.plugins.pm.get_plugin("glossary").register_commands(cli=cli)
    shown = CliRunner().invoke(cli, ["glossary", str(path)])
    assert shown.exit_code == 0, shown.output
    assert shown.output == f"ilp: {meaning}\n"


async def test_the_example_plugin_learns_a_term_when_not_read_only(tmp_path: Path) -> None:
    path, _ = write_agent(tmp_path, read_only=False)
    async with Agent.from_file(path) as agent:
        added = await agent.run_action("add_term", {"term": "BTP", "meaning": "over WebSockets"})
        defined = await agent.run_action("define", {"term": "btp"})
    assert added.ok and defined.output == "btp: over WebSockets"
    saved = json.loads((tmp_path / "data" / "glossary.json").read_text(encoding="utf-8"))
    assert saved["btp"] == "over WebSockets"


async def test_a_bad_setting_of_the_example_plugin_names_it(tmp_path: Path) -> None:
    path, _ = write_agent(tmp_path, terms="ILP")
    agent = Agent.from_file(path)
    with pytest.raises(PluginError, match=r"plugin 'glossary': register_actions failed") as err:
        await agent.start()
    assert "settings.glossary.terms must be an object" in str(err.value)
