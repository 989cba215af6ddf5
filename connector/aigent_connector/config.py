"""A connector node's configuration: pydantic models, loaded from YAML (or JSON) or built in
Python. Tokens never sit in the file in the clear unless you insist: ``token_env`` names an
environment variable that holds them (for a peer, one whose name ends in ``_BTP_TOKEN``), and
every token is a ``SecretStr`` so it never shows up in a repr, a log line or an error message.
An empty token is refused: it would match an empty one presented.

Errors name the file, the field and (for YAML) the line, e.g.
``node.yaml: peers.alice.relation (line 12): Input should be 'parent', 'peer' or 'child'``.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from aigent_connector.btp import (
    MAX_CONNECTIONS,
    MAX_UNAUTHENTICATED,
    MAX_UNAUTHENTICATED_PER_ADDRESS,
)
from aigent_connector.errors import ConnectorError
from aigent_connector.packets import valid_address

Relation = Literal["parent", "peer", "child"]
BTP_TOKEN_SUFFIX = "_BTP_TOKEN"
"""The ending of every variable a peer's ``token_env`` may name."""
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class ConfigError(ConnectorError, ValueError):
    """A configuration that cannot be used; the message says where and what to fix."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Secret(_Model):
    """A token given inline (``token``) or, better, by environment variable (``token_env``)."""

    token: SecretStr | None = None
    token_env: str | None = None

    @field_validator("token")
    @classmethod
    def _not_blank(cls, token: SecretStr | None) -> SecretStr | None:
        # An empty token matches an empty one presented: it would open what it guards.
        if token is not None and not token.get_secret_value().strip():
            raise ValueError(
                "is empty: set a long random value (e.g. from `openssl rand -hex 32`), or "
                "name an environment variable that holds it with token_env"
            )
        return token

    def resolve_token(self, where: str) -> str | None:
        """The token's value; :class:`ConfigError` if ``token_env`` names an unset or empty
        variable."""
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_env:
            value = os.environ.get(self.token_env)
            if value is None:
                raise ConfigError(f"{where}: environment variable {self.token_env} is not set")
            if not value.strip():
                raise ConfigError(
                    f"{where}: environment variable {self.token_env} is empty: set it to a "
                    "long random value"
                )
            return value
        return None


class PeerConfig(Secret):
    """One BTP peer. With ``url`` we dial it; without, it dials our ``listen`` port."""

    relation: Relation = "peer"
    asset_code: str = "XRP"
    asset_scale: int = Field(6, ge=0, le=255)
    url: str | None = None
    """Outgoing BTP: ``ws://host:port``; we authenticate as ``username`` with the token."""
    username: str | None = None
    """auth_username we present when dialing (defaults to our ``node_id``)."""
    max_packet_amount: int | None = Field(None, ge=0)
    packets_per_second: float | None = Field(None, gt=0)
    amount_per_second: int | None = Field(None, gt=0)
    min_balance: int | None = None
    max_balance: int | None = None
    settle_threshold: int | None = None
    settle_to: int = 0

    @field_validator("token_env")
    @classmethod
    def _named_as_a_btp_token(cls, name: str | None) -> str | None:
        # The token is sent to the peer's url: were any variable allowed, whoever writes a
        # peer (the admin API's caller, a shared character file) could have the node send
        # them any secret in its environment.
        if name is not None and not name.endswith(BTP_TOKEN_SUFFIX):
            raise ValueError(
                f"{name!r} does not end in {BTP_TOKEN_SUFFIX}: a peer's token is read only "
                f"from a variable named as one (e.g. ALICE{BTP_TOKEN_SUFFIX}), since it is "
                "sent to the peer; rename the variable, or give the token inline as token"
            )
        return name

    @model_validator(mode="after")
    def _check(self) -> PeerConfig:
        if self.url is not None and not self.url.startswith(("ws://", "wss://")):
            raise ValueError(f"url must start with ws:// or wss://, not {self.url!r}")
        if self.token is None and not self.token_env:
            raise ValueError("a peer needs token_env (or token) to authenticate its BTP link")
        if (
            self.min_balance is not None
            and self.max_balance is not None
            and self.min_balance > self.max_balance
        ):
            raise ValueError("min_balance is above max_balance")
        if self.settle_threshold is not None and self.settle_to < self.settle_threshold:
            raise ValueError("settle_to must not be below settle_threshold")
        return self


class ListenConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    max_connections: int = Field(MAX_CONNECTIONS, ge=1)
    """BTP sockets held open at once, authenticated or not; more are answered 503."""
    max_unauthenticated: int = Field(MAX_UNAUTHENTICATED, ge=1)
    """Of those, sockets that have not authenticated yet (each costs up to ~20 s and ~200 KiB
    of buffers); more are answered 503 before anything is read from them."""
    max_unauthenticated_per_address: int = Field(MAX_UNAUTHENTICATED_PER_ADDRESS, ge=1)
    """Of those, from any one IP address: one host cannot take every slot from the others."""


class AdminConfig(Secret):
    """The admin HTTP API; localhost by default, and every route but /health needs the token."""

    host: str = "127.0.0.1"
    port: int = Field(7780, ge=0, le=65535)
    allow_send: bool = False
    """``POST /send`` with an amount above 0 moves value outside any spending policy (an
    agent's included), so it is refused (403) unless this is set; probes of 0 always work."""

    @model_validator(mode="after")
    def _check(self) -> AdminConfig:
        if self.token is None and not self.token_env:
            raise ValueError("the admin API needs token_env (or token)")
        return self


class DeliveryConfig(Secret):
    """Packets for this node go to a service in another process: ``POST {url}/handle-packet``
    (see :mod:`aigent_connector.delivery`). ``token_env`` (or ``token``), if set, is sent to it
    as ``Authorization: Bearer``."""

    url: str = Field(pattern=r"^https?://")
    timeout: float = Field(30.0, gt=0, le=600)
    """Seconds to wait for the service (never past the packet's expiry)."""


class RouteConfig(_Model):
    prefix: str
    account: str


