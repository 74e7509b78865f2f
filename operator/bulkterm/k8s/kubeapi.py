"""The few Kubernetes API calls the operator makes besides kopf's own: read a Secret, write
``/status``, delete a finished CR (and, through :mod:`bulkterm.k8s.lease_store`, the runs'
Leases), and the one policy all of them follow while the API server is away.

A Secret's value leaves this module only for a BulkTermination whose author may spend it
(:mod:`bulkterm.k8s.secret_use`: the admission policy's ``use`` check, which this module reads
and caches, and the Secret's bounds): RBAC lets the operator ``get`` Secrets for every
BulkTermination, so without that check anyone allowed to create a BulkTermination could make
the operator wield any service key stored in that namespace (a confused deputy). The answer
never holds a value.

An API server that is away (connection refused or reset, a timeout, 429/5xx while it starts
or stops) is weather, not an error: :class:`ApiWeather` retries the call with a bounded backoff
until the server answers, logging one line when the outage starts and one when it ends, for
the whole process (every CR waits on the same server). Only then does the call return or raise
what the server said. Every call over one API client shares one :class:`ApiWeather`
(``KubeApi.weather``), the Lease calls included.

The sync ``kubernetes`` client runs in a worker thread; the configuration is loaded explicitly
(in-cluster, else ``KUBECONFIG``) when the operator starts, because the package reads
``KUBECONFIG`` at import time and tests point it elsewhere later.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

import urllib3.exceptions
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from bulkterm import metrics
from bulkterm.k8s.secret_bounds import SecretUse
from bulkterm.k8s.secret_use import (
    TRUST_TTL_SECONDS,
    AdmissionNames,
    AdmissionTrust,
    Requester,
    SecretProblem,
    assess,
    check_secret_use,
)
from bulkterm.spec import API_GROUP, API_VERSION, PLURAL

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Pauses between attempts while the API server is away: quick at first, then every 2 s, so
#: the call lands within about 2 s of the server's return.
OUTAGE_BACKOFF = (0.2, 0.5, 1.0, 2.0)
#: HTTP statuses of a server that is starting, stopping or overloaded (worth waiting for).
TRANSIENT_STATUSES = frozenset({0, 429, 500, 502, 503, 504})
#: (connect, read) seconds for each call: a stalled connection (a partition drops packets
#: instead of refusing them) becomes a timeout, i.e. an outage to wait out, not a hung thread.
REQUEST_TIMEOUT = (5.0, 30.0)
#: For this long after an outage, 401 and 403 are weather too: a restarted API server answers
#: before its authenticator and RBAC caches are filled, and refuses calls it will allow a
#: moment later.
WARMUP_SECONDS = 30.0


#: True while a stopped run makes its last calls (:func:`without_waiting`).
_NO_WAITING: ContextVar[bool] = ContextVar("bulkterm_kube_no_waiting", default=False)


@contextlib.contextmanager
def without_waiting() -> Iterator[None]:
    """Within: each call through an :class:`ApiWeather` is made once, never waited for (an
    outage, or a 401/403 while the server warms up, raises at once). For the last calls of a
    run that was stopped (its final status write, its Lease): SIGTERM gives the whole operator
    ``terminationGracePeriodSeconds`` (30 s by default), and the weather would wait for ever
    (an outage) or 30 s (warming up) inside a task that kopf has already cancelled once."""
    token = _NO_WAITING.set(True)
    try:
        yield
    finally:
        _NO_WAITING.reset(token)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the API server is away rather than that it refused the call."""
    if isinstance(exc, ApiException):
        return (exc.status or 0) in TRANSIENT_STATUSES
    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


#: The HTTP method of a generated client method, by its name's first word.
_METHODS = {
    "read": "GET",
    "list": "GET",
    "get": "GET",
    "create": "POST",
    "replace": "PUT",
    "patch": "PATCH",
    "delete": "DELETE",
}


def _http_method(fn: Callable[..., Any]) -> str:
    """``GET`` for ``read_namespaced_secret`` and the like: a bounded label (never the URL)."""
    return _METHODS.get(getattr(fn, "__name__", "").partition("_")[0], "other")


