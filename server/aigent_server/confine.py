"""Where an uploaded character may make the server connect: hosts the operator allows.

A character uploaded through the API (or made from a form) is a stranger's file running with
the operator's keys. Every URL it names (a model's ``api_base``, ``memory.url``, a plugin's
``settings`` such as ``trn.rpc_url``, ``xrpl.url`` or ``twitter.api_base``, its connector's
peers and ledger, URL-like ``secrets`` such as ``OPENAI_API_BASE``, payment pointers in its
spending allowlists) and every port its connector listens on must be on the server's list,
or the file is refused (422) naming the field and the flag that would allow it. The same list
is checked again at each start, and by ``ask_agent`` and ``ask_a2a`` for the receiver or URL
the model picks.

The list starts with the public API hosts aigent knows (model providers, TRN, XRPL) and grows
with ``aigent serve --allow-host HOST[:PORT]`` and ``AIGENT_SERVE_ALLOW_HOSTS``. Loopback is
not on it: that is where the operator's databases, admin ports and this server itself listen,
so a character may reach ``127.0.0.1:11434`` (say) only once the operator names that port.
URLs the plugins default to (no URL named) are the plugins' choice, not the file's, and pass.
Operator files (the command line, watched folders) are not confined.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from aigent import Character, hookimpl
from aigent.errors import ActionBlocked
from aigent.secrets import is_local_url

ENV = "AIGENT_SERVE_ALLOW_HOSTS"
FLAG = "--allow-host"
SHARE_ENV = "AIGENT_SERVE_SHARE_ENV"
SHARE_FLAG = "--share-env"

SHARED_KEYS = (
    # Model providers' keys (aigent-openai's PROVIDERS, plus litellm's with a key): an uploaded
    # agent may use the operator's model, and each key goes only to its own provider's host
    # (aigent.secrets.key_for_host; api_base is confined above).
    "OPENAI_API_KEY",
    "XAI_API_KEY",
    "GROQ_API_KEY",
    "TOGETHERAI_API_KEY",
    "DEEPSEEK_API_KEY",
    "OPENROUTER_API_KEY",
    "MISTRAL_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
)
"""What an uploaded character sees of the server's environment, unless the operator shares
more: never a wallet's seed or key (``XRPL_SEED``, ``TRN_PRIVATE_KEY``), a peer's token, an X
account's credentials or a database URL. Such an agent signs with what its own ``secrets``
bring, or with nothing."""


def environment(
    share: Iterable[str] = (), environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment an uploaded character's secrets are read from: the model keys in
    :data:`SHARED_KEYS` and the names the operator shares (``--share-env``), nothing else."""
    source = os.environ if environ is None else environ
    names = {*SHARED_KEYS, *share}
    return {name: source[name] for name in names if source.get(name)}


DEFAULT_HOSTS = (
    # Model providers (aigent-openai's PROVIDERS, plus the litellm-only ones with a key).
    "api.openai.com",
    "api.x.ai",
    "api.groq.com",
    "api.together.xyz",
    "api.deepseek.com",
    "openrouter.ai",
    "api.mistral.ai",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    # The Root Network's public RPCs (aigent-trn's presets) and XRPL's public servers.
    "root.rootnet.live",
    "porcini.rootnet.app",
    "s.altnet.rippletest.net",
    "s1.ripple.com",
    "s2.ripple.com",
    "xrplcluster.com",
)

# Strict on purpose: URL parsers disagree about backslashes, user info and odd characters
# (``https://evil\\@api.openai.com`` is one host to urllib and another to a browser-grade
# parser), so anything but a plain scheme://host[:port][/rest] is refused outright.
_URL = re.compile(
    r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>\[[0-9a-f:.]+\]|[a-z0-9.-]+)"
    r"(?::(?P<port>[0-9]{1,5}))?(?P<rest>[/?#][^\s\\]*)?$",
    re.IGNORECASE,
)
_POINTER = re.compile(
    r"^\$(?P<host>[a-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?(?P<rest>/[^\s\\]*)?$", re.I
)
_DEFAULT_PORTS = {
    "http": 80,
    "ws": 80,
    "https": 443,
    "wss": 443,
    "postgresql": 5432,
    "postgres": 5432,
}
_LISTENERS = ("listen", "admin")
_TRN_LOCAL = "http://127.0.0.1:8545"  # aigent-trn's "local" network, when its preset is used