class RateConfig(_Model):
    """One unit of ``from_code`` is worth ``rate`` units of ``to_code`` (whole units, not
    scaled); the inverse is implied unless it is given too."""

    from_code: str = Field(alias="from")
    to_code: str = Field(alias="to")
    rate: Decimal = Field(gt=0)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class NodeConfig(_Model):
    # pydantic's own message would quote the input, and ledger_url may hold a password.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    node_id: str = Field(min_length=1)
    address: str | None = None
    """Our ILP address; or leave it out and name a ``parent`` to ask over IL-DCP."""
    parent: str | None = None
    """The peer (relation parent) to fetch our address from over IL-DCP."""
    asset_code: str = "XRP"
    asset_scale: int = Field(6, ge=0, le=255)
    listen: ListenConfig | None = None
    peers: dict[str, PeerConfig] = Field(default_factory=dict)
    routes: list[RouteConfig] = Field(default_factory=list)
    ledger_path: Path = Path("connector.sqlite")
    """The SQLite ledger (the default); unused when ``ledger_url`` is set."""
    ledger_url: SecretStr | None = None
    """The ledger in PostgreSQL instead: ``postgresql://user@host:port/dbname``. A secret, as
    it may hold a password; better leave that out and set ``PGPASSWORD`` (or ``~/.pgpass``),
    which libpq reads. Needs ``pip install 'aigent-connector[postgres]'``."""
    ledger_schema: str = "public"
    """The PostgreSQL schema of this node's ledger tables: one per node sharing a database."""
    ledger_durability: Literal["fsync", "os"] = "fsync"
    """When a Fulfill may go back: once its commit is flushed to disk (``fsync``, survives a
    power cut), or handed to the OS (``os``: survives a killed process, not a crash of the
    machine; many times the packets per second when few are in flight)."""
    admin: AdminConfig | None = None
    local_delivery: DeliveryConfig | None = None
    """Answer packets for this node by a service over HTTP (agent-runtime's shape)."""
    expiry_margin: float = Field(1.0, ge=0)
    max_hold: float = Field(30.0, gt=0)
    spread: Decimal = Field(Decimal(0), ge=0, lt=1)
    rates: list[RateConfig] = Field(default_factory=list)
    route_broadcast: bool = False
    """Exchange routes with parents and peers over CCP (``peer.route.*``)."""
    broadcast_interval: float = Field(30.0, gt=0)
    route_expiry: float = Field(45.0, gt=0)
    """Hold-down time we announce: how long others keep our routes without hearing from us."""

    @field_validator("ledger_url")
    @classmethod
    def _postgres_url(cls, url: SecretStr | None) -> SecretStr | None:
        # The value is never echoed back: it may hold a password.
        if url is not None and not url.get_secret_value().startswith(POSTGRES_SCHEMES):
            raise ValueError(
                "must be a PostgreSQL URL, postgresql://user@host:port/dbname (for SQLite "
                "set ledger_path instead)"
            )
        return url

    @field_validator("ledger_schema")
    @classmethod
    def _schema_name(cls, schema: str) -> str:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise ValueError(
                f"{schema!r} is not a plain PostgreSQL name: use lower-case letters, digits "
                "and _, starting with a letter or _, at most 63 characters"
            )
        return schema

    @model_validator(mode="after")
    def _check(self) -> NodeConfig:
        if self.address is None and self.parent is None:
            raise ValueError("give an ILP address, or a parent to fetch one from over IL-DCP")
        if self.address is not None and not valid_address(self.address):
            raise ValueError(f"address {self.address!r} is not a valid ILP address")
        if self.parent is not None:
            peer = self.peers.get(self.parent)
            if peer is None or peer.relation != "parent" or peer.url is None:
                raise ValueError(
                    f"parent {self.parent!r} must be a peer with relation parent and a url"
                )
        for route in self.routes:
            if route.account not in self.peers:
                raise ValueError(f"route {route.prefix!r} names unknown peer {route.account!r}")
        if self.listen is None:
            waiting = [name for name, p in self.peers.items() if p.url is None]
            if waiting:
                raise ValueError(f"peers {waiting} have no url, so they dial us: set listen")
        return self


def parse_config(data: Any, source: str = "config", text: str | None = None) -> NodeConfig:
    """Validate ``data`` (a dict); errors name ``source``, the field and, given the YAML
    ``text``, the line."""
    try:
        return NodeConfig.model_validate(data)
    except ValidationError as exc:
        lines = _line_index(text) if text is not None else {}
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            field = ".".join(str(part) for part in loc) or "(top level)"
            line = _nearest_line(lines, loc)
            where = f"{field} (line {line})" if line else field
            problems.append(f"{source}: {where}: {error['msg']}")
        raise ConfigError("\n".join(problems)) from None


def load_config(path: Path | str) -> NodeConfig:
    """Read a YAML or JSON file into a :class:`NodeConfig`; relative ``ledger_path`` is taken
    from the file's directory."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    config = parse_config(data, str(path), text)
    if not config.ledger_path.is_absolute():
        config.ledger_path = path.parent / config.ledger_path
    return config


def _line_index(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path in the YAML to its 1-based line; empty if the text will not compose."""
    import yaml

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    index: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        index[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                index[child] = key.start_mark.line + 1
                walk(value, child)
                index[child] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, str(i)))

    if root is not None:
        walk(root, ())
    return index


def _nearest_line(index: dict[tuple[str, ...], int], loc: tuple[Any, ...]) -> int | None:
    path = tuple(str(part) for part in loc)
    while path:
        if path in index:
            return index[path]
        path = path[:-1]
    return None
