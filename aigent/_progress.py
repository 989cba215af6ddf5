"""Progress for slow steps (loading a model, ingesting knowledge), shown on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

_enabled = False


def enable(on: bool = True) -> None:
    """The CLI turns progress on; embedded agents stay quiet unless the app asks."""
    global _enabled
    _enabled = on


@contextmanager
def progress(what: str) -> Iterator[None]:
    """``with progress("loading model"):`` prints what is happening and how long it took."""
    if not _enabled:
        yield
        return
    start = time.perf_counter()
    print(f"… {what}", file=sys.stderr, flush=True)
    try:
        yield
    except BaseException:
        print(f"✗ {what} failed", file=sys.stderr, flush=True)
        raise
    print(f"✓ {what} ({time.perf_counter() - start:.1f}s)", file=sys.stderr, flush=True)
