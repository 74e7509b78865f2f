"""``GET /metrics`` of the operator: HTTPS, and only for callers the Kubernetes API vouches for.

As controller-runtime serves an operator's metrics since v0.16 (``filters.
WithAuthenticationAndAuthorization``): the caller's bearer token is checked with a
TokenReview (``authentication.k8s.io/v1``), and the user it names with a SubjectAccessReview
(``authorization.k8s.io/v1``) for ``get`` on the non-resource URL ``/metrics``, the grant of
the chart's ``<release>-metrics-reader`` ClusterRole. No token, or one the API server does
not accept: 401. A user without the grant: 403. Otherwise the page.

A scrape every 15 s must not cost two API calls each time, so an answer is remembered for a
while (:class:`ReviewCache`): an allowed token for :data:`ALLOWED_TTL` seconds (so a revoked
grant or token still scrapes for at most that long), a refused one for :data:`DENIED_TTL` (a
new grant works within seconds). The cache is keyed by the token's SHA-256, never the token;
no token is ever logged. When the API server cannot answer (an outage, which the
operator's own metrics, ``bulkterm_kube_reachable``, are there to show), a token allowed
within the last :data:`OUTAGE_GRACE` seconds keeps scraping; anything else gets 503.

``--metrics-secure=false`` (env ``BULKTERM_METRICS_SECURE=false``) serves plain HTTP with no
check, for a laptop. The server is aiohttp on its own thread and event loop: kopf owns the
main one, and the metrics answer while kopf is busy. Its socket is bound before kopf starts,
so a port in use is a one-line error, not a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import urllib3.exceptions
from aiohttp import web
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from bulkterm.k8s.kubeapi import load_client
from bulkterm.k8s.metrics_tls import CertificateFiles, self_signed, server_context

log = logging.getLogger(__name__)

PATH = "/metrics"
VERB = "get"
#: Seconds an allowed token is trusted without asking again (four scrapes at 15 s).
ALLOWED_TTL = 60.0
#: Seconds a refused or unknown token is refused without asking again.
DENIED_TTL = 10.0
#: While the API server cannot review tokens, one allowed within this many seconds still is.
OUTAGE_GRACE = 600.0
#: Tokens remembered at most (the oldest answers go first).
CACHE_SIZE = 1024
#: (connect, read) seconds for a review: a scrape times out after 10 s by default.
REVIEW_TIMEOUT = (3.0, 5.0)
#: How often the certificate folder is looked at for a renewed certificate.
CERT_RELOAD_SECONDS = 60.0

REASONS = {401: "Unauthorized", 403: "Forbidden", 503: "Service Unavailable"}


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme in any case, as
    RFC 6750 allows), or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def cache_key(token: str) -> str:
    """What the cache keeps of a token: its SHA-256, from which the token cannot be had."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Review:
    """What the API server said of a token: whose it is and whether they may get /metrics."""

    authenticated: bool
    allowed: bool = False
    #: The user the token belongs to ("" when unauthenticated): not a secret, for logs.
    user: str = ""


def status_of(review: Review) -> int:
    """The HTTP status a review means: 401 unauthenticated, 403 not allowed, else 200."""
    if not review.authenticated:
        return 401
    return 200 if review.allowed else 403


class ReviewFailed(Exception):
    """The API server could not review a token (unreachable, or refused the review itself);
    the message holds no token."""


@dataclass
class _Answer:
    status: int
    at: float


