"""One AI API endpoint over HTTP: one request in, a 2xx response or a typed error out.

Owns the ``httpx`` client (TLS, with the client certificate of x509 service keys), the
bearer token (a 401 invalidates it and the request is sent once more with a fresh one), the
client-side pacing, the call counters and the metrics. It does not retry: that is
:mod:`bulkterm.aiapi.retry`'s job, and it needs to know what a failure says about a write:

* no token could be obtained, or no connection made: the request never left
  (``TransientError(sent=False)``, so ``not_executed``);
* 429 or 503: the server refused it without acting (``not_executed``);
* 500, 502, 504, a read timeout, a dropped connection: the outcome is unknown.

TLS is always verified: against ``ClientSettings.ca_bundle`` when set (a corporate proxy, a
private CA), else the public CAs; nothing turns it off. A certificate that does not verify is
not a connection failure worth retrying but a :class:`TlsVerificationError` (a
:class:`~bulkterm.aiapi.errors.ConfigurationError`: the run stops, the resource stalls, a
human fixes the bundle or the URL), raised for the token endpoint and the AI API alike.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import ssl
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from bulkterm import metrics
from bulkterm.aiapi.auth import TokenProvider
from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.errors import (
    AiApiError,
    AuthError,
    ConfigurationError,
    CredentialsError,
    NotFoundError,
    TransientError,
    UnreachableError,
)
from bulkterm.aiapi.ratelimit import RateLimiter
from bulkterm.aiapi.settings import ClientSettings, load_ca_bundle
from bulkterm.aiapi.wire import error_for

CLIENT_TYPE = "bulk-termination-operator"


class Transport:
    """HTTP to one AI API endpoint with one service key."""

    def __init__(
        self,
        key: ServiceKey,
        settings: ClientSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        tokens: TokenProvider | None = None,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        #: Requests that left this client, keyed by label (``"stop deployments"``), and
        #: ``"token"`` for token fetches.
        self.calls: Counter[str] = Counter()
        self.settings = settings
        #: Paces requests; may be shared by the clients of one tenant.
        self.limiter = limiter or RateLimiter(
            settings.concurrency, settings.rate_limit_per_second, sleep=sleep
        )
        self._http = _http_client(key, settings, transport)
        #: Fetches and caches bearer tokens; may be shared by clients with the same key.
        self.tokens = tokens or TokenProvider(key, self._http, on_fetch=self._count_token)

    @property
    def token_fetches(self) -> int:
        return self.tokens.fetches

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        label: str,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> httpx.Response:
        """Send once (once more after a 401, with a fresh token): the 2xx response, or raise
        the typed error of :func:`bulkterm.aiapi.wire.error_for`."""
        refreshed_after_401 = False
        while True:
            try:
                return await self._send(label, method, url, params, headers or {}, json_body)
            except _Unauthorized as exc:
                if refreshed_after_401:
                    raise AuthError(
                        f"{label}: HTTP 401 even with a fresh token", status_code=401
                    ) from None
                refreshed_after_401 = True
                self.tokens.invalidate(exc.token)

    async def _send(
        self,
        label: str,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        extra_headers: Mapping[str, str],
        json_body: Any,
    ) -> httpx.Response:
        async with self.limiter:
            token = await self._token(label)
            headers = {"Authorization": f"Bearer {token}", **extra_headers}
            content = None
            if json_body is not None:
                content = json.dumps(json_body).encode()
                headers.setdefault("Content-Type", "application/json")
            self.calls[label] += 1
            started = time.monotonic()
            try:
                response = await self._http.request(
                    method, url, params=params, content=content, headers=headers
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                self._observe(label, "transient", started)
                raise UnreachableError(
                    f"{label}: not sent, cannot connect to {_host(url)} ({type(exc).__name__})",
                    sent=False,
                ) from None
            except httpx.TimeoutException as exc:
                self._observe(label, "transient", started)
                raise TransientError(f"{label}: timed out ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                self._observe(label, "transient", started)
                raise TransientError(f"{label}: connection failed ({type(exc).__name__})") from None
        if response.is_success:
            self._observe(label, "ok", started)
            return response
        if response.status_code == 401:
            self._observe(label, "auth", started)
            raise _Unauthorized(token)
        error = error_for(label, response, url, secrets=(token,))
        self._observe(label, _outcome(error), started)
        if isinstance(error, TransientError) and error.retry_after:
            # The server's word holds for every client of the tenant (the limiter is shared).
            self.limiter.hold(min(error.retry_after, self.settings.retry_after_cap_seconds))
        raise error

    async def _token(self, label: str) -> str:
        """A bearer token. Failing to get one means the request was never sent."""
        try:
            return await self.tokens.token()
        except TransientError as exc:
            raise TransientError(
                f"{label}: not sent, no token: {exc.message}",
                sent=False,
                retry_after=exc.retry_after,
                status_code=exc.status_code,
            ) from None

    def _count_token(self) -> None:
        self.calls["token"] += 1
        metrics.TOKEN_REFRESHES.inc()

    @staticmethod
    def _observe(label: str, outcome: str, started: float) -> None:
        endpoint = metrics.endpoint_label(label)
        metrics.AIAPI_CALLS.labels(endpoint, outcome).inc()
        metrics.AIAPI_LATENCY.labels(endpoint).observe(time.monotonic() - started)


def token_cache(
    key: ServiceKey,
    settings: ClientSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> TokenProvider:
    """A token cache for several clients of one service key to share (their ``tokens=``),
    with a connection of its own to the token endpoint, made as a client makes its own: no
    client needs to exist only to hold it. :meth:`TokenProvider.aclose` closes it."""
    return TokenProvider(
        key,
        _http_client(key, settings, transport),
        on_fetch=metrics.TOKEN_REFRESHES.inc,
        owns_http=True,
    )


def _http_client(
    key: ServiceKey, settings: ClientSettings, transport: httpx.AsyncBaseTransport | None
) -> _VerifyingClient:
    """The HTTP client of one endpoint and key: TLS verified (with the key's client
    certificate), the settings' timeouts and connection cap, the AI API's headers."""
    return _VerifyingClient(
        settings.ca_bundle,
        timeout=httpx.Timeout(settings.timeout_seconds, connect=settings.connect_timeout_seconds),
        transport=transport,
        verify=tls_verify(key, settings.ca_bundle),
        headers={"AI-Client-Type": CLIENT_TYPE, "Accept": "application/json"},
        limits=httpx.Limits(max_connections=settings.concurrency),
    )


def _host(url: str) -> str:
    """The URL's scheme, host and port: what names the endpoint, never a credential."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


def _outcome(error: AiApiError) -> str:
    """The metrics' outcome label (a fixed vocabulary, see ``bulkterm.metrics``)."""
    if isinstance(error, TransientError):
        return "transient"
    if isinstance(error, AuthError):
        return "auth"
    if isinstance(error, NotFoundError):
        return "not_found"
    return "rejected"


class _Unauthorized(Exception):
    """Internal: a 401 with this token; :meth:`Transport.request` refreshes once and repeats."""

    def __init__(self, token: str) -> None:
        super().__init__("HTTP 401")
        self.token = token


class TlsVerificationError(ConfigurationError):
    """The server's certificate did not verify (unknown CA, wrong host name, expired): the
    request was not sent. Retrying cannot help; a CA bundle or the service key's URL must."""

    reason = "TLSVerificationFailed"


class _VerifyingClient(httpx.AsyncClient):
    """httpx's client, raising :class:`TlsVerificationError` for a certificate that does not
    verify, where httpx raises a plain ``ConnectError`` that the token cache and the retry
    layer would take for a network blip and retry until the deadline.

    ``send`` is where every request passes (``request``, ``post``, the token fetch of
    :mod:`bulkterm.aiapi.auth`, proxies and mounts alike).
    """

    def __init__(self, ca_bundle: Path | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ca_bundle = ca_bundle

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        try:
            return await super().send(request, **kwargs)
        except httpx.ConnectError as exc:
            failure = _certificate_failure(exc)
            if failure is None:
                raise
            raise TlsVerificationError(
                _untrusted_message(request.url, failure, self._ca_bundle)
            ) from None


def _certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error behind an httpx error, if that is what it was."""
    seen: BaseException | None = exc
    for _ in range(10):  # httpx → httpcore → ssl; bounded against a cycle
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _untrusted_message(
    url: httpx.URL, failure: ssl.SSLCertVerificationError, ca_bundle: Path | None
) -> str:
    """Which server, what OpenSSL said, what to do; the origin only (no path, no query)."""
    origin = f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"
    said = failure.verify_message or failure.reason or "certificate verify failed"
    if ca_bundle is not None:
        advice = f"no CA certificate in the CA bundle {ca_bundle} vouches for it"
    else:
        advice = (
            "it is not signed by a public CA; if a TLS-inspecting proxy or a private CA signs "
            "it, give that CA's certificate with --ca-bundle (BULKTERM_CA_BUNDLE)"
        )
    return f"TLS: the certificate of {origin} did not verify ({said}): {advice}"


@functools.lru_cache(maxsize=8)
def _trust(ca_bundle: Path | None, _version: int | None) -> ssl.SSLContext:
    """The SSL context of clients without a client certificate, made once per CA bundle (and
    version of its file) and shared: loading the CAs is slow, and httpx would otherwise load
    them again for every client, i.e. for every BulkTermination that starts."""
    if ca_bundle is not None:
        return load_ca_bundle(ca_bundle)
    return httpx.create_ssl_context()  # what httpx would use: the public CAs (certifi)


def _trusted(ca_bundle: Path | None) -> ssl.SSLContext:
    if ca_bundle is None:
        return _trust(None, None)
    try:
        version = ca_bundle.stat().st_mtime_ns
    except OSError:
        return load_ca_bundle(ca_bundle)  # says clearly what is wrong with the file
    return _trust(ca_bundle, version)


def tls_verify(key: ServiceKey, ca_bundle: Path | None = None) -> ssl.SSLContext | bool:
    """``verify`` for httpx: an SSL context trusting the public CAs (certifi), or one trusting
    ``ca_bundle`` (:func:`~bulkterm.aiapi.settings.load_ca_bundle`), with the client
    certificate of x509 keys loaded. Never ``False``: verification cannot be turned off.

    ``ssl`` can only load PEM from files, so the PEMs are written to a private temporary
    directory and removed as soon as they are loaded.
    """
    client_certificate = key.certificate is not None and key.private_key is not None
    if not client_certificate:
        return _trusted(ca_bundle)
    context = load_ca_bundle(ca_bundle) if ca_bundle is not None else ssl.create_default_context()
    if key.certificate is None or key.private_key is None:
        return context
    with tempfile.TemporaryDirectory(prefix="bulkterm-") as tmp:
        cert = Path(tmp) / "cert.pem"
        pkey = Path(tmp) / "key.pem"
        for path, secret in ((cert, key.certificate), (pkey, key.private_key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secret.get_secret_value())
        try:
            context.load_cert_chain(cert, pkey)
        except (ssl.SSLError, ValueError):
            raise CredentialsError(
                "service key: 'certificate' and 'key' are not a valid PEM pair"
            ) from None
    return context