def _answered(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, str]:
    """``fn``'s answer and the HTTP status it came with. A generated client method has a
    ``*_with_http_info`` twin that makes the same request and returns the status too; any
    other callable (a fake in tests) is counted as a plain 200."""
    twin = getattr(
        getattr(fn, "__self__", None), f"{getattr(fn, '__name__', '')}_with_http_info", None
    )
    if twin is None:
        return fn(*args, **kwargs), "200"
    data, status, _headers = twin(*args, **kwargs)
    return data, str(status)


def _code_of(exc: BaseException) -> str:
    """The HTTP status of a refused request; ``<error>`` when there was no answer (as
    client-go's ``rest_client_requests_total`` says it)."""
    status = getattr(exc, "status", None) if isinstance(exc, ApiException) else None
    return str(status) if status else "<error>"


class ApiWeather:
    """Waits out outages of the API server for every call of the process that goes through it.

    ``give_up_after`` bounds the wait (None: as long as it takes; the run's own cancellation
    still ends it)."""

    def __init__(
        self,
        *,
        backoff: Sequence[float] = OUTAGE_BACKOFF,
        give_up_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backoff = tuple(backoff)
        self._give_up_after = give_up_after
        self._clock = clock
        #: When the current outage was first seen (None: the server answers).
        self.outage_since: float | None = None
        #: When the last outage ended (the server may still be warming up its caches).
        self.back_at = float("-inf")
        self.outages = 0

    def _warming_up(self, exc: BaseException) -> bool:
        """A 401/403 within :data:`WARMUP_SECONDS` of an outage (the server answers again, so
        the outage is over): waited for, but not a new outage."""
        if not (isinstance(exc, ApiException) and exc.status in (401, 403)):
            return False
        self._back()
        return self._clock() - self.back_at < WARMUP_SECONDS

    async def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in a worker thread, retried while the API server is away."""
        attempt = 0
        started = self._clock()
        method = _http_method(fn)
        while True:
            try:
                answer: tuple[T, str] = await asyncio.to_thread(_answered, fn, *args, **kwargs)
                result, code = answer
            except Exception as exc:
                metrics.KUBE_REQUESTS.labels(method, _code_of(exc)).inc()
                outage = is_outage(exc)
                if not outage and not self._warming_up(exc):
                    self._back()
                    raise
                if outage:
                    self._away(what, exc)
                if _NO_WAITING.get() or (
                    self._give_up_after is not None
                    and self._clock() - started >= self._give_up_after
                ):
                    raise
                metrics.KUBE_STALLED_CALLS.labels(what).inc()
                await asyncio.sleep(self._backoff[min(attempt, len(self._backoff) - 1)])
                attempt += 1
                continue
            metrics.KUBE_REQUESTS.labels(method, code).inc()
            self._back()
            return result

    def _away(self, what: str, exc: BaseException) -> None:
        if self.outage_since is not None:
            return
        self.outage_since = self._clock()
        self.outages += 1
        metrics.KUBE_OUTAGES.inc()
        metrics.KUBE_REACHABLE.set(0)
        code = getattr(exc, "status", None)
        log.warning(
            "Kubernetes API unreachable (%s: %s%s); waiting for it, retrying every %.0f s at most",
            what,
            type(exc).__name__,
            f" HTTP {code}" if code else "",
            max(self._backoff),
        )

    def _back(self) -> None:
        if self.outage_since is None:
            return
        away = self._clock() - self.outage_since
        self.outage_since = None
        self.back_at = self._clock()
        metrics.KUBE_REACHABLE.set(1)
        metrics.KUBE_OUTAGE_SECONDS.inc(away)
        log.warning("Kubernetes API reachable again after %.1f s", away)


#: kopf's pauses between attempts of one request (a watch, a list, an Event): capped at 2 s
#: like :data:`OUTAGE_BACKOFF`, so kopf's watches are back within about 2 s of the API server
#: (a 10 s cap left them up to 10 s behind it, and with them every new, changed or deleted
#: BulkTermination). Not a hot loop: a few watches, one attempt each per 2 s, and logged once
#: (:class:`KopfRetryLogFilter`).
KOPF_BACKOFF = (0.5, 1.0, 2.0)


class KopfBackoffs:
    """kopf's ``error_backoffs`` that ride out an outage of up to ``tolerance`` seconds.

    kopf retries a failed request once per backoff it is given and then escalates; its default
    gives up after about 50 s, and a watch that gives up crashes the operator. This iterable
    has no length (kopf then numbers attempts without a total) and yields 0.5, 1 and then 2 s
    (:data:`KOPF_BACKOFF`) until ``tolerance`` is used up; each request iterates it afresh."""

    def __init__(self, tolerance: float, *, steps: Sequence[float] = KOPF_BACKOFF) -> None:
        self.tolerance = tolerance
        self.steps = tuple(steps)

    def __iter__(self) -> Iterator[float]:
        spent = 0.0
        index = 0
        while spent < self.tolerance:
            step = self.steps[min(index, len(self.steps) - 1)]
            yield step
            spent += step
            index += 1


class KopfRetryLogFilter(logging.Filter):
    """Keeps the first "Request attempt #1 failed; will retry" line of a kopf request and drops
    the repeats (one per backoff, for every watch, during an outage): the outage is already
    reported once by :class:`ApiWeather` and by that first line; escalations still show."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("Request attempt #") or "will retry" not in message:
            return True
        return message.startswith("Request attempt #1 ") or message.startswith(
            "Request attempt #1/"
        )


class KubeApi:
    """Thin async wrapper over the sync client for the calls the handlers need."""

    def __init__(
        self,
        api_client: k8s.ApiClient | None = None,
        weather: ApiWeather | None = None,
        *,
        admission: AdmissionNames | None = None,
        allow_name_grants: bool = False,
    ) -> None:
        self._client = api_client or load_client()
        #: The admission policy and binding that vouch for who may use a Secret, and whether a
        #: Secret's name grant counts where they cannot (:mod:`bulkterm.k8s.secret_use`).
        self.admission = admission or AdmissionNames()
        self.allow_name_grants = allow_name_grants
        self._trust: tuple[float, AdmissionTrust] | None = None
        #: The client and its outage policy, for the Lease calls of ``bulkterm.k8s.lease_store``
        #: (one policy for every call over one connection: an outage is one outage, one log
        #: line, one warm-up after it).
        self.api_client = self._client
        self.weather = weather or ApiWeather()
        self._core = k8s.CoreV1Api(self._client)
        self._custom = k8s.CustomObjectsApi(self._client)
        self._admission_api = k8s.AdmissionregistrationV1Api(self._client)

    async def read_secret_value(
        self,
        namespace: str,
        name: str,
        key: str,
        *,
        requester: Requester | None = None,
        use: SecretUse | None = None,
    ) -> bytes:
        """The bytes under ``key`` of Secret ``namespace/name``, if ``requester``'s author may
        use the Secret and ``use`` is within its bounds (:func:`check_secret_use`; checked
        before the value is even looked up); never logs or returns metadata."""
        try:
            secret = await self.weather.call(
                "read Secret",
                self._core.read_namespaced_secret,
                name,
                namespace,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as exc:
            if exc.status == 404:
                raise SecretProblem(
                    "SecretNotFound", f"Secret {namespace}/{name} does not exist"
                ) from None
            if exc.status == 403:
                raise SecretProblem(
                    "SecretForbidden", f"the operator may not read Secret {namespace}/{name}"
                ) from None
            raise SecretProblem(
                "SecretUnreadable", f"reading Secret {namespace}/{name} failed (HTTP {exc.status})"
            ) from None
        annotations = secret.metadata.annotations if secret.metadata else None
        check_secret_use(
            annotations,
            namespace,
            name,
            requester,
            use,
            trust=await self.admission_trust(),
            allow_name_grants=self.allow_name_grants,
        )
        data = secret.data or {}
        if key not in data:
            string_data = secret.string_data or {}
            if key in string_data:
                return str(string_data[key]).encode()
            raise SecretProblem(
                "SecretKeyNotFound", f"Secret {namespace}/{name} has no key {key!r}"
            )
        try:
            return base64.b64decode(data[key], validate=True)
        except (ValueError, TypeError):
            raise SecretProblem(
                "InvalidServiceKey", f"Secret {namespace}/{name} key {key!r} is not valid base64"
            ) from None

    async def admission_trust(self) -> AdmissionTrust:
        """What the admission policy and binding vouch for now (:func:`assess`), read at most
        once per :data:`TRUST_TTL_SECONDS`."""
        now = time.monotonic()
        if self._trust is not None and now - self._trust[0] < TRUST_TTL_SECONDS:
            return self._trust[1]
        try:
            policy = await self._read_admission(
                "read ValidatingAdmissionPolicy",
                self._admission_api.read_validating_admission_policy,
                self.admission.policy,
            )
            binding = await self._read_admission(
                "read ValidatingAdmissionPolicyBinding",
                self._admission_api.read_validating_admission_policy_binding,
                self.admission.binding,
            )
            trust = assess(policy, binding, self.admission)
        except ApiException as exc:
            what = "may not read" if exc.status == 403 else f"failed (HTTP {exc.status}) to read"
            trust = AdmissionTrust.untrusted(
                f"the operator {what} ValidatingAdmissionPolicy {self.admission.policy} and its "
                f"binding {self.admission.binding} (RBAC: get validatingadmissionpolicies and "
                "validatingadmissionpolicybindings; the chart grants it)"
            )
        self._trust = (now, trust)
        metrics.ADMISSION_VERIFIED.set(1 if trust.since is not None else 0)
        return trust

    async def _read_admission(
        self, what: str, read: Callable[..., Any], name: str
    ) -> dict[str, Any] | None:
        try:
            found = await self.weather.call(what, read, name, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(self._client.sanitize_for_serialization(found))  # type: ignore[no-untyped-call]

    async def resource_served(self) -> bool:
        """Whether discovery lists BulkTerminations (discovery needs no RBAC grant)."""

        def discover() -> bool:
            try:
                found = self._custom.get_api_resources(API_GROUP, API_VERSION)
            except ApiException as exc:
                if exc.status == 404:
                    return False
                raise
            return any(r.name == PLURAL for r in found.resources or [])

        return await asyncio.to_thread(discover)

    async def patch_status(
        self,
        namespace: str,
        name: str,
        status: dict[str, Any],
        *,
        resource_version: str | None = None,
    ) -> int | None:
        """Merge ``status`` into the CR's status; returns the CR's ``metadata.generation`` as
        the API server answered it: the generation of the spec when this write landed.

        ``resource_version``: write only if the CR is still at that version (else HTTP 409),
        for a write decided on what the CR was at that version."""
        body: dict[str, Any] = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        answer = await self.weather.call(
            "write status",
            self._custom.patch_namespaced_custom_object_status,
            API_GROUP,
            API_VERSION,
            namespace,
            PLURAL,
            name,
            body,
            _request_timeout=REQUEST_TIMEOUT,
        )
        metadata = answer.get("metadata") if isinstance(answer, dict) else None
        generation = metadata.get("generation") if isinstance(metadata, dict) else None
        return generation if isinstance(generation, int) else None

    async def delete(self, namespace: str, name: str) -> None:
        try:
            await self.weather.call(
                "delete",
                self._custom.delete_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                namespace,
                PLURAL,
                name,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise


def load_client() -> k8s.ApiClient:
    configuration = k8s.Configuration()
    # No retries inside urllib3: ApiWeather is the one retry policy while the API server is
    # away (with backoff, one line when an outage starts and one when it ends). urllib3's
    # own default retried every refused connection 3 times at once, logging a "Retrying"
    # warning each time (about 490 in one outage), and multiplied each attempt's timeout.
    # A failed attempt still raises MaxRetryError, as before, for ApiWeather to judge.
    configuration.retries = 0
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
        )
    return k8s.ApiClient(configuration)
