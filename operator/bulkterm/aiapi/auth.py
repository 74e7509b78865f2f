"""OAuth2 client credentials with a shared token cache.

SAP's Python client refetches a token on every request when tokens live at most an hour (as
XSUAA's do); at thousands of calls per run that doubles the traffic and hammers XSUAA. Here one token serves
every concurrent caller for its validity period: it is refreshed shortly before expiry, and once
when the API answers 401 (revoked or clock skew). Concurrent callers wait on one refresh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.errors import AuthError, TransientError, UnreachableError

#: Refresh when less than this share of the token's lifetime is left…
REFRESH_FRACTION = 0.1
#: …but never later than this many seconds before expiry.
REFRESH_MARGIN_CAP = 300.0


class TokenProvider:
    """Fetches and caches bearer tokens for one service key."""

    def __init__(
        self,
        key: ServiceKey,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_fetch: Callable[[], None] | None = None,
        owns_http: bool = False,
    ) -> None:
        self._key = key
        self._http = http
        #: Whether :meth:`aclose` closes ``http`` (a cache of its own, not a client's).
        self._owns_http = owns_http
        self._clock = clock
        self._on_fetch = on_fetch
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self.fetches = 0

    def __repr__(self) -> str:
        """Which key and whether a token is cached, never the token or the key's secret: a
        provider ends up in tracebacks and debug dumps of the clients that hold it."""
        cached = "cached" if self._token is not None else "none"
        return (
            f"TokenProvider(client_id={self._key.client_id!r}, "
            f"token_url={self._key.token_url!r}, token={cached}, fetches={self.fetches})"
        )

    async def token(self) -> str:
        """A valid bearer token; fetched at most once per validity period across callers."""
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        async with self._lock:
            if self._token is not None and self._clock() < self._refresh_at:
                return self._token
            return await self._fetch()

    async def aclose(self) -> None:
        """Close the connection to the token endpoint if this cache owns it (see
        :func:`~bulkterm.aiapi.transport.token_cache`); a client's own cache closes with the
        client."""
        if self._owns_http:
            await self._http.aclose()

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (after a 401) unless a newer one has already replaced it."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> str:
        form = {"grant_type": "client_credentials", "client_id": self._key.client_id}
        if self._key.client_secret is not None:
            form["client_secret"] = self._key.client_secret.get_secret_value()
        self.fetches += 1
        if self._on_fetch is not None:
            self._on_fetch()
        try:
            response = await self._http.post(
                self._key.token_url, data=form, headers={"Accept": "application/json"}
            )
        except httpx.TimeoutException:
            raise TransientError("token endpoint timed out") from None
        except httpx.TransportError as exc:
            raise UnreachableError(
                f"token endpoint unreachable ({type(exc).__name__})", sent=False
            ) from None
        if response.status_code in (429,) or response.status_code >= 500:
            raise TransientError(
                f"token endpoint answered HTTP {response.status_code}",
                status_code=response.status_code,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code != 200:
            # OAuth error bodies are {"error": "invalid_client", ...}: the code is safe to show.
            code = _oauth_error_code(response)
            raise AuthError(
                f"token endpoint refused the client credentials (HTTP {response.status_code}"
                + (f", {code}" if code else "")
                + ")",
                status_code=response.status_code,
                code=code,
            )
        try:
            body = response.json()
            token = str(body["access_token"])
            expires_in = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise AuthError("token endpoint answered without an access_token") from None
        now = self._clock()
        margin = min(REFRESH_MARGIN_CAP, expires_in * REFRESH_FRACTION)
        self._token = token
        self._refresh_at = now + max(0.0, expires_in - margin)
        return token


def _oauth_error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) and code.replace("_", "").isalnum() else None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds; HTTP dates are rare here → None)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds)
