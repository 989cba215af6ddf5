"""x402 beside ILP: strangers pay a hosted agent per message over HTTP, at the character's one
price.

``POST /x402/{name}/messages`` needs no session (a payer is a stranger), so only agents whose
character opts in with ``settings.x402`` are reachable here. Without payment the answer is
402 with x402 v2 requirements built from ``price`` (the body and the ``PAYMENT-REQUIRED``
header); with a ``PAYMENT-SIGNATURE`` (v2) or ``X-PAYMENT`` (v1) header the payment is
checked, settled on its ledger, booked in the agent's earnings ledger with its rail, and the
reply carries ``PAYMENT-RESPONSE`` (and ``X-PAYMENT-RESPONSE``).

The XRPL rail (here) speaks the wire format of the ``x402-xrpl`` SDK: scheme ``exact`` on
network ``xrpl:<network id>``, the payer presigns a ``Payment`` bound to our invoice id (memo
and ``InvoiceID``) and the server verifies and submits it itself (no facilitator to trust). An
invoice id is a MAC of what it quotes with its expiry, so offering costs no write. The EVM rail
is in :mod:`aigent_server.x402_evm`.

A payment answers exactly one message. Before it is settled its keys (transaction and invoice;
EVM: the authorization) are claimed in the earnings ledger as ``answering`` until a deadline
(``settings.x402.answer_timeout``, the time settling and answering may take), and marked
``answered`` with the reply's message id before the reply goes out. The same payment again:
answered -> refused as replayed; still being answered -> 409 with Retry-After; its attempt
failed before a reply, or died (past the deadline) -> answered by this request, with the
settlement looked up rather than made twice and the sale booked once (keyed by the
transaction). The claims live in the agent's stores, so this holds on any server of a fleet.

Other doors (A2A) call :func:`require_payment` the same way.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from aigent.amounts import format_amount
from aigent.storage import kept_secret
from aigent_server.fleet import FleetError, Hosted

if TYPE_CHECKING:
    from aigent import Character
    from aigent.node import AgentNode
    from aigent_server.fleet import Fleet
    from aigent_server.x402_evm import EvmOffer

router = APIRouter(tags=["x402"])

RAIL_XRPL = "x402-xrpl"
FREE = "free"
TIMEOUT = 300
"""Seconds an offer stands (``maxTimeoutSeconds``): its invoice id expires with it."""
ANSWER_TIMEOUT = 300.0
"""Seconds settling a payment and answering its message may take by default
(``settings.x402.answer_timeout``): the deadline of its claim, and the answer's timeout."""
HEADERS_IN = ("PAYMENT-SIGNATURE", "X-PAYMENT")
TF_PARTIAL_PAYMENT = 0x00020000
clock = time.time
_keys: dict[Path, bytes] = {}


class Refused(Exception):
    """A payment that cannot be taken; ``reason`` is the x402 code, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Busy(Refused):
    """The payment's message is being answered by another request until ``deadline``."""

    def __init__(self, message: str, deadline: float) -> None:
        super().__init__("answering", message)
        self.deadline = deadline


@dataclass(frozen=True)
class Hold:
    """One attempt's claim on a payment (see :meth:`aigent.node.Earnings.take`)."""

    node: AgentNode = field(repr=False)
    payment: str
    attempt: str
    deadline: float
    retaken: bool
    settled: str


@dataclass(frozen=True)
class Paid:
    """What a paying caller paid (or that the agent is free: rail ``free``, amount 0)."""

    rail: str
    amount: int
    asset: str
    scale: int
    payer: str = ""
    tx: str = ""
    network: str = ""
    hold: Hold | None = field(default=None, compare=False, repr=False)
    """The claim this payment holds until its message is answered (:func:`finish`)."""

    def headers(self) -> dict[str, str]:
        """The payment response headers for the reply (none for a free agent)."""
        if self.rail == FREE:
            return {}
        settled = {"success": True, "transaction": self.tx, "network": self.network}
        if self.payer:
            settled["payer"] = self.payer
        value = _b64(settled)
        return {"PAYMENT-RESPONSE": value, "X-PAYMENT-RESPONSE": value}


