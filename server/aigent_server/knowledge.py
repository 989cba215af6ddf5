"""Knowledge uploaded through the API: text files kept in a ``knowledge/`` folder of the
agent's own data directory, and searched with the rest of its memory.

An uploaded character may not reach outside its folder (no ``allow_paths``), and its folder is
not where the server keeps the agent's data, so the server itself names the knowledge folder
to the agent at each start: a directory of knowledge, and the one path it is allowed to read
beyond its file's folder. Only the server writes there, and only text files."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aigent import Character
from aigent.character import KnowledgeDirectory
from aigent.interfaces import SearchableMemory

SUFFIXES = (".md", ".markdown", ".txt")
MAX_BYTES = 512 * 1024


class KnowledgeError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def folder(data_dir: Path) -> Path:
    return data_dir / "knowledge"


def attach(character: Character, data_dir: Path) -> None:
    """Name the agent's knowledge folder in its character (in memory only, before it starts)."""
    where = folder(data_dir)
    where.mkdir(parents=True, exist_ok=True)
    character.allow_paths.append(str(where))
    character.knowledge.append(KnowledgeDirectory(directory=str(where)))


def save(data_dir: Path, filename: str | None, content: bytes) -> Path:
    """Write an uploaded knowledge file (checked: a text file, not too big, UTF-8)."""
    name = Path(filename or "").name
    if not name.lower().endswith(SUFFIXES):
        raise KnowledgeError(
            422, f"{name or 'the file'}: upload a text file ({', '.join(SUFFIXES)})"
        )
    if len(content) > MAX_BYTES:
        raise KnowledgeError(
            413, f"{name} is {len(content)} bytes; a knowledge file may be {MAX_BYTES} at most"
        )
    try:
        content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KnowledgeError(422, f"{name} is not UTF-8 text (byte {exc.start})") from None
    # A dotfile is never read as knowledge; a name with odd characters gets plain ones.
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "knowledge.md"
    path = folder(data_dir) / safe
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def searchable(memory: object, name: str) -> SearchableMemory:
    if memory is None:
        raise KnowledgeError(409, f"agent {name!r} has memory off (memory.enabled is false)")
    if not isinstance(memory, SearchableMemory):
        raise KnowledgeError(
            501, f"agent {name!r}'s memory store ({type(memory).__name__}) has no search"
        )
    return memory


def found(hits: list[Any]) -> list[dict[str, Any]]:
    return [asdict(hit) for hit in hits]
