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
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aigent_xrpl.errors import XrplError, XrplInputError
from aigent_xrpl.service import account_address, account_lock, amount_of, currency_code

if TYPE_CHECKING:
    from aigent_xrpl.service import XrplService

TIMEOUT = 60.0
MAX_BODY = 16_000
"""The most of an answer handed back to the model."""


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
    async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as http:
        first = await http.request(method, url, content=content, headers=headers)
        if first.status_code != 402:
            return _answer(first)
        offer = await _choose(service, first)
        asset, units, scale, value = _price(offer)
        if max_price and value > amount_of(max_price, "max_price"):
            raise XrplInputError(
                f"{url} asks {value} {offer['asset']}, more than max_price {max_price}"
            )
        pay_to = account_address(str(offer["payTo"]), "the offer's payTo")
        spending = service.ctx.spending
        if spending is None:
            raise XrplError("this agent has no spending policy, so it may not pay")
        spending.check_destination(asset, pay_to)
        async with spending.spend(
            asset, units, to=pay_to, scale=scale, purpose=f"x402 {method} {url}"
        ) as spend:
            # The sequence stays ours until the server has submitted (or refused) the payment.
            async with account_lock(service.wallet.address):
                try:
                    header, tx_hash = await _sign(service, offer, first)
                except Exception:
                    spend.nothing_moved()
                    raise
                paid = await http.request(
                    method, url, content=content, headers={**headers, "PAYMENT-SIGNATURE": header}
                )
            if paid.status_code == 402:
                applied = await _applied(service, tx_hash)
                if applied:
                    spend.moved(units)
                else:
                    spend.nothing_moved()
                reason = _json(paid).get("error") or paid.text[:300]
                raise XrplError(
                    f"{url} refused the payment: {reason}"
                    + (" (yet it applied on the ledger)" if applied else "; nothing was paid")
                )
    service._cache.clear()
    answer = _answer(paid)
    answer["paid"] = {"amount": str(value), "asset": offer["asset"], "to": pay_to, "tx": tx_hash}
    return answer


async def _choose(service: XrplService, first: Any) -> dict[str, Any]:
    info = await service.request("server_info")
    network = f"xrpl:{int(info.get('info', {}).get('network_id', 0))}"
    accepts = _json(first).get("accepts") or []
    offers = [a for a in accepts if isinstance(a, dict)]
    for offer in offers:
        if offer.get("scheme") == "exact" and offer.get("network") == network:
            return offer
    asked = ", ".join(f"{a.get('scheme')} on {a.get('network')}" for a in offers) or "nothing"
    raise XrplError(
        f"the endpoint asks {asked}; this agent pays scheme 'exact' on {network} (its XRPL server)"
    )


def _price(offer: dict[str, Any]) -> tuple[str, int, int, Decimal]:
    """(asset, units at scale, scale, value): what the spending policy counts."""
    asset = str(offer.get("asset") or "XRP")
    if asset.upper() == "XRP":
        drops = int(str(offer.get("amount")))
        return "XRP", drops, 6, Decimal(drops).scaleb(-6)
    currency_code(asset)
    value = amount_of(str(offer.get("amount")), "the offer's amount")
    return asset, math.ceil(value.scaleb(6)), 6, value


async def _sign(service: XrplService, offer: dict[str, Any], first: Any) -> tuple[str, str]:
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
    page = _json(first)
    payload = {
        "x402Version": 2,
        "accepted": offer,
        "payload": {"signedTxBlob": signed.blob(), "invoiceId": invoice},
        **({"resource": page["resource"]} if isinstance(page.get("resource"), dict) else {}),
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
