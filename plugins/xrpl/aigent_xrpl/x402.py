"""Paying x402 endpoints from the agent's XRPL account (``x402_fetch``).

The wire format is the ``x402-xrpl`` SDK's (x402 v2, scheme ``exact`` on ``xrpl:<network
id>``): on a 402 the agent picks an XRPL offer, signs a ``Payment`` to its ``payTo`` bound to
the offer's invoice id (a memo and ``InvoiceID`` = SHA-256 of it) and sends it back in the
``PAYMENT-SIGNATURE`` header; the server submits it. The payment is reserved under the
agent's spending policy first (allowlist, caps, confirmation), the account's sequence is held
until the server answers, and a refusal releases the reservation only once the ledger shows
the transaction did not apply.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aigent import X402Answer, X402Paid
from aigent_xrpl.errors import XrplError, XrplInputError
from aigent_xrpl.service import account_address, account_lock, amount_of, currency_code

if TYPE_CHECKING:
    from aigent.interfaces import X402Send
    from aigent_xrpl.service import XrplService

TIMEOUT = 60.0
MAX_BODY = 16_000
"""The most of an answer handed back to the model."""


class XrplX402Payer:
    """Pays x402 ``exact`` offers on the agent's XRPL network from its wallet (an
    :class:`aigent.X402Payer`): ``x402_fetch`` and ``ask_a2a`` both pay through it."""

    name = "x402-xrpl"

    def __init__(self, service: XrplService) -> None:
        self.service = service

    async def network(self) -> str:
        """``xrpl:<network id>`` of the agent's XRPL server: the offers it can pay."""
        info = await self.service.request("server_info")
        return f"xrpl:{int(info.get('info', {}).get('network_id', 0))}"

    async def choose(self, accepts: Sequence[Any]) -> dict[str, Any] | None:
        network = await self.network()
        for offer in accepts:
            if (
                isinstance(offer, dict)
                and offer.get("scheme") == "exact"
                and offer.get("network") == network
            ):
                return offer
        return None

    async def pay(
        self,
        offer: dict[str, Any],
        send: X402Send,
        *,
        resource: dict[str, Any] | None = None,
        max_value: Decimal | None = None,
        purpose: str = "",
    ) -> X402Paid:
        service = self.service
        asset, units, scale, value = _price(offer)
        if max_value is not None and value > max_value:
            raise XrplInputError(
                f"{purpose or 'the offer'} asks {value} {offer.get('asset')}, more than "
                f"max_price {max_value}"
            )
        pay_to = account_address(str(offer.get("payTo")), "the offer's payTo")
        spending = service.ctx.spending
        if spending is None:
            raise XrplError("this agent has no spending policy, so it may not pay")
        spending.check_destination(asset, pay_to)
        async with spending.spend(asset, units, to=pay_to, scale=scale, purpose=purpose) as spend:
            # The sequence stays ours until the server has submitted (or refused) the payment.
            async with account_lock(service.wallet.address):
                try:
                    header, tx_hash = await _sign(service, offer, resource)
                except Exception:
                    spend.nothing_moved()
                    raise
                answer = await send(header)
            if answer.status == 402:
                applied = await _applied(service, tx_hash)
                if applied:
                    spend.moved(units)
                else:
                    spend.nothing_moved()
                raise XrplError(
                    f"{purpose or 'the server'}: the payment was refused: {answer.reason}"
                    + (" (yet it applied on the ledger)" if applied else "; nothing was paid")
                )
        service._cache.clear()
        return X402Paid(str(value), str(offer.get("asset") or "XRP"), pay_to, tx_hash,
                        str(offer.get("network")))  # fmt: skip


def payer_for(service: XrplService) -> XrplX402Payer:
    """The agent's one payer (kept beside its service)."""
    payer = service.ctx.state.get("x402_payer")
    if payer is None:
        payer = service.ctx.state["x402_payer"] = XrplX402Payer(service)
    return payer  # type: ignore[no-any-return]


