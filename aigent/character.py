"""A character: who an agent is, which plugins it uses and how it is paid.

``load_character(path)`` reads aigent's own format (JSON or YAML), ElizaOS 0.x and 1.x character
files and ZerePy agent files, detects which one it is and returns a :class:`Character`. Fields of
foreign formats that mean something here are mapped; the rest become ``character.warnings``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from aigent.amounts import format_amount
from aigent.documents import read_document
from aigent.errors import CharacterError
from aigent.spending import Limits

if TYPE_CHECKING:
    from aigent.character_formats import Format


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    """One model: a litellm-style id (``openai/gpt-4o-mini``, ``ollama/llama3``, ``local``)."""

    model: str = Field(min_length=1)
    api_base: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=None, gt=0)
    api_key_secret: str | None = None
    """The name of the secret that holds this model's key, when not the provider's usual one."""
    allow_insecure_http: bool = False
    """Send the key to an ``http://`` api_base on another host (a network you trust). Without
    it a key goes over plain http only to this machine."""


def _as_chain(value: Any) -> Any:
    """``"openai/gpt-4o"``, ``{"model": ...}`` or a list of either: a fallback chain."""
    if value is None:
        return []
    if isinstance(value, str | dict):
        value = [value]
    if isinstance(value, list):
        return [{"model": v} if isinstance(v, str) else v for v in value]
    return value


class Models(_Strict):
    """Models by role, as ElizaOS 1.x picks them. Each role is a fallback chain."""

    large: list[ModelConfig] = Field(default_factory=list)
    small: list[ModelConfig] = Field(default_factory=list)
    embedding: list[ModelConfig] = Field(default_factory=list)

    _chains = field_validator("large", "small", "embedding", mode="before")(_as_chain)

    def chain(self, role: str) -> list[ModelConfig]:
        """The chain for ``role``; small falls back to large and large to small."""
        own: list[ModelConfig] = getattr(self, role)
        if own or role == "embedding":
            return own
        return self.small if role == "large" else self.large


class Style(_Strict):
    all: list[str] = Field(default_factory=list)
    chat: list[str] = Field(default_factory=list)
    post: list[str] = Field(default_factory=list)


class Example(_Strict):
    user: str
    text: str
    actions: list[str] = Field(default_factory=list)


class KnowledgePath(_Strict):
    path: str
    shared: bool = False


class KnowledgeDirectory(_Strict):
    directory: str
    shared: bool = False


Knowledge = str | KnowledgePath | KnowledgeDirectory


class Price(_Strict):
    """What one message costs, in the asset's smallest unit (amount 1000 at scale 6 = 0.001)."""

    amount: int = Field(ge=0)
    asset_code: str = Field(default="XRP", min_length=1)
    asset_scale: int = Field(default=6, ge=0, le=255)

    def __str__(self) -> str:
        return format_amount(self.amount, self.asset_scale, self.asset_code)


class Spsp(_Strict):
    """Where the agent answers SPSP (RFC 9) queries, so payers learn its STREAM details."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    path: str = "/.well-known/pay"


class ConnectorSettings(BaseModel):
    """The agent's payment node. ``enabled``, ``spsp`` and ``free`` are the agent's; every
    other field is the connector's own configuration (address or parent, BTP port, peers,
    routes, limits, admin API: see connector/README.md), checked when the agent starts."""

    model_config = ConfigDict(extra="allow")

    enabled: bool = True
    spsp: Spsp | None = None
    free: bool = False
    """Answer messages over ILP without payment (a private network, say)."""

    @property
    def node(self) -> dict[str, Any]:
        """The connector's part of the settings."""
        return dict(self.model_extra or {})


class Task(_Strict):
    name: str
    weight: float = Field(default=1.0, ge=0)


class Loop(_Strict):
    """An autonomous loop in the ZerePy manner: a weighted task every ``delay`` seconds."""

    delay: float = Field(default=900, gt=0)
    jitter: float = Field(default=0.1, ge=0, le=1)
    tasks: list[Task] = Field(default_factory=list)
    time_multipliers: dict[str, float] = Field(default_factory=dict)
    use_time_multipliers: bool = False


class Memory(_Strict):
    store: str | None = None
    """A registered memory store by name; ``None``: the first installed store, in plugin
    precedence order, that accepts these settings (a Chroma server when ``url`` is set, else
    the embedded ``sqlite``)."""
    embedder: str | None = None
    url: str | None = None
    top_k: int = Field(default=5, ge=0)
    min_score: float = 0.0
    token_budget: int = Field(default=800, ge=0)
    enabled: bool = True
    flush_seconds: float = Field(default=1.0, gt=0, le=3600)
    """Exchanges are written behind the reply, at most this long after it (a SIGKILL loses at
    most this much); a clean stop writes everything."""
    flush_batch: int = Field(default=64, ge=1, le=10_000)
    """Write sooner once this many exchanges wait."""