@dataclass(frozen=True)
class Where:
    host: str
    port: int | None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" if self.port is not None else self.host


def looks_like_url(text: str) -> bool:
    return "://" in text or bool(_POINTER.match(text))


def where(url: str) -> Where | None:
    """The host and port a URL or payment pointer connects to; None if it is not plain."""
    text = url.strip()
    match = _URL.match(text) or _POINTER.match(text)
    if match is None:
        return None
    host = match["host"].lower().rstrip(".")
    scheme = match.groupdict().get("scheme")
    port = match["port"]
    if port is not None:
        return Where(host, int(port))
    if scheme is None:  # a payment pointer: https
        return Where(host, 443)
    return Where(host, _DEFAULT_PORTS.get(scheme.lower()))


class Hosts:
    """The hosts (``name`` for any port, ``name:port`` for one) uploaded characters may reach."""

    def __init__(self, extra: Iterable[str] = (), *, defaults: bool = True) -> None:
        self.rules: set[Where] = set()
        for entry in [*(DEFAULT_HOSTS if defaults else ()), *extra]:
            self.rules.add(parse_rule(entry))

    def allows(self, place: Where) -> bool:
        return Where(place.host, None) in self.rules or place in self.rules

    def problem(self, field: str, url: str) -> str | None:
        """None if ``url`` may be reached; else what is wrong with ``field`` and how to allow it
        (the URL itself is not repeated: it may carry a password)."""
        place = where(url)
        if place is None:
            return (
                f"{field}: not a plain URL (scheme://host[:port]/path, no user@, no "
                "backslashes or spaces): write it that way"
            )
        if self.allows(place):
            return None
        return f"{field}: {self._refusal(place, 'reach')}"

    def listen_problem(self, field: str, host: str, port: int) -> str | None:
        # An ephemeral port on loopback takes nothing from anyone; a fixed port, or one open to
        # the network, is the operator's to give.
        if port == 0 and is_local_url(f"http://{host}/"):
            return None
        place = Where(host.lower(), port)
        if self.allows(place):
            return None
        return f"{field}: {self._refusal(place, 'listen on')}"

    def _refusal(self, place: Where, verb: str) -> str:
        allow = f"{place.host}:{place.port}" if place.port is not None else place.host
        return (
            f"an uploaded character may not {verb} {place} (not among the hosts this server "
            f"allows); the operator can allow it with `aigent serve {FLAG} {allow}` (or "
            f"{ENV}), or serve the file from the command line"
        )

    def check(self, character: Character) -> list[str]:
        """Every problem with what ``character`` names, one line each (empty: all allowed)."""
        urls = [p for field, url in named_urls(character) if (p := self.problem(field, url))]
        ports = [
            p
            for field, host, port in listeners(character)
            if (p := self.listen_problem(field, host, port))
        ]
        others = _ledger_path(character) + _prefix_entries(character) + _borrowed_keys(character)
        return urls + ports + others

    def plugin(self) -> ReceiverCheck:
        """The check of receivers the model picks, for an uploaded agent's plugins."""
        return ReceiverCheck(self)


def parse_rule(entry: str) -> Where:
    match = _RULE.match(entry.strip())
    if match is None:
        raise ValueError(
            f"{entry!r} is not a host to allow: give a name or address, optionally with a "
            "port (api.example.com, 127.0.0.1:11434, [::1]:8080)"
        )
    port = match["port"]
    return Where(match["host"].lower().rstrip("."), int(port) if port else None)


_RULE = re.compile(r"^(?P<host>\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?$", re.I)


