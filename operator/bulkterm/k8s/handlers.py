"""kopf handlers: the only module that imports kopf. Each handler adapts; none decides.

* ``reconcile`` — a daemon per unfinished BulkTermination (``when`` not terminal). kopf starts
  it for new CRs and again for every unfinished CR when the operator restarts (resume), and
  stops it when the CR is deleted; the :class:`Reconciler` does the work.
* ``expire`` — a daemon per finished CR with a TTL: sleeps until the TTL is due, then deletes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from bulkterm import metrics
from bulkterm.k8s.config import OperatorConfig
from bulkterm.k8s.kubeapi import KopfBackoffs, KopfRetryLogFilter
from bulkterm.k8s.leases import KubeLeaseStore, Owner, RunLease, sweep_forever
from bulkterm.k8s.reconciler import CrRef, Reconciler, finished_at, is_terminal
from bulkterm.k8s.replica import follow_peering
from bulkterm.k8s.secret_use import created_at
from bulkterm.k8s.state import OperatorState
from bulkterm.k8s.status import acknowledgement, ignored_message, unacknowledged
from bulkterm.spec import API_GROUP, API_VERSION, PLURAL

log = logging.getLogger(__name__)
registry = kopf.OperatorRegistry()
#: kopf's finalizer on every unfinished BulkTermination (see ``configure``).
FINALIZER = f"{API_GROUP}/finalizer"
#: How long a new run waits for kopf's finalizer before its first status write.
FINALIZER_WAIT_SECONDS = 10.0


class KopfEvents:
    """Kubernetes Events on the CR, posted through kopf (never with secret content)."""

    def __init__(self, body: kopf.Body) -> None:
        self._body = body

    def normal(self, reason: str, message: str) -> None:
        kopf.event(self._body, type="Normal", reason=reason, message=message[:1024])

    def warning(self, reason: str, message: str) -> None:
        kopf.event(self._body, type="Warning", reason=reason, message=message[:1024])


@kopf.on.login(registry=registry)
async def login(memo: OperatorState, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account or ``KUBECONFIG``, via the kubernetes client (as kopf's
    default registry would do; our own registry starts without fallbacks).

    kopf logs in again when the API server answers 401 (a revoked or expired token, a
    deleted ServiceAccount). The same credentials once more would make kopf fail every request
    waiting for them, each with a traceback, and end the operator after waiting for its runs.
    Instead: one line, and the operator stops as on SIGTERM (exit status 1); its restart loads
    the credentials afresh. kopf's requests wait meanwhile; the stop cancels them, and this."""
    state = memo.login
    info = await asyncio.to_thread(lambda: kopf.login_via_client(**kwargs))
    if info is None or info != state.credentials or state.refused is None:
        state.credentials = info
        return info
    if not state.refused:
        state.refused = True
        log.error(
            "the Kubernetes API refused the operator's credentials (HTTP 401: a revoked or "
            "expired token, or a deleted ServiceAccount) and there are no others; stopping"
        )
        # kopf's own stop (a stop flag would leave its waiter behind: 5 s more at the exit).
        os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.Event().wait()
    return None  # never reached: the stop cancels the wait


@kopf.on.startup(registry=registry)
def configure(settings: kopf.OperatorSettings, memo: OperatorState, **_: Any) -> None:
    # Our own prefix for kopf's bookkeeping, so `status` belongs entirely to the API.
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    config = memo.config
    # Events come from explicit calls only; log lines never become Events.
    settings.posting.level = logging.CRITICAL
    settings.watching.server_timeout = 300
    # An API server that is away is waited for (kopf's default gives up after ~50 s, and a
    # watch that gives up ends the operator); the same for the Events kopf posts for us.
    backoffs = KopfBackoffs(config.kube_outage_tolerance_seconds)
    settings.networking.error_backoffs = backoffs
    settings.posting.default_backoffs = backoffs
    # Peering (only used with --peering): a short lease so a standby takes over within about
    # `peering_lifetime` s of the active replica's death; keep-alives are not logged.
    settings.peering.lifetime = config.peering_lifetime
    settings.peering.stealth = True
    if config.namespaces:
        # Exact namespace names (OperatorConfig refuses patterns): kopf has nothing to match,
        # so it must not list namespaces cluster-wide. Namespaced RBAC (the chart with
        # watchNamespaces) forbids that, and kopf retries the 403 for about 50 s before it
        # falls back to the names it was given, delaying every first status. Resources
        # are then discovered once at start-up instead of by watching CRDs, which namespaced
        # RBAC does not allow either: `check_crd_served` makes a missing CRD a crash (and a
        # restart) rather than an operator that silently serves nothing.
        settings.scanning.disabled = True


