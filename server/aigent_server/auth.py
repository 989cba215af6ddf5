"""Who is asking: a wallet's signature (EIP-4361-style sign-in, then a session cookie with a
CSRF token, kept by :mod:`aigent_server.sessions`), a user's API key or the operator's API
token (both ``Authorization: Bearer``)."""

from __future__ import annotations

import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aigent_server.registry import OPERATOR

if TYPE_CHECKING:
    from aigent_server.apikeys import ApiKeys
    from aigent_server.sessions import Session, Sessions

ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
CHALLENGE_SECONDS = 300.0
MAX_CHALLENGES = 10_000
SESSION_COOKIE = "aigent_session"
CSRF_HEADER = "x-csrf-token"


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Challenge:
    address: str
    message: str
    expires_at: float


@dataclass
class Caller:
    owner: str
    session: Session | None
    """None for an API token or key, which carries no cookie and so needs no CSRF check."""


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Auth:
    def __init__(
        self,
        token: str | None,
        sessions: Sessions,
        keys: ApiKeys,
        admins: frozenset[str] = frozenset(),
    ) -> None:
        self._token = token
        self._admins = frozenset(a.lower() for a in admins)
        self._challenges: dict[str, Challenge] = {}
        self.sessions = sessions
        self.keys = keys

    def challenge(self, address: str, domain: str, uri: str) -> tuple[str, str]:
        """An EIP-4361 message for ``address`` to sign, and its nonce."""
        if not ADDRESS.match(address):
            raise AuthError(422, f"address {address!r} is not a 0x-prefixed 20-byte hex address")
        self._expire()
        if len(self._challenges) >= MAX_CHALLENGES:  # unanswered ones must not fill memory
            raise AuthError(429, "too many sign-ins under way: retry in a few minutes")
        nonce = secrets.token_hex(12)
        now = time.time()
        message = (
            f"{domain} wants you to sign in with your Ethereum account:\n"
            f"{address}\n\n"
            "Sign in to aigent. This costs nothing and moves no funds.\n\n"
            f"URI: {uri}\n"
            "Version: 1\n"
            "Chain ID: 1\n"
            f"Nonce: {nonce}\n"
            f"Issued At: {_iso(now)}\n"
            f"Expiration Time: {_iso(now + CHALLENGE_SECONDS)}"
        )
        self._challenges[nonce] = Challenge(address.lower(), message, now + CHALLENGE_SECONDS)
        return message, nonce

    async def verify(self, nonce: str, signature: str) -> tuple[str, Session]:
        """Check the signature over the challenge ``nonce`` names (a nonce is good once); the
        new session's id (for the cookie) and the session."""
        from eth_account import Account
        from eth_account.messages import encode_defunct

        challenge = self._challenges.pop(nonce, None)
        if challenge is None or challenge.expires_at < time.time():
            raise AuthError(401, "unknown or expired challenge: ask for a new one")
        try:
            signer = Account.recover_message(
                encode_defunct(text=challenge.message), signature=signature
            )
        except Exception:  # malformed signatures raise a zoo of types
            raise AuthError(401, "the signature is not valid") from None
        if signer.lower() != challenge.address:
            raise AuthError(401, "the signature is not from the address that asked to sign in")
        owner = OPERATOR if challenge.address in self._admins else challenge.address
        return await self.sessions.open(owner)

    async def end(self, session: Session) -> None:
        await self.sessions.end(session)

    def caller(
        self, authorization: str | None, cookie: str | None, method: str, csrf: str | None
    ) -> Caller:
        """Who sent a request, or AuthError (401 without credentials, 403 for a failed CSRF
        check on a state-changing request)."""
        if authorization:
            scheme, _, token = authorization.partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and token:
                if self._token and hmac.compare_digest(token.encode(), self._token.encode()):
                    return Caller(OPERATOR, None)
                owner = self.keys.owner_of(token)
                if owner is not None:
                    return Caller(owner, None)
            raise AuthError(
                401,
                "the API token is not valid (revoked or expired?): make a new one on the "
                "wallet page",
            )
        session = self.sessions.get(cookie)
        if session is None:
            raise AuthError(
                401,
                "sign in first (POST /api/auth/challenge, then /api/auth/verify), or send "
                "Authorization: Bearer <AIGENT_SERVE_TOKEN>",
            )
        if method not in ("GET", "HEAD", "OPTIONS") and not (
            csrf and hmac.compare_digest(csrf.encode(), session.csrf.encode())
        ):
            raise AuthError(403, f"missing or wrong {CSRF_HEADER} header (from /api/auth/session)")
        return Caller(session.owner, session)

    def _expire(self) -> None:
        now = time.time()
        for nonce in [n for n, c in self._challenges.items() if c.expires_at < now]:
            del self._challenges[nonce]
