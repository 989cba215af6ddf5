"""Agents made from a form or a template, and edited as fields.

``POST /api/agents`` with a JSON body (the fields below, optionally starting from one of
``GET /api/templates``) writes an aigent character file from them and then goes exactly the
way an uploaded file goes: the same validation, the same refusals (no ``.py`` plugins, only
allowed hosts), the same registry entry. ``GET``/``PATCH /api/agents/{name}/fields`` reads and
changes an uploaded or form-made agent's character as the same fields; what the form does not
show (plugins, settings, knowledge, secrets) is kept as it was. Errors name the form field.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aigent import AigentError, Character
from aigent.character import validation_problems
from aigent.spending import Limits
from aigent_server.app import Agent, Who
from aigent_server.fleet import Fleet, FleetError, Hosted

SUFFIXES = (".json", ".yaml", ".yml")
DEFAULT_SCALE = 6

TEMPLATES: dict[str, dict[str, Any]] = {
    "assistant": {
        "title": "Plain assistant",
        "description": "A helpful, concise assistant. Free to talk to; spends nothing.",
        "fields": {
            "bio": ["A helpful assistant that answers clearly and briefly."],
            "system": "You are a helpful assistant. Answer clearly and briefly; say so when "
            "you do not know.",
            "adjectives": ["helpful", "concise", "honest"],
            "style": ["Plain words", "Short paragraphs"],
        },
    },
    "expert": {
        "title": "Paid expert",
        "description": "Answers questions in one field for a price per message, paid over "
        "Interledger by people and other agents.",
        "fields": {
            "bio": ["An expert who answers questions in their field, for a small fee."],
            "system": "You are an expert in your topics. Give precise, sourced answers and "
            "decline questions outside them.",
            "topics": ["your field of expertise"],
            "adjectives": ["precise", "knowledgeable"],
            "price": "0.001 XRP",
        },
    },
    "spender": {
        "title": "Agent with a budget",
        "description": "May pay other agents to answer questions, within hourly and daily "
        "caps; payments above a threshold wait for your approval.",
        "fields": {
            "bio": ["An agent that can pay other agents for answers, within a budget."],
            "system": "You may pay other agents for answers when it helps; spend little.",
            "adjectives": ["resourceful", "frugal"],
            "spending": {
                "XRP": {
                    "asset_scale": 6,
                    "max_per_payment": 10_000,
                    "per_hour": 50_000,
                    "per_day": 200_000,
                    "confirm_above": 5_000,
                }
            },
        },
    },
}


class Fields(BaseModel):
    """An agent as a form shows it. Amounts in ``spending`` are in the asset's smallest unit
    at its ``asset_scale`` (1 XRP = 1,000,000 at scale 6), as in a character file."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    bio: str | list[str] | None = None
    system: str | None = Field(default=None, max_length=20_000)
    model: str | None = Field(default=None, max_length=200)
    """A model id (``openai/gpt-4o-mini``, ``local``); empty: the server's default."""
    api_base: str | None = Field(default=None, max_length=2000)
    price: str | dict[str, Any] | None = None
    """``"0.001 XRP"`` (whole units; the asset defaults to XRP), or a character's price object;
    empty: free."""
    topics: list[str] | None = None
    adjectives: list[str] | None = None
    style: list[str] | None = None
    spending: dict[str, Limits] | None = None
    template: str | None = None
    start: bool = True


router = APIRouter(tags=["agents"])


@router.get("/api/templates")
async def templates(who: Who) -> list[dict[str, Any]]:
    """Starting points for a new agent: each one's fields, for ``POST /api/agents``."""
    return [{"id": key, **value} for key, value in TEMPLATES.items()]


@router.get("/api/agents/{name}/fields")
async def get_fields(agent: Agent) -> dict[str, Any]:
    """The agent's character as the form's fields (uploaded or form-made agents only)."""
    _editable(agent)
    character = await asyncio.to_thread(_load, agent.entry.source)
    return fields_of(character)


@router.patch("/api/agents/{name}/fields")
async def patch_fields(agent: Agent, request: Request) -> dict[str, Any]:
    """Change some fields (those sent; the name stays); the rest of the character is kept. A
    running agent restarts on the new character."""
    _editable(agent)
    fleet: Fleet = request.app.state.fleet
    given = parse(await _json(request))
    if given.name is not None and given.name != agent.entry.name:
        raise HTTPException(422, f"name: an agent keeps its name ({agent.entry.name!r})")
    current = await asyncio.to_thread(_load, agent.entry.source)
    data = merge(_dump(current), given)
    await install(
        request.app.state.data_dir, _file_name(agent.entry.name), _encode(data),
        lambda source: fleet.replace(agent, source), form=True,
    )  # fmt: skip
    return fleet.describe(agent)


async def from_request(request: Request) -> tuple[str, bytes, bool]:
    """A form's JSON body as a character file: its name, its content, and whether to start."""
    given = parse(await _json(request))
    base: dict[str, Any] = {}
    if given.template is not None:
        template = TEMPLATES.get(given.template)
        if template is None:
            raise HTTPException(
                422, f"template: no template {given.template!r} (there are: {', '.join(TEMPLATES)})"
            )
        base = merge({}, Fields.model_validate(template["fields"]))
    if not given.name:
        raise HTTPException(422, "name: required: give the agent a name")
    return _file_name(given.name), _encode(merge(base, given)), given.start


def parse(body: Any) -> Fields:
    if not isinstance(body, dict):
        raise HTTPException(422, "expected a JSON object of fields (name, bio, system, ...)")
    try:
        return Fields.model_validate(body)
    except ValidationError as exc:
        paths = [_path(e["loc"]) for e in exc.errors(include_url=False)]
        problems = validation_problems(exc)
        lines = [f"{p}: {what}" for p, (_, what) in zip(paths, problems, strict=True)]
        raise HTTPException(422, "\n".join(dict.fromkeys(lines))) from None