async def x402_fetch(
    service: XrplService, url: str, method: str = "POST", body: str = "", max_price: str = ""
) -> dict[str, Any]:
    """``method`` ``url`` (with ``body``: JSON is sent as JSON), paying what a 402 asks on
    the XRPL when it is at most ``max_price`` (XRP, or units of the asked currency)."""
    import httpx

    if not url.startswith(("http://", "https://")):
        raise XrplInputError(f"url {url!r} is not an http(s) URL")
    method = method.upper()
    headers, content = _body(body)
    payer = payer_for(service)
    async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as http:
        first = await http.request(method, url, content=content, headers=headers)
        if first.status_code != 402:
            return _answer(first)
        page = _json(first)
        offer = await payer.choose(page.get("accepts") or [])
        if offer is None:
            offers = [a for a in page.get("accepts") or [] if isinstance(a, dict)]
            asked = ", ".join(f"{a.get('scheme')} on {a.get('network')}" for a in offers)
            raise XrplError(
                f"the endpoint asks {asked or 'nothing'}; this agent pays scheme 'exact' on "
                f"{await payer.network()} (its XRPL server)"
            )
        replies: list[Any] = []

        async def send(header: str) -> X402Answer:
            paid = await http.request(
                method, url, content=content, headers={**headers, "PAYMENT-SIGNATURE": header}
            )
            replies.append(paid)
            return X402Answer(paid.status_code, str(_json(paid).get("error") or paid.text[:300]))

        resource = page.get("resource")
        made = await payer.pay(
            offer,
            send,
            resource=resource if isinstance(resource, dict) else None,
            max_value=amount_of(max_price, "max_price") if max_price else None,
            purpose=f"x402 {method} {url}",
        )
    answer = _answer(replies[-1])
    answer["paid"] = {"amount": made.amount, "asset": made.asset, "to": made.to, "tx": made.tx}
    return answer


def _price(offer: dict[str, Any]) -> tuple[str, int, int, Decimal]:
    """(asset, units at scale, scale, value): what the spending policy counts."""
    asset = str(offer.get("asset") or "XRP")
    if asset.upper() == "XRP":
        drops = int(str(offer.get("amount")))
        return "XRP", drops, 6, Decimal(drops).scaleb(-6)
    currency_code(asset)
    value = amount_of(str(offer.get("amount")), "the offer's amount")
    return asset, math.ceil(value.scaleb(6)), 6, value


async def _sign(
    service: XrplService, offer: dict[str, Any], resource: dict[str, Any] | None
) -> tuple[str, str]:
    from xrpl.asyncio.transaction import autofill_and_sign
    from xrpl.models import IssuedCurrencyAmount, Memo, Payment

    extra = offer.get("extra") or {}
    invoice = str(extra.get("invoiceId") or "")
    if not invoice:
        raise XrplError("the offer has no extra.invoiceId to bind the payment to")
    amount: Any = str(offer["amount"])
    asset = str(offer.get("asset") or "XRP")
    if asset.upper() != "XRP":
        amount = IssuedCurrencyAmount(
            currency=asset, issuer=str(extra.get("issuer")), value=str(offer["amount"])
        )
    ledger = await service.request("ledger", ledger_index="validated")
    tx = Payment(
        account=service.wallet.address,
        destination=str(offer["payTo"]),
        amount=amount,
        memos=[Memo(memo_data=invoice.encode().hex().upper())],
        invoice_id=hashlib.sha256(invoice.encode()).hexdigest().upper(),
        # Bound like the SDK's payer: the signed blob is worthless once the offer is past.
        last_ledger_sequence=int(ledger["ledger_index"])
        + math.ceil(int(offer.get("maxTimeoutSeconds", 60)) / 5)
        + 2,
    )
    signed = await autofill_and_sign(tx, service.client, service.wallet)
    payload = {
        "x402Version": 2,
        "accepted": offer,
        "payload": {"signedTxBlob": signed.blob(), "invoiceId": invoice},
        **({"resource": resource} if resource is not None else {}),
    }
    header = base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()
    return header, str(signed.get_hash())


async def _applied(service: XrplService, tx_hash: str) -> bool:
    """Whether the transaction applied (so the value left) as far as the ledger knows."""
    try:
        found = await service.request("tx", transaction=tx_hash)
    except XrplError:
        return False  # not found: it never reached the ledger
    return found.get("meta", {}).get("TransactionResult") == "tesSUCCESS"


def _body(body: str) -> tuple[dict[str, str], bytes | None]:
    if not body:
        return {}, None
    try:
        json.loads(body)
    except ValueError:
        return {"content-type": "text/plain"}, body.encode()
    return {"content-type": "application/json"}, body.encode()


def _json(response: Any) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _answer(response: Any) -> dict[str, Any]:
    data: Any = _json(response) or response.text[:MAX_BODY]
    return {"status": response.status_code, "body": data}