class Character(_Strict):
    """aigent's own character format. Documented field by field in README.md."""

    name: str = Field(min_length=1)
    username: str | None = None
    system: str | None = None
    bio: list[str] = Field(default_factory=list)
    lore: list[str] = Field(default_factory=list)
    adjectives: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    style: Style = Field(default_factory=Style)
    message_examples: list[list[Example]] = Field(default_factory=list)
    post_examples: list[str] = Field(default_factory=list)
    knowledge: list[Knowledge] = Field(default_factory=list)
    models: Models = Field(default_factory=Models)
    plugins: list[str] = Field(default_factory=list)
    clients: list[str] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)
    """Per-plugin settings, namespaced by plugin name: ``{"twitter": {"dry_run": true}}``."""
    secrets: dict[str, str] = Field(default_factory=dict)
    memory: Memory = Field(default_factory=Memory)
    price: Price | None = None
    spending: dict[str, Limits] = Field(default_factory=dict)
    """Limits per asset code on what the agent may spend; an asset with no limits is not spent."""
    allow_paths: list[str] = Field(default_factory=list)
    """Folders outside the character's own (relative to its file) that its plugins and
    knowledge may come from; see aigent.paths."""
    spend_from: list[str] = Field(default_factory=lambda: ["direct"])
    """Clients whose messages may lead to a payment: value-moving actions are offered and run
    only for them. ``direct`` is the terminal and apps embedding the agent; add ``twitter`` or
    ``ilp`` (paid messages) only if strangers there should be able to make the agent pay."""
    connector: ConnectorSettings = Field(default_factory=ConnectorSettings)
    loop: Loop | None = None
    data_dir: str | None = None

    _source: Path | None = PrivateAttr(default=None)
    _format: Format = PrivateAttr(default="aigent")
    _warnings: list[str] = PrivateAttr(default_factory=list)

    @field_validator("bio", "lore", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("knowledge", mode="before")
    @classmethod
    def _knowledge_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | dict) else value

    @field_validator("secrets", mode="before")
    @classmethod
    def _secret_strings(cls, value: Any) -> Any:
        # ElizaOS allows booleans and numbers as secret values; the environment only has text.
        if isinstance(value, dict):
            return {k: v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
        return value

    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def format(self) -> Format:
        return self._format

    @property
    def warnings(self) -> list[str]:
        return self._warnings

    def summary(self) -> str:
        """One line: who this is and what it runs with."""
        models = ", ".join(m.model for m in self.models.chain("large")) or "default model"
        parts = [self.name, f"model {models}"]
        if self.plugins:
            parts.append("plugins " + ", ".join(self.plugins))
        if self.clients:
            parts.append("clients " + ", ".join(self.clients))
        if self.price:
            parts.append(f"price {self.price}/message")
        if self.knowledge:
            parts.append(f"{len(self.knowledge)} knowledge entries")
        return "; ".join(parts)


def load_character(path: str | Path) -> Character:
    """Read, detect and validate one character file. Raises :class:`CharacterError`."""
    # The foreign formats' models cost ~25 ms to build: only a file being read needs them.
    from aigent.character_formats import detect_format, to_aigent

    file = Path(path)
    raw = read_document(file)
    if not isinstance(raw, dict):
        raise CharacterError(str(file), [("", f"expected a JSON object, got {_kind(raw)}")])
    fmt = detect_format(raw)
    try:
        data, warnings = to_aigent(raw, fmt, file)
        character = Character.model_validate(data)
    except ValidationError as exc:
        raise CharacterError(str(file), validation_problems(exc)) from None
    character._source = file
    character._format = fmt
    character._warnings = warnings
    return character


def validation_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """Turn pydantic's errors into (field path, what was expected) pairs a user can act on."""
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        loc = field_path(error["loc"])
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; README.md lists the fields)"
        elif error["type"] == "missing":
            message = "required field is missing"
        elif "input" in error and error["type"] != "missing":
            message = f"{message}, got {_kind(error['input'])} {_preview(error['input'])}"
        problems.append((loc, message))
    return problems


def field_path(loc: tuple[Any, ...]) -> str:
    """``("style", "all", 0)`` -> ``style.all[0]``; pydantic's union branch names are dropped."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and not _is_type_name(part):
            out += f".{part}" if out else part
    return out


def _is_type_name(part: str) -> bool:
    return (
        part[:1].isupper()
        or "[" in part
        or part.startswith("function-")
        or part in {"str", "int", "float", "bool", "dict", "list", "none", "tagged-union"}
    )


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _preview(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
