"""The Telegram Bot API, the methods the client uses: ``getMe``, ``getUpdates`` (long
polling) and ``sendMessage``.

Every answer is ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": ...,
"description": ..., "parameters": {"retry_after": ...}}``; a 429 waits ``retry_after`` and
tries again. The token is part of every URL (``/bot<token>/<method>``), so URLs are never
logged or put in an error, and requests go only to api.telegram.org or to a stand-in on this
machine.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from aigent import is_local_url, retry_delay

log = logging.getLogger("aigent.telegram")

API = "https://api.telegram.org"
ATTEMPTS = 5
MAX_WAIT = 120.0


class TelegramError(Exception):
    """Telegram refused or failed; ``retryable`` says whether waiting may help, ``refused``
    that Telegram answered with a refusal (so the call did nothing; otherwise it may have)."""

    def __init__(self, message: str, retryable: bool = False, refused: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.refused = refused


def api_base(configured: str | None) -> str:
    if not configured or configured.rstrip("/") == API:
        return API
    if not is_local_url(configured):
        raise TelegramError(
            f"settings.telegram.api_base {configured!r} is not on this machine: the bot token "
            "goes only to api.telegram.org or to a local Bot API server or stand-in "
            "(localhost); remove api_base to talk to Telegram"
        )
    return configured.rstrip("/")


class TelegramApi:
    def __init__(
        self,
        token: str,
        *,
        base: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._root = f"{api_base(base)}/bot{token}/"
        self.sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self.me: dict[str, Any] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(self, method: str, params: dict[str, Any], *, poll: float = 0) -> Any:
        """One method; ``poll`` is how long the server may hold the answer (long polling)."""
        for attempt in range(ATTEMPTS):
            try:
                async with self.session.post(
                    self._root + method, json=params,
                    timeout=aiohttp.ClientTimeout(total=poll + 30),
                ) as resp:  # fmt: skip
                    raw, status = await resp.read(), resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                # The exception's text may hold the URL, and so the token: only its type.
                if attempt + 1 == ATTEMPTS:
                    raise TelegramError(f"Telegram unreachable for {method}: "
                                        f"{type(exc).__name__}", True) from None  # fmt: skip
                await self.sleep(retry_delay(attempt, None))
                continue
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            if not isinstance(body, dict) or "ok" not in body:
                if status >= 500 and attempt + 1 < ATTEMPTS:
                    await self.sleep(retry_delay(attempt, None))
                    continue
                raise TelegramError(
                    f"Telegram answered {method} ({status}) with a body that is not a Bot API "
                    "answer", True
                )  # fmt: skip
            if body["ok"] is True:
                return body.get("result")
            code = int(body.get("error_code") or status)
            description = str(body.get("description") or "no description")
            if code == 429:
                parameters = body.get("parameters") or {}
                wait = float(parameters.get("retry_after") or 1)
                log.warning("Telegram rate limit on %s: waiting %.1fs", method, wait)
                if wait > MAX_WAIT or attempt + 1 == ATTEMPTS:
                    raise TelegramError(f"rate limited on {method} for {wait:.0f}s", True, True)
                await self.sleep(wait)
                continue
            if code == 401 or (code == 404 and method == "getMe"):
                raise TelegramError(
                    "Telegram refused the bot token: check TELEGRAM_BOT_TOKEN (from @BotFather)",
                    refused=True,
                )
            if code >= 500 and attempt + 1 < ATTEMPTS:
                await self.sleep(retry_delay(attempt, None))
                continue
            # A server error may come after the message was sent: only a 4xx says not.
            raise TelegramError(f"Telegram refused {method} ({code}): {description}",
                                code >= 500, refused=code < 500)  # fmt: skip
        raise TelegramError(f"Telegram kept failing {method}", True)  # pragma: no cover

    async def get_me(self) -> dict[str, Any]:
        result = await self.call("getMe", {})
        if not isinstance(result, dict) or "id" not in result:
            raise TelegramError(f"unexpected getMe answer: {str(result)[:200]}", True)
        self.me = result
        return result

    async def get_updates(self, offset: int | None, poll: int) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"timeout": poll, "allowed_updates": ["message"]}
        if offset is not None:
            params["offset"] = offset
        result = await self.call("getUpdates", params, poll=poll)
        if not isinstance(result, list):
            raise TelegramError(f"unexpected getUpdates answer: {str(result)[:200]}", True)
        return [u for u in result if isinstance(u, dict) and isinstance(u.get("update_id"), int)]

    async def send(
        self, chat: int | str, text: str, reply_to: int | None = None, thread: int | None = None
    ) -> str:
        params: dict[str, Any] = {"chat_id": chat, "text": text}
        if reply_to is not None:
            params["reply_parameters"] = {"message_id": reply_to,
                                          "allow_sending_without_reply": True}  # fmt: skip
        if thread is not None:
            params["message_thread_id"] = thread
        result = await self.call("sendMessage", params)
        if not isinstance(result, dict) or "message_id" not in result:
            raise TelegramError(f"unexpected sendMessage answer: {str(result)[:200]}", True)
        return f"{chat}:{result['message_id']}"