@dataclass(frozen=True)
class XrplOffer:
    """How the agent takes XRPL payments: where to, on which network, through which server."""

    pay_to: str
    network: str
    url: str
    issuer: str | None

    def requirement(self, character: Character, invoice: str) -> dict[str, Any]:
        price = character.price
        assert price is not None
        extra: dict[str, Any] = {"invoiceId": invoice}
        if self.issuer is not None:
            extra["issuer"] = self.issuer
        return {
            "scheme": "exact",
            "network": self.network,
            "amount": _xrpl_amount(price.amount, price.asset_scale, price.asset_code),
            "asset": price.asset_code,
            "payTo": self.pay_to,
            "maxTimeoutSeconds": TIMEOUT,
            "extra": extra,
        }


@dataclass(frozen=True)
class Terms:
    """What an agent's 402 offers: at most one offer per rail."""

    xrpl: XrplOffer | None
    evm: EvmOffer | None


# --- the door --------------------------------------------------------------------------------


def door(fleet: Fleet, name: str) -> Hosted:
    """The hosted agent ``name`` if it takes x402 messages; 404 otherwise (an agent that did
    not opt in is as absent to a stranger as one that does not exist)."""
    hosted = fleet.hosted.get(name)
    character = hosted.character if hosted is not None else None
    if hosted is None or character is None or "x402" not in character.settings:
        raise FleetError(404, f"no agent named {name!r} takes x402 payments")
    return hosted


async def require_payment(request: Request, hosted: Hosted) -> Paid | Response:
    """What the caller paid for one message to ``hosted``, settled and booked, or the
    response to send instead (402 with the requirements and what was wrong)."""
    agent = hosted.agent
    if agent is None or hosted.state != "running":
        raise FleetError(409, f"agent {hosted.entry.name!r} is {hosted.state}: start it first")
    character = agent.character
    price = character.price
    node = agent.node
    code, scale = (price.asset_code, price.asset_scale) if price else ("XRP", 6)
    if price is None or price.amount == 0:
        return Paid(FREE, 0, code, scale)
    if node is None:
        raise FleetError(
            409,
            f"agent {hosted.entry.name!r} has its connector turned off: x402 earnings are "
            "booked in its ledger, so turn connector.enabled back on",
        )
    if not takes_x402(hosted):
        return _no_rail(hosted, node)
    terms = offers(hosted)
    key = await asyncio.to_thread(_key, hosted)  # a database read the first time, in a fleet
    header = next((request.headers[h] for h in HEADERS_IN if h in request.headers), None)
    if header is None:
        return _required(request, hosted, terms, key, "PAYMENT-SIGNATURE header is required")
    try:
        paid = await _take(header, hosted, node, terms, key)
    except Busy as busy:
        wait = max(1, math.ceil(busy.deadline - clock()))
        body = {"detail": str(busy), "reason": busy.reason, "retry_after": wait}
        return JSONResponse(body, status_code=409, headers={"Retry-After": str(wait)})
    except Refused as refused:
        return _required(request, hosted, terms, key, str(refused), refused.reason)
    return paid


async def finish(paid: object, message_id: str | None) -> bool:
    """End the claim of what paid for a message: answered by ``message_id`` (False when
    another attempt took the payment meanwhile: this reply must not go out), or, with None,
    reopened because the attempt failed before a reply (a retry with it is answered). True
    for what holds no claim (a free agent, an owner)."""
    hold = paid.hold if isinstance(paid, Paid) else None
    if hold is None:
        return True
    if message_id is None:
        await release(hold)
        return False
    from aigent import blocking

    earnings = hold.node.earnings
    return bool(
        await blocking.run("records", earnings.answered, hold.payment, hold.attempt, message_id)
    )


async def release(hold: Hold) -> None:
    """The attempt failed before a reply: the next request with the payment is answered."""
    from aigent import blocking

    await blocking.run("records", hold.node.earnings.reopen, hold.payment, hold.attempt)


def left(paid: Paid) -> float | None:
    """Seconds the answer may still take (None: no deadline, nothing was paid)."""
    return max(0.0, paid.hold.deadline - clock()) if paid.hold is not None else None


@router.post("/x402/{name}/messages")
async def paid_message(name: str, request: Request) -> Response:
    """A message to an agent, paid per message with x402 (no session needed). Without a
    payment: 402 and what to pay. Body: ``{"text": "..."}``; the user is the payer's address
    (it signed the payment), never what the body says, and the room is the payer's own."""
    from aigent_server.hot import MessageIn, reply_fields

    fleet: Fleet = request.app.state.fleet
    hosted = door(fleet, name)
    try:
        body = MessageIn.model_validate_json(await request.body())
    except ValueError as exc:  # checked before any payment is taken
        raise FleetError(422, f'the body must be JSON like {{"text": "..."}}: {exc}') from None
    paid = await require_payment(request, hosted)
    if isinstance(paid, Response):
        return paid
    # A free agent's callers prove nothing: each call is a stranger of its own, so no two
    # share a room or the memory keyed by their user.
    who = paid.payer or f"anonymous-{secrets.token_hex(6)}"
    what = {"rail": paid.rail, "amount": paid.amount, "asset": paid.asset, "scale": paid.scale}
    what |= {"tx": paid.tx}
    try:
        async with asyncio.timeout(left(paid)):
            reply = await fleet.chat(hosted, body.text, who, f"x402:{who}", client="x402")
    except (FleetError, TimeoutError) as exc:
        await finish(paid, None)
        if isinstance(exc, TimeoutError):
            exc = FleetError(504, f"agent {name!r} did not answer in time")
        # Settled and booked already: say so, with the transaction, and that the same payment
        # sent again is answered.
        taken = (
            f"; the payment was settled ({paid.tx}): send the same payment again to be answered"
            if paid.tx else ""
        )  # fmt: skip
        detail = {"detail": f"{exc}{taken}", "paid": what}
        return JSONResponse(detail, status_code=exc.status, headers=paid.headers())
    if not await finish(paid, reply.message_id):
        return JSONResponse(
            {"detail": "this payment's message was answered by another request", "paid": what},
            status_code=409,
        )
    return JSONResponse(reply_fields(reply) | {"paid": what}, headers=paid.headers())


# --- offers ----------------------------------------------------------------------------------


def takes_x402(hosted: Hosted) -> bool:
    """Whether the character opts in (``settings.x402``): x402 is offered nowhere otherwise."""
    character = hosted.agent.character if hosted.agent is not None else hosted.character
    return character is not None and "x402" in character.settings


def accepts(request: Request, hosted: Hosted) -> list[dict[str, Any]]:
    """The requirements a 402 would state now (for an agent card); none when the agent takes
    no x402 payment, is free or is not running, or its x402 settings are wrong."""
    agent = hosted.agent
    price = agent.character.price if agent is not None else None
    if agent is None or price is None or price.amount == 0 or not takes_x402(hosted):
        return []
    try:
        terms = offers(hosted)
        found = []
        if terms.xrpl is not None:
            expires = int(clock()) + TIMEOUT
            code = price.asset_code
            invoice = _invoice(
                _key(hosted), hosted.entry.name, terms.xrpl, price.amount, code, expires
            )
            found.append(terms.xrpl.requirement(agent.character, invoice))
        if terms.evm is not None:
            found.append(terms.evm.requirement())
        return found
    except FleetError:
        return []  # the card still shows; a payment attempt names what is wrong


def _no_rail(hosted: Hosted, node: AgentNode) -> Response:
    """402 for a priced agent that takes no x402: its price, and how else to pay."""
    agent = hosted.agent
    assert agent is not None and agent.character.price is not None
    price = agent.character.price
    how = f"pay over ILP at {node.spsp_url} (aigent's ask_agent), " if node.spsp_url else ""
    said = (
        f"agent {hosted.entry.name!r} charges {price} per message and takes no x402 payment: "
        f"{how}or ask its owner for access (settings.x402 in its character turns x402 on)"
    )
    body = {
        "x402Version": 2,
        "error": said,
        "detail": said,
        "reason": "no_x402",
        "accepts": [],
        "price": {"amount": str(price.amount), "asset_code": price.asset_code,
                  "asset_scale": price.asset_scale, "text": str(price)},
    }  # fmt: skip
    return JSONResponse(body, status_code=402)