@kopf.on.startup(registry=registry)
def connect(memo: OperatorState, **_: Any) -> None:
    """The process-wide clients, before kopf copies the memo for any resource."""
    memo.start()


@kopf.on.startup(registry=registry)
async def sweep_leases(memo: OperatorState, **_: Any) -> None:
    """Say where the runs' Leases live, and sweep away those that crashes leave there
    (``bulkterm.k8s.leases.sweep_leases``) until the operator stops (async: the task runs
    on kopf's loop, not in the thread of a sync handler)."""
    leases = memo.leases
    assert leases is not None  # ``connect`` ran first
    log.info("the runs' Leases are kept in namespace %s (from %s)", leases.name, leases.source)
    api = memo.kube
    memo.lease_sweeper = asyncio.create_task(
        sweep_forever(KubeLeaseStore(api.api_client, weather=api.weather), leases.name),
        name="lease sweep",
    )


@kopf.on.cleanup(registry=registry)
async def stop_sweeping_leases(memo: OperatorState, **_: Any) -> None:
    if memo.lease_sweeper is not None:
        memo.lease_sweeper.cancel()
        await asyncio.gather(memo.lease_sweeper, return_exceptions=True)


@kopf.on.startup(registry=registry)
async def check_secret_use(logger: kopf.Logger, memo: OperatorState, **_: Any) -> None:
    """Say at start-up whether Secret use can be verified (each run checks again before it
    reads its Secret, and stalls with ``SecretUseUnverified`` when it cannot)."""
    trust = await memo.kube.admission_trust()
    admission = memo.kube.admission
    if trust.since is not None:
        logger.info(
            "Secret use is checked at admission by ValidatingAdmissionPolicy %s (binding %s)",
            admission.policy,
            admission.binding,
        )
    elif memo.config.allow_name_grants:
        logger.warning(
            "Secret use cannot be verified by identity (%s): only Secrets that grant their use "
            "to a BulkTermination by name (allowNameGrants) will be used",
            trust.problem,
        )
    else:
        logger.warning(
            "Secret use cannot be verified (%s): every BulkTermination stalls with "
            "SecretUseUnverified until it can",
            trust.problem,
        )


@kopf.on.startup(registry=registry)
async def check_crd_served(logger: kopf.Logger, memo: OperatorState, **_: Any) -> None:
    """Refuse to run without the BulkTermination resource (see ``configure``)."""
    if not memo.config.namespaces:
        return  # cluster-wide: kopf watches CRDs and picks the resource up when it appears
    served = await memo.kube.resource_served()
    if not served:
        raise kopf.PermanentError(
            f"the API server does not serve {PLURAL}.{API_GROUP}/{API_VERSION}: install the "
            "CRD first (crds/bulktermination.yaml, or the Helm chart), then restart the operator"
        )
    namespaces = ", ".join(memo.config.namespaces)
    logger.info("watching %s.%s in namespaces %s", PLURAL, API_GROUP, namespaces)


def _unfinished(status: kopf.Status, **_: Any) -> bool:
    return not is_terminal(dict(status))


def _ttl(spec: kopf.Spec | dict[str, Any], config: OperatorConfig) -> int | None:
    value = spec.get("ttlSecondsAfterFinished")
    if isinstance(value, int) and value >= 0:
        return value
    return config.default_ttl_seconds


def _finished_with_ttl(spec: kopf.Spec, status: kopf.Status, memo: OperatorState, **_: Any) -> bool:
    return is_terminal(dict(status)) and _ttl(spec, memo.config) is not None


def _finished_unacknowledged(status: kopf.Status, meta: kopf.Meta, **_: Any) -> bool:
    return unacknowledged(dict(status), int(meta.get("generation") or 1))


