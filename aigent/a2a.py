"""Asking other agents over A2A: read the agent card, check its price, send one message.

A2A 1.0 (``SendMessage`` with ``A2A-Version: 1.0``) where the card offers it, else 0.3
(``message/send``), over JSON-RPC; plain HTTP and JSON, so the core needs no A2A SDK. The URL
comes from a model or a stranger: the spending allowlists are checked before anything is
fetched, a card may send the message only to its own host (scheme, host and port), redirects
are not followed, and what is read is bounded in size and time.

A paid agent states its price in the card's ``urn:aigent:price:v1`` extension: its x402 offers
and its SPSP URL. It is asked only with a ``max_price`` at least its price, and paid by the
first way the asking agent has (``Means``):

- x402 (a plugin's :class:`aigent.X402Payer` that takes one of the card's offers, such as
  aigent-xrpl's): the call is sent, its 402 read, the payer pays the live offer and the call
  is sent again with ``PAYMENT-SIGNATURE``, all under the spending policy;
- ILP (the agent's payment node): the message goes as a paid message to the card's SPSP URL
  (STREAM, as ``ask_agent`` sends it), which must be on the card's own host;
- otherwise it is refused, naming what the agent would need.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from aigent.amounts import format_amount
from aigent.errors import AigentError
from aigent.interfaces import X402Answer

if TYPE_CHECKING:
    from aigent.interfaces import Payments, X402Payer
    from aigent.spending import SpendingPolicy

PRICE_EXTENSION = "urn:aigent:price:v1"
"""The card extension in which an aigent agent states its price and how to pay it."""
CARD_PATH = "/.well-known/agent-card.json"
MAX_CARD = 64 * 1024
MAX_ANSWER = 1024 * 1024
TIMEOUT = 90.0  # the other agent's whole answer


class A2AError(AigentError):
    """An A2A agent could not be asked, or did not answer; says why."""


@dataclass
class Card:
    """What an agent card says that asking needs."""

    name: str
    rpc_url: str
    version: str
    """The protocol the message is sent in: ``"1.0"`` or ``"0.3"``."""
    price: dict[str, Any] | None = None
    """``amount`` (an integer in the asset's smallest unit), ``asset_code``, ``asset_scale``."""
    free: bool = False
    spsp_url: str | None = None
    x402: list[dict[str, Any]] = field(default_factory=list)
    """The x402 offers (``accepts``) the card states; a 402 gives the live ones."""

    @property
    def charges(self) -> bool:
        return self.price is not None and self.price["amount"] > 0 and not self.free

    def price_text(self) -> str:
        assert self.price is not None
        return format_amount(
            self.price["amount"], self.price["asset_scale"], self.price["asset_code"]
        )


class A2AAnswer(BaseModel):
    """An A2A agent's answer, and what it was paid (nothing, for a free agent)."""

    text: str
    agent: str
    rail: str | None = None
    """Which rail paid: ``x402-xrpl`` (say) or ``ilp``; None when nothing was paid."""
    paid: int = 0
    """In the smallest unit of the price's asset."""
    asset_code: str = ""
    asset_scale: int = 0
    tx: str = ""
    """The x402 payment's transaction; empty over ILP."""

    def __str__(self) -> str:
        return self.text


@dataclass
class Means:
    """How the asking agent can pay: its x402 payers, and its payment node for ILP."""

    x402: Sequence[X402Payer] = ()
    ilp: Payments | None = None


def card_url(url: str) -> str:
    """The card's address: ``url`` itself when it names a card, else its well-known path."""
    if url.rstrip("/").endswith((".json",)):
        return url
    return url.rstrip("/") + CARD_PATH


def _origin(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _check(spending: SpendingPolicy | None, url: str) -> None:
    # The asset is not known before the card is read: every allowlist must let the URL in.
    if spending is None:
        return
    for asset in spending.limits:
        spending.check_destination(asset, url)


async def ask(
    url: str,
    text: str,
    *,
    max_price: int | None = None,
    spending: SpendingPolicy | None = None,
    token: str | None = None,
    means: Callable[[], Awaitable[Means]] | None = None,
) -> A2AAnswer:
    """Send ``text`` to the A2A agent at ``url`` (its base URL or its card's); its answer. A
    paid agent is asked only with ``max_price`` (in the smallest unit of its price's asset) at
    least its price, and paid with what ``means()`` gives (asked only then)."""
    if not url.startswith(("http://", "https://")):
        raise A2AError(f"{url!r} is not an http(s) URL of an A2A agent")
    _check(spending, url)  # before anything is fetched
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    card = parse_card(await _get_json(card_url(url), headers), url)
    if _origin(card.rpc_url) != _origin(card_url(url)):
        # What was checked (the allowlist, a server's allowed hosts) is the URL asked for: a
        # card must not send the message, and its token, to another host.
        raise A2AError(
            f"{url}: the agent card sends messages to another host ({_origin(card.rpc_url)}); "
            "ask that URL directly if it is meant"
        )
    if not card.charges:
        return A2AAnswer(text=await send(card, text, headers), agent=card.name)
    assert card.price is not None
    price = card.price_text()
    if max_price is None or card.price["amount"] > max_price:
        unit = f"in the smallest unit of {card.price['asset_code']}"
        said = "" if max_price is None else f", more than max_price {max_price} ({unit})"
        raise A2AError(
            f"{card.name} at {url} charges {price} per message{said}: pass max_price of at "
            f"least {card.price['amount']} ({unit}) to pay it"
        )
    if not card.x402 and not card.spsp_url:
        raise A2AError(
            f"{card.name} at {url} charges {price} per message, but its card offers no way to "
            "pay (no x402 offers, no SPSP URL): ask its owner for access (a token)"
        )
    have = await means() if means is not None else Means()
    for payer in have.x402:
        if await payer.choose(card.x402) is not None:
            return await _pay_x402(card, text, headers, payer, max_price)
    if card.spsp_url and have.ilp is not None:
        return await _pay_ilp(card, text, have.ilp, max_price)
    offered = [
        *(["x402 (" + ", ".join(_offer_names(card.x402)) + ")"] if card.x402 else []),
        *([f"ILP at {card.spsp_url}"] if card.spsp_url else []),
    ]
    needs = [
        *(["an x402 payer for one of its offers (the aigent-xrpl plugin with a wallet, for "
           "XRPL offers)"] if card.x402 else []),
        *(["its connector on (connector.enabled), to pay over ILP"] if card.spsp_url else []),
    ]  # fmt: skip
    raise A2AError(
        f"{card.name} at {url} charges {price} per message and takes {' or '.join(offered)}; "
        f"this agent cannot pay it: it needs {' or '.join(needs)}"
    )


async def _pay_x402(
    card: Card, text: str, headers: dict[str, str], payer: X402Payer, max_price: int
) -> A2AAnswer:
    """The call, its 402, the payer's payment of the live offer, and the call again with it."""
    assert card.price is not None
    body, extra = _rpc_call(card, text, headers)
    status, first = await _exchange("POST", card.rpc_url, body, extra, MAX_ANSWER)
    if status != 402:  # answered without payment (the caller's token, say): nothing to pay
        return A2AAnswer(text=_answer_of(card, card.rpc_url, status, first), agent=card.name)
    page = _loads(first)
    page = page if isinstance(page, dict) else {}
    offer = await payer.choose(page.get("accepts") or [])
    if offer is None:
        raise A2AError(
            f"{card.name} asked for payment by x402 but offers nothing {payer.name} pays: "
            + (", ".join(_offer_names(page.get("accepts") or [])) or "no offers")
        )
    code, scale = card.price["asset_code"], card.price["asset_scale"]
    if str(offer.get("asset") or "XRP").upper() != code.upper():
        raise A2AError(
            f"{card.name} prices its messages in {code} but its x402 offer is in "
            f"{offer.get('asset')}: max_price cannot be applied to it, so it is not paid"
        )
    answered: list[tuple[int, bytes]] = []

    async def send_paid(header: str) -> X402Answer:
        got = await _exchange(
            "POST", card.rpc_url, body, {**extra, "PAYMENT-SIGNATURE": header}, MAX_ANSWER
        )
        answered.append(got)
        refused = _loads(got[1]) if got[0] == 402 else None
        why = refused.get("error") if isinstance(refused, dict) else None
        return X402Answer(got[0], str(why or got[1][:300].decode(errors="replace")))

    resource = page.get("resource")
    paid = await payer.pay(
        offer,
        send_paid,
        resource=resource if isinstance(resource, dict) else None,
        max_value=Decimal(max_price).scaleb(-scale),
        purpose=f"A2A message to {card.name} at {card.rpc_url}",
    )
    status, raw = answered[-1]
    try:
        answer = _answer_of(card, card.rpc_url, status, raw)
    except A2AError as exc:
        raise A2AError(f"{exc} (after paying {paid.amount} {paid.asset}: tx {paid.tx})") from None
    return A2AAnswer(
        text=answer,
        agent=card.name,
        rail=paid.rail,
        paid=card.price["amount"],
        asset_code=code,
        asset_scale=scale,
        tx=paid.tx,
    )


async def _pay_ilp(card: Card, text: str, ilp: Payments, max_price: int) -> A2AAnswer:
    """The message as a paid message to the card's SPSP URL: the same answer, paid by STREAM."""
    assert card.spsp_url is not None
    from urllib.parse import urlsplit

    # The card names where to pay: only on its own host, so a card cannot make the agent pay
    # (or fetch from) a third party's address.
    if urlsplit(card.spsp_url).hostname != urlsplit(card.rpc_url).hostname:
        raise A2AError(
            f"{card.name}'s card names an SPSP URL on another host ({card.spsp_url}): pay it "
            "with ask_agent if it is meant"
        )
    paid = await ilp.ask(card.spsp_url, text, max_price=max_price)
    return A2AAnswer(
        text=paid.text,
        agent=card.name,
        rail="ilp",
        paid=paid.paid,
        asset_code=paid.asset_code,
        asset_scale=paid.asset_scale,
    )


def _offer_names(accepts: Sequence[Any]) -> list[str]:
    return [f"{a.get('scheme')} on {a.get('network')}" for a in accepts if isinstance(a, dict)]


async def send(card: Card, text: str, headers: dict[str, str] | None = None) -> str:
    """One message to ``card``'s agent over JSON-RPC; the answer's text."""
    body, extra = _rpc_call(card, text, headers or {})
    return _result_text(card, await _post_json(card.rpc_url, body, extra))


def _rpc_call(
    card: Card, text: str, headers: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON-RPC body of one message in the card's protocol, and its headers."""
    message_id = uuid.uuid4().hex
    extra = dict(headers)
    if card.version == "1.0":
        method = "SendMessage"
        message: dict[str, Any] = {
            "messageId": message_id,
            "role": "ROLE_USER",
            "parts": [{"text": text}],
        }
        extra["A2A-Version"] = "1.0"
    else:
        method = "message/send"
        message = {
            "kind": "message",
            "messageId": message_id,
            "role": "user",
            "parts": [{"kind": "text", "text": text}],
        }
    body = {"jsonrpc": "2.0", "id": message_id, "method": method, "params": {"message": message}}
    return body, extra


def _result_text(card: Card, answer: dict[str, Any]) -> str:
    error = answer.get("error")
    if isinstance(error, dict):
        raise A2AError(
            f"{card.name} refused the message: {str(error.get('message'))[:300]} "
            f"(JSON-RPC error {error.get('code')})"
        )
    result = answer.get("result")
    if not isinstance(result, dict):
        raise A2AError(f"{card.name} answered JSON-RPC without a result")
    return answer_text(result, card.name)


def parse_card(body: Any, url: str) -> Card:
    """The parts of an A2A card (1.0, or 0.3) that asking needs; A2AError naming what is off."""
    if not isinstance(body, dict):
        raise A2AError(f"{url}: the agent card is not a JSON object")
    name = str(body.get("name") or url)
    rpc_url, version = None, None
    for interface in body.get("supportedInterfaces") or []:
        if (
            isinstance(interface, dict)
            and interface.get("protocolBinding") == "JSONRPC"
            and str(interface.get("protocolVersion", "")).startswith("1.")
            and isinstance(interface.get("url"), str)
        ):
            rpc_url, version = interface["url"], "1.0"
            break
    if rpc_url is None and isinstance(body.get("url"), str):
        if body.get("preferredTransport", "JSONRPC") == "JSONRPC":
            rpc_url, version = body["url"], "0.3"
    if rpc_url is None or version is None:
        raise A2AError(f"{url}: the agent card offers no JSON-RPC interface to send a message to")
    if not rpc_url.startswith(("http://", "https://")):
        raise A2AError(f"{url}: the agent card's JSON-RPC URL {rpc_url!r} is not http(s)")
    card = Card(name=name, rpc_url=rpc_url, version=version)
    capabilities = body.get("capabilities")
    extensions = capabilities.get("extensions") if isinstance(capabilities, dict) else None
    for extension in extensions or []:
        if isinstance(extension, dict) and extension.get("uri") == PRICE_EXTENSION:
            params = extension.get("params") or {}
            card.free = params.get("free") is True
            spsp = params.get("spsp_url")
            card.spsp_url = spsp if isinstance(spsp, str) else None
            card.price = _price(params.get("price"), url)
            offers = params.get("x402")
            card.x402 = (
                [o for o in offers if isinstance(o, dict)] if isinstance(offers, list) else []
            )
    return card


def _price(value: Any, url: str) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        return {
            "amount": int(value["amount"]),
            "asset_code": str(value["asset_code"]),
            "asset_scale": int(value["asset_scale"]),
        }
    except (KeyError, TypeError, ValueError):
        raise A2AError(
            f"{url}: the card's price is not amount, asset_code and asset_scale"
        ) from None


def answer_text(result: dict[str, Any], name: str) -> str:
    """The text of a SendMessage result: a Message, or a Task that completed."""
    if "parts" in result:  # 0.3: the message itself
        return _parts_text(result["parts"])
    if isinstance(result.get("message"), dict):  # 1.0
        return _parts_text(result["message"].get("parts"))
    task: dict[str, Any] = result["task"] if isinstance(result.get("task"), dict) else result
    status: dict[str, Any] = task["status"] if isinstance(task.get("status"), dict) else {}
    said: dict[str, Any] = status["message"] if isinstance(status.get("message"), dict) else {}
    state = str(status.get("state", "")).lower().removeprefix("task_state_")
    if state != "completed":
        why = _parts_text(said.get("parts"))
        raise A2AError(
            f"{name} did not complete the task (state {state or 'unknown'})"
            + (f": {why[:300]}" if why else "")
        )
    artifacts = [a for a in task.get("artifacts") or [] if isinstance(a, dict)]
    texts = [_parts_text(a.get("parts")) for a in artifacts]
    return "\n".join(t for t in texts if t) or _parts_text(said.get("parts"))


def _parts_text(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    return "".join(
        p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
    )


async def _get_json(url: str, headers: dict[str, str]) -> Any:
    return await _request("GET", url, None, headers, MAX_CARD)


async def _post_json(url: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    answer = await _request("POST", url, body, headers, MAX_ANSWER)
    if not isinstance(answer, dict):
        raise A2AError(f"{url} answered JSON that is not a JSON-RPC response")
    return answer


async def _request(
    method: str, url: str, body: dict[str, Any] | None, headers: dict[str, str], limit: int
) -> Any:
    status, raw = await _exchange(method, url, body, headers, limit)
    if status != 200:
        raise A2AError(f"{url} answered HTTP {status}{_why(raw, status)}")
    return _json_of(url, raw)


async def _exchange(
    method: str, url: str, body: dict[str, Any] | None, headers: dict[str, str], limit: int
) -> tuple[int, bytes]:
    """One bounded request: its status and body, whatever the status."""
    import aiohttp  # with the connector: every agent has it, few use it here

    try:
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method,
                url,
                json=body,
                headers={"Accept": "application/json", **headers},
                timeout=aiohttp.ClientTimeout(total=TIMEOUT),
                allow_redirects=False,  # the host asked is the host that answers
            ) as response,
        ):
            raw = await response.content.read(limit + 1)
            status = response.status
    except aiohttp.ClientError as exc:
        raise A2AError(f"could not reach {url}: {exc}") from None
    except TimeoutError:
        raise A2AError(f"{url} did not answer within {TIMEOUT:.0f}s") from None
    if len(raw) > limit:
        raise A2AError(f"{url} answered more than {limit} bytes")
    return status, raw


def _answer_of(card: Card, url: str, status: int, raw: bytes) -> str:
    """The text of a JSON-RPC answer that came back with ``status``."""
    if status != 200:
        raise A2AError(f"{url} answered HTTP {status}{_why(raw, status)}")
    answer = _json_of(url, raw)
    if not isinstance(answer, dict):
        raise A2AError(f"{url} answered JSON that is not a JSON-RPC response")
    return _result_text(card, answer)


def _json_of(url: str, raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise A2AError(f"{url} did not answer JSON") from None


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _why(raw: bytes, status: int) -> str:
    hint = {
        401: " (it needs a token: Authorization: Bearer)",
        402: " (it asks for payment)",
        404: " (no such agent there)",
    }.get(status, "")
    try:
        detail = json.loads(raw).get("detail")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        detail = None
    return f"{hint}: {str(detail)[:300]}" if isinstance(detail, str) else hint
