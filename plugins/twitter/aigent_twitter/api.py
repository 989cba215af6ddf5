"""The X API v2 through tweepy, with rate-limit tracking, a monthly post budget and dry runs.

tweepy is synchronous (requests); calls run in a thread. Every response's ``x-rate-limit-*``
headers are remembered per endpoint, and a call to an exhausted endpoint waits until its reset;
a 429 does the same. ``clock`` and ``sleep`` are injectable so tests need not wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from aigent import is_local_url

log = logging.getLogger("aigent.twitter")

X_HOST = "https://api.twitter.com"
FIELDS = ["author_id", "conversation_id", "created_at"]  # asked of every post read
MAX_WAIT = 15 * 60.0  # X windows are 15 minutes; never sleep longer than one


class XApiError(Exception):
    """The X API refused or failed; ``retryable`` says whether waiting may help, ``refused``
    that X answered with a refusal (so the call did nothing; otherwise it may have)."""

    def __init__(self, message: str, retryable: bool = False, refused: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.refused = refused


@dataclass
class Post:
    id: str
    text: str
    author_id: str = ""
    conversation_id: str = ""
    created_at: float | None = None
    """When it was posted (Unix seconds), as X says; None when X did not say."""


@dataclass
class Credentials:
    consumer_key: str
    consumer_secret: str
    access_token: str
    access_token_secret: str
    bearer_token: str | None = None


def _redirect_adapter(base: str) -> Any:
    """A requests adapter that sends api.twitter.com traffic to ``base`` (an API-compatible
    proxy, or the wire-format stand-in in tests)."""
    from requests.adapters import HTTPAdapter

    target = urlsplit(base)

    class Redirect(HTTPAdapter):
        def send(self, request: Any, **kwargs: Any) -> Any:
            parts = urlsplit(request.url)
            request.url = parts._replace(scheme=target.scheme, netloc=target.netloc).geturl()
            return super().send(request, **kwargs)

    return Redirect()


class XApi:
    def __init__(
        self,
        credentials: Credentials,
        *,
        api_base: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        import requests
        import tweepy

        self._client = tweepy.Client(
            bearer_token=credentials.bearer_token,
            consumer_key=credentials.consumer_key,
            consumer_secret=credentials.consumer_secret,
            access_token=credentials.access_token,
            access_token_secret=credentials.access_token_secret,
            return_type=requests.Response,
            wait_on_rate_limit=False,  # we wait ourselves, without blocking the event loop
        )
        if api_base:
            if not is_local_url(api_base):
                # Signed requests and the bearer token would go to that host: only this
                # machine (a stand-in, a local proxy) may take the place of X.
                raise XApiError(
                    f"settings.twitter.api_base {api_base!r} is not on this machine: requests "
                    "signed with the agent's X credentials go only to X or to a local "
                    "stand-in (localhost); remove api_base to talk to X"
                )
            self._client.session.mount(X_HOST, _redirect_adapter(api_base))
        self.clock = clock
        self.sleep = sleep
        self.limits: dict[str, tuple[int, float]] = {}  # endpoint -> (remaining, reset time)
        self.user_id: str | None = None

    async def _call(self, endpoint: str, method: str, *args: Any, **kwargs: Any) -> Any:
        import tweepy

        remaining, reset = self.limits.get(endpoint, (1, 0.0))
        if remaining <= 0 and reset > self.clock():
            wait = min(reset - self.clock() + 1, MAX_WAIT)
            log.warning("X rate limit on %s: waiting %.0fs for the reset", endpoint, wait)
            await self.sleep(wait)
        try:
            response = await asyncio.to_thread(getattr(self._client, method), *args, **kwargs)
        except tweepy.TooManyRequests as exc:
            reset_at = float(exc.response.headers.get("x-rate-limit-reset") or self.clock() + 60)
            self.limits[endpoint] = (0, reset_at)
            raise XApiError(
                f"rate limited on {endpoint} until {reset_at:.0f}", True, True
            ) from None
        except tweepy.TwitterServerError as exc:
            raise XApiError(f"X server error on {endpoint}: {exc}", True) from None
        except tweepy.HTTPException as exc:
            raise XApiError(f"X refused {endpoint}: {exc}", refused=True) from None
        except Exception as exc:  # requests' connection errors and the like
            raise XApiError(f"X unreachable for {endpoint}: {type(exc).__name__}", True) from None
        headers = response.headers
        if "x-rate-limit-remaining" in headers:
            self.limits[endpoint] = (
                int(headers["x-rate-limit-remaining"]),
                float(headers.get("x-rate-limit-reset") or 0),
            )
        try:
            return response.json()
        except ValueError:
            raise XApiError(f"X answered {endpoint} with a body that is not JSON", True) from None

    async def me(self) -> str:
        if self.user_id is None:
            body = await self._call("users/me", "get_me", user_auth=True)
            self.user_id = str(_data(body, dict)["id"])
        return self.user_id

    async def post(self, text: str, reply_to: str | None = None, quote: str | None = None) -> str:
        body = await self._call(
            "tweets", "create_tweet", text=text, in_reply_to_tweet_id=reply_to,
            quote_tweet_id=quote, user_auth=True,
        )  # fmt: skip
        return str(_data(body, dict)["id"])

    async def mentions(self, since_id: str | None) -> list[Post]:
        body = await self._call(
            "mentions", "get_users_mentions", await self.me(), since_id=since_id,
            tweet_fields=FIELDS, user_auth=True,
        )  # fmt: skip
        return [_post(item) for item in _data(body, list, default=[])]

    async def like(self, post_id: str) -> None:
        await self._call("likes", "like", post_id, user_auth=True)

    async def repost(self, post_id: str) -> None:
        await self._call("retweets", "retweet", post_id, user_auth=True)

    async def home_timeline(self, count: int = 10) -> list[Post]:
        body = await self._call(
            "timeline", "get_home_timeline", max_results=max(count, 5),
            tweet_fields=FIELDS, user_auth=True,
        )  # fmt: skip
        return [_post(item) for item in _data(body, list, default=[])][:count]

    async def search(self, query: str, count: int = 10) -> list[Post]:
        body = await self._call(
            "search", "search_recent_tweets", query, max_results=max(count, 10),
            tweet_fields=FIELDS,
        )  # fmt: skip
        return [_post(item) for item in _data(body, list, default=[])][:count]


def _data(body: Any, kind: type, default: Any = None) -> Any:
    data = body.get("data", default) if isinstance(body, dict) else None
    if not isinstance(data, kind):
        if default is not None and data is None:
            return default
        raise XApiError(f"unexpected X API answer: {str(body)[:200]}", True)
    return data


def _post(item: Any) -> Post:
    if not isinstance(item, dict) or "id" not in item:
        raise XApiError(f"unexpected post in X API answer: {str(item)[:200]}", True)
    return Post(
        str(item["id"]),
        str(item.get("text", "")),
        str(item.get("author_id", "")),
        str(item.get("conversation_id", "")),
        _time(item.get("created_at")),
    )


def _time(value: Any) -> float | None:
    """X's ``created_at`` (ISO 8601, ``2026-12-01T10:00:00.000Z``) in Unix seconds; None when
    absent or unreadable (the post is still usable, its time is then when it was first seen)."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