@kopf.timer(
    API_GROUP,
    API_VERSION,
    PLURAL,
    id="acknowledge",
    when=_finished_unacknowledged,
    interval=1.0,
    registry=registry,
)
@metrics.measured("acknowledge")
async def acknowledge(
    body: kopf.Body,
    status: kopf.Status,
    meta: kopf.Meta,
    name: str,
    namespace: str | None,
    memo: OperatorState,
    **_: Any,
) -> None:
    """A finished run acknowledges a spec change without acting on it, so that Flux, Argo CD
    and ``kubectl wait`` see the change observed instead of waiting for ever. A timer, not an
    update handler: those make kopf keep a copy of the whole spec in an annotation, which
    for 10,000 targets would double the object.

    Only a change *after* the run finished is this handler's: one during the run is
    acknowledged by the run itself, in or right after its terminal write (the API server's
    answers to its writes show it). So it waits while the run is in this process, and writes
    only if the CR is still as it saw it (a stale view would take the run's own
    acknowledgement for a change after the end); either way it looks again a second later."""
    generation = int(meta.get("generation") or 1)
    if namespace is None or not unacknowledged(dict(status), generation):
        return
    if str(meta.get("uid") or "") in memo.running:
        return
    try:
        await memo.kube.patch_status(
            namespace,
            name,
            acknowledgement(dict(status), generation),
            resource_version=meta.get("resourceVersion"),
        )
    except ApiException as exc:
        if exc.status == 409:
            metrics.requeued()
            return  # the CR moved on since this view of it
        raise
    kopf.event(
        body,
        type="Warning",
        reason="SpecChangeIgnored",
        message=ignored_message(generation),
    )


class KopfLive:
    """A daemon's ``body``, which kopf keeps up to date with every watch event."""

    def __init__(self, body: kopf.Body) -> None:
        self._body = body

    def spec(self) -> Mapping[str, Any]:
        return self._body.spec

    def generation(self) -> int:
        return int(self._body.meta.get("generation") or 1)

    def annotations(self) -> Mapping[str, str]:
        return self._body.meta.annotations


@kopf.daemon(
    API_GROUP,
    API_VERSION,
    PLURAL,
    id="reconcile",
    when=_unfinished,
    # kopf cancels a daemon at once unless given a graceful period: our own terminal status
    # write makes `when` false, and without this the final events and metrics were lost
    # whenever kopf saw that write before the daemon had returned.
    # The reconciler reacts to `stopped` within moments; the backoff only bounds a stuck one.
    # It is also how long kopf waits before it looks again whether the daemon has exited
    # (unless a watch event wakes it first): a deleted BulkTermination keeps its finalizer
    # that long, so it stays short (a run stops within a second; then it is cancelled).
    cancellation_backoff=5.0,
    cancellation_timeout=30.0,
    registry=registry,
)
@metrics.measured("reconcile")
async def reconcile(
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    name: str,
    namespace: str | None,
    stopped: kopf.DaemonStopped,
    memo: OperatorState,
    **_: Any,
) -> None:
    assert namespace is not None, "BulkTermination is a namespaced resource"
    uid = str(meta.get("uid") or "")
    memo.running.add(uid)
    stop = asyncio.Event()

    async def bridge() -> None:
        await stopped.wait()
        stop.set()

    bridge_task = asyncio.create_task(bridge())
    try:
        await _finalizer_landed(body, stopped)
        api = memo.kube
        lease = RunLease(
            KubeLeaseStore(api.api_client, weather=api.weather),
            memo.lease_namespace,
            Owner(namespace=namespace, name=name, uid=uid),
            holder=memo.holder,
        )
        reconciler = Reconciler(
            CrRef(
                namespace=namespace,
                name=name,
                generation=int(meta.get("generation") or 1),
                created=created_at(meta),
            ),
            dict(spec),
            dict(status),
            kube=api,
            events=KopfEvents(body),
            config=memo.config,
            clients=memo.clients,
            lease=lease,
            live=KopfLive(body),
        )
        result = await reconciler.run(stop)
        deleted = stopped.reason is not None and bool(
            stopped.reason & kopf.DaemonStoppingReason.RESOURCE_DELETED
        )
        if (reconciler.resource_gone or deleted) and not (result and result.terminal):
            # One line, not an error: deleting a BulkTermination mid-run is how it is stopped.
            log.info("%s/%s: run stopped: the BulkTermination was deleted", namespace, name)
        elif not (result and result.terminal):
            metrics.requeued()  # stopped, paused or handed over: kopf or a peer resumes it
    finally:
        memo.running.discard(uid)
        bridge_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bridge_task


