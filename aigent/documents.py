"""Reading a JSON or YAML document, with errors that name the file, line and column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aigent.errors import CharacterError


def read_document(file: Path) -> Any:
    """JSON or YAML by extension; broken syntax is reported with its line and column."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CharacterError(str(file), [("", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CharacterError(str(file), [("", f"cannot read: {exc}")]) from None
    if file.suffix.lower() in {".yaml", ".yml"}:
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise CharacterError(str(file), [("", f"invalid YAML at {where}{problem}")]) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CharacterError(
            str(file), [("", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")]
        ) from None
