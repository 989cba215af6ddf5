"""elizaOS's own venv, built from the pinned lock file beside this module.

The lock (``requirements.lock``, with hashes) is made from ``requirements.in`` by
``uv pip compile requirements.in --python-version 3.11 --generate-hashes -o requirements.lock``.
The venv lives outside the repo, under ``$XDG_CACHE_HOME`` (or ``~/.cache``), in a directory
named for the lock's hash, so a changed lock gets a fresh venv and an unchanged one is reused.
Bytecode is compiled at install, as it already is in a used environment, so the first run's
start-up is not a compile. Building it needs PyPI (``uv venv`` + ``uv pip sync``), nothing else.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCK = HERE / "requirements.lock"


def venv_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:12]
    return cache / "aigent-benchmarks" / f"elizaos-{digest}"


def python(create: bool) -> Path | None:
    """The venv's interpreter; built first if ``create`` (else None when it does not exist)."""
    target = venv_dir()
    interpreter = target / "bin" / "python"
    if interpreter.exists():
        return interpreter
    if not create:
        return None
    uv = _uv()
    building = target.with_name(target.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    print(f"building elizaOS's venv in {target} from {LOCK.name} (PyPI) ...", file=sys.stderr)
    try:
        subprocess.run([*uv, "venv", "--quiet", "--python", version, str(building)], check=True)
        subprocess.run(
            [*uv, "pip", "sync", "--quiet", "--compile-bytecode",
             "--python", str(building / "bin" / "python"), str(LOCK)],
            check=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        shutil.rmtree(building, ignore_errors=True)
        raise SystemExit(
            f"could not build elizaOS's venv from {LOCK} ({exc}). It needs uv and PyPI; "
            "run with --only aigent to skip the elizaOS side."
        ) from exc
    # Built beside its final place and renamed once complete, so a half-built venv is never
    # taken for a ready one (only bin/python is used, and it does not mind the move).
    building.rename(target)
    return interpreter


def _uv() -> list[str]:
    # `uv run` tells its children where uv is; otherwise the one on PATH, or uv as a module.
    found = os.environ.get("UV") or shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]