def offers(hosted: Hosted) -> Terms:
    """The rails the agent takes: ``settings.x402.evm`` adds EVM ``exact``; the XRPL is taken
    unless only ``evm`` is set."""
    from aigent_server.x402_evm import evm_offer

    assert hosted.agent is not None
    x402 = hosted.agent.character.settings.get("x402") or {}
    x402 = x402 if isinstance(x402, dict) else {}
    evm = evm_offer(hosted, x402["evm"]) if "evm" in x402 else None
    xrpl = xrpl_offer(hosted) if "xrpl" in x402 or evm is None else None
    return Terms(xrpl, evm)


def xrpl_offer(hosted: Hosted) -> XrplOffer:
    """The agent's XRPL terms from ``settings.x402.xrpl``, falling back to the ``xrpl``
    plugin's wallet (``seed_env``) and server (``url``)."""
    agent = hosted.agent
    assert agent is not None
    character = agent.character
    name = hosted.entry.name
    x402 = character.settings.get("x402") or {}
    own = x402.get("xrpl") if isinstance(x402, dict) else None
    own = own if isinstance(own, dict) else {}
    plugin = character.settings.get("xrpl") or {}
    pay_to = own.get("pay_to")
    if not pay_to:
        seed = agent.secrets.get(str(plugin.get("seed_env", "XRPL_SEED")))
        if not seed:
            raise FleetError(
                409,
                f"agent {name!r} has a price but no XRPL account to be paid at: set "
                "settings.x402.xrpl.pay_to, or give it a wallet (the xrpl plugin's seed_env)",
            )
        from xrpl.wallet import Wallet

        pay_to = Wallet.from_seed(seed).classic_address
    url = own.get("url") or plugin.get("url")
    if not url:
        raise FleetError(
            409, f"agent {name!r}: set settings.x402.xrpl.url (or settings.xrpl.url) to the "
            "XRPL server x402 payments are submitted to"
        )  # fmt: skip
    price = character.price
    issuer = own.get("issuer")
    if price is not None and price.asset_code.upper() != "XRP" and not issuer:
        raise FleetError(
            409, f"agent {name!r} is priced in {price.asset_code}: set settings.x402.xrpl.issuer "
            "to the account that issues it on the XRPL"
        )  # fmt: skip
    network = str(own.get("network", "xrpl:1"))
    return XrplOffer(str(pay_to), network, str(url), str(issuer) if issuer else None)


def _required(
    request: Request,
    hosted: Hosted,
    terms: Terms,
    key: bytes,
    error: str,
    reason: str = "payment_required",
) -> Response:
    agent = hosted.agent
    assert agent is not None and agent.character.price is not None
    character = agent.character
    price = character.price
    assert price is not None
    accepts = []
    if terms.xrpl is not None:
        expires = int(clock()) + TIMEOUT
        invoice = _invoice(
            key, hosted.entry.name, terms.xrpl, price.amount, price.asset_code, expires
        )
        accepts.append(terms.xrpl.requirement(character, invoice))
    if terms.evm is not None:
        accepts.append(terms.evm.requirement())
    body = {
        "x402Version": 2,
        "error": error,
        "reason": reason,
        "resource": {
            "url": str(request.url),
            "description": f"one message to {hosted.entry.name}, answered ({price} a message)",
            "mimeType": "application/json",
        },
        "accepts": accepts,
        "extensions": {},
    }
    return JSONResponse(body, status_code=402, headers={"PAYMENT-REQUIRED": _b64(body)})


# --- taking a payment ------------------------------------------------------------------------


async def _take(header: str, hosted: Hosted, node: AgentNode, terms: Terms, key: bytes) -> Paid:
    payload = _decode(header)
    accepted = payload.get("accepted") or {}
    scheme, network = accepted.get("scheme"), accepted.get("network")
    if scheme == "exact" and terms.evm is not None and network == terms.evm.network:
        from aigent_server.x402_evm import take_evm

        return await take_evm(payload, hosted, node, terms.evm)
    offer = terms.xrpl
    if scheme != "exact" or offer is None or network != offer.network:
        taken = [t.network for t in (terms.xrpl, terms.evm) if t is not None]
        raise Refused(
            "unsupported_scheme",
            f"this agent takes scheme 'exact' on {' or '.join(taken)}; the payment is for "
            f"scheme {scheme!r} on {network!r}",
        )
    inner = payload.get("payload") or {}
    blob, invoice = inner.get("signedTxBlob"), inner.get("invoiceId")
    if not isinstance(blob, str) or not isinstance(invoice, str):
        raise Refused(
            "invalid_payload", "the payment needs payload.signedTxBlob and payload.invoiceId"
        )
    agent = hosted.agent
    assert agent is not None and agent.character.price is not None
    price = agent.character.price
    try:
        _check_invoice(key, hosted.entry.name, offer, price.amount, price.asset_code, invoice)
        expired = None
    except Refused as refused:
        if refused.reason != "expired":
            raise
        expired = refused
    tx, tx_hash = _check_tx(blob, invoice, offer, price.amount, price.asset_scale, price.asset_code)
    if expired is not None and not await claimed(node, "xrpl-tx:" + tx_hash):
        # An offer expires for new payments only: one taken in time stays answerable.
        raise expired
    payer = str(tx["Account"])
    # Claimed before submission: the same transaction or invoice answers one message.
    hold = await take(
        hosted,
        node,
        RAIL_XRPL,
        ["xrpl-tx:" + tx_hash, "x402-invoice:" + invoice],
        f"transaction {tx_hash}, or its invoice: ask again without a payment header for a "
        "fresh invoice",
    )
    if not hold.settled:
        try:
            await _settle(
                blob, tx_hash, offer, price.amount, price.asset_scale, price.asset_code,
                look_first=hold.retaken,
            )  # fmt: skip
        except Refused:
            await release(hold)  # not settled: the same payment may be tried again
            raise
        await settled(hold, tx_hash)
    await node.sold(price.amount, payer, tx_hash, RAIL_XRPL)
    return Paid(
        RAIL_XRPL, price.amount, price.asset_code, price.asset_scale, payer, tx_hash,
        offer.network, hold,
    )  # fmt: skip


def _decode(header: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.b64decode(header, validate=True))
    except (binascii.Error, ValueError):
        raise Refused(
            "invalid_payment_header",
            "the payment header is not base64 JSON (an x402 PaymentPayload)",
        ) from None
    if not isinstance(data, dict):
        raise Refused("invalid_payment_header", "the payment header is not a JSON object")
    return data


def _check_invoice(
    key: bytes, name: str, offer: XrplOffer, amount: int, code: str, invoice: str
) -> None:
    try:
        expires_text, nonce, _mac = invoice.split(".")
        expires = int(expires_text)
    except ValueError:
        raise Refused("invalid_invoice", f"invoice id {invoice!r} was not issued here") from None
    if not hmac.compare_digest(_invoice(key, name, offer, amount, code, expires, nonce), invoice):
        raise Refused(
            "invalid_invoice",
            f"invoice id {invoice!r} was not issued here for this price and account: ask again "
            "without a payment header for a fresh one",
        )
    if expires < clock():
        raise Refused(
            "expired",
            f"the offer expired {int(clock()) - expires} s ago (offers stand {TIMEOUT} s): ask "
            "again without a payment header for a fresh one",
        )