class ReviewCache:
    """HTTP statuses by :func:`cache_key`, each fresh for a while (see the module docstring)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        allowed_ttl: float = ALLOWED_TTL,
        denied_ttl: float = DENIED_TTL,
        outage_grace: float = OUTAGE_GRACE,
        size: int = CACHE_SIZE,
    ) -> None:
        self.clock = clock
        self.allowed_ttl = allowed_ttl
        self.denied_ttl = denied_ttl
        self.outage_grace = outage_grace
        self.size = size
        self._answers: OrderedDict[str, _Answer] = OrderedDict()

    def fresh(self, key: str) -> int | None:
        """The remembered status for ``key`` if it is still fresh, else None."""
        answer = self._answers.get(key)
        if answer is None:
            return None
        ttl = self.allowed_ttl if answer.status == 200 else self.denied_ttl
        return answer.status if self.clock() - answer.at < ttl else None

    def last(self, key: str) -> int | None:
        """The last status remembered for ``key``, fresh or not."""
        answer = self._answers.get(key)
        return None if answer is None else answer.status

    def remember(self, key: str, status: int) -> None:
        self._answers[key] = _Answer(status, self.clock())
        self._answers.move_to_end(key)
        while len(self._answers) > self.size:
            self._answers.popitem(last=False)

    def during_outage(self, key: str) -> int | None:
        """200 if ``key`` was allowed within the outage grace, else None."""
        answer = self._answers.get(key)
        if answer is None or answer.status != 200:
            return None
        return 200 if self.clock() - answer.at < self.outage_grace else None


class Reviewer(Protocol):
    async def review(self, token: str) -> Review:
        """Raises :class:`ReviewFailed` when the API server cannot say."""
        ...


class KubeReviewer:
    """TokenReview, then SubjectAccessReview, with the operator's own API client (the sync
    ``kubernetes`` client, in a worker thread)."""

    def __init__(self, api_client: k8s.ApiClient) -> None:
        self._authn = k8s.AuthenticationV1Api(api_client)
        self._authz = k8s.AuthorizationV1Api(api_client)

    async def review(self, token: str) -> Review:
        return await asyncio.to_thread(self._review, token)

    def _review(self, token: str) -> Review:
        # Neither a review object nor an ApiException's text is ever logged: the TokenReview
        # (request and answer) holds the token.
        answer = _ask(
            "create tokenreviews",
            lambda: (
                self._authn.create_token_review(
                    k8s.V1TokenReview(
                        api_version="authentication.k8s.io/v1",
                        kind="TokenReview",
                        spec=k8s.V1TokenReviewSpec(token=token),
                    ),
                    _request_timeout=REVIEW_TIMEOUT,
                ).status
            ),
        )
        user = answer.user if answer is not None and answer.authenticated else None
        if user is None or not user.username:
            return Review(authenticated=False)
        decision = _ask(
            "create subjectaccessreviews",
            lambda: (
                self._authz.create_subject_access_review(
                    k8s.V1SubjectAccessReview(
                        api_version="authorization.k8s.io/v1",
                        kind="SubjectAccessReview",
                        spec=k8s.V1SubjectAccessReviewSpec(
                            user=user.username,
                            groups=user.groups,
                            uid=user.uid,
                            extra=user.extra,
                            non_resource_attributes=k8s.V1NonResourceAttributes(
                                path=PATH, verb=VERB
                            ),
                        ),
                    ),
                    _request_timeout=REVIEW_TIMEOUT,
                ).status
            ),
        )
        allowed = decision is not None and bool(decision.allowed)
        return Review(authenticated=True, allowed=allowed, user=user.username)


def _ask(what: str, call: Callable[[], Any]) -> Any:
    """One review call; :class:`ReviewFailed` (naming ``what``, never the token) if the API
    server refused it or could not be reached."""
    try:
        return call()
    except ApiException as error:
        raise ReviewFailed(_refusal(what, error)) from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise ReviewFailed(f"API server unreachable ({type(error).__name__})") from None


def _refusal(what: str, error: ApiException) -> str:
    if error.status in (401, 403):
        return (
            f"the operator may not {what} (HTTP {error.status}); the chart grants it in "
            "templates/metrics-rbac.yaml"
        )
    return f"{what}: HTTP {error.status} {error.reason or ''}".strip()


class Gate:
    """Who may read the page: the cached answer for a token, else a review of it."""

    def __init__(self, reviewer: Reviewer, cache: ReviewCache | None = None) -> None:
        self.reviewer = reviewer
        self.cache = cache or ReviewCache()

    async def status(self, authorization: str | None) -> int:
        """200, 401, 403, or 503 when the API server cannot review the token."""
        token = bearer_token(authorization)
        if token is None:
            return 401
        key = cache_key(token)
        cached = self.cache.fresh(key)
        if cached is not None:
            return cached
        try:
            review = await self.reviewer.review(token)
        except ReviewFailed as problem:
            kept = self.cache.during_outage(key)
            log.warning(
                "metrics: cannot review a scraper's token: %s%s",
                problem,
                "; it was allowed minutes ago, so it still is" if kept else "",
            )
            return kept or 503
        status = status_of(review)
        if status != 200 and self.cache.last(key) != status:
            # Once per token and answer, not once per scrape.
            why = (
                f"user {review.user} may not {VERB} {PATH}"
                if review.authenticated
                else "the API server does not accept its token"
            )
            log.warning("metrics: a scrape refused (%d %s): %s", status, REASONS[status], why)
        self.cache.remember(key, status)
        return status


def make_app(registry: CollectorRegistry, gate: Gate | None) -> web.Application:
    """``GET /metrics``: the registry's page (text or OpenMetrics, as the Accept header asks),
    behind ``gate`` if there is one."""

    async def metrics_page(request: web.Request) -> web.StreamResponse:
        if gate is not None:
            status = await gate.status(request.headers.get("Authorization"))
            if status != 200:
                headers = {"WWW-Authenticate": 'Bearer realm="metrics"'} if status == 401 else {}
                return web.Response(status=status, text=REASONS[status] + "\n", headers=headers)
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = web.Response(body=encoder(registry), headers={"Content-Type": content_type})
        response.enable_compression()
        return response

    app = web.Application()
    app.router.add_get(PATH, metrics_page)
    return app


def listen(address: str, port: int) -> socket.socket:
    """A listening socket on ``address:port``; raises ``OSError`` (in use, not on this host)."""
    infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, where = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(where)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class MetricsServer:
    """The endpoint on its own thread and event loop; :meth:`stop` for tests."""

    def __init__(
        self,
        sock: socket.socket,
        app: web.Application,
        context: ssl.SSLContext | None = None,
        certificate: CertificateFiles | None = None,
    ) -> None:
        self.sock = sock
        self.app = app
        self.context = context
        self.certificate = certificate
        host, port = sock.getsockname()[:2]
        self.address: tuple[str, int] = (host, port)
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        self._thread = threading.Thread(target=self._run, name="metrics", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.address[0]}]" if ":" in self.address[0] else self.address[0]
        scheme = "https" if self.context is not None else "http"
        return f"{scheme}://{host}:{self.address[1]}{PATH}"

    def start(self) -> MetricsServer:
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as error:  # handed to start(), which raises it in its thread
            self._error = error
            self._loop.close()
            self._started.set()
            return
        self._started.set()
        reload = None
        if self.certificate is not None:
            reload = self._loop.create_task(self._reload_certificate())
        self._loop.run_forever()
        if reload is not None:
            reload.cancel()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    async def _serve(self) -> None:
        await self._runner.setup()
        site = web.SockSite(self._runner, self.sock, ssl_context=self.context)
        await site.start()

    async def _reload_certificate(self) -> None:
        assert self.certificate is not None and self.context is not None
        while True:
            await asyncio.sleep(CERT_RELOAD_SECONDS)
            self.certificate.reload_if_changed(self.context)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


def serve(
    registry: CollectorRegistry,
    *,
    address: str,
    port: int,
    secure: bool = True,
    cert_dir: Path | None = None,
    reviewer: Reviewer | None = None,
) -> MetricsServer:
    """Start ``/metrics`` on ``address:port``: HTTPS with the certificate of ``cert_dir`` (or a
    self-signed one) and every caller reviewed by ``reviewer`` (default: the Kubernetes API,
    as the operator logs in), or, ``secure=False``, plain HTTP for anyone.

    Raises ``OSError`` when it cannot listen and
    :class:`~bulkterm.k8s.metrics_tls.CertificateProblem` for an unusable certificate.
    """
    context: ssl.SSLContext | None = None
    certificate: CertificateFiles | None = None
    gate: Gate | None = None
    if secure:
        context = server_context()
        if cert_dir is not None:
            certificate = CertificateFiles(cert_dir)
            certificate.load(context)
        else:
            self_signed(context)
        gate = Gate(reviewer or KubeReviewer(load_client()))
    sock = listen(address, port)
    try:
        return MetricsServer(sock, make_app(registry, gate), context, certificate).start()
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise
