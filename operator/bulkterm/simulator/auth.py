"""The OAuth2 client-credentials endpoint and bearer-token checks (XSUAA's behaviour).

Tokens are JWT-shaped (header.payload.signature, base64url) because some clients peek at
``exp``; they are not signed and must never be trusted as JWTs. Expiry follows the
simulator's clock, so a test can expire a token by advancing a :class:`SimClock`.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum


class TokenCheck(Enum):
    VALID = "valid"
    MISSING = "missing"
    INVALID = "invalid"
    EXPIRED = "expired"


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    expires_in: int


class TokenError(Exception):
    """An OAuth2 error answer: ``{"error": <error>, "error_description": ...}``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


def _b64(data: Mapping[str, object]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` from an ``Authorization: Basic ...`` header."""
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, client_secret = decoded.partition(":")
    return (client_id, client_secret) if sep else None


class TokenIssuer:
    """Issues and checks bearer tokens for one client id/secret pair."""

    #: Expired tokens are forgotten once this many are stored (SAP's SDK takes a new token
    #: per call when ``expires_in`` <= 3600, so long benchmarks issue many).
    _PURGE_ABOVE = 1000

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        expires_in: int,
        clock: Callable[[], float],
        wall: Callable[[float], float],
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self.expires_in = expires_in
        self._clock = clock
        self._wall = wall
        self._tokens: dict[str, float] = {}

    def grant(self, form: Mapping[str, str], authorization: str | None, issuer: str) -> TokenGrant:
        """Answer a token request: credentials in the form body or as HTTP Basic."""
        grant_type = form.get("grant_type")
        if grant_type != "client_credentials":
            raise TokenError(
                400,
                "unsupported_grant_type",
                "grant_type must be client_credentials",
            )
        basic = basic_credentials(authorization)
        client_id, client_secret = basic or (form.get("client_id"), form.get("client_secret"))
        if client_id != self._client_id or not secrets.compare_digest(
            (client_secret or "").encode(), self._client_secret.encode()
        ):
            raise TokenError(401, "invalid_client", "Bad credentials")
        return TokenGrant(self.issue(issuer), self.expires_in)

    def issue(self, issuer: str = "simulator") -> str:
        """A new token valid for ``expires_in`` seconds of the clock."""
        now = self._clock()
        if len(self._tokens) > self._PURGE_ABOVE:
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        issued = int(self._wall(now))
        header = {"alg": "RS256", "typ": "JWT", "kid": "simulator"}
        payload = {
            "iss": issuer,
            "client_id": self._client_id,
            "cid": self._client_id,
            "zid": "sim",
            "grant_type": "client_credentials",
            "iat": issued,
            "exp": issued + self.expires_in,
            "jti": secrets.token_hex(16),
        }
        token = f"{_b64(header)}.{_b64(payload)}.{secrets.token_urlsafe(32)}"
        self._tokens[token] = now + self.expires_in
        return token

    def check(self, authorization: str | None) -> TokenCheck:
        if not authorization:
            return TokenCheck.MISSING
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return TokenCheck.INVALID
        expiry = self._tokens.get(token.strip())
        if expiry is None:
            return TokenCheck.INVALID
        if self._clock() >= expiry:
            return TokenCheck.EXPIRED
        return TokenCheck.VALID

    def revoke_all(self) -> None:
        """Every issued token becomes invalid (clients must fetch a new one)."""
        self._tokens.clear()