def named_urls(character: Character) -> Iterator[tuple[str, str]]:
    """(field, URL) for every URL the character names itself."""
    for role in ("large", "small", "embedding"):
        for i, config in enumerate(getattr(character.models, role)):
            if config.api_base:
                yield f"models.{role}[{i}].api_base", config.api_base
    if character.memory.url:
        yield "memory.url", character.memory.url
    yield from _walk("settings", character.settings)
    yield from _walk("connector", character.connector.node)
    for key, value in character.secrets.items():
        if "://" in value:  # not a "$..." pointer test: a password may start with "$"
            yield f"secrets.{key}", value
    trn = character.settings.get("trn")
    if isinstance(trn, dict) and trn.get("network") == "local" and not trn.get("rpc_url"):
        yield "settings.trn.network", _TRN_LOCAL
    for asset, limits in character.spending.items():
        for i, entry in enumerate(limits.allowlist or []):
            if looks_like_url(entry):
                yield f"spending.{asset}.allowlist[{i}]", entry


def listeners(character: Character) -> Iterator[tuple[str, str, int]]:
    node = character.connector.node
    for name in _LISTENERS:
        section = node.get(name)
        if isinstance(section, dict):
            # The connector's own defaults: listen on 127.0.0.1:0, admin on 127.0.0.1:7780.
            port = section.get("port", 7780 if name == "admin" else 0)
            yield f"connector.{name}", str(section.get("host", "127.0.0.1")), _int(port)
    if character.connector.spsp is not None:
        spsp = character.connector.spsp
        yield "connector.spsp", spsp.host, spsp.port


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1  # the connector refuses it at start with its own message


def _walk(path: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        if looks_like_url(value):
            yield path, value
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from _walk(f"{path}.{key}", inner)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _walk(f"{path}[{i}]", inner)


def _ledger_path(character: Character) -> list[str]:
    raw = character.connector.node.get("ledger_path")
    if raw is None:
        return []
    path = PurePath(str(raw))
    if path.is_absolute() or ".." in path.parts:
        return [
            "connector.ledger_path: an uploaded character's ledger stays in its data "
            "directory: give a plain file name, or leave it out"
        ]
    return []


def _borrowed_keys(character: Character) -> list[str]:
    # api_key_secret sends the named secret to the model's host as its key: from the server's
    # environment that could be any of the operator's secrets, sent where they do not belong.
    return [
        f"models.{role}[{i}].api_key_secret: an uploaded character may name only a key it "
        f"brings in its own secrets, not {config.api_key_secret!r} from the server's "
        "environment; leave it out to use the provider's usual key"
        for role in ("large", "small", "embedding")
        for i, config in enumerate(getattr(character.models, role))
        if config.api_key_secret and config.api_key_secret not in character.secrets
    ]


def _prefix_entries(character: Character) -> list[str]:
    # An allowlist entry ending in '.' is a prefix: "https://api.example.com." would let the
    # model pay (and so fetch) https://api.example.com.attacker.net/.
    return [
        f"spending.{asset}.allowlist[{i}]: a URL or payment pointer may not end in '.': end it "
        "at the host (add '/' for everything under it)"
        for asset, limits in character.spending.items()
        for i, entry in enumerate(limits.allowlist or [])
        if looks_like_url(entry) and entry.endswith(".")
    ]


class ReceiverCheck:
    """A plugin for uploaded agents: the receiver or URL the model picks for ``ask_agent``,
    ``ask_a2a`` or ``x402_fetch`` (or any action taking a ``receiver`` or ``url``) must be on an
    allowed host, as a URL in the file must."""

    def __init__(self, hosts: Hosts) -> None:
        self.hosts = hosts

    @hookimpl
    def before_action(self, action: str, arguments: dict[str, Any]) -> None:
        for field in ("receiver", "url"):
            value = arguments.get(field)
            if not isinstance(value, str):
                continue
            problem = self.hosts.problem(field, value)
            if problem is not None:
                raise ActionBlocked(f"{action}: {problem}")
