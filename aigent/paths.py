"""Which files a character file may make aigent read or run: its own folder's, and no other.

A character file is often someone else's. Its plugin ``.py`` files, ``extends`` parents and
knowledge may name any path, so each is checked to be inside the character's folder (after
resolving ``..`` and links) or inside a folder the operator allows: the character's own
``allow_paths`` (relative to its file) or the environment variable ``AIGENT_ALLOW_PATHS``
(folders separated by ``os.pathsep``), which a file cannot set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from aigent.errors import CharacterError

ALLOW_ENV = "AIGENT_ALLOW_PATHS"


def allowed_roots(base_dir: Path, allow_paths: Sequence[str] = ()) -> list[Path]:
    """The character's folder, its ``allow_paths`` and the operator's ``AIGENT_ALLOW_PATHS``."""
    extra = [p for p in os.environ.get(ALLOW_ENV, "").split(os.pathsep) if p]
    return [
        base_dir.resolve(),
        *((base_dir / p).resolve() for p in allow_paths),
        *(Path(p).expanduser().resolve() for p in extra),
    ]


def outside(path: Path, roots: Sequence[Path]) -> str | None:
    """None when ``path`` (resolved) is inside one of ``roots``; else what is wrong, and how to
    allow it."""
    resolved = path.resolve()
    if any(resolved.is_relative_to(root) for root in roots):
        return None
    return (
        f"{path} is outside the character's folder ({roots[0]}); a character file may only "
        "reach its own folder. To allow it, add its folder to the character's allow_paths, "
        f"or to the environment variable {ALLOW_ENV}"
    )


def check_inside(path: Path, roots: Sequence[Path], *, file: str, field: str) -> None:
    """A :class:`CharacterError` naming the file and field when ``path`` is outside ``roots``."""
    problem = outside(path, roots)
    if problem is not None:
        raise CharacterError(file, [(field, problem)])
