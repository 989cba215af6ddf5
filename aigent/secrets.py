"""Secrets: where keys come from, and how they are kept out of logs and error messages.

Lookup order, first match wins:

1. the process environment (``OPENAI_API_KEY=... aigent run ...``);
2. a ``.env`` file in the current directory, then one beside the character file;
3. the character's own ``secrets`` (ElizaOS ``settings.secrets`` and 1.x ``secrets``).

Every value that is looked up is remembered, and :class:`RedactingFilter` replaces it with
``***`` in any log record; :func:`redact` does the same for text such as error messages.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from aigent.errors import MissingSecret

if TYPE_CHECKING:
    from aigent.character import ModelConfig

_known: set[str] = set()
_lock = threading.Lock()
_MIN_SECRET_LEN = 6  # shorter values ("true", "1") would redact ordinary words


def remember_secret(value: str) -> None:
    """Treat ``value`` as secret from now on: it is redacted wherever aigent prints or logs."""
    if len(value) >= _MIN_SECRET_LEN:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    """``text`` with every known secret value replaced by ``***``."""
    with _lock:
        values = sorted(_known, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, "***")
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secrets from the message, its arguments and tracebacks.

    The CLI installs it on its handler; an application embedding agents can add it to its own
    handlers with ``handler.addFilter(RedactingFilter())``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not _known:
            return True
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
        return True


def read_dotenv(path: Path) -> dict[str, str]:
    """A ``.env`` file: ``KEY=value`` lines, optional ``export``, quotes and ``#`` comments."""
    values: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return values
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if value[:1] in {'"', "'"} and value.endswith(value[:1]) and len(value) >= 2:
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


class Secrets:
    """Read-only secrets for one agent. Its ``repr`` shows key names, never values."""

    def __init__(
        self,
        own: Mapping[str, str] | None = None,
        env_files: list[Path] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._layers: list[Mapping[str, str]] = [os.environ if environ is None else environ]
        for file in env_files or []:
            self._layers.append(read_dotenv(file))
        self._layers.append(dict(own or {}))
        for value in (own or {}).values():
            remember_secret(value)

    @classmethod
    def for_character(cls, own: Mapping[str, str], source: Path | None) -> Secrets:
        files = [Path.cwd() / ".env"]
        if source is not None and source.resolve().parent != Path.cwd().resolve():
            files.append(source.resolve().parent / ".env")
        return cls(own, files)

    def get(self, key: str, default: str | None = None) -> str | None:
        for layer in self._layers:
            value = layer.get(key)
            if value:
                remember_secret(value)
                return value
        return default

    def require(self, key: str, needed_for: str, fix: str = "") -> str:
        """The value of ``key``, or :class:`MissingSecret` saying how to provide it."""
        value = self.get(key)
        if value is None:
            hint = fix or (
                f"set {key} in the environment or in a .env file, "
                f"or add it to the character's secrets"
            )
            raise MissingSecret(f"{needed_for} needs {key}, which is not set: {hint}")
        return value

    def __contains__(self, key: str) -> bool:
        return any(layer.get(key) for layer in self._layers)

    def __repr__(self) -> str:
        own = sorted(self._layers[-1])
        return f"Secrets(character keys={own})"


def secret_may_go_to(url: str, *, allow_insecure_http: bool = False) -> bool:
    """Whether a secret (a key, a signed request) may be sent to ``url``: over https anywhere,
    over plain http only to this machine (loopback) unless the file allows insecure http for
    it: anyone on the path would read it otherwise."""
    scheme = url.partition("://")[0].lower()
    if scheme == "https":
        return True
    return scheme == "http" and (allow_insecure_http or is_local_url(url))


def is_local_url(url: str) -> bool:
    """Whether ``url`` names this machine (localhost or a loopback address)."""
    import ipaddress
    from urllib.parse import urlparse

    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def key_for_host(
    plugin: str, config: ModelConfig, url: str, key_name: str | None, key: str | None
) -> str | None:
    """The model's key if it may go to ``url`` (see :func:`secret_may_go_to`), else None: the
    provider's usual key is simply not sent over plain http to another host (an in-house server
    there needs a key of its own). A key the file names for such a host (``api_key_secret``) is
    refused, with the way to allow it."""
    if key is None or secret_may_go_to(url, allow_insecure_http=config.allow_insecure_http):
        return key
    if config.api_key_secret:
        from aigent.errors import PluginError

        raise PluginError(
            plugin,
            f"model {config.model!r} would send {key_name} over plain http to {url}, where "
            "anyone on the path can read it",
            'use https, or add "allow_insecure_http": true to this model if that network is yours',
        )
    return None
