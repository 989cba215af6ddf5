"""Packets for this node answered by a service in another process, in any language.

Each Prepare addressed to the node (or below it) is posted as JSON to ``{url}/handle-packet``,
the shape the agent-runtime connector documents for its business-logic servers::

    {"paymentId", "destination", "amount" (string), "expiresAt" (ISO 8601), "data" (base64),
     "sourcePeer"}

and the service answers::

    {"accept": true, "data"?: base64, "fulfillment"?: base64}
    {"accept": false, "rejectReason": {"code": "insufficient_funds" | "T04" | ..., "message"}}

A Fulfill needs the preimage of the packet's condition. The service may send it
(``fulfillment``); if it does not, the connector uses SHA-256 of the packet's data, which is
the scheme agent-runtime's senders use (its ``/ilp/send`` makes the condition
SHA-256(SHA-256(data))). Either way the fulfillment is checked against the condition before
it is sent back: a service that accepts a packet it cannot fulfil gets F99, never a Fulfill
that would be refused upstream after the money was counted.

Anything else the service does (a status other than 2xx, a body that is not the shape above,
data that is not base64 or too long, no answer in time, a refused connection) rejects the
packet with a temporary error (T00, or R00 when time ran out) naming what went wrong; the body
of a failed HTTP answer is logged, never passed on to the sender.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import secrets
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

import aiohttp

from aigent_connector.errors import ConnectorError
from aigent_connector.packets import MAX_DATA, Fulfill, Prepare, Reject

log = logging.getLogger("aigent.connector.delivery")

MAX_RESPONSE = 64 * 1024
"""The most we read of the service's answer: a Fulfill carries at most 32 KiB of data."""

BUSINESS_CODES = {
    "insufficient_funds": "T04",
    "expired": "R00",
    "invalid_request": "F00",
    "invalid_amount": "F03",
    "unexpected_payment": "F06",
    "application_error": "F99",
    "internal_error": "T00",
    "timeout": "T00",
}
"""agent-runtime's business reject codes and the ILP codes they stand for; a service may also
give an ILP code (``F99``) itself. Anything else is F99."""

MAX_MESSAGE_CHARS = 1000
"""Of a reject message taken from the service (ILP allows 8 KiB; a sender needs a line)."""

_ILP_CODE = re.compile(r"^[FTR][0-9]{2}$")


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``, as JavaScript's ``toISOString``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def ilp_code(code: object) -> str:
    if isinstance(code, str) and _ILP_CODE.match(code):
        return code
    return BUSINESS_CODES.get(code, "F99") if isinstance(code, str) else "F99"


class _Malformed(ConnectorError, ValueError):
    """The service's answer is not one the connector can act on."""


def _data(value: object, what: str) -> bytes:
    if value is None or value == "":
        return b""
    if not isinstance(value, str):
        raise _Malformed(f"{what} is not a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Malformed(f"{what} is not valid base64") from None
    return raw


class HttpDelivery:
    """The connector's packet handler for packets it delivers to ``{url}/handle-packet``."""

    def __init__(self, address: str, url: str, token: str | None, timeout: float) -> None:
        self.address = address
        self.url = url.rstrip("/") + "/handle-packet"
        self.timeout = timeout
        self._headers = {"content-type": "application/json"}
        if token:
            self._headers["authorization"] = f"Bearer {token}"
        self._session: aiohttp.ClientSession | None = None

    def _reject(self, code: str, message: str) -> Reject:
        return Reject(code, self.address, message[:MAX_MESSAGE_CHARS])

    async def __call__(self, source: str, prepare: Prepare) -> Fulfill | Reject:
        left = (prepare.expires_at - datetime.now(UTC)).total_seconds()
        if left <= 0:
            return self._reject("R00", "the packet expired before it reached the handler")
        body = {
            "paymentId": secrets.token_urlsafe(16),
            "destination": prepare.destination,
            "amount": str(prepare.amount),
            "expiresAt": iso(prepare.expires_at),
            "data": base64.b64encode(prepare.data).decode(),
            "sourcePeer": source,
        }
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(min(self.timeout, left)):
                async with self._session.post(
                    self.url, json=body, headers=self._headers, allow_redirects=False
                ) as response:
                    raw = await response.content.read(MAX_RESPONSE + 1)
                    status = response.status
        except TimeoutError:
            return self._reject("R00", "the packet handler did not answer in time")
        except aiohttp.ClientError as exc:
            log.warning("packet handler %s unreachable: %s", self.url, exc)
            return self._reject("T00", "the packet handler could not be reached")
        if not 200 <= status < 300:
            log.warning("packet handler %s answered HTTP %d: %r", self.url, status, raw[:200])
            return self._reject("T00", f"the packet handler answered HTTP {status}")
        try:
            return self._answer(prepare, raw)
        except _Malformed as exc:
            log.warning("packet handler %s: %s", self.url, exc)
            return self._reject("T00", f"the packet handler's answer is malformed: {exc}")

    def _answer(self, prepare: Prepare, raw: bytes) -> Fulfill | Reject:
        if len(raw) > MAX_RESPONSE:
            raise _Malformed(f"it is over {MAX_RESPONSE} bytes")
        try:
            answer: Any = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _Malformed("it is not JSON") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("accept"), bool):
            raise _Malformed('it has no boolean "accept"')
        data = _data(answer.get("data"), "data")
        if len(data) > MAX_DATA:
            raise _Malformed(f"data is {len(data)} bytes, over {MAX_DATA}")
        if not answer["accept"]:
            reason = answer.get("rejectReason")
            reason = reason if isinstance(reason, dict) else {}
            message = reason.get("message")
            text = message if isinstance(message, str) else "rejected by the packet handler"
            return Reject(ilp_code(reason.get("code")), self.address,
                          text[:MAX_MESSAGE_CHARS], data)  # fmt: skip
        given = _data(answer.get("fulfillment"), "fulfillment")
        fulfillment = given or sha256(prepare.data).digest()
        if len(fulfillment) != 32 or sha256(fulfillment).digest() != prepare.execution_condition:
            return self._reject(
                "F99",
                "the packet handler accepted, but "
                + ("its fulfillment does not match the condition" if given else
                   "sent no fulfillment and the condition is not SHA-256(SHA-256(data))"),
            )  # fmt: skip
        return Fulfill(fulfillment, data)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
