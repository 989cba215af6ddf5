"""httpx, without its command line.

``import httpx`` also imports httpx's own CLI (rich, click and pygments) whenever they are
installed, and typer installs them: that costs every agent about 60 ms of start-up and 6 MiB.
Marking the CLI module as absent makes httpx use its stand-in ``main``, exactly as when its
``cli`` extra is not installed. Nothing here runs httpx's CLI.
"""

from __future__ import annotations

import sys

if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

import httpx

__all__ = ["httpx"]
