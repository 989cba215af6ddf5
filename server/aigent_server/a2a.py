"""A2A for every hosted agent, on the API's port: its agent card at
``/a2a/<name>/.well-known/agent-card.json`` (the server's default agent's also at
``/.well-known/agent-card.json``) and JSON-RPC at ``POST /a2a/<name>``.

The SDK (``a2a-sdk``, installed by ``aigent-server[a2a]``) speaks the protocol: A2A 1.0
(``SendMessage``, ``SendStreamingMessage`` over SSE, with the ``A2A-Version: 1.0`` header) and,
on the same URL, 0.3 (``message/send``, ``message/stream``), so clients of either reach an agent
unchanged. It is imported when an A2A route is first used; without it they answer 501.

Who gets an answer (checked before the SDK sees the request):

- the agent's owner (or the operator), with what the REST API takes: ``Authorization: Bearer``
  (the operator's token or an API key) or a signed-in session with its CSRF header;
- anyone, when the character sets ``settings.a2a.free: true``;
- anyone who pays, when the character has a price: the ``payment`` hook decides (x402 when
  ``aigent_server.x402`` is installed beside this module; until then a paid agent refuses
  strangers with 402, naming its price and its SPSP URL for ILP).

Anyone else gets 401 (or 404 for an agent they may not know of). A card is public (no sign-in)
when the agent is the operator's, or sells (a price), or is free to all; an uploaded agent's
card is otherwise its owner's only, as the agent is in the REST API.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from aigent.a2a import PRICE_EXTENSION
from aigent_server.auth import SESSION_COOKIE, Auth, AuthError, Caller
from aigent_server.fleet import Fleet, FleetError, Hosted
from aigent_server.registry import OPERATOR

if TYPE_CHECKING:
    from a2a.server.agent_execution import AgentExecutor
    from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
    from a2a.types import AgentCard

log = logging.getLogger("aigent.server.a2a")

CARD_PATH = "/.well-known/agent-card.json"
CLIENT = "a2a"
"""The channel A2A messages arrive on (``spend_from`` must name it for them to make the agent
pay: a stranger's message does not move the agent's money unless the character says so)."""
INSTALL = "pip install 'aigent-server[a2a]'"

Payment = Callable[[Request, Hosted], Awaitable[Any]]
"""Decides a stranger's call to a paid agent: what was paid (anything but a Response; its
``payer``, if it has one, names the caller) or the Response to send instead (402)."""

router = APIRouter(tags=["a2a"])


@dataclass
class Admitted:
    """Who a JSON-RPC call runs for: the ``user`` the agent sees, and what was paid."""

    user: str
    paid: Any = None


async def refuse_paid(request: Request, hosted: Hosted) -> Response:
    """The payment hook until x402 is wired in: a paid agent answers strangers only when paid,
    and this server cannot take a payment over A2A, so it says how to pay instead."""
    character = hosted.character
    price = character.price if character is not None else None
    spsp = _node_field(hosted, "spsp_url")
    how = f"pay over ILP at {spsp} (aigent's ask_agent), " if spsp else ""
    return JSONResponse(
        {
            "detail": f"agent {hosted.entry.name!r} charges {price} per message and this server "
            f"takes no payment over A2A yet: {how}or ask its owner for an API key, or for free "
            "access (settings.a2a.free: true in its character)",
            "price": _price(hosted),
        },
        status_code=402,
    )


def _default_payment() -> Payment:
    # The x402 door, when present, is the one place a payment over HTTP is checked.
    try:
        from aigent_server.x402 import require_payment
    except ImportError:
        return refuse_paid
    return require_payment


def x402_accepts(request: Request, hosted: Hosted) -> list[dict[str, Any]]:
    """The x402 payment requirements the card states (``accepts`` of a 402): none for an agent
    that takes no x402 payment."""
    from aigent_server.x402 import accepts

    return accepts(request, hosted)


def _settings(hosted: Hosted) -> dict[str, Any]:
    character = hosted.character
    own = character.settings.get("a2a") if character is not None else None
    return own if isinstance(own, dict) else {}


def _free(hosted: Hosted) -> bool:
    return _settings(hosted).get("free") is True


def _priced(hosted: Hosted) -> bool:
    character = hosted.character
    return character is not None and character.price is not None and character.price.amount > 0


def _public(hosted: Hosted) -> bool:
    return not hosted.entry.uploaded or _priced(hosted) or _free(hosted)


def _node_field(hosted: Hosted, name: str) -> str | None:
    node = hosted.agent.node if hosted.agent is not None else None
    value = getattr(node, name, None) if node is not None else None
    return value if isinstance(value, str) else None


def _price(hosted: Hosted) -> dict[str, Any] | None:
    character = hosted.character
    if character is None or character.price is None:
        return None
    price = character.price
    return {
        "amount": str(price.amount),
        "asset_code": price.asset_code,
        "asset_scale": price.asset_scale,
        "text": str(price),
    }


class A2ADoors:
    """The agents' cards and JSON-RPC dispatchers (one SDK handler per agent, made on first
    use; the agent itself is looked up at each call, so a restart needs no new handler)."""

    def __init__(
        self, fleet: Fleet, auth: Auth, default: str | None, payment: Payment | None = None
    ) -> None:
        self.fleet = fleet
        self.auth = auth
        self._default = default
        self.payment: Payment = payment or _default_payment()
        self._dispatchers: dict[str, JsonRpcDispatcher] = {}

    @property
    def default(self) -> str | None:
        """The agent ``/.well-known/agent-card.json`` describes: the one named at start, else
        the operator's only agent, if it has just one (never a stranger's upload)."""
        if self._default is not None:
            return self._default
        own = [h.entry.name for h in self.fleet.hosted.values() if not h.entry.uploaded]
        return own[0] if len(own) == 1 else None

    # --- who may ---------------------------------------------------------------------------

    def caller(self, request: Request) -> Caller | None:
        """The signed-in caller, None for a stranger; AuthError for credentials that fail."""
        has_cookie = self.auth.sessions.get(request.cookies.get(SESSION_COOKIE)) is not None
        if not request.headers.get("authorization") and not has_cookie:
            return None
        return self.auth.caller(
            request.headers.get("authorization"),
            request.cookies.get(SESSION_COOKIE),
            request.method,
            request.headers.get("x-csrf-token"),
        )

    def find(self, name: str, who: Caller | None) -> Hosted:
        hosted = self.fleet.hosted.get(name)
        owner = who.owner if who is not None else None
        if hosted is None or not (_public(hosted) or owner in (OPERATOR, hosted.entry.owner)):
            raise FleetError(404, f"no agent named {name!r}")
        return hosted

    async def admit(self, request: Request, hosted: Hosted, who: Caller | None) -> Admitted:
        """Who the call runs for; AuthError, or _Refused carrying the payment hook's answer."""
        if who is not None and who.owner in (OPERATOR, hosted.entry.owner):
            return Admitted(user=who.owner)
        if _free(hosted):
            return Admitted(user=who.owner if who is not None else "a2a:anonymous")
        if _priced(hosted):
            paid = await self.payment(request, hosted)
            if isinstance(paid, Response):
                raise _Refused(paid)
            payer = getattr(paid, "payer", None)
            return Admitted(user=f"a2a:{payer}" if payer else "a2a:payer", paid=paid)
        raise AuthError(
            401,
            f"agent {hosted.entry.name!r} answers A2A only for its owner: send Authorization: "
            "Bearer <token> (an API key or AIGENT_SERVE_TOKEN)",
        )

    # --- the card --------------------------------------------------------------------------

    def card(self, request: Request, hosted: Hosted) -> dict[str, Any]:
        from a2a.server.request_handlers.response_helpers import agent_card_to_dict

        return agent_card_to_dict(self._card(request, hosted))

    def _card(self, request: Request, hosted: Hosted) -> AgentCard:
        from a2a.types import (
            AgentCapabilities,
            AgentCard,
            AgentExtension,
            AgentInterface,
            AgentSkill,
            HTTPAuthSecurityScheme,
            SecurityRequirement,
            SecurityScheme,
        )
        from a2a.utils.constants import PROTOCOL_VERSION_0_3, PROTOCOL_VERSION_1_0

        name = hosted.entry.name
        character = hosted.character
        base = str(request.base_url).rstrip("/")
        url = f"{base}/a2a/{name}"
        bio = " ".join(character.bio) if character is not None else ""
        agent = hosted.agent
        skills = [
            AgentSkill(
                id="chat",
                name="chat",
                description=f"Talk with {name}: send text, get its answer.",
                tags=["chat"],
            )
        ]
        if agent is not None:
            skills.extend(
                AgentSkill(id=a.name, name=a.name, description=a.description or a.name, tags=[])
                for a in agent.actions.values()
            )
        price = _price(hosted)
        params: dict[str, Any] = {
            "price": price,
            "free": _free(hosted),
            "asset": price["asset_code"] if price is not None else None,
            "ilp_address": _node_field(hosted, "address"),
            "spsp_url": _node_field(hosted, "spsp_url"),
            "x402": x402_accepts(request, hosted),
        }
        priced = _priced(hosted) and not _free(hosted)
        extension = AgentExtension(
            uri=PRICE_EXTENSION,
            description="What a message costs and how to pay it: over ILP (STREAM to spsp_url) "
            "or over HTTP with x402 (the accepts listed)",
            required=priced,
            params={k: v for k, v in params.items() if v is not None},
        )
        bearer: dict[str, Any] = {"bearer": {"list": []}}  # protobuf's StringList, as a dict
        requirements = [SecurityRequirement(schemes=bearer)]
        if _free(hosted) or priced:
            requirements.append(SecurityRequirement())  # strangers too: free, or paying
        return AgentCard(
            name=name,
            description=(bio or f"{name}, an aigent agent")[:1000],
            version="1.0.0",
            supported_interfaces=[
                AgentInterface(
                    url=url, protocol_binding="JSONRPC", protocol_version=PROTOCOL_VERSION_1_0
                ),
                AgentInterface(
                    url=url, protocol_binding="JSONRPC", protocol_version=PROTOCOL_VERSION_0_3
                ),
            ],
            capabilities=AgentCapabilities(streaming=True, extensions=[extension]),
            security_schemes={
                "bearer": SecurityScheme(
                    http_auth_security_scheme=HTTPAuthSecurityScheme(
                        scheme="Bearer",
                        description="An aigent serve API key, or the operator's token",
                    )
                )
            },
            security_requirements=requirements,
            default_input_modes=["text/plain"],
            default_output_modes=["text/plain"],
            skills=skills,
        )

    # --- JSON-RPC --------------------------------------------------------------------------

    def dispatcher(self, name: str, request: Request, hosted: Hosted) -> JsonRpcDispatcher:
        dispatcher = self._dispatchers.get(name)
        if dispatcher is None:
            from a2a.server.request_handlers import DefaultRequestHandler
            from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
            from a2a.server.tasks import InMemoryTaskStore

            handler = DefaultRequestHandler(
                agent_executor=_executor(self.fleet, name),
                task_store=InMemoryTaskStore(),
                agent_card=self._card(request, hosted),
            )
            dispatcher = self._dispatchers[name] = JsonRpcDispatcher(
                handler, context_builder=_context_builder(), enable_v0_3_compat=True
            )
        return dispatcher


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _sdk_missing() -> JSONResponse | None:
    try:
        import a2a.server  # noqa: F401
    except ImportError:
        return JSONResponse(
            {"detail": f"A2A is not installed on this server: {INSTALL}"}, status_code=501
        )
    return None