async def _finalizer_landed(
    body: kopf.Body, stopped: kopf.DaemonStopped, within: float = FINALIZER_WAIT_SECONDS
) -> None:
    """Wait, at most ``within`` s, until kopf's finalizer is on the CR: a new run's first
    status write must not race kopf's patch that adds it.

    kopf adds the finalizer with a JSON patch that tests the ``resourceVersion`` it saw, in the
    same cycle in which it starts this daemon. A status write of ours that lands first makes
    the API server refuse that patch, after doing the whole update's work (seconds for a CR of
    thousands of listed targets, both writes slowed by the contention), and kopf sends it again
    over our next write. Waiting for it (``body`` is kopf's live view of the CR) spares two
    heavy updates on the way to the first send. A resumed run finds the finalizer in place."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not stopped and FINALIZER not in (body.metadata.get("finalizers") or ()):
        left = deadline - loop.time()
        if left <= 0:
            return
        await stopped.wait(min(0.05, left))


@kopf.daemon(
    API_GROUP,
    API_VERSION,
    PLURAL,
    id="expire",
    when=_finished_with_ttl,
    cancellation_backoff=5.0,
    cancellation_timeout=5.0,
    registry=registry,
)
@metrics.measured("expire")
async def expire(
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    name: str,
    namespace: str | None,
    logger: kopf.Logger,
    stopped: kopf.DaemonStopped,
    memo: OperatorState,
    **_: Any,
) -> None:
    ttl = _ttl(spec, memo.config)
    ended = finished_at(dict(status))
    if ttl is None or ended is None:
        return
    remaining = ttl - (datetime.now(UTC) - ended).total_seconds()
    if remaining > 0:
        await stopped.wait(remaining)
    if stopped or namespace is None:
        if stopped:
            metrics.requeued()
        return
    logger.info("ttlSecondsAfterFinished (%ss) has passed: deleting", ttl)
    try:
        await memo.kube.delete(namespace, name)
    except ApiException as exc:
        if exc.status != 403:
            raise
        # RBAC without delete (the chart grants it only with ttl.enabled): say so once,
        # do not retry forever.
        kopf.event(
            body,
            type="Warning",
            reason="TTLDeleteForbidden",
            message="ttlSecondsAfterFinished has passed, but the operator may not delete "
            "BulkTerminations (enable ttl in the Helm values)",
        )


#: The text formats, a timestamp first in each (kopf's own ``plain`` has none: a line then
#: says neither when an outage began nor when a run was stopped, and a log collector's stamp is
#: when it read the line). ``json`` is kopf's, which has a ``timestamp`` field.
TEXT_LOG_FORMATS = {"plain": "%(asctime)s %(message)s", "full": kopf.LogFormat.FULL.value}


class UtcFormatter(logging.Formatter):
    """``asctime`` as ISO 8601 in UTC with milliseconds: ``2026-11-28T20:47:00.123Z``."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        return f"{when:%Y-%m-%dT%H:%M:%S}.{int(record.msecs):03d}Z"


def run_operator(config: OperatorConfig) -> None:
    """Configure logging and metrics, then hand the process to kopf until it is stopped."""
    before = list(logging.getLogger().handlers)
    kopf.configure(
        verbose=config.log_level == "DEBUG",
        log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.FULL,
    )
    text_format = TEXT_LOG_FORMATS.get(config.log_format)
    retries = KopfRetryLogFilter()
    for handler in logging.getLogger().handlers:
        if text_format is not None and handler not in before:  # the one kopf added
            handler.setFormatter(UtcFormatter(text_format))
        handler.addFilter(retries)
    logging.getLogger().setLevel(config.log_level)
    # The kubernetes client logs request bodies at DEBUG: Secrets must never reach a log.
    for noisy in ("kubernetes", "urllib3", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    metrics.serve(config.metrics_port, config.metrics_address)
    follow_peering(config.peering, logging.getLogger().getEffectiveLevel())
    state = OperatorState(config=config)
    state.login.refused = False
    priority = config.peering_priority
    if config.peering is not None and priority is None:
        priority = secrets.randbelow(32767) + 1
    kopf.run(
        priority=priority,
        registry=registry,
        standalone=config.peering is None,
        peering_name=config.peering,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        liveness_endpoint=config.liveness_endpoint or None,
        memo=state,
    )
    if state.login.refused:
        raise SystemExit(1)  # said in one line by ``login``