def _check_tx(
    blob: str, invoice: str, offer: XrplOffer, amount: int, scale: int, code: str
) -> tuple[dict[str, Any], str]:
    from xrpl.core.binarycodec import decode, encode_for_signing
    from xrpl.core.keypairs import derive_classic_address, is_valid_message

    try:
        tx = decode(blob)
    except Exception:
        raise Refused("invalid_transaction", "signedTxBlob is not an XRPL transaction") from None
    if tx.get("TransactionType") != "Payment":
        raise Refused(
            "invalid_transaction",
            f"the transaction is a {tx.get('TransactionType')}, not a Payment",
        )
    if tx.get("Destination") != offer.pay_to:
        raise Refused(
            "wrong_pay_to", f"the payment goes to {tx.get('Destination')}, not to {offer.pay_to}"
        )
    if int(tx.get("Flags", 0)) & TF_PARTIAL_PAYMENT:
        raise Refused("partial_payment", "a partial payment is not taken: it may deliver less")
    want = _xrpl_amount(amount, scale, code)
    paid: Any = tx.get("Amount", tx.get("DeliverMax"))
    if not isinstance(paid, (str, dict)):
        raise Refused("invalid_transaction", "the payment carries no Amount")
    if code.upper() == "XRP":
        if not isinstance(paid, str):
            raise Refused("wrong_asset", f"the payment is in {paid.get('currency')}, not XRP")
        short = int(paid) < int(want)
        carried = f"{paid} drops"
        asked = f"{want} drops ({format_amount(amount, scale, code)})"
    else:
        if isinstance(paid, str) or (paid.get("currency"), paid.get("issuer")) != (
            code,
            offer.issuer,
        ):
            what = (
                "XRP" if isinstance(paid, str) else f"{paid.get('currency')}/{paid.get('issuer')}"
            )
            raise Refused("wrong_asset", f"the payment is in {what}, not {code}/{offer.issuer}")
        short = Decimal(str(paid.get("value"))) < Decimal(want)
        carried = f"{paid.get('value')} {code}"
        asked = f"{want} {code}"
    if short:
        raise Refused(
            "underpayment", f"the price is {asked} a message; this payment carries {carried}"
        )
    if tx.get("InvoiceID") != hashlib.sha256(invoice.encode()).hexdigest().upper() and not any(
        _memo_text(m) == invoice for m in tx.get("Memos") or []
    ):
        raise Refused("invoice_not_bound", "the transaction does not carry the invoice id")
    signature, key = tx.get("TxnSignature"), tx.get("SigningPubKey", "")
    unsigned = {k: v for k, v in tx.items() if k != "TxnSignature"}
    if (
        not signature
        or not key
        or derive_classic_address(key) != tx.get("Account")
        or not is_valid_message(
            bytes.fromhex(encode_for_signing(unsigned)), bytes.fromhex(signature), key
        )
    ):
        raise Refused("invalid_signature", "the transaction is not signed by its account's key")
    tx_hash = hashlib.sha512(b"TXN\x00" + bytes.fromhex(blob)).digest()[:32].hex().upper()
    return tx, tx_hash


async def _settle(
    blob: str,
    tx_hash: str,
    offer: XrplOffer,
    amount: int,
    scale: int,
    code: str,
    *,
    look_first: bool = False,
) -> None:
    from xrpl.asyncio.clients import AsyncJsonRpcClient
    from xrpl.asyncio.transaction import XRPLReliableSubmissionException, submit_and_wait

    client = AsyncJsonRpcClient(offer.url)
    try:
        # An earlier attempt may have submitted it before it died: a validated transaction
        # is settled, and is not submitted again.
        response = await _validated(client, tx_hash) if look_first else None
        if response is None:
            response = await submit_and_wait(blob, client, autofill=False)
    except XRPLReliableSubmissionException as exc:
        raise Refused("settlement_failed", f"the ledger refused the payment: {exc}") from None
    except Exception as exc:
        raise Refused(
            "settlement_failed", f"the payment could not be submitted to the XRPL: {exc}"
        ) from None
    meta = response.result.get("meta") or {}
    result = meta.get("TransactionResult")
    if result != "tesSUCCESS":
        raise Refused("settlement_failed", f"the payment {tx_hash} failed on the ledger: {result}")
    delivered = meta.get("delivered_amount")
    want = _xrpl_amount(amount, scale, code)
    got = delivered if isinstance(delivered, str) else (delivered or {}).get("value", "0")
    if Decimal(str(got)) < Decimal(want):
        raise Refused("underpayment", f"the ledger delivered {got}, less than {want}")


