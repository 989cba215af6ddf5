"""``aigent new``: a character file, or a plugin project a third party would write."""

from __future__ import annotations

import json
import re
from pathlib import Path

from aigent.errors import AigentError

PLUGIN_MODULE = '''"""{title}: an aigent plugin."""

from aigent import hookimpl


def hello(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {{name}}!"


@hookimpl
def register_actions(register):
    register(hello)
'''

PLUGIN_PYPROJECT = """[project]
name = "{dist}"
version = "0.1.0"
description = "{title}: an aigent plugin"
requires-python = ">=3.11"
dependencies = ["aigent"]

[project.entry-points.aigent]
{name} = "{package}"

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"""


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not slug:
        raise AigentError(f"cannot make a file name from {name!r}: use letters or digits")
    return slug


def _write(path: Path, text: str) -> Path:
    if path.exists():
        raise AigentError(f"{path} already exists: choose another name or --dir")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def new_character(name: str, directory: Path) -> list[Path]:
    character = {
        "name": name,
        "bio": [f"{name} is a helpful agent."],
        "adjectives": ["curious", "concise"],
        "style": {"all": ["answer in one or two sentences"]},
        "models": {"large": "local"},
        "plugins": [],
        "clients": [],
    }
    text = json.dumps(character, indent=2) + "\n"
    return [_write(directory / f"{_slug(name)}.json", text)]


def new_plugin(name: str, directory: Path) -> list[Path]:
    slug = _slug(name)
    package = "aigent_" + slug.replace("-", "_")
    root = directory / f"aigent-{slug}"
    values = {
        "dist": f"aigent-{slug}",
        "name": slug.replace("-", "_"),
        "package": package,
        "title": name,
    }
    return [
        _write(root / "pyproject.toml", PLUGIN_PYPROJECT.format(**values)),
        _write(root / package / "__init__.py", PLUGIN_MODULE.format(**values)),
    ]