def _path(loc: tuple[Any, ...]) -> str:
    # aigent's field_path drops upper-case parts as type names, and assets (XRP) are upper case.
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not ("[" in part or part in _TYPE_TAGS or part.startswith("function-")):
            out += f".{part}" if out else part
    return out


_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none"}


def merge(data: dict[str, Any], given: Fields) -> dict[str, Any]:
    """``data`` (a character as plain data) with the fields ``given`` sets."""
    data = json.loads(json.dumps(data))
    sent = given.model_fields_set - {"template", "start"}
    if "name" in sent and given.name:
        data["name"] = given.name
    for key in ("bio", "system", "topics", "adjectives"):
        if key in sent:
            data[key] = getattr(given, key)
            if not data[key]:
                data.pop(key)
    if "style" in sent:
        style = data.setdefault("style", {})
        style["all"] = given.style or []
    if "model" in sent or "api_base" in sent:
        models = data.setdefault("models", {})
        chain = models.get("large") or [{}]
        first = dict(chain[0])
        if "model" in sent:
            first["model"] = (given.model or "").strip()
        if "api_base" in sent:
            first["api_base"] = (given.api_base or "").strip() or None
        first = {k: v for k, v in first.items() if v is not None}
        if first.get("model"):
            models["large"] = [first, *chain[1:]]
        else:
            models.pop("large", None)  # the server's default model
    if "price" in sent:
        price = _price(given.price)
        data["price"] = price
        if price is None:
            data.pop("price")
    if "spending" in sent:
        data["spending"] = {
            asset: limits.model_dump(exclude_none=True)
            for asset, limits in (given.spending or {}).items()
        }
    return data


def fields_of(character: Character) -> dict[str, Any]:
    large = character.models.large[:1]
    return {
        "name": character.name,
        "bio": list(character.bio),
        "system": character.system or "",
        "model": large[0].model if large else "",
        "api_base": (large[0].api_base or "") if large else "",
        "price": str(character.price) if character.price else "",
        "topics": list(character.topics),
        "adjectives": list(character.adjectives),
        "style": list(character.style.all),
        "spending": {a: v.model_dump(exclude_none=True) for a, v in character.spending.items()},
        "format": character.format,
    }


def _price(value: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value  # the character's own shape: checked with the character
    text = (value or "").strip()
    if not text:
        return None
    number, _, code = text.partition(" ")
    try:
        amount = Decimal(number).scaleb(DEFAULT_SCALE)
    except InvalidOperation:
        raise HTTPException(
            422, f"price: {text!r} is not an amount: write it like 0.001 XRP"
        ) from None
    if amount < 0 or amount != amount.to_integral_value():
        raise HTTPException(
            422, f"price: {text!r} must be positive, with at most {DEFAULT_SCALE} decimals"
        )
    price = {"amount": int(amount), "asset_code": code.strip() or "XRP"}
    return {**price, "asset_scale": DEFAULT_SCALE}


def _editable(agent: Hosted) -> None:
    if not agent.entry.uploaded:
        raise HTTPException(409, "this agent is loaded from a file on the server: edit it there")


def _dump(character: Character) -> dict[str, Any]:
    # The character as aigent's own format: an ElizaOS or ZerePy upload edited here is saved
    # as aigent's (the fields it had are kept, as aigent read them).
    data: dict[str, Any] = character.model_dump(mode="json", exclude_defaults=True)
    return data


def _load(source: Path) -> Character:
    from aigent import load_character

    return load_character(source)


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise HTTPException(422, "the body is not JSON: send the fields as a JSON object") from None


def _encode(data: dict[str, Any]) -> bytes:
    return json.dumps(data, indent=2, ensure_ascii=False).encode()


def _file_name(name: str) -> str:
    return (re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "agent") + ".json"


def form_field(message: str) -> str:
    """A character's field path as the form calls it (``models.large[0].api_base`` is
    ``api_base``, ``style.all[0]`` is ``style``)."""
    message = re.sub(r"models\.large\[0\]\.", "", message)
    message = re.sub(r"style\.all(\[\d+\])?", "style", message)
    return re.sub(r"price\.(amount|asset_code|asset_scale)", "price", message)


async def store(data_dir: Path, filename: str | None, content: bytes) -> Path:
    """Keep an uploaded (or form-made) character file in its own folder under the data dir."""
    name = Path(filename or "character.json").name
    if not name.lower().endswith(SUFFIXES):
        raise HTTPException(
            422, f"{name}: not a character file; upload .json, .yaml or .yml (any supported format)"
        )
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    folder = data_dir / "uploads" / secrets.token_hex(8)
    await asyncio.to_thread(_write, folder / safe, content)
    return folder / safe


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


async def install(
    data_dir: Path,
    filename: str | None,
    content: bytes,
    apply: Callable[[Path], Awaitable[Hosted]],
    *,
    form: bool = False,
) -> Hosted:
    """Store the file and hand it to ``apply`` (the fleet's add or replace); a file it refuses
    is removed again, and the error names the field (the form's, for a form)."""
    source = await store(data_dir, filename, content)
    try:
        return await apply(source)
    except (AigentError, FleetError) as exc:
        shutil.rmtree(source.parent, ignore_errors=True)
        label = "" if form else Path(filename or source.name).name
        message = str(exc).replace(f"{source}: ", f"{label}: " if label else "")
        message = message.replace(str(source), label or "the form")
        if form:
            message = form_field(message)
        status = exc.status if isinstance(exc, FleetError) else 422
        raise HTTPException(status, message) from None