async def _validated(client: Any, tx_hash: str) -> Any:
    """The ledger's response for ``tx_hash`` if it is in a validated ledger, else None."""
    from xrpl.models.requests import Tx

    response = await client.request(Tx(transaction=tx_hash))
    return response if response.is_successful() and response.result.get("validated") else None


async def take(hosted: Hosted, node: AgentNode, rail: str, keys: list[str], which: str) -> Hold:
    """Claim the payment named by ``keys`` (the first names it) to answer one message: the
    hold, or Refused (used before: ``which`` says what and what to do) or Busy."""
    from aigent import blocking

    timeout = answer_timeout(hosted)
    taken = await blocking.run("records", node.earnings.take, keys, rail, clock() + timeout)
    if taken.outcome == "used":
        raise Refused("replayed", f"this payment was already used ({which})")
    if taken.outcome == "answering":
        raise Busy(
            "this payment's message is being answered by another request: send it again "
            "after Retry-After seconds if that one does not answer",
            taken.deadline,
        )
    return Hold(
        node, keys[0], taken.attempt, taken.deadline, taken.outcome == "retaken", taken.settled
    )


async def claimed(node: AgentNode, payment: str) -> bool:
    """Whether an attempt claimed ``payment`` before (it was checked in time then)."""
    from aigent import blocking

    return bool(await blocking.run("records", node.earnings.taken, payment))


async def settled(hold: Hold, tx: str) -> None:
    """Note the payment settled in ``tx``, so an attempt after this one does not settle it."""
    from aigent import blocking

    await blocking.run("records", hold.node.earnings.settled, hold.payment, tx)


def answer_timeout(hosted: Hosted) -> float:
    """``settings.x402.answer_timeout`` (seconds settling and answering may take)."""
    agent = hosted.agent
    assert agent is not None
    x402 = agent.character.settings.get("x402") or {}
    value = x402.get("answer_timeout", ANSWER_TIMEOUT) if isinstance(x402, dict) else ANSWER_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise FleetError(
            409,
            f"agent {hosted.entry.name!r}: settings.x402.answer_timeout must be a positive "
            f"number of seconds (settling and answering one paid message), not {value!r}",
        )
    return float(value)


# --- small parts -----------------------------------------------------------------------------


def _xrpl_amount(amount: int, scale: int, code: str) -> str:
    """The price as XRPL writes it: drops for XRP, the decimal value for an issued currency."""
    value = Decimal(amount).scaleb(-scale)
    if code.upper() == "XRP":
        drops = value.scaleb(6)
        if drops != drops.to_integral_value():
            raise FleetError(
                409, f"a price of {value} XRP is not a whole number of drops: use scale 6 or less"
            )
        return str(int(drops))
    return format(value.normalize(), "f")


def _invoice(
    key: bytes,
    name: str,
    offer: XrplOffer,
    amount: int,
    code: str,
    expires: int,
    nonce: str | None = None,
) -> str:
    nonce = nonce or secrets.token_hex(8)
    quoted = f"{name}|{offer.network}|{offer.pay_to}|{amount}|{code}|{expires}|{nonce}"
    mac = hmac.new(key, quoted.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{expires}.{nonce}.{mac}"


def _key(hosted: Hosted) -> bytes:
    """The agent's invoice key, made once and kept with the agent (its data directory, or its
    shared stores in a fleet: an invoice one server gave is honoured by the next). Read once
    per agent and process; the paid route reads it first from a thread."""
    folder, agent = hosted.data_dir, hosted.agent
    if folder is None or agent is None:
        raise FleetError(409, f"agent {hosted.entry.name!r} is not running")
    path = Path(folder) / "x402.key"
    if path not in _keys:
        _keys[path] = kept_secret(agent.storage, Path(folder), "x402.key")
    return _keys[path]


def _memo_text(memo: dict[str, Any]) -> str:
    data = (memo.get("Memo") or {}).get("MemoData", "")
    try:
        return bytes.fromhex(data).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def _b64(data: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()