def _doors(request: Request) -> A2ADoors:
    doors: A2ADoors = request.app.state.a2a
    return doors


def _error(exc: AuthError | FleetError) -> JSONResponse:
    headers = {"www-authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"detail": str(exc)}, exc.status, headers)


async def _card_of(request: Request, name: str) -> Response:
    missing = _sdk_missing()
    if missing is not None:
        return missing
    doors = _doors(request)
    try:
        who = doors.caller(request)
        hosted = doors.find(name, who)
    except (AuthError, FleetError) as exc:
        return _error(exc)
    return JSONResponse(doors.card(request, hosted))


@router.get(CARD_PATH, summary="The A2A agent card of the server's default agent")
async def default_card(request: Request) -> Response:
    name = _doors(request).default
    if name is None:
        return JSONResponse(
            {
                "detail": "this server names no default agent (aigent serve --a2a-default NAME); "
                f"each agent's card is at /a2a/<name>{CARD_PATH}"
            },
            status_code=404,
        )
    return await _card_of(request, name)


@router.get("/a2a/{name}" + CARD_PATH, summary="An agent's A2A agent card")
async def agent_card(name: str, request: Request) -> Response:
    return await _card_of(request, name)


@router.post("/a2a/{name}", summary="A2A JSON-RPC (SendMessage, SendStreamingMessage, ...)")
async def rpc(name: str, request: Request) -> Response:
    missing = _sdk_missing()
    if missing is not None:
        return missing
    doors = _doors(request)
    try:
        who = doors.caller(request)
        hosted = doors.find(name, who)
        admitted = await doors.admit(request, hosted, who)
    except (AuthError, FleetError) as exc:
        return _error(exc)
    except _Refused as refused:
        return refused.response
    if hosted.state != "running":
        return JSONResponse(
            {"detail": f"agent {name!r} is {hosted.state}: start it first"}, status_code=503
        )
    request.scope["aigent.a2a"] = admitted
    return await doors.dispatcher(name, request, hosted).handle_requests(request)


def _context_builder() -> Any:
    from a2a.server.routes import DefaultServerCallContextBuilder

    class Builder(DefaultServerCallContextBuilder):
        def build(self, request: Any) -> Any:
            context = super().build(request)
            context.state["aigent"] = request.scope.get("aigent.a2a")
            # The SDK reads the headers (A2A-Version); credentials have no business downstream.
            headers = context.state.get("headers") or {}
            for secret in ("authorization", "cookie", "x-csrf-token"):
                headers.pop(secret, None)
            return context

    return Builder()


def _executor(fleet: Fleet, name: str) -> AgentExecutor:
    from a2a.helpers import new_task_from_user_message, new_text_message, new_text_part
    from a2a.server.agent_execution import AgentExecutor, RequestContext
    from a2a.server.events import EventQueue
    from a2a.server.tasks import TaskUpdater
    from a2a.utils.errors import InternalError, InvalidParamsError, UnsupportedOperationError

    class Executor(AgentExecutor):
        """Runs an A2A message through the fleet (history, live events, channel ``a2a``):
        one reply Message, or, streamed, a task whose artifact grows as the text comes."""

        async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
            admitted = context.call_context.state.get("aigent")
            if not isinstance(admitted, Admitted):
                raise InternalError(message="the request did not pass the server's door")
            hosted = fleet.hosted.get(name)
            if hosted is None:
                raise InternalError(message=f"agent {name!r} is gone")
            text = context.get_user_input().strip()
            if not text:
                raise InvalidParamsError(message="the message has no text part: send text")
            room = f"a2a-{context.context_id}"[:200]
            method = context.call_context.state.get("method")
            if method not in ("SendStreamingMessage", "message/stream"):
                reply = await _chat(hosted, text, admitted.user, room, paid=admitted.paid)
                await event_queue.enqueue_event(
                    new_text_message(reply, context_id=context.context_id)
                )
                return
            assert context.message is not None  # the SDK refuses a send without one
            task = context.current_task or new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
            updater = TaskUpdater(event_queue, task.id, task.context_id)
            await updater.start_work()
            chunks: asyncio.Queue[str] = asyncio.Queue()
            answer = asyncio.create_task(
                _chat(hosted, text, admitted.user, room, chunks.put_nowait, admitted.paid)
            )
            artifact, first = f"{task.id}-reply", True
            try:
                while not answer.done() or not chunks.empty():
                    getter = asyncio.ensure_future(chunks.get())
                    await asyncio.wait({getter, answer}, return_when=asyncio.FIRST_COMPLETED)
                    if not getter.done():
                        getter.cancel()
                        continue
                    await updater.add_artifact(
                        [new_text_part(getter.result())],
                        artifact_id=artifact,
                        name="reply",
                        append=not first,
                        last_chunk=False,
                    )
                    first = False
                reply = answer.result()
            except BaseException:
                answer.cancel()
                raise
            if first:  # a model that does not stream: the whole reply as one chunk
                await updater.add_artifact(
                    [new_text_part(reply)], artifact_id=artifact, name="reply", last_chunk=True
                )
            # The text is in the artifact: a final message would give it to the client twice.
            await updater.complete()

        async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
            raise UnsupportedOperationError(message="an answer under way cannot be cancelled")

    async def _chat(
        hosted: Hosted,
        text: str,
        user: str,
        room: str,
        on_text: Callable[[str], None] | None = None,
        paid: Any = None,
    ) -> str:
        from aigent_server.x402 import finish  # a payment answers one message

        try:
            reply = await fleet.chat(hosted, text, user, room, on_text, client=CLIENT)
        except FleetError as exc:
            await finish(paid, None)
            raise InternalError(message=str(exc)) from None
        if not await finish(paid, reply.message_id):
            raise InternalError(message="this payment's message was answered by another request")
        return reply.text

    return Executor()


def mount(app: Any, default: str | None) -> None:
    """Serve the A2A routes on ``app`` (made by ``create_app``)."""
    app.state.a2a = A2ADoors(app.state.fleet, app.state.auth, default)
    app.include_router(router)
